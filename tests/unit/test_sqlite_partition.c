/*
 * test_sqlite_partition.c - the sqlite sink's `partition: {column, value}` option, driven
 * through the plugin callbacks as the engine drives a staged `run --once`: process() for
 * each batch, then publish() with the run's verdict.
 *
 * What is checked is what a reader of the database sees: an accepted run replaces exactly
 * the rows of its partition value and leaves every other value alone; a record naming
 * another value is rejected (class "sink", rule "partition") and never staged; a run that
 * dies before publish, or is discarded, leaves the old partition as it was; the value,
 * text in YAML, is stored as a number in a column SQLite types as INTEGER.
 */
#include <sqlite3.h>

#include "sink_fixture.h"

extern const struct sl_plugin sl_sink_sqlite;

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* The sink as a staged `run --once` opens it (once and staged as given). */
static sl_rc open_sink(struct sink *k, const char *yaml, int once, int staged)
{
    memset(k, 0, sizeof *k);
    k->p = &sl_sink_sqlite;
    sl_rc rc = sl_cfg_load_string(yaml, strlen(yaml), "sink.yaml", tmpdir, &k->doc, &k->err);
    if (rc) {
        fprintf(stderr, "config: %s\n", k->err.msg);
        return rc;
    }
    k->ctx.pipeline = "daily";
    k->ctx.name = "out";
    k->ctx.doc = k->doc;
    k->ctx.node = k->doc->root;
    k->ctx.state_dir = tmpdir;
    k->ctx.max_depth = 128;
    k->ctx.exactly_once = 1;
    k->ctx.once = once;
    k->ctx.staged = staged;
    k->ctx.source_names = source_names;
    k->ctx.nsources = 2;
    k->w.parser = parser;
    k->w.stage = "out";
    k->w.max_depth = 128;
    rc = k->p->init(&k->ctx, &k->state, &k->err);
    if (rc) {
        k->state = NULL;
        sl_cfg_destroy(k->doc);
        k->doc = NULL;
    }
    return rc;
}

