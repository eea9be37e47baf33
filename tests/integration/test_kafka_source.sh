#!/usr/bin/env bash
# The kafka source against librdkafka's mock cluster (tools/kafka_mock, 3 brokers). Topic
# ev has 3 partitions; message i (0-based) of the producer goes to partition i % 3 with key
# "k<i>" and header n=<i>. Checked exactly:
#   a. kafka -> file + sqlite, --once: every valid message arrives once in each sink, with
#      the _kafka metadata member (topic, partition, offset = i / 3, key, headers, a
#      broker timestamp taken during the production) after the original members;
#      a malformed message is in the DLQ with its bytes as produced; in = out + dlq.
#   b. the checkpoints are one row per partition in the sqlite sink, at each partition's
#      high watermark; a second run reads nothing; after 600 more messages a third run
#      reads exactly those (offsets come from the sinks, not from the group).
#   c. metadata_field: "" passes the values unchanged.
#   d. buffer_records: 200 with batches of 20 while the sqlite sink's database is locked
#      for 8 s: the poller pauses the partitions and resumes them (log), and still every
#      message arrives exactly once in both sinks.
#   e. a bad option (a property the source owns) is a config error naming it; an
#      unreachable cluster ends a --once run after assign_timeout with a clear error.
source "$(dirname "$0")/lib.sh"

tmpdir T
cd "$T"

MOCK=$SLUICE_TOOLS/kafka_mock
[ -x "$MOCK" ] || fail "kafka_mock not found in SLUICE_TOOLS ($SLUICE_TOOLS)"
"$MOCK" serve ev:3 >bootstrap.txt 2>mock.err &
MOCK_PID=$!
trap 'kill "$MOCK_PID" 2>/dev/null; wait "$MOCK_PID" 2>/dev/null; _sl_cleanup' EXIT
wait_for 10 test -s bootstrap.txt
BROKERS=$(head -n1 bootstrap.txt)
note "mock cluster at $BROKERS"

gen() { # gen FROM TO: events FROM..TO-1; line 1500 is malformed
    /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
for i in range(int(sys.argv[1]), int(sys.argv[2])):
    if i == 1500:
        print('{"event_id": 1500, "broken": ')
    else:
        print(json.dumps({"event_id": i, "page": f"/p/{i}", "q": "ü ✓"}, ensure_ascii=False))
PY
}
gen 0 3000 >in1.ndjson
date +%s%3N >t0
"$MOCK" produce "$BROKERS" ev 3 <in1.ndjson || fail "producing failed"
date +%s%3N >t1

pipeline() { # pipeline NAME GROUP EXTRA_SOURCE_OPTIONS
    cat <<YAML
pipeline: $1
state_dir: ./state-$1
sources:
  k:
    type: kafka
    brokers: "$BROKERS"
    topics: [ev]
    group: $2
    properties: {session.timeout.ms: "6000", heartbeat.interval.ms: "500"}
$3
sinks:
  f: {type: file, inputs: [k], path: out-$1/rows.ndjson, id_field: _id, commit_interval: 0}
  db: {type: sqlite, inputs: [k], path: out-$1.db, table: ev}
YAML
}

