#!/usr/bin/env bash
# The nats sink and source against a real nats-server with JetStream: file -> nats sink
# -> stream -> nats source -> file in two pipelines, records compared exactly; publishing
# the same input again stores nothing twice (Nats-Msg-Id and the duplicate window); the
# consumer acknowledges what its sink committed and a second --once run reads nothing;
# records added later arrive once; a follow-mode consumer delivers messages published
# while it runs; a stream the sink creates gets the configured duplicate window; messages
# the server redelivers while the sink is held up are not emitted twice; a consumer in
# follow mode rides through a server restart; the sink rides out an outage. The lag
# (`sluice status`, /metrics) is the exact number of messages after the committed sequence.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/nats.sh"

nats_start
tmpdir T
cd "$T"

# Every part the file sink wrote (one per run), in order.
out_all() {
    local f
    for f in $(ls out | sort -V); do cat "out/$f"; done
}

consumer_state() {
    python3 - "$NATS_MON_PORT" "$1" <<'PY'
import json, sys, urllib.request
port, name = sys.argv[1], sys.argv[2]
j = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/jsz?consumers=true", timeout=5))
for acc in j.get("account_details", []):
    for st in acc.get("stream_detail", []):
        for c in st.get("consumer_detail", []) or []:
            if c["name"] == name:
                print(c["ack_floor"]["stream_seq"], c["num_ack_pending"], c["delivered"]["stream_seq"])
                sys.exit(0)
sys.exit("no consumer " + name)
PY
}

gen() { # gen FROM TO: records FROM..TO with nested values, escapes and non-ASCII text
    python3 - "$1" "$2" <<'PY'
import json, sys
for i in range(int(sys.argv[1]), int(sys.argv[2]) + 1):
    print(json.dumps({"event_id": i, "user": f"u{i % 17}", "tags": ["a", i % 3],
                      "ctx": {"page": f"/p/{i}", "q": 'say "hi"\\ ✓'}, "v": i * 0.5},
                     ensure_ascii=False, separators=(",", ":")))
PY
}

gen 1 3000 >in.ndjson

cat >prod.yaml <<YAML
pipeline: prod
state_dir: state_p
sources:
  in: {type: file, path: in.ndjson}
sinks:
  bus: {type: nats, inputs: [in], url: "$NATS_URL", subject: ev.clicks, stream: EV}
YAML
APORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >cons.yaml <<YAML
pipeline: cons
state_dir: state_c
sources:
  bus: {type: nats, url: "$NATS_URL", stream: EV, subject: "ev.>", durable: wh, batch_size: 256}
sinks:
  out: {type: file, inputs: [bus], path: out/rows.ndjson, id_field: "", commit_interval: 0}
admin: {listen: "127.0.0.1:$APORT"}
YAML
# behind: messages_behind from `sluice status cons.yaml --json`
behind() { "$SLUICE" status cons.yaml --json | jq -c '.sinks[0].sources[0] | [.position, .messages_behind, .bytes_behind]'; }
# ckpt_metrics: the consumer's checkpoint series, parsed with prometheus_client
PROM=python3
[ -x /usr/bin/python3 ] && PROM=/usr/bin/python3
ckpt_metrics() {
    "$PROM" - "$APORT" <<'PY'
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=10).read().decode()
got = {}
for fam in text_string_to_metric_families(text):
    for s in fam.samples:
        if s.name.startswith("sluice_checkpoint_") and not s.name.endswith("seconds"):
            assert (s.labels["sink"], s.labels["source"]) == ("out", "bus"), s.labels
            got[s.name] = s.labels.get("position", int(s.value))
print(" ".join("%s=%s" % kv for kv in sorted(got.items())))
PY
}

# --- produce, consume, compare ------------------------------------------------------------
run_sluice run prod.yaml --once
assert_rc 0
[ "$(nats_stream_info EV | jq -c .)" = '{"messages":3000,"first_seq":1,"last_seq":3000}' ] ||
    fail "stream EV should hold 3000 messages: $(nats_stream_info EV)"
run_sluice run cons.yaml --once
assert_rc 0
out_all >got.ndjson
cmp -s in.ndjson got.ndjson || assert_same_records in.ndjson got.ndjson
[ "$(consumer_state wh)" = "3000 0 3000" ] ||
    fail "the consumer should have acknowledged 3000 messages, none pending: $(consumer_state wh)"

# --- the same input again: the stream drops every message as a duplicate -------------------
run_sluice run prod.yaml --once
assert_rc 0
[ "$(nats_stream_info EV | jq -c .)" = '{"messages":3000,"first_seq":1,"last_seq":3000}' ] ||
    fail "republishing stored duplicates: $(nats_stream_info EV)"
