/*
 * test_validate.c - the validate transform on hand-built batches.
 *
 * Each test writes a contract to a temporary directory, loads the component's YAML with
 * sl_cfg_load_string, runs init/process/close as the engine would and checks every
 * record's flags, rejection message and structured reason (sl_reject_info) exactly.
 */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "sluice/alloc.h"
#include "sluice/batch.h"
#include "sluice/buf.h"
#include "sluice/config.h"
#include "sluice/json.h"
#include "sluice/plugin.h"
#include "sluice/record.h"
#include "test.h"

extern const struct sl_plugin sl_transform_validate;

static struct sl_json_parser *parser;
static char dir[] = "/tmp/sluice-test-validate.XXXXXX";

static const char contract[] =
    "{\"$id\":\"click_event\",\"version\":2,\"type\":\"object\","
    "\"required\":[\"id\",\"amount\"],\"properties\":{\"id\":{\"type\":\"string\"},"
    "\"amount\":{\"type\":\"number\",\"minimum\":0},\"tags\":{\"items\":{\"type\":\"string\"}}},"
    "\"additionalProperties\":false}";

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f)) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
}

static struct sl_batch *make_batch(const char *const *texts)
{
    struct sl_batch *b;
    if (sl_batch_create(0, &b))
        exit(2);
    b->origin = "in/clicks.ndjson";
    for (size_t i = 0; texts[i]; i++) {
        struct sl_record *r = sl_batch_add(b);
        size_t n = strlen(texts[i]);
        r->text = r->orig = sl_arena_strndup(&b->arena, texts[i], n);
        r->text_len = r->orig_len = (uint32_t)n;
        r->line = (uint32_t)i + 1;
        struct sl_json_error jerr;
        if (sl_record_parse(r, parser, 0, &b->arena, &jerr)) {
            fprintf(stderr, "bad test JSON %s: %s\n", texts[i], jerr.msg);
            exit(2);
        }
    }
    return b;
}

static sl_rc start(const char *yaml, struct sl_cfg_doc **doc, void **state, struct sl_error *err)
{
    *state = NULL;
    *doc = NULL;
    sl_error_clear(err);
    if (sl_cfg_load_string(yaml, strlen(yaml), "t.yaml", dir, doc, err))
        return -1;
    struct sl_plugin_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.pipeline = "p";
    ctx.name = "valid";
    ctx.doc = *doc;
    ctx.node = (*doc)->root;
    ctx.max_depth = 128;
    return sl_transform_validate.init(&ctx, state, err);
}

static const char *init_error(const char *yaml)
{
    static char msg[SL_ERROR_MSG_MAX + 32];
    struct sl_cfg_doc *doc;
    void *state;
    struct sl_error err;
    sl_rc rc = start(yaml, &doc, &state, &err);
    snprintf(msg, sizeof msg, "%s %s", sl_rc_name(rc), err.msg);
    if (!rc)
        sl_transform_validate.close(state);
    sl_cfg_destroy(doc);
    return msg;
}

static sl_rc run(void *state, struct sl_batch *b, struct sl_error *err)
{
    struct sl_worker w = {.parser = parser, .stage = "valid", .max_depth = 128};
    sl_error_clear(err);
    return sl_transform_validate.process(state, b, &w, err);
}

static void test_plugin_table(void)
{
    const struct sl_plugin *p = &sl_transform_validate;
    CHECK_INT(p->kind, SL_PLUGIN_TRANSFORM);
    CHECK_STR(p->name, "validate");
    CHECK(p->description && strlen(p->description) > 20);
    CHECK_STR(p->options[0].name, "contract");
    CHECK_INT(p->options[0].type, SL_OPT_PATH);
    CHECK_INT(p->options[0].required, 1);
    CHECK_STR(p->options[1].name, "on_invalid");
    CHECK_INT(p->options[1].type, SL_OPT_ENUM);
    CHECK_STR(p->options[1].def, "dlq");
    CHECK_STR(p->options[1].choices, "dlq|drop|fail");
    CHECK(p->options[2].name == NULL);
    for (const struct sl_option *o = p->options; o->name; o++)
        CHECK(o->help && o->help[strlen(o->help) - 1] == '.');
    CHECK(sl_plugin_find(SL_PLUGIN_TRANSFORM, "validate") == p);
    p->close(NULL);
}

