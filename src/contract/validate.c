/*
 * validate.c - checking one record against a compiled contract.
 *
 * The walk goes down the compiled tree (contract_internal.h) and the record side by side.
 * A value is seen through a `struct view`: either a token of the record's tape (the fast
 * path, taken for every record no transform has edited: nothing is decoded or converted
 * unless a keyword needs it; a type check on an integer reads a flag, a string's length
 * counts bytes that are not UTF-8 continuation bytes in place) or a struct sl_value
 * (records with edits: the root object is rebuilt from sl_record_foreach, whose members
 * are edited values or tape references, so the walk drops back to tape views as soon as
 * it reaches an untouched member).
 *
 * Every violation is counted; the first `max` are written out with their JSON path
 * ($.user.id, $.tags[2], $["odd key"]), rule, expected and actual. Text is produced only
 * for those, so an invalid record costs little more than a valid one. After a `type`
 * violation the value's other keywords are not checked: they would only restate it.
 *
 * Threading: reads the contract (immutable) and writes only to the caller's arena and
 * array. Safe on several threads with the same contract.
 */
#include <math.h>
#include <string.h>

#include "contract/contract_internal.h"
#include "sluice/buf.h"
#include "sluice/json.h"
#include "sluice/record.h"

#define MAX_PATH_DEPTH 256 /* deeper values are still checked; their paths end in "..." */
#define ACTUAL_MAX 100     /* bytes of a value shown in `actual` */

struct view {
    const struct sl_tape *t; /* non-NULL: token tok of t */
    uint32_t tok;
    const struct sl_value *v; /* otherwise a value (never a tape-backed container) */
};

struct pseg {
    const char *key; /* NULL for an index */
    uint32_t klen;
    uint32_t index;
};

struct vctx {
    struct sl_arena *a;
    struct sl_violation *out;
    size_t max;
    size_t count;
    int oom;
    uint32_t depth;
    struct pseg path[MAX_PATH_DEPTH];
};

/* Whether the next violation will be written out (else its text is not worth making). */
#define WANT(x) ((x)->count < (x)->max && !(x)->oom)

enum vkind { V_NULL, V_BOOL, V_NUMBER, V_STRING, V_ARRAY, V_OBJECT };

static struct view tape_view(const struct sl_tape *t, uint32_t tok)
{
    struct view w = {t, tok, NULL};
    return w;
}

static struct view value_view(const struct sl_value *v)
{
    if ((v->type == SL_V_ARRAY || v->type == SL_V_OBJECT) && v->is_tape)
        return tape_view(v->u.tape.tape, v->u.tape.tok);
    struct view w = {NULL, 0, v};
    return w;
}

static enum vkind kind(const struct view *w)
{
    if (w->t) {
        switch (w->t->tok[w->tok].type) {
        case SL_J_NULL:
            return V_NULL;
        case SL_J_TRUE:
        case SL_J_FALSE:
            return V_BOOL;
        case SL_J_NUMBER:
            return V_NUMBER;
        case SL_J_STRING:
            return V_STRING;
        case SL_J_ARRAY:
            return V_ARRAY;
        default:
            return V_OBJECT;
        }
    }
    return (enum vkind)w->v->type; /* SL_V_* has the same order */
}

static double number(const struct view *w)
{
    if (w->t) {
        const struct sl_jtok *k = &w->t->tok[w->tok];
        return sl_json_num_to_double(w->t->text + k->off, k->len);
    }
    return w->v->u.num.d;
}

static int is_integer(const struct view *w)
{
    if (w->t && (w->t->tok[w->tok].flags & SL_JTOK_INTEGER))
        return 1;
    double d = number(w);
    return isfinite(d) && d == trunc(d);
}

/* The decoded bytes of a string view. 0 or SL_ENOMEM. */
static sl_rc string(struct vctx *x, const struct view *w, const char **s, size_t *n)
{
    if (!w->t) {
        *s = w->v->u.str;
        *n = w->v->len;
        return SL_OK;
    }
    const struct sl_jtok *k = &w->t->tok[w->tok];
    if (!(k->flags & SL_JTOK_ESCAPED)) {
        *s = w->t->text + k->off + 1;
        *n = k->len - 2;
        return SL_OK;
    }
    return sl_json_str(w->t, w->tok, x->a, s, n);
}

static sl_rc to_value(struct vctx *x, const struct view *w, struct sl_value *out)
{
    if (w->t)
        return sl_value_from_tape(w->t, w->tok, x->a, out);
    *out = *w->v;
    return SL_OK;
}

