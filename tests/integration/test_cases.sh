#!/usr/bin/env bash
# tests/integration/test_cases.sh - run every data-driven case in tests/data/cases/.
#
#   bash tests/integration/test_cases.sh [CASE...]
#
# A case is a directory:
#
#   pipeline.yaml             the pipeline; paths relative to it (inputs under input/,
#                             outputs under out/, state_dir inside the case)
#   input/...                 the input files
#   expected/<sink>.ndjson    the records a file sink writes to out/<sink>.ndjson,
#                             compared as parsed records in order; expected/stdout.ndjson
#                             is compared with what the run wrote to stdout. An empty
#                             expectation also accepts a sink that wrote no file.
#   expected/<sink>.bytes     optional: out/<sink>.ndjson must equal it byte for byte
#                             (a `_sluice_id` record-id field a sink adds is checked for
#                             form and uniqueness, then ignored, unless the expectation
#                             itself mentions _sluice_id)
#   expected/<sink>.sql       a query on out/<sink>.db (a sqlite sink) whose rows, as TSV
#   expected/<sink>.tsv       (NULL written as NULL), must equal this file exactly
#   expected/report.json      optional: values the run report must contain (a subset;
#                             stages matched by name)
#   expected/exit_code        optional: the exit status wanted (default 0)
#   expected/stderr_contains  optional: strings (one per line) stderr must contain
#   args                      optional: extra arguments for `sluice run`, one per line
#   stdin                     optional: fed to the run's standard input (else /dev/null)
#   runs                      optional: how many times to run (default 1), to test that a
#                             rerun resumes from its checkpoints; before run k the files
#                             under before_run_<k>/ (if any) are copied over the case
#                             (e.g. a longer input/ file, as if lines were appended).
#                             Outputs and expected/report.json are checked after the last
#                             run, conservation after every run.
#   same_as                   optional: a repository path (e.g. examples/quickstart.yaml)
#                             that pipeline.yaml must be identical to, so a shipped
#                             example is tested exactly as users get it
#
# Each case is copied to a fresh directory and run there as
#
#   $SLUICE run pipeline.yaml --once --report report.json [args]
#
# then every expectation is checked, the report's counts must balance
# (assert_conservation), and every out/*.ndjson must have an expectation, so a stray
# sink output cannot go unnoticed. A case that fails keeps its directory for inspection.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CASES_DIR=$SLUICE_SRC/tests/data/cases
[ -x "$SLUICE" ] || fail "no sluice binary at '$SLUICE'; build it (make debug) or set SLUICE"
command -v jq >/dev/null || fail "jq is needed; run scripts/deps.sh"
command -v sqlite3 >/dev/null || fail "sqlite3 is needed; run scripts/deps.sh"
[ -d "$CASES_DIR" ] || fail "no cases at $CASES_DIR"

tmpdir WORK

# strip_record_ids IN OUT: sinks that cannot commit a position (stdout) tag each object
# record with its record id in `_sluice_id` so that readers can drop replays. Ids depend
# on file identity (inode) or start time, so expectations leave them out: here each one is
# checked for form (32 hex digits) and uniqueness, then removed.
strip_record_ids() {
    jq -c 'if type == "object" and has("_sluice_id") then
               if (._sluice_id | type == "string" and test("^[0-9a-f]{32}$")) then del(._sluice_id)
               else error("malformed _sluice_id: \(._sluice_id | tojson)") end
           else . end' "$1" >"$2" || fail "$1: bad record ids (see jq's message above)"
    local total distinct
    total=$(jq -r 'select(type == "object" and has("_sluice_id")) | ._sluice_id' "$1" | wc -l)
    distinct=$(jq -r 'select(type == "object" and has("_sluice_id")) | ._sluice_id' "$1" |
        sort -u | wc -l)
    [ "$total" -eq "$distinct" ] ||
        fail "$1: $total records with _sluice_id but only $distinct distinct ids"
}

