#!/usr/bin/env bash
# tests/integration/test_dag_backfill.sh - backfills: idempotent outputs, resume after
# kill -9, and two backfills over the same range at once.
#
#   1. A pipeline job (file source -> sqlite sink partitioned by {{ds}}) backfilled over 5
#      days gives the exact expected rows. Backfilling again from a fresh DAG state, and
#      re-running one partition, gives the very same warehouse contents (each run replaces
#      its partition; it does not add to it).
#   2. A backfill killed with -9 while a job runs, then resumed: every partition job
#      completed exactly once (each appends one line when it completes), the interrupted
#      attempt is recorded as lost, and the jobs the dead process had finished are not
#      run again.
#   3. Two backfills started at once over the same range: each partition job runs exactly
#      once in all, and every partition ends in success.
#
# Needs $SLUICE, sqlite3, jq, python3.
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

# --- 1. idempotent pipeline jobs ---------------------------------------------------------
mkdir -p input
for day in 01 02 03 04 05; do
    for c in 1 2 3; do
        echo "{\"order\":\"o$day$c\",\"customer\":\"c$c\",\"amount\":$((10#$day * c))}"
    done >input/2026-11-$day.ndjson
done
cat >load.yaml <<'EOF'
pipeline: load_{{ds_nodash}}
state_dir: state/{{ds}}
sources:
  orders: {type: file, path: "input/{{ds}}.ndjson", format: ndjson}
sinks:
  warehouse:
    type: sqlite
    inputs: [orders]
    path: out/warehouse.db
    table: orders
    key: order
    partition: {column: day, value: "{{ds}}"}
EOF
cat >dag.yaml <<'EOF'
dag: load
state_dir: dagstate
concurrency: 2
jobs:
  # No retries: two partitions publishing at once into a table that does not exist yet
  # must not fail (the sqlite sink reads the schema again inside its write transaction).
  load: {pipeline: load.yaml}
