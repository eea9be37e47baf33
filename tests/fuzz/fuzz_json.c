/*
 * fuzz_json.c - fuzz target for the JSON parser, string/number conversions and records.
 *
 * For any input: parsing must not crash, and an error offset must lie within the input.
 * When the input parses, every property the rest of sluice relies on is checked and a
 * violation aborts:
 *   - the tape invariants of json.h (next links, counts, spans inside the text, keys are
 *     strings, containers bracketed);
 *   - the whole input is valid UTF-8 (only strings may hold non-ASCII bytes);
 *   - every string decodes to valid UTF-8 no longer than its escaped form;
 *   - re-serializing the tape (decode + re-escape) gives JSON that parses, and doing it
 *     again gives the same bytes (a fixed point);
 *   - for an object root, record edits (set, nested set, delete) produce output that
 *     parses, and a record without edits writes its input byte for byte;
 *   - duplicate keys: sl_record_foreach yields each key once, with the value a lookup of
 *     that key returns (the last occurrence); parsing with SL_JSON_REJECT_DUPLICATES
 *     fails with rule duplicate_key exactly when some object repeats a key, and never when
 *     the root's foreach saw every member.
 * A failed parse must name a rule of json.h's vocabulary. The input is also compiled as a
 * field path, to exercise that parser too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/arena.h"
#include "sluice/buf.h"
#include "sluice/json.h"
#include "sluice/record.h"
#include "sluice/value.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sl_json_parser *parser;

#define ASSERT(c)                                                                                  \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

/* Check the subtree at i; returns the index after it. */
static uint32_t check_tok(const struct sl_tape *t, uint32_t i, struct sl_arena *a)
{
    ASSERT(i < t->ntok);
    const struct sl_jtok *k = &t->tok[i];
    ASSERT(k->len > 0 && (uint64_t)k->off + k->len <= t->len);
    const char *s = t->text + k->off;
    switch (k->type) {
    case SL_J_OBJECT:
    case SL_J_ARRAY: {
        int obj = k->type == SL_J_OBJECT;
        ASSERT(s[0] == (obj ? '{' : '[') && s[k->len - 1] == (obj ? '}' : ']'));
        uint32_t j = i + 1;
        for (uint32_t m = 0; m < k->count; m++) {
            if (obj) {
                ASSERT(t->tok[j].type == SL_J_STRING);
                j = check_tok(t, j, a);
            }
            j = check_tok(t, j, a);
        }
        ASSERT(j == k->next);
        return j;
    }
    case SL_J_STRING: {
        const char *d;
        size_t n;
        ASSERT(k->len >= 2 && s[0] == '"' && s[k->len - 1] == '"');
        ASSERT(k->next == i + 1 && k->count == 0);
        ASSERT(sl_json_str(t, i, a, &d, &n) == SL_OK);
        ASSERT(n <= k->len - 2);
        ASSERT(sl_utf8_valid(d, n, NULL));
        ASSERT(!!memchr(s, '\\', k->len) == !!(k->flags & SL_JTOK_ESCAPED));
        return i + 1;
    }
    case SL_J_NUMBER: {
        int64_t v;
        double d = sl_json_num_to_double(s, k->len);
        int is_i = sl_json_num_to_i64(s, k->len, &v);
        char *z = malloc((size_t)k->len + 1);
        ASSERT(z != NULL);
        memcpy(z, s, k->len);
        z[k->len] = 0;
        double ref = strtod(z, NULL);
        free(z);
        ASSERT(memcmp(&ref, &d, sizeof d) == 0); /* bit-exact, -0 included */
        ASSERT(!is_i || (k->flags & SL_JTOK_INTEGER));
        if (is_i)
            ASSERT(d == (double)v || v > (1LL << 53) || v < -(1LL << 53));
        struct sl_buf b;
        struct sl_tape nt;
        struct sl_json_error e;
        sl_buf_init(&b, 0);
        ASSERT(sl_json_write_double(&b, d) == SL_OK);
        ASSERT(sl_json_parse(parser, b.data, b.len, 0, a, &nt, &e) == SL_OK);
        if (nt.tok[0].type == SL_J_NUMBER)
            ASSERT(sl_json_num_to_double(b.data, b.len) == d || d != d);
        sl_buf_fini(&b);
        return i + 1;
    }
    default:
        ASSERT(k->next == i + 1);
        ASSERT(k->len == (k->type == SL_J_FALSE ? 5u : 4u));
        return i + 1;
    }
}

