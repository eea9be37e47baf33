/*
 * sqlite.c - the `sqlite` sink: upsert records as rows of a table, exactly once.
 *
 * What it does. Each live record (a JSON object) becomes one row: each top-level field a
 * column of the same name, plus the record id as 32 hex digits in the id column
 * (`_sluice_id` unless configured otherwise). Rows are upserted on the `key` field when
 * one is configured, else on the id column, so replaying a batch after a crash rewrites
 * the same rows instead of adding duplicates.
 *
 * How it fits: the checkpoint protocol (DESIGN.md section 4). A batch is one transaction
 * (BEGIN IMMEDIATE ... COMMIT) that writes its rows and upserts the row (pipeline, sink,
 * source) -> position of `_sluice_checkpoints` in the same database. Either both are
 * durable or neither is; committed() reads the position back when the pipeline starts and
 * the engine skips batches at or below it.
 *
 * Schema. The table is created from the first batch that has rows: the id column first,
 * then the union of the batch's fields in first-seen order, typed by their first non-null
 * value (integer -> INTEGER, other number -> REAL, string -> TEXT, bool -> INTEGER,
 * object/array -> TEXT with compact JSON, only nulls -> TEXT). A field that is not yet a
 * column is added with ALTER TABLE ADD COLUMN inside the batch's transaction. An existing
 * table is read with PRAGMA table_info and used as it is; when its conflict column has no
 * unique index one is created. Column names match fields ignoring ASCII case, as SQLite
 * does. The insert statement names every column of the table, so a field a record lacks
 * is written as NULL and an upsert leaves the row equal to the newest record.
 *
 * Hot path. Rows go 16 at a time through one prepared multi-row INSERT ... ON CONFLICT DO
 * UPDATE (a third cheaper per row than one-row statements), reused across batches and
 * rebuilt only when the column set changes; a one-row twin writes the rest of a batch and
 * isolates a row that breaks a rule of the table. Each record is visited once with
 * sl_record_foreach; a field finds its column through a guess by field position (records
 * of a stream mostly share a layout) and a case-folded hash otherwise; strings are bound
 * straight from the batch arena or the input text with SQLITE_STATIC (they outlive the
 * step; bindings are cleared at the end of every batch). Only objects and arrays are
 * copied, as compact JSON. Nothing is allocated per record outside the batch arena.
 *
 * Rejections. A record that is not an object, lacks the key field, has a null key, has a
 * field that collides with the id column or another field's column, or violates a
 * constraint of the table is marked bad with sl_record_reject_why and the rest of the batch
 * is written. The message names the field and the rule; the structured reason (error
 * class "not_object", "sink" or "contract", the rule, the field's path) is what the
 * dead-letter queue stores; the engine adds origin:line when it reports the record. Before
 * the COMMIT of a batch in which it rejected records, the sink calls the engine's
 * keep_rejects hook, so no committed checkpoint covers a rejected record the dead-letter
 * queue does not hold; when the hook fails the batch is rolled back.
 *
 * Contracts (contract.c). With the contract option the table is made at init from the
 * contract's top-level properties and evolves only with backward-compatible versions; the
 * contract is stored in _sluice_contracts beside it. With additionalProperties: false, a
 * field beyond the properties is rejected instead of becoming a column.
 *
 * Write-audit-publish (stage.c). Started staged, the sink commits each batch to a staging
 * journal instead of the target, and publish() moves it (or not) at the end of the run.
 *
 * Status and reset. commit_info() reads a checkpoint row's records and updated_at; reset()
 * deletes this sink's checkpoint rows (of one source or all) and keeps the table's rows, which
 * a replay upserts; rewind() sets one checkpoint row's position back (`sluice reset
 * --to-position`) in its own transaction, keeping its records count. In inspect mode
 * (ctx->inspect) the database is opened read-only and nothing is created; reset() and
 * rewind() then use a short read-write connection.
 *
 * delivery: at_least_once keeps the transaction per batch, checkpoint row included, and
 * only lowers synchronous to OFF when the user did not set it (docs/sinks.md says what that
 * risks).
 *
 * Failures. SQLITE_BUSY/LOCKED (after busy_timeout) and a full disk roll the batch back
 * and return SL_RETRY; other database errors roll back and are fatal. After a rollback the
 * table's columns are read again, since DDL of the batch was undone with it.
 *
 * WAL checkpoints (exactly_once). Commits with synchronous=NORMAL do not fsync; checkpoints
 * do, and SQLite's automatic checkpoint runs them on the committing thread, so the sink
 * would stop writing while the disk flushes (a quarter of the run time at a million rows).
 * Instead the writer's connection has a WAL hook (which replaces automatic checkpoints): a
 * small thread owned by the sink, with a connection of its own, runs a PASSIVE checkpoint
 * (never blocks the writer) each time the WAL has grown by SQ_WAL_STEP frames, overlapping
 * the flush with the next batches. A PASSIVE checkpoint cannot rewind the WAL while the
 * writer keeps appending, so when the WAL reaches SQ_WAL_MAX frames the writer itself runs
 * a RESTART checkpoint between two transactions, after waiting for a background checkpoint
 * in progress but not for other processes (busy timeout 0 for that call): the WAL never
 * holds more than SQ_WAL_MAX frames plus one batch's, unless another process keeps a read
 * transaction open (SQLite cannot rewind a WAL a reader still uses; the rewind is then
 * tried again after every commit, each attempt also flushing that commit's frames).
 * close() stops the thread and closes the writer's connection last, which checkpoints
 * everything and deletes the WAL. Durability is unchanged: the same journal mode and
 * synchronous setting; checkpoints only move to another thread. at_least_once
 * (synchronous=OFF, nothing to flush), inspect and an SQLite built without thread support
 * keep SQLite's automatic checkpoint.
 *
 * Threading and ownership. The sink runs on its own thread and owns its connection (opened
 * without SQLite's mutexes) and everything in its state. The checkpointer thread uses only
 * its own connection and the fields under ck_mu (invariant 6).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "sluice/alloc.h"
#include "sluice/contract.h"
#include "sluice/log.h"
#include "sluice/plugin.h"
#include "sluice/record.h"

#include "plugins/sinks/common/rejects.h"
#include "sqlite_int.h"

static const char *const ctype_sql[] = {"TEXT", "INTEGER", "REAL", "TEXT"};

/* A column a batch needs that the table does not have yet. */
struct sq_newcol {
    const char *name; /* field key in the batch arena or input text */
    uint32_t len;
    uint8_t type; /* enum sq_ctype, from the first non-null value */
};

static const struct sl_option sqlite_options[] = {
    {.name = "path",
     .type = SL_OPT_PATH,
     .required = 1,
     .help = "Database file (created if missing; relative to the config file)."},
    {.name = "table",
     .type = SL_OPT_STRING,
     .required = 1,
     .help = "Table to upsert into; created from the first batch when missing."},
    {.name = "key",
     .type = SL_OPT_STRING,
     .help = "Field to upsert on (the table's primary key when the sink creates it)."},
    {.name = "id_column",
     .type = SL_OPT_STRING,
     .def = "_sluice_id",
     .help = "Column holding the record id (32 hex digits); \"\" switches it off, allowed "
             "only with key."},
    {.name = "synchronous",
     .type = SL_OPT_ENUM,
     .def = "normal",
     .choices = "normal|full",
     .help = "normal survives a process crash; full also survives a power loss. When unset "
             "under delivery: at_least_once, off (no fsync at all)."},
    {.name = "contract",
     .type = SL_OPT_PATH,
     .help = "Data contract (JSON Schema subset) whose top-level properties make the table's "
             "columns; a changed contract must be backward compatible (docs/sinks.md)."},
    {.name = "busy_timeout",
     .type = SL_OPT_DURATION,
     .def = "5s",
     .help = "How long to wait for another connection's lock before retrying the batch."},
    {.name = "partition",
     .type = SL_OPT_MAP,
     .help = "{column: C, value: V} (run --once only): the run replaces every row whose C "
             "is V, atomically at the end of the run; records get C = V."},
    {0},
};

/* ---- names ------------------------------------------------------------------------- */

uint32_t sl__sqlite_fold_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        h = (h ^ c) * 16777619u;
    }
    return h;
}

/* SQLite compares identifiers ignoring ASCII case only. */
int sl__sqlite_name_eq(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn)
        return 0;
    for (size_t i = 0; i < an; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
            return 0;
    }
    return 1;
}

/* Column index of name, or -1. */
int32_t sl__sqlite_find_col(const struct sqlite_sink *s, const char *name, size_t n)
{
    uint32_t h = sl__sqlite_fold_hash(name, n);
    for (uint32_t i = h & (SQ_SLOTS - 1);; i = (i + 1) & (SQ_SLOTS - 1)) {
        uint32_t c = s->slots[i];
        if (c == 0)
            return -1;
        const struct sq_column *col = &s->cols[c - 1];
        if (col->hash == h && sl__sqlite_name_eq(col->name, col->len, name, n))
            return (int32_t)(c - 1);
    }
}

/* Append "name" as a quoted identifier. */
sl_rc sl__sqlite_put_ident(struct sl_buf *b, const char *name, size_t n)
{
    sl_rc rc = sl_buf_putc(b, '"');
    for (size_t i = 0; rc == SL_OK && i < n; i++) {
        if (name[i] == '"')
            rc = sl_buf_putc(b, '"');
        if (rc == SL_OK)
            rc = sl_buf_putc(b, name[i]);
    }
    if (rc == SL_OK)
        rc = sl_buf_putc(b, '"');
    return rc;
}

/* ---- database helpers -------------------------------------------------------------- */

