#!/usr/bin/env bash
# kill -9 against both ends of file -> nats sink -> JetStream -> nats source -> file, with a
# real nats-server. Producer: killed several times mid-publish, then a final run; the stream
# holds each record exactly once (Nats-Msg-Id deduplication). Consumer: a follow-mode run
# killed several times mid-stream while the producer appends, then a final --once run;
# the output holds every message exactly once, in stream order, and the durable
# acknowledged all of them. About 20 s on the debug build.
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/../integration/nats.sh"

nats_start
tmpdir T
cd "$T"

N=60000
python3 - "$N" >in.ndjson <<'PY'
import json, sys
for i in range(1, int(sys.argv[1]) + 1):
    print(json.dumps({"event_id": i, "user": f"u{i % 101}", "page": f"/p/{i % 7}", "ms": i * 3},
                     separators=(",", ":")))
PY

cat >prod.yaml <<YAML
pipeline: prod
state_dir: state_p
sources:
  in: {type: file, path: in.ndjson}
sinks:
  bus: {type: nats, inputs: [in], url: "$NATS_URL", subject: ev.clicks, stream: EV}
YAML
cat >cons.yaml <<YAML
pipeline: cons
state_dir: state_c
sources:
  bus: {type: nats, url: "$NATS_URL", stream: EV, subject: "ev.>", durable: wh, batch_size: 200}
sinks:
  out: {type: file, inputs: [bus], path: out/rows.ndjson, id_field: "", commit_interval: 50ms}
YAML

stored() { nats_stream_info EV 2>/dev/null | jq -r .messages || echo 0; }
acked() {
    python3 - "$NATS_MON_PORT" <<'PY'
import json, sys, urllib.request
j = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/jsz?consumers=true", timeout=5))
print(next((c["ack_floor"]["stream_seq"] for a in j["account_details"] for s in a["stream_detail"]
            for c in s.get("consumer_detail") or [] if c["name"] == "wh"), 0))
PY
}

# --- producer: kill -9 mid-publish --------------------------------------------------------
mid=0
for delay in 0.5 0.3 0.7; do
    start_sluice run prod.yaml --once
    sleep "$delay"
    kill -9 "$SLUICE_PID" 2>/dev/null || true
    wait "$SLUICE_PID" 2>/dev/null || true
    n=$(stored)
    note "producer killed after ${delay}s: stream holds $n"
    [ "$n" -le "$N" ] || fail "stream holds $n messages after a kill, more than the $N records"
    if [ "$n" -gt 0 ] && [ "$n" -lt "$N" ]; then mid=$((mid + 1)); fi
done
[ "$mid" -ge 1 ] || fail "no producer kill landed mid-stream; the test proves nothing"
run_sluice run prod.yaml --once
assert_rc 0
[ "$(nats_stream_info EV | jq -c .)" = "{\"messages\":$N,\"first_seq\":1,\"last_seq\":$N}" ] ||
    fail "the stream should hold each of the $N records once: $(nats_stream_info EV)"

# --- consumer: kill -9 mid-stream while more is published -----------------------------------
python3 - "$N" >more.ndjson <<'PY'
import json, sys
n = int(sys.argv[1])
for i in range(n + 1, n + 5001):
    print(json.dumps({"event_id": i, "user": f"u{i % 101}", "page": "/late", "ms": i * 3},
                     separators=(",", ":")))
PY
mid=0
for delay in 0.6 0.4 0.8 0.5; do
    start_sluice run cons.yaml
    cons_pid=$SLUICE_PID
    if [ "$delay" = 0.4 ]; then
        cat more.ndjson >>in.ndjson # published while the consumer runs and is killed
        run_sluice run prod.yaml --once
        assert_rc 0
    fi
    sleep "$delay"
    kill -9 "$cons_pid" 2>/dev/null || true
    wait "$cons_pid" 2>/dev/null || true
    a=$(acked)
    note "consumer killed after ${delay}s: durable acknowledged up to $a"
    if [ "$a" -gt 0 ] && [ "$a" -lt $((N + 5000)) ]; then mid=$((mid + 1)); fi
done
[ "$mid" -ge 1 ] || fail "no consumer kill landed mid-stream; the test proves nothing"
run_sluice run cons.yaml --once --report final.json
assert_rc 0
for f in $(ls out | sort -V); do cat "out/$f"; done >got.ndjson
cmp -s in.ndjson got.ndjson || assert_same_records in.ndjson got.ndjson \
    "every message exactly once, in stream order, after the consumer kills"
# The durable holds nothing unacknowledged. When the final run had something to read, its
# acknowledgement floor is the last message; when the last kill came after everything was
# committed, the final run recreates the durable after the last message and reads nothing,
# and a durable that never delivered reports a floor of 0.
final_read=$(python3 -c 'import json; r = json.load(open("final.json")); print(sum(s["records_in"] for s in r["stages"] if s["kind"] == "source"))')
state=$(python3 - "$NATS_MON_PORT" <<'PY'
import json, sys, urllib.request
j = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/jsz?consumers=true", timeout=5))
c = next(c for a in j["account_details"] for s in a["stream_detail"]
         for c in s.get("consumer_detail") or [] if c["name"] == "wh")
print(c["ack_floor"]["stream_seq"], c["num_pending"], c["num_ack_pending"])
PY
)
want_floor=$((N + 5000))
[ "$final_read" = 0 ] && [ "${state%% *}" = 0 ] && want_floor=0
[ "$state" = "$want_floor 0 0" ] ||
    fail "the durable should have acknowledged all: ack floor, pending, ack pending = $state (final run read $final_read)"
