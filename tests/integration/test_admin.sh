#!/usr/bin/env bash
# The admin server of a running pipeline (docs/observability.md): a follow-mode pipeline
# with `admin: {listen: 127.0.0.1:PORT}` serves /health, /ready and /metrics while it runs.
# The exposition is parsed by the Prometheus client library's own parser of the text
# format, and its values are compared exactly with what was written: records read equal
# the lines appended so far, and after more lines arrive every counter grew by exactly the
# difference; the checkpoint series show the position `sluice status` reads from the sink's
# table, committed at the sink's last commit, with 0 bytes after it. A stop turns /ready to 503 while the drain lasts, then the run exits 0; an
# address already in use is an error (exit 1) that names the address.
. "$(dirname "$0")/lib.sh"

# The parser comes from Debian's python3-prometheus-client, which is installed for the
# system interpreter. The python3 first on PATH may be another one (a pyenv build) without
# it, so prefer /usr/bin/python3, as a fresh Debian machine has it.
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
"$PY" -c 'import prometheus_client.parser' 2>/dev/null ||
    fail "$PY cannot import prometheus_client (install python3-prometheus-client: scripts/deps.sh)"

tmpdir
cd "$T"
free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT

# status URL [METHOD]: prints the HTTP status, then the body.
cat >get.py <<'PY'
import sys, urllib.error, urllib.request
req = urllib.request.Request(sys.argv[1], method=sys.argv[2] if len(sys.argv) > 2 else "GET")
try:
    with urllib.request.urlopen(req, timeout=10) as r:
        status, body, ctype = r.status, r.read(), r.headers.get("Content-Type")
except urllib.error.HTTPError as e:
    status, body, ctype = e.code, e.read(), e.headers.get("Content-Type")
except OSError as e:
    print("down")
    print(e)
    sys.exit(0)
print(status)
print(ctype)
sys.stdout.write(body.decode())
PY
http() { "$PY" get.py "$@"; }
ready() { [ "$(http "$BASE/ready" | sed -n 1p)" = 200 ]; }

cat >p.yaml <<YAML
pipeline: admin_test
sources:
  src: {type: file, path: in.ndjson, follow: true, poll_interval: 50ms}
transforms:
  even: {type: filter, inputs: [src], where: "n % 2 == 0"}
sinks:
  out: {type: sqlite, inputs: [even], path: w.db, table: t, key: n, busy_timeout: 200ms}
admin: {listen: 127.0.0.1:$PORT}
YAML

# append FIRST COUNT: lines {"n": FIRST} .. {"n": FIRST+COUNT-1}
append() {
    "$PY" -c '
import sys
first, count = int(sys.argv[1]), int(sys.argv[2])
with open("in.ndjson", "a") as f:
    for n in range(first, first + count):
        f.write("{\"n\":%d,\"page\":\"/p/%d\"}\n" % (n, n % 7))
' "$1" "$2"
}
: >in.ndjson
append 0 1000

start_sluice run p.yaml --log-format json
wait_for 60 ready

# scrape FILE: the parsed exposition as JSON; checks the format on the way.
cat >scrape.py <<'PY'
import json, sys, time, urllib.request
from prometheus_client.parser import text_string_to_metric_families

url, out = sys.argv[1], sys.argv[2]
with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
    ctype = r.headers.get("Content-Type")
    text = r.read().decode("utf-8")
assert ctype == "text/plain; version=0.0.4; charset=utf-8", ctype

# HELP and TYPE exactly once per family, before its samples, in the raw text.
helps, types = {}, {}
for line in text.splitlines():
    if line.startswith("# HELP "):
        name, _, doc = line[7:].partition(" ")
        assert name not in helps and doc, line
        helps[name] = doc
    elif line.startswith("# TYPE "):
        name, _, typ = line[7:].partition(" ")
        assert name not in types and name in helps, line
        types[name] = typ
    else:
        assert line and not line.startswith("#"), repr(line)
        assert any(line.startswith(f) for f in types), "sample before its TYPE: " + line
