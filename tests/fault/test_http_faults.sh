#!/usr/bin/env bash
# test_http_faults.sh - the http sink against a receiver that fails on command
# (tests/tools/flaky_http.py). Each scenario ends with every record delivered (answered
# 2xx) and every copy of a record the receiver saw carried in requests with one and the
# same Idempotency-Key (the sink re-sends a failed request with the same records, so the
# same key). Scenarios:
#   a. 503 with Retry-After: 2 for four requests: each retry of a refused request comes at
#      least 2 s after the refusal (timestamps in the receiver's log).
#   b. three requests time out (the receiver sleeps past the sink's timeout, after it has
#      logged the records: real duplicates): all delivered, duplicates under one key.
#   c. 50% of 20,000-record requests fail at random (500): every record accepted exactly
#      once, every copy under its first key.
#   d. one poison record among 5,000 (422): it alone is in the DLQ (class sink, rule
#      http_422), the 4,999 others are accepted, the run's counts balance.
#   e. the receiver fails for ~3 s with circuit_breaker {failure_threshold: 3,
#      open_for: 1s}: the run report shows breaker_opens >= 1 and retries > 0, the log
#      shows the breaker open and close, and while open nothing was sent for ~1 s.
. "$(dirname "$0")/../integration/lib.sh"

FLAKY=$SLUICE_SRC/tests/tools/flaky_http.py
tmpdir T
cd "$T"

# start_http LOG [ARGS...]: start a receiver logging to LOG; sets HTTP_PORT.
start_http() {
    local log=$1
    shift
    rm -f "$log.port"
    python3 "$FLAKY" --log "$log" --port-file "$log.port" "$@" 2>"$log.stderr" &
    _SL_BG_PIDS+=($!)
    disown $! # killed by lib.sh's exit trap, without a job-control notice
    wait_for 10 test -s "$log.port"
    HTTP_PORT=$(cat "$log.port")
}

# control PORT JSON: change the receiver's mode.
control() {
    python3 -c 'import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(
    "http://127.0.0.1:%s/_control" % sys.argv[1], data=sys.argv[2].encode()), timeout=5).read()' \
        "$1" "$2" || fail "cannot reach the receiver's control endpoint on port $1"
}

# records N FILE: N distinct records.
records() {
    python3 -c 'import json, sys
for i in range(int(sys.argv[1])):
    print(json.dumps({"n": i, "kind": ["a", "b", "c"][i % 3], "v": i * 7 % 1000}))' "$1" >"$2"
}

# pipeline NAME INPUT PORT EXTRA_YAML: NAME.yaml, file -> http.
pipeline() {
    cat >"$1.yaml" <<EOF
pipeline: $1
state_dir: state-$1
sources:
  in: {type: file, path: $2, format: ndjson}
sinks:
  out:
    type: http
    inputs: [in]
    url: http://127.0.0.1:$3/in
$4
EOF
}

