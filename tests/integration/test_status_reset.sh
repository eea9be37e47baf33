#!/usr/bin/env bash
# tests/integration/test_status_reset.sh - `sluice status`, `sluice reset` and the state
# directory's format marker, through the real binary.
#
# A file -> sqlite pipeline (upsert on key `id`):
#
#   1. status before any run         -> exit 0, no state, no checkpoint yet
#   2. run --once                    -> state_dir/FORMAT is "sluice-state 1"
#   3. status, status --json         -> exactly_once, a position, records == rows in the
#                                       table, a last commit time, 0 bytes behind
#   4. two lines appended            -> bytes behind == exactly their size
#   5. reset without --yes           -> exit 2, "add --yes to confirm", checkpoint table
#                                       byte-identical
#   6. reset --yes                   -> exit 0, no checkpoint left
#   7. run --once                    -> all 7 records delivered again (the run report
#                                       says 7 written), the table holds exactly the 7
#                                       expected rows (upsert: nothing doubled)
#
# reset --to-position, file -> sqlite (no key: upsert on _sluice_id) and file -> file in
# one pipeline:
#
#   8. run, position P1 from status --json; two records appended; run (P2)
#   9. --to-position P1 without --yes -> exit 2, the plan (sink, from, to), nothing changed
#  10. --to-position P1 --yes          -> exit 0, status shows P1 for both sinks
#  11. --to-position P2 (forward)      -> exit 2, checkpoint rows and manifest byte-identical
#  12. run --report                    -> exactly the two appended records delivered again:
#                                         sqlite holds the 5 expected rows (no duplicate),
#                                         the file sink wrote them to a new file
# and: several sources need --source; a sink without a checkpoint is never moved.
#
# Plus: a stdout sink is at_least_once ("no checkpoint (at-least-once sink)"), a
# `delivery: at_least_once` pipeline says duplicates are possible, usage and config
# errors exit 2 with their messages, `reset --yes` and a second `run` are refused while a
# run holds the state directory (status still works), and an unknown state format is
# refused by run, status and reset with exit 1.
#
# Needs $SLUICE, python3 and sqlite3.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ -x "$SLUICE" ] || fail "no sluice binary at '$SLUICE'; build it (make debug) or set SLUICE"
command -v sqlite3 >/dev/null || fail "sqlite3 is needed; run scripts/deps.sh"
command -v python3 >/dev/null || fail "python3 is needed; run scripts/deps.sh"

tmpdir T
cd "$T" || fail "cannot enter $T"
mkdir -p data

assert_eq() {
    if [ "$2" != "$3" ]; then
        printf -- '--- want (%s):\n%s\n--- got:\n%s\n' "$1" "$2" "$3" >&2
        fail "$1 differs"
    fi
}

# json_get FILE EXPR: evaluate a Python expression over the parsed JSON `j` in FILE.
json_get() {
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2" ||
        fail "cannot evaluate $2 over $1: $(cat "$1")"
}

cat >data/in.ndjson <<'EOF'
{"id":1,"name":"a"}
{"id":2,"name":"b"}
{"id":3,"name":"c"}
{"id":4,"name":"d"}
{"id":5,"name":"e"}
EOF

cat >p.yaml <<'EOF'
pipeline: status_reset_test
state_dir: state
batch: {max_records: 2}
sources:
  clicks: {type: file, path: data/in.ndjson, format: ndjson}
sinks:
  wh: {type: sqlite, inputs: [clicks], path: wh.db, table: t, key: id}
EOF

rows() { sqlite_rows wh.db "SELECT id, name FROM t ORDER BY id"; }
checkpoints() { sqlite_rows wh.db "SELECT pipeline, sink, source, position, records FROM _sluice_checkpoints ORDER BY 1, 2, 3"; }

# ---- 1. before any run ----------------------------------------------------------------
note "status before the first run"
run_sluice status p.yaml
assert_rc 0
assert_file_contains "$RUN_STDOUT" "(not created yet: the pipeline has not run)"
assert_file_contains "$RUN_STDOUT" "sink wh (sqlite): exactly_once"
assert_file_contains "$RUN_STDOUT" "no checkpoint yet: the next run delivers from the start"
[ ! -e state ] || fail "status created the state directory"
[ ! -e wh.db ] || fail "status created the sqlite database"
run_sluice status p.yaml --json
assert_rc 0
cp "$RUN_STDOUT" s0.json
assert_eq "state_format before a run" "None" "$(json_get s0.json 'j["state_format"]')"
assert_eq "position before a run" "None" "$(json_get s0.json 'j["sinks"][0]["sources"][0]["position"]')"
assert_eq "behind before a run" "100" "$(json_get s0.json 'j["sinks"][0]["sources"][0]["bytes_behind"]')"

