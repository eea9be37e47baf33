/*
 * test_quality.c - quality gates (src/quality/): compiling the `quality:` list with its
 * errors and positions, each check's value over crafted units, default and written
 * bounds, the strongest failing action, freshness against a fixed clock, unique()'s cap,
 * and the summary helper.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/alloc.h"
#include "sluice/batch.h"
#include "sluice/config.h"
#include "sluice/quality.h"
#include "quality/quality_internal.h"
#include "test.h"

static struct sl_json_parser *parser;
static const char *const comps[] = {"clicks", "buys", "warehouse"};

/* Compile the quality list of a YAML text. Returns rc; *q set on success. */
static sl_rc compile(const char *yaml, struct sl_quality **q, struct sl_error *err)
{
    struct sl_cfg_doc *doc = NULL;
    sl_error_clear(err);
    *q = NULL;
    sl_rc rc = sl_cfg_load_string(yaml, strlen(yaml), "p.yaml", "/tmp", &doc, err);
    if (rc) {
        fprintf(stderr, "bad test YAML: %s\n", err->msg);
        exit(2);
    }
    rc = sl_quality_compile(doc, sl_cfg_get(doc->root, "quality"), comps, 3, q, err);
    sl_cfg_destroy(doc);
    return rc;
}

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
    return b;
}

#define MAX_RESULTS 16
/* Results, with copies of the gate and check strings (the gates die before the checks). */
struct results {
    size_t n;
    struct sl_gate_result r[MAX_RESULTS];
    char gate[MAX_RESULTS][64], check[MAX_RESULTS][128];
};

static void collect(void *ctx, const struct sl_gate_result *r)
{
    struct results *rs = ctx;
    if (rs->n == MAX_RESULTS)
        return;
    rs->r[rs->n] = *r;
    snprintf(rs->gate[rs->n], sizeof rs->gate[0], "%s", r->gate);
    snprintf(rs->check[rs->n], sizeof rs->check[0], "%s", r->check);
    rs->r[rs->n].gate = rs->gate[rs->n];
    rs->r[rs->n].check = rs->check[rs->n];
    rs->n++;
}

/* Compile yaml (gates on "buys"), add the batches of texts, judge at now_ns. */
static enum sl_gate_action judge(const char *yaml, const char *const *texts, uint64_t now_ns,
                                 struct results *rs)
{
    struct sl_error err;
    struct sl_quality *q;
    memset(rs, 0, sizeof *rs);
    if (compile(yaml, &q, &err)) {
        fprintf(stderr, "compile failed: %s\n", err.msg);
        return (enum sl_gate_action) - 1;
    }
    struct sl_quality_unit *u;
    if (sl_quality_unit_create(q, 1, &u))
        exit(2);
    struct sl_batch *b = make_batch(texts);
    if (sl_quality_unit_add(u, b))
        exit(2);
    enum sl_gate_action a = sl_quality_unit_judge(u, now_ns, collect, rs);
    sl_batch_unref(b);
    sl_quality_unit_destroy(u);
    sl_quality_destroy(q);
    return a;
}

static const char *const five[] = {
    "{\"id\":1,\"amount\":10,\"status\":\"paid\",\"ts\":\"2026-11-27T12:00:00Z\"}",
    "{\"id\":2,\"amount\":null,\"status\":\"refunded\",\"ts\":1795780800}",
    "{\"id\":2.0,\"status\":\"PAID\",\"ts\":\"not a time\"}",
    "{\"id\":{\"a\":1,\"b\":[1,2]},\"amount\":-5,\"status\":null}",
    "{\"id\":{\"b\":[1,2],\"a\":1e0},\"amount\":3,\"ts\":\"2026-11-27T13:30:00.5+01:00\"}",
    NULL};

