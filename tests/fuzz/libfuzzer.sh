#!/usr/bin/env bash
# tests/fuzz/libfuzzer.sh - run every fuzz target under libFuzzer for a fixed time.
#
#   libfuzzer.sh SOURCE_DIR WORK_DIR
#
# The CTest test fuzz/libfuzzer runs this. It builds the targets tests/fuzz/fuzz_*.c
# with clang in a build tree of its own (WORK_DIR/build: -DSLUICE_FUZZ=ON
# -DSLUICE_SANITIZE=ON, so the targets are linked with -fsanitize=fuzzer and everything,
# the core library included, carries coverage instrumentation, AddressSanitizer and
# UndefinedBehaviorSanitizer), then runs each target for SLUICE_FUZZ_SECONDS seconds
# (default 15) over a fresh copy of its checked-in corpus tests/fuzz/corpus/<name>/, so
# the run never modifies the source tree. New targets are picked up by the glob.
#
# Any crash, sanitizer report, leak, timeout (10 s per input) or out-of-memory fails the
# test. libFuzzer writes the input that caused it to WORK_DIR/artifacts/<name>/; after
# fixing the bug, copy that file into tests/fuzz/corpus/<name>/ so that the corpus tests
# (fuzz/<name>, which replay the corpus in every build) keep it from coming back.
#
# Exit status: 0 all targets ran clean, 1 a target failed, 77 (CTest: skipped) when
# clang or its libFuzzer runtime is not installed (scripts/deps.sh installs clang-14 and
# libclang-rt-14-dev). Environment: SLUICE_FUZZ_SECONDS, SLUICE_FUZZ_JOBS (build
# parallelism, default 2), SLUICE_FUZZ_CC (compiler, default clang, then clang-14).
set -euo pipefail

SRC=${1:?usage: libfuzzer.sh SOURCE_DIR WORK_DIR}
WORK=${2:?usage: libfuzzer.sh SOURCE_DIR WORK_DIR}
SECONDS_EACH=${SLUICE_FUZZ_SECONDS:-15}
JOBS=${SLUICE_FUZZ_JOBS:-2}

skip() {
    echo "libfuzzer: SKIPPED: $*" >&2
    exit 77
}

CC_FUZZ=${SLUICE_FUZZ_CC:-}
if [ -z "$CC_FUZZ" ]; then
    for c in clang clang-14; do
        if command -v "$c" >/dev/null 2>&1; then
            CC_FUZZ=$c
            break
        fi
    done
fi
[ -n "$CC_FUZZ" ] || skip "no clang found (install clang-14 and libclang-rt-14-dev)"

mkdir -p "$WORK"
# Can this clang link a libFuzzer target with the sanitizers?
probe=$WORK/probe
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
    'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
    >"$probe.c"
if ! "$CC_FUZZ" -fsanitize=fuzzer,address,undefined "$probe.c" -o "$probe" >/dev/null 2>&1; then
    skip "$CC_FUZZ cannot link -fsanitize=fuzzer,address,undefined (install libclang-rt-14-dev)"
fi

targets=()
for f in "$SRC"/tests/fuzz/fuzz_*.c; do
    [ -e "$f" ] || continue
    targets+=("$(basename "$f" .c)")
done
[ ${#targets[@]} -gt 0 ] || {
    echo "libfuzzer: no tests/fuzz/fuzz_*.c targets under $SRC" >&2
    exit 1
}

BUILD=$WORK/build
echo "libfuzzer: building ${targets[*]} with $CC_FUZZ in $BUILD" >&2
if ! cmake -S "$SRC" -B "$BUILD" -DCMAKE_C_COMPILER="$CC_FUZZ" -DCMAKE_BUILD_TYPE=Debug \
    -DSLUICE_FUZZ=ON -DSLUICE_SANITIZE=ON >"$WORK/cmake.log" 2>&1; then
    cat "$WORK/cmake.log" >&2
    echo "libfuzzer: FAILED: cmake could not configure the fuzz build" >&2
    exit 1
fi
if ! cmake --build "$BUILD" -j "$JOBS" --target "${targets[@]}" >"$WORK/build.log" 2>&1; then
    tail -n 40 "$WORK/build.log" >&2
    echo "libfuzzer: FAILED: the fuzz targets do not build with $CC_FUZZ (log: $WORK/build.log)" >&2
    exit 1
fi

failed=()
for t in "${targets[@]}"; do
    name=${t#fuzz_}
    corpus=$WORK/corpus/$name
    artifacts=$WORK/artifacts/$name/
    rm -rf "$corpus" "$artifacts"
    mkdir -p "$corpus" "$artifacts"
    if [ -d "$SRC/tests/fuzz/corpus/$name" ]; then
        cp -R "$SRC/tests/fuzz/corpus/$name/." "$corpus/"
    fi
    log=$WORK/$name.log
    echo "libfuzzer: $name for ${SECONDS_EACH}s over $(find "$corpus" -type f | wc -l) corpus inputs" >&2
    if "$BUILD/$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix="$artifacts" "$corpus" \
        >"$log" 2>&1; then
        grep -E '^stat::number_of_executed_units|^stat::new_units_added' "$log" |
            sed "s/^/libfuzzer: $name /" >&2 || true
    else
        echo "libfuzzer: FAILED: $name; its report:" >&2
        grep -E -A30 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|runtime error|==ERROR' \
            "$log" | head -n 60 >&2 || tail -n 40 "$log" >&2
        for a in "$artifacts"*; do
            [ -e "$a" ] || continue
            echo "libfuzzer: reproduce with: $BUILD/$t $a" >&2
            echo "libfuzzer: after the fix, keep it as a regression input:" \
                "cp $a $SRC/tests/fuzz/corpus/$name/" >&2
        done
        failed+=("$name")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "libfuzzer: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "libfuzzer: ${#targets[@]} targets ran ${SECONDS_EACH}s each without a crash" >&2
