#!/usr/bin/env bash
# tests/integration/test_dag_validate.sh - `sluice dag validate` on a gallery of DAG files.
#
# Each tests/data/dags/*.yaml (except helpers, whose names start with "_") starts with
# comments saying what must happen:
#
#   # expect: 6:39: jobs.load.depends_on: unknown job "extrakt"; did you mean "extract"?
#       validate exits 2 and stderr contains "FILE:6:39: jobs.load..." (FILE as passed).
#       Several expect lines mean several problems, all of which must be reported.
#   # expect: ~ TEXT
#       stderr contains TEXT anywhere (for problems in the pipeline files a DAG names,
#       reported with their own path).
#   # expect: valid
#       validate exits 0, prints "dag NAME is valid" and nothing on stderr.
#
# A new case is a new file. The directory is copied to a scratch directory first.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ -x "$SLUICE" ] || fail "no sluice binary at '$SLUICE'"
tmpdir T
cp -r "$SLUICE_SRC/tests/data/dags/." "$T/"
cd "$T" || fail "cannot enter $T"

failed=0 total=0
for f in [!_]*.yaml; do
    expects=()
    while IFS= read -r line; do
        case "$line" in
        "# expect: "*) expects+=("${line#"# expect: "}") ;;
        *) break ;;
        esac
    done <"$f"
    [ "${#expects[@]}" -gt 0 ] || fail "$f: the first line must be '# expect: ...'"
    total=$((total + 1))
    rc=0
    "$SLUICE" dag validate "$f" >out 2>err || rc=$?
    if [ "${expects[0]}" = valid ]; then
        if [ "$rc" -ne 0 ] || [ -s err ] || ! grep -q "is valid" out; then
            echo "FAIL $f: expected valid, got exit $rc:" >&2
            sed 's/^/    /' err >&2
            failed=$((failed + 1))
        fi
        continue
    fi
    if [ "$rc" -ne 2 ]; then
        echo "FAIL $f: expected exit 2, got $rc" >&2
        sed 's/^/    /' err >&2
        failed=$((failed + 1))
        continue
    fi
    for e in "${expects[@]}"; do
        case "$e" in
        "~ "*) want=${e#"~ "} ;;
        *) want="$f:$e" ;;
        esac
        if ! grep -qF -- "$want" err; then
            echo "FAIL $f: stderr lacks: $want" >&2
            sed 's/^/    /' err >&2
            failed=$((failed + 1))
        fi
    done
    # Nothing but the expected problems: one line per expect.
    if [ "$(wc -l <err)" -ne "${#expects[@]}" ]; then
        echo "FAIL $f: ${#expects[@]} problems expected, stderr has $(wc -l <err) lines" >&2
        sed 's/^/    /' err >&2
        failed=$((failed + 1))
    fi
done
[ "$total" -ge 7 ] || fail "only $total cases found"
[ "$failed" -eq 0 ] || fail "$failed of $total cases failed"
note "$total cases ok"
