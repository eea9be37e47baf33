#!/usr/bin/env bash
# bench/exactly_once.sh - what exactly-once delivery costs, measured side by side.
#
#   bench/exactly_once.sh [--records N] [--seed S] [--runs R] [--out DIR] [--keep]
#
# Runs the same pipelines with `delivery: exactly_once` and `delivery: at_least_once`
# (default batch size) on N click events (default 1,000,000, about 270 MB):
#
#   sqlite   file -> sqlite upsert on the record id   (bench/exactly_once/file_to_sqlite.yaml)
#   file     file -> NDJSON files                     (bench/exactly_once/file_to_file.yaml)
#
# Each of the four runs starts from nothing (empty state directory and output). The four
# are interleaved R times (default 3; the order alternates between rounds so both modes see
# the same machine noise) and the fastest run of each is kept. It prints records/s, MB/s
# (of input) and seconds per run, then the exactly-once cost per sink: how much longer
# the exactly_once run took than the at_least_once one, in percent (target: at most 15%).
# Every run's output is counted (rows or lines must equal N) so a fast broken run cannot
# pass as a good number.
#
# Output goes to bench/out/ by default, on the same disk as the repository, because
# exactly-once's cost is mostly fsync and that is where users write; --out /dev/shm/x
# puts it on tmpfs (fsync is then nearly free, and so is most of the cost). Exits 1 when a
# run fails or miscounts, never because of the cost itself (the table says whether the
# target is met).
#
# Environment: SLUICE (binary, default build/sluice), GEN_CLICKS (generator, default
# build/gen_clicks); build both with `make release`; BENCH_COMMIT_INTERVAL (the file sink's
# commit_interval, default 250ms; 0 commits every batch). Needs python3 (to count sqlite
# rows). Measured (1M events, 2 cores, load 5-7): file sink on disk +93% with a commit
# per batch, +7% to +23% with commit_interval 250ms; on tmpfs +2%.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RECORDS=1000000
SEED=42
RUNS=3
OUT=$ROOT/bench/out/exactly_once
KEEP=0
TARGET_PCT=15

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

die() {
    echo "exactly_once: $*" >&2
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
    --out)
        [ $# -ge 2 ] || die "--out needs a directory"
        OUT=$2
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
case "$RUNS" in '' | *[!0-9]*) die "--runs $RUNS: expected a positive integer" ;; esac
[ "$RECORDS" -gt 0 ] || die "--records must be at least 1"
[ "$RUNS" -gt 0 ] || die "--runs must be at least 1"

SLUICE=${SLUICE:-$ROOT/build/sluice}
GEN_CLICKS=${GEN_CLICKS:-$ROOT/build/gen_clicks}
[ -x "$SLUICE" ] || die "no sluice binary at $SLUICE; build it with 'make release' (or set SLUICE)"
command -v python3 >/dev/null 2>&1 || die "python3 is needed to count the rows"

# --- data (shared with bench/run.sh: same name for the same N and seed) ----------------
DATA_DIR=$ROOT/bench/data
INPUT=$DATA_DIR/clicks-$RECORDS-seed$SEED.ndjson
mkdir -p "$DATA_DIR"
if [ ! -s "$INPUT" ]; then
    [ -x "$GEN_CLICKS" ] || die "no generator at $GEN_CLICKS; build it with 'make release'"
    echo "exactly_once: generating $RECORDS click events (seed $SEED)" \
        "into ${INPUT#"$ROOT"/} ..." >&2
    "$GEN_CLICKS" --count "$RECORDS" --seed "$SEED" --out "$INPUT.tmp"
    mv "$INPUT.tmp" "$INPUT"
fi
BYTES=$(stat -c %s "$INPUT")

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    if [ "$KEEP" -eq 0 ]; then rm -rf "$OUT"/sqlite-* "$OUT"/file-*; fi
}
trap cleanup EXIT

echo "exactly_once: warming the page cache" >&2
cat "$INPUT" >/dev/null

# count_output SINK DIR: rows in the sqlite table, or lines over all output files.
count_output() {
    if [ "$1" = sqlite ]; then
        python3 -c 'import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM clicks").fetchone()[0])' \
            "$2/out.db"
    else
        cat "$2"/out*.ndjson | wc -l
    fi
}