# ---- a. once through -------------------------------------------------------------------
pipeline ka ga "" >ka.yaml
run_sluice run --once --report report1.json ka.yaml
assert_rc 0
cp "$RUN_STDERR" run1.err
check_out() { # check_out DIR INPUTS... (every *.ndjson file in DIR): exact records, metadata included
    /usr/bin/python3 - "$@" "$(cat t0)" "$(cat t1)" <<'PY' || return 1
import json, sys
path, inputs, t0, t1 = sys.argv[1], sys.argv[2:-2], int(sys.argv[-2]), int(sys.argv[-1])
want = {}
i = 0
for name in inputs:
    for line in open(name, encoding="utf-8"):
        line = line.rstrip("\n")
        try:
            rec = json.loads(line)
        except ValueError:
            i += 1
            continue
        want[i] = rec
        i += 1
import glob
got = {}
lines = [l for f in sorted(glob.glob(path + "/*.ndjson")) for l in open(f, encoding="utf-8")]
for line in lines:
    r = json.loads(line)
    r.pop("_id", None)
    meta = r.pop("_kafka")
    n = r["event_id"]
    j = n - 3000 if n >= 3000 else n  # the producer's line number in its own run
    exp_meta = {"topic": "ev", "partition": n % 3, "offset": n // 3, "key": f"k{j}",
                "headers": {"n": str(j)}}
    ts = meta.pop("timestamp")
    if meta != exp_meta:
        sys.exit(f"event {n}: metadata {meta} != {exp_meta}")
    if not isinstance(ts, int) or ts < t0 - 1000 or ts > t1 + 60000:
        sys.exit(f"event {n}: timestamp {ts} outside the production window")
    if n in got:
        sys.exit(f"event {n} delivered twice")
    got[n] = r
    if [k for k in json.loads(line).keys() if k != "_id"][-1] != "_kafka":
        sys.exit(f"event {n}: _kafka is not the last member")
if got != want:
    missing = sorted(set(want) - set(got))[:10]
    extra = sorted(set(got) - set(want))[:10]
    sys.exit(f"records differ: missing {missing} extra {extra}")
PY
}
check_out out-ka in1.ndjson || fail "file sink: records differ from the produced messages"
[ "$(sqlite3 out-ka.db 'SELECT count(*), count(DISTINCT event_id), min(event_id), max(event_id) FROM ev')" = "2999|2999|0|2999" ] ||
    fail "sqlite sink: wrong rows: $(sqlite3 out-ka.db 'SELECT count(*), count(DISTINCT event_id) FROM ev')"
# The malformed message: in the DLQ with its bytes, once.
"$SLUICE" dlq list --json ka.yaml >dlq.json || fail "dlq list failed"
/usr/bin/python3 - <<'PY' || fail "the malformed message is not in the DLQ as produced"
import json, base64
rows = [json.loads(l) for l in open("dlq.json") if l.strip()]
if isinstance(rows, list) and len(rows) == 1 and isinstance(rows[0], list):
    rows = rows[0]
assert len(rows) == 1, rows
e = rows[0]
assert base64.b64decode(e["raw_b64"]).decode() == '{"event_id": 1500, "broken": ', e
assert e["error"] == "invalid_json" and e["message"].startswith("invalid JSON at byte 29"), e
assert e["source"] == "k" and e["offset"] == 500, e
PY
assert_conservation report1.json
/usr/bin/python3 - <<'PY' || fail "the report does not balance: in 3000 = out 2999 + dlq 1"
import json
r = json.load(open("report1.json"))
src = [s for s in r["stages"] if s["name"] == "k"][0]
assert src["records_in"] == 3000, src
for name in ("f", "db"):
    s = [x for x in r["stages"] if x["name"] == name][0]
    assert s["records_out"] == 2999, s
PY

# ---- b. per-partition checkpoints, a run with nothing new, then new messages ------------
[ "$(sqlite3 out-ka.db "SELECT source || '=' || position FROM _sluice_checkpoints WHERE sink = 'db' ORDER BY source")" = "$(printf 'k#ev/0=ev/0@1000\nk#ev/1=ev/1@1000\nk#ev/2=ev/2@1000')" ] ||
    fail "checkpoints are not one per partition at the high watermark: $(sqlite3 out-ka.db 'SELECT source, position FROM _sluice_checkpoints')"
run_sluice run --once --report report2.json ka.yaml
assert_rc 0
cp "$RUN_STDERR" run2.err
grep -q 'assigned 3 partitions: ev/0@1000, ev/1@1000, ev/2@1000' run2.err ||
    fail "the second run did not start at the sinks' checkpoints: $(grep assigned run2.err)"
/usr/bin/python3 -c 'import json,sys; r=json.load(open("report2.json")); s=[x for x in r["stages"] if x["name"]=="k"][0]; sys.exit(s["records_in"] != 0)' ||
    fail "the second run read records again"
gen 3000 3600 >in2.ndjson
"$MOCK" produce "$BROKERS" ev 3 <in2.ndjson || fail "producing failed"
# The producer numbers lines from 0 again: event 3000 + j is line j, key k<j>, on
# partition j % 3 = (3000 + j) % 3 at offset 1000 + j / 3 = (3000 + j) / 3.
date +%s%3N >t1
run_sluice run --once --report report3.json ka.yaml
assert_rc 0
/usr/bin/python3 -c 'import json,sys; r=json.load(open("report3.json")); s=[x for x in r["stages"] if x["name"]=="k"][0]; sys.exit(s["records_in"] != 600)' ||
    fail "the third run did not read exactly the 600 new messages"
