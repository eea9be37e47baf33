/*
 * test_transforms.c - filter, map and route on hand-built batches.
 *
 * Each test loads the component's YAML with sl_cfg_load_string, runs init/process/close
 * as the engine would, and checks every record's flags, rejection reason and exact output
 * bytes (sl_record_write).
 */
#include <pthread.h>

#include "sluice/alloc.h"
#include "sluice/batch.h"
#include "sluice/buf.h"
#include "sluice/config.h"
#include "sluice/json.h"
#include "sluice/plugin.h"
#include "sluice/record.h"
#include "test.h"

extern const struct sl_plugin sl_transform_filter;
extern const struct sl_plugin sl_transform_map;
extern const struct sl_plugin sl_transform_route;

static struct sl_json_parser *parser;
static char outbuf[4096];

/* A batch of parsed records, one per JSON text; a NULL-terminated list. */
static struct sl_batch *make_batch(const char *const *texts)
{
    struct sl_batch *b;
    if (sl_batch_create(0, &b))
        exit(2);
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
    b->outmask = sl_arena_calloc(&b->arena, (b->n ? b->n : 1) * sizeof *b->outmask);
    return b;
}

static const char *rec_json(const struct sl_record *r)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    if (sl_record_write(r, &b) || sl_buf_cstr(&b))
        snprintf(outbuf, sizeof outbuf, "write failed");
    else
        snprintf(outbuf, sizeof outbuf, "%s", b.data);
    sl_buf_fini(&b);
    return outbuf;
}

/* The structured reject reason of r as "class|rule|path|expected|actual" ("-" for NULL). */
static const char *why_of(const struct sl_record *r)
{
    static char out[1024];
    const struct sl_reject_info *w = r->why;
    if (!w)
        return "(no why)";
    snprintf(out, sizeof out, "%s|%s|%s|%s|%s", w->error_class ? w->error_class : "-",
             w->rule ? w->rule : "-", w->path ? w->path : "-", w->expected ? w->expected : "-",
             w->actual ? w->actual : "-");
    return out;
}

/* Load yaml, init plugin p on its root map. Returns init's rc; err holds the message. */
static sl_rc start(const struct sl_plugin *p, const char *yaml, struct sl_cfg_doc **doc,
                   void **state, struct sl_error *err)
{
    *state = NULL;
    sl_error_clear(err);
    if (sl_cfg_load_string(yaml, strlen(yaml), "t.yaml", "/tmp", doc, err))
        return -1;
    struct sl_plugin_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.pipeline = "p";
    ctx.name = "t";
    ctx.doc = *doc;
    ctx.node = (*doc)->root;
    ctx.max_depth = 128;
    return p->init(&ctx, state, err);
}

static const char *init_error(const struct sl_plugin *p, const char *yaml)
{
    static char msg[SL_ERROR_MSG_MAX + 32];
    struct sl_cfg_doc *doc = NULL;
    void *state;
    struct sl_error err;
    sl_rc rc = start(p, yaml, &doc, &state, &err);
    snprintf(msg, sizeof msg, "%s %s", sl_rc_name(rc), err.msg);
    if (!rc)
        p->close(state);
    sl_cfg_destroy(doc);
    return msg;
}

static sl_rc run(const struct sl_plugin *p, void *state, struct sl_batch *b)
{
    struct sl_worker w = {.parser = parser, .stage = "t", .max_depth = 128};
    struct sl_error err;
    sl_error_clear(&err);
    return p->process(state, b, &w, &err);
}

static void test_plugin_tables(void)
{
    const struct sl_plugin *ps[] = {&sl_transform_filter, &sl_transform_map, &sl_transform_route};
    const char *names[] = {"filter", "map", "route"};
    for (int i = 0; i < 3; i++) {
        CHECK_INT(ps[i]->kind, SL_PLUGIN_TRANSFORM);
        CHECK_STR(ps[i]->name, names[i]);
        CHECK(ps[i]->description && strlen(ps[i]->description) > 20);
        CHECK(ps[i]->init && ps[i]->process && ps[i]->close);
        for (const struct sl_option *o = ps[i]->options; o->name; o++)
            CHECK(o->help && o->help[strlen(o->help) - 1] == '.');
    }
    CHECK_STR(sl_transform_filter.options[0].name, "where");
    CHECK_INT(sl_transform_filter.options[0].type, SL_OPT_EXPR);
    CHECK_INT(sl_transform_filter.options[0].required, 1);
    CHECK_STR(sl_transform_route.outputs_option, "route");
    CHECK(sl_transform_filter.outputs_option == NULL);
    const char *map_opts[] = {"default", "cast", "set", "rename", "drop"};
    const int map_types[] = {SL_OPT_EXPR_MAP, SL_OPT_MAP, SL_OPT_EXPR_MAP, SL_OPT_MAP, SL_OPT_LIST};
    for (int i = 0; i < 5; i++) {
        CHECK_STR(sl_transform_map.options[i].name, map_opts[i]);
        CHECK_INT(sl_transform_map.options[i].type, map_types[i]);
    }
    CHECK(sl_transform_map.options[5].name == NULL);
    sl_transform_filter.close(NULL);
    sl_transform_map.close(NULL);
    sl_transform_route.close(NULL);
}

