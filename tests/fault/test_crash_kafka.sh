#!/usr/bin/env bash
# The kafka source under kill -9, against librdkafka's mock cluster (topic ev, 4
# partitions), while a producer adds 16,000 events in 16 chunks. Offsets come only from
# the sinks' checkpoint rows (one per partition), never from the group's commits.
#   a. One member, kafka -> sqlite + file (fan-out: the file sink commits once a second,
#      so it is often behind the sqlite sink), killed with SIGKILL four times at random
#      moments and restarted; then drained with --once. Both sinks hold every event
#      exactly once: the exact set of event ids, no line twice in the files, and not one
#      UPDATE in sqlite (a trigger counts rows written again: a record delivered twice
#      would be an upsert onto its existing row).
#   b. Two members of one group writing to one sqlite database; the first is killed with
#      SIGKILL mid-stream; the second takes its partitions over at the committed
#      positions. The table holds every event exactly once, with no row written twice.
source "$(dirname "$0")/../integration/lib.sh"

tmpdir T
cd "$T"

MOCK=$SLUICE_TOOLS/kafka_mock
[ -x "$MOCK" ] || fail "kafka_mock not found in SLUICE_TOOLS ($SLUICE_TOOLS)"
"$MOCK" serve ev:4 ev2:4 >bootstrap.txt 2>mock.err &
MOCK_PID=$!
trap 'kill "$MOCK_PID" 2>/dev/null; wait "$MOCK_PID" 2>/dev/null; _sl_cleanup' EXIT
wait_for 10 test -s bootstrap.txt
BROKERS=$(head -n1 bootstrap.txt)
SEED=${SLUICE_TEST_SEED:-$RANDOM}
RANDOM=$SEED
note "mock cluster at $BROKERS, seed $SEED"

N=16000
/usr/bin/python3 - "$N" <<'PY' >in.ndjson
import sys
for i in range(int(sys.argv[1])):
    print('{"event_id":%d,"page":"/p/%d","pad":"%s"}' % (i, i, "x" * (i % 50)))
PY

produce_all() { # produce_all TOPIC: 16 chunks, a short pause between them
    local k
    for k in $(seq 0 15); do
        sed -n "$((k * 1000 + 1)),$((k * 1000 + 1000))p" in.ndjson | "$MOCK" produce "$BROKERS" "$1" 4 ||
            return 1
        sleep 2
    done
}

pipeline() { # pipeline NAME TOPIC DB [FILE_DIR]
    cat <<YAML
pipeline: $1
state_dir: ./state-$1
sources:
  k:
    type: kafka
    brokers: "$BROKERS"
    topics: [$2]
    group: g-$2
    metadata_field: ""
    batch_size: 300
    rebalance_timeout: 20s
    properties: {session.timeout.ms: "6000", heartbeat.interval.ms: "500"}
sinks:
  db: {type: sqlite, inputs: [k], path: $3, table: ev}
YAML
    [ -n "${4:-}" ] && echo "  f: {type: file, inputs: [k], path: $4/rows.ndjson, commit_interval: 1s}"
    return 0
}

# trigger DB: count rows written again (upserts) into rewritten(event_id)
add_trigger() {
    wait_for 60 sh -c "sqlite3 '$1' \"SELECT 1 FROM sqlite_master WHERE name = 'ev'\" 2>/dev/null | grep -q 1"
    sqlite3 -cmd ".timeout 10000" "$1" \
        "CREATE TABLE IF NOT EXISTS rewritten(event_id); CREATE TRIGGER IF NOT EXISTS rw AFTER UPDATE ON ev BEGIN INSERT INTO rewritten VALUES(new.event_id); END;" ||
        fail "cannot add the trigger to $1"
}

check_db() { # check_db DB WHAT
    local got
    got=$(sqlite3 -cmd ".timeout 10000" "$1" "SELECT count(*), count(DISTINCT event_id), min(event_id), max(event_id) FROM ev")
    [ "$got" = "$N|$N|0|$((N - 1))" ] || fail "$2: the table holds count|distinct|min|max = $got, want $N|$N|0|$((N - 1))"
    got=$(sqlite3 -cmd ".timeout 10000" "$1" "SELECT count(*) FROM rewritten")
    [ "$got" = 0 ] || fail "$2: $got rows were written twice (first: $(sqlite3 "$1" 'SELECT event_id FROM rewritten LIMIT 5' | tr '\n' ' '))"
}

