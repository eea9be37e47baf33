#!/usr/bin/env bash
# tests/integration/test_dag_run.sh - `sluice dag` on command jobs, through the real binary.
#
#   1. validate: every problem at once with file:line:col, exit 2; a valid DAG exits 0
#   2. graph: exact text and Graphviz output
#   3. dependency order: every job starts after each of its dependencies ended
#   4. concurrency: with concurrency 3, at most and exactly 3 jobs overlap, within one
#      partition and across the partitions of a backfill
#   5. trigger rules: all_success / all_done / one_failed give the exact states, exit 1
#   6. retries: a job failing twice then succeeding ends in success after 3 attempts, with
#      the back-off between them; a job always failing ends failed after 1 + retries
#   7. timeouts: the timed-out job's whole process group dies (its grandchild too), and a
#      job ignoring SIGTERM is killed with SIGKILL after kill_grace
#   8. environment and templates: SLUICE_* variables, DAG and job env, {{...}} in commands
#   9. run --partition again re-runs a finished partition; usage errors exit 2
#
# Needs $SLUICE, sqlite3, python3, jq.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ -x "$SLUICE" ] || fail "no sluice binary at '$SLUICE'"
tmpdir T
cd "$T" || fail "cannot enter $T"

assert_eq() {
    if [ "$2" != "$3" ]; then
        printf -- '--- want (%s):\n%s\n--- got:\n%s\n' "$1" "$2" "$3" >&2
        fail "$1 differs"
    fi
}

# --- 1. validate -------------------------------------------------------------------------
cat >bad.yaml <<'EOF'
dag: bad
concurency: 2
jobs:
  a: {command: "echo {{dss}}"}
  b: {command: x, depends_on: [a, c]}
  c: {command: x, depends_on: b}
EOF
run_sluice dag validate bad.yaml
assert_rc 2
assert_file_contains "$RUN_STDERR" 'bad.yaml:2:1: unknown key "concurency"; did you mean "concurrency"?'
assert_file_contains "$RUN_STDERR" 'bad.yaml:4:22: jobs.a.command: unknown template {{dss}}'
# The cycle is only looked for once the rest is right.
sed -i -e '/concurency/d' -e 's/{{dss}}/{{ds}}/' bad.yaml
run_sluice dag validate bad.yaml
assert_rc 2
assert_file_contains "$RUN_STDERR" 'jobs: dependency cycle c -> b -> c; a DAG cannot have one'
run_sluice dag run bad.yaml --partition 2026-11-26
assert_rc 2

# --- 2. graph ----------------------------------------------------------------------------
cat >order.yaml <<'EOF'
dag: order
state_dir: st_order
concurrency: 4
jobs:
  d: {command: "sh ../job.sh d", depends_on: [b, c]}
  b: {command: "sh ../job.sh b", depends_on: a}
  c: {command: "sh ../job.sh c", depends_on: a, trigger_rule: all_done}
  a: {command: "sh ../job.sh a"}
EOF
mkdir -p sub && mv order.yaml sub/ && cd sub
# Each job logs its start and end with a timestamp (ns) to one file.
cat >../job.sh <<'EOF'
echo "$1 start $(date +%s%N)" >>"${EVENTS:-events}"
sleep "${SLEEP:-0.2}"
echo "$1 end $(date +%s%N)" >>"${EVENTS:-events}"
EOF
run_sluice dag validate order.yaml
assert_rc 0
run_sluice dag graph order.yaml
assert_rc 0
assert_eq "graph" "dag order (daily), 4 jobs in run order:
  a
  b <- a
  c <- a [all_done]
  d <- b, c" "$(cat "$RUN_STDOUT")"
run_sluice dag graph order.yaml --dot
assert_rc 0
assert_eq "dot" 'digraph "order" {
  rankdir=LR;
  node [shape=box];
  "a" [label="a\ncommand"];
  "b" [label="b\ncommand"];
  "c" [label="c\ncommand", style=dashed];
  "d" [label="d\ncommand"];
  "a" -> "b";
  "a" -> "c" [label="all_done"];
  "b" -> "d";
  "c" -> "d";
}' "$(cat "$RUN_STDOUT")"

