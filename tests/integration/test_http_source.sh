#!/usr/bin/env bash
# The http source (docs/sources.md): records POSTed as NDJSON or a JSON array arrive in a
# file sink exactly as sent; a bad line gets 400 with per-line errors while the good lines
# are delivered; gzip bodies; 401/403 with auth_token, 404, 405, 413, 415. Then crashes: sluice is
# killed with SIGKILL right after acknowledged POSTs, a torn tail is appended by hand to the
# last write-ahead log segment, `sluice wal check` reports it (exit 1) and `sluice wal
# repair` cuts exactly those bytes; after a second kill the torn tail is cut at start with
# a message naming the byte count. Every acknowledged record ends in the sink exactly once
# (compared record by record), and released segments are deleted. Last, a sink that cannot
# commit makes the log fill up: 503 with Retry-After, and exactly the acknowledged records
# arrive once it can. And lag: while a sink's database is locked, /metrics (parsed with
# prometheus_client) shows exactly the framed bytes waiting after its checkpoint, the
# checkpoint's segment and offset and the log's bytes and segments on disk; after a kill,
# `sluice status` shows the same bytes behind; after a run, 0.
. "$(dirname "$0")/lib.sh"

PY=python3
tmpdir
cd "$T"
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT/v1/ingest/web

# post.py URL BODYFILE [HEADER: VALUE]... [--method M]: prints the status, then the body.
cat >post.py <<'PY'
import sys, urllib.error, urllib.request
url, body, method, hdr = sys.argv[1], open(sys.argv[2], "rb").read(), "POST", {}
for a in sys.argv[3:]:
    if a.startswith("--method="):
        method = a[9:]
    else:
        k, v = a.split(": ", 1)
        hdr[k] = v
req = urllib.request.Request(url, data=body if method == "POST" else None, headers=hdr,
                             method=method)
try:
    with urllib.request.urlopen(req, timeout=30) as r:
        print(r.status)
        sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.headers.get("Retry-After") or "")
    sys.stdout.write(e.read().decode())
except OSError as e:
    print("down")
PY
AUTH="Authorization: Bearer s3cret"
post() { "$PY" "$T/post.py" "$@"; }
up() { printf '{}' >ping.json; [ "$(post "$URL" ping.json | sed -n 1p)" != down ]; }

cat >p.yaml <<YAML
pipeline: ingest
sources:
  web:
    type: http
    listen: 127.0.0.1:$PORT
    auth_token: s3cret
    max_body_bytes: 4KiB
    segment_bytes: 4KiB
sinks:
  out: {type: file, inputs: [web], path: out/ev.ndjson, commit_interval: 0}
YAML

# expect NAME FILE WANT_STATUS_LINE WANT_BODY: the reply to a request, exactly.
expect() {
    local got
    got=$(cat "$2")
    [ "$got" = "$(printf '%s\n%s' "$3" "$4")" ] ||
        fail "$1: got reply [$got], want [$3 / $4]"
}

start_sluice run p.yaml
wait_for 20 up

