/*
 * value.c - struct sl_value: JSON values as expressions, transforms and sinks see them.
 *
 * A value is either a decoded scalar or a container. Containers start life as references
 * into a tape (is_tape: zero cost, read-only, written back as their original byte span)
 * and are materialized one level at a time, into the batch arena, only when a transform
 * changes something inside them (record.c does that along a path). Reading never
 * materializes: member and index lookups walk the tape's `next` links directly.
 *
 * Lookups by key compare the query with the raw key bytes, decoding escapes on the fly
 * (sl__json_raw_eq), so no key is ever copied. When an object has duplicate keys (RFC
 * 8259 allows them), the last occurrence wins (dups.c): lookups scan the whole object and
 * return the last match, and materializing drops the shadowed earlier members. A
 * tape-backed container that is written unchanged keeps its original bytes, duplicates
 * included.
 *
 * Threading: values are plain data; functions here touch only what they are given plus
 * the caller's arena. Ownership: values never own memory (value.h).
 */
#include <math.h>
#include <string.h>

#include "json/json_internal.h"
#include "sluice/json.h"
#include "sluice/value.h"

struct sl_value sl_value_null(void)
{
    struct sl_value v;
    memset(&v, 0, sizeof v);
    v.type = SL_V_NULL;
    return v;
}

struct sl_value sl_value_bool(int b)
{
    struct sl_value v = sl_value_null();
    v.type = SL_V_BOOL;
    v.u.b = b ? 1 : 0;
    return v;
}

struct sl_value sl_value_number(double d)
{
    struct sl_value v = sl_value_null();
    v.type = SL_V_NUMBER;
    v.u.num.d = d;
    v.u.num.text = NULL;
    v.is_int = isfinite(d) && d == trunc(d);
    return v;
}

struct sl_value sl_value_string(const char *s, size_t n)
{
    struct sl_value v = sl_value_null();
    v.type = SL_V_STRING;
    v.u.str = s;
    v.len = (uint32_t)n;
    return v;
}

sl_rc sl_value_from_tape(const struct sl_tape *t, uint32_t i, struct sl_arena *a,
                         struct sl_value *out)
{
    const struct sl_jtok *k = &t->tok[i];
    struct sl_value v = sl_value_null();
    switch (k->type) {
    case SL_J_NULL:
        break;
    case SL_J_FALSE:
    case SL_J_TRUE:
        v.type = SL_V_BOOL;
        v.u.b = k->type == SL_J_TRUE;
        break;
    case SL_J_NUMBER:
        v.type = SL_V_NUMBER;
        v.u.num.text = t->text + k->off;
        v.len = k->len;
        v.u.num.d = sl_json_num_to_double(v.u.num.text, k->len);
        v.is_int =
            (k->flags & SL_JTOK_INTEGER) || (isfinite(v.u.num.d) && v.u.num.d == trunc(v.u.num.d));
        break;
    case SL_J_STRING: {
        const char *s;
        size_t n;
        sl_rc rc = sl_json_str(t, i, a, &s, &n);
        if (rc)
            return rc;
        v.type = SL_V_STRING;
        v.u.str = s;
        v.len = (uint32_t)n;
        break;
    }
    default:
        v.type = k->type == SL_J_ARRAY ? SL_V_ARRAY : SL_V_OBJECT;
        v.is_tape = 1;
        v.len = k->count;
        v.u.tape.tape = t;
        v.u.tape.tok = i;
        break;
    }
    *out = v;
    return SL_OK;
}

