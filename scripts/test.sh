#!/usr/bin/env bash
# Runs every rvs test: unit, property, black-box daemon, namespace, differential
# (against Open vSwitch) and VM (QEMU and libvirt guests, tests/vm_*.rs) tests, then a
# short fuzzing smoke run when cargo-fuzz and a nightly toolchain are present; the
# benchmarks are type-checked, not run. Run it as root (CI does): namespace and VM tests
# need CAP_NET_ADMIN, and it first installs what the tests need and the machine lacks
# (scripts/prereqs.sh: Rust, cargo-fuzz, iproute2, ping, arping, iperf3, ethtool,
# tcpdump, Open vSwitch, QEMU, libvirt, busybox-static).
#
#   scripts/test.sh            # everything
#   scripts/test.sh ns_        # only test targets/names matching a filter
#   RVS_SKIP_FUZZ=1 scripts/test.sh   # without the fuzz smoke run (and cargo-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
filter="${1:-}"
[ -z "$filter" ] || export RVS_SKIP_FUZZ=1
if [ "$(id -u)" != 0 ]; then
    echo "scripts/test.sh: not root: nothing is installed, and the namespace tests will fail (they need CAP_NET_ADMIN)." >&2
    . scripts/prereqs.sh test || true
else
    . scripts/prereqs.sh test
fi
cargo build --workspace --bins --locked
[ -n "$filter" ] || cargo check --workspace --benches --locked --quiet
if [ -n "$filter" ]; then
    cargo test --workspace --locked --no-fail-fast -- "$filter"
else
    cargo test --workspace --locked --no-fail-fast
fi
if [ "${RVS_SKIP_FUZZ:-0}" != 1 ]; then
    scripts/fuzz-smoke.sh
fi