sl_rc sl__sqlite_db_error(struct sqlite_sink *s, int src, struct sl_error *err, const char *what)
{
    int ext = sqlite3_extended_errcode(s->db);
    int prim = src & 0xff;
    if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED)
        return sl_error_set(err, SL_RETRY,
                            "%s: database %s is locked by another connection "
                            "(waited busy_timeout); the batch will be retried",
                            what, s->path);
    if (prim == SQLITE_FULL)
        return sl_error_set(err, SL_RETRY,
                            "%s: the disk holding %s is full; free space and the batch "
                            "will be retried",
                            what, s->path);
    if (prim == SQLITE_NOMEM)
        return sl_error_set(err, SL_ENOMEM, "%s: out of memory", what);
    return sl_error_set(err, SL_EDB, "%s in %s (table %s): %s (SQLite error %d)", what, s->path,
                        s->table, sqlite3_errmsg(s->db), ext);
}

sl_rc sl__sqlite_prepare(struct sqlite_sink *s, const char *sql, size_t n, sqlite3_stmt **st,
                         struct sl_error *err)
{
    int src = sqlite3_prepare_v3(s->db, sql, (int)n, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (src != SQLITE_OK) {
        *st = NULL;
        return sl__sqlite_db_error(s, src, err, "preparing a statement");
    }
    return SL_OK;
}

/* Run one statement without results. */
sl_rc sl__sqlite_exec_sql(struct sqlite_sink *s, const char *sql, size_t n, const char *what,
                          struct sl_error *err)
{
    sqlite3_stmt *st;
    sl_rc rc = sl__sqlite_prepare(s, sql, n, &st, err);
    if (rc)
        return rc;
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW)
        ;
    rc = src == SQLITE_DONE ? SL_OK : sl__sqlite_db_error(s, src, err, what);
    sqlite3_finalize(st);
    return rc;
}

/* Run several statements without results (DDL scripts). */
sl_rc sl__sqlite_exec_script(struct sqlite_sink *s, const char *sql, const char *what,
                             struct sl_error *err)
{
    int src = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return src == SQLITE_OK ? SL_OK : sl__sqlite_db_error(s, src, err, what);
}

/* Step a statement that returns nothing, then reset it. */
sl_rc sl__sqlite_step_done(struct sqlite_sink *s, sqlite3_stmt *st, const char *what,
                           struct sl_error *err)
{
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    if (src != SQLITE_DONE)
        return sl__sqlite_db_error(s, src, err, what);
    return SL_OK;
}

static void free_columns(struct sqlite_sink *s)
{
    for (uint32_t i = 0; i < s->ncols; i++)
        sl_free(s->cols[i].name);
    s->ncols = 0;
    memset(s->slots, 0, sizeof s->slots);
    memset(s->hint, 0, sizeof s->hint);
    s->id_col = s->key_col = -1;
}

/* Read the table's columns (invariants 1, 2, 4) and drop the insert statement. */
sl_rc sl__sqlite_load_columns(struct sqlite_sink *s, struct sl_error *err)
{
    static const char q[] = "SELECT name FROM pragma_table_info(?1)";
    sqlite3_stmt *st;
    sqlite3_finalize(s->insert);
    sqlite3_finalize(s->group);
    s->insert = s->group = NULL;
    s->target_ok = 0;
    free_columns(s);
    sl_rc rc = sl__sqlite_prepare(s, q, sizeof q - 1, &st, err);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, s->table, -1, SQLITE_STATIC);
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        int n = sqlite3_column_bytes(st, 0);
        if (!name || s->ncols >= SQ_MAX_COLUMNS) {
            rc = name ? sl_error_set(err, SL_ELIMIT,
                                     "table %s has more than %d columns, more than "
                                     "this sink supports",
                                     s->table, SQ_MAX_COLUMNS)
                      : SL_ENOMEM;
            goto out;
        }
        struct sq_column *c = &s->cols[s->ncols];
        c->name = sl_strndup(name, (size_t)n);
        if (!c->name) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
            goto out;
        }
        c->len = (uint32_t)n;
        c->hash = sl__sqlite_fold_hash(name, (size_t)n);
        uint32_t i = c->hash & (SQ_SLOTS - 1);
        while (s->slots[i])
            i = (i + 1) & (SQ_SLOTS - 1);
        s->slots[i] = ++s->ncols;
    }
    if (src != SQLITE_DONE) {
        rc = sl__sqlite_db_error(s, src, err, "reading the table's columns");
        goto out;
    }
    if (s->id_column)
        s->id_col = sl__sqlite_find_col(s, s->id_column, strlen(s->id_column));
    if (s->key)
        s->key_col = sl__sqlite_find_col(s, s->key, strlen(s->key));
out:
    sqlite3_finalize(st);
    if (rc)
        free_columns(s);
    return rc;
}

/* ---- schema changes (inside the batch's transaction) --------------------------------- */

/* Make sure the conflict column has a unique index; create one when it has none. */
static sl_rc ensure_target_unique(struct sqlite_sink *s, struct sl_error *err)
{
    static const char q[] =
        "SELECT 1 FROM pragma_table_info(?1) WHERE pk = 1 AND name = ?2 COLLATE NOCASE"
        " AND (SELECT count(*) FROM pragma_table_info(?1) WHERE pk > 0) = 1"
        " UNION ALL SELECT 1 FROM pragma_index_list(?1) AS il"
        " WHERE il.\"unique\" AND NOT il.partial"
        " AND (SELECT count(*) FROM pragma_index_info(il.name)) = 1"
        " AND (SELECT name FROM pragma_index_info(il.name)) = ?2 COLLATE NOCASE";
    if (s->target_ok)
        return SL_OK;
    int32_t tc = s->key ? s->key_col : s->id_col;
    if (tc < 0)
        return SL_OK; /* the column does not exist yet */
    sqlite3_stmt *st;
    sl_rc rc = sl__sqlite_prepare(s, q, sizeof q - 1, &st, err);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, s->table, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, s->cols[tc].name, (int)s->cols[tc].len, SQLITE_STATIC);
    int src = sqlite3_step(st);
    sqlite3_finalize(st);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return sl__sqlite_db_error(s, src, err, "looking for the conflict column's unique index");
    if (src == SQLITE_DONE) {
        struct sl_buf *q2 = &s->sql;
        sl_buf_clear(q2);
        char idx[256];
        snprintf(idx, sizeof idx, "%.100s_%.100s_sluice_unique", s->table, s->cols[tc].name);
        if ((rc = sl_buf_puts(q2, "CREATE UNIQUE INDEX IF NOT EXISTS ")) ||
            (rc = sl__sqlite_put_ident(q2, idx, strlen(idx))) || (rc = sl_buf_puts(q2, " ON ")) ||
            (rc = sl__sqlite_put_ident(q2, s->table, strlen(s->table))) ||
            (rc = sl_buf_putc(q2, '(')) ||
            (rc = sl__sqlite_put_ident(q2, s->cols[tc].name, s->cols[tc].len)) ||
            (rc = sl_buf_putc(q2, ')')))
            return sl_error_set(err, rc, "building SQL: %s", sl_strerror(rc));
        rc = sl__sqlite_exec_sql(s, q2->data, q2->len,
                                 "creating a unique index on the conflict column", err);
        if (rc == SL_EDB)
            sl_error_prefix(err,
                            "upserts need column %s of table %s to be unique; remove its "
                            "duplicate values or choose another key: ",
                            s->cols[tc].name, s->table);
        if (rc)
            return rc;
        sl_info(s->name, "created unique index %s on %s(%s) for upserts", idx, s->table,
                s->cols[tc].name);
    }
    s->target_ok = 1;
    return SL_OK;
}

/* Append INSERT ... VALUES (rows tuples) ... ON CONFLICT ... for cols[0..ncols) to q. */
static sl_rc insert_sql(struct sqlite_sink *s, int32_t tc, uint32_t rows, struct sl_buf *q)
{
    sl_rc rc;
    sl_buf_clear(q);
    if ((rc = sl_buf_puts(q, "INSERT INTO ")) ||
        (rc = sl__sqlite_put_ident(q, s->table, strlen(s->table))))
        return rc;
    for (uint32_t i = 0; i < s->ncols; i++)
        if ((rc = sl_buf_putc(q, i ? ',' : '(')) ||
            (rc = sl__sqlite_put_ident(q, s->cols[i].name, s->cols[i].len)))
            return rc;
    if ((rc = sl_buf_puts(q, ") VALUES")))
        return rc;
    for (uint32_t j = 0; j < rows; j++) {
        for (uint32_t i = 0; i < s->ncols; i++)
            if ((rc = sl_buf_printf(q, "%s?%u", i ? "," : j ? "),(" : "(", j * s->ncols + i + 1)))
                return rc;
    }
    if ((rc = sl_buf_puts(q, ") ON CONFLICT(")) ||
        (rc = sl__sqlite_put_ident(q, s->cols[tc].name, s->cols[tc].len)) ||
        (rc = sl_buf_puts(q, s->ncols > 1 ? ") DO UPDATE SET " : ") DO NOTHING")))
        return rc;
    int first = 1;
    for (uint32_t i = 0; i < s->ncols; i++) {
        if ((int32_t)i == tc)
            continue;
        if ((rc = sl_buf_puts(q, first ? "" : ",")) ||
            (rc = sl__sqlite_put_ident(q, s->cols[i].name, s->cols[i].len)) ||
            (rc = sl_buf_puts(q, "=excluded.")) ||
            (rc = sl__sqlite_put_ident(q, s->cols[i].name, s->cols[i].len)))
            return rc;
        first = 0;
    }
    return SL_OK;
}

/*
 * (Re)build the insert statements over cols[0..ncols) (invariant 3). Rows go in groups of
 * SQ_GROUP through one statement because that saves a third of SQLite's per-row work.
 */