sl_rc sl_value_materialize(const struct sl_value *v, struct sl_arena *a, struct sl_value *out)
{
    if ((v->type != SL_V_ARRAY && v->type != SL_V_OBJECT) || !v->is_tape) {
        *out = *v;
        return SL_OK;
    }
    const struct sl_tape *t = v->u.tape.tape;
    uint32_t c = v->u.tape.tok, n = t->tok[c].count, i = c + 1;
    struct sl_value r = sl_value_null();
    r.type = v->type;
    r.len = n;
    struct sl__shadow sh = {0, 0, 0, NULL};
    if (v->type == SL_V_ARRAY) {
        struct sl_value *items = n ? sl_arena_alloc(a, n * sizeof *items) : NULL;
        if (n && !items)
            return SL_ENOMEM;
        for (uint32_t k = 0; k < n; k++) {
            sl_rc rc = sl_value_from_tape(t, i, a, &items[k]);
            if (rc)
                return rc;
            i = t->tok[i].next;
        }
        r.u.items = items;
    } else {
        sl_rc rc = sl__json_shadowed(t, c, &sh);
        if (rc)
            return rc;
        struct sl_member *m = n ? sl_arena_alloc(a, n * sizeof *m) : NULL;
        if (n && !m)
            rc = SL_ENOMEM;
        uint32_t out_n = 0;
        for (uint32_t k = 0; k < n && !rc; k++, i = t->tok[i + 1].next) {
            const char *key;
            size_t klen;
            if (sl__shadow_is(&sh, k))
                continue; /* a later member has the same key: the last one wins */
            if ((rc = sl_json_str(t, i, a, &key, &klen)))
                break;
            m[out_n].key = key;
            m[out_n].klen = (uint32_t)klen;
            if ((rc = sl_value_from_tape(t, i + 1, a, &m[out_n].val)))
                break;
            out_n++;
        }
        sl__shadow_free(&sh);
        if (rc)
            return rc;
        r.u.members = m;
        r.len = out_n;
    }
    *out = r;
    return SL_OK;
}

uint32_t sl_value_count(const struct sl_value *v)
{
    if (v->type != SL_V_ARRAY && v->type != SL_V_OBJECT)
        return 0;
    return v->len;
}

sl_rc sl_value_index(const struct sl_value *v, uint32_t i, struct sl_arena *a, struct sl_value *out)
{
    if (v->type != SL_V_ARRAY)
        return SL_ETYPE;
    if (i >= v->len)
        return SL_ENOENT;
    if (!v->is_tape) {
        *out = v->u.items[i];
        return SL_OK;
    }
    const struct sl_tape *t = v->u.tape.tape;
    uint32_t k = v->u.tape.tok + 1;
    while (i--)
        k = t->tok[k].next;
    return sl_value_from_tape(t, k, a, out);
}

int sl_value_member(const struct sl_value *v, const char *key, size_t klen, struct sl_arena *a,
                    struct sl_value *out)
{
    if (v->type != SL_V_OBJECT)
        return 0;
    /* The last match wins (duplicate keys): scan to the end. */
    if (!v->is_tape) {
        const struct sl_member *found = NULL;
        for (uint32_t k = 0; k < v->len; k++) {
            const struct sl_member *m = &v->u.members[k];
            if (m->klen == klen && (klen == 0 || memcmp(m->key, key, klen) == 0))
                found = m;
        }
        if (found)
            *out = found->val;
        return found != NULL;
    }
    const struct sl_tape *t = v->u.tape.tape;
    uint32_t i = v->u.tape.tok + 1, found = 0;
    for (uint32_t k = 0; k < v->len; k++) {
        if (sl__json_tok_eq(t, i, key, klen))
            found = i;
        i = t->tok[i + 1].next;
    }
    return found && sl_value_from_tape(t, found + 1, a, out) == SL_OK;
}

sl_rc sl_value_write(const struct sl_value *v, struct sl_buf *b)
{
    sl_rc rc;
    switch (v->type) {
    case SL_V_NULL:
        return sl_buf_append(b, "null", 4);
    case SL_V_BOOL:
        return v->u.b ? sl_buf_append(b, "true", 4) : sl_buf_append(b, "false", 5);
    case SL_V_NUMBER:
        if (v->u.num.text)
            return sl_buf_append(b, v->u.num.text, v->len);
        return sl_json_write_double(b, v->u.num.d);
    case SL_V_STRING:
        return sl_json_write_str(b, v->u.str, v->len);
    default:
        break;
    }
    if (v->is_tape) {
        const struct sl_jtok *k = &v->u.tape.tape->tok[v->u.tape.tok];
        return sl_buf_append(b, v->u.tape.tape->text + k->off, k->len);
    }
    int obj = v->type == SL_V_OBJECT;
    if ((rc = sl_buf_putc(b, obj ? '{' : '[')))
        return rc;
    for (uint32_t k = 0; k < v->len; k++) {
        if (k && (rc = sl_buf_putc(b, ',')))
            return rc;
        if (obj) {
            const struct sl_member *m = &v->u.members[k];
            if ((rc = sl_json_write_str(b, m->key, m->klen)) || (rc = sl_buf_putc(b, ':')) ||
                (rc = sl_value_write(&m->val, b)))
                return rc;
        } else if ((rc = sl_value_write(&v->u.items[k], b))) {
            return rc;
        }
    }
    return sl_buf_putc(b, obj ? '}' : ']');
}