static void test_init_errors(void)
{
    CHECK_STR(init_error("on_invalid: drop\n"),
              "SL_ECONFIG t.yaml:1:1: validate valid: missing required option 'contract' (the "
              "contract file, e.g. contract: contracts/click_event.json)");
    char want[1024];
    snprintf(want, sizeof want,
             "SL_ECONFIG t.yaml:1:11: contract: cannot open contract %s/missing.json: No such "
             "file or directory",
             dir);
    CHECK_STR(init_error("contract: missing.json\n"), want);
    write_file("bad.json", "{\"$id\":\"b\",\"version\":1,\"properties\":{\"a\":{\"anyOf\":[]}}}");
    snprintf(want, sizeof want,
             "SL_ECONFIG t.yaml:1:11: contract: %s/bad.json: #/properties/a/anyOf: keyword "
             "\"anyOf\" is not supported by sluice contracts; supported: ",
             dir);
    CHECK(strncmp(init_error("contract: bad.json\n"), want, strlen(want)) == 0);
    CHECK_STR(init_error("contract: c.json\non_invalid: keep\n"),
              "SL_ECONFIG t.yaml:2:13: on_invalid: \"keep\" is not one of dlq, drop, fail");
}

static void test_dlq(void)
{
    const char *texts[] = {"{\"id\":\"a\",\"amount\":1.5}",
                           "{\"id\":\"b\",\"amount\":\"12a\"}",
                           "{\"id\":7,\"amount\":-1,\"x\":true,\"tags\":[\"ok\",3]}",
                           "{\"id\":\"d\"}",
                           "{\"amount\":\"dropped upstream\"}",
                           "{\"amount\":\"rejected upstream\"}",
                           NULL};
    struct sl_cfg_doc *doc;
    void *st;
    struct sl_error err;
    REQUIRE(start("contract: c.json\n", &doc, &st, &err) == SL_OK);
    struct sl_batch *b = make_batch(texts);
    b->recs[4].flags |= SL_REC_DROPPED;
    sl_record_reject(b, &b->recs[5], "earlier", "bad before");
    struct sl_record *u = sl_batch_add(b); /* never parsed: left alone */
    u->text = u->orig = "{}";
    u->text_len = u->orig_len = 2;
    CHECK_INT(run(st, b, &err), SL_OK);
    CHECK_INT(b->recs[0].flags, SL_REC_PARSED);
    CHECK(b->recs[0].error == NULL);

    const struct sl_record *r = &b->recs[1];
    CHECK_INT(r->flags, SL_REC_PARSED | SL_REC_BAD);
    CHECK_STR(r->error_stage, "valid");
    CHECK_STR(r->error,
              "contract click_event@2: $.amount: expected number, got string \"12a\" (type)");
    REQUIRE(r->why);
    CHECK_STR(r->why->error_class, "contract");
    CHECK_STR(r->why->rule, "type");
    CHECK_STR(r->why->path, "$.amount");
    CHECK_STR(r->why->expected, "number");
    CHECK_STR(r->why->actual, "string \"12a\"");
    CHECK_STR(r->why->contract, "click_event@2");
    CHECK_STR(r->why->details, "[{\"path\":\"$.amount\",\"rule\":\"type\",\"expected\":\"number\","
                               "\"actual\":\"string \\\"12a\\\"\"}]");

    r = &b->recs[2];
    CHECK_INT(r->flags, SL_REC_PARSED | SL_REC_BAD);
    CHECK_STR(r->error,
              "contract click_event@2: $.id: expected string, got number 7 (type); and 3 more");
    REQUIRE(r->why);
    CHECK_STR(r->why->rule, "type");
    CHECK_STR(r->why->path, "$.id");
    CHECK_STR(r->why->details,
              "[{\"path\":\"$.id\",\"rule\":\"type\",\"expected\":\"string\",\"actual\":\"number "
              "7\"},{\"path\":\"$.amount\",\"rule\":\"minimum\",\"expected\":\">= 0\",\"actual\":"
              "\"number -1\"},{\"path\":\"$.x\",\"rule\":\"additionalProperties\",\"expected\":"
              "\"no undeclared property\",\"actual\":\"boolean true\"},{\"path\":\"$.tags[1]\","
              "\"rule\":\"type\",\"expected\":\"string\",\"actual\":\"number 3\"}]");

    r = &b->recs[3];
    CHECK_STR(r->error,
              "contract click_event@2: $.amount: expected present, got missing (required)");
    CHECK_STR(r->why->rule, "required");

    CHECK_INT(b->recs[4].flags, SL_REC_PARSED | SL_REC_DROPPED);
    CHECK(b->recs[4].error == NULL);
    CHECK_STR(b->recs[5].error, "bad before");
    CHECK_STR(b->recs[5].error_stage, "earlier");
    CHECK_INT(u->flags, 0);
    CHECK_INT(sl_batch_live(b), 2);
    sl_batch_unref(b);
    sl_transform_validate.close(st);
    sl_cfg_destroy(doc);
}

