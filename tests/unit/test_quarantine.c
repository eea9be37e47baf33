/*
 * test_quarantine.c - the quarantine store (src/quarantine/store.c): keep a batch as a
 * unit, list, show, count, drop, the release reader and finish, record-by-record units
 * for write-audit-publish, re-keeping after a crash (records move, emptied units go),
 * flags set only after a commit, and a file that is not a store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "sluice/alloc.h"
#include "sluice/batch.h"
#include "sluice/quarantine.h"
#include "test.h"

static struct sl_json_parser *parser;
static char dir[] = "/tmp/sl_quarantine_XXXXXX";
static char path[256];

static struct sl_batch *make_batch(const char *const *texts, uint64_t base)
{
    struct sl_batch *b;
    if (sl_batch_create(0, &b))
        exit(2);
    b->origin = "in.ndjson";
    for (size_t i = 0; texts[i]; i++) {
        struct sl_record *r = sl_batch_add(b);
        size_t n = strlen(texts[i]);
        r->text = r->orig = sl_arena_strndup(&b->arena, texts[i], n);
        r->text_len = r->orig_len = (uint32_t)n;
        r->line = (uint32_t)(base + i + 1);
        r->offset = (base + i) * 100;
        r->id[0] = 0xabc;
        r->id[1] = base + i;
        struct sl_json_error jerr;
        if (sl_record_parse(r, parser, 0, &b->arena, &jerr))
            exit(2);
    }
    return b;
}

/* Units as text, one per line: "id stage source gates records state". */
static char units_text[4096];
static int unit_line(void *ctx, const struct sl_quarantine_unit *u)
{
    (void)ctx;
    size_t n = strlen(units_text);
    snprintf(units_text + n, sizeof units_text - n, "%lld %s %s [%s] %llu %s|%s\n",
             (long long)u->id, u->stage, u->source, u->gates, (unsigned long long)u->records,
             u->state, u->reason);
    return 0;
}

static const char *units(struct sl_quarantine *q)
{
    units_text[0] = 0;
    struct sl_error err;
    if (sl_quarantine_units(q, unit_line, NULL, &err))
        return "error";
    return units_text;
}

/* Records as text: "row:unit:record_id:line:offset:origin:json:raw" lines. */
static char recs_text[8192];
static int64_t last_row;
static int rec_line(void *ctx, const struct sl_quarantine_record *r)
{
    (void)ctx;
    size_t n = strlen(recs_text);
    if (strlen(r->record_id) != 32 || strncmp(r->record_id, "0000000000000abc", 16) != 0)
        return 1; /* the id's high half is 0xabc in every test; anything else shows as "" */
    snprintf(recs_text + n, sizeof recs_text - n, "%lld:%s:%llu:%llu:%s:%.*s:%s\n",
             (long long)r->unit, r->record_id + 16, (unsigned long long)r->line,
             (unsigned long long)r->offset, r->origin, (int)r->json_len, r->json,
             r->raw ? "raw" : "-");
    last_row = r->row;
    return 0;
}

static const char *records(struct sl_quarantine *q, int64_t unit, int64_t after, size_t limit)
{
    recs_text[0] = 0;
    struct sl_error err;
    if (sl_quarantine_records(q, unit, after, limit, rec_line, NULL, &err))
        return "error";
    return recs_text;
}

static const struct sl_quarantine_info info = {"g1, g2", "buys", "clicks", "g1: bad\ng2: worse"};

