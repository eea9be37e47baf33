#!/usr/bin/env bash
# bench/run.sh - sluice next to jq and Miller on the same job, same file, same run.
#
#   bench/run.sh [--records N] [--seed S] [--runs R] [--only NAMES] [--keep]
#
# Generates N click events (default 1,000,000, about 270 MB) into bench/data/ once per
# (N, seed), warms the page cache, then runs each candidate once (or R times, keeping the
# fastest run: useful on a noisy shared machine) and prints records/s, MB/s (of input),
# peak RSS and wall seconds:
#
#   sluice   file -> filter + map -> file (bench/pipeline.yaml), from build/sluice
#   contract the same job after a validate stage checking every event against a data
#            contract (bench/pipeline_contract.yaml, tests/data/contracts/click_event.json);
#            every generated event is valid, so its output must equal sluice's
#   jq       the same job as one `jq -c` program
#   mlr      the same job in Miller
#   wc -l    a ceiling for reading the file
#   cat      a ceiling for reading and writing it
#
# Then it checks that sluice's output equals jq's as parsed records, in order (both
# normalized with `jq -S -c .`), prints MATCH or the first differences, and exits 1 on a
# mismatch or when any candidate fails. Outputs go to /dev/shm (tmpfs) when it exists, so
# that disk writeback noise does not drown the numbers, otherwise to bench/out/.
#
# The job (keep in step with bench/pipeline.yaml): keep event_type purchase or
# add_to_cart; set amount_cents = round(amount * 100), with a null or absent amount
# counting as 0; drop referrer.
#
# Needs jq, miller and GNU time: `scripts/deps.sh --bench` installs them (`make bench`
# runs it). Environment: SLUICE (binary, default build/sluice), GEN_CLICKS (generator,
# default build/gen_clicks).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RECORDS=1000000
SEED=42
ONLY="sluice,contract,jq,mlr,wc,cat"
KEEP=0
RUNS=1

JQ_PROGRAM='select(.event_type == "purchase" or .event_type == "add_to_cart")
  | .amount_cents = (((.amount // 0) * 100) | round)
  | del(.referrer)'
# shellcheck disable=SC2016 # Miller's $fields, not the shell's
MLR_VERBS=(filter '$event_type == "purchase" || $event_type == "add_to_cart"'
    'then' put '$amount_cents = round((is_null($amount) ? 0 : $amount) * 100)'
    'then' cut -x -f referrer)

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

die() {
    echo "bench: $*" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
    --records)
        [ $# -ge 2 ] || die "--records needs a number"
        RECORDS=$2
        shift 2
        ;;
    --seed)
        [ $# -ge 2 ] || die "--seed needs a number"
        SEED=$2
        shift 2
        ;;
    --runs)
        [ $# -ge 2 ] || die "--runs needs a number"
        RUNS=$2
        shift 2
        ;;
    --only)
        [ $# -ge 2 ] || die "--only needs a comma-separated list of: sluice,contract,jq,mlr,wc,cat"
        ONLY=$2
        shift 2
        ;;
    --keep)
        KEEP=1
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown option $1 (try --help)" ;;
    esac
done
case "$RECORDS" in '' | *[!0-9]*) die "--records $RECORDS: expected a positive integer" ;; esac
case "$SEED" in '' | *[!0-9]*) die "--seed $SEED: expected a non-negative integer" ;; esac
[ "$RECORDS" -gt 0 ] || die "--records must be at least 1"
case "$RUNS" in '' | *[!0-9]*) die "--runs $RUNS: expected a positive integer" ;; esac
[ "$RUNS" -gt 0 ] || die "--runs must be at least 1"
for name in ${ONLY//,/ }; do
    case "$name" in
    sluice | contract | jq | mlr | wc | cat) ;;
    *) die "--only: unknown candidate '$name'" ;;
    esac
done

wanted() {
    case ",$ONLY," in *",$1,"*) return 0 ;; *) return 1 ;; esac
}

SLUICE=${SLUICE:-$ROOT/build/sluice}
GEN_CLICKS=${GEN_CLICKS:-$ROOT/build/gen_clicks}
TIME=/usr/bin/time

missing=""
[ -x "$TIME" ] || missing="$missing time"
if wanted jq || wanted sluice; then command -v jq >/dev/null 2>&1 || missing="$missing jq"; fi
if wanted mlr; then command -v mlr >/dev/null 2>&1 || missing="$missing miller"; fi
[ -z "$missing" ] || die "missing packages:$missing; run scripts/deps.sh --bench"
if wanted sluice && [ ! -x "$SLUICE" ]; then
    die "no sluice binary at $SLUICE; build it with 'make release' (or set SLUICE=...)"
fi

