#!/usr/bin/env bash
# docs/configuration.md is generated from the plugins' option tables: it must match what
# the binary generates now, so the reference can never drift from the code.
set -euo pipefail
: "${SLUICE:?}" "${SLUICE_SRC:?}"
if ! diff -u "$SLUICE_SRC/docs/configuration.md" <("$SLUICE" docs config); then
    echo "FAIL: docs/configuration.md is stale; regenerate it with: make docs" >&2
    exit 1
fi
# Every plugin in the registry has a section.
for p in "source file" "source stdin" "source postgres" "source http" "source nats" "source kafka" \
         "transform filter" "transform map" "transform route" "transform validate" \
         "sink stdout" "sink file" "sink sqlite" "sink postgres" "sink http" "sink nats" \
         "sink kafka"; do
    heading="### ${p% *} \`${p#* }\`"
    grep -qxF "$heading" "$SLUICE_SRC/docs/configuration.md" \
        || { echo "FAIL: no section \"$heading\"" >&2; exit 1; }
done
echo "docs reference: ok"