# ---- 2. first run -----------------------------------------------------------------------
note "first run"
run_sluice run p.yaml --once --quiet
assert_rc 0
assert_eq "FORMAT" "sluice-state 1" "$(cat state/FORMAT)"
want5=$(printf '1\ta\n2\tb\n3\tc\n4\td\n5\te')
assert_eq "rows after the first run" "$want5" "$(rows)"

# ---- 3. status ----------------------------------------------------------------------------
note "status after the first run"
run_sluice status p.yaml
assert_rc 0
assert_file_contains "$RUN_STDOUT" "state_dir    $T/state (sluice-state 1)"
assert_file_contains "$RUN_STDOUT" "delivery     exactly_once"
assert_file_contains "$RUN_STDOUT" "sink wh (sqlite): exactly_once"
assert_file_contains "$RUN_STDOUT" "  source clicks (file)"
assert_file_contains "$RUN_STDOUT" "    records      5 committed"
assert_file_contains "$RUN_STDOUT" "    behind       0 bytes (caught up)"
grep -q '^    last commit  20[0-9-]* [0-9:]* UTC (.* ago)$' "$RUN_STDOUT" ||
    fail "no last commit line: $(cat "$RUN_STDOUT")"
grep -q 'duplicates possible' "$RUN_STDOUT" && fail "exactly_once sink said duplicates possible"

run_sluice status p.yaml --json
assert_rc 0
cp "$RUN_STDOUT" s1.json
assert_eq "pipeline" "status_reset_test" "$(json_get s1.json 'j["pipeline"]')"
assert_eq "state_format" "1" "$(json_get s1.json 'j["state_format"]')"
assert_eq "sinks" "1" "$(json_get s1.json 'len(j["sinks"])')"
assert_eq "sink delivery" "exactly_once" "$(json_get s1.json 'j["sinks"][0]["delivery"]')"
assert_eq "duplicates_possible" "False" "$(json_get s1.json 'j["sinks"][0]["duplicates_possible"]')"
assert_eq "source" "clicks" "$(json_get s1.json 'j["sinks"][0]["sources"][0]["source"]')"
pos=$(json_get s1.json 'j["sinks"][0]["sources"][0]["position"]')
dbpos=$(sqlite_rows wh.db "SELECT position FROM _sluice_checkpoints WHERE sink = 'wh' AND source = 'clicks'")
assert_eq "position == the checkpoint row" "$dbpos" "$pos"
assert_eq "records == rows" "$(sqlite_rows wh.db 'SELECT count(*) FROM t')" \
    "$(json_get s1.json 'j["sinks"][0]["sources"][0]["records"]')"
assert_eq "records" "5" "$(json_get s1.json 'j["sinks"][0]["sources"][0]["records"]')"
assert_eq "bytes behind" "0" "$(json_get s1.json 'j["sinks"][0]["sources"][0]["bytes_behind"]')"
assert_eq "last commit is ISO UTC" "True" \
    "$(json_get s1.json '__import__("re").fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", j["sinks"][0]["sources"][0]["last_commit"]) is not None')"
assert_eq "commit age plausible" "True" \
    "$(json_get s1.json '0 <= j["sinks"][0]["sources"][0]["last_commit_age_s"] < 600')"
assert_eq "no error" "None" "$(json_get s1.json 'j["sinks"][0]["sources"][0]["error"]')"

# ---- 4. appended input --------------------------------------------------------------------
note "bytes behind after an append"
printf '{"id":6,"name":"f"}\n{"id":7,"name":"g"}\n' >>data/in.ndjson
run_sluice status p.yaml --json
assert_rc 0
cp "$RUN_STDOUT" s2.json
assert_eq "bytes behind after the append" "40" \
    "$(json_get s2.json 'j["sinks"][0]["sources"][0]["bytes_behind"]')"
assert_eq "records unchanged by status" "5" "$(json_get s2.json 'j["sinks"][0]["sources"][0]["records"]')"
run_sluice status p.yaml
assert_file_contains "$RUN_STDOUT" "    behind       40 bytes"

