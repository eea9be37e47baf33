/*
 * compare.c - compatibility between two versions of a contract (`sluice contract check`).
 *
 * Backward compatible: every document valid under OLD is valid under NEW (consumers
 * moved to NEW still accept what producers on OLD send, and stored data stays valid).
 * Forward compatible: every document valid under NEW is valid under OLD. Full: both.
 *
 * How it decides. A schema accepts the documents that pass each of its keywords, so NEW
 * accepts at least what OLD accepts when every keyword of NEW accepts at least what the
 * same keyword of OLD accepts (a missing keyword accepts everything). The comparison is
 * made keyword by keyword, and that is sound: it never calls a change compatible when a
 * document exists that it breaks. It is conservative where keywords interact (adding a
 * `type` that an `enum` already implied is reported as a narrowing). Two refinements keep
 * it from crying wolf: a keyword that applies to one JSON type (minimum to numbers,
 * pattern to strings, items to arrays, properties to objects) cannot break backward when
 * OLD admits no value of that type, nor forward when NEW admits none; and a schema that
 * is nothing but a $ref is replaced by its target before comparing, so moving a
 * definition into $defs is not a change.
 *
 * Objects are compared name by name, which is where open content models matter: the
 * schema that applies to a property name is properties[name] when listed, otherwise
 * additionalProperties (absent = anything). Adding a property with constraints to an
 * object whose OLD additionalProperties accepted anything is therefore backward
 * incompatible (OLD data may already carry that name with any value); adding one where
 * OLD had additionalProperties false breaks forward only. Removing a property is the
 * mirror image.
 *
 * Recursive schemas: a pair (OLD node, NEW node) already being compared further up is
 * assumed compatible (documents are finite, so the assumption is an induction on depth).
 * A pair compared before on another path (a definition used in several places) is not
 * compared or listed again: its result is remembered, unless it leaned on such an
 * assumption. A work budget bounds the rest; past it the answer is "incompatible".
 *
 * Threading: reads two immutable contracts.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "contract/contract_internal.h"
#include "sluice/alloc.h"
#include "sluice/buf.h"

#define B SL_COMPAT_BACKWARD
#define F SL_COMPAT_FORWARD
#define MAX_DEPTH 128
#define WORK_BUDGET 1000000ul /* node pairs compared before giving up (conservatively) */
#define T_NUMS (T_NUMBER | T_INTEGER)

struct cmp {
    sl_contract_change_fn fn;
    void *ctx;
    int mode;
    int incompatible;
    int silent;
    int stopped;
    sl_rc rc;
    struct sl_buf path;
    const struct sl_cnode *stack_o[MAX_DEPTH], *stack_n[MAX_DEPTH];
    int depth;
    unsigned long cuts;  /* times a pair on the stack was assumed compatible */
    unsigned long steps; /* compare_node calls, against WORK_BUDGET */
    struct memo *memo;   /* open addressing, capmemo slots (a power of two) */
    size_t nmemo, capmemo;
};

/* A finished comparison of one pair: its result is reused, its changes not listed again. */
struct memo {
    const struct sl_cnode *o, *n;
    int mask, silent, used, breaks;
};

