/*
 * test_dlq.c - the dead-letter queue store (src/dlq/store.c): every stored field read
 * back exactly, idempotent keeps, filters and stats, purge, replay bookkeeping
 * (plan/pending/read/finish, rejected-again updates and merges), the format check,
 * base64 and allocation failures.
 */
#include <sqlite3.h>
#include <time.h>
#include <unistd.h>

#include "sluice/alloc.h"
#include "sluice/batch.h"
#include "sluice/dlq.h"
#include "sluice/engine.h"
#include "sluice/json.h"
#include "sluice/record.h"
#include "test.h"

static char tmpdir[128];
static struct sl_json_parser *parser;

static const char *tpath(const char *rel)
{
    static char bufs[4][256];
    static int k;
    char *b = bufs[k++ % 4];
    snprintf(b, 256, "%s/%s", tmpdir, rel);
    return b;
}

/* ---- building batches ----------------------------------------------------------------- */

/* Append a record of n bytes (NULs allowed) with id {seed, i}, parsed when it parses. */
static struct sl_record *add(struct sl_batch *b, const char *bytes, size_t n, uint64_t seed,
                             uint32_t i)
{
    struct sl_record *r = sl_batch_add(b);
    char *text = sl_arena_dup(&b->arena, bytes, n ? n : 1);
    r->text = r->orig = text;
    r->text_len = r->orig_len = (uint32_t)n;
    r->line = i + 1;
    r->offset = 10 * (uint64_t)i;
    r->id[0] = seed;
    r->id[1] = i;
    struct sl_json_error je;
    if (sl_record_parse(r, parser, 0, &b->arena, &je) == SL_OK)
        r->flags |= SL_REC_PARSED;
    return r;
}

static struct sl_batch *new_batch(const char *origin)
{
    struct sl_batch *b = NULL;
    if (sl_batch_create(0, &b) != SL_OK)
        return NULL;
    b->origin = origin;
    return b;
}

/* A record of the replay source: the original bytes plus the entry it came from. */
static struct sl_batch *replayed(uint64_t seed, uint32_t i, const char *text, int64_t entry)
{
    struct sl_batch *b = new_batch("dlq");
    struct sl_record *r = add(b, text, strlen(text), seed, i);
    r->dlq_entry = (uint64_t)entry;
    return b;
}

/* ---- collecting entries --------------------------------------------------------------- */

#define MAXE 16

/* Copies of scanned entries (pointers are only valid during the callback). */
struct copy {
    int64_t id;
    char record_id[33];
    char source[32], origin[64], stage[32], error_class[32], message[128];
    char rule[32], path[32], expected[32], actual[32], contract[32], details[128];
    unsigned char raw[64];
    size_t raw_len;
    uint64_t line, offset, true_len;
    int has_record;
    char record[128];
    int64_t attempts, first_seen_ns, last_seen_ns, replay;
};

struct got {
    struct copy e[MAXE];
    int n;
};

static int collect(void *ctx, const struct sl_dlq_entry *e)
{
    struct got *g = ctx;
    if (g->n == MAXE)
        return 1;
    struct copy *c = &g->e[g->n++];
    memset(c, 0, sizeof *c);
    c->id = e->id;
    memcpy(c->record_id, e->record_id, 33);
    snprintf(c->source, sizeof c->source, "%s", e->source);
    snprintf(c->origin, sizeof c->origin, "%s", e->origin);
    snprintf(c->stage, sizeof c->stage, "%s", e->stage);
    snprintf(c->error_class, sizeof c->error_class, "%s", e->error_class);
    snprintf(c->message, sizeof c->message, "%s", e->message);
    snprintf(c->rule, sizeof c->rule, "%s", e->rule);
    snprintf(c->path, sizeof c->path, "%s", e->path);
    snprintf(c->expected, sizeof c->expected, "%s", e->expected);
    snprintf(c->actual, sizeof c->actual, "%s", e->actual);
    snprintf(c->contract, sizeof c->contract, "%s", e->contract);
    snprintf(c->details, sizeof c->details, "%s", e->details);
    c->raw_len = e->raw_len;
    memcpy(c->raw, e->raw, e->raw_len < sizeof c->raw ? e->raw_len : sizeof c->raw);
    c->line = e->line;
    c->offset = e->offset;
    c->true_len = e->true_len;
    c->has_record = e->record != NULL;
    if (e->record) {
        CHECK_INT(strlen(e->record), e->record_len);
        snprintf(c->record, sizeof c->record, "%.*s", (int)e->record_len, e->record);
    }
    c->attempts = e->attempts;
    c->first_seen_ns = e->first_seen_ns;
    c->last_seen_ns = e->last_seen_ns;
    c->replay = e->replay;
    return 0;
}

