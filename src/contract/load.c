/*
 * load.c - reading a contract file and compiling it into a tree of nodes.
 *
 * A contract is parsed once with our JSON parser into a tape held by the contract, then
 * compiled top-down into struct sl_cnode (contract_internal.h): one node per schema, its
 * keywords decoded into typed fields, patterns translated and compiled, enum/const
 * values kept as struct sl_value pointing into the contract's own tape. Validation
 * (validate.c) never looks at the schema text again.
 *
 * Strictness is the point: every keyword of an object schema must be one of those
 * contract.h lists, with a value of the right JSON type; anything else is a load error
 * naming the file and the JSON pointer of the offending place ("#/properties/user/oneOf"),
 * because a keyword we ignored would make the contract silently mean less than it says.
 *
 * $ref: only "#" and "#/$defs/NAME" (with ~0 ~1 escapes) resolve; $defs is accepted only
 * at the root. References are resolved after the whole tree is compiled, then every chain
 * of references is followed to check that none returns to where it started: such a cycle
 * applies schemas to the same value forever without consuming input.
 *
 * Threading: loading is single-threaded; the contract it returns is immutable.
 * Ownership: the contract owns its text (sl_malloc), its arena and its compiled regexes.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract/contract_internal.h"
#include "sluice/alloc.h"
#include "sluice/buf.h"
#include "sluice/json.h"

#include "core/ere.h"

#define MAX_CONTRACT_BYTES ((size_t)16 << 20) /* a schema larger than 16 MiB is a mistake */
#define MAX_SCHEMA_DEPTH 64                   /* nesting of schemas inside schemas */

struct pending_ref {
    struct sl_cnode *node;
    const char *target; /* decoded $ref value */
};

struct loader {
    struct sl_contract *c;
    struct sl_error *err;
    struct pending_ref *refs;
    size_t nrefs, caprefs;
    const char **def_names;
    struct sl_cnode **def_nodes;
    size_t ndefs;
};

static const char supported_keywords[] =
    "type, properties, required, additionalProperties, enum, const, minimum, maximum, "
    "exclusiveMinimum, exclusiveMaximum, minLength, maxLength, pattern, format, items, "
    "minItems, maxItems, $ref, $defs, and the annotations $schema, $id, title, "
    "description, $comment, default, examples";

static sl_rc load_error(struct loader *L, const char *spath, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static sl_rc load_error(struct loader *L, const char *spath, const char *fmt, ...)
{
    char msg[SL_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sl_error_set(L->err, SL_ECONFIG, "%s: %s: %s", L->c->file, spath, msg);
}

static sl_rc oom(struct loader *L)
{
    return sl_error_set(L->err, SL_ENOMEM, "%s: out of memory loading the contract", L->c->file);
}

/* spath + "/" + key with JSON pointer escaping (~ -> ~0, / -> ~1). */
static const char *child_path(struct loader *L, const char *spath, const char *key, size_t klen)
{
    size_t extra = 0;
    for (size_t i = 0; i < klen; i++)
        extra += key[i] == '~' || key[i] == '/';
    size_t n = strlen(spath);
    char *p = sl_arena_alloc(&L->c->arena, n + 1 + klen + extra + 1);
    if (!p)
        return NULL;
    memcpy(p, spath, n);
    char *w = p + n;
    *w++ = '/';
    for (size_t i = 0; i < klen; i++) {
        if (key[i] == '~' || key[i] == '/') {
            *w++ = '~';
            *w++ = key[i] == '~' ? '0' : '1';
        } else {
            *w++ = key[i];
        }
    }
    *w = '\0';
    return p;
}

static const char *index_path(struct loader *L, const char *spath, uint32_t i)
{
    return sl_arena_printf(&L->c->arena, "%s/%u", spath, i);
}

static const char *jtype_name(const struct sl_jtok *k)
{
    switch (k->type) {
    case SL_J_NULL:
        return "null";
    case SL_J_TRUE:
    case SL_J_FALSE:
        return "a boolean";
    case SL_J_NUMBER:
        return "a number";
    case SL_J_STRING:
        return "a string";
    case SL_J_ARRAY:
        return "an array";
    default:
        return "an object";
    }
}

/* Decoded, NUL-terminated copy of string token i. */
static const char *tok_str(struct loader *L, uint32_t i, size_t *len)
{
    const char *s;
    size_t n;
    if (sl_json_str(&L->c->tape, i, &L->c->arena, &s, &n))
        return NULL;
    char *z = sl_arena_strndup(&L->c->arena, s, n);
    if (z && len)
        *len = n;
    return z;
}

static const struct {
    const char *name;
    uint32_t bit;
} type_names[] = {
    {"null", T_NULL},     {"boolean", T_BOOLEAN}, {"integer", T_INTEGER}, {"number", T_NUMBER},
    {"string", T_STRING}, {"array", T_ARRAY},     {"object", T_OBJECT},
};

static uint32_t type_bit(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
        if (strlen(type_names[i].name) == n && memcmp(type_names[i].name, s, n) == 0)
            return type_names[i].bit;
    return 0;
}

/* "string or null"; integer is not named when number is present (it adds nothing). */
static const char *types_text(struct sl_arena *a, uint32_t t)
{
    static const uint32_t order[] = {T_OBJECT,  T_ARRAY,   T_STRING, T_NUMBER,
                                     T_INTEGER, T_BOOLEAN, T_NULL};
    static const char *const names[] = {"object",  "array",   "string", "number",
                                        "integer", "boolean", "null"};
    char buf[96];
    size_t w = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < 7; i++) {
        if (!(t & order[i]) || (order[i] == T_INTEGER && (t & T_NUMBER)))
            continue;
        w += (size_t)snprintf(buf + w, sizeof buf - w, "%s%s", w ? " or " : "", names[i]);
    }
    return sl_arena_strdup(a, buf);
}

/* A short JSON rendering of v (truncated to about max bytes, "..." appended). */
static const char *render(struct sl_arena *a, const struct sl_value *v, size_t max)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    if (sl_value_write(v, &b)) {
        sl_buf_fini(&b);
        return NULL;
    }
    size_t n = b.len;
    int cut = 0;
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)b.data[n] & 0xC0) == 0x80)
            n--;
        cut = 1;
    }
    char *s = sl_arena_alloc(a, n + 4);
    if (s) {
        memcpy(s, b.data, n);
        memcpy(s + n, cut ? "..." : "", cut ? 4 : 1);
    }
    sl_buf_fini(&b);
    return s;
}