rows() { sqlite3 -cmd ".timeout 5000" "$1" "SELECT count(*) FROM ev" 2>/dev/null || echo 0; }

# ---- a. one member, four kills ----------------------------------------------------------
pipeline ka ev a.db out-a >ka.yaml
produce_all ev &
PROD=$!
_SL_BG_PIDS+=("$PROD")
for kill_no in 1 2 3 4; do
    start_sluice run ka.yaml
    if [ "$kill_no" = 1 ]; then add_trigger a.db; fi
    # Kill while it writes: once it has added rows (a restart first waits 3 to 9 s for
    # the group to forget the killed member), a random fraction of a second later.
    before=$(rows a.db)
    wait_for 60 sh -c "[ \"\$(sqlite3 -cmd '.timeout 5000' a.db 'SELECT count(*) FROM ev' 2>/dev/null || echo 0)\" -gt $before ]"
    sleep "0.$((RANDOM % 10))"
    kill -KILL "$SLUICE_PID"
    wait "$SLUICE_PID" 2>/dev/null || true
    note "kill $kill_no: $(rows a.db) rows so far"
done
wait "$PROD" || fail "the producer failed"
run_sluice run --once --report a.json ka.yaml
assert_rc 0
check_db a.db "a (sqlite)"
/usr/bin/python3 - "$N" <<'PY' || fail "a (file): the files do not hold every event exactly once"
import glob, json, sys
n = int(sys.argv[1])
recs = [json.loads(l) for f in glob.glob("out-a/*.ndjson") for l in open(f)]
ids = [r["event_id"] for r in recs]
dups = len(ids) - len(set(ids))
assert dups == 0, f"{dups} duplicates"
assert sorted(ids) == list(range(n)), f"{len(ids)} lines, {n - len(set(ids))} missing"
for r in recs:
    r.pop("_sluice_id")
got = sorted(json.dumps(r, separators=(",", ":")) for r in recs)
want = sorted(l.rstrip("\n") for l in open("in.ndjson"))
assert got == want, "the records differ from the produced values"
PY

# ---- b. two members, one killed -----------------------------------------------------------
pipeline kb1 ev2 b.db >kb1.yaml
pipeline kb2 ev2 b.db >kb2.yaml
sed -i 's/^pipeline: kb2/pipeline: kb1/' kb2.yaml # one pipeline, two processes
produce_all ev2 &
PROD=$!
_SL_BG_PIDS+=("$PROD")
start_sluice run kb1.yaml
P1=$SLUICE_PID
P1_ERR=$RUN_STDERR
add_trigger b.db
sleep 1
"$SLUICE" run kb2.yaml >b2.out 2>b2.err </dev/null &
P2=$!
_SL_BG_PIDS+=("$P2")
# Wait until the second member has its share, then kill the first mid-stream.
wait_for 60 grep -q 'assigned [1-9]' b2.err
sleep "1.$((RANDOM % 10))"
kill -KILL "$P1"
wait "$P1" 2>/dev/null || true
note "b: first member killed at $(sqlite3 -cmd '.timeout 5000' b.db 'SELECT count(*) FROM ev') rows"
wait "$PROD" || fail "the producer failed"
wait_for 90 sh -c "[ \"\$(sqlite3 -cmd '.timeout 5000' b.db 'SELECT count(*) FROM ev')\" -ge $N ]"
grep -q 'assigned 4 partitions' b2.err || fail "b: the second member never took all 4 partitions over: $(grep assigned b2.err)"
kill -TERM "$P2"
wait "$P2" || fail "b: the second member did not stop cleanly on SIGTERM"
check_db b.db "b (two members)"
[ "$(sqlite3 b.db "SELECT count(*) FROM _sluice_checkpoints WHERE source LIKE 'k#ev2/%'")" = 4 ] ||
    fail "b: not one checkpoint row per partition"

note "kafka: four kills and a killed group member, every event exactly once in every sink"
