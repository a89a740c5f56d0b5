#!/bin/sh
# Build memguard's jar (JNI library inside), install it into the local Maven repository, build
# this example and run it:
#
#   examples/java/run.sh [--cgroup-limit BYTES] [PORT | --selftest N]
#
# --cgroup-limit runs it in a new memory cgroup with that limit (root, cgroup v1 hosts such as
# this project's build machine; in a container, its own limit is what counts), e.g.
#   examples/java/run.sh --cgroup-limit 512M --selftest 600
#
# The JVM runs with JAVA_OPTS, default -Xmx1g: a heap allowed past the container's limit, as a JVM
# gets that sized it without the limit (JDK 17 under a cgroup v2 limit on a parent cgroup only) —
# memguard's heap-mismatch warning says so at start, and the cache is shed before the kernel
# OOM-kills the service. (With a heap well below the limit, the heap fills first and the JVM
# throws OutOfMemoryError instead: size the cache by the heap then.)
set -eu
opts=${JAVA_OPTS:--Xmx1g}
limit=""
if [ "${1:-}" = "--cgroup-limit" ]; then
    limit=$2
    shift 2
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
(cd "$root" && cargo build --release -q -p memguard-jni)
mvn -B -q -ntp -f "$root/memguard-jni/pom.xml" install -DskipTests
mvn -B -q -ntp -f "$here/pom.xml" package
cp="$here/target/classes:$(cat "$here/target/classpath.txt")"
if [ -z "$limit" ]; then
    # shellcheck disable=SC2086
    exec java $opts --enable-native-access=ALL-UNNAMED -cp "$cp" io.memguard.example.CacheService "$@"
fi
own=$(grep -E '^[0-9]+:([^:]*,)?memory(,[^:]*)?:' /proc/self/cgroup | cut -d: -f3)
base=/sys/fs/cgroup/memory$own
[ -d "$base" ] || { echo "--cgroup-limit needs a cgroup v1 memory hierarchy (run it in a container instead)"; exit 1; }
cg=$base/memguard-example-$$
mkdir "$cg"
echo "$limit" > "$cg/memory.limit_in_bytes"
trap 'rmdir "$cg" 2>/dev/null || true' EXIT
echo "running in $cg (limit $(cat "$cg/memory.limit_in_bytes") bytes)"
# shellcheck disable=SC2086
sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" \
    java $opts --enable-native-access=ALL-UNNAMED -cp "$cp" io.memguard.example.CacheService "$@"