# ---- 5. reset without --yes -----------------------------------------------------------------
note "reset without --yes changes nothing"
before=$(checkpoints)
run_sluice reset p.yaml
assert_rc 2
assert_file_contains "$RUN_STDERR" "add --yes to confirm"
assert_file_contains "$RUN_STDOUT" "would reset checkpoints of pipeline status_reset_test:"
assert_file_contains "$RUN_STDOUT" "  sink wh (sqlite)"
assert_file_contains "$RUN_STDOUT" "5 records committed"
assert_eq "checkpoints after reset without --yes" "$before" "$(checkpoints)"
run_sluice reset p.yaml --sink wh --source clicks
assert_rc 2
assert_eq "checkpoints after reset --sink without --yes" "$before" "$(checkpoints)"

# Selection errors: exit 2, nothing changed.
run_sluice reset p.yaml --sink hw --yes
assert_rc 2
assert_file_contains "$RUN_STDERR" 'pipeline status_reset_test has no sink named "hw"; did you mean "wh"?'
run_sluice reset p.yaml --source clicks2 --yes
assert_rc 2
assert_file_contains "$RUN_STDERR" 'has no source named "clicks2"; did you mean "clicks"?'
run_sluice reset p.yaml --sink clicks --yes
assert_rc 2
assert_file_contains "$RUN_STDERR" "clicks is a source, not a sink"
run_sluice reset p.yaml --to-position 3 --yes
assert_rc 2
assert_file_contains "$RUN_STDERR" 'sluice reset: --to-position is not a position of source clicks: file source clicks: the checkpoint "3" is not a file source position'
run_sluice reset p.yaml --to-position "" --yes
assert_rc 2
assert_file_contains "$RUN_STDERR" "--to-position is empty"
assert_eq "checkpoints after refused resets" "$before" "$(checkpoints)"

# ---- 6. reset --yes ----------------------------------------------------------------------------
note "reset --yes"
run_sluice reset p.yaml --sink wh --yes
assert_rc 0
assert_file_contains "$RUN_STDOUT" "  reset sink wh"
run_sluice status p.yaml --json
assert_rc 0
cp "$RUN_STDOUT" s3.json
assert_eq "position after reset" "None" "$(json_get s3.json 'j["sinks"][0]["sources"][0]["position"]')"
assert_eq "behind after reset" "140" "$(json_get s3.json 'j["sinks"][0]["sources"][0]["bytes_behind"]')"
assert_eq "rows untouched by reset" "$want5" "$(rows)"

# ---- 7. the next run delivers everything again ------------------------------------------------
note "run after reset"
run_sluice run p.yaml --once --quiet --report r.json
assert_rc 0
assert_eq "records written after reset" "7" \
    "$(json_get r.json '[s["records_out"] for s in j["stages"] if s["name"] == "wh"][0]')"
want7=$(printf '1\ta\n2\tb\n3\tc\n4\td\n5\te\n6\tf\n7\tg')
assert_eq "rows after re-delivery" "$want7" "$(rows)"
run_sluice status p.yaml --json
cp "$RUN_STDOUT" s4.json
assert_eq "records after re-delivery" "7" "$(json_get s4.json 'j["sinks"][0]["sources"][0]["records"]')"
assert_eq "behind after re-delivery" "0" "$(json_get s4.json 'j["sinks"][0]["sources"][0]["bytes_behind"]')"

# A run without reset delivers nothing more.
run_sluice run p.yaml --once --quiet --report r2.json
assert_rc 0
assert_eq "records written by a run with nothing new" "0" \
    "$(json_get r2.json '[s["records_out"] for s in j["stages"] if s["name"] == "wh"][0]')"
assert_eq "rows after a run with nothing new" "$want7" "$(rows)"

# ---- 8..12. reset --to-position ------------------------------------------------------------------
note "reset --to-position"
mkdir -p rw/data
printf '{"n":1,"v":"a"}\n{"n":2,"v":"b"}\n{"n":3,"v":"c"}\n' >rw/data/in.ndjson
cat >rw/p.yaml <<'EOF'
pipeline: rewind_test
state_dir: state
batch: {max_records: 2}
sources:
  clicks: {type: file, path: data/in.ndjson, format: ndjson}
sinks:
  wh: {type: sqlite, inputs: [clicks], path: wh.db, table: t}
  out: {type: file, inputs: [clicks], path: out/o.ndjson}