static sl_rc build_insert(struct sqlite_sink *s, struct sl_error *err)
{
    sl_rc rc;
    sqlite3_finalize(s->insert);
    sqlite3_finalize(s->group);
    s->insert = s->group = NULL;
    int32_t tc = s->key ? s->key_col : s->id_col;
    if (tc < 0)
        return sl_error_set(err, SL_ESTATE, "conflict column %s missing", s->target);
    if ((rc = insert_sql(s, tc, 1, &s->sql)))
        goto nomem;
    if ((rc = sl__sqlite_prepare(s, s->sql.data, s->sql.len, &s->insert, err)))
        return rc;
    if ((rc = insert_sql(s, tc, SQ_GROUP, &s->sql)))
        goto nomem;
    if ((rc = sl__sqlite_prepare(s, s->sql.data, s->sql.len, &s->group, err))) {
        sqlite3_finalize(s->insert);
        s->insert = NULL;
        return rc;
    }
    return SL_OK;
nomem:
    sqlite3_finalize(s->insert);
    s->insert = NULL;
    return sl_error_set(err, rc, "building the insert statement: %s", sl_strerror(rc));
}

enum num_kind { NUM_INT64, NUM_DOUBLE, NUM_BIGINT };

/*
 * How a number is stored: as a 64-bit integer when it is written as one (or computed as
 * an integral value in range), as the digits themselves when an integer is too large for
 * 64 bits (so nothing is lost; the column's affinity decides), else as a double. 1.0 and
 * 1e3 are written with a fraction or exponent and so are REAL.
 */
static int num_kind(const struct sl_value *v, int64_t *i)
{
    if (v->u.num.text) {
        if (sl_json_num_to_i64(v->u.num.text, v->len, i))
            return NUM_INT64;
        return memchr(v->u.num.text, '.', v->len) || memchr(v->u.num.text, 'e', v->len) ||
                       memchr(v->u.num.text, 'E', v->len)
                   ? NUM_DOUBLE
                   : NUM_BIGINT;
    }
    if (v->is_int && v->u.num.d >= -9223372036854775808.0 && v->u.num.d < 9223372036854775808.0) {
        *i = (int64_t)v->u.num.d;
        return NUM_INT64;
    }
    return NUM_DOUBLE;
}

/* The column type a value asks for. */
static uint8_t value_ctype(const struct sl_value *v)
{
    int64_t i;
    switch (v->type) {
    case SL_V_NULL:
        return SQ_T_UNSET;
    case SL_V_BOOL:
        return SQ_T_INTEGER;
    case SL_V_NUMBER:
        return num_kind(v, &i) == NUM_INT64 ? SQ_T_INTEGER : SQ_T_REAL;
    default:
        return SQ_T_TEXT;
    }
}

/* Collects the fields a batch needs that are not columns yet. */
struct scan_ctx {
    struct sqlite_sink *s;
    struct sq_newcol *nc;
    uint32_t n;
    int has_key;
};

static int scan_field(void *ctx, const char *key, size_t klen, const struct sl_value *v)
{
    struct scan_ctx *c = ctx;
    struct sqlite_sink *s = c->s;
    if (s->key && sl__sqlite_name_eq(key, klen, s->key, strlen(s->key)) && v->type != SL_V_NULL)
        c->has_key = 1;
    if (s->closed)
        return 0; /* the contract made every column at init; other fields are rejected */
    if (memchr(key, '\0', klen) || sl__sqlite_find_col(s, key, klen) >= 0 ||
        (s->id_column && sl__sqlite_name_eq(key, klen, s->id_column, strlen(s->id_column))))
        return 0; /* unnameable or the id column's name (rejected when written), or known */
    for (uint32_t i = 0; i < c->n; i++) {
        if (sl__sqlite_name_eq(c->nc[i].name, c->nc[i].len, key, klen)) {
            if (c->nc[i].type == SQ_T_UNSET)
                c->nc[i].type = value_ctype(v);
            return 0;
        }
    }
    /* Room is kept for the id column when it is still to be added. */
    if (s->ncols + c->n + (s->id_column && s->id_col < 0) >= SQ_MAX_COLUMNS)
        return 0; /* over the column limit: such records are rejected when written */
    c->nc[c->n].name = key;
    c->nc[c->n].len = (uint32_t)klen;
    c->nc[c->n].type = value_ctype(v);
    c->n++;
    return 0;
}

/*
 * Create the table or add the columns the records b->recs[from..n) need, make sure the
 * id column and the conflict column's unique index exist, reload the columns and rebuild
 * the insert statement. Runs inside the batch's transaction.
 */
static sl_rc extend_schema(struct sqlite_sink *s, struct sl_batch *b, uint32_t from,
                           struct sl_error *err)
{
    struct scan_ctx c = {.s = s};
    struct sl_buf *q = &s->sql;
    sl_rc rc;
    /*
     * Another process (a second day of a backfill, another member of a consumer group)
     * may have created the table or added columns since they were loaded. The batch's
     * transaction holds the write lock (BEGIN IMMEDIATE), so what is read now stays true
     * until the commit.
     */
    if ((rc = sl__sqlite_load_columns(s, err)))
        return rc;
    c.nc = sl_arena_alloc(&b->arena, SQ_MAX_COLUMNS * sizeof *c.nc);
    if (!c.nc)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (uint32_t i = from; i < b->n; i++) {
        struct sl_record *r = &b->recs[i];
        if ((r->flags & (SL_REC_DROPPED | SL_REC_BAD)) || !(r->flags & SL_REC_PARSED))
            continue;
        uint32_t before = c.n;
        c.has_key = 0;
        if (sl_record_foreach(r, &b->arena, scan_field, &c) != SL_OK)
            c.n = before; /* not an object: rejected when written */
        else if (s->key && !c.has_key)
            c.n = before; /* no key: rejected when written; its fields make no columns */
    }
    int create = s->ncols == 0;
    if (create) {
        /* The id column first, then the fields; the key is the primary key. */
        sl_buf_clear(q);
        if ((rc = sl_buf_puts(q, "CREATE TABLE ")) ||
            (rc = sl__sqlite_put_ident(q, s->table, strlen(s->table))) ||
            (rc = sl_buf_putc(q, '(')))
            goto nomem;
        int first = 1;
        if (s->id_column) {
            if ((rc = sl__sqlite_put_ident(q, s->id_column, strlen(s->id_column))) ||
                (rc = sl_buf_puts(q, s->key ? " TEXT" : " TEXT UNIQUE")))
                goto nomem;
            first = 0;
        }
        for (uint32_t i = 0; i < c.n; i++) {
            int is_key =
                s->key && sl__sqlite_name_eq(c.nc[i].name, c.nc[i].len, s->key, strlen(s->key));
            if ((rc = sl_buf_puts(q, first ? "" : ", ")) ||
                (rc = sl__sqlite_put_ident(q, c.nc[i].name, c.nc[i].len)) ||
                (rc = sl_buf_printf(q, " %s%s", ctype_sql[c.nc[i].type],
                                    is_key ? " PRIMARY KEY" : "")))
                goto nomem;
            first = 0;
        }
        if (first)
            return SL_OK; /* nothing to create a table from: every record gets rejected */
        if ((rc = sl_buf_putc(q, ')')))
            goto nomem;
        if ((rc = sl__sqlite_exec_sql(s, q->data, q->len, "creating the table", err)))
            return rc;
        sl_info(s->name, "created table %s in %s", s->table, s->path);
    } else {
        if (s->id_column && s->id_col < 0) {
            /* An existing table without the id column gets it first. */
            memmove(c.nc + 1, c.nc, c.n * sizeof *c.nc);
            c.nc[0].name = s->id_column;
            c.nc[0].len = (uint32_t)strlen(s->id_column);
            c.nc[0].type = SQ_T_TEXT;
            c.n++;
        }
        for (uint32_t i = 0; i < c.n; i++) {
            sl_buf_clear(q);
            if ((rc = sl_buf_puts(q, "ALTER TABLE ")) ||
                (rc = sl__sqlite_put_ident(q, s->table, strlen(s->table))) ||
                (rc = sl_buf_puts(q, " ADD COLUMN ")) ||
                (rc = sl__sqlite_put_ident(q, c.nc[i].name, c.nc[i].len)) ||
                (rc = sl_buf_printf(q, " %s", ctype_sql[c.nc[i].type])))
                goto nomem;
            if ((rc = sl__sqlite_exec_sql(s, q->data, q->len, "adding a column", err)))
                return rc;
            sl_info(s->name, "added column %.*s %s to %s", (int)c.nc[i].len, c.nc[i].name,
                    ctype_sql[c.nc[i].type], s->table);
        }
    }
    if ((rc = sl__sqlite_load_columns(s, err)) || (rc = ensure_target_unique(s, err)))
        return rc;
    if ((s->key ? s->key_col : s->id_col) < 0)
        return SL_OK; /* no conflict column yet: every record so far lacks the key */
    return build_insert(s, err);
nomem:
    return sl_error_set(err, rc, "building SQL: %s", sl_strerror(rc));
}

/* ---- rows --------------------------------------------------------------------------- */

/* Fill the structured part of a rejection; the caller writes c->why. */
void sl__sqlite_why_set(struct row_ctx *c, const char *cls, const char *rule, const char *key,
                        size_t klen)
{
    c->cls = cls;
    c->rule = rule;
    if (key)
        snprintf(c->path, sizeof c->path, "$.%.*s", (int)(klen > 64 ? 64 : klen), key);
    else
        snprintf(c->path, sizeof c->path, "$");
    c->status = ROW_REJECT;
}