/*
 * Member k of object v as (key, value), in storage order. Keys of tape-backed objects are
 * decoded into a when escaped. *cursor carries the tape position between calls.
 */
static int member_at(const struct sl_value *v, uint32_t k, uint32_t *cursor, struct sl_arena *a,
                     const char **key, size_t *klen, struct sl_value *val)
{
    if (!v->is_tape) {
        *key = v->u.members[k].key;
        *klen = v->u.members[k].klen;
        *val = v->u.members[k].val;
        return 1;
    }
    const struct sl_tape *t = v->u.tape.tape;
    uint32_t i = k == 0 ? v->u.tape.tok + 1 : *cursor;
    if (sl_json_str(t, i, a, key, klen) || sl_value_from_tape(t, i + 1, a, val))
        return 0;
    *cursor = t->tok[i + 1].next;
    return 1;
}

static int equal_in(const struct sl_value *x, const struct sl_value *y, struct sl_arena *a)
{
    if (x->type != y->type)
        return 0;
    switch (x->type) {
    case SL_V_NULL:
        return 1;
    case SL_V_BOOL:
        return !x->u.b == !y->u.b;
    case SL_V_NUMBER:
        return x->u.num.d == y->u.num.d;
    case SL_V_STRING:
        return x->len == y->len && (x->len == 0 || memcmp(x->u.str, y->u.str, x->len) == 0);
    default:
        break;
    }
    struct sl_value xm, ym;
    if (x->type == SL_V_OBJECT) {
        /* One level materialized: duplicate keys collapse to their last occurrence. */
        if (sl_value_materialize(x, a, &xm) || sl_value_materialize(y, a, &ym))
            return 0;
        x = &xm;
        y = &ym;
    }
    if (x->len != y->len)
        return 0;
    if (x->type == SL_V_ARRAY) {
        for (uint32_t k = 0; k < x->len; k++) {
            struct sl_value xe, ye;
            if (sl_value_index(x, k, a, &xe) || sl_value_index(y, k, a, &ye))
                return 0;
            if (!equal_in(&xe, &ye, a))
                return 0;
        }
        return 1;
    }
    uint32_t cursor = 0;
    for (uint32_t k = 0; k < x->len; k++) {
        const char *key;
        size_t klen;
        struct sl_value xv, yv;
        if (!member_at(x, k, &cursor, a, &key, &klen, &xv))
            return 0;
        if (!sl_value_member(y, key, klen, a, &yv) || !equal_in(&xv, &yv, a))
            return 0;
    }
    return 1;
}

int sl_value_equal(const struct sl_value *x, const struct sl_value *y)
{
    /* Scratch for decoded escaped strings only; allocates nothing when there are none. */
    struct sl_arena a;
    sl_arena_init(&a, 4096);
    int r = equal_in(x, y, &a);
    sl_arena_fini(&a);
    return r;
}

int sl_value_truthy(const struct sl_value *v)
{
    switch (v->type) {
    case SL_V_NULL:
        return 0;
    case SL_V_BOOL:
        return v->u.b != 0;
    case SL_V_NUMBER:
        return v->u.num.d != 0 && !isnan(v->u.num.d);
    case SL_V_STRING:
        return v->len != 0;
    default:
        return 1;
    }
}

const char *sl_value_type_name(const struct sl_value *v)
{
    static const char *const names[] = {"null", "bool", "number", "string", "array", "object"};
    return v->type <= SL_V_OBJECT ? names[v->type] : "unknown";
}
