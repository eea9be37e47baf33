/*
 * quality.h - quality gates: checks over a commit unit with a threshold and an action.
 *
 * A pipeline's `quality:` list holds gates such as
 *
 *     - {name: buys_have_amount, on: buys, check: "null_rate(amount)", max: 0.0,
 *        action: quarantine}
 *
 * `on` names a component; the gate looks at the records that component passes on. The
 * unit a gate judges is one batch when streaming and the whole run with `run --once`.
 * Checks (docs/quality.md): row_count, null_rate(field), unique(field),
 * accepted_values(field, [v, ...]), freshness(field, max_age), ratio('expression'). Each
 * computes one number over the unit; the gate passes when min <= value <= max (either
 * bound may be absent; each check documents its default bounds, which apply only when
 * neither min nor max is written). Actions: warn (log and count), quarantine (the unit
 * goes to the quarantine store instead of the sinks), fail (nothing of the unit is
 * committed; the run exits 1). The default action is fail.
 *
 * Threading: a struct sl_quality is immutable after compile. A struct sl_quality_unit
 * belongs to one thread at a time; sl_quality_unit_add on a unit shared by several
 * workers must be serialized by the caller.
 */
#ifndef SLUICE_QUALITY_H
#define SLUICE_QUALITY_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/batch.h"
#include "sluice/config.h"
#include "sluice/rc.h"

enum sl_gate_action {
    SL_GATE_PASS = 0,
    SL_GATE_WARN = 1,
    SL_GATE_QUARANTINE = 2,
    SL_GATE_FAIL = 3
};

struct sl_quality;

/*
 * Compile the `quality:` sequence list of doc. names[0..n) are the pipeline's component
 * names (`on` must be one of them). Every problem is reported at once, one per line, as
 * file:line:col: message (unknown keys with "did you mean", a bad check expression, an
 * unknown component, min > max). SL_OK, SL_ECONFIG, SL_ENOMEM. A NULL list gives an
 * empty set of gates.
 */
sl_rc sl_quality_compile(const struct sl_cfg_doc *doc, const struct sl_cfg_node *list,
                         const char *const *names, size_t n, struct sl_quality **out,
                         struct sl_error *err);

void sl_quality_destroy(struct sl_quality *q);

/* Number of gates, and how many of them watch component comp (an index into names). */
size_t sl_quality_count(const struct sl_quality *q);
size_t sl_quality_count_on(const struct sl_quality *q, uint32_t comp);

/* Accumulated state of the gates on one component for one unit. */
struct sl_quality_unit;

sl_rc sl_quality_unit_create(const struct sl_quality *q, uint32_t comp,
                             struct sl_quality_unit **out);
void sl_quality_unit_destroy(struct sl_quality_unit *u);

/* Forget everything added (start the next unit). */
void sl_quality_unit_reset(struct sl_quality_unit *u);

/*
 * Add the live records of b (neither dropped nor rejected; parsed) to the unit. Scratch
 * allocations go to b's arena; the unit keeps nothing that points into b. Memory is
 * constant per gate except unique(), which keeps up to max_distinct 64-bit hashes (16-32
 * bytes each) and then fails the gate. SL_OK or SL_ENOMEM.
 */
sl_rc sl_quality_unit_add(struct sl_quality_unit *u, struct sl_batch *b);

/* The outcome of one gate over a unit. */
struct sl_gate_result {
    const char *gate;  /* name */
    const char *check; /* as written */
    double value;      /* the check's number over the unit (NaN when undefined: a rate
                          over zero records passes; freshness without any timestamp
                          fails) */
    int has_min, has_max;
    double min, max;
    int passed;
    enum sl_gate_action action; /* the gate's configured action */
    char message[256];          /* "null_rate(amount) = 0.03125 (32 of 1024 records missing or
                                   null); max 0" (docs/quality.md shows each check's form) */
};
typedef void (*sl_gate_result_fn)(void *ctx, const struct sl_gate_result *r);

/*
 * Judge the unit: call fn (may be NULL) for every gate on the component, and return the
 * strongest action among the gates that failed (SL_GATE_PASS when all passed). now_ns is
 * the wall clock for freshness.
 */
enum sl_gate_action sl_quality_unit_judge(struct sl_quality_unit *u, uint64_t now_ns,
                                          sl_gate_result_fn fn, void *ctx);

/* "pass", "warn", "quarantine", "fail". */
const char *sl_gate_action_name(enum sl_gate_action a);

/*
 * The failing gates of one judgement, gathered for logs and the quarantine store: pass
 * sl_gate_summary_add as the sl_gate_result_fn of sl_quality_unit_judge with a summary
 * from sl_gate_summary_init as ctx. gates lists the names of the failed gates ("a, b");
 * reason holds their messages, one per line. Both are NUL-terminated and end in "..."
 * when cut at their size. action is the strongest failing action, failed and warned
 * count failed gates (warned: those whose action is warn).
 */
struct sl_gate_summary {
    enum sl_gate_action action;
    unsigned failed, warned;
    char gates[512];
    char reason[2048];
};
void sl_gate_summary_init(struct sl_gate_summary *s);
void sl_gate_summary_add(void *ctx, const struct sl_gate_result *r);

#endif
