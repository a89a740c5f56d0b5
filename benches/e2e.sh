#!/bin/sh
# memguard end-to-end figures: notification -> callback latency per event source and the
# watcher's idle cost (in process, and the `memguard watch` CLI thread by thread), natively
# (this host: cgroup v1) and in the cgroup v2 VM (`cargo xtask vm`).
#
#   benches/e2e.sh                     # everything (about 5 minutes natively + 5 in the VM)
#   benches/e2e.sh --iterations 50 --psi-iterations 5 --idle-secs 10   # a quick pass
#
# Needs root (creates cgroups, moves itself into them). Arguments are passed to both runs of
# `memguard-e2e all`. Tables go to the terminal; the JSON objects to target/e2e/{native,vm}.json.
# Exit status: non-zero when either run could not take a measurement.
set -u
cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
BIN="$ROOT/target/release/memguard-e2e"
OUT="$ROOT/target/e2e"

# memguard-e2e, and the `memguard` CLI whose `watch` idle cost it measures (next to it).
cargo build --release -p memguard-benches --bin memguard-e2e -p memguard --bin memguard || exit 2
mkdir -p "$OUT" || exit 2

echo "== native ($(uname -r)) =="
"$BIN" all --json "$@" >"$OUT/native.json"
native=$?
echo "native: exit $native, JSON in $OUT/native.json"

echo
echo "== cgroup v2 VM (cargo xtask vm, TCG emulation) =="
cargo xtask vm --timeout 600 -- "$BIN" all --json "$@" >"$OUT/vm.json"
vm=$?
echo "vm: exit $vm, JSON in $OUT/vm.json"

echo
echo "native JSON:"
cat "$OUT/native.json"
echo "vm JSON:"
cat "$OUT/vm.json"

[ "$native" -eq 0 ] && [ "$vm" -eq 0 ]
