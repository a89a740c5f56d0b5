#!/bin/sh
# JMH benchmarks of the Java package (release build of the JNI library):
#   memguard-jni/jmh/run.sh [jdk17|jdk25]
# 1. reserve + close (and tryReserve, a bare JNI call, two threads): JMH, average and sampled time;
# 2. event-to-listener latency over 200 real level changes (root: a test cgroup is created).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
java=/usr/lib/jvm/java-17-openjdk-amd64/bin/java
[ "${1:-}" = "jdk25" ] && java=/usr/lib/jvm/temurin-25-jdk-amd64/bin/java
(cd "$root" && cargo build --release -q -p memguard-jni)
mvn -B -q -ntp -f "$root/memguard-jni/pom.xml" install -DskipTests
mvn -B -q -ntp -f "$here/pom.xml" package
"$java" -jar "$here/target/benchmarks.jar" ReserveBenchmark -f 1 -wi 3 -i 5 -w 1 -r 1 -rf text -rff "$here/target/jmh-result.txt"
"$java" --enable-native-access=ALL-UNNAMED -cp "$here/target/benchmarks.jar" io.memguard.bench.ListenerLatency 200