# --- data ----------------------------------------------------------------------------
DATA_DIR=$ROOT/bench/data
INPUT=$DATA_DIR/clicks-$RECORDS-seed$SEED.ndjson
mkdir -p "$DATA_DIR"
if [ ! -s "$INPUT" ]; then
    [ -x "$GEN_CLICKS" ] || die "no generator at $GEN_CLICKS; build it with 'make release'"
    echo "bench: generating $RECORDS click events (seed $SEED) into ${INPUT#"$ROOT"/} ..." >&2
    "$GEN_CLICKS" --count "$RECORDS" --seed "$SEED" --out "$INPUT.tmp"
    mv "$INPUT.tmp" "$INPUT"
fi
BYTES=$(stat -c %s "$INPUT")

# --- output location -------------------------------------------------------------------
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    OUT=/dev/shm/sluice-bench-$$
    WHERE="output on tmpfs ($OUT)"
else
    OUT=$ROOT/bench/out
    WHERE="output on disk (${OUT#"$ROOT"/})"
fi
rm -rf "$OUT"
mkdir -p "$OUT"
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    if [ "$KEEP" -eq 0 ] && [ "$OUT" != "$ROOT/bench/out" ]; then rm -rf "$OUT"; fi
}
trap cleanup EXIT

# --- measuring ---------------------------------------------------------------------------
ROWS=()
FAILED=0
declare -A SECONDS_OF=()

# measure NAME OUTFILE CMD...: run CMD RUNS times with stdout to OUTFILE (stderr to
# $OUT/NAME.stderr), calling the function named by $PREPARE (if set) before each run,
# untimed. Wall time comes from `date +%s%N` around the run (GNU time's %e has only
# centisecond resolution, too coarse for the ceilings); peak RSS from GNU time's %M. The
# row shows the fastest run and the highest RSS of all runs.
measure() {
    local name=$1 outfile=$2
    shift 2
    local t0 t1 rc=0 run best_ns=0 rss_kb=0 kb
    for ((run = 1; run <= RUNS; run++)); do
        if [ -n "${PREPARE:-}" ]; then "$PREPARE"; fi
        t0=$(date +%s%N)
        "$TIME" -f '%e %M' -o "$OUT/$name.time" "$@" >"$outfile" 2>"$OUT/$name.stderr" || rc=$?
        t1=$(date +%s%N)
        [ "$rc" -eq 0 ] || break
        if [ "$best_ns" -eq 0 ] || [ $((t1 - t0)) -lt "$best_ns" ]; then best_ns=$((t1 - t0)); fi
        kb=$(awk 'END { print $2 }' "$OUT/$name.time")
        if [ "$kb" -gt "$rss_kb" ]; then rss_kb=$kb; fi
    done
    if [ "$rc" -ne 0 ]; then
        ROWS+=("$(printf '%-8s | %s' "$name" "FAILED (exit $rc; see $OUT/$name.stderr)")")
        echo "bench: $name failed (exit $rc):" >&2
        tail -n 5 "$OUT/$name.stderr" >&2 || true
        KEEP=1
        FAILED=1
        return 0
    fi
    SECONDS_OF[$name]=$(awk -v ns="$best_ns" 'BEGIN { printf "%.6f", ns / 1e9 }')
    ROWS+=("$(awk -v n="$name" -v ns="$best_ns" -v recs="$RECORDS" -v bytes="$BYTES" \
        -v rss="$rss_kb" 'BEGIN {
            s = ns / 1e9; if (s <= 0) s = 1e-9
            printf "%-8s | %12.0f | %9.1f | %12.1f | %8.3f", n, recs / s, bytes / 1e6 / s,
                rss / 1024, s
        }')")
}

echo "bench: warming the page cache" >&2
cat "$INPUT" >/dev/null

# Every sluice run starts from nothing: no checkpoint to resume from, no earlier output.
# The file sink keeps its manifest beside its output, so the output gets a directory of
# its own and the whole directory goes.
# shellcheck disable=SC2317 # called through $PREPARE
fresh_sluice() {
    rm -rf "$OUT/sluice-state" "$OUT/sluice"
}

if wanted sluice; then
    echo "bench: sluice" >&2
    PREPARE=fresh_sluice BENCH_INPUT=$INPUT BENCH_OUTPUT=$OUT/sluice/sluice.ndjson \
        BENCH_STATE=$OUT/sluice-state measure sluice "$OUT/sluice.stdout" \
        "$SLUICE" run "$ROOT/bench/pipeline.yaml" --once --report "$OUT/sluice-report.json"
fi
# shellcheck disable=SC2317 # called through $PREPARE
fresh_contract() {
    rm -rf "$OUT/contract-state" "$OUT/contract"
}

