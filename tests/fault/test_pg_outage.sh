#!/usr/bin/env bash
# tests/fault/test_pg_outage.sh - the postgres sink rides through a real outage and
# isolates a poison record, losing and doubling nothing (issue #5, items 4-6).
#
#   a. 200,000 click events into a table keyed on event_id, with retry and a circuit
#      breaker (failure_threshold 3, open_for 2s). Once some batches are committed the
#      server is stopped (fast shutdown: open transactions are aborted), kept down for
#      10 s and started again. The run must finish by itself with exit 0; the table then
#      holds exactly the input's event_ids (count = count distinct = 200,000, the same id
#      set) and the checkpoint counts 200,000 records; the run's --report shows the sink
#      retried and its breaker opened at least once (and the log shows it open and close).
#   b. 100,000 events into a pre-created table with CHECK (amount >= 0) that exactly one
#      record violates: that record alone is in the dead-letter queue (class sink, rule
#      check_violation, the server's message, its raw bytes exactly), every other record
#      is in the table exactly once with its values.
#   c. another session holds an exclusive lock on the table for 3 s while a run with
#      statement_timeout 300ms writes to it: the timeout (SQLSTATE 57014) is retried and
#      the run ends with every record written.
#   d. a run started while PostgreSQL is down waits for it (the sink's start-up is retried
#      under its retry policy and breaker) and writes everything once it is back;
#      `sluice status` does not wait.
#
# Needs $SLUICE, $SLUICE_TOOLS (gen_clicks), PostgreSQL server binaries, psql, jq.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
# shellcheck source=tests/integration/pg.sh
. "$(dirname "${BASH_SOURCE[0]}")/../integration/pg.sh"

[ -x "$SLUICE" ] || fail "no sluice binary at '$SLUICE'"
command -v jq >/dev/null || fail "jq is needed; run scripts/deps.sh"

assert_eq() {
    if [ "$2" != "$3" ]; then
        printf -- '--- want (%s):\n%s\n--- got:\n%s\n' "$1" "$2" "$3" >&2
        fail "$1 differs"
    fi
}

pg_start
tmpdir T
cd "$T" || fail "cannot enter $T"

# --- a. a 10 s outage in the middle of a run ------------------------------------------------
N=200000
gen_clicks --count "$N" --seed 7 --out clicks.ndjson
cat >a.yaml <<EOF
pipeline: pg_outage
state_dir: state_a
batch: {max_records: 2000}
sources:
  clicks: {type: file, path: clicks.ndjson, format: ndjson}
sinks:
  pg:
    type: postgres
    inputs: [clicks]
    table: clicks
    key: event_id
    connect_timeout: 2s
    retry: {initial_backoff: 100ms, max_backoff: 1s}
    circuit_breaker: {failure_threshold: 3, open_for: 2s}
EOF
start_sluice run --once --report report_a.json a.yaml
committed() { pg_sql "SELECT coalesce(sum(records), 0) FROM _sluice_checkpoints WHERE pipeline = 'pg_outage'" 2>/dev/null || echo 0; }
some_committed() { [ "$(committed)" -gt 0 ]; }
wait_for 60 some_committed
mid=$(committed)
[ "$mid" -lt "$N" ] || fail "the run finished before the outage could start ($mid records); make it longer"
note "stopping PostgreSQL after $mid records"
(cd / && pg_stop)
sleep 10
kill -0 "$SLUICE_PID" 2>/dev/null || fail "sluice exited while PostgreSQL was down: $(tail -n 5 "$RUN_STDERR")"
(cd / && pg_start_again)
note "PostgreSQL is back"
rc=0
wait "$SLUICE_PID" || rc=$?
[ "$rc" = 0 ] || fail "the run did not complete after the outage (exit $rc): $(tail -n 20 "$RUN_STDERR")"
assert_eq "rows" "$N $N" "$(pg_sql 'SELECT count(*), count(DISTINCT event_id) FROM clicks' | tr '|' ' ')"
jq -r .event_id clicks.ndjson | LC_ALL=C sort >want_ids
pg_sql 'SELECT event_id FROM clicks' | LC_ALL=C sort >got_ids
cmp -s want_ids got_ids || { diff want_ids got_ids | head >&2; fail "the id sets differ"; }
# Every column of a sample of rows equals its record.
jq -c 'select(.event_id | test("0$")) | [.event_id, .user_id, .amount, .device.os]' clicks.ndjson >want_rows
pg_sql "SELECT json_build_array(event_id, user_id, amount, device->>'os') FROM clicks WHERE event_id LIKE '%0' ORDER BY event_id" |
    jq -c . >got_rows
