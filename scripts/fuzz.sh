#!/usr/bin/env bash
# Builds, and optionally runs, the cargo-fuzz targets in fuzz/ (see fuzz/README.md).
#
#   scripts/fuzz.sh [--build-only] [SECONDS] [TARGET...]
#
# --build-only  build every target and stop (what CI would run).
# SECONDS       run time per target (default 60); targets run one after another, one job each.
# TARGET...     only these targets (default: all of `cargo fuzz list`).
#
# Only a stable toolchain is needed. cargo-fuzz passes nightly-only flags (-Zsanitizer=address,
# -Cpasses=sancov-module, -Zbuild-std is off by default); RUSTC_BOOTSTRAP=1 makes stable rustc
# and cargo accept them. With a nightly toolchain installed, `cargo +nightly fuzz ...` works too.
#
# A run adds new inputs to fuzz/corpus/<target>/ and then minimises that directory with
# `cargo fuzz cmin`, so the corpus kept in the repository stays small. Crashes land in
# fuzz/artifacts/<target>/ (not committed); the script exits non-zero if any target failed.
set -euo pipefail

build_only=0
seconds=60
targets=()
for arg in "$@"; do
    case "$arg" in
        --build-only) build_only=1 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        ''|*[!0-9]*) targets+=("$arg") ;;
        *) seconds="$arg" ;;
    esac
done

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

# One build for all targets (debug assertions and overflow checks on, AddressSanitizer).
cargo fuzz build
[ "$build_only" = 1 ] && exit 0

failed=()
for t in "${targets[@]}"; do
    echo "=== $t: ${seconds}s" >&2
    mkdir -p "corpus/$t"
    # seeds/<target>/ holds the hand-written inputs; they are read but never modified.
    seeds=()
    [ -d "seeds/$t" ] && seeds=("seeds/$t")
    if cargo fuzz run "$t" "corpus/$t" "${seeds[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
        cargo fuzz cmin "$t" "corpus/$t" >/dev/null 2>&1 || echo "fuzz.sh: cmin failed for $t" >&2
    else
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: failures in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
