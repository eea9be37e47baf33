/*
 * store.c - the dead-letter queue store: rejected records in an embedded SQLite database.
 *
 * What it does. sl_dlq_keep writes every rejected record of a batch (SL_REC_BAD, not yet
 * SL_REC_KEPT) as one row of dlq_entries, in one transaction per call, and only after the
 * COMMIT succeeded marks the records SL_REC_KEPT: a failed keep leaves the batch as it
 * was, so the caller may retry it. The read side (scan, stats, count, purge) serves
 * `sluice dlq`; the replay side (plan, pending, read, finish) serves `sluice dlq replay`
 * as include/sluice/dlq.h describes.
 *
 * How it fits (DESIGN section 4). The engine keeps a stage's rejections before the batch
 * goes on, so no checkpoint covers a rejected record the DLQ does not hold. A batch read
 * again after a crash is rejected again; the upsert on (record_id, stage) turns that into
 * an update of last_seen_ns on the existing entry (first_seen_ns and attempts stay), so a
 * rejection is in the DLQ once however often it is written.
 *
 * Schema (format SL__DLQ_FORMAT in dlq_meta, key "format"):
 *
 *   dlq_meta(key TEXT PRIMARY KEY, value TEXT)
 *   dlq_entries(id INTEGER PRIMARY KEY, record_id TEXT, source TEXT, origin TEXT,
 *       line INTEGER, "offset" INTEGER, stage TEXT, error_class TEXT, message TEXT,
 *       rule, path, expected, actual, contract, details TEXT NULL, raw BLOB,
 *       true_len INTEGER, record TEXT NULL, attempts INTEGER, first_seen_ns INTEGER,
 *       last_seen_ns INTEGER, replay INTEGER NULL, UNIQUE(record_id, stage))
 *   dlq_replays(id INTEGER PRIMARY KEY, stage TEXT, created_ns INTEGER,
 *       finished_ns INTEGER NULL)
 *
 * Indexes cover the filters of `sluice dlq` (stage, error class, last seen) and the
 * replay reader (replay, id). Message and reason strings are stored as the bytes they are
 * (SQLite does not check UTF-8), raw as a BLOB, so invalid UTF-8 and NUL bytes survive.
 *
 * Replays. A replayed record carries the entry it came from (r->dlq_entry). Rejected
 * again while that entry is still marked (by the running replay, or by any replay when
 * the caller passes replay 0), it updates the entry in place: new stage and reason, the
 * record JSON as now rejected, attempts + 1, last_seen_ns now, unmarked. The entry's
 * origin fields (source, origin, line, offset, raw, true_len, first_seen_ns) describe
 * where the record first came from and stay. When the new (record_id, stage) already
 * belongs to another entry the two become one: the smaller id stays, attempts is the
 * larger of the two plus one, first_seen_ns the earlier. An entry no longer marked (the
 * record was already rejected once during this replay, in another branch) is not touched
 * again: the record is kept like any other, under its (record_id, stage).
 *
 * Format check. A database without our tables is either new (created when the caller may
 * create) or empty (SL_ENOENT otherwise); one with other tables and no dlq_meta is not a
 * DLQ, and a format other than ours is refused: misreading a newer layout could lose
 * entries.
 *
 * Threading. One connection (opened without SQLite's mutexes) behind mu: every public
 * function takes mu for its whole duration, callbacks included, so a callback must not
 * call back into the same struct sl_dlq.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "sluice/alloc.h"
#include "sluice/buf.h"
#include "sluice/dlq.h"
#include "sluice/engine.h"
#include "sluice/record.h"

#define SL__DLQ_FORMAT "sluice-dlq 1"
#define SL__DLQ_FORMAT_PREFIX "sluice-dlq "
#define DLQ_BUSY_MS 5000
#define DLQ_RECORD_MAX ((size_t)256 << 20) /* one record's JSON */
#define DLQ_SQL_MAX ((size_t)1 << 16)      /* one filtered statement's text */

/* Columns every entry query selects, in the order read_entry() reads them. */
#define ENTRY_COLUMNS                                                                              \
    "id, record_id, source, origin, line, \"offset\", stage, error_class, message, rule, path, "   \
    "expected, actual, contract, details, raw, true_len, record, attempts, first_seen_ns, "        \
    "last_seen_ns, replay"

/*
 * Invariants:
 *   1. db, path and every statement are set from a successful open until close; mu guards
 *      all of them and json.
 *   2. Outside a call no transaction is open and no statement is mid-step (each is reset
 *      after use).
 */
