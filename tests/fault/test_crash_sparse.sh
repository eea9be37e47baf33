#!/usr/bin/env bash
# Crash test (sparse): one source fanned out to sqlite (every record), a file behind a filter
# passing one line in 997, and a file behind a filter passing only the last tenth of the
# lines: sinks that see empty batches, and one that commits nothing for most of the run
# while the others race ahead.
#
# Kills sluice with SIGKILL at 30 random instants, restarts it each time, lets a last run
# finish and compares every sink with the expected records exactly. See
# tests/fault/README.md; a failure prints the seed and the command that reproduces it.
# CRASHTEST_SEED, CRASHTEST_RECORDS and CRASHTEST_KILLS override the defaults.
set -euo pipefail
: "${SLUICE:?SLUICE must name the sluice binary}"
exec python3 "$(dirname "$0")/crashtest.py" --scenario sparse
