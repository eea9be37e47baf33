# tests/integration/lib.sh - helpers shared by the black-box tests (bash).
#
# Sourced by every tests/integration/test_*.sh and tests/fault/test_*.sh. Those scripts
# drive the real sluice binary the way a user does and compare what comes out with what
# was expected, record by record. CTest passes:
#
#   SLUICE        the binary under test (default: build-debug/sluice, then build/sluice)
#   SLUICE_SRC    the repository root (default: two levels above this file)
#   SLUICE_TOOLS  the directory holding gen_clicks (default: the binary's directory)
#
# The helpers:
#
#   fail MSG...                   print "FAIL: MSG" (plus the test name) and exit 1
#   note MSG...                   print a progress line to stderr
#   tmpdir [VAR]                  make a fresh directory, store its path in VAR (default T);
#                                 removed at exit unless the test failed or KEEP_TMP=1
#   normalize FILE                FILE's JSON values, one per line, keys sorted (jq -S -c)
#   assert_same_records EXP ACT   the same records in the same order (compared parsed)
#   assert_same_set EXP ACT       the same records in any order (as multisets)
#   sqlite_rows DB QUERY          rows as TSV, NULL written as NULL, no header
#   assert_conservation REPORT [PIPELINE]
#                                 the run report's counts balance: per stage
#                                 in = out + dropped + rejected + quarantined (and
#                                 rejected = kept in the DLQ when there is one), along every edge
#                                 consumer in = producer out, and along every path from a
#                                 source to a sink in = out + dropped + rejected
#   assert_report_subset EXP ACT  every key in EXP has the same value in ACT (stages
#                                 matched by name), e.g. to pin exact counts
#   run_sluice ARGS...            run "$SLUICE" ARGS with a timeout; sets RUN_RC and the
#                                 files RUN_STDOUT and RUN_STDERR; never fails by itself;
#                                 stdin comes from the file $RUN_STDIN (default /dev/null)
#   assert_rc WANT                RUN_RC is WANT, or fail showing the command's stderr
#   start_sluice ARGS...          run "$SLUICE" ARGS in the background (for signal and
#                                 crash tests); sets SLUICE_PID, output in RUN_STDOUT and
#                                 RUN_STDERR; killed at exit if still running
#   wait_for SECONDS CMD...       poll CMD every 50 ms until it succeeds, or fail
#   assert_file_contains FILE TEXT
#   gen_clicks ARGS...            run $SLUICE_TOOLS/gen_clicks (realistic click events)
#
# Everything that compares prints the first differences, so a failure in CI explains
# itself without a rerun.
#
# Sourcing this file turns on `set -euo pipefail` and installs an EXIT trap that removes
# the temp directories; a test that needs its own EXIT trap should call _sl_cleanup from
# it.

if [ -z "${BASH_VERSION:-}" ]; then
    echo "lib.sh must be sourced by bash" >&2
    exit 2
fi
set -euo pipefail

