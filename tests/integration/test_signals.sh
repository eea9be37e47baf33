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
# Wait until everything appended so far has been read (the output stops growing), then stop.
for _ in $(seq 1 100); do
    n=$(wc -l < "$work/out.ndjson" 2>/dev/null || echo 0)
    [ "$n" -ge 5000 ] && break
    sleep 0.1
done
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
echo "signals: ok"
