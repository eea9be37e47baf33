#!/usr/bin/env bash
# tests/integration/test_dlq_cli.sh - the dead-letter queue filled by a real run, read and
# purged with `sluice dlq list|show|stats|purge`.
#
# A file -> sqlite pipeline (json.require_object off, so an array reaches the sink) over
# seven lines, five of them bad:
#
#   line 1  {"id":1,"v":"ok"}          good
#   line 2  {"id":2,"v":               clicks   invalid_json
#   line 3  {"id":3,"v":"caf<E9>"}     clicks   encoding (invalid UTF-8 kept byte-exact)
#   line 4  [1,2]                      db       not_object (rejected by the sink)
#   line 5  {"id":5,"blob":"x..."}     clicks   record_too_large (1100 bytes, cut at 1 KiB)
#   line 6  garbage<TAB><01>           clicks   invalid_json (control bytes)
#   line 7  {"id":7,"v":"fine"}        good
#
#   1. before any run: no DLQ file -> list prints nothing (exit 0), stats "total 0 entries"
#   2. run --once -> two rows in the table, five entries in the DLQ
#   3. list --json: per entry every field exactly (stage, error, source, origin, line,
#      offset, position, attempts, raw bytes via raw_b64, true_len, record JSON or null,
#      first_seen == last_seen, RFC 3339 times); each line is valid JSON
#   4. reset --yes and run again (the same input read again) -> still five entries,
#      attempts 1, first_seen unchanged, last_seen later: one entry per (record, stage)
#   5. filters: --stage, --error, --since (duration and RFC 3339), --limit; list text lines
#   6. show ID: every field, the raw bytes escaped (\xe9), base64; show --json equals the
#      list --json line; show of a missing id exits 1
#   7. stats --json and text: groups largest first, exact counts, total
#   8. purge: refused without a filter or --all, refused (exit 2, count said, nothing
#      deleted) without --yes; with --yes deletes exactly the matching entries
#   9. usage errors exit 2; `dlq: {enabled: false}` says there is no DLQ (exit 2)
#
# Needs $SLUICE, python3 and sqlite3.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ -x "$SLUICE" ] || fail "no sluice binary at '$SLUICE'; build it (make debug) or set SLUICE"
command -v sqlite3 >/dev/null || fail "sqlite3 is needed; run scripts/deps.sh"
command -v python3 >/dev/null || fail "python3 is needed; run scripts/deps.sh"

tmpdir T
cd "$T" || fail "cannot enter $T"
mkdir -p input

assert_eq() {
    if [ "$2" != "$3" ]; then
        printf -- '--- want (%s):\n%s\n--- got:\n%s\n' "$1" "$2" "$3" >&2
        fail "$1 differs"
    fi
}

python3 - <<'EOF'
lines = [
    b'{"id":1,"v":"ok"}',
    b'{"id":2,"v":',
    b'{"id":3,"v":"caf\xe9"}',
    b'[1,2]',
    b'{"id":5,"blob":"' + b'x' * 1082 + b'"}',
    b'garbage\t\x01',
    b'{"id":7,"v":"fine"}',
]
assert len(lines[4]) == 1100
open('input/clicks.ndjson', 'wb').write(b''.join(l + b'\n' for l in lines))
EOF

cat >pipeline.yaml <<'EOF'
pipeline: dlq_cli
state_dir: state
json: {require_object: false}
sources:
  clicks: {type: file, path: input/clicks.ndjson, format: ndjson, max_record_bytes: 1KiB}
sinks:
  db: {type: sqlite, inputs: [clicks], path: out/db.sqlite, table: events, key: id}
EOF

# 1. Nothing rejected yet: no DLQ file, which is not an error.
run_sluice dlq list pipeline.yaml --json
assert_rc 0
assert_eq "list before any run" "" "$(cat "$RUN_STDOUT")"
run_sluice dlq stats pipeline.yaml
assert_rc 0
assert_eq "stats before any run" "total 0 entries" "$(cat "$RUN_STDOUT")"
[ ! -e state/dlq.db ] || fail "dlq list created state/dlq.db"