static uint64_t code_points(const char *s, size_t n)
{
    uint64_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* ---- messages -------------------------------------------------------------------------- */

sl_rc sl__contract_put_key(struct sl_buf *b, const char *k, size_t n)
{
    int ident =
        n > 0 && ((k[0] >= 'A' && k[0] <= 'Z') || (k[0] >= 'a' && k[0] <= 'z') || k[0] == '_');
    for (size_t i = 1; i < n && ident; i++)
        ident = (k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= 'a' && k[i] <= 'z') ||
                (k[i] >= '0' && k[i] <= '9') || k[i] == '_';
    sl_rc rc;
    if (ident)
        return sl_buf_putc(b, '.') ? SL_ENOMEM : sl_buf_append(b, k, n);
    if ((rc = sl_buf_putc(b, '[')) || (rc = sl_json_write_str(b, k, n)))
        return rc;
    return sl_buf_putc(b, ']');
}

static const char *path_text(struct vctx *x, struct sl_buf *b)
{
    sl_buf_clear(b);
    sl_rc rc = sl_buf_putc(b, '$');
    uint32_t d = x->depth < MAX_PATH_DEPTH ? x->depth : MAX_PATH_DEPTH;
    for (uint32_t i = 0; i < d && !rc; i++) {
        const struct pseg *g = &x->path[i];
        if (!g->key)
            rc = sl_buf_printf(b, "[%u]", g->index);
        else
            rc = sl__contract_put_key(b, g->key, g->klen);
    }
    if (!rc && x->depth > MAX_PATH_DEPTH)
        rc = sl_buf_puts(b, "...");
    if (rc)
        return NULL;
    return sl_arena_strndup(x->a, b->data, b->len);
}

/* Append at most ACTUAL_MAX bytes of s to b, cut at a character boundary, "..." if cut. */
static sl_rc put_short(struct sl_buf *b, const char *s, size_t n)
{
    if (n <= ACTUAL_MAX)
        return sl_buf_append(b, s, n);
    size_t k = ACTUAL_MAX;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    sl_rc rc = sl_buf_append(b, s, k);
    return rc ? rc : sl_buf_puts(b, "...");
}

static const char *kind_name(enum vkind k)
{
    static const char *const names[] = {"null", "boolean", "number", "string", "array", "object"};
    return names[k];
}

/* `string "12a"`, `number -5`, `null`: the type and a short rendering of the value. */
static const char *describe(struct vctx *x, const struct view *w, struct sl_buf *b)
{
    enum vkind k = kind(w);
    sl_buf_clear(b);
    sl_rc rc = sl_buf_puts(b, kind_name(k));
    if (!rc && k != V_NULL) {
        rc = sl_buf_putc(b, ' ');
        if (!rc && w->t) {
            const struct sl_jtok *t = &w->t->tok[w->tok];
            rc = put_short(b, w->t->text + t->off, t->len);
        } else if (!rc) {
            struct sl_buf tmp;
            sl_buf_init(&tmp, 0);
            rc = sl_value_write(w->v, &tmp);
            if (!rc)
                rc = put_short(b, tmp.data, tmp.len);
            sl_buf_fini(&tmp);
        }
    }
    return rc ? NULL : sl_arena_strndup(x->a, b->data, b->len);
}

static const char *num_text(struct vctx *x, const char *prefix, double d)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    const char *s = NULL;
    if (!sl_buf_puts(&b, prefix) && !sl_json_write_double(&b, d))
        s = sl_arena_strndup(x->a, b.data, b.len);
    sl_buf_fini(&b);
    return s;
}

/*
 * Count a violation; for the first max, fill it in. expected is a string of the contract,
 * static, or made in the arena (NULL: allocation failed); actual is the view described,
 * or actual_text when given.
 */
static void violation(struct vctx *x, const char *rule, const char *expected, const struct view *w,
                      const char *actual_text)
{
    size_t i = x->count++;
    if (i >= x->max || x->oom)
        return;
    struct sl_buf b;
    sl_buf_init(&b, 0);
    struct sl_violation *v = &x->out[i];
    v->rule = rule;
    v->expected = expected;
    v->path = path_text(x, &b);
    v->actual = actual_text ? actual_text : describe(x, w, &b);
    sl_buf_fini(&b);
    if (!v->path || !v->actual || !v->expected)
        x->oom = 1;
}

