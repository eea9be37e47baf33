#!/usr/bin/env bash
# tests/integration/test_backpressure.sh - overload is pushed back, memory stays bounded
# (issue #6 item 7).
#
# An http source feeds a stdout sink whose reader is deliberately slow (it takes about a
# tenth of what the client offers). For SLUICE_BACKPRESSURE_SECONDS (default 60) a client
# posts as fast as the server answers. With `memory_limit: 16MiB` and a small write-ahead
# log quota:
#   - the client gets 503 with Retry-After (never a hang: every request has a 10 s
#     timeout, and never a dropped connection: any such error fails the test);
#   - sluice's resident memory, sampled every 100 ms, never exceeds its start-up size +
#     memory_limit + a constant (32 MiB: the WAL reader's buffer, libmicrohttpd's
#     connection buffers, allocator slack; the sanitizers' quarantine is turned off here);
#   - once the client stops and the reader drains, the reader holds every acknowledged
#     record exactly once and nothing that was not acknowledged.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ -x "$SLUICE" ] || fail "no sluice binary at '$SLUICE'; build it (make debug) or set SLUICE"
SECONDS_LOAD=${SLUICE_BACKPRESSURE_SECONDS:-60}
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0:malloc_context_size=5

tmpdir T
cd "$T" || fail "cannot enter $T"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

cat >p.yaml <<EOF
pipeline: backpressure
delivery: at_least_once
memory_limit: 16MiB
queue: {max_batches: 4, max_bytes: 4MiB}
sources:
  web: {type: http, listen: 127.0.0.1:$PORT, segment_bytes: 1MiB, wal_max_bytes: 8MiB,
        max_body_bytes: 1MiB}
sinks:
  out: {type: stdout, inputs: [web]}
EOF

# The slow reader: about 2,000 records a second, ids to received.txt.
cat >reader.py <<'PY'
import json, sys, time
out = open("received.txt", "w", buffering=1)
n = 0
for line in sys.stdin:
    out.write("%d\n" % json.loads(line)["id"])
    n += 1
    if n % 20 == 0:
        time.sleep(0.01)
PY

mkfifo records.fifo
python3 reader.py <records.fifo &
PIPE_PID=$!
"$SLUICE" run p.yaml >records.fifo 2>sluice.log &
SPID=$!
_SL_BG_PIDS+=("$SPID" "$PIPE_PID")
wait_for 20 python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT)).close()"

python3 - "$PORT" "$SPID" "$SECONDS_LOAD" <<'PY' || fail "overload was not pushed back cleanly (see above)"
import json, sys, threading, time, urllib.error, urllib.request
port, pid, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
url = "http://127.0.0.1:%d/v1/ingest/web" % port

def rss_kb():
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

base = rss_kb()
peak = [base]
stop = threading.Event()

def sample():
    while not stop.is_set():
        peak[0] = max(peak[0], rss_kb())
        time.sleep(0.1)

threading.Thread(target=sample, daemon=True).start()
acked, refused, errors, next_id = [], 0, [], 0
pad = "x" * 150
t_end = time.time() + seconds
while time.time() < t_end:
    ids = list(range(next_id, next_id + 200))
    next_id += 200
    body = "".join(json.dumps({"id": i, "pad": pad}) + "\n" for i in ids).encode()
    req = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            if r.status == 200:
                acked.extend(ids)
            else:
                errors.append("status %d" % r.status)
    except urllib.error.HTTPError as e:
        if e.code in (429, 503) and e.headers.get("Retry-After"):
            refused += 1
            time.sleep(0.01)
        else:
            errors.append("HTTP %d: %s" % (e.code, e.read()[:200]))
    except Exception as e:  # a hang (timeout) or a dropped connection
        errors.append(repr(e))
        break
stop.set()
offered = next_id
print("offered %d records, acknowledged %d, refused %d requests; RSS %d KiB at start, "
      "peak %d KiB" % (offered, len(acked), refused, base, peak[0]), file=sys.stderr)
if errors:
    sys.exit("client errors: %s" % errors[:5])
if refused == 0:
    sys.exit("the client was never refused: the sink was not slower than the client")
limit_kb = 16 * 1024 + 32 * 1024
if peak[0] - base > limit_kb:
    sys.exit("RSS grew by %d KiB, more than memory_limit + 32 MiB (%d KiB)"
             % (peak[0] - base, limit_kb))
json.dump(acked, open("acked.json", "w"))
PY

# Let the reader drain everything acknowledged, then stop sluice.
python3 - <<'PY' || fail "the acknowledged records did not all arrive exactly once"
import json, time
acked = json.load(open("acked.json"))
want = sorted(acked)
deadline = time.time() + 180
while True:
    got = sorted(int(l) for l in open("received.txt"))
    if len(got) >= len(want) or time.time() > deadline:
        break
    time.sleep(0.5)
if got != want:
    missing = sorted(set(want) - set(got))[:10]
    extra = len(got) - len(set(got))
    raise SystemExit("received %d, acknowledged %d; missing %s; %d duplicates; "
                     "unacknowledged %s" % (len(got), len(want), missing, extra,
                                            sorted(set(got) - set(want))[:10]))
PY
kill -TERM "$SPID"
wait "$SPID" || fail "sluice did not stop cleanly on SIGTERM: $(tail -n 5 sluice.log)"
wait "$PIPE_PID" || true
note "backpressure: bounded memory, 503 with Retry-After, every acknowledged record once"
