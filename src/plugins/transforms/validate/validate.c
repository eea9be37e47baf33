/*
 * validate.c - the validate transform: check every record against a data contract.
 *
 *     valid: {type: validate, inputs: [clicks], contract: contracts/click_event.json}
 *
 * The contract (docs/contracts.md) is loaded and compiled once in init; a contract that
 * does not load is a configuration error naming the file and the place inside it. For
 * each live record process() collects the violations (sl_contract_validate, at most
 * MAX_VIOLATIONS described) and applies on_invalid:
 *
 *   dlq   (default) the record is rejected with a structured reason: error class
 *         "contract", the first violation's rule, path, expected and actual, the
 *         contract's name@version, and every violation as a JSON array in details. It
 *         reaches the dead-letter queue with its original bytes.
 *   drop  the record is marked SL_REC_DROPPED: gone, and counted as filtered.
 *   fail  process() returns SL_EPARSE with a message naming the record (input file and
 *         line) and its violations; the run stops with exit code 1.
 *
 * Records that are dropped, rejected or were never parsed are left alone: something
 * upstream already decided their fate.
 *
 * Threading: process() may run on several workers with the same state. The state is the
 * loaded contract (immutable) and the mode; everything per record is allocated in the
 * batch arena. close() frees the contract.
 */
#include <stdio.h>
#include <string.h>

#include "sluice/alloc.h"
#include "sluice/batch.h"
#include "sluice/buf.h"
#include "sluice/config.h"
#include "sluice/contract.h"
#include "sluice/json.h"
#include "sluice/plugin.h"

#define MAX_VIOLATIONS 64 /* described per record (all are counted) */
#define FAIL_LISTED 5     /* violations spelled out in an on_invalid: fail message */

enum on_invalid { ON_DLQ, ON_DROP, ON_FAIL };

struct validate_state {
    struct sl_contract *contract; /* never NULL after init */
    enum on_invalid mode;
};

static const struct sl_option validate_options[] = {
    {"contract", SL_OPT_PATH, NULL, 1,
     "The contract file (a JSON Schema subset with $id and version; see docs/contracts.md) "
     "every record is checked against.",
     NULL},
    {"on_invalid", SL_OPT_ENUM, "dlq", 0,
     "What happens to a record that violates the contract: dlq rejects it to the dead-letter "
     "queue with every violation, drop discards it (counted as filtered), fail stops the run.",
     "dlq|drop|fail"},
    {NULL, 0, NULL, 0, NULL, NULL},
};

static void validate_close(void *state)
{
    struct validate_state *st = state;
    if (!st)
        return;
    sl_contract_destroy(st->contract);
    sl_free(st);
}

static sl_rc validate_init(const struct sl_plugin_ctx *ctx, void **state, struct sl_error *err)
{
    const struct sl_cfg_node *n = sl_cfg_get(ctx->node, "contract");
    if (!n)
        return sl_cfg_error(err, ctx->node,
                            "validate %s: missing required option 'contract' (the contract "
                            "file, e.g. contract: contracts/click_event.json)",
                            ctx->name);
    const char *path, *mode;
    sl_rc rc = sl_cfg_get_path(ctx->doc, ctx->node, "contract", NULL, &path, err);
    if (rc)
        return rc;
    if ((rc = sl_cfg_get_str(ctx->node, "on_invalid", "dlq", &mode, err)))
        return rc;
    struct validate_state *st = sl_calloc(1, sizeof *st);
    if (!st)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    if (strcmp(mode, "dlq") == 0) {
        st->mode = ON_DLQ;
    } else if (strcmp(mode, "drop") == 0) {
        st->mode = ON_DROP;
    } else if (strcmp(mode, "fail") == 0) {
        st->mode = ON_FAIL;
    } else {
        sl_free(st);
        return sl_cfg_error(err, sl_cfg_get(ctx->node, "on_invalid"),
                            "on_invalid: \"%s\" is not one of dlq, drop, fail", mode);
    }
    struct sl_error cerr;
    sl_error_clear(&cerr);
    rc = sl_contract_load(path, &st->contract, &cerr);
    if (rc) {
        sl_free(st);
        if (rc == SL_ENOMEM)
            return sl_error_set(err, SL_ENOMEM, "%s", cerr.msg);
        return sl_cfg_error(err, n, "contract: %s", cerr.msg);
    }
    *state = st;
    return SL_OK;
}

/* `$.amount: expected number, got string "12a" (type)` appended to b. */
static sl_rc describe(struct sl_buf *b, const struct sl_violation *v)
{
    return sl_buf_printf(b, "%s: expected %s, got %s (%s)", v->path, v->expected, v->actual,
                         v->rule);
}

