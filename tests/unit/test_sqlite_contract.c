/*
 * test_sqlite_contract.c - the sqlite sink's `contract` option: the table's columns come
 * from the contract, the contract is stored beside the table in _sluice_contracts, a
 * backward-compatible new version adds exactly the new columns and an incompatible one is
 * refused with a message listing each breaking change. Contracts are the files of
 * tests/data/sqlite_contract/ (a copy in the scratch directory when a test edits one).
 */
#include <sqlite3.h>

#include "sink_fixture.h"

extern const struct sl_plugin sl_sink_sqlite;

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* What sl_contract_compare reports for orders_v1.json -> orders_v3.json. */
#define INCOMPATIBLE_CHANGES                                                                       \
    "$.amount: type changed from number to string; $.customer: property became required"

/* tests/data/sqlite_contract/name, from SLUICE_SRC or next to this file. */
static const char *data(const char *name)
{
    static char bufs[4][1024];
    static int k;
    char *b = bufs[k++ % 4];
    const char *src = getenv("SLUICE_SRC");
    if (src && *src) {
        snprintf(b, 1024, "%s/tests/data/sqlite_contract/%s", src, name);
    } else {
        const char *slash = strrchr(__FILE__, '/');
        snprintf(b, 1024, "%.*s/../data/sqlite_contract/%s", (int)(slash - __FILE__), __FILE__,
                 name);
    }
    return b;
}

/* The whole file, sl_malloc'd (the fixture's slurp buffer is shared). */
static char *read_all(const char *path)
{
    const char *t = slurp(path);
    return t ? sl_strdup(t) : NULL;
}

static void copy_file(const char *from, const char *to)
{
    char *t = read_all(from);
    if (!t) {
        fprintf(stderr, "cannot read %s\n", from);
        exit(1);
    }
    put_file(to, t);
    sl_free(t);
}

static sl_rc open_with(struct sink *k, const char *db, const char *table, const char *key,
                       const char *contract)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml, "path: %s\ntable: %s\n%s%s%s%s%s", db, table, key ? "key: " : "",
             key ? key : "", key ? "\n" : "", contract ? "contract: " : "",
             contract ? contract : "");
    sl_rc rc = fixture_open(k, &sl_sink_sqlite, yaml, 1, 0, 0);
    if (rc)
        fprintf(stderr, "  (init: %s: %s)\n", sl_rc_name(rc), k->err.msg);
    return rc;
}

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

static void exec_db(const char *db_rel, const char *sql)
{
    sqlite3 *db;
    if (sqlite3_open(tpath(db_rel), &db) != SQLITE_OK ||
        sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
        exit(1);
    }
    sqlite3_close(db);
}

#define COLUMNS(t) "SELECT name, type, \"notnull\", pk FROM pragma_table_info('" t "')"
#define STORED "SELECT sink, tbl, name, version, applied_ns > 0 FROM _sluice_contracts"

static const char v1_columns[] = "_sluice_id|TEXT|0|0\n"
                                 "id|INTEGER|0|1\n"
                                 "amount|REAL|0|0\n"
                                 "paid|INTEGER|0|0\n"
                                 "note|TEXT|0|0\n"
                                 "tags|TEXT|0|0\n"
                                 "meta|TEXT|0|0\n"
                                 "extra||0|0\n";