jq -c . want_rows | LC_ALL=C sort >want_rows.s
LC_ALL=C sort got_rows >got_rows.s
cmp -s want_rows.s got_rows.s || { diff want_rows.s got_rows.s | head >&2; fail "row values differ"; }
assert_eq "checkpoint records" "$N" "$(committed)"
pg=$(jq -c '.stages[] | select(.name == "pg")' report_a.json)
[ "$(jq .retries <<<"$pg")" -ge 1 ] || fail "report: no retries recorded: $pg"
[ "$(jq .breaker_opens <<<"$pg")" -ge 1 ] || fail "report: the breaker never opened: $pg"
assert_eq "breaker at the end" '"closed"' "$(jq .breaker <<<"$pg")"
assert_file_contains "$RUN_STDERR" "circuit breaker open"
grep -q "circuit breaker closed" "$RUN_STDERR" || fail "the log does not show the breaker closing"

# --- b. one poison record among 100,000 -------------------------------------------------------
M=100000
POISON=54321
gen_clicks --count "$M" --seed 11 --out orders.ndjson
# Line POISON gets a negative amount; every amount is otherwise null or positive.
awk -v p="$POISON" 'NR == p { sub(/"amount":[^,]*/, "\"amount\":-4.5") } { print }' orders.ndjson >o.tmp
mv o.tmp orders.ndjson
grep -c '"amount":-' orders.ndjson | grep -qx 1 || fail "the poison line was not made"
pg_sql 'CREATE TABLE orders (event_id text PRIMARY KEY, ts text, user_id bigint, session_id text,
    event_type text, page text, referrer text, device jsonb,
    amount double precision CONSTRAINT amount_not_negative CHECK (amount >= 0), tags jsonb)' >/dev/null
cat >b.yaml <<EOF
pipeline: pg_poison
state_dir: state_b
dlq: {}
batch: {max_records: 10000}
sources:
  orders: {type: file, path: orders.ndjson, format: ndjson}
sinks:
  pg:
    type: postgres
    inputs: [orders]
    table: orders
    key: event_id
    id_column: ""
EOF
run_sluice run --once --report report_b.json b.yaml
assert_rc 0
run_sluice dlq list b.yaml --json
assert_rc 0
assert_eq "dlq entries" 1 "$(wc -l <"$RUN_STDOUT")"
e=$(cat "$RUN_STDOUT")
assert_eq "dlq class" sink "$(jq -r .error <<<"$e")"
assert_eq "dlq rule" check_violation "$(jq -r .rule <<<"$e")"
assert_eq "dlq stage" pg "$(jq -r .stage <<<"$e")"
assert_eq "dlq line" "$POISON" "$(jq -r .line <<<"$e")"
assert_eq "dlq message" 'new row for relation "orders" violates check constraint "amount_not_negative"' \
    "$(jq -r .message <<<"$e")"
sed -n "${POISON}p" orders.ndjson | head -c -1 >want_raw
jq -r .raw_b64 <<<"$e" | base64 -d >got_raw
cmp -s want_raw got_raw || fail "the DLQ's raw bytes differ from line $POISON"
assert_eq "rows" "$((M - 1)) $((M - 1))" "$(pg_sql 'SELECT count(*), count(DISTINCT event_id) FROM orders' | tr '|' ' ')"
sed "${POISON}d" orders.ndjson | jq -r .event_id | LC_ALL=C sort >want_ids
pg_sql 'SELECT event_id FROM orders' | LC_ALL=C sort >got_ids
cmp -s want_ids got_ids || { diff want_ids got_ids | head >&2; fail "the id sets differ"; }
sed "${POISON}d" orders.ndjson | jq -c '[.event_id, .ts, .user_id, .event_type, .amount, .tags]' | LC_ALL=C sort >want_rows
pg_sql "SELECT json_build_array(event_id, ts, user_id, event_type, amount, tags) FROM orders" | jq -c . | LC_ALL=C sort >got_rows
cmp -s want_rows got_rows || { diff want_rows got_rows | head >&2; fail "row values differ"; }
assert_eq "checkpoint records" "$((M - 1))" \
    "$(pg_sql "SELECT records FROM _sluice_checkpoints WHERE pipeline = 'pg_poison'")"