assert set(helps) == set(types), (set(helps) ^ set(types))

fams = {}
for fam in text_string_to_metric_families(text):
    # The parser names a counter's family without _total; its samples keep it.
    full = fam.name + "_total" if fam.type == "counter" else fam.name
    assert full.startswith("sluice_"), full
    assert types.get(full) == fam.type and fam.documentation == helps[full], (full, fam.type)
    if fam.type == "counter":
        assert all(s.name == full for s in fam.samples), full
    fams[full] = {"type": fam.type,
                  "samples": [[s.name, s.labels, s.value] for s in fam.samples]}
assert set(fams) == set(types), set(types) - set(fams)
json.dump({"at": time.time(), "families": fams}, open(out, "w"))
PY
scrape() { "$PY" scrape.py "$BASE" "$1" || fail "scrape of /metrics failed (see above)"; }

# check FILE LINES: exact values for LINES lines read so far (n = 0 .. LINES-1).
cat >check.py <<'PY'
import json, sys, time
doc = json.load(open(sys.argv[1]))
lines = int(sys.argv[2])
status = json.load(open(sys.argv[3]))  # `sluice status --json` right after the scrape
fams, at = doc["families"], doc["at"]
problems = []

def want(cond, msg):
    if not cond:
        problems.append(msg)

expected_types = {
    "sluice_up": "gauge", "sluice_ready": "gauge", "sluice_build_info": "gauge",
    "sluice_process_resident_memory_bytes": "gauge",
    "sluice_process_virtual_memory_bytes": "gauge",
    "sluice_records_in_total": "counter", "sluice_records_out_total": "counter",
    "sluice_bytes_in_total": "counter", "sluice_bytes_out_total": "counter",
    "sluice_records_dropped_total": "counter", "sluice_records_rejected_total": "counter",
    "sluice_records_dlq_total": "counter", "sluice_records_quarantined_total": "counter",
    "sluice_records_skipped_total": "counter", "sluice_empty_lines_total": "counter",
    "sluice_gate_warnings_total": "counter", "sluice_batches_total": "counter",
    "sluice_sink_retries_total": "counter", "sluice_sink_breaker_opens_total": "counter",
    "sluice_queue_batches": "gauge", "sluice_queue_bytes": "gauge",
    "sluice_queue_capacity_batches": "gauge", "sluice_queue_capacity_bytes": "gauge",
    "sluice_sink_breaker_state": "gauge", "sluice_sink_breaker": "gauge",
    "sluice_sink_last_commit_timestamp_seconds": "gauge",
    "sluice_sink_seconds_since_last_commit": "gauge",
    "sluice_sink_end_to_end_lag_seconds": "gauge",
    "sluice_batch_commit_latency_seconds": "histogram",
    "sluice_wal_bytes": "gauge", "sluice_wal_segments": "gauge",
    "sluice_checkpoint_info": "gauge", "sluice_checkpoint_position": "gauge",
    "sluice_checkpoint_segment": "gauge",
    "sluice_checkpoint_last_commit_timestamp_seconds": "gauge",
    "sluice_checkpoint_lag_bytes": "gauge", "sluice_checkpoint_lag_messages": "gauge",
}
want({k: v["type"] for k, v in fams.items()} == expected_types,
     f"families differ: {sorted(set(fams) ^ set(expected_types))}")

stages = {"src": ("source", "file"), "even": ("transform", "filter"), "out": ("sink", "sqlite")}

def value(fam, stage, name=None, **extra):
    got = [v for n, l, v in fams[fam]["samples"]
           if l.get("stage") == stage and (name is None or n == name)
           and all(l.get(k) == x for k, x in extra.items())]
    want(len(got) == 1, f"{fam}{{stage={stage}}}: {len(got)} samples")
    return got[0] if got else None