static void test_keep_list_show_drop(void)
{
    struct sl_error err;
    struct sl_quarantine *q = NULL;
    CHECK_INT(sl_quarantine_open(path, 0, 0, &q, &err), SL_ENOENT);
    REQUIRE(sl_quarantine_open(path, 1, 1, &q, &err) == SL_OK);
    static const char *const t[] = {"{\"a\":1}", "{\"a\":2}", "{\"a\":3}", NULL};
    struct sl_batch *b = make_batch(t, 0);
    b->recs[1].flags |= SL_REC_DROPPED; /* filtered: not kept */
    /* An edit shows in the stored JSON; the raw bytes stay as read. */
    struct sl_value v = sl_value_number(9);
    v.u.num.text = "9";
    v.len = 1;
    REQUIRE(sl_record_set_key(&b->recs[2], "z", 1, &v, &b->arena) == SL_OK);
    int64_t unit = -1;
    uint64_t kept = 0;
    CHECK_INT(sl_quarantine_keep(q, b, &info, &unit, &kept, &err), SL_OK);
    CHECK_INT(unit, 1);
    CHECK_INT(kept, 2);
    CHECK_INT(b->recs[0].flags & (SL_REC_QUARANTINED | SL_REC_DROPPED),
              SL_REC_QUARANTINED | SL_REC_DROPPED);
    CHECK_INT(b->recs[1].flags & SL_REC_QUARANTINED, 0);
    CHECK_INT(b->recs[2].flags & SL_REC_QUARANTINED, SL_REC_QUARANTINED);
    CHECK_STR(units(q), "1 buys clicks [g1, g2] 2 held|g1: bad\ng2: worse\n");
    CHECK_STR(records(q, 1, 0, 0), "1:0000000000000000:1:0:in.ndjson:{\"a\":1}:raw\n"
                                   "1:0000000000000002:3:200:in.ndjson:{\"a\":3,\"z\":9}:raw\n");
    CHECK_STR(records(q, 1, 0, 1), "1:0000000000000000:1:0:in.ndjson:{\"a\":1}:raw\n");
    /* Everything now dropped: keeping again writes nothing. */
    CHECK_INT(sl_quarantine_keep(q, b, &info, &unit, &kept, &err), SL_OK);
    CHECK_INT(unit, 0);
    CHECK_INT(kept, 0);
    uint64_t nu = 9, nr = 9;
    CHECK_INT(sl_quarantine_count(q, &nu, &nr, &err), SL_OK);
    CHECK_INT(nu, 1);
    CHECK_INT(nr, 2);
    CHECK_INT(sl_quarantine_drop(q, 7, NULL, &err), SL_ENOENT);
    CHECK(strstr(err.msg, "has no unit 7") != NULL);
    uint64_t dropped = 0;
    CHECK_INT(sl_quarantine_drop(q, 1, &dropped, &err), SL_OK);
    CHECK_INT(dropped, 2);
    CHECK_STR(units(q), "");
    CHECK_STR(records(q, 1, 0, 0), "");
    CHECK_INT(sl_quarantine_count(q, &nu, &nr, &err), SL_OK);
    CHECK_INT(nu, 0);
    CHECK_INT(nr, 0);
    sl_batch_unref(b);
    /* Unit ids are never reused. */
    static const char *const t2[] = {"{\"b\":1}", NULL};
    b = make_batch(t2, 10);
    CHECK_INT(sl_quarantine_keep(q, b, &info, &unit, &kept, &err), SL_OK);
    CHECK_INT(unit, 2);
    sl_batch_unref(b);
    sl_quarantine_close(q);
    /* Reopen without create: the unit is still there. */
    REQUIRE(sl_quarantine_open(path, 0, 0, &q, &err) == SL_OK);
    CHECK_STR(units(q), "2 buys clicks [g1, g2] 1 held|g1: bad\ng2: worse\n");
    CHECK_INT(sl_quarantine_drop(q, 2, NULL, &err), SL_OK);
    sl_quarantine_close(q);
}