run_sluice run cons.yaml --once
assert_rc 0
out_all >got.ndjson
cmp -s in.ndjson got.ndjson || assert_same_records in.ndjson got.ndjson "a second consumer run must read nothing"

# --- records added later arrive once -------------------------------------------------------
[ "$(behind)" = '["3000",0,null]' ] || fail "status before new messages: $(behind)"
gen 3001 3500 >>in.ndjson
run_sluice run prod.yaml --once
assert_rc 0
[ "$(nats_stream_info EV | jq -c .)" = '{"messages":3500,"first_seq":1,"last_seq":3500}' ] ||
    fail "after appending 500 records: $(nats_stream_info EV)"
[ "$(behind)" = '["3000",500,null]' ] || fail "status should show 500 messages behind: $(behind)"
"$SLUICE" status cons.yaml | grep -qx "    behind       500 messages" ||
    fail "status text: $("$SLUICE" status cons.yaml)"
run_sluice run cons.yaml --once
assert_rc 0
out_all >got.ndjson
cmp -s in.ndjson got.ndjson || assert_same_records in.ndjson got.ndjson "the 500 new records once"
"$SLUICE" status cons.yaml --json >status.json
[ "$(jq -r '.sinks[0].sources[0].position' status.json)" = 3500 ] ||
    fail "status should show position 3500: $(cat status.json)"
[ "$(behind)" = '["3500",0,null]' ] || fail "status after catching up: $(behind)"

# --- follow mode: messages published while the consumer runs --------------------------------
start_sluice run cons.yaml
gen 3501 3800 >>in.ndjson
run_sluice run prod.yaml --once
assert_rc 0
# The run fetches everything (the last batch is acknowledged when the run ends).
delivered_to() { [ "$(consumer_state wh | cut -d' ' -f3)" = "$1" ]; }
wait_for 30 delivered_to 3800
# /metrics while it runs: committed sequence 3800, nothing after it.
metrics_at() { [ "$(ckpt_metrics)" = "sluice_checkpoint_info=3800 sluice_checkpoint_lag_messages=0 sluice_checkpoint_position=3800" ]; }
wait_for 30 metrics_at
kill -TERM "$SLUICE_PID"
wait "$SLUICE_PID" || fail "the follow-mode consumer exited with $? on SIGTERM: $(tail -n 5 "$RUN_STDERR")"
out_all >got.ndjson
cmp -s in.ndjson got.ndjson || assert_same_records in.ndjson got.ndjson "follow mode"
[ "$(consumer_state wh)" = "3800 0 3800" ] ||
    fail "after follow mode: ack floor 3800 and nothing pending expected: $(consumer_state wh)"

# --- the stream the sink created has the configured duplicate window ------------------------
cat >win.yaml <<YAML
pipeline: win
state_dir: state_w
sources:
  in: {type: file, path: in.ndjson}
sinks:
  bus: {type: nats, inputs: [in], url: "$NATS_URL", subject: win.x, stream: WIN, duplicate_window: 90s}
YAML
run_sluice run win.yaml --once
assert_rc 0
window=$(python3 - "$NATS_MON_PORT" <<'PY'
import json, sys, urllib.request
j = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/jsz?streams=true&config=true", timeout=5))
print([s["config"]["duplicate_window"] for a in j["account_details"] for s in a["stream_detail"]
       if s["name"] == "WIN"][0])
PY
)
[ "$window" = 90000000000 ] || fail "stream WIN should have a 90 s duplicate window (ns), has $window"
[ "$(nats_stream_info WIN | jq -c .)" = '{"messages":3800,"first_seq":1,"last_seq":3800}' ] ||
    fail "stream WIN: $(nats_stream_info WIN)"

# --- redeliveries within a run: the sink is held up for longer than ack_wait ---------------
# Another connection holds the sqlite database locked for 4 s while new messages arrive:
# the sink retries its batch (busy) while the server redelivers every unacknowledged message after ack_wait (1 s).
# The source must not emit a redelivered message again; everything ends in the table once
# and acknowledged.
cat >slow.yaml <<YAML
pipeline: slow
state_dir: state_s
sources:
  bus: {type: nats, url: "$NATS_URL", stream: EV, subject: "ev.>", durable: slow, ack_wait: 1s}
sinks:
  db:
    type: sqlite
    inputs: [bus]
    path: slow.db
    table: ev
    busy_timeout: 100ms
    circuit_breaker: {failure_threshold: 1000, open_for: 1s, half_open_probes: 1}