# deliveries LOG INPUT [exactly_once_accepted] [ignore_n=N]: the common checks. Copies in
# requests refused as a whole for their content (400, 413, 422) do not count for the key
# check: the sink splits such a request and its halves carry keys of their own (nothing
# was accepted under the refused key). ignore_n=N leaves the record with n = N out.
deliveries() {
    python3 - "$@" <<'PY' || fail "deliveries in $1 are not as expected (see above)"
import json, sys

log, inp = sys.argv[1], sys.argv[2]
once = "exactly_once_accepted" in sys.argv[3:]
ignore = {int(a[9:]) for a in sys.argv[3:] if a.startswith("ignore_n=")}
exp = {}
for ln in open(inp):
    r = json.loads(ln)
    exp[r["n"]] = r
problems = []
keys = {}      # record id -> set of keys of requests that carried it
accepted = {}  # record id -> times answered 2xx
content = {}   # record id -> the record
copies = 0
for ln in open(log):
    q = json.loads(ln)
    k = q["idempotency_key"]
    if not k or len(k) != 32:
        problems.append(f"a request without a proper Idempotency-Key: {k!r}")
    for x in q["body"].splitlines():
        r = json.loads(x)
        rid = r.pop("_sluice_id")
        if r["n"] in ignore:
            continue
        copies += 1
        if q["status"] not in (400, 413, 422):
            keys.setdefault(rid, set()).add(k)
        if content.setdefault(rid, r) != r:
            problems.append(f"record id {rid} carried two different records")
        if 200 <= q["status"] < 300:
            accepted[rid] = accepted.get(rid, 0) + 1
by_n = {}
for rid, r in content.items():
    by_n.setdefault(r["n"], []).append(rid)
missing = [n for n in exp if not any(accepted.get(i) for i in by_n.get(n, []))]
if missing:
    problems.append(f"{len(missing)} records never accepted, e.g. n = {missing[:5]}")
for n, ids in by_n.items():
    if len(ids) != 1:
        problems.append(f"record n={n} arrived under {len(ids)} record ids")
    if n not in exp or content[ids[0]] != exp[n]:
        problems.append(f"record n={n} was not sent as read: {content[ids[0]]}")
split = {rid: ks for rid, ks in keys.items() if len(ks) != 1}
if split:
    rid, ks = next(iter(split.items()))
    problems.append(f"{len(split)} records arrived under several keys, e.g. {rid}: {sorted(ks)}")
if once:
    twice = [rid for rid, c in accepted.items() if c != 1]
    if twice:
        problems.append(f"{len(twice)} records accepted more than once, e.g. {twice[:3]}")
print(f"  {copies} copies of {len(exp)} records in {sum(1 for _ in open(log))} requests; "
      f"{copies - len(content)} repeats", file=sys.stderr)
for p in problems[:20]:
    print("  " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
}

# ---------------------------------------------------------------------------------------
note "a. 503 with Retry-After: 2, then recovery"
records 4000 a.ndjson
start_http a.log --mode fail_503_retry_after=2 --count 4
pipeline a a.ndjson "$HTTP_PORT" '    max_records_per_request: 250
    concurrency: 2'
start=$SECONDS
run_sluice run a.yaml --once
assert_rc 0
[ $((SECONDS - start)) -ge 2 ] || fail "the run took under 2 s: Retry-After was not waited for"
deliveries a.log a.ndjson
python3 - a.log <<'PY' || fail "a retry came earlier than the Retry-After the receiver asked for"
import json, sys
reqs = [json.loads(x) for x in open(sys.argv[1])]
refused = [q for q in reqs if q["status"] == 503]
if len(refused) != 4:
    sys.exit(f"expected 4 answers 503, got {len(refused)}")
for q in refused:
    later = [r["t"] for r in reqs if r["idempotency_key"] == q["idempotency_key"] and r["t"] > q["t"]]
    if not later:
        sys.exit(f"request {q['idempotency_key']} refused at {q['t']} was never sent again")
    wait = min(later) - q["t"]
    print(f"  refused request re-sent after {wait:.2f} s", file=sys.stderr)
    if wait < 1.95:
        sys.exit(f"request {q['idempotency_key']} re-sent {wait:.3f} s after a 503 with "
                 f"Retry-After: 2")
PY
assert_file_contains "$RUN_STDERR" "Retry-After 2000 ms"

# ---------------------------------------------------------------------------------------
note "b. timeouts, then recovery"
records 3000 b.ndjson
start_http b.log --mode timeout=1.5 --count 3
pipeline b b.ndjson "$HTTP_PORT" '    max_records_per_request: 200
    timeout: 400ms
    retry: {initial_backoff: 50ms, max_backoff: 200ms}'
run_sluice run b.yaml --once
assert_rc 0
assert_file_contains "$RUN_STDERR" "timed out"
deliveries b.log b.ndjson
slept=$(jq -s '[.[] | select(.sleep > 0)] | length' b.log)
[ "$slept" -eq 3 ] || fail "expected 3 requests to time out, the receiver slept on $slept"
# The timed-out requests reached the receiver: their records arrived twice, same key.
dups=$(jq -r 'select(.sleep > 0) | .idempotency_key' b.log | while read -r k; do
    jq -r --arg k "$k" 'select(.idempotency_key == $k and .sleep == 0) | .status' b.log
done | grep -c '^200$' || true)
[ "$dups" -eq 3 ] || fail "each timed-out request should be re-sent once under its key ($dups)"

# ---------------------------------------------------------------------------------------
note "c. 50% random failures over 20,000 records"
records 20000 c.ndjson
start_http c.log --mode random_fail=0.5 --seed 7
pipeline c c.ndjson "$HTTP_PORT" '    max_records_per_request: 200
    concurrency: 4
    retry: {initial_backoff: 5ms, max_backoff: 50ms}
    circuit_breaker: {failure_threshold: 0}'
run_sluice run c.yaml --once --report c.report.json
assert_rc 0
deliveries c.log c.ndjson exactly_once_accepted
failed=$(jq -s '[.[] | select(.status == 500)] | length' c.log)
[ "$failed" -ge 50 ] || fail "expected many 500 answers with p = 0.5, got $failed"
jq -e '.stages[] | select(.name == "out") | .records_out == 20000 and .retries > 0' \
    c.report.json >/dev/null || fail "report: $(jq -c '.stages[] | select(.name == "out")' c.report.json)"

# ---------------------------------------------------------------------------------------
note "d. a poison record among 5,000"
records 5000 d.ndjson
start_http d.log --mode reject_if_field=n:3777
pipeline d d.ndjson "$HTTP_PORT" '    max_records_per_request: 500'
run_sluice run d.yaml --once --report d.report.json
assert_rc 0
assert_conservation d.report.json d.yaml
jq -e '.stages[] | select(.name == "out") | .records_out == 4999 and .rejected == 1' \
    d.report.json >/dev/null || fail "report: $(jq -c '.stages[] | select(.name == "out")' d.report.json)"
grep -v '"n": 3777' d.ndjson >d.good.ndjson
deliveries d.log d.good.ndjson exactly_once_accepted ignore_n=3777
python3 - d.log <<'PY' || fail "the poison record was accepted, or others were refused"
import json, sys
for ln in open(sys.argv[1]):
    q = json.loads(ln)
    recs = [json.loads(x) for x in q["body"].splitlines()]
    poison = any(r["n"] == 3777 for r in recs)
    if poison != (q["status"] == 422):
        sys.exit(f"request with {len(recs)} records (poison: {poison}) answered {q['status']}")
PY
run_sluice dlq list d.yaml --json
assert_rc 0
jq -s -e 'length == 1 and .[0].error == "sink" and .[0].rule == "http_422" and
          .[0].stage == "out" and .[0].record.n == 3777' "$RUN_STDOUT" >/dev/null ||
    fail "the DLQ should hold the poison record alone: $(head -c 2000 "$RUN_STDOUT")"
jq -r '.[0].message // .message' <(jq -s . "$RUN_STDOUT") | grep -q '422' ||
    fail "the DLQ entry's message should carry the receiver's answer"

# ---------------------------------------------------------------------------------------
note "e. circuit breaker: the receiver fails for ~3 s"
records 3000 e.ndjson
start_http e.log --mode fail_500
pipeline e e.ndjson "$HTTP_PORT" '    max_records_per_request: 500
    retry: {initial_backoff: 50ms, max_backoff: 200ms}
    circuit_breaker: {failure_threshold: 3, open_for: 1s}'
(sleep 3 && control "$HTTP_PORT" '{"mode": "ok"}') &
healer=$!
run_sluice run e.yaml --once --report e.report.json
wait "$healer"
assert_rc 0
deliveries e.log e.ndjson exactly_once_accepted
jq -e '.stages[] | select(.name == "out") | .breaker_opens >= 1 and .retries > 0' \
    e.report.json >/dev/null ||
    fail "report: $(jq -c '.stages[] | select(.name == "out")' e.report.json)"
assert_file_contains "$RUN_STDERR" "circuit breaker open"
assert_file_contains "$RUN_STDERR" "circuit breaker closed"
python3 - e.log <<'PY' || fail "no quiet period while the breaker was open"
import json, sys
t = [json.loads(x)["t"] for x in open(sys.argv[1])]
gap = max(b - a for a, b in zip(t, t[1:]))
print(f"  longest pause between requests: {gap:.2f} s", file=sys.stderr)
sys.exit(0 if gap >= 0.95 else 1)
PY
note "ok"
