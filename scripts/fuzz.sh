#!/usr/bin/env bash
# Builds, and optionally runs, the cargo-fuzz targets in fuzz/ (see fuzz/README.md).
#
#   scripts/fuzz.sh [--build-only] [--until-quiet] [SECONDS] [TARGET...]
#
# --build-only  build every target and stop (what CI would run).
# --until-quiet run each target in rounds of SECONDS, each round starting from the whole corpus,
#               until a round ends with the same edge coverage (`cov`) it started with, i.e. a
#               full round found no new edge (at most FUZZ_MAX_ROUNDS, default 12). Prints one summary line per
#               round and per target; this is how "run until it finds nothing new" is checked.
# SECONDS       run time per target, or per round (default 60); targets run one after another,
#               one job each.
# TARGET...     only these targets (default: all of `cargo fuzz list`).
# FUZZ_TIMEOUT  seconds one input may take before it counts as a hang (default 10). Raise it when
#               the fuzzer may be paused (SIGSTOP), since libFuzzer measures wall-clock time.
# FUZZ_WHERE=1  with --until-quiet: after each round, also list the functions (and source lines)
#               its new edges are in (libFuzzer -print_pcs, symbolized by llvm-symbolizer), to
#               tell edges in davit's code from ones in quick-xml's or the standard library's.
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
until_quiet=0
max_rounds="${FUZZ_MAX_ROUNDS:-12}"
seconds=60
targets=()
for arg in "$@"; do
    case "$arg" in
        --build-only) build_only=1 ;;
        --until-quiet) until_quiet=1 ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
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

# The libFuzzer dictionaries of a target (dicts/): the tokens its grammar branches on, so
# mutations reach deep branches without guessing multi-byte keywords byte by byte. libFuzzer
# takes one -dict, so run_once joins them.
dicts_for() {
    case "$1" in
        batch_json) echo dicts/json.dict ;;
        conditional) echo dicts/conditional.dict dicts/dates.dict ;;
        fragment_scan) echo dicts/http1.dict ;;
        multistatus_reader) echo dicts/xml.dict dicts/dates.dict ;;
        xml_document|element_roundtrip|propfind|propertyupdate|lockinfo|batch_xml|report|bind|mkcol|search)
            echo dicts/xml.dict ;;
    esac
}

# One libFuzzer run of $1 for $seconds; its log goes to $2. Fails if the target failed.
run_once() {
    local t="$1" log="$2" seeds=() extra=() dicts
    mkdir -p "corpus/$t"
    # seeds/<target>/ holds the hand-written inputs; they are read but never modified.
    [ -d "seeds/$t" ] && seeds=("seeds/$t")
    read -ra dicts <<<"$(dicts_for "$t")"
    if [ ${#dicts[@]} -gt 0 ]; then
        cat "${dicts[@]}" >"$dict"
        extra=("-dict=$dict")
    fi
    [ "${FUZZ_WHERE:-0}" = 1 ] && extra+=(-print_pcs=1)
    cargo fuzz run "$t" "corpus/$t" "${seeds[@]}" -- "${extra[@]}" \
        -max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb=2048 -print_final_stats=1 \
        2>&1 | tee "$log" >&2
}

# "cov: N" of the first status line after loading the corpus (INITED), and of the last one.
cov_at_start() { grep -m1 -E '^#[0-9]+[[:space:]]+INITED' "$1" | sed -nE 's/.* cov: ([0-9]+).*/\1/p'; }
cov_at_end() { grep -E '^#[0-9]+[[:space:]]' "$1" | tail -n 1 | sed -nE 's/.* cov: ([0-9]+).*/\1/p'; }
execs_at_end() { sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$1" | tail -n 1; }
# "N function file:line" for each place the round's new edges are in (FUZZ_WHERE=1).
new_edges_where() {
    sed -nE 's/.*NEW_PC: 0x[0-9a-f]+ in (.*)/\1/p' "$1" |
        sed -E 's#/[^ ]*/\.cargo/registry/src/[^/]+/##; s#/rustc/[0-9a-f]+/##; s#'"$root"'/##' |
        sort | uniq -c | sort -rn
}

failed=()
summary=()
log="$(mktemp)"
dict="$(mktemp)"
trap 'rm -f "$log" "$dict"' EXIT
for t in "${targets[@]}"; do
    echo "=== $t: ${seconds}s" >&2
    if [ "$until_quiet" = 0 ]; then
        run_once "$t" "$log" || { failed+=("$t"); continue; }
    else
        round=0 quiet=0
        while [ "$round" -lt "$max_rounds" ]; do
            round=$((round + 1))
            run_once "$t" "$log" || { failed+=("$t"); break; }
            start="$(cov_at_start "$log")" end="$(cov_at_end "$log")"
            line="$t round $round: cov $start -> $end in $(execs_at_end "$log") executions"
            echo "fuzz.sh: $line" >&2
            summary+=("$line")
            if [ "${FUZZ_WHERE:-0}" = 1 ]; then
                while read -r where; do summary+=("  new edge in: $where"); done < <(new_edges_where "$log")
            fi
            if [ -n "$start" ] && [ "$start" = "$end" ]; then quiet=1; break; fi
        done
        [ "$quiet" = 1 ] || summary+=("$t: still finding edges after $round rounds")
    fi
    cargo fuzz cmin "$t" "corpus/$t" >/dev/null 2>&1 || echo "fuzz.sh: cmin failed for $t" >&2
done

[ ${#summary[@]} -gt 0 ] && printf 'fuzz.sh: %s\n' "${summary[@]}" >&2
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: failures in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
