#!/usr/bin/env bash
# tests/integration/test_dlq_replay.sh - rejected records into the dead-letter queue, then
# back through the fixed pipeline with `sluice dlq replay`, exactly once.
#
#   1. A run over 44 good lines, 21 whose amount cannot be cast to float, 5 lines of
#      broken JSON and an empty line: the sink holds exactly the 40, the DLQ exactly the
#      28 with their stages, classes and byte-exact originals; conservation holds.
#   2. The cast is fixed in the config; `dlq replay --stage price` delivers exactly the 21
#      (same record ids), they leave the DLQ, the broken lines stay untouched.
#   3. `dlq replay` of everything left: the broken lines fail again (exit 1), stay with
#      attempts 2, the sink is unchanged.
#   4. Exactly-once under kill -9: 3000 rejected records replayed while the replay is
#      killed at random moments, then finished by running it again: the sink ends with
#      each of them exactly once, the DLQ empty.
#   5. A record kept cut at max_record_bytes is never delivered by a replay: it is
#      rejected again (attempts 2) with a message saying why.
#
# Needs $SLUICE and python3.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ -x "$SLUICE" ] || fail "no sluice binary at '$SLUICE'; build it (make debug) or set SLUICE"

tmpdir T
cd "$T" || fail "cannot enter $T"

# ---- 1. the first run ------------------------------------------------------------------
python3 - <<'PY'
import random
random.seed(7)
lines = []
for i in range(1, 66):
    if i % 13 == 0:
        lines.append('{"id": %d, "amount": ' % i)          # truncated JSON
    amount = '"x%d"' % i if i % 5 == 0 or i % 7 == 0 else '%d.%02d' % (i, i % 100)
    lines.append('{"id":%d,"amount":%s}' % (i, amount))
lines.insert(10, "")
with open("in.ndjson", "w") as f:
    f.write("\n".join(lines) + "\n")
PY
cat >p.yaml <<'EOF'
pipeline: replay_test
sources:
  in: {type: file, path: in.ndjson}
transforms:
  price: {type: map, inputs: [in], cast: {amount: float}}
sinks:
  out: {type: file, inputs: [price], path: out.ndjson, id_field: rid}
EOF
run_sluice run p.yaml --once --report r1.json
assert_rc 0
assert_conservation r1.json p.yaml

python3 - <<'PY' || fail "first run: sink or DLQ contents differ from the expectation"
import base64, json, subprocess, os, sys
src = open("in.ndjson", "rb").read().split(b"\n")[:-1]
good, cast, broken = [], [], []
for n, line in enumerate(src, 1):
    if not line:
        continue
    try:
        rec = json.loads(line)
    except ValueError:
        broken.append((n, line))
        continue
    (cast if isinstance(rec["amount"], str) else good).append((n, line, rec))
out = [json.loads(l) for l in open("out.ndjson")]
want = [dict(r) for _, _, r in good]
got = [{k: v for k, v in o.items() if k != "rid"} for o in out]
if got != want:
    sys.exit(f"sink holds {got[:3]}..., want {want[:3]}... ({len(got)} vs {len(want)})")
sluice = os.environ["SLUICE"]
lst = subprocess.run([sluice, "dlq", "list", "p.yaml", "--json"], capture_output=True, check=True)
entries = [json.loads(l) for l in lst.stdout.decode().splitlines()]
by_line = {e["line"]: e for e in entries}
if len(entries) != len(cast) + len(broken):
    sys.exit(f"{len(entries)} DLQ entries, want {len(cast) + len(broken)}")
for n, line in broken:
    e = by_line.get(n) or sys.exit(f"line {n} (broken JSON) not in the DLQ")
    if (e["stage"], e["error"], e["rule"]) != ("in", "invalid_json", "truncated"):
        sys.exit(f"line {n}: {e['stage']}/{e['error']}/{e['rule']}")
    if base64.b64decode(e["raw_b64"]) != line or e["attempts"] != 1:
        sys.exit(f"line {n}: raw bytes or attempts differ: {e}")
for n, line, rec in cast:
    e = by_line.get(n) or sys.exit(f"line {n} (bad amount) not in the DLQ")
    if (e["stage"], e["error"]) != ("price", "cast") or base64.b64decode(e["raw_b64"]) != line:
        sys.exit(f"line {n}: {e}")
    if json.loads(e["record"]) if isinstance(e["record"], str) else e["record"] != rec:
        sys.exit(f"line {n}: record {e['record']} != {rec}")
json.dump({"good": len(good), "cast": len(cast), "broken": len(broken)}, open("counts.json", "w"))
PY

# ---- 2. fix the cast, replay what the map rejected --------------------------------------
sed -i 's/cast: {amount: float}/cast: {amount: string}/' p.yaml
run_sluice dlq replay p.yaml --stage price
assert_rc 0
ncast=$(python3 -c 'import json; print(json.load(open("counts.json"))["cast"])')
nbroken=$(python3 -c 'import json; print(json.load(open("counts.json"))["broken"])')
assert_file_contains "$RUN_STDOUT" "$ncast entries, $ncast delivered or filtered (0 filtered), 0 failed again"
python3 - <<'PY' || fail "after the replay of stage price: sink or DLQ differ"
import json, subprocess, os, sys
src = open("in.ndjson", "rb").read().split(b"\n")[:-1]
want_ids = set()
recs = []
for line in src:
    try:
        recs.append(json.loads(line))
    except ValueError:
        pass
outs = []
for name in sorted(os.listdir(".")):
    if name.startswith("out") and name.endswith(".ndjson"):
        outs += [json.loads(l) for l in open(name)]
ids = [o["id"] for o in outs]
if sorted(ids) != sorted(r["id"] for r in recs):
    sys.exit(f"sink ids {sorted(ids)} != every parsable line's id")
