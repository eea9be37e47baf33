/*
 * map.c - the map transform: set, rename, drop, cast and default fields.
 *
 *     enrich:
 *       type: map
 *       inputs: [valid]
 *       default: {currency: '"EUR"'}
 *       cast: {amount: float, ts: timestamp}
 *       set: {amount_cents: "round(amount * 100)", device.os: "lower(device.os)"}
 *       rename: {referrer: source.referrer}
 *       drop: [debug]
 *
 * The steps always apply in this fixed order, whatever order the keys are written in:
 *
 *     default -> cast -> set -> rename -> drop
 *
 * and, within a step, in the order the entries are written. Each step sees the results of
 * the earlier ones (a `set` expression reads the defaulted and cast values, and a later
 * `set` entry reads an earlier one). The order is documented in docs/expressions.md.
 *
 * Changes are edits on the record (sl_record_set/sl_record_del), so untouched members are
 * written back byte for byte. Any failure (a cast of "abc" to int, a set through a
 * scalar, an expression's runtime type error) rejects the whole record with a message
 * naming the step, the field and the value, and a structured reason for the DLQ:
 *
 *     cast of a value the type cannot take   class "cast", rule = the type, path = the
 *                                            field, expected = the type, actual = value
 *     expression runtime error               class "expression", rule "type_error"
 *     record root not an object              class "not_object", rule "object", path "$"
 *     a path through a scalar                class "not_object", rule "path"
 *     an array index past the end            class "expression", rule "index_out_of_range"
 *
 * A rejected record keeps whatever edits were already applied, but it is never written
 * by a sink, and the DLQ keeps its original bytes.
 *
 * Threading: the state (paths, compiled expressions) is built in init and read-only
 * afterwards, so several workers may run process() on different batches at once. All
 * per-record memory comes from the batch arena. close() frees the state.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/alloc.h"
#include "sluice/batch.h"
#include "sluice/config.h"
#include "sluice/expr.h"
#include "sluice/plugin.h"

#define MAP_MAX_ENTRIES 4096 /* per step: a config with more is a mistake */

enum cast_type { CAST_INT = 1, CAST_FLOAT, CAST_STRING, CAST_BOOL, CAST_TIMESTAMP };

static const char *const cast_names[] = {NULL, "int", "float", "string", "bool", "timestamp"};

/* An entry of default/set (path, expr), cast (path, type) or rename (path -> to). */
struct map_entry {
    struct sl_path path;
    struct sl_path to;    /* rename only */
    struct sl_expr *expr; /* default, set; cast to timestamp (invariant 2) */
    enum cast_type cast;  /* cast only */
};

/*
 * Invariants:
 *   1. Every path lives in arena; every expr is owned here and destroyed by close.
 *   2. A cast entry to timestamp holds expr = parse_timestamp(<its path>), evaluated on
 *      the record itself, so casts and expressions share one RFC 3339 parser.
 *   3. Nothing here changes after init returns.
 */
struct map_state {
    struct sl_arena arena;
    struct map_entry *defaults, *casts, *sets, *renames, *drops;
    size_t ndefaults, ncasts, nsets, nrenames, ndrops;
};

static const struct sl_option map_options[] = {
    {"default", SL_OPT_EXPR_MAP, NULL, 0,
     "Field path -> expression, applied first, to fields that are missing or null.", NULL},
    {"cast", SL_OPT_MAP, NULL, 0,
     "Field path -> int, float, string, bool or timestamp, applied after default.", NULL},
    {"set", SL_OPT_EXPR_MAP, NULL, 0,
     "Field path -> expression, applied after cast in the order written; each sees the "
     "earlier results.",
     NULL},
    {"rename", SL_OPT_MAP, NULL, 0,
     "Old field path -> new field path, applied after set; a missing field is skipped.", NULL},
    {"drop", SL_OPT_LIST, NULL, 0, "Field paths to remove, applied last.", NULL},
    {NULL, 0, NULL, 0, NULL, NULL},
};

