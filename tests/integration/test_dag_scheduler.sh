#!/usr/bin/env bash
# tests/integration/test_dag_scheduler.sh - `sluice scheduler`: firing, catchup, restarts,
# SIGTERM, SLA and failure alerts. The clock is set with SLUICE_NOW.
#
#   1. catchup from `start`: the 7 due partitions fire, oldest first, one at a time
#      (max_active_runs 1). The scheduler is killed with -9 in the middle of a job and
#      started again: every partition job completed exactly once, the interrupted attempt
#      is recorded as lost. A third start fires nothing at all.
#   2. catchup: false fires only the latest due partition; nothing fires before `start`.
#   3. SLA: a partition still running at its deadline raises one sla_miss alert, and a job
#      whose retries are exhausted one job_failed alert, each delivered exactly once to a
#      local webhook receiver, also across a restart; status and the metrics file show
#      the miss. An alert the webhook refused stays pending and the next run delivers it
#      once.
#   4. SIGTERM: a running job gets kill_grace, then its process group is killed; the run
#      and the job are recorded as killed; exit 0.
#
# Needs $SLUICE, python3 (tests/tools/flaky_http.py), jq, sqlite3.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ -x "$SLUICE" ] || fail "no sluice binary at '$SLUICE'"
FLAKY=$SLUICE_SRC/tests/tools/flaky_http.py
tmpdir T
cd "$T" || fail "cannot enter $T"

assert_eq() {
    if [ "$2" != "$3" ]; then
        printf -- '--- want (%s):\n%s\n--- got:\n%s\n' "$1" "$2" "$3" >&2
        fail "$1 differs"
    fi
}

# successes DAG: how many partitions succeeded.
successes() {
    "$SLUICE" dag status "$1" --json 2>/dev/null | jq '[.partitions[] | select(.state == "success")] | length'
}
# succeeded DAG N: exactly N partitions succeeded (for wait_for: evaluated on each poll).
succeeded() { [ "$(successes "$1")" = "$2" ]; }
# run_state_is DAG STATE: the first partition's run is in STATE.
run_state_is() {
    [ "$("$SLUICE" dag status "$1" --json 2>/dev/null | jq -r '.partitions[0].state')" = "$2" ]
}
# stop_scheduler PID: SIGTERM, wait, expect exit 0.
stop_scheduler() {
    kill -TERM "$1"
    local rc=0
    wait "$1" || rc=$?
    [ "$rc" = 0 ] || { cat "$RUN_STDERR" >&2; fail "scheduler exited $rc after SIGTERM"; }
}

# --- 1. catchup, kill -9, restart --------------------------------------------------------
cat >nightly.yaml <<'EOF'
dag: nightly
schedule: "0 2 * * *"
start: 2026-11-20
max_active_runs: 1
state_dir: st1
jobs:
  a: {command: "echo {{partition}} a >> fired"}
  b:
    command: >-
      if [ {{partition}} = 2026-11-22 ] && [ ! -e resumed ]; then touch started; sleep 30; fi;
      echo {{partition}} b >> fired
    depends_on: a
EOF
export SLUICE_NOW=2026-11-27T02:00:30Z
start_sluice scheduler nightly.yaml
pid=$SLUICE_PID
wait_for 30 test -e started
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
touch resumed
assert_eq "fired before the kill" "2026-11-20 a
2026-11-20 b
2026-11-21 a
2026-11-21 b
2026-11-22 a" "$(cat fired)"
start_sluice scheduler nightly.yaml
pid=$SLUICE_PID
wait_for 30 succeeded nightly.yaml 7
stop_scheduler "$pid"
assert_file_contains "$RUN_STDERR" "resuming partition 2026-11-22 left unfinished"
want=$(for d in 20 21 22 23 24 25 26; do echo "2026-11-$d a"; echo "2026-11-$d b"; done)
assert_eq "every partition job exactly once" "$want" "$(cat fired)"
assert_eq "attempts of the interrupted job" "$(printf '1\tlost\n2\tsuccess')" \
    "$(sqlite_rows st1/dag.db "select attempt, state from attempts where partition = '2026-11-22' and job = 'b' order by attempt")"
