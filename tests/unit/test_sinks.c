/*
 * test_sinks.c - the stdout, file and sqlite sinks, driven through their plugin callbacks
 * with hand-built batches: exact bytes on disk, rotation names, template expansion, exact
 * SQLite rows and types, schema evolution, upserts, rejections and checkpoints.
 *
 * `test_sinks bench [rows]` instead measures the sqlite sink's rows/s (10-column rows in
 * 1024-row batches) and prints it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sluice/alloc.h"
#include "sluice/batch.h"
#include "sluice/config.h"
#include "sluice/plugin.h"
#include "sluice/record.h"
#include "test.h"
#include "sink_fixture.h"

extern const struct sl_plugin sl_sink_stdout;
extern const struct sl_plugin sl_sink_file;
extern const struct sl_plugin sl_sink_sqlite;

/* ---- helpers -------------------------------------------------------------------------- */

/*
 * A batch from NDJSON lines: record i gets line i + 1, offset 100 * i and id {seed, i}.
 * Every record is parsed. Lines that do not parse are left unparsed and rejected.
 */

/* Open a sink as a run would (file sinks commit every batch unless yaml says otherwise). */
static sl_rc sink_open(struct sink *k, const struct sl_plugin *p, const char *yaml)
{
    return fixture_open(k, p, yaml, 1, 0, p == &sl_sink_file);
}

/* The same in inspect mode (`sluice status` / `sluice reset`). */
static sl_rc sink_open_inspect(struct sink *k, const struct sl_plugin *p, const char *yaml)
{
    return fixture_open(k, p, yaml, 1, 1, 0);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- stdout --------------------------------------------------------------------------- */

/* Run process with fd 1 redirected to path; returns process's code. */
static sl_rc stdout_capture(struct sink *k, struct sl_batch *b, int fd)
{
    fflush(stdout);
    int saved = dup(1);
    dup2(fd, 1);
    sl_rc rc = sink_write(k, b);
    dup2(saved, 1);
    close(saved);
    return rc;
}

static void t_stdout_writes_live_records(void)
{
    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_stdout, "type: stdout\n") == SL_OK);
    static const char *const lines[] = {
        "{\"a\":1}", "{\"b\": [1, 2]}", "{\"dropped\":true}", "{\"c\":\"x\"}", "[1,2]", "7",
    };
    struct sl_batch *b = make_batch(lines, N(lines), 0, "p1", 1);
    REQUIRE(b);
    b->recs[2].flags |= SL_REC_DROPPED;
    sl_record_reject(b, &b->recs[3], "check", "no c allowed");
    /* An edited record is written with its edit. */
    struct sl_value v = sl_value_string("new", 3);
    REQUIRE(sl_record_set_key(&b->recs[0], "z", 1, &v, &b->arena) == SL_OK);
    const char *path = tpath("stdout.txt");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    CHECK_INT(stdout_capture(&k, b, fd), SL_OK);
    close(fd);
    /* Objects carry their record id (here {1, i}) as _sluice_id; other values cannot. */
    CHECK_STR(slurp(path),
              "{\"a\":1,\"z\":\"new\",\"_sluice_id\":\"00000000000000010000000000000000\"}\n"
              "{\"b\": [1, 2],\"_sluice_id\":\"00000000000000010000000000000001\"}\n"
              "[1,2]\n7\n");
    char *pos = (char *)"x";
    CHECK_INT(k.p->committed(k.state, "clicks", &pos, &k.err), SL_OK);
    CHECK(pos == NULL);
    sl_batch_unref(b);
    sink_close(&k);
}

static void t_stdout_epipe(void)
{
    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_stdout, "format: ndjson\nid_field: \"\"\n") == SL_OK);
    static const char *const lines[] = {"{\"a\":1}"};
    struct sl_batch *b = make_batch(lines, 1, 0, NULL, 1);
    REQUIRE(b);
    int p[2];
    REQUIRE(pipe(p) == 0);
    close(p[0]);
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    CHECK_INT(stdout_capture(&k, b, p[1]), SL_EIO);
    signal(SIGPIPE, old);
    close(p[1]);
    CHECK(strncmp(k.err.msg, "standard output was closed by its reader (EPIPE); 8 bytes", 56) == 0);
    sl_batch_unref(b);
    sink_close(&k);
}

static void t_stdout_rejects_bad_format(void)
{
    struct sink k;
    CHECK_INT(sink_open(&k, &sl_sink_stdout, "format: csv\n"), SL_ECONFIG);
    CHECK(strstr(k.err.msg, "sink.yaml:1:9:") != NULL);
    sink_close(&k);
}

/* ---- file ----------------------------------------------------------------------------- */

static void t_file_appends_lines(void)
{
    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_file,
                      "path: f1/sub/dir/out.ndjson\nfsync: true\nid_field: \"\"\n") == SL_OK);
    static const char *const b1[] = {"{\"n\":1}", "{\"n\": 2, \"s\": \"\\u00e9\"}", "{\"n\":3}"};
    struct sl_batch *b = make_batch(b1, N(b1), 0, "10", 1);
    REQUIRE(b);
    b->recs[2].flags |= SL_REC_DROPPED;
    CHECK_INT(sink_write(&k, b), SL_OK);
    sl_batch_unref(b);
    static const char *const b2[] = {"[\"not an object\"]", "{\"n\":4}"};
    CHECK_INT(write_lines(&k, b2, N(b2), 0, "20", 1), SL_OK);
    /* Until the file is finished, readers of out.ndjson see nothing. */
    CHECK(!exists(tpath("f1/sub/dir/out.ndjson")));
    CHECK_STR(slurp(temp_of("f1/sub/dir/out.ndjson")),
              "{\"n\":1}\n{\"n\": 2, \"s\": \"\\u00e9\"}\n[\"not an object\"]\n{\"n\":4}\n");
    /* A batch with no live record writes no line but moves the position. */
    static const char *const b3[] = {"{\"n\":5}"};
    b = make_batch(b3, 1, 0, "30", 1);
    REQUIRE(b);
    b->recs[0].flags |= SL_REC_DROPPED;
    CHECK_INT(sink_write(&k, b), SL_OK);
    sl_batch_unref(b);
    char *pos = NULL;
    CHECK_INT(k.p->committed(k.state, "clicks", &pos, &k.err), SL_OK);
    CHECK_STR(pos, "30");
    sl_free(pos);
    uint64_t recs = 0, ns = 0;
    CHECK_INT(k.p->commit_info(k.state, "clicks", &recs, &ns, &k.err), SL_OK);
    CHECK_INT(recs, 4);
    CHECK(ns > 1700000000ull * 1000000000ull);
    CHECK_INT(k.p->flush(k.state, &k.err), SL_OK);
    sink_close(&k);
    /* close finished the file: renamed to its final name, nothing in progress. */
    CHECK_STR(slurp(tpath("f1/sub/dir/out.ndjson")),
              "{\"n\":1}\n{\"n\": 2, \"s\": \"\\u00e9\"}\n[\"not an object\"]\n{\"n\":4}\n");
    CHECK_STR(temp_of("f1/sub/dir/out.ndjson"), "");

    /* A finished file is never written again: the next run starts out.1.ndjson. */
    REQUIRE(sink_open(&k, &sl_sink_file,
                      "path: f1/sub/dir/out.ndjson\nfsync: false\nid_field: \"\"\n") == SL_OK);
    CHECK_INT(k.p->committed(k.state, "clicks", &pos, &k.err), SL_OK);
    CHECK_STR(pos, "30");
    sl_free(pos);
    CHECK_INT(write_lines(&k, b3, 1, 0, "40", 1), SL_OK);
    sink_close(&k);
    CHECK_STR(slurp(tpath("f1/sub/dir/out.ndjson")),
              "{\"n\":1}\n{\"n\": 2, \"s\": \"\\u00e9\"}\n[\"not an object\"]\n{\"n\":4}\n");
    CHECK_STR(slurp(tpath("f1/sub/dir/out.1.ndjson")), "{\"n\":5}\n");
}