static void map_close(void *state)
{
    struct map_state *st = state;
    if (!st)
        return;
    for (size_t i = 0; i < st->ndefaults; i++)
        sl_expr_destroy(st->defaults[i].expr);
    for (size_t i = 0; i < st->nsets; i++)
        sl_expr_destroy(st->sets[i].expr);
    for (size_t i = 0; i < st->ncasts; i++)
        sl_expr_destroy(st->casts[i].expr);
    sl_arena_fini(&st->arena);
    sl_free(st);
}

static sl_rc parse_path(struct map_state *st, const struct sl_cfg_node *at, const char *what,
                        const char *text, struct sl_path *out, struct sl_error *err)
{
    size_t col = 0;
    struct sl_error perr;
    sl_error_clear(&perr);
    sl_rc rc = sl_path_parse(text, strlen(text), &st->arena, out, &col, &perr);
    if (rc == SL_ENOMEM)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    if (rc)
        return sl_cfg_error(err, at, "%s: bad field path \"%s\": %s at column %zu", what, text,
                            perr.msg, col);
    return SL_OK;
}

static sl_rc compile_at(const struct sl_cfg_node *n, const char *what, const char *key,
                        struct sl_expr **out, struct sl_error *err)
{
    if (n->kind != SL_CFG_SCALAR || n->is_null)
        return sl_cfg_error(err, n, "%s.%s: expected an expression string", what, key);
    size_t col = 0;
    struct sl_error cerr;
    sl_error_clear(&cerr);
    sl_rc rc = sl_expr_compile(n->str, strlen(n->str), out, &col, &cerr);
    if (rc == SL_ENOMEM)
        return sl_error_set(err, SL_ENOMEM, "%s", cerr.msg);
    if (rc)
        return sl_cfg_error(err, n, "%s.%s: %s at column %zu of the expression: %s", what, key,
                            cerr.msg, col, n->str);
    return SL_OK;
}

/* Entries for a map-valued option; *count 0 when the option is absent. */
static sl_rc take_map(struct map_state *st, const struct sl_cfg_node *node, const char *what,
                      struct map_entry **out, size_t *count, struct sl_error *err)
{
    const struct sl_cfg_node *m = sl_cfg_get(node, what);
    *count = 0;
    if (!m || (m->kind == SL_CFG_SCALAR && m->is_null))
        return SL_OK;
    if (m->kind != SL_CFG_MAP)
        return sl_cfg_error(err, m, "%s: expected a map of field path -> value", what);
    if (m->n > MAP_MAX_ENTRIES)
        return sl_cfg_error(err, m, "%s: more than %d entries", what, MAP_MAX_ENTRIES);
    *out = sl_arena_calloc(&st->arena, (m->n ? m->n : 1) * sizeof **out);
    if (!*out)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < m->n; i++) {
        const struct sl_cfg_pair *pr = &m->pairs[i];
        struct map_entry *e = &(*out)[i];
        sl_rc rc = parse_path(st, pr->val, what, pr->key, &e->path, err);
        if (rc)
            return rc;
        if (!strcmp(what, "default") || !strcmp(what, "set")) {
            rc = compile_at(pr->val, what, pr->key, &e->expr, err);
            if (rc)
                return rc;
            (*count)++; /* count only entries whose expr close() must free */
            continue;
        }
        if (pr->val->kind != SL_CFG_SCALAR || pr->val->is_null)
            return sl_cfg_error(err, pr->val, "%s.%s: expected a string", what, pr->key);
        if (!strcmp(what, "rename")) {
            rc = parse_path(st, pr->val, what, pr->val->str, &e->to, err);
            if (rc)
                return rc;
        } else { /* cast */
            for (int t = CAST_INT; t <= CAST_TIMESTAMP; t++)
                if (!strcmp(pr->val->str, cast_names[t]))
                    e->cast = (enum cast_type)t;
            if (!e->cast)
                return sl_cfg_error(err, pr->val,
                                    "cast.%s: unknown type \"%s\"; use int, float, string, "
                                    "bool or timestamp",
                                    pr->key, pr->val->str);
            if (e->cast == CAST_TIMESTAMP) {
                char *src = sl_arena_printf(&st->arena, "parse_timestamp(.%s)", pr->key);
                size_t col;
                struct sl_error cerr;
                if (!src)
                    return sl_error_set(err, SL_ENOMEM, "out of memory");
                rc = sl_expr_compile(src, strlen(src), &e->expr, &col, &cerr);
                if (rc)
                    return sl_cfg_error(err, pr->val, "cast.%s: %s", pr->key, cerr.msg);
            }
        }
        (*count)++;
    }
    return SL_OK;
}