assert_eq "runs fired by the scheduler" 7 \
    "$(sqlite_rows st1/dag.db "select count(*) from runs where trigger = 'scheduler' and state = 'success'")"
# max_active_runs 1: the runs did not overlap.
python3 - st1/dag.db <<'PY' || fail "runs overlapped with max_active_runs 1"
import sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute(
    "select partition, started_at, ended_at from runs order by started_at").fetchall()
for a, b in zip(rows, rows[1:]):
    assert a[2] <= b[1], f"{a} overlaps {b}"
PY
# Scheduled times are recorded: 2026-11-26 was due at 2026-11-27T02:00:00Z.
assert_eq "scheduled_at" 1795744800 \
    "$(sqlite_rows st1/dag.db "select scheduled_at from runs where partition = '2026-11-26'")"
# A third start, a day later by its clock... but with the same clock nothing is due.
start_sluice scheduler nightly.yaml
pid=$SLUICE_PID
sleep 1.5
stop_scheduler "$pid"
assert_eq "nothing fired again" "$want" "$(cat fired)"
# The next day's firing time arrives: exactly one new partition.
SLUICE_NOW=2026-11-28T02:00:01Z start_sluice scheduler nightly.yaml
pid=$SLUICE_PID
wait_for 30 succeeded nightly.yaml 8
sleep 0.5
stop_scheduler "$pid"
assert_eq "the next day" "$want
2026-11-27 a
2026-11-27 b" "$(cat fired)"

# --- 2. catchup: false -------------------------------------------------------------------
cat >latest.yaml <<'EOF'
dag: latest
schedule: "30 * * * *"
partition: hourly
start: 2026-11-26T00
catchup: false
state_dir: st2
jobs:
  a: {command: "echo {{partition}} >> fired2"}
EOF
SLUICE_NOW=2026-11-27T05:45:00Z start_sluice scheduler latest.yaml
pid=$SLUICE_PID
wait_for 30 succeeded latest.yaml 1
sleep 0.5
stop_scheduler "$pid"
# At 05:45 the last firing was 05:30, when the hour 04:00-05:00 had ended.
assert_eq "only the latest" "2026-11-27T04" "$(cat fired2)"
# Nothing before `start`: with start in the future, nothing is due.
sed -e 's/^start: .*/start: 2026-11-28T00/' -e 's/^state_dir: st2/state_dir: st2b/' latest.yaml >future.yaml
SLUICE_NOW=2026-11-27T05:45:00Z start_sluice scheduler future.yaml
pid=$SLUICE_PID
sleep 1.5
stop_scheduler "$pid"
assert_eq "nothing before start" "2026-11-27T04" "$(cat fired2)"

# --- 3. SLA and failure alerts to a webhook ----------------------------------------------
rm -f hook.log.port
python3 "$FLAKY" --log hook.log --port-file hook.log.port 2>hook.stderr &
_SL_BG_PIDS+=($!)
disown $!
wait_for 10 test -s hook.log.port
PORT=$(cat hook.log.port)
cat >sla.yaml <<EOF
dag: sla
schedule: "0 2 * * *"
catchup: false
sla: 1s
state_dir: st3
alerts: {webhook: "http://127.0.0.1:$PORT/alerts", timeout: 2s}
jobs:
  slow: {command: "sleep 2.5"}
  broken: {command: "exit 4", retries: 1, retry_backoff: 100ms}
EOF
export SLUICE_NOW=2026-11-27T02:00:00Z
start_sluice scheduler sla.yaml
pid=$SLUICE_PID
wait_for 30 run_state_is sla.yaml failed
stop_scheduler "$pid"
# Restarted: the miss and the failure are recorded; nothing is sent again.
start_sluice scheduler sla.yaml --metrics-file metrics.prom
pid=$SLUICE_PID
sleep 2
stop_scheduler "$pid"
# The metrics the scheduler exports for a textfile collector.
for line in 'sluice_dag_sla_misses_total{dag="sla"} 1' 'sluice_dag_job_failures_total{dag="sla"} 1' \
    'sluice_dag_alerts_pending{dag="sla"} 0' 'sluice_dag_runs{dag="sla",state="failed"} 1' \
    'sluice_dag_jobs_running{dag="sla"} 0'; do
    assert_file_contains metrics.prom "$line"