static void test_filter(void)
{
    const char *texts[] = {"{\"event_type\":\"purchase\",\"amount\":12.5}",
                           "{\"event_type\":\"view\",\"amount\":1}",
                           "{\"event_type\":\"purchase\",\"amount\":\"abc\"}",
                           "{\"event_type\":\"purchase\",\"amount\":\"abc\"}",
                           "{\"amount\":99}",
                           "[1,2]",
                           NULL};
    struct sl_cfg_doc *doc;
    void *st;
    struct sl_error err;
    REQUIRE(start(&sl_transform_filter, "where: 'event_type == \"purchase\" && amount > 10'\n",
                  &doc, &st, &err) == SL_OK);
    struct sl_batch *b = make_batch(texts);
    b->recs[3].flags |= SL_REC_DROPPED; /* already dropped upstream: not evaluated */
    CHECK_INT(run(&sl_transform_filter, st, b), SL_OK);
    CHECK_INT(b->recs[0].flags, SL_REC_PARSED);
    CHECK_STR(rec_json(&b->recs[0]), "{\"event_type\":\"purchase\",\"amount\":12.5}");
    CHECK_INT(b->recs[1].flags, SL_REC_PARSED | SL_REC_DROPPED);
    CHECK_INT(b->recs[2].flags, SL_REC_PARSED | SL_REC_BAD);
    CHECK_STR(b->recs[2].error,
              "filter where: operator > cannot compare string with number (column 35 of "
              "expression `event_type == \"purchase\" && amount > 10`)");
    CHECK_STR(b->recs[2].error_stage, "t");
    CHECK_STR(why_of(&b->recs[2]), "expression|type_error|-|-|-");
    CHECK_INT(b->recs[3].flags, SL_REC_PARSED | SL_REC_DROPPED);
    CHECK(b->recs[3].error == NULL);
    CHECK_INT(b->recs[4].flags, SL_REC_PARSED | SL_REC_DROPPED); /* missing: null, short cut */
    /* Not an object: the fields the condition reads cannot exist, so it is rejected. */
    CHECK_INT(b->recs[5].flags, SL_REC_PARSED | SL_REC_BAD);
    CHECK_STR(why_of(&b->recs[5]), "not_object|object|$|object|array");
    CHECK_STR(b->recs[5].error,
              "filter where: the record is a JSON array, not an object, so the fields the "
              "condition reads do not exist (where: event_type == \"purchase\" && amount > 10)");
    CHECK_INT(sl_batch_live(b), 1);
    /* An unparsed record is never passed through unexamined. */
    struct sl_record *u = sl_batch_add(b);
    u->text = u->orig = "{}";
    u->text_len = u->orig_len = 2;
    CHECK_INT(run(&sl_transform_filter, st, b), SL_OK);
    CHECK_INT(u->flags, SL_REC_BAD);
    CHECK_STR(u->error, "filter: record reached the filter unparsed");
    sl_batch_unref(b);
    sl_transform_filter.close(st);
    sl_cfg_destroy(doc);

    /* A condition that reads no field by name judges any record, object or not. */
    const char *t2[] = {"[1,2]", "\"s\"", "{\"a\":1}", NULL};
    REQUIRE(start(&sl_transform_filter, "where: '_line != 2'\n", &doc, &st, &err) == SL_OK);
    b = make_batch(t2);
    CHECK_INT(run(&sl_transform_filter, st, b), SL_OK);
    CHECK_INT(b->recs[0].flags, SL_REC_PARSED);
    CHECK_INT(b->recs[1].flags, SL_REC_PARSED | SL_REC_DROPPED);
    CHECK_INT(b->recs[2].flags, SL_REC_PARSED);
    sl_batch_unref(b);
    sl_transform_filter.close(st);
    sl_cfg_destroy(doc);
}