/* The table exists with the contract's columns right after init; the text is stored. */
static void t_create(void)
{
    struct sink k;
    REQUIRE(open_with(&k, "c1.db", "orders", "id", data("orders_v1.json")) == SL_OK);
    CHECK_STR(q("c1.db", COLUMNS("orders")), v1_columns);
    CHECK_STR(q("c1.db", STORED), "out|orders|orders|1|1\n");
    char *text = read_all(data("orders_v1.json"));
    REQUIRE(text);
    sqlite3 *db;
    REQUIRE(sqlite3_open(tpath("c1.db"), &db) == SQLITE_OK);
    sqlite3_stmt *st;
    REQUIRE(sqlite3_prepare_v2(db, "SELECT text FROM _sluice_contracts", -1, &st, NULL) ==
            SQLITE_OK);
    REQUIRE(sqlite3_step(st) == SQLITE_ROW);
    CHECK_STR((const char *)sqlite3_column_text(st, 0), text);
    sqlite3_finalize(st);
    sqlite3_close(db);
    sl_free(text);

    static const char *const lines[] = {
        "{\"id\":1,\"amount\":2.5,\"paid\":true,\"note\":null,\"tags\":[\"a\", \"b\"],"
        "\"meta\":{\"x\": 1},\"extra\":\"e\"}",
        "{\"id\":2,\"amount\":3,\"bogus\":1}",
        "{\"id\":3,\"amount\":4,\"extra\":[1]}",
    };
    struct sl_batch *b = make_batch(lines, N(lines), 0, "3", 1);
    REQUIRE(b);
    CHECK_INT(sink_write(&k, b), SL_OK);
    /* additionalProperties: false: a field beyond the properties is refused, not a column. */
    CHECK(b->recs[1].flags & SL_REC_BAD);
    CHECK_STR(b->recs[1].error, "field \"bogus\" is not a property of contract orders@1, which "
                                "allows no others (additionalProperties: false); not written");
    REQUIRE(b->recs[1].why);
    CHECK_STR(b->recs[1].why->error_class, "contract");
    CHECK_STR(b->recs[1].why->rule, "additionalProperties");
    CHECK_STR(b->recs[1].why->path, "$.bogus");
    CHECK_STR(b->recs[1].why->contract, "orders@1");
    CHECK(!(b->recs[0].flags & SL_REC_BAD));
    CHECK(!(b->recs[2].flags & SL_REC_BAD));
    sl_batch_unref(b);
    CHECK_STR(q("c1.db", "SELECT id, amount, typeof(amount), paid, note, tags, meta, extra"
                         " FROM orders ORDER BY id"),
              "1|2.5|real|1|NULL|[\"a\",\"b\"]|{\"x\":1}|e\n"
              "3|4.0|real|NULL|NULL|NULL|NULL|[1]\n");
    CHECK_STR(q("c1.db", COLUMNS("orders")), v1_columns);
    sink_close(&k);

    /* The same contract again: nothing changes, applied_ns included. */
    const char *before = q("c1.db", "SELECT applied_ns FROM _sluice_contracts");
    char saved[64];
    snprintf(saved, sizeof saved, "%s", before);
    REQUIRE(open_with(&k, "c1.db", "orders", "id", data("orders_v1.json")) == SL_OK);
    CHECK_STR(q("c1.db", "SELECT applied_ns FROM _sluice_contracts"), saved);
    CHECK_STR(q("c1.db", COLUMNS("orders")), v1_columns);
    sink_close(&k);
}

/* A backward-compatible version adds exactly its new columns and keeps the rows. */
static void t_evolve_compatible(void)
{
    struct sink k;
    const char *c = tpath("orders.json");
    copy_file(data("orders_v1.json"), c);
    REQUIRE(open_with(&k, "c2.db", "orders", "id", c) == SL_OK);
    static const char *const l1[] = {"{\"id\":1,\"amount\":2,\"note\":\"n\"}"};
    CHECK_INT(write_lines(&k, l1, 1, 0, "1", 1), SL_OK);
    sink_close(&k);

    copy_file(data("orders_v2.json"), c);
    REQUIRE(open_with(&k, "c2.db", "orders", "id", c) == SL_OK);
    char want[1024];
    snprintf(want, sizeof want, "%scurrency|TEXT|0|0\n", v1_columns);
    CHECK_STR(q("c2.db", COLUMNS("orders")), want);
    CHECK_STR(q("c2.db", STORED), "out|orders|orders|2|1\n");
    CHECK_STR(q("c2.db", "SELECT id, amount, note, currency FROM orders"), "1|2.0|n|NULL\n");
    static const char *const l2[] = {"{\"id\":2,\"amount\":5,\"currency\":\"EUR\"}"};
    CHECK_INT(write_lines(&k, l2, 1, 0, "2", 2), SL_OK);
    CHECK_STR(q("c2.db", "SELECT id, amount, note, currency FROM orders ORDER BY id"),
              "1|2.0|n|NULL\n2|5.0|NULL|EUR\n");
    sink_close(&k);
}

/* An incompatible version is refused with every breaking change; nothing changes. */
static void t_evolve_incompatible(void)
{
    struct sink k;
    REQUIRE(open_with(&k, "c3.db", "orders", "id", data("orders_v1.json")) == SL_OK);
    static const char *const l1[] = {"{\"id\":1,\"amount\":2}"};
    CHECK_INT(write_lines(&k, l1, 1, 0, "1", 1), SL_OK);
    sink_close(&k);

    const char *v3 = data("orders_v3.json");
    CHECK_INT(open_with(&k, "c3.db", "orders", "id", v3), SL_ECONFIG);
    char want[2048];
    snprintf(want, sizeof want,
             "sinks.out.contract: orders@3 (%s) is not backward compatible with orders@1, the "
             "contract table orders in %s was built for: " INCOMPATIBLE_CHANGES
             ". Nothing was changed. Either write to a new table (table: orders_v2), or "
             "migrate table orders yourself and then run \"DELETE FROM _sluice_contracts "
             "WHERE tbl = 'orders'\" in %s so that the next start adopts orders@3 (adding the "
             "columns the table lacks)",
             v3, tpath("c3.db"), tpath("c3.db"));
    CHECK_STR(k.err.msg, want);
    sink_close(&k);
    CHECK_STR(q("c3.db", COLUMNS("orders")), v1_columns);
    CHECK_STR(q("c3.db", STORED), "out|orders|orders|1|1\n");
    CHECK_STR(q("c3.db", "SELECT id, amount FROM orders"), "1|2.0\n");

    /* What the message says to do, done: the next start adopts v3 and adds its column. */
    exec_db("c3.db", "DELETE FROM _sluice_contracts WHERE tbl = 'orders'");
    REQUIRE(open_with(&k, "c3.db", "orders", "id", v3) == SL_OK);
    char cols[1024];
    snprintf(cols, sizeof cols, "%scustomer|TEXT|0|0\n", v1_columns);
    CHECK_STR(q("c3.db", COLUMNS("orders")), cols);
    CHECK_STR(q("c3.db", STORED), "out|orders|orders|3|1\n");
    sink_close(&k);
}