static void push_key(struct vctx *x, const char *k, size_t n)
{
    if (x->depth < MAX_PATH_DEPTH) {
        x->path[x->depth].key = k;
        x->path[x->depth].klen = (uint32_t)n;
    }
    x->depth++;
}

static void push_index(struct vctx *x, uint32_t i)
{
    if (x->depth < MAX_PATH_DEPTH) {
        x->path[x->depth].key = NULL;
        x->path[x->depth].index = i;
    }
    x->depth++;
}

/* ---- the walk -------------------------------------------------------------------------- */

static void check(struct vctx *x, const struct sl_cnode *n, const struct view *w);

static void check_number(struct vctx *x, const struct sl_cnode *n, const struct view *w)
{
    double d = number(w);
    if ((n->has & K_MINIMUM) && !(d >= n->minimum))
        violation(x, "minimum", WANT(x) ? num_text(x, ">= ", n->minimum) : "", w, NULL);
    if ((n->has & K_XMINIMUM) && !(d > n->xminimum))
        violation(x, "exclusiveMinimum", WANT(x) ? num_text(x, "> ", n->xminimum) : "", w, NULL);
    if ((n->has & K_MAXIMUM) && !(d <= n->maximum))
        violation(x, "maximum", WANT(x) ? num_text(x, "<= ", n->maximum) : "", w, NULL);
    if ((n->has & K_XMAXIMUM) && !(d < n->xmaximum))
        violation(x, "exclusiveMaximum", WANT(x) ? num_text(x, "< ", n->xmaximum) : "", w, NULL);
}

/*
 * Simple patterns go to fastre.c. regexec gets s[0..n) through REG_STARTEND, but sanitizers'
 * interceptors (and any libc without REG_STARTEND) read the subject up to a NUL, so it gets a
 * NUL-terminated copy: on the stack when short, in the arena otherwise.
 */
static int pattern_ok(struct vctx *x, const struct sl_cnode *n, const char *s, size_t len)
{
    if (n->fast) {
        int r = sl__contract_fastre_match(n->fast, s, len);
        if (r >= 0)
            return r;
    }
    char small[256];
    char *z = len < sizeof small ? small : sl_arena_alloc(x->a, len + 1);
    if (!z) {
        x->oom = 1;
        return 1;
    }
    memcpy(z, s, len);
    z[len] = '\0';
    return sl__contract_regsearch(n->re, n->re_chars, z, len);
}

static void check_string(struct vctx *x, const struct sl_cnode *n, const struct view *w)
{
    const char *s;
    size_t len;
    if (string(x, w, &s, &len)) {
        x->oom = 1;
        return;
    }
    if (n->has & (K_MINLENGTH | K_MAXLENGTH)) {
        uint64_t cp = code_points(s, len);
        if ((n->has & K_MINLENGTH) && cp < n->min_length)
            violation(x, "minLength",
                      WANT(x) ? sl_arena_printf(x->a, "at least %llu character%s",
                                                (unsigned long long)n->min_length,
                                                n->min_length == 1 ? "" : "s")
                              : "",
                      w, NULL);
        if ((n->has & K_MAXLENGTH) && cp > n->max_length)
            violation(x, "maxLength",
                      WANT(x) ? sl_arena_printf(x->a, "at most %llu character%s",
                                                (unsigned long long)n->max_length,
                                                n->max_length == 1 ? "" : "s")
                              : "",
                      w, NULL);
    }
    if ((n->has & K_PATTERN) && !pattern_ok(x, n, s, len))
        violation(x, "pattern", WANT(x) ? sl_arena_printf(x->a, "match /%s/", n->pattern) : "", w,
                  NULL);
    if ((n->has & K_FORMAT) && !sl__contract_format_ok(n->format, s, len))
        violation(x, "format", sl__contract_format_name(n->format), w, NULL);
}