static void t_file_template(void)
{
    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_file,
                      "path: \"f2/%Y/clicks-%Y-%m-%dT%H.ndjson\"\nid_field: \"\"\n") == SL_OK);
    static const char *const b1[] = {"{\"t\":1}"};
    for (int attempt = 0; attempt < 3; attempt++) {
        time_t before = time(NULL);
        CHECK_INT(write_lines(&k, b1, 1, 0, NULL, 1), SL_OK);
        time_t after = time(NULL);
        struct tm a, z;
        gmtime_r(&before, &a);
        gmtime_r(&after, &z);
        if (a.tm_hour != z.tm_hour)
            continue; /* the hour turned during the write; try again */
        char rel[128];
        strftime(rel, sizeof rel, "f2/%Y/clicks-%Y-%m-%dT%H.ndjson", &a);
        const char *got = slurp(temp_of(rel));
        CHECK(got != NULL);
        if (got && attempt == 0)
            CHECK_STR(got, "{\"t\":1}\n");
        break;
    }
    sink_close(&k);

    /* Unsupported conversions and directory-like paths are config errors. */
    CHECK_INT(sink_open(&k, &sl_sink_file, "path: out-%Q.ndjson\n"), SL_ECONFIG);
    CHECK(strstr(k.err.msg, "\"%Q\" is not a supported time conversion") != NULL);
    sink_close(&k);
    CHECK_INT(sink_open(&k, &sl_sink_file, "path: out/\n"), SL_ECONFIG);
    sink_close(&k);
    CHECK_INT(sink_open(&k, &sl_sink_file, "path: x.ndjson\nformat: parquet\n"), SL_ECONFIG);
    sink_close(&k);
    CHECK_INT(sink_open(&k, &sl_sink_file, "format: ndjson\n"), SL_ECONFIG);
    sink_close(&k);
    CHECK_INT(sink_open(&k, &sl_sink_file, "path: x.ndjson\nroll_interval: soon\n"), SL_ECONFIG);
    sink_close(&k);
    /* %% is a literal percent sign. */
    REQUIRE(sink_open(&k, &sl_sink_file, "path: f2/100%%.ndjson\nid_field: \"\"\n") == SL_OK);
    CHECK_INT(write_lines(&k, b1, 1, 0, NULL, 1), SL_OK);
    sink_close(&k);
    CHECK_STR(slurp(tpath("f2/100%.ndjson")), "{\"t\":1}\n");
}

static void t_file_rotation(void)
{
    struct sink k;
    /* Each line is 8 bytes. Files are finished only between batches. */
    REQUIRE(sink_open(&k, &sl_sink_file, "path: f3/x.ndjson\nmax_bytes: 20\nid_field: \"\"\n") ==
            SL_OK);
    static const char *const b1[] = {"{\"a\":1}", "{\"a\":2}", "{\"a\":3}", "{\"a\":4}",
                                     "{\"a\":5}"};
    CHECK_INT(write_lines(&k, b1, 2, 0, NULL, 1), SL_OK);     /* 16 bytes */
    CHECK_INT(write_lines(&k, b1 + 2, 1, 0, NULL, 1), SL_OK); /* 24 > 20: x.1 */
    CHECK_INT(write_lines(&k, b1 + 3, 2, 0, NULL, 1), SL_OK); /* 24 > 20: x.2 */
    CHECK_STR(slurp(tpath("f3/x.ndjson")), "{\"a\":1}\n{\"a\":2}\n");
    CHECK_STR(slurp(tpath("f3/x.1.ndjson")), "{\"a\":3}\n");
    CHECK(!exists(tpath("f3/x.2.ndjson")));
    CHECK_STR(slurp(temp_of("f3/x.2.ndjson")), "{\"a\":4}\n{\"a\":5}\n");
    sink_close(&k);
    CHECK_STR(slurp(tpath("f3/x.2.ndjson")), "{\"a\":4}\n{\"a\":5}\n");

    /* A restart continues after the highest existing number; a batch larger than
     * max_bytes makes one file (lines and batches are never split). */
    REQUIRE(sink_open(&k, &sl_sink_file, "path: f3/x.ndjson\nmax_bytes: 20\nid_field: \"\"\n") ==
            SL_OK);
    static const char *const b3[] = {"{\"a\":7}", "{\"long\":\"abcdefghijklmnopqrstuvwxyz\"}",
                                     "{\"a\":8}"};
    CHECK_INT(write_lines(&k, b3, N(b3), 0, NULL, 1), SL_OK);
    sink_close(&k);
    CHECK_STR(slurp(tpath("f3/x.3.ndjson")),
              "{\"a\":7}\n{\"long\":\"abcdefghijklmnopqrstuvwxyz\"}\n{\"a\":8}\n");
    CHECK(!exists(tpath("f3/x.4.ndjson")));

    /* Names without an extension get the number appended; dot files too. */
    REQUIRE(sink_open(&k, &sl_sink_file, "path: f3/log\nmax_bytes: 8\nid_field: \"\"\n") == SL_OK);
    CHECK_INT(write_lines(&k, b1, 1, 0, NULL, 1), SL_OK);
    CHECK_INT(write_lines(&k, b1 + 1, 1, 0, NULL, 1), SL_OK);
    sink_close(&k);
    CHECK_STR(slurp(tpath("f3/log")), "{\"a\":1}\n");
    CHECK_STR(slurp(tpath("f3/log.1")), "{\"a\":2}\n");
    REQUIRE(sink_open(&k, &sl_sink_file, "path: f3.d/.hidden\nmax_bytes: 8\nid_field: \"\"\n") ==
            SL_OK);
    CHECK_INT(write_lines(&k, b1, 1, 0, NULL, 1), SL_OK);
    CHECK_INT(write_lines(&k, b1 + 1, 1, 0, NULL, 1), SL_OK);
    sink_close(&k);
    CHECK_STR(slurp(tpath("f3.d/.hidden")), "{\"a\":1}\n");
    CHECK_STR(slurp(tpath("f3.d/.hidden.1")), "{\"a\":2}\n");
}

/*
 * A file the path names that exists before the first run (no manifest): the sink cannot
 * tell whether it holds records of this pipeline whose manifest was lost, so it refuses
 * to start, names the file and leaves it alone.
 */
static void t_file_existing_output_kept(void)
{
    struct sink k;
    REQUIRE(mkdir(tpath("f4"), 0755) == 0);
    put_file(tpath("f4/p.ndjson"), "{\"a\":1}\n{\"a\"");
    CHECK_INT(sink_open(&k, &sl_sink_file, "path: f4/p.ndjson\nid_field: \"\"\n"), SL_ESTATE);
    CHECK(strstr(k.err.msg, "f4/p.ndjson exists") != NULL);
    CHECK(strstr(k.err.msg, "there is no manifest") != NULL);
    sink_close(&k);
    CHECK_STR(slurp(tpath("f4/p.ndjson")), "{\"a\":1}\n{\"a\"");
    CHECK(!exists(tpath("f4/p.1.ndjson")));
    /* Moved away, the sink starts afresh. */
    REQUIRE(rename(tpath("f4/p.ndjson"), tpath("f4.old")) == 0);
    REQUIRE(sink_open(&k, &sl_sink_file, "path: f4/p.ndjson\nid_field: \"\"\n") == SL_OK);
    static const char *const b1[] = {"{\"b\":1}"};
    CHECK_INT(write_lines(&k, b1, 1, 0, NULL, 1), SL_OK);
    sink_close(&k);
    CHECK_STR(slurp(tpath("f4/p.ndjson")), "{\"b\":1}\n");
}