for fam, d in fams.items():
    for n, l, v in d["samples"]:
        want(l.get("pipeline") == "admin_test", f"{n}: pipeline label {l}")
        if "stage" in l:
            want((l.get("kind"), l.get("plugin")) == stages.get(l["stage"]),
                 f"{n}: labels {l}")

evens = (lines + 1) // 2
exact = {
    ("sluice_records_in_total", "src"): lines, ("sluice_records_out_total", "src"): lines,
    ("sluice_records_in_total", "even"): lines, ("sluice_records_out_total", "even"): evens,
    ("sluice_records_dropped_total", "even"): lines - evens,
    ("sluice_records_in_total", "out"): evens, ("sluice_records_out_total", "out"): evens,
    ("sluice_records_rejected_total", "src"): 0, ("sluice_records_rejected_total", "out"): 0,
    ("sluice_records_skipped_total", "out"): 0, ("sluice_empty_lines_total", "src"): 0,
    ("sluice_sink_retries_total", "out"): 0, ("sluice_sink_breaker_opens_total", "out"): 0,
    ("sluice_sink_breaker_state", "out"): 0, ("sluice_queue_capacity_batches", "out"): 4,
}
for (fam, stage), v in exact.items():
    got = value(fam, stage)
    want(got == v, f"{fam}{{stage={stage}}} = {got}, expected {v}")
# Bytes read are the input file's bytes, line terminators included.
with open("in.ndjson", "rb") as f:
    size = len(f.read())
want(value("sluice_bytes_in_total", "src") == size,
     f"bytes read {value('sluice_bytes_in_total', 'src')} != {size}")
for s, v in (("closed", 1), ("open", 0), ("half_open", 0)):
    want(value("sluice_sink_breaker", "out", state=s) == v, f"breaker state {s}")
for fam in ("sluice_up", "sluice_ready", "sluice_build_info"):
    want([v for _, _, v in fams[fam]["samples"]] == [1], f"{fam} is not 1")
rss = fams["sluice_process_resident_memory_bytes"]["samples"][0][2]
want(1 << 20 < rss < 4 << 30, f"resident memory {rss}")

# The histogram: buckets at the documented bounds, cumulative, +Inf = count = the sink's
# batches; sum within [0, count * 10 s].
h = [(l["le"], v) for n, l, v in fams["sluice_batch_commit_latency_seconds"]["samples"]
     if n.endswith("_bucket") and l["stage"] == "out"]
les = [le for le, _ in h]
want(les == ["0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5",
             "5", "10", "+Inf"], f"bucket bounds {les}")
counts = [v for _, v in h]
want(all(a <= b for a, b in zip(counts, counts[1:])), f"buckets not cumulative: {counts}")
count = value("sluice_batch_commit_latency_seconds", "out",
              "sluice_batch_commit_latency_seconds_count")
total = value("sluice_batch_commit_latency_seconds", "out",
              "sluice_batch_commit_latency_seconds_sum")
batches = value("sluice_batches_total", "out")
want(counts and counts[-1] == count == batches and batches >= 1,
     f"+Inf bucket {counts[-1:]}, count {count}, sink batches {batches}")
want(total is not None and 0 <= total <= 10 * (count or 0), f"latency sum {total}")
# Freshness: the last commit happened during this test and the lag is not negative.
ts = value("sluice_sink_last_commit_timestamp_seconds", "out")
want(ts is not None and at - 300 < ts <= at + 1, f"last commit at {ts}, scraped at {at}")
age = value("sluice_sink_seconds_since_last_commit", "out")
lag = value("sluice_sink_end_to_end_lag_seconds", "out")
want(age is not None and 0 <= age < 300 and lag is not None and lag >= age,
     f"seconds since commit {age}, end-to-end lag {lag}")

