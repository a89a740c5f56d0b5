#!/bin/sh
# Build and install the memguard Python package into the current interpreter, then run its
# pytest suite: natively (everything but kernel_v2, including the cgroup v1 kernel tests), and
# in ONE boot of the cgroup v2 VM (`cargo xtask vm`) for the kernel_v2 tests.
#
#   memguard-py/run-tests.sh [--skip-vm] [extra pytest args...]
#
# Environment: PYTHON (default: the real interpreter behind `python3`), CI=true makes
# "no tests collected" (pytest exit code 5) an error. Exits non-zero if either run fails.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
skip_vm=0
if [ "${1:-}" = "--skip-vm" ]; then
    skip_vm=1
    shift
fi

# The real interpreter (pyenv's shim is slow inside the VM).
py=${PYTHON:-$(python3 -c 'import sys; print(sys.executable)')}
echo "== memguard-py: using $py"

if ! "$py" -c 'import maturin, pytest, prometheus_client, yaml' >/dev/null 2>&1; then
    # prometheus_client: the collector (memguard.prometheus) is tested with the real library;
    # PyYAML: the README's Kubernetes/Prometheus YAML is parsed and checked.
    echo "== memguard-py: installing maturin, pytest, prometheus_client and PyYAML"
    "$py" -m pip install --quiet 'maturin>=1.9,<2' pytest 'prometheus_client>=0.17' pyyaml || exit 1
fi

echo "== memguard-py: building and installing the package (pip install ./memguard-py)"
# Reuse the workspace's build cache; --no-build-isolation skips re-downloading maturin.
# The interpreter's bin directory first: the maturin backend runs the `maturin` binary from PATH.
(cd "$root" && PATH="$(dirname "$py"):$PATH" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}" \
    "$py" -m pip install --quiet --no-build-isolation --force-reinstall --no-deps ./memguard-py) || {
    echo "== memguard-py: build/install FAILED"
    exit 1
}

in_ci() { [ "${CI:-}" = "true" ] || [ "${CI:-}" = "1" ]; }

# pytest exit code 5 = no tests collected: an error only in CI.
judge() {
    rc=$1
    what=$2
    if [ "$rc" -eq 5 ]; then
        if in_ci; then
            echo "== memguard-py: $what: no tests collected (an error in CI)"
            return 1
        fi
        echo "== memguard-py: $what: no tests collected"
        return 0
    fi
    [ "$rc" -eq 0 ] || echo "== memguard-py: $what FAILED (pytest exit code $rc)"
    return "$rc"
}

status=0
echo "== memguard-py: native suite (-m 'not kernel_v2')"
(cd "$here" && "$py" -m pytest "$here/tests" -m "not kernel_v2" "$@")
judge $? "native suite" || status=1

if [ "$skip_vm" -eq 1 ]; then
    echo "== memguard-py: cgroup v2 VM suite NOT RUN (--skip-vm)"
    exit $status
fi

echo "== memguard-py: cgroup v2 VM suite (-m kernel_v2, one VM boot)"
# -p no:cacheprovider: the host tree is read-only inside the guest.
(cd "$root" && cargo xtask vm -- "$py" -m pytest "$here/tests" -m kernel_v2 -p no:cacheprovider \
    --rootdir "$here" "$@")
judge $? "cgroup v2 VM suite" || status=1

exit $status