static int add_regex(struct sl_contract *c, regex_t *re)
{
    if (c->nregex == c->capregex) {
        size_t cap = c->capregex ? c->capregex * 2 : 8;
        regex_t **n = sl_realloc(c->regexes, cap * sizeof *n);
        if (!n)
            return -1;
        c->regexes = n;
        c->capregex = cap;
    }
    c->regexes[c->nregex++] = re;
    return 0;
}

static sl_rc compile(struct loader *L, uint32_t tok, const char *spath, int depth,
                     struct sl_cnode **out);

/* A non-negative integer keyword value (1.0 counts). */
static sl_rc get_count(struct loader *L, uint32_t vt, const char *spath, const char *kw,
                       uint64_t *out)
{
    const struct sl_jtok *k = &L->c->tape.tok[vt];
    if (k->type == SL_J_NUMBER) {
        double d = sl_json_num_to_double(L->c->tape.text + k->off, k->len);
        if (d >= 0 && d == floor(d) && d <= 9007199254740992.0) {
            *out = (uint64_t)d;
            return SL_OK;
        }
    }
    return load_error(L, spath, "%s must be a non-negative integer, not %.*s", kw,
                      (int)(k->len > 60 ? 60 : k->len), L->c->tape.text + k->off);
}

static sl_rc get_number(struct loader *L, uint32_t vt, const char *spath, const char *kw,
                        double *out)
{
    const struct sl_jtok *k = &L->c->tape.tok[vt];
    if (k->type != SL_J_NUMBER)
        return load_error(L, spath, "%s must be a number, not %s", kw, jtype_name(k));
    *out = sl_json_num_to_double(L->c->tape.text + k->off, k->len);
    if (!isfinite(*out))
        return load_error(L, spath, "%s: %.*s is out of the range of a double", kw, (int)k->len,
                          L->c->tape.text + k->off);
    return SL_OK;
}

static sl_rc compile_type(struct loader *L, struct sl_cnode *n, uint32_t vt, const char *spath)
{
    const struct sl_tape *t = &L->c->tape;
    const struct sl_jtok *k = &t->tok[vt];
    uint32_t bits = 0;
    if (k->type == SL_J_STRING) {
        size_t len;
        const char *s = tok_str(L, vt, &len);
        if (!s)
            return oom(L);
        if (!(bits = type_bit(s, len)))
            return load_error(L, spath,
                              "unknown type \"%s\"; the types are null, boolean, integer, "
                              "number, string, array and object",
                              s);
    } else if (k->type == SL_J_ARRAY && k->count > 0) {
        uint32_t i = vt + 1;
        for (uint32_t e = 0; e < k->count; e++, i = t->tok[i].next) {
            const char *ep = index_path(L, spath, e);
            if (!ep)
                return oom(L);
            if (t->tok[i].type != SL_J_STRING)
                return load_error(L, ep, "type names must be strings, not %s",
                                  jtype_name(&t->tok[i]));
            size_t len;
            const char *s = tok_str(L, i, &len);
            if (!s)
                return oom(L);
            uint32_t b = type_bit(s, len);
            if (!b)
                return load_error(L, ep,
                                  "unknown type \"%s\"; the types are null, boolean, integer, "
                                  "number, string, array and object",
                                  s);
            if (bits & b)
                return load_error(L, ep, "type \"%s\" is listed twice", s);
            bits |= b;
        }
    } else {
        return load_error(L, spath,
                          "type must be a type name or a non-empty array of type names, not %s",
                          jtype_name(k));
    }
    n->types = bits;
    n->has |= K_TYPE;
    if (!(n->types_text = types_text(&L->c->arena, bits)))
        return oom(L);
    return SL_OK;
}

