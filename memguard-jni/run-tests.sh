#!/bin/sh
# Build the Java package and run its JUnit 5 suite under -Xcheck:jni (any JNI warning fails):
#
#   1. cargo build --release -p memguard-jni -p memguard   (libmemguard_jni.so, and the Rust CLI
#      the status parity check compares with);
#   2. mvn verify: the jar (the library inside under io/memguard/native/linux-x86_64/), Surefire
#      on OpenJDK 17 and on Temurin 25 (one execution each), the JNI-warning grep;
#   3. the jar itself: `java -jar memguard.jar status` on both JDKs prints nothing on stderr (no
#      native-access warning on JDK 24+) and the same report as `memguard status`;
#   4. ONE boot of the cgroup v2 VM (`cargo xtask vm`): Surefire again on both JDKs for the
#      cgroup v2 kernel test (the direct-buffer twins under a parent-only limit, the heap
#      mismatch), offline, on the classes built in step 2 (Java under TCG is slow: the rest of
#      the suite runs natively only).
#
#   memguard-jni/run-tests.sh [--skip-vm]
#
# Environment: JDK17 / JDK25 (java executables), CI=true makes a missing JDK or cgroup an error.
set -u
# `cargo run` (hence `cargo xtask test`) puts target/<profile> on LD_LIBRARY_PATH, where
# libmemguard_jni.so lives: System.loadLibrary would then find it before the jar's copy is
# tried, and the loader tests (and the jar checks) would test the wrong path. The suite runs as
# a user's JVM would: without it.
unset LD_LIBRARY_PATH

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
skip_vm=0
[ "${1:-}" = "--skip-vm" ] && skip_vm=1
in_ci() { [ "${CI:-}" = "true" ] || [ "${CI:-}" = "1" ]; }

jdk17=${JDK17:-/usr/lib/jvm/java-17-openjdk-amd64/bin/java}
jdk25=${JDK25:-/usr/lib/jvm/temurin-25-jdk-amd64/bin/java}
if [ ! -x "$jdk17" ] || ! command -v mvn >/dev/null 2>&1; then
    echo "== memguard-jni: installing OpenJDK 17 and Maven (apt-get)"
    (apt-get update -qq && apt-get install -y -qq openjdk-17-jdk-headless maven) >/dev/null || {
        echo "== memguard-jni: apt-get install openjdk-17-jdk-headless maven FAILED"
        exit 1
    }
fi
skip25=false
if [ ! -x "$jdk25" ]; then
    # Temurin is not in Debian's archive: the machines carry it; say so when it is missing.
    if in_ci; then
        echo "== memguard-jni: Temurin 25 missing at $jdk25 (required in CI)"
        exit 1
    fi
    echo "== memguard-jni: Temurin 25 missing at $jdk25: its run is NOT RUN"
    skip25=true
fi

echo "== memguard-jni: cargo build --release -p memguard-jni -p memguard"
(cd "$root" && cargo build --release -p memguard-jni -p memguard) || exit 1

status=0
echo "== memguard-jni: mvn verify (JUnit under -Xcheck:jni on JDK 17 and JDK 25, JNI-warning grep)"
(cd "$here" && mvn -B -ntp verify -Djdk17.java="$jdk17" -Djdk25.java="$jdk25" -Dskip.jdk25=$skip25) || status=1

echo "== memguard-jni: the jar: java -jar memguard.jar status, silent on stderr, same report as the Rust CLI"
pass=0
fail=0
check() {
    if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "   FAILED: $*"; fi
}
jar_status() { # java, format flag
    err=$(mktemp)
    "$1" -jar "$here/target/memguard.jar" status $2 >"$err.out" 2>"$err" || { cat "$err"; rm -f "$err" "$err.out"; return 1; }
    if [ -s "$err" ]; then
        echo "   stderr of $1 -jar memguard.jar status:"; cat "$err"; rm -f "$err" "$err.out"; return 1
    fi
    cat "$err.out"; rm -f "$err" "$err.out"
}
same_report() { # java: the JSON keys and the limit fields match the Rust CLI's
    jar_status "$1" --json >"$here/target/status-java.json" || return 1
    "$root/target/release/memguard" status --json >"$here/target/status-rust.json" || return 1
    python3 - "$here/target/status-java.json" "$here/target/status-rust.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
keys = ("cgroup", "cgroup_path", "limit_bytes", "limit_applied", "limit_cgroup", "detected_limit_bytes")
ok = a.keys() == b.keys() and all(a[k] == b[k] for k in keys)
print("   status --json: Java and Rust agree" if ok else f"   status --json differs: {set(a) ^ set(b)} {[(k, a[k], b[k]) for k in keys if a.get(k) != b.get(k)]}")
sys.exit(0 if ok else 1)
PY
}
text_report() { # the text report's rows are the Rust CLI's
    jar_status "$1" "" | sed -n 's/^  \([a-z][a-z ]*[a-z]\)  .*/\1/p' >"$here/target/rows-java.txt" || return 1
    "$root/target/release/memguard" status | sed -n 's/^  \([a-z][a-z ]*[a-z]\)  .*/\1/p' >"$here/target/rows-rust.txt"
    diff "$here/target/rows-java.txt" "$here/target/rows-rust.txt"
}
for java in "$jdk17" $( [ "$skip25" = false ] && echo "$jdk25" ); do
    check same_report "$java"
    check text_report "$java"
done
echo "jar-checks: $pass passed, $fail failed"
[ "$fail" -eq 0 ] || status=1

if [ "$skip_vm" -eq 1 ]; then
    echo "== memguard-jni: cgroup v2 VM run NOT RUN (--skip-vm)"
    exit $status
fi
echo "== memguard-jni: cgroup v2 VM (one boot): Surefire on JDK 17 and JDK 25, kernel tests"
# One vCPU: under qemu's multi-threaded TCG, code HotSpot's JIT patches on one vCPU while another
# runs it was seen executed stale (hs_err: SIGILL/SIGSEGV in C1-compiled java.base methods, on
# JDK 17 and 25, about one JVM in six). With one vCPU no run crashed (see the closing note).
(cd "$root" && cargo xtask vm --cpus 1 --timeout 1500 -- sh -c "cd '$here' && mvn -o -B -ntp antrun:run@jvm-output-dir \
    surefire:test@default-test surefire:test@jdk25 antrun:run@jni-warnings -Djdk17.java='$jdk17' \
    -Djdk25.java='$jdk25' -Dskip.jdk25=$skip25 -Dtest=KernelShedTest -Dsurefire.failIfNoSpecifiedTests=false; \
    rc=\$?; cat \"\$MEMGUARD_VM_OUT\"/java-kernel-v2-*.txt 2>/dev/null | grep -E '^(v2|    )' ; exit \$rc") || status=1
exit $status