done
python3 - hook.log <<'PY' || fail "alerts not delivered exactly once"
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
bodies = [json.loads(r["body"]) for r in reqs if r["method"] == "POST"]
kinds = sorted((b["kind"], b["partition"], b["job"]) for b in bodies)
want = [("job_failed", "2026-11-26", "broken"), ("sla_miss", "2026-11-26", None)]
if kinds != want:
    sys.exit(f"received {kinds}, want {want}")
for r, b in zip(reqs, bodies):
    assert r["idempotency_key"] == b["id"], r
    assert b["dag"] == "sla" and b["source"] == "sluice", b
sla = [b for b in bodies if b["kind"] == "sla_miss"][0]
assert sla["id"] == "sla_miss/sla/2026-11-26", sla
PY
run_sluice dag status sla.yaml --json
assert_eq "status shows the miss" "1 true 0" \
    "$(jq -r '"\(.sla_misses) \(.partitions[0].sla_missed) \(.alerts_pending)"' "$RUN_STDOUT")"
run_sluice dag status sla.yaml
assert_file_contains "$RUN_STDOUT" "SLA MISSED"
assert_file_contains "$RUN_STDOUT" "1 SLA miss"

# A webhook that is down: the alert stays pending (status says so) and is delivered, once,
# by the next process that opens the state.
# receiver_mode MODE: switch the receiver (tests/tools/flaky_http.py) to MODE.
receiver_mode() {
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(urllib.request.Request(
        sys.argv[1], data=("{\"mode\":\"%s\"}" % sys.argv[2]).encode(), method="POST"))' \
        "http://127.0.0.1:$PORT/_control" "$1" || fail "cannot switch the receiver to $1"
}
receiver_mode fail_500
cat >down.yaml <<EOF
dag: down
state_dir: st5
alerts: {webhook: "http://127.0.0.1:$PORT/alerts", timeout: 2s}
jobs:
  broken: {command: "exit 9"}
EOF
run_sluice dag run down.yaml --partition 2026-11-26
assert_rc 1
assert_file_contains "$RUN_STDERR" "alert job_failed/down/2026-11-26/broken/1 not delivered"
run_sluice dag status down.yaml --json
assert_eq "pending while the webhook is down" 1 "$(jq .alerts_pending "$RUN_STDOUT")"
receiver_mode ok
sed -i 's/exit 9/true/' down.yaml
run_sluice dag run down.yaml --partition 2026-11-27
assert_rc 0
run_sluice dag status down.yaml --json
assert_eq "delivered by the next run" 0 "$(jq .alerts_pending "$RUN_STDOUT")"
python3 - hook.log <<'PY' || fail "the pending alert was not delivered exactly once"
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
mine = [r for r in reqs if r["idempotency_key"] == "job_failed/down/2026-11-26/broken/1"]
ok = [r for r in mine if r["status"] == 200]
failed = [r for r in mine if r["status"] == 500]
assert len(ok) == 1, f"{len(ok)} successful deliveries"
assert len(failed) >= 1, "the failing attempts were not made"
PY

# --- 4. SIGTERM: grace, then the process group is killed ---------------------------------
cat >term.yaml <<'EOF'
dag: term
schedule: "0 2 * * *"
catchup: false
kill_grace: 500ms
state_dir: st4
jobs:
  long: {command: "sleep 60 & echo $! > long.pid; wait"}
  next: {command: "true", depends_on: long}
EOF
start_sluice scheduler term.yaml
pid=$SLUICE_PID
wait_for 30 test -s long.pid
t0=$SECONDS
stop_scheduler "$pid"
[ $((SECONDS - t0)) -le 5 ] || fail "the scheduler took $((SECONDS - t0)) s to stop"
gone() { ! kill -0 "$1" 2>/dev/null; }
wait_for 5 gone "$(cat long.pid)"
run_sluice dag status term.yaml --json
assert_eq "recorded honestly" "killed killed none" \
    "$(jq -r '.partitions[0] | "\(.state) \(.jobs.long.state) \(.jobs.next.state)"' "$RUN_STDOUT")"
assert_eq "the attempt" "$(printf 'killed\t15')" \
    "$(sqlite_rows st4/dag.db "select state, signal from attempts where job = 'long'")"
note "ok"
