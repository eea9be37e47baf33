/*
 * test_sqlite_wap.c - the sqlite sink's write-audit-publish (ctx->staged, publish()) and
 * its own rejections going to the dead-letter queue before the commit that covers them
 * (struct sl_worker's keep_rejects), driven through the plugin callbacks.
 *
 * What is checked is what a reader of the database sees: staged rows never appear in the
 * target or move _sluice_checkpoints until ACCEPT; DISCARD and QUARANTINE leave the target
 * alone; a killed run's staging is dropped by the next start; and a hook standing in for
 * the engine's keep_rejects looks at the database from a second connection while it runs,
 * so it sees exactly what was committed before it.
 */
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include "sink_fixture.h"

extern const struct sl_plugin sl_sink_sqlite;

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* As fixture_open, with ctx->staged set before init. */
static sl_rc open_sink(struct sink *k, const char *yaml, int staged)
{
    memset(k, 0, sizeof *k);
    k->p = &sl_sink_sqlite;
    sl_rc rc = sl_cfg_load_string(yaml, strlen(yaml), "sink.yaml", tmpdir, &k->doc, &k->err);
    if (rc) {
        fprintf(stderr, "config: %s\n", k->err.msg);
        return rc;
    }
    k->ctx.pipeline = "clicks_to_db";
    k->ctx.name = "out";
    k->ctx.doc = k->doc;
    k->ctx.node = k->doc->root;
    k->ctx.state_dir = tmpdir;
    k->ctx.max_depth = 128;
    k->ctx.exactly_once = 1;
    k->ctx.staged = staged;
    k->ctx.source_names = source_names;
    k->ctx.nsources = 2;
    k->w.parser = parser;
    k->w.stage = "out";
    k->w.max_depth = 128;
    rc = k->p->init(&k->ctx, &k->state, &k->err);
    if (rc) {
        fprintf(stderr, "  (init: %s: %s)\n", sl_rc_name(rc), k->err.msg);
        k->state = NULL;
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

static const char *committed(struct sink *k, const char *source)
{
    static char buf[64];
    char *pos = NULL;
    if (k->p->committed(k->state, source, &pos, &k->err) != SL_OK)
        return "ERROR";
    snprintf(buf, sizeof buf, "%s", pos ? pos : "(none)");
    sl_free(pos);
    return buf;
}

static sl_rc publish(struct sink *k, int verdict, sl_publish_keep_fn keep, void *ctx)
{
    sl_error_clear(&k->err);
    sl_rc rc = k->p->publish(k->state, verdict, keep, ctx, &k->err);
    if (rc)
        fprintf(stderr, "  (publish: %s: %s)\n", sl_rc_name(rc), k->err.msg);
    return rc;
}

#define TARGET_ROWS "SELECT k, v FROM t ORDER BY k"
#define CKPT "SELECT source, position, records FROM _sluice_checkpoints ORDER BY source"
#define STAGED "SELECT count(*) FROM _sluice_staging"

/* ---- ACCEPT ------------------------------------------------------------------------- */

static void t_accept(void)
{
    struct sink k;
    REQUIRE(open_sink(&k, "path: a/w.db\ntable: t\nkey: k\n", 1) == SL_OK);
    static const char *const b1[] = {"{\"k\":1,\"v\":\"one\"}", "{\"k\":2,\"v\":\"two\"}"};
    static const char *const b2[] = {"{\"k\":2,\"v\":\"TWO\",\"w\":true}", "{\"k\":3,\"v\":null}"};
    static const char *const b3[] = {"{\"k\":4,\"v\":\"four\"}"};
    CHECK_INT(write_lines(&k, b1, N(b1), 0, "5", 1), SL_OK);
    CHECK_INT(write_lines(&k, b2, N(b2), 0, "9", 2), SL_OK);
    CHECK_INT(write_lines(&k, b3, N(b3), 1, "o1", 3), SL_OK);
    /* Staged: the target does not exist yet and nothing is committed. */
    CHECK_STR(q("a/w.db", "SELECT count(*) FROM sqlite_master WHERE name = 't'"), "0\n");
    CHECK_STR(q("a/w.db", CKPT), "");
    CHECK_STR(q("a/w.db", STAGED), "5\n");
    CHECK_STR(q("a/w.db", "SELECT source, position, records FROM _sluice_staged ORDER BY source"),
              "clicks|9|4\norders|o1|1\n");
    CHECK_STR(committed(&k, "clicks"), "(none)");

    CHECK_INT(publish(&k, SL_PUBLISH_ACCEPT, NULL, NULL), SL_OK);
    /* Upserted in staging order: key 2 holds the newer record; the id column is there. */
    CHECK_STR(q("a/w.db", "SELECT k, v, w, length(_sluice_id) FROM t ORDER BY k"),
              "1|one|NULL|32\n2|TWO|1|32\n3|NULL|NULL|32\n4|four|NULL|32\n");
    CHECK_STR(q("a/w.db", CKPT), "clicks|9|4\norders|o1|1\n");
    CHECK_STR(q("a/w.db", STAGED), "0\n");
    CHECK_STR(q("a/w.db", "SELECT count(*) FROM _sluice_staged"), "0\n");
    CHECK_STR(committed(&k, "clicks"), "9");
    CHECK_STR(committed(&k, "orders"), "o1");
    sink_close(&k);

    /* A second staged run publishes on top, with the same conflict rules. */
    REQUIRE(open_sink(&k, "path: a/w.db\ntable: t\nkey: k\n", 1) == SL_OK);
    static const char *const b4[] = {"{\"k\":1,\"v\":\"uno\"}"};
    CHECK_INT(write_lines(&k, b4, N(b4), 0, "12", 4), SL_OK);
    CHECK_STR(q("a/w.db", "SELECT v FROM t WHERE k = 1"), "one\n");
    CHECK_INT(publish(&k, SL_PUBLISH_ACCEPT, NULL, NULL), SL_OK);
    CHECK_STR(q("a/w.db", "SELECT v FROM t WHERE k = 1"), "uno\n");
    CHECK_STR(q("a/w.db", CKPT), "clicks|12|5\norders|o1|1\n");
    sink_close(&k);
}

/* A record the target table refuses at publish fails the publish and changes nothing. */
static void t_accept_refused(void)
{
    struct sink k;
    sqlite3 *db;
    REQUIRE(sqlite3_open(tpath("ar.db"), &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db, "CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT CHECK (v <> 'bad'))",
                         NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    REQUIRE(open_sink(&k, "path: ar.db\ntable: t\nkey: k\n", 1) == SL_OK);
    static const char *const b1[] = {"{\"k\":1,\"v\":\"ok\"}", "{\"k\":2,\"v\":\"bad\"}"};
    CHECK_INT(write_lines(&k, b1, N(b1), 0, "3", 7), SL_OK);
    CHECK_INT(publish(&k, SL_PUBLISH_ACCEPT, NULL, NULL), SL_EDB);
    CHECK_STR(k.err.msg, "sink out: publishing to table t: staged record "
                         "00000000000000070000000000000001: table t refused the row: CHECK "
                         "constraint failed: v <> 'bad'; not written; nothing was published "
                         "and the checkpoint is unchanged (the next run stages the same "
                         "records again): change the table or the data");
    CHECK_STR(q("ar.db", "SELECT count(*) FROM t"), "0\n");
    CHECK_STR(q("ar.db", CKPT), "");
    sink_close(&k);
}

/* ---- DISCARD ------------------------------------------------------------------------ */

static void t_discard(void)
{
    struct sink k;
    REQUIRE(open_sink(&k, "path: d/w.db\ntable: t\nkey: k\n", 0) == SL_OK);
    static const char *const b0[] = {"{\"k\":1,\"v\":\"kept\"}"};
    CHECK_INT(write_lines(&k, b0, N(b0), 0, "1", 1), SL_OK);
    sink_close(&k);

    REQUIRE(open_sink(&k, "path: d/w.db\ntable: t\nkey: k\n", 1) == SL_OK);
    static const char *const b1[] = {"{\"k\":1,\"v\":\"changed\"}", "{\"k\":2,\"v\":\"new\"}"};
    CHECK_INT(write_lines(&k, b1, N(b1), 0, "8", 2), SL_OK);
    CHECK_STR(q("d/w.db", TARGET_ROWS), "1|kept\n");
    CHECK_INT(publish(&k, SL_PUBLISH_DISCARD, NULL, NULL), SL_OK);
    CHECK_STR(q("d/w.db", TARGET_ROWS), "1|kept\n");
    CHECK_STR(q("d/w.db", CKPT), "clicks|1|1\n");
    CHECK_STR(q("d/w.db", STAGED), "0\n");
    CHECK_STR(q("d/w.db", "SELECT count(*) FROM _sluice_staged"), "0\n");
    CHECK_STR(committed(&k, "clicks"), "1");
    sink_close(&k);
}

/* ---- QUARANTINE --------------------------------------------------------------------- */

struct kept {
    int n;
    int fail_at;  /* 1-based call that fails, 0: none */
    int ends;     /* calls with json == NULL (end of the unit) */
    int n_at_end; /* records handed over when the end came */
    char ckpt_at_end[64];
    uint64_t id[8][2];
    char json[8][128];
    char ckpt_seen[8][64]; /* _sluice_checkpoints as the hook saw it */
    const char *db;
};

static sl_rc keep_fake(void *ctx, const uint64_t id[2], const char *json, size_t len,
                       struct sl_error *err)
{
    struct kept *kp = ctx;
    if (!json) {
        kp->ends++;
        kp->n_at_end = kp->n;
        snprintf(kp->ckpt_at_end, sizeof kp->ckpt_at_end, "%s", q(kp->db, CKPT));
        if (kp->fail_at == -1)
            return sl_error_set(err, SL_EIO, "quarantine commit failed");
        return SL_OK;
    }
    if (kp->fail_at && kp->n + 1 == kp->fail_at)
        return sl_error_set(err, SL_EIO, "quarantine store is full");
    if (kp->n >= 8)
        return sl_error_set(err, SL_ELIMIT, "too many");
    kp->id[kp->n][0] = id[0];
    kp->id[kp->n][1] = id[1];
    snprintf(kp->json[kp->n], sizeof kp->json[0], "%.*s", (int)len, json);
    snprintf(kp->ckpt_seen[kp->n], sizeof kp->ckpt_seen[0], "%s", q(kp->db, CKPT));
    kp->n++;
    return SL_OK;
}

static void t_quarantine(void)
{
    struct sink k;
    REQUIRE(open_sink(&k, "path: qu/w.db\ntable: t\n", 0) == SL_OK);
    static const char *const b0[] = {"{\"k\":0}"};
    CHECK_INT(write_lines(&k, b0, N(b0), 0, "2", 1), SL_OK);
    sink_close(&k);

    REQUIRE(open_sink(&k, "path: qu/w.db\ntable: t\n", 1) == SL_OK);
    /* Exact bytes, spacing included, and an edited record written with its edit. */
    static const char *const b1[] = {"{ \"k\" : 1,  \"v\":[1, 2] }", "{\"k\":2}"};
    struct sl_batch *b = make_batch(b1, N(b1), 0, "6", 0xabc);
    REQUIRE(b);
    struct sl_value v = {.type = SL_V_STRING, .u.str = "x", .len = 1};
    REQUIRE(sl_record_set_key(&b->recs[1], "e", 1, &v, &b->arena) == SL_OK);
    CHECK_INT(sink_write(&k, b), SL_OK);
    sl_batch_unref(b);

    /* A failing store: nothing is committed and the staged records stay. */
    struct kept kp = {.fail_at = 2, .db = "qu/w.db"};
    CHECK_INT(publish(&k, SL_PUBLISH_QUARANTINE, keep_fake, &kp), SL_EIO);
    CHECK_STR(k.err.msg, "sink out: quarantining staged record "
                         "0000000000000abc0000000000000001: the checkpoint is unchanged, so "
                         "the next run reads these records again: quarantine store is full");
    CHECK_STR(q("qu/w.db", CKPT), "clicks|2|1\n");
    CHECK_STR(q("qu/w.db", STAGED), "2\n");
    CHECK_INT(kp.ends, 0);

    /* The end of the unit fails: the same. */
    memset(&kp, 0, sizeof kp);
    kp.db = "qu/w.db";
    kp.fail_at = -1;
    CHECK_INT(publish(&k, SL_PUBLISH_QUARANTINE, keep_fake, &kp), SL_EIO);
    CHECK_STR(k.err.msg, "sink out: committing the quarantined records: the checkpoint is "
                         "unchanged, so the next run reads these records again: quarantine "
                         "commit failed");
    CHECK_INT(kp.ends, 1);
    CHECK_STR(q("qu/w.db", CKPT), "clicks|2|1\n");
    CHECK_STR(q("qu/w.db", STAGED), "2\n");

    memset(&kp, 0, sizeof kp);
    kp.db = "qu/w.db";
    CHECK_INT(publish(&k, SL_PUBLISH_QUARANTINE, keep_fake, &kp), SL_OK);
    CHECK_INT(kp.n, 2);
    CHECK_STR(kp.json[0], "{ \"k\" : 1,  \"v\":[1, 2] }");
    CHECK_STR(kp.json[1], "{\"k\":2,\"e\":\"x\"}");
    CHECK_INT(kp.id[0][0], 0xabc);
    CHECK_INT(kp.id[0][1], 0);
    CHECK_INT(kp.id[1][0], 0xabc);
    CHECK_INT(kp.id[1][1], 1);
    /* Each record, then the end of the unit, was handed over before the positions moved ... */
    CHECK_STR(kp.ckpt_seen[1], "clicks|2|1\n");
    CHECK_INT(kp.ends, 1);
    CHECK_INT(kp.n_at_end, 2);
    CHECK_STR(kp.ckpt_at_end, "clicks|2|1\n");
    /* ... and then the positions moved, the target untouched. */
    CHECK_STR(q("qu/w.db", CKPT), "clicks|6|1\n");
    CHECK_STR(q("qu/w.db", "SELECT k FROM t"), "0\n");
    CHECK_STR(q("qu/w.db", STAGED), "0\n");
    CHECK_STR(committed(&k, "clicks"), "6");
    sink_close(&k);
}

/* ---- leftovers ---------------------------------------------------------------------- */

/* A child stages a batch and is killed; the next start drops what it staged. */
static void t_leftover_dropped(void)
{
    struct sink k;
    REQUIRE(open_sink(&k, "path: l/w.db\ntable: t\nkey: k\n", 0) == SL_OK);
    static const char *const b0[] = {"{\"k\":1,\"v\":\"a\"}"};
    CHECK_INT(write_lines(&k, b0, N(b0), 0, "1", 1), SL_OK);
    sink_close(&k);

    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        struct sink c;
        static const char *const b1[] = {"{\"k\":1,\"v\":\"lost\"}", "{\"k\":5,\"v\":\"e\"}"};
        if (open_sink(&c, "path: l/w.db\ntable: t\nkey: k\n", 1) != SL_OK ||
            write_lines(&c, b1, N(b1), 0, "4", 2) != SL_OK)
            _exit(3);
        kill(getpid(), SIGKILL);
        _exit(4);
    }
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    CHECK_STR(q("l/w.db", STAGED), "2\n");
    CHECK_STR(q("l/w.db", "SELECT position FROM _sluice_staged"), "4\n");

    /* inspect leaves them alone; a run (staged or not) drops them. */
    REQUIRE(fixture_open(&k, &sl_sink_sqlite, "path: l/w.db\ntable: t\nkey: k\n", 1, 1, 0) ==
            SL_OK);
    CHECK_STR(committed(&k, "clicks"), "1");
    sink_close(&k);
    CHECK_STR(q("l/w.db", STAGED), "2\n");
    REQUIRE(open_sink(&k, "path: l/w.db\ntable: t\nkey: k\n", 0) == SL_OK);
    CHECK_STR(q("l/w.db", STAGED), "0\n");
    CHECK_STR(q("l/w.db", "SELECT count(*) FROM _sluice_staged"), "0\n");
    CHECK_STR(q("l/w.db", TARGET_ROWS), "1|a\n");
    CHECK_STR(committed(&k, "clicks"), "1");
    sink_close(&k);

    /* The rerun stages the same records again and publishes each once. */
    REQUIRE(open_sink(&k, "path: l/w.db\ntable: t\nkey: k\n", 1) == SL_OK);
    static const char *const b1[] = {"{\"k\":1,\"v\":\"lost\"}", "{\"k\":5,\"v\":\"e\"}"};
    CHECK_INT(write_lines(&k, b1, N(b1), 0, "4", 2), SL_OK);
    CHECK_INT(publish(&k, SL_PUBLISH_ACCEPT, NULL, NULL), SL_OK);
    CHECK_STR(q("l/w.db", TARGET_ROWS), "1|lost\n5|e\n");
    CHECK_STR(q("l/w.db", CKPT), "clicks|4|3\n");
    sink_close(&k);
}

/*
 * kill -9 while ACCEPT runs (or just before or after it): the database is either wholly
 * published (every row once, the checkpoint at the last staged position, staging empty)
 * or not at all (no row, no checkpoint); the next start then drops the staging.
 */
static void t_kill_during_publish(void)
{
    enum { NBATCH = 20, PER = 1000 };
    /* Microseconds from "staged" to the kill; -1: after publish returned. */
    static const int delay_us[] = {0, 5000, 20000, 50000, 100000, 200000, -1};
    static char text[PER][40];
    static const char *lines[PER];
    int published = 0, unpublished = 0;
    for (size_t round = 0; round < N(delay_us); round++) {
        char yaml[128], db[32];
        snprintf(db, sizeof db, "kp%zu.db", round);
        snprintf(yaml, sizeof yaml, "path: %s\ntable: t\n", db);
        int fds[2];
        REQUIRE(pipe(fds) == 0);
        fflush(NULL);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            struct sink c;
            close(fds[0]);
            if (open_sink(&c, yaml, 1) != SL_OK)
                _exit(3);
            for (int i = 0; i < NBATCH; i++) {
                char pos[16];
                for (int j = 0; j < PER; j++) {
                    snprintf(text[j], sizeof text[j], "{\"n\":%d,\"v\":\"r%d\"}", i * PER + j, i);
                    lines[j] = text[j];
                }
                snprintf(pos, sizeof pos, "%d", i + 1);
                if (write_lines(&c, lines, PER, 0, pos, (uint64_t)i) != SL_OK)
                    _exit(4);
            }
            if (write(fds[1], "s", 1) != 1)
                _exit(5);
            if (c.p->publish(c.state, SL_PUBLISH_ACCEPT, NULL, NULL, &c.err) != SL_OK)
                _exit(6);
            _exit(write(fds[1], "p", 1) == 1 ? 0 : 7);
        }
        close(fds[1]);
        char ch = 0;
        CHECK_INT(read(fds[0], &ch, 1), 1);
        CHECK(ch == 's');
        if (delay_us[round] >= 0)
            usleep((useconds_t)delay_us[round]);
        else
            CHECK(read(fds[0], &ch, 1) == 1 && ch == 'p');
        kill(pid, SIGKILL);
        int status;
        REQUIRE(waitpid(pid, &status, 0) == pid);
        close(fds[0]);
        char rows[64];
        snprintf(rows, sizeof rows, "%s",
                 q(db, "SELECT count(*), count(DISTINCT _sluice_id), count(DISTINCT n) FROM t"));
        char ck[64];
        snprintf(ck, sizeof ck, "%s", q(db, CKPT));
        if (strcmp(ck, "clicks|20|20000\n") == 0) {
            published++;
            CHECK_STR(rows, "20000|20000|20000\n");
            CHECK_STR(q(db, STAGED), "0\n");
        } else {
            unpublished++;
            CHECK_STR(ck, "");
            CHECK(strcmp(rows, "0|0|0\n") == 0 || strncmp(rows, "ERROR", 5) == 0);
        }
        /* The next start drops what is left staged; the checkpoint stays as it was. */
        struct sink k;
        REQUIRE(open_sink(&k, yaml, 0) == SL_OK);
        CHECK_STR(q(db, STAGED), "0\n");
        CHECK_STR(committed(&k, "clicks"), ck[0] ? "20" : "(none)");
        sink_close(&k);
    }
    fprintf(stderr, "  killed around publish: %d published, %d not\n", published, unpublished);
    CHECK_INT(published + unpublished, (int)N(delay_us));
    CHECK(published >= 1); /* the last round at least */
}

/* Publishing a sink that was not started staged is refused. */
static void t_publish_unstaged(void)
{
    struct sink k;
    REQUIRE(open_sink(&k, "path: u/w.db\ntable: t\n", 0) == SL_OK);
    CHECK_INT(k.p->publish(k.state, SL_PUBLISH_ACCEPT, NULL, NULL, &k.err), SL_ESTATE);
    CHECK_STR(k.err.msg, "sink out: publish called but the sink was not started for "
                         "write-audit-publish");
    sink_close(&k);
}

/* ---- rejections and keep_rejects ---------------------------------------------------- */

struct hook {
    int calls;
    sl_rc fail; /* returned instead of keeping */
    const char *db;
    const char *sql;
    char seen[8][256]; /* what sql returned inside each call */
    uint32_t bad_seen[8];
};

static sl_rc keep_rejects_fake(struct sl_worker *w, struct sl_batch *b, struct sl_error *err)
{
    struct hook *h = w->engine;
    int n = h->calls++;
    if (n < 8) {
        snprintf(h->seen[n], sizeof h->seen[n], "%s", q(h->db, h->sql));
        h->bad_seen[n] = 0;
        for (uint32_t i = 0; i < b->n; i++)
            h->bad_seen[n] += (b->recs[i].flags & SL_REC_BAD) != 0;
    }
    if (h->fail)
        return sl_error_set(err, h->fail, "dead-letter queue unavailable");
    for (uint32_t i = 0; i < b->n; i++)
        if (b->recs[i].flags & SL_REC_BAD)
            b->recs[i].flags |= SL_REC_KEPT;
    return SL_OK;
}

static void check_why(const struct sl_record *r, const char *cls, const char *rule,
                      const char *path)
{
    REQUIRE(r->why);
    CHECK_STR(r->why->error_class, cls);
    CHECK_STR(r->why->rule, rule);
    CHECK_STR(r->why->path, path);
}

static void t_keep_rejects_before_commit(void)
{
    struct sink k;
    struct hook h = {.db = "kr/w.db", .sql = "SELECT k, v FROM t ORDER BY k"};
    REQUIRE(open_sink(&k, "path: kr/w.db\ntable: t\nkey: k\n", 0) == SL_OK);
    k.w.keep_rejects = keep_rejects_fake;
    k.w.engine = &h;
    static const char *const b0[] = {"{\"k\":1,\"v\":\"a\"}"};
    CHECK_INT(write_lines(&k, b0, N(b0), 0, "1", 1), SL_OK);
    CHECK_INT(h.calls, 0); /* nothing rejected, no call */

    static const char *const b1[] = {
        "[1]",                           /* not an object */
        "{\"v\":\"no key\"}",            /* no key */
        "{\"k\":2,\"v\":\"b\"}",         /* ok */
        "{\"k\":null}",                  /* null key */
        "{\"k\":3,\"V\":1,\"v\":2}",     /* two fields, one column */
        "{\"k\":4,\"_sluice_id\":\"\"}", /* the id column's name */
    };
    struct sl_batch *b = make_batch(b1, N(b1), 0, "2", 2);
    REQUIRE(b);
    /* The queue fails: the batch is rolled back and the error passed on. */
    h.fail = SL_RETRY;
    CHECK_INT(sink_write(&k, b), SL_RETRY);
    CHECK_STR(k.err.msg, "sink out: the batch was rolled back because the records it rejected "
                         "could not be put in the dead-letter queue: dead-letter queue "
                         "unavailable");
    CHECK_INT(h.calls, 1);
    CHECK_STR(h.seen[0], "1|a\n");
    CHECK_INT(h.bad_seen[0], 5);
    CHECK_STR(q("kr/w.db", "SELECT k, v FROM t ORDER BY k"), "1|a\n");
    CHECK_STR(q("kr/w.db", CKPT), "clicks|1|1\n");

    /* The retry keeps them (they stayed marked) and only then commits. */
    h.fail = SL_OK;
    CHECK_INT(sink_write(&k, b), SL_OK);
    CHECK_INT(h.calls, 2);
    CHECK_STR(h.seen[1], "1|a\n"); /* inside the hook: the batch not yet committed */
    CHECK_STR(q("kr/w.db", "SELECT k, v FROM t ORDER BY k"), "1|a\n2|b\n");
    CHECK_STR(q("kr/w.db", CKPT), "clicks|2|2\n");
    for (uint32_t i = 0; i < b->n; i++)
        CHECK_INT(!!(b->recs[i].flags & SL_REC_KEPT), i != 2);
    check_why(&b->recs[0], "not_object", "type", "$");
    CHECK_STR(b->recs[0].why->expected, "object");
    CHECK_STR(b->recs[0].why->actual, "array");
    check_why(&b->recs[1], "sink", "key_missing", "$.k");
    CHECK_STR(b->recs[1].error, "record has no key field \"k\"; not written");
    check_why(&b->recs[3], "sink", "key_null", "$.k");
    check_why(&b->recs[4], "sink", "column_collision", "$.v");
    check_why(&b->recs[5], "sink", "id_column", "$._sluice_id");
    sl_batch_unref(b);
    sink_close(&k);
}

/* A constraint of the table: rule = the constraint's kind, message = SQLite's. */
static void t_constraint_reject(void)
{
    struct sink k;
    sqlite3 *db;
    REQUIRE(sqlite3_open(tpath("cr.db"), &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db,
                         "CREATE TABLE t(_sluice_id TEXT UNIQUE, k INTEGER NOT NULL,"
                         " v TEXT CHECK (v <> 'bad'))",
                         NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    struct hook h = {.db = "cr.db", .sql = "SELECT count(*) FROM t"};
    REQUIRE(open_sink(&k, "path: cr.db\ntable: t\n", 0) == SL_OK);
    k.w.keep_rejects = keep_rejects_fake;
    k.w.engine = &h;
    static const char *const b1[] = {"{\"k\":1,\"v\":\"bad\"}", "{\"v\":\"x\"}", "{\"k\":3}"};
    struct sl_batch *b = make_batch(b1, N(b1), 0, "1", 5);
    REQUIRE(b);
    CHECK_INT(sink_write(&k, b), SL_OK);
    CHECK_INT(h.calls, 1);
    CHECK_STR(h.seen[0], "0\n");
    check_why(&b->recs[0], "sink", "check", "$");
    CHECK_STR(b->recs[0].error,
              "table t refused the row: CHECK constraint failed: v <> 'bad'; not written");
    check_why(&b->recs[1], "sink", "not_null", "$");
    CHECK_STR(b->recs[1].error,
              "table t refused the row: NOT NULL constraint failed: t.k; not written");
    CHECK(!(b->recs[2].flags & SL_REC_BAD));
    CHECK_STR(q("cr.db", "SELECT k, v FROM t"), "3|NULL\n");
    sl_batch_unref(b);
    sink_close(&k);
}

/* Staged runs reject the same way, and keep before the staging commit. */
static void t_staged_rejects(void)
{
    struct sink k;
    struct hook h = {.db = "sr/w.db", .sql = "SELECT count(*) FROM _sluice_staging"};
    REQUIRE(open_sink(&k, "path: sr/w.db\ntable: t\nkey: k\n", 1) == SL_OK);
    k.w.keep_rejects = keep_rejects_fake;
    k.w.engine = &h;
    static const char *const b1[] = {"{\"k\":1}", "{\"x\":1}", "{\"k\":2,\"K\":3}", "7",
                                     "{\"k\":4,\"_SLUICE_ID\":1}"};
    struct sl_batch *b = make_batch(b1, N(b1), 0, "3", 6);
    REQUIRE(b);
    CHECK_INT(sink_write(&k, b), SL_OK);
    CHECK_INT(h.calls, 1);
    CHECK_STR(h.seen[0], "0\n");
    CHECK_STR(q("sr/w.db", "SELECT record FROM _sluice_staging"), "{\"k\":1}\n");
    check_why(&b->recs[1], "sink", "key_missing", "$.k");
    check_why(&b->recs[2], "sink", "column_collision", "$.K");
    CHECK_STR(b->recs[2].error,
              "two fields map to column \"k\" (SQLite column names ignore case); not written");
    check_why(&b->recs[3], "not_object", "type", "$");
    check_why(&b->recs[4], "sink", "id_column", "$._SLUICE_ID");
    sl_batch_unref(b);
    CHECK_INT(publish(&k, SL_PUBLISH_ACCEPT, NULL, NULL), SL_OK);
    CHECK_STR(q("sr/w.db", "SELECT k FROM t"), "1\n");
    CHECK_STR(q("sr/w.db", CKPT), "clicks|3|1\n");
    sink_close(&k);
}

int main(void)
{
    make_tmpdir();
    if (sl_json_parser_create(&parser) != SL_OK)
        return 1;
    RUN(t_accept);
    RUN(t_accept_refused);
    RUN(t_discard);
    RUN(t_quarantine);
    RUN(t_leftover_dropped);
    RUN(t_kill_during_publish);
    RUN(t_publish_unstaged);
    RUN(t_keep_rejects_before_commit);
    RUN(t_constraint_reject);
    RUN(t_staged_rejects);
    sl_json_parser_destroy(parser);
    int rc = TEST_DONE();
    if (rc == 0)
        remove_tmpdir();
    else
        fprintf(stderr, "scratch files kept in %s\n", tmpdir);
    return rc;
}