printf '{"id":1,"v":"a"}\n{"id":2,"v":"b"}\n' >b1.json
post "$URL" b1.json "$AUTH" >r
expect "NDJSON" r 200 '{"accepted":2,"rejected":0,"errors":[]}'
printf '[{"id":3,"v":"c"},\n {"id":4,\n  "v":"d"}]' >b2.json
post "$URL" b2.json "$AUTH" >r
expect "JSON array" r 200 '{"accepted":2,"rejected":0,"errors":[]}'
printf '{"id":5}\n{"id":\n\n[1,2]\n{"id":6}\n' >b3.json
post "$URL" b3.json "$AUTH" >r
expect "bad lines" r "400 " '{"accepted":2,"rejected":2,"errors":[{"line":2,"error":"unexpected end of input at byte 6: expected a value (the document is truncated)"},{"line":4,"error":"expected a JSON object, found an array"}]}'
printf '[{"id":7}, 8]' >b4.json
post "$URL" b4.json "$AUTH" >r
expect "bad element" r "400 " '{"accepted":1,"rejected":1,"errors":[{"element":2,"error":"expected a JSON object, found a scalar"}]}'
post "$URL" b1.json >r
[ "$(head -1 r)" = "401 " ] || fail "no token: $(cat r)"
post "$URL" b1.json "Authorization: Bearer wrong" >r
[ "$(head -1 r)" = "403 " ] || fail "wrong token: $(cat r)"
post "http://127.0.0.1:$PORT/v1/ingest/other" b1.json "$AUTH" >r
[ "$(head -1 r)" = "404 " ] || fail "other source: $(cat r)"
post "$URL" b1.json "$AUTH" --method=GET >r
[ "$(head -1 r)" = "405 " ] || fail "GET: $(cat r)"
# gzip: accepted and decompressed (records 8, 9); not gzip at all: 400; a bomb that
# decompresses past max_body_bytes: 413; another encoding: 415.
printf '{"id":8,"v":"gz"}\n{"id":9,"v":"gz"}\n' | "$PY" -c 'import gzip, sys; sys.stdout.buffer.write(gzip.compress(sys.stdin.buffer.read()))' >gz.bin
post "$URL" gz.bin "$AUTH" "Content-Encoding: gzip" >r
expect "gzip" r 200 '{"accepted":2,"rejected":0,"errors":[]}'
post "$URL" b1.json "$AUTH" "Content-Encoding: gzip" >r
[ "$(head -1 r)" = "400 " ] || fail "a body that is not gzip: $(cat r)"
"$PY" -c 'import gzip, sys; sys.stdout.buffer.write(gzip.compress(b"{\"pad\":\"" + b"x" * 100000 + b"\"}\n"))' >bomb.bin
post "$URL" bomb.bin "$AUTH" "Content-Encoding: gzip" >r
[ "$(head -1 r)" = "413 " ] || fail "gzip over max_body_bytes once decompressed: $(cat r)"
post "$URL" b1.json "$AUTH" "Content-Encoding: br" >r
[ "$(head -1 r)" = "415 " ] || fail "another encoding: $(cat r)"
"$PY" -c 'import sys; sys.stdout.write("{\"pad\":\"%s\"}\n" % ("x" * 5000))' >big.json
post "$URL" big.json "$AUTH" >r
[ "$(head -1 r)" = "413 " ] || fail "5 KB body over max_body_bytes 4KiB: $(cat r)"