static sl_rc compile_enum(struct loader *L, struct sl_cnode *n, uint32_t vt, const char *spath)
{
    const struct sl_tape *t = &L->c->tape;
    const struct sl_jtok *k = &t->tok[vt];
    if (k->type != SL_J_ARRAY || k->count == 0)
        return load_error(L, spath, "enum must be a non-empty array of values, not %s",
                          k->type == SL_J_ARRAY ? "an empty array" : jtype_name(k));
    n->enumv = sl_arena_alloc(&L->c->arena, k->count * sizeof *n->enumv);
    if (!n->enumv)
        return oom(L);
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_rc rc = sl_buf_puts(&b, "one of [");
    uint32_t i = vt + 1;
    for (uint32_t e = 0; e < k->count && !rc; e++, i = t->tok[i].next) {
        if ((rc = sl_value_from_tape(t, i, &L->c->arena, &n->enumv[e])))
            break;
        if (b.len < 120) {
            if (e)
                rc = sl_buf_puts(&b, ", ");
            if (!rc)
                rc = sl_value_write(&n->enumv[e], &b);
        } else if (e + 1 == k->count) {
            rc = sl_buf_puts(&b, ", ...");
        }
    }
    if (!rc)
        rc = sl_buf_putc(&b, ']');
    if (!rc) {
        n->nenum = k->count;
        n->has |= K_ENUM;
        n->enum_text = sl_arena_strndup(&L->c->arena, b.data, b.len);
        if (!n->enum_text)
            rc = SL_ENOMEM;
    }
    sl_buf_fini(&b);
    return rc ? oom(L) : SL_OK;
}

static sl_rc compile_pattern(struct loader *L, struct sl_cnode *n, uint32_t vt, const char *spath)
{
    const struct sl_jtok *k = &L->c->tape.tok[vt];
    if (k->type != SL_J_STRING)
        return load_error(L, spath, "pattern must be a string, not %s", jtype_name(k));
    size_t len;
    const char *p = tok_str(L, vt, &len);
    if (!p)
        return oom(L);
    char msg[256], *ere;
    int chars = 0;
    int trc = sl__contract_pattern_translate(p, len, &L->c->arena, &ere, &chars, msg, sizeof msg);
    if (trc < 0)
        return oom(L);
    if (trc > 0)
        return load_error(L, spath,
                          "pattern \"%s\": %s (patterns are the subset of JSON Schema "
                          "regular expressions that POSIX ERE matches exactly; see "
                          "docs/contracts.md)",
                          p, msg);
    char big[160];
    if (sl__ere_check(ere, strlen(ere), big, sizeof big))
        return load_error(L, spath, "pattern \"%s\" is too complex to compile: %s", p, big);
    regex_t *re = sl_arena_calloc(&L->c->arena, sizeof *re);
    if (!re)
        return oom(L);
    int rrc = sl__contract_regcomp(re, ere, chars);
    if (rrc) {
        char why[160];
        regerror(rrc, re, why, sizeof why);
        return load_error(L, spath, "pattern \"%s\" does not compile as POSIX ERE: %s", p, why);
    }
    if (add_regex(L->c, re)) {
        regfree(re);
        return oom(L);
    }
    n->pattern = p;
    n->re = re;
    n->re_chars = (uint8_t)chars;
    if (!chars && sl__contract_fastre_compile(p, len, &L->c->arena, &n->fast) < 0)
        return oom(L);
    n->has |= K_PATTERN;
    return SL_OK;
}

static sl_rc compile_format(struct loader *L, struct sl_cnode *n, uint32_t vt, const char *spath)
{
    const struct sl_jtok *k = &L->c->tape.tok[vt];
    if (k->type != SL_J_STRING)
        return load_error(L, spath, "format must be a string, not %s", jtype_name(k));
    const char *f = tok_str(L, vt, NULL);
    if (!f)
        return oom(L);
    for (int i = F_DATE_TIME; i <= F_URI; i++)
        if (strcmp(f, sl__contract_format_name(i)) == 0) {
            n->format = (uint8_t)i;
            n->has |= K_FORMAT;
            return SL_OK;
        }
    return load_error(L, spath,
                      "format \"%s\" is not supported; the formats are date-time, date, email, "
                      "uuid, ipv4 and uri",
                      f);
}

static sl_rc compile_properties(struct loader *L, struct sl_cnode *n, uint32_t vt,
                                const char *spath, int depth)
{
    const struct sl_tape *t = &L->c->tape;
    const struct sl_jtok *k = &t->tok[vt];
    if (k->type != SL_J_OBJECT)
        return load_error(L, spath, "properties must be an object of schemas, not %s",
                          jtype_name(k));
    n->props = sl_arena_calloc(&L->c->arena, (k->count ? k->count : 1) * sizeof *n->props);
    if (!n->props)
        return oom(L);
    uint32_t i = vt + 1;
    for (uint32_t m = 0; m < k->count; m++, i = t->tok[i + 1].next) {
        size_t klen;
        const char *key = tok_str(L, i, &klen);
        const char *pp = key ? child_path(L, spath, key, klen) : NULL;
        if (!pp)
            return oom(L);
        for (uint32_t j = 0; j < m; j++)
            if (n->props[j].len == klen && memcmp(n->props[j].name, key, klen) == 0)
                return load_error(L, pp, "property \"%s\" is defined twice", key);
        n->props[m].name = key;
        n->props[m].len = (uint32_t)klen;
        sl_rc rc = compile(L, i + 1, pp, depth + 1, &n->props[m].schema);
        if (rc)
            return rc;
    }
    n->nprops = k->count;
    n->has |= K_PROPERTIES;
    return SL_OK;
}