# 2. A run fills the DLQ.
run_sluice run pipeline.yaml --once
assert_rc 0
[ -f state/dlq.db ] || fail "the run did not create the dead-letter queue state/dlq.db"
assert_eq "rows" "$(printf '1\tok\n7\tfine')" "$(sqlite_rows out/db.sqlite 'SELECT id, v FROM events ORDER BY id')"

# 3. Every field of every entry.
run_sluice dlq list pipeline.yaml --json
assert_rc 0
cp "$RUN_STDOUT" list1.jsonl
python3 - list1.jsonl <<'EOF' || fail "list --json differs (see above)"
import base64, json, re, sys
data = open('input/clicks.ndjson', 'rb').read().split(b'\n')[:-1]
offsets = [0]
for l in data:
    offsets.append(offsets[-1] + len(l) + 1)
want = {  # line -> (stage, error, record)
    2: ('clicks', 'invalid_json', None),
    3: ('clicks', 'encoding', None),
    4: ('db', 'not_object', [1, 2]),
    5: ('clicks', 'record_too_large', None),
    6: ('clicks', 'invalid_json', None),
}
raw_lines = open(sys.argv[1], 'rb').read().split(b'\n')
assert raw_lines[-1] == b'', 'output does not end with a newline'
entries = [json.loads(l.decode('utf-8')) for l in raw_lines[:-1]]
ok = True
def check(cond, what):
    global ok
    if not cond:
        print('list --json: ' + what, file=sys.stderr)
        ok = False
check(len(entries) == 5, '%d entries, want 5' % len(entries))
check([e['id'] for e in entries] == sorted(e['id'] for e in entries), 'not in id order')
check(sorted(e['id'] for e in entries) == [1, 2, 3, 4, 5], 'ids are not 1..5')
rfc = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$')
for e in entries:
    line = e['line']
    if line not in want:
        check(False, 'unexpected line %r' % line)
        continue
    stage, err, record = want[line]
    w = 'entry of line %d: ' % line
    check(e['stage'] == stage, w + 'stage %r' % e['stage'])
    check(e['error'] == err, w + 'error %r' % e['error'])
    check(e['source'] == 'clicks', w + 'source %r' % e['source'])
    check(e['origin'].endswith('input/clicks.ndjson'), w + 'origin %r' % e['origin'])
    check(e['position'] == '%s:%d' % (e['origin'], line), w + 'position %r' % e['position'])
    check(e['offset'] == offsets[line - 1], w + 'offset %r, want %d' % (e['offset'], offsets[line - 1]))
    check(e['attempts'] == 1, w + 'attempts %r' % e['attempts'])
    check(e['replay'] is None, w + 'replay %r' % e['replay'])
    check(re.match(r'^[0-9a-f]{32}$', e['record_id']) is not None, w + 'record_id %r' % e['record_id'])
    check(isinstance(e['message'], str) and e['message'] != '', w + 'empty message')
    check(rfc.match(e['first_seen']) and e['first_seen'] == e['last_seen'], w + 'seen times')
    check(e['first_seen_ns'] == e['last_seen_ns'], w + 'seen ns')
    raw = base64.b64decode(e['raw_b64'])
    orig = data[line - 1]
    if err == 'record_too_large':
        check(len(raw) <= 1024 and orig.startswith(raw), w + 'raw is not a prefix of the line')
        check(e['true_len'] == len(orig), w + 'true_len %r, want %d' % (e['true_len'], len(orig)))
    else:
        check(raw == orig, w + 'raw %r, want %r' % (raw, orig))
        check(e['true_len'] == len(orig), w + 'true_len %r' % e['true_len'])
    check(e['raw_len'] == len(raw), w + 'raw_len')
    check(e['record'] == record, w + 'record %r, want %r' % (e['record'], record))
    if err == 'not_object':
        check(e['rule'] == 'type' and e['path'] == '$' and e['expected'] == 'object' and
              e['actual'] == 'array', w + 'reason %r' % ((e['rule'], e['path'], e['expected'], e['actual']),))
    check(e['contract'] is None and e['details'] is None, w + 'contract/details not null')
sys.exit(0 if ok else 1)
EOF