EOF
dump() { sqlite_rows out/warehouse.db "select day, \"order\", customer, amount from orders order by day, \"order\""; }
expected=$(for day in 01 02 03 04 05; do for c in 1 2 3; do
    printf '2026-11-%s\to%s%s\tc%s\t%s\n' "$day" "$day" "$c" "$c" $((10#$day * c)); done; done)
run_sluice dag validate dag.yaml
assert_rc 0
run_sluice dag backfill dag.yaml --from 2026-11-01 --to 2026-11-05
assert_rc 0
assert_eq "warehouse after the first backfill" "$expected" "$(dump)"
# The expanded copies beside load.yaml are gone; each attempt kept one in its log dir.
[ -z "$(find . -maxdepth 1 -name '.load.*')" ] || fail "expanded pipeline copies left behind"
[ -f dagstate/logs/2026-11-03/load.1.log.yaml ] || fail "no copy of the expanded pipeline"
grep -q 'path: "input/2026-11-03.ndjson"' dagstate/logs/2026-11-03/load.1.log.yaml ||
    fail "the pipeline was not expanded for its partition"
# A fresh DAG state: every partition runs again and replaces itself.
rm -rf dagstate
run_sluice dag backfill dag.yaml --from 2026-11-01 --to 2026-11-05
assert_rc 0
assert_file_contains "$RUN_STDERR" "5 succeeded, 0 failed"
assert_eq "warehouse after the second backfill" "$expected" "$(dump)"
# One partition again, after its input changed: only that day changes.
echo '{"order":"o039","customer":"c9","amount":99}' >>input/2026-11-03.ndjson
run_sluice dag run dag.yaml --partition 2026-11-03
assert_rc 0
assert_eq "warehouse after re-running 2026-11-03" \
    "$(printf '%s\n2026-11-03\to039\tc9\t99\n' "$expected" | LC_ALL=C sort)" "$(dump | LC_ALL=C sort)"
assert_eq "rows of 2026-11-03" 4 "$(sqlite_rows out/warehouse.db "select count(*) from orders where day = '2026-11-03'")"
assert_eq "rows in all" 16 "$(sqlite_rows out/warehouse.db "select count(*) from orders")"

# --- 2. kill -9 and resume ---------------------------------------------------------------
# Job b of 2026-01-03 waits (until the test has killed sluice) before it completes; every
# job appends "<partition> <job>" when it completes.
cat >resume.yaml <<'EOF'
dag: resume
state_dir: st_resume
concurrency: 1
jobs:
  a: {command: "echo {{partition}} a >> lines"}
  b:
    command: >-
      if [ {{partition}} = 2026-01-03 ] && [ ! -e resumed ]; then touch started; sleep 30; fi;
      echo {{partition}} b >> lines
    depends_on: a
  c: {command: "echo {{partition}} c >> lines", depends_on: b}
EOF
start_sluice dag backfill resume.yaml --from 2026-01-01 --to 2026-01-06
pid=$SLUICE_PID
wait_for 30 test -e started
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
touch resumed
assert_eq "lines at the kill" "2026-01-01 a
2026-01-01 b
2026-01-01 c
2026-01-02 a
2026-01-02 b
2026-01-02 c
2026-01-03 a" "$(cat lines)"
run_sluice dag status resume.yaml --json
assert_eq "the interrupted run" "killed lost" \
    "$(jq -r '.partitions[2] | "\(.state) \(.jobs.b.state)"' "$RUN_STDOUT")"
run_sluice dag backfill resume.yaml --from 2026-01-01 --to 2026-01-06
assert_rc 0
assert_file_contains "$RUN_STDERR" "4 succeeded, 0 failed, 2 already done"
assert_eq "each partition job completed exactly once" "$(for d in 1 2 3 4 5 6; do
    for j in a b c; do echo "2026-01-0$d $j"; done; done)" "$(sort lines)"
assert_eq "attempts of b in 2026-01-03" "$(printf '1\tlost\n2\tsuccess')" "$(sqlite_rows st_resume/dag.db "select attempt, state from attempts where partition = '2026-01-03' and job = 'b' order by attempt")"
assert_eq "a of 2026-01-03 ran once" 1 "$(sqlite_rows st_resume/dag.db "select count(*) from attempts where partition = '2026-01-03' and job = 'a'")"
run_sluice dag status resume.yaml --json
assert_eq "all succeeded" "success success success success success success" \
    "$(jq -r '[.partitions[].state] | join(" ")' "$RUN_STDOUT")"

# --- 3. two backfills at once ------------------------------------------------------------
cat >twice.yaml <<'EOF'
dag: twice
state_dir: st_twice
concurrency: 2
max_active_runs: 2
jobs:
  x: {command: "sleep 0.05; echo {{partition}} x $PPID >> lines2"}
  y: {command: "sleep 0.05; echo {{partition}} y $PPID >> lines2", depends_on: x}
EOF
"$SLUICE" dag backfill twice.yaml --from 2026-02-01 --to 2026-02-20 >one.out 2>one.err &
p1=$!
"$SLUICE" dag backfill twice.yaml --from 2026-02-01 --to 2026-02-20 >two.out 2>two.err &
p2=$!
rc1=0 rc2=0
wait $p1 || rc1=$?
wait $p2 || rc2=$?
[ $rc1 = 0 ] && [ $rc2 = 0 ] || { cat one.err two.err >&2; fail "backfills exited $rc1 and $rc2"; }
assert_eq "each partition job ran exactly once" "$(for d in $(seq -w 1 20); do
    for j in x y; do echo "2026-02-$d $j"; done; done)" "$(cut -d' ' -f1,2 lines2 | sort)"
# Both processes did part of the work (each skipped what the other held or had done).
n1=$(grep -c " $p1\$" lines2 || true)
n2=$(grep -c " $p2\$" lines2 || true)
note "backfill 1 ran $n1 jobs, backfill 2 ran $n2"
[ $((n1 + n2)) = 40 ] || fail "jobs by the two processes: $n1 + $n2 != 40"
run_sluice dag status twice.yaml --json
assert_eq "partitions" 20 "$(jq '[.partitions[] | select(.state == "success")] | length' "$RUN_STDOUT")"
note "ok"
