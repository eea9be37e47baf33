#!/usr/bin/env bash
# Crash test (startup): kills concentrated in start-up and recovery (four in five within the
# first 50 ms of a run); fan-out to sqlite and a rotating file.
#
# Kills sluice with SIGKILL at 30 random instants, restarts it each time, lets a last run
# finish and compares every sink with the expected records exactly. See
# tests/fault/README.md; a failure prints the seed and the command that reproduces it.
# CRASHTEST_SEED, CRASHTEST_RECORDS and CRASHTEST_KILLS override the defaults.
set -euo pipefail
: "${SLUICE:?SLUICE must name the sluice binary}"
exec python3 "$(dirname "$0")/crashtest.py" --scenario startup
