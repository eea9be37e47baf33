#!/usr/bin/env bash
# Crash test (wap, wap_quarantine): write-audit-publish under `run --once`. The input
# arrives in six parts; sqlite behind a quality gate stages each unit and publishes it
# at the end of the run (wap: the gate passes; wap_quarantine: it fails with action
# quarantine). After every kill the table (or the quarantine store) holds all of the
# run's unit or none of it; at the end the table holds every good record once (or
# nothing, with every record quarantined once), no staging rows are left, the
# dead-letter queue is exact and one more run reads nothing.
#
# See tests/fault/README.md; a failure prints the seed and the command that reproduces
# it. CRASHTEST_SEED, CRASHTEST_RECORDS and CRASHTEST_KILLS override the defaults.
set -euo pipefail
: "${SLUICE:?SLUICE must name the sluice binary}"
here="$(dirname "$0")"
status=0
python3 "$here/crashtest.py" --scenario wap || status=$?
python3 "$here/crashtest.py" --scenario wap_quarantine || status=$?
exit "$status"