static void test_rekeep_moves_records(void)
{
    struct sl_error err;
    struct sl_quarantine *q = NULL;
    REQUIRE(sl_quarantine_open(path, 1, 0, &q, &err) == SL_OK);
    static const char *const t[] = {"{\"n\":0}", "{\"n\":1}", "{\"n\":2}", NULL};
    int64_t u1, u2, u3;
    uint64_t kept;
    struct sl_batch *b = make_batch(t, 0);
    CHECK_INT(sl_quarantine_keep(q, b, &info, &u1, &kept, &err), SL_OK);
    sl_batch_unref(b);
    /* The same input read again after a crash: the same record ids. Records 1 and 2 only. */
    b = make_batch(t, 0);
    b->recs[0].flags |= SL_REC_BAD;
    CHECK_INT(sl_quarantine_keep(q, b, &info, &u2, &kept, &err), SL_OK);
    CHECK_INT(kept, 2);
    CHECK(u2 > u1);
    sl_batch_unref(b);
    /* u1 keeps one record, u2 holds two. */
    char want[256];
    snprintf(want, sizeof want,
             "%lld buys clicks [g1, g2] 1 held|g1: bad\ng2: worse\n"
             "%lld buys clicks [g1, g2] 2 held|g1: bad\ng2: worse\n",
             (long long)u1, (long long)u2);
    CHECK_STR(units(q), want);
    /* All three again: u1 and u2 are emptied and removed. */
    b = make_batch(t, 0);
    CHECK_INT(sl_quarantine_keep(q, b, &info, &u3, &kept, &err), SL_OK);
    CHECK_INT(kept, 3);
    sl_batch_unref(b);
    snprintf(want, sizeof want, "%lld buys clicks [g1, g2] 3 held|g1: bad\ng2: worse\n",
             (long long)u3);
    CHECK_STR(units(q), want);
    uint64_t nu, nr;
    CHECK_INT(sl_quarantine_count(q, &nu, &nr, &err), SL_OK);
    CHECK_INT(nu, 1);
    CHECK_INT(nr, 3);
    /* The same record at another stage is another record. */
    struct sl_quarantine_info other = info;
    other.stage = "warehouse";
    int64_t u4;
    b = make_batch(t, 0);
    CHECK_INT(sl_quarantine_keep(q, b, &other, &u4, &kept, &err), SL_OK);
    CHECK_INT(kept, 3);
    sl_batch_unref(b);
    CHECK_INT(sl_quarantine_count(q, &nu, &nr, &err), SL_OK);
    CHECK_INT(nu, 2);
    CHECK_INT(nr, 6);
    CHECK_INT(sl_quarantine_drop(q, u3, NULL, &err), SL_OK);
    CHECK_INT(sl_quarantine_drop(q, u4, NULL, &err), SL_OK);
    sl_quarantine_close(q);
}

static void test_flags_only_after_commit(void)
{
    struct sl_error err;
    struct sl_quarantine *q = NULL;
    REQUIRE(sl_quarantine_open(path, 1, 0, &q, &err) == SL_OK);
    /* Another connection holds the write lock: keep cannot commit and marks nothing. */
    sqlite3 *other;
    REQUIRE(sqlite3_open(path, &other) == SQLITE_OK);
    REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
    static const char *const t[] = {"{\"n\":0}", NULL};
    struct sl_batch *b = make_batch(t, 50);
    /* The store waits out its 5 s busy timeout once, then fails. */
    int64_t unit = -1;
    CHECK_INT(sl_quarantine_keep(q, b, &info, &unit, NULL, &err), SL_EDB);
    CHECK(strstr(err.msg, "quarantine store") != NULL);
    CHECK_INT(b->recs[0].flags & (SL_REC_QUARANTINED | SL_REC_DROPPED), 0);
    CHECK_INT(unit, -1);
    sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(other);
    CHECK_INT(sl_quarantine_keep(q, b, &info, &unit, NULL, &err), SL_OK);
    CHECK_INT(b->recs[0].flags & SL_REC_QUARANTINED, SL_REC_QUARANTINED);
    CHECK_INT(sl_quarantine_drop(q, unit, NULL, &err), SL_OK);
    sl_batch_unref(b);
    sl_quarantine_close(q);
}