# Checkpoints, per (sink, source): the position the sink committed (the same string
# `sluice status` reads from the sink's own table), committed with the sink's last commit,
# with nothing of the input after it. A file source's position has no single number and
# no write-ahead log, so those families have no samples here.
def ckpt(fam):
    return [(l, v) for n, l, v in fams[fam]["samples"]]
pos = status["sinks"][0]["sources"][0]["position"]
want(ckpt("sluice_checkpoint_info") ==
     [({"pipeline": "admin_test", "sink": "out", "source": "src", "position": pos}, 1)],
     f"checkpoint info {ckpt('sluice_checkpoint_info')}, status position {pos}")
pair = {"pipeline": "admin_test", "sink": "out", "source": "src"}
want(ckpt("sluice_checkpoint_lag_bytes") == [(pair, 0)],
     f"checkpoint lag {ckpt('sluice_checkpoint_lag_bytes')}, expected 0 (caught up)")
want(status["sinks"][0]["sources"][0]["bytes_behind"] == 0, "status: bytes behind")
want(ckpt("sluice_checkpoint_last_commit_timestamp_seconds") == [(pair, ts)],
     f"checkpoint commit time {ckpt('sluice_checkpoint_last_commit_timestamp_seconds')} "
     f"!= the sink's last commit {ts}")
for fam in ("sluice_checkpoint_position", "sluice_checkpoint_segment",
            "sluice_checkpoint_lag_messages", "sluice_wal_bytes", "sluice_wal_segments"):
    want(ckpt(fam) == [], f"{fam} has samples: {ckpt(fam)}")
