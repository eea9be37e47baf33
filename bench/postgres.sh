#!/usr/bin/env bash
# bench/postgres.sh - file -> postgres throughput at three batch sizes, next to psql's
# \copy of the same data as the ceiling.
#
#   bench/postgres.sh [--records N] [--seed S]
#
# Generates N click events (default 500,000, about 135 MB) with gen_clicks, starts a
# throwaway PostgreSQL (tests/integration/pg.sh: initdb in a temp directory, 127.0.0.1,
# fsync on, default settings otherwise) and measures, each into a fresh table of the same
# schema with a primary key on event_id:
#
#   sluice   `sluice run --once` of file -> postgres (key: event_id, id_column: "") with
#            batch.max_records 100, 1,000 and 10,000: per batch one transaction with the
#            typed COPY straight into the table (every key is new), and the checkpoint.
#   ... upd  the same run at 10,000 once more over the full table (checkpoints deleted):
#            every key exists, so every batch is an upsert through the TEMP staging
#            table (INSERT ... ON CONFLICT DO UPDATE).
#   \copy    `psql -c "\copy clicks FROM file.csv (FORMAT csv)"`: the same records as CSV
#            with the same eleven columns (nested device and tags as JSON text into jsonb
#            columns), one COPY in one transaction, no upsert, no checkpoint. The CSV is
#            made beforehand (not timed). This is the ceiling: the server's own bulk load
#            of already-typed columns; sluice additionally reads and parses the NDJSON,
#            casts every value on the server (jsonb_populate_record), upserts and commits
#            per batch.
#
# Prints records/s, MB/s (of the NDJSON input; for \copy the same input size so the rows
# compare) and peak RSS (of sluice; of psql for \copy), and sluice at 10,000 as a
# fraction of \copy (target: at least 0.5). Every run's row count must equal N.
#
# Environment: SLUICE (default build/sluice), GEN_CLICKS (default build/gen_clicks): a
# release build (`make release`). Needs PostgreSQL server binaries, psql, jq.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RECORDS=500000
SEED=42
while [ $# -gt 0 ]; do
    case $1 in
    --records) RECORDS=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    *) echo "usage: bench/postgres.sh [--records N] [--seed S]" >&2; exit 2 ;;
    esac
done
SLUICE=${SLUICE:-$ROOT/build/sluice}
GEN_CLICKS=${GEN_CLICKS:-$ROOT/build/gen_clicks}
export SLUICE SLUICE_SRC=$ROOT SLUICE_TOOLS=$(dirname "$GEN_CLICKS")
# shellcheck source=tests/integration/lib.sh
. "$ROOT/tests/integration/lib.sh"
# shellcheck source=tests/integration/pg.sh
. "$ROOT/tests/integration/pg.sh"

tmpdir W
cd "$W"
chmod 755 "$W"
"$GEN_CLICKS" --count "$RECORDS" --seed "$SEED" --out clicks.ndjson
jq -r '[.event_id, .ts, .user_id, .session_id, .event_type, .page, .referrer,
        (.device | tojson), .amount, .currency, (.tags | tojson)] | @csv' clicks.ndjson >clicks.csv
BYTES=$(wc -c <clicks.ndjson)
cd /
pg_start
cd "$W"

SCHEMA='event_id text PRIMARY KEY, ts text, user_id bigint, session_id text,
    event_type text, page text, referrer text, device jsonb, amount double precision,
    currency text, tags jsonb'
fresh_table() {
    pg_sql "SET client_min_messages = warning; DROP TABLE IF EXISTS clicks;
            DROP TABLE IF EXISTS _sluice_checkpoints; CREATE TABLE clicks ($SCHEMA);
            CHECKPOINT" >/dev/null
}
count_rows() {
    local n
    n=$(pg_sql 'SELECT count(*) FROM clicks')
    [ "$n" = "$RECORDS" ] || fail "$1: $n rows in the table, $RECORDS expected"
}
now() { date +%s.%N; }
declare -A RATE MBS RSS
measure() { # LABEL CMD...: wall time and peak RSS (KiB) of CMD
    local label=$1 t0 t1 rss
    shift
    t0=$(now)
    /usr/bin/time -f '%M' -o rss.txt "$@" >out.log 2>&1 || { tail -n 20 out.log >&2; fail "$label failed"; }
    t1=$(now)
    rss=$(tail -n 1 rss.txt)
    RATE[$label]=$(awk -v n="$RECORDS" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
    MBS[$label]=$(awk -v n="$BYTES" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) / 1e6 }')
    RSS[$label]=$(awk -v k="$rss" 'BEGIN { printf "%.0f MiB", k / 1024 }')
}

fresh_table
measure '\copy' psql -X -q -v ON_ERROR_STOP=1 -c "\\copy clicks FROM 'clicks.csv' WITH (FORMAT csv)"
count_rows '\copy'
for bs in 100 1000 10000; do
    fresh_table
    rm -rf state
    cat >p.yaml <<EOF
pipeline: bench_pg
state_dir: state
batch: {max_records: $bs, max_bytes: 64MiB}
sources:
  clicks: {type: file, path: clicks.ndjson, format: ndjson}
sinks:
  pg: {type: postgres, inputs: [clicks], table: clicks, key: event_id, id_column: ""}
EOF
    measure "sluice $bs" "$SLUICE" run --once --quiet p.yaml
    count_rows "sluice $bs"
done
# The same records again over the full table: every key exists, so every batch is an
# upsert (ON CONFLICT DO UPDATE through the TEMP staging table).
rm -rf state
pg_sql 'DELETE FROM _sluice_checkpoints; CHECKPOINT' >/dev/null
measure "sluice 10000 upd" "$SLUICE" run --once --quiet p.yaml
count_rows "sluice 10000 upd"

printf '\n%d click events, %.1f MB NDJSON, PostgreSQL %s\n\n' "$RECORDS" "$(awk -v n="$BYTES" 'BEGIN { print n / 1e6 }')" \
    "$(pg_sql 'SHOW server_version')"
printf '%-18s %12s %8s %10s\n' "run" "records/s" "MB/s" "peak RSS"
for k in '\copy' 'sluice 100' 'sluice 1000' 'sluice 10000' 'sluice 10000 upd'; do
    printf '%-18s %12s %8s %10s\n' "$k" "${RATE[$k]}" "${MBS[$k]}" "${RSS[$k]}"
done
printf '\nsluice at 10,000 / \\copy: %s (target: at least 0.50)\n' \
    "$(awk -v a="${RATE['sluice 10000']}" -v b="${RATE['\copy']}" 'BEGIN { printf "%.2f", a / b }')"