static void test_row_count(void)
{
    struct results rs;
    CHECK_INT(judge("quality:\n  - {name: g, on: buys, check: row_count, min: 5, max: 5}\n", five,
                    0, &rs),
              SL_GATE_PASS);
    REQUIRE(rs.n == 1);
    CHECK_DBL(rs.r[0].value, 5, 0);
    CHECK_INT(rs.r[0].passed, 1);
    CHECK_STR(rs.r[0].gate, "g");
    CHECK_STR(rs.r[0].check, "row_count");
    CHECK_INT(rs.r[0].action, SL_GATE_FAIL); /* the default action */
    CHECK_STR(rs.r[0].message, "row_count = 5; min 5, max 5");
    CHECK_INT(judge("quality:\n  - {name: g, on: buys, check: row_count, min: 6, action: warn}\n",
                    five, 0, &rs),
              SL_GATE_WARN);
    CHECK_INT(rs.r[0].passed, 0);
    CHECK_STR(rs.r[0].message, "row_count = 5; min 6");
}

static void test_null_rate(void)
{
    struct results rs;
    /* amount missing in record 3, null in record 2: 2 of 5. Default bound: max 0. */
    CHECK_INT(judge("quality:\n  - {name: g, on: buys, check: \"null_rate(amount)\", action: "
                    "quarantine}\n",
                    five, 0, &rs),
              SL_GATE_QUARANTINE);
    REQUIRE(rs.n == 1);
    CHECK_DBL(rs.r[0].value, 0.4, 1e-12);
    CHECK_INT(rs.r[0].has_min, 0);
    CHECK_INT(rs.r[0].has_max, 1);
    CHECK_DBL(rs.r[0].max, 0, 0);
    CHECK_STR(rs.r[0].message, "null_rate(amount) = 0.4 (2 of 5 records missing or null); max 0");
    CHECK_INT(judge("quality:\n  - {name: g, on: buys, check: null_rate(amount), max: 0.4}\n", five,
                    0, &rs),
              SL_GATE_PASS);
    CHECK_INT(rs.r[0].passed, 1);
    /* A nested path. */
    CHECK_INT(judge("quality:\n  - {name: g, on: buys, check: \"null_rate(id.b[1])\", max: 0.6}\n",
                    five, 0, &rs),
              SL_GATE_PASS);
    CHECK_DBL(rs.r[0].value, 0.6, 1e-12);
}

static void test_unique(void)
{
    struct results rs;
    /* ids: 1, 2, 2.0 (= 2), {a:1,b:[1,2]}, {b:[1,2],a:1e0} (= the previous): 2 repeats. */
    CHECK_INT(judge("quality:\n  - {name: u, on: buys, check: unique(id)}\n", five, 0, &rs),
              SL_GATE_FAIL);
    CHECK_DBL(rs.r[0].value, 2, 0);
    CHECK_STR(rs.r[0].message, "unique(id) = 2 repeated values over 5 records; max 0");
    /* Missing and null are not repeats: status has one null, one missing, rest distinct. */
    CHECK_INT(judge("quality:\n  - {name: u, on: buys, check: unique(status)}\n", five, 0, &rs),
              SL_GATE_PASS);
    CHECK_DBL(rs.r[0].value, 0, 0);
    /* Strings compare by decoded bytes: "a" and "\u0061" are one value. */
    static const char *const esc[] = {"{\"k\":\"a\"}",     "{\"k\":\"\\u0061\"}", "{\"k\":\"A\"}",
                                      "{\"k\":[1,\"a\"]}", "{\"k\":[\"a\",1]}",   NULL};
    CHECK_INT(judge("quality:\n  - {name: u, on: buys, check: unique(k), max: 1}\n", esc, 0, &rs),
              SL_GATE_PASS);
    CHECK_DBL(rs.r[0].value, 1, 0);
}

static void test_unique_cap(void)
{
    struct results rs;
    static const char *const four[] = {"{\"k\":1}", "{\"k\":2}", "{\"k\":1}", "{\"k\":3}", NULL};
    CHECK_INT(judge("quality:\n  - {name: u, on: buys, check: unique(k), max: 5, max_distinct: "
                    "2, action: warn}\n",
                    four, 0, &rs),
              SL_GATE_WARN);
    CHECK_INT(rs.r[0].passed, 0);
    CHECK_STR(rs.r[0].message, "unique(k): more than 2 distinct values in one unit, the most this "
                               "gate remembers; raise max_distinct (16-32 bytes of memory per "
                               "value)");
    CHECK_INT(judge("quality:\n  - {name: u, on: buys, check: unique(k), max_distinct: 3}\n", four,
                    0, &rs),
              SL_GATE_FAIL);
    CHECK_DBL(rs.r[0].value, 1, 0);
}

