#!/usr/bin/env bash
# test_http_sink.sh - file -> http: what the receiver gets, byte for byte and header by header.
#
# A local receiver (tests/tools/flaky_http.py) logs every request. Checked:
#   1. ndjson: the records received are exactly the input (as a multiset), each with its
#      record id in _sluice_id (32 hex digits, all distinct); every request carries the
#      configured header, the bearer token taken from ${ENV}, Content-Type
#      application/x-ndjson and an Idempotency-Key equal to the documented function of the
#      record ids in its body; no request holds more than max_records_per_request records.
#   2. A second run over the same input sends the same requests: the same keys, each with
#      the same body (the sink keeps no checkpoint, so a rerun delivers everything again).
#   3. json_array: the same records as JSON arrays, Content-Type application/json.
#   4. basic auth is sent as such; an endpoint answering 413 to everything gets each record
#      isolated and rejected (rule http_413); a wrong password is a fatal run failure
#      naming auth.
#   5. `sluice status` shows the sink as at-least-once with no checkpoint.
. "$(dirname "$0")/lib.sh"

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

python3 - >in.ndjson <<'PY'
import json
for i in range(3000):
    r = {"n": i, "user": f"u{i % 37}", "amount": i * 1.25, "tags": ["a", "b"][: i % 3]}
    if i % 500 == 7:
        r["note"] = "caf\u00e9 \u2603 \"quoted\" \\ back"
    print(json.dumps(r, ensure_ascii=False))
PY

export HTTP_TOKEN=s3cret-token
start_http ok.log --require-auth "Bearer s3cret-token"
PORT1=$HTTP_PORT

pipeline() { # pipeline FILE FORMAT EXTRA_YAML
    cat >"$1" <<EOF
pipeline: http_it
state_dir: state-$1
sources:
  in: {type: file, path: in.ndjson, format: ndjson}
sinks:
  out:
    type: http
    inputs: [in]
    url: http://127.0.0.1:$PORT1/ingest
    format: $2
    headers: {X-Pipeline: clicks}
    max_records_per_request: 300
    concurrency: 3
$3
EOF
}
pipeline nd.yaml ndjson '    auth: {bearer: "${HTTP_TOKEN}"}'
pipeline arr.yaml json_array '    auth: {bearer: "${HTTP_TOKEN}"}'

