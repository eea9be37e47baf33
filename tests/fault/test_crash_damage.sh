#!/usr/bin/env bash
# Crash test (damage): after every third kill, cut committed bytes (the manifest, or the
# in-progress file below its committed length): the next run must refuse and name the file;
# the file is restored and the kills go on, and the output must still be exact at the end.
#
# Kills sluice with SIGKILL at 30 random instants, restarts it each time, lets a last run
# finish and compares every sink with the expected records exactly. See
# tests/fault/README.md; a failure prints the seed and the command that reproduces it.
# CRASHTEST_SEED, CRASHTEST_RECORDS and CRASHTEST_KILLS override the defaults.
set -euo pipefail
: "${SLUICE:?SLUICE must name the sluice binary}"
exec python3 "$(dirname "$0")/crashtest.py" --scenario damage