static void check_array(struct vctx *x, const struct sl_cnode *n, const struct view *w)
{
    uint32_t cnt = w->t ? w->t->tok[w->tok].count : w->v->len;
    if ((n->has & K_MINITEMS) && cnt < n->min_items)
        violation(x, "minItems",
                  WANT(x) ? sl_arena_printf(x->a, "at least %llu item%s",
                                            (unsigned long long)n->min_items,
                                            n->min_items == 1 ? "" : "s")
                          : "",
                  w, WANT(x) ? sl_arena_printf(x->a, "%u item%s", cnt, cnt == 1 ? "" : "s") : "");
    if ((n->has & K_MAXITEMS) && cnt > n->max_items)
        violation(x, "maxItems",
                  WANT(x) ? sl_arena_printf(x->a, "at most %llu item%s",
                                            (unsigned long long)n->max_items,
                                            n->max_items == 1 ? "" : "s")
                          : "",
                  w, WANT(x) ? sl_arena_printf(x->a, "%u item%s", cnt, cnt == 1 ? "" : "s") : "");
    if (!(n->has & K_ITEMS))
        return;
    uint32_t i = w->t ? w->tok + 1 : 0;
    for (uint32_t e = 0; e < cnt; e++) {
        struct view c = w->t ? tape_view(w->t, i) : value_view(&w->v->u.items[e]);
        push_index(x, e);
        check(x, n->items, &c);
        x->depth--;
        if (w->t)
            i = w->t->tok[i].next;
    }
}

static int prop_is(const struct sl_cprop *p, const char *key, size_t klen)
{
    return p->len == klen &&
           (klen == 0 || (p->name[0] == key[0] && memcmp(p->name, key, klen) == 0));
}

/*
 * *hint is where the previous member's property was found plus one: records usually list
 * members in the contract's order, so the lookup starts there and wraps around.
 */
static void check_member(struct vctx *x, const struct sl_cnode *n, const char *key, size_t klen,
                         const struct view *c, uint64_t *seen, unsigned char *seen_big,
                         uint32_t *hint)
{
    uint32_t p = n->nprops, start = *hint < n->nprops ? *hint : 0;
    for (uint32_t k = 0; k < n->nprops; k++) {
        uint32_t q = start + k < n->nprops ? start + k : start + k - n->nprops;
        if (prop_is(&n->props[q], key, klen)) {
            p = q;
            *hint = q + 1;
            break;
        }
    }
    push_key(x, key, klen);
    if (p < n->nprops) {
        int32_t r = n->props[p].req;
        if (r >= 0) {
            if (seen_big)
                seen_big[r] = 1;
            else
                *seen |= (uint64_t)1 << r;
        }
        check(x, n->props[p].schema, c);
    } else {
        if (n->req_outside)
            for (uint32_t r = 0; r < n->nrequired; r++)
                if (n->required_len[r] == klen && memcmp(n->required[r], key, klen) == 0) {
                    if (seen_big)
                        seen_big[r] = 1;
                    else
                        *seen |= (uint64_t)1 << r;
                }
        const struct sl_cnode *ad = n->additional;
        if (ad && ad->is_bool && !ad->bool_value)
            violation(x, "additionalProperties", "no undeclared property", c, NULL);
        else if (ad)
            check(x, ad, c);
    }
    x->depth--;
}

static void check_object(struct vctx *x, const struct sl_cnode *n, const struct view *w)
{
    if (!(n->has & (K_PROPERTIES | K_REQUIRED | K_ADDITIONAL)))
        return;
    uint64_t seen = 0;
    uint32_t hint = 0;
    unsigned char *seen_big = NULL;
    if (n->nrequired > 64 && !(seen_big = sl_arena_calloc(x->a, n->nrequired))) {
        x->oom = 1;
        return;
    }
    if (w->t) {
        const struct sl_tape *t = w->t;
        uint32_t i = w->tok + 1, cnt = t->tok[w->tok].count;
        for (uint32_t m = 0; m < cnt; m++, i = t->tok[i + 1].next) {
            const char *key;
            size_t klen;
            const struct sl_jtok *k = &t->tok[i];
            if (!(k->flags & SL_JTOK_ESCAPED)) {
                key = t->text + k->off + 1;
                klen = k->len - 2;
            } else if (sl_json_str(t, i, x->a, &key, &klen)) {
                x->oom = 1;
                return;
            }
            struct view c = tape_view(t, i + 1);
            check_member(x, n, key, klen, &c, &seen, seen_big, &hint);
        }
    } else {
        for (uint32_t m = 0; m < w->v->len; m++) {
            const struct sl_member *mb = &w->v->u.members[m];
            struct view c = value_view(&mb->val);
            check_member(x, n, mb->key, mb->klen, &c, &seen, seen_big, &hint);
        }
    }
    for (uint32_t r = 0; r < n->nrequired; r++) {
        int got = seen_big ? seen_big[r] : (int)((seen >> r) & 1);
        if (got)
            continue;
        push_key(x, n->required[r], n->required_len[r]);
        violation(x, "required", "present", w, "missing");
        x->depth--;
    }
}

