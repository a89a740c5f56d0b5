#!/bin/sh
# The C cache worker on a real kernel: in a throwaway cgroup limited to 256 MiB the unguarded twin
# must be SIGKILLed by the OOM killer, and the guarded worker (shedder, then on_level) must exit 0
# with no OOM kill in its cgroup.
#
#   examples/c/kernel-test.sh ./cache_worker          # cgroup v1 natively (root), or cgroup v2
#                                                     # inside `cargo xtask vm` ($MEMGUARD_VM_CGROUP)
# Environment: RATE (MiB/s, default 256; 128 in the VM). Ends with "kernel-c: N passed, N failed,
# N skipped"; a missing capability is a skip locally and a failure in CI (CI=true).
set -u
worker=$1
limit_mib=256
passed=0 failed=0 skipped=0

in_ci() { [ "${CI:-}" = "true" ] || [ "${CI:-}" = "1" ]; }

if [ -n "${MEMGUARD_VM_CGROUP:-}" ]; then
    version=v2 base=$MEMGUARD_VM_CGROUP rate=${RATE:-128}
else
    version=v1 rate=${RATE:-256}
    mount=$(awk '$3 == "cgroup" && $4 ~ /(^|,)memory(,|$)/ { print $2; exit }' /proc/self/mounts)
    own=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ { print $3; exit }' /proc/self/cgroup)
    base=$mount$own
fi
total=$((limit_mib * 3))

finish() {
    echo "kernel-c: $passed passed, $failed failed, $skipped skipped"
    [ "$failed" -eq 0 ]
    exit $?
}

probe="$base/memguard-test-c-probe-$$"
if [ -z "${base:-}" ] || ! mkdir "$probe" 2>/dev/null; then
    why="no writable $version memory cgroup under '${base:-?}'"
    if in_ci; then echo "FAILED (CI): $why"; failed=1; else echo "SKIPPED: $why"; skipped=2; fi
    finish
fi
rmdir "$probe"

cg=""
cleanup() {
    if [ -n "$cg" ] && [ -d "$cg" ]; then
        for p in $(cat "$cg/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
        i=0
        while ! rmdir "$cg" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    fi
    cg=""
}
trap cleanup EXIT INT TERM

new_cgroup() {
    cg="$base/memguard-test-c-$$-$1"
    mkdir "$cg" || return 1
    if [ "$version" = v1 ]; then
        echo $((limit_mib * 1024 * 1024)) > "$cg/memory.limit_in_bytes"
    else
        echo $((limit_mib * 1024 * 1024)) > "$cg/memory.max"
        echo 0 > "$cg/memory.swap.max" 2>/dev/null
    fi
}

oom_kills() {
    if [ "$version" = v1 ]; then f="$cg/memory.oom_control"; else f="$cg/memory.events"; fi
    awk '$1 == "oom_kill" { print $2; found = 1 } END { if (!found) print 0 }' "$f"
}

# Run the worker inside $cg; sets $status and $out. (The shell's own "Killed" notice goes to the
# error file with the worker's stderr.)
run() {
    env -u MEMGUARD_LIMIT sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$worker" \
        --total "$total" --rate "$rate" "$@" > "$tmp.out" 2> "$tmp.err"
    status=$?
    out=$(cat "$tmp.out")
}

check() { # name, condition (0 = true), detail
    if [ "$2" -eq 0 ]; then
        echo "ok   $1: $3"
        passed=$((passed + 1))
    else
        echo "FAIL $1: $3"
        tail -5 "$tmp.err" 2>/dev/null
        failed=$((failed + 1))
    fi
}

tmp=${TMPDIR:-/tmp}/memguard-c-worker-$$
new_cgroup unguarded
run --guard none 2>> "$tmp.err"
kills=$(oom_kills)
[ "$status" -eq 137 ] && [ "$kills" -ge 1 ]
check "$version unguarded twin is OOM-killed" $? "exit $status, oom_kill $kills"
cleanup

for mode in shedder on_level; do
    new_cgroup "guarded-$mode"
    run --guard "$mode"
    kills=$(oom_kills)
    evicted=$(echo "$out" | sed -n 's/.*"evicted_bytes":\([0-9]*\).*/\1/p')
    [ "$status" -eq 0 ] && [ "$kills" -eq 0 ] && [ "${evicted:-0}" -gt 0 ]
    check "$version guarded worker ($mode, ${limit_mib} MiB limit, $rate MiB/s) survives" $? \
        "exit $status, oom_kill $kills, $out"
    cleanup
done
rm -f "$tmp.out" "$tmp.err"
finish
