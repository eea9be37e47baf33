#!/usr/bin/env bash
# The file and stdin sources through the real binary: CSV typing and rejects, globs read
# in sorted order, overlong lines, missing inputs, and standard input.
source "$(dirname "$0")/lib.sh"

tmpdir T
cd "$T"
mkdir -p in/logs out

# --- CSV -> file: types, quoting, embedded newlines, CRLF, blank lines, bad rows -------
printf '%s\r\n' 'id,name,score,active,meta' \
    '1,ann,1.5,true,"{""k"":1}"' \
    '2,"smith, bob",,no,' \
    '3,"two' 'lines",2e2,1,[1]' \
    '' \
    'x4,bad id,1,1,1' \
    '5,short' \
    '6,"quote ""inside""",-0.25,FALSE,null' >in/people.csv
printf '7,no newline,7,t,{}' >>in/people.csv
cat >csv.yaml <<'YAML'
pipeline: csv_to_file
state_dir: state-csv
sources:
  people:
    type: file
    path: in/people.csv
    format: csv
    types: {id: int, score: float, active: bool, meta: json}
sinks:
  out: {type: file, inputs: [people], path: out/people.ndjson, id_field: ""}
YAML
cat >want-people.ndjson <<'JSON'
{"id":1,"name":"ann","score":1.5,"active":true,"meta":{"k":1}}
{"id":2,"name":"smith, bob","score":null,"active":false,"meta":null}
{"id":3,"name":"two\r\nlines","score":200,"active":true,"meta":[1]}
{"id":6,"name":"quote \"inside\"","score":-0.25,"active":false,"meta":null}
{"id":7,"name":"no newline","score":7,"active":true,"meta":{}}
JSON
run_sluice run csv.yaml --once --report csv-report.json
assert_rc 0
assert_same_records want-people.ndjson out/people.ndjson
grep -q 'line 7 of .*people.csv, column id: "x4" is not an int' "$RUN_STDERR" ||
    fail "no reject message for the bad id: $(cat "$RUN_STDERR")"
grep -q 'line 8 of .*people.csv: 2 fields, expected 5 (id ... meta)' "$RUN_STDERR" ||
    fail "no reject message for the short row: $(cat "$RUN_STDERR")"
[ "$(jq '[.stages[] | select(.name == "people")][0].rejected' csv-report.json)" = 2 ] ||
    fail "expected 2 rejected rows: $(cat csv-report.json)"
[ "$(jq '[.stages[] | select(.name == "out")][0].records_out' csv-report.json)" = 5 ] ||
    fail "expected 5 written rows: $(cat csv-report.json)"

# --- glob -> file: sorted order, CRLF, blank lines, a last line without newline --------
printf '{"f":"b","n":1}\r\n\r\n{"f":"b","n":2}\n' >in/logs/b.ndjson
printf '{"f":"a","n":1}\n   \n' >in/logs/a.ndjson
printf '{"f":"c","n":1}' >in/logs/c.ndjson
printf '{"f":"skip"}\n' >in/logs/notes.txt
mkdir in/logs/dir.ndjson # a directory matching the pattern is ignored
cat >glob.yaml <<'YAML'
pipeline: glob_to_file
state_dir: state-glob
sources:
  logs: {type: file, path: "in/logs/*.ndjson"}
sinks:
  out: {type: file, inputs: [logs], path: out/logs.ndjson, id_field: ""}
YAML
cat >want-logs.ndjson <<'JSON'
{"f":"a","n":1}
{"f":"b","n":1}
{"f":"b","n":2}
{"f":"c","n":1}
JSON
run_sluice run glob.yaml --once
assert_rc 0
assert_same_records want-logs.ndjson out/logs.ndjson

# --- overlong lines are rejected, the rest of the file goes on -------------------------
{
    printf '{"ok":1}\n'
    printf '{"big":"%s"}\n' "$(head -c 5000 /dev/zero | tr '\0' x)"
    printf '{"ok":2}\n'
} >in/long.ndjson
cat >long.yaml <<'YAML'
pipeline: long_lines
state_dir: state-long
sources:
  src: {type: file, path: in/long.ndjson, max_record_bytes: 1KiB}
sinks:
  out: {type: file, inputs: [src], path: out/long.ndjson, id_field: ""}
YAML
printf '{"ok":1}\n{"ok":2}\n' >want-long.ndjson
run_sluice run long.yaml --once
assert_rc 0
assert_same_records want-long.ndjson out/long.ndjson
grep -q 'line 2 of .*long.ndjson is 5010 bytes, over max_record_bytes (1 KiB)' "$RUN_STDERR" ||
    fail "no overlong message: $(cat "$RUN_STDERR")"

# --- a missing input is an error naming it ------------------------------------------------
cat >missing.yaml <<'YAML'
pipeline: missing
state_dir: state-missing
sources:
  src: {type: file, path: in/nope.ndjson}
sinks:
  out: {type: file, inputs: [src], path: out/missing.ndjson, id_field: ""}
YAML
run_sluice run missing.yaml --once
[ "$RUN_RC" -ne 0 ] || fail "a missing input file must fail the run"
grep -q 'in/nope.ndjson' "$RUN_STDERR" || fail "the error does not name the file: $(cat "$RUN_STDERR")"

# --- stdin -> file ----------------------------------------------------------------------
cat >stdin.yaml <<'YAML'
pipeline: from_stdin
state_dir: state-stdin
delivery: at_least_once  # stdin cannot resume after a restart
sources:
  in: {type: stdin, format: csv, types: {n: int}}
sinks:
  out: {type: file, inputs: [in], path: out/stdin.ndjson, id_field: ""}
YAML
printf 'n,s\n1,"a,b"\n2,c\n' |
    timeout --kill-after=10 "$SLUICE_TEST_TIMEOUT" "$SLUICE" run stdin.yaml --once 2>stdin.err ||
    fail "stdin run failed: $(cat stdin.err)"
printf '{"n":1,"s":"a,b"}\n{"n":2,"s":"c"}\n' >want-stdin.ndjson
assert_same_records want-stdin.ndjson out/stdin.ndjson

note "ok"