static void test_details_cap(void)
{
    write_file("arr.json", "{\"$id\":\"arr\",\"version\":\"1.0\",\"items\":{\"type\":\"string\"}}");
    struct sl_cfg_doc *doc;
    void *st;
    struct sl_error err;
    REQUIRE(start("contract: arr.json\n", &doc, &st, &err) == SL_OK);
    struct sl_buf t;
    sl_buf_init(&t, 0);
    sl_buf_putc(&t, '[');
    for (int i = 0; i < 100; i++)
        sl_buf_printf(&t, "%s%d", i ? "," : "", i);
    sl_buf_putc(&t, ']');
    sl_buf_cstr(&t);
    const char *texts[] = {t.data, NULL};
    struct sl_batch *b = make_batch(texts);
    CHECK_INT(run(st, b, &err), SL_OK);
    const struct sl_record *r = &b->recs[0];
    CHECK_STR(r->error,
              "contract arr@1.0: $[0]: expected string, got number 0 (type); and 99 more");
    REQUIRE(r->why && r->why->details);
    size_t objects = 0;
    for (const char *p = r->why->details; (p = strstr(p, "{\"path\"")); p++)
        objects++;
    CHECK_INT(objects, 64);
    CHECK(strstr(r->why->details, "\"$[63]\"") != NULL);
    CHECK(strstr(r->why->details, "\"$[64]\"") == NULL);
    sl_batch_unref(b);
    sl_buf_fini(&t);
    sl_transform_validate.close(st);
    sl_cfg_destroy(doc);
}

static void test_drop(void)
{
    const char *texts[] = {"{\"id\":\"a\",\"amount\":1}", "{\"id\":\"b\"}",
                           "{\"id\":\"c\",\"amount\":0}", NULL};
    struct sl_cfg_doc *doc;
    void *st;
    struct sl_error err;
    REQUIRE(start("contract: c.json\non_invalid: drop\n", &doc, &st, &err) == SL_OK);
    struct sl_batch *b = make_batch(texts);
    CHECK_INT(run(st, b, &err), SL_OK);
    CHECK_INT(b->recs[0].flags, SL_REC_PARSED);
    CHECK_INT(b->recs[1].flags, SL_REC_PARSED | SL_REC_DROPPED);
    CHECK(b->recs[1].error == NULL);
    CHECK_INT(b->recs[2].flags, SL_REC_PARSED);
    sl_batch_unref(b);
    sl_transform_validate.close(st);
    sl_cfg_destroy(doc);
}

static void test_fail(void)
{
    const char *texts[] = {"{\"id\":\"a\",\"amount\":1}",
                           "{\"id\":1,\"amount\":-2,\"a\":1,\"b\":2,\"c\":3,\"d\":4}", NULL};
    struct sl_cfg_doc *doc;
    void *st;
    struct sl_error err;
    REQUIRE(start("contract: c.json\non_invalid: fail\n", &doc, &st, &err) == SL_OK);
    struct sl_batch *b = make_batch(texts);
    CHECK_INT(run(st, b, &err), SL_EPARSE);
    CHECK_STR(err.msg,
              "validate valid: record in/clicks.ndjson:2 violates contract click_event@2: $.id: "
              "expected string, got number 1 (type); $.amount: expected >= 0, got number -2 "
              "(minimum); $.a: expected no undeclared property, got number 1 "
              "(additionalProperties); $.b: expected no undeclared property, got number 2 "
              "(additionalProperties); $.c: expected no undeclared property, got number 3 "
              "(additionalProperties); and 1 more; stopping because on_invalid is fail (use "
              "on_invalid: dlq to keep such records in the dead-letter queue and go on)");
    CHECK_INT(b->recs[0].flags, SL_REC_PARSED);
    CHECK_INT(b->recs[1].flags, SL_REC_PARSED); /* not rejected: the run stops */
    /* Without a line number (e.g. records that are not lines) the byte offset is named. */
    b->recs[1].line = 0;
    b->recs[1].offset = 4096;
    b->origin = NULL;
    CHECK_INT(run(st, b, &err), SL_EPARSE);
    CHECK(strncmp(err.msg, "validate valid: record (input) at byte 4096 violates contract", 61) ==
          0);
    sl_batch_unref(b);
    sl_transform_validate.close(st);
    sl_cfg_destroy(doc);
}