static void test_unique_many(void)
{
    /* Many distinct values across several batches and a reset: the table grows and forgets. */
    struct sl_error err;
    struct sl_quality *q;
    REQUIRE(compile("quality:\n  - {name: u, on: buys, check: unique(k)}\n", &q, &err) == SL_OK);
    struct sl_quality_unit *u;
    REQUIRE(sl_quality_unit_create(q, 1, &u) == SL_OK);
    static char texts[3000][32];
    const char *ptrs[3001];
    for (int i = 0; i < 3000; i++) {
        snprintf(texts[i], sizeof texts[i], "{\"k\":\"v%d\"}", i % 2500);
        ptrs[i] = texts[i];
    }
    ptrs[3000] = NULL;
    struct sl_batch *b = make_batch(ptrs);
    CHECK_INT(sl_quality_unit_add(u, b), SL_OK);
    struct results rs = {0};
    CHECK_INT(sl_quality_unit_judge(u, 0, collect, &rs), SL_GATE_FAIL);
    CHECK_DBL(rs.r[0].value, 500, 0);
    sl_quality_unit_reset(u);
    rs.n = 0;
    static const char *const one[] = {"{\"k\":\"v1\"}", NULL};
    struct sl_batch *b2 = make_batch(one);
    CHECK_INT(sl_quality_unit_add(u, b2), SL_OK);
    CHECK_INT(sl_quality_unit_judge(u, 0, collect, &rs), SL_GATE_PASS);
    CHECK_DBL(rs.r[0].value, 0, 0);
    CHECK_STR(rs.r[0].message, "unique(k) = 0 repeated values over 1 records; max 0");
    sl_batch_unref(b);
    sl_batch_unref(b2);
    sl_quality_unit_destroy(u);
    sl_quality_destroy(q);
}

static void test_accepted_values(void)
{
    struct results rs;
    /* status: paid, refunded, PAID, null, missing. Accepted: paid, refunded -> 3 of 5 not. */
    CHECK_INT(judge("quality:\n  - {name: a, on: buys, check: \"accepted_values(status, "
                    "['paid', \\\"refunded\\\"])\", max: 0.5}\n",
                    five, 0, &rs),
              SL_GATE_FAIL);
    CHECK_DBL(rs.r[0].value, 0.6, 1e-12);
    CHECK_STR(rs.r[0].message, "accepted_values(status, ['paid', \"refunded\"]) = 0.6 (3 of 5 "
                               "records not accepted); max 0.5");
    /* null in the list accepts both null and missing. */
    CHECK_INT(judge("quality:\n  - {name: a, on: buys, check: \"accepted_values(status, "
                    "['paid', 'refunded', 'PAID', null])\"}\n",
                    five, 0, &rs),
              SL_GATE_PASS);
    CHECK_DBL(rs.r[0].value, 0, 0);
    /* Numbers by value, booleans. */
    static const char *const nums[] = {"{\"n\":1}", "{\"n\":1.0}", "{\"n\":2}", "{\"n\":true}",
                                       NULL};
    CHECK_INT(judge("quality:\n  - {name: a, on: buys, check: \"accepted_values(n, [1, true])\"}\n",
                    nums, 0, &rs),
              SL_GATE_FAIL);
    CHECK_DBL(rs.r[0].value, 0.25, 1e-12);
}

