#!/bin/sh
# The C library's suite, as `cargo xtask test` runs it:
#
#   1. install   `cargo cinstall` (the README's install command) into target/c-tests/prefix; the
#                installed header is the committed one, the SONAME follows the ABI policy, the .pc
#                works, and the header compiles alone as C11 and C++17 with -Wall -Wextra -Werror
#                -pedantic;
#   2. valgrind  the C tests (tests/c) against the installed libmemguard.so: zero bytes definitely
#                or indirectly lost, no error;
#   3. asan      the same tests, ASan + UBSan, against the installed libmemguard.a;
#   4. tsan      the same tests under ThreadSanitizer with BOTH sides instrumented: the Rust library
#                and its std built by nightly with -Zsanitizer=thread -Zbuild-std, the C code by gcc
#                -fsanitize=thread, linked against Rust's TSan runtime; plus a deliberate race that
#                TSan must report (so a silent TSan cannot pass);
#   5. examples  examples/c and examples/cpp configured by CMake through
#                pkg_check_modules(IMPORTED_TARGET memguard), built, the C++ demo run;
#   6. kernel    examples/c/kernel-test.sh: the C cache worker in a 256 MiB cgroup survives where
#                its twin is OOM-killed — cgroup v1 natively, cgroup v2 in one `cargo xtask vm` boot.
#
#   memguard-ffi/run-tests.sh [--skip-vm]
#
# Every step ends with a line "<step>: N passed, N failed, N skipped". Missing tools are installed
# (apt-get: valgrind, cmake, pkg-config, g++; cargo: cargo-c 0.10.24; rustup: nightly rust-src).
# Exits non-zero if anything failed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out="$root/target/c-tests"
skip_vm=0
[ "${1:-}" = "--skip-vm" ] && skip_vm=1
status=0
CARGO_C_VERSION=0.10.24
STRICT="-Wall -Wextra -Werror -pedantic"

in_ci() { [ "${CI:-}" = "true" ] || [ "${CI:-}" = "1" ]; }
banner() { echo; echo "== memguard-ffi: $*"; }

# Counters of the current step.
p=0 f=0 s=0
ok() { echo "ok   $*"; p=$((p + 1)); }
bad() { echo "FAIL $*"; f=$((f + 1)); }
skip() {
    if in_ci; then bad "$* (CI: every check must run)"; else echo "skip $*"; s=$((s + 1)); fi
}
close_step() {
    echo "$1: $p passed, $f failed, $s skipped"
    [ "$f" -eq 0 ] || status=1
    p=0 f=0 s=0
}
# A run whose own closing line counts (the C runner, kernel-test.sh): fail only if it printed none.
counted_run() { # name, log, exit code
    if ! grep -qE '^[a-z0-9-]+: [0-9]+ passed, [0-9]+ failed' "$2"; then
        echo "$1: 0 passed, 1 failed, 0 skipped"
        status=1
    elif [ "$3" -ne 0 ]; then
        status=1
    fi
}

# ------------------------------------------------------------------------- tools --
banner "tools"
need_apt=""
command -v cc >/dev/null 2>&1 || need_apt="$need_apt gcc"
command -v g++ >/dev/null 2>&1 || need_apt="$need_apt g++"
command -v cmake >/dev/null 2>&1 || need_apt="$need_apt cmake"
command -v pkg-config >/dev/null 2>&1 || need_apt="$need_apt pkg-config"
command -v valgrind >/dev/null 2>&1 || need_apt="$need_apt valgrind"
if [ -n "$need_apt" ]; then
    echo "installing:$need_apt"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need_apt) >/dev/null 2>&1 \
        || echo "apt-get install$need_apt failed"
fi
if ! cargo cinstall --version >/dev/null 2>&1; then
    # --debug: about 3 minutes on two cores instead of about 10 for an optimised build; cargo-c
    # only drives cargo, so it installs the same files either way.
    echo "installing cargo-c $CARGO_C_VERSION (cargo install --debug; about 3 minutes)"
    cargo install cargo-c --version "$CARGO_C_VERSION" --locked --debug >/dev/null 2>&1 \
        || echo "cargo install cargo-c failed"
fi
have_tsan=1
if ! cargo +nightly --version >/dev/null 2>&1; then
    have_tsan=0
    echo "no nightly Rust toolchain: the TSan step cannot run"
elif ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
    rustup component add rust-src --toolchain nightly >/dev/null 2>&1 || { have_tsan=0; echo "rust-src unavailable"; }
fi

rm -rf "$out"
mkdir -p "$out"
prefix="$out/prefix"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"

# ----------------------------------------------------------------------- install --
banner "install: cargo cinstall -p memguard-ffi --release --prefix=$prefix"
if (cd "$root" && cargo cinstall -p memguard-ffi --release --prefix="$prefix" --libdir=lib) > "$out/cinstall.log" 2>&1; then
    ok "cargo cinstall"