static sl_rc compile_required(struct loader *L, struct sl_cnode *n, uint32_t vt, const char *spath)
{
    const struct sl_tape *t = &L->c->tape;
    const struct sl_jtok *k = &t->tok[vt];
    if (k->type != SL_J_ARRAY)
        return load_error(L, spath, "required must be an array of property names, not %s",
                          jtype_name(k));
    uint32_t cnt = k->count ? k->count : 1;
    n->required = sl_arena_alloc(&L->c->arena, cnt * sizeof *n->required);
    n->required_len = sl_arena_alloc(&L->c->arena, cnt * sizeof *n->required_len);
    if (!n->required || !n->required_len)
        return oom(L);
    uint32_t i = vt + 1;
    for (uint32_t e = 0; e < k->count; e++, i = t->tok[i].next) {
        const char *ep = index_path(L, spath, e);
        if (!ep)
            return oom(L);
        if (t->tok[i].type != SL_J_STRING)
            return load_error(L, ep, "required names must be strings, not %s",
                              jtype_name(&t->tok[i]));
        size_t len;
        const char *s = tok_str(L, i, &len);
        if (!s)
            return oom(L);
        for (uint32_t j = 0; j < e; j++)
            if (n->required_len[j] == len && memcmp(n->required[j], s, len) == 0)
                return load_error(L, ep, "\"%s\" is listed twice in required", s);
        n->required[e] = s;
        n->required_len[e] = (uint32_t)len;
    }
    n->nrequired = k->count;
    n->has |= K_REQUIRED;
    return SL_OK;
}

static sl_rc note_ref(struct loader *L, struct sl_cnode *n, uint32_t vt, const char *spath)
{
    const struct sl_jtok *k = &L->c->tape.tok[vt];
    if (k->type != SL_J_STRING)
        return load_error(L, spath, "$ref must be a string, not %s", jtype_name(k));
    const char *s = tok_str(L, vt, NULL);
    if (!s)
        return oom(L);
    if (L->nrefs == L->caprefs) {
        size_t cap = L->caprefs ? L->caprefs * 2 : 16;
        struct pending_ref *r = sl_realloc(L->refs, cap * sizeof *r);
        if (!r)
            return oom(L);
        L->refs = r;
        L->caprefs = cap;
    }
    L->refs[L->nrefs].node = n;
    L->refs[L->nrefs].target = s;
    L->nrefs++;
    n->ref_text = s;
    n->has |= K_REF;
    return SL_OK;
}

static sl_rc compile_defs(struct loader *L, uint32_t vt, const char *spath, int depth)
{
    const struct sl_tape *t = &L->c->tape;
    const struct sl_jtok *k = &t->tok[vt];
    if (k->type != SL_J_OBJECT)
        return load_error(L, spath, "$defs must be an object of schemas, not %s", jtype_name(k));
    size_t cnt = k->count ? k->count : 1;
    L->def_names = sl_arena_alloc(&L->c->arena, cnt * sizeof *L->def_names);
    L->def_nodes = sl_arena_alloc(&L->c->arena, cnt * sizeof *L->def_nodes);
    if (!L->def_names || !L->def_nodes)
        return oom(L);
    uint32_t i = vt + 1;
    for (uint32_t m = 0; m < k->count; m++, i = t->tok[i + 1].next) {
        size_t klen;
        const char *key = tok_str(L, i, &klen);
        const char *pp = key ? child_path(L, spath, key, klen) : NULL;
        if (!pp)
            return oom(L);
        L->def_names[m] = key;
        sl_rc rc = compile(L, i + 1, pp, depth + 1, &L->def_nodes[m]);
        if (rc)
            return rc;
        L->ndefs = m + 1;
    }
    return SL_OK;
}

static int annotation(const char *kw)
{
    return strcmp(kw, "title") == 0 || strcmp(kw, "description") == 0 ||
           strcmp(kw, "$comment") == 0 || strcmp(kw, "default") == 0 ||
           strcmp(kw, "examples") == 0 || strcmp(kw, "$schema") == 0;
}