static void test_freshness(void)
{
    struct results rs;
    /* Timestamps: 12:00Z, 1795780800 (epoch seconds, also 12:00Z), unparseable, none,
     * 13:30:00.5+01:00 (= 12:30:00.5Z). Newest 12:30:00.5Z. */
    double newest = 1795782600.5;
    CHECK_DBL(newest - 1795780800, 1800.5, 0);
    uint64_t now = (uint64_t)(1795782600 + 3600) * 1000000000ull;
    CHECK_INT(
        judge("quality:\n  - {name: f, on: buys, check: \"freshness(ts, 1h)\"}\n", five, now, &rs),
        SL_GATE_PASS);
    CHECK_DBL(rs.r[0].value, 3599.5, 1e-6);
    CHECK_DBL(rs.r[0].max, 3600, 0);
    CHECK_STR(rs.r[0].message, "freshness(ts, 1h) = 3600 s (newest 2026-11-27T12:30:00Z, 3 of 5 "
                               "records with a timestamp); max 3600 s");
    CHECK_INT(judge("quality:\n  - {name: f, on: buys, check: \"freshness(ts, 59m)\", action: "
                    "warn}\n",
                    five, now, &rs),
              SL_GATE_WARN);
    CHECK_INT(rs.r[0].passed, 0);
    /* No parseable timestamp fails. */
    static const char *const none[] = {"{\"ts\":\"yesterday\"}", "{\"x\":1}", NULL};
    CHECK_INT(
        judge("quality:\n  - {name: f, on: buys, check: \"freshness(ts, 1d)\"}\n", none, now, &rs),
        SL_GATE_FAIL);
    CHECK(isnan(rs.r[0].value));
    CHECK_STR(rs.r[0].message, "freshness(ts, 1d): none of 2 records has a timestamp in ts (an "
                               "RFC 3339 string or epoch seconds)");
}

static void test_rfc3339(void)
{
    double t = 0;
    CHECK_INT(sl__quality_rfc3339("1970-01-01T00:00:00Z", 20, &t), 0);
    CHECK_DBL(t, 0, 0);
    const char *s = "2000-02-29 23:59:60.25-00:30";
    CHECK_INT(sl__quality_rfc3339(s, strlen(s), &t), 0);
    CHECK_DBL(t, 951782400.0 + 86400 + 0.25 + 1800, 1e-6); /* 2000-02-29 is 951782400 */
    s = "2001-02-29T00:00:00Z";
    CHECK_INT(sl__quality_rfc3339(s, strlen(s), &t), -1);
    s = "2026-11-27T12:00:00";
    CHECK_INT(sl__quality_rfc3339(s, strlen(s), &t), -1);
    s = "2026-11-27T12:00:00.Z";
    CHECK_INT(sl__quality_rfc3339(s, strlen(s), &t), -1);
    s = "2026-11-27T12:00:00Zx";
    CHECK_INT(sl__quality_rfc3339(s, strlen(s), &t), -1);
}

static void test_ratio(void)
{
    struct results rs;
    /* amount > 0: 10 yes, null no (null > 0 is a type error or false), missing, -5 no, 3 yes. */
    CHECK_INT(judge("quality:\n  - {name: r, on: buys, check: \"ratio('amount > 0')\", min: 0.4, "
                    "max: 0.4}\n",
                    five, 0, &rs),
              SL_GATE_PASS);
    CHECK_DBL(rs.r[0].value, 0.4, 1e-12);
    /* Default: min 1. Quotes inside the expression. */
    CHECK_INT(judge("quality:\n  - {name: r, on: buys, check: \"ratio('status == \\\"paid\\\"')\","
                    " action: warn}\n",
                    five, 0, &rs),
              SL_GATE_WARN);
    CHECK_DBL(rs.r[0].value, 0.2, 1e-12);
    CHECK_INT(rs.r[0].has_min, 1);
    CHECK_DBL(rs.r[0].min, 1, 0);
    /* A rate over no records is undefined and passes. */
    static const char *const empty[] = {NULL};
    CHECK_INT(
        judge("quality:\n  - {name: r, on: buys, check: \"ratio('amount > 0')\"}\n", empty, 0, &rs),
        SL_GATE_PASS);
    CHECK(isnan(rs.r[0].value));
    CHECK_INT(rs.r[0].passed, 1);
    CHECK_STR(rs.r[0].message, "ratio('amount > 0'): no records in the unit; min 1");
}