static struct got scan(struct sl_dlq *d, const struct sl_dlq_filter *f)
{
    struct got g;
    memset(&g, 0, sizeof g);
    struct sl_error err;
    sl_error_clear(&err);
    sl_rc rc = sl_dlq_scan(d, f, collect, &g, &err);
    if (rc)
        fprintf(stderr, "  (scan: %s)\n", err.msg);
    CHECK_INT(rc, SL_OK);
    return g;
}

static uint64_t count(struct sl_dlq *d)
{
    uint64_t n = 99;
    CHECK_INT(sl_dlq_count(d, &n, NULL), SL_OK);
    return n;
}

static struct sl_dlq *open_dlq(const char *rel)
{
    struct sl_dlq *d = NULL;
    struct sl_error err;
    sl_error_clear(&err);
    sl_rc rc = sl_dlq_open(tpath(rel), 1, 0, &d, &err);
    if (rc)
        fprintf(stderr, "  (open: %s)\n", err.msg);
    return d;
}

static sl_rc keep(struct sl_dlq *d, struct sl_batch *b, const char *source, uint64_t replay,
                  uint64_t *kept)
{
    struct sl_error err;
    sl_error_clear(&err);
    sl_rc rc = sl_dlq_keep(d, b, source, replay, kept, &err);
    if (rc)
        fprintf(stderr, "  (keep: %s)\n", err.msg);
    return rc;
}

static const char bad_json[] = {'{', '"', 'a', '"', ':', '\xff', '\0', 'x'}; /* 8 bytes */

/*
 * The fixture batch of origin data/in.ndjson: r0 good; r1 invalid JSON with invalid UTF-8
 * and a NUL; r2 a contract violation of a parsed, edited record; r3 too large (cut);
 * r4 rejected without a structured reason; r5 rejected but already kept.
 */
static struct sl_batch *fixture(uint64_t seed)
{
    struct sl_batch *b = new_batch("data/in.ndjson");
    add(b, "{\"ok\":1}", 8, seed, 0);

    struct sl_record *r1 = add(b, bad_json, sizeof bad_json, seed, 1);
    struct sl_reject_info w1 = {.error_class = "invalid_json",
                                .rule = "invalid_utf8",
                                .path = "$",
                                .expected = "UTF-8",
                                .actual = "\xff"};
    sl_record_reject_why(b, r1, "parse", &w1, "invalid UTF-8 at byte %d: \xff", 5);

    struct sl_record *r2 = add(b, "{\"age\":\"x\"}", 11, seed, 2);
    struct sl_value five = sl_value_number(5);
    CHECK_INT(sl_record_set_key(r2, "n", 1, &five, &b->arena), SL_OK);
    struct sl_reject_info w2 = {
        .error_class = "contract",
        .rule = "type",
        .path = "$.age",
        .expected = "integer",
        .actual = "\"x\"",
        .contract = "users@3",
        .details = "[{\"path\":\"$.age\",\"rule\":\"type\"}]",
    };
    sl_record_reject_why(b, r2, "validate", &w2, "age: expected integer, got \"x\"");

    struct sl_record *r3 = add(b, "{\"bi", 4, seed, 3);
    struct sl_reject_info w3 = {.error_class = "record_too_large", .true_len = 1000};
    sl_record_reject_why(b, r3, "parse", &w3, "record of 1000 bytes exceeds max_record_bytes");

    struct sl_record *r4 = add(b, "{\"v\":2}", 7, seed, 4);
    sl_record_reject(b, r4, "enrich", "lookup failed");

