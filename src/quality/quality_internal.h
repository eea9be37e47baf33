/*
 * quality_internal.h - the compiled form of quality gates, shared by compile.c (which
 * builds it from the `quality:` list) and unit.c (which runs it over commit units).
 *
 * Ownership: struct sl_quality owns an arena holding every gate, name, path and accepted
 * value, plus the compiled expressions of ratio() gates (freed by sl_quality_destroy).
 * Nothing points into the configuration document, so the gates outlive it.
 */
#ifndef SLUICE_QUALITY_INTERNAL_H
#define SLUICE_QUALITY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/arena.h"
#include "sluice/expr.h"
#include "sluice/quality.h"
#include "sluice/record.h"
#include "sluice/value.h"

enum sl__check_kind {
    SL__CHECK_ROW_COUNT = 1,
    SL__CHECK_NULL_RATE,
    SL__CHECK_UNIQUE,
    SL__CHECK_ACCEPTED,
    SL__CHECK_FRESHNESS,
    SL__CHECK_RATIO,
};

/* unique(): distinct values one gate remembers per unit, by default and at most. */
#define SL__UNIQUE_DEFAULT_DISTINCT 1000000u
#define SL__UNIQUE_MAX_DISTINCT 100000000u

/*
 * One gate.
 *
 * Invariants:
 *   1. path is valid for every kind but row_count and ratio; expr is non-NULL exactly for
 *      ratio; accepted[0..naccepted) holds scalars only (null, bool, number, string).
 *   2. After compile, has_min/has_max already include the check's default bounds, and
 *      min <= max when both are set.
 *   3. freshness: has_max is set, max == max_age in seconds, has_min is not.
 */
struct sl__gate {
    const char *name;
    const char *check; /* as written */
    const char *description;
    uint32_t comp;
    enum sl__check_kind kind;
    enum sl_gate_action action;
    struct sl_path path;
    struct sl_value *accepted;
    size_t naccepted;
    struct sl_expr *expr;
    int has_min, has_max;
    double min, max;
    uint64_t max_distinct; /* unique() */
};

struct sl_quality {
    struct sl_arena arena;
    struct sl__gate *gates;
    size_t n;
};

/*
 * Parse an RFC 3339 timestamp (2026-11-27T15:04:05Z, fractions, offsets, 't'/' ' as the
 * separator) into seconds since the epoch. 0 on success, -1 when malformed.
 */
int sl__quality_rfc3339(const char *s, size_t n, double *out);

#endif
