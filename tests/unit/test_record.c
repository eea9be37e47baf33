/*
 * test_record.c - field paths, record reads and edits, output order, record ids.
 *
 * Edits are checked through the exact bytes sl_record_write produces and the exact
 * sequence sl_record_foreach visits.
 */
#include <string.h>

#include "sluice/alloc.h"
#include "sluice/arena.h"
#include "sluice/buf.h"
#include "sluice/json.h"
#include "sluice/record.h"
#include "sluice/value.h"
#include "test.h"

/* Record ids are persisted by sinks: these must never change (see record.c). */
#define GOLDEN_BASE "3957ade0d4b32a200221163b828cbfea"
#define GOLDEN_ID "3957ade0d4b32a200221000000003039" /* offset 12345 = 0x3039 */

static struct sl_json_parser *P;
static struct sl_arena A;

static struct sl_path path(const char *s)
{
    struct sl_path p;
    struct sl_error e;
    memset(&p, 0, sizeof p);
    if (sl_path_parse(s, strlen(s), &A, &p, NULL, &e) != SL_OK) {
        fprintf(stderr, "path %s: %s\n", s, e.msg);
        test_failures++;
    }
    return p;
}

/* A parsed record over a copy of s in the arena. */
static struct sl_record rec(const char *s)
{
    struct sl_record r;
    struct sl_json_error e;
    memset(&r, 0, sizeof r);
    size_t n = strlen(s);
    r.text = r.orig = sl_arena_dup(&A, s, n + 1);
    r.text_len = r.orig_len = (uint32_t)n;
    if (sl_record_parse(&r, P, 0, &A, &e) != SL_OK) {
        fprintf(stderr, "record %s: %s\n", s, e.msg);
        test_failures++;
    }
    return r;
}

/* A value parsed from JSON text (tape kept in the arena). */
static struct sl_value val(const char *json)
{
    struct sl_tape *t = sl_arena_alloc(&A, sizeof *t);
    struct sl_json_error e;
    struct sl_value v = sl_value_null();
    size_t n = strlen(json);
    const char *copy = sl_arena_dup(&A, json, n);
    if (sl_json_parse(P, copy, n, 0, &A, t, &e) || sl_value_from_tape(t, 0, &A, &v))
        test_failures++;
    return v;
}

#define CHECK_WRITE(r, want)                                                                       \
    do {                                                                                           \
        struct sl_buf b_;                                                                          \
        sl_buf_init(&b_, 0);                                                                       \
        CHECK_INT(sl_record_write(&(r), &b_), SL_OK);                                              \
        CHECK_MEM(b_.data ? b_.data : "", b_.len, (want));                                         \
        sl_buf_fini(&b_);                                                                          \
    } while (0)

static sl_rc set(struct sl_record *r, const char *p, const char *json)
{
    struct sl_path pp = path(p);
    struct sl_value v = val(json);
    return sl_record_set(r, &pp, &v, &A);
}

static sl_rc del(struct sl_record *r, const char *p)
{
    struct sl_path pp = path(p);
    return sl_record_del(r, &pp, &A);
}

/* The field at p written as JSON, "<missing>" when absent. */
static const char *get(struct sl_record *r, const char *p)
{
    struct sl_path pp = path(p);
    struct sl_value v;
    struct sl_buf b;
    if (!sl_record_get(r, &pp, &A, &v)) {
        CHECK_INT(v.type, SL_V_NULL);
        return "<missing>";
    }
    sl_buf_init(&b, 0);
    sl_value_write(&v, &b);
    char *s = sl_arena_strndup(&A, b.data ? b.data : "", b.len);
    sl_buf_fini(&b);
    return s;
}