# 4. The same input read again: the same five entries, seen again.
sleep 1.1
run_sluice reset pipeline.yaml --yes
assert_rc 0
run_sluice run pipeline.yaml --once
assert_rc 0
run_sluice dlq list pipeline.yaml --json
assert_rc 0
cp "$RUN_STDOUT" list2.jsonl
python3 - list1.jsonl list2.jsonl <<'EOF' || fail "a second run changed the DLQ (see above)"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(b) == 5, 'entries after the second run: %d' % len(b)
for x, y in zip(a, b):
    for k in x:
        if k in ('last_seen', 'last_seen_ns'):
            continue
        assert x[k] == y[k], 'entry %d: %s %r -> %r' % (x['id'], k, x[k], y[k])
    assert y['last_seen_ns'] > x['last_seen_ns'], 'entry %d: last_seen not updated' % x['id']
EOF

id_of() { # id_of LINE: the entry id of the input line
    python3 -c 'import json,sys
for l in open("list2.jsonl"):
    e = json.loads(l)
    if e["line"] == int(sys.argv[1]): print(e["id"])' "$1"
}
ID3=$(id_of 3)
ID4=$(id_of 4)

# 5. Filters.
count_lines() { grep -c '' "$RUN_STDOUT" || true; }
run_sluice dlq list pipeline.yaml --json --stage db
assert_rc 0
assert_eq "--stage db" "$ID4" "$(python3 -c 'import json,sys; [print(json.loads(l)["id"]) for l in open(sys.argv[1])]' "$RUN_STDOUT")"
run_sluice dlq list pipeline.yaml --json --error invalid_json
assert_eq "--error invalid_json" "2" "$(count_lines)"
run_sluice dlq list pipeline.yaml --json --error invalid_json --stage db
assert_eq "--error invalid_json --stage db" "0" "$(count_lines)"
run_sluice dlq list pipeline.yaml --json --since 1h
assert_eq "--since 1h" "5" "$(count_lines)"
run_sluice dlq list pipeline.yaml --json --since 2000-01-01T00:00:00Z
assert_eq "--since 2000" "5" "$(count_lines)"
run_sluice dlq list pipeline.yaml --json --since 2099-01-01T00:00:00+02:00
assert_rc 0
assert_eq "--since 2099" "0" "$(count_lines)"
run_sluice dlq list pipeline.yaml --json --limit 2
assert_eq "--limit 2" "$(printf '1\n2')" "$(python3 -c 'import json,sys; [print(json.loads(l)["id"]) for l in open(sys.argv[1])]' "$RUN_STDOUT")"
run_sluice dlq list pipeline.yaml --stage db
assert_rc 0
LAST=$(python3 -c 'import json; print([json.loads(l) for l in open("list2.jsonl") if json.loads(l)["line"] == 4][0]["last_seen"])')
MSG4=$(python3 -c 'import json; print([json.loads(l) for l in open("list2.jsonl") if json.loads(l)["line"] == 4][0]["message"])')
want_line=$(printf '%-6s %s  %-14s %-16s clicks:4  %s' "$ID4" "$LAST" db not_object "$MSG4")
got_line=$(cat "$RUN_STDOUT")
# Lines are cut at 160 bytes ("..." at the end): compare what both surely hold.
assert_eq "list text line" "${want_line:0:150}" "${got_line:0:150}"
[ "${#got_line}" -le 160 ] || fail "list text line longer than 160 bytes: $got_line"

# 6. show.
run_sluice dlq show pipeline.yaml "$ID3"
assert_rc 0
grep -qxF "raw          {\"id\":3,\"v\":\"caf\\xe9\"}" "$RUN_STDOUT" ||
    fail "show: raw bytes not shown escaped: $(cat "$RUN_STDOUT")"
grep -qxF "raw_b64      $(printf '{"id":3,"v":"caf\xe9"}' | base64 -w0)" "$RUN_STDOUT" ||
    fail "show: base64 missing: $(cat "$RUN_STDOUT")"