static void test_publish_txn_and_release(void)
{
    struct sl_error err;
    struct sl_quarantine *q = NULL;
    REQUIRE(sl_quarantine_open(path, 1, 0, &q, &err) == SL_OK);
    struct sl_quarantine_txn *t = NULL;
    REQUIRE(sl_quarantine_begin(q, &info, &t, &err) == SL_OK);
    for (uint64_t i = 0; i < 5; i++) {
        uint64_t id[2] = {0xabc, 100 + i};
        char json[32];
        int n = snprintf(json, sizeof json, "{\"i\":%llu}", (unsigned long long)i);
        CHECK_INT(sl_quarantine_add_json(t, id, json, (size_t)n, &err), SL_OK);
    }
    int64_t unit = 0;
    uint64_t kept = 0;
    CHECK_INT(sl_quarantine_commit(t, &unit, &kept, &err), SL_OK);
    CHECK_INT(kept, 5);
    CHECK(unit > 0);
    /* An aborted unit leaves nothing. */
    REQUIRE(sl_quarantine_begin(q, &info, &t, &err) == SL_OK);
    uint64_t id[2] = {1, 2};
    CHECK_INT(sl_quarantine_add_json(t, id, "{}", 2, &err), SL_OK);
    sl_quarantine_abort(t);
    /* An empty unit is not kept. */
    REQUIRE(sl_quarantine_begin(q, &info, &t, &err) == SL_OK);
    int64_t none = -1;
    CHECK_INT(sl_quarantine_commit(t, &none, &kept, &err), SL_OK);
    CHECK_INT(none, 0);
    CHECK_INT(kept, 0);
    uint64_t nu, nr;
    CHECK_INT(sl_quarantine_count(q, &nu, &nr, &err), SL_OK);
    CHECK_INT(nu, 1);
    CHECK_INT(nr, 5);

    /* Release: mark, read in slices of 2 resuming after the last row, finish. */
    CHECK_INT(sl_quarantine_release_begin(q, unit + 100, &err), SL_ENOENT);
    CHECK_INT(sl_quarantine_release_begin(q, unit, &err), SL_OK);
    char want[256];
    snprintf(want, sizeof want, "%lld buys clicks [g1, g2] 5 releasing|g1: bad\ng2: worse\n",
             (long long)unit);
    CHECK_STR(units(q), want);
    char all[1024] = "";
    int64_t after = 0;
    int slices = 0;
    for (;;) {
        const char *s = records(q, unit, after, 2);
        if (!*s)
            break;
        size_t have = strlen(all);
        snprintf(all + have, sizeof all - have, "%s", s);
        after = last_row;
        slices++;
    }
    CHECK_INT(slices, 3);
    snprintf(want, sizeof want,
             "%lld:0000000000000064:0:0::{\"i\":0}:-\n%lld:0000000000000065:0:0::{\"i\":1}:-\n"
             "%lld:0000000000000066:0:0::{\"i\":2}:-\n%lld:0000000000000067:0:0::{\"i\":3}:-\n"
             "%lld:0000000000000068:0:0::{\"i\":4}:-\n",
             (long long)unit, (long long)unit, (long long)unit, (long long)unit, (long long)unit);
    CHECK_STR(all, want);
    uint64_t released = 0;
    CHECK_INT(sl_quarantine_release_finish(q, unit, &released, &err), SL_OK);
    CHECK_INT(released, 5);
    CHECK_INT(sl_quarantine_release_finish(q, unit, &released, &err), SL_ENOENT);
    CHECK_STR(units(q), "");
    CHECK_INT(sl_quarantine_unit_get(q, unit, unit_line, NULL, &err), SL_ENOENT);
    sl_quarantine_close(q);
}

static void test_not_a_store(void)
{
    char other[300];
    snprintf(other, sizeof other, "%s/other.db", dir);
    sqlite3 *db;
    REQUIRE(sqlite3_open(other, &db) == SQLITE_OK);
    sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL);
    sqlite3_close(db);
    struct sl_error err;
    struct sl_quarantine *q = NULL;
    CHECK_INT(sl_quarantine_open(other, 1, 0, &q, &err), SL_EDB);
    CHECK(q == NULL);
    char want[400];
    snprintf(want, sizeof want,
             "%s is not a sluice quarantine store (format 1); check the pipeline's state_dir",
             other);
    CHECK_STR(err.msg, want);
    unlink(other);
}

int main(void)
{
    if (sl_json_parser_create(&parser) || !mkdtemp(dir))
        return 2;
    snprintf(path, sizeof path, "%s/quarantine.db", dir);
    RUN(test_keep_list_show_drop);
    RUN(test_rekeep_moves_records);
    RUN(test_flags_only_after_commit);
    RUN(test_publish_txn_and_release);
    RUN(test_not_a_store);
    sl_json_parser_destroy(parser);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 2;
    return TEST_DONE();
}