static int emit(struct cmp *c, int breaks, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int emit(struct cmp *c, int breaks, const char *fmt, ...)
{
    if (c->silent || c->stopped || c->rc)
        return breaks;
    char reason[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (sl_buf_cstr(&c->path)) {
        c->rc = SL_ENOMEM;
        return breaks;
    }
    if (breaks & c->mode)
        c->incompatible = 1;
    struct sl_contract_change ch = {c->path.data, reason, breaks};
    if (c->fn && c->fn(c->ctx, &ch))
        c->stopped = 1;
    return breaks;
}

static void push_key(struct cmp *c, const char *k, size_t n)
{
    if (sl__contract_put_key(&c->path, k, n))
        c->rc = SL_ENOMEM;
}

static void push_text(struct cmp *c, const char *s)
{
    if (sl_buf_puts(&c->path, s))
        c->rc = SL_ENOMEM;
}

static int is_false(const struct sl_cnode *n)
{
    return n && n->is_bool && !n->bool_value;
}

/* Everything the node's type keyword admits, integers included in numbers. */
static uint32_t declared_types(const struct sl_cnode *n)
{
    if (!n || !(n->has & K_TYPE))
        return T_ALL;
    return (n->types & T_NUMBER) ? n->types | T_INTEGER : n->types;
}

static const char *tname(struct sl_buf *b, uint32_t t)
{
    static const uint32_t order[] = {T_OBJECT,  T_ARRAY,   T_STRING, T_NUMBER,
                                     T_INTEGER, T_BOOLEAN, T_NULL};
    static const char *const names[] = {"object",  "array",   "string", "number",
                                        "integer", "boolean", "null"};
    sl_buf_clear(b);
    if (t == T_ALL)
        return "any type";
    size_t cnt = 0;
    for (int i = 0; i < 7; i++)
        if ((t & order[i]) && !(order[i] == T_INTEGER && (t & T_NUMBER)))
            cnt++;
    if (sl_buf_puts(b, cnt > 1 ? "[" : ""))
        return "?";
    int first = 1;
    for (int i = 0; i < 7; i++) {
        if (!(t & order[i]) || (order[i] == T_INTEGER && (t & T_NUMBER)))
            continue;
        if (sl_buf_printf(b, "%s%s", first ? "" : ", ", names[i]))
            return "?";
        first = 0;
    }
    if (sl_buf_puts(b, cnt > 1 ? "]" : "") || sl_buf_cstr(b))
        return "?";
    return b->data;
}

static int compare_node(struct cmp *c, const struct sl_cnode *o, const struct sl_cnode *n,
                        int mask);

static int compare_types(struct cmp *c, const struct sl_cnode *o, const struct sl_cnode *n,
                         int mask)
{
    uint32_t to = declared_types(o), tn = declared_types(n);
    uint32_t lost = to & ~tn, gained = tn & ~to;
    if (!lost && !gained)
        return 0;
    struct sl_buf a, b;
    sl_buf_init(&a, 0);
    sl_buf_init(&b, 0);
    int r;
    const char *so = tname(&a, to), *sn = tname(&b, tn);
    if (lost && gained)
        r = emit(c, (B | F) & mask, "type changed from %s to %s", so, sn);
    else if (lost)
        r = emit(c, B & mask, "type narrowed from %s to %s", so, sn);
    else
        r = emit(c, F & mask, "type widened from %s to %s", so, sn);
    sl_buf_fini(&a);
    sl_buf_fini(&b);
    return r;
}

/* The set of allowed values from enum and const: *all when unrestricted. */
struct vset {
    int all;
    const struct sl_value *v;
    uint32_t n;
    const struct sl_value *one; /* const */
};

static struct vset value_set(const struct sl_cnode *n)
{
    struct vset s = {1, NULL, 0, NULL};
    if (!n)
        return s;
    if (n->has & K_CONST) {
        s.all = 0;
        s.one = &n->constv;
        s.v = &n->constv;
        s.n = 1;
        if (n->has & K_ENUM) {
            uint32_t i = 0;
            while (i < n->nenum && !sl_value_equal(&n->enumv[i], &n->constv))
                i++;
            if (i == n->nenum)
                s.n = 0; /* const not among enum: nothing is allowed */
        }
    } else if (n->has & K_ENUM) {
        s.all = 0;
        s.v = n->enumv;
        s.n = n->nenum;
    }
    return s;
}

static int in_set(const struct vset *s, const struct sl_value *v)
{
    for (uint32_t i = 0; i < s->n; i++)
        if (sl_value_equal(&s->v[i], v))
            return 1;
    return 0;
}

static void render(struct sl_buf *b, const struct sl_value *v)
{
    sl_buf_clear(b);
    if (sl_value_write(v, b) || sl_buf_cstr(b)) {
        sl_buf_clear(b);
        return;
    }
    if (b->len > 80) {
        size_t k = 80;
        while (k > 0 && ((unsigned char)b->data[k] & 0xC0) == 0x80)
            k--;
        b->len = k;
        if (sl_buf_puts(b, "...") || sl_buf_cstr(b))
            sl_buf_clear(b);
    }
}

static int compare_values(struct cmp *c, const struct sl_cnode *o, const struct sl_cnode *n,
                          int mask)
{
    struct vset so = value_set(o), sn = value_set(n);
    int r = 0;
    if (so.all && sn.all)
        return 0;
    if (so.all) {
        return emit(c, B & mask, "allowed values restricted to %s",
                    (n->has & K_CONST) ? n->const_text : n->enum_text);
    }
    if (sn.all)
        return emit(c, F & mask, "restriction to %s removed",
                    (o->has & K_CONST) ? o->const_text : o->enum_text);
    struct sl_buf b;
    sl_buf_init(&b, 0);
    for (uint32_t i = 0; i < so.n; i++)
        if (!in_set(&sn, &so.v[i])) {
            render(&b, &so.v[i]);
            r |= emit(c, B & mask, "allowed value %s removed", b.data ? b.data : "");
        }
    for (uint32_t i = 0; i < sn.n; i++)
        if (!in_set(&so, &sn.v[i])) {
            render(&b, &sn.v[i]);
            r |= emit(c, F & mask, "allowed value %s added", b.data ? b.data : "");
        }
    sl_buf_fini(&b);
    return r;
}

struct bound {
    int has;
    double v;
    int excl;
};

static struct bound lower(const struct sl_cnode *n)
{
    struct bound b = {0, 0, 0};
    if (n && (n->has & K_MINIMUM))
        b = (struct bound){1, n->minimum, 0};
    if (n && (n->has & K_XMINIMUM) && (!b.has || n->xminimum >= b.v))
        b = (struct bound){1, n->xminimum, 1};
    return b;
}

static struct bound upper(const struct sl_cnode *n)
{
    struct bound b = {0, 0, 0};
    if (n && (n->has & K_MAXIMUM))
        b = (struct bound){1, n->maximum, 0};
    if (n && (n->has & K_XMAXIMUM) && (!b.has || n->xmaximum <= b.v))
        b = (struct bound){1, n->xmaximum, 1};
    return b;
}

static const char *btext(struct sl_buf *b, const char *op, const char *xop, struct bound x)
{
    sl_buf_clear(b);
    if (sl_buf_puts(b, x.excl ? xop : op) || sl_json_write_double(b, x.v) || sl_buf_cstr(b))
        return "?";
    return b->data;
}

/* 1 when bound a (lower if is_lower) admits strictly less than bound b somewhere. */
static int stricter(struct bound a, struct bound b, int is_lower)
{
    if (!a.has)
        return 0;
    if (!b.has)
        return 1;
    if (a.v != b.v)
        return is_lower ? a.v > b.v : a.v < b.v;
    return a.excl && !b.excl;
}

static int compare_bound(struct cmp *c, struct bound bo, struct bound bn, int is_lower, int mask)
{
    const char *op = is_lower ? ">= " : "<= ", *xop = is_lower ? "> " : "< ";
    const char *what = is_lower ? "lower bound" : "upper bound";
    int narrowed = stricter(bn, bo, is_lower), widened = stricter(bo, bn, is_lower);
    if (!narrowed && !widened)
        return 0;
    struct sl_buf a, b;
    sl_buf_init(&a, 0);
    sl_buf_init(&b, 0);
    int r;
    if (!bo.has)
        r = emit(c, B & mask, "%s added: %s", what, btext(&b, op, xop, bn));
    else if (!bn.has)
        r = emit(c, F & mask, "%s removed (was %s)", what, btext(&a, op, xop, bo));
    else
        r = emit(c, (narrowed ? B : F) & mask, "%s %s from %s to %s", what,
                 narrowed ? "tightened" : "relaxed", btext(&a, op, xop, bo),
                 btext(&b, op, xop, bn));
    sl_buf_fini(&a);
    sl_buf_fini(&b);
    return r;
}

/* A count limit (minLength ...). is_min: larger is stricter. */
static int compare_count(struct cmp *c, const char *kw, int ho, uint64_t vo, int hn, uint64_t vn,
                         int is_min, int mask)
{
    if (is_min) { /* a minimum of 0 constrains nothing */
        ho = ho && vo > 0;
        hn = hn && vn > 0;
    }
    if (ho == hn && (!ho || vo == vn))
        return 0;
    if (!ho)
        return emit(c, B & mask, "%s %llu added", kw, (unsigned long long)vn);
    if (!hn)
        return emit(c, F & mask, "%s %llu removed", kw, (unsigned long long)vo);
    int narrowed = is_min ? vn > vo : vn < vo;
    return emit(c, (narrowed ? B : F) & mask, "%s %s from %llu to %llu", kw,
                narrowed ? "tightened" : "relaxed", (unsigned long long)vo, (unsigned long long)vn);
}

static int compare_strings(struct cmp *c, const struct sl_cnode *o, const struct sl_cnode *n,
                           int mask)
{
    int r = 0;
    int ho = o && (o->has & K_MINLENGTH), hn = n && (n->has & K_MINLENGTH);
    r |= compare_count(c, "minLength", ho, ho ? o->min_length : 0, hn, hn ? n->min_length : 0, 1,
                       mask);
    ho = o && (o->has & K_MAXLENGTH), hn = n && (n->has & K_MAXLENGTH);
    r |= compare_count(c, "maxLength", ho, ho ? o->max_length : 0, hn, hn ? n->max_length : 0, 0,
                       mask);
    const char *po = o && (o->has & K_PATTERN) ? o->pattern : NULL;
    const char *pn = n && (n->has & K_PATTERN) ? n->pattern : NULL;
    if (po && pn && strcmp(po, pn) != 0)
        r |= emit(c, (B | F) & mask,
                  "pattern changed from /%s/ to /%s/ (patterns are compared "
                  "as text: any change may break either way)",
                  po, pn);
    else if (!po && pn)
        r |= emit(c, B & mask, "pattern /%s/ added", pn);
    else if (po && !pn)
        r |= emit(c, F & mask, "pattern /%s/ removed", po);
    int fo = o && (o->has & K_FORMAT) ? o->format : 0;
    int fn = n && (n->has & K_FORMAT) ? n->format : 0;
    if (fo && fn && fo != fn)
        r |= emit(c, (B | F) & mask, "format changed from %s to %s", sl__contract_format_name(fo),
                  sl__contract_format_name(fn));
    else if (!fo && fn)
        r |= emit(c, B & mask, "format %s added", sl__contract_format_name(fn));
    else if (fo && !fn)
        r |= emit(c, F & mask, "format %s removed", sl__contract_format_name(fo));
    return r;
}

static const struct sl_cnode *prop(const struct sl_cnode *n, const char *name, uint32_t len,
                                   int *found)
{
    *found = 0;
    if (!n)
        return NULL;
    for (uint32_t i = 0; i < n->nprops; i++)
        if (n->props[i].len == len && memcmp(n->props[i].name, name, len) == 0) {
            *found = 1;
            return n->props[i].schema;
        }
    return NULL;
}

static int required(const struct sl_cnode *n, const char *name, uint32_t len)
{
    if (!n)
        return 0;
    for (uint32_t i = 0; i < n->nrequired; i++)
        if (n->required_len[i] == len && memcmp(n->required[i], name, len) == 0)
            return 1;
    return 0;
}

/* Compare without reporting: which modes would break. */
static int silently(struct cmp *c, const struct sl_cnode *o, const struct sl_cnode *n, int mask)
{
    int saved = c->silent;
    c->silent = 1;
    int r = compare_node(c, o, n, mask);
    c->silent = saved;
    return r;
}

static const char *addl_text(const struct sl_cnode *a)
{
    if (!a || (a->is_bool && a->bool_value))
        return "true";
    if (a->is_bool)
        return "false";
    return "a schema";
}

static int compare_objects(struct cmp *c, const struct sl_cnode *o, const struct sl_cnode *n,
                           int mask)
{
    int r = 0;
    size_t len = c->path.len;
    const struct sl_cnode *ao = o ? o->additional : NULL, *an = n ? n->additional : NULL;
    /* Names in OLD's properties, in order, then NEW-only names. */
    for (int side = 0; side < 2 && !c->stopped; side++) {
        const struct sl_cnode *s = side ? n : o;
        for (uint32_t i = 0; s && i < s->nprops && !c->stopped && !c->rc; i++) {
            const char *name = s->props[i].name;
            uint32_t nl = s->props[i].len;
            int fo, fn;
            const struct sl_cnode *po = prop(o, name, nl, &fo), *pn = prop(n, name, nl, &fn);
            if (side && fo)
                continue;
            push_key(c, name, nl);
            if (fo && fn) {
                r |= compare_node(c, po, pn, mask);
            } else if (fo) {
                int br = silently(c, po, an, mask);
                r |= emit(c, br, "property removed%s%s",
                          (br & B) ? "; NEW rejects it "
                                     "(additionalProperties)"
                                   : "",
                          (br & F) ? "; NEW lets it hold values OLD's schema for it rejected" : "");
            } else {
                int br = silently(c, ao, pn, mask);
                r |= emit(c, br, "property added%s%s",
                          (br & B) ? "; OLD's additionalProperties let data carry it with values "
                                     "NEW now rejects"
                                   : "",
                          (br & F) ? "; OLD rejects data carrying it" : "");
            }
            c->path.len = len;
        }
    }
    /* Every other name: additionalProperties against additionalProperties. */
    if (!c->stopped && !c->rc) {
        push_text(c, ".*");
        int br = silently(c, ao, an, mask);
        if (br || strcmp(addl_text(ao), addl_text(an)) != 0) {
            if (ao && an && !ao->is_bool && !an->is_bool)
                r |= compare_node(c, ao, an, mask);
            else
                r |= emit(c, br, "additionalProperties changed from %s to %s", addl_text(ao),
                          addl_text(an));
        }
        c->path.len = len;
    }
    /* required */
    for (uint32_t i = 0; n && i < n->nrequired && !c->stopped; i++)
        if (!required(o, n->required[i], n->required_len[i])) {
            push_key(c, n->required[i], n->required_len[i]);
            r |= emit(c, B & mask, "property became required");
            c->path.len = len;
        }
    for (uint32_t i = 0; o && i < o->nrequired && !c->stopped; i++)
        if (!required(n, o->required[i], o->required_len[i])) {
            push_key(c, o->required[i], o->required_len[i]);
            r |= emit(c, F & mask, "property no longer required");
            c->path.len = len;
        }
    return r;
}

static int compare_arrays(struct cmp *c, const struct sl_cnode *o, const struct sl_cnode *n,
                          int mask)
{
    int r = 0;
    int ho = o && (o->has & K_MINITEMS), hn = n && (n->has & K_MINITEMS);
    r |=
        compare_count(c, "minItems", ho, ho ? o->min_items : 0, hn, hn ? n->min_items : 0, 1, mask);
    ho = o && (o->has & K_MAXITEMS), hn = n && (n->has & K_MAXITEMS);
    r |=
        compare_count(c, "maxItems", ho, ho ? o->max_items : 0, hn, hn ? n->max_items : 0, 0, mask);
    const struct sl_cnode *io = o ? o->items : NULL, *in = n ? n->items : NULL;
    if (io || in) {
        size_t len = c->path.len;
        push_text(c, "[*]");
        r |= compare_node(c, io, in, mask);
        c->path.len = len;
    }
    return r;
}

/* The modes a change to keywords of JSON type kind can break, given what each side admits. */
static int kind_mask(int mask, uint32_t eo, uint32_t en, uint32_t kind)
{
    return mask & (((eo & kind) ? B : 0) | ((en & kind) ? F : 0));
}

static size_t memo_slot(const struct cmp *c, const struct sl_cnode *o, const struct sl_cnode *n,
                        int mask, int silent)
{
    uintptr_t h = (uintptr_t)o * 31u + (uintptr_t)n * 17u + (uintptr_t)(mask * 2 + silent);
    h ^= h >> 15;
    size_t i = (size_t)h & (c->capmemo - 1);
    while (c->memo[i].used && !(c->memo[i].o == o && c->memo[i].n == n && c->memo[i].mask == mask &&
                                c->memo[i].silent == silent))
        i = (i + 1) & (c->capmemo - 1);
    return i;
}

static const struct memo *memo_find(const struct cmp *c, const struct sl_cnode *o,
                                    const struct sl_cnode *n, int mask)
{
    if (!c->capmemo)
        return NULL;
    const struct memo *m = &c->memo[memo_slot(c, o, n, mask, c->silent)];
    return m->used ? m : NULL;
}

static void memo_add(struct cmp *c, const struct sl_cnode *o, const struct sl_cnode *n, int mask,
                     int breaks)
{
    if (c->nmemo * 2 >= c->capmemo) {
        size_t cap = c->capmemo ? c->capmemo * 2 : 64;
        struct memo *old = c->memo;
        size_t oldcap = c->capmemo;
        struct memo *m = sl_calloc(cap, sizeof *m);
        if (!m)
            return; /* only a cache: comparing again is slower, not wrong */
        c->memo = m;
        c->capmemo = cap;
        for (size_t i = 0; i < oldcap; i++)
            if (old[i].used)
                c->memo[memo_slot(c, old[i].o, old[i].n, old[i].mask, old[i].silent)] = old[i];
        sl_free(old);
    }
    struct memo *m = &c->memo[memo_slot(c, o, n, mask, c->silent)];
    if (!m->used)
        c->nmemo++;
    *m = (struct memo){o, n, mask, c->silent, 1, breaks};
}

static int compare_node(struct cmp *c, const struct sl_cnode *o, const struct sl_cnode *n, int mask)
{
    o = sl__contract_deref(o);
    n = sl__contract_deref(n);
    if (c->stopped || c->rc)
        return 0;
    if (o && o->is_bool && o->bool_value)
        o = NULL;
    if (n && n->is_bool && n->bool_value)
        n = NULL;
    if (o == n && (o == NULL || o->is_bool))
        return 0;
    if (is_false(o) || is_false(n)) {
        if (is_false(o) && is_false(n))
            return 0;
        if (is_false(o))
            return emit(c, F & mask,
                        "OLD accepted nothing here (schema false); NEW accepts values");
        return emit(c, B & mask, "NEW accepts nothing here (schema false)");
    }
    for (int d = 0; d < c->depth; d++)
        if (c->stack_o[d] == o && c->stack_n[d] == n) {
            c->cuts++;
            return 0; /* already being compared further up (recursive schema) */
        }
    if (c->depth >= MAX_DEPTH)
        return emit(c, (B | F) & mask, "schemas nested too deeply to compare");
    const struct memo *seen = memo_find(c, o, n, mask);
    if (seen)
        return seen->breaks; /* compared before, on another path; listed there */
    if (++c->steps > WORK_BUDGET) {
        if (c->steps == WORK_BUDGET + 1)
            emit(c, (B | F) & mask, "schemas too large to compare; assuming incompatible");
        return (B | F) & mask;
    }
    unsigned long cuts = c->cuts;
    c->stack_o[c->depth] = o;
    c->stack_n[c->depth] = n;
    c->depth++;
    uint32_t eo = sl__contract_effective_types(o), en = sl__contract_effective_types(n);
    int r = compare_types(c, o, n, mask);
    r |= compare_values(c, o, n, mask);
    /* Keywords of a JSON type neither side admits are inert: not even worth listing. */
    int km;
    if ((km = kind_mask(mask, eo, en, T_NUMS))) {
        r |= compare_bound(c, lower(o), lower(n), 1, km);
        r |= compare_bound(c, upper(o), upper(n), 0, km);
    }
    if ((km = kind_mask(mask, eo, en, T_STRING)))
        r |= compare_strings(c, o, n, km);
    if ((km = kind_mask(mask, eo, en, T_ARRAY)))
        r |= compare_arrays(c, o, n, km);
    if ((km = kind_mask(mask, eo, en, T_OBJECT)))
        r |= compare_objects(c, o, n, km);
    const struct sl_cnode *ro = o && (o->has & K_REF) ? o->ref : NULL;
    const struct sl_cnode *rn = n && (n->has & K_REF) ? n->ref : NULL;
    if (ro || rn)
        r |= compare_node(c, ro, rn, mask);
    c->depth--;
    /*
     * A result that leaned on an assumption about a pair further up is not final, so only
     * results that did not are kept.
     */
    if (c->cuts == cuts && !c->stopped)
        memo_add(c, o, n, mask, r);
    return r;
}

sl_rc sl_contract_compare(const struct sl_contract *old, const struct sl_contract *new_,
                          enum sl_compat_mode mode, sl_contract_change_fn fn, void *ctx,
                          int *incompatible, struct sl_error *err)
{
    struct cmp *c = sl_calloc(1, sizeof *c);
    if (!c)
        return sl_error_set(err, SL_ENOMEM, "out of memory comparing contracts");
    c->fn = fn;
    c->ctx = ctx;
    c->mode = (int)mode;
    sl_buf_init(&c->path, 0);
    sl_rc rc = sl_buf_putc(&c->path, '$');
    if (!rc) {
        compare_node(c, old->root, new_->root, B | F);
        rc = c->rc;
    }
    if (incompatible)
        *incompatible = c->incompatible;
    int stopped = c->stopped;
    sl_buf_fini(&c->path);
    sl_free(c->memo);
    sl_free(c);
    if (rc)
        return sl_error_set(err, rc, "out of memory comparing contracts %s and %s",
                            sl_contract_label(old), sl_contract_label(new_));
    if (stopped)
        return sl_error_set(err, SL_ECANCELED, "comparison stopped by the caller");
    return SL_OK;
}
