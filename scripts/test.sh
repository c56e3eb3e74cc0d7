#!/usr/bin/env bash
# Runs every rvs test: unit, property, black-box daemon, namespace and differential
# (against Open vSwitch) tests, then a short fuzzing smoke run when cargo-fuzz and a
# nightly toolchain are present; the benchmarks are type-checked, not run. Namespace tests need root: run as root (CI does).
#
#   sudo scripts/test.sh            # everything
#   sudo scripts/test.sh ns_        # only test targets/names matching a filter
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "scripts/test.sh: namespace tests need root (CAP_NET_ADMIN); they will fail without it." >&2
fi
filter="${1:-}"
cargo build --workspace --bins --locked
[ -n "$filter" ] || cargo check --workspace --benches --locked --quiet
if [ -n "$filter" ]; then
    cargo test --workspace --locked --no-fail-fast -- "$filter"
else
    cargo test --workspace --locked --no-fail-fast
fi
if [ -z "$filter" ] && [ "${RVS_SKIP_FUZZ:-0}" != 1 ]; then
    scripts/fuzz-smoke.sh
fi
