#!/usr/bin/env bash
# Crash tests (dlq, quarantine): one line in 200 is broken in one of seven ways the source
# rejects (truncated, trailing comma, bad UTF-8, array, scalar, duplicate key, over
# max_record_bytes), has a user_id the map's cast rejects, or a null event_id the sqlite
# sink rejects; file -> map -> filter -> sqlite and file. After the kills every rejected
# line is in the dead-letter queue exactly once (one entry per line and stage, attempts 1,
# its bytes exact) and both sinks hold exactly the good records. `quarantine` adds a
# streaming quality gate that holds back every batch holding a marker line: each record
# then ends up in both sinks or in the quarantine store, exactly once.
#
# Kills sluice with SIGKILL at 30 random instants per scenario, restarts it each time,
# lets a last run finish and compares the sinks, the dead-letter queue, the quarantine and
# the run report with what the input must give. See tests/fault/README.md; a failure
# prints the seed and the command that reproduces it. CRASHTEST_SEED, CRASHTEST_RECORDS
# and CRASHTEST_KILLS override the defaults.
set -euo pipefail
: "${SLUICE:?SLUICE must name the sluice binary}"
here="$(dirname "$0")"
status=0
python3 "$here/crashtest.py" --scenario dlq || status=$?
python3 "$here/crashtest.py" --scenario quarantine || status=$?
exit "$status"
