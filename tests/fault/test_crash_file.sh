#!/usr/bin/env bash
# Crash test (file): a glob over four input files -> map -> file rotating every 4 MiB;
# source positions move across input files; the multiset of records over all final files
# must equal the input as mapped.
#
# Kills sluice with SIGKILL at 30 random instants, restarts it each time, lets a last run
# finish and compares every sink with the expected records exactly. See
# tests/fault/README.md; a failure prints the seed and the command that reproduces it.
# CRASHTEST_SEED, CRASHTEST_RECORDS and CRASHTEST_KILLS override the defaults.
set -euo pipefail
: "${SLUICE:?SLUICE must name the sluice binary}"
exec python3 "$(dirname "$0")/crashtest.py" --scenario file