EOF
rw_rows() { sqlite_rows rw/wh.db "SELECT n, v FROM t ORDER BY n"; }
rw_ckpt() { sqlite_rows rw/wh.db "SELECT * FROM _sluice_checkpoints ORDER BY 1, 2, 3"; }
rw_manifest() { cat rw/out/.sluice.out.*.manifest; }
# rw_get FILE SINK KEY: KEY of sink SINK's entry for clicks, from status --json in FILE.
rw_get() { json_get "$1" "[s for s in j['sinks'] if s['name'] == '$2'][0]['sources'][0]['$3']"; }
# rw_ns FILE: the "n" values of an output file, space separated.
rw_ns() { grep -o '"n":[0-9]*' "$1" | tr '\n' ' '; }

run_sluice run rw/p.yaml --once --quiet
assert_rc 0
run_sluice status rw/p.yaml --json
assert_rc 0
cp "$RUN_STDOUT" rw1.json
p1=$(rw_get rw1.json wh position)
assert_eq "both sinks at the same position after run 1" "$p1" "$(rw_get rw1.json out position)"
printf '{"n":4,"v":"d"}\n{"n":5,"v":"e"}\n' >>rw/data/in.ndjson
run_sluice run rw/p.yaml --once --quiet
assert_rc 0
run_sluice status rw/p.yaml --json
cp "$RUN_STDOUT" rw2.json
p2=$(rw_get rw2.json wh position)
[ "$p1" != "$p2" ] || fail "the position did not move with the second run"
want_rw=$(printf '1\ta\n2\tb\n3\tc\n4\td\n5\te')
assert_eq "rows after run 2" "$want_rw" "$(rw_rows)"
assert_eq "first output file" '"n":1 "n":2 "n":3 ' "$(rw_ns rw/out/o.ndjson)"
assert_eq "second output file" '"n":4 "n":5 ' "$(rw_ns rw/out/o.1.ndjson)"

# 9. The plan only.
ck_before=$(rw_ckpt)
man_before=$(rw_manifest)
run_sluice reset rw/p.yaml --to-position "$p1"
assert_rc 2
assert_file_contains "$RUN_STDOUT" "would rewind checkpoints of pipeline rewind_test for source clicks:"
assert_file_contains "$RUN_STDOUT" "  sink wh (sqlite)"
assert_file_contains "$RUN_STDOUT" "  sink out (file)"
assert_file_contains "$RUN_STDOUT" "(5 records committed)"
assert_file_contains "$RUN_STDOUT" "    from  $(printf '%s' "$p2" | cut -c1-40)"
assert_file_contains "$RUN_STDOUT" "    to    $(printf '%s' "$p1" | cut -c1-40)"
assert_file_contains "$RUN_STDERR" "nothing changed; add --yes to confirm"
assert_eq "checkpoint rows after the plan" "$ck_before" "$(rw_ckpt)"
assert_eq "manifest after the plan" "$man_before" "$(rw_manifest)"

# 10. Rewind both sinks.
run_sluice reset rw/p.yaml --to-position "$p1" --yes
assert_rc 0
assert_file_contains "$RUN_STDOUT" "  rewound sink wh"
assert_file_contains "$RUN_STDOUT" "  rewound sink out"
assert_file_contains "$RUN_STDOUT" "delivers again what source clicks produced after that position to 2 sinks"
run_sluice status rw/p.yaml --json
cp "$RUN_STDOUT" rw3.json
assert_eq "sqlite position after the rewind" "$p1" "$(rw_get rw3.json wh position)"
assert_eq "file position after the rewind" "$p1" "$(rw_get rw3.json out position)"
assert_eq "behind after the rewind" "32" "$(rw_get rw3.json wh bytes_behind)"
assert_eq "rows untouched by the rewind" "$want_rw" "$(rw_rows)"

