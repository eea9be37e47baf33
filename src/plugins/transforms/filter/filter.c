/*
 * filter.c - the filter transform: keep the records for which an expression is true.
 *
 *     buys: {type: filter, inputs: [enrich], where: 'event_type == "purchase"'}
 *
 * `where` is compiled once in init. For each live record process() evaluates it as a
 * condition (sl_expr_test, truthiness as in docs/expressions.md): false marks the record
 * SL_REC_DROPPED, which makes it invisible downstream and counts it as "dropped by
 * filter" in the conservation law. A runtime error (a type error such as comparing a
 * string with a number) is not a silent drop: the record is rejected (error class
 * "expression") with the expression and the error, so it reaches the dead-letter queue
 * with its reason. Likewise a record whose root is not an object (an array, a string...)
 * is rejected as "not_object" when the condition reads fields by name, instead of being
 * judged on fields that cannot exist.
 *
 * Threading: process() may run on several workers at once with the same state. The state
 * (one compiled expression) is immutable after init, and every allocation comes from the
 * batch's arena, so no lock is needed. The state is freed by close().
 */
#include <stdio.h>
#include <string.h>

#include "sluice/alloc.h"
#include "sluice/batch.h"
#include "sluice/config.h"
#include "sluice/expr.h"
#include "sluice/plugin.h"

struct filter_state {
    struct sl_expr *where; /* never NULL after init */
    int needs_object;      /* where reads fields by name (sl_expr_reads_keys) */
};

static const struct sl_option filter_options[] = {
    {"where", SL_OPT_EXPR, NULL, 1,
     "Condition a record must satisfy to pass; records for which it is false are dropped.", NULL},
    {NULL, 0, NULL, 0, NULL, NULL},
};

static void filter_close(void *state)
{
    struct filter_state *st = state;
    if (!st)
        return;
    sl_expr_destroy(st->where);
    sl_free(st);
}

static sl_rc filter_init(const struct sl_plugin_ctx *ctx, void **state, struct sl_error *err)
{
    const struct sl_cfg_node *n = sl_cfg_get(ctx->node, "where");
    if (!n)
        return sl_cfg_error(err, ctx->node,
                            "filter %s: missing required option 'where' (the "
                            "condition records must satisfy, e.g. where: 'status == 200')",
                            ctx->name);
    if (n->kind != SL_CFG_SCALAR || n->is_null)
        return sl_cfg_error(err, n, "where: expected an expression string");
    struct filter_state *st = sl_calloc(1, sizeof *st);
    if (!st)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    size_t col = 0;
    struct sl_error cerr;
    sl_error_clear(&cerr);
    sl_rc rc = sl_expr_compile(n->str, strlen(n->str), &st->where, &col, &cerr);
    if (rc == SL_ENOMEM) {
        sl_free(st);
        return sl_error_set(err, SL_ENOMEM, "%s", cerr.msg);
    }
    if (rc) {
        sl_free(st);
        return sl_cfg_error(err, n, "where: %s at column %zu of the expression: %s", cerr.msg, col,
                            n->str);
    }
    st->needs_object = sl_expr_reads_keys(st->where);
    *state = st;
    return SL_OK;
}

static sl_rc filter_process(void *state, struct sl_batch *b, struct sl_worker *w,
                            struct sl_error *err)
{
    const struct filter_state *st = state;
    struct sl_error eerr;
    (void)err;
    for (uint32_t i = 0; i < b->n; i++) {
        struct sl_record *r = &b->recs[i];
        if (r->flags & (SL_REC_DROPPED | SL_REC_BAD))
            continue;
        if (!(r->flags & SL_REC_PARSED)) { /* never pass what we could not look at */
            sl_record_reject(b, r, w->stage, "filter: record reached the filter unparsed");
            continue;
        }
        if (st->needs_object && r->tape.tok[0].type != SL_J_OBJECT) {
            struct sl_value root;
            const char *type = sl_value_from_tape(&r->tape, 0, &b->arena, &root) == SL_OK
                                   ? sl_value_type_name(&root)
                                   : "value";
            struct sl_reject_info why = {.error_class = "not_object",
                                         .rule = "object",
                                         .path = "$",
                                         .expected = "object",
                                         .actual = type};
            sl_record_reject_why(b, r, w->stage, &why,
                                 "filter where: the record is a JSON %s, not an object, so the "
                                 "fields the condition reads do not exist (where: %s)",
                                 type, sl_expr_text(st->where));
            continue;
        }
        int keep;
        sl_rc rc = sl_expr_test(st->where, r, &b->arena, &keep, &eerr);
        if (rc == SL_ENOMEM)
            return sl_error_set(err, SL_ENOMEM, "filter %s: %s", w->stage, eerr.msg);
        if (rc) {
            struct sl_reject_info why = {.error_class = "expression",
                                         .rule = rc == SL_ETYPE ? "type_error" : sl_rc_name(rc)};
            sl_record_reject_why(b, r, w->stage, &why, "filter where: %s", eerr.msg);
            continue;
        }
        if (!keep)
            r->flags |= SL_REC_DROPPED;
    }
    return SL_OK;
}

const struct sl_plugin sl_transform_filter = {
    .kind = SL_PLUGIN_TRANSFORM,
    .name = "filter",
    .description = "Keeps the records for which an expression is true and drops the rest; "
                   "a record whose expression fails at runtime is rejected to the DLQ.",
    .options = filter_options,
    .init = filter_init,
    .process = filter_process,
    .close = filter_close,
};