static void t_file_unwritable(void)
{
    struct sink k;
    put_file(tpath("f5"), "a plain file where a directory is needed\n");
    REQUIRE(sink_open(&k, &sl_sink_file, "path: \"f5/%Y.ndjson\"\n") == SL_OK);
    static const char *const b1[] = {"{\"b\":1}"};
    CHECK_INT(write_lines(&k, b1, 1, 0, NULL, 1), SL_EIO);
    CHECK(strstr(k.err.msg, "f5 exists and is not a directory") != NULL);
    sink_close(&k);
}

/* ---- sqlite --------------------------------------------------------------------------- */

static sqlite3 *db_open(const char *rel)
{
    sqlite3 *db;
    if (sqlite3_open(tpath(rel), &db) != SQLITE_OK) {
        fprintf(stderr, "open %s: %s\n", rel, sqlite3_errmsg(db));
        exit(1);
    }
    return db;
}

/*
 * Run a query and render its rows as text: columns separated by '|', rows by '\n'; NULL
 * as "NULL". Static buffer.
 */
static const char *q(sqlite3 *db, const char *sql)
{
    static char out[1 << 15];
    size_t n = 0;
    sqlite3_stmt *st;
    out[0] = '\0';
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(out, sizeof out, "ERROR: %s", sqlite3_errmsg(db));
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
    return out;
}

static void t_sqlite_create_and_types(void)
{
    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_sqlite, "path: db1/w.db\ntable: events\n") == SL_OK);
    static const char *const lines[] = {
        "{\"i\": 42, \"f\": 1.5, \"s\": \"h\\u00e9\\\"llo\", \"b\": true, \"o\": {\"x\": [1, "
        "{\"y\" : null}], \"k\":\"v\"}, \"a\": [ 1 , \"two\" ], \"n\": null}",
        "{\"i\": -7, \"f\": 2, \"s\": \"\", \"b\": false, \"n\": null, \"e\": 1e3, \"big\": "
        "123456789012345678901234567890, \"i2\": 9223372036854775807}",
    };
    CHECK_INT(write_lines(&k, lines, N(lines), 0, "pos-1", 0x1234), SL_OK);
    sqlite3 *db = db_open("db1/w.db");
    CHECK_STR(q(db, "SELECT name, type, pk FROM pragma_table_info('events')"),
              "_sluice_id|TEXT|0\ni|INTEGER|0\nf|REAL|0\ns|TEXT|0\nb|INTEGER|0\no|TEXT|0\n"
              "a|TEXT|0\nn|TEXT|0\ne|REAL|0\nbig|REAL|0\ni2|INTEGER|0\n");
    CHECK_STR(q(db, "SELECT _sluice_id, i, typeof(i), f, typeof(f), s, typeof(s), b, typeof(b),"
                    " o, a, typeof(n), e, typeof(e), typeof(big), i2 FROM events ORDER BY rowid"),
              "00000000000012340000000000000000|42|integer|1.5|real|h\xc3\xa9\"llo|text|1|integer"
              "|{\"x\":[1,{\"y\":null}],\"k\":\"v\"}|[1,\"two\"]|null|NULL|null|null|NULL\n"
              "00000000000012340000000000000001|-7|integer|2.0|real||text|0|integer|NULL|NULL"
              "|null|1000.0|real|real|9223372036854775807\n");
    /* The id column is unique: the conflict target without a key. */
    CHECK_STR(q(db, "SELECT count(*) FROM pragma_index_list('events') WHERE \"unique\""), "1\n");
    sqlite3_close(db);
    sink_close(&k);
}

static void t_sqlite_alter_and_upsert_by_id(void)
{
    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_sqlite, "path: db2/w.db\ntable: t\n") == SL_OK);
    static const char *const b1[] = {"{\"a\":1}", "{\"a\":2}"};
    CHECK_INT(write_lines(&k, b1, N(b1), 0, "1", 7), SL_OK);
    /* New fields in a later batch: ALTER TABLE; the first new field's first value is null. */
    static const char *const b2[] = {"{\"a\":3,\"c\":null}", "{\"c\":\"x\",\"d\":2.5,\"a\":4}"};
    CHECK_INT(write_lines(&k, b2, N(b2), 0, "2", 8), SL_OK);
    sqlite3 *db = db_open("db2/w.db");
    CHECK_STR(q(db, "SELECT name, type FROM pragma_table_info('t')"),
              "_sluice_id|TEXT\na|INTEGER\nc|TEXT\nd|REAL\n");
    CHECK_STR(q(db, "SELECT _sluice_id, a, c, d FROM t ORDER BY a"),
              "00000000000000070000000000000000|1|NULL|NULL\n"
              "00000000000000070000000000000001|2|NULL|NULL\n"
              "00000000000000080000000000000000|3|NULL|NULL\n"
              "00000000000000080000000000000001|4|x|2.5\n");
    /* Replaying batch 1 with other content rewrites the same two rows (same ids). */
    static const char *const b1b[] = {"{\"a\":10,\"c\":\"again\"}", "{\"a\":20}"};
    CHECK_INT(write_lines(&k, b1b, N(b1b), 0, "1", 7), SL_OK);
    CHECK_STR(q(db, "SELECT _sluice_id, a, c, d FROM t ORDER BY a"),
              "00000000000000080000000000000000|3|NULL|NULL\n"
              "00000000000000080000000000000001|4|x|2.5\n"
              "00000000000000070000000000000000|10|again|NULL\n"
              "00000000000000070000000000000001|20|NULL|NULL\n");
    sqlite3_close(db);
    sink_close(&k);
}

static void t_sqlite_upsert_by_key(void)
{
    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_sqlite,
                      "path: db3/w.db\ntable: users\nkey: user_id\nsynchronous: full\n") == SL_OK);
    static const char *const b1[] = {
        "{\"user_id\":\"u1\",\"name\":\"Ann\",\"age\":30}",
        "{\"user_id\":\"u2\",\"name\":\"Bob\",\"age\":40}",
        "{\"user_id\":\"u1\",\"name\":\"Ann B\",\"age\":31}", /* same batch, replaces */
    };
    CHECK_INT(write_lines(&k, b1, N(b1), 0, "a", 1), SL_OK);
    static const char *const b2[] = {"{\"name\":\"Bobby\",\"user_id\":\"u2\"}"};
    CHECK_INT(write_lines(&k, b2, N(b2), 0, "b", 2), SL_OK);
    sqlite3 *db = db_open("db3/w.db");
    CHECK_STR(q(db, "SELECT name, type, pk FROM pragma_table_info('users')"),
              "_sluice_id|TEXT|0\nuser_id|TEXT|1\nname|TEXT|0\nage|INTEGER|0\n");
    /* The row equals the newest record: age is gone from u2's. */
    CHECK_STR(q(db, "SELECT _sluice_id, user_id, name, age FROM users ORDER BY user_id"),
              "00000000000000010000000000000002|u1|Ann B|31\n"
              "00000000000000020000000000000000|u2|Bobby|NULL\n");
    sqlite3_close(db);
    sink_close(&k);

    /* An integer key becomes INTEGER PRIMARY KEY; a text key for it is refused per record. */
    REQUIRE(sink_open(&k, &sl_sink_sqlite,
                      "path: db3/w.db\ntable: n\nkey: id\nid_column: \"\"\n") == SL_OK);
    static const char *const b3[] = {"{\"id\":1,\"v\":\"a\"}", "{\"id\":\"x\",\"v\":\"b\"}",
                                     "{\"id\":1,\"v\":\"c\"}"};
    struct sl_batch *b = make_batch(b3, N(b3), 1, "o1", 3);
    REQUIRE(b);
    CHECK_INT(sink_write(&k, b), SL_OK);
    CHECK(!(b->recs[0].flags & SL_REC_BAD));
    CHECK(b->recs[1].flags & SL_REC_BAD);
    CHECK(b->recs[1].error &&
          strstr(b->recs[1].error, "table n refused the row: datatype mismatch"));
    sl_batch_unref(b);
    db = db_open("db3/w.db");
    CHECK_STR(q(db, "SELECT name, type, pk FROM pragma_table_info('n')"),
              "id|INTEGER|1\nv|TEXT|0\n");
    CHECK_STR(q(db, "SELECT id, v FROM n"), "1|c\n");
    sqlite3_close(db);
    sink_close(&k);
}