/* The rule a row broke, from SQLite's extended result code. */
static const char *constraint_rule(int ext)
{
    switch (ext) {
    case SQLITE_CONSTRAINT_NOTNULL:
        return "not_null";
    case SQLITE_CONSTRAINT_UNIQUE:
        return "unique";
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        return "primary_key";
    case SQLITE_CONSTRAINT_CHECK:
        return "check";
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return "foreign_key";
    case SQLITE_CONSTRAINT_TRIGGER:
        return "trigger";
#ifdef SQLITE_CONSTRAINT_DATATYPE
    case SQLITE_CONSTRAINT_DATATYPE:
        return "datatype";
#endif
    default:
        break;
    }
    switch (ext & 0xff) {
    case SQLITE_MISMATCH:
        return "datatype";
    case SQLITE_TOOBIG:
        return "too_big";
    case SQLITE_RANGE:
        return "range";
    default:
        return "constraint";
    }
}

/* Append v as compact JSON: tape-backed containers are walked token by token. */
static sl_rc write_tape_compact(const struct sl_tape *t, uint32_t i, struct sl_buf *o,
                                uint32_t *next)
{
    const struct sl_jtok *tok = &t->tok[i];
    sl_rc rc = SL_OK;
    uint32_t j = i + 1;
    switch (tok->type) {
    case SL_J_ARRAY:
        rc = sl_buf_putc(o, '[');
        for (uint32_t k = 0; rc == SL_OK && k < tok->count; k++) {
            if (k)
                rc = sl_buf_putc(o, ',');
            if (rc == SL_OK)
                rc = write_tape_compact(t, j, o, &j);
        }
        if (rc == SL_OK)
            rc = sl_buf_putc(o, ']');
        break;
    case SL_J_OBJECT:
        rc = sl_buf_putc(o, '{');
        for (uint32_t k = 0; rc == SL_OK && k < tok->count; k++) {
            if (k)
                rc = sl_buf_putc(o, ',');
            if (rc == SL_OK)
                rc = sl_buf_append(o, t->text + t->tok[j].off, t->tok[j].len);
            if (rc == SL_OK)
                rc = sl_buf_putc(o, ':');
            if (rc == SL_OK)
                rc = write_tape_compact(t, j + 1, o, &j);
        }
        if (rc == SL_OK)
            rc = sl_buf_putc(o, '}');
        break;
    default:
        rc = sl_buf_append(o, t->text + tok->off, tok->len);
        break;
    }
    *next = tok->next;
    return rc;
}

static sl_rc write_compact(const struct sl_value *v, struct sl_buf *o)
{
    sl_rc rc = SL_OK;
    uint32_t next;
    if (v->type == SL_V_ARRAY || v->type == SL_V_OBJECT) {
        if (v->is_tape)
            return write_tape_compact(v->u.tape.tape, v->u.tape.tok, o, &next);
        int obj = v->type == SL_V_OBJECT;
        rc = sl_buf_putc(o, obj ? '{' : '[');
        for (uint32_t k = 0; rc == SL_OK && k < v->len; k++) {
            if (k)
                rc = sl_buf_putc(o, ',');
            if (rc == SL_OK && obj) {
                rc = sl_json_write_str(o, v->u.members[k].key, v->u.members[k].klen);
                if (rc == SL_OK)
                    rc = sl_buf_putc(o, ':');
            }
            if (rc == SL_OK)
                rc = write_compact(obj ? &v->u.members[k].val : &v->u.items[k], o);
        }
        if (rc == SL_OK)
            rc = sl_buf_putc(o, obj ? '}' : ']');
        return rc;
    }
    return sl_value_write(v, o);
}

static int bind_value(struct row_ctx *c, int param, const char *key, size_t klen,
                      const struct sl_value *v)
{
    struct sqlite_sink *s = c->s;
    sqlite3_stmt *st = c->st;
    int src;
    int64_t i;
    switch (v->type) {
    case SL_V_NULL:
        src = sqlite3_bind_null(st, param);
        break;
    case SL_V_BOOL:
        src = sqlite3_bind_int(st, param, v->u.b ? 1 : 0);
        break;
    case SL_V_NUMBER:
        switch (num_kind(v, &i)) {
        case NUM_INT64:
            src = sqlite3_bind_int64(st, param, i);
            break;
        case NUM_BIGINT: /* the digits live in the batch's input text */
            src = sqlite3_bind_text(st, param, v->u.num.text, (int)v->len, SQLITE_STATIC);
            break;
        default:
            src = sqlite3_bind_double(st, param, v->u.num.d);
            break;
        }
        break;
    case SL_V_STRING:
        /* The bytes live in the batch (arena or input) until the bindings are cleared. */
        src = sqlite3_bind_text(st, param, v->len ? v->u.str : "", (int)v->len, SQLITE_STATIC);
        break;
    default: {
        sl_buf_clear(&s->json);
        sl_rc rc = write_compact(v, &s->json);
        if (rc == SL_ELIMIT) {
            snprintf(c->why, sizeof c->why,
                     "field \"%.*s\" is larger than %zu MiB as JSON, the sink's limit",
                     (int)(klen > 64 ? 64 : klen), key, SQ_JSON_MAX >> 20);
            sl__sqlite_why_set(c, "sink", "value_too_large", key, klen);
            return 1;
        }
        if (rc) {
            c->status = ROW_FAIL;
            c->rc = rc;
            return 1;
        }
        src = sqlite3_bind_text(st, param, s->json.len ? s->json.data : "", (int)s->json.len,
                                SQLITE_TRANSIENT);
        break;
    }
    }
    if (src != SQLITE_OK) {
        c->status = ROW_FAIL;
        c->rc = src == SQLITE_NOMEM ? SL_ENOMEM : SL_EDB;
        return 1;
    }
    return 0;
}

static int row_field(void *ctx, const char *key, size_t klen, const struct sl_value *v)
{
    struct row_ctx *c = ctx;
    struct sqlite_sink *s = c->s;
    int32_t col = -1;
    uint32_t pos = c->pos++;
    if (pos < SQ_HINTS && s->hint[pos]) {
        const struct sq_column *h = &s->cols[s->hint[pos] - 1];
        if (h->len == klen && memcmp(h->name, key, klen) == 0)
            col = (int32_t)(s->hint[pos] - 1);
    }
    if (col < 0) {
        col = sl__sqlite_find_col(s, key, klen);
        if (col < 0) {
            if (memchr(key, '\0', klen)) {
                snprintf(c->why, sizeof c->why,
                         "field name \"%.*s\" contains a NUL character, which no column name "
                         "can hold",
                         (int)(klen > 64 ? 64 : klen), key);
                sl__sqlite_why_set(c, "sink", "column_name", key, klen);
            } else if (s->closed) {
                snprintf(c->why, sizeof c->why,
                         "field \"%.*s\" is not a property of contract %s, which allows no "
                         "others (additionalProperties: false)",
                         (int)(klen > 64 ? 64 : klen), key, sl_contract_label(s->contract));
                sl__sqlite_why_set(c, "contract", "additionalProperties", key, klen);
            } else if (s->ncols >= SQ_MAX_COLUMNS) {
                snprintf(c->why, sizeof c->why,
                         "field \"%.*s\" would be column %d of table %s; the limit is %d",
                         (int)(klen > 64 ? 64 : klen), key, (int)s->ncols + 1, s->table,
                         SQ_MAX_COLUMNS);
                sl__sqlite_why_set(c, "sink", "column_limit", key, klen);
            } else {
                c->status = ROW_UNKNOWN;
            }
            return 1;
        }
        if (pos < SQ_HINTS)
            s->hint[pos] = (uint32_t)col + 1;
    }
    if (s->bound[col] == s->gen) {
        if (col == s->id_col) {
            snprintf(c->why, sizeof c->why,
                     "field \"%.*s\" has the name of the id column; rename the field or set "
                     "id_column",
                     (int)(klen > 64 ? 64 : klen), key);
            sl__sqlite_why_set(c, "sink", "id_column", key, klen);
        } else {
            snprintf(c->why, sizeof c->why,
                     "two fields map to column \"%s\" (SQLite column names ignore case)",
                     s->cols[col].name);
            sl__sqlite_why_set(c, "sink", "column_collision", key, klen);
        }
        return 1;
    }
    s->bound[col] = s->gen;
    if (col == s->key_col && v->type == SL_V_NULL) {
        snprintf(c->why, sizeof c->why, "key field \"%s\" is null", s->key);
        sl__sqlite_why_set(c, "sink", "key_null", s->key, strlen(s->key));
        return 1;
    }
    return bind_value(c, c->base + col + 1, key, klen, v);
}

static const char *root_type_name(const struct sl_record *r)
{
    static const char *const names[] = {"null",   "boolean", "boolean", "number",
                                        "string", "array",   "object"};
    if (!(r->flags & SL_REC_PARSED) || r->tape.ntok == 0 || r->tape.tok[0].type > SL_J_OBJECT)
        return "value";
    return names[r->tape.tok[0].type];
}

/*
 * Bind record r (a parsed object) as row `row` of st (insert or group). Returns ROW_OK,
 * ROW_REJECT (c->why says why), ROW_UNKNOWN (a field has no column yet, or there is no
 * statement yet), or ROW_FAIL with c->rc.
 */