struct sl_dlq {
    pthread_mutex_t mu;
    sqlite3 *db;
    char *path;
    sqlite3_stmt *begin, *commit, *rollback;
    sqlite3_stmt *upsert; /* new entry, or last_seen of the existing (record_id, stage) */
    sqlite3_stmt *get;    /* attempts, first_seen_ns, replay of an entry by id */
    sqlite3_stmt *find;   /* id, attempts, first_seen_ns by (record_id, stage) */
    sqlite3_stmt *update; /* rejected again during a replay */
    sqlite3_stmt *del;    /* one entry by id */
    struct sl_buf json;   /* the record JSON being kept */
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS dlq_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS dlq_entries("
    " id INTEGER PRIMARY KEY, record_id TEXT NOT NULL, source TEXT NOT NULL,"
    " origin TEXT NOT NULL, line INTEGER NOT NULL, \"offset\" INTEGER NOT NULL,"
    " stage TEXT NOT NULL, error_class TEXT NOT NULL, message TEXT NOT NULL,"
    " rule TEXT, path TEXT, expected TEXT, actual TEXT, contract TEXT, details TEXT,"
    " raw BLOB NOT NULL, true_len INTEGER NOT NULL, record TEXT,"
    " attempts INTEGER NOT NULL, first_seen_ns INTEGER NOT NULL,"
    " last_seen_ns INTEGER NOT NULL, replay INTEGER,"
    " UNIQUE(record_id, stage));"
    "CREATE INDEX IF NOT EXISTS dlq_entries_stage ON dlq_entries(stage, error_class);"
    "CREATE INDEX IF NOT EXISTS dlq_entries_class ON dlq_entries(error_class);"
    "CREATE INDEX IF NOT EXISTS dlq_entries_seen ON dlq_entries(last_seen_ns);"
    "CREATE INDEX IF NOT EXISTS dlq_entries_replay ON dlq_entries(replay, id)"
    " WHERE replay IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS dlq_replays(id INTEGER PRIMARY KEY, stage TEXT NOT NULL,"
    " created_ns INTEGER NOT NULL, finished_ns INTEGER);"
    "INSERT OR IGNORE INTO dlq_meta(key, value) VALUES('format', '" SL__DLQ_FORMAT "');";

static const char upsert_sql[] =
    "INSERT INTO dlq_entries(record_id, source, origin, line, \"offset\", stage, error_class,"
    " message, rule, path, expected, actual, contract, details, raw, true_len, record,"
    " attempts, first_seen_ns, last_seen_ns, replay)"
    " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, 1,"
    " ?18, ?18, NULL)"
    " ON CONFLICT(record_id, stage) DO UPDATE SET last_seen_ns = excluded.last_seen_ns";

static const char update_sql[] =
    "UPDATE dlq_entries SET record_id = ?1, stage = ?6, error_class = ?7, message = ?8,"
    " rule = ?9, path = ?10, expected = ?11, actual = ?12, contract = ?13, details = ?14,"
    " record = ?17, last_seen_ns = ?18, attempts = ?19, first_seen_ns = ?20, replay = NULL"
    " WHERE id = ?21";

static sl_rc db_error(struct sl_dlq *d, struct sl_error *err, const char *what)
{
    return sl_error_set(err, SL_EDB, "dead-letter queue %s: %s: %s", d->path, what,
                        sqlite3_errmsg(d->db));
}

static sl_rc exec_sql(struct sl_dlq *d, const char *sql, const char *what, struct sl_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(d->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        sl_rc rc = sl_error_set(err, SL_EDB, "dead-letter queue %s: %s: %s", d->path, what,
                                msg ? msg : sqlite3_errmsg(d->db));
        sqlite3_free(msg);
        return rc;
    }
    return SL_OK;
}

static sl_rc prepare(struct sl_dlq *d, const char *sql, sqlite3_stmt **st, struct sl_error *err)
{
    if (sqlite3_prepare_v2(d->db, sql, -1, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return db_error(d, err, "preparing a statement");
    }
    return SL_OK;
}

/* Run a statement that returns no rows, then reset it. */
static sl_rc step_done(struct sl_dlq *d, sqlite3_stmt *st, const char *what, struct sl_error *err)
{
    int src = sqlite3_step(st);
    sl_rc rc = src == SQLITE_DONE ? SL_OK : db_error(d, err, what);
    sqlite3_reset(st);
    return rc;
}

static void rollback(struct sl_dlq *d)
{
    if (!sqlite3_get_autocommit(d->db)) {
        sqlite3_step(d->rollback);
        sqlite3_reset(d->rollback);
    }
}

/* One integer of a one-row query; *found 0 when it returned no row. */
static sl_rc query_int(struct sl_dlq *d, const char *sql, int64_t *out, int *found,
                       struct sl_error *err)
{
    sqlite3_stmt *st;
    sl_rc rc = prepare(d, sql, &st, err);
    if (rc)
        return rc;
    int src = sqlite3_step(st);
    *found = src == SQLITE_ROW;
    if (src == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else if (src != SQLITE_DONE)
        rc = db_error(d, err, "reading");
    sqlite3_finalize(st);
    return rc;
}

/*
 * Check the format in dlq_meta, or create the schema. SL_ENOENT when the database has no
 * tables and create is 0.
 */
static sl_rc check_format(struct sl_dlq *d, int create, struct sl_error *err)
{
    int64_t n = 0;
    int found;
    sl_rc rc = query_int(d,
                         "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND"
                         " name = 'dlq_meta'",
                         &n, &found, err);
    if (rc)
        return rc;
    if (n == 0) {
        int64_t tables = 0;
        rc = query_int(d, "SELECT count(*) FROM sqlite_master", &tables, &found, err);
        if (rc)
            return rc;
        if (tables > 0)
            return sl_error_set(err, SL_EDB,
                                "%s is an SQLite database but not a dead-letter queue (it has no "
                                "dlq_meta table): point `dlq: {path}` at another file",
                                d->path);
        if (!create)
            return sl_error_set(err, SL_ENOENT,
                                "dead-letter queue %s is empty: nothing has been rejected yet",
                                d->path);
        if ((rc = exec_sql(d, "BEGIN IMMEDIATE", "creating the schema", err)))
            return rc;
        if ((rc = exec_sql(d, schema, "creating the schema", err)) ||
            (rc = exec_sql(d, "COMMIT", "creating the schema", err))) {
            exec_sql(d, "ROLLBACK", "rolling back", NULL);
            return rc;
        }
    }
    sqlite3_stmt *st;
    if ((rc = prepare(d, "SELECT value FROM dlq_meta WHERE key = 'format'", &st, err)))
        return rc;
    int src = sqlite3_step(st);
    if (src != SQLITE_ROW) {
        rc = src == SQLITE_DONE ? sl_error_set(err, SL_EDB,
                                               "dead-letter queue %s has no format in dlq_meta: "
                                               "it was not written by sluice; point `dlq: "
                                               "{path}` at another file",
                                               d->path)
                                : db_error(d, err, "reading the format");
        sqlite3_finalize(st);
        return rc;
    }
    const char *v = (const char *)sqlite3_column_text(st, 0);
    if (!v || strcmp(v, SL__DLQ_FORMAT) != 0) {
        char shown[64];
        snprintf(shown, sizeof shown, "%s", v ? v : "");
        for (char *c = shown; *c; c++)
            if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
                *c = '?';
        if (strncmp(shown, SL__DLQ_FORMAT_PREFIX, sizeof SL__DLQ_FORMAT_PREFIX - 1) == 0)
            rc = sl_error_set(err, SL_EDB,
                              "dead-letter queue %s is in format \"%s\", but this sluice reads "
                              "\"" SL__DLQ_FORMAT "\" only: run the sluice version that wrote "
                              "it, or point `dlq: {path}` at a new file",
                              d->path, shown);
        else
            rc = sl_error_set(err, SL_EDB,
                              "%s is not a dead-letter queue (format \"%s\", expected "
                              "\"" SL__DLQ_FORMAT "\"): point `dlq: {path}` at another file",
                              d->path, shown);
    }
    sqlite3_finalize(st);
    return rc;
}

/* mkdir -p of path's directory: `dlq: {path}` may name a directory that does not exist. */
static sl_rc make_parents(const char *path, struct sl_error *err)
{
    char dir[PATH_MAX];
    int n = snprintf(dir, sizeof dir, "%s", path);
    if (n < 0 || (size_t)n >= sizeof dir)
        return sl_error_set(err, SL_EINVAL, "dead-letter queue path too long: %.100s...", path);
    char *end = strrchr(dir, '/');
    if (!end || end == dir)
        return SL_OK;
    *end = '\0';
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            return sl_error_sys(err, SL_EIO, errno,
                                "cannot create directory %s for the dead-letter queue %s", dir,
                                path);
        *p = c;
        if (!c)
            return SL_OK;
    }
}

sl_rc sl_dlq_open(const char *path, int create, int durable, struct sl_dlq **out,
                  struct sl_error *err)
{
    *out = NULL;
    if (!path || !path[0])
        return sl_error_set(err, SL_EINVAL, "dead-letter queue path is empty");
    struct stat st;
    if (create) {
        sl_rc prc = make_parents(path, err);
        if (prc)
            return prc;
    } else if (stat(path, &st) != 0) {
        return sl_error_set(err, SL_ENOENT,
                            "dead-letter queue %s does not exist: nothing has been rejected yet",
                            path);
    }
    struct sl_dlq *d = sl_calloc(1, sizeof *d);
    if (!d)
        return SL_ENOMEM;
    d->path = sl_strdup(path);
    if (!d->path) {
        sl_free(d);
        return SL_ENOMEM;
    }
    if (pthread_mutex_init(&d->mu, NULL) != 0) {
        sl_free(d->path);
        sl_free(d);
        return sl_error_set(err, SL_ENOMEM, "dead-letter queue %s: cannot create a mutex", path);
    }
    sl_buf_init(&d->json, DLQ_RECORD_MAX);
    sl_rc rc;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    int src = sqlite3_open_v2(path, &d->db, flags, NULL);
    if (src != SQLITE_OK) {
        rc = sl_error_set(err, SL_EDB,
                          "cannot open dead-letter queue %s: %s; check the path and that its "
                          "directory is writable",
                          path, d->db ? sqlite3_errmsg(d->db) : sqlite3_errstr(src));
        goto fail;
    }
    sqlite3_extended_result_codes(d->db, 1);
    sqlite3_busy_timeout(d->db, DLQ_BUSY_MS);
    /* A file that is not SQLite fails on its first read, here. */
    if ((rc = exec_sql(d, "PRAGMA journal_mode=WAL", "opening", err)))
        goto fail;
    if ((rc = exec_sql(d, durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
                       "setting synchronous", err)))
        goto fail;
    if ((rc = check_format(d, create, err)))
        goto fail;
    if ((rc = prepare(d, "BEGIN IMMEDIATE", &d->begin, err)) ||
        (rc = prepare(d, "COMMIT", &d->commit, err)) ||
        (rc = prepare(d, "ROLLBACK", &d->rollback, err)) ||
        (rc = prepare(d, upsert_sql, &d->upsert, err)) ||
        (rc = prepare(d, update_sql, &d->update, err)) ||
        (rc = prepare(d, "SELECT attempts, first_seen_ns, replay FROM dlq_entries WHERE id = ?1",
                      &d->get, err)) ||
        (rc = prepare(d,
                      "SELECT id, attempts, first_seen_ns FROM dlq_entries WHERE record_id = ?1"
                      " AND stage = ?2 AND id != ?3",
                      &d->find, err)) ||
        (rc = prepare(d, "DELETE FROM dlq_entries WHERE id = ?1", &d->del, err)))
        goto fail;
    *out = d;
    return SL_OK;
fail:
    sl_dlq_close(d);
    return rc;
}

void sl_dlq_close(struct sl_dlq *d)
{
    if (!d)
        return;
    sqlite3_finalize(d->begin);
    sqlite3_finalize(d->commit);
    sqlite3_finalize(d->rollback);
    sqlite3_finalize(d->upsert);
    sqlite3_finalize(d->get);
    sqlite3_finalize(d->find);
    sqlite3_finalize(d->update);
    sqlite3_finalize(d->del);
    sqlite3_close(d->db);
    sl_buf_fini(&d->json);
    pthread_mutex_destroy(&d->mu);
    sl_free(d->path);
    sl_free(d);
}

/* ---- keep ---------------------------------------------------------------------------- */

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/*
 * Bind the fields parameters ?1..?18 of upsert_sql (update_sql uses a subset of the same
 * numbers). Strings are bound SQLITE_STATIC: they live in the batch or in d->json, which
 * outlive the step.
 */
static void bind_entry(sqlite3_stmt *st, const struct sl_batch *b, const struct sl_record *r,
                       const char *source, const char *idhex, const char *record, size_t rlen,
                       int64_t now)
{
    const struct sl_reject_info *why = r->why;
    sqlite3_bind_text(st, 1, idhex, 32, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, source ? source : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, b->origin ? b->origin : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (int64_t)r->line);
    sqlite3_bind_int64(st, 5, (int64_t)r->offset);
    sqlite3_bind_text(st, 6, r->error_stage ? r->error_stage : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, why && why->error_class ? why->error_class : "unknown", -1,
                      SQLITE_STATIC);
    sqlite3_bind_text(st, 8, r->error ? r->error : "", -1, SQLITE_STATIC);
    bind_text_or_null(st, 9, why ? why->rule : NULL);
    bind_text_or_null(st, 10, why ? why->path : NULL);
    bind_text_or_null(st, 11, why ? why->expected : NULL);
    bind_text_or_null(st, 12, why ? why->actual : NULL);
    bind_text_or_null(st, 13, why ? why->contract : NULL);
    bind_text_or_null(st, 14, why ? why->details : NULL);
    /* A zero-length BLOB bound from NULL would read back as NULL: bind "" instead. */
    sqlite3_bind_blob(st, 15, r->orig ? r->orig : "", (int)r->orig_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 16,
                       (int64_t)(why && why->true_len ? why->true_len : (uint64_t)r->orig_len));
    if (record)
        sqlite3_bind_text(st, 17, record, (int)rlen, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 17);
    sqlite3_bind_int64(st, 18, now);
}

/*
 * A replayed record rejected again: update its entry (see the file comment). *done 0 when
 * the entry is gone or no longer marked, and the record is to be kept as a new one.
 */
static sl_rc keep_again(struct sl_dlq *d, const struct sl_batch *b, const struct sl_record *r,
                        const char *source, uint64_t replay, const char *idhex, const char *rec,
                        size_t rlen, int64_t now, int *done, struct sl_error *err)
{
    *done = 0;
    if (r->dlq_entry > INT64_MAX)
        return SL_OK;
    int64_t id = (int64_t)r->dlq_entry;
    sqlite3_bind_int64(d->get, 1, id);
    int src = sqlite3_step(d->get);
    if (src != SQLITE_ROW) {
        sqlite3_reset(d->get);
        return src == SQLITE_DONE ? SL_OK : db_error(d, err, "reading a replayed entry");
    }
    int64_t attempts = sqlite3_column_int64(d->get, 0);
    int64_t first = sqlite3_column_int64(d->get, 1);
    int marked = sqlite3_column_type(d->get, 2) != SQLITE_NULL;
    int64_t mark = sqlite3_column_int64(d->get, 2);
    sqlite3_reset(d->get);
    if (!marked || (replay != 0 && (uint64_t)mark != replay))
        return SL_OK;

    /* Does the new (record_id, stage) belong to another entry? Then merge the two. */
    const char *stage = r->error_stage ? r->error_stage : "";
    sqlite3_bind_text(d->find, 1, idhex, 32, SQLITE_STATIC);
    sqlite3_bind_text(d->find, 2, stage, -1, SQLITE_STATIC);
    sqlite3_bind_int64(d->find, 3, id);
    src = sqlite3_step(d->find);
    int64_t keep_id = id;
    if (src == SQLITE_ROW) {
        int64_t other = sqlite3_column_int64(d->find, 0);
        int64_t oatt = sqlite3_column_int64(d->find, 1);
        int64_t ofirst = sqlite3_column_int64(d->find, 2);
        sqlite3_reset(d->find);
        if (oatt > attempts)
            attempts = oatt;
        if (ofirst < first)
            first = ofirst;
        int64_t gone = other < id ? id : other;
        keep_id = other < id ? other : id;
        sqlite3_bind_int64(d->del, 1, gone);
        sl_rc rc = step_done(d, d->del, "merging two entries of one record", err);
        if (rc)
            return rc;
    } else {
        sqlite3_reset(d->find);
        if (src != SQLITE_DONE)
            return db_error(d, err, "looking up an entry");
    }
    sqlite3_clear_bindings(d->update);
    bind_entry(d->update, b, r, source, idhex, rec, rlen, now);
    sqlite3_bind_int64(d->update, 19, attempts + 1);
    sqlite3_bind_int64(d->update, 20, first);
    sqlite3_bind_int64(d->update, 21, keep_id);
    sl_rc rc = step_done(d, d->update, "updating a replayed entry", err);
    sqlite3_clear_bindings(d->update);
    if (rc == SL_OK)
        *done = 1;
    return rc;
}

static int wants_keep(const struct sl_record *r)
{
    return (r->flags & (SL_REC_BAD | SL_REC_KEPT)) == SL_REC_BAD;
}

sl_rc sl_dlq_keep(struct sl_dlq *d, struct sl_batch *b, const char *source, uint64_t replay,
                  uint64_t *kept, struct sl_error *err)
{
    if (kept)
        *kept = 0;
    uint32_t want = 0;
    for (uint32_t i = 0; i < b->n; i++)
        want += wants_keep(&b->recs[i]) != 0;
    if (want == 0)
        return SL_OK;
    int64_t now = (int64_t)sl_now_real_ns();
    uint64_t n = 0;
    sl_rc rc;
    pthread_mutex_lock(&d->mu);
    if ((rc = step_done(d, d->begin, "beginning a transaction", err)))
        goto out;
    for (uint32_t i = 0; i < b->n; i++) {
        const struct sl_record *r = &b->recs[i];
        if (!wants_keep(r))
            continue;
        char idhex[33];
        sl_record_id_format(r->id, idhex);
        const char *rec = NULL;
        size_t rlen = 0;
        if (r->flags & SL_REC_PARSED) {
            sl_buf_clear(&d->json);
            if ((rc = sl_record_write(r, &d->json)) != SL_OK) {
                sl_error_set(err, rc,
                             "dead-letter queue %s: cannot serialize rejected record %s (%s): %s",
                             d->path, idhex, sl_rc_name(rc), sl_strerror(rc));
                goto undo;
            }
            rec = d->json.len ? d->json.data : "";
            rlen = d->json.len;
        }
        if (r->orig_len > INT_MAX || rlen > INT_MAX) {
            rc = sl_error_set(err, SL_ELIMIT,
                              "dead-letter queue %s: rejected record %s is too large to keep "
                              "(%" PRIu32 " bytes)",
                              d->path, idhex, r->orig_len);
            goto undo;
        }
        int done = 0;
        if (r->dlq_entry && replay &&
            (rc = keep_again(d, b, r, source, replay, idhex, rec, rlen, now, &done, err)))
            goto undo;
        if (!done) {
            bind_entry(d->upsert, b, r, source, idhex, rec, rlen, now);
            rc = step_done(d, d->upsert, "keeping a rejected record", err);
            sqlite3_clear_bindings(d->upsert);
            if (rc)
                goto undo;
        }
        n++;
    }
    if ((rc = step_done(d, d->commit, "committing rejected records", err)))
        goto undo;
    /* Durable now: only now may the engine treat them as kept. */
    for (uint32_t i = 0; i < b->n; i++)
        if (wants_keep(&b->recs[i]))
            b->recs[i].flags |= SL_REC_KEPT;
    if (kept)
        *kept = n;
    goto out;
undo:
    rollback(d);
out:
    sl_buf_clear(&d->json);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

/* ---- reading ------------------------------------------------------------------------- */

static const char *col_text(sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? s : "";
}

/* Fill e from a row of ENTRY_COLUMNS. Pointers stay valid until the next step. */
static void read_entry(sqlite3_stmt *st, struct sl_dlq_entry *e)
{
    memset(e, 0, sizeof *e);
    e->id = sqlite3_column_int64(st, 0);
    snprintf(e->record_id, sizeof e->record_id, "%s", col_text(st, 1));
    e->source = col_text(st, 2);
    e->origin = col_text(st, 3);
    e->line = (uint64_t)sqlite3_column_int64(st, 4);
    e->offset = (uint64_t)sqlite3_column_int64(st, 5);
    e->stage = col_text(st, 6);
    e->error_class = col_text(st, 7);
    e->message = col_text(st, 8);
    e->rule = col_text(st, 9);
    e->path = col_text(st, 10);
    e->expected = col_text(st, 11);
    e->actual = col_text(st, 12);
    e->contract = col_text(st, 13);
    e->details = col_text(st, 14);
    e->raw = sqlite3_column_blob(st, 15);
    e->raw_len = (size_t)sqlite3_column_bytes(st, 15);
    if (!e->raw)
        e->raw = (const unsigned char *)"";
    e->true_len = (uint64_t)sqlite3_column_int64(st, 16);
    if (sqlite3_column_type(st, 17) != SQLITE_NULL) {
        e->record = col_text(st, 17);
        e->record_len = (size_t)sqlite3_column_bytes(st, 17);
    }
    e->attempts = sqlite3_column_int64(st, 18);
    e->first_seen_ns = sqlite3_column_int64(st, 19);
    e->last_seen_ns = sqlite3_column_int64(st, 20);
    e->replay = sqlite3_column_int64(st, 21);
}

/*
 * Append " WHERE ..." for f (plus extra, an SQL condition or NULL) to sql. Parameters:
 * ?1 stage, ?2 error class, ?3 since, ?4 id; bind_filter binds those f sets.
 */
static sl_rc where_clause(const struct sl_dlq_filter *f, const char *extra, struct sl_buf *sql)
{
    sl_rc rc = sl_buf_puts(sql, " WHERE 1");
    if (!rc && f && f->stage)
        rc = sl_buf_puts(sql, " AND stage = ?1");
    if (!rc && f && f->error_class)
        rc = sl_buf_puts(sql, " AND error_class = ?2");
    if (!rc && f && f->since_ns)
        rc = sl_buf_puts(sql, " AND last_seen_ns >= ?3");
    if (!rc && f && f->id)
        rc = sl_buf_puts(sql, " AND id = ?4");
    if (!rc && extra)
        rc = sl_buf_printf(sql, " AND %s", extra);
    return rc;
}

static void bind_filter(sqlite3_stmt *st, const struct sl_dlq_filter *f)
{
    if (!f)
        return;
    if (f->stage)
        sqlite3_bind_text(st, 1, f->stage, -1, SQLITE_STATIC);
    if (f->error_class)
        sqlite3_bind_text(st, 2, f->error_class, -1, SQLITE_STATIC);
    if (f->since_ns)
        sqlite3_bind_int64(st, 3, f->since_ns);
    if (f->id)
        sqlite3_bind_int64(st, 4, f->id);
}

/* " ORDER BY id LIMIT n" when f has a limit. */
static sl_rc limit_clause(const struct sl_dlq_filter *f, struct sl_buf *sql)
{
    if (f && f->limit > 0)
        return sl_buf_printf(sql, " ORDER BY id LIMIT %" PRId64, f->limit);
    return SL_OK;
}

/*
 * Prepare "<head> FROM (matching entries) <tail>". The subquery applies f, extra and the
 * limit (oldest first), so every statement sees the same set for the same filter.
 */
static sl_rc prepare_filtered(struct sl_dlq *d, const char *head, const struct sl_dlq_filter *f,
                              const char *extra, const char *tail, sqlite3_stmt **st,
                              struct sl_error *err)
{
    struct sl_buf sql;
    sl_buf_init(&sql, DLQ_SQL_MAX);
    sl_rc rc = sl_buf_printf(&sql, "%s FROM (SELECT * FROM dlq_entries", head);
    if (!rc)
        rc = where_clause(f, extra, &sql);
    if (!rc)
        rc = limit_clause(f, &sql);
    if (!rc)
        rc = sl_buf_printf(&sql, ")%s", tail ? tail : "");
    if (!rc)
        rc = sl_buf_cstr(&sql);
    if (rc) {
        sl_buf_fini(&sql);
        return sl_error_set(err, rc, "dead-letter queue %s: out of memory", d->path);
    }
    rc = prepare(d, sql.data, st, err);
    sl_buf_fini(&sql);
    if (rc == SL_OK)
        bind_filter(*st, f);
    return rc;
}

sl_rc sl_dlq_scan(struct sl_dlq *d, const struct sl_dlq_filter *f, sl_dlq_entry_fn fn, void *ctx,
                  struct sl_error *err)
{
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&d->mu);
    sl_rc rc = prepare_filtered(d, "SELECT " ENTRY_COLUMNS, f, NULL, " ORDER BY id", &st, err);
    while (rc == SL_OK) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = db_error(d, err, "reading entries");
            break;
        }
        struct sl_dlq_entry e;
        read_entry(st, &e);
        if (fn(ctx, &e))
            break;
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

sl_rc sl_dlq_stats(struct sl_dlq *d, const struct sl_dlq_filter *f, sl_dlq_group_fn fn, void *ctx,
                   struct sl_error *err)
{
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&d->mu);
    sl_rc rc = prepare_filtered(
        d, "SELECT stage, error_class, count(*), min(first_seen_ns), max(last_seen_ns)", f, NULL,
        " GROUP BY stage, error_class ORDER BY count(*) DESC, stage, error_class", &st, err);
    while (rc == SL_OK) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = db_error(d, err, "counting entries");
            break;
        }
        struct sl_dlq_group g = {
            .stage = col_text(st, 0),
            .error_class = col_text(st, 1),
            .count = (uint64_t)sqlite3_column_int64(st, 2),
            .first_seen_ns = sqlite3_column_int64(st, 3),
            .last_seen_ns = sqlite3_column_int64(st, 4),
        };
        if (fn(ctx, &g))
            break;
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

sl_rc sl_dlq_count(struct sl_dlq *d, uint64_t *n, struct sl_error *err)
{
    int64_t v = 0;
    int found;
    pthread_mutex_lock(&d->mu);
    sl_rc rc = query_int(d, "SELECT count(*) FROM dlq_entries", &v, &found, err);
    pthread_mutex_unlock(&d->mu);
    *n = rc == SL_OK ? (uint64_t)v : 0;
    return rc;
}

sl_rc sl_dlq_purge(struct sl_dlq *d, const struct sl_dlq_filter *f, uint64_t *deleted,
                   struct sl_error *err)
{
    sqlite3_stmt *st = NULL;
    *deleted = 0;
    pthread_mutex_lock(&d->mu);
    sl_rc rc = prepare_filtered(d, "DELETE FROM dlq_entries WHERE id IN (SELECT id", f,
                                "replay IS NULL", ")", &st, err);
    if (rc == SL_OK) {
        if (sqlite3_step(st) == SQLITE_DONE)
            *deleted = (uint64_t)sqlite3_changes(d->db);
        else
            rc = db_error(d, err, "purging entries");
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

/* ---- replay -------------------------------------------------------------------------- */

struct planned {
    int64_t id;
    char *stage;
    uint64_t entries;
};

sl_rc sl_dlq_replay_plan(struct sl_dlq *d, const struct sl_dlq_filter *f, const char *from_stage,
                         sl_dlq_replay_fn fn, void *ctx, struct sl_error *err)
{
    sqlite3_stmt *stages = NULL, *ins = NULL, *mark = NULL, *top = NULL;
    struct planned *list = NULL;
    size_t n = 0, cap = 0;
    struct sl_buf sql;
    sl_buf_init(&sql, DLQ_SQL_MAX);
    int64_t now = (int64_t)sl_now_real_ns();
    pthread_mutex_lock(&d->mu);
    sl_rc rc = step_done(d, d->begin, "beginning a transaction", err);
    if (rc)
        goto out;
    /*
     * With a limit the set is "the first N unmarked matches"; marking changes which those
     * are, so fix the set first as "unmarked matches with id <= the N-th one's".
     */
    int64_t max_id = INT64_MAX;
    if ((rc = prepare_filtered(d, "SELECT max(id)", f, "replay IS NULL", NULL, &top, err)))
        goto undo;
    int src = sqlite3_step(top);
    if (src != SQLITE_ROW) {
        rc = db_error(d, err, "choosing entries to replay");
        goto undo;
    }
    if (sqlite3_column_type(top, 0) == SQLITE_NULL)
        goto undo; /* nothing matched: nothing to plan */
    max_id = sqlite3_column_int64(top, 0);

    char extra[64];
    snprintf(extra, sizeof extra, "replay IS NULL AND id <= %" PRId64, max_id);
    struct sl_dlq_filter all = f ? *f : (struct sl_dlq_filter){0};
    all.limit = 0;
    if ((rc = prepare_filtered(d, "SELECT DISTINCT stage", &all, extra, " ORDER BY stage", &stages,
                               err)))
        goto undo;
    if ((rc = prepare(d, "INSERT INTO dlq_replays(stage, created_ns) VALUES(?5, ?6)", &ins, err)))
        goto undo;
    /* UPDATE ... WHERE id IN (matches [of one stage]) */
    if ((rc = sl_buf_puts(&sql, "UPDATE dlq_entries SET replay = ?7 WHERE id IN (SELECT id FROM "
                                "dlq_entries")) ||
        (rc = where_clause(&all, extra, &sql)) ||
        (rc = sl_buf_puts(&sql, from_stage ? ")" : " AND stage = ?5)")) ||
        (rc = sl_buf_cstr(&sql))) {
        sl_error_set(err, rc, "dead-letter queue %s: out of memory", d->path);
        goto undo;
    }
    if ((rc = prepare(d, sql.data, &mark, err)))
        goto undo;
    bind_filter(mark, &all);
    /* The target stages first (the query reads the column the marking writes). */
    for (int more = 1; more;) {
        const char *target = from_stage;
        if (from_stage) {
            more = 0;
        } else {
            src = sqlite3_step(stages);
            if (src == SQLITE_DONE)
                break;
            if (src != SQLITE_ROW) {
                rc = db_error(d, err, "choosing entries to replay");
                goto undo;
            }
            target = col_text(stages, 0);
        }
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 4;
            struct planned *nl = sl_realloc(list, nc * sizeof *nl);
            if (!nl) {
                rc = sl_error_set(err, SL_ENOMEM, "dead-letter queue %s: out of memory", d->path);
                goto undo;
            }
            list = nl;
            cap = nc;
        }
        if (!(list[n].stage = sl_strdup(target))) {
            rc = sl_error_set(err, SL_ENOMEM, "dead-letter queue %s: out of memory", d->path);
            goto undo;
        }
        n++;
    }
    sqlite3_reset(stages);
    for (size_t i = 0; i < n; i++) {
        struct planned *p = &list[i];
        sqlite3_bind_text(ins, 5, p->stage, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 6, now);
        if ((rc = step_done(d, ins, "planning a replay", err)))
            goto undo;
        p->id = sqlite3_last_insert_rowid(d->db);
        sqlite3_bind_int64(mark, 7, p->id);
        if (!from_stage)
            sqlite3_bind_text(mark, 5, p->stage, -1, SQLITE_STATIC);
        if ((rc = step_done(d, mark, "marking entries for a replay", err)))
            goto undo;
        p->entries = (uint64_t)sqlite3_changes(d->db);
    }
    if ((rc = step_done(d, d->commit, "committing a replay plan", err)))
        goto undo;
    for (size_t i = 0; i < n; i++) {
        struct sl_dlq_replay r = {
            .id = list[i].id, .stage = list[i].stage, .entries = list[i].entries};
        if (fn && fn(ctx, &r))
            break;
    }
    goto out;
undo:
    sqlite3_finalize(top);
    sqlite3_finalize(stages);
    top = stages = NULL;
    rollback(d);
out:
    sqlite3_finalize(top);
    sqlite3_finalize(stages);
    sqlite3_finalize(ins);
    sqlite3_finalize(mark);
    pthread_mutex_unlock(&d->mu);
    for (size_t i = 0; i < n; i++)
        sl_free(list[i].stage);
    sl_free(list);
    sl_buf_fini(&sql);
    return rc;
}

sl_rc sl_dlq_replay_pending(struct sl_dlq *d, sl_dlq_replay_fn fn, void *ctx, struct sl_error *err)
{
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&d->mu);
    sl_rc rc = prepare(d,
                       "SELECT r.id, r.stage, (SELECT count(*) FROM dlq_entries e WHERE"
                       " e.replay = r.id) FROM dlq_replays r WHERE r.finished_ns IS NULL"
                       " ORDER BY r.id",
                       &st, err);
    while (rc == SL_OK) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = db_error(d, err, "reading unfinished replays");
            break;
        }
        struct sl_dlq_replay r = {.id = sqlite3_column_int64(st, 0),
                                  .stage = col_text(st, 1),
                                  .entries = (uint64_t)sqlite3_column_int64(st, 2)};
        if (fn(ctx, &r))
            break;
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

sl_rc sl_dlq_replay_read(struct sl_dlq *d, int64_t replay, int64_t after, size_t limit,
                         sl_dlq_entry_fn fn, void *ctx, struct sl_error *err)
{
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&d->mu);
    sl_rc rc = prepare(d,
                       "SELECT " ENTRY_COLUMNS " FROM dlq_entries WHERE replay = ?1 AND id > ?2"
                       " ORDER BY id LIMIT ?3",
                       &st, err);
    if (rc == SL_OK) {
        sqlite3_bind_int64(st, 1, replay);
        sqlite3_bind_int64(st, 2, after);
        sqlite3_bind_int64(st, 3, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
    }
    while (rc == SL_OK) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = db_error(d, err, "reading a replay's entries");
            break;
        }
        struct sl_dlq_entry e;
        read_entry(st, &e);
        if (fn(ctx, &e))
            break;
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

sl_rc sl_dlq_replay_finish(struct sl_dlq *d, int64_t replay, uint64_t *resolved,
                           struct sl_error *err)
{
    sqlite3_stmt *del = NULL, *fin = NULL;
    if (resolved)
        *resolved = 0;
    pthread_mutex_lock(&d->mu);
    sl_rc rc = step_done(d, d->begin, "beginning a transaction", err);
    if (rc)
        goto out;
    if ((rc = prepare(d, "DELETE FROM dlq_entries WHERE replay = ?1", &del, err)) ||
        (rc = prepare(d,
                      "UPDATE dlq_replays SET finished_ns = coalesce(finished_ns, ?2)"
                      " WHERE id = ?1",
                      &fin, err)))
        goto undo;
    sqlite3_bind_int64(del, 1, replay);
    if ((rc = step_done(d, del, "deleting replayed entries", err)))
        goto undo;
    uint64_t n = (uint64_t)sqlite3_changes(d->db);
    sqlite3_bind_int64(fin, 1, replay);
    sqlite3_bind_int64(fin, 2, (int64_t)sl_now_real_ns());
    if ((rc = step_done(d, fin, "finishing a replay", err)))
        goto undo;
    if (sqlite3_changes(d->db) == 0) {
        rc = sl_error_set(err, SL_ENOENT, "dead-letter queue %s has no replay %" PRId64, d->path,
                          replay);
        goto undo;
    }
    if ((rc = step_done(d, d->commit, "committing a finished replay", err)))
        goto undo;
    if (resolved)
        *resolved = n;
    goto out;
undo:
    rollback(d);
out:
    sqlite3_finalize(del);
    sqlite3_finalize(fin);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

/* ---- base64 -------------------------------------------------------------------------- */

sl_rc sl_base64_encode(const void *in, size_t n, struct sl_buf *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = in;
    size_t need = (n + 2) / 3 * 4;
    sl_rc rc = sl_buf_reserve(out, need);
    if (rc)
        return rc;
    char *o = out->data + out->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *o++ = abc[v >> 18];
        *o++ = abc[v >> 12 & 63];
        *o++ = abc[v >> 6 & 63];
        *o++ = abc[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
        *o++ = abc[v >> 18];
        *o++ = abc[v >> 12 & 63];
        *o++ = i + 1 < n ? abc[v >> 6 & 63] : '=';
        *o++ = '=';
    }
    out->len += need;
    return SL_OK;
}