/* All rows of a query as "a|b\n" lines ("ERROR: ..." when it cannot run). */
static const char *q(const char *db_rel, const char *sql)
{
    static char out[8192];
    sqlite3 *db;
    size_t n = 0;
    out[0] = '\0';
    if (sqlite3_open_v2(tpath(db_rel), &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        snprintf(out, sizeof out, "ERROR: open: %s", sqlite3_errmsg(db));
        sqlite3_close(db);
        return out;
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(out, sizeof out, "ERROR: %s", sqlite3_errmsg(db));
        sqlite3_close(db);
        return out;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            const char *t = (const char *)sqlite3_column_text(st, c);
            n += (size_t)snprintf(out + n, sizeof out - n, "%s%s", c ? "|" : "", t ? t : "NULL");
        }
        n += (size_t)snprintf(out + n, sizeof out - n, "\n");
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

static sl_rc publish(struct sink *k, int verdict)
{
    sl_error_clear(&k->err);
    sl_rc rc = k->p->publish(k->state, verdict, NULL, NULL, &k->err);
    if (rc)
        fprintf(stderr, "  (publish: %s: %s)\n", sl_rc_name(rc), k->err.msg);
    return rc;
}

/* One staged run of partition day = value: the batches' lines, then the verdict. */
static void run_day(const char *db, const char *value, const char *const *lines, size_t n,
                    const char *pos, int verdict)
{
    char yaml[256];
    struct sink k;
    snprintf(yaml, sizeof yaml,
             "path: %s\ntable: t\nkey: k\npartition: {column: day, value: \"%s\"}\n", db, value);
    REQUIRE(open_sink(&k, yaml, 1, 1) == SL_OK);
    CHECK_INT(write_lines(&k, lines, n, 0, pos, 7), SL_OK);
    if (verdict)
        CHECK_INT(publish(&k, verdict), SL_OK);
    sink_close(&k);
}

#define ROWS "SELECT k, v, day FROM t ORDER BY k"

static void t_replace(void)
{
    static const char *const d1[] = {"{\"k\":1,\"v\":\"a\"}", "{\"k\":2,\"v\":\"b\"}",
                                     "{\"k\":3,\"v\":\"c\",\"day\":\"2024-01-01\"}"};
    static const char *const d2[] = {"{\"k\":10,\"v\":\"x\"}", "{\"k\":11,\"v\":\"y\"}"};
    run_day("p/w.db", "2024-01-01", d1, N(d1), "3", SL_PUBLISH_ACCEPT);
    run_day("p/w.db", "2024-01-02", d2, N(d2), "5", SL_PUBLISH_ACCEPT);
    CHECK_STR(q("p/w.db", ROWS), "1|a|2024-01-01\n2|b|2024-01-01\n3|c|2024-01-01\n"
                                 "10|x|2024-01-02\n11|y|2024-01-02\n");
    /* The same day again: its three rows give way to the run's two; day 2 stays. */
    static const char *const d1b[] = {"{\"k\":2,\"v\":\"B\"}", "{\"k\":4,\"v\":\"d\"}"};
    run_day("p/w.db", "2024-01-01", d1b, N(d1b), "8", SL_PUBLISH_ACCEPT);
    CHECK_STR(q("p/w.db", ROWS), "2|B|2024-01-01\n4|d|2024-01-01\n"
                                 "10|x|2024-01-02\n11|y|2024-01-02\n");
    CHECK_STR(q("p/w.db", "SELECT source, position, records FROM _sluice_checkpoints"),
              "clicks|8|7\n");
    /* An empty run for a day leaves that day empty. */
    run_day("p/w.db", "2024-01-02", NULL, 0, "9", SL_PUBLISH_ACCEPT);
    CHECK_STR(q("p/w.db", ROWS), "2|B|2024-01-01\n4|d|2024-01-01\n");
}

static void t_crash_and_discard(void)
{
    static const char *const d1[] = {"{\"k\":1,\"v\":\"a\"}", "{\"k\":2,\"v\":\"b\"}"};
    static const char *const d2[] = {"{\"k\":5,\"v\":\"e\"}"};
    run_day("d/w.db", "d1", d1, N(d1), "1", SL_PUBLISH_ACCEPT);
    run_day("d/w.db", "d2", d2, N(d2), "2", SL_PUBLISH_ACCEPT);
    const char *want = "1|a|d1\n2|b|d1\n5|e|d2\n";
    CHECK_STR(q("d/w.db", ROWS), want);

    /* A run of d1 staged but never published (the process died): nothing changes. */
    static const char *const again[] = {"{\"k\":7,\"v\":\"new\"}"};
    run_day("d/w.db", "d1", again, N(again), "3", 0);
    CHECK_STR(q("d/w.db", ROWS), want);
    CHECK_STR(q("d/w.db", "SELECT count(*) FROM _sluice_staging"), "1\n");
    /* The next start drops what it staged; still nothing changes. */
    struct sink k;
    REQUIRE(open_sink(&k, "path: d/w.db\ntable: t\nkey: k\npartition: {column: day, value: d1}\n",
                      1, 1) == SL_OK);
    CHECK_STR(q("d/w.db", "SELECT count(*) FROM _sluice_staging"), "0\n");
    sink_close(&k);
    CHECK_STR(q("d/w.db", ROWS), want);

    /* DISCARD: the target and the checkpoint stay as they were. */
    run_day("d/w.db", "d1", again, N(again), "4", SL_PUBLISH_DISCARD);
    CHECK_STR(q("d/w.db", ROWS), want);
    CHECK_STR(q("d/w.db", "SELECT position FROM _sluice_checkpoints"), "2\n");
}

static void t_other_value_rejected(void)
{
    struct sink k;
    REQUIRE(open_sink(&k,
                      "path: r/w.db\ntable: t\nkey: k\npartition: {column: day, value: \"7\"}\n", 1,
                      1) == SL_OK);
    static const char *const lines[] = {
        "{\"k\":1,\"day\":\"7\"}", /* the value as text */
        "{\"k\":2,\"day\":7}",     /* the value as a number */
        "{\"k\":3,\"day\":\"8\"}", /* another value */
        "{\"k\":4,\"day\":null}",  /* null is another value too */
        "{\"k\":5,\"DAY\":7.0}",   /* the same column (names ignore case), the same number */
        "{\"k\":6,\"day\":[7]}",   /* not a scalar */
    };
    struct sl_batch *b = make_batch(lines, N(lines), 0, "1", 3);
    REQUIRE(b != NULL);
    CHECK_INT(sink_write(&k, b), SL_OK);
    static const int bad[] = {0, 0, 1, 1, 0, 1};
    for (size_t i = 0; i < N(lines); i++) {
        const struct sl_record *r = &b->recs[i];
        CHECK_INT(!!(r->flags & SL_REC_BAD), bad[i]);
        if (bad[i] && r->why) {
            CHECK_STR(r->why->error_class, "sink");
            CHECK_STR(r->why->rule, "partition");
            CHECK_STR(r->why->path, "$.day");
            CHECK(strstr(r->error, "partition \"7\"") != NULL);
        }
        if (bad[i])
            CHECK(r->why != NULL);
    }
    sl_batch_unref(b);
    CHECK_STR(q("r/w.db", "SELECT count(*) FROM _sluice_staging"), "3\n");
    CHECK_INT(publish(&k, SL_PUBLISH_ACCEPT), SL_OK);
    sink_close(&k);
    CHECK_STR(q("r/w.db", "SELECT k, day FROM t ORDER BY k"), "1|7\n2|7\n5|7.0\n");
}

static void t_typed_column(void)
{
    /* The table exists with an INTEGER partition column: "7" from YAML is stored as 7. */
    sqlite3 *db;
    REQUIRE(sqlite3_open(tpath("n.db"), &db) == SQLITE_OK);
    REQUIRE(
        sqlite3_exec(db,
                     "CREATE TABLE t(k INTEGER PRIMARY KEY, n INTEGER, v TEXT, _sluice_id TEXT);"
                     "INSERT INTO t VALUES(1, 7, 'old', NULL), (2, 8, 'other', NULL)",
                     NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    struct sink k;
    REQUIRE(open_sink(&k, "path: n.db\ntable: t\nkey: k\npartition: {column: n, value: \"7\"}\n", 1,
                      1) == SL_OK);
    static const char *const lines[] = {"{\"k\":3,\"v\":\"new\"}"};
    CHECK_INT(write_lines(&k, lines, N(lines), 0, "1", 9), SL_OK);
    CHECK_INT(publish(&k, SL_PUBLISH_ACCEPT), SL_OK);
    sink_close(&k);
    CHECK_STR(q("n.db", "SELECT k, n, typeof(n), v FROM t ORDER BY k"),
              "2|8|integer|other\n3|7|integer|new\n");
}

static void t_config(void)
{
    struct sink k;
    /* Not --once: refused. */
    CHECK_INT(open_sink(&k, "path: c.db\ntable: t\npartition: {column: day, value: x}\n", 0, 0),
              SL_ECONFIG);
    CHECK(strstr(k.err.msg, "--once") != NULL);
    CHECK(strstr(k.err.msg, "sinks.out.partition") != NULL);
    CHECK_INT(open_sink(&k, "path: c.db\ntable: t\npartition: {column: day}\n", 1, 1), SL_ECONFIG);
    CHECK(strstr(k.err.msg, "needs both column") != NULL);
    CHECK_INT(
        open_sink(&k, "path: c.db\ntable: t\npartition: {column: day, value: x, vale: y}\n", 1, 1),
        SL_ECONFIG);
    CHECK(strstr(k.err.msg, "unknown key \"vale\"") != NULL);
    CHECK_INT(
        open_sink(&k, "path: c.db\ntable: t\npartition: {column: _sluice_id, value: x}\n", 1, 1),
        SL_ECONFIG);
    CHECK(strstr(k.err.msg, "id column") != NULL);
    CHECK_INT(open_sink(&k, "path: c.db\ntable: t\npartition: day\n", 1, 1), SL_ECONFIG);
    /* Inspection (`sluice status`) opens it without --once. */
    memset(&k, 0, sizeof k);
    k.p = &sl_sink_sqlite;
    const char *yaml = "path: c.db\ntable: t\npartition: {column: day, value: x}\n";
    REQUIRE(sl_cfg_load_string(yaml, strlen(yaml), "sink.yaml", tmpdir, &k.doc, &k.err) == SL_OK);
    k.ctx.name = "out";
    k.ctx.pipeline = "daily";
    k.ctx.doc = k.doc;
    k.ctx.node = k.doc->root;
    k.ctx.inspect = 1;
    k.ctx.source_names = source_names;
    k.ctx.nsources = 2;
    CHECK_INT(k.p->init(&k.ctx, &k.state, &k.err), SL_OK);
    sink_close(&k);
}

int main(void)
{
    make_tmpdir();
    if (sl_json_parser_create(&parser) != SL_OK)
        return 1;
    RUN(t_replace);
    RUN(t_crash_and_discard);
    RUN(t_other_value_rejected);
    RUN(t_typed_column);
    RUN(t_config);
    sl_json_parser_destroy(parser);
    int rc = TEST_DONE();
    if (rc == 0)
        remove_tmpdir();
    else
        fprintf(stderr, "scratch files kept in %s\n", tmpdir);
    return rc;
}