declare -A BEST_NS=()
FAILED=0

# run_one SINK DELIVERY: one run from nothing; keeps the fastest time per (sink, delivery).
run_one() {
    local sink=$1 delivery=$2 dir t0 t1 rc=0 n out
    dir=$OUT/$sink-$delivery
    rm -rf "$dir"
    mkdir -p "$dir"
    if [ "$sink" = sqlite ]; then out=$dir/out.db; else out=$dir/out.ndjson; fi
    sync
    t0=$(date +%s%N)
    BENCH_INPUT=$INPUT BENCH_OUTPUT=$out BENCH_STATE=$dir/state BENCH_DELIVERY=$delivery \
        "$SLUICE" run "$ROOT/bench/exactly_once/file_to_$sink.yaml" --once --quiet \
        2>"$dir.stderr" || rc=$?
    t1=$(date +%s%N)
    if [ "$rc" -ne 0 ]; then
        echo "exactly_once: $sink/$delivery failed (exit $rc):" >&2
        tail -n 5 "$dir.stderr" >&2 || true
        FAILED=1
        KEEP=1
        return 0
    fi
    n=$(count_output "$sink" "$dir")
    if [ "$n" -ne "$RECORDS" ]; then
        echo "exactly_once: $sink/$delivery wrote $n records, not $RECORDS" >&2
        FAILED=1
        KEEP=1
        return 0
    fi
    local key=$sink/$delivery ns=$((t1 - t0))
    if [ -z "${BEST_NS[$key]:-}" ] || [ "$ns" -lt "${BEST_NS[$key]}" ]; then
        BEST_NS[$key]=$ns
    fi
    printf 'exactly_once: round %d %-6s %-13s %8.3f s\n' "$round" "$sink" "$delivery" \
        "$(awk -v ns="$ns" 'BEGIN { print ns / 1e9 }')" >&2
}

for ((round = 1; round <= RUNS; round++)); do
    if [ $((round % 2)) -eq 1 ]; then
        order="exactly_once at_least_once"
    else
        order="at_least_once exactly_once"
    fi
    for sink in sqlite file; do
        for delivery in $order; do
            run_one "$sink" "$delivery"
        done
    done
done

# --- report ------------------------------------------------------------------------------
echo
printf '%d click events, %.1f MB (%s), %s cores, output in %s; fastest of %d run%s each\n' \
    "$RECORDS" "$(awk -v b="$BYTES" 'BEGIN { print b / 1e6 }')" "${INPUT#"$ROOT"/}" \
    "$(nproc 2>/dev/null || echo '?')" "$OUT" "$RUNS" "$([ "$RUNS" -eq 1 ] || echo s)"
printf '%-7s | %-13s | %12s | %8s | %8s\n' sink delivery records/s MB/s seconds
printf -- '--------+---------------+--------------+----------+---------\n'
for sink in sqlite file; do
    for delivery in exactly_once at_least_once; do
        ns=${BEST_NS[$sink/$delivery]:-}
        if [ -z "$ns" ]; then
            printf '%-7s | %-13s | %12s\n' "$sink" "$delivery" FAILED
            continue
        fi
        awk -v s="$sink" -v d="$delivery" -v ns="$ns" -v recs="$RECORDS" -v bytes="$BYTES" \
            'BEGIN { t = ns / 1e9; if (t <= 0) t = 1e-9
                     printf "%-7s | %-13s | %12.0f | %8.1f | %8.3f\n", s, d, recs / t,
                            bytes / 1e6 / t, t }'
    done
done
echo
for sink in sqlite file; do
    eo=${BEST_NS[$sink/exactly_once]:-}
    alo=${BEST_NS[$sink/at_least_once]:-}
    if [ -z "$eo" ] || [ -z "$alo" ]; then continue; fi
    awk -v s="$sink" -v eo="$eo" -v alo="$alo" -v target="$TARGET_PCT" \
        'BEGIN { pct = (eo - alo) * 100.0 / alo
                 printf "exactly-once cost, %-6s: %+6.1f%% time (%s the %d%% target)\n", s, pct,
                        pct <= target ? "within" : "OVER", target }'
done
exit "$FAILED"
