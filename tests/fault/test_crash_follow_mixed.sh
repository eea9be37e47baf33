#!/usr/bin/env bash
# Crash test (follow_mixed): a followed input that another process appends to (whole
# lines) while sluice is killed and restarted, three runs in ten with --once (catch-up
# runs) and the others following, so the sinks hold positions committed in both modes;
# a map feeds a file and a sqlite sink; the last run uses --once after the appends stop.
#
# Kills sluice with SIGKILL at 30 random instants, restarts it each time, lets a last run
# finish and compares every sink with the expected records exactly. See
# tests/fault/README.md; a failure prints the seed and the command that reproduces it.
# CRASHTEST_SEED, CRASHTEST_RECORDS and CRASHTEST_KILLS override the defaults.
set -euo pipefail
: "${SLUICE:?SLUICE must name the sluice binary}"
exec python3 "$(dirname "$0")/crashtest.py" --scenario follow_mixed
