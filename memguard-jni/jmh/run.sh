#!/bin/sh
# JMH benchmarks of the Java package (release build of the JNI library):
#   memguard-jni/jmh/run.sh [jdk17|jdk25]
# 1. reserve + close (and tryReserve, a bare JNI call, two threads): JMH, average and sampled time;
# 2. the Rust reference in the same run: the same reserve + release through the Rust API
#    (memguard-jni/benches/reserve.rs);
# 3. event-to-listener latency over 200 real level changes after 50 of warm-up (root: a test
#    cgroup is created), and the Rust reference in the same scenario (an `on_event` callback,
#    and one forwarded to a waiting thread as the binding's feed does). The guard's log records
#    (three per round at INFO) go to target/latency-log.txt, as a service's log would go to a file.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
java=/usr/lib/jvm/java-17-openjdk-amd64/bin/java
[ "${1:-}" = "jdk25" ] && java=/usr/lib/jvm/temurin-25-jdk-amd64/bin/java
(cd "$root" && cargo build --release -q -p memguard-jni)
mvn -B -q -ntp -f "$root/memguard-jni/pom.xml" install -DskipTests
mvn -B -q -ntp -f "$here/pom.xml" package
# The reservation benches (Java and the Rust reference) run a real guard (from MEMGUARD_*) in node
# mode on a fixture host of 1 TiB with 1 GiB used, sampled every 1-5 ms, as memguard-ffi's bench
# and the core's budget bench do: released bytes settle at each sample, so a tight loop never
# exhausts the soft limit (on the real host, 4 KiB at ~20 ns outruns the sampler's settling).
fixture=$root/target/jni-bench/node
mkdir -p "$fixture/proc"
printf 'MemTotal:       1073741824 kB\nMemAvailable:   1072693248 kB\n' > "$fixture/proc/meminfo"
export MEMGUARD_ROOT="$fixture" MEMGUARD_EVICTION_THRESHOLD=0 MEMGUARD_SAMPLE_MIN=1ms MEMGUARD_SAMPLE_MAX=5ms
unset MEMGUARD_LIMIT
echo "== $(nproc) cores, $(uname -r), $("$java" -version 2>&1 | head -1); guard in node mode on a 1 TiB fixture"
"$java" -jar "$here/target/benchmarks.jar" ReserveBenchmark -f 1 -wi 3 -i 5 -w 1 -r 1 -rf text -rff "$here/target/jmh-result.txt"
(cd "$root" && cargo bench -q -p memguard-jni --bench reserve -- 2000000)
unset MEMGUARD_ROOT MEMGUARD_EVICTION_THRESHOLD MEMGUARD_SAMPLE_MIN MEMGUARD_SAMPLE_MAX
echo "== load average: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared: latency tails follow it)"
"$java" --enable-native-access=ALL-UNNAMED -cp "$here/target/benchmarks.jar" io.memguard.bench.ListenerLatency 200 50 \
    2>"$here/target/latency-log.txt"
(cd "$root" && cargo bench -q -p memguard-jni --bench listener_latency -- 250)
