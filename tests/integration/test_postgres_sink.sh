#!/usr/bin/env bash
# tests/integration/test_postgres_sink.sh - the postgres sink through the real binary,
# against a real PostgreSQL started for the test (tests/integration/pg.sh).
#
#   1. a run with awkward names (table "select", key column "user id", a column "from")
#      and values (tab, backslash, newline, quote, non-ASCII, nested JSON) -> exact rows
#      as psql prints them, the layout of the created table, the checkpoint row
#   2. the same run again                   -> nothing changes
#   3. two lines appended, one upserting a key, one bringing a new field -> the key's
#      row replaced, a new column added by a later batch, a fraction widening a bigint
#   4. status, reset --to-position (the rewound part is delivered again, rows unchanged)
#      and reset; after reset a re-run writes the same rows
#   5. a table created from a contract (columns and types from the contract); a backward
#      compatible new version adds a column, an incompatible one is refused
#   6. partition: {column, value} under --once, twice with different data for the same
#      value: only the second run's rows for that value, other values untouched
#   7. write-audit-publish with quality gates: a failed gate leaves nothing (table,
#      checkpoint, staging); a quarantine gate moves the records to the quarantine store
#      and commits the checkpoint
#
# Needs $SLUICE, $SLUICE_SRC, PostgreSQL server binaries and psql.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/pg.sh
. "$(dirname "${BASH_SOURCE[0]}")/pg.sh"

[ -x "$SLUICE" ] || fail "no sluice binary at '$SLUICE'; build it (make debug) or set SLUICE"

assert_eq() {
    if [ "$2" != "$3" ]; then
        printf -- '--- want (%s):\n%s\n--- got:\n%s\n' "$1" "$2" "$3" >&2
        fail "$1 differs"
    fi
}

pg_start
tmpdir T
cd "$T" || fail "cannot enter $T"

# --- 1. awkward names and values --------------------------------------------------------
cat >in.ndjson <<'EOF'
{"user id":1,"from":"tab\there","n":5,"ok":true,"obj":{"x":[1,2],"y":"z"}}
{"user id":2,"from":"back\\slash \"q\" é\nline","n":6,"ok":false}
{"user id":3,"from":null,"n":-7}
{"no key":1}
EOF
cat >p.yaml <<EOF
pipeline: pg_sink_test
state_dir: state
batch: {max_records: 2}
sources:
  src: {type: file, path: in.ndjson, format: ndjson}
sinks:
  pg:
    type: postgres
    inputs: [src]
    connection: "$PG_DSN"
    table: public.select
    key: user id
EOF
run_sluice run --once p.yaml
assert_rc 0
rows() { pg_sql 'SELECT "user id", "from", n, ok, obj, length(_sluice_id) FROM public."select" ORDER BY 1'; }
want1=$(printf '%s\n' \
    '1|tab	here|5|t|{"x": [1, 2], "y": "z"}|32' \
    '2|back\slash "q" é' \
    'line|6|f||32' \
    '3||-7|||32')
assert_eq "rows after run 1" "$want1" "$(rows)"
assert_eq "table layout" "$(printf '%s\n' '_sluice_id|text' 'user id|bigint' 'from|text' 'n|bigint' 'ok|boolean' 'obj|jsonb')" \
    "$(pg_sql "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'public.\"select\"'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum")"
assert_eq "primary key" "user id" \
    "$(pg_sql "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] WHERE i.indrelid = 'public.\"select\"'::regclass AND i.indisprimary")"
assert_eq "checkpoint row" "pg_sink_test|pg|src|3|t" \
    "$(pg_sql "SELECT pipeline, sink, source, records, position LIKE '%\"offset\":$(wc -c <in.ndjson)%' FROM _sluice_checkpoints")"
pos1=$(pg_sql 'SELECT position FROM _sluice_checkpoints')
run_sluice dlq list p.yaml --json
assert_rc 0
assert_eq "dlq" "1 key_missing" "$(jq -s -r '"\(length) \(.[0].rule)"' "$RUN_STDOUT")"

# --- 2. the same run again ---------------------------------------------------------------
run_sluice run --once p.yaml
assert_rc 0
assert_eq "rows after a re-run" "$want1" "$(rows)"
assert_eq "records after a re-run" "3" "$(pg_sql 'SELECT records FROM _sluice_checkpoints')"

# --- 3. upsert on the key, a new column from a later batch, widening -------------------------
cat >>in.ndjson <<'EOF'
{"user id":2,"from":"two again","n":6.5,"ok":true}
{"user id":4,"from":"four","n":8,"city":"Zürich"}
EOF
run_sluice run --once p.yaml
assert_rc 0
assert_eq "rows after run 3" "$(printf '%s\n' \
    '1|tab	here|5|t|{"x": [1, 2], "y": "z"}||32' \
    '2|two again|6.5|t|||32' \
    '3||-7||||32' \
    '4|four|8|||Zürich|32')" \
    "$(pg_sql 'SELECT "user id", "from", n, ok, obj, city, length(_sluice_id) FROM public."select" ORDER BY 1')"