static void test_live_only_and_strongest(void)
{
    struct sl_error err;
    struct sl_quality *q;
    REQUIRE(compile("quality:\n"
                    "  - {name: w, on: buys, check: row_count, max: 1, action: warn}\n"
                    "  - {name: n, on: buys, check: null_rate(amount), action: quarantine}\n"
                    "  - {name: other, on: clicks, check: row_count, min: 100}\n"
                    "  - {name: f, on: buys, check: row_count, min: 0}\n",
                    &q, &err) == SL_OK);
    CHECK_INT(sl_quality_count(q), 4);
    CHECK_INT(sl_quality_count_on(q, 1), 3);
    CHECK_INT(sl_quality_count_on(q, 0), 1);
    CHECK_INT(sl_quality_count_on(q, 2), 0);
    struct sl_quality_unit *u;
    REQUIRE(sl_quality_unit_create(q, 1, &u) == SL_OK);
    static const char *const t[] = {"{\"amount\":1}", "{\"amount\":null}", "{\"amount\":2}",
                                    "{\"amount\":3}", NULL};
    struct sl_batch *b = make_batch(t);
    b->recs[1].flags |= SL_REC_DROPPED; /* the null one: not looked at */
    b->recs[2].flags |= SL_REC_BAD;
    CHECK_INT(sl_quality_unit_add(u, b), SL_OK);
    struct results rs = {0};
    /* rows 2 (> max 1, warn); null_rate 0 (pass); f passes. */
    CHECK_INT(sl_quality_unit_judge(u, 0, collect, &rs), SL_GATE_WARN);
    REQUIRE(rs.n == 3);
    CHECK_STR(rs.r[0].gate, "w");
    CHECK_STR(rs.r[1].gate, "n");
    CHECK_STR(rs.r[2].gate, "f");
    CHECK_DBL(rs.r[1].value, 0, 0);
    /* A second batch in the same unit adds a null: now quarantine beats warn. */
    static const char *const t2[] = {"{\"x\":1}", NULL};
    struct sl_batch *b2 = make_batch(t2);
    CHECK_INT(sl_quality_unit_add(u, b2), SL_OK);
    struct sl_gate_summary s;
    sl_gate_summary_init(&s);
    CHECK_INT(sl_quality_unit_judge(u, 0, sl_gate_summary_add, &s), SL_GATE_QUARANTINE);
    CHECK_INT(s.action, SL_GATE_QUARANTINE);
    CHECK_INT(s.failed, 2);
    CHECK_INT(s.warned, 1);
    CHECK_STR(s.gates, "w, n");
    CHECK_STR(s.reason, "w: row_count = 3; max 1\n"
                        "n: null_rate(amount) = 0.333333 (1 of 3 records missing or null); max 0");
    CHECK_STR(sl_gate_action_name(SL_GATE_QUARANTINE), "quarantine");
    CHECK_STR(sl_gate_action_name(SL_GATE_PASS), "pass");
    sl_quality_unit_reset(u);
    CHECK_INT(sl_quality_unit_judge(u, 0, NULL, NULL), SL_GATE_PASS); /* empty: all pass */
    sl_batch_unref(b);
    sl_batch_unref(b2);
    sl_quality_unit_destroy(u);
    sl_quality_destroy(q);
}

static void test_summary_truncates(void)
{
    struct sl_gate_summary s;
    sl_gate_summary_init(&s);
    struct sl_gate_result r;
    memset(&r, 0, sizeof r);
    r.action = SL_GATE_FAIL;
    char name[200];
    memset(name, 'x', sizeof name - 1);
    name[sizeof name - 1] = 0;
    r.gate = name;
    snprintf(r.message, sizeof r.message, "m");
    for (int i = 0; i < 5; i++)
        sl_gate_summary_add(&s, &r);
    CHECK_INT(s.failed, 5);
    CHECK_INT(strlen(s.gates), sizeof s.gates - 1);
    CHECK_STR(s.gates + sizeof s.gates - 4, "...");
    r.passed = 1;
    sl_gate_summary_add(&s, &r);
    CHECK_INT(s.failed, 5);
}

/* Compile must fail with exactly msg. */
static void expect_error(const char *yaml, const char *msg)
{
    struct sl_error err;
    struct sl_quality *q = NULL;
    CHECK_INT(compile(yaml, &q, &err), SL_ECONFIG);
    CHECK(q == NULL);
    CHECK_STR(err.msg, msg);
}

