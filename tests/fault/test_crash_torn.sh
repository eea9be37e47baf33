#!/usr/bin/env bash
# Crash test (torn): while sluice is down, tear what a crash can tear: the uncommitted tail
# of the file sink's in-progress file (cut at a random byte, or a partial record appended)
# and a manifest write cut short.
#
# Kills sluice with SIGKILL at 30 random instants, restarts it each time, lets a last run
# finish and compares every sink with the expected records exactly. See
# tests/fault/README.md; a failure prints the seed and the command that reproduces it.
# CRASHTEST_SEED, CRASHTEST_RECORDS and CRASHTEST_KILLS override the defaults.
set -euo pipefail
: "${SLUICE:?SLUICE must name the sluice binary}"
exec python3 "$(dirname "$0")/crashtest.py" --scenario torn