YAML
slow_state() {
    python3 - "$NATS_MON_PORT" <<'PY'
import json, sys, urllib.request
j = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/jsz?consumers=true", timeout=5))
for a in j["account_details"]:
    for s in a["stream_detail"]:
        for c in s.get("consumer_detail") or []:
            if c["name"] == "slow":
                print(c["ack_floor"]["stream_seq"], c["num_ack_pending"], c["num_redelivered"] > 0)
PY
}
start_sluice run slow.yaml
caught_up() { [ "$(slow_state | cut -d' ' -f1,2)" = "3800 0" ]; }
wait_for 30 caught_up
python3 -c 'import sqlite3, time; c = sqlite3.connect("slow.db", isolation_level=None); c.execute("BEGIN EXCLUSIVE"); time.sleep(4); c.execute("COMMIT")' &
lock_pid=$!
sleep 0.3
gen 3801 4100 >>in.ndjson
run_sluice run prod.yaml --once
assert_rc 0
# num_redelivered counts pending messages delivered more than once: seen during the lock.
redelivered() { [ "$(slow_state | cut -d' ' -f3)" = True ]; }
wait_for 10 redelivered
wait "$lock_pid"
for _ in $(seq 1 300); do
    [ "$(slow_state)" = "4100 0 False" ] && break
    sleep 0.1
done
[ "$(slow_state)" = "4100 0 False" ] ||
    fail "the slow consumer should end with all acknowledged (ack floor, pending, redelivered): $(slow_state)"
kill -TERM "$SLUICE_PID"
wait "$SLUICE_PID" || fail "the slow consumer exited with $? on SIGTERM: $(tail -n 5 "$RUN_STDERR")"
jq -r .event_id in.ndjson >want_ids.txt # 1..4100
sqlite_rows slow.db "SELECT event_id FROM ev ORDER BY rowid" >got_ids.txt
cmp -s want_ids.txt got_ids.txt ||
    fail "sqlite rows after redeliveries: $(wc -l <got_ids.txt) rows, first differences: $(diff want_ids.txt got_ids.txt | head -5)"

# --- a server restart while both pipelines run in follow mode -------------------------------
start_sluice run cons.yaml
cons_pid=$SLUICE_PID
wait_for 30 delivered_to 4100
nats_stop
sleep 1
nats_start_again
gen 4101 4300 >>in.ndjson
run_sluice run prod.yaml --once
assert_rc 0
wait_for 60 delivered_to 4300
# The server has sent them; stop only once they are committed and acknowledged (a SIGTERM
# that lands while a fetch is in flight leaves what it fetched unacknowledged, rightly:
# the next run gets it again).
acked_all() { [ "$(consumer_state wh)" = "4300 0 4300" ]; }
wait_for 60 acked_all
kill -TERM "$cons_pid"
wait "$cons_pid" || fail "the consumer exited with $? after the server restart: $(tail -n 5 "$RUN_STDERR")"
# The server applies acks asynchronously: give the last ones a moment to land.
for _ in $(seq 1 100); do
    [ "$(consumer_state wh)" = "4300 0 4300" ] && break
    sleep 0.1
done
[ "$(consumer_state wh)" = "4300 0 4300" ] ||
    fail "after the server restart: all acknowledged expected: $(consumer_state wh)"
out_all >got.ndjson
cmp -s in.ndjson got.ndjson || assert_same_records in.ndjson got.ndjson "across a server restart"
[ "$(nats_stream_info EV | jq -c .)" = '{"messages":4300,"first_seq":1,"last_seq":4300}' ] ||
    fail "stream EV after the restart: $(nats_stream_info EV)"

# --- the sink rides out a server outage (SL_RETRY under its retry policy) --------------------
gen 4301 4500 >>in.ndjson
nats_stop
start_sluice run prod.yaml --once
prod_pid=$SLUICE_PID
sleep 1.5
kill -0 "$prod_pid" 2>/dev/null || fail "the producer should wait for the server, not exit: $(tail -n 5 "$RUN_STDERR")"
nats_start_again
wait "$prod_pid" || fail "the producer exited with $? after the outage: $(tail -n 5 "$RUN_STDERR")"
[ "$(nats_stream_info EV | jq -c .)" = '{"messages":4500,"first_seq":1,"last_seq":4500}' ] ||
    fail "stream EV after the producer's outage: $(nats_stream_info EV)"
run_sluice run cons.yaml --once
assert_rc 0
out_all >got.ndjson
cmp -s in.ndjson got.ndjson || assert_same_records in.ndjson got.ndjson "after the producer's outage"