static void t_sqlite_rejects(void)
{
    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_sqlite, "path: db4/w.db\ntable: r\nkey: k\n") == SL_OK);
    static const char *const lines[] = {
        "[1,2]",                          /* 1: not an object */
        "\"text\"",                       /* 2: not an object */
        "{\"v\":1}",                      /* 3: no key */
        "{\"k\":null,\"v\":2}",           /* 4: null key */
        "{\"k\":\"a\",\"v\":3}",          /* 5: ok */
        "{\"k\":\"b\",\"_sluice_id\":1}", /* 6: collides with the id column */
        "{\"k\":\"c\",\"V\":4,\"v\":5}",  /* 7: two fields, one column */
        "{\"k\":\"d\",\"V\":6}",          /* 8: ok: V is column v */
        "{\"k\":\"e\",\"only_here\":1}",  /* 9: ok, new column mid-batch */
    };
    struct sl_batch *b = make_batch(lines, N(lines), 0, "7", 9);
    REQUIRE(b);
    CHECK_INT(sink_write(&k, b), SL_OK);
    const char *want[] = {
        "record is a JSON array, not an object; the sqlite sink writes "
        "objects as rows",
        "record is a JSON string, not an object; the sqlite sink writes "
        "objects as rows",
        "record has no key field \"k\"; not written",
        "key field \"k\" is null; not written",
        NULL,
        "field \"_sluice_id\" has the name of the id column; rename the field "
        "or set id_column; not written",
        "two fields map to column \"v\" (SQLite column names ignore case); "
        "not written",
        NULL,
        NULL,
    };
    for (size_t i = 0; i < N(want); i++) {
        if (want[i]) {
            CHECK(b->recs[i].flags & SL_REC_BAD);
            CHECK_STR(b->recs[i].error, want[i]);
            CHECK_STR(b->recs[i].error_stage, "out");
        } else {
            CHECK(!(b->recs[i].flags & SL_REC_BAD));
        }
    }
    CHECK_INT(sl_batch_live(b), 3);
    sl_batch_unref(b);
    sqlite3 *db = db_open("db4/w.db");
    CHECK_STR(q(db, "SELECT k, v, only_here FROM r ORDER BY k"), "a|3|NULL\nd|6|NULL\ne|NULL|1\n");
    /* Keyless records contributed no columns. */
    CHECK_STR(q(db, "SELECT group_concat(name) FROM pragma_table_info('r')"),
              "_sluice_id,k,v,only_here\n");
    CHECK_STR(q(db, "SELECT records, position FROM _sluice_checkpoints"), "3|7\n");
    sqlite3_close(db);
    sink_close(&k);
}

/* Before the table exists, records without a usable key create nothing. */
static void t_sqlite_no_table_from_keyless(void)
{
    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_sqlite, "path: db9/w.db\ntable: t\nkey: k\nid_column: \"\"\n") ==
            SL_OK);
    static const char *const lines[] = {"{\"k\":null,\"v\":1}", "{\"v\":2}", "[]"};
    struct sl_batch *b = make_batch(lines, N(lines), 0, "9", 1);
    REQUIRE(b);
    CHECK_INT(sink_write(&k, b), SL_OK);
    CHECK_STR(b->recs[0].error, "key field \"k\" is null; not written");
    CHECK_STR(b->recs[1].error, "record has no key field \"k\"; not written");
    CHECK_STR(b->recs[2].error,
              "record is a JSON array, not an object; the sqlite sink writes objects as rows");
    sl_batch_unref(b);
    sqlite3 *db = db_open("db9/w.db");
    CHECK_STR(q(db, "SELECT count(*) FROM sqlite_master WHERE name = 't'"), "0\n");
    CHECK_STR(q(db, "SELECT source, position, records FROM _sluice_checkpoints"), "clicks|9|0\n");
    sqlite3_close(db);
    /* The next batch with a key creates the table from its own fields. */
    static const char *const l2[] = {"{\"v\":3,\"k\":7}"};
    CHECK_INT(write_lines(&k, l2, 1, 0, "10", 2), SL_OK);
    db = db_open("db9/w.db");
    CHECK_STR(q(db, "SELECT name, type, pk FROM pragma_table_info('t')"),
              "v|INTEGER|0\nk|INTEGER|1\n");
    CHECK_STR(q(db, "SELECT v, k FROM t"), "3|7\n");
    sqlite3_close(db);
    sink_close(&k);
}

/*
 * Rows go through a 16-row statement: a bad row inside a full group, a new field in the
 * middle of one, and keys repeated across groups must give the same result as one row
 * at a time.
 */
static void t_sqlite_row_groups(void)
{
    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_sqlite,
                      "path: db10/w.db\ntable: g\nkey: id\nid_column: \"\"\n") == SL_OK);
    char lines[40][64];
    const char *ptrs[40];
    for (int i = 0; i < 40; i++) {
        if (i == 5)
            snprintf(lines[i], sizeof lines[i], "{\"id\":\"bad\",\"v\":%d}", i);
        else if (i == 20)
            snprintf(lines[i], sizeof lines[i], "{\"id\":%d,\"v\":%d,\"extra\":\"x\"}", i, i);
        else
            snprintf(lines[i], sizeof lines[i], "{\"id\":%d,\"v\":%d}", i % 30, i);
        ptrs[i] = lines[i];
    }
    /* 20 rows, then 20 more whose 11th brings a new column while a group is being bound. */
    struct sl_batch *b = make_batch(ptrs, 20, 0, "20", 1);
    REQUIRE(b);
    CHECK_INT(sink_write(&k, b), SL_OK);
    for (int i = 0; i < 20; i++)
        CHECK_INT(!!(b->recs[i].flags & SL_REC_BAD), i == 5);
    CHECK_STR(b->recs[5].error, "table g refused the row: datatype mismatch; not written");
    sl_batch_unref(b);
    b = make_batch(ptrs + 20, 20, 0, "40", 1);
    REQUIRE(b);
    CHECK_INT(sink_write(&k, b), SL_OK);
    CHECK_INT(sl_batch_live(b), 20);
    sl_batch_unref(b);
    char want[2048];
    size_t n = 0;
    for (int id = 0; id < 30; id++)
        n += (size_t)snprintf(want + n, sizeof want - n, "%d|%d|%s\n", id, id < 10 ? id + 30 : id,
                              id == 20 ? "x" : "NULL");
    sqlite3 *db = db_open("db10/w.db");
    CHECK_STR(q(db, "SELECT id, v, extra FROM g ORDER BY id"), want);
    CHECK_STR(q(db, "SELECT records FROM _sluice_checkpoints"), "39\n");
    sqlite3_close(db);
    sink_close(&k);
}