grep -qxF "record       - (never parsed)" "$RUN_STDOUT" || fail "show: record line"
grep -qxF "error        encoding" "$RUN_STDOUT" || fail "show: error line"
grep -qxF "line         3" "$RUN_STDOUT" || fail "show: line"
grep -qxF "attempts     1" "$RUN_STDOUT" || fail "show: attempts"
run_sluice dlq show pipeline.yaml "$ID4" --json
assert_rc 0
assert_eq "show --json" "$(grep "\"id\":$ID4," list2.jsonl)" "$(cat "$RUN_STDOUT")"
run_sluice dlq show pipeline.yaml 999
assert_rc 1
assert_file_contains "$RUN_STDERR" "has no entry 999"

# 7. stats.
run_sluice dlq stats pipeline.yaml --json
assert_rc 0
python3 - "$RUN_STDOUT" <<'EOF' || fail "stats --json differs (see above)"
import json, sys
got = [json.loads(l) for l in open(sys.argv[1])]
want = [('clicks', 'invalid_json', 2), ('clicks', 'encoding', 1),
        ('clicks', 'record_too_large', 1), ('db', 'not_object', 1)]
have = [(g['stage'], g['error'], g['count']) for g in got]
assert have == want, 'stats: %r' % have
for g in got:
    assert g['first_seen'] <= g['last_seen'], g
EOF
run_sluice dlq stats pipeline.yaml
assert_rc 0
assert_eq "stats text: total" "total 5 entries" "$(tail -n 1 "$RUN_STDOUT")"
assert_eq "stats text: lines" "6" "$(count_lines)"
head -n 1 "$RUN_STDOUT" | grep -q "^stage  *error  *count  *first seen  *last seen$" ||
    fail "stats text header: $(head -n 1 "$RUN_STDOUT")"
run_sluice dlq stats pipeline.yaml --stage db --json
assert_eq "stats --stage db" "1" "$(count_lines)"

# 8. purge.
run_sluice dlq purge pipeline.yaml --yes
assert_rc 2
assert_file_contains "$RUN_STDERR" "--all"
run_sluice dlq purge pipeline.yaml --error invalid_json
assert_rc 2
assert_eq "purge without --yes" "would delete 2 entries" "$(cat "$RUN_STDOUT")"
assert_file_contains "$RUN_STDERR" "add --yes"
assert_eq "nothing purged" "5" "$(sqlite_rows state/dlq.db 'SELECT count(*) FROM dlq_entries')"
run_sluice dlq purge pipeline.yaml --error invalid_json --yes
assert_rc 0
assert_eq "purge --yes" "deleted 2 entries" "$(cat "$RUN_STDOUT")"
assert_eq "left after purge" "clicks encoding
clicks record_too_large
db not_object" "$(sqlite_rows state/dlq.db "SELECT stage || ' ' || error_class FROM dlq_entries ORDER BY stage, error_class")"
run_sluice dlq purge pipeline.yaml --all --yes
assert_rc 0
assert_eq "purge --all" "deleted 3 entries" "$(cat "$RUN_STDOUT")"
run_sluice dlq list pipeline.yaml
assert_rc 0
assert_eq "list after purge" "" "$(cat "$RUN_STDOUT")"

# 9. Usage and configuration errors.
run_sluice dlq
assert_rc 2
run_sluice dlq lst pipeline.yaml
assert_rc 2
assert_file_contains "$RUN_STDERR" 'did you mean "list"'
run_sluice dlq list pipeline.yaml --since yesterday
assert_rc 2
assert_file_contains "$RUN_STDERR" "neither an RFC 3339 time"
run_sluice dlq list pipeline.yaml --limit 0
assert_rc 2
run_sluice dlq show pipeline.yaml
assert_rc 2
run_sluice dlq purge pipeline.yaml --all --stage db --yes
assert_rc 2
run_sluice dlq list --help
assert_rc 0
assert_file_contains "$RUN_STDOUT" "usage: sluice dlq"
sed 's/^json: .*/dlq: {enabled: false}/' pipeline.yaml >off.yaml
run_sluice dlq list off.yaml
assert_rc 2
assert_file_contains "$RUN_STDERR" "this pipeline has no dead-letter queue (dlq: {enabled: false})"

note "ok"
