/*
 * store.c - the quarantine store (include/sluice/quarantine.h) on embedded SQLite.
 *
 * Schema (format 1):
 *
 *     quarantine_meta(key TEXT PRIMARY KEY, value TEXT)      -- ('format', '1')
 *     quarantine_units(id INTEGER PRIMARY KEY AUTOINCREMENT, gates, stage, source, reason,
 *                      records INTEGER, created_ns INTEGER, state TEXT)  -- held|releasing
 *     quarantine_records(row INTEGER PRIMARY KEY AUTOINCREMENT, unit INTEGER, record_id
 *                        TEXT, stage TEXT, json TEXT, raw BLOB, origin TEXT, line INTEGER,
 *                        offset INTEGER, UNIQUE(record_id, stage))
 *     index on quarantine_records(unit, row)
 *
 * AUTOINCREMENT keeps ids from being reused: a unit id a user saw in `list` never comes
 * back as another unit after a drop, and record rows only grow, which is what lets a
 * release resume "after row R".
 *
 * Keeping a record that is already held ((record id, stage) exists) replaces its row: the
 * record moves into the new unit with a new row number. Before replacing, the unit it
 * leaves is looked up (one indexed read) and remembered; at commit every such unit is
 * recounted and deleted when empty, and the new unit's count is taken from its rows (so a
 * record handed over twice in one unit counts once).
 *
 * Durability: WAL journal; synchronous FULL when durable, else NORMAL. Writes run in
 * BEGIN IMMEDIATE transactions with a 5 s busy timeout.
 *
 * Threading: one connection behind the store's mutex (quarantine.h). A transaction holds
 * the mutex from sl_quarantine_begin to commit or abort.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "sluice/alloc.h"
#include "sluice/buf.h"
#include "sluice/quarantine.h"
#include "sluice/record.h"

#define Q_FORMAT "1"
#define Q_MAX_MOVED 4096 /* units a single keep may empty; far beyond a crash's worth */

struct sl_quarantine {
    pthread_mutex_t mu;
    sqlite3 *db;
    char *path;
    sqlite3_stmt *find;   /* the unit holding (record_id, stage) */
    sqlite3_stmt *insert; /* a record (replacing one already held) */
};

/*
 * Invariants:
 *   1. While a txn exists, q->mu is locked and a transaction is open on q->db.
 *   2. moved[0..nmoved) are distinct unit ids other than unit that records left.
 */
