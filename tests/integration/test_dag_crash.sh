#!/usr/bin/env bash
# tests/integration/test_dag_crash.sh - two backfills over one range, each killed with -9
# at random instants and restarted, until the range is done.
#
# What must hold, whatever the kills:
#   1. no partition job ever runs twice at the same time: each job holds an exclusive
#      flock(1) on a file of its own (partition, job) while it runs and records a
#      "DOUBLE" if it finds the lock taken; and in the state, the attempts of one job
#      never overlap in time;
#   2. in the end every partition succeeded, every job completed at least once, and
#      completions beyond one per job are bounded by the kills (a job killed with its
#      sluice is run again: at least once, idempotent jobs);
#   3. every attempt that was running when its sluice died is recorded as lost (none is
#      left `running`), and the dependency order held in every partition.
#
# CRASH_SEED (default: random, printed) makes a run reproducible; CRASH_KILLS (default 12).
# Needs $SLUICE, flock, sqlite3, python3, jq.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ -x "$SLUICE" ] || fail "no sluice binary at '$SLUICE'"
command -v flock >/dev/null || fail "flock (util-linux) is needed"
tmpdir T
cd "$T" || fail "cannot enter $T"
SEED=${CRASH_SEED:-$RANDOM}
KILLS=${CRASH_KILLS:-12}
note "seed $SEED, $KILLS kills"
RANDOM=$SEED

mkdir -p locks
cat >job.sh <<'EOF'
# job.sh PARTITION JOB: hold the job's lock while working; append one line when done.
exec 9>"locks/$1.$2"
if ! flock -n 9; then
    echo "DOUBLE $1 $2" >>doubles
    exit 75
fi
echo "$1 $2 start $(date +%s%N)" >>events
sleep 0.0$((RANDOM % 8 + 2))
echo "$1 $2 end $(date +%s%N)" >>events
echo "$1 $2" >>done
EOF
cat >crash.yaml <<'EOF'
dag: crash
state_dir: st
concurrency: 3
max_active_runs: 4
jobs:
  a: {command: "sh job.sh {{partition}} a"}
  b: {command: "sh job.sh {{partition}} b", depends_on: a}
  c: {command: "sh job.sh {{partition}} c", depends_on: a}
  d: {command: "sh job.sh {{partition}} d", depends_on: [b, c]}
EOF
FROM=2026-03-01
TO=2026-03-30

start_backfill() { # start_backfill SLOT
    "$SLUICE" dag backfill crash.yaml --from $FROM --to $TO --quiet >>"out.$1" 2>&1 &
    PIDS[$1]=$!
}
PIDS=()
start_backfill 0
start_backfill 1
for k in $(seq 1 "$KILLS"); do
    sleep "0.$((RANDOM % 4 + 1))"
    slot=$((RANDOM % 2))
    kill -9 "${PIDS[$slot]}" 2>/dev/null || true
    wait "${PIDS[$slot]}" 2>/dev/null || true
    start_backfill "$slot"
done
# Let both finish; they exit 0 (a partition the other holds is skipped, not an error).
for slot in 0 1; do
    rc=0
    wait "${PIDS[$slot]}" || rc=$?
    [ "$rc" = 0 ] || { tail -20 "out.$slot" >&2; fail "backfill $slot exited $rc"; }
done
# Partitions skipped because the other process held them are done by now; one more
# backfill (after both ended) finds nothing to do unless a kill left one unfinished.
run_sluice dag backfill crash.yaml --from $FROM --to $TO --quiet
assert_rc 0

[ ! -e doubles ] || { cat doubles >&2; fail "a partition job ran twice at the same time"; }
run_sluice dag status crash.yaml --json
[ "$(jq '[.partitions[] | select(.state == "success")] | length' "$RUN_STDOUT")" = 30 ] ||
    fail "not every partition succeeded: $(jq -c '[.partitions[] | .state] | group_by(.) | map({(.[0]): length}) | add' "$RUN_STDOUT")"
python3 - st/dag.db events done "$KILLS" <<'PY' || fail "crash invariants violated"
import sqlite3, sys
from collections import Counter, defaultdict
db, events, done, kills = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
con = sqlite3.connect(db)
left = con.execute("select count(*) from attempts where state = 'running'").fetchone()[0]
assert left == 0, f"{left} attempts left running"
# The attempts of one job never overlap in time (the state's view of exclusivity).
by_job = defaultdict(list)
for p, j, a, s, e, st in con.execute(
        "select partition, job, attempt, started_at, ended_at, state from attempts"):
    by_job[(p, j)].append((s, e, a, st))
for k, atts in by_job.items():
    atts.sort()
    for x, y in zip(atts, atts[1:]):
        assert x[1] is not None and x[1] <= y[0], f"{k}: attempts {x} and {y} overlap"
# Every job completed at least once; extra completions are bounded by the kills (each kill
# can cut at most `concurrency` = 3 jobs between their end and its record).
c = Counter(line.strip() for line in open(done))
want = {f"2026-03-{d:02d} {j}" for d in range(1, 31) for j in "abcd"}
assert set(c) == want, f"missing {sorted(want - set(c))[:5]} extra {sorted(set(c) - want)[:5]}"
extra = sum(n - 1 for n in c.values())
assert extra <= 3 * kills, f"{extra} repeated completions for {kills} kills"
# Dependency order in every partition, from the jobs' own timestamps (last run of each).
ev = defaultdict(dict)
for line in open(events):
    p, j, what, t = line.split()
    ev[(p, j)][what] = int(t)  # the last run wins
for d in range(1, 31):
    p = f"2026-03-{d:02d}"
    for job, deps in {"b": "a", "c": "a", "d": "bc"}.items():
        for dep in deps:
            assert ev[(p, dep)]["end"] <= ev[(p, job)]["start"], f"{p}: {job} before {dep}"
lost = con.execute("select count(*) from attempts where state = 'lost'").fetchone()[0]
print(f"{sum(c.values())} completions ({extra} repeated), {lost} attempts lost to kills")
PY
note "ok"