for p in problems:
    print("  " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY

# committed N: the sink's table holds N rows and the metrics say the sink wrote them.
committed() {
    [ "$(sqlite3 w.db 'SELECT count(*) FROM t' 2>/dev/null)" = "$1" ] &&
        http "$BASE/metrics" | grep -x >/dev/null \
            "sluice_records_out_total{pipeline=\"admin_test\",stage=\"out\",kind=\"sink\",plugin=\"sqlite\"} $1"
}

note "first 1000 lines"
wait_for 60 committed 500
scrape s1.json
"$SLUICE" status p.yaml --json >st1.json || fail "status failed"
"$PY" check.py s1.json 1000 st1.json || fail "metrics after 1000 lines"

note "600 more lines"
append 1000 600
wait_for 60 committed 800
scrape s2.json
"$SLUICE" status p.yaml --json >st2.json || fail "status failed"
"$PY" check.py s2.json 1600 st2.json || fail "metrics after 1600 lines"
# Counters grew by exactly what was appended; histogram count by the new batches.
"$PY" - s1.json s2.json <<'PY' || fail "counter deltas"
import json, sys
a, b = (json.load(open(p))["families"] for p in sys.argv[1:])
def v(f, fam, stage, name=None):
    return next(x for n, l, x in f[fam]["samples"]
                if l.get("stage") == stage and (name is None or n == name))
for fam, stage, d in (("sluice_records_in_total", "src", 600),
                      ("sluice_records_dropped_total", "even", 300),
                      ("sluice_records_out_total", "out", 300)):
    assert v(b, fam, stage) - v(a, fam, stage) == d, (fam, stage, v(a, fam, stage), v(b, fam, stage))
hc = "sluice_batch_commit_latency_seconds"
dc = v(b, hc, "out", hc + "_count") - v(a, hc, "out", hc + "_count")
db = v(b, "sluice_batches_total", "out") - v(a, "sluice_batches_total", "out")
assert dc == db >= 1, (dc, db)
PY

# The other routes.
out=$(http "$BASE/health")
[ "$out" = $'200\ntext/plain; charset=utf-8\nok' ] || fail "/health: $out"
out=$(http "$BASE/ready")
[ "$out" = $'200\ntext/plain; charset=utf-8\nready' ] || fail "/ready: $out"
[ "$(http "$BASE/nope" | sed -n 1p)" = 404 ] || fail "/nope is not 404"
[ "$(http "$BASE/metrics/" | sed -n 1p)" = 404 ] || fail "/metrics/ is not 404"
[ "$(http "$BASE/metrics" POST | sed -n 1p)" = 405 ] || fail "POST /metrics is not 405"
[ "$(http "$BASE/health" HEAD | sed -n 1p)" = 200 ] || fail "HEAD /health is not 200"

# metric NAME STAGE: the value of a per-stage sample, from the raw text.
metric() {
    http "$BASE/metrics" | sed -n "s/^$1{pipeline=\"admin_test\",stage=\"$2\",[^}]*} //p"
}
retrying() { [ "$(metric sluice_sink_retries_total out)" -ge 1 ]; }
status_is() { [ "$(http "$BASE/$1" | sed -n 1p)" = "$2" ]; }

# SIGTERM while the sink cannot commit (another connection holds the database's write
# lock, so the sink retries): the process drains, so /ready turns 503 while /health stays
# 200. Once the lock is released the batch commits and the run exits 0.
note "stop while the sink is blocked"
"$PY" -c '
import sqlite3, time
c = sqlite3.connect("w.db", isolation_level=None)
c.execute("BEGIN EXCLUSIVE")
open("locked", "w").write("1")
time.sleep(120)
' &
locker=$!
_SL_BG_PIDS+=("$locker")
wait_for 30 test -s locked
append 1600 10
wait_for 60 retrying
status_is ready 200 || fail "/ready is not 200 while the sink retries (no stop requested)"
kill -TERM "$SLUICE_PID"
wait_for 30 status_is ready 503
status_is health 200 || fail "/health is not 200 while draining"
[ "$(metric sluice_records_out_total out)" = 800 ] || fail "records_out changed while blocked"
http "$BASE/metrics" | grep -x 'sluice_ready{pipeline="admin_test"} 0' >/dev/null ||
    fail "sluice_ready is not 0 while draining"
kill -0 "$SLUICE_PID" || fail "sluice exited while its sink was blocked"
kill "$locker"
wait "$locker" 2>/dev/null || true

# The drain finishes and the run exits 0; the server is gone with the process.
rc=0
wait "$SLUICE_PID" || rc=$?
[ "$rc" = 0 ] || fail "SIGTERM: exit status $rc; $(tail -5 "$RUN_STDERR")"
[ "$(http "$BASE/health" | sed -n 1p)" = down ] || fail "the admin server outlived the run"
[ "$(sqlite3 w.db 'SELECT count(*), sum(n) FROM t')" = "805|647220" ] ||
    fail "sink rows: $(sqlite3 w.db 'SELECT count(*), sum(n) FROM t')"
# --log-format json: the log (everything before the summary) is JSON lines, and the server
# announced its address there.
sed '/^$/,$d' "$RUN_STDERR" >log.json
jq -e -s 'length > 0 and all(type == "object" and has("ts") and has("level") and has("msg"))' \
    log.json >/dev/null || fail "log is not JSON lines: $(head -5 log.json)"
jq -e -s "any(.component == \"admin\" and (.msg | contains(\"127.0.0.1:$PORT\")))" \
    log.json >/dev/null || fail "no admin log line naming the address: $(head -5 log.json)"

# An address in use: exit 1 before the pipeline starts, naming the address and why.
note "address in use"
"$PY" -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # our scrapes left TIME_WAITs
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
open("held", "w").write("1")
time.sleep(120)
' "$PORT" &
holder=$!
_SL_BG_PIDS+=("$holder")
wait_for 30 test -s held
run_sluice run p.yaml
kill "$holder" 2>/dev/null || true
assert_rc 1
assert_file_contains "$RUN_STDERR" "cannot listen on 127.0.0.1:$PORT"
assert_file_contains "$RUN_STDERR" "Address already in use"
# Nothing ran: the table still holds what the first run committed.
[ "$(sqlite3 w.db 'SELECT count(*) FROM t')" = 805 ] || fail "the refused run touched the sink"
note "ok"