for o in outs:
    src_rec = next(r for r in recs if r["id"] == o["id"])
    amt = src_rec["amount"]
    if isinstance(amt, str) and o["amount"] != amt:
        sys.exit(f"replayed record {o} lost its amount {amt!r}")
if len(set(o["rid"] for o in outs)) != len(outs):
    sys.exit("a record id appears twice in the sink")
sluice = os.environ["SLUICE"]
lst = subprocess.run([sluice, "dlq", "list", "p.yaml", "--json"], capture_output=True, check=True)
entries = [json.loads(l) for l in lst.stdout.decode().splitlines()]
c = json.load(open("counts.json"))
if len(entries) != c["broken"] or any(e["stage"] != "in" or e["attempts"] != 1 for e in entries):
    sys.exit(f"DLQ after replay: {entries}")
PY

# ---- 3. replay the rest: it fails again ---------------------------------------------------
cat out*.ndjson >before.all
run_sluice dlq replay p.yaml
assert_rc 1
assert_file_contains "$RUN_STDOUT" "$nbroken failed again"
python3 - <<'PY' || fail "after a failing replay: DLQ entries must stay with attempts 2"
import json, subprocess, os, sys
lst = subprocess.run([os.environ["SLUICE"], "dlq", "list", "p.yaml", "--json"],
                     capture_output=True, check=True)
entries = [json.loads(l) for l in lst.stdout.decode().splitlines()]
c = json.load(open("counts.json"))
if len(entries) != c["broken"] or any(e["attempts"] != 2 or e["rule"] != "truncated" for e in entries):
    sys.exit(f"{entries}")
PY
cat out*.ndjson >after.all
cmp -s after.all before.all || fail "a failing replay changed the sink"

# ---- 4. exactly once under kill -9 ----------------------------------------------------------
mkdir k && cd k || fail "cannot enter k"
python3 -c '
for i in range(3000):
    print("{\"id\":%d,\"v\":\"n%d\",\"pad\":\"%s\"}" % (i, i, "p" * 200))
' >in.ndjson
cat >p.yaml <<'EOF'
pipeline: replay_kill
batch: {max_records: 50}
sources:
  in: {type: file, path: in.ndjson}
transforms:
  num: {type: map, inputs: [in], cast: {v: float}}
sinks:
  out: {type: file, inputs: [num], path: out.ndjson, id_field: rid, commit_interval: 1ms}
EOF
run_sluice run p.yaml --once
assert_rc 0
[ ! -s out.ndjson ] || fail "every record should have been rejected"
sed -i 's/cast: {v: float}/set: {fixed: "true"}/' p.yaml
kills=0
for attempt in $(seq 1 40); do
    start_sluice dlq replay p.yaml --quiet
    sleep "0.0$((RANDOM % 9 + 1))"
    if kill -9 "$SLUICE_PID" 2>/dev/null; then
        kills=$((kills + 1))
    fi
    wait "$SLUICE_PID" 2>/dev/null || true
    [ "$kills" -ge 5 ] && break
done
run_sluice dlq replay p.yaml
[ "$RUN_RC" -eq 0 ] || fail "the final replay failed: $(cat "$RUN_STDERR")"
note "killed the replay $kills times"
python3 - <<'PY' || fail "after replays killed with -9: the sink must hold each record once"
import json, os, subprocess, sys
outs = []
for name in sorted(os.listdir(".")):
    if name.startswith("out") and name.endswith(".ndjson"):
        outs += [json.loads(l) for l in open(name)]
ids = sorted(o["id"] for o in outs)
if ids != list(range(3000)):
    dup = len(ids) - len(set(ids))
    sys.exit(f"{len(ids)} records, {dup} duplicates, missing {sorted(set(range(3000)) - set(ids))[:10]}")
if any(o.get("fixed") is not True or o["v"] != "n%d" % o["id"] for o in outs):
    sys.exit("a replayed record differs from its original")
lst = subprocess.run([os.environ["SLUICE"], "dlq", "list", "p.yaml", "--json"],
                     capture_output=True, check=True)
if lst.stdout.strip():
    sys.exit("the DLQ should be empty: " + lst.stdout.decode()[:300])
PY
# ---- 5. a record kept cut short is never replayed --------------------------------------------
cd "$T" && mkdir cut && cd cut || fail "cannot enter cut"
printf '{"id":1}\n{"id":2,"name":"abcdefghijklmnopqrstuvwxyz"}\n{"id":3}\n' >in.ndjson
cat >p.yaml <<'EOF'
pipeline: replay_cut
sources:
  in: {type: file, path: in.ndjson, max_record_bytes: 16}
sinks:
  out: {type: file, inputs: [in], path: out.ndjson, id_field: ""}
EOF
run_sluice run p.yaml --once
assert_rc 0
sed -i 's/max_record_bytes: 16/max_record_bytes: 1KiB/' p.yaml
run_sluice dlq replay p.yaml
assert_rc 1
assert_file_contains "$RUN_STDERR" "only the first 16 of the record's 44 bytes were kept"
[ "$(cat out*.ndjson)" = "$(printf '{"id":1}\n{"id":3}')" ] || fail "a cut record was delivered: $(cat out*.ndjson)"
run_sluice dlq list p.yaml --json
python3 -c '
import json, sys
e = [json.loads(l) for l in open(sys.argv[1])]
sys.exit(0 if len(e) == 1 and e[0]["attempts"] == 2 and e[0]["true_len"] == 44 and
         e[0]["error"] == "record_too_large" else "entries: %r" % e)' "$RUN_STDOUT" ||
    fail "the cut record must stay in the DLQ with attempts 2"

echo "ok: dlq replay"
