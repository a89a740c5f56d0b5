#!/bin/sh
# Counts JVM crashes of the Java survival worker inside the cgroup v2 VM (`cargo xtask compare`
# runs its Java cells in a VM with one vCPU because of them; see Contender::one_vcpu):
#
#   cargo xtask vm [--cpus 1] -- sh benches/compare/jvm-crashes.sh LABEL N [JVM flags...]
#
# N runs of io.memguard.DirectCacheService at full speed (its four modes in turn), each in a fresh
# cgroup limited to 256 MiB; a run is a crash when HotSpot wrote an hs_err report. One line per
# run and a summary on stdout and in $MEMGUARD_VM_OUT/LABEL.txt (with each crash's signal line).
# Needs the jar, the test classes and libmemguard_jni.so built on the host (memguard-jni/run-tests.sh).
set -u
label=$1 n=$2
shift 2
root=$(pwd)
java=${JDK17:-/usr/lib/jvm/java-17-openjdk-amd64/bin/java}
cp=$root/memguard-jni/target/memguard.jar:$root/memguard-jni/target/test-classes
lib=${CARGO_TARGET_DIR:-$root/target}/release/libmemguard_jni.so
out=$MEMGUARD_VM_OUT/$label.txt
crashed=0 killed=0 survived=0 other=0 i=0
while [ "$i" -lt "$n" ]; do
    case $((i % 4)) in 0) mode=unguarded ;; 1) mode=mxbean ;; 2) mode=memguard-level ;; *) mode=memguard ;; esac
    cg=$MEMGUARD_VM_CGROUP/jvm-crashes-$i
    mkdir "$cg" && echo 256M >"$cg/memory.max" && echo 0 >"$cg/memory.swap.max" || exit 1
    rm -f /tmp/hs_err_*.log
    start=$(/usr/bin/date +%s%N) # coreutils: the VM's PATH starts with busybox, whose date has no %N
    sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cg" "$java" -XX:-UsePerfData -Xmx64m \
        -XX:MaxDirectMemorySize=1g --enable-native-access=ALL-UNNAMED -Dmemguard.native.path="$lib" \
        -XX:ErrorFile=/tmp/hs_err_%p.log "$@" -cp "$cp" io.memguard.DirectCacheService "$mode" 96 100000 \
        >/tmp/jvm-crashes.out 2>&1
    rc=$?
    ms=$((($(/usr/bin/date +%s%N) - start) / 1000000))
    oom=$(sed -n 's/^oom_kill //p' "$cg/memory.events")
    hs=$(ls /tmp/hs_err_*.log 2>/dev/null | head -1)
    if [ -n "$hs" ]; then
        crashed=$((crashed + 1)) what=CRASHED
        grep -m1 -E '^# +SIG' "$hs" >>"$out"
    elif [ "$oom" != 0 ]; then
        killed=$((killed + 1)) what=oom-killed
    elif [ "$rc" = 0 ]; then
        survived=$((survived + 1)) what=survived
    else
        other=$((other + 1)) what=other
        tail -3 /tmp/jvm-crashes.out >>"$out"
    fi
    echo "$label run $i $mode: exit $rc, oom_kill $oom, $what, $ms ms" | tee -a "$out"
    rmdir "$cg"
    i=$((i + 1))
done
echo "$label: $n runs: crashed $crashed, oom-killed $killed, survived $survived, other $other" | tee -a "$out"