/* Keywords of JSON Schema we know and deliberately leave out: a more specific message. */
static int known_unsupported(const char *kw)
{
    static const char *const kws[] = {"oneOf",
                                      "anyOf",
                                      "allOf",
                                      "not",
                                      "if",
                                      "then",
                                      "else",
                                      "dependentRequired",
                                      "dependentSchemas",
                                      "prefixItems",
                                      "contains",
                                      "minContains",
                                      "maxContains",
                                      "uniqueItems",
                                      "patternProperties",
                                      "propertyNames",
                                      "minProperties",
                                      "maxProperties",
                                      "unevaluatedItems",
                                      "unevaluatedProperties",
                                      "multipleOf",
                                      "$anchor",
                                      "$dynamicRef",
                                      "$dynamicAnchor",
                                      "$vocabulary",
                                      "definitions",
                                      "contentEncoding",
                                      "contentMediaType",
                                      "contentSchema",
                                      "readOnly",
                                      "writeOnly",
                                      "deprecated",
                                      "additionalItems",
                                      "dependencies",
                                      "$recursiveRef",
                                      "$recursiveAnchor"};
    for (size_t i = 0; i < sizeof kws / sizeof kws[0]; i++)
        if (strcmp(kw, kws[i]) == 0)
            return 1;
    return 0;
}

static sl_rc compile_keyword(struct loader *L, struct sl_cnode *n, const char *kw, uint32_t vt,
                             const char *kp, int depth, int is_root)
{
    const struct sl_tape *t = &L->c->tape;
    const struct sl_jtok *v = &t->tok[vt];
    if (strcmp(kw, "type") == 0)
        return compile_type(L, n, vt, kp);
    if (strcmp(kw, "properties") == 0)
        return compile_properties(L, n, vt, kp, depth);
    if (strcmp(kw, "required") == 0)
        return compile_required(L, n, vt, kp);
    if (strcmp(kw, "additionalProperties") == 0) {
        n->has |= K_ADDITIONAL;
        return compile(L, vt, kp, depth + 1, &n->additional);
    }
    if (strcmp(kw, "items") == 0) {
        if (v->type == SL_J_ARRAY)
            return load_error(L, kp,
                              "items must be one schema (the array form is the older tuple "
                              "syntax, prefixItems in 2020-12, which is not supported)");
        n->has |= K_ITEMS;
        return compile(L, vt, kp, depth + 1, &n->items);
    }
    if (strcmp(kw, "enum") == 0)
        return compile_enum(L, n, vt, kp);
    if (strcmp(kw, "const") == 0) {
        if (sl_value_from_tape(t, vt, &L->c->arena, &n->constv) ||
            !(n->const_text = render(&L->c->arena, &n->constv, 100)))
            return oom(L);
        n->has |= K_CONST;
        return SL_OK;
    }
    if (strcmp(kw, "minimum") == 0) {
        n->has |= K_MINIMUM;
        return get_number(L, vt, kp, kw, &n->minimum);
    }
    if (strcmp(kw, "maximum") == 0) {
        n->has |= K_MAXIMUM;
        return get_number(L, vt, kp, kw, &n->maximum);
    }
    if (strcmp(kw, "exclusiveMinimum") == 0) {
        if (v->type == SL_J_TRUE || v->type == SL_J_FALSE)
            return load_error(L, kp,
                              "exclusiveMinimum must be a number (the boolean form is draft-04 "
                              "syntax; write exclusiveMinimum: N instead of minimum: N)");
        n->has |= K_XMINIMUM;
        return get_number(L, vt, kp, kw, &n->xminimum);
    }
    if (strcmp(kw, "exclusiveMaximum") == 0) {
        if (v->type == SL_J_TRUE || v->type == SL_J_FALSE)
            return load_error(L, kp,
                              "exclusiveMaximum must be a number (the boolean form is draft-04 "
                              "syntax; write exclusiveMaximum: N instead of maximum: N)");
        n->has |= K_XMAXIMUM;
        return get_number(L, vt, kp, kw, &n->xmaximum);
    }
    if (strcmp(kw, "minLength") == 0) {
        n->has |= K_MINLENGTH;
        return get_count(L, vt, kp, kw, &n->min_length);
    }
    if (strcmp(kw, "maxLength") == 0) {
        n->has |= K_MAXLENGTH;
        return get_count(L, vt, kp, kw, &n->max_length);
    }
    if (strcmp(kw, "minItems") == 0) {
        n->has |= K_MINITEMS;
        return get_count(L, vt, kp, kw, &n->min_items);
    }
    if (strcmp(kw, "maxItems") == 0) {
        n->has |= K_MAXITEMS;
        return get_count(L, vt, kp, kw, &n->max_items);
    }
    if (strcmp(kw, "pattern") == 0)
        return compile_pattern(L, n, vt, kp);
    if (strcmp(kw, "format") == 0)
        return compile_format(L, n, vt, kp);
    if (strcmp(kw, "$ref") == 0)
        return note_ref(L, n, vt, kp);
    if (strcmp(kw, "$defs") == 0) {
        if (!is_root)
            return load_error(L, kp,
                              "$defs is supported only at the root of the contract (where "
                              "\"#/$defs/NAME\" refers)");
        return compile_defs(L, vt, kp, depth);
    }
    if (strcmp(kw, "$id") == 0 || strcmp(kw, "version") == 0) {
        if (!is_root)
            return load_error(L, kp, "%s is allowed only at the root of the contract", kw);
        return SL_OK; /* read by sl_contract_load_mem */
    }
    if (annotation(kw)) {
        if ((strcmp(kw, "title") == 0 || strcmp(kw, "description") == 0 ||
             strcmp(kw, "$comment") == 0 || strcmp(kw, "$schema") == 0) &&
            v->type != SL_J_STRING)
            return load_error(L, kp, "%s must be a string, not %s", kw, jtype_name(v));
        if (strcmp(kw, "examples") == 0 && v->type != SL_J_ARRAY)
            return load_error(L, kp, "examples must be an array, not %s", jtype_name(v));
        return SL_OK;
    }
    if (known_unsupported(kw))
        return load_error(L, kp,
                          "keyword \"%s\" is not supported by sluice contracts; supported: %s", kw,
                          supported_keywords);
    return load_error(L, kp,
                      "unknown keyword \"%s\" (a contract never ignores a keyword); "
                      "supported: %s",
                      kw, supported_keywords);
}