static void test_compile_errors(void)
{
    expect_error("quality:\n  - {name: g, on: buys, chek: row_count}\n",
                 "p.yaml:2:5: quality[0]: missing required key \"check\"\n"
                 "p.yaml:2:25: unknown key \"chek\" in quality[0]; did you mean \"check\"?");
    expect_error("quality:\n  - {name: g, on: buy, check: \"null_rat(x)\"}\n",
                 "p.yaml:2:19: quality[0].on: \"buy\" names no component; did you mean \"buys\"?\n"
                 "p.yaml:2:32: quality[0].check: unknown check \"null_rat\"; did you mean "
                 "\"null_rate\"?");
    expect_error(
        "quality:\n  - name: g\n    on: buys\n    check: null_rate(a..b)\n",
        "p.yaml:4:24: quality[0].check: null_rate: invalid field path \"a..b\" at column 3: "
        "expected a field name after '.' (use [\"key\"] for other characters)");
    expect_error(
        "quality:\n  - {name: g, on: buys, check: \"ratio('amount >')\"}\n",
        "p.yaml:2:48: quality[0].check: ratio: unexpected end of expression; expected a value, "
        "a field or a function call");
    expect_error("quality:\n  - {name: g, on: buys, check: null_rate(x), min: 0.5, max: 0.2}\n",
                 "p.yaml:2:51: quality[0]: min 0.5 is greater than max 0.2; no value can pass");
    expect_error("quality:\n  - {name: g, on: buys, check: null_rate(x), max: 5}\n",
                 "p.yaml:2:51: quality[0].max: 5 is not a fraction; null_rate is a fraction of "
                 "records between 0 and 1 (write 0.05 for 5%)");
    expect_error("quality:\n  - {name: g, on: buys, check: row_count}\n",
                 "p.yaml:2:5: quality[0]: row_count needs a bound: add min (e.g. min: 1) or max "
                 "or both");
    expect_error("quality:\n  - {name: g, on: buys, check: \"freshness(ts, soon)\"}\n",
                 "p.yaml:2:47: quality[0].check: freshness: \"soon\" is not a maximum age; write "
                 "a duration like 30s, 15m, 2h or 1d");
    expect_error("quality:\n  - {name: g, on: buys, check: \"freshness(ts, 1h)\", max: 3}\n",
                 "p.yaml:2:58: quality[0].max: freshness takes its bound from its max_age "
                 "argument; remove max (write freshness(field, 2h))");
    expect_error("quality:\n  - {name: g, on: buys, check: \"accepted_values(s, [paid])\"}\n",
                 "p.yaml:2:53: quality[0].check: accepted_values: \"paid\" is not a value; quote "
                 "strings like 'paid', or write a number, true, false or null");
    expect_error("quality:\n  - {name: g, on: buys, check: \"unique(a, b)\"}\n",
                 "p.yaml:2:41: quality[0].check: unique: expected ')' (too many arguments)");
    expect_error("quality:\n"
                 "  - {name: g, on: buys, check: row_count, min: 1, action: quarentine}\n"
                 "  - {name: g, on: buys, check: row_count, min: x}\n",
                 "p.yaml:2:59: quality[0].action: \"quarentine\" is not one of warn, quarantine, "
                 "fail; did you mean \"quarantine\"?\n"
                 "p.yaml:3:12: quality[1].name: gate \"g\" is defined twice (first at line 2); "
                 "give each gate its own name\n"
                 "p.yaml:3:48: quality[1].min: expected a number, found \"x\"");
    expect_error("quality:\n  - {name: g, on: buys, check: null_rate(x), max_distinct: 10}\n",
                 "p.yaml:2:60: quality[0].max_distinct: max_distinct applies only to "
                 "unique(field); remove it");
    expect_error("quality: {a: 1}\n", "p.yaml:1:10: quality: expected a list of gates (each a "
                                      "map with name, on and check), found a map");
    expect_error("quality:\n  - row_count\n", "p.yaml:2:5: quality[0]: expected a map with name, "
                                              "on and check, found a string");
}