struct worker_arg {
    void *state;
    struct sl_batch *b;
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
    struct sl_worker w = {.parser = jp, .stage = "t", .max_depth = 128};
    struct sl_error err;
    for (int i = 0; i < 200 && !wa->rc; i++) {
        for (uint32_t k = 0; k < wa->b->n; k++)
            wa->b->recs[k].flags = SL_REC_PARSED;
        wa->rc = sl_transform_filter.process(wa->state, wa->b, &w, &err);
    }
    sl_json_parser_destroy(jp);
    return NULL;
}

static void test_filter_workers(void)
{
    /* Two workers share one state, as with `workers: 2`. */
    struct sl_cfg_doc *doc;
    void *st;
    struct sl_error err;
    REQUIRE(start(&sl_transform_filter, "where: 'matches(lower(k), \"^(a|c)$\")'\n", &doc, &st,
                  &err) == SL_OK);
    const char *texts[] = {"{\"k\":\"A\"}", "{\"k\":\"b\"}", "{\"k\":\"c\"}", NULL};
    struct worker_arg wa[2] = {{st, make_batch(texts), 0}, {st, make_batch(texts), 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        REQUIRE(pthread_create(&th[i], NULL, worker_main, &wa[i]) == 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        CHECK_INT(wa[i].rc, SL_OK);
        CHECK_INT(wa[i].b->recs[0].flags, SL_REC_PARSED);
        CHECK_INT(wa[i].b->recs[1].flags, SL_REC_PARSED | SL_REC_DROPPED);
        CHECK_INT(wa[i].b->recs[2].flags, SL_REC_PARSED);
        sl_batch_unref(wa[i].b);
    }
    sl_transform_filter.close(st);
    sl_cfg_destroy(doc);
}

static void test_filter_config_errors(void)
{
    CHECK_STR(init_error(&sl_transform_filter, "inputs: [a]\n"),
              "SL_ECONFIG t.yaml:1:1: filter t: missing required option 'where' (the condition "
              "records must satisfy, e.g. where: 'status == 200')");
    CHECK_STR(init_error(&sl_transform_filter, "where: 'lowr(x) == 1'\n"),
              "SL_ECONFIG t.yaml:1:8: where: unknown function 'lowr' (did you mean 'lower'?) at "
              "column 0 of the expression: lowr(x) == 1");
    CHECK_STR(init_error(&sl_transform_filter, "where: [a]\n"),
              "SL_ECONFIG t.yaml:1:8: where: expected an expression string");
    CHECK_STR(init_error(&sl_transform_filter, "where: x == \"a\n"),
              "SL_ECONFIG t.yaml:1:8: where: unterminated string: add the closing \" at "
              "column 5 of the expression: x == \"a");
}

static void test_map_order(void)
{
    const char *yaml = "default: {currency: '\"EUR\"', amount: '0'}\n"
                       "cast: {qty: int, price: float, ok: bool, code: string, ts: timestamp}\n"
                       "set:\n"
                       "  total: round(price * qty * 100) / 100\n"
                       "  total_s: concat(to_string(total), ' ', currency)\n"
                       "  device.os: lower(device.os)\n"
                       "  added.deep.x: 1.50\n"
                       "rename: {referrer: source.referrer, nothing_here: other}\n"
                       "drop: [debug, total]\n";
    const char *texts[] = {
        "{\"qty\":\"3\",\"price\":\"2.5\",\"currency\":null,\"ok\":\"yes\",\"code\":42,"
        "\"ts\":\"1970-01-01T00:01:00Z\",\"device\":{\"os\":\"iOS\",\"v\":1},\"debug\":true,"
        "\"referrer\":\"x\"}",
        "{\"qty\":2,\"price\":1,\"currency\":\"USD\",\"amount\":5,\"ts\":60}", NULL};
    struct sl_cfg_doc *doc;
    void *st;
    struct sl_error err;
    REQUIRE(start(&sl_transform_map, yaml, &doc, &st, &err) == SL_OK);
    struct sl_batch *b = make_batch(texts);
    CHECK_INT(run(&sl_transform_map, st, b), SL_OK);
    CHECK_INT(b->recs[0].flags, SL_REC_PARSED);
    CHECK_STR(rec_json(&b->recs[0]),
              "{\"qty\":3,\"price\":2.5,\"currency\":\"EUR\",\"ok\":true,\"code\":\"42\","
              "\"ts\":60,\"device\":{\"os\":\"ios\",\"v\":1},\"amount\":0,"
              "\"total_s\":\"7.5 EUR\",\"added\":{\"deep\":{\"x\":1.50}},"
              "\"source\":{\"referrer\":\"x\"}}");
    CHECK_INT(b->recs[1].flags, SL_REC_PARSED);
    CHECK_STR(rec_json(&b->recs[1]),
              "{\"qty\":2,\"price\":1,\"currency\":\"USD\",\"amount\":5,\"ts\":60,"
              "\"total_s\":\"2 USD\",\"device\":{\"os\":null},\"added\":{\"deep\":{\"x\":1.50}}}");
    sl_batch_unref(b);
    sl_transform_map.close(st);
    sl_cfg_destroy(doc);
}

static void test_map_casts(void)
{
    const char *yaml = "cast: {a: int, b: float, c: string, d: bool, e: timestamp}\n";
    const char *texts[] = {
        "{\"a\":-3.9,\"b\":\" 1e2 \",\"c\":true,\"d\":0,\"e\":\"2026-11-27T12:30:00+01:00\"}",
        "{\"a\":\"abc\"}",
        "{\"b\":[1]}",
        "{\"c\":{\"x\":1}}",
        "{\"d\":\"maybe\"}",
        "{\"e\":\"yesterday\"}",
        "{\"a\":null,\"z\":1}",
        "{\"a\":1e30}",
        "{\"d\":\"NO\",\"a\":true,\"b\":false}",
        NULL};
    struct sl_cfg_doc *doc;
    void *st;
    struct sl_error err;
    REQUIRE(start(&sl_transform_map, yaml, &doc, &st, &err) == SL_OK);
    struct sl_batch *b = make_batch(texts);
    CHECK_INT(run(&sl_transform_map, st, b), SL_OK);
    CHECK_STR(rec_json(&b->recs[0]),
              "{\"a\":-3,\"b\":100,\"c\":\"true\",\"d\":false,\"e\":1795779000}");
    CHECK_STR(b->recs[1].error, "map cast a to int: \"abc\" is not a number");
    CHECK_STR(b->recs[2].error, "map cast b to float: an array cannot become a number");
    CHECK_STR(b->recs[3].error, "map cast c to string: an object cannot become a string");
    CHECK_STR(b->recs[4].error,
              "map cast d to bool: \"maybe\" is not a boolean (true/false/yes/no/1/0)");
    CHECK_STR(b->recs[5].error, "map cast e to timestamp: \"yesterday\" is not an RFC 3339 "
                                "timestamp");
    CHECK_INT(b->recs[6].flags, SL_REC_PARSED); /* null and missing are left alone */
    CHECK_STR(rec_json(&b->recs[6]), "{\"a\":null,\"z\":1}");
    CHECK_STR(b->recs[7].error, "map cast a to int: 1e+30 does not fit in a 64-bit integer");
    CHECK_STR(why_of(&b->recs[1]), "cast|int|$.a|int|abc");
    CHECK_STR(why_of(&b->recs[2]), "cast|float|$.b|float|[1]");
    CHECK_STR(why_of(&b->recs[3]), "cast|string|$.c|string|{\"x\":1}");
    CHECK_STR(why_of(&b->recs[4]), "cast|bool|$.d|bool|maybe");
    CHECK_STR(why_of(&b->recs[5]), "cast|timestamp|$.e|timestamp|yesterday");
    CHECK_STR(why_of(&b->recs[7]), "cast|int|$.a|int|1e30");
    CHECK_STR(rec_json(&b->recs[8]), "{\"d\":false,\"a\":1,\"b\":0}");
    for (int i = 1; i <= 7; i++)
        if (i != 6)
            CHECK_INT(b->recs[i].flags, SL_REC_PARSED | SL_REC_BAD);
    sl_batch_unref(b);
    sl_transform_map.close(st);
    sl_cfg_destroy(doc);
}

static void test_map_cast_long_value(void)
{
    /* The reason's actual value is cut at 64 bytes, at a character boundary. */
    char text[256];
    snprintf(text, sizeof text, "{\"a\":\"%s\u00e9%s\"}",
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "tail");
    const char *texts[] = {text, "{\"a\":{\"k\":\"v\"}}", NULL};
    struct sl_cfg_doc *doc;
    void *st;
    struct sl_error err;
    REQUIRE(start(&sl_transform_map, "cast: {a: int}\n", &doc, &st, &err) == SL_OK);
    struct sl_batch *b = make_batch(texts);
    CHECK_INT(run(&sl_transform_map, st, b), SL_OK);
    /* 63 x, then the 2-byte e-acute would straddle byte 64: cut before it. */
    CHECK_STR(
        why_of(&b->recs[0]),
        "cast|int|$.a|int|xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...");
    CHECK_STR(why_of(&b->recs[1]), "cast|int|$.a|int|{\"k\":\"v\"}");
    sl_batch_unref(b);
    sl_transform_map.close(st);
    sl_cfg_destroy(doc);
}

static void test_map_failures(void)
{
    const char *yaml = "set: {a.b: '1', c: 'x * 2'}\n";
    const char *texts[] = {"{\"a\":5,\"x\":1}", "{\"a\":{},\"x\":\"s\"}", "{\"x\":2}", "7", NULL};
    struct sl_cfg_doc *doc;
    void *st;
    struct sl_error err;
    REQUIRE(start(&sl_transform_map, yaml, &doc, &st, &err) == SL_OK);
    struct sl_batch *b = make_batch(texts);
    b->recs[2].flags |= SL_REC_BAD; /* rejected upstream: untouched */
    b->recs[2].error = "earlier";
    CHECK_INT(run(&sl_transform_map, st, b), SL_OK);
    CHECK_STR(b->recs[0].error, "map set a.b = 1: cannot set the field: the path goes through a "
                                "value that is not an object or array");
    CHECK_STR(b->recs[1].error, "map set c: operator * needs two numbers, got string and number "
                                "(column 2 of expression `x * 2`)");
    CHECK_STR(b->recs[2].error, "earlier");
    CHECK(b->recs[2].edits == NULL);
    CHECK_STR(b->recs[3].error,
              "map: the record is a JSON number, not an object; map works on the fields of "
              "objects");
    CHECK_STR(b->recs[0].error_stage, "t");
    CHECK_STR(why_of(&b->recs[0]), "not_object|path|$.a.b|object or array along the path|-");
    CHECK_STR(why_of(&b->recs[1]), "expression|type_error|$.c|-|-");
    CHECK_STR(why_of(&b->recs[3]), "not_object|object|$|object|number");
    sl_batch_unref(b);
    sl_transform_map.close(st);
    sl_cfg_destroy(doc);
}

static void test_map_config_errors(void)
{
    CHECK_STR(init_error(&sl_transform_map, "inputs: [a]\n"),
              "SL_ECONFIG t.yaml:1:1: map t: nothing to do; give at least one of set, rename, "
              "drop, cast or default");
    CHECK_STR(init_error(&sl_transform_map, "cast: {a: integer}\n"),
              "SL_ECONFIG t.yaml:1:11: cast.a: unknown type \"integer\"; use int, float, string, "
              "bool or timestamp");
    CHECK_STR(init_error(&sl_transform_map, "set: {x: 'upper(a'}\n"),
              "SL_ECONFIG t.yaml:1:10: set.x: unexpected end of expression; expected ',' or ')' "
              "in the argument list at column 7 of the expression: upper(a");
    CHECK_STR(init_error(&sl_transform_map, "set: [a]\n"),
              "SL_ECONFIG t.yaml:1:6: set: expected a map of field path -> value");
    CHECK_STR(init_error(&sl_transform_map, "drop: {a: b}\n"),
              "SL_ECONFIG t.yaml:1:7: drop: expected a list of field paths");
    CHECK_STR(init_error(&sl_transform_map, "default: {x: [1]}\n"),
              "SL_ECONFIG t.yaml:1:14: default.x: expected an expression string");
    CHECK_STR(init_error(&sl_transform_map, "drop: [a, '']\n")[0] == 'S' ? "ok" : "no", "ok");
    CHECK_STR(init_error(&sl_transform_map, "drop: a\n"), "SL_OK ");
}

static void test_route(void)
{
    const char *yaml = "route:\n"
                       "  purchases: 'event_type == \"purchase\"'\n"
                       "  big: amount > 100\n"
                       "  mobile: 'device.os in [\"ios\", \"android\"]'\n";
    const char *texts[] = {
        "{\"event_type\":\"purchase\",\"amount\":500,\"device\":{\"os\":\"ios\"}}",
        "{\"event_type\":\"view\",\"amount\":1}",
        "{\"event_type\":\"purchase\",\"amount\":5}",
        "{\"event_type\":\"view\",\"amount\":\"x\"}",
        "{\"event_type\":\"view\",\"amount\":1000}",
        "\"just a string\"",
        NULL};
    struct sl_cfg_doc *doc;
    void *st;
    struct sl_error err;
    REQUIRE(start(&sl_transform_route, yaml, &doc, &st, &err) == SL_OK);
    struct sl_batch *b = make_batch(texts);
    b->recs[4].flags |= SL_REC_DROPPED;
    CHECK_INT(run(&sl_transform_route, st, b), SL_OK);
    CHECK_INT(b->outmask[0], 0x7); /* purchases, big, mobile */
    CHECK_INT(b->outmask[1], 0x8); /* _unmatched */
    CHECK_INT(b->outmask[2], 0x1);
    CHECK_INT(b->outmask[3], 0);
    CHECK_INT(b->recs[3].flags, SL_REC_PARSED | SL_REC_BAD);
    CHECK_STR(b->recs[3].error, "route big: operator > cannot compare string with number "
                                "(column 7 of expression `amount > 100`)");
    CHECK_STR(why_of(&b->recs[3]), "expression|type_error|-|-|-");
    CHECK_INT(b->recs[5].flags, SL_REC_PARSED | SL_REC_BAD);
    CHECK_STR(why_of(&b->recs[5]), "not_object|object|$|object|string");
    CHECK_STR(b->recs[5].error, "route: the record is a JSON string, not an object, so the "
                                "fields the conditions read do not exist");
    CHECK_INT(b->outmask[5], 0);
    CHECK_INT(b->outmask[4], 0); /* dropped upstream: not routed */
    for (int i = 0; i < 3; i++)  /* routing never edits */
        CHECK_STR(rec_json(&b->recs[i]), texts[i]);
    /* Without an output mask the engine broke its side of the contract. */
    b->outmask = NULL;
    CHECK_INT(run(&sl_transform_route, st, b), SL_ESTATE);
    sl_batch_unref(b);
    sl_transform_route.close(st);
    sl_cfg_destroy(doc);
}

static void test_route_config_errors(void)
{
    CHECK_STR(init_error(&sl_transform_route, "inputs: [a]\n"),
              "SL_ECONFIG t.yaml:1:1: route t: missing required option 'route' (a map of output "
              "name -> condition)");
    CHECK_STR(init_error(&sl_transform_route, "route: {}\n"),
              "SL_ECONFIG t.yaml:1:8: route: expected a map of output name -> condition with at "
              "least one entry");
    CHECK_STR(init_error(&sl_transform_route, "route: {_unmatched: 'true'}\n"),
              "SL_ECONFIG t.yaml:1:21: route: the output name _unmatched is reserved for records "
              "no condition matches");
    CHECK_STR(init_error(&sl_transform_route, "route: {a: 'true', b: 'x =! 1'}\n"),
              "SL_ECONFIG t.yaml:1:23: route.b: unexpected '=': write == to compare at column 2 "
              "of the expression: x =! 1");
    char yaml[4096];
    size_t o = (size_t)snprintf(yaml, sizeof yaml, "route:\n");
    for (int i = 0; i < 64; i++)
        o += (size_t)snprintf(yaml + o, sizeof yaml - o, "  r%d: 'true'\n", i);
    CHECK_STR(init_error(&sl_transform_route, yaml),
              "SL_ECONFIG t.yaml:2:3: route: 64 outputs; at most 63 are supported");
}

int main(void)
{
    if (sl_json_parser_create(&parser))
        return 2;
    RUN(test_plugin_tables);
    RUN(test_filter);
    RUN(test_filter_workers);
    RUN(test_filter_config_errors);
    RUN(test_map_order);
    RUN(test_map_casts);
    RUN(test_map_cast_long_value);
    RUN(test_map_failures);
    RUN(test_map_config_errors);
    RUN(test_route);
    RUN(test_route_config_errors);
    sl_json_parser_destroy(parser);
    return TEST_DONE();
}
