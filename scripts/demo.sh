#!/bin/sh
# scripts/demo.sh - the quickstart, end to end (run by `make demo` after the release build).
#
# 1. Generates examples/data/clicks.ndjson (10,000 click events, every 1000th line
#    malformed, fixed seed) with build/gen_clicks, unless it already exists.
# 2. Removes the output and state of earlier runs (examples/out, examples/.sluice), so
#    every demo starts from scratch.
# 3. Runs examples/quickstart.yaml with `build/sluice run --once`; sluice prints its own
#    summary (records read, written per sink, rejected, elapsed, records/s).
# 4. Shows a few rows of the SQLite table, the dead-letter queue, and counts the purchases
#    file.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

SLUICE=${SLUICE:-build/sluice}
GEN_CLICKS=${GEN_CLICKS:-build/gen_clicks}
DATA=examples/data/clicks.ndjson
DB=examples/out/warehouse.db
PURCHASES=examples/out/purchases.ndjson

say() {
    printf '\n==> %s\n' "$*"
}

die() {
    printf 'demo: %s\n' "$*" >&2
    exit 1
}

[ -x "$SLUICE" ] || die "no sluice binary at $SLUICE; build it first with 'make release'"

if [ ! -s "$DATA" ]; then
    [ -x "$GEN_CLICKS" ] || die "no generator at $GEN_CLICKS; build it first with 'make release'"
    say "Generating $DATA (10,000 click events, every 1000th line malformed)"
    mkdir -p examples/data
    "$GEN_CLICKS" --count 10000 --seed 2026 --bad-every 1000 --out "$DATA.tmp"
    mv "$DATA.tmp" "$DATA"
else
    say "Using existing $DATA (delete it to regenerate)"
fi
head -n 1 "$DATA" | cut -c 1-200
echo "... $(wc -l <"$DATA" | tr -d ' ') lines"

say "Removing the output and state of earlier runs"
rm -rf examples/out examples/.sluice

say "Running: $SLUICE run examples/quickstart.yaml --once"
"$SLUICE" run examples/quickstart.yaml --once || die "the pipeline failed (exit $?); see above"

if command -v sqlite3 >/dev/null 2>&1; then
    say "A few rows of click_events in $DB"
    sqlite3 -header -column "$DB" \
        "SELECT event_id, ts, user_id, event_type, json_extract(device, '\$.os') AS os, page
           FROM click_events ORDER BY event_id LIMIT 5;"
    echo
    sqlite3 -header -column "$DB" \
        "SELECT event_type, count(*) AS events, round(sum(amount), 2) AS revenue
           FROM click_events GROUP BY event_type ORDER BY events DESC;"
else
    say "sqlite3 is not installed (scripts/deps.sh installs it); skipping the table preview"
fi

say "The dead-letter queue: every rejected line, with its reason ($SLUICE dlq stats)"
"$SLUICE" dlq stats examples/quickstart.yaml
echo
"$SLUICE" dlq list examples/quickstart.yaml --limit 3

say "Purchases in $PURCHASES"
echo "$(wc -l <"$PURCHASES" | tr -d ' ') purchases; the first one:"
head -n 1 "$PURCHASES"

say "Done. Explore with: sqlite3 $DB 'SELECT * FROM click_events LIMIT 3'"
echo "    or edit examples/quickstart.yaml and run 'make demo' again."
