#!/usr/bin/env bash
# Differential test of the JSON parser against Python's json module (see
# json_differential.py for what is generated and compared). Needs sl_jsoncheck (built from
# tools/sl_jsoncheck.c) in $SLUICE_TOOLS and python3 on PATH. SLUICE_JSON_SEED fixes the
# seed; otherwise a random one is printed so a failure can be replayed.
set -euo pipefail

src=${SLUICE_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
tool=""
for dir in "${SLUICE_TOOLS:-}" "${SLUICE_BUILD:-}" "$src/build"; do
    if [ -n "$dir" ] && [ -x "$dir/sl_jsoncheck" ]; then
        tool="$dir/sl_jsoncheck"
        break
    fi
done
if [ -z "$tool" ]; then
    echo "test_json_differential: sl_jsoncheck not found (set SLUICE_TOOLS to its directory)" >&2
    exit 1
fi
if ! command -v python3 >/dev/null; then
    echo "test_json_differential: python3 not on PATH" >&2
    exit 1
fi

seed_args=()
if [ -n "${SLUICE_JSON_SEED:-}" ]; then
    seed_args=(--seed "$SLUICE_JSON_SEED")
fi
exec python3 "$src/tests/integration/json_differential.py" --tool "$tool" "${seed_args[@]}"