assert_eq "widened and added" "double precision text" \
    "$(pg_sql "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'public.\"select\"'::regclass AND attname IN ('n', 'city') ORDER BY attname DESC" | tr '\n' ' ' | sed 's/ $//')"
assert_file_contains "$RUN_STDERR" 'added column city text'
assert_eq "records after run 3" "5" "$(pg_sql 'SELECT records FROM _sluice_checkpoints')"

# --- 4. status and reset ---------------------------------------------------------------------
run_sluice status p.yaml
assert_rc 0
assert_file_contains "$RUN_STDOUT" "sink pg (postgres)"
assert_file_contains "$RUN_STDOUT" "5 committed"
run_sluice status p.yaml --json
assert_rc 0
# reset --to-position: back to where run 1 ended; the two appended lines come again.
rows_now=$(pg_sql 'SELECT "user id", "from", n, ok, obj, city, _sluice_id FROM public."select" ORDER BY 1')
run_sluice reset p.yaml --to-position "$pos1" --yes
assert_rc 0
assert_eq "rewound position" "$pos1" "$(pg_sql 'SELECT position FROM _sluice_checkpoints')"
run_sluice run --once p.yaml
assert_rc 0
assert_eq "records after the rewind and a re-run" "7" "$(pg_sql 'SELECT records FROM _sluice_checkpoints')"
assert_eq "rows after the rewind and a re-run" "$rows_now" \
    "$(pg_sql 'SELECT "user id", "from", n, ok, obj, city, _sluice_id FROM public."select" ORDER BY 1')"
run_sluice reset p.yaml --yes
assert_rc 0
assert_eq "checkpoints after reset" "0" "$(pg_sql 'SELECT count(*) FROM _sluice_checkpoints')"
before=$(pg_sql 'SELECT "user id", "from", n, ok, obj, city, _sluice_id FROM public."select" ORDER BY 1')
run_sluice run --once p.yaml
assert_rc 0
assert_eq "rows after reset and re-run" "$before" \
    "$(pg_sql 'SELECT "user id", "from", n, ok, obj, city, _sluice_id FROM public."select" ORDER BY 1')"
assert_eq "count after reset and re-run" "4" "$(pg_sql 'SELECT count(*) FROM public."select"')"

# --- 5. a table from a contract --------------------------------------------------------------
cat >c.json <<'EOF'
{"$id": "order", "version": 1, "type": "object",
 "properties": {"order_id": {"type": "integer"}, "amount": {"type": "number"},
                "note": {"type": ["string", "null"]}, "paid": {"type": "boolean"},
                "items": {"type": "array"}},
 "required": ["order_id"]}
EOF
printf '%s\n' '{"order_id":10,"amount":2}' '{"order_id":11,"note":"x","paid":true,"items":[1]}' >orders.ndjson
cat >c.yaml <<EOF
pipeline: pg_contract
state_dir: state_c
sources:
  src: {type: file, path: orders.ndjson, format: ndjson}
sinks:
  pg:
    type: postgres
    inputs: [src]
    table: orders
    key: order_id
    id_column: ""
    contract: c.json
EOF
run_sluice run --once c.yaml
assert_rc 0
assert_eq "contract layout" "$(printf '%s\n' 'order_id|bigint' 'amount|double precision' 'note|text' 'paid|boolean' 'items|jsonb')" \
    "$(pg_sql "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum")"
assert_eq "contract rows" "$(printf '%s\n' '10|2|||' '11||x|t|[1]')" \
    "$(pg_sql 'SELECT * FROM orders ORDER BY 1')"

# A compatible new version adds a column; an incompatible one is refused, changing nothing.
sed -i 's/"version": 1/"version": 2/; s/"items": {"type": "array"}}/"items": {"type": "array"}, "coupon": {}}/' c.json
run_sluice run --once c.yaml
assert_rc 0
assert_file_contains "$RUN_STDERR" "contract order@1 -> order@2 (backward compatible)"
assert_eq "column from contract v2" "coupon|jsonb" \
    "$(pg_sql "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attnum = 6")"
sed -i 's/"version": 2/"version": 3/; s/"required": \["order_id"\]/"required": ["order_id", "coupon"]/' c.json
run_sluice run --once c.yaml
[ "$RUN_RC" != 0 ] || fail "an incompatible contract was accepted"
assert_file_contains "$RUN_STDERR" "is not backward compatible with order@2"
assert_eq "stored contract unchanged" "2" "$(pg_sql "SELECT version FROM _sluice_contracts WHERE tbl = '\"orders\"'")"