check_out out-ka in1.ndjson in2.ndjson || fail "after the third run the file sink differs"
[ "$(sqlite3 out-ka.db 'SELECT count(*), count(DISTINCT event_id) FROM ev')" = "3599|3599" ] ||
    fail "sqlite sink after the third run: $(sqlite3 out-ka.db 'SELECT count(*), count(DISTINCT event_id) FROM ev')"

# ---- c. no metadata ---------------------------------------------------------------------
pipeline kc gc "    metadata_field: \"\"" >kc.yaml
run_sluice run --once kc.yaml
assert_rc 0
/usr/bin/python3 - <<'PY' || fail "without metadata_field the records are not the values as produced"
import json
want = sorted(l.rstrip("\n") for f in ("in1.ndjson", "in2.ndjson") for l in open(f, encoding="utf-8") if '"broken"' not in l)
got = []
import glob
for l in (l for f in glob.glob("out-kc/*.ndjson") for l in open(f, encoding="utf-8")):
    r = json.loads(l)
    r.pop("_id")
    got.append(json.dumps(r, ensure_ascii=False))
assert sorted(got) == want, (len(got), len(want))
PY

# ---- d. a small buffer pauses the partitions --------------------------------------------
pipeline kd gd "    buffer_records: 200
    batch_size: 20" >kd.yaml
# Once the sinks are open and the source joins the group, the sqlite sink's database is
# locked for 8 s: the pipeline is held up, the buffer stays full, and the poller pauses the
# partitions (and resumes them once the lock is gone).
start_sluice run --once --log-level debug kd.yaml
wait_for 30 grep -q 'joined consumer group gd' "$RUN_STDERR"
/usr/bin/python3 -c '
import sqlite3, time
c = sqlite3.connect("out-kd.db", isolation_level=None)
c.execute("BEGIN EXCLUSIVE")
time.sleep(8)
c.execute("COMMIT")
'
wait "$SLUICE_PID" || fail "the run held up by a locked database failed: $(tail -5 "$RUN_STDERR")"
cp "$RUN_STDERR" rund.err
grep -q 'paused' rund.err || fail "the poller never paused the partitions with buffer_records: 200"
grep -q 'resumed' rund.err || fail "the poller never resumed the partitions"
check_out out-kd in1.ndjson in2.ndjson || fail "with pauses the file sink differs"
[ "$(sqlite3 out-kd.db 'SELECT count(*), count(DISTINCT event_id) FROM ev')" = "3599|3599" ] ||
    fail "with pauses the sqlite sink holds $(sqlite3 out-kd.db 'SELECT count(*), count(DISTINCT event_id) FROM ev')"

# ---- e. config errors --------------------------------------------------------------------
pipeline ke ge "    properties: {group.id: other}" | sed '/session.timeout.ms/d' >ke.yaml
run_sluice run --once ke.yaml
assert_rc 1
cp "$RUN_STDERR" rune.err
grep -q 'properties.group.id: set by the source itself' rune.err || fail "a property the source owns was not refused: $(cat rune.err)"

# Nothing listens at the address: --once fails after assign_timeout, saying why.
cat >kf.yaml <<YAML
pipeline: kf
state_dir: ./state-kf
sources:
  k: {type: kafka, brokers: "127.0.0.1:9", topics: [ev], assign_timeout: 2s}
sinks:
  f: {type: file, inputs: [k], path: out-kf/rows.ndjson}
YAML
run_sluice run --once kf.yaml
assert_rc 1
grep -q 'group kf got no partitions within 2000 ms; are the brokers (127.0.0.1:9) reachable' "$RUN_STDERR" ||
    fail "an unreachable cluster did not end the --once run with a clear error: $(grep -v librdkafka "$RUN_STDERR" | tail -3)"

note "kafka source: exact records with metadata, DLQ, per-partition checkpoints, resume, pause/resume ok"