else
    tail -20 "$out/cinstall.log"
    bad "cargo cinstall"
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
major=${version%%.*}
minor=$(echo "$version" | cut -d. -f2)
if [ "$major" = 0 ]; then soname="libmemguard.so.0.$minor"; else soname="libmemguard.so.$major"; fi
if cmp -s "$prefix/include/memguard.h" "$here/include/memguard.h"; then
    ok "installed memguard.h is the committed header"
else
    bad "installed memguard.h differs from include/memguard.h"
fi
if readelf -d "$prefix/lib/libmemguard.so" 2>/dev/null | grep -q "SONAME.*\[$soname\]"; then
    ok "SONAME $soname"
else
    bad "SONAME is not $soname: $(readelf -d "$prefix/lib/libmemguard.so" 2>&1 | grep SONAME)"
fi
[ -f "$prefix/lib/libmemguard.a" ] && ok "libmemguard.a installed" || bad "libmemguard.a missing"
if [ "$(pkg-config --modversion memguard 2>/dev/null)" = "$version" ]; then
    ok "pkg-config --modversion memguard = $version"
else
    bad "pkg-config does not find memguard $version"
fi
exported=$(nm -D --defined-only "$prefix/lib/libmemguard.so" 2>/dev/null | awk '$2 == "T" { print $3 }')
if [ -n "$exported" ] && ! echo "$exported" | grep -qv '^memguard_'; then
    ok "the .so exports only memguard_* ($(echo "$exported" | wc -l) functions)"
else
    bad "the .so exports symbols outside memguard_*: $(echo "$exported" | grep -v '^memguard_' | head -5)"
fi
printf '#include <memguard.h>\nint main(void) { return memguard_result_str(MEMGUARD_OK)[0] == 0; }\n' > "$out/header.c"
cp "$out/header.c" "$out/header.cpp"
# shellcheck disable=SC2046,SC2086
cc -std=c11 $STRICT $(pkg-config --cflags memguard) -c "$out/header.c" -o "$out/header-c.o" \
    && ok "memguard.h compiles as C11 $STRICT" || bad "memguard.h as C11"
# shellcheck disable=SC2046,SC2086
g++ -std=c++17 $STRICT $(pkg-config --cflags memguard) -c "$out/header.cpp" -o "$out/header-cpp.o" \
    && ok "memguard.h compiles as C++17 $STRICT (extern \"C\")" || bad "memguard.h as C++17"
close_step install

tests_src="$here/tests/c/test_memguard.c $here/tests/c/runner.c"

# ---------------------------------------------------------------------- valgrind --
banner "valgrind: the C tests against the installed libmemguard.so"
# shellcheck disable=SC2046,SC2086
if cc -std=c11 $STRICT -g -O1 $(pkg-config --cflags memguard) $tests_src $(pkg-config --libs memguard) -lpthread \
    -Wl,-rpath,"$prefix/lib" -o "$out/test_shared"; then
    MEMGUARD_TEST_SLOW=20 valgrind --leak-check=full --show-leak-kinds=definite,indirect \
        --errors-for-leak-kinds=definite,indirect --error-exitcode=99 "$out/test_shared" > "$out/valgrind.log" 2>&1
    rc=$?
    grep -v '^==[0-9]*==' "$out/valgrind.log"
    grep -E 'definitely lost|indirectly lost|possibly lost|ERROR SUMMARY' "$out/valgrind.log"
    [ $rc -eq 99 ] && echo "valgrind: errors or definitely/indirectly lost bytes (see above)"
    counted_run valgrind "$out/valgrind.log" $rc
else
    echo "valgrind: 0 passed, 1 failed, 0 skipped"
    status=1
fi

# --------------------------------------------------------------------- asan+ubsan --
banner "asan+ubsan: the C tests against the installed libmemguard.a"
static_libs=$(pkg-config --static --libs memguard | sed 's/-lmemguard/-l:libmemguard.a/')
# shellcheck disable=SC2046,SC2086
if cc -std=c11 $STRICT -g -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all \
    $(pkg-config --cflags memguard) $tests_src $static_libs -o "$out/test_asan"; then
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=98 UBSAN_OPTIONS=print_stacktrace=1 \
        "$out/test_asan" > "$out/asan.log" 2>&1
    rc=$?
    cat "$out/asan.log"
    counted_run asan "$out/asan.log" $rc
else
    echo "asan: 0 passed, 1 failed, 0 skipped"
    status=1
fi

