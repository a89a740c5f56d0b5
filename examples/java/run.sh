#!/bin/sh
# Build memguard's jar (JNI library inside), install it into the local Maven repository, build
# this example and run it:
#
#   examples/java/run.sh [PORT | --selftest N]
#
# Try it under a memory limit, e.g. MEMGUARD_LIMIT=256Mi examples/java/run.sh --selftest 600
# (an override stands for a container's limit when there is none).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
(cd "$root" && cargo build --release -q -p memguard-jni)
mvn -B -q -ntp -f "$root/memguard-jni/pom.xml" install -DskipTests
mvn -B -q -ntp -f "$here/pom.xml" package
exec java --enable-native-access=ALL-UNNAMED -Xmx1g -cp "$here/target/classes:$(cat "$here/target/classpath.txt")" \
    io.memguard.example.CacheService "$@"