static sl_rc map_init(const struct sl_plugin_ctx *ctx, void **state, struct sl_error *err)
{
    struct map_state *st = sl_calloc(1, sizeof *st);
    sl_rc rc;
    if (!st)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    sl_arena_init(&st->arena, 4096);
    if ((rc = take_map(st, ctx->node, "default", &st->defaults, &st->ndefaults, err)) ||
        (rc = take_map(st, ctx->node, "cast", &st->casts, &st->ncasts, err)) ||
        (rc = take_map(st, ctx->node, "set", &st->sets, &st->nsets, err)) ||
        (rc = take_map(st, ctx->node, "rename", &st->renames, &st->nrenames, err)))
        goto fail;
    const struct sl_cfg_node *d = sl_cfg_get(ctx->node, "drop");
    if (d && !(d->kind == SL_CFG_SCALAR && d->is_null)) {
        size_t n = d->kind == SL_CFG_SEQ ? d->n : 1;
        if (d->kind == SL_CFG_MAP) {
            rc = sl_cfg_error(err, d, "drop: expected a list of field paths");
            goto fail;
        }
        if (n > MAP_MAX_ENTRIES) {
            rc = sl_cfg_error(err, d, "drop: more than %d entries", MAP_MAX_ENTRIES);
            goto fail;
        }
        st->drops = sl_arena_calloc(&st->arena, (n ? n : 1) * sizeof *st->drops);
        if (!st->drops) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < n; i++) {
            const struct sl_cfg_node *it = d->kind == SL_CFG_SEQ ? d->items[i] : d;
            if (it->kind != SL_CFG_SCALAR || it->is_null) {
                rc = sl_cfg_error(err, it, "drop: expected a field path string");
                goto fail;
            }
            if ((rc = parse_path(st, it, "drop", it->str, &st->drops[i].path, err)))
                goto fail;
            st->ndrops++;
        }
    }
    if (!st->ndefaults && !st->ncasts && !st->nsets && !st->nrenames && !st->ndrops) {
        rc = sl_cfg_error(err, ctx->node,
                          "map %s: nothing to do; give at least one of set, rename, drop, cast "
                          "or default",
                          ctx->name);
        goto fail;
    }
    *state = st;
    return SL_OK;
fail:
    map_close(st);
    return rc;
}

/* Strict number text: sign, digits, optional fraction and exponent; spaces around. */
static int number_text(const char *s, size_t n, double *out)
{
    char buf[64];
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    size_t i = (buf[0] == '+' || buf[0] == '-'), digits = 0;
    for (; buf[i] >= '0' && buf[i] <= '9'; i++)
        digits++;
    if (buf[i] == '.')
        for (i++; buf[i] >= '0' && buf[i] <= '9'; i++)
            digits++;
    if (!digits)
        return -1;
    if (buf[i] == 'e' || buf[i] == 'E') {
        i++;
        if (buf[i] == '+' || buf[i] == '-')
            i++;
        if (buf[i] < '0' || buf[i] > '9')
            return -1;
        while (buf[i] >= '0' && buf[i] <= '9')
            i++;
    }
    if (buf[i])
        return -1;
    *out = strtod(buf, NULL);
    return isfinite(*out) ? 0 : -1;
}

static int ieq(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && !strncasecmp(s, lit, n);
}

/*
 * Convert v to type t into *out. Returns 0, or -1 with a reason in why (a sentence
 * fragment such as "\"abc\" is not a number").
 */