static void test_compile_ok(void)
{
    struct sl_error err;
    struct sl_quality *q;
    CHECK_INT(compile("pipeline: x\n", &q, &err), SL_OK); /* no quality: list */
    CHECK_INT(sl_quality_count(q), 0);
    sl_quality_destroy(q);
    CHECK_INT(compile("quality: []\n", &q, &err), SL_OK);
    CHECK_INT(sl_quality_count(q), 0);
    sl_quality_destroy(q);
    CHECK_INT(compile("quality:\n"
                      "  - {name: a, on: warehouse, check: \" row_count ( ) \", min: 1,\n"
                      "     description: \"something arrived\"}\n"
                      "  - {name: b, on: clicks, check: \"unique([\\\"odd, key)\\\"].x)\"}\n"
                      "  - {name: c, on: clicks, check: \"accepted_values(a, [])\"}\n",
                      &q, &err),
              SL_ECONFIG);
    CHECK_STR(err.msg, "p.yaml:5:55: quality[2].check: accepted_values: the list of values is "
                       "empty");
    CHECK_INT(compile("quality:\n"
                      "  - {name: a, on: warehouse, check: \" row_count ( ) \", min: 1,\n"
                      "     description: \"something arrived\"}\n"
                      "  - {name: b, on: clicks, check: \"unique([\\\"odd, key)\\\"].x)\"}\n",
                      &q, &err),
              SL_OK);
    REQUIRE(q);
    CHECK_INT(sl_quality_count_on(q, 2), 1);
    CHECK_STR(q->gates[0].description, "something arrived");
    CHECK_INT(q->gates[1].path.nseg, 2);
    CHECK_MEM(q->gates[1].path.seg[0].key, q->gates[1].path.seg[0].klen, "odd, key)");
    sl_quality_destroy(q);
}

static void test_alloc_failures(void)
{
    /* Every allocation of a compile that can fail must fail cleanly. */
    const char *yaml = "quality:\n"
                       "  - {name: a, on: buys, check: \"ratio('amount > 1')\", min: 0.5}\n"
                       "  - {name: b, on: buys, check: \"accepted_values(s, ['x', 'y'])\"}\n";
    struct sl_cfg_doc *doc = NULL;
    struct sl_error err;
    REQUIRE(sl_cfg_load_string(yaml, strlen(yaml), "p.yaml", "/tmp", &doc, &err) == SL_OK);
    int ok_at = 0;
    for (long n = 1; n < 200 && !ok_at; n++) {
        struct sl_quality *q = NULL;
        sl_alloc_fail_at(n);
        sl_rc rc = sl_quality_compile(doc, sl_cfg_get(doc->root, "quality"), comps, 3, &q, &err);
        sl_alloc_fail_at(0);
        if (rc == SL_OK) {
            ok_at = (int)n;
            sl_quality_destroy(q);
        } else {
            CHECK_INT(rc, SL_ENOMEM);
            CHECK(q == NULL);
        }
    }
    CHECK(ok_at > 1);
    sl_cfg_destroy(doc);
}

static void test_unit_alloc_failure(void)
{
    /* unique()'s table is the one heap allocation of add: its failure is SL_ENOMEM. */
    struct sl_error err;
    struct sl_quality *q;
    REQUIRE(compile("quality:\n  - {name: u, on: buys, check: unique(k)}\n", &q, &err) == SL_OK);
    struct sl_quality_unit *u;
    REQUIRE(sl_quality_unit_create(q, 1, &u) == SL_OK);
    static const char *const t[] = {"{\"k\":1}", NULL};
    struct sl_batch *b = make_batch(t);
    sl_alloc_fail_at(1);
    CHECK_INT(sl_quality_unit_add(u, b), SL_ENOMEM);
    sl_alloc_fail_at(0);
    sl_quality_unit_reset(u);
    CHECK_INT(sl_quality_unit_add(u, b), SL_OK);
    CHECK_INT(sl_quality_unit_judge(u, 0, NULL, NULL), SL_GATE_PASS);
    sl_batch_unref(b);
    sl_quality_unit_destroy(u);
    sl_quality_destroy(q);
}

int main(void)
{
    if (sl_json_parser_create(&parser))
        return 2;
    RUN(test_row_count);
    RUN(test_null_rate);
    RUN(test_unique);
    RUN(test_unique_cap);
    RUN(test_unique_many);
    RUN(test_accepted_values);
    RUN(test_freshness);
    RUN(test_rfc3339);
    RUN(test_ratio);
    RUN(test_live_only_and_strongest);
    RUN(test_summary_truncates);
    RUN(test_compile_errors);
    RUN(test_compile_ok);
    RUN(test_alloc_failures);
    RUN(test_unit_alloc_failure);
    sl_json_parser_destroy(parser);
    return TEST_DONE();
}