# --- 6. partition replacement ------------------------------------------------------------------
pg_sql 'CREATE TABLE daily (k text PRIMARY KEY, day text NOT NULL, v bigint)' >/dev/null
pg_sql "INSERT INTO daily VALUES ('old1', '2024-01-01', 1), ('keep', '2024-01-02', 2)" >/dev/null
printf '%s\n' '{"k":"a","day":"2024-01-01","v":10}' '{"k":"b","day":"2024-01-01","v":11}' '{"k":"c","v":12}' >day.ndjson
cat >d.yaml <<EOF
pipeline: pg_partition
state_dir: state_d
batch: {max_records: 1}
sources:
  src: {type: file, path: day.ndjson, format: ndjson}
sinks:
  pg:
    type: postgres
    inputs: [src]
    table: daily
    key: k
    id_column: ""
    partition: {column: day, value: "2024-01-01"}
EOF
run_sluice run d.yaml
assert_rc 1
assert_file_contains "$RUN_STDERR" "needs \`sluice run --once\`"
run_sluice run --once d.yaml
assert_rc 0
assert_eq "partition after run 1" "$(printf '%s\n' 'a|2024-01-01|10' 'b|2024-01-01|11' 'c|2024-01-01|12' 'keep|2024-01-02|2')" \
    "$(pg_sql 'SELECT * FROM daily ORDER BY 1')"
assert_eq "staging emptied" "0 0" "$(pg_sql 'SELECT (SELECT count(*) FROM _sluice_staging), (SELECT count(*) FROM _sluice_staged)' | tr '|' ' ')"
# Second run for the same day, different data: a new state dir so the input is read again.
printf '%s\n' '{"k":"d","day":"2024-01-01","v":20}' '{"k":"x","day":"2024-01-09","v":99}' >day.ndjson
rm -rf state_d
pg_sql "DELETE FROM _sluice_checkpoints WHERE pipeline = 'pg_partition'" >/dev/null
run_sluice run --once d.yaml
assert_rc 0
assert_eq "partition after run 2" "$(printf '%s\n' 'd|2024-01-01|20' 'keep|2024-01-02|2')" \
    "$(pg_sql 'SELECT * FROM daily ORDER BY 1')"
run_sluice dlq list d.yaml --json
assert_eq "partition mismatch rejected" "partition_mismatch" "$(jq -s -r '.[0].rule' "$RUN_STDOUT")"

# --- 7. write-audit-publish: a failed gate discards, a quarantine gate quarantines ---------------
printf '%s\n' '{"id":1,"v":"a"}' '{"id":2,"v":"b"}' '{"id":3,"v":"c"}' >wap.ndjson
wap_yaml() { # ACTION
    cat <<EOF
pipeline: pg_wap_$1
state_dir: state_wap_$1
batch: {max_records: 1}
sources:
  src: {type: file, path: wap.ndjson, format: ndjson}
sinks:
  pg: {type: postgres, inputs: [src], table: wap_$1, key: id}
quality:
  - {name: enough, on: src, check: row_count, min: 1000, action: $1}
EOF
}
wap_yaml fail >wf.yaml
run_sluice run --once wf.yaml
assert_rc 1
assert_eq "discarded: no rows, no checkpoint, empty staging" "0 0 0" \
    "$(pg_sql "SELECT (SELECT count(*) FROM wap_fail), (SELECT count(*) FROM _sluice_checkpoints WHERE pipeline = 'pg_wap_fail'), (SELECT count(*) FROM _sluice_staging) + (SELECT count(*) FROM _sluice_staged)" | tr '|' ' ')"
wap_yaml quarantine >wq.yaml
run_sluice run --once wq.yaml
assert_rc 0
assert_eq "quarantined: no rows, checkpoint at the end with 0 records, empty staging" "0 1 0 0" \
    "$(pg_sql "SELECT (SELECT count(*) FROM wap_quarantine), (SELECT count(*) FROM _sluice_checkpoints WHERE pipeline = 'pg_wap_quarantine' AND position LIKE '%\"offset\":51%'), (SELECT coalesce(sum(records), 0) FROM _sluice_checkpoints WHERE pipeline = 'pg_wap_quarantine'), (SELECT count(*) FROM _sluice_staging) + (SELECT count(*) FROM _sluice_staged)" | tr '|' ' ')"
run_sluice quarantine list wq.yaml --json
assert_rc 0
assert_eq "one quarantined unit of 3 records from pg" "1 3 pg" \
    "$(jq -r '.units | "\(length) \(.[0].records) \(.[0].stage)"' "$RUN_STDOUT")"

note "postgres sink: all checks passed"