static int cast_value(const struct sl_expr *ts, struct sl_record *r, struct sl_arena *a,
                      enum cast_type t, const struct sl_value *v, struct sl_value *out, char *why,
                      size_t cap)
{
    double d;
    int quote = (int)(v->type == SL_V_STRING ? (v->len > 64 ? 64 : v->len) : 0);
    switch (t) {
    case CAST_INT:
    case CAST_FLOAT:
        if (v->type == SL_V_NUMBER)
            d = v->u.num.d;
        else if (v->type == SL_V_BOOL)
            d = v->u.b;
        else if (v->type == SL_V_STRING && number_text(v->u.str, v->len, &d) == 0)
            ;
        else if (v->type == SL_V_STRING) {
            snprintf(why, cap, "\"%.*s\" is not a number", quote, v->u.str);
            return -1;
        } else {
            snprintf(why, cap, "an %s cannot become a number", sl_value_type_name(v));
            return -1;
        }
        if (t == CAST_INT) {
            if (v->type == SL_V_NUMBER && v->is_int && fabs(d) < 9223372036854775808.0) {
                *out = *v; /* keep the original spelling */
                return 0;
            }
            d = trunc(d);
            if (!(d > -9223372036854775808.0 && d < 9223372036854775808.0)) {
                snprintf(why, cap, "%g does not fit in a 64-bit integer", d);
                return -1;
            }
        } else if (v->type == SL_V_NUMBER) {
            *out = *v;
            return 0;
        }
        *out = sl_value_number(d == 0 ? 0.0 : d);
        return 0;
    case CAST_STRING:
        if (v->type == SL_V_STRING) {
            *out = *v;
        } else if (v->type == SL_V_BOOL) {
            *out = sl_value_string(v->u.b ? "true" : "false", v->u.b ? 4 : 5);
        } else if (v->type == SL_V_NUMBER) {
            if (v->u.num.text) {
                *out = sl_value_string(v->u.num.text, v->len);
                return 0;
            }
            /* Integers without a fraction, others in the shortest exact %g form. */
            char tmp[40];
            double x = v->u.num.d;
            int k;
            if (x == trunc(x) && fabs(x) < 1e17) {
                k = snprintf(tmp, sizeof tmp, "%.0f", x == 0 ? 0.0 : x);
            } else {
                k = snprintf(tmp, sizeof tmp, "%.15g", x);
                if (strtod(tmp, NULL) != x)
                    k = snprintf(tmp, sizeof tmp, "%.17g", x);
            }
            char *s = k > 0 ? sl_arena_dup(a, tmp, (size_t)k) : NULL;
            if (!s) {
                snprintf(why, cap, "out of memory");
                return -1;
            }
            *out = sl_value_string(s, (size_t)k);
        } else {
            snprintf(why, cap, "an %s cannot become a string", sl_value_type_name(v));
            return -1;
        }
        return 0;
    case CAST_BOOL:
        if (v->type == SL_V_BOOL) {
            *out = *v;
        } else if (v->type == SL_V_NUMBER) {
            *out = sl_value_bool(v->u.num.d != 0);
        } else if (v->type == SL_V_STRING &&
                   (ieq(v->u.str, v->len, "true") || ieq(v->u.str, v->len, "yes") ||
                    ieq(v->u.str, v->len, "1"))) {
            *out = sl_value_bool(1);
        } else if (v->type == SL_V_STRING &&
                   (ieq(v->u.str, v->len, "false") || ieq(v->u.str, v->len, "no") ||
                    ieq(v->u.str, v->len, "0"))) {
            *out = sl_value_bool(0);
        } else if (v->type == SL_V_STRING) {
            snprintf(why, cap, "\"%.*s\" is not a boolean (true/false/yes/no/1/0)", quote,
                     v->u.str);
            return -1;
        } else {
            snprintf(why, cap, "an %s cannot become a bool", sl_value_type_name(v));
            return -1;
        }
        return 0;
    case CAST_TIMESTAMP:
        if (v->type == SL_V_NUMBER) {
            *out = *v;
            return 0;
        }
        if (v->type != SL_V_STRING) {
            snprintf(why, cap, "an %s cannot become a timestamp", sl_value_type_name(v));
            return -1;
        }
        {
            struct sl_error e;
            if (sl_expr_eval(ts, r, a, out, &e)) {
                snprintf(why, cap, "\"%.*s\" is not an RFC 3339 timestamp", quote, v->u.str);
                return -1;
            }
        }
        return 0;
    }
    snprintf(why, cap, "unknown cast");
    return -1;
}