static sl_rc details_json(struct sl_buf *b, const struct sl_violation *v, size_t n)
{
    sl_rc rc = sl_buf_putc(b, '[');
    for (size_t i = 0; i < n && !rc; i++) {
        const char *f[4][2] = {{"path", v[i].path},
                               {"rule", v[i].rule},
                               {"expected", v[i].expected},
                               {"actual", v[i].actual}};
        rc = sl_buf_puts(b, i ? ",{" : "{");
        for (int k = 0; k < 4 && !rc; k++) {
            rc = sl_buf_printf(b, "%s\"%s\":", k ? "," : "", f[k][0]);
            if (!rc)
                rc = sl_json_write_str(b, f[k][1], strlen(f[k][1]));
        }
        if (!rc)
            rc = sl_buf_putc(b, '}');
    }
    if (!rc)
        rc = sl_buf_putc(b, ']');
    if (!rc)
        rc = sl_buf_cstr(b);
    return rc;
}

static sl_rc reject(const struct validate_state *st, struct sl_batch *b, struct sl_record *r,
                    struct sl_worker *w, const struct sl_violation *v, size_t total,
                    struct sl_buf *scratch)
{
    size_t shown = total < MAX_VIOLATIONS ? total : MAX_VIOLATIONS;
    sl_buf_clear(scratch);
    sl_rc rc = details_json(scratch, v, shown);
    if (rc)
        return rc;
    struct sl_reject_info why = {
        .error_class = "contract",
        .rule = v[0].rule,
        .path = v[0].path,
        .expected = v[0].expected,
        .actual = v[0].actual,
        .contract = sl_contract_label(st->contract),
        .details = scratch->data,
    };
    char more[48] = "";
    if (total > 1)
        snprintf(more, sizeof more, "; and %zu more", total - 1);
    sl_record_reject_why(b, r, w->stage, &why, "contract %s: %s: expected %s, got %s (%s)%s",
                         sl_contract_label(st->contract), v[0].path, v[0].expected, v[0].actual,
                         v[0].rule, more);
    return SL_OK;
}

static sl_rc fail(const struct validate_state *st, const struct sl_batch *b,
                  const struct sl_record *r, struct sl_worker *w, const struct sl_violation *v,
                  size_t total, struct sl_buf *scratch, struct sl_error *err)
{
    size_t shown = total < FAIL_LISTED ? total : FAIL_LISTED;
    sl_buf_clear(scratch);
    sl_rc rc = SL_OK;
    for (size_t i = 0; i < shown && !rc; i++) {
        if (i)
            rc = sl_buf_puts(scratch, "; ");
        if (!rc)
            rc = describe(scratch, &v[i]);
    }
    if (!rc && total > shown)
        rc = sl_buf_printf(scratch, "; and %zu more", total - shown);
    if (!rc)
        rc = sl_buf_cstr(scratch);
    if (rc)
        return sl_error_set(err, SL_ENOMEM, "validate %s: out of memory", w->stage);
    char where[64] = "";
    if (r->line)
        snprintf(where, sizeof where, ":%u", r->line);
    else
        snprintf(where, sizeof where, " at byte %llu", (unsigned long long)r->offset);
    return sl_error_set(err, SL_EPARSE,
                        "validate %s: record %s%s violates contract %s: %s; stopping because "
                        "on_invalid is fail (use on_invalid: dlq to keep such records in the "
                        "dead-letter queue and go on)",
                        w->stage, b->origin ? b->origin : "(input)", where,
                        sl_contract_label(st->contract), scratch->data);
}

static sl_rc validate_process(void *state, struct sl_batch *b, struct sl_worker *w,
                              struct sl_error *err)
{
    const struct validate_state *st = state;
    struct sl_violation v[MAX_VIOLATIONS];
    struct sl_buf scratch;
    sl_buf_init(&scratch, 0);
    sl_rc rc = SL_OK;
    for (uint32_t i = 0; i < b->n && !rc; i++) {
        struct sl_record *r = &b->recs[i];
        if ((r->flags & (SL_REC_DROPPED | SL_REC_BAD)) || !(r->flags & SL_REC_PARSED))
            continue;
        size_t n = sl_contract_validate(st->contract, r, &b->arena, v, MAX_VIOLATIONS);
        if (n == (size_t)-1) {
            rc = sl_error_set(err, SL_ENOMEM, "validate %s: out of memory", w->stage);
            break;
        }
        if (n == 0)
            continue;
        switch (st->mode) {
        case ON_DROP:
            r->flags |= SL_REC_DROPPED;
            break;
        case ON_FAIL:
            rc = fail(st, b, r, w, v, n, &scratch, err);
            break;
        case ON_DLQ:
            if (reject(st, b, r, w, v, n, &scratch))
                rc = sl_error_set(err, SL_ENOMEM, "validate %s: out of memory", w->stage);
            break;
        }
    }
    sl_buf_fini(&scratch);
    return rc;
}

const struct sl_plugin sl_transform_validate = {
    .kind = SL_PLUGIN_TRANSFORM,
    .name = "validate",
    .description = "Checks every record against a data contract (a JSON Schema subset); a "
                   "record that violates it goes to the DLQ with every violation, is dropped, "
                   "or stops the run.",
    .options = validate_options,
    .init = validate_init,
    .process = validate_process,
    .close = validate_close,
};
