#!/usr/bin/env bash
# bench/dag.sh - the orchestrator's own overhead: a backfill of trivial jobs.
#
#   bench/dag.sh [--partitions N] [--jobs J] [--concurrency C] [--runs R] [--state DIR]
#
# Backfills N partitions (default 1,000 days from 2024-01-01) of a DAG of J jobs (default
# 3: a, then b and c after a), every job `command: "true"`, with `concurrency` C (default
# 4) and max_active_runs 4*C. Everything measured is sluice's work: claiming partitions
# and recording every attempt in SQLite, fork/exec of `sh -c true` in a process group,
# reaping, dependency resolution. Prints partition runs/s and job runs/s (the best of R
# runs, default 1), then checks the state: N partitions in `success`, N*J attempts.
#
# The state directory (default: under /dev/shm when it exists, else bench/out/) starts
# empty for each run. Environment: SLUICE (default build/sluice).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SLUICE=${SLUICE:-$ROOT/build/sluice}
N=1000
JOBS=3
CONC=4
RUNS=1
STATE=""

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case $1 in
    --partitions) N=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --concurrency) CONC=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --state) STATE=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench/dag.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
[ -x "$SLUICE" ] || { echo "bench/dag.sh: no sluice at $SLUICE (make release?)" >&2; exit 2; }
command -v sqlite3 >/dev/null || { echo "bench/dag.sh: sqlite3 is needed" >&2; exit 2; }

if [ -z "$STATE" ]; then
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then
        STATE=$(mktemp -d /dev/shm/sluice-dag-bench.XXXXXX)
    else
        mkdir -p "$ROOT/bench/out"
        STATE=$(mktemp -d "$ROOT/bench/out/dag-bench.XXXXXX")
    fi
    trap 'rm -rf "$STATE"' EXIT
fi
mkdir -p "$STATE"

{
    echo "dag: bench"
    echo "state_dir: $STATE/dag"
    echo "concurrency: $CONC"
    echo "max_active_runs: $((CONC * 4))"
    echo "jobs:"
    echo "  a: {command: \"true\"}"
    for j in $(seq 2 "$JOBS"); do echo "  j$j: {command: \"true\", depends_on: a}"; done
} >"$STATE/bench.yaml"

FROM=2024-01-01
TO=$(date -u -d "$FROM + $((N - 1)) days" +%F)
best=""
for r in $(seq 1 "$RUNS"); do
    rm -rf "$STATE/dag"
    t0=$(date +%s.%N)
    "$SLUICE" dag backfill "$STATE/bench.yaml" --from "$FROM" --to "$TO" --quiet --log-level warn
    t1=$(date +%s.%N)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
    printf 'run %d: %d partitions x %d jobs in %.3f s\n' "$r" "$N" "$JOBS" "$secs"
    if [ -z "$best" ] || awk -v s="$secs" -v b="$best" 'BEGIN { exit !(s < b) }'; then
        best=$secs
    fi
done

ok=$(sqlite3 "$STATE/dag/dag.db" "select count(*) from runs where state = 'success'")
att=$(sqlite3 "$STATE/dag/dag.db" "select count(*) from attempts where state = 'success'")
[ "$ok" = "$N" ] || { echo "bench/dag.sh: $ok of $N partitions succeeded" >&2; exit 1; }
[ "$att" = $((N * JOBS)) ] || { echo "bench/dag.sh: $att of $((N * JOBS)) attempts" >&2; exit 1; }
awk -v n="$N" -v j="$JOBS" -v t="$best" -v r="$RUNS" -v c="$CONC" -v st="$STATE" 'BEGIN {
    printf "partition runs/s: %.0f\njob runs/s:       %.0f\n", n / t, n * j / t
    printf "(best of %d; concurrency %d; state in %s)\n", r, c, st
}'