static int bind_row(struct sqlite_sink *s, struct sl_batch *b, struct sl_record *r,
                    struct row_ctx *c, sqlite3_stmt *st, uint32_t row)
{
    c->st = st;
    c->base = (int)(row * s->ncols);
    c->pos = 0;
    c->status = ROW_OK;
    c->rc = SL_OK;
    if (!st)
        return ROW_UNKNOWN;
    if (++s->gen == 0) {
        memset(s->bound, 0, sizeof s->bound);
        s->gen = 1;
    }
    if (s->id_col >= 0) {
        char *id = s->idbuf[st == s->group ? row : SQ_GROUP];
        sl_record_id_format(r->id, id);
        sqlite3_bind_text(st, c->base + s->id_col + 1, id, 32, SQLITE_STATIC);
        s->bound[s->id_col] = s->gen;
    }
    sl_rc rc = sl_record_foreach(r, &b->arena, row_field, c);
    if (c->status != ROW_OK)
        return c->status;
    if (rc) {
        c->rc = rc == SL_ETYPE ? SL_ESTATE : rc;
        return ROW_FAIL;
    }
    if (s->key && s->bound[s->key_col] != s->gen) {
        snprintf(c->why, sizeof c->why, "record has no key field \"%s\"", s->key);
        sl__sqlite_why_set(c, "sink", "key_missing", s->key, strlen(s->key));
        return ROW_REJECT;
    }
    for (uint32_t i = 0; i < s->ncols; i++)
        if (s->bound[i] != s->gen)
            sqlite3_bind_null(st, c->base + (int)i + 1);
    return ROW_OK;
}

/* The step of a bound statement: ROW_OK, ROW_REJECT (a rule of the table) or ROW_FAIL. */
static int step_rows(struct sqlite_sink *s, sqlite3_stmt *st, struct row_ctx *c, int *step_rc)
{
    int src = sqlite3_step(st);
    *step_rc = SQLITE_OK;
    if (src == SQLITE_DONE) {
        sqlite3_reset(st);
        return ROW_OK;
    }
    int prim = src & 0xff;
    if (prim == SQLITE_CONSTRAINT || prim == SQLITE_MISMATCH || prim == SQLITE_TOOBIG ||
        prim == SQLITE_RANGE) {
        /* A row broke a rule of the table: only this statement was undone. */
        snprintf(c->why, sizeof c->why, "table %s refused the row: %s", s->table,
                 sqlite3_errmsg(s->db));
        sl__sqlite_why_set(c, "sink", constraint_rule(sqlite3_extended_errcode(s->db)), NULL, 0);
        sqlite3_reset(st);
        return ROW_REJECT;
    }
    *step_rc = src;
    c->rc = SL_EDB;
    sqlite3_reset(st);
    return ROW_FAIL;
}

/* Write record r alone with the one-row statement (statuses as bind_row and step_rows). */
static int write_row(struct sqlite_sink *s, struct sl_batch *b, struct sl_record *r,
                     struct row_ctx *c, int *step_rc)
{
    *step_rc = SQLITE_OK;
    int st = bind_row(s, b, r, c, s->insert, 0);
    if (st != ROW_OK)
        return st;
    return step_rows(s, s->insert, c, step_rc);
}

/* End a failed batch: roll back, forget the schema (its DDL was undone too). */
sl_rc sl__sqlite_abort_batch(struct sqlite_sink *s, sl_rc rc)
{
    if (s->insert) {
        sqlite3_reset(s->insert);
        sqlite3_clear_bindings(s->insert);
        sqlite3_reset(s->group);
        sqlite3_clear_bindings(s->group);
    }
    if (!sqlite3_get_autocommit(s->db)) {
        int src = sqlite3_step(s->rollback);
        sqlite3_reset(s->rollback);
        if (src != SQLITE_DONE)
            sl_warn(s->name, "rolling back the failed batch in %s: %s", s->path,
                    sqlite3_errmsg(s->db));
    }
    sqlite3_finalize(s->insert);
    sqlite3_finalize(s->group);
    s->insert = s->group = NULL;
    s->schema_stale = 1;
    return rc;
}

/* Mark r rejected with the reason bind_row or step_rows left in c. */
void sl__sqlite_reject_row(struct sqlite_sink *s, struct sl_batch *b, struct sl_record *r,
                           const struct row_ctx *c)
{
    struct sl_reject_info why = {
        .error_class = c->cls ? c->cls : "sink",
        .rule = c->rule,
        .path = c->path[0] ? c->path : "$",
        .contract = c->cls && strcmp(c->cls, "contract") == 0 && s->contract
                        ? sl_contract_label(s->contract)
                        : NULL,
    };
    sl_record_reject_why(b, r, s->name, &why, "%s; not written", c->why);
}

/*
 * Write record b->recs[i] alone, growing the schema when it needs a column that does not
 * exist yet. Rejections mark the record; SL_OK unless the batch must be aborted.
 */
static sl_rc write_one(struct sqlite_sink *s, struct sl_batch *b, uint32_t i, struct row_ctx *c,
                       int64_t *written, struct sl_error *err)
{
    struct sl_record *r = &b->recs[i];
    const char *origin = b->origin ? b->origin : "(input)";
    int extended = 0, step_rc, st;
    sl_rc rc;
    while ((st = write_row(s, b, r, c, &step_rc)) == ROW_UNKNOWN && !extended) {
        if ((rc = extend_schema(s, b, i, err)))
            return rc;
        extended = 1;
    }
    if (st == ROW_UNKNOWN) {
        /* Only records without a usable key leave fields without columns. */
        struct sl_value kv;
        int has = s->key && sl_record_get_key(r, s->key, strlen(s->key), &b->arena, &kv);
        if (!s->key || (has && kv.type != SL_V_NULL))
            return sl_error_set(err, SL_ESTATE,
                                "%s:%u: a field of the record has no column in table %s "
                                "after the schema was extended",
                                origin, r->line, s->table);
        if (has)
            snprintf(c->why, sizeof c->why, "key field \"%s\" is null", s->key);
        else
            snprintf(c->why, sizeof c->why, "record has no key field \"%s\"", s->key);
        sl__sqlite_why_set(c, "sink", has ? "key_null" : "key_missing", s->key, strlen(s->key));
        st = ROW_REJECT;
    }
    if (st == ROW_REJECT) {
        sl__sqlite_reject_row(s, b, r, c);
        return SL_OK;
    }
    if (st == ROW_FAIL) {
        if (step_rc != SQLITE_OK)
            return sl__sqlite_db_error(s, step_rc, err, "writing a row");
        return sl_error_set(err, c->rc, "%s:%u: writing the record: %s", origin, r->line,
                            sl_strerror(c->rc));
    }
    (*written)++;
    return SL_OK;
}

/*
 * Write the records bound into the group statement (their indexes in idx[0..*n)). A full
 * group is one step; when a row in it breaks a rule of the table, or the group is not
 * full (end of batch, schema change ahead), the records are written one by one instead,
 * which finds and rejects the offending ones.
 */
static sl_rc flush_group(struct sqlite_sink *s, struct sl_batch *b, const uint32_t *idx,
                         uint32_t *n, struct row_ctx *c, int64_t *written, struct sl_error *err)
{
    int step_rc;
    sl_rc rc = SL_OK;
    if (*n == SQ_GROUP) {
        int st = step_rows(s, s->group, c, &step_rc);
        if (st == ROW_OK) {
            *written += *n;
            *n = 0;
            return SL_OK;
        }
        if (st == ROW_FAIL) {
            *n = 0;
            return sl__sqlite_db_error(s, step_rc, err, "writing rows");
        }
    }
    for (uint32_t k = 0; k < *n && rc == SL_OK; k++)
        rc = write_one(s, b, idx[k], c, written, err);
    *n = 0;
    return rc;
}

/*
 * Parse r when it is not yet and check that it is an object; otherwise mark it rejected
 * and return 0.
 */
int sl__sqlite_record_ready(struct sqlite_sink *s, struct sl_batch *b, struct sl_record *r,
                            struct sl_worker *w)
{
    if (!(r->flags & SL_REC_PARSED)) {
        struct sl_json_error je = {0};
        if (!w || !w->parser ||
            sl_record_parse(r, w->parser, w->max_depth, &b->arena, &je) != SL_OK) {
            struct sl_reject_info why = {
                .error_class = "invalid_json", .rule = "syntax", .path = "$"};
            sl_record_reject_why(b, r, s->name, &why, "record is not valid JSON: %s",
                                 w && w->parser ? je.msg : "it reached the sink unparsed");
            return 0;
        }
    }
    if (r->tape.ntok == 0 || r->tape.tok[0].type != SL_J_OBJECT) {
        struct sl_reject_info why = {.error_class = "not_object",
                                     .rule = "type",
                                     .path = "$",
                                     .expected = "object",
                                     .actual = root_type_name(r)};
        sl_record_reject_why(b, r, s->name, &why,
                             "record is a JSON %s, not an object; the sqlite sink writes "
                             "objects as rows",
                             root_type_name(r));
        return 0;
    }
    return 1;
}

/*
 * Upsert the live records of b into the target table, inside the open transaction.
 * Records the table refuses are marked rejected; SL_OK unless the transaction must be
 * rolled back (the caller does that with abort_batch).
 */
sl_rc sl__sqlite_write_rows(struct sqlite_sink *s, struct sl_batch *b, struct sl_worker *w,
                            int64_t *written, struct sl_error *err)
{
    const char *origin = b->origin ? b->origin : "(input)";
    struct row_ctx c = {.s = s};
    uint32_t idx[SQ_GROUP], ng = 0;
    sl_rc rc;
    for (uint32_t i = 0; i < b->n; i++) {
        struct sl_record *r = &b->recs[i];
        if (r->flags & (SL_REC_DROPPED | SL_REC_BAD))
            continue;
        if (!sl__sqlite_record_ready(s, b, r, w))
            continue;
        if (s->group) {
            int st = bind_row(s, b, r, &c, s->group, ng);
            if (st == ROW_OK) {
                idx[ng++] = i;
                if (ng == SQ_GROUP && (rc = flush_group(s, b, idx, &ng, &c, written, err)))
                    return rc;
                continue;
            }
            if (st == ROW_REJECT) {
                sl__sqlite_reject_row(s, b, r, &c);
                continue;
            }
            if (st == ROW_FAIL)
                return sl_error_set(err, c.rc, "%s:%u: writing the record: %s", origin, r->line,
                                    sl_strerror(c.rc));
            /* ROW_UNKNOWN: the schema grows, and the statements with it. */
        }
        if ((rc = flush_group(s, b, idx, &ng, &c, written, err)) ||
            (rc = write_one(s, b, i, &c, written, err)))
            return rc;
    }
    return flush_group(s, b, idx, &ng, &c, written, err);
}

