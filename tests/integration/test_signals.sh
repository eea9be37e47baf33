#!/usr/bin/env bash
# SIGTERM drains and commits: a follow-mode pipeline is stopped while data flows; every
# record read before the signal is in the output, exit status is 0. A second signal
# exits at once.
set -euo pipefail
: "${SLUICE:?SLUICE must name the sluice binary}"
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cat > "$work/p.yaml" <<'YAML'
pipeline: signals
sources:
  src: {type: file, path: in.ndjson, follow: true, poll_interval: 50ms}
transforms:
  even: {type: filter, inputs: [src], where: "n % 2 == 0"}
sinks:
  out: {type: file, inputs: [even], path: out.ndjson, fsync: false}
YAML
: > "$work/in.ndjson"
"$SLUICE" run "$work/p.yaml" --report "$work/r.json" 2>"$work/log" &
pid=$!
# Append in bursts while it runs.
for burst in $(seq 0 19); do
    python3 -c "
import sys
b = int(sys.argv[1])
with open(sys.argv[2], 'a') as f:
    for i in range(b * 500, b * 500 + 500):
        f.write('{\"n\":%d}\n' % i)
" "$burst" "$work/in.ndjson"
    sleep 0.05
done
# Wait until everything appended so far is committed, then stop. The file sink commits
# into a hidden in-progress file and renames it to out.ndjson only when it finishes it
# (here: at shutdown), so count the committed lines there.
for _ in $(seq 1 100); do
    n=$(cat "$work"/.out.ndjson.*.inprogress 2>/dev/null | wc -l)
    [ "$n" -ge 5000 ] && break
    sleep 0.1
done
[ "$n" -ge 5000 ] || fail "only $n of 5000 records committed before the stop"
[ ! -e "$work/out.ndjson" ] || fail "out.ndjson visible before the sink finished it"
kill -TERM "$pid"
set +e
wait "$pid"; rc=$?
set -e
pid=""
[ "$rc" = 0 ] || fail "SIGTERM exit status $rc; log: $(tail -5 "$work/log")"
python3 - "$work/out.ndjson" "$work/r.json" <<'PY' || fail "drained output"
import json, sys
got = [json.loads(l)["n"] for l in open(sys.argv[1])]
assert got == list(range(0, 10000, 2)), (len(got), got[:5], got[-5:])
r = json.load(open(sys.argv[2]))
st = {s["name"]: s for s in r["stages"]}
assert st["src"]["records_in"] == 10000, st
assert st["even"]["dropped"] == 5000 and st["out"]["records_out"] == 5000, st
PY

# A second signal exits at once, even while a source is idle-polling.
"$SLUICE" run "$work/p.yaml" 2>/dev/null &
pid=$!
sleep 0.5
kill -TERM "$pid"; kill -INT "$pid"
set +e
wait "$pid"; rc=$?
set -e
pid=""
case "$rc" in 0|130|143) ;; *) fail "second signal exit status $rc" ;; esac
# A stuck sink cannot hold the exit: another process holds the database's write lock,
# so the sink keeps retrying; SIGTERM with --shutdown-timeout 2s exits 1 within a few
# seconds, and once the lock is gone a rerun delivers every record exactly once.
cat > "$work/db.yaml" <<'YAML'
pipeline: signals_db
sources:
  src: {type: file, path: db_in.ndjson, follow: true, poll_interval: 50ms}
sinks:
  db: {type: sqlite, inputs: [src], path: w.db, table: t, key: n, busy_timeout: 200ms}
YAML
python3 -c '
import json
with open("'"$work"'/db_in.ndjson", "w") as f:
    for i in range(100):
        f.write(json.dumps({"n": i}) + "\n")'
"$SLUICE" run "$work/db.yaml" --once --quiet 2>/dev/null || fail "first db run"
python3 -c '
import json
with open("'"$work"'/db_in.ndjson", "a") as f:
    for i in range(100, 300):
        f.write(json.dumps({"n": i}) + "\n")'
python3 - "$work/w.db" "$work/locked" <<'PY' &
import sqlite3, sys, time, os
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN EXCLUSIVE")
open(sys.argv[2], "w").close()
time.sleep(20)
PY
locker=$!
for _ in $(seq 1 100); do [ -f "$work/locked" ] && break; sleep 0.05; done
"$SLUICE" run "$work/db.yaml" --shutdown-timeout 2s 2>"$work/db.log" &
pid=$!
sleep 1
start=$(date +%s%N)
kill -TERM "$pid"
set +e
wait "$pid"; rc=$?
set -e
pid=""
took_ms=$(( ($(date +%s%N) - start) / 1000000 ))
kill "$locker" 2>/dev/null; wait "$locker" 2>/dev/null || true
[ "$rc" = 1 ] || fail "stuck shutdown exit status $rc (want 1); log: $(tail -3 "$work/db.log")"
[ "$took_ms" -lt 6000 ] || fail "stuck shutdown took $took_ms ms with --shutdown-timeout 2s"
grep -q "shutdown did not finish within --shutdown-timeout" "$work/db.log" || fail "no timeout message"
"$SLUICE" run "$work/db.yaml" --once --quiet 2>"$work/db2.log" || fail "rerun after the lock: $(tail -3 "$work/db2.log")"
rows=$(sqlite3 "$work/w.db" "SELECT count(*), count(DISTINCT n), min(n), max(n) FROM t")
[ "$rows" = "300|300|0|299" ] || fail "rows after the rerun: $rows"
echo "signals: ok"