static void test_path_parse(void)
{
    struct sl_path p = path("device.os");
    REQUIRE(p.nseg == 2);
    CHECK_MEM(p.seg[0].key, p.seg[0].klen, "device");
    CHECK_MEM(p.seg[1].key, p.seg[1].klen, "os");
    CHECK_STR(p.text, "device.os");

    p = path("tags[0][-12]._x9");
    REQUIRE(p.nseg == 4);
    CHECK_MEM(p.seg[0].key, p.seg[0].klen, "tags");
    CHECK(p.seg[1].key == NULL);
    CHECK_INT(p.seg[1].index, 0);
    CHECK(p.seg[2].key == NULL);
    CHECK_INT(p.seg[2].index, -12);
    CHECK_MEM(p.seg[3].key, p.seg[3].klen, "_x9");

    p = path("[\"odd key\"].x[\"q\\\"\\u00e9\"]");
    REQUIRE(p.nseg == 3);
    CHECK_MEM(p.seg[0].key, p.seg[0].klen, "odd key");
    CHECK_MEM(p.seg[1].key, p.seg[1].klen, "x");
    CHECK_MEM(p.seg[2].key, p.seg[2].klen, "q\"\xc3\xa9");

    p = path("[\"\"]");
    REQUIRE(p.nseg == 1);
    CHECK_INT(p.seg[0].klen, 0);
    CHECK(p.seg[0].key != NULL);

    static const struct {
        const char *s;
        size_t col;
        const char *frag;
    } bad[] = {
        {"", 0, "the path is empty"},
        {"a..b", 2, "expected a field name after '.'"},
        {"a.", 1, "path ends with '.'"},
        {".a", 0, "expected a field name or '['"},
        {"1a", 0, "expected a field name or '['"},
        {"a-b", 1, "expected '.' or '[' after a segment"},
        {"a]", 1, "expected '.' or '['"},
        {"a[", 1, "unclosed '['"},
        {"a[x]", 2, "expected an index (digits) or a quoted key"},
        {"a[1", 1, "unclosed '['"},
        {"a[1x]", 3, "expected ']'"},
        {"a[99999999999]", 2, "array index too large"},
        {"a.[0]", 2, "expected a field name after '.'"},
        {"[\"\\q\"]", 3, "invalid escape '\\q'"},
        {"[\"abc]", 6, "unterminated string"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct sl_path q;
        struct sl_error e;
        size_t col = 999;
        CHECK_INT(sl_path_parse(bad[i].s, strlen(bad[i].s), &A, &q, &col, &e), SL_EPARSE);
        CHECK_INT(col, bad[i].col);
        if (!strstr(e.msg, bad[i].frag) || !strstr(e.msg, "invalid field path")) {
            test_failures++;
            fprintf(stderr, "path \"%s\": message \"%s\" lacks \"%s\"\n", bad[i].s, e.msg,
                    bad[i].frag);
        }
    }
}

static const char *BASE = "{\"id\":1,\"device\":{\"type\":\"mobile\",\"os\":\"ios\"},"
                          "\"tags\":[\"a\",\"b\"],\"ref\":\"x\"}";

static void test_get(void)
{
    struct sl_record r = rec("{\"id\":48213,\"device\":{\"os\":\"ios\",\"v\":[1,[2,3]]},"
                             "\"tags\":[\"a\",\"b\",\"c\"],\"e\\u0073c\":\"t\\tx\","
                             "\"odd key\":{\"\":0},\"n\":null}");
    CHECK_STR(get(&r, "id"), "48213");
    CHECK_STR(get(&r, "device.os"), "\"ios\"");
    CHECK_STR(get(&r, "device.v[1][0]"), "2");
    CHECK_STR(get(&r, "device.v[-1][-1]"), "3");
    CHECK_STR(get(&r, "tags[2]"), "\"c\"");
    CHECK_STR(get(&r, "tags[-3]"), "\"a\"");
    CHECK_STR(get(&r, "tags[3]"), "<missing>");
    CHECK_STR(get(&r, "tags[-4]"), "<missing>");
    CHECK_STR(get(&r, "esc"), "\"t\\tx\"");
    CHECK_STR(get(&r, "[\"odd key\"][\"\"]"), "0");
    CHECK_STR(get(&r, "n"), "null");
    CHECK_STR(get(&r, "nope"), "<missing>");
    CHECK_STR(get(&r, "id.x"), "<missing>");
    CHECK_STR(get(&r, "tags.x"), "<missing>");
    CHECK_STR(get(&r, "device[0]"), "<missing>");
    CHECK_STR(get(&r, "n.x"), "<missing>");
    CHECK_STR(get(&r, "device"), "{\"os\":\"ios\",\"v\":[1,[2,3]]}");

    /* Unescaped strings are not copied: they point into the record text. */
    struct sl_value v;
    struct sl_path pp = path("device.os");
    size_t before = A.total;
    char *cur = A.cur;
    REQUIRE(sl_record_get(&r, &pp, &A, &v));
    CHECK(v.u.str > r.text && v.u.str < r.text + r.text_len);
    CHECK(A.cur == cur);
    CHECK_INT(A.total, before);

    CHECK_INT(sl_record_get_key(&r, "id", 2, &A, &v), 1);
    CHECK(v.u.num.d == 48213.0);
    CHECK_INT(sl_record_get_key(&r, "i", 1, &A, &v), 0);

    /* Root arrays: index paths read, edits are refused. */
    struct sl_record ra = rec("[10,{\"k\":\"v\"}]");
    CHECK_STR(get(&ra, "[1].k"), "\"v\"");
    CHECK_STR(get(&ra, "[-2]"), "10");
    CHECK_STR(get(&ra, "k"), "<missing>");
    CHECK_INT(set(&ra, "k", "1"), SL_ETYPE);
    CHECK_INT(set(&ra, "[0]", "1"), SL_ETYPE);
    CHECK_INT(del(&ra, "k"), SL_ETYPE);
    CHECK_WRITE(ra, "[10,{\"k\":\"v\"}]");

    /* Unparsed records have no fields and take no edits. */
    struct sl_record u;
    memset(&u, 0, sizeof u);
    u.text = "{\"a\":1}";
    u.text_len = 7;
    CHECK_STR(get(&u, "a"), "<missing>");
    CHECK_INT(set(&u, "a", "2"), SL_ESTATE);
}

static void test_write_untouched(void)
{
    const char *odd = "  {\"a\" : [1, 2],\n \"b\":\"\\u00e9\"}\t";
    struct sl_record r = rec(odd);
    CHECK_WRITE(r, odd);
    /* Deleting what is not there adds no edit and keeps the bytes. */
    CHECK_INT(del(&r, "zzz"), SL_OK);
    CHECK_INT(del(&r, "a[5]"), SL_OK);
    CHECK_INT(del(&r, "q.r.s"), SL_OK);
    CHECK(r.edits == NULL);
    CHECK_WRITE(r, odd);
    CHECK_INT(del(&r, "b.x"), SL_ETYPE); /* through a string */
    CHECK(r.edits == NULL);
}

static void test_set_del_sequences(void)
{
    struct sl_record r = rec(BASE);
    CHECK_INT(set(&r, "device.os", "\"android\""), SL_OK);
    CHECK_WRITE(r, "{\"id\":1,\"device\":{\"type\":\"mobile\",\"os\":\"android\"},"
                   "\"tags\":[\"a\",\"b\"],\"ref\":\"x\"}");
    struct sl_value dev_v1;
    REQUIRE(sl_record_get_key(&r, "device", 6, &A, &dev_v1));

    CHECK_INT(set(&r, "new.deep.x", "1"), SL_OK);
    CHECK_INT(del(&r, "ref"), SL_OK);
    CHECK_INT(set(&r, "tags[1]", "\"z\""), SL_OK);
    CHECK_INT(set(&r, "tags[-2]", "{\"k\":[]}"), SL_OK);
    CHECK_INT(del(&r, "device.type"), SL_OK);
    CHECK_INT(set(&r, "id", "\"s\\u0001\""), SL_OK);
    CHECK_WRITE(r, "{\"id\":\"s\\u0001\",\"device\":{\"os\":\"android\"},"
                   "\"tags\":[{\"k\":[]},\"z\"],\"new\":{\"deep\":{\"x\":1}}}");
    CHECK_STR(get(&r, "device.os"), "\"android\"");
    CHECK_STR(get(&r, "device.type"), "<missing>");
    CHECK_STR(get(&r, "ref"), "<missing>");
    CHECK_STR(get(&r, "new.deep"), "{\"x\":1}");
    CHECK_STR(get(&r, "tags[0].k"), "[]");
    CHECK_STR(get(&r, "id"), "\"s\\u0001\"");

    /* Copy-on-write: a value read before later edits still shows its state then. */
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_value_write(&dev_v1, &b);
    CHECK_MEM(b.data, b.len, "{\"type\":\"mobile\",\"os\":\"android\"}");
    sl_buf_fini(&b);

    /* Errors leave the record as it was. */
    CHECK_INT(set(&r, "tags[2]", "1"), SL_ENOENT);
    CHECK_INT(set(&r, "tags[-3]", "1"), SL_ENOENT);
    CHECK_INT(set(&r, "id.x", "1"), SL_ETYPE);
    CHECK_INT(set(&r, "tags.x", "1"), SL_ETYPE);
    CHECK_INT(set(&r, "device[0]", "1"), SL_ETYPE);
    CHECK_INT(set(&r, "nothing[0]", "1"), SL_ENOENT);
    CHECK_INT(del(&r, "id.x"), SL_ETYPE);
    CHECK_WRITE(r, "{\"id\":\"s\\u0001\",\"device\":{\"os\":\"android\"},"
                   "\"tags\":[{\"k\":[]},\"z\"],\"new\":{\"deep\":{\"x\":1}}}");

    /* Re-adding a deleted original member puts it back in its original place. */
    CHECK_INT(set(&r, "ref", "2"), SL_OK);
    CHECK_INT(del(&r, "tags[0]"), SL_OK);
    CHECK_WRITE(r, "{\"id\":\"s\\u0001\",\"device\":{\"os\":\"android\"},"
                   "\"tags\":[\"z\"],\"ref\":2,\"new\":{\"deep\":{\"x\":1}}}");
}

static void test_deep_paths(void)
{
    struct sl_record r = rec("{\"a\":{\"b\":[0,{\"c\":{}}],\"z\":\"\\u0041\"},\"q\":1}");
    CHECK_WRITE(r, "{\"a\":{\"b\":[0,{\"c\":{}}],\"z\":\"\\u0041\"},\"q\":1}");
    /* Level "a" is rebuilt: its string "z" is decoded, so it is written back minimally
     * escaped (same value, canonical bytes); "q" at the top level keeps its span. */
    CHECK_INT(set(&r, "a.b[1].c.d.e", "1"), SL_OK);
    CHECK_WRITE(r, "{\"a\":{\"b\":[0,{\"c\":{\"d\":{\"e\":1}}}],\"z\":\"A\"},\"q\":1}");
    CHECK_INT(set(&r, "a.b[-2]", "[]"), SL_OK);
    CHECK_INT(del(&r, "a.b[-1].c"), SL_OK);
    CHECK_WRITE(r, "{\"a\":{\"b\":[[],{}],\"z\":\"A\"},\"q\":1}");
    CHECK_INT(set(&r, "a.b[0][0]", "1"), SL_ENOENT); /* index past the end of [] */
    CHECK_INT(set(&r, "a.z.y", "1"), SL_ETYPE);
    CHECK_INT(del(&r, "a.b[7]"), SL_OK);
    CHECK_INT(del(&r, "a.nope.x"), SL_OK);
    CHECK_STR(get(&r, "a.z"), "\"A\"");
    CHECK_STR(get(&r, "a.b[1]"), "{}");
    CHECK_WRITE(r, "{\"a\":{\"b\":[[],{}],\"z\":\"A\"},\"q\":1}");
}

static void test_rename_and_append_order(void)
{
    struct sl_record r = rec(BASE);
    /* rename ref -> referrer: read, set, delete. */
    struct sl_value v;
    REQUIRE(sl_record_get_key(&r, "ref", 3, &A, &v));
    CHECK_INT(sl_record_set_key(&r, "referrer", 8, &v, &A), SL_OK);
    CHECK_INT(del(&r, "ref"), SL_OK);
    CHECK_WRITE(r, "{\"id\":1,\"device\":{\"type\":\"mobile\",\"os\":\"ios\"},"
                   "\"tags\":[\"a\",\"b\"],\"referrer\":\"x\"}");

    /* Appended keys keep the order of their first addition. */
    struct sl_record q = rec("{\"k\":0}");
    CHECK_INT(set(&q, "b", "1"), SL_OK);
    CHECK_INT(set(&q, "a", "2"), SL_OK);
    CHECK_INT(set(&q, "b", "3"), SL_OK);
    CHECK_INT(set(&q, "c", "4"), SL_OK);
    CHECK_INT(del(&q, "a"), SL_OK);
    CHECK_INT(set(&q, "d", "5"), SL_OK);
    CHECK_INT(set(&q, "a", "6"), SL_OK);
    CHECK_WRITE(q, "{\"k\":0,\"b\":3,\"a\":6,\"c\":4,\"d\":5}");
    CHECK_INT(del(&q, "k"), SL_OK);
    CHECK_INT(del(&q, "c"), SL_OK);
    CHECK_WRITE(q, "{\"b\":3,\"a\":6,\"d\":5}");
    CHECK_INT(del(&q, "b"), SL_OK);
    CHECK_INT(del(&q, "a"), SL_OK);
    CHECK_INT(del(&q, "d"), SL_OK);
    CHECK_WRITE(q, "{}");

    /* An empty key and a key needing escapes. */
    struct sl_record e = rec("{}");
    CHECK_INT(sl_record_set_key(&e, "", 0, &v, &A), SL_OK);
    struct sl_value n = sl_value_number(0.25);
    CHECK_INT(sl_record_set_key(&e, "q\"\n", 3, &n, &A), SL_OK);
    CHECK_WRITE(e, "{\"\":\"x\",\"q\\\"\\n\":0.25}");
}

static void test_duplicates_and_escaped_keys(void)
{
    /* Duplicate keys: the last occurrence wins; untouched output stays byte-exact. */
    struct sl_record r = rec("{\"a\":1,\"b\":2,\"a\":3}");
    CHECK_STR(get(&r, "a"), "3");
    CHECK_WRITE(r, "{\"a\":1,\"b\":2,\"a\":3}");
    CHECK_INT(set(&r, "c", "0"), SL_OK); /* an unrelated edit: "a" is written once */
    CHECK_WRITE(r, "{\"b\":2,\"a\":3,\"c\":0}");
    CHECK_INT(set(&r, "a", "9"), SL_OK);
    CHECK_WRITE(r, "{\"b\":2,\"a\":9,\"c\":0}");
    CHECK_INT(del(&r, "a"), SL_OK);
    CHECK_WRITE(r, "{\"b\":2,\"c\":0}");
    CHECK_STR(get(&r, "a"), "<missing>");

    /* Nested duplicates: lookups see the last; a nested edit rebuilds the object once. */
    struct sl_record n =
        rec("{\"d\":{\"os\":\"a\",\"v\":1,\"os\":\"b\"},\"x\":[{\"k\":1,\"k\":2}]}");
    CHECK_STR(get(&n, "d.os"), "\"b\"");
    CHECK_STR(get(&n, "x[0].k"), "2");
    CHECK_INT(set(&n, "d.v", "2"), SL_OK);
    CHECK_WRITE(n, "{\"d\":{\"v\":2,\"os\":\"b\"},\"x\":[{\"k\":1,\"k\":2}]}");
    CHECK_INT(set(&n, "x[0].j", "0"), SL_OK);
    CHECK_WRITE(n, "{\"d\":{\"v\":2,\"os\":\"b\"},\"x\":[{\"k\":2,\"j\":0}]}");

    /* Escapes do not hide a duplicate: "\u0061" is "a". */
    struct sl_record u = rec("{\"a\":1,\"\\u0061\":2}");
    CHECK_STR(get(&u, "a"), "2");
    CHECK_INT(set(&u, "z", "0"), SL_OK);
    CHECK_WRITE(u, "{\"\\u0061\":2,\"z\":0}");

    /* More members than the stack table holds (dups.c), with duplicates far apart. */
    char big[4096];
    size_t bl = (size_t)snprintf(big, sizeof big, "{");
    for (int i = 0; i < 200; i++)
        bl += (size_t)snprintf(big + bl, sizeof big - bl, "\"k%d\":%d,", i, i);
    bl += (size_t)snprintf(big + bl, sizeof big - bl, "\"k7\":-7,\"k150\":-150}");
    struct sl_record g = rec(big);
    CHECK_STR(get(&g, "k7"), "-7");
    CHECK_STR(get(&g, "k150"), "-150");
    CHECK_STR(get(&g, "k8"), "8");
    struct sl_value gv;
    struct sl_value root;
    CHECK_INT(sl_value_from_tape(&g.tape, 0, &A, &root), SL_OK);
    CHECK_INT(sl_value_materialize(&root, &A, &gv), SL_OK);
    CHECK_INT(gv.len, 200);
    CHECK_INT(gv.u.members[198].klen, 2);
    CHECK(memcmp(gv.u.members[198].key, "k7", 2) == 0);
    CHECK(gv.u.members[198].val.u.num.d == -7);

    /* A replaced member keeps its original key spelling. */
    struct sl_record e = rec("{\"a\\u0062\":1,\"c\":2}");
    CHECK_INT(set(&e, "ab", "[true]"), SL_OK);
    CHECK_WRITE(e, "{\"a\\u0062\":[true],\"c\":2}");
    CHECK_STR(get(&e, "ab[0]"), "true");
}

struct seen {
    char buf[512];
    size_t len;
    int stop_at;
    int calls;
};

static int visit(void *ctx, const char *key, size_t klen, const struct sl_value *v)
{
    struct seen *s = ctx;
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_value_write(v, &b);
    s->len += (size_t)snprintf(s->buf + s->len, sizeof s->buf - s->len, "%.*s=%.*s;", (int)klen,
                               key, (int)b.len, b.data ? b.data : "");
    sl_buf_fini(&b);
    return ++s->calls == s->stop_at ? 77 : 0;
}

static void test_foreach_duplicates(void)
{
    /* Each key once, with the value of its last occurrence, with and without edits. */
    struct sl_record r = rec("{\"a\":1,\"b\":2,\"a\":3,\"c\":4,\"b\":5}");
    struct seen s = {.stop_at = -1};
    CHECK_INT(sl_record_foreach(&r, &A, visit, &s), SL_OK);
    CHECK_STR(s.buf, "a=3;c=4;b=5;");
    CHECK_INT(set(&r, "c", "40"), SL_OK);
    struct seen s2 = {.stop_at = -1};
    CHECK_INT(sl_record_foreach(&r, &A, visit, &s2), SL_OK);
    CHECK_STR(s2.buf, "a=3;c=40;b=5;");
}

static void test_foreach(void)
{
    struct sl_record r = rec("{\"x\":1,\"k\\u00e9y\":\"v\",\"y\":[2],\"z\":null}");
    struct seen s = {"", 0, 0, 0};
    CHECK_INT(sl_record_foreach(&r, &A, visit, &s), SL_OK);
    CHECK_STR(s.buf, "x=1;k\xc3\xa9y=\"v\";y=[2];z=null;");

    CHECK_INT(set(&r, "w", "true"), SL_OK);
    CHECK_INT(set(&r, "y[0]", "3"), SL_OK);
    CHECK_INT(del(&r, "x"), SL_OK);
    CHECK_INT(set(&r, "a.b", "\"c\""), SL_OK);
    struct seen s2 = {"", 0, 0, 0};
    CHECK_INT(sl_record_foreach(&r, &A, visit, &s2), SL_OK);
    CHECK_STR(s2.buf, "k\xc3\xa9y=\"v\";y=[3];z=null;w=true;a={\"b\":\"c\"};");

    struct seen s3 = {"", 0, 2, 0};
    CHECK_INT(sl_record_foreach(&r, &A, visit, &s3), 77);
    CHECK_STR(s3.buf, "k\xc3\xa9y=\"v\";y=[3];");
    CHECK_INT(s3.calls, 2);

    struct sl_record ra = rec("[1]");
    CHECK_INT(sl_record_foreach(&ra, &A, visit, &s3), SL_ETYPE);
}

static void test_write_limits(void)
{
    struct sl_record r = rec("{\"a\":1}");
    CHECK_INT(set(&r, "b", "\"a long value that will not fit\""), SL_OK);
    struct sl_buf b;
    sl_buf_init(&b, 16);
    sl_buf_append(&b, "pre", 3);
    CHECK_INT(sl_record_write(&r, &b), SL_ELIMIT);
    CHECK_INT(b.len, 3); /* nothing half-written */
    sl_buf_fini(&b);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_record_ids(void)
{
    uint64_t base[2], base2[2], id[2], id2[2];
    char hex[33];
    uint64_t fixed[2] = {0x0123456789abcdefull, 0xfedcba9876543210ull};
    sl_record_id_format(fixed, hex);
    CHECK_STR(hex, "0123456789abcdeffedcba9876543210");

    sl_record_id_base("clicks", "file", "data/clicks.ndjson:2049:131", base);
    sl_record_id_base("clicks", "file", "data/clicks.ndjson:2049:131", base2);
    CHECK(base[0] == base2[0] && base[1] == base2[1]);
    sl_record_id(base, 0, id);
    sl_record_id(base, 0, id2);
    CHECK(id[0] == id2[0] && id[1] == id2[1]);
    /* Golden values: ids are persisted by sinks, so the function must never change. */
    sl_record_id_format(base, hex);
    CHECK_STR(hex, GOLDEN_BASE);
    sl_record_id(base, 12345, id);
    sl_record_id_format(id, hex);
    CHECK_STR(hex, GOLDEN_ID);

    /* Field boundaries matter: ("ab","c") and ("a","bc") differ; NULL is "". */
    sl_record_id_base("ab", "c", "", base);
    sl_record_id_base("a", "bc", "", base2);
    CHECK(base[0] != base2[0] || base[1] != base2[1]);
    sl_record_id_base("p", "s", NULL, base);
    sl_record_id_base("p", "s", "", base2);
    CHECK(base[0] == base2[0] && base[1] == base2[1]);
    sl_record_id_base("p", "s", "f1", base);
    sl_record_id_base("p", "s", "f2", base2);
    CHECK(base[0] != base2[0] && base[1] != base2[1]);

    /* Distinct offsets of one file: the low half never collides; the high half is the file's. */
    enum { N = 20000 };
    static uint64_t lo[N], hi[N];
    for (uint64_t off = 0; off < N; off++) {
        sl_record_id(base, off * 97, id);
        lo[off] = id[0];
        hi[off] = id[1];
    }
    qsort(lo, N, sizeof lo[0], cmp_u64);
    qsort(hi, N, sizeof hi[0], cmp_u64);
    int dup = 0;
    for (int i = 1; i < N; i++)
        dup += hi[i] == hi[i - 1]; /* hi holds id[1]: the offset half */
    CHECK_INT(dup, 0);
    CHECK(lo[0] == lo[N - 1]); /* lo holds id[0]: the file's hash */
    /* Within a file ids increase with the offset, also as hex text (index-friendly). */
    char hex2[33];
    int increasing = 1;
    for (uint64_t off = 0; off < 5000; off++) {
        sl_record_id(base, off * 131, id);
        sl_record_id(base, off * 131 + 1, id2);
        sl_record_id_format(id, hex);
        sl_record_id_format(id2, hex2);
        increasing &= strcmp(hex, hex2) < 0;
    }
    CHECK(increasing);
    /* Offsets past 2^48 still give distinct ids. */
    sl_record_id(base, 5, id);
    sl_record_id(base, 5 + ((uint64_t)1 << 48), id2);
    CHECK(id[0] != id2[0] || id[1] != id2[1]);
}

/*
 * Fail the n-th allocation for every n a full read-edit-write cycle makes: each step
 * either succeeds or reports SL_ENOMEM, nothing crashes or leaks (ASan), and a write
 * that succeeds after failed edits shows only the edits that succeeded.
 */
static void test_allocation_failures(void)
{
    const char *doc = "{\"a\":1,\"d\":{\"os\":\"ios\",\"k\\u00e9\":[1,2]},\"t\":[0]}";
    int saw_enomem = 0, completed = 0;
    for (long n = 1; n <= 60 && !completed; n++) {
        struct sl_json_parser *p = NULL;
        struct sl_arena a;
        struct sl_buf b;
        struct sl_json_error e;
        sl_arena_init(&a, 256); /* small blocks: the arena allocates often */
        sl_buf_init(&b, 0);
        sl_alloc_fail_at(n);
        sl_rc rc = sl_json_parser_create(&p);
        struct sl_record r;
        memset(&r, 0, sizeof r);
        r.text = doc;
        r.text_len = (uint32_t)strlen(doc);
        if (!rc)
            rc = sl_record_parse(&r, p, 0, &a, &e);
        struct sl_path p1, p2;
        if (!rc)
            rc = sl_path_parse("d.os", 4, &a, &p1, NULL, NULL);
        if (!rc)
            rc = sl_path_parse("t[0]", 4, &a, &p2, NULL, NULL);
        struct sl_value v = sl_value_string("android", 7);
        if (!rc)
            rc = sl_record_set(&r, &p1, &v, &a);
        if (!rc)
            rc = sl_record_del(&r, &p2, &a);
        if (!rc)
            rc = sl_record_write(&r, &b);
        sl_alloc_fail_at(0);
        if (rc) {
            CHECK_INT(rc, SL_ENOMEM);
            saw_enomem = 1;
        } else {
            completed = 1;
            CHECK_MEM(b.data, b.len,
                      "{\"a\":1,\"d\":{\"os\":\"android\",\"k\xc3\xa9\":[1,2]},\"t\":[]}");
        }
        sl_buf_fini(&b);
        sl_arena_fini(&a);
        sl_json_parser_destroy(p);
    }
    CHECK(saw_enomem);
    CHECK(completed);
}

int main(void)
{
    sl_arena_init(&A, 0);
    if (sl_json_parser_create(&P))
        return 1;
    RUN(test_path_parse);
    RUN(test_get);
    RUN(test_write_untouched);
    RUN(test_set_del_sequences);
    RUN(test_deep_paths);
    RUN(test_rename_and_append_order);
    RUN(test_duplicates_and_escaped_keys);
    RUN(test_foreach);
    RUN(test_foreach_duplicates);
    RUN(test_write_limits);
    RUN(test_record_ids);
    RUN(test_allocation_failures);
    sl_json_parser_destroy(P);
    sl_arena_fini(&A);
    return TEST_DONE();
}
