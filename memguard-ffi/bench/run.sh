#!/bin/sh
# memguard_reserve + memguard_reservation_free from C (static and shared libmemguard, -O2) beside
# the Rust reference, in one run:
#   memguard-ffi/bench/run.sh [ITERATIONS]
# Builds the C library with `cargo cinstall` into target/c-bench/prefix.
# shellcheck disable=SC2046
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
iters=${1:-2000000}
out=$root/target/c-bench
mkdir -p "$out"
(cd "$root" && cargo cinstall -p memguard-ffi --release --prefix="$out/prefix" --libdir=lib >/dev/null 2>&1)
export PKG_CONFIG_PATH="$out/prefix/lib/pkgconfig"
cc -std=c11 -O2 -Wall -Wextra -Werror -pedantic $(pkg-config --cflags memguard) "$here/reserve_bench.c" \
    $(pkg-config --static --libs memguard | sed 's/-lmemguard/-l:libmemguard.a/') -o "$out/reserve_bench_static"
cc -std=c11 -O2 -Wall -Wextra -Werror -pedantic $(pkg-config --cflags memguard) "$here/reserve_bench.c" \
    $(pkg-config --libs memguard) -Wl,-rpath,"$out/prefix/lib" -o "$out/reserve_bench_shared"
# Both sides run a real guard (from MEMGUARD_*) in node mode on a fixture host of 1 TiB with 1 GiB
# used, sampled every 1-5 ms as the core's budget bench does: released bytes settle at each sample,
# so a tight loop never exhausts the soft limit.
mkdir -p "$out/node/proc"
printf 'MemTotal:       1073741824 kB\nMemAvailable:   1072693248 kB\n' > "$out/node/proc/meminfo"
export MEMGUARD_ROOT="$out/node" MEMGUARD_EVICTION_THRESHOLD=0 MEMGUARD_SAMPLE_MIN=1ms MEMGUARD_SAMPLE_MAX=5ms
unset MEMGUARD_LIMIT
echo "== $(nproc) cores, $(uname -r); guard in node mode on a 1 TiB fixture, sampled every 1-5 ms"
"$out/reserve_bench_static" "$iters" c-static
"$out/reserve_bench_shared" "$iters" c-shared
(cd "$root" && cargo bench -q -p memguard-ffi --bench reserve -- "$iters")