static sl_rc compile(struct loader *L, uint32_t tok, const char *spath, int depth,
                     struct sl_cnode **out)
{
    const struct sl_tape *t = &L->c->tape;
    const struct sl_jtok *k = &t->tok[tok];
    struct sl_cnode *n = sl_arena_calloc(&L->c->arena, sizeof *n);
    if (!n)
        return oom(L);
    n->spath = spath;
    *out = n;
    if (depth > MAX_SCHEMA_DEPTH)
        return load_error(L, spath, "schemas nested deeper than %d levels", MAX_SCHEMA_DEPTH);
    if (k->type == SL_J_TRUE || k->type == SL_J_FALSE) {
        n->is_bool = 1;
        n->bool_value = k->type == SL_J_TRUE;
        return SL_OK;
    }
    if (k->type != SL_J_OBJECT)
        return load_error(L, spath, "a schema must be an object or a boolean, not %s",
                          jtype_name(k));
    uint32_t i = tok + 1;
    for (uint32_t m = 0; m < k->count; m++, i = t->tok[i + 1].next) {
        size_t klen;
        const char *kw = tok_str(L, i, &klen);
        const char *kp = kw ? child_path(L, spath, kw, klen) : NULL;
        if (!kp)
            return oom(L);
        if (strlen(kw) != klen)
            return load_error(L, kp, "a keyword must not contain a NUL character");
        for (uint32_t j = tok + 1, p = 0; p < m; p++, j = t->tok[j + 1].next) {
            size_t plen;
            const char *prev = tok_str(L, j, &plen);
            if (!prev)
                return oom(L);
            if (plen == klen && memcmp(prev, kw, klen) == 0)
                return load_error(L, kp, "keyword \"%s\" appears twice", kw);
        }
        sl_rc rc = compile_keyword(L, n, kw, i + 1, kp, depth, depth == 0 && tok == 0);
        if (rc)
            return rc;
    }
    /* Link properties to required names so validation marks them in one pass. */
    for (uint32_t p = 0; p < n->nprops; p++)
        n->props[p].req = -1;
    for (uint32_t r = 0; r < n->nrequired; r++) {
        uint32_t p = 0;
        while (p < n->nprops &&
               !(n->props[p].len == n->required_len[r] &&
                 memcmp(n->props[p].name, n->required[r], n->required_len[r]) == 0))
            p++;
        if (p < n->nprops)
            n->props[p].req = (int32_t)r;
        else
            n->req_outside = 1;
    }
    return SL_OK;
}