/*
 * Before the commit that covers b: make the records this sink rejected durable in the
 * dead-letter queue (struct sl_worker's keep_rejects), so no commit covers a rejected
 * record the queue does not hold. Checked by flags rather than by a count of this call's
 * rejections so that a retried batch, whose rejections stayed marked, still gets them kept.
 */
static sl_rc keep_rejected(struct sqlite_sink *s, struct sl_batch *b, struct sl_worker *w,
                           struct sl_error *err)
{
    return sl__sink_keep_rejected(s->name, b, w, err);
}

static sl_rc sqlite_process(void *state, struct sl_batch *b, struct sl_worker *w,
                            struct sl_error *err)
{
    struct sqlite_sink *s = state;
    const char *source = NULL;
    int64_t written = 0, seq = s->stage_seq;
    sl_rc rc;

    if (s->inspect)
        return sl_error_set(err, SL_ESTATE, "sink %s was opened for inspection", s->name);
    if (b->position) {
        if (b->source >= s->nsources || !s->source_names || !s->source_names[b->source])
            return sl_error_set(err, SL_ESTATE, "batch from unknown source #%u", b->source);
        source = b->checkpoint ? b->checkpoint : s->source_names[b->source];
    }
    if (sl_batch_live(b) == 0 && !source)
        return SL_OK;
    if (s->schema_stale) {
        if ((rc = sl__sqlite_load_columns(s, err)))
            return rc;
        s->schema_stale = 0;
    }
    if ((rc = sl__sqlite_step_done(s, s->begin, "starting the batch's transaction", err)))
        return rc;
    rc = s->staged ? sl__sqlite_stage_rows(s, b, w, source, &seq, &written, err)
                   : sl__sqlite_write_rows(s, b, w, &written, err);
    if (rc || (rc = keep_rejected(s, b, w, err)))
        return sl__sqlite_abort_batch(s, rc);

