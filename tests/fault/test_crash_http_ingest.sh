#!/usr/bin/env bash
# Crash test (http_ingest): clients POST NDJSON events to an http source while sluice is
# killed with SIGKILL several times; every event ends in the sqlite sink exactly once.
#
# The client (tests/tools/ingest_client.py, 4 threads) sends EVENTS events with unique
# event_ids in bodies of 50 and retries every body until it is answered 200: connection
# refused or reset while sluice is down, timeouts, 503. Meanwhile sluice (http source ->
# sqlite upserting on key: event_id, fsync: always) is killed KILLS times at random
# instants, each time restarted at once. A body written to the log whose reply a kill cut
# off is sent again (as is one whose write a kill cut short: the intact records before the
# torn tail stay in the log), so the log may hold some events twice: the key makes the
# second copy overwrite the first. After the client is done, SIGTERM drains and a last --once run
# delivers whatever the log still holds. Then, exactly:
#   - the table's rows are the generated events, each once, every column as sent;
#   - every record the log ever held was written once (the log is one segment, never
#     released): records in the log = records the sink's checkpoint counts = rows +
#     overwrites (an UPDATE trigger counts those), and overwrites <= what the client may
#     have sent twice;
#   - the last run's report balances (records in = out + filtered + rejected + ...).
# CRASHTEST_SEED, CRASHTEST_EVENTS and CRASHTEST_KILLS override the defaults.
. "$(dirname "$0")/../integration/lib.sh"

SEED=${CRASHTEST_SEED:-$RANDOM}
EVENTS=${CRASHTEST_EVENTS:-100000}
KILLS=${CRASHTEST_KILLS:-4}
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
CLIENT="$SLUICE_SRC/tests/tools/ingest_client.py"
note "seed $SEED, $EVENTS events, $KILLS kills (CRASHTEST_SEED=$SEED reproduces the kill times)"

tmpdir
cd "$T" || fail "cannot enter $T"
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >p.yaml <<YAML
pipeline: ingest_crash
sources:
  web: {type: http, listen: "127.0.0.1:$PORT", fsync: always}
sinks:
  db: {type: sqlite, inputs: [web], path: out.db, table: events, key: event_id}
YAML
# The table exists before the first run, with a trigger counting rows written twice.
sqlite3 out.db <<'SQL'
CREATE TABLE events(_sluice_id TEXT, event_id TEXT PRIMARY KEY, n INTEGER, user TEXT,
                    payload TEXT);
CREATE TABLE rewrites(event_id TEXT);
CREATE TRIGGER rewrite AFTER UPDATE ON events BEGIN INSERT INTO rewrites VALUES (old.event_id); END;
SQL

start_sluice run p.yaml
"$PY" "$CLIENT" "http://127.0.0.1:$PORT/v1/ingest/web" --events "$EVENTS" --batch 50 \
    --threads 4 --seed "$SEED" --events-out sent.ndjson --summary client.json --deadline 50 \
    >client.out 2>client.err &
client=$!
_SL_BG_PIDS+=("$client")

# Kill at random instants: some during start-up (before the server listens), most while
# requests are being written and acknowledged.
mapfile -t delays < <("$PY" -c '
import random, sys
r = random.Random(int(sys.argv[1]))
for k in range(int(sys.argv[2])):
    print("%.3f" % (r.uniform(0.02, 0.15) if k % 3 == 2 else r.uniform(0.3, 1.2)))' "$SEED" "$KILLS")
for d in "${delays[@]}"; do
    sleep "$d"
    kill -0 "$client" 2>/dev/null || fail "the client finished before all $KILLS kills; raise CRASHTEST_EVENTS"
    kill -KILL "$SLUICE_PID"
    wait "$SLUICE_PID" 2>/dev/null || true
    note "killed after ${d}s; restarting"
    start_sluice run p.yaml
done
wait "$client" || fail "the client did not get every body acknowledged: $(cat client.err)"
note "client: $(cat client.out)"

# Drain: SIGTERM stops reading and commits what is in flight; --once delivers the rest.
kill -TERM "$SLUICE_PID"
wait "$SLUICE_PID" || fail "SIGTERM: exit status $?; $(tail -5 "$RUN_STDERR")"
run_sluice run p.yaml --once --report last.json
assert_rc 0
assert_conservation last.json p.yaml

# The rows: exactly the events sent, each once, every column as sent.
"$PY" - <<'PY' || fail "the table does not hold every event exactly once"
import json, sqlite3
sent = [json.loads(l) for l in open("sent.ndjson", encoding="utf-8")]
con = sqlite3.connect("out.db")
rows = con.execute("SELECT event_id, n, user, payload FROM events ORDER BY event_id").fetchall()
want = sorted((e["event_id"], e["n"], e["user"], e["payload"]) for e in sent)
if rows != want:
    got_ids, want_ids = {r[0] for r in rows}, {w[0] for w in want}
    print("rows %d, events %d; missing %s; unexpected %s; differing %s" % (
        len(rows), len(want), sorted(want_ids - got_ids)[:5], sorted(got_ids - want_ids)[:5],
        [r for r, w in zip(rows, want) if r != w][:3]))
    raise SystemExit(1)
PY

# Conservation over all runs: what the log holds was written once each.
run_sluice wal check p.yaml
assert_rc 0
wal_records=$(sed -n 's/^source web: [0-9]* segments\{0,1\}, \([0-9]*\) records\{0,1\},.*/\1/p' "$RUN_STDOUT")
[ -n "$wal_records" ] || fail "cannot read the record count from: $(cat "$RUN_STDOUT")"
[ "$(ls .sluice/ingest_crash/wal/web | wc -l)" = 1 ] || fail "expected one log segment: $(ls .sluice/ingest_crash/wal/web)"
"$SLUICE" status p.yaml --json >status.json || fail "sluice status failed"
counted=$(jq -r '.sinks[0].sources[0].records' status.json)
rows=$(sqlite3 out.db 'SELECT count(*) FROM events')
rewrites=$(sqlite3 out.db 'SELECT count(*) FROM rewrites')
maxdup=$(jq -r .max_duplicates client.json)
note "log records $wal_records, sink counted $counted, rows $rows, overwritten $rewrites (client may have repeated up to $maxdup)"
[ "$rows" = "$EVENTS" ] || fail "rows $rows != events $EVENTS"
[ "$counted" = "$wal_records" ] ||
    fail "the sink's checkpoint counts $counted records, the log holds $wal_records: some were written twice or never"
[ "$wal_records" = $((rows + rewrites)) ] ||
    fail "log records $wal_records != rows $rows + overwrites $rewrites"
[ "$rewrites" -le "$maxdup" ] ||
    fail "$rewrites overwrites, but the client repeated at most $maxdup events"
[ "$(jq -r '.sinks[0].sources[0].bytes_behind' status.json)" = 0 ] ||
    fail "status shows bytes behind after the drain: $(cat status.json)"
note "http ingest under $KILLS kills: every event exactly once"
