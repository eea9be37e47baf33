#!/usr/bin/env bash
# test_validate.sh - `sluice validate` on a gallery of pipeline files.
#
# Each tests/data/validate/*.yaml starts with a comment saying what must happen:
#
#   # expect: 7:5: unknown key "pth" in sinks.out; did you mean "path"?
#       validate exits 2, stderr contains "FILE:7:5: unknown key ..." (FILE as passed) and
#       every line of stderr reads "FILE:line:col: message". Several leading expect lines
#       mean several problems, all of which must be reported.
#   # expect: valid
#       validate exits 0 and prints nothing on stderr
#
# A new case is a new file. The files are copied to a scratch directory first so that
# nothing they name (state directories, outputs) could ever touch the source tree.
set -euo pipefail
: "${SLUICE:?set SLUICE to the sluice binary}"
SLUICE_SRC=${SLUICE_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cases="$SLUICE_SRC/tests/data/validate"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unset SLUICE_VALIDATE_UNSET SLUICE_VALIDATE_NAME SLUICE_VALIDATE_STATE SLUICE_VALIDATE_DIR

failed=0 total=0
for src in "$cases"/*.yaml; do
    name=$(basename "$src")
    # Every leading "# expect: " line; the first line must be one.
    expects=()
    while IFS= read -r line; do
        case "$line" in
        "# expect: "*) expects+=("${line#"# expect: "}") ;;
        *) break ;;
        esac
    done <"$src"
    if [ "${#expects[@]}" -eq 0 ]; then
        echo "FAIL $name: first line must be '# expect: ...'" >&2
        failed=$((failed + 1))
        continue
    fi
    expect=${expects[0]}
    cp "$src" "$work/$name"
    total=$((total + 1))
    rc=0
    (cd "$work" && "$SLUICE" validate "$name" >"$work/out" 2>"$work/err") || rc=$?
    if [ "$expect" = valid ]; then
        if [ "$rc" -ne 0 ] || [ -s "$work/err" ]; then
            echo "FAIL $name: expected valid (exit 0), got exit $rc:" >&2
            sed 's/^/    /' "$work/err" >&2
            failed=$((failed + 1))
        fi
        continue
    fi
    if [ "$rc" -ne 2 ]; then
        echo "FAIL $name: expected exit 2, got $rc" >&2
        sed 's/^/    /' "$work/err" >&2
        failed=$((failed + 1))
        continue
    fi
    missing=0
    for e in "${expects[@]}"; do
        if ! grep -qF -- "$name:$e" "$work/err"; then
            echo "FAIL $name: stderr lacks: $name:$e" >&2
            missing=1
        fi
    done
    if [ "$missing" -ne 0 ]; then
        sed 's/^/    got: /' "$work/err" >&2
        failed=$((failed + 1))
    elif grep -v -q "^$name:[0-9]*:[0-9]*: \|^\.\.\. and [0-9]* more problem" "$work/err"; then
        echo "FAIL $name: a line of stderr is not 'file:line:col: message':" >&2
        sed 's/^/    got: /' "$work/err" >&2
        failed=$((failed + 1))
    fi
done

# Environment substitution and anchors: the same valid file under a set environment.
cp "$cases/good_env_anchors.yaml" "$work/env.yaml"
if ! (cd "$work" && SLUICE_VALIDATE_NAME=renamed "$SLUICE" validate env.yaml >"$work/out" 2>&1) ||
    ! grep -q "pipeline renamed is valid" "$work/out"; then
    echo "FAIL env: \${SLUICE_VALIDATE_NAME} was not substituted:" >&2
    cat "$work/out" >&2
    failed=$((failed + 1))
fi

# A file that does not exist is a usage error too, and says which file.
rc=0
"$SLUICE" validate "$work/no-such-file.yaml" 2>"$work/err" || rc=$?
if [ "$rc" -ne 2 ] || ! grep -qF "no-such-file.yaml" "$work/err"; then
    echo "FAIL missing file: exit $rc, stderr: $(cat "$work/err")" >&2
    failed=$((failed + 1))
fi

if [ "$failed" -ne 0 ]; then
    echo "test_validate: $failed of $total cases failed" >&2
    exit 1
fi
echo "test_validate: $total cases ok"