struct sl_quarantine_txn {
    struct sl_quarantine *q;
    int64_t unit;
    char *stage;
    int64_t moved[Q_MAX_MOVED];
    size_t nmoved;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS quarantine_meta(key TEXT PRIMARY KEY, value TEXT);"
    "CREATE TABLE IF NOT EXISTS quarantine_units("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, gates TEXT NOT NULL, stage TEXT NOT NULL,"
    " source TEXT NOT NULL, reason TEXT NOT NULL, records INTEGER NOT NULL DEFAULT 0,"
    " created_ns INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'held');"
    "CREATE TABLE IF NOT EXISTS quarantine_records("
    " row INTEGER PRIMARY KEY AUTOINCREMENT, unit INTEGER NOT NULL, record_id TEXT NOT NULL,"
    " stage TEXT NOT NULL, json TEXT NOT NULL, raw BLOB, origin TEXT NOT NULL DEFAULT '',"
    " line INTEGER NOT NULL DEFAULT 0, offset INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE(record_id, stage));"
    "CREATE INDEX IF NOT EXISTS quarantine_records_unit ON quarantine_records(unit, row);"
    "INSERT OR IGNORE INTO quarantine_meta(key, value) VALUES('format', '" Q_FORMAT "');";

static sl_rc db_error(struct sl_quarantine *q, struct sl_error *err, const char *what)
{
    return sl_error_set(err, SL_EDB, "quarantine store %s: %s: %s", q->path, what,
                        sqlite3_errmsg(q->db));
}

static int exec(struct sl_quarantine *q, const char *sql)
{
    return sqlite3_exec(q->db, sql, NULL, NULL, NULL);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- open and close ------------------------------------------------------------------- */

void sl_quarantine_close(struct sl_quarantine *q)
{
    if (!q)
        return;
    sqlite3_finalize(q->find);
    sqlite3_finalize(q->insert);
    if (q->db)
        sqlite3_close(q->db);
    pthread_mutex_destroy(&q->mu);
    sl_free(q->path);
    sl_free(q);
}

/* 1 when the database carries our format marker, 0 when it has none, -1 on a mismatch. */
static int check_format(struct sl_quarantine *q)
{
    sqlite3_stmt *st = NULL;
    int have_meta = 0, ours = 0;
    if (sqlite3_prepare_v2(q->db,
                           "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = "
                           "'quarantine_meta'",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        have_meta = sqlite3_column_int(st, 0) > 0;
    sqlite3_finalize(st);
    if (!have_meta)
        return 0;
    st = NULL;
    if (sqlite3_prepare_v2(q->db, "SELECT value FROM quarantine_meta WHERE key = 'format'", -1, &st,
                           NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        ours = v && strcmp(v, Q_FORMAT) == 0;
    }
    sqlite3_finalize(st);
    return ours ? 1 : -1;
}

static int has_tables(struct sl_quarantine *q)
{
    sqlite3_stmt *st = NULL;
    int n = 0;
    if (sqlite3_prepare_v2(q->db, "SELECT count(*) FROM sqlite_master", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n > 0;
}

/*
 * The schema in one transaction: a process killed while creating it leaves either no
 * table at all (the next open creates them) or all of them with the format marker, never
 * a half-made store the next open would refuse.
 */
static int create_schema(struct sl_quarantine *q)
{
    int rc = exec(q, "BEGIN IMMEDIATE");
    if (rc != SQLITE_OK)
        return rc;
    if ((rc = exec(q, schema)) != SQLITE_OK || (rc = exec(q, "COMMIT")) != SQLITE_OK)
        exec(q, "ROLLBACK");
    return rc;
}

sl_rc sl_quarantine_open(const char *path, int create, int durable, struct sl_quarantine **out,
                         struct sl_error *err)
{
    struct stat sb;
    if (!create && stat(path, &sb) != 0) {
        if (errno == ENOENT)
            return sl_error_set(err, SL_ENOENT, "quarantine store %s does not exist", path);
        return sl_error_sys(err, SL_EIO, errno, "quarantine store %s", path);
    }
    struct sl_quarantine *q = sl_calloc(1, sizeof *q);
    if (!q)
        return sl_error_set(err, SL_ENOMEM, "out of memory opening the quarantine store");
    pthread_mutex_init(&q->mu, NULL);
    q->path = sl_strdup(path);
    if (!q->path) {
        sl_quarantine_close(q);
        return sl_error_set(err, SL_ENOMEM, "out of memory opening the quarantine store");
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    sl_rc rc;
    if (sqlite3_open_v2(path, &q->db, flags, NULL) != SQLITE_OK) {
        rc = sl_error_set(err, SL_EDB, "cannot open quarantine store %s: %s", path,
                          q->db ? sqlite3_errmsg(q->db) : "out of memory");
        sl_quarantine_close(q);
        return rc;
    }
    sqlite3_busy_timeout(q->db, 5000);
    int fmt = check_format(q);
    if (fmt < 0 || (fmt == 0 && has_tables(q))) {
        rc = sl_error_set(err, SL_EDB,
                          "%s is not a sluice quarantine store (format " Q_FORMAT
                          "); check the pipeline's state_dir",
                          path);
        sl_quarantine_close(q);
        return rc;
    }
    char sync[64];
    snprintf(sync, sizeof sync, "PRAGMA synchronous=%s", durable ? "FULL" : "NORMAL");
    if (exec(q, "PRAGMA journal_mode=WAL") != SQLITE_OK || exec(q, sync) != SQLITE_OK ||
        (fmt == 0 && create_schema(q) != SQLITE_OK) ||
        sqlite3_prepare_v2(q->db,
                           "SELECT unit FROM quarantine_records WHERE record_id = ?1 AND stage "
                           "= ?2",
                           -1, &q->find, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->db,
                           "INSERT OR REPLACE INTO quarantine_records(unit, record_id, stage, "
                           "json, raw, origin, line, offset) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                           "?8)",
                           -1, &q->insert, NULL) != SQLITE_OK) {
        rc = db_error(q, err, "cannot set up");
        sl_quarantine_close(q);
        return rc;
    }
    *out = q;
    return SL_OK;
}

/* ---- keeping -------------------------------------------------------------------------- */

sl_rc sl_quarantine_begin(struct sl_quarantine *q, const struct sl_quarantine_info *info,
                          struct sl_quarantine_txn **out, struct sl_error *err)
{
    struct sl_quarantine_txn *t = sl_calloc(1, sizeof *t);
    if (!t)
        return sl_error_set(err, SL_ENOMEM, "out of memory keeping a quarantined unit");
    t->stage = sl_strdup(info->stage ? info->stage : "");
    if (!t->stage) {
        sl_free(t);
        return sl_error_set(err, SL_ENOMEM, "out of memory keeping a quarantined unit");
    }
    t->q = q;
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = NULL;
    sl_rc rc;
    if (exec(q, "BEGIN IMMEDIATE") != SQLITE_OK) {
        rc = db_error(q, err, "cannot begin a transaction");
        goto fail;
    }
    if (sqlite3_prepare_v2(q->db,
                           "INSERT INTO quarantine_units(gates, stage, source, reason, records, "
                           "created_ns) VALUES(?1, ?2, ?3, ?4, 0, ?5)",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_error(q, err, "cannot add a unit");
        exec(q, "ROLLBACK");
        goto fail;
    }
    sqlite3_bind_text(st, 1, info->gates ? info->gates : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, t->stage, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, info->source ? info->source : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, info->reason ? info->reason : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, now_ns());
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = db_error(q, err, "cannot add a unit");
        sqlite3_finalize(st);
        exec(q, "ROLLBACK");
        goto fail;
    }
    sqlite3_finalize(st);
    t->unit = sqlite3_last_insert_rowid(q->db);
    *out = t;
    return SL_OK;
fail:
    pthread_mutex_unlock(&q->mu);
    sl_free(t->stage);
    sl_free(t);
    return rc;
}

sl_rc sl_quarantine_add(struct sl_quarantine_txn *t, const uint64_t id[2], const char *json,
                        size_t len, const void *raw, size_t raw_len, const char *origin,
                        uint64_t line, uint64_t offset, struct sl_error *err)
{
    struct sl_quarantine *q = t->q;
    char rid[33];
    sl_record_id_format(id, rid);

    sqlite3_reset(q->find);
    sqlite3_bind_text(q->find, 1, rid, 32, SQLITE_STATIC);
    sqlite3_bind_text(q->find, 2, t->stage, -1, SQLITE_STATIC);
    int s = sqlite3_step(q->find);
    if (s == SQLITE_ROW) {
        int64_t old = sqlite3_column_int64(q->find, 0);
        size_t k = 0;
        while (k < t->nmoved && t->moved[k] != old)
            k++;
        if (old != t->unit && k == t->nmoved) {
            if (t->nmoved == Q_MAX_MOVED) {
                sqlite3_reset(q->find);
                return sl_error_set(err, SL_EDB,
                                    "quarantine store %s: records of more than %d earlier "
                                    "units quarantined again in one unit",
                                    q->path, Q_MAX_MOVED);
            }
            t->moved[t->nmoved++] = old;
        }
    } else if (s != SQLITE_DONE) {
        sl_rc rc = db_error(q, err, "cannot look up a record");
        sqlite3_reset(q->find);
        return rc;
    }
    sqlite3_reset(q->find);
    sqlite3_clear_bindings(q->find);

    sqlite3_stmt *st = q->insert;
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, t->unit);
    sqlite3_bind_text(st, 2, rid, 32, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, t->stage, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, json, (int)len, SQLITE_STATIC);
    if (raw)
        sqlite3_bind_blob(st, 5, raw, (int)raw_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 5);
    sqlite3_bind_text(st, 6, origin ? origin : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, (int64_t)line);
    sqlite3_bind_int64(st, 8, (int64_t)offset);
    s = sqlite3_step(st);
    sl_rc rc = s == SQLITE_DONE ? SL_OK : db_error(q, err, "cannot store a record");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

sl_rc sl_quarantine_add_json(void *ctx, const uint64_t id[2], const char *json, size_t len,
                             struct sl_error *err)
{
    return sl_quarantine_add(ctx, id, json, len, NULL, 0, NULL, 0, 0, err);
}

/* Run sql with ?1 bound to id. 0 or an SQLite error code. */
static int exec_id(struct sl_quarantine *q, const char *sql, int64_t id)
{
    sqlite3_stmt *st = NULL;
    int s = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);
    if (s == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        s = sqlite3_step(st);
        s = s == SQLITE_DONE || s == SQLITE_ROW ? SQLITE_OK : s;
    }
    sqlite3_finalize(st);
    return s;
}

static const char recount_sql[] =
    "UPDATE quarantine_units SET records = (SELECT count(*) FROM quarantine_records WHERE "
    "unit = ?1) WHERE id = ?1";
static const char drop_empty_sql[] = "DELETE FROM quarantine_units WHERE id = ?1 AND records = 0";

static void txn_free(struct sl_quarantine_txn *t)
{
    pthread_mutex_unlock(&t->q->mu);
    sl_free(t->stage);
    sl_free(t);
}

sl_rc sl_quarantine_commit(struct sl_quarantine_txn *t, int64_t *unit, uint64_t *kept,
                           struct sl_error *err)
{
    struct sl_quarantine *q = t->q;
    sl_rc rc = SL_OK;
    for (size_t k = 0; k < t->nmoved && !rc; k++)
        if (exec_id(q, recount_sql, t->moved[k]) || exec_id(q, drop_empty_sql, t->moved[k]))
            rc = db_error(q, err, "cannot recount a unit");
    int64_t n = 0;
    if (!rc && exec_id(q, recount_sql, t->unit) != SQLITE_OK)
        rc = db_error(q, err, "cannot count the unit's records");
    if (!rc) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(q->db, "SELECT records FROM quarantine_units WHERE id = ?1", -1, &st,
                               NULL) == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, t->unit);
            if (sqlite3_step(st) == SQLITE_ROW)
                n = sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
        if (n == 0 && exec_id(q, "DELETE FROM quarantine_units WHERE id = ?1", t->unit))
            rc = db_error(q, err, "cannot remove an empty unit");
    }
    if (!rc && exec(q, "COMMIT") != SQLITE_OK)
        rc = db_error(q, err, "cannot commit");
    if (rc) {
        exec(q, "ROLLBACK");
        txn_free(t);
        return rc;
    }
    if (unit)
        *unit = n ? t->unit : 0;
    if (kept)
        *kept = (uint64_t)n;
    txn_free(t);
    return SL_OK;
}

void sl_quarantine_abort(struct sl_quarantine_txn *t)
{
    if (!t)
        return;
    exec(t->q, "ROLLBACK");
    txn_free(t);
}

static int live(const struct sl_record *r)
{
    return !(r->flags & (SL_REC_DROPPED | SL_REC_BAD));
}

sl_rc sl_quarantine_keep(struct sl_quarantine *q, struct sl_batch *b,
                         const struct sl_quarantine_info *info, int64_t *unit, uint64_t *kept,
                         struct sl_error *err)
{
    uint32_t nlive = 0;
    for (uint32_t i = 0; i < b->n; i++)
        nlive += live(&b->recs[i]) != 0;
    if (!nlive) {
        if (unit)
            *unit = 0;
        if (kept)
            *kept = 0;
        return SL_OK;
    }
    struct sl_quarantine_txn *t = NULL;
    sl_rc rc = sl_quarantine_begin(q, info, &t, err);
    if (rc)
        return rc;
    struct sl_buf json;
    sl_buf_init(&json, 0);
    for (uint32_t i = 0; i < b->n && !rc; i++) {
        const struct sl_record *r = &b->recs[i];
        if (!live(r))
            continue;
        sl_buf_clear(&json);
        if ((rc = sl_record_write(r, &json))) {
            rc =
                sl_error_set(err, rc, "quarantine: cannot write record %u of the batch as JSON", i);
            break;
        }
        rc = sl_quarantine_add(t, r->id, json.data ? json.data : "", json.len, r->orig,
                               r->orig ? r->orig_len : 0, b->origin, r->line, r->offset, err);
    }
    sl_buf_fini(&json);
    if (rc) {
        sl_quarantine_abort(t);
        return rc;
    }
    int64_t u = 0;
    uint64_t n = 0;
    if ((rc = sl_quarantine_commit(t, &u, &n, err)))
        return rc;
    /* Only now, with the unit durable, may anything downstream see these as handled. */
    for (uint32_t i = 0; i < b->n; i++)
        if (live(&b->recs[i]))
            b->recs[i].flags |= SL_REC_QUARANTINED | SL_REC_DROPPED;
    if (unit)
        *unit = u;
    if (kept)
        *kept = n;
    return SL_OK;
}

/* ---- reading -------------------------------------------------------------------------- */

static const char unit_cols[] =
    "SELECT id, gates, stage, source, reason, records, created_ns, state FROM quarantine_units";

static sl_rc scan_units(struct sl_quarantine *q, sqlite3_stmt *st, sl_quarantine_unit_fn fn,
                        void *ctx, int *found, struct sl_error *err)
{
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        struct sl_quarantine_unit u = {
            .id = sqlite3_column_int64(st, 0),
            .gates = (const char *)sqlite3_column_text(st, 1),
            .stage = (const char *)sqlite3_column_text(st, 2),
            .source = (const char *)sqlite3_column_text(st, 3),
            .reason = (const char *)sqlite3_column_text(st, 4),
            .records = (uint64_t)sqlite3_column_int64(st, 5),
            .created_ns = sqlite3_column_int64(st, 6),
            .state = (const char *)sqlite3_column_text(st, 7),
        };
        *found = 1;
        if (fn(ctx, &u))
            return SL_OK;
    }
    return s == SQLITE_DONE ? SL_OK : db_error(q, err, "cannot read units");
}

sl_rc sl_quarantine_units(struct sl_quarantine *q, sl_quarantine_unit_fn fn, void *ctx,
                          struct sl_error *err)
{
    char sql[256];
    snprintf(sql, sizeof sql, "%s ORDER BY id", unit_cols);
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = NULL;
    int found = 0;
    sl_rc rc = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) == SQLITE_OK
                   ? scan_units(q, st, fn, ctx, &found, err)
                   : db_error(q, err, "cannot read units");
    sqlite3_finalize(st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

sl_rc sl_quarantine_unit_get(struct sl_quarantine *q, int64_t id, sl_quarantine_unit_fn fn,
                             void *ctx, struct sl_error *err)
{
    char sql[256];
    snprintf(sql, sizeof sql, "%s WHERE id = ?1", unit_cols);
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = NULL;
    int found = 0;
    sl_rc rc;
    if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        rc = scan_units(q, st, fn, ctx, &found, err);
    } else {
        rc = db_error(q, err, "cannot read units");
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&q->mu);
    if (!rc && !found)
        rc = sl_error_set(err, SL_ENOENT,
                          "quarantine store %s has no unit %" PRId64
                          "; `sluice quarantine list` shows the units held",
                          q->path, id);
    return rc;
}

sl_rc sl_quarantine_records(struct sl_quarantine *q, int64_t unit, int64_t after, size_t limit,
                            sl_quarantine_record_fn fn, void *ctx, struct sl_error *err)
{
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = NULL;
    sl_rc rc = SL_OK;
    if (sqlite3_prepare_v2(q->db,
                           "SELECT row, unit, record_id, stage, json, raw, origin, line, offset "
                           "FROM quarantine_records WHERE unit = ?1 AND row > ?2 ORDER BY row "
                           "LIMIT ?3",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_error(q, err, "cannot read records");
        goto out;
    }
    sqlite3_bind_int64(st, 1, unit);
    sqlite3_bind_int64(st, 2, after);
    sqlite3_bind_int64(st, 3, limit ? (int64_t)limit : -1);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        struct sl_quarantine_record r;
        memset(&r, 0, sizeof r);
        r.row = sqlite3_column_int64(st, 0);
        r.unit = sqlite3_column_int64(st, 1);
        const char *rid = (const char *)sqlite3_column_text(st, 2);
        snprintf(r.record_id, sizeof r.record_id, "%s", rid ? rid : "");
        r.stage = (const char *)sqlite3_column_text(st, 3);
        r.json = (const char *)sqlite3_column_text(st, 4);
        r.json_len = (size_t)sqlite3_column_bytes(st, 4);
        if (sqlite3_column_type(st, 5) != SQLITE_NULL) {
            r.raw = sqlite3_column_blob(st, 5);
            r.raw_len = (size_t)sqlite3_column_bytes(st, 5);
            if (!r.raw)
                r.raw = (const unsigned char *)"";
        }
        r.origin = (const char *)sqlite3_column_text(st, 6);
        r.line = (uint64_t)sqlite3_column_int64(st, 7);
        r.offset = (uint64_t)sqlite3_column_int64(st, 8);
        if (!r.stage)
            r.stage = "";
        if (!r.json)
            r.json = "";
        if (!r.origin)
            r.origin = "";
        if (fn(ctx, &r))
            break;
    }
    if (s != SQLITE_ROW && s != SQLITE_DONE)
        rc = db_error(q, err, "cannot read records");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

sl_rc sl_quarantine_count(struct sl_quarantine *q, uint64_t *units, uint64_t *records,
                          struct sl_error *err)
{
    pthread_mutex_lock(&q->mu);
    sqlite3_stmt *st = NULL;
    sl_rc rc = SL_OK;
    if (sqlite3_prepare_v2(q->db,
                           "SELECT count(*), coalesce(sum(records), 0) FROM quarantine_units", -1,
                           &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        rc = db_error(q, err, "cannot count units");
    } else {
        if (units)
            *units = (uint64_t)sqlite3_column_int64(st, 0);
        if (records)
            *records = (uint64_t)sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* ---- changing ------------------------------------------------------------------------- */

static sl_rc delete_unit(struct sl_quarantine *q, int64_t id, uint64_t *records,
                         struct sl_error *err)
{
    pthread_mutex_lock(&q->mu);
    sl_rc rc = SL_OK;
    if (exec(q, "BEGIN IMMEDIATE") != SQLITE_OK) {
        rc = db_error(q, err, "cannot begin a transaction");
        goto out;
    }
    if (exec_id(q, "DELETE FROM quarantine_records WHERE unit = ?1", id) != SQLITE_OK) {
        rc = db_error(q, err, "cannot delete records");
        exec(q, "ROLLBACK");
        goto out;
    }
    uint64_t n = (uint64_t)sqlite3_changes(q->db);
    if (exec_id(q, "DELETE FROM quarantine_units WHERE id = ?1", id) != SQLITE_OK) {
        rc = db_error(q, err, "cannot delete the unit");
        exec(q, "ROLLBACK");
        goto out;
    }
    if (sqlite3_changes(q->db) == 0) {
        exec(q, "ROLLBACK");
        rc = sl_error_set(err, SL_ENOENT,
                          "quarantine store %s has no unit %" PRId64
                          "; `sluice quarantine list` shows the units held",
                          q->path, id);
        goto out;
    }
    if (exec(q, "COMMIT") != SQLITE_OK) {
        rc = db_error(q, err, "cannot commit");
        exec(q, "ROLLBACK");
        goto out;
    }
    if (records)
        *records = n;
out:
    pthread_mutex_unlock(&q->mu);
    return rc;
}

sl_rc sl_quarantine_drop(struct sl_quarantine *q, int64_t id, uint64_t *records,
                         struct sl_error *err)
{
    return delete_unit(q, id, records, err);
}

sl_rc sl_quarantine_release_finish(struct sl_quarantine *q, int64_t id, uint64_t *records,
                                   struct sl_error *err)
{
    return delete_unit(q, id, records, err);
}

sl_rc sl_quarantine_release_begin(struct sl_quarantine *q, int64_t id, struct sl_error *err)
{
    pthread_mutex_lock(&q->mu);
    sl_rc rc = SL_OK;
    if (exec_id(q, "UPDATE quarantine_units SET state = 'releasing' WHERE id = ?1", id) !=
        SQLITE_OK)
        rc = db_error(q, err, "cannot mark the unit");
    else if (sqlite3_changes(q->db) == 0)
        rc = sl_error_set(err, SL_ENOENT,
                          "quarantine store %s has no unit %" PRId64
                          "; `sluice quarantine list` shows the units held",
                          q->path, id);
    pthread_mutex_unlock(&q->mu);
    return rc;
}