# --- 3. dependency order -----------------------------------------------------------------
# Run from another directory: jobs run in the DAG file's directory (sub/).
cd "$T"
run_sluice dag run sub/order.yaml --partition 2026-11-26
assert_rc 0
[ -f sub/events ] || fail "jobs did not run in the DAG file's directory"
python3 - sub/events <<'PY' || fail "dependency order violated"
import sys
ev = {}
for line in open(sys.argv[1]):
    job, what, t = line.split()
    ev.setdefault(job, {})[what] = int(t)
assert sorted(ev) == ["a", "b", "c", "d"], ev
for job, deps in {"b": "a", "c": "a", "d": "bc"}.items():
    for dep in deps:
        if not ev[dep]["end"] <= ev[job]["start"]:
            sys.exit(f"{job} started before {dep} ended")
# b and c ran side by side (concurrency 4): their intervals overlap.
if not (ev["b"]["start"] < ev["c"]["end"] and ev["c"]["start"] < ev["b"]["end"]):
    sys.exit("b and c did not run concurrently")
PY

# --- 4. concurrency ----------------------------------------------------------------------
max_overlap() {
    python3 - "$1" <<'PY'
import sys
pts = []
for line in open(sys.argv[1]):
    job, what, t = line.split()
    pts.append((int(t), 1 if what == "start" else -1))
# Ends sort before starts at the same instant: touching intervals do not overlap.
pts.sort(key=lambda p: (p[0], p[1]))
cur = best = 0
for _, d in pts:
    cur += d
    best = max(best, cur)
print(best)
PY
}
{
    echo "dag: wide"
    echo "state_dir: st_wide"
    echo "concurrency: 3"
    echo "jobs:"
    for i in 1 2 3 4 5 6 7 8; do echo "  j$i: {command: \"sh job.sh {{partition}}-j$i\"}"; done
} >wide.yaml
run_sluice dag run wide.yaml --partition 2026-11-26
assert_rc 0
[ "$(wc -l <events)" = 16 ] || fail "expected 8 jobs x 2 events, got $(wc -l <events)"
assert_eq "max overlap in one partition" 3 "$(max_overlap events)"
rm -f events
# Across partitions: 4 partitions x 8 jobs, still 3 at a time.
run_sluice dag backfill wide.yaml --from 2026-11-01 --to 2026-11-04
assert_rc 0
[ "$(wc -l <events)" = 64 ] || fail "expected 32 jobs x 2 events, got $(wc -l <events)"
assert_eq "max overlap across partitions" 3 "$(max_overlap events)"
# Plain progress lines (stderr is not a terminal), one per partition, in order.
assert_eq "progress lines" "2026-11-01 success (1/4)
2026-11-02 success (2/4)
2026-11-03 success (3/4)
2026-11-04 success (4/4)" "$(grep -E '^2026-11-0[0-9] ' "$RUN_STDERR")"

# --- 5. trigger rules --------------------------------------------------------------------
cat >rules.yaml <<'EOF'
dag: rules
state_dir: st_rules
jobs:
  ok: {command: "true"}
  bad: {command: "echo failing; exit 3"}
  after_bad: {command: "true", depends_on: bad}
  chain: {command: "true", depends_on: after_bad}
  cleanup: {command: "true", depends_on: [bad, ok], trigger_rule: all_done}
  alert: {command: "true", depends_on: bad, trigger_rule: one_failed}
  not_needed: {command: "true", depends_on: ok, trigger_rule: one_failed}
  upstream_alert: {command: "true", depends_on: chain, trigger_rule: one_failed}
  after_all: {command: "true", depends_on: [ok, cleanup]}
EOF
run_sluice dag run rules.yaml --partition 2026-11-26
assert_rc 1
run_sluice dag status rules.yaml --json
assert_rc 0
assert_eq "trigger rule states" '{"after_all":"success","after_bad":"skipped","alert":"success","bad":"failed","chain":"skipped","cleanup":"success","not_needed":"skipped","ok":"success","upstream_alert":"success"}' \
    "$(jq -c -S '.partitions[0].jobs | map_values(.state)' "$RUN_STDOUT")"