static void test_edited(void)
{
    /* A map upstream fixed one record and broke another: the edits are what count. */
    const char *texts[] = {"{\"id\":\"a\",\"amount\":\"5\"}", "{\"id\":\"b\",\"amount\":5}", NULL};
    struct sl_cfg_doc *doc;
    void *st;
    struct sl_error err;
    REQUIRE(start("contract: c.json\n", &doc, &st, &err) == SL_OK);
    struct sl_batch *b = make_batch(texts);
    struct sl_value five = sl_value_number(5), neg = sl_value_number(-1);
    REQUIRE(sl_record_set_key(&b->recs[0], "amount", 6, &five, &b->arena) == SL_OK);
    REQUIRE(sl_record_set_key(&b->recs[1], "amount", 6, &neg, &b->arena) == SL_OK);
    CHECK_INT(run(st, b, &err), SL_OK);
    CHECK_INT(b->recs[0].flags, SL_REC_PARSED);
    CHECK_INT(b->recs[1].flags, SL_REC_PARSED | SL_REC_BAD);
    CHECK_STR(b->recs[1].error,
              "contract click_event@2: $.amount: expected >= 0, got number -1 (minimum)");
    sl_batch_unref(b);
    sl_transform_validate.close(st);
    sl_cfg_destroy(doc);
}

struct worker_arg {
    void *state;
    struct sl_batch *b;
    int bad;
    sl_rc rc;
};

static void *worker_main(void *p)
{
    struct worker_arg *wa = p;
    struct sl_json_parser *jp;
    if (sl_json_parser_create(&jp)) {
        wa->rc = SL_ENOMEM;
        return NULL;
    }
    struct sl_worker w = {.parser = jp, .stage = "valid", .max_depth = 128};
    struct sl_error err;
    for (int i = 0; i < 100 && !wa->rc; i++) {
        for (uint32_t k = 0; k < wa->b->n; k++) {
            wa->b->recs[k].flags = SL_REC_PARSED;
            wa->b->recs[k].error = NULL;
        }
        wa->rc = sl_transform_validate.process(wa->state, wa->b, &w, &err);
        wa->bad = (int)(wa->b->n - sl_batch_live(wa->b));
    }
    sl_json_parser_destroy(jp);
    return NULL;
}

static void test_workers(void)
{
    write_file("p.json", "{\"$id\":\"p\",\"version\":1,\"properties\":{\"s\":{\"pattern\":"
                         "\"^[a-z]+$\"},\"u\":{\"pattern\":\"^.{2}$\"}}}");
    struct sl_cfg_doc *doc;
    void *st;
    struct sl_error err;
    REQUIRE(start("contract: p.json\non_invalid: drop\n", &doc, &st, &err) == SL_OK);
    const char *texts[] = {"{\"s\":\"abc\",\"u\":\"\\u00e9\\u00e9\"}", "{\"s\":\"ab1\"}",
                           "{\"u\":\"abc\"}", "{\"s\":\"z\",\"u\":\"zz\"}", NULL};
    struct worker_arg wa[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        wa[i] = (struct worker_arg){st, make_batch(texts), 0, SL_OK};
        REQUIRE(pthread_create(&th[i], NULL, worker_main, &wa[i]) == 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(wa[i].rc, SL_OK);
        CHECK_INT(wa[i].b->recs[0].flags, SL_REC_PARSED);
        CHECK_INT(wa[i].b->recs[1].flags, SL_REC_PARSED | SL_REC_DROPPED);
        CHECK_INT(wa[i].b->recs[2].flags, SL_REC_PARSED | SL_REC_DROPPED);
        CHECK_INT(wa[i].b->recs[3].flags, SL_REC_PARSED);
        sl_batch_unref(wa[i].b);
    }
    sl_transform_validate.close(st);
    sl_cfg_destroy(doc);
}

int main(void)
{
    if (!mkdtemp(dir) || sl_json_parser_create(&parser))
        return 2;
    write_file("c.json", contract);
    RUN(test_plugin_table);
    RUN(test_init_errors);
    RUN(test_dlq);
    RUN(test_details_cap);
    RUN(test_drop);
    RUN(test_fail);
    RUN(test_edited);
    RUN(test_workers);
    sl_json_parser_destroy(parser);
    const char *files[] = {"c.json", "bad.json", "arr.json", "p.json"};
    for (size_t i = 0; i < 4; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
    return TEST_DONE();
}
