/*
 * test_postgres_source.c - the postgres source's positions without a server: how
 * position_cmp orders cursor values of each class, what covers() says about a record, how
 * restore() treats a position it did not write, and init's option checks. Reading rows is
 * tested against a real server by tests/integration/test_postgres_source.sh.
 */
#include <string.h>

#include "sluice/alloc.h"
#include "sluice/batch.h"
#include "sluice/config.h"
#include "sluice/plugin.h"
#include "test.h"

extern const struct sl_plugin sl_source_postgres;
static const struct sl_plugin *P = &sl_source_postgres;

static char pos_buf[8][256];
static int pos_k;

/* A position of class cls for the (JSON-escaped) cursor text. */
static const char *pos(const char *cls, const char *cursor)
{
    char *b = pos_buf[pos_k++ % 8];
    snprintf(b, 256, "{\"type\":\"%s\",\"cursor\":\"%s\"}", cls, cursor);
    return b;
}

static int cmp(const char *cls, const char *a, const char *b)
{
    char x[256], y[256];
    snprintf(x, sizeof x, "%s", pos(cls, a));
    snprintf(y, sizeof y, "%s", pos(cls, b));
    return P->position_cmp(NULL, x, y);
}

static void t_position_cmp(void)
{
    CHECK_INT(cmp("int", "9", "10"), -1);
    CHECK_INT(cmp("int", "10", "9"), 1);
    CHECK_INT(cmp("int", "-10", "-9"), -1);
    CHECK_INT(cmp("int", "-1", "0"), -1);
    CHECK_INT(cmp("int", "9223372036854775807", "9223372036854775806"), 1);
    CHECK_INT(cmp("int", "42", "42"), 0);
    CHECK_INT(cmp("numeric", "12.50", "12.5"), 0);
    CHECK_INT(cmp("numeric", "12.05", "12.5"), -1);
    CHECK_INT(cmp("numeric", "-0.5", "-0.25"), -1);
    CHECK_INT(cmp("numeric", "100", "99.999"), 1);
    CHECK_INT(cmp("numeric", "NaN", "1e30"), 1);
    CHECK_INT(cmp("float", "1e-5", "0.001"), -1);
    CHECK_INT(cmp("float", "-Infinity", "-1e308"), -1);
    CHECK_INT(cmp("float", "Infinity", "NaN"), -1);
    /* Times: whole seconds sort before fractions of the same second. */
    CHECK_INT(cmp("time", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00.5Z"), -1);
    CHECK_INT(cmp("time", "2024-01-01T00:00:00.45Z", "2024-01-01T00:00:00.5Z"), -1);
    CHECK_INT(cmp("time", "2024-01-01T00:00:00.500001Z", "2024-01-01T00:00:00.5Z"), 1);
    CHECK_INT(cmp("time", "2024-01-01T00:00:01Z", "2024-01-01T00:00:00.999999Z"), 1);
    CHECK_INT(cmp("time", "2023-12-31T23:59:59Z", "2024-01-01T00:00:00Z"), -1);
    CHECK_INT(cmp("time", "2024-01-01", "2024-01-02"), -1);
    CHECK_INT(cmp("time", "infinity", "2024-01-02T00:00:00Z"), 1);
    CHECK_INT(cmp("time", "-infinity", "1970-01-01T00:00:00Z"), -1);
    /* Text: byte order, escapes decoded. */
    CHECK_INT(cmp("text", "a", "b"), -1);
    CHECK_INT(cmp("text", "ab", "a"), 1);
    CHECK_INT(cmp("text", "Z", "a"), -1);
    CHECK_INT(cmp("text", "q\\\"x", "q\\\"x"), 0);
    CHECK_INT(cmp("text", "\\u0001", "\\u0002"), -1);
    /* A position this source did not write orders first: re-reading beats losing. */
    CHECK(P->position_cmp(NULL, "{\"offset\":5}", pos("int", "1")) < 0);
    CHECK(P->position_cmp(NULL, pos("int", "1"), "garbage") > 0);
}

/* A batch of one record whose text is json and whose cursor value starts at at. */
static struct sl_batch *one(const char *json, const char *at)
{
    struct sl_batch *b;
    if (sl_batch_create(0, &b) != SL_OK)
        return NULL;
    struct sl_record *r = sl_batch_add(b);
    r->text = r->orig = sl_arena_strdup(&b->arena, json);
    r->text_len = r->orig_len = (uint32_t)strlen(json);
    r->offset = (uint64_t)(strstr(json, at) - json);
    return b;
}

static void t_covers(void)
{
    struct sl_batch *b = one("{\"id\":41,\"v\":\"x\"}", "41,");
    REQUIRE(b != NULL);
    CHECK_INT(P->covers(NULL, pos("int", "41"), b, 0), 1);
    CHECK_INT(P->covers(NULL, pos("int", "100"), b, 0), 1);
    CHECK_INT(P->covers(NULL, pos("int", "40"), b, 0), 0);
    CHECK_INT(P->covers(NULL, "not a position", b, 0), 0);
    sl_batch_unref(b);
    b = one("{\"v\":1,\"at\":\"2024-01-01T00:00:00.5Z\"}", "\"2024");
    REQUIRE(b != NULL);
    CHECK_INT(P->covers(NULL, pos("time", "2024-01-01T00:00:00.5Z"), b, 0), 1);
    CHECK_INT(P->covers(NULL, pos("time", "2024-01-01T00:00:00Z"), b, 0), 0);
    sl_batch_unref(b);
    b = one("{\"name\":\"o\\\"b\"}", "\"o");
    REQUIRE(b != NULL);
    CHECK_INT(P->covers(NULL, pos("text", "o\\\"b"), b, 0), 1);
    CHECK_INT(P->covers(NULL, pos("text", "o\\\"a"), b, 0), 0);
    sl_batch_unref(b);
}

static sl_rc init_yaml(const char *yaml, void **state, struct sl_error *err)
{
    struct sl_cfg_doc *doc;
    sl_rc rc = sl_cfg_load_string(yaml, strlen(yaml), "src.yaml", "/tmp", &doc, err);
    if (rc)
        return rc;
    struct sl_plugin_ctx ctx = {
        .pipeline = "p", .name = "db", .doc = doc, .node = doc->root, .once = 1};
    *state = NULL;
    rc = P->init(&ctx, state, err);
    sl_cfg_destroy(doc);
    return rc;
}

static void t_init_and_restore(void)
{
    struct sl_error err;
    void *s;
    CHECK_INT(init_yaml("query: SELECT 1 AS id\n", &s, &err), SL_ECONFIG);
    CHECK(strstr(err.msg, "cursor_column") != NULL);
    CHECK_INT(init_yaml("query: SELECT 1 AS id\ncursor_column: id\nbatch_size: 0\n", &s, &err),
              SL_ECONFIG);
    CHECK(strstr(err.msg, "batch_size") != NULL);
    CHECK_INT(init_yaml("query: ' ; '\ncursor_column: id\n", &s, &err), SL_ECONFIG);
    /* init connects to nothing: a server need not exist. */
    REQUIRE(init_yaml("connection: host=127.0.0.1 port=1\nquery: SELECT 1 AS id;\n"
                      "cursor_column: id\n",
                      &s, &err) == SL_OK);
    CHECK_INT(P->restore(s, "{\"offset\":5,\"line\":2}", &err), SL_ESTATE);
    CHECK(strstr(err.msg, "sluice reset") != NULL);
    CHECK_INT(P->restore(s, pos("int", "17"), &err), SL_OK);
    P->close(s);
}

int main(void)
{
    RUN(t_position_cmp);
    RUN(t_covers);
    RUN(t_init_and_restore);
    return TEST_DONE();
}