assert_eq "run state" failed "$(jq -r '.partitions[0].state' "$RUN_STDOUT")"
assert_eq "exit code" 3 "$(jq -r '.partitions[0].jobs.bad.exit_code' "$RUN_STDOUT")"
log=$(jq -r '.partitions[0].jobs.bad.log' "$RUN_STDOUT")
assert_file_contains "$log" "failing"
assert_file_contains "$log" "# echo failing; exit 3"
# Jobs that printed nothing have no log file (it is made on the first byte).
[ ! -e "$(jq -r '.partitions[0].jobs.ok.log' "$RUN_STDOUT")" ] || fail "empty log file created"
# Each final failure raises a job_failed alert (logged; no webhook configured).
run_sluice dag run rules.yaml --partition 2026-11-26 --log-level warn
assert_file_contains "$RUN_STDERR" 'job_failed dag=rules partition=2026-11-26 job=bad'

# --- 6. retries --------------------------------------------------------------------------
cat >retry.yaml <<'EOF'
dag: retry
state_dir: st_retry
jobs:
  flaky:
    command: "n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n >n; date +%s%N >>tries; echo try $n; [ $n -ge 3 ]"
    retries: 2
    retry_backoff: 300ms
  hopeless: {command: "exit 7", retries: 1, retry_backoff: 50ms}
EOF
run_sluice dag run retry.yaml --partition 2026-11-26
assert_rc 1
run_sluice dag status retry.yaml --json
assert_eq "flaky" "success 3" "$(jq -r '.partitions[0].jobs.flaky | "\(.state) \(.attempts)"' "$RUN_STDOUT")"
assert_eq "hopeless" "failed 2 7" "$(jq -r '.partitions[0].jobs.hopeless | "\(.state) \(.attempts) \(.exit_code)"' "$RUN_STDOUT")"
# Back-off: 300 ms (+-20%) before the 2nd attempt, twice that before the 3rd.
python3 - tries <<'PY' || fail "retry back-off not honoured"
import sys
t = [int(x) for x in open(sys.argv[1])]
assert len(t) == 3, t
d1, d2 = (t[1] - t[0]) / 1e6, (t[2] - t[1]) / 1e6
if not (230 <= d1 < 1500 and 470 <= d2 < 2500):
    sys.exit(f"gaps {d1:.0f} ms and {d2:.0f} ms")
PY
# Each attempt has its own log and row.
for a in 1 2 3; do assert_file_contains st_retry/logs/2026-11-26/flaky.$a.log "try $a"; done
assert_eq "attempt states" "1|failed|1
2|failed|1
3|success|0" "$(sqlite3 st_retry/dag.db "select attempt, state, exit_code from attempts where job='flaky' order by attempt")"

# --- 7. timeouts -------------------------------------------------------------------------
cat >timeout.yaml <<'EOF'
dag: timeout
state_dir: st_timeout
kill_grace: 300ms
jobs:
  slow:
    command: "sleep 60 & echo $! > grandchild.pid; wait"
    timeout: 500ms
  stubborn:
    command: "trap '' TERM; echo $$ > stubborn.pid; while :; do sleep 0.1; done"
    timeout: 500ms
  after: {command: "true", depends_on: slow}
EOF
start=$SECONDS
run_sluice dag run timeout.yaml --partition 2026-11-26
assert_rc 1
[ $((SECONDS - start)) -lt 10 ] || fail "timeouts were not enforced (took $((SECONDS - start)) s)"
# SIGKILL is delivered asynchronously: give the kernel a moment to finish them off.
gone() { ! kill -0 "$1" 2>/dev/null; }
gc=$(cat grandchild.pid)
wait_for 5 gone "$gc"
st=$(cat stubborn.pid)
wait_for 5 gone "$st"
# Each was stopped soon after its timeout (500 ms), the stubborn one after kill_grace.
python3 - st_timeout/dag.db <<'PY' || fail "timeouts enforced late"
import sqlite3, sys
rows = dict(sqlite3.connect(sys.argv[1]).execute("select job, duration_ms from attempts"))
if not (450 <= rows["slow"] < 1500 and 750 <= rows["stubborn"] < 2000):
    sys.exit(f"durations {rows}")