/* The field path p as a reject reason's path: $.a.b, or $[0].x when it starts with an index. */
static const char *reason_path(const struct sl_path *p, char *buf, size_t cap)
{
    snprintf(buf, cap, p->text[0] == '[' ? "$%s" : "$.%s", p->text);
    return buf;
}

/* v as a reject reason's `actual`: a string's own bytes, anything else as JSON; at most 64
 * bytes (cut at a character boundary) then "...". */
static const char *reason_value(const struct sl_value *v, char buf[72])
{
    struct sl_buf b;
    const char *s;
    size_t n;
    sl_buf_init(&b, 4096);
    if (v->type == SL_V_STRING) {
        s = v->u.str;
        n = v->len;
    } else {
        (void)sl_value_write(v, &b); /* a value over the limit is cut: fine for a preview */
        s = b.data ? b.data : "";
        n = b.len;
    }
    size_t k = n;
    if (n > 64) {
        k = 64;
        while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
            k--;
    }
    memcpy(buf, s, k);
    memcpy(buf + k, n > k ? "..." : "", n > k ? 4 : 1);
    sl_buf_fini(&b);
    return buf;
}

/* Reject r because a set/del of path p failed with rc (SL_ETYPE or SL_ENOENT). */
static void reject_path(struct sl_batch *b, struct sl_record *r, const char *stage,
                        const struct sl_path *p, sl_rc rc, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static const char *rc_reason(sl_rc rc);

static void reject_path(struct sl_batch *b, struct sl_record *r, const char *stage,
                        const struct sl_path *p, sl_rc rc, const char *fmt, ...)
{
    char path[160], msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct sl_reject_info why = {.error_class = rc == SL_ETYPE ? "not_object" : "expression",
                                 .rule = rc == SL_ETYPE    ? "path"
                                         : rc == SL_ENOENT ? "index_out_of_range"
                                                           : sl_rc_name(rc),
                                 .path = reason_path(p, path, sizeof path),
                                 .expected =
                                     rc == SL_ETYPE ? "object or array along the path" : NULL};
    sl_record_reject_why(b, r, stage, &why, "%s: %s", msg, rc_reason(rc));
}

/* Reject r for an expression's runtime error while computing field p. */
static void reject_expr(struct sl_batch *b, struct sl_record *r, const char *stage,
                        const struct sl_path *p, sl_rc rc, const char *step, const char *msg)
{
    char path[160];
    struct sl_reject_info why = {.error_class = "expression",
                                 .rule = rc == SL_ETYPE ? "type_error" : sl_rc_name(rc),
                                 .path = reason_path(p, path, sizeof path)};
    sl_record_reject_why(b, r, stage, &why, "map %s %s: %s", step, p->text, msg);
}

static const char *rc_reason(sl_rc rc)
{
    if (rc == SL_ETYPE)
        return "the path goes through a value that is not an object or array";
    if (rc == SL_ENOENT)
        return "an array index is past the end";
    return sl_strerror(rc);
}

/* Apply every step to one live record. Returns SL_ENOMEM or SL_OK (rejections are OK). */
static sl_rc map_record(const struct map_state *st, struct sl_batch *b, struct sl_record *r,
                        const char *stage)
{
    struct sl_arena *a = &b->arena;
    struct sl_error e;
    struct sl_value v, nv;
    sl_rc rc;
    char why[256];

    if (r->tape.tok[0].type != SL_J_OBJECT) {
        struct sl_value root;
        const char *type = sl_value_from_tape(&r->tape, 0, a, &root) == SL_OK
                               ? sl_value_type_name(&root)
                               : "value";
        struct sl_reject_info info = {.error_class = "not_object",
                                      .rule = "object",
                                      .path = "$",
                                      .expected = "object",
                                      .actual = type};
        sl_record_reject_why(b, r, stage, &info,
                             "map: the record is a JSON %s, not an object; map works on the "
                             "fields of objects",
                             type);
        return SL_OK;
    }

    for (size_t i = 0; i < st->ndefaults; i++) {
        const struct map_entry *m = &st->defaults[i];
        if (sl_record_get(r, &m->path, a, &v) && v.type != SL_V_NULL)
            continue;
        if ((rc = sl_expr_eval(m->expr, r, a, &nv, &e))) {
            if (rc == SL_ENOMEM)
                return rc;
            reject_expr(b, r, stage, &m->path, rc, "default", e.msg);
            return SL_OK;
        }
        if ((rc = sl_record_set(r, &m->path, &nv, a))) {
            if (rc == SL_ENOMEM)
                return rc;
            reject_path(b, r, stage, &m->path, rc, "map default %s: cannot set the field",
                        m->path.text);
            return SL_OK;
        }
    }
    for (size_t i = 0; i < st->ncasts; i++) {
        const struct map_entry *m = &st->casts[i];
        if (!sl_record_get(r, &m->path, a, &v) || v.type == SL_V_NULL)
            continue;
        if (cast_value(m->expr, r, a, m->cast, &v, &nv, why, sizeof why)) {
            char path[160], actual[72];
            struct sl_reject_info info = {.error_class = "cast",
                                          .rule = cast_names[m->cast],
                                          .path = reason_path(&m->path, path, sizeof path),
                                          .expected = cast_names[m->cast],
                                          .actual = reason_value(&v, actual)};
            sl_record_reject_why(b, r, stage, &info, "map cast %s to %s: %s", m->path.text,
                                 cast_names[m->cast], why);
            return SL_OK;
        }
        if ((rc = sl_record_set(r, &m->path, &nv, a))) {
            if (rc == SL_ENOMEM)
                return rc;
            reject_path(b, r, stage, &m->path, rc, "map cast %s: cannot set the field",
                        m->path.text);
            return SL_OK;
        }
    }
    for (size_t i = 0; i < st->nsets; i++) {
        const struct map_entry *m = &st->sets[i];
        if ((rc = sl_expr_eval(m->expr, r, a, &nv, &e))) {
            if (rc == SL_ENOMEM)
                return rc;
            reject_expr(b, r, stage, &m->path, rc, "set", e.msg);
            return SL_OK;
        }
        if ((rc = sl_record_set(r, &m->path, &nv, a))) {
            if (rc == SL_ENOMEM)
                return rc;
            reject_path(b, r, stage, &m->path, rc, "map set %s = %s: cannot set the field",
                        m->path.text, sl_expr_text(m->expr));
            return SL_OK;
        }
    }
    for (size_t i = 0; i < st->nrenames; i++) {
        const struct map_entry *m = &st->renames[i];
        if (!sl_record_get(r, &m->path, a, &v))
            continue;
        int to_failed = 0;
        if ((rc = sl_record_set(r, &m->to, &v, a)) ||
            (to_failed = 1, rc = sl_record_del(r, &m->path, a))) {
            if (rc == SL_ENOMEM)
                return rc;
            reject_path(b, r, stage, to_failed ? &m->path : &m->to, rc, "map rename %s -> %s",
                        m->path.text, m->to.text);
            return SL_OK;
        }
    }
    for (size_t i = 0; i < st->ndrops; i++) {
        const struct map_entry *m = &st->drops[i];
        if ((rc = sl_record_del(r, &m->path, a))) {
            if (rc == SL_ENOMEM)
                return rc;
            reject_path(b, r, stage, &m->path, rc, "map drop %s", m->path.text);
            return SL_OK;
        }
    }
    return SL_OK;
}

static sl_rc map_process(void *state, struct sl_batch *b, struct sl_worker *w, struct sl_error *err)
{
    const struct map_state *st = state;
    for (uint32_t i = 0; i < b->n; i++) {
        struct sl_record *r = &b->recs[i];
        if (r->flags & (SL_REC_DROPPED | SL_REC_BAD))
            continue;
        if (!(r->flags & SL_REC_PARSED)) {
            sl_record_reject(b, r, w->stage, "map: record reached the transform unparsed");
            continue;
        }
        if (map_record(st, b, r, w->stage))
            return sl_error_set(err, SL_ENOMEM, "map %s: out of memory", w->stage);
    }
    return SL_OK;
}

const struct sl_plugin sl_transform_map = {
    .kind = SL_PLUGIN_TRANSFORM,
    .name = "map",
    .description = "Reshapes records: default, cast, set (expressions), rename and drop "
                   "fields, always in that order.",
    .options = map_options,
    .init = map_init,
    .process = map_process,
    .close = map_close,
};
