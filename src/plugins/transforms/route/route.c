/*
 * route.c - the route transform: send each record to every output whose condition holds.
 *
 *     split:
 *       type: route
 *       inputs: [clicks]
 *       route:
 *         purchases: 'event_type == "purchase"'
 *         mobile: 'device.os in ["ios", "android"]'
 *
 * Downstream components name an output as `split.purchases`, `split.mobile` or
 * `split._unmatched` (records no condition matched). The outputs are the keys of the
 * `route` map in the order written (plugin.h: outputs_option), followed by _unmatched.
 *
 * process() evaluates every condition for each live record and sets bit i of
 * b->outmask[record] for each true condition i; when none holds it sets bit n (the
 * _unmatched output). A record may go to several outputs: the engine clones the batch per
 * output and keeps in each clone the records whose bit is set. A runtime error in any
 * condition rejects the record (error class "expression"; the DLQ gets it with the
 * condition's name and error) rather than routing it by a partial answer. A record whose
 * root is not an object is rejected as "not_object" when any condition reads fields by
 * name (it would otherwise land in _unmatched on fields that cannot exist).
 *
 * Limits: outmask has 64 bits per record, so at most 63 named routes.
 *
 * Threading: the state is immutable after init; process() may run on several workers at
 * once. Memory per record comes from the batch arena only.
 */
#include <string.h>

#include "sluice/alloc.h"
#include "sluice/batch.h"
#include "sluice/config.h"
#include "sluice/expr.h"
#include "sluice/plugin.h"

#define ROUTE_MAX 63 /* one bit each in a 64-bit outmask, plus _unmatched */

/*
 * Invariants:
 *   1. 1 <= n <= ROUTE_MAX; names[i] and conds[i] describe output i, in config order.
 *   2. Output n is _unmatched.
 */
struct route_state {
    size_t n;
    const char *names[ROUTE_MAX]; /* borrowed from the config document */
    struct sl_expr *conds[ROUTE_MAX];
    int needs_object; /* some condition reads fields by name (sl_expr_reads_keys) */
};

static const struct sl_option route_options[] = {
    {"route", SL_OPT_EXPR_MAP, NULL, 1,
     "Output name -> condition; a record goes to every output whose condition is true, or to "
     "_unmatched when none is.",
     NULL},
    {NULL, 0, NULL, 0, NULL, NULL},
};

static void route_close(void *state)
{
    struct route_state *st = state;
    if (!st)
        return;
    for (size_t i = 0; i < st->n; i++)
        sl_expr_destroy(st->conds[i]);
    sl_free(st);
}

static sl_rc route_init(const struct sl_plugin_ctx *ctx, void **state, struct sl_error *err)
{
    const struct sl_cfg_node *m = sl_cfg_get(ctx->node, "route");
    if (!m)
        return sl_cfg_error(err, ctx->node,
                            "route %s: missing required option 'route' (a map of output name "
                            "-> condition)",
                            ctx->name);
    if (m->kind != SL_CFG_MAP || m->n == 0)
        return sl_cfg_error(err, m,
                            "route: expected a map of output name -> condition with at "
                            "least one entry");
    if (m->n > ROUTE_MAX)
        return sl_cfg_error(err, m, "route: %zu outputs; at most %d are supported", m->n,
                            ROUTE_MAX);
    struct route_state *st = sl_calloc(1, sizeof *st);
    sl_rc rc;
    if (!st)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < m->n; i++) {
        const struct sl_cfg_pair *pr = &m->pairs[i];
        const struct sl_cfg_node *v = pr->val;
        if (!strcmp(pr->key, "_unmatched")) {
            rc = sl_cfg_error(err, v,
                              "route: the output name _unmatched is reserved for "
                              "records no condition matches");
            goto fail;
        }
        if (v->kind != SL_CFG_SCALAR || v->is_null) {
            rc = sl_cfg_error(err, v, "route.%s: expected a condition string", pr->key);
            goto fail;
        }
        size_t col = 0;
        struct sl_error cerr;
        sl_error_clear(&cerr);
        rc = sl_expr_compile(v->str, strlen(v->str), &st->conds[i], &col, &cerr);
        if (rc == SL_ENOMEM) {
            rc = sl_error_set(err, SL_ENOMEM, "%s", cerr.msg);
            goto fail;
        }
        if (rc) {
            rc = sl_cfg_error(err, v, "route.%s: %s at column %zu of the expression: %s", pr->key,
                              cerr.msg, col, v->str);
            goto fail;
        }
        st->names[i] = pr->key;
        st->needs_object |= sl_expr_reads_keys(st->conds[i]);
        st->n++;
    }
    *state = st;
    return SL_OK;
fail:
    route_close(st);
    return rc;
}

static sl_rc route_process(void *state, struct sl_batch *b, struct sl_worker *w,
                           struct sl_error *err)
{
    const struct route_state *st = state;
    struct sl_error eerr;
    if (!b->outmask && b->n)
        return sl_error_set(err, SL_ESTATE, "route %s: the batch has no output mask", w->stage);
    for (uint32_t i = 0; i < b->n; i++) {
        struct sl_record *r = &b->recs[i];
        if (r->flags & (SL_REC_DROPPED | SL_REC_BAD))
            continue;
        if (!(r->flags & SL_REC_PARSED)) {
            sl_record_reject(b, r, w->stage, "route: record reached the transform unparsed");
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
                                 "route: the record is a JSON %s, not an object, so the fields "
                                 "the conditions read do not exist",
                                 type);
            continue;
        }
        uint64_t mask = 0;
        size_t k;
        for (k = 0; k < st->n; k++) {
            int truth;
            sl_rc rc = sl_expr_test(st->conds[k], r, &b->arena, &truth, &eerr);
            if (rc == SL_ENOMEM)
                return sl_error_set(err, SL_ENOMEM, "route %s: %s", w->stage, eerr.msg);
            if (rc) {
                struct sl_reject_info why = {.error_class = "expression",
                                             .rule =
                                                 rc == SL_ETYPE ? "type_error" : sl_rc_name(rc)};
                sl_record_reject_why(b, r, w->stage, &why, "route %s: %s", st->names[k], eerr.msg);
                break;
            }
            if (truth)
                mask |= (uint64_t)1 << k;
        }
        if (k < st->n)
            continue; /* rejected */
        b->outmask[i] = mask ? mask : (uint64_t)1 << st->n;
    }
    return SL_OK;
}

const struct sl_plugin sl_transform_route = {
    .kind = SL_PLUGIN_TRANSFORM,
    .name = "route",
    .description = "Sends each record to every named output whose condition is true, or to "
                   "_unmatched when none is.",
    .options = route_options,
    .outputs_option = "route",
    .init = route_init,
    .process = route_process,
    .close = route_close,
};