# Every accepted record is committed (the in-progress file), then a clean stop.
committed() { cat out/.ev.ndjson.*.inprogress out/ev*.ndjson 2>/dev/null | wc -l; }
wait_for 20 test "$(committed)" -ge 9
kill -TERM "$SLUICE_PID"
wait "$SLUICE_PID" || fail "SIGTERM exit status $?"
cat >want1 <<'EOF'
{"id":1,"v":"a"}
{"id":2,"v":"b"}
{"id":3,"v":"c"}
{"id":4,"v":"d"}
{"id":5}
{"id":6}
{"id":7}
{"id":8,"v":"gz"}
{"id":9,"v":"gz"}
EOF
strip() { "$PY" -c '
import json, sys, glob
for f in sorted(glob.glob("out/ev*.ndjson")) + sorted(glob.glob("out/.ev.ndjson.*.inprogress")):
    for l in open(f):
        r = json.loads(l); r.pop("_sluice_id"); print(json.dumps(r, separators=(",", ":")))'; }
strip >got1
diff want1 got1 >&2 || fail "delivered records differ from the accepted ones"

# ---- crashes: kill -9 right after acknowledged POSTs -----------------------------------
# send FIRST COUNT: COUNT records {"id":k} in POSTs of 10; every one must be acknowledged.
send() {
    "$PY" - "$URL" "$1" "$2" <<'PY' || fail "a POST was not acknowledged"
import sys, urllib.request, json
url, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for b in range(first, first + count, 10):
    body = "".join('{"id":%d,"pad":"%s"}\n' % (k, "p" * 40) for k in range(b, min(b + 10, first + count)))
    req = urllib.request.Request(url, data=body.encode(), method="POST",
                                 headers={"Authorization": "Bearer s3cret"})
    with urllib.request.urlopen(req, timeout=30) as r:
        rep = json.loads(r.read())
        assert r.status == 200 and rep["accepted"] == min(10, first + count - b), rep
PY
}
WAL=.sluice/ingest/wal/web
last_segment() { ls "$WAL"/*.wal | tail -1; }

start_sluice run p.yaml
wait_for 20 up
send 100 300
kill -KILL "$SLUICE_PID"
wait "$SLUICE_PID" 2>/dev/null || true
seg=$(last_segment)
printf '\x40\x00\x00\x00\x01\x02\x03\x04{"id":' >>"$seg" # 14 bytes: a frame cut short
run_sluice wal check p.yaml
assert_rc 1
assert_file_contains "$RUN_STDOUT" "DAMAGED: torn tail of 14 bytes"
run_sluice wal repair p.yaml
assert_rc 0
assert_file_contains "$RUN_STDOUT" "repaired: dropped 14 torn bytes from segment"
run_sluice wal check p.yaml
assert_rc 0
assert_file_contains "$RUN_STDOUT" "source web: intact"

start_sluice run p.yaml
wait_for 20 up
send 400 200
kill -KILL "$SLUICE_PID"
wait "$SLUICE_PID" 2>/dev/null || true
seg=$(last_segment)
printf '\x05\x00\x00\x00\x00\x00\x00\x00{"id"' >>"$seg" # 13 bytes: a whole frame, CRC wrong
run_sluice run p.yaml --once
assert_rc 0
assert_file_contains "$RUN_STDERR" "truncated a torn tail of 13 bytes in segment"

"$PY" -c '
for k in range(100, 600):
    print("{\"id\":%d,\"pad\":\"%s\"}" % (k, "p" * 40))' >want2
cat want1 want2 >want_all
strip >got_all
sort want_all >a
sort got_all >b
diff a b >&2 || fail "after the kills, the sink does not hold every acknowledged record exactly once"

# Released segments are gone: 500 records of ~70 bytes filled several 4 KiB segments.
first=$(ls "$WAL" | head -1)
[ "$first" != 00000000000000000001.wal ] || fail "segment 1 was never released: $(ls "$WAL")"
nseg=$(ls "$WAL" | wc -l)
[ "$nseg" -le 2 ] || fail "$nseg segments left after everything was committed: $(ls "$WAL")"
# ---- all_or_nothing and quota: a sink that cannot commit (its database locked) stops releasing segments;
# once the log holds more than wal_max_bytes, requests get 503 with Retry-After and are not
# kept; after the lock is gone, exactly the acknowledged records arrive.
PORT2=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >q.yaml <<YAML
pipeline: quota
sources:
  web: {type: http, listen: "127.0.0.1:$PORT2", segment_bytes: 4KiB, wal_max_bytes: 8KiB,
        all_or_nothing: true}
sinks:
  db: {type: sqlite, inputs: [web], path: q.db, table: t, key: id, busy_timeout: 100ms}
YAML
start_sluice run q.yaml
URL=http://127.0.0.1:$PORT2/v1/ingest/web
wait_for 20 up
"$PY" - "$URL" <<'PY' || fail "quota"
import json, sqlite3, sys, time, urllib.error, urllib.request
url = sys.argv[1]
def post(b):
    body = "".join('{"id":%d,"pad":"%s"}\n' % (b * 10 + k, "p" * 100) for k in range(10)).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=10) as r:
            assert json.loads(r.read())["accepted"] == 10
            return r.status, None
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Retry-After")
# all_or_nothing: one bad line and the request's good line is not kept either
req = urllib.request.Request(url, data=b'{"id":9000}\n{"id":\n')
try:
    urllib.request.urlopen(req, timeout=10)
    assert False, "a bad line was answered 200"
except urllib.error.HTTPError as e:
    body = e.read().decode()
    assert e.code == 400 and body.startswith('{"accepted":0,"rejected":1,"errors":[{"line":2,'), body
acked = []
assert post(0) == (200, None)
acked.append(0)
deadline = time.time() + 10
while time.time() < deadline:  # the sink has created its table and committed batch 0
    try:
        if sqlite3.connect("q.db").execute("select count(*) from t").fetchone()[0] == 10:
            break
    except sqlite3.Error:
        pass
    time.sleep(0.05)
lock = sqlite3.connect("q.db", isolation_level=None)
lock.execute("BEGIN EXCLUSIVE")
got = [(b, post(b)) for b in range(1, 12)]
lock.execute("ROLLBACK")
lock.close()
assert all(r in ((200, None), (503, "1")) for _, r in got), got
assert (503, "1") in [r for _, r in got], "no 503 with Retry-After once the quota was full: %s" % got
acked += [b for b, r in got if r[0] == 200]
want = sorted(b * 10 + k for b in acked for k in range(10))
deadline = time.time() + 20
while time.time() < deadline:
    ids = [r[0] for r in sqlite3.connect("q.db").execute("select id from t order by id")]
    if ids == want:
        break
    time.sleep(0.1)
assert ids == want, (ids, want)
PY
kill -TERM "$SLUICE_PID"
wait "$SLUICE_PID" || fail "SIGTERM exit status $?"

# A file sink that commits only now and then (commit_interval 1h): segments must stay until
# its manifest covers them. 100 acknowledged records, kill -9, run --once: all 100 arrive.
mkdir late && cd late
PORT2=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >p.yaml <<YAML
pipeline: ingest_late
sources:
  web: {type: http, listen: 127.0.0.1:$PORT2, segment_bytes: 4KiB}
sinks:
  out: {type: file, inputs: [web], path: out/ev.ndjson, commit_interval: 1h}
YAML
start_sluice run p.yaml
URL=http://127.0.0.1:$PORT2/v1/ingest/web
wait_for 20 up
for b in $(seq 0 9); do
    for k in $(seq 0 9); do printf '{"id":%d,"pad":"%0100d"}\n' $((b * 10 + k)) 0; done >late$b.json
    [ "$(post "$URL" late$b.json | sed -n 1p)" = 200 ] || fail "late batch $b not acknowledged"
done
sleep 1
kill -9 "$SLUICE_PID"
wait "$SLUICE_PID" 2>/dev/null || true
run_sluice run p.yaml --once
assert_rc 0
# (the readiness pings post {} records: they have no id)
got=$(cat out/*.ndjson | "$PY" -c 'import json, sys; print(sorted(r["id"] for r in map(json.loads, sys.stdin) if "id" in r))')
[ "$got" = "$("$PY" -c 'print(list(range(100)))')" ] ||
    fail "with a sink committing late, acknowledged records were lost or doubled: $got"
cd ..

# ---- lag and the write-ahead log in /metrics and `sluice status` -------------------------
# A sqlite sink commits 10 records, then another connection locks its database: 40 more
# records are acknowledged and wait in the log. The lag is then exactly their framed bytes
# (8 + length each), in /metrics (parsed with prometheus_client) while the run waits, and
# in `sluice status` after a kill -9; the log's bytes and segments are what is on disk;
# once the sink can commit again, the lag is 0.
mkdir lag && cd lag
PORT3=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
APORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PROM=python3
[ -x /usr/bin/python3 ] && PROM=/usr/bin/python3
cat >p.yaml <<YAML
pipeline: lag
sources:
  web: {type: http, listen: "127.0.0.1:$PORT3", segment_bytes: 4KiB}
sinks:
  db: {type: sqlite, inputs: [web], path: lag.db, table: t, key: id, busy_timeout: 100ms}
admin: {listen: "127.0.0.1:$APORT"}
YAML
# metrics.py PORT: the exposition, parsed, as lines "NAME{sink,source}|{stage} VALUE" and
# "sluice_checkpoint_info POSITION".
cat >metrics.py <<'PY'
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=10).read().decode()
for fam in text_string_to_metric_families(text):
    for s in fam.samples:
        if s.name == "sluice_checkpoint_info":
            print("%s %s/%s %s" % (s.name, s.labels["sink"], s.labels["source"], s.labels["position"]))
        elif s.name.startswith(("sluice_checkpoint_", "sluice_wal_")):
            who = s.labels.get("stage") or "%s/%s" % (s.labels["sink"], s.labels["source"])
            print("%s %s %s" % (s.name, who, repr(s.value) if s.name.endswith("seconds") else int(s.value)))
PY
metric() { "$PROM" metrics.py "$APORT" | sed -n "s|^$1 $2 ||p"; }
aready() { "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "http://127.0.0.1:$APORT/ready" 2>/dev/null; }
URL=http://127.0.0.1:$PORT3/v1/ingest/web
start_sluice run p.yaml
wait_for 20 aready
# body FIRST: 10 records {"id":k,"pad":...} of different lengths
body() { for k in $(seq "$1" $(($1 + 9))); do printf '{"id":%d,"pad":"%0*d"}\n' "$k" $((60 + k * 3)) 0; done; }
framed() { awk '{ n += 8 + length($0) } END { print n }' "$@"; }
body 0 >a.json
[ "$(post "$URL" a.json | sed -n 1p)" = 200 ] || fail "lag: first body not acknowledged"
rows() { [ "$(sqlite3 lag.db 'SELECT count(*) FROM t' 2>/dev/null)" = "$1" ]; }
wait_for 20 rows 10
lag_is() { [ "$(metric sluice_checkpoint_lag_bytes db/web)" = "$1" ]; }
wait_for 20 lag_is 0
pos_a="1:$((16 + $(framed a.json)))"
[ "$(metric sluice_checkpoint_info db/web)" = "$pos_a" ] ||
    fail "lag: checkpoint position $(metric sluice_checkpoint_info db/web), expected $pos_a"
"$PY" -c '
import sqlite3, os, time
c = sqlite3.connect("lag.db", isolation_level=None)
c.execute("BEGIN EXCLUSIVE")
open("locked", "w").write("1")
while os.path.exists("locked"):
    time.sleep(0.05)
c.execute("ROLLBACK")' &
locker=$!
_SL_BG_PIDS+=("$locker")
wait_for 20 test -s locked
for b in 10 20 30 40; do
    body $b >b$b.json
    [ "$(post "$URL" b$b.json | sed -n 1p)" = 200 ] || fail "lag: body $b not acknowledged"
done
want_lag=$(framed b10.json b20.json b30.json b40.json)
wal_bytes=$(cat "$(pwd)"/.sluice/lag/wal/web/*.wal | wc -c)
wal_segs=$(ls .sluice/lag/wal/web | wc -l)
[ "$wal_segs" -ge 2 ] || fail "lag: the test wants the records to span segments: $(ls -l .sluice/lag/wal/web)"
"$PROM" metrics.py "$APORT" >m1.txt
grep -qx "sluice_checkpoint_lag_bytes db/web $want_lag" m1.txt ||
    fail "lag: expected sluice_checkpoint_lag_bytes $want_lag while the sink is locked: $(cat m1.txt)"
grep -qx "sluice_checkpoint_info db/web $pos_a" m1.txt || fail "lag: position moved while locked: $(cat m1.txt)"
grep -qx "sluice_checkpoint_position db/web $((16 + $(framed a.json)))" m1.txt ||
    fail "lag: sluice_checkpoint_position: $(cat m1.txt)"
grep -qx "sluice_checkpoint_segment db/web 1" m1.txt || fail "lag: sluice_checkpoint_segment: $(cat m1.txt)"
grep -qx "sluice_wal_bytes web $wal_bytes" m1.txt || fail "lag: expected sluice_wal_bytes $wal_bytes: $(cat m1.txt)"
grep -qx "sluice_wal_segments web $wal_segs" m1.txt || fail "lag: expected sluice_wal_segments $wal_segs: $(cat m1.txt)"
grep -q "^sluice_checkpoint_last_commit_timestamp_seconds db/web " m1.txt ||
    fail "lag: no sluice_checkpoint_last_commit_timestamp_seconds: $(cat m1.txt)"
# Killed while the 40 records wait: status (offline) counts the same bytes.
kill -KILL "$SLUICE_PID"
wait "$SLUICE_PID" 2>/dev/null || true
rm locked
wait "$locker" || true
"$SLUICE" status p.yaml --json >st1.json || fail "lag: status failed"
[ "$(jq -c '.sinks[0].sources[0] | [.position, .bytes_behind]' st1.json)" = "[\"$pos_a\",$want_lag]" ] ||
    fail "lag: status after the kill: $(cat st1.json), expected position $pos_a and $want_lag bytes behind"
"$SLUICE" status p.yaml | grep -qx "    behind       $want_lag bytes" || fail "lag: status text: $("$SLUICE" status p.yaml)"
run_sluice run p.yaml --once
assert_rc 0
"$SLUICE" status p.yaml --json >st2.json || fail "lag: status failed"
[ "$(jq -c '.sinks[0].sources[0].bytes_behind' st2.json)" = 0 ] || fail "lag: not caught up: $(cat st2.json)"
[ "$(sqlite3 lag.db 'SELECT count(*), sum(id) FROM t')" = "50|1225" ] ||
    fail "lag: rows after the run: $(sqlite3 lag.db 'SELECT count(*), sum(id) FROM t')"
cd ..

note "http source: exact delivery, per-line errors, auth, limits, kills, torn tails, quota, late commits and lag ok"
