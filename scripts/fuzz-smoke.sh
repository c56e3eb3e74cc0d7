#!/usr/bin/env bash
# Builds every fuzz target (cargo-fuzz, nightly) and runs each briefly over its seed
# corpus plus fresh inputs. Longer runs: `cd fuzz && cargo +nightly fuzz run TARGET`.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${RVS_FUZZ_SECONDS:-20}"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: cargo-fuzz or the nightly toolchain is missing (cargo install cargo-fuzz; rustup toolchain list)" >&2
    exit 1
fi
for t in $(cargo +nightly fuzz list); do
    mkdir -p "corpus/$t"
    work="$(mktemp -d)"
    echo "fuzz-smoke: $t for ${secs}s"
    cargo +nightly fuzz run "$t" "$work" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 >"$work.log" 2>&1 || {
        tail -40 "$work.log"; rm -rf "$work" "$work.log"; exit 1; }
    grep -E '^Done|stat::number_of_executed_units' "$work.log" | tail -1 || true
    rm -rf "$work" "$work.log"
done
# appctl_args keeps its daemon's store in a directory per process.
rm -rf "${TMPDIR:-/tmp}"/rvs-fuzz-appctl-*