# 11. Forward is refused and changes nothing; so is a text that is not a position.
ck_before=$(rw_ckpt)
man_before=$(rw_manifest)
run_sluice reset rw/p.yaml --to-position "$p2" --yes
assert_rc 2
assert_file_contains "$RUN_STDOUT" "REFUSED: that is ahead of its checkpoint; moving forward would skip records it has not received"
assert_file_contains "$RUN_STDERR" "sluice reset: --to-position is ahead of what 2 sinks committed for source clicks; only rewinding is allowed"
run_sluice reset rw/p.yaml --sink wh --to-position "$p2" --yes
assert_rc 2
assert_file_contains "$RUN_STDERR" "is ahead of what 1 sink committed"
run_sluice reset rw/p.yaml --to-position '{"v":2,"files":' --yes
assert_rc 2
assert_file_contains "$RUN_STDERR" "is not a position of source clicks"
assert_eq "checkpoint rows after refused moves" "$ck_before" "$(rw_ckpt)"
assert_eq "manifest after refused moves" "$man_before" "$(rw_manifest)"
# The same position again: nothing to do.
run_sluice reset rw/p.yaml --to-position "$p1" --yes
assert_rc 0
assert_file_contains "$RUN_STDOUT" "    to    the same position: nothing to do"
assert_file_contains "$RUN_STDOUT" "nothing to rewind"
assert_eq "checkpoint rows after a rewind to where they are" "$ck_before" "$(rw_ckpt)"
assert_eq "manifest after a rewind to where it is" "$man_before" "$(rw_manifest)"

# 12. The next run delivers exactly the two appended records again.
run_sluice run rw/p.yaml --once --quiet --report rw_r.json
assert_rc 0
assert_eq "records read after the rewind" "2" "$(json_get rw_r.json 'j["records_read"]')"
for sk in wh out; do
    assert_eq "records written to $sk after the rewind (written skipped)" "2 0" \
        "$(json_get rw_r.json "' '.join(str(s[k]) for s in j['stages'] if s['name'] == '$sk' for k in ('records_out', 'skipped'))")"
done
assert_eq "rows after the re-delivery (upsert on _sluice_id)" "$want_rw" "$(rw_rows)"
assert_eq "rows" "5" "$(sqlite_rows rw/wh.db 'SELECT count(*) FROM t')"
assert_eq "distinct ids" "5" "$(sqlite_rows rw/wh.db 'SELECT count(DISTINCT _sluice_id) FROM t')"
assert_eq "earlier outputs kept" '"n":1 "n":2 "n":3 ' "$(rw_ns rw/out/o.ndjson)"
assert_eq "the re-delivered records, in a new file" "$(cat rw/out/o.1.ndjson)" "$(cat rw/out/o.2.ndjson)"
assert_eq "re-delivered records" '"n":4 "n":5 ' "$(rw_ns rw/out/o.2.ndjson)"
run_sluice status rw/p.yaml --json
cp "$RUN_STDOUT" rw4.json
assert_eq "position after the re-delivery" "$p2" "$(rw_get rw4.json wh position)"
assert_eq "file position after the re-delivery" "$p2" "$(rw_get rw4.json out position)"
assert_eq "records counted again" "7" "$(rw_get rw4.json wh records)"

# Several sources: --to-position needs --source; a sink without a checkpoint is not moved.
cat >rw/two.yaml <<'EOF'
pipeline: rewind_two
state_dir: state_two
sources:
  a: {type: file, path: data/in.ndjson, format: ndjson}
  b: {type: file, path: data/in.ndjson, format: ndjson}
sinks:
  wh: {type: sqlite, inputs: [a, b], path: two.db, table: t}
EOF
run_sluice reset rw/two.yaml --to-position "$p1" --yes
assert_rc 2
assert_file_contains "$RUN_STDERR" "sluice reset: --to-position is a position of one source, but the selected sinks read from 2 (a, b); name it with --source"
run_sluice reset rw/two.yaml --source a --to-position "$p1" --yes
assert_rc 2
assert_file_contains "$RUN_STDOUT" "    from  no checkpoint: the next run delivers everything to it"
assert_file_contains "$RUN_STDOUT" "REFUSED: it would skip the records up to there, which it never received"
[ ! -e rw/two.db ] || fail "a refused rewind created the database"

# ---- at-least-once sinks and pipelines ------------------------------------------------------------
note "at-least-once"
cat >alo.yaml <<'EOF'
pipeline: alo_test
state_dir: state_alo
delivery: at_least_once
sources:
  clicks: {type: file, path: data/in.ndjson, format: ndjson}
sinks:
  wh: {type: sqlite, inputs: [clicks], path: alo.db, table: t, key: id}
  out: {type: stdout, inputs: [clicks]}