/* A table holds at most 1000 columns; a record needing more is rejected, not fatal. */
static void t_sqlite_column_limit(void)
{
    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_sqlite, "path: db11/w.db\ntable: wide\n") == SL_OK);
    static char wide[1005 * 16];
    size_t n = 0;
    for (int i = 0; i < 1005; i++)
        n += (size_t)snprintf(wide + n, sizeof wide - n, "%s\"f%d\":%d", i ? "," : "{", i, i);
    snprintf(wide + n, sizeof wide - n, "}");
    const char *lines[] = {wide, "{\"f0\":1,\"f998\":2}"};
    struct sl_batch *b = make_batch(lines, 2, 0, "2", 1);
    REQUIRE(b);
    CHECK_INT(sink_write(&k, b), SL_OK);
    CHECK_STR(b->recs[0].error,
              "field \"f999\" would be column 1001 of table wide; the limit is 1000; not written");
    CHECK(!(b->recs[1].flags & SL_REC_BAD));
    sl_batch_unref(b);
    sqlite3 *db = db_open("db11/w.db");
    CHECK_STR(q(db, "SELECT count(*), max(cid) FROM pragma_table_info('wide')"), "1000|999\n");
    CHECK_STR(q(db, "SELECT f0, f1, f998 FROM wide"), "1|NULL|2\n");
    sqlite3_close(db);
    sink_close(&k);
}

static void t_sqlite_checkpoints(void)
{
    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_sqlite, "path: db5/w.db\ntable: c\n") == SL_OK);
    char *pos = (char *)"x";
    CHECK_INT(k.p->committed(k.state, "clicks", &pos, &k.err), SL_OK);
    CHECK(pos == NULL);
    static const char *const b1[] = {"{\"a\":1}", "{\"a\":2}"};
    CHECK_INT(write_lines(&k, b1, N(b1), 0, "clicks.ndjson:100", 1), SL_OK);
    CHECK_INT(write_lines(&k, b1, 1, 0, "clicks.ndjson:150", 2), SL_OK);
    CHECK_INT(write_lines(&k, b1, 1, 1, "orders@3", 3), SL_OK);
    /* A batch whose records were all dropped still moves the position. */
    struct sl_batch *b = make_batch(b1, 1, 0, "clicks.ndjson:200", 4);
    REQUIRE(b);
    b->recs[0].flags |= SL_REC_DROPPED;
    CHECK_INT(sink_write(&k, b), SL_OK);
    sl_batch_unref(b);
    /* A batch without a position writes rows and leaves the checkpoints alone. */
    CHECK_INT(write_lines(&k, b1, 1, 1, NULL, 5), SL_OK);
    sink_close(&k);

    sqlite3 *db = db_open("db5/w.db");
    CHECK_STR(q(db, "SELECT pipeline, sink, source, position, records, "
                    "updated_at GLOB '20[0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:"
                    "[0-6][0-9].[0-9][0-9][0-9]Z' FROM _sluice_checkpoints ORDER BY source"),
              "clicks_to_db|out|clicks|clicks.ndjson:200|3|1\n"
              "clicks_to_db|out|orders|orders@3|1|1\n");
    CHECK_STR(q(db, "SELECT count(*) FROM c"), "5\n");
    CHECK_STR(q(db, "PRAGMA journal_mode"), "wal\n");
    sqlite3_close(db);

    /* committed() after a reopen. */
    REQUIRE(sink_open(&k, &sl_sink_sqlite, "path: db5/w.db\ntable: c\n") == SL_OK);
    CHECK_INT(k.p->committed(k.state, "clicks", &pos, &k.err), SL_OK);
    CHECK_STR(pos, "clicks.ndjson:200");
    sl_free(pos);
    CHECK_INT(k.p->committed(k.state, "orders", &pos, &k.err), SL_OK);
    CHECK_STR(pos, "orders@3");
    sl_free(pos);
    CHECK_INT(k.p->committed(k.state, "nobody", &pos, &k.err), SL_OK);
    CHECK(pos == NULL);
    sink_close(&k);
}

static void t_sqlite_existing_table(void)
{
    REQUIRE(mkdir(tpath("db6"), 0755) == 0);
    sqlite3 *db = db_open("db6/w.db");
    CHECK_STR(q(db, "CREATE TABLE \"my \"\"odd\"\" table\"(Event_ID TEXT, Amount REAL, "
                    "note TEXT)"),
              "");
    CHECK_STR(q(db, "INSERT INTO \"my \"\"odd\"\" table\" VALUES('e0', 1.0, 'kept')"), "");
    sqlite3_close(db);
    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_sqlite,
                      "path: db6/w.db\ntable: 'my \"odd\" table'\nkey: event_id\n") == SL_OK);
    static const char *const b1[] = {"{\"event_id\":\"e1\",\"amount\":2}",
                                     "{\"event_id\":\"e0\",\"amount\":3,\"extra\":true}"};
    CHECK_INT(write_lines(&k, b1, N(b1), 0, "p", 1), SL_OK);
    sink_close(&k);
    db = db_open("db6/w.db");
    CHECK_STR(q(db, "SELECT name, type FROM pragma_table_info('my \"odd\" table')"),
              "Event_ID|TEXT\nAmount|REAL\nnote|TEXT\n_sluice_id|TEXT\nextra|INTEGER\n");
    /* The sink writes every column: note, which no record has, becomes NULL on update. */
    CHECK_STR(q(db, "SELECT Event_ID, Amount, typeof(Amount), note, extra FROM \"my \"\"odd\"\" "
                    "table\" ORDER BY 1"),
              "e0|3.0|real|NULL|1\ne1|2.0|real|NULL|NULL\n");
    CHECK_STR(q(db, "SELECT name FROM pragma_index_list('my \"odd\" table')"),
              "my \"odd\" table_Event_ID_sluice_unique\n");
    sqlite3_close(db);
}

static void t_sqlite_config_errors(void)
{
    struct sink k;
    CHECK_INT(sink_open(&k, &sl_sink_sqlite, "path: db7/w.db\n"), SL_ECONFIG);
    sink_close(&k);
    CHECK_INT(sink_open(&k, &sl_sink_sqlite, "path: db7/w.db\ntable: t\nid_column: \"\"\n"),
              SL_ECONFIG);
    CHECK(strstr(k.err.msg, "id_column: can be \"\" only together with key") != NULL);
    sink_close(&k);
    CHECK_INT(sink_open(&k, &sl_sink_sqlite, "path: db7/w.db\ntable: sqlite_master\n"), SL_ECONFIG);
    sink_close(&k);
    CHECK_INT(sink_open(&k, &sl_sink_sqlite, "path: db7/w.db\ntable: t\nkey: ID\nid_column: id\n"),
              SL_ECONFIG);
    sink_close(&k);
    CHECK_INT(sink_open(&k, &sl_sink_sqlite, "path: db7/w.db\ntable: t\nsynchronous: off\n"),
              SL_ECONFIG);
    sink_close(&k);
    CHECK_INT(sink_open(&k, &sl_sink_sqlite, "path: db7/w.db\ntable: t\nbusy_timeout: soon\n"),
              SL_ECONFIG);
    sink_close(&k);
    put_file(tpath("db7f"), "not a directory\n");
    CHECK_INT(sink_open(&k, &sl_sink_sqlite, "path: db7f/w.db\ntable: t\n"), SL_EIO);
    sink_close(&k);
    put_file(tpath("notadb"), "this is not a database file, just some text in a file......."
                              "................................................................");
    CHECK_INT(sink_open(&k, &sl_sink_sqlite, "path: notadb\ntable: t\n"), SL_EDB);
    CHECK(strstr(k.err.msg, "notadb") != NULL);
    sink_close(&k);
}