pg=$(jq -c '.stages[] | select(.name == "pg")' report_b.json)
assert_eq "report: rejected and kept" "1 1" "$(jq -r '"\(.rejected) \(.dlq)"' <<<"$pg")"

# --- c. a lock held past statement_timeout: 57014 is transient ------------------------------
printf '{"k":%d}\n' $(seq 1 50) >locked.ndjson
pg_sql 'CREATE TABLE locked (k bigint PRIMARY KEY, _sluice_id text)' >/dev/null
# Hold an exclusive lock on the table for 3 s, from another session.
psql -X -q -c 'BEGIN; LOCK TABLE locked IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT' >/dev/null &
locker=$!
lock_held() { [ "$(pg_sql "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'locked' AND l.mode = 'AccessExclusiveLock' AND l.granted")" = 1 ]; }
wait_for 10 lock_held
cat >c.yaml <<EOF
pipeline: pg_locked
state_dir: state_c
sources:
  in: {type: file, path: locked.ndjson, format: ndjson}
sinks:
  pg:
    type: postgres
    inputs: [in]
    table: locked
    key: k
    statement_timeout: 300ms
    retry: {initial_backoff: 100ms, max_backoff: 500ms}
EOF
run_sluice run --once --report report_c.json c.yaml
wait "$locker" || fail "the locking session failed"
assert_rc 0
assert_file_contains "$RUN_STDERR" "SQLSTATE 57014"
[ "$(jq '.stages[] | select(.name == "pg") | .retries' report_c.json)" -ge 1 ] ||
    fail "report: the statement timeout was not retried"
assert_eq "rows after the lock" "$(seq 1 50 | tr '\n' ' ')" "$(pg_sql 'SELECT k FROM locked ORDER BY k' | tr '\n' ' ')"

# --- d. started while PostgreSQL is down: the run waits for it --------------------------------
printf '{"k":%d}\n' $(seq 1 30) >late.ndjson
cat >d.yaml <<EOF
pipeline: pg_late
state_dir: state_d
sources:
  in: {type: file, path: late.ndjson, format: ndjson}
sinks:
  pg:
    type: postgres
    inputs: [in]
    table: late
    key: k
    retry: {initial_backoff: 100ms, max_backoff: 300ms}
    circuit_breaker: {failure_threshold: 3, open_for: 500ms}
EOF
(cd / && pg_stop)
start_sluice run --once --report "$PWD/report_d.json" d.yaml
sleep 2
kill -0 "$SLUICE_PID" 2>/dev/null || fail "a run started while PostgreSQL was down did not wait: $(cat "$RUN_STDERR")"
(cd / && pg_start_again)
wait "$SLUICE_PID" || fail "the run that waited for PostgreSQL failed: $(cat "$RUN_STDERR")"
assert_file_contains "$RUN_STDERR" "circuit breaker open"
assert_eq "rows written after the late start" "$(seq 1 30 | tr '\n' ' ')" \
    "$(pg_sql 'SELECT k FROM late ORDER BY k' | tr '\n' ' ')"
[ "$(jq '.stages[] | select(.name == "pg") | .breaker' report_d.json)" = '"closed"' ] ||
    fail "report: the breaker should end closed"
# status does not wait: it answers at once with the reason.
(cd / && pg_stop)
run_sluice status d.yaml
[ "$RUN_RC" -ne 0 ] || fail "status should fail when PostgreSQL is down"
(cd / && pg_start_again)

note "postgres outage, poison record, statement timeout and late start: all checks passed"