/* Decode-and-re-escape serialization of the subtree at i. */
static uint32_t reserialize(const struct sl_tape *t, uint32_t i, struct sl_arena *a,
                            struct sl_buf *b)
{
    const struct sl_jtok *k = &t->tok[i];
    if (k->type == SL_J_STRING) {
        const char *d;
        size_t n;
        ASSERT(sl_json_str(t, i, a, &d, &n) == SL_OK);
        ASSERT(sl_json_write_str(b, d, n) == SL_OK);
        return i + 1;
    }
    if (k->type != SL_J_OBJECT && k->type != SL_J_ARRAY) {
        sl_buf_append(b, t->text + k->off, k->len);
        return i + 1;
    }
    int obj = k->type == SL_J_OBJECT;
    uint32_t j = i + 1;
    sl_buf_putc(b, obj ? '{' : '[');
    for (uint32_t m = 0; m < k->count; m++) {
        if (m)
            sl_buf_putc(b, ',');
        if (obj) {
            j = reserialize(t, j, a, b);
            sl_buf_putc(b, ':');
        }
        j = reserialize(t, j, a, b);
    }
    sl_buf_putc(b, obj ? '}' : ']');
    return j;
}

/* The rule vocabulary of json.h. */
static int known_rule(const char *r)
{
    static const char *const rules[] = {"empty",
                                        "truncated",
                                        "unterminated_string",
                                        "trailing_garbage",
                                        "bad_escape",
                                        "lone_surrogate",
                                        "invalid_utf8",
                                        "overlong_utf8",
                                        "control_character",
                                        "nan_infinity",
                                        "leading_zero",
                                        "invalid_number",
                                        "invalid_literal",
                                        "trailing_comma",
                                        "single_quote",
                                        "byte_order_mark",
                                        "expected_value",
                                        "expected_key",
                                        "expected_colon",
                                        "expected_comma",
                                        "depth",
                                        "too_large",
                                        "duplicate_key"};
    for (size_t i = 0; r && i < sizeof rules / sizeof rules[0]; i++)
        if (strcmp(r, rules[i]) == 0)
            return 1;
    return 0;
}

struct seen_keys {
    struct sl_record *r;
    struct sl_arena *a;
    uint32_t n;
    const char *key[256];
    size_t klen[256];
};

/* foreach callback: keys are distinct and their values are what a lookup returns. */
static int see_key(void *ctx, const char *key, size_t klen, const struct sl_value *v)
{
    struct seen_keys *s = ctx;
    for (uint32_t i = 0; i < s->n && i < 256; i++)
        ASSERT(!(s->klen[i] == klen && (klen == 0 || memcmp(s->key[i], key, klen) == 0)));
    if (s->n < 256) {
        s->key[s->n] = key;
        s->klen[s->n] = klen;
    }
    s->n++;
    struct sl_value got;
    ASSERT(sl_record_get_key(s->r, key, klen, s->a, &got));
    ASSERT(got.type == v->type);
    if (v->type != SL_V_NUMBER)
        ASSERT(sl_value_equal(&got, v));
    return 0;
}

/* Duplicate keys: readers agree on the last occurrence; reject mode agrees with them. */
static void check_duplicates(const uint8_t *data, size_t size, const struct sl_tape *t,
                             struct sl_arena *a)
{
    struct sl_tape dt;
    struct sl_json_error e;
    sl_json_parser_set_flags(parser, SL_JSON_REJECT_DUPLICATES);
    sl_rc rc = sl_json_parse(parser, (const char *)data, size, 0, a, &dt, &e);
    sl_json_parser_set_flags(parser, 0);
    ASSERT(rc == SL_OK || rc == SL_EPARSE);
    if (rc) {
        ASSERT(strcmp(e.rule, "duplicate_key") == 0);
        ASSERT(e.offset < size && data[e.offset] == '"');
        ASSERT(e.path[0] == '$' && memchr(e.path, 0, sizeof e.path) != NULL);
    }
    if (t->tok[0].type != SL_J_OBJECT)
        return;
    struct sl_record r;
    memset(&r, 0, sizeof r);
    r.text = (const char *)data;
    r.text_len = (uint32_t)size;
    r.tape = *t;
    r.flags = SL_REC_PARSED;
    struct seen_keys s;
    s.r = &r;
    s.a = a;
    s.n = 0;
    ASSERT(sl_record_foreach(&r, a, see_key, &s) == SL_OK);
    ASSERT(s.n <= t->tok[0].count);
    if (rc == SL_OK)
        ASSERT(s.n == t->tok[0].count); /* no duplicates anywhere, so none at the root */
    else if (s.n < t->tok[0].count)
        ASSERT(e.path[1] != 0); /* a root duplicate names its key */
}