static void t_sqlite_busy_and_rollback(void)
{
    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_sqlite, "path: db8/w.db\ntable: t\nbusy_timeout: 50ms\n") ==
            SL_OK);
    static const char *const b1[] = {"{\"a\":1}"};
    CHECK_INT(write_lines(&k, b1, 1, 0, "1", 1), SL_OK);

    /* Another connection holds the write lock: the batch is retried later. */
    sqlite3 *db = db_open("db8/w.db");
    CHECK_STR(q(db, "BEGIN IMMEDIATE"), "");
    static const char *const b2[] = {"{\"a\":2,\"new\":\"x\"}"};
    CHECK_INT(write_lines(&k, b2, 1, 0, "2", 2), SL_RETRY);
    CHECK(strstr(k.err.msg, "is locked by another connection") != NULL);
    CHECK_STR(q(db, "COMMIT"), "");
    CHECK_INT(write_lines(&k, b2, 1, 0, "2", 2), SL_OK);
    CHECK_STR(q(db, "SELECT a, new FROM t ORDER BY a"), "1|NULL\n2|x\n");

    /*
     * A failure after DDL: a trigger naming a missing table makes the rebuilt insert fail
     * to prepare after the ALTER. The batch rolls back (the column with it) and fails; once
     * the trigger is gone the same batch goes through.
     */
    CHECK_STR(q(db, "CREATE TRIGGER bad AFTER INSERT ON t BEGIN INSERT INTO missing VALUES(1); "
                    "END"),
              "");
    static const char *const b3[] = {"{\"a\":3,\"later\":1}"};
    CHECK_INT(write_lines(&k, b3, 1, 0, "3", 3), SL_EDB);
    CHECK(strstr(k.err.msg, "no such table: main.missing") != NULL);
    CHECK_STR(q(db, "SELECT group_concat(name) FROM pragma_table_info('t')"), "_sluice_id,a,new\n");
    CHECK_STR(q(db, "SELECT position FROM _sluice_checkpoints"), "2\n");
    CHECK_STR(q(db, "DROP TRIGGER bad"), "");
    CHECK_INT(write_lines(&k, b3, 1, 0, "3", 3), SL_OK);
    CHECK_STR(q(db, "SELECT a, new, later FROM t ORDER BY a"), "1|NULL|NULL\n2|x|NULL\n3|NULL|1\n");
    CHECK_STR(q(db, "SELECT position, records FROM _sluice_checkpoints"), "3|3\n");
    sqlite3_close(db);
    sink_close(&k);
}

/* The checkpoint row shares the batch's transaction: when it cannot be written, no row is. */
static void t_sqlite_checkpoint_same_transaction(void)
{
    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_sqlite, "path: db12/w.db\ntable: t\n") == SL_OK);
    static const char *const b1[] = {"{\"a\":1}", "{\"a\":2}"};
    CHECK_INT(write_lines(&k, b1, N(b1), 0, "1", 1), SL_OK);
    sqlite3 *db = db_open("db12/w.db");
    CHECK_STR(q(db, "CREATE TRIGGER no_ckpt BEFORE UPDATE ON _sluice_checkpoints "
                    "BEGIN SELECT RAISE(ABORT, 'checkpoint refused'); END"),
              "");
    static const char *const b2[] = {"{\"a\":3}"};
    CHECK_INT(write_lines(&k, b2, N(b2), 0, "2", 2), SL_EDB);
    CHECK(strstr(k.err.msg, "checkpoint refused") != NULL);
    CHECK_STR(q(db, "SELECT a FROM t ORDER BY a"), "1\n2\n");
    /* The same for a batch whose records were all dropped: nothing moves. */
    struct sl_batch *b = make_batch(b2, 1, 0, "3", 3);
    REQUIRE(b);
    b->recs[0].flags |= SL_REC_DROPPED;
    CHECK_INT(sink_write(&k, b), SL_EDB);
    sl_batch_unref(b);
    CHECK_STR(q(db, "SELECT position, records FROM _sluice_checkpoints"), "1|2\n");
    CHECK_STR(q(db, "DROP TRIGGER no_ckpt"), "");
    b = make_batch(b2, 1, 0, "3", 3);
    REQUIRE(b);
    b->recs[0].flags |= SL_REC_DROPPED;
    CHECK_INT(sink_write(&k, b), SL_OK);
    sl_batch_unref(b);
    CHECK_STR(q(db, "SELECT position, records FROM _sluice_checkpoints"), "3|2\n");
    sqlite3_close(db);
    sink_close(&k);
}

static void t_sqlite_inspect_info_reset(void)
{
    struct sink k;
    uint64_t recs = 9, ns = 9;
    char *pos = (char *)"x";
    /* Inspecting a database that does not exist creates nothing. */
    REQUIRE(sink_open_inspect(&k, &sl_sink_sqlite, "path: db13/none/w.db\ntable: t\n") == SL_OK);
    CHECK_INT(k.p->committed(k.state, "clicks", &pos, &k.err), SL_OK);
    CHECK(pos == NULL);
    CHECK_INT(k.p->commit_info(k.state, "clicks", &recs, &ns, &k.err), SL_OK);
    CHECK_INT(recs, 0);
    CHECK_INT(ns, 0);
    CHECK_INT(k.p->reset(k.state, NULL, &k.err), SL_OK);
    sink_close(&k);
    CHECK(!exists(tpath("db13")));

    time_t t0 = time(NULL);
    REQUIRE(sink_open(&k, &sl_sink_sqlite, "path: db13/w.db\ntable: t\n") == SL_OK);
    static const char *const b1[] = {"{\"a\":1}", "{\"a\":2}", "{\"a\":3}"};
    CHECK_INT(write_lines(&k, b1, 2, 0, "c@2", 1), SL_OK);
    CHECK_INT(write_lines(&k, b1 + 2, 1, 1, "o@1", 2), SL_OK);
    sink_close(&k);
    time_t t1 = time(NULL);

    REQUIRE(sink_open_inspect(&k, &sl_sink_sqlite, "path: db13/w.db\ntable: t\n") == SL_OK);
    CHECK_INT(k.p->committed(k.state, "clicks", &pos, &k.err), SL_OK);
    CHECK_STR(pos, "c@2");
    sl_free(pos);
    CHECK_INT(k.p->commit_info(k.state, "clicks", &recs, &ns, &k.err), SL_OK);
    CHECK_INT(recs, 2);
    CHECK(ns >= (uint64_t)t0 * 1000000000u && ns <= ((uint64_t)t1 + 1) * 1000000000u);
    CHECK(ns % 1000000u == 0); /* stored with millisecond precision */
    /* Inspection writes nothing; the sink refuses batches. */
    CHECK_INT(write_lines(&k, b1, 1, 0, "c@9", 3), SL_ESTATE);
    CHECK_INT(k.p->reset(k.state, "clicks", &k.err), SL_OK);
    CHECK_INT(k.p->committed(k.state, "clicks", &pos, &k.err), SL_OK);
    CHECK(pos == NULL);
    sink_close(&k);
    sqlite3 *db = db_open("db13/w.db");
    CHECK_STR(q(db, "SELECT source, position, records FROM _sluice_checkpoints"), "orders|o@1|1\n");
    CHECK_STR(q(db, "SELECT a FROM t ORDER BY a"), "1\n2\n3\n"); /* rows are kept */
    sqlite3_close(db);

    /* reset of every source, through a normal (read-write) open. */
    REQUIRE(sink_open(&k, &sl_sink_sqlite, "path: db13/w.db\ntable: t\n") == SL_OK);
    CHECK_INT(k.p->reset(k.state, NULL, &k.err), SL_OK);
    CHECK_INT(k.p->committed(k.state, "orders", &pos, &k.err), SL_OK);
    CHECK(pos == NULL);
    sink_close(&k);
    db = db_open("db13/w.db");
    CHECK_STR(q(db, "SELECT count(*) FROM _sluice_checkpoints"), "0\n");
    sqlite3_close(db);
}