    struct sl_record *r5 = add(b, "[]", 2, seed, 5);
    sl_record_reject(b, r5, "parse", "already kept");
    r5->flags |= SL_REC_KEPT;
    return b;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_keep_fields(void)
{
    struct sl_dlq *d = open_dlq("fields.db");
    REQUIRE(d);
    struct sl_batch *b = fixture(0x1234);
    REQUIRE(b);
    uint64_t before = sl_now_real_ns(), kept = 0;
    CHECK_INT(keep(d, b, "clicks", 0, &kept), SL_OK);
    uint64_t after = sl_now_real_ns();
    CHECK_INT(kept, 4);
    CHECK_INT(b->recs[0].flags & SL_REC_KEPT, 0);
    for (int i = 1; i <= 5; i++)
        CHECK(b->recs[i].flags & SL_REC_KEPT);
    CHECK_INT(count(d), 4);

    struct got g = scan(d, NULL);
    REQUIRE(g.n == 4);
    const struct copy *e = &g.e[0];
    CHECK_INT(e->id, 1);
    CHECK_STR(e->record_id, "00000000000012340000000000000001");
    CHECK_STR(e->source, "clicks");
    CHECK_STR(e->origin, "data/in.ndjson");
    CHECK_INT(e->line, 2);
    CHECK_INT(e->offset, 10);
    CHECK_STR(e->stage, "parse");
    CHECK_STR(e->error_class, "invalid_json");
    CHECK_STR(e->message, "invalid UTF-8 at byte 5: \xff");
    CHECK_STR(e->rule, "invalid_utf8");
    CHECK_STR(e->path, "$");
    CHECK_STR(e->expected, "UTF-8");
    CHECK_STR(e->actual, "\xff");
    CHECK_STR(e->contract, "");
    CHECK_STR(e->details, "");
    CHECK_INT(e->raw_len, sizeof bad_json);
    CHECK(memcmp(e->raw, bad_json, sizeof bad_json) == 0);
    CHECK_INT(e->true_len, sizeof bad_json);
    CHECK_INT(e->has_record, 0);
    CHECK_INT(e->attempts, 1);
    CHECK(e->first_seen_ns >= (int64_t)before && e->first_seen_ns <= (int64_t)after);
    CHECK_INT(e->last_seen_ns, e->first_seen_ns);
    CHECK_INT(e->replay, 0);

    e = &g.e[1];
    CHECK_INT(e->id, 2);
    CHECK_STR(e->record_id, "00000000000012340000000000000002");
    CHECK_STR(e->stage, "validate");
    CHECK_STR(e->error_class, "contract");
    CHECK_STR(e->message, "age: expected integer, got \"x\"");
    CHECK_STR(e->rule, "type");
    CHECK_STR(e->path, "$.age");
    CHECK_STR(e->expected, "integer");
    CHECK_STR(e->actual, "\"x\"");
    CHECK_STR(e->contract, "users@3");
    CHECK_STR(e->details, "[{\"path\":\"$.age\",\"rule\":\"type\"}]");
    CHECK_MEM(e->raw, e->raw_len, "{\"age\":\"x\"}");
    CHECK_INT(e->true_len, 11);
    CHECK_INT(e->has_record, 1);
    CHECK_STR(e->record, "{\"age\":\"x\",\"n\":5}"); /* as rejected: the edit included */
    CHECK_INT(e->line, 3);
    CHECK_INT(e->offset, 20);

    e = &g.e[2];
    CHECK_STR(e->error_class, "record_too_large");
    CHECK_MEM(e->raw, e->raw_len, "{\"bi");
    CHECK_INT(e->true_len, 1000);
    CHECK_INT(e->has_record, 0);
    CHECK_STR(e->rule, "");

    e = &g.e[3];
    CHECK_STR(e->stage, "enrich");
    CHECK_STR(e->error_class, "unknown");
    CHECK_STR(e->message, "lookup failed");
    CHECK_STR(e->record, "{\"v\":2}");
    CHECK_INT(e->true_len, 7);

    /* Nothing left to keep: a second call writes nothing. */
    CHECK_INT(keep(d, b, "clicks", 0, &kept), SL_OK);
    CHECK_INT(kept, 0);
    sl_batch_unref(b);
    sl_dlq_close(d);

    /* Reopened (create = 0), the same entries are there. */
    struct sl_dlq *d2 = NULL;
    CHECK_INT(sl_dlq_open(tpath("fields.db"), 0, 1, &d2, NULL), SL_OK);
    REQUIRE(d2);
    CHECK_INT(count(d2), 4);
    sl_dlq_close(d2);
}

static void test_idempotent(void)
{
    struct sl_dlq *d = open_dlq("idem.db");
    REQUIRE(d);
    struct sl_batch *b = fixture(7);
    CHECK_INT(keep(d, b, "clicks", 0, NULL), SL_OK);
    struct got g1 = scan(d, NULL);
    sl_batch_unref(b);
    usleep(2000);
    /* The same batch read again after a crash: the same ids rejected by the same stages. */
    b = fixture(7);
    uint64_t kept = 0;
    CHECK_INT(keep(d, b, "clicks", 0, &kept), SL_OK);
    CHECK_INT(kept, 4);
    sl_batch_unref(b);
    struct got g2 = scan(d, NULL);
    CHECK_INT(g2.n, 4);
    for (int i = 0; i < g2.n && i < g1.n; i++) {
        CHECK_INT(g2.e[i].id, g1.e[i].id);
        CHECK_INT(g2.e[i].attempts, 1);
        CHECK_INT(g2.e[i].first_seen_ns, g1.e[i].first_seen_ns);
        CHECK(g2.e[i].last_seen_ns > g1.e[i].last_seen_ns);
    }
    /* The same record rejected by another stage is another entry. */
    b = new_batch("data/in.ndjson");
    struct sl_record *r = add(b, "{\"v\":2}", 7, 7, 4);
    sl_record_reject(b, r, "sink", "constraint failed");
    CHECK_INT(keep(d, b, "clicks", 0, NULL), SL_OK);
    sl_batch_unref(b);
    CHECK_INT(count(d), 5);
    sl_dlq_close(d);
}

struct groups {
    char stage[8][32], cls[8][32];
    uint64_t count[8];
    int n;
};

static int collect_group(void *ctx, const struct sl_dlq_group *g)
{
    struct groups *s = ctx;
    if (s->n < 8) {
        snprintf(s->stage[s->n], 32, "%s", g->stage);
        snprintf(s->cls[s->n], 32, "%s", g->error_class);
        s->count[s->n] = g->count;
        CHECK(g->first_seen_ns <= g->last_seen_ns);
        s->n++;
    }
    return 0;
}

static void test_filters_stats(void)
{
    struct sl_dlq *d = open_dlq("filters.db");
    REQUIRE(d);
    struct sl_batch *b = fixture(1); /* ids 1..4: parse, validate, parse, enrich */
    CHECK_INT(keep(d, b, "clicks", 0, NULL), SL_OK);
    sl_batch_unref(b);
    usleep(2000);
    int64_t mid = (int64_t)sl_now_real_ns();
    usleep(2000);
    b = new_batch("-");
    for (uint32_t i = 0; i < 3; i++) {
        struct sl_record *r = add(b, "nope", 4, 2, i);
        struct sl_reject_info w = {.error_class = "invalid_json"};
        sl_record_reject_why(b, r, "parse", &w, "not JSON");
    }
    CHECK_INT(keep(d, b, "stdin", 0, NULL), SL_OK); /* ids 5..7 */
    sl_batch_unref(b);

    struct sl_dlq_filter f = {.stage = "parse"};
    struct got g = scan(d, &f);
    CHECK_INT(g.n, 5);
    CHECK_INT(g.e[0].id, 1);
    CHECK_INT(g.e[1].id, 3);
    CHECK_INT(g.e[4].id, 7);
    CHECK_STR(g.e[4].origin, "-");
    CHECK_STR(g.e[4].source, "stdin");

    f = (struct sl_dlq_filter){.error_class = "invalid_json"};
    g = scan(d, &f);
    CHECK_INT(g.n, 4);
    f = (struct sl_dlq_filter){.stage = "parse", .error_class = "record_too_large"};
    g = scan(d, &f);
    CHECK_INT(g.n, 1);
    CHECK_INT(g.e[0].id, 3);
    f = (struct sl_dlq_filter){.since_ns = mid};
    g = scan(d, &f);
    CHECK_INT(g.n, 3);
    CHECK_INT(g.e[0].id, 5);
    f = (struct sl_dlq_filter){.id = 2};
    g = scan(d, &f);
    CHECK_INT(g.n, 1);
    CHECK_STR(g.e[0].stage, "validate");
    f = (struct sl_dlq_filter){.stage = "parse", .limit = 2};
    g = scan(d, &f);
    CHECK_INT(g.n, 2);
    CHECK_INT(g.e[1].id, 3);
    f = (struct sl_dlq_filter){.stage = "nosuch"};
    g = scan(d, &f);
    CHECK_INT(g.n, 0);

    struct groups s;
    memset(&s, 0, sizeof s);
    CHECK_INT(sl_dlq_stats(d, NULL, collect_group, &s, NULL), SL_OK);
    REQUIRE(s.n == 4);
    /* Largest first, then by stage and class. */
    CHECK_STR(s.stage[0], "parse");
    CHECK_STR(s.cls[0], "invalid_json");
    CHECK_INT(s.count[0], 4);
    CHECK_STR(s.stage[1], "enrich");
    CHECK_STR(s.cls[1], "unknown");
    CHECK_INT(s.count[1], 1);
    CHECK_STR(s.stage[2], "parse");
    CHECK_STR(s.cls[2], "record_too_large");
    CHECK_STR(s.stage[3], "validate");
    CHECK_INT(s.count[3], 1);
    memset(&s, 0, sizeof s);
    f = (struct sl_dlq_filter){.since_ns = mid};
    CHECK_INT(sl_dlq_stats(d, &f, collect_group, &s, NULL), SL_OK);
    CHECK_INT(s.n, 1);
    CHECK_INT(s.count[0], 3);

    /* Purge with a filter, then everything. */
    uint64_t del = 0;
    f = (struct sl_dlq_filter){.stage = "parse", .limit = 1};
    CHECK_INT(sl_dlq_purge(d, &f, &del, NULL), SL_OK);
    CHECK_INT(del, 1);
    f = (struct sl_dlq_filter){.id = 1};
    CHECK_INT(scan(d, &f).n, 0);
    f = (struct sl_dlq_filter){.error_class = "invalid_json"};
    CHECK_INT(sl_dlq_purge(d, &f, &del, NULL), SL_OK);
    CHECK_INT(del, 3);
    CHECK_INT(count(d), 3);
    CHECK_INT(sl_dlq_purge(d, NULL, &del, NULL), SL_OK);
    CHECK_INT(del, 3);
    CHECK_INT(count(d), 0);
    sl_dlq_close(d);
}

struct replays {
    int64_t id[8];
    char stage[8][32];
    uint64_t entries[8];
    int n;
};

static int collect_replay(void *ctx, const struct sl_dlq_replay *r)
{
    struct replays *s = ctx;
    if (s->n < 8) {
        s->id[s->n] = r->id;
        snprintf(s->stage[s->n], 32, "%s", r->stage);
        s->entries[s->n] = r->entries;
        s->n++;
    }
    return 0;
}

static struct replays pending(struct sl_dlq *d)
{
    struct replays s;
    memset(&s, 0, sizeof s);
    CHECK_INT(sl_dlq_replay_pending(d, collect_replay, &s, NULL), SL_OK);
    return s;
}

static struct got replay_read(struct sl_dlq *d, int64_t replay, int64_t after, size_t limit)
{
    struct got g;
    memset(&g, 0, sizeof g);
    CHECK_INT(sl_dlq_replay_read(d, replay, after, limit, collect, &g, NULL), SL_OK);
    return g;
}

static void test_replay(void)
{
    struct sl_dlq *d = open_dlq("replay.db");
    REQUIRE(d);
    struct sl_batch *b = fixture(3); /* 1 parse, 2 validate, 3 parse, 4 enrich */
    CHECK_INT(keep(d, b, "clicks", 0, NULL), SL_OK);
    sl_batch_unref(b);

    /* Plan: one replay per stage the entries go back into. */
    struct replays s;
    memset(&s, 0, sizeof s);
    struct sl_dlq_filter f = {0};
    CHECK_INT(sl_dlq_replay_plan(d, &f, NULL, collect_replay, &s, NULL), SL_OK);
    REQUIRE(s.n == 3);
    CHECK_STR(s.stage[0], "enrich");
    CHECK_INT(s.entries[0], 1);
    CHECK_STR(s.stage[1], "parse");
    CHECK_INT(s.entries[1], 2);
    CHECK_STR(s.stage[2], "validate");
    CHECK_INT(s.entries[2], 1);
    int64_t r_parse = s.id[1], r_validate = s.id[2], r_enrich = s.id[0];

    /* Planning again marks nothing new. */
    struct replays again;
    memset(&again, 0, sizeof again);
    CHECK_INT(sl_dlq_replay_plan(d, NULL, NULL, collect_replay, &again, NULL), SL_OK);
    CHECK_INT(again.n, 0);

    struct replays p = pending(d);
    CHECK_INT(p.n, 3);
    CHECK_INT(p.id[0], s.id[0]);
    CHECK_INT(p.entries[1], 2);

    /* Read in id order, after a position, with a limit. */
    struct got g = replay_read(d, r_parse, 0, 1);
    REQUIRE(g.n == 1);
    CHECK_INT(g.e[0].id, 1);
    CHECK_INT(g.e[0].replay, r_parse);
    CHECK_INT(g.e[0].raw_len, sizeof bad_json);
    g = replay_read(d, r_parse, 1, 10);
    REQUIRE(g.n == 1);
    CHECK_INT(g.e[0].id, 3);
    CHECK_INT(replay_read(d, r_parse, 3, 10).n, 0);

    /* Purge never deletes an entry of an unfinished replay. */
    uint64_t del = 9;
    CHECK_INT(sl_dlq_purge(d, NULL, &del, NULL), SL_OK);
    CHECK_INT(del, 0);
    CHECK_INT(count(d), 4);

    /* Entry 2 (validate) is rejected again during its replay, by the same stage. */
    b = replayed(3, 2, "{\"age\":\"x\"}", 2);
    struct sl_reject_info w = {.error_class = "contract", .rule = "minimum", .contract = "users@4"};
    sl_record_reject_why(b, &b->recs[0], "validate", &w, "age too small");
    uint64_t kept = 0;
    CHECK_INT(keep(d, b, "clicks", (uint64_t)r_validate, &kept), SL_OK);
    CHECK_INT(kept, 1);
    sl_batch_unref(b);
    f = (struct sl_dlq_filter){.id = 2};
    g = scan(d, &f);
    REQUIRE(g.n == 1);
    CHECK_INT(g.e[0].attempts, 2);
    CHECK_INT(g.e[0].replay, 0);
    CHECK_STR(g.e[0].rule, "minimum");
    CHECK_STR(g.e[0].contract, "users@4");
    CHECK_STR(g.e[0].path, ""); /* the new reason replaces the old one whole */
    CHECK_STR(g.e[0].message, "age too small");
    CHECK_STR(g.e[0].origin, "data/in.ndjson"); /* where it first came from stays */
    CHECK_INT(g.e[0].line, 3);
    CHECK_STR(g.e[0].record, "{\"age\":\"x\"}");
    CHECK(g.e[0].last_seen_ns > g.e[0].first_seen_ns);
    CHECK_INT(count(d), 4);
    /* Finished: nothing left marked, so nothing deleted; the entry stays. */
    uint64_t resolved = 9;
    CHECK_INT(sl_dlq_replay_finish(d, r_validate, &resolved, NULL), SL_OK);
    CHECK_INT(resolved, 0);
    CHECK_INT(count(d), 4);
    /* Finishing again is harmless; an unknown replay is SL_ENOENT. */
    CHECK_INT(sl_dlq_replay_finish(d, r_validate, &resolved, NULL), SL_OK);
    CHECK_INT(sl_dlq_replay_finish(d, 999, &resolved, NULL), SL_ENOENT);

    /* Entry 3 (parse) goes through; entry 1 is rejected again by another stage. */
    b = replayed(3, 1, "{\"a\":1}", 1);
    sl_record_reject(b, &b->recs[0], "enrich", "lookup failed");
    CHECK_INT(keep(d, b, "clicks", (uint64_t)r_parse, NULL), SL_OK);
    sl_batch_unref(b);
    f = (struct sl_dlq_filter){.id = 1};
    g = scan(d, &f);
    REQUIRE(g.n == 1);
    CHECK_STR(g.e[0].stage, "enrich");
    CHECK_STR(g.e[0].error_class, "unknown");
    CHECK_INT(g.e[0].attempts, 2);
    CHECK_INT(g.e[0].replay, 0);
    CHECK_INT(g.e[0].raw_len, sizeof bad_json); /* raw stays the original */
    CHECK(memcmp(g.e[0].raw, bad_json, sizeof bad_json) == 0);
    CHECK_STR(g.e[0].record, "{\"a\":1}");
    CHECK_INT(sl_dlq_replay_finish(d, r_parse, &resolved, NULL), SL_OK);
    CHECK_INT(resolved, 1); /* entry 3 */
    f = (struct sl_dlq_filter){.id = 3};
    CHECK_INT(scan(d, &f).n, 0);
    CHECK_INT(count(d), 3);

    /* Entry 4 (enrich, record id {3,4}) is rejected again, now by validate, while another
     * entry holds ({3,4}, validate): the two become one, the smaller id. */
    b = new_batch("data/in.ndjson");
    sl_record_reject(b, add(b, "{\"v\":2}", 7, 3, 4), "validate", "old");
    CHECK_INT(keep(d, b, "clicks", 0, NULL), SL_OK);
    sl_batch_unref(b);
    f = (struct sl_dlq_filter){.stage = "validate"};
    g = scan(d, &f);
    REQUIRE(g.n == 2);
    int64_t newer = g.e[1].id;
    CHECK(newer > 4);
    /* Give the newer entry more attempts so the merge's max shows. */
    {
        sqlite3 *db;
        REQUIRE(sqlite3_open(tpath("replay.db"), &db) == SQLITE_OK);
        char sql[128];
        snprintf(sql, sizeof sql, "UPDATE dlq_entries SET attempts = 5 WHERE id = %lld",
                 (long long)newer);
        CHECK_INT(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
    }
    b = replayed(3, 4, "{\"v\":2}", 4);
    sl_record_reject(b, &b->recs[0], "validate", "new");
    CHECK_INT(keep(d, b, "clicks", (uint64_t)r_enrich, NULL), SL_OK);
    sl_batch_unref(b);
    g = scan(d, &f);
    REQUIRE(g.n == 2);
    CHECK_INT(g.e[0].id, 2);
    CHECK_INT(g.e[1].id, 4);
    CHECK_INT(g.e[1].attempts, 6);
    CHECK_STR(g.e[1].message, "new");
    CHECK_INT(g.e[1].replay, 0);
    f = (struct sl_dlq_filter){.id = newer};
    CHECK_INT(scan(d, &f).n, 0);
    CHECK_INT(sl_dlq_replay_finish(d, r_enrich, &resolved, NULL), SL_OK);
    CHECK_INT(resolved, 0);
    CHECK_INT(pending(d).n, 0);

    /* A record of a replay whose entry is no longer marked is kept like any other. */
    b = replayed(3, 4, "{\"v\":2}", 4);
    sl_record_reject(b, &b->recs[0], "validate", "once more");
    CHECK_INT(keep(d, b, "clicks", 0, NULL), SL_OK);
    sl_batch_unref(b);
    f = (struct sl_dlq_filter){.id = 4};
    g = scan(d, &f);
    CHECK_INT(g.e[0].attempts, 6);
    CHECK_STR(g.e[0].message, "new");

    /* from_stage: everything goes back into one stage; a limit takes the oldest. */
    memset(&s, 0, sizeof s);
    f = (struct sl_dlq_filter){.limit = 2};
    CHECK_INT(sl_dlq_replay_plan(d, &f, "parse", collect_replay, &s, NULL), SL_OK);
    REQUIRE(s.n == 1);
    CHECK_STR(s.stage[0], "parse");
    CHECK_INT(s.entries[0], 2);
    g = replay_read(d, s.id[0], 0, 10);
    REQUIRE(g.n == 2);
    CHECK_INT(g.e[0].id, 1);
    CHECK_INT(g.e[1].id, 2);
    /* A filter that matches nothing plans nothing. */
    struct replays none;
    memset(&none, 0, sizeof none);
    f = (struct sl_dlq_filter){.stage = "nosuch"};
    CHECK_INT(sl_dlq_replay_plan(d, &f, NULL, collect_replay, &none, NULL), SL_OK);
    CHECK_INT(none.n, 0);
    /* Delivered: finish deletes both. */
    CHECK_INT(sl_dlq_replay_finish(d, s.id[0], &resolved, NULL), SL_OK);
    CHECK_INT(resolved, 2);
    CHECK_INT(count(d), 1);
    sl_dlq_close(d);
}

static void test_open_errors(void)
{
    struct sl_dlq *d = NULL;
    struct sl_error err;
    sl_error_clear(&err);
    CHECK_INT(sl_dlq_open(tpath("missing.db"), 0, 0, &d, &err), SL_ENOENT);
    CHECK(d == NULL);
    CHECK(strstr(err.msg, "missing.db") != NULL);

    /* With create, missing directories are made. */
    CHECK_INT(sl_dlq_open(tpath("a/b/dlq.db"), 1, 1, &d, NULL), SL_OK);
    CHECK(d != NULL);
    CHECK_INT(count(d), 0);
    sl_dlq_close(d);
    d = NULL;

    /* An SQLite database of something else. */
    sqlite3 *db;
    REQUIRE(sqlite3_open(tpath("other.db"), &db) == SQLITE_OK);
    CHECK_INT(sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    sl_error_clear(&err);
    CHECK_INT(sl_dlq_open(tpath("other.db"), 1, 0, &d, &err), SL_EDB);
    CHECK(strstr(err.msg, "not a dead-letter queue") != NULL);
    CHECK(strstr(err.msg, "other.db") != NULL);

    /* A newer format. */
    d = open_dlq("newer.db");
    REQUIRE(d);
    sl_dlq_close(d);
    REQUIRE(sqlite3_open(tpath("newer.db"), &db) == SQLITE_OK);
    CHECK_INT(sqlite3_exec(db, "UPDATE dlq_meta SET value = 'sluice-dlq 2'", NULL, NULL, NULL),
              SQLITE_OK);
    sqlite3_close(db);
    sl_error_clear(&err);
    d = NULL;
    CHECK_INT(sl_dlq_open(tpath("newer.db"), 1, 0, &d, &err), SL_EDB);
    CHECK(strstr(err.msg, "\"sluice-dlq 2\"") != NULL);
    CHECK(strstr(err.msg, "reads \"sluice-dlq 1\" only") != NULL);

    /* Not SQLite at all. */
    FILE *fp = fopen(tpath("text.db"), "w");
    REQUIRE(fp);
    fputs("this is not a database, just text that is long enough to be a header\n", fp);
    fclose(fp);
    sl_error_clear(&err);
    CHECK_INT(sl_dlq_open(tpath("text.db"), 0, 0, &d, &err), SL_EDB);
    CHECK(strstr(err.msg, "text.db") != NULL);
    CHECK(d == NULL);
    sl_dlq_close(NULL);
}

static void check_b64(const char *in, const char *want)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_buf_puts(&b, ">"); /* appends */
    CHECK_INT(sl_base64_encode(in, strlen(in), &b), SL_OK);
    CHECK_INT(b.len, 1 + strlen(want));
    CHECK(b.len >= 1 && memcmp(b.data + 1, want, b.len - 1) == 0);
    sl_buf_fini(&b);
}

static void test_base64(void)
{
    /* RFC 4648 section 10. */
    check_b64("", "");
    check_b64("f", "Zg==");
    check_b64("fo", "Zm8=");
    check_b64("foo", "Zm9v");
    check_b64("foob", "Zm9vYg==");
    check_b64("fooba", "Zm9vYmE=");
    check_b64("foobar", "Zm9vYmFy");
    struct sl_buf b;
    sl_buf_init(&b, 0);
    static const unsigned char bin[] = {0x00, 0xff, 0xfe, 0x3e, 0x3f};
    CHECK_INT(sl_base64_encode(bin, sizeof bin, &b), SL_OK);
    CHECK_MEM(b.data, b.len, "AP/+Pj8=");
    sl_buf_fini(&b);
    sl_buf_init(&b, 4); /* a buffer's maximum holds */
    CHECK_INT(sl_base64_encode("foob", 4, &b), SL_ELIMIT);
    CHECK_INT(b.len, 0);
    sl_buf_fini(&b);
}

/* Fail the n-th allocation of a keep and of a plan: nothing is half done. */
static void test_alloc_failures(void)
{
    struct sl_dlq *d = open_dlq("alloc.db");
    REQUIRE(d);
    int failed = 0, ok = 0;
    for (long n = 1; n < 200 && !ok; n++) {
        struct sl_batch *b = fixture(9);
        REQUIRE(b);
        uint64_t kept = 0;
        sl_alloc_fail_at(n);
        sl_rc rc = sl_dlq_keep(d, b, "clicks", 0, &kept, NULL);
        sl_alloc_fail_at(0);
        if (rc == SL_OK) {
            ok = 1;
            CHECK_INT(kept, 4);
        } else {
            failed++;
            CHECK_INT(rc, SL_ENOMEM);
            CHECK_INT(kept, 0);
            CHECK_INT(b->recs[1].flags & SL_REC_KEPT, 0);
            CHECK_INT(count(d), 0);
        }
        sl_batch_unref(b);
    }
    CHECK(ok);
    CHECK(failed > 0);
    CHECK_INT(count(d), 4);

    failed = ok = 0;
    for (long n = 1; n < 200 && !ok; n++) {
        struct replays s;
        memset(&s, 0, sizeof s);
        sl_alloc_fail_at(n);
        sl_rc rc = sl_dlq_replay_plan(d, NULL, NULL, collect_replay, &s, NULL);
        sl_alloc_fail_at(0);
        if (rc == SL_OK) {
            ok = 1;
            CHECK_INT(s.n, 3);
        } else {
            failed++;
            CHECK_INT(rc, SL_ENOMEM);
            CHECK_INT(pending(d).n, 0);
        }
    }
    CHECK(ok);
    CHECK(failed > 0);
    sl_dlq_close(d);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sluice-test-dlq-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    if (sl_json_parser_create(&parser) != SL_OK)
        return 1;
    RUN(test_keep_fields);
    RUN(test_idempotent);
    RUN(test_filters_stats);
    RUN(test_replay);
    RUN(test_open_errors);
    RUN(test_base64);
    RUN(test_alloc_failures);
    sl_json_parser_destroy(parser);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return TEST_DONE();
}