static int equal(struct vctx *x, const struct view *w, const struct sl_value *want)
{
    if (w->t) { /* the common case, a plain string against a string: compare bytes */
        const struct sl_jtok *k = &w->t->tok[w->tok];
        if (k->type == SL_J_STRING && !(k->flags & SL_JTOK_ESCAPED))
            return want->type == SL_V_STRING && want->len == k->len - 2 &&
                   (want->len == 0 || memcmp(want->u.str, w->t->text + k->off + 1, want->len) == 0);
    }
    struct sl_value v;
    if (to_value(x, w, &v)) {
        x->oom = 1;
        return 1;
    }
    return sl_value_equal(&v, want);
}

static void check(struct vctx *x, const struct sl_cnode *n, const struct view *w)
{
    if (n->is_bool) {
        if (!n->bool_value)
            violation(x, "false", "nothing (the schema is false)", w, NULL);
        return;
    }
    if (n->has & K_REF)
        check(x, n->ref, w);
    enum vkind k = kind(w);
    if (n->has & K_TYPE) {
        uint32_t bit = 0;
        switch (k) {
        case V_NULL:
            bit = T_NULL;
            break;
        case V_BOOL:
            bit = T_BOOLEAN;
            break;
        case V_NUMBER:
            bit = (n->types & T_NUMBER) || !is_integer(w) ? T_NUMBER : T_INTEGER;
            break;
        case V_STRING:
            bit = T_STRING;
            break;
        case V_ARRAY:
            bit = T_ARRAY;
            break;
        case V_OBJECT:
            bit = T_OBJECT;
            break;
        }
        if (!(n->types & bit)) {
            violation(x, "type", n->types_text, w, NULL);
            return;
        }
    }
    if (n->has & K_ENUM) {
        uint32_t i = 0;
        while (i < n->nenum && !equal(x, w, &n->enumv[i]))
            i++;
        if (i == n->nenum)
            violation(x, "enum", n->enum_text, w, NULL);
    }
    if ((n->has & K_CONST) && !equal(x, w, &n->constv))
        violation(x, "const", n->const_text, w, NULL);
    switch (k) {
    case V_NUMBER:
        if (n->has & (K_MINIMUM | K_MAXIMUM | K_XMINIMUM | K_XMAXIMUM))
            check_number(x, n, w);
        break;
    case V_STRING:
        if (n->has & (K_MINLENGTH | K_MAXLENGTH | K_PATTERN | K_FORMAT))
            check_string(x, n, w);
        break;
    case V_ARRAY:
        check_array(x, n, w);
        break;
    case V_OBJECT:
        check_object(x, n, w);
        break;
    default:
        break;
    }
}

struct collect {
    struct sl_member *m;
    uint32_t n, cap;
    struct sl_arena *a;
};

static int collect_member(void *ctx, const char *key, size_t klen, const struct sl_value *v)
{
    struct collect *c = ctx;
    if (c->n == c->cap) {
        uint32_t cap = c->cap ? c->cap * 2 : 16;
        struct sl_member *m = sl_arena_alloc(c->a, cap * sizeof *m);
        if (!m)
            return SL_ENOMEM;
        if (c->n)
            memcpy(m, c->m, c->n * sizeof *m);
        c->m = m;
        c->cap = cap;
    }
    c->m[c->n].key = key;
    c->m[c->n].klen = (uint32_t)klen;
    c->m[c->n].val = *v;
    c->n++;
    return 0;
}

size_t sl_contract_validate(const struct sl_contract *c, struct sl_record *r, struct sl_arena *a,
                            struct sl_violation *v, size_t max)
{
    struct vctx x;
    x.a = a;
    x.out = v;
    x.max = v ? max : 0;
    x.count = 0;
    x.oom = 0;
    x.depth = 0;
    if (!r->edits || r->tape.tok[0].type != SL_J_OBJECT) {
        struct view w = tape_view(&r->tape, 0);
        check(&x, c->root, &w);
    } else {
        struct collect col = {NULL, 0, 0, a};
        if (sl_record_foreach(r, a, collect_member, &col))
            return (size_t)-1;
        struct sl_value root = sl_value_null();
        root.type = SL_V_OBJECT;
        root.len = col.n;
        root.u.members = col.m;
        struct view w = value_view(&root);
        check(&x, c->root, &w);
    }
    return x.oom ? (size_t)-1 : x.count;
}