    if (source) {
        /* Invariant 7: a staged batch's position waits in _sluice_staged for publish. */
        sqlite3_stmt *cp = s->staged ? s->stage_pos : s->ckpt_put;
        sqlite3_bind_text(cp, 1, s->pipeline, -1, SQLITE_STATIC);
        sqlite3_bind_text(cp, 2, s->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(cp, 3, source, -1, SQLITE_STATIC);
        sqlite3_bind_text(cp, 4, b->position, -1, SQLITE_STATIC);
        sqlite3_bind_int64(cp, 5, written);
        rc = sl__sqlite_step_done(s, cp, "recording the checkpoint", err);
        sqlite3_clear_bindings(cp);
        if (rc)
            return sl__sqlite_abort_batch(s, rc);
    }
    if ((rc = sl__sqlite_step_done(s, s->commit, "committing the batch", err)))
        return sl__sqlite_abort_batch(s, rc);
    s->stage_seq = seq;
    if (s->insert) { /* invariant 5: nothing points into b */
        sqlite3_clear_bindings(s->insert);
        sqlite3_clear_bindings(s->group);
    }
    return SL_OK;
}

static sl_rc sqlite_committed(void *state, const char *source, char **position,
                              struct sl_error *err)
{
    struct sqlite_sink *s = state;
    sqlite3_stmt *st = s->ckpt_get;
    sl_rc rc = SL_OK;
    *position = NULL;
    if (!st)
        return SL_OK; /* inspect: nothing committed */
    sqlite3_bind_text(st, 1, s->pipeline, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, s->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, source, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        const char *p = (const char *)sqlite3_column_text(st, 0);
        if (p) {
            *position = sl_strdup(p);
            if (!*position)
                rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        }
    } else if (src != SQLITE_DONE) {
        rc = sl__sqlite_db_error(s, src, err, "reading the checkpoint");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static sl_rc sqlite_commit_info(void *state, const char *source, uint64_t *records,
                                uint64_t *commit_ns, struct sl_error *err)
{
    struct sqlite_sink *s = state;
    sqlite3_stmt *st = s->ckpt_info;
    sl_rc rc = SL_OK;
    *records = *commit_ns = 0;
    if (!st)
        return SL_OK; /* inspect: no database or no checkpoint table, so nothing committed */
    sqlite3_bind_text(st, 1, s->pipeline, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, s->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, source, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        sqlite3_int64 r = sqlite3_column_int64(st, 0), ms = sqlite3_column_int64(st, 1);
        *records = r > 0 ? (uint64_t)r : 0;
        *commit_ns = ms > 0 ? (uint64_t)ms * 1000000u : 0;
    } else if (src != SQLITE_DONE) {
        rc = sl__sqlite_db_error(s, src, err, "reading the checkpoint");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/*
 * The connection that changes checkpoints outside process() (reset, rewind): the sink's own,
 * or in inspect mode, where that one is read-only, a short read-write one (without
 * SQLITE_OPEN_CREATE: a missing database has no checkpoint to change). The caller closes
 * *db when it is not s->db.
 */
static sl_rc open_writer(struct sqlite_sink *s, sqlite3 **db, const char *why, struct sl_error *err)
{
    *db = s->db;
    if (!s->inspect)
        return SL_OK;
    int src = sqlite3_open_v2(s->path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        sl_rc rc = sl_error_set(err, SL_EDB, "cannot open database %s to %s: %s", s->path, why,
                                *db ? sqlite3_errmsg(*db) : sqlite3_errstr(src));
        sqlite3_close(*db);
        *db = NULL;
        return rc;
    }
    sqlite3_busy_timeout(*db, 5000);
    return SL_OK;
}

/*
 * Delete this sink's checkpoint rows (of source, or all). The table's rows stay: the next
 * run upserts the same records again under the same ids or keys, so nothing is doubled.
 */
static sl_rc sqlite_reset(void *state, const char *source, struct sl_error *err)
{
    static const char q[] = "DELETE FROM _sluice_checkpoints WHERE pipeline = ?1 AND sink = ?2"
                            " AND (?3 IS NULL OR source = ?3)";
    struct sqlite_sink *s = state;
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    if (s->inspect && !s->has_ckpt)
        return SL_OK;
    sl_rc rc = open_writer(s, &db, "reset it", err);
    if (rc)
        return rc;
    int src = sqlite3_prepare_v2(db, q, sizeof q - 1, &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_text(st, 1, s->pipeline, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, s->name, -1, SQLITE_STATIC);
        if (source)
            sqlite3_bind_text(st, 3, source, -1, SQLITE_STATIC);
        src = sqlite3_step(st);
    }
    if (src != SQLITE_DONE && src != SQLITE_OK) {
        int prim = src & 0xff;
        rc = sl_error_set(err, prim == SQLITE_BUSY ? SL_RETRY : SL_EDB,
                          "resetting the checkpoints of sink %s in %s: %s", s->name, s->path,
                          sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    if (db != s->db)
        sqlite3_close(db);
    return rc;
}

/*
 * Set the checkpoint row of source to position (`sluice reset --to-position`), in one
 * transaction: BEGIN IMMEDIATE, upsert, COMMIT. `records` keeps its total (the records
 * delivered again are then counted again); updated_at becomes now. The table's rows stay:
 * what is delivered again is upserted on its id or key, so nothing is doubled. Whether
 * position lies behind the old one is the caller's question (the sink cannot order
 * positions; the source can).
 */
static sl_rc sqlite_rewind(void *state, const char *source, const char *position,
                           struct sl_error *err)
{
    static const char q[] =
        "INSERT INTO _sluice_checkpoints(pipeline, sink, source, position, records, updated_at)"
        " VALUES(?1, ?2, ?3, ?4, 0, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
        " ON CONFLICT(pipeline, sink, source) DO UPDATE SET position = excluded.position,"
        " updated_at = excluded.updated_at";
    struct sqlite_sink *s = state;
    sqlite3 *db;
    sqlite3_stmt *st = NULL;
    const char *step = "starting a transaction";
    if (!source || !position)
        return sl_error_set(err, SL_EINVAL, "sink %s: rewind needs a source and a position",
                            s->name);
    if (s->inspect && !s->has_ckpt)
        return sl_error_set(err, SL_ESTATE,
                            "sink %s has committed nothing in %s (no _sluice_checkpoints table), "
                            "so there is no checkpoint to move",
                            s->name, s->path);
    sl_rc rc = open_writer(s, &db, "rewind it", err);
    if (rc)
        return rc;
    int src = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (src == SQLITE_OK) {
        step = "writing the checkpoint";
        src = sqlite3_prepare_v2(db, q, sizeof q - 1, &st, NULL);
    }
    if (src == SQLITE_OK) {
        sqlite3_bind_text(st, 1, s->pipeline, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, s->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, source, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, position, -1, SQLITE_STATIC);
        src = sqlite3_step(st);
        if (src == SQLITE_DONE) {
            step = "committing the checkpoint";
            src = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        }
    }
    if (src != SQLITE_DONE && src != SQLITE_OK) {
        int prim = src & 0xff;
        rc = sl_error_set(err, prim == SQLITE_BUSY || prim == SQLITE_LOCKED ? SL_RETRY : SL_EDB,
                          "sink %s: %s in %s to rewind source %s: %s; the checkpoint is "
                          "unchanged",
                          s->name, step, s->path, source, sqlite3_errmsg(db));
        if (!sqlite3_get_autocommit(db))
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    sqlite3_finalize(st);
    if (db != s->db)
        sqlite3_close(db);
    return rc;
}

static void checkpointer_stop(struct sqlite_sink *s);

static void sqlite_close(void *state)
{
    struct sqlite_sink *s = state;
    if (!s)
        return;
    checkpointer_stop(s);
    sqlite3_finalize(s->begin);
    sqlite3_finalize(s->commit);
    sqlite3_finalize(s->rollback);
    sqlite3_finalize(s->ckpt_put);
    sqlite3_finalize(s->ckpt_get);
    sqlite3_finalize(s->ckpt_info);
    sqlite3_finalize(s->insert);
    sqlite3_finalize(s->group);
    sqlite3_finalize(s->stage_put);
    sqlite3_finalize(s->stage_pos);
    if (s->db && sqlite3_close(s->db) != SQLITE_OK)
        sl_warn(s->name, "closing %s: %s", s->path, sqlite3_errmsg(s->db));
    free_columns(s);
    sl_free(s->cols);
    sl_buf_fini(&s->json);
    sl_buf_fini(&s->sql);
    sl_free(s->path);
    sl_free(s->table);
    sl_free(s->key);
    sl_free(s->id_column);
    sl_json_parser_destroy(s->parser);
    sl_contract_destroy(s->contract);
    sl_free(s->contract_path);
    sl_free(s->part_col);
    sl_free(s->part_val);
    sl_free(s);
}

/* mkdir -p of the directory part of path (a database's directory may not exist yet). */
static sl_rc make_parent_dirs(const char *path, struct sl_error *err)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
        return sl_error_set(err, SL_ELIMIT, "path %s is too long", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return SL_OK;
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(dir, 0777) != 0 && errno != EEXIST)
            return sl_error_sys(err, SL_EIO, errno, "creating directory %s", dir);
        *p = saved;
        if (!saved)
            break;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return sl_error_set(err, SL_EIO, "%s exists and is not a directory", dir);
    return SL_OK;
}

static const char ckpt_get_sql[] = "SELECT position FROM _sluice_checkpoints"
                                   " WHERE pipeline = ?1 AND sink = ?2 AND source = ?3";
/* updated_at is 'YYYY-MM-DDTHH:MM:SS.mmmZ' (UTC): whole seconds plus the milliseconds. */
static const char ckpt_info_sql[] =
    "SELECT records, CAST(strftime('%s', updated_at) AS INTEGER) * 1000"
    " + CAST(substr(updated_at, 21, 3) AS INTEGER) FROM _sluice_checkpoints"
    " WHERE pipeline = ?1 AND sink = ?2 AND source = ?3";

/*
 * Inspection: open an existing database read-only and create nothing. A missing database,
 * or one without _sluice_checkpoints, has nothing committed (the statements stay NULL).
 */
static sl_rc open_inspect(struct sqlite_sink *s, struct sl_error *err)
{
    struct stat st;
    if (stat(s->path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return SL_OK;
        return sl_error_sys(err, SL_EIO, errno, "checking database %s", s->path);
    }
    int src = sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK)
        return sl_error_set(err, SL_EDB, "cannot open database %s read-only: %s", s->path,
                            s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(src));
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, 5000);
    static const char q[] =
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sluice_checkpoints'";
    sqlite3_stmt *chk;
    sl_rc rc = sl__sqlite_prepare(s, q, sizeof q - 1, &chk, err);
    if (rc)
        return rc;
    src = sqlite3_step(chk);
    sqlite3_finalize(chk);
    if (src == SQLITE_DONE)
        return SL_OK;
    if (src != SQLITE_ROW)
        return sl__sqlite_db_error(s, src, err, "looking for _sluice_checkpoints");
    s->has_ckpt = 1;
    if ((rc = sl__sqlite_prepare(s, ckpt_get_sql, sizeof ckpt_get_sql - 1, &s->ckpt_get, err)) ||
        (rc = sl__sqlite_prepare(s, ckpt_info_sql, sizeof ckpt_info_sql - 1, &s->ckpt_info, err)))
        return rc;
    return SL_OK;
}

/* The checkpointer thread: a PASSIVE checkpoint per signal until told to stop. */
static void *checkpointer_main(void *arg)
{
    struct sqlite_sink *s = arg;
    pthread_mutex_lock(&s->ck_mu);
    for (;;) {
        while (!s->ck_pending && !s->ck_stop)
            pthread_cond_wait(&s->ck_cv, &s->ck_mu);
        if (s->ck_stop)
            break;
        s->ck_pending = 0;
        s->ck_busy = 1;
        pthread_mutex_unlock(&s->ck_mu);
        /* BUSY (the writer is rewinding the WAL) is harmless: the next signal retries. */
        int src = sqlite3_wal_checkpoint_v2(s->ck_db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (src != SQLITE_OK && src != SQLITE_BUSY && src != SQLITE_LOCKED)
            sl_warn(s->name, "background checkpoint of %s: %s (retried after the next commits)",
                    s->path, sqlite3_errmsg(s->ck_db));
        pthread_mutex_lock(&s->ck_mu);
        s->ck_busy = 0;
        pthread_cond_broadcast(&s->ck_cv); /* the writer may be waiting to rewind */
    }
    pthread_mutex_unlock(&s->ck_mu);
    return NULL;
}

/*
 * WAL hook of the writer's connection, called after each commit with the WAL's frames:
 * rewinds the WAL itself at SQ_WAL_MAX, else wakes the checkpointer every SQ_WAL_STEP.
 */
static int wal_hook(void *arg, sqlite3 *db, const char *schema, int frames)
{
    struct sqlite_sink *s = arg;
    (void)schema;
    if (frames < s->ck_last)
        s->ck_last = 0; /* the WAL was rewound */
    if (frames >= SQ_WAL_MAX) {
        /* Let a running background checkpoint finish and start no other: then only
         * another process can make the rewind fail. */
        pthread_mutex_lock(&s->ck_mu);
        while (s->ck_busy)
            pthread_cond_wait(&s->ck_cv, &s->ck_mu);
        s->ck_pending = 0;
        pthread_mutex_unlock(&s->ck_mu);
        sqlite3_busy_timeout(db, 0);
        int src = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
        sqlite3_busy_timeout(db, s->busy_ms);
        if (src == SQLITE_OK)
            s->ck_last = 0;
        return SQLITE_OK; /* BUSY: tried again after the next commit */
    }
    if (frames - s->ck_last >= SQ_WAL_STEP) {
        s->ck_last = frames;
        pthread_mutex_lock(&s->ck_mu);
        s->ck_pending = 1;
        pthread_cond_broadcast(&s->ck_cv);
        pthread_mutex_unlock(&s->ck_mu);
    }
    return SQLITE_OK;
}

/* Open the checkpointer's connection, start its thread and hook the writer (exactly_once). */
static sl_rc checkpointer_start(struct sqlite_sink *s, struct sl_error *err)
{
    if (!sqlite3_threadsafe())
        return SL_OK; /* no second thread on this SQLite: keep the automatic checkpoint */
    int src =
        sqlite3_open_v2(s->path, &s->ck_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    /* The connection learns that the database is in WAL mode from its first read. */
    if (src == SQLITE_OK)
        src = sqlite3_exec(s->ck_db, "SELECT 1 FROM sqlite_master LIMIT 1", NULL, NULL, NULL);
    if (src != SQLITE_OK) {
        sl_rc rc = sl_error_set(err, SL_EDB, "opening the checkpoint connection to %s: %s", s->path,
                                s->ck_db ? sqlite3_errmsg(s->ck_db) : sqlite3_errstr(src));
        sqlite3_close(s->ck_db);
        s->ck_db = NULL;
        return rc;
    }
    sqlite3_busy_timeout(s->ck_db, 0);
    if (pthread_mutex_init(&s->ck_mu, NULL) != 0)
        goto fail_mu;
    if (pthread_cond_init(&s->ck_cv, NULL) != 0)
        goto fail_cv;
    if (pthread_create(&s->ck_thread, NULL, checkpointer_main, s) != 0)
        goto fail_thread;
    s->ck_on = 1;
    sqlite3_wal_hook(s->db, wal_hook, s);
    return SL_OK;
fail_thread:
    pthread_cond_destroy(&s->ck_cv);
fail_cv:
    pthread_mutex_destroy(&s->ck_mu);
fail_mu:
    sqlite3_close(s->ck_db);
    s->ck_db = NULL;
    return sl_error_set(err, SL_ENOMEM, "cannot start the checkpoint thread for %s", s->path);
}

/* Stop and join the checkpointer; the writer's close then checkpoints what is left. */
static void checkpointer_stop(struct sqlite_sink *s)
{
    if (!s->ck_on)
        return;
    sqlite3_wal_hook(s->db, NULL, NULL);
    pthread_mutex_lock(&s->ck_mu);
    s->ck_stop = 1;
    pthread_cond_broadcast(&s->ck_cv);
    pthread_mutex_unlock(&s->ck_mu);
    pthread_join(s->ck_thread, NULL);
    pthread_cond_destroy(&s->ck_cv);
    pthread_mutex_destroy(&s->ck_mu);
    sqlite3_close(s->ck_db);
    s->ck_db = NULL;
    s->ck_on = 0;
}

static sl_rc open_db(struct sqlite_sink *s, const char *sync, uint64_t busy_ms,
                     struct sl_error *err)
{
    static const char ckpt_table[] =
        "CREATE TABLE IF NOT EXISTS _sluice_checkpoints(pipeline TEXT NOT NULL, sink TEXT NOT "
        "NULL, source TEXT NOT NULL, position TEXT, records INTEGER NOT NULL DEFAULT 0, "
        "updated_at TEXT, PRIMARY KEY(pipeline, sink, source))";
    static const char ckpt_put[] =
        "INSERT INTO _sluice_checkpoints(pipeline, sink, source, position, records, updated_at)"
        " VALUES(?1, ?2, ?3, ?4, ?5, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
        " ON CONFLICT(pipeline, sink, source) DO UPDATE SET position = excluded.position,"
        " records = records + excluded.records, updated_at = excluded.updated_at";
    sl_rc rc = make_parent_dirs(s->path, err);
    if (rc)
        return rc;
    int src = sqlite3_open_v2(
        s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        return sl_error_set(err, SL_EDB,
                            "cannot open database %s: %s; check the path and that "
                            "its directory is writable",
                            s->path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(src));
    }
    sqlite3_extended_result_codes(s->db, 1);
    s->busy_ms = busy_ms > INT_MAX ? INT_MAX : (int)busy_ms;
    sqlite3_busy_timeout(s->db, s->busy_ms);

    sqlite3_stmt *st;
    static const char wal[] = "PRAGMA journal_mode=WAL";
    if ((rc = sl__sqlite_prepare(s, wal, sizeof wal - 1, &st, err)))
        return rc;
    src = sqlite3_step(st);
    if (src != SQLITE_ROW) {
        rc = sl__sqlite_db_error(s, src, err, "switching to WAL journal mode");
        sqlite3_finalize(st);
        return rc;
    }
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    char mode_buf[16];
    snprintf(mode_buf, sizeof mode_buf, "%s", mode ? mode : "?");
    if (!mode || strcasecmp(mode, "wal") != 0)
        sl_warn(s->name,
                "%s stays in journal mode %s (WAL is not available there); writes "
                "are still transactional but block readers",
                s->path, mode ? mode : "?");
    sqlite3_finalize(st);
    char sync_sql[40];
    snprintf(sync_sql, sizeof sync_sql, "PRAGMA synchronous=%s", sync);
    /*
     * Upserts insert into a unique index in key order, which for hashed record ids (and
     * UUID keys) is random: every row dirties its own index page. A 64 MiB page cache and
     * a 64 MiB WAL before each checkpoint let those pages be rewritten in memory and
     * copied back less often (2.5x faster at a million rows than the defaults).
     */
    static const char cache[] = "PRAGMA cache_size=-65536";
    static const char ckpt[] = "PRAGMA wal_autocheckpoint=16384";
    if ((rc = sl__sqlite_exec_sql(s, sync_sql, strlen(sync_sql), "setting synchronous", err)) ||
        (rc = sl__sqlite_exec_sql(s, cache, sizeof cache - 1, "setting the cache size", err)) ||
        (rc = sl__sqlite_exec_sql(s, ckpt, sizeof ckpt - 1, "setting the checkpoint interval",
                                  err)) ||
        (rc = sl__sqlite_exec_sql(s, ckpt_table, sizeof ckpt_table - 1,
                                  "creating _sluice_checkpoints", err)) ||
        (rc = sl__sqlite_prepare(s, "BEGIN IMMEDIATE", 15, &s->begin, err)) ||
        (rc = sl__sqlite_prepare(s, "COMMIT", 6, &s->commit, err)) ||
        (rc = sl__sqlite_prepare(s, "ROLLBACK", 8, &s->rollback, err)) ||
        (rc = sl__sqlite_prepare(s, ckpt_put, sizeof ckpt_put - 1, &s->ckpt_put, err)) ||
        (rc = sl__sqlite_prepare(s, ckpt_get_sql, sizeof ckpt_get_sql - 1, &s->ckpt_get, err)) ||
        (rc = sl__sqlite_prepare(s, ckpt_info_sql, sizeof ckpt_info_sql - 1, &s->ckpt_info, err)))
        return rc;
    if (strcmp(sync, "OFF") != 0 && strcasecmp(mode_buf, "wal") == 0 &&
        (rc = checkpointer_start(s, err)))
        return rc;
    return sl__sqlite_load_columns(s, err);
}

static sl_rc sqlite_init(const struct sl_plugin_ctx *ctx, void **state, struct sl_error *err)
{
    const struct sl_cfg_node *node = ctx->node;
    const char *path, *table, *key, *id_column, *sync, *contract;
    uint64_t busy_ms;
    sl_rc rc;
    if ((rc = sl_cfg_get_path(ctx->doc, node, "path", NULL, &path, err)) ||
        (rc = sl_cfg_get_str(node, "table", NULL, &table, err)) ||
        (rc = sl_cfg_get_str(node, "key", NULL, &key, err)) ||
        (rc = sl_cfg_get_str(node, "id_column", "_sluice_id", &id_column, err)) ||
        (rc = sl_cfg_get_str(node, "synchronous", "normal", &sync, err)) ||
        (rc = sl_cfg_get_path(ctx->doc, node, "contract", NULL, &contract, err)) ||
        (rc = sl_cfg_get_duration(node, "busy_timeout", 5000, &busy_ms, err)))
        return rc;
    if (!path || !*path)
        return sl_cfg_error(err, node,
                            "sinks.%s: missing required option path (the database "
                            "file)",
                            ctx->name);
    if (!table || !*table)
        return sl_cfg_error(err, node, "sinks.%s: missing required option table", ctx->name);
    const struct sl_cfg_node *tn = sl_cfg_get(node, "table");
    if (strncasecmp(table, "sqlite_", 7) == 0 || strcasecmp(table, "_sluice_checkpoints") == 0 ||
        strcasecmp(table, "_sluice_contracts") == 0 || strcasecmp(table, "_sluice_staging") == 0 ||
        strcasecmp(table, "_sluice_staged") == 0)
        return sl_cfg_error(err, tn, "sinks.%s.table: \"%s\" is reserved; choose another name",
                            ctx->name, table);
    if (key && !*key)
        return sl_cfg_error(err, sl_cfg_get(node, "key"),
                            "sinks.%s.key: is empty; name the field to upsert on or remove key",
                            ctx->name);
    if (!*id_column && !key)
        return sl_cfg_error(err, sl_cfg_get(node, "id_column"),
                            "sinks.%s.id_column: can be \"\" only together with key: without a "
                            "key the record id is what makes a replay overwrite instead of "
                            "duplicate",
                            ctx->name);
    if (key && *id_column && sl__sqlite_name_eq(key, strlen(key), id_column, strlen(id_column)))
        return sl_cfg_error(err, sl_cfg_get(node, "id_column"),
                            "sinks.%s.id_column: \"%s\" is also the key; choose another column "
                            "for the record id or set id_column: \"\"",
                            ctx->name, id_column);
    if (strcmp(sync, "normal") != 0 && strcmp(sync, "full") != 0)
        return sl_cfg_error(err, sl_cfg_get(node, "synchronous"),
                            "sinks.%s.synchronous: \"%s\" is not one of normal, full", ctx->name,
                            sync);

    struct sqlite_sink *s = sl_calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    s->name = ctx->name;
    s->pipeline = ctx->pipeline ? ctx->pipeline : "";
    s->source_names = ctx->source_names;
    s->nsources = ctx->nsources;
    s->id_col = s->key_col = -1;
    sl_buf_init(&s->json, SQ_JSON_MAX);
    sl_buf_init(&s->sql, SQ_SQL_MAX);
    s->cols = sl_calloc(SQ_MAX_COLUMNS, sizeof *s->cols);
    s->path = sl_strdup(path);
    s->table = sl_strdup(table);
    s->key = key ? sl_strdup(key) : NULL;
    s->id_column = *id_column ? sl_strdup(id_column) : NULL;
    s->contract_path = contract && *contract ? sl_strdup(contract) : NULL;
    s->max_depth = ctx->max_depth;
    if (!s->cols || !s->path || !s->table || (key && !s->key) || (*id_column && !s->id_column) ||
        (contract && *contract && !s->contract_path)) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    s->target = s->key ? s->key : s->id_column;
    s->inspect = ctx->inspect;
    /*
     * delivery: at_least_once trades durability for speed where the user did not choose:
     * synchronous=OFF (no fsync at all). Batch and checkpoint still commit together.
     */
    const char *mode = strcmp(sync, "full") == 0 ? "FULL" : "NORMAL";
    if (!ctx->exactly_once && !sl_cfg_get(node, "synchronous"))
        mode = "OFF";
    if ((rc = s->inspect ? open_inspect(s, err) : open_db(s, mode, busy_ms, err)))
        goto fail;
    /* Inspection reads checkpoints only: the contract and staging are left alone. */
    if (s->contract_path && !s->inspect) {
        int closed;
        if ((rc = sl_contract_load(s->contract_path, &s->contract, err))) {
            sl_error_prefix(err, "sinks.%s.contract: ", ctx->name);
            goto fail;
        }
        if ((rc = sl__sqlite_contract_is_closed(s->contract, &closed, err)) ||
            (rc = sl__sqlite_contract_apply(s, err)))
            goto fail;
        s->closed = closed;
    }
    if (!s->inspect && (rc = sl__sqlite_partition_open(s, ctx, err)))
        goto fail;
    if (!s->inspect && (rc = sl__sqlite_staging_open(s, ctx->staged, err)))
        goto fail;
    *state = s;
    return SL_OK;
fail:
    sqlite_close(s);
    return rc;
}

const struct sl_plugin sl_sink_sqlite = {
    .kind = SL_PLUGIN_SINK,
    .name = "sqlite",
    .description = "Upserts records as rows of a SQLite table, committing each batch and its "
                   "checkpoint in one transaction (exactly-once).",
    .options = sqlite_options,
    .init = sqlite_init,
    .process = sqlite_process,
    .committed = sqlite_committed,
    .commit_info = sqlite_commit_info,
    .reset = sqlite_reset,
    .rewind = sqlite_rewind,
    .publish = sl__sqlite_publish,
    .close = sqlite_close,
};