/* A table made without a contract is adopted: the properties it lacks become columns. */
static void t_adopt_existing(void)
{
    struct sink k;
    REQUIRE(open_with(&k, "c4.db", "orders", "id", NULL) == SL_OK);
    static const char *const l1[] = {"{\"id\":7,\"amount\":1.5,\"old\":\"x\"}"};
    CHECK_INT(write_lines(&k, l1, 1, 0, "1", 1), SL_OK);
    sink_close(&k);
    REQUIRE(open_with(&k, "c4.db", "orders", "id", data("orders_v1.json")) == SL_OK);
    CHECK_STR(q("c4.db", COLUMNS("orders")), "_sluice_id|TEXT|0|0\n"
                                             "id|INTEGER|0|1\n"
                                             "amount|REAL|0|0\n"
                                             "old|TEXT|0|0\n"
                                             "paid|INTEGER|0|0\n"
                                             "note|TEXT|0|0\n"
                                             "tags|TEXT|0|0\n"
                                             "meta|TEXT|0|0\n"
                                             "extra||0|0\n");
    CHECK_STR(q("c4.db", STORED), "out|orders|orders|1|1\n");
    /* A column the table had before stays writable, contract or not. */
    static const char *const l2[] = {"{\"id\":8,\"amount\":1,\"old\":\"y\",\"paid\":false}"};
    CHECK_INT(write_lines(&k, l2, 1, 0, "2", 2), SL_OK);
    CHECK_STR(q("c4.db", "SELECT id, old, paid FROM orders ORDER BY id"), "7|x|NULL\n8|y|0\n");
    sink_close(&k);
}

/* Without additionalProperties: false, other fields become columns as without a contract. */
static void t_open_contract(void)
{
    struct sink k;
    REQUIRE(open_with(&k, "c5.db", "events", NULL, data("events_open.json")) == SL_OK);
    CHECK_STR(q("c5.db", COLUMNS("events")),
              "_sluice_id|TEXT|0|0\nid|INTEGER|0|0\nname|TEXT|0|0\n");
    CHECK_STR(q("c5.db", "SELECT name, version FROM _sluice_contracts"), "events|2024-06\n");
    static const char *const l1[] = {"{\"id\":1,\"name\":\"a\",\"more\":2.5}"};
    CHECK_INT(write_lines(&k, l1, 1, 0, "1", 1), SL_OK);
    CHECK_STR(q("c5.db", COLUMNS("events")),
              "_sluice_id|TEXT|0|0\nid|INTEGER|0|0\nname|TEXT|0|0\nmore|REAL|0|0\n");
    CHECK_STR(q("c5.db", "SELECT id, name, more FROM events"), "1|a|2.5\n");
    sink_close(&k);
}

static void t_config_errors(void)
{
    struct sink k;
    CHECK_INT(open_with(&k, "c6.db", "orders", "nope", data("orders_v1.json")), SL_ECONFIG);
    char want[1024];
    snprintf(want, sizeof want,
             "sinks.out.key: \"nope\" is not a property of contract orders@1 (%s); add it to "
             "the contract's properties or choose another key",
             data("orders_v1.json"));
    CHECK_STR(k.err.msg, want);
    sink_close(&k);
    CHECK_STR(q("c6.db", "SELECT count(*) FROM sqlite_master WHERE name = 'orders'"), "0\n");

    CHECK_INT(open_with(&k, "c6.db", "orders", "id", tpath("missing.json")), SL_ENOENT);
    CHECK(strncmp(k.err.msg, "sinks.out.contract: ", 20) == 0);
    sink_close(&k);

    /* Inspection never reads the contract. */
    REQUIRE(fixture_open(&k, &sl_sink_sqlite,
                         "path: c6.db\ntable: orders\ncontract: missing.json\n", 1, 1, 0) == SL_OK);
    sink_close(&k);
}

int main(void)
{
    make_tmpdir();
    if (sl_json_parser_create(&parser) != SL_OK)
        return 1;
    RUN(t_create);
    RUN(t_evolve_compatible);
    RUN(t_evolve_incompatible);
    RUN(t_adopt_existing);
    RUN(t_open_contract);
    RUN(t_config_errors);
    sl_json_parser_destroy(parser);
    int rc = TEST_DONE();
    if (rc == 0)
        remove_tmpdir();
    else
        fprintf(stderr, "scratch files kept in %s\n", tmpdir);
    return rc;
}
