#!/usr/bin/env bash
# tests/fault/test_crash_postgres.sh - kill -9 during file -> filter -> postgres (keyed on
# event_id), then a final run: every expected row exactly once with every column, the
# checkpoint counting each record once (crashtest.py, scenario postgres; the harness runs
# a PostgreSQL cluster of its own). About 30 s on the debug build.
set -euo pipefail
: "${SLUICE:?SLUICE must name the sluice binary}"
exec python3 "$(dirname "$0")/crashtest.py" --scenario postgres
