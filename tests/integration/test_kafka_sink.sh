#!/usr/bin/env bash
# The kafka sink against librdkafka's mock cluster (tools/kafka_mock, 3 brokers, a topic
# with 3 partitions): file -> kafka with a key expression and static headers, then the
# topic is read back with `kafka_mock dump`. Checked exactly: the message values are the
# input records (as a multiset), every message carries sluice-record-id equal to the id
# the engine gave that record (a file sink in the same pipeline writes the ids), the keys
# are what the expression gives (string as is, a number as JSON text, missing: no key),
# and the configured headers are on every message. A record larger than the producer's
# message.max.bytes is rejected into the DLQ as kafka_MSG_SIZE_TOO_LARGE while the rest
# is delivered. Running the same input again with a fresh state directory produces every
# record a second time (at-least-once), and each duplicate carries the same record id. With
# no broker reachable every attempt fails as transient and the run ends with an error.
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

# 300 records: users as strings, some as numbers, some missing; escapes and non-ASCII.
python3 - >in.ndjson <<'PY'
import json
for i in range(1, 301):
    r = {"event_id": i, "page": f"/p/{i}", "q": 'say "hi" \\ ✓'}
    if i % 10 == 0:
        r["user"] = i  # a number: the key is its JSON text
    elif i % 7 != 0:
        r["user"] = f"u{i % 13}"  # missing when i % 7 == 0: no key
    print(json.dumps(r, ensure_ascii=False, separators=(",", ":")))
PY
# One record over the producer's message.max.bytes (1000000 bytes): rejected, not retried.
python3 -c 'import json; print(json.dumps({"event_id": 999, "user": "big", "pad": "x" * 1100000}))' \
    >big.ndjson
cat in.ndjson big.ndjson >all.ndjson

pipeline() { # pipeline STATE_DIR IDS_DIR
    cat <<YAML
pipeline: kp
state_dir: $1
sources:
  in: {type: file, path: all.ndjson, max_record_bytes: 2MiB}
sinks:
  bus:
    type: kafka
    inputs: [in]
    brokers: "$BROKERS"
    topic: ev
    key: user
    headers: {app: clicks, env: "test run"}
    linger: 1ms
    message_timeout: 10s
  ids: {type: file, inputs: [in], path: $2/rows.ndjson, id_field: _id, commit_interval: 0}
YAML
}

pipeline st1 ids1 >p1.yaml
run_sluice run p1.yaml --once --report r1.json
assert_rc 0
jq -e '.stages[] | select(.name == "bus") | .records_out == 300 and .rejected == 1' r1.json \
    >/dev/null || fail "bus should deliver 300 records and reject 1: $(cat r1.json)"
run_sluice dlq list p1.yaml --json
jq -s -e 'length == 1 and .[0].rule == "kafka_MSG_SIZE_TOO_LARGE" and .[0].error == "sink"' \
    "$RUN_STDOUT" >/dev/null ||
    fail "the DLQ should hold one kafka_MSG_SIZE_TOO_LARGE entry: $(head -c 1500 "$RUN_STDOUT")"

"$MOCK" dump "$BROKERS" ev >dump1.ndjson || fail "kafka_mock dump failed"
[ "$(wc -l <dump1.ndjson)" -eq 300 ] || fail "the topic should hold 300 messages: $(wc -l <dump1.ndjson)"
jq -s -e '[.[].partition] | unique == [0, 1, 2]' dump1.ndjson >/dev/null ||
    fail "messages should spread over the 3 partitions"

# Values: exactly the input records.
jq -c .value dump1.ndjson >values1.ndjson
assert_same_set in.ndjson values1.ndjson

# What each message should carry, from the ids the file sink wrote for the same records.
expected() { # the ids file -> {id, key, headers, value} per record, sorted
    jq -c 'select(.event_id != 999) | {id: ._id, value: (del(._id)),
        key: (if .user == null then null elif (.user | type) == "string" then .user
              else (.user | tojson) end)}' "$1" | jq -s -c 'sort_by(.id) | .[]'
}
actual() { # a dump -> the same shape
    jq -c '{id: .headers["sluice-record-id"], value, key}' "$1" | jq -s -c 'sort_by(.id) | .[]'
}
expected ids1/rows.ndjson >exp1.ndjson
actual dump1.ndjson >act1.ndjson
assert_same_records exp1.ndjson act1.ndjson
jq -e -s 'all(.[]; (.headers | keys) == ["app", "env", "sluice-record-id"] and
    .headers.app == "clicks" and .headers.env == "test run" and
    (.headers["sluice-record-id"] | test("^[0-9a-f]{32}$")))' dump1.ndjson >/dev/null ||
    fail "every message should carry app, env and a 32-hex sluice-record-id: $(head -n2 dump1.ndjson)"
[ "$(jq -r '.headers["sluice-record-id"]' dump1.ndjson | sort -u | wc -l)" -eq 300 ] ||
    fail "the 300 record ids should be distinct"
[ "$(jq -s '[.[] | select(.key == null)] | length' dump1.ndjson)" -eq 38 ] ||
    fail "the 38 records without a user (i % 7 == 0, i % 10 != 0) should have no key"

# --- the same input again with a fresh state directory: at-least-once, same ids ------------
pipeline st2 ids2 >p2.yaml
run_sluice run p2.yaml --once
assert_rc 0
cmp -s ids1/rows.ndjson ids2/rows.ndjson || fail "the second run should give the same record ids"
"$MOCK" dump "$BROKERS" ev >dump2.ndjson || fail "kafka_mock dump failed"
[ "$(wc -l <dump2.ndjson)" -eq 600 ] || fail "the topic should now hold 600 messages"
# Every record id appears exactly twice, each time with the same key and value.
jq -c '{id: .headers["sluice-record-id"], value, key}' dump2.ndjson | sort >pairs.txt
[ "$(uniq -c pairs.txt | awk '$1 != 2' | wc -l)" -eq 0 ] ||
    fail "each message should appear exactly twice: $(uniq -c pairs.txt | awk '$1 != 2' | head -3)"
uniq pairs.txt | jq -s -c 'sort_by(.id) | .[]' >uniq2.ndjson
assert_same_records exp1.ndjson uniq2.ndjson

# --- no broker reachable: every attempt is a transient failure, retried, then the run fails -
cat >down.yaml <<YAML
pipeline: kd
state_dir: st3
sources:
  in: {type: file, path: in.ndjson}
sinks:
  bus:
    type: kafka
    inputs: [in]
    brokers: 127.0.0.1:1
    topic: ev
    message_timeout: 300ms
    retry: {initial_backoff: 50ms, max_elapsed: 2s}
YAML
run_sluice run down.yaml --once
[ "$RUN_RC" -ne 0 ] || fail "a run with no reachable broker should fail"
assert_file_contains "$RUN_STDERR" "were not delivered"
"$MOCK" dump "$BROKERS" ev >dump3.ndjson || fail "kafka_mock dump failed"
[ "$(wc -l <dump3.ndjson)" -eq 600 ] || fail "the failed run should have added nothing to ev"
note "ok"