/*
 * rewind (`sluice reset --to-position`): the checkpoint row's position is set, records kept,
 * updated_at renewed, the table's rows kept; a replay after it upserts (no duplicates).
 */
/*
 * exactly_once: the WAL stays within SQ_WAL_MAX frames plus one batch's over a run that
 * writes several times that much, and close() leaves it checkpointed (no -wal file). The
 * database is created with 512-byte pages so that the bound (16384 frames) is 8.4 MB.
 */
static void t_sqlite_wal_bounded(void)
{
    REQUIRE(mkdir(tpath("dbw"), 0755) == 0);
    sqlite3 *db = db_open("dbw/w.db");
    CHECK_STR(q(db, "PRAGMA page_size=512"), "");
    CHECK_STR(q(db, "CREATE TABLE seed(x)"), "");
    sqlite3_close(db);
    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_sqlite, "path: dbw/w.db\ntable: t\n") == SL_OK);
    static char lines[500][480];
    const char *ptrs[500];
    struct stat st;
    off_t before = 0, max_growth = 0;
    for (int i = 0; i < 500; i++) {
        snprintf(lines[i], sizeof lines[i], "{\"n\":%d,\"pad\":\"%0400d\"}", i, i);
        ptrs[i] = lines[i];
    }
    for (int batch = 0; batch < 100; batch++) {
        char pos[16];
        snprintf(pos, sizeof pos, "%d", batch);
        struct sl_batch *b = make_batch(ptrs, 500, 0, pos, (uint64_t)batch + 1);
        REQUIRE(b);
        CHECK_INT(sink_write(&k, b), SL_OK);
        sl_batch_unref(b);
        REQUIRE(stat(tpath("dbw/w.db-wal"), &st) == 0);
        if (st.st_size - before > max_growth)
            max_growth = st.st_size - before;
        before = st.st_size;
    }
    /* The -wal file keeps its largest size when the WAL is rewound: that is the peak. */
    off_t frame = 512 + 24, bound = 16384 * frame + 32;
    CHECK(st.st_size <= bound + max_growth);
    CHECK(max_growth < 4096 * frame); /* a batch is well under the bound's slack */
    sink_close(&k);
    CHECK(stat(tpath("dbw/w.db-wal"), &st) != 0 && errno == ENOENT);
    REQUIRE(stat(tpath("dbw/w.db"), &st) == 0);
    CHECK(st.st_size > 3 * 16384 * 512); /* the run wrote over three WALs' worth */
    db = db_open("dbw/w.db");
    CHECK_STR(q(db, "SELECT count(*), sum(n), min(length(pad)) FROM t"), "50000|12475000|400\n");
    CHECK_STR(q(db, "SELECT position, records FROM _sluice_checkpoints"), "99|50000\n");
    CHECK_STR(q(db, "PRAGMA journal_mode"), "wal\n");
    sqlite3_close(db);
}

static void t_sqlite_rewind(void)
{
    struct sink k;
    char *pos = (char *)"x";
    char before[64];
    /* Inspecting a database that does not exist: nothing to move, nothing created. */
    REQUIRE(sink_open_inspect(&k, &sl_sink_sqlite, "path: db14/none/w.db\ntable: t\n") == SL_OK);
    CHECK_INT(k.p->rewind(k.state, "clicks", "c@1", &k.err), SL_ESTATE);
    CHECK(strstr(k.err.msg, "sink out has committed nothing in ") != NULL);
    sink_close(&k);
    CHECK(!exists(tpath("db14")));

    REQUIRE(sink_open(&k, &sl_sink_sqlite, "path: db14/w.db\ntable: t\nbusy_timeout: 50ms\n") ==
            SL_OK);
    static const char *const b1[] = {"{\"a\":1}", "{\"a\":2}", "{\"a\":3}"};
    CHECK_INT(write_lines(&k, b1, 2, 0, "c@2", 1), SL_OK);
    CHECK_INT(write_lines(&k, b1 + 2, 1, 0, "c@3", 3), SL_OK); /* record id {3,0} */
    CHECK_INT(write_lines(&k, b1, 1, 1, "o@1", 2), SL_OK);
    sink_close(&k);
    sqlite3 *db = db_open("db14/w.db");
    snprintf(before, sizeof before, "%s",
             q(db, "SELECT updated_at FROM _sluice_checkpoints WHERE source = 'clicks'"));
    usleep(20000); /* updated_at has millisecond precision */

    /* Through an inspection (what `sluice reset` opens): a short read-write connection. */
    REQUIRE(sink_open_inspect(&k, &sl_sink_sqlite, "path: db14/w.db\ntable: t\n") == SL_OK);
    CHECK_INT(k.p->rewind(k.state, "clicks", "c@1 \"q\" \xc3\xa9", &k.err), SL_OK);
    CHECK_INT(k.p->committed(k.state, "clicks", &pos, &k.err), SL_OK);
    CHECK_STR(pos, "c@1 \"q\" \xc3\xa9");
    sl_free(pos);
    uint64_t recs = 0, ns = 0;
    CHECK_INT(k.p->commit_info(k.state, "clicks", &recs, &ns, &k.err), SL_OK);
    CHECK_INT(recs, 3);
    sink_close(&k);
    CHECK_STR(q(db, "SELECT source, position, records FROM _sluice_checkpoints ORDER BY source"),
              "clicks|c@1 \"q\" \xc3\xa9|3\norders|o@1|1\n");
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT updated_at > '%.24s' FROM _sluice_checkpoints WHERE source = 'clicks'",
             before);
    CHECK_STR(q(db, sql), "1\n");
    CHECK_STR(q(db, "SELECT a FROM t ORDER BY a"), "1\n1\n2\n3\n"); /* rows are kept */

    /* Through a normal open; a source without a row gets one (records 0). */
    REQUIRE(sink_open(&k, &sl_sink_sqlite, "path: db14/w.db\ntable: t\nbusy_timeout: 50ms\n") ==
            SL_OK);
    CHECK_INT(k.p->rewind(k.state, "clicks", "c@2", &k.err), SL_OK);
    CHECK_INT(k.p->rewind(k.state, "nobody", "n@0", &k.err), SL_OK);
    CHECK_INT(k.p->committed(k.state, "clicks", &pos, &k.err), SL_OK);
    CHECK_STR(pos, "c@2");
    sl_free(pos);
    /* The replay of what lies after c@2 upserts on the record id: no duplicate row. */
    CHECK_INT(write_lines(&k, b1 + 2, 1, 0, "c@3", 3), SL_OK);
    CHECK_STR(q(db, "SELECT source, position, records FROM _sluice_checkpoints ORDER BY source"),
              "clicks|c@3|4\nnobody|n@0|0\norders|o@1|1\n");
    CHECK_STR(q(db, "SELECT a FROM t ORDER BY a"), "1\n1\n2\n3\n");

    /* Another connection holds the write lock: SL_RETRY, the checkpoint unchanged. */
    CHECK_STR(q(db, "BEGIN IMMEDIATE"), "");
    CHECK_INT(k.p->rewind(k.state, "clicks", "c@1", &k.err), SL_RETRY);
    CHECK(strstr(k.err.msg, "the checkpoint is unchanged") != NULL);
    CHECK_STR(q(db, "COMMIT"), "");
    CHECK_STR(q(db, "SELECT position FROM _sluice_checkpoints WHERE source = 'clicks'"), "c@3\n");
    /* No transaction was left open: the sink still writes and rewinds. */
    CHECK_INT(write_lines(&k, b1, 1, 0, "c@4", 4), SL_OK);
    CHECK_INT(k.p->rewind(k.state, "clicks", "c@1", &k.err), SL_OK);
    CHECK_INT(k.p->rewind(k.state, NULL, "c@1", &k.err), SL_EINVAL);
    sink_close(&k);
    CHECK_STR(q(db, "SELECT position, records FROM _sluice_checkpoints WHERE source = 'clicks'"),
              "c@1|5\n");
    sqlite3_close(db);
}