# check LOG FORMAT FIRST_LINE: the requests of LOG from line FIRST_LINE on.
check() {
    python3 - "$1" "$2" "$3" in.ndjson <<'PY' || fail "requests in $1 (from line $3) are not as expected"
import json, re, sys

log, fmt, first, inp = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
M = (1 << 64) - 1

def mix64(x):
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & M
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & M
    return x ^ (x >> 31)

def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M

def key(ids):  # docs/internals/http-sink.md, "The idempotency key"
    h0, h1 = 0x736C756963652D68, 0x7474702D6B657931
    h0, h1 = mix64(h0 ^ len(ids)), mix64((h1 + len(ids)) & M)
    for hx in ids:
        a, b = int(hx[:16], 16), int(hx[16:], 16)
        h0 = (mix64(h0 ^ a) + b) & M
        h1 = (mix64(h1 ^ b) + rotl(a, 23)) & M
    f0 = mix64(h0 ^ rotl(h1, 17))
    return "%016x%016x" % (f0, mix64((h1 + f0) & M))

want_ct = "application/json" if fmt == "json_array" else "application/x-ndjson"
lines = open(log).read().splitlines()[first - 1:]
problems, got, ids = [], [], set()
for ln in lines:
    q = json.loads(ln)
    h = q["headers"]
    where = f"request {q['idempotency_key']}"
    for k, v in (("x-pipeline", "clicks"), ("authorization", "Bearer s3cret-token"),
                 ("content-type", want_ct)):
        if h.get(k) != v:
            problems.append(f"{where}: header {k} = {h.get(k)!r}, expected {v!r}")
    if q["method"] != "POST" or q["path"] != "/ingest" or q["status"] != 200:
        problems.append(f"{where}: {q['method']} {q['path']} answered {q['status']}")
    if fmt == "json_array":
        recs = json.loads(q["body"])
        if not isinstance(recs, list):
            problems.append(f"{where}: body is not a JSON array")
    else:
        if not q["body"].endswith("\n"):
            problems.append(f"{where}: NDJSON body does not end with a newline")
        recs = [json.loads(x) for x in q["body"].splitlines()]
    if not 1 <= len(recs) <= 300:
        problems.append(f"{where}: {len(recs)} records, expected 1 to 300")
    rid = [r.get("_sluice_id", "") for r in recs]
    if not all(re.fullmatch("[0-9a-f]{32}", x) for x in rid):
        problems.append(f"{where}: a record without a 32-hex-digit _sluice_id")
    ids.update(rid)
    if q["idempotency_key"] != key(rid):
        problems.append(f"{where}: key is not the documented function of its ids "
                        f"(expected {key(rid)})")
    for r in recs:
        r.pop("_sluice_id", None)
        got.append(json.dumps(r, sort_keys=True))
exp = [json.dumps(json.loads(x), sort_keys=True) for x in open(inp)]
if sorted(got) != sorted(exp):
    missing = set(exp) - set(got)
    extra = set(got) - set(exp)
    problems.append(f"received {len(got)} records, expected {len(exp)}; "
                    f"e.g. missing {sorted(missing)[:2]}, unexpected {sorted(extra)[:2]}")
if len(ids) != len(exp):
    problems.append(f"{len(ids)} distinct record ids for {len(exp)} records")
for p in problems[:20]:
    print("  " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
}

# keyed LOG FIRST LAST: "key<TAB>body" of the requests in lines FIRST..LAST, sorted.
keyed() {
    sed -n "$2,$3p" "$1" | jq -r '[.idempotency_key, .body] | @tsv' | LC_ALL=C sort
}

note "1. ndjson"
run_sluice run nd.yaml --once
assert_rc 0
check ok.log ndjson 1
n1=$(wc -l <ok.log)
[ "$n1" -ge 10 ] || fail "expected at least 10 requests (3000 records, 300 per request), got $n1"

note "2. the same input again: the same requests under the same keys"
run_sluice run nd.yaml --once
assert_rc 0
n2=$(wc -l <ok.log)
[ "$n2" -eq $((2 * n1)) ] || fail "second run sent $((n2 - n1)) requests, the first $n1"
check ok.log ndjson $((n1 + 1))
keyed ok.log 1 "$n1" >run1.keys
keyed ok.log $((n1 + 1)) "$n2" >run2.keys
cmp -s run1.keys run2.keys || {
    diff run1.keys run2.keys | head -5 | cut -c 1-200 >&2
    fail "the second run's requests differ from the first's (key and body)"
}
[ "$(cut -f1 run1.keys | sort -u | wc -l)" -eq "$n1" ] || fail "two requests of one run share a key"

note "3. json_array"
run_sluice run arr.yaml --once
assert_rc 0
check ok.log json_array $((n2 + 1))

note "4. basic auth; a wrong token is fatal"
start_http basic.log --require-auth "Basic $(printf 'ann:pa:ss' | base64)"
head -n 5 in.ndjson >small.ndjson
cat >basic.yaml <<EOF
pipeline: http_basic
state_dir: state-basic
sources:
  in: {type: file, path: small.ndjson, format: ndjson}
sinks:
  out:
    type: http
    inputs: [in]
    url: http://127.0.0.1:$HTTP_PORT/b
    id_field: ""
    auth: {basic: {user: ann, password: "pa:ss"}}
EOF
run_sluice run basic.yaml --once
assert_rc 0
[ "$(jq -r .status basic.log)" = 200 ] || fail "basic auth was not accepted: $(cat basic.log)"
jq -j .body basic.log >basic.body
cmp -s basic.body small.ndjson || fail "with id_field \"\" the body should be the input lines"
# 413 for everything: each request is halved down to single records, each rejected.
python3 -c 'import sys, urllib.request
urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:%s/_control" % sys.argv[1],
    data=b"{\"mode\": \"status=413\"}"), timeout=5).read()' "$HTTP_PORT"
sed 's/state-basic/state-413/' basic.yaml >all413.yaml
run_sluice run all413.yaml --once --report all413.json
assert_rc 0
jq -e '.stages[] | select(.name == "out") | .records_out == 0 and .rejected == 5' all413.json \
    >/dev/null || fail "all five records should be rejected: $(cat all413.json)"
run_sluice dlq list all413.yaml --json
jq -s -e 'length == 5 and all(.[]; .rule == "http_413" and .error == "sink")' "$RUN_STDOUT" \
    >/dev/null || fail "the DLQ should hold five http_413 entries: $(head -c 1500 "$RUN_STDOUT")"
[ "$(jq -s '[.[] | select(.status == 413)] | length' basic.log)" -eq 9 ] ||
    fail "5 records take 9 refused requests to isolate (5, 2+3, 1+1+1+2, 1+1)"
python3 -c 'import sys, urllib.request
urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:%s/_control" % sys.argv[1],
    data=b"{\"mode\": \"ok\"}"), timeout=5).read()' "$HTTP_PORT"
sed 's/password: "pa:ss"/password: wrong/' basic.yaml >wrong.yaml
run_sluice run wrong.yaml --once
assert_rc 1
assert_file_contains "$RUN_STDERR" "401"
assert_file_contains "$RUN_STDERR" "check sinks.out.auth"

note "5. status: at-least-once, no checkpoint"
run_sluice status nd.yaml --json
assert_rc 0
jq -e '.sinks[] | select(.name == "out") | .delivery == "at_least_once" and
       .checkpoints == false and .duplicates_possible == true' "$RUN_STDOUT" >/dev/null ||
    fail "status does not show the http sink as at-least-once: $(cat "$RUN_STDOUT")"
note "ok"