EOF
run_sluice status alo.yaml
assert_rc 0
assert_file_contains "$RUN_STDOUT" "delivery     at_least_once"
assert_file_contains "$RUN_STDOUT" "sink wh (sqlite): at_least_once, duplicates possible after a crash"
assert_file_contains "$RUN_STDOUT" "sink out (stdout): at_least_once, duplicates possible after a crash"
assert_file_contains "$RUN_STDOUT" "    position     no checkpoint (at-least-once sink)"
run_sluice status alo.yaml --json
cp "$RUN_STDOUT" a.json
assert_eq "stdout checkpoints" "False" "$(json_get a.json '[s for s in j["sinks"] if s["name"] == "out"][0]["checkpoints"]')"
assert_eq "stdout delivery" "at_least_once" "$(json_get a.json '[s for s in j["sinks"] if s["name"] == "out"][0]["delivery"]')"
assert_eq "sqlite in an at_least_once pipeline" "True" \
    "$(json_get a.json '[s for s in j["sinks"] if s["name"] == "wh"][0]["duplicates_possible"]')"
run_sluice reset alo.yaml --sink out --yes
assert_rc 2
assert_file_contains "$RUN_STDERR" "sink out (stdout) keeps no checkpoint, so there is nothing to reset"

# ---- usage and config errors ----------------------------------------------------------------------
note "usage and config errors"
run_sluice status
assert_rc 2
run_sluice status p.yaml --bogus
assert_rc 2
assert_file_contains "$RUN_STDERR" "unknown option --bogus"
run_sluice status missing.yaml
assert_rc 2
printf 'pipeline: x\nsources: {}\nsinks: {}\nbogus: 1\n' >bad.yaml
run_sluice status bad.yaml
assert_rc 2
run_sluice reset bad.yaml --yes
assert_rc 2
run_sluice status --help
assert_rc 0
assert_file_contains "$RUN_STDOUT" "usage: sluice status PIPELINE.yaml [--json]"
run_sluice reset --help
assert_rc 0
assert_file_contains "$RUN_STDOUT" "--to-position P     rewind to position P of one source"

# ---- one process at a time ------------------------------------------------------------------------
note "reset and run are refused while the pipeline runs; status works"
cat >follow.yaml <<'EOF'
pipeline: follow_test
state_dir: state_follow
sources:
  clicks: {type: file, path: data/in.ndjson, format: ndjson, follow: true}
sinks:
  wh: {type: sqlite, inputs: [clicks], path: follow.db, table: t, key: id}
EOF
# follow_rows_are N: the follow run's table holds N rows (evaluated afresh at every poll).
follow_rows_are() {
    [ -f follow.db ] && [ "$(sqlite3 follow.db 'SELECT count(*) FROM t' 2>/dev/null)" = "$1" ]
}
start_sluice run follow.yaml
bg_pid=$SLUICE_PID
wait_for 60 test -s state_follow/LOCK
wait_for 60 follow_rows_are 7
busy="state_dir $T/state_follow is in use by another sluice process (pid $bg_pid): the pipeline is running"
run_sluice reset follow.yaml --yes
assert_rc 1
assert_file_contains "$RUN_STDERR" "$busy"
assert_file_contains "$RUN_STDERR" "nothing was reset"
run_sluice run follow.yaml --once
assert_rc 1
assert_file_contains "$RUN_STDERR" "$busy"
run_sluice status follow.yaml --json
assert_rc 0
cp "$RUN_STDOUT" f.json
assert_eq "records while running" "7" "$(json_get f.json 'j["sinks"][0]["sources"][0]["records"]')"
kill -TERM "$bg_pid"
bg_rc=0
wait "$bg_pid" || bg_rc=$?
assert_eq "exit code after SIGTERM" "0" "$bg_rc"
run_sluice reset follow.yaml --yes
assert_rc 0
assert_file_contains "$RUN_STDOUT" "  reset sink wh"

# ---- an unknown state format ----------------------------------------------------------------------
note "unknown state format"
printf 'sluice-state 9\n' >state/FORMAT
want_msg="state_dir $T/state is in state format 9, but this sluice reads state format 1 only."
run_sluice status p.yaml
assert_rc 1
assert_file_contains "$RUN_STDERR" "$want_msg"
run_sluice reset p.yaml --yes
assert_rc 1
assert_file_contains "$RUN_STDERR" "$want_msg"
run_sluice run p.yaml --once
assert_rc 1
assert_file_contains "$RUN_STDERR" "$want_msg"
assert_eq "FORMAT left alone" "sluice-state 9" "$(cat state/FORMAT)"
printf 'not ours\n' >state/FORMAT
run_sluice run p.yaml --once
assert_rc 1
assert_file_contains "$RUN_STDERR" "is not a sluice state marker"
assert_eq "rows after refused runs" "$want7" "$(rows)"

note "ok"