static void check_records(const uint8_t *data, size_t size, const struct sl_tape *t,
                          struct sl_arena *a)
{
    struct sl_record r;
    struct sl_buf b;
    struct sl_tape ot;
    struct sl_json_error e;
    memset(&r, 0, sizeof r);
    r.text = (const char *)data;
    r.text_len = (uint32_t)size;
    r.tape = *t;
    r.flags = SL_REC_PARSED;
    sl_buf_init(&b, 0);
    ASSERT(sl_record_write(&r, &b) == SL_OK);
    ASSERT(b.len == size && (size == 0 || memcmp(b.data, data, size) == 0));
    if (t->tok[0].type != SL_J_OBJECT) {
        sl_buf_fini(&b);
        return;
    }
    /* Edit the first member (nested when it is an object), add one, delete one. */
    struct sl_path p;
    struct sl_value v = sl_value_string("fz\n\"", 4);
    ASSERT(sl_path_parse("added.x", 7, a, &p, NULL, NULL) == SL_OK);
    sl_rc src = sl_record_set(&r, &p, &v, a);
    ASSERT(src == SL_OK || src == SL_ETYPE); /* ETYPE: the input has a non-object "added" */
    if (t->tok[0].count) {
        const char *key;
        size_t klen;
        ASSERT(sl_json_str(t, 1, a, &key, &klen) == SL_OK);
        struct sl_path_seg segs[2] = {{key, (uint32_t)klen, 0}, {"k", 1, 0}};
        struct sl_path p2 = {2, segs, "first.k"};
        sl_rc rc = sl_record_set(&r, &p2, &v, a);
        ASSERT(rc == SL_OK || rc == SL_ETYPE);
        p2.nseg = 1;
        ASSERT(sl_record_del(&r, &p2, a) == SL_OK);
        struct sl_value got;
        ASSERT(!sl_record_get(&r, &p2, a, &got));
    }
    sl_buf_clear(&b);
    ASSERT(sl_record_write(&r, &b) == SL_OK);
    ASSERT(sl_json_parse(parser, b.data, b.len, 0, a, &ot, &e) == SL_OK);
    ASSERT(ot.tok[0].type == SL_J_OBJECT);
    sl_buf_fini(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sl_arena a;
    struct sl_tape t, t2;
    struct sl_json_error e;
    struct sl_buf b1, b2;
    if (!parser && sl_json_parser_create(&parser))
        abort();
    sl_arena_init(&a, 0);
    sl_buf_init(&b1, 0);
    sl_buf_init(&b2, 0);

    /* The input as a field path: must not crash; errors name a column inside it. */
    struct sl_path p;
    size_t col = 0;
    if (sl_path_parse((const char *)data, size, &a, &p, &col, NULL) != SL_OK)
        ASSERT(col <= size);

    sl_rc rc = sl_json_parse(parser, (const char *)data, size, 0, &a, &t, &e);
    if (rc != SL_OK) {
        ASSERT(rc == SL_EPARSE);
        ASSERT(e.offset <= size);
        ASSERT(memchr(e.msg, 0, sizeof e.msg) != NULL && e.msg[0]);
        ASSERT(known_rule(e.rule) && strcmp(e.rule, "duplicate_key") != 0);
        ASSERT(e.path[0] == 0);
        goto out;
    }
    ASSERT(t.ntok > 0 && t.tok[0].next == t.ntok);
    ASSERT(sl_utf8_valid((const char *)data, size, NULL));
    ASSERT(check_tok(&t, 0, &a) == t.ntok);

    reserialize(&t, 0, &a, &b1);
    ASSERT(sl_json_parse(parser, b1.data, b1.len, 0, &a, &t2, &e) == SL_OK);
    ASSERT(t2.ntok == t.ntok);
    reserialize(&t2, 0, &a, &b2);
    ASSERT(b1.len == b2.len && memcmp(b1.data, b2.data, b1.len) == 0);

    struct sl_value v1, v2;
    ASSERT(sl_value_from_tape(&t, 0, &a, &v1) == SL_OK);
    ASSERT(sl_value_from_tape(&t2, 0, &a, &v2) == SL_OK);
    ASSERT(sl_value_equal(&v1, &v2) || v1.type == SL_V_NUMBER || v1.type >= SL_V_ARRAY);

    check_duplicates(data, size, &t, &a);
    check_records(data, size, &t, &a);
out:
    sl_buf_fini(&b1);
    sl_buf_fini(&b2);
    sl_arena_fini(&a);
    return 0;
}