/* ---- allocation failures ---------------------------------------------------------- */

/*
 * Fail the n-th allocation of init + process + committed + close for n = 1, 2, ... until a
 * run gets through without hitting the failure. Every failing run must return SL_ENOMEM
 * (or, inside SQLite's own allocator-free paths, an error) without crashing or leaking.
 */
static void alloc_walk(const struct sl_plugin *p, const char *yaml)
{
    static const char *const lines[] = {"{\"k\":\"a\",\"o\":{\"x\": [1, 2]},\"s\":\"\\u00e9\"}",
                                        "{\"k\":\"b\",\"new\":1}"};
    int clean = 0;
    long n;
    for (n = 1; n < 400 && !clean; n++) {
        struct sink k;
        memset(&k, 0, sizeof k);
        k.p = p;
        REQUIRE(sl_cfg_load_string(yaml, strlen(yaml), "sink.yaml", tmpdir, &k.doc, &k.err) ==
                SL_OK);
        k.ctx.pipeline = "p";
        k.ctx.name = "out";
        k.ctx.doc = k.doc;
        k.ctx.node = k.doc->root;
        k.ctx.source_names = source_names;
        k.ctx.nsources = 2;
        k.w.parser = parser;
        k.w.max_depth = 128;
        struct sl_batch *b = make_batch(lines, N(lines), 0, "pos", (uint64_t)n);
        REQUIRE(b);
        long before = sl_alloc_count();
        sl_alloc_fail_at(n);
        sl_rc rc = p->init(&k.ctx, &k.state, &k.err);
        if (rc == SL_OK) {
            rc = p->process(k.state, b, &k.w, &k.err);
            if (rc == SL_OK) {
                char *pos = NULL;
                rc = p->committed(k.state, "clicks", &pos, &k.err);
                sl_free(pos);
            }
            p->close(k.state);
        }
        long used = sl_alloc_count() - before;
        sl_alloc_fail_at(0);
        if (used < n) {
            clean = 1; /* the failure point lies beyond everything this run allocated */
            CHECK_INT(rc, SL_OK);
        } else if (rc != SL_OK && rc != SL_ENOMEM) {
            fprintf(stderr, "  allocation %ld: %s: %s\n", n, sl_rc_name(rc), k.err.msg);
            CHECK(rc == SL_ENOMEM);
        }
        sl_batch_unref(b);
        sl_cfg_destroy(k.doc);
    }
    CHECK(clean);
    CHECK(n > 2); /* at least two allocations were made to fail */
    fprintf(stderr, "  %s: %ld allocation failure points\n", p->name, n - 2);
}

static void t_alloc_failures(void)
{
    fflush(stdout);
    int saved = dup(1), devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    alloc_walk(&sl_sink_stdout, "format: ndjson\n");
    dup2(saved, 1);
    close(saved);
    close(devnull);
    alloc_walk(&sl_sink_file, "path: af/out.ndjson\nmax_bytes: 40\n");
    alloc_walk(&sl_sink_sqlite, "path: af/w.db\ntable: t\nkey: k\n");
}

/* ---- bench ---------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench(long rows, const char *extra, const char *label, int random_ids)
{
    uint64_t id_base[2];
    sl_record_id_base("bench", "clicks", "/data/clicks.ndjson", id_base);
    char yaml[256];
    snprintf(yaml, sizeof yaml, "path: bench/w.db\ntable: events\n%s", extra);
    struct sink k;
    if (sink_open(&k, &sl_sink_sqlite, yaml) != SL_OK)
        return 1;
    /* Build the input once: 10 fields per record. */
    static char lines[1024][256];
    const char *ptrs[1024];
    double total = 0;
    long done = 0;
    for (long batch = 0; done < rows; batch++) {
        for (int i = 0; i < 1024; i++) {
            long n = done + i;
            snprintf(lines[i], sizeof lines[i],
                     "{\"event_id\":\"ev-%ld\",\"user\":\"user-%ld\",\"n\":%ld,\"amount\":%ld.25,"
                     "\"kind\":\"purchase\",\"ok\":true,\"country\":\"DE\",\"page\":\"/p/%ld\","
                     "\"ts\":\"2026-11-27T12:00:00Z\",\"qty\":%ld}",
                     n, n % 1000, n, n % 977, n % 50, n % 7);
            ptrs[i] = lines[i];
        }
        char posbuf[32];
        snprintf(posbuf, sizeof posbuf, "%ld", batch);
        struct sl_batch *b = make_batch(ptrs, 1024, 0, posbuf, (uint64_t)batch);
        if (random_ids) /* ids as a real source derives them: hashes, no order */
            for (uint32_t i = 0; i < b->n; i++)
                sl_record_id(id_base, (uint64_t)(done + i) * 180, b->recs[i].id);
        double t0 = now_s();
        sl_rc rc = sink_write(&k, b);
        total += now_s() - t0;
        sl_batch_unref(b);
        if (rc)
            return 1;
        done += 1024;
    }
    printf("sqlite sink, %s, %s ids: %ld rows in 1024-row batches, %.3f s in process(): "
           "%.0f rows/s\n",
           label, random_ids ? "hashed" : "sequential", done, total, (double)done / total);
    sink_close(&k);
    return 0;
}

int main(int argc, char **argv)
{
    make_tmpdir();
    if (sl_json_parser_create(&parser) != SL_OK)
        return 1;
    if (argc > 1 && strcmp(argv[1], "bench") == 0) {
        long rows = argc > 2 ? atol(argv[2]) : 1000000;
        static const char *const variants[] = {"", "key: event_id\n",
                                               "key: event_id\nid_column: \"\"\n"};
        static const char *const labels[] = {"upsert on _sluice_id", "upsert on key event_id",
                                             "upsert on key event_id, no id column"};
        int rc = 0;
        for (int v = 0; v < 3; v++) {
            for (int random_ids = 0; random_ids < 2; random_ids++) {
                if (v > 0 && random_ids)
                    continue; /* with a key the ids are not indexed */
                rc |= bench(rows, variants[v], labels[v], random_ids);
                remove_tmpdir();
                make_tmpdir();
            }
        }
        remove_tmpdir();
        sl_json_parser_destroy(parser);
        return rc;
    }
    RUN(t_stdout_writes_live_records);
    RUN(t_stdout_epipe);
    RUN(t_stdout_rejects_bad_format);
    RUN(t_file_appends_lines);
    RUN(t_file_template);
    RUN(t_file_rotation);
    RUN(t_file_existing_output_kept);
    RUN(t_file_unwritable);
    RUN(t_sqlite_create_and_types);
    RUN(t_sqlite_alter_and_upsert_by_id);
    RUN(t_sqlite_upsert_by_key);
    RUN(t_sqlite_rejects);
    RUN(t_sqlite_no_table_from_keyless);
    RUN(t_sqlite_row_groups);
    RUN(t_sqlite_column_limit);
    RUN(t_sqlite_checkpoints);
    RUN(t_sqlite_existing_table);
    RUN(t_sqlite_config_errors);
    RUN(t_sqlite_busy_and_rollback);
    RUN(t_sqlite_checkpoint_same_transaction);
    RUN(t_sqlite_inspect_info_reset);
    RUN(t_sqlite_rewind);
    RUN(t_sqlite_wal_bounded);
    RUN(t_alloc_failures);
    sl_json_parser_destroy(parser);
    int rc = TEST_DONE();
    if (rc == 0)
        remove_tmpdir();
    else
        fprintf(stderr, "scratch files kept in %s\n", tmpdir);
    return rc;
}
