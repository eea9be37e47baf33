#!/usr/bin/env bash
# Crash test (follow_once_split): as follow_mixed (a followed input appended to while
# sluice is killed and restarted, three runs in ten with --once), but the writer appends
# half lines too, so --once runs end in the middle of a line: that line must wait for the
# next run, never become a record of its own.
#
# Kills sluice with SIGKILL at 30 random instants, restarts it each time, lets a last run
# finish and compares every sink with the expected records exactly. See
# tests/fault/README.md; a failure prints the seed and the command that reproduces it.
# CRASHTEST_SEED, CRASHTEST_RECORDS and CRASHTEST_KILLS override the defaults.
set -euo pipefail
: "${SLUICE:?SLUICE must name the sluice binary}"
exec python3 "$(dirname "$0")/crashtest.py" --scenario follow_once_split