/* Decode a JSON pointer segment (~1 -> /, ~0 -> ~). 0 when it holds a bad escape. */
static int unescape_pointer(const char *s, char *out)
{
    for (; *s; s++) {
        if (*s == '~') {
            if (s[1] == '0')
                *out++ = '~';
            else if (s[1] == '1')
                *out++ = '/';
            else
                return 0;
            s++;
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
    return 1;
}

static sl_rc resolve_refs(struct loader *L)
{
    for (size_t r = 0; r < L->nrefs; r++) {
        struct sl_cnode *n = L->refs[r].node;
        const char *target = L->refs[r].target;
        const char *rp = child_path(L, n->spath, "$ref", 4);
        if (!rp)
            return oom(L);
        if (strcmp(target, "#") == 0) {
            n->ref = L->c->root;
            continue;
        }
        if (strncmp(target, "#/$defs/", 8) != 0 || strchr(target + 8, '/') || target[8] == '\0')
            return load_error(L, rp,
                              "$ref \"%s\" is not supported: only local references \"#\" and "
                              "\"#/$defs/NAME\" are",
                              target);
        char *name = sl_arena_alloc(&L->c->arena, strlen(target + 8) + 1);
        if (!name)
            return oom(L);
        if (!unescape_pointer(target + 8, name))
            return load_error(L, rp, "$ref \"%s\": bad ~ escape (only ~0 and ~1 exist)", target);
        for (size_t d = 0; d < L->ndefs && !n->ref; d++)
            if (strcmp(L->def_names[d], name) == 0)
                n->ref = L->def_nodes[d];
        if (!n->ref)
            return load_error(L, rp, "$ref \"%s\": there is no $defs entry \"%s\"", target, name);
    }
    /* Invariant 3: a chain of refs longer than the number of refs is a cycle. */
    for (size_t r = 0; r < L->nrefs; r++) {
        const struct sl_cnode *n = L->refs[r].node;
        size_t steps = 0;
        while (n && (n->has & K_REF) && steps <= L->nrefs) {
            n = n->ref;
            steps++;
        }
        if (steps > L->nrefs)
            return load_error(L, L->refs[r].node->spath,
                              "$ref \"%s\" leads back to itself through references alone; "
                              "such a schema would be applied to the same value forever",
                              L->refs[r].target);
    }
    return SL_OK;
}

const struct sl_cnode *sl__contract_deref(const struct sl_cnode *n)
{
    while (n && n->has == K_REF && n->ref)
        n = n->ref;
    return n;
}

static uint32_t value_type_bits(const struct sl_value *v)
{
    switch (v->type) {
    case SL_V_NULL:
        return T_NULL;
    case SL_V_BOOL:
        return T_BOOLEAN;
    case SL_V_NUMBER:
        return v->is_int ? T_NUMBER | T_INTEGER : T_NUMBER;
    case SL_V_STRING:
        return T_STRING;
    case SL_V_ARRAY:
        return T_ARRAY;
    default:
        return T_OBJECT;
    }
}

static uint32_t effective_types(const struct sl_cnode *n, int depth)
{
    if (!n || depth > 64)
        return T_ALL;
    if (n->is_bool)
        return n->bool_value ? T_ALL : 0;
    uint32_t t = T_ALL;
    if (n->has & K_TYPE) {
        t = n->types;
        if (t & T_NUMBER)
            t |= T_INTEGER;
    }
    if (n->has & K_ENUM) {
        uint32_t e = 0;
        for (uint32_t i = 0; i < n->nenum; i++)
            e |= value_type_bits(&n->enumv[i]);
        t &= e;
    }
    if (n->has & K_CONST)
        t &= value_type_bits(&n->constv);
    if (n->has & K_REF)
        t &= effective_types(n->ref, depth + 1);
    return t;
}

uint32_t sl__contract_effective_types(const struct sl_cnode *n)
{
    return effective_types(n, 0);
}

static sl_rc build_fields(struct loader *L)
{
    struct sl_contract *c = L->c;
    const struct sl_cnode *root = sl__contract_deref(c->root);
    if (!root || root->is_bool || !(root->has & K_PROPERTIES))
        return SL_OK;
    c->fields = sl_arena_calloc(&c->arena, (root->nprops ? root->nprops : 1) * sizeof *c->fields);
    if (!c->fields)
        return oom(L);
    for (uint32_t i = 0; i < root->nprops; i++) {
        struct sl_contract_field *f = &c->fields[i];
        f->name = root->props[i].name;
        uint32_t t = sl__contract_effective_types(root->props[i].schema);
        f->nullable = (t & T_NULL) != 0;
        uint32_t nn = t & ~(uint32_t)T_NULL;
        if (nn == T_INTEGER)
            f->type = "integer";
        else if (nn == (T_INTEGER | T_NUMBER) || nn == T_NUMBER)
            f->type = "number";
        else if (nn == T_STRING)
            f->type = "string";
        else if (nn == T_BOOLEAN)
            f->type = "boolean";
        else if (nn == T_OBJECT)
            f->type = "object";
        else if (nn == T_ARRAY)
            f->type = "array";
        else
            f->type = "any";
        for (uint32_t r = 0; r < root->nrequired; r++)
            if (strcmp(root->required[r], f->name) == 0)
                f->required = 1;
    }
    c->nfields = root->nprops;
    return SL_OK;
}

/* $id and version from the root object. */
static sl_rc read_identity(struct loader *L)
{
    struct sl_contract *c = L->c;
    const struct sl_tape *t = &c->tape;
    if (t->tok[0].type != SL_J_OBJECT)
        return load_error(L, "#", "a contract must be a JSON object with $id and version, not %s",
                          jtype_name(&t->tok[0]));
    uint32_t i = 1;
    for (uint32_t m = 0; m < t->tok[0].count; m++, i = t->tok[i + 1].next) {
        size_t klen;
        const char *kw = tok_str(L, i, &klen);
        if (!kw)
            return oom(L);
        const struct sl_jtok *v = &t->tok[i + 1];
        if (strcmp(kw, "$id") == 0) {
            if (v->type != SL_J_STRING)
                return load_error(L, "#/$id", "$id must be a string (the contract's name)");
            size_t n;
            if (!(c->id = tok_str(L, i + 1, &n)))
                return oom(L);
            if (n == 0 || strlen(c->id) != n)
                return load_error(L, "#/$id", "$id must be a non-empty name");
        } else if (strcmp(kw, "version") == 0) {
            if (v->type == SL_J_STRING) {
                size_t n;
                if (!(c->version = tok_str(L, i + 1, &n)))
                    return oom(L);
                if (n == 0 || strlen(c->version) != n)
                    return load_error(L, "#/version", "version must not be empty");
            } else if (v->type == SL_J_NUMBER && (v->flags & SL_JTOK_INTEGER)) {
                if (!(c->version = sl_arena_strndup(&c->arena, t->text + v->off, v->len)))
                    return oom(L);
            } else {
                return load_error(L, "#/version", "version must be a string or an integer, not %s",
                                  jtype_name(v));
            }
        }
    }
    if (!c->id)
        return load_error(L, "#",
                          "missing $id: every contract needs \"$id\" (its name) and \"version\"");
    if (!c->version)
        return load_error(L, "#",
                          "missing version: every contract needs \"$id\" (its name) and "
                          "\"version\" (a string or an integer)");
    if (!(c->label = sl_arena_printf(&c->arena, "%s@%s", c->id, c->version)))
        return oom(L);
    return SL_OK;
}

void sl_contract_destroy(struct sl_contract *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nregex; i++)
        regfree(c->regexes[i]);
    sl_free(c->regexes);
    sl_free(c->text);
    sl_arena_fini(&c->arena);
    sl_free(c);
}

sl_rc sl_contract_load_mem(const char *text, size_t n, const char *name, struct sl_contract **out,
                           struct sl_error *err)
{
    if (!name)
        name = "contract";
    if (n > MAX_CONTRACT_BYTES)
        return sl_error_set(err, SL_ELIMIT, "%s: the contract is %zu bytes; the limit is %zu", name,
                            n, MAX_CONTRACT_BYTES);
    struct sl_contract *c = sl_calloc(1, sizeof *c);
    if (!c)
        return sl_error_set(err, SL_ENOMEM, "%s: out of memory loading the contract", name);
    sl_arena_init(&c->arena, 16384);
    struct loader L = {.c = c, .err = err};
    struct sl_json_parser *p = NULL;
    sl_rc rc;
    c->file = sl_arena_strdup(&c->arena, name);
    c->text = sl_malloc(n + 1);
    if (!c->file || !c->text) {
        c->file = name;
        rc = oom(&L);
        goto fail;
    }
    memcpy(c->text, text, n);
    c->text[n] = '\0';
    c->text_len = n;
    if ((rc = sl_json_parser_create(&p))) {
        rc = oom(&L);
        goto fail;
    }
    struct sl_json_error jerr;
    rc = sl_json_parse(p, c->text, n, 0, &c->arena, &c->tape, &jerr);
    sl_json_parser_destroy(p);
    if (rc == SL_ENOMEM) {
        rc = oom(&L);
        goto fail;
    }
    if (rc) {
        size_t line = 1, col = 1;
        for (size_t i = 0; i < jerr.offset && i < n; i++, col++)
            if (c->text[i] == '\n') {
                line++;
                col = 0;
            }
        rc = sl_error_set(err, SL_EPARSE, "%s:%zu:%zu: not valid JSON: %s", name, line, col,
                          jerr.msg);
        goto fail;
    }
    if ((rc = read_identity(&L)) || (rc = compile(&L, 0, "#", 0, &c->root)) ||
        (rc = resolve_refs(&L)) || (rc = build_fields(&L)))
        goto fail;
    sl_free(L.refs);
    *out = c;
    return SL_OK;
fail:
    sl_free(L.refs);
    sl_contract_destroy(c);
    return rc;
}

sl_rc sl_contract_load(const char *path, struct sl_contract **out, struct sl_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return sl_error_sys(err, errno == ENOENT ? SL_ENOENT : SL_EIO, errno,
                            "cannot open contract %s", path);
    struct sl_buf b;
    sl_buf_init(&b, MAX_CONTRACT_BYTES + 1);
    char chunk[65536];
    size_t got;
    sl_rc rc = SL_OK;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
        if ((rc = sl_buf_append(&b, chunk, got)))
            break;
    int rerr = ferror(f);
    fclose(f);
    if (rc == SL_ELIMIT)
        rc = sl_error_set(err, SL_ELIMIT, "%s: the contract is larger than %zu bytes", path,
                          MAX_CONTRACT_BYTES);
    else if (rc)
        rc = sl_error_set(err, rc, "%s: out of memory reading the contract", path);
    else if (rerr)
        rc = sl_error_set(err, SL_EIO, "%s: read error", path);
    else
        rc = sl_contract_load_mem(b.data ? b.data : "", b.len, path, out, err);
    sl_buf_fini(&b);
    return rc;
}

const char *sl_contract_name(const struct sl_contract *c)
{
    return c->id;
}

const char *sl_contract_version(const struct sl_contract *c)
{
    return c->version;
}

const char *sl_contract_label(const struct sl_contract *c)
{
    return c->label;
}

const char *sl_contract_text(const struct sl_contract *c, size_t *len)
{
    if (len)
        *len = c->text_len;
    return c->text;
}

size_t sl_contract_fields(const struct sl_contract *c, const struct sl_contract_field **out)
{
    *out = c->fields;
    return c->nfields;
}