PY
assert_eq "timeout attempts" "slow|timeout|15
stubborn|timeout|9" "$(sqlite3 st_timeout/dag.db "select job, state, signal from attempts order by job")"
run_sluice dag status timeout.yaml --json
assert_eq "after a timeout" "failed failed skipped" \
    "$(jq -r '.partitions[0].jobs | "\(.slow.state) \(.stubborn.state) \(.after.state)"' "$RUN_STDOUT")"

# --- 8. environment and templates --------------------------------------------------------
cat >env.yaml <<'EOF'
dag: envs
state_dir: st_env
partition: hourly
env: {SHARED: "dag-{{ds_nodash}}", OVERRIDE: dag}
jobs:
  show:
    command: "echo {{ds}} {{ts}} {{prev_ds}} {{next_ds}} {{partition}} {{dag}} {{job}} {{attempt}} > env.out; env | grep -E '^(SLUICE_(ATTEMPT|DAG|DS|DS_NODASH|JOB|NEXT_DS|NEXT_PARTITION|PARTITION|PREV_DS|PREV_PARTITION|TS|TS_NODASH)|SHARED|OVERRIDE|OWN)=' | sort >> env.out"
    env: {OVERRIDE: "job-{{partition}}", OWN: "x"}
EOF
run_sluice dag run env.yaml --partition 2026-12-31T23
assert_rc 0
assert_eq "environment" "2026-12-31 2026-12-31T23:00:00+00:00 2026-12-31 2027-01-01 2026-12-31T23 envs show 1
OVERRIDE=job-2026-12-31T23
OWN=x
SHARED=dag-20261231
SLUICE_ATTEMPT=1
SLUICE_DAG=envs
SLUICE_DS=2026-12-31
SLUICE_DS_NODASH=20261231
SLUICE_JOB=show
SLUICE_NEXT_DS=2027-01-01
SLUICE_NEXT_PARTITION=2027-01-01T00
SLUICE_PARTITION=2026-12-31T23
SLUICE_PREV_DS=2026-12-31
SLUICE_PREV_PARTITION=2026-12-31T22
SLUICE_TS=2026-12-31T23:00:00+00:00
SLUICE_TS_NODASH=20261231T230000" "$(cat env.out)"

# A DAG in a time zone: ts carries its offset; the zone does not leak into the jobs'
# environment (sluice sets TZ only for its own conversions).
cat >zone.yaml <<'EOF'
dag: zone
state_dir: st_zone
timezone: Europe/Berlin
jobs:
  show: {command: "echo {{ts}} {{prev_ds}} TZ=$${TZ:-unset} > zone.out"}
EOF
unset TZ
run_sluice dag run zone.yaml --partition 2026-11-26
assert_rc 0
assert_eq "zone" "2026-11-26T00:00:00+01:00 2026-11-25 TZ=unset" "$(cat zone.out)"

# --- 9. re-running and usage errors ------------------------------------------------------
cat >again.yaml <<'EOF'
dag: again
state_dir: st_again
jobs:
  count: {command: "echo {{ds}} >> runs.txt"}
EOF
run_sluice dag run again.yaml --partition 2026-11-26
assert_rc 0
run_sluice dag run again.yaml --partition 2026-11-26
assert_rc 0
# backfill does not re-run a partition that succeeded; run does.
run_sluice dag backfill again.yaml --from 2026-11-25 --to 2026-11-26
assert_rc 0
assert_eq "runs" "2026-11-26
2026-11-26
2026-11-25" "$(cat runs.txt)"
assert_file_contains "$RUN_STDERR" "1 succeeded, 0 failed, 1 already done"
run_sluice dag run again.yaml
assert_rc 2
run_sluice dag run again.yaml --partition 2026-13-01
assert_rc 2
assert_file_contains "$RUN_STDERR" 'is not a partition of dag again'
run_sluice dag backfill again.yaml --from 2026-11-26 --to 2026-11-20
assert_rc 2
run_sluice dag frobnicate again.yaml
assert_rc 2
assert_file_contains "$RUN_STDERR" 'unknown command "frobnicate"'
run_sluice dag status again.yaml
assert_rc 0
assert_file_contains "$RUN_STDOUT" "2 partitions"
note "ok"