# -------------------------------------------------------------------------- tsan --
banner "tsan: Rust (nightly -Zsanitizer=thread -Zbuild-std) and C (gcc -fsanitize=thread) instrumented"
if [ $have_tsan -eq 1 ]; then
    tsan_target="$root/target/tsan"
    triple=x86_64-unknown-linux-gnu
    if (cd "$root" && RUSTFLAGS="-Zsanitizer=thread" CARGO_TARGET_DIR="$tsan_target" \
        cargo +nightly build -Zbuild-std --target $triple -p memguard-ffi --release) > "$out/tsan-build.log" 2>&1; then
        rt="$(rustc +nightly --print sysroot)/lib/rustlib/$triple/lib/librustc-nightly_rt.tsan.a"
        objs=""
        for src in $tests_src; do
            obj="$out/tsan-$(basename "$src" .c).o"
            # shellcheck disable=SC2086
            cc -std=c11 $STRICT -g -O1 -fsanitize=thread -I"$here/include" -c "$src" -o "$obj" || status=1
            objs="$objs $obj"
        done
        # Rust's TSan runtime (gcc's libtsan lacks the entry points current LLVM emits).
        # shellcheck disable=SC2086
        cc $objs "$tsan_target/$triple/release/libmemguard_ffi.a" -Wl,--whole-archive "$rt" -Wl,--no-whole-archive \
            -lpthread -ldl -lm -lrt -o "$out/test_tsan" || status=1
        TSAN_OPTIONS="halt_on_error=1 exitcode=97 second_deadlock_stack=1" "$out/test_tsan" > "$out/tsan.log" 2>&1
        rc=$?
        cat "$out/tsan.log"
        counted_run tsan "$out/tsan.log" $rc
        TSAN_OPTIONS="halt_on_error=1 exitcode=97" "$out/test_tsan" --race-canary > "$out/tsan-canary.log" 2>&1
        rc=$?
        if [ $rc -eq 97 ] && grep -q "WARNING: ThreadSanitizer: data race" "$out/tsan-canary.log"; then
            ok "tsan reports the deliberate race between a callback and the main thread"
        else
            cat "$out/tsan-canary.log"
            bad "tsan did not report the deliberate race (exit $rc): it is not watching"
        fi
    else
        tail -20 "$out/tsan-build.log"
        bad "nightly TSan build of memguard-ffi"
    fi
else
    skip "tsan: needs nightly Rust with rust-src"
fi
close_step tsan-canary

# ---------------------------------------------------------------------- examples --
banner "examples: CMake + pkg_check_modules(IMPORTED_TARGET memguard)"
for ex in c cpp; do
    if cmake -S "$root/examples/$ex" -B "$out/build-$ex" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_BUILD_RPATH="$prefix/lib" > "$out/cmake-$ex.log" 2>&1 \
        && cmake --build "$out/build-$ex" >> "$out/cmake-$ex.log" 2>&1; then
        ok "examples/$ex builds with CMake against the installed library"
    else
        tail -20 "$out/cmake-$ex.log"
        bad "examples/$ex with CMake"
    fi
done
# The README's C example: compiled as it stands and run.
awk '/<!-- readme-c-example/ { grab = 1; next } grab && /^```c$/ { inside = 1; next }
     inside && /^```$/ { exit } inside { print }' "$root/README.md" > "$out/readme_example.c"
# shellcheck disable=SC2046,SC2086
if [ -s "$out/readme_example.c" ] && cc -std=c11 $STRICT $(pkg-config --cflags memguard) "$out/readme_example.c" \
    $(pkg-config --libs memguard) -lpthread -Wl,-rpath,"$prefix/lib" -o "$out/readme_example" \
    && env -u MEMGUARD_LIMIT "$out/readme_example"; then
    ok "the README's C example compiles ($STRICT) and runs"
else
    bad "the README's C example"
fi
if [ -x "$out/build-cpp/guard_demo" ] && env -u MEMGUARD_LIMIT "$out/build-cpp/guard_demo" > "$out/guard_demo.log" 2>&1 \
    && grep -q "refused as expected: budget exceeded" "$out/guard_demo.log"; then
    ok "the C++ demo runs (RAII guard, subscription, reservation, metrics)"
else
    cat "$out/guard_demo.log" 2>/dev/null
    bad "the C++ demo"
fi
close_step examples

# ------------------------------------------------------------------------ kernel --
worker="$out/build-c/cache_worker"
banner "kernel: the C cache worker, cgroup v1 natively"
sh "$root/examples/c/kernel-test.sh" "$worker" > "$out/kernel-v1.log" 2>&1
rc=$?
cat "$out/kernel-v1.log"
counted_run kernel-c "$out/kernel-v1.log" $rc

if [ $skip_vm -eq 1 ]; then
    echo "== memguard-ffi: cgroup v2 VM part NOT RUN (--skip-vm)"
    p=0 f=0 s=0
    skip "kernel v2 (--skip-vm)"
    close_step kernel-v2
else
    banner "kernel: the C cache worker, cgroup v2 in one VM boot"
    (cd "$root" && cargo xtask vm --timeout 600 -- sh "$root/examples/c/kernel-test.sh" "$worker") \
        > "$out/kernel-v2.log" 2>&1
    rc=$?
    cat "$out/kernel-v2.log"
    counted_run kernel-c "$out/kernel-v2.log" $rc
fi

echo
echo "== memguard-ffi: $( [ $status -eq 0 ] && echo all steps passed || echo FAILED )"
exit $status