# run_case NAME: run in a subshell by the caller, so that fail ends only this case.
run_case() {
    local name=$1 src=$CASES_DIR/$1 dir=$WORK/$1
    _SL_TEST_NAME="case $name"
    [ -f "$src/pipeline.yaml" ] || fail "no pipeline.yaml"
    [ -d "$src/expected" ] || fail "no expected/ directory"
    if [ -f "$src/same_as" ]; then
        local orig
        orig=$SLUICE_SRC/$(tr -d '\n' <"$src/same_as")
        cmp -s "$orig" "$src/pipeline.yaml" ||
            fail "pipeline.yaml is not a copy of $orig; copy it again and update expected/"
    fi
    cp -R "$src" "$dir"
    cd "$dir" || fail "cannot enter $dir"

    local args=()
    if [ -f args ]; then
        local line
        while IFS= read -r line || [ -n "$line" ]; do
            [ -n "$line" ] && args+=("$line")
        done <args
    fi
    local RUN_STDIN=/dev/null
    [ -f stdin ] && RUN_STDIN=$dir/stdin
    local want_rc=0 runs=1 k
    [ -f expected/exit_code ] && want_rc=$(tr -d ' \n' <expected/exit_code)
    [ -f runs ] && runs=$(tr -d ' \n' <runs)
    for ((k = 1; k <= runs; k++)); do
        # cp onto existing files rewrites them in place (same inode), as an appending
        # writer would leave them.
        if [ -d "before_run_$k" ]; then cp -R "before_run_$k/." .; fi
        rm -f report.json
        run_sluice run pipeline.yaml --once --report report.json "${args[@]+"${args[@]}"}"
        cp "$RUN_STDOUT" run.stdout
        cp "$RUN_STDERR" run.stderr
        [ "$runs" -eq 1 ] || cp run.stderr "run.$k.stderr"
        assert_rc "$want_rc"
        if [ "$want_rc" -eq 0 ] && [ "$k" -lt "$runs" ]; then
            [ -f report.json ] || fail "run $k wrote no report.json"
            cp report.json "report.$k.json"
            assert_conservation report.json pipeline.yaml
        fi
    done

    local checked=0 exp sink actual
    for exp in expected/*.ndjson; do
        [ -e "$exp" ] || continue
        sink=$(basename "$exp" .ndjson)
        if [ "$sink" = stdout ]; then
            actual=run.stdout
        else
            actual=out/$sink.ndjson
        fi
        if [ ! -e "$actual" ] && [ ! -s "$exp" ]; then
            checked=$((checked + 1))
            continue
        fi
        if ! grep -q '"_sluice_id"' "$exp" && grep -q '"_sluice_id"' "$actual"; then
            strip_record_ids "$actual" "$sink.noid.ndjson"
            assert_same_records "$exp" "$sink.noid.ndjson" "sink $sink: $actual differs from $exp"
        else
            assert_same_records "$exp" "$actual" "sink $sink: $actual differs from $exp"
        fi
        if [ -f "expected/$sink.bytes" ]; then
            cmp -s "expected/$sink.bytes" "$actual" || {
                cmp "expected/$sink.bytes" "$actual" >&2 || true
                fail "sink $sink: $actual is not byte-identical to expected/$sink.bytes"
            }
        fi
        checked=$((checked + 1))
    done
    for exp in expected/*.sql; do
        [ -e "$exp" ] || continue
        sink=$(basename "$exp" .sql)
        [ -f "expected/$sink.tsv" ] || fail "expected/$sink.sql has no expected/$sink.tsv"
        sqlite_rows "out/$sink.db" "$(cat "$exp")" >"$sink.actual.tsv"
        diff -u "expected/$sink.tsv" "$sink.actual.tsv" >"$sink.tsv.diff" || {
            sed -n '3,40p' "$sink.tsv.diff" >&2
            fail "sink $sink: rows of out/$sink.db differ from expected/$sink.tsv"
        }
        checked=$((checked + 1))
    done
    if [ -d out ]; then
        local f
        for f in out/*.ndjson; do
            [ -e "$f" ] || continue
            [ -f "expected/$(basename "$f")" ] ||
                fail "$f was written but the case has no expected/$(basename "$f")"
        done
    fi
    if [ -f expected/stderr_contains ]; then
        local text
        while IFS= read -r text || [ -n "$text" ]; do
            [ -n "$text" ] && assert_file_contains run.stderr "$text"
        done <expected/stderr_contains
    fi
    if [ "$want_rc" -eq 0 ]; then
        [ "$checked" -gt 0 ] || fail "the case checks no output (add expected/<sink>.ndjson)"
        [ -f report.json ] || fail "no report.json was written"
        assert_conservation report.json pipeline.yaml
    fi
    if [ -f expected/report.json ]; then
        assert_report_subset expected/report.json report.json
    fi
}

cases=()
if [ $# -gt 0 ]; then
    cases=("$@")
else
    for d in "$CASES_DIR"/*/; do
        cases+=("$(basename "$d")")
    done
fi

passed=0
failed=()
for name in "${cases[@]}"; do
    if (run_case "$name"); then
        echo "ok    $name"
        passed=$((passed + 1))
    else
        echo "FAIL  $name (work dir: $WORK/$name)"
        failed+=("$name")
    fi
done

echo "$passed of ${#cases[@]} cases passed"
if [ ${#failed[@]} -gt 0 ]; then
    fail "failed cases: ${failed[*]}"
fi
