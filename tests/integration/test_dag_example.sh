#!/usr/bin/env bash
# tests/integration/test_dag_example.sh - examples/nightly runs as its comments say.
#
# A copy of the example directory (so the source tree stays clean):
#   1. validates;
#   2. a backfill of 2026-11-24..26 writes the exact per-customer metrics, computed here
#      independently from the input files with Python;
#   3. a second backfill from a fresh DAG state gives the very same warehouse;
#   4. 2026-11-27 (an order without a customer) fails at the quality gate: nothing of that
#      day reaches the warehouse, metrics and check are skipped, notify runs, exit 1.
#
# Needs $SLUICE, sqlite3, python3, jq.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ -x "$SLUICE" ] || fail "no sluice binary at '$SLUICE'"
command -v sqlite3 >/dev/null || fail "sqlite3 is needed; run scripts/deps.sh"
tmpdir T
cp -r "$SLUICE_SRC/examples/nightly" "$T/nightly"
rm -rf "$T/nightly/out" "$T/nightly/.sluice"
cd "$T/nightly" || fail "cannot enter $T/nightly"

assert_eq() {
    if [ "$2" != "$3" ]; then
        printf -- '--- want (%s):\n%s\n--- got:\n%s\n' "$1" "$2" "$3" >&2
        fail "$1 differs"
    fi
}

run_sluice dag validate nightly.yaml
assert_rc 0
assert_file_contains "$RUN_STDOUT" "dag nightly is valid: 4 jobs (1 pipeline, 3 commands)"

expected=$(python3 - <<'PY'
import json
from collections import defaultdict
m = defaultdict(lambda: [0, 0.0])
for day in ("2026-11-24", "2026-11-25", "2026-11-26"):
    for line in open(f"data/orders/{day}.ndjson"):
        r = json.loads(line)
        m[(day, r["customer"])][0] += 1
        m[(day, r["customer"])][1] += r["amount"]
for (day, c), (n, s) in sorted(m.items()):
    print(f"{day}\t{c}\t{n}\t{round(s, 2)}")
PY
)
metrics() { sqlite_rows out/warehouse.db "select day, customer, orders, revenue from customer_daily order by day, customer"; }

run_sluice dag backfill nightly.yaml --from 2026-11-24 --to 2026-11-26
assert_rc 0
assert_file_contains "$RUN_STDERR" "3 succeeded, 0 failed"
assert_eq "customer_daily" "$expected" "$(metrics)"
assert_eq "orders" 21 "$(sqlite_rows out/warehouse.db "select count(*) from orders")"
first=$(sqlite_rows out/warehouse.db "select day, order_id, customer, amount from orders order by order_id")

rm -rf .sluice/nightly
run_sluice dag backfill nightly.yaml --from 2026-11-24 --to 2026-11-26
assert_rc 0
assert_eq "customer_daily after a second backfill" "$expected" "$(metrics)"
assert_eq "orders after a second backfill" "$first" \
    "$(sqlite_rows out/warehouse.db "select day, order_id, customer, amount from orders order by order_id")"

run_sluice dag run nightly.yaml --partition 2026-11-27
assert_rc 1
run_sluice dag status nightly.yaml --from 2026-11-27 --to 2026-11-27 --json
assert_eq "the bad day" "failed failed skipped skipped success" \
    "$(jq -r '.partitions[0] | "\(.state) \(.jobs.extract.state) \(.jobs.metrics.state) \(.jobs.check.state) \(.jobs.notify.state)"' "$RUN_STDOUT")"
assert_file_contains "$(jq -r '.partitions[0].jobs.extract.log' "$RUN_STDOUT")" "customer_known"
assert_eq "nothing of the bad day published" 0 \
    "$(sqlite_rows out/warehouse.db "select count(*) from orders where day = '2026-11-27'")"
assert_eq "notification" "nightly 2026-11-27: a job failed; see sluice dag status nightly.yaml --from 2026-11-27 --to 2026-11-27" \
    "$(cat out/notifications.log)"
assert_eq "customer_daily untouched" "$expected" "$(metrics)"
note "ok"