SLUICE_SRC=${SLUICE_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
if [ -z "${SLUICE:-}" ]; then
    for candidate in "$SLUICE_SRC/build-debug/sluice" "$SLUICE_SRC/build/sluice"; do
        if [ -x "$candidate" ]; then
            SLUICE=$candidate
            break
        fi
    done
fi
SLUICE=${SLUICE:-sluice}
# Tests change directories, so relative paths to the binaries are made absolute.
case "$SLUICE" in /*) ;; */*) SLUICE=$(pwd)/$SLUICE ;; esac
SLUICE_TOOLS=${SLUICE_TOOLS:-$(dirname "$SLUICE")}
case "$SLUICE_TOOLS" in /*) ;; *) SLUICE_TOOLS=$(pwd)/$SLUICE_TOOLS ;; esac
SLUICE_TEST_TIMEOUT=${SLUICE_TEST_TIMEOUT:-300}
export SLUICE SLUICE_SRC SLUICE_TOOLS

_SL_TEST_NAME=$(basename "${0:-test}")
_SL_TMPDIRS=()
_SL_BG_PIDS=()
_SL_FAILED=0

fail() {
    _SL_FAILED=1
    echo "FAIL: $_SL_TEST_NAME: $*" >&2
    exit 1
}

note() {
    echo "$_SL_TEST_NAME: $*" >&2
}

_sl_cleanup() {
    local rc=$?
    local d p
    # Background runs a test left behind (it failed half-way) must not outlive it.
    for p in "${_SL_BG_PIDS[@]+"${_SL_BG_PIDS[@]}"}"; do
        kill -9 "$p" 2>/dev/null || true
    done
    for d in "${_SL_TMPDIRS[@]+"${_SL_TMPDIRS[@]}"}"; do
        if [ "$rc" -ne 0 ] || [ "$_SL_FAILED" -ne 0 ] || [ "${KEEP_TMP:-0}" = 1 ]; then
            echo "$_SL_TEST_NAME: kept $d for inspection" >&2
        else
            rm -rf "$d"
        fi
    done
}
trap _sl_cleanup EXIT

tmpdir() {
    local var=${1:-T}
    local d
    d=$(mktemp -d "${TMPDIR:-/tmp}/sluice-test.XXXXXX") || fail "cannot create a temp directory"
    _SL_TMPDIRS+=("$d")
    printf -v "$var" '%s' "$d"
}

# Scratch files for the helpers themselves live in their own temp directory.
_sl_scratch() {
    if [ -z "${_SL_SCRATCH:-}" ]; then
        tmpdir _SL_SCRATCH
    fi
}

normalize() {
    [ -f "$1" ] || fail "normalize: no such file: $1"
    jq -S -c . "$1" || fail "normalize: $1 is not valid JSON (see jq's message above)"
}

# _sl_show_diff LABEL EXPECTED_NORM ACTUAL_NORM: the first differing lines, then fail.
_sl_show_diff() {
    local label=$1 exp=$2 act=$3
    {
        echo "$label: expected $(wc -l <"$exp") records, got $(wc -l <"$act");" \
            "first differences (- expected, + actual):"
        diff -u "$exp" "$act" | sed -n '3,42p' | cut -c 1-400
    } >&2
    fail "$label"
}

assert_same_records() {
    local exp=$1 act=$2 label=${3:-"records in $2 differ from $1"}
    [ -f "$act" ] || fail "$label: $act was not written"
    _sl_scratch
    normalize "$exp" >"$_SL_SCRATCH/exp.norm"
    normalize "$act" >"$_SL_SCRATCH/act.norm"
    cmp -s "$_SL_SCRATCH/exp.norm" "$_SL_SCRATCH/act.norm" ||
        _sl_show_diff "$label" "$_SL_SCRATCH/exp.norm" "$_SL_SCRATCH/act.norm"
}

assert_same_set() {
    local exp=$1 act=$2 label=${3:-"records in $2 differ from $1 (ignoring order)"}
    [ -f "$act" ] || fail "$label: $act was not written"
    _sl_scratch
    normalize "$exp" | LC_ALL=C sort >"$_SL_SCRATCH/exp.norm"
    normalize "$act" | LC_ALL=C sort >"$_SL_SCRATCH/act.norm"
    cmp -s "$_SL_SCRATCH/exp.norm" "$_SL_SCRATCH/act.norm" ||
        _sl_show_diff "$label" "$_SL_SCRATCH/exp.norm" "$_SL_SCRATCH/act.norm"
}

sqlite_rows() {
    local db=$1 query=$2
    [ -f "$db" ] || fail "sqlite_rows: no database at $db"
    sqlite3 -batch -bail -noheader -nullvalue NULL -separator "$(printf '\t')" "$db" "$query" ||
        fail "sqlite_rows: query failed on $db: $query"
}

run_sluice() {
    _sl_scratch
    RUN_STDOUT=$_SL_SCRATCH/run.stdout
    RUN_STDERR=$_SL_SCRATCH/run.stderr
    RUN_RC=0
    timeout --kill-after=10 "$SLUICE_TEST_TIMEOUT" "$SLUICE" "$@" \
        >"$RUN_STDOUT" 2>"$RUN_STDERR" <"${RUN_STDIN:-/dev/null}" || RUN_RC=$?
    if [ "$RUN_RC" -eq 124 ] || [ "$RUN_RC" -eq 137 ]; then
        echo "$_SL_TEST_NAME: sluice $* timed out after ${SLUICE_TEST_TIMEOUT}s" >&2
    fi
    return 0
}

start_sluice() {
    RUN_STDOUT=$_SL_SCRATCH/bg.stdout
    RUN_STDERR=$_SL_SCRATCH/bg.stderr
    "$SLUICE" "$@" >"$RUN_STDOUT" 2>"$RUN_STDERR" </dev/null &
    SLUICE_PID=$!
    _SL_BG_PIDS+=("$SLUICE_PID")
}

wait_for() {
    local secs=$1
    shift
    local deadline=$((SECONDS + secs))
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${secs}s waiting for: $*"
        sleep 0.05
    done
}

assert_rc() {
    local want=$1
    if [ "$RUN_RC" -ne "$want" ]; then
        {
            echo "--- stderr of the last sluice run (last 30 lines):"
            tail -n 30 "$RUN_STDERR" 2>/dev/null || true
        } >&2
        fail "sluice exited with $RUN_RC, expected $want"
    fi
}

assert_file_contains() {
    local file=$1 text=$2
    grep -qF -- "$text" "$file" || {
        echo "--- $file:" >&2
        tail -n 30 "$file" >&2 || true
        fail "$file does not contain: $text"
    }
}

gen_clicks() {
    [ -x "$SLUICE_TOOLS/gen_clicks" ] ||
        fail "no gen_clicks in SLUICE_TOOLS ($SLUICE_TOOLS); build it or set SLUICE_TOOLS"
    "$SLUICE_TOOLS/gen_clicks" "$@"
}

# The checks are written in Python (json is in its standard library); the pipeline file
# is only read when the report does not list each stage's inputs, and then needs PyYAML.
assert_conservation() {
    local report=$1 pipeline=${2:-}
    [ -f "$report" ] || fail "assert_conservation: no report at $report"
    python3 - "$report" "$pipeline" <<'PY' || fail "conservation does not hold in $report"
import json, sys

report_path, pipeline_path = sys.argv[1], sys.argv[2]
with open(report_path) as f:
    rep = json.load(f)
stages = rep.get("stages")
if not isinstance(stages, list) or not stages:
    sys.exit(f"{report_path}: no stages")
by_name = {s["name"]: s for s in stages}
problems = []

def num(s, k):
    v = s.get(k, 0)
    if not isinstance(v, int) or v < 0:
        problems.append(f"stage {s['name']}: {k} = {v!r} is not a count")
        return 0
    return v

# 1. Each stage balances on its own: in = out + filtered + rejected (= kept in the DLQ when
# the pipeline has one) + quarantined (+ skipped: delivered before a restart).
has_dlq = bool(rep.get("dead_letter_queue"))
for s in stages:
    i, o, d, r, k, q = (num(s, key) for key in ("records_in", "records_out", "dropped",
                                                 "rejected", "skipped", "quarantined"))
    if i != o + d + r + k + q:
        problems.append(f"stage {s['name']} ({s.get('kind')}): records_in {i} != "
                        f"records_out {o} + dropped {d} + rejected {r} + skipped {k} + "
                        f"quarantined {q}")
    if has_dlq and num(s, "dlq") != r:
        problems.append(f"stage {s['name']}: rejected {r} but {num(s, 'dlq')} kept in the "
                        f"dead-letter queue")

# 2. The graph: from the report when it lists inputs, else from the pipeline file.
inputs = {}
if all("inputs" in s for s in stages if s.get("kind") != "source"):
    inputs = {s["name"]: list(s.get("inputs") or []) for s in stages}
elif pipeline_path:
    try:
        import yaml
    except ImportError:
        yaml = None
    if yaml is None:
        print("assert_conservation: no inputs in the report and no PyYAML: checking only "
              "per-stage balance", file=sys.stderr)
    else:
        with open(pipeline_path) as f:
            doc = yaml.safe_load(f)
        for sec in ("sources", "transforms", "sinks"):
            for name, comp in (doc.get(sec) or {}).items():
                ins = comp.get("inputs") or []
                inputs[name] = [ins] if isinstance(ins, str) else list(ins)

if inputs:
    # Split "route.output" into (producer, output).
    def edge(text):
        if text in by_name:
            return text, None
        p, _, out = text.rpartition(".")
        if p in by_name:
            return p, out
        problems.append(f"input {text!r} names no stage in the report")
        return None, None

    consumers = {}  # producer -> {output: [consumer, ...]}
    for c, ins in inputs.items():
        if c not in by_name:
            continue
        for text in ins:
            p, out = edge(text)
            if p:
                consumers.setdefault(p, {}).setdefault(out, []).append(c)

    # 2a. A consumer fed only by whole outputs receives the sum of what they passed on.
    for c, ins in inputs.items():
        if c not in by_name or not ins:
            continue
        edges = [edge(t) for t in ins]
        if any(p is None for p, _ in edges) or any(out is not None for _, out in edges):
            continue
        want = sum(num(by_name[p], "records_out") for p, _ in edges)
        got = num(by_name[c], "records_in")
        if got != want:
            problems.append(f"stage {c}: records_in {got} != records_out {want} of its "
                            f"inputs {', '.join(ins)}")

    # 2b. A stage with named outputs (route) passes each record to one output: the
    # outputs read by single-input consumers add up to its records_out.
    for p, outs in consumers.items():
        named = {o: cs for o, cs in outs.items() if o is not None}
        if not named:
            continue
        total, exact = 0, True
        for o, cs in named.items():
            counts = set()
            for c in cs:
                if len(inputs.get(c, [])) == 1:
                    counts.add(num(by_name[c], "records_in"))
                else:
                    exact = False
            if len(counts) > 1:
                problems.append(f"consumers of {p}.{o} ({', '.join(cs)}) received different "
                                f"counts {sorted(counts)}")
            total += min(counts) if counts else 0
        if exact and total != num(by_name[p], "records_out"):
            problems.append(f"stage {p}: records_out {num(by_name[p], 'records_out')} != "
                            f"{total}, the sum received through its outputs "
                            f"{', '.join(sorted(named))}")

    # 3. Every source-to-sink path without named outputs or fan-in conserves records.
    def paths_to(name, seen=()):
        ins = inputs.get(name, [])
        if not ins:
            yield [name]
            return
        if len(ins) != 1 or name in seen:
            return
        p, out = edge(ins[0])
        if p is None or out is not None:
            return
        for path in paths_to(p, seen + (name,)):
            yield path + [name]

    for s in stages:
        if s.get("kind") != "sink":
            continue
        for path in paths_to(s["name"]):
            src = by_name[path[0]]
            lost = sum(num(by_name[n], "dropped") + num(by_name[n], "rejected") +
                       num(by_name[n], "skipped") + num(by_name[n], "quarantined") for n in path)
            if num(src, "records_in") != num(s, "records_out") + lost:
                problems.append("path " + " -> ".join(path) + f": read {num(src, 'records_in')}"
                                f" != written {num(s, 'records_out')} + dropped, rejected and skipped "
                                f"{lost} along the way")

for p in problems:
    print("  " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
}

assert_report_subset() {
    local exp=$1 act=$2
    [ -f "$act" ] || fail "assert_report_subset: no report at $act"
    python3 - "$exp" "$act" <<'PY' || fail "report $2 does not match the expected subset $1"
import json, sys

with open(sys.argv[1]) as f:
    exp = json.load(f)
with open(sys.argv[2]) as f:
    act = json.load(f)
problems = []

def match(e, a, where):
    if isinstance(e, dict):
        if not isinstance(a, dict):
            problems.append(f"{where}: expected an object, got {json.dumps(a)}")
            return
        for k, v in e.items():
            if k not in a:
                problems.append(f"{where}.{k}: missing")
            else:
                match(v, a[k], f"{where}.{k}")
    elif isinstance(e, list) and e and all(isinstance(x, dict) and "name" in x for x in e):
        # Lists of named objects (stages) are matched by name, not position.
        if not isinstance(a, list):
            problems.append(f"{where}: expected a list, got {json.dumps(a)}")
            return
        named = {x.get("name"): x for x in a if isinstance(x, dict)}
        for x in e:
            if x["name"] not in named:
                problems.append(f"{where}[{x['name']}]: missing")
            else:
                match(x, named[x["name"]], f"{where}[{x['name']}]")
    elif e != a or type(e) is not type(a):
        problems.append(f"{where}: expected {json.dumps(e)}, got {json.dumps(a)}")

match(exp, act, "report")
for p in problems:
    print("  " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
}

# Made now rather than on first use, so helpers called in subshells share it and it is
# always cleaned up by the parent's exit trap.
_sl_scratch
