#!/usr/bin/env bash
# Every kind of bad input ends in the dead-letter queue with a precise reason while the
# pipeline keeps running (tests/data/bad_input/). For pipeline.yaml (duplicate keys: last
# wins) and pipeline_reject.yaml (json.duplicate_keys: reject), after `run --once`:
#   - every line expected.tsv lists for the mode is in `sluice dlq list --json` exactly
#     once, with the listed stage, error class, rule and path, its source and line;
#   - its raw_b64 decodes to the line's exact bytes (for the overlong line: its first
#     max_record_bytes, with true_len the full length; otherwise true_len = raw_len);
#   - nothing else is in the DLQ;
#   - the sink holds exactly the good lines (every other non-blank line, as parsed with
#     the last of duplicate keys winning) and the good CSV rows (good_rows.ndjson);
#   - the run report balances (assert_conservation), counts the 2 + 2 empty or blank
#     lines of the two inputs as "empty", and its rejected counts equal the DLQ's.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

tmpdir T
cp "$SLUICE_SRC"/tests/data/bad_input/* "$T"/
cd "$T" || fail "cannot enter $T"

check_mode() {
    local mode=$1 yaml=$2 sinkfile=$3
    note "$yaml (duplicate keys: $mode)"
    run_sluice run "$yaml" --once --report "report-$mode.json"
    assert_rc 0
    assert_conservation "report-$mode.json" "$yaml"
    run_sluice dlq list "$yaml" --json
    assert_rc 0
    cp "$RUN_STDOUT" "dlq-$mode.jsonl"
    python3 - "$mode" "dlq-$mode.jsonl" "report-$mode.json" "$sinkfile" <<'PY' ||
import base64, json, sys

mode, dlq_path, report_path, sink_path = sys.argv[1:5]
MAX_RECORD = 1024  # pipeline*.yaml: events.max_record_bytes
problems = []

def lines_of(name):
    with open(name, "rb") as f:
        data = f.read()
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    return parts

inputs = {"bad.ndjson": ("events", lines_of("bad.ndjson")),
          "bad.csv": ("rows", lines_of("bad.csv"))}

expected = {}  # (file, line) -> (class, rule, stage, path)
with open("expected.tsv") as f:
    for row in f:
        if row.startswith("#") or not row.strip():
            continue
        fname, line, cls, rule, stage, path, modes = row.rstrip("\n").split("\t")
        if modes == "all" or modes == mode:
            expected[(fname, int(line))] = (cls, rule, stage, None if path == "-" else path)

entries = []
with open(dlq_path) as f:
    for n, row in enumerate(f, 1):
        try:
            entries.append(json.loads(row))
        except ValueError as e:
            problems.append(f"dlq list line {n} is not JSON ({e}): {row[:200]!r}")

source_file = {src: fname for fname, (src, _) in inputs.items()}
seen = {}
for e in entries:
    fname = source_file.get(e.get("source"))
    if fname is None:
        problems.append(f"entry {e.get('id')}: unknown source {e.get('source')!r}")
        continue
    key = (fname, e.get("line"))
    if key in seen:
        problems.append(f"{fname}:{key[1]} is in the DLQ twice (entries {seen[key]} and {e['id']})")
        continue
    seen[key] = e.get("id")
    if key not in expected:
        problems.append(f"{fname}:{key[1]} is in the DLQ but should not be: "
                        f"{e.get('error')}/{e.get('rule')}: {e.get('message')}")
        continue
    cls, rule, stage, path = expected[key]
    got = (e.get("error"), e.get("rule"), e.get("stage"), e.get("path"))
    if got != (cls, rule, stage, path):
        problems.append(f"{fname}:{key[1]}: (class, rule, stage, path) = {got}, expected "
                        f"{(cls, rule, stage, path)}; message: {e.get('message')}")
    for field in ("id", "message", "attempts", "position", "raw_b64", "true_len"):
        if e.get(field) in (None, ""):
            problems.append(f"{fname}:{key[1]}: entry has no {field}")
    if e.get("attempts") != 1:
        problems.append(f"{fname}:{key[1]}: attempts {e.get('attempts')}, expected 1")
    line_bytes = inputs[fname][1][key[1] - 1]
    try:
        raw = base64.b64decode(e.get("raw_b64") or "", validate=True)
    except ValueError:
        problems.append(f"{fname}:{key[1]}: raw_b64 is not base64")
        continue
    if rule == "max_record_bytes":
        want_raw, want_len = line_bytes[:MAX_RECORD], len(line_bytes)
        if len(line_bytes) <= MAX_RECORD:
            problems.append(f"{fname}:{key[1]}: the test's overlong line is not overlong")
    else:
        want_raw, want_len = line_bytes, len(line_bytes)
    if raw != want_raw:
        problems.append(f"{fname}:{key[1]}: raw bytes differ from the input line: "
                        f"{raw[:80]!r} != {want_raw[:80]!r}")
    if e.get("true_len") != want_len:
        problems.append(f"{fname}:{key[1]}: true_len {e.get('true_len')}, expected {want_len}")

for key in sorted(expected):
    if key not in seen:
        cls, rule, _, _ = expected[key]
        problems.append(f"{key[0]}:{key[1]} ({cls}/{rule}) is not in the DLQ")

# The sink holds the good records: every other non-blank line, in input order for each
# source (the two sources interleave), compared as parsed JSON (last duplicate wins).
def parse_last_wins(b):
    return json.loads(b.decode("utf-8"))

good = []
for i, b in enumerate(inputs["bad.ndjson"][1], 1):
    if ("bad.ndjson", i) in expected or not b.strip(b" \t\r"):
        continue
    good.append(parse_last_wins(b))
with open("good_rows.ndjson") as f:
    good += [json.loads(row) for row in f if row.strip()]
with open(sink_path, "rb") as f:
    written = [parse_last_wins(row) for row in f.read().split(b"\n") if row.strip()]
canon = lambda v: json.dumps(v, sort_keys=True)
if sorted(map(canon, written)) != sorted(map(canon, good)):
    problems.append("the sink's records are not exactly the good lines:\n  written: " +
                    "\n           ".join(sorted(map(canon, written))) + "\n  good:    " +
                    "\n           ".join(sorted(map(canon, good))))

# The report: rejected = DLQ entries per stage, blank lines counted per source.
with open(report_path) as f:
    rep = json.load(f)
by_name = {s["name"]: s for s in rep.get("stages", [])}
per_stage = {}
for st in (v[2] for v in expected.values()):
    per_stage[st] = per_stage.get(st, 0) + 1
for name in ("events", "rows", "typed", "good"):
    s = by_name.get(name)
    if s is None:
        problems.append(f"report has no stage {name}")
        continue
    if s.get("rejected") != per_stage.get(name, 0):
        problems.append(f"report: stage {name} rejected {s.get('rejected')}, expected "
                        f"{per_stage.get(name, 0)}")
    if s.get("dlq") != per_stage.get(name, 0):
        problems.append(f"report: stage {name} kept {s.get('dlq')} in the DLQ, expected "
                        f"{per_stage.get(name, 0)}")
for name, n in (("events", 2), ("rows", 2)):
    if by_name.get(name, {}).get("empty") != n:
        problems.append(f"report: source {name} counted {by_name.get(name, {}).get('empty')} "
                        f"empty lines, expected {n}")
if by_name.get("good", {}).get("records_out") != len(good):
    problems.append(f"report: sink wrote {by_name.get('good', {}).get('records_out')}, "
                    f"expected {len(good)}")

for p in problems:
    print("  " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
        fail "$yaml: bad input did not reach the DLQ as expected (see above)"
}

check_mode last pipeline.yaml out/good.ndjson
check_mode reject pipeline_reject.yaml out/good-reject.ndjson

# A record with duplicate keys keeps the last value under the default; the edited record
# (the map's cast) writes the key once.
grep -qxF '{"id":121,"n":2}' out/good.ndjson ||
    fail "duplicate key: expected {\"id\":121,\"n\":2} in out/good.ndjson: $(cat out/good.ndjson)"

# A second run reads nothing new and keeps each entry once.
run_sluice run pipeline.yaml --once
assert_rc 0
run_sluice dlq list pipeline.yaml --json
assert_rc 0
[ "$(wc -l <"$RUN_STDOUT")" -eq "$(wc -l <dlq-last.jsonl)" ] ||
    fail "a second run changed the DLQ: $(wc -l <"$RUN_STDOUT") entries, was $(wc -l <dlq-last.jsonl)"