if wanted contract; then
    echo "bench: sluice with a data contract" >&2
    PREPARE=fresh_contract BENCH_INPUT=$INPUT BENCH_OUTPUT=$OUT/contract/contract.ndjson \
        BENCH_STATE=$OUT/contract-state BENCH_CONTRACT=$ROOT/tests/data/contracts/click_event.json \
        measure contract "$OUT/contract.stdout" \
        "$SLUICE" run "$ROOT/bench/pipeline_contract.yaml" --once
fi
if wanted jq; then
    echo "bench: jq" >&2
    measure jq "$OUT/jq.ndjson" jq -c "$JQ_PROGRAM" "$INPUT"
fi
if wanted mlr; then
    echo "bench: mlr" >&2
    measure mlr "$OUT/mlr.ndjson" mlr --ijson --ojsonl "${MLR_VERBS[@]}" "$INPUT"
fi
if wanted wc; then
    echo "bench: wc -l" >&2
    measure "wc -l" "$OUT/wc.txt" wc -l "$INPUT"
fi
if wanted cat; then
    echo "bench: cat" >&2
    measure "cat" "$OUT/cat.ndjson" cat "$INPUT"
    rm -f "$OUT/cat.ndjson" # a full copy of the input; no need to keep it in memory
fi

# --- report ----------------------------------------------------------------------------
echo
printf '%d click events, %.1f MB (%s), %s cores, %s; %s after a warm-up\n' \
    "$RECORDS" "$(awk -v b="$BYTES" 'BEGIN { print b / 1e6 }')" "${INPUT#"$ROOT"/}" \
    "$(nproc 2>/dev/null || echo '?')" "$WHERE" \
    "$([ "$RUNS" -eq 1 ] && echo "one run each" || echo "fastest of $RUNS runs each")"
printf '%-8s | %12s | %9s | %12s | %8s\n' name records/s MB/s "peak RSS MiB" seconds
printf -- '---------+--------------+-----------+--------------+---------\n'
for row in "${ROWS[@]}"; do
    printf '%s\n' "$row"
done
if [ -n "${SECONDS_OF[sluice]:-}" ]; then
    for other in jq mlr; do
        [ -n "${SECONDS_OF[$other]:-}" ] || continue
        awk -v a="${SECONDS_OF[sluice]}" -v b="${SECONDS_OF[$other]}" -v o="$other" \
            'BEGIN { if (a > 0) printf "sluice is %.1fx as fast as %s\n", b / a, o }'
    done
fi
echo

# --- verification ----------------------------------------------------------------------
if wanted sluice && wanted jq && [ -s "$OUT/jq.ndjson" ] && [ -f "$OUT/sluice.time" ]; then
    if [ ! -f "$OUT/sluice/sluice.ndjson" ]; then
        echo "MISMATCH: sluice wrote no output file at $OUT/sluice/sluice.ndjson"
        KEEP=1
        exit 1
    fi
    jq -S -c . "$OUT/sluice/sluice.ndjson" >"$OUT/sluice.norm"
    jq -S -c . "$OUT/jq.ndjson" >"$OUT/jq.norm"
    n_sluice=$(wc -l <"$OUT/sluice.norm")
    n_jq=$(wc -l <"$OUT/jq.norm")
    if cmp -s "$OUT/sluice.norm" "$OUT/jq.norm"; then
        echo "MATCH: sluice and jq produced the same $n_jq records in the same order"
    else
        echo "MISMATCH: sluice wrote $n_sluice records, jq $n_jq; first differences" \
            "(< sluice, > jq):"
        diff "$OUT/sluice.norm" "$OUT/jq.norm" | head -n 20 | cut -c 1-300 || true
        echo "(outputs kept in $OUT)"
        KEEP=1
        exit 1
    fi
    # The contract run validates every event first; all are valid, so the output is the same.
    if wanted contract && [ -f "$OUT/contract.time" ]; then
        jq -S -c . "$OUT/contract/contract.ndjson" >"$OUT/contract.norm" 2>/dev/null || true
        if cmp -s "$OUT/contract.norm" "$OUT/jq.norm"; then
            echo "MATCH: sluice with the contract produced the same $n_jq records"
        else
            echo "MISMATCH: sluice with the contract differs from jq (outputs kept in $OUT)"
            KEEP=1
            exit 1
        fi
    fi
    # Miller is only a reference point, so a difference there is a note, not a failure.
    if [ -s "$OUT/mlr.ndjson" ]; then
        jq -S -c . "$OUT/mlr.ndjson" >"$OUT/mlr.norm"
        if cmp -s "$OUT/mlr.norm" "$OUT/jq.norm"; then
            echo "(mlr's output is the same records too)"
        else
            echo "note: mlr's output differs from jq's ($(wc -l <"$OUT/mlr.norm") records)"
        fi
    fi
fi
exit "$FAILED"
