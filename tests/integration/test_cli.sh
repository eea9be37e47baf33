#!/usr/bin/env bash
# The command line: help, versions, unknown verbs and options, exit codes, --report.
set -euo pipefail
: "${SLUICE:?SLUICE must name the sluice binary}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Help lists every verb and exits 0; each verb has its own help.
out=$("$SLUICE" --help)
for v in run validate docs; do
    grep -q "^  $v " <<<"$out" || fail "--help does not list $v"
done
"$SLUICE" run --help | grep -q -- "--once" || fail "run --help does not mention --once"
"$SLUICE" validate --help | grep -q "file:line:col" || fail "validate --help"
"$SLUICE" --version | grep -Eq '^sluice [0-9]+\.[0-9]+\.[0-9]+$' || fail "--version"

# Usage errors exit 2 with a useful message.
set +e
err=$("$SLUICE" rnu x.yaml 2>&1); rc=$?
set -e
[ "$rc" = 2 ] || fail "unknown verb exit $rc"
grep -q 'did you mean "run"' <<<"$err" || fail "no suggestion for rnu: $err"
set +e
"$SLUICE" run 2>/dev/null; rc=$?
set -e
[ "$rc" = 2 ] || fail "run without a file exit $rc"
set +e
err=$("$SLUICE" run --bogus p.yaml 2>&1); rc=$?
set -e
[ "$rc" = 2 ] || fail "unknown option exit $rc"
grep -q "unknown option --bogus" <<<"$err" || fail "unknown option message: $err"
set +e
err=$("$SLUICE" run "$work/missing.yaml" 2>&1); rc=$?
set -e
[ "$rc" = 2 ] || fail "missing config exit $rc"
grep -q "missing.yaml" <<<"$err" || fail "missing config message does not name the file: $err"
set +e
err=$("$SLUICE" test x.yaml 2>&1); rc=$?
set -e
[ "$rc" = 2 ] || fail "unavailable verb exit $rc"
grep -q "not available in this version" <<<"$err" || fail "unavailable verb message: $err"

# A run writes a report whose numbers match the data; a failing sink exits 1.
printf '{"a":1}\n{"a":2}\nnot json\n{"a":3}\n' > "$work/in.ndjson"
cat > "$work/p.yaml" <<'YAML'
pipeline: cli_test
sources:
  src: {type: file, path: in.ndjson}
sinks:
  out: {type: file, inputs: [src], path: out/o.ndjson, id_field: ""}
YAML
"$SLUICE" run "$work/p.yaml" --once --report "$work/r.json" --log-format json 2>"$work/log" \
    || fail "run failed: $(cat "$work/log")"
python3 - "$work/r.json" <<'PY' || fail "report contents"
import json, sys
r = json.load(open(sys.argv[1]))
st = {s["name"]: s for s in r["stages"]}
assert r["pipeline"] == "cli_test" and r["ok"] is True, r
assert r["records_read"] == 4, r
assert st["src"]["records_in"] == 4 and st["src"]["rejected"] == 1, st
assert st["out"]["records_out"] == 3, st
PY
# JSON logs: every line parses and the rejection names file and line 3.
python3 - "$work/log" <<'PY' || fail "json log lines"
import json, sys
lines = [l for l in open(sys.argv[1]) if l.startswith("{")]
recs = [json.loads(l) for l in lines]
rej = [r for r in recs if "rejected" in r["msg"]]
assert len(rej) == 1 and "in.ndjson:3:" in rej[0]["msg"], recs
assert rej[0]["level"] == "warn" and rej[0]["component"] == "src", rej
PY
[ "$(cat "$work/out/o.ndjson")" = $'{"a":1}\n{"a":2}\n{"a":3}' ] || fail "output: $(cat "$work/out/o.ndjson")"

# A sink that cannot write is a run failure (exit 1) naming the sink.
mkdir -p "$work/ro"
cat > "$work/bad.yaml" <<'YAML'
pipeline: cli_fail
sources:
  src: {type: file, path: in.ndjson}
sinks:
  out: {type: file, inputs: [src], path: /proc/sluice-cannot-write-here/o.ndjson}
YAML
set +e
err=$("$SLUICE" run "$work/bad.yaml" --once 2>&1); rc=$?
set -e
[ "$rc" = 1 ] || fail "unwritable sink exit $rc: $err"
grep -q "sink out" <<<"$err" || fail "failure does not name the sink: $err"
echo "cli: ok"
