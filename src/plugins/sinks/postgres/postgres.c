/*
 * postgres.c - the `postgres` sink: upsert records as rows of a PostgreSQL table, exactly
 * once, riding through outages and isolating the records the table refuses.
 *
 * What it does. Each live record (a JSON object) becomes one row: each top-level field a
 * column of the same (exact, case-sensitive) name, plus the record id as 32 hex digits in
 * the id column (`_sluice_id` unless configured otherwise). Rows are upserted on `key`
 * when configured, else on the id column, so replaying a batch rewrites the same rows.
 *
 * One transaction per batch (DESIGN.md section 4):
 *
 *     BEGIN
 *     SELECT position FROM _sluice_checkpoints WHERE (pipeline, sink, source) FOR UPDATE
 *         -- equal to the batch's position: it is committed already; roll back, done
 *     [CREATE TABLE / ALTER TABLE ADD COLUMN / widen bigint -> double precision]
 *     SAVEPOINT; COPY typed rows INTO target                 -- every key new: done
 *     [unique_violation: back to the savepoint; COPY typed rows INTO _sluice_rows (TEMP,
 *      LIKE target); INSERT INTO target SELECT ... ON CONFLICT (key) DO UPDATE ...]
 *     [a record-level error: back to the savepoint; COPY (n, id, JSON text) INTO
 *      _sluice_batch; INSERT ... SELECT DISTINCT ON (key) ... jsonb_populate_record(...)
 *      ON CONFLICT ... by ranges of n under savepoints, bisecting to single records]
 *     keep_rejects (the dead-letter queue holds the refused records before the commit)
 *     INSERT INTO _sluice_checkpoints ... ON CONFLICT DO UPDATE
 *     COMMIT
 *
 * The client converts values to the columns' text form for the typed COPY (the server
 * then parses no JSON; that halves the server's work). The generic path lets the server
 * convert each JSON value (jsonb_populate_record), so a value the column cannot hold is a
 * data exception (class 22) for that record alone, found by the bisection.
 *
 * Errors (sl__pg_classify): connection failures and SQLSTATEs that say "try again"
 * (admin shutdown, serialization failure, deadlock, too many connections, statement or
 * lock timeout, insufficient resources) are transient: roll back, drop a broken
 * connection, return SL_RETRY; the next attempt connects again. Classes 22 and 23 are
 * record-level: bisect. Anything else (a missing privilege, a wrong table definition) is
 * fatal with the server's message.
 *
 * Crash analysis: docs/internals/postgres-sink.md.
 *
 * Threading and ownership: the sink runs on its own thread and owns its connection.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "pg_int.h"
#include "sluice/alloc.h"
#include "sluice/log.h"
#include "sluice/record.h"

#include "plugins/sinks/common/rejects.h"

static const struct sl_option pg_options[] = {
    {.name = "connection",
     .type = SL_OPT_STRING,
     .help = "libpq connection string (\"host=db port=5432 dbname=wh user=loader\" or a "
             "postgresql:// URI); when absent the PG* environment variables apply."},
    {.name = "table",
     .type = SL_OPT_STRING,
     .required = 1,
     .help = "Table to upsert into, optionally schema-qualified (schema.table); created "
             "from the contract or the first batch when missing."},
    {.name = "key",
     .type = SL_OPT_STRING,
     .help = "Field to upsert on (the primary key when the sink creates the table); "
             "default: the record id column."},
    {.name = "id_column",
     .type = SL_OPT_STRING,
     .def = "_sluice_id",
     .help = "Column holding the record id (32 hex digits); \"\" switches it off, allowed "
             "only with key."},
    {.name = "contract",
     .type = SL_OPT_PATH,
     .help = "Data contract whose top-level properties make the table's columns "
             "(docs/sinks.md)."},
    {.name = "partition",
     .type = SL_OPT_MAP,
     .help = "{column: C, value: V}: with run --once, the run replaces every row whose "
             "column C equals V, atomically at the end of the run."},
    {.name = "connect_timeout",
     .type = SL_OPT_DURATION,
     .def = "10s",
     .help = "How long to wait for a connection before the attempt counts as failed."},
    {.name = "statement_timeout",
     .type = SL_OPT_DURATION,
     .def = "0s",
     .help = "Server-side limit per statement (0s: none); a timeout is retried."},
    {0},
};

/* ---- names -------------------------------------------------------------------------- */

static uint32_t name_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int32_t find_col(const struct pg_sink *s, const char *name, size_t n)
{
    uint32_t h = name_hash(name, n);
    for (uint32_t i = h & (PG_SLOTS - 1);; i = (i + 1) & (PG_SLOTS - 1)) {
        uint32_t c = s->slots[i];
        if (c == 0)
            return -1;
        const struct pg_column *col = &s->cols[c - 1];
        if (col->hash == h && col->len == n && memcmp(col->name, name, n) == 0)
            return (int32_t)(c - 1);
    }
}

sl_rc sl__pg_put_ident(struct sl_buf *b, const char *name, size_t n)
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

static sl_rc put_id(struct sl_buf *b, const char *name)
{
    return sl__pg_put_ident(b, name, strlen(name));
}

/* ---- errors --------------------------------------------------------------------------- */

static int state_is(const char *st, const char *code)
{
    return st && strcmp(st, code) == 0;
}

int sl__pg_classify(PGconn *conn, const PGresult *res)
{
    if (!conn || PQstatus(conn) != CONNECTION_OK)
        return PG_TRANSIENT;
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!st)
        return PG_TRANSIENT; /* no server answer: the connection failed on the way */
    if (!strncmp(st, "08", 2) || !strncmp(st, "53", 2) || state_is(st, "57P01") ||
        state_is(st, "57P02") || state_is(st, "57P03") || state_is(st, "40001") ||
        state_is(st, "40P01") || state_is(st, "57014") || state_is(st, "55P03") ||
        state_is(st, "58030"))
        return PG_TRANSIENT;
    if (!strncmp(st, "22", 2) || !strncmp(st, "23", 2))
        return PG_RECORD;
    return PG_FATAL;
}

/* The condition name of a record-level SQLSTATE (PostgreSQL's Appendix A). */
static const char *condition_name(const char *st)
{
    static const char *const names[][2] = {
        {"23514", "check_violation"},
        {"23502", "not_null_violation"},
        {"23505", "unique_violation"},
        {"23503", "foreign_key_violation"},
        {"23P01", "exclusion_violation"},
        {"23001", "restrict_violation"},
        {"22P02", "invalid_text_representation"},
        {"22003", "numeric_value_out_of_range"},
        {"22001", "string_data_right_truncation"},
        {"22007", "invalid_datetime_format"},
        {"22008", "datetime_field_overflow"},
        {"22012", "division_by_zero"},
        {"22P05", "untranslatable_character"},
        {"22021", "character_not_in_repertoire"},
        {"22023", "invalid_parameter_value"},
        {"22004", "null_value_not_allowed"},
        {"22032", "invalid_json_text"},
        {"22030", "duplicate_json_object_key_value"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (state_is(st, names[i][0]))
            return names[i][1];
    if (st && !strncmp(st, "23", 2))
        return "integrity_constraint_violation";
    return "data_exception";
}

static void drop_conn(struct pg_sink *s)
{
    if (s->conn)
        PQfinish(s->conn);
    s->conn = NULL;
    s->temp_ready = s->typed_ready = 0;
}

/* The server's message on one line: the first line of PQerrorMessage or the primary one. */
static void server_message(PGconn *conn, const PGresult *res, char *buf, size_t n)
{
    const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!m || !*m)
        m = res && *PQresultErrorMessage(res) ? PQresultErrorMessage(res)
            : conn                            ? PQerrorMessage(conn)
                                              : "no connection";
    size_t k = 0;
    for (; m[k] && m[k] != '\n' && k + 1 < n; k++)
        buf[k] = m[k];
    buf[k] = '\0';
    if (k == 0)
        snprintf(buf, n, "the connection was lost");
}

sl_rc sl__pg_fail(struct pg_sink *s, PGresult *res, const char *what, struct sl_error *err)
{
    char msg[600];
    int cls = sl__pg_classify(s->conn, res);
    server_message(s->conn, res, msg, sizeof msg);
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char code[16];
    snprintf(code, sizeof code, "%s", st ? st : "none");
    PQclear(res);
    if (s->conn && PQstatus(s->conn) != CONNECTION_OK)
        drop_conn(s);
    if (cls == PG_TRANSIENT)
        return sl_error_set(err, SL_RETRY,
                            "sink %s: %s on table %s failed transiently: %s (SQLSTATE %s); "
                            "nothing of the batch was committed, it will be retried",
                            s->name, what, s->qtable, msg, code);
    return sl_error_set(err, SL_EDB, "sink %s: %s on table %s: %s (SQLSTATE %s)", s->name, what,
                        s->qtable, msg, code);
}

static int res_ok(const PGresult *res)
{
    ExecStatusType t = PQresultStatus(res);
    return t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK;
}

sl_rc sl__pg_exec(struct pg_sink *s, const char *sql, const char *what, struct sl_error *err)
{
    if (!s->conn)
        return sl_error_set(err, SL_RETRY, "sink %s: %s: not connected", s->name, what);
    PGresult *res = PQexec(s->conn, sql);
    if (res && res_ok(res)) {
        PQclear(res);
        return SL_OK;
    }
    return sl__pg_fail(s, res, what, err);
}

sl_rc sl__pg_params(struct pg_sink *s, const char *sql, int n, const char *const *vals,
                    PGresult **out, const char *what, struct sl_error *err)
{
    if (out)
        *out = NULL;
    if (!s->conn)
        return sl_error_set(err, SL_RETRY, "sink %s: %s: not connected", s->name, what);
    PGresult *res = PQexecParams(s->conn, sql, n, NULL, vals, NULL, NULL, 0);
    if (res && res_ok(res)) {
        if (out)
            *out = res;
        else
            PQclear(res);
        return SL_OK;
    }
    return sl__pg_fail(s, res, what, err);
}

sl_rc sl__pg_abort(struct pg_sink *s, sl_rc rc)
{
    if (s->conn && PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
        PGresult *res = PQexec(s->conn, "ROLLBACK");
        if (!res || !res_ok(res))
            drop_conn(s); /* cannot tell what state it is in: start over */
        PQclear(res);
    }
    if (s->conn && PQstatus(s->conn) != CONNECTION_OK)
        drop_conn(s);
    s->schema_stale = 1;
    s->temp_ready = s->typed_ready = 0; /* made inside the transaction: undone with it */
    return rc;
}

/* ---- connection ------------------------------------------------------------------------- */

sl_rc sl__pg_connect(struct pg_sink *s, struct sl_error *err)
{
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK)
        return SL_OK;
    drop_conn(s);
    char ct[32];
    snprintf(ct, sizeof ct, "%" PRIu64, s->connect_ms ? (s->connect_ms + 999) / 1000 : 0);
    const char *kw[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
    const char *val[] = {ct, "sluice", s->conninfo, NULL};
    if (!s->conninfo)
        kw[2] = NULL;
    PGconn *c = PQconnectdbParams(kw, val, 1);
    if (!c)
        return sl_error_set(err, SL_ENOMEM, "sink %s: out of memory connecting", s->name);
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[600];
        server_message(c, NULL, msg, sizeof msg);
        PQfinish(c);
        return sl_error_set(err, SL_RETRY,
                            "sink %s: cannot connect to PostgreSQL (%s): %s; will retry", s->name,
                            s->conninfo ? "connection option" : "PG* environment", msg);
    }
    s->conn = c;
    char set[160];
    snprintf(set, sizeof set,
             "SET client_min_messages = warning; SET statement_timeout = %" PRIu64 "%s",
             s->statement_ms, s->exactly_once ? "" : "; SET synchronous_commit = off");
    sl_rc rc = sl__pg_exec(s, set, "configuring the session", err);
    if (rc)
        drop_conn(s); /* the next attempt connects and configures again */
    return rc;
}

/* The TEMP staging table of this connection (invariant 2). */
static sl_rc ensure_temp(struct pg_sink *s, struct sl_error *err)
{
    if (s->temp_ready)
        return SL_OK;
    sl_rc rc = sl__pg_exec(s,
                           "CREATE TEMP TABLE IF NOT EXISTS _sluice_batch"
                           " (n integer NOT NULL, id text NOT NULL, doc text NOT NULL)"
                           " ON COMMIT DELETE ROWS",
                           "creating the staging table", err);
    if (rc == SL_OK)
        s->temp_ready = 1;
    return rc;
}

/* ---- schema --------------------------------------------------------------------------- */

static void free_columns(struct pg_sink *s)
{
    for (uint32_t i = 0; i < s->ncols; i++) {
        sl_free(s->cols[i].name);
        sl_free(s->cols[i].type);
    }
    s->ncols = 0;
    memset(s->slots, 0, sizeof s->slots);
    s->id_col = s->key_col = s->part_col_i = -1;
    s->target_ok = 0;
    s->typed_ready = 0;
}

static uint8_t ctype_of(const char *t)
{
    if (!strcmp(t, "bigint") || !strcmp(t, "integer") || !strcmp(t, "smallint"))
        return PG_T_BIGINT;
    if (!strcmp(t, "double precision") || !strcmp(t, "real"))
        return PG_T_DOUBLE;
    if (!strncmp(t, "numeric", 7))
        return PG_T_NUMERIC;
    if (!strcmp(t, "text") || !strncmp(t, "character", 9))
        return PG_T_TEXT;
    if (!strcmp(t, "boolean"))
        return PG_T_BOOL;
    if (!strcmp(t, "jsonb") || !strcmp(t, "json"))
        return PG_T_JSONB;
    return PG_T_OTHER;
}

sl_rc sl__pg_load_columns(struct pg_sink *s, struct sl_error *err)
{
    static const char q[] =
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod),"
        " (a.attidentity <> '' OR a.attgenerated <> '')"
        " FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0"
        " AND NOT a.attisdropped ORDER BY a.attnum";
    free_columns(s);
    PGresult *res;
    const char *v[] = {s->qtable};
    sl_rc rc = sl__pg_params(s, q, 1, v, &res, "reading the table's columns", err);
    if (rc)
        return rc;
    int n = PQntuples(res);
    if (n > PG_MAX_COLUMNS)
        n = PG_MAX_COLUMNS;
    for (int i = 0; i < n; i++) {
        struct pg_column *c = &s->cols[s->ncols];
        const char *name = PQgetvalue(res, i, 0);
        c->name = sl_strdup(name);
        c->type = sl_strdup(PQgetvalue(res, i, 1));
        if (!c->name || !c->type) {
            sl_free(c->name);
            sl_free(c->type);
            PQclear(res);
            free_columns(s);
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        }
        c->len = (uint32_t)strlen(name);
        c->hash = name_hash(name, c->len);
        c->ctype = ctype_of(c->type);
        c->generated = PQgetvalue(res, i, 2)[0] == 't';
        uint32_t k = c->hash & (PG_SLOTS - 1);
        while (s->slots[k])
            k = (k + 1) & (PG_SLOTS - 1);
        s->slots[k] = ++s->ncols;
    }
    PQclear(res);
    if (s->id_column)
        s->id_col = find_col(s, s->id_column, strlen(s->id_column));
    if (s->key)
        s->key_col = find_col(s, s->key, strlen(s->key));
    if (s->part_col)
        s->part_col_i = find_col(s, s->part_col, strlen(s->part_col));
    return SL_OK;
}

/* The conflict column must have a unique index for ON CONFLICT; create one when it has none. */
static sl_rc ensure_target_unique(struct pg_sink *s, struct sl_error *err)
{
    static const char q[] =
        "SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
        " AND a.attnum = i.indkey[0] WHERE i.indrelid = to_regclass($1) AND i.indisunique"
        " AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indnkeyatts = 1 AND a.attname = $2";
    if (s->target_ok)
        return SL_OK;
    int32_t tc = s->key ? s->key_col : s->id_col;
    if (tc < 0)
        return SL_OK;
    PGresult *res;
    const char *v[] = {s->qtable, s->cols[tc].name};
    sl_rc rc =
        sl__pg_params(s, q, 2, v, &res, "looking for the conflict column's unique index", err);
    if (rc)
        return rc;
    int have = PQntuples(res) > 0;
    PQclear(res);
    if (!have) {
        struct sl_buf *q2 = &s->sql;
        char idx[200];
        snprintf(idx, sizeof idx, "%.60s_%.60s_sluice_unique", s->table, s->cols[tc].name);
        sl_buf_clear(q2);
        if ((rc = sl_buf_puts(q2, "CREATE UNIQUE INDEX IF NOT EXISTS ")) ||
            (rc = put_id(q2, idx)) || (rc = sl_buf_puts(q2, " ON ")) ||
            (rc = sl_buf_puts(q2, s->qtable)) || (rc = sl_buf_putc(q2, '(')) ||
            (rc = put_id(q2, s->cols[tc].name)) || (rc = sl_buf_putc(q2, ')')) ||
            (rc = sl_buf_cstr(q2)))
            return sl_error_set(err, rc, "building SQL: %s", sl_strerror(rc));
        rc = sl__pg_exec(s, q2->data, "creating a unique index on the conflict column", err);
        if (rc == SL_EDB)
            sl_error_prefix(err,
                            "upserts need column %s of table %s to be unique; remove its "
                            "duplicate values or choose another key: ",
                            s->cols[tc].name, s->qtable);
        if (rc)
            return rc;
        sl_info(s->name, "created unique index %s on %s(%s) for upserts", idx, s->qtable,
                s->cols[tc].name);
    }
    s->target_ok = 1;
    return SL_OK;
}

static const char *const ctype_sql[] = {
    "text", "bigint", "double precision", "numeric", "text", "boolean", "jsonb", "text"};

/* The column type a JSON value asks for. */
static uint8_t value_ctype(const struct sl_value *v)
{
    int64_t i;
    switch (v->type) {
    case SL_V_NULL:
        return PG_T_UNSET;
    case SL_V_BOOL:
        return PG_T_BOOL;
    case SL_V_NUMBER:
        if (v->u.num.text) {
            if (sl_json_num_to_i64(v->u.num.text, v->len, &i))
                return PG_T_BIGINT;
            if (memchr(v->u.num.text, '.', v->len) || memchr(v->u.num.text, 'e', v->len) ||
                memchr(v->u.num.text, 'E', v->len))
                return PG_T_DOUBLE;
            return PG_T_NUMERIC;
        }
        return v->is_int ? PG_T_BIGINT : PG_T_DOUBLE;
    case SL_V_STRING:
        return PG_T_TEXT;
    default:
        return PG_T_JSONB;
    }
}

/* A column a batch needs, or an existing bigint column a value needs widened. */
struct pg_newcol {
    const char *name;
    uint32_t len;
    uint8_t type;
    int32_t widen; /* >= 0: index of an existing column to widen to type */
};

struct scan_ctx {
    struct pg_sink *s;
    struct pg_newcol *nc;
    uint32_t n;
};

static int scan_field(void *ctx, const char *key, size_t klen, const struct sl_value *v)
{
    struct scan_ctx *c = ctx;
    struct pg_sink *s = c->s;
    if (memchr(key, '\0', klen) || klen == 0 || klen > 63)
        return 0; /* no such column can exist: the value is not written */
    int32_t col = find_col(s, key, klen);
    uint8_t t = value_ctype(v);
    for (uint32_t i = 0; i < c->n; i++) {
        if (c->nc[i].len == klen && memcmp(c->nc[i].name, key, klen) == 0) {
            if (c->nc[i].type == PG_T_UNSET)
                c->nc[i].type = t;
            else if (c->nc[i].type == PG_T_BIGINT && (t == PG_T_DOUBLE || t == PG_T_NUMERIC))
                c->nc[i].type = t;
            return 0;
        }
    }
    if (col >= 0) {
        /* Widening: a bigint column seeing a fraction or a larger integer. */
        if (s->cols[col].ctype == PG_T_BIGINT && !strcmp(s->cols[col].type, "bigint") &&
            (t == PG_T_DOUBLE || t == PG_T_NUMERIC) && c->n < PG_MAX_COLUMNS) {
            c->nc[c->n++] = (struct pg_newcol){key, (uint32_t)klen, t, col};
        }
        return 0;
    }
    if (s->closed)
        return 0; /* the contract fixed the columns: other fields are not written */
    if (s->ncols + c->n + 2 >= PG_MAX_COLUMNS)
        return 0;
    c->nc[c->n++] = (struct pg_newcol){key, (uint32_t)klen, t, -1};
    return 0;
}

/* Create the table or add/widen the columns the records idx[0..n) need (in the transaction). */
static sl_rc extend_schema(struct pg_sink *s, struct sl_batch *b, const uint32_t *idx, uint32_t n,
                           struct sl_error *err)
{
    struct scan_ctx c = {.s = s};
    struct sl_buf *q = &s->sql;
    sl_rc rc;
    c.nc = sl_arena_alloc(&b->arena, PG_MAX_COLUMNS * sizeof *c.nc);
    if (!c.nc)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (uint32_t k = 0; k < n; k++)
        sl_record_foreach(&b->recs[idx[k]], &b->arena, scan_field, &c);
    int need_id = s->id_column && s->id_col < 0;
    int need_part = s->part_col && s->part_col_i < 0;
    if (c.n == 0 && !need_id && !need_part && s->ncols > 0)
        return ensure_target_unique(s, err);
    if (s->ncols == 0) {
        sl_buf_clear(q);
        if ((rc = sl_buf_puts(q, "CREATE TABLE IF NOT EXISTS ")) ||
            (rc = sl_buf_puts(q, s->qtable)) || (rc = sl_buf_puts(q, " (")))
            goto nomem;
        int first = 1;
        if (s->id_column) {
            if ((rc = put_id(q, s->id_column)) ||
                (rc = sl_buf_puts(q, s->key ? " text" : " text PRIMARY KEY")))
                goto nomem;
            first = 0;
        }
        for (uint32_t i = 0; i < c.n; i++) {
            int is_key = s->key && strlen(s->key) == c.nc[i].len &&
                         !memcmp(s->key, c.nc[i].name, c.nc[i].len);
            if (s->id_column && strlen(s->id_column) == c.nc[i].len &&
                !memcmp(s->id_column, c.nc[i].name, c.nc[i].len))
                continue;
            if ((rc = sl_buf_puts(q, first ? "" : ", ")) ||
                (rc = sl__pg_put_ident(q, c.nc[i].name, c.nc[i].len)) ||
                (rc = sl_buf_printf(q, " %s%s", ctype_sql[c.nc[i].type],
                                    is_key ? " PRIMARY KEY" : "")))
                goto nomem;
            first = 0;
        }
        if (need_part && !first) {
            int seen = 0;
            for (uint32_t i = 0; i < c.n; i++)
                seen |= strlen(s->part_col) == c.nc[i].len &&
                        !memcmp(s->part_col, c.nc[i].name, c.nc[i].len);
            if (!seen && ((rc = sl_buf_puts(q, ", ")) || (rc = put_id(q, s->part_col)) ||
                          (rc = sl_buf_puts(q, " text"))))
                goto nomem;
        }
        if (first)
            return SL_OK; /* nothing to make a table from */
        if ((rc = sl_buf_putc(q, ')')) || (rc = sl_buf_cstr(q)))
            goto nomem;
        if ((rc = sl__pg_exec(s, q->data, "creating the table", err)))
            return rc;
        sl_info(s->name, "created table %s", s->qtable);
    } else {
        for (uint32_t i = 0; i < c.n + (uint32_t)need_id + (uint32_t)need_part; i++) {
            const char *name;
            uint32_t len;
            const char *type;
            int32_t widen = -1;
            if (i < c.n) {
                name = c.nc[i].name;
                len = c.nc[i].len;
                type = ctype_sql[c.nc[i].type];
                widen = c.nc[i].widen;
            } else if (i == c.n && need_id) {
                name = s->id_column;
                len = (uint32_t)strlen(name);
                type = "text";
            } else {
                name = s->part_col;
                len = (uint32_t)strlen(name);
                type = "text";
            }
            sl_buf_clear(q);
            if ((rc = sl_buf_puts(q, "ALTER TABLE ")) || (rc = sl_buf_puts(q, s->qtable)) ||
                (rc = sl_buf_puts(q,
                                  widen >= 0 ? " ALTER COLUMN " : " ADD COLUMN IF NOT EXISTS ")) ||
                (rc = sl__pg_put_ident(q, name, len)) ||
                (rc = sl_buf_printf(q, "%s %s", widen >= 0 ? " TYPE" : "", type)) ||
                (rc = sl_buf_cstr(q)))
                goto nomem;
            if ((rc = sl__pg_exec(s, q->data, widen >= 0 ? "widening a column" : "adding a column",
                                  err)))
                return rc;
            if (widen >= 0)
                sl_info(s->name, "widened column %.*s of %s to %s", (int)len, name, s->qtable,
                        type);
            else
                sl_info(s->name, "added column %.*s %s to %s", (int)len, name, type, s->qtable);
        }
    }
    if ((rc = sl__pg_load_columns(s, err)))
        return rc;
    return ensure_target_unique(s, err);
nomem:
    return sl_error_set(err, rc, "building SQL: %s", sl_strerror(rc));
}

/* ---- records -------------------------------------------------------------------------- */

static const char *root_type_name(const struct sl_record *r)
{
    if (r->tape.ntok == 0)
        return "empty";
    switch (r->tape.tok[0].type) {
    case SL_J_ARRAY:
        return "array";
    case SL_J_STRING:
        return "string";
    case SL_J_NUMBER:
        return "number";
    case SL_J_TRUE:
    case SL_J_FALSE:
        return "boolean";
    case SL_J_NULL:
        return "null";
    default:
        return "object";
    }
}

static void reject(struct pg_sink *s, struct sl_batch *b, struct sl_record *r, const char *rule,
                   const char *field, const char *msg)
{
    char path[80];
    if (field)
        snprintf(path, sizeof path, "$.%.64s", field);
    else
        snprintf(path, sizeof path, "$");
    struct sl_reject_info why = {
        .error_class = "sink", .rule = rule, .path = sl_arena_strdup(&b->arena, path)};
    if (!why.path)
        why.path = "$";
    sl_record_reject_why(b, r, s->name, &why, "%s; not written", msg);
}

/* 1 when v, written as text, equals want. */
static int value_equals(const struct sl_value *v, const char *want)
{
    size_t n = strlen(want);
    if (v->type == SL_V_STRING)
        return v->len == n && (n == 0 || memcmp(v->u.str, want, n) == 0);
    if (v->type == SL_V_NUMBER && v->u.num.text)
        return v->len == n && memcmp(v->u.num.text, want, n) == 0;
    if (v->type == SL_V_BOOL)
        return strcmp(v->u.b ? "true" : "false", want) == 0;
    return 0;
}

sl_rc sl__pg_prepare_batch(struct pg_sink *s, struct sl_batch *b, struct sl_worker *w,
                           uint32_t **idx_out, uint32_t *n_out, struct sl_error *err)
{
    uint32_t *idx = sl_arena_alloc(&b->arena, (b->n ? b->n : 1) * sizeof *idx);
    uint32_t n = 0;
    if (!idx)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < b->n; i++) {
        struct sl_record *r = &b->recs[i];
        if (r->flags & (SL_REC_DROPPED | SL_REC_BAD))
            continue;
        if (!(r->flags & SL_REC_PARSED)) {
            struct sl_json_error je = {0};
            if (!w || !w->parser ||
                sl_record_parse(r, w->parser, w->max_depth, &b->arena, &je) != SL_OK) {
                struct sl_reject_info why = {
                    .error_class = "invalid_json", .rule = "syntax", .path = "$"};
                sl_record_reject_why(b, r, s->name, &why, "record is not valid JSON: %s",
                                     w && w->parser ? je.msg : "it reached the sink unparsed");
                continue;
            }
        }
        if (r->tape.ntok == 0 || r->tape.tok[0].type != SL_J_OBJECT) {
            struct sl_reject_info why = {.error_class = "not_object",
                                         .rule = "type",
                                         .path = "$",
                                         .expected = "object",
                                         .actual = root_type_name(r)};
            sl_record_reject_why(b, r, s->name, &why,
                                 "record is a JSON %s, not an object; the postgres sink writes "
                                 "objects as rows",
                                 root_type_name(r));
            continue;
        }
        struct sl_value v;
        if (s->key) {
            int has = sl_record_get_key(r, s->key, strlen(s->key), &b->arena, &v);
            if (!has || v.type == SL_V_NULL) {
                char msg[200];
                if (has)
                    snprintf(msg, sizeof msg, "key field \"%.100s\" is null", s->key);
                else
                    snprintf(msg, sizeof msg, "record has no key field \"%.100s\"", s->key);
                reject(s, b, r, has ? "key_null" : "key_missing", s->key, msg);
                continue;
            }
        }
        if (s->staged && s->part_col &&
            sl_record_get_key(r, s->part_col, strlen(s->part_col), &b->arena, &v) &&
            v.type != SL_V_NULL && !value_equals(&v, s->part_val)) {
            char msg[300];
            snprintf(msg, sizeof msg,
                     "field \"%.100s\" differs from the partition value \"%.100s\" this run "
                     "replaces",
                     s->part_col, s->part_val);
            reject(s, b, r, "partition_mismatch", s->part_col, msg);
            continue;
        }
        idx[n++] = i;
    }
    *idx_out = idx;
    *n_out = n;
    if (n == 0)
        return SL_OK;
    return extend_schema(s, b, idx, n, err);
}

/* Append src[0..n) escaped for COPY's text format. */
static sl_rc copy_escape(struct sl_buf *o, const char *src, size_t n)
{
    sl_rc rc = sl_buf_reserve(o, n + n / 8 + 16);
    if (rc)
        return rc;
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        char c = src[i], e;
        switch (c) {
        case '\\':
            e = '\\';
            break;
        case '\n':
            e = 'n';
            break;
        case '\r':
            e = 'r';
            break;
        case '\t':
            e = 't';
            break;
        default:
            continue;
        }
        if ((rc = sl_buf_append(o, src + start, i - start)) || (rc = sl_buf_putc(o, '\\')) ||
            (rc = sl_buf_putc(o, e)))
            return rc;
        start = i + 1;
    }
    return sl_buf_append(o, src + start, n - start);
}

static sl_rc copy_send(struct pg_sink *s, struct sl_error *err)
{
    if (s->copy.len == 0)
        return SL_OK;
    if (PQputCopyData(s->conn, s->copy.data, (int)s->copy.len) != 1)
        return sl__pg_fail(s, NULL, "sending COPY data", err);
    sl_buf_clear(&s->copy);
    return SL_OK;
}

/*
 * Send what is buffered and end the COPY; after a client-side error rc (building the
 * data), abort it instead. The COPY's own result is for the caller to read.
 */
static sl_rc copy_end(struct pg_sink *s, sl_rc rc, struct sl_error *err)
{
    if (rc) {
        PQputCopyEnd(s->conn, "client error");
        PQclear(PQgetResult(s->conn));
        return sl_error_set(err, rc, "sink %s: building COPY data: %s", s->name, sl_strerror(rc));
    }
    if ((rc = copy_send(s, err)))
        return rc;
    /* PQputCopyEnd returns 1 even when the COPY failed: the result says. */
    if (PQputCopyEnd(s->conn, NULL) != 1)
        return sl__pg_fail(s, NULL, "ending COPY", err);
    return SL_OK;
}

sl_rc sl__pg_copy_batch(struct pg_sink *s, struct sl_batch *b, const uint32_t *idx, uint32_t n,
                        struct sl_error *err)
{
    sl_rc rc;
    if ((rc = ensure_temp(s, err)))
        return rc;
    PGresult *res = PQexec(s->conn, "COPY _sluice_batch (n, id, doc) FROM STDIN");
    if (!res || PQresultStatus(res) != PGRES_COPY_IN)
        return sl__pg_fail(s, res, "starting COPY", err);
    PQclear(res);
    sl_buf_clear(&s->copy);
    rc = SL_OK;
    for (uint32_t k = 0; k < n && rc == SL_OK; k++) {
        struct sl_record *r = &b->recs[idx[k]];
        char id[33];
        sl_record_id_format(r->id, id);
        if ((rc = sl_buf_printf(&s->copy, "%u\t%s\t", k, id)))
            break;
        if (r->edits) {
            size_t at = s->copy.len;
            if ((rc = sl_record_write(r, &s->copy)))
                break;
            /* escape in place: rewrite what was appended */
            size_t m = s->copy.len - at;
            char *tmp = sl_arena_alloc(&b->arena, m ? m : 1);
            if (!tmp) {
                rc = SL_ENOMEM;
                break;
            }
            memcpy(tmp, s->copy.data + at, m);
            s->copy.len = at;
            rc = copy_escape(&s->copy, tmp, m);
        } else {
            rc = copy_escape(&s->copy, r->text, r->text_len);
        }
        if (rc == SL_OK)
            rc = sl_buf_putc(&s->copy, '\n');
        if (rc == SL_OK && s->copy.len >= PG_COPY_CHUNK && (rc = copy_send(s, err)))
            return rc;
    }
    if ((rc = copy_end(s, rc, err)))
        return rc;
    res = PQgetResult(s->conn);
    rc = SL_OK;
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = sl__pg_fail(s, res, "COPY into the staging table", err);
    else
        PQclear(res);
    while (s->conn && (res = PQgetResult(s->conn)))
        PQclear(res);
    return rc;
}

sl_rc sl__pg_insert_sql(struct pg_sink *s, struct sl_buf *q, const char *from, const char *where,
                        const char *order_col)
{
    sl_rc rc;
    int32_t tc = s->key ? s->key_col : s->id_col;
    sl_buf_clear(q);
    if ((rc = sl_buf_puts(q, "INSERT INTO ")) || (rc = sl_buf_puts(q, s->qtable)) ||
        (rc = sl_buf_puts(q, " AS t (")))
        return rc;
    int first = 1;
    for (uint32_t i = 0; i < s->ncols; i++) {
        if (s->cols[i].generated)
            continue;
        if ((rc = sl_buf_puts(q, first ? "" : ",")) || (rc = put_id(q, s->cols[i].name)))
            return rc;
        first = 0;
    }
    if ((rc = sl_buf_puts(q, ") SELECT ")))
        return rc;
    if (!order_col) {
        /* The typed staging table has the target's columns: no conversion, no ordering
         * (the batch was de-duplicated by the client). */
        first = 1;
        for (uint32_t i = 0; i < s->ncols; i++) {
            if (s->cols[i].generated)
                continue;
            if ((rc = sl_buf_puts(q, first ? "" : ",")) || (rc = put_id(q, s->cols[i].name)))
                return rc;
            first = 0;
        }
        if ((rc = sl_buf_printf(q, " FROM %s WHERE %s", from, where)))
            return rc;
        goto conflict;
    }
    if (s->key && (rc = sl_buf_puts(q, "DISTINCT ON (p.")) == SL_OK)
        if ((rc = put_id(q, s->cols[tc].name)) || (rc = sl_buf_puts(q, ") ")))
            return rc;
    if (rc)
        return rc;
    first = 1;
    for (uint32_t i = 0; i < s->ncols; i++) {
        if (s->cols[i].generated)
            continue;
        if ((rc = sl_buf_puts(q, first ? "" : ",")))
            return rc;
        first = 0;
        if ((int32_t)i == s->id_col) {
            rc = sl_buf_puts(q, "s.id");
        } else if ((int32_t)i == s->part_col_i && s->staged && s->part_val) {
            char *lit = PQescapeLiteral(s->conn, s->part_val, strlen(s->part_val));
            if (!lit)
                return SL_ENOMEM;
            if ((rc = sl_buf_puts(q, "COALESCE(p.")) == SL_OK &&
                (rc = put_id(q, s->cols[i].name)) == SL_OK)
                rc = sl_buf_printf(q, ", CAST(%s AS %s))", lit, s->cols[i].type);
            PQfreemem(lit);
        } else if ((rc = sl_buf_puts(q, "p.")) == SL_OK) {
            rc = put_id(q, s->cols[i].name);
        }
        if (rc)
            return rc;
    }
    if ((rc = sl_buf_printf(q,
                            " FROM %s s CROSS JOIN LATERAL jsonb_populate_record(NULL::%s,"
                            " s.doc::jsonb) p WHERE %s",
                            from, s->qtable, where)))
        return rc;
    if (s->key) {
        if ((rc = sl_buf_puts(q, " ORDER BY p.")) || (rc = put_id(q, s->cols[tc].name)) ||
            (rc = sl_buf_printf(q, ", s.%s DESC", order_col)))
            return rc;
    }
conflict:
    if ((rc = sl_buf_puts(q, " ON CONFLICT (")) || (rc = put_id(q, s->cols[tc].name)) ||
        (rc = sl_buf_puts(q, ") DO ")))
        return rc;
    first = 1;
    for (uint32_t i = 0; i < s->ncols; i++) {
        if ((int32_t)i == tc || s->cols[i].generated)
            continue;
        if ((rc = sl_buf_puts(q, first ? "UPDATE SET " : ",")) ||
            (rc = put_id(q, s->cols[i].name)) || (rc = sl_buf_puts(q, "=EXCLUDED.")) ||
            (rc = put_id(q, s->cols[i].name)))
            return rc;
        first = 0;
    }
    if (first && (rc = sl_buf_puts(q, "NOTHING")))
        return rc;
    return sl_buf_cstr(q);
}

/* ---- the fast path: typed COPY ------------------------------------------------------------ */

/*
 * Most batches hold no record the table refuses. For them the client converts each record
 * to the target's columns itself and COPYs typed rows into a TEMP table shaped like the
 * target (_sluice_rows, LIKE target), then upserts from it: the server then parses no JSON
 * (the generic path's jsonb_populate_record costs about half the throughput). When the
 * COPY or the upsert fails for a record-level reason, everything since the savepoint is
 * rolled back and the batch takes the generic path, which bisects.
 */
static sl_rc ensure_typed(struct pg_sink *s, struct sl_error *err)
{
    if (s->typed_ready)
        return SL_OK;
    struct sl_buf *q = &s->sql;
    sl_rc rc;
    sl_buf_clear(q);
    if ((rc = sl_buf_puts(q, "DROP TABLE IF EXISTS pg_temp._sluice_rows; CREATE TEMP TABLE "
                             "_sluice_rows (LIKE ")) ||
        (rc = sl_buf_puts(q, s->qtable)) || (rc = sl_buf_puts(q, ") ON COMMIT DELETE ROWS")) ||
        (rc = sl_buf_cstr(q)))
        return sl_error_set(err, rc, "building SQL: %s", sl_strerror(rc));
    if ((rc = sl__pg_exec(s, q->data, "creating the typed staging table", err)))
        return rc;
    s->typed_ready = 1;
    return SL_OK;
}

struct typed_ctx {
    struct pg_sink *s;
};

static int typed_field(void *ctx, const char *key, size_t klen, const struct sl_value *v)
{
    struct pg_sink *s = ((struct typed_ctx *)ctx)->s;
    int32_t c = find_col(s, key, klen);
    if (c >= 0) {
        s->slot[c] = *v;
        s->slot_gen[c] = s->gen;
    }
    return 0;
}

/* Append one value in COPY text format. */
static sl_rc put_typed(struct pg_sink *s, const struct sl_value *v)
{
    struct sl_buf *o = &s->copy;
    sl_rc rc;
    char num[40];
    switch (v->type) {
    case SL_V_NULL:
        return sl_buf_puts(o, "\\N");
    case SL_V_BOOL:
        return sl_buf_puts(o, v->u.b ? "true" : "false");
    case SL_V_NUMBER:
        if (v->u.num.text)
            return sl_buf_append(o, v->u.num.text, v->len);
        snprintf(num, sizeof num, v->is_int ? "%.0f" : "%.17g", v->u.num.d);
        return sl_buf_puts(o, num);
    case SL_V_STRING:
        return copy_escape(o, v->len ? v->u.str : "", v->len);
    default:
        sl_buf_clear(&s->val);
        if ((rc = sl_value_write(v, &s->val)))
            return rc;
        return copy_escape(o, s->val.data, s->val.len);
    }
}

/* The key of r as text, for de-duplication within the batch (NULL: none). */
static const char *key_text(struct pg_sink *s, struct sl_batch *b, struct sl_record *r, size_t *n)
{
    struct sl_value v;
    if (!sl_record_get_key(r, s->key, strlen(s->key), &b->arena, &v))
        return NULL;
    if (v.type == SL_V_STRING) {
        *n = v.len;
        return v.len ? v.u.str : "";
    }
    if (v.type == SL_V_NUMBER && v.u.num.text) {
        *n = v.len;
        return v.u.num.text;
    }
    return NULL; /* other key types: the generic path orders them */
}

/*
 * Mark in skip[] the records whose key a later record of the batch repeats (the last one
 * wins, as DISTINCT ON does on the generic path). 0, or 1 when a key could not be read
 * as text (then the batch takes the generic path).
 */
static int dedupe(struct pg_sink *s, struct sl_batch *b, const uint32_t *idx, uint32_t n,
                  uint8_t *skip)
{
    uint32_t cap = 16;
    while (cap < 2 * n)
        cap <<= 1;
    uint32_t *tab = sl_arena_alloc(&b->arena, cap * sizeof *tab);
    const char **kp = sl_arena_alloc(&b->arena, (n ? n : 1) * sizeof *kp);
    size_t *kl = sl_arena_alloc(&b->arena, (n ? n : 1) * sizeof *kl);
    if (!tab || !kp || !kl)
        return 1;
    memset(tab, 0, cap * sizeof *tab);
    for (uint32_t k = n; k-- > 0;) {
        kp[k] = key_text(s, b, &b->recs[idx[k]], &kl[k]);
        if (!kp[k])
            return 1;
        uint32_t h = name_hash(kp[k], kl[k]) & (cap - 1);
        for (;; h = (h + 1) & (cap - 1)) {
            uint32_t t = tab[h];
            if (!t) {
                tab[h] = k + 1;
                break;
            }
            if (kl[t - 1] == kl[k] && memcmp(kp[t - 1], kp[k], kl[k]) == 0) {
                skip[k] = 1;
                break;
            }
        }
    }
    return 0;
}

/*
 * The fast path. SL_OK with *done = 1 when the batch is written; SL_OK with *done = 0 when
 * it must take the generic path (rolled back to the savepoint); other codes as sl__pg_fail.
 */
static sl_rc fast_write(struct pg_sink *s, struct sl_batch *b, const uint32_t *idx, uint32_t n,
                        int64_t *written, int *done, struct sl_error *err)
{
    sl_rc rc;
    *done = 0;
    /*
     * New keys only (the common case of an event stream): the upsert is a plain insert,
     * so the typed rows are COPYed straight into the target, with no staging table. A key
     * that exists already fails the COPY with unique_violation; the batch then goes
     * through _sluice_rows and the upsert, and so do the next PG_DIRECT_PAUSE batches
     * (a stream that updates rows does not pay for a failed COPY each batch).
     */
    int direct = s->direct_wait == 0;
    if (s->direct_wait)
        s->direct_wait--;
    uint8_t *skip = sl_arena_alloc(&b->arena, n ? n : 1);
    if (!skip)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    memset(skip, 0, n ? n : 1);
    if (s->key && dedupe(s, b, idx, n, skip))
        return SL_OK;
again:
    if ((rc = sl__pg_exec(s, "SAVEPOINT sl_fast", "setting a savepoint", err)) ||
        (!direct && (rc = ensure_typed(s, err))))
        return rc;
    struct sl_buf *q = &s->sql;
    sl_buf_clear(q);
    if ((rc = sl_buf_puts(q, "COPY ")) ||
        (rc = sl_buf_puts(q, direct ? s->qtable : "_sluice_rows")) || (rc = sl_buf_puts(q, " (")))
        goto nomem;
    int first = 1;
    for (uint32_t i = 0; i < s->ncols; i++) {
        if (s->cols[i].generated)
            continue;
        if ((rc = sl_buf_puts(q, first ? "" : ",")) || (rc = put_id(q, s->cols[i].name)))
            goto nomem;
        first = 0;
    }
    if ((rc = sl_buf_puts(q, ") FROM STDIN")) || (rc = sl_buf_cstr(q)))
        goto nomem;
    PGresult *res = PQexec(s->conn, q->data);
    if (!res || PQresultStatus(res) != PGRES_COPY_IN)
        return sl__pg_fail(s, res, "starting COPY", err);
    PQclear(res);
    sl_buf_clear(&s->copy);
    for (uint32_t k = 0; k < n && rc == SL_OK; k++) {
        if (skip[k])
            continue;
        struct sl_record *r = &b->recs[idx[k]];
        struct typed_ctx tc = {s};
        if (++s->gen == 0) {
            memset(s->slot_gen, 0, PG_MAX_COLUMNS * sizeof *s->slot_gen);
            s->gen = 1;
        }
        sl_record_foreach(r, &b->arena, typed_field, &tc);
        first = 1;
        for (uint32_t i = 0; i < s->ncols && rc == SL_OK; i++) {
            if (s->cols[i].generated)
                continue;
            if (!first && (rc = sl_buf_putc(&s->copy, '\t')))
                break;
            first = 0;
            if ((int32_t)i == s->id_col) {
                char id[33];
                sl_record_id_format(r->id, id);
                rc = sl_buf_append(&s->copy, id, 32);
            } else if (s->slot_gen[i] == s->gen) {
                rc = put_typed(s, &s->slot[i]);
            } else {
                rc = sl_buf_puts(&s->copy, "\\N");
            }
        }
        if (rc == SL_OK)
            rc = sl_buf_putc(&s->copy, '\n');
        if (rc == SL_OK && s->copy.len >= PG_COPY_CHUNK && (rc = copy_send(s, err)))
            return rc;
    }
    if ((rc = copy_end(s, rc, err)))
        return rc;
    res = PQgetResult(s->conn);
    int ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
    PGresult *extra;
    while (s->conn && (extra = PQgetResult(s->conn)))
        PQclear(extra);
    if (!ok && direct && res && state_is(PQresultErrorField(res, PG_DIAG_SQLSTATE), "23505")) {
        PQclear(res);
        if ((rc = sl__pg_exec(s, "ROLLBACK TO SAVEPOINT sl_fast; RELEASE SAVEPOINT sl_fast",
                              "rolling back to a savepoint", err)))
            return rc;
        direct = 0;
        s->direct_wait = PG_DIRECT_PAUSE;
        goto again;
    }
    if (ok && !direct) {
        PQclear(res);
        if ((rc = sl__pg_insert_sql(s, q, "_sluice_rows", "true", NULL)))
            goto nomem;
        res = PQexec(s->conn, q->data);
        ok = res && res_ok(res);
    }
    if (!ok) {
        /* 21000: two rows for one key that the client saw as different texts (1, 1.0). */
        if (sl__pg_classify(s->conn, res) != PG_RECORD &&
            !(res && state_is(PQresultErrorField(res, PG_DIAG_SQLSTATE), "21000")))
            return sl__pg_fail(s, res, "writing the batch", err);
        PQclear(res);
        return sl__pg_exec(s, "ROLLBACK TO SAVEPOINT sl_fast; RELEASE SAVEPOINT sl_fast",
                           "rolling back to a savepoint", err);
    }
    PQclear(res);
    *written += n;
    *done = 1;
    return sl__pg_exec(s, "RELEASE SAVEPOINT sl_fast", "releasing a savepoint", err);
nomem:
    return sl_error_set(err, rc, "building SQL: %s", sl_strerror(rc));
}

/* Reject the record the server refused (res: the failed INSERT of that record alone). */
static void reject_refused(struct pg_sink *s, struct sl_batch *b, struct sl_record *r,
                           const PGresult *res)
{
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *col = PQresultErrorField(res, PG_DIAG_COLUMN_NAME);
    const char *cons = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    char path[80];
    if (col && *col)
        snprintf(path, sizeof path, "$.%.64s", col);
    else
        snprintf(path, sizeof path, "$");
    struct sl_reject_info why = {
        .error_class = "sink",
        .rule = condition_name(st),
        .path = sl_arena_strdup(&b->arena, path),
        .expected = cons && *cons ? sl_arena_strdup(&b->arena, cons) : NULL,
    };
    if (!why.path)
        why.path = "$";
    sl_record_reject_why(b, r, s->name, &why, "%s", msg && *msg ? msg : "refused by the server");
}

/*
 * Upsert staged rows n in [lo, hi] under a savepoint; when the server refuses them for a
 * record-level reason, split the range until the refused records stand alone and reject
 * those. *written counts the records written.
 */
static sl_rc insert_range(struct pg_sink *s, struct sl_batch *b, const uint32_t *idx, uint32_t lo,
                          uint32_t hi, int64_t *written, struct sl_error *err)
{
    sl_rc rc;
    char where[64];
    snprintf(where, sizeof where, "s.n BETWEEN %u AND %u", lo, hi);
    if ((rc = sl__pg_exec(s, "SAVEPOINT sl_part", "setting a savepoint", err)))
        return rc;
    if ((rc = sl__pg_insert_sql(s, &s->sql, "_sluice_batch", where, "n")))
        return sl_error_set(err, rc, "building SQL: %s", sl_strerror(rc));
    PGresult *res = PQexec(s->conn, s->sql.data);
    if (res && res_ok(res)) {
        PQclear(res);
        *written += hi - lo + 1;
        return sl__pg_exec(s, "RELEASE SAVEPOINT sl_part", "releasing a savepoint", err);
    }
    if (sl__pg_classify(s->conn, res) != PG_RECORD)
        return sl__pg_fail(s, res, "upserting rows", err);
    if ((rc = sl__pg_exec(s, "ROLLBACK TO SAVEPOINT sl_part; RELEASE SAVEPOINT sl_part",
                          "rolling back to a savepoint", err))) {
        PQclear(res);
        return rc;
    }
    if (lo == hi) {
        reject_refused(s, b, &b->recs[idx[lo]], res);
        PQclear(res);
        return SL_OK;
    }
    PQclear(res);
    uint32_t mid = lo + (hi - lo) / 2;
    if ((rc = insert_range(s, b, idx, lo, mid, written, err)))
        return rc;
    return insert_range(s, b, idx, mid + 1, hi, written, err);
}

/* Before the commit: the records this sink rejected go to the dead-letter queue. */
static sl_rc keep_rejected(struct pg_sink *s, struct sl_batch *b, struct sl_worker *w,
                           struct sl_error *err)
{
    return sl__sink_keep_rejected(s->name, b, w, err);
}

#define CKPT_GET_SQL "SELECT position FROM %s WHERE pipeline = $1 AND sink = $2 AND source = $3%s"
#define CKPT_PUT_SQL                                                                               \
    "INSERT INTO %s AS c (pipeline, sink, source, position, records%s)"                            \
    " VALUES ($1, $2, $3, $4, $5%s) ON CONFLICT (pipeline, sink, source) DO UPDATE"                \
    " SET position = EXCLUDED.position, records = c.records + EXCLUDED.records%s"

static sl_rc pg_process(void *state, struct sl_batch *b, struct sl_worker *w, struct sl_error *err)
{
    struct pg_sink *s = state;
    const char *source = NULL;
    int64_t written = 0;
    uint32_t *idx, n;
    sl_rc rc;
    char q[800];

    if (s->inspect)
        return sl_error_set(err, SL_ESTATE, "sink %s was opened for inspection", s->name);
    if (b->position) {
        if (b->source >= s->nsources || !s->source_names || !s->source_names[b->source])
            return sl_error_set(err, SL_ESTATE, "batch from unknown source #%u", b->source);
        source = b->checkpoint ? b->checkpoint : s->source_names[b->source];
    }
    if (sl_batch_live(b) == 0 && !source)
        return SL_OK;
    if ((rc = sl__pg_connect(s, err)))
        return rc;
    if (s->schema_stale) {
        if ((rc = sl__pg_load_columns(s, err)))
            return sl__pg_abort(s, rc);
        s->schema_stale = 0;
    }
    if ((rc = sl__pg_exec(s, "BEGIN", "starting the batch's transaction", err)))
        return sl__pg_abort(s, rc);
    if (source && !s->staged) {
        PGresult *res;
        snprintf(q, sizeof q, CKPT_GET_SQL, s->qckpt, " FOR UPDATE");
        const char *v[] = {s->pipeline, s->name, source};
        if ((rc = sl__pg_params(s, q, 3, v, &res, "reading the checkpoint", err)))
            return sl__pg_abort(s, rc);
        int done = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) &&
                   strcmp(PQgetvalue(res, 0, 0), b->position) == 0;
        PQclear(res);
        if (done) {
            /* Committed already (another run got there first): nothing to do. */
            sl__pg_abort(s, SL_OK);
            s->schema_stale = 0;
            return SL_OK;
        }
    }
    if ((rc = sl__pg_prepare_batch(s, b, w, &idx, &n, err)))
        return sl__pg_abort(s, rc);
    if (n > 0) {
        int done = 0;
        if (!s->staged && (s->key ? s->key_col : s->id_col) >= 0 &&
            (rc = fast_write(s, b, idx, n, &written, &done, err)))
            return sl__pg_abort(s, rc);
        if (done)
            goto rows_done;
        if ((rc = sl__pg_copy_batch(s, b, idx, n, err)))
            return sl__pg_abort(s, rc);
        if (s->staged) {
            rc = sl__pg_stage_rows(s, err);
            written = n;
        } else if ((s->key ? s->key_col : s->id_col) < 0) {
            rc = sl_error_set(err, SL_ESTATE, "sink %s: conflict column %s is missing from %s",
                              s->name, s->target, s->qtable);
        } else {
            rc = insert_range(s, b, idx, 0, n - 1, &written, err);
        }
        if (rc)
            return sl__pg_abort(s, rc);
    }
rows_done:
    if ((rc = keep_rejected(s, b, w, err)))
        return sl__pg_abort(s, rc);
    if (source) {
        char recs[32];
        snprintf(recs, sizeof recs, "%" PRId64, written);
        snprintf(q, sizeof q, CKPT_PUT_SQL, s->staged ? s->qstaged : s->qckpt,
                 s->staged ? "" : ", committed_ns", s->staged ? "" : ", $6",
                 s->staged ? "" : ", committed_ns = EXCLUDED.committed_ns");
        char ns[32];
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(ns, sizeof ns, "%" PRIu64,
                 (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
        const char *v[] = {s->pipeline, s->name, source, b->position, recs, ns};
        if ((rc = sl__pg_params(s, q, s->staged ? 5 : 6, v, NULL, "recording the checkpoint", err)))
            return sl__pg_abort(s, rc);
    }
    if ((rc = sl__pg_exec(s, "COMMIT", "committing the batch", err)))
        return sl__pg_abort(s, rc);
    if (s->staged)
        s->stage_seq += n;
    return SL_OK;
}

/* ---- checkpoints: committed, status, reset, rewind ------------------------------------- */

static sl_rc pg_committed(void *state, const char *source, char **position, struct sl_error *err)
{
    struct pg_sink *s = state;
    char q[400];
    *position = NULL;
    if (s->inspect && !s->has_ckpt)
        return SL_OK;
    sl_rc rc = sl__pg_connect(s, err);
    if (rc)
        return rc;
    snprintf(q, sizeof q, CKPT_GET_SQL, s->qckpt, "");
    PGresult *res;
    const char *v[] = {s->pipeline, s->name, source};
    if ((rc = sl__pg_params(s, q, 3, v, &res, "reading the checkpoint", err)))
        return rc;
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        *position = sl_strdup(PQgetvalue(res, 0, 0));
        if (!*position)
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    PQclear(res);
    return rc;
}

static sl_rc pg_commit_info(void *state, const char *source, uint64_t *records, uint64_t *commit_ns,
                            struct sl_error *err)
{
    struct pg_sink *s = state;
    char q[400];
    *records = *commit_ns = 0;
    if (s->inspect && !s->has_ckpt)
        return SL_OK;
    sl_rc rc = sl__pg_connect(s, err);
    if (rc)
        return rc;
    snprintf(q, sizeof q,
             "SELECT records, committed_ns FROM %s WHERE pipeline = $1 AND sink = $2"
             " AND source = $3",
             s->qckpt);
    PGresult *res;
    const char *v[] = {s->pipeline, s->name, source};
    if ((rc = sl__pg_params(s, q, 3, v, &res, "reading the checkpoint", err)))
        return rc;
    if (PQntuples(res) == 1) {
        *records = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        *commit_ns = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
    }
    PQclear(res);
    return SL_OK;
}

static sl_rc pg_reset(void *state, const char *source, struct sl_error *err)
{
    struct pg_sink *s = state;
    char q[400];
    if (s->inspect && !s->has_ckpt)
        return SL_OK;
    sl_rc rc = sl__pg_connect(s, err);
    if (rc)
        return rc;
    snprintf(q, sizeof q,
             "DELETE FROM %s WHERE pipeline = $1 AND sink = $2 AND ($3::text IS NULL OR"
             " source = $3)",
             s->qckpt);
    const char *v[] = {s->pipeline, s->name, source};
    return sl__pg_params(s, q, 3, v, NULL, "resetting the checkpoints", err);
}

static sl_rc pg_rewind(void *state, const char *source, const char *position, struct sl_error *err)
{
    struct pg_sink *s = state;
    char q[600];
    if (!source || !position)
        return sl_error_set(err, SL_EINVAL, "sink %s: rewind needs a source and a position",
                            s->name);
    if (s->inspect && !s->has_ckpt)
        return sl_error_set(err, SL_ESTATE,
                            "sink %s has committed nothing (no %s table), so there is no "
                            "checkpoint to move",
                            s->name, s->qckpt);
    sl_rc rc = sl__pg_connect(s, err);
    if (rc)
        return rc;
    snprintf(q, sizeof q,
             "INSERT INTO %s AS c (pipeline, sink, source, position, records, committed_ns)"
             " VALUES ($1, $2, $3, $4, 0, 0) ON CONFLICT (pipeline, sink, source)"
             " DO UPDATE SET position = EXCLUDED.position",
             s->qckpt);
    const char *v[] = {s->pipeline, s->name, source, position};
    return sl__pg_params(s, q, 4, v, NULL, "rewinding the checkpoint", err);
}

static void pg_close(void *state)
{
    struct pg_sink *s = state;
    if (!s)
        return;
    drop_conn(s);
    free_columns(s);
    sl_free(s->cols);
    sl_buf_fini(&s->sql);
    sl_buf_fini(&s->copy);
    sl_buf_fini(&s->val);
    sl_free(s->slot);
    sl_free(s->slot_gen);
    sl_free(s->conninfo);
    sl_free(s->schema);
    sl_free(s->table);
    sl_free(s->qtable);
    sl_free(s->qckpt);
    sl_free(s->qstaging);
    sl_free(s->qstaged);
    sl_free(s->qcontracts);
    sl_free(s->key);
    sl_free(s->id_column);
    sl_free(s->part_col);
    sl_free(s->part_val);
    sl_contract_destroy(s->contract);
    sl_free(s->contract_path);
    sl_free(s);
}

/* ---- contract ----------------------------------------------------------------------------- */

static const char *contract_type(const char *t)
{
    if (!strcmp(t, "integer"))
        return "bigint";
    if (!strcmp(t, "number"))
        return "double precision";
    if (!strcmp(t, "boolean"))
        return "boolean";
    if (!strcmp(t, "string"))
        return "text";
    return "jsonb";
}

/* Collects the breaking changes of a contract comparison, "; "-separated. */
struct breaks {
    struct sl_buf b;
};

static int collect_break(void *ctx, const struct sl_contract_change *ch)
{
    struct breaks *l = ctx;
    if (ch->breaks & SL_COMPAT_BACKWARD)
        sl_buf_printf(&l->b, "%s%s: %s", l->b.len ? "; " : "", ch->path, ch->reason);
    return 0;
}

/*
 * The contract stored beside the table (_sluice_contracts, keyed by table): when it
 * differs from the configured one, the new one must be backward compatible (data valid
 * under the old one stays valid); otherwise SL_ECONFIG listing the breaking changes.
 * Inside the contract's transaction; the row is locked until it commits.
 */
static sl_rc contract_check_stored(struct pg_sink *s, struct sl_error *err)
{
    char q[600];
    PGresult *res;
    sl_rc rc;
    snprintf(q, sizeof q,
             "CREATE TABLE IF NOT EXISTS %s (sink text NOT NULL, tbl text PRIMARY KEY,"
             " name text NOT NULL, version text NOT NULL, text text NOT NULL,"
             " applied_ns bigint NOT NULL)",
             s->qcontracts);
    if ((rc = sl__pg_exec(s, q, "creating the contracts table", err)))
        return rc;
    snprintf(q, sizeof q, "SELECT text, name || '@' || version FROM %s WHERE tbl = $1 FOR UPDATE",
             s->qcontracts);
    const char *v[] = {s->qtable};
    if ((rc = sl__pg_params(s, q, 1, v, &res, "reading the stored contract", err)))
        return rc;
    size_t n;
    const char *text = sl_contract_text(s->contract, &n);
    if (PQntuples(res) == 0 ||
        ((size_t)PQgetlength(res, 0, 0) == n && memcmp(PQgetvalue(res, 0, 0), text, n) == 0)) {
        PQclear(res);
        return SL_OK;
    }
    struct sl_contract *old = NULL;
    char old_label[200];
    snprintf(old_label, sizeof old_label, "%s", PQgetvalue(res, 0, 1));
    rc = sl_contract_load_mem(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0),
                              "the stored contract", &old, err);
    PQclear(res);
    if (rc) {
        sl_error_prefix(err,
                        "sink %s: cannot read the contract stored for %s in %s back: delete "
                        "its row to adopt %s: ",
                        s->name, s->qtable, s->qcontracts, sl_contract_label(s->contract));
        return rc == SL_ENOMEM ? rc : SL_ECONFIG;
    }
    struct breaks l;
    int incompatible = 0;
    sl_buf_init(&l.b, 1 << 16);
    rc = sl_contract_compare(old, s->contract, SL_COMPAT_BACKWARD, collect_break, &l, &incompatible,
                             err);
    sl_contract_destroy(old);
    if (rc == SL_OK && incompatible) {
        sl_buf_cstr(&l.b);
        rc = sl_error_set(err, SL_ECONFIG,
                          "sinks.%s.contract: %s (%s) is not backward compatible with %s, the "
                          "contract table %s was built for: %s. Nothing was changed. Write to "
                          "a new table, or migrate %s yourself and then run \"DELETE FROM %s "
                          "WHERE tbl = '%s'\" so that the next start adopts the new contract",
                          s->name, sl_contract_label(s->contract), s->contract_path, old_label,
                          s->qtable, l.b.data ? l.b.data : "", s->qtable, s->qcontracts, s->qtable);
    } else if (rc == SL_OK) {
        sl_info(s->name, "table %s: contract %s -> %s (backward compatible)", s->qtable, old_label,
                sl_contract_label(s->contract));
    }
    sl_buf_fini(&l.b);
    return rc;
}

/* Store (or replace) the contract row of the table. */
static sl_rc contract_store(struct pg_sink *s, struct sl_error *err)
{
    char q[600], ns[32];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(ns, sizeof ns, "%" PRIu64, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
    snprintf(q, sizeof q,
             "INSERT INTO %s (sink, tbl, name, version, text, applied_ns)"
             " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tbl) DO UPDATE SET"
             " sink = EXCLUDED.sink, name = EXCLUDED.name, version = EXCLUDED.version,"
             " text = EXCLUDED.text, applied_ns = EXCLUDED.applied_ns",
             s->qcontracts);
    size_t n;
    const char *text = sl_contract_text(s->contract, &n);
    char *t = sl_strndup(text, n);
    if (!t)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    const char *v[] = {
        s->name, s->qtable, sl_contract_name(s->contract), sl_contract_version(s->contract), t, ns};
    sl_rc rc = sl__pg_params(s, q, 6, v, NULL, "storing the contract", err);
    sl_free(t);
    return rc;
}

/* Create the table from the contract, or add the columns it lacks (in one transaction). */
static sl_rc contract_apply(struct pg_sink *s, struct sl_error *err)
{
    const struct sl_contract_field *f;
    size_t nf = sl_contract_fields(s->contract, &f);
    struct sl_buf *q = &s->sql;
    sl_rc rc;
    if ((rc = sl__pg_exec(s, "BEGIN", "starting the contract's transaction", err)) ||
        (rc = contract_check_stored(s, err)) || (rc = sl__pg_load_columns(s, err)))
        return sl__pg_abort(s, rc);
    int create = s->ncols == 0;
    sl_buf_clear(q);
    if (create) {
        if ((rc = sl_buf_puts(q, "CREATE TABLE ")) || (rc = sl_buf_puts(q, s->qtable)) ||
            (rc = sl_buf_puts(q, " (")))
            goto nomem;
        int first = 1;
        if (s->id_column) {
            if ((rc = put_id(q, s->id_column)) ||
                (rc = sl_buf_puts(q, s->key ? " text" : " text PRIMARY KEY")))
                goto nomem;
            first = 0;
        }
        for (size_t i = 0; i < nf; i++) {
            int is_key = s->key && !strcmp(s->key, f[i].name);
            if ((rc = sl_buf_puts(q, first ? "" : ", ")) || (rc = put_id(q, f[i].name)) ||
                (rc = sl_buf_printf(q, " %s%s", contract_type(f[i].type),
                                    is_key ? " PRIMARY KEY" : "")))
                goto nomem;
            first = 0;
        }
        if ((rc = sl_buf_putc(q, ')')) || (rc = sl_buf_cstr(q)))
            goto nomem;
        if ((rc = sl__pg_exec(s, q->data, "creating the table from the contract", err)))
            return sl__pg_abort(s, rc);
        sl_info(s->name, "created table %s from contract %s", s->qtable,
                sl_contract_label(s->contract));
    } else {
        for (size_t i = 0; i < nf; i++) {
            if (find_col(s, f[i].name, strlen(f[i].name)) >= 0)
                continue;
            sl_buf_clear(q);
            if ((rc = sl_buf_puts(q, "ALTER TABLE ")) || (rc = sl_buf_puts(q, s->qtable)) ||
                (rc = sl_buf_puts(q, " ADD COLUMN ")) || (rc = put_id(q, f[i].name)) ||
                (rc = sl_buf_printf(q, " %s", contract_type(f[i].type))) || (rc = sl_buf_cstr(q)))
                goto nomem;
            if ((rc = sl__pg_exec(s, q->data, "adding a column from the contract", err)))
                return sl__pg_abort(s, rc);
            sl_info(s->name, "added column %s %s to %s (contract %s)", f[i].name,
                    contract_type(f[i].type), s->qtable, sl_contract_label(s->contract));
        }
    }
    if ((rc = sl__pg_load_columns(s, err)) || (rc = ensure_target_unique(s, err)) ||
        (rc = contract_store(s, err)) ||
        (rc = sl__pg_exec(s, "COMMIT", "committing the contract's table", err)))
        return sl__pg_abort(s, rc);
    return SL_OK;
nomem:
    return sl__pg_abort(s, sl_error_set(err, rc, "building SQL: %s", sl_strerror(rc)));
}

/* 1 when the contract's root says additionalProperties: false (text search, as it loaded). */
static int contract_closed(const struct sl_contract *c)
{
    size_t n;
    const char *t = sl_contract_text(c, &n);
    const char *p = t;
    /* The root's keyword: the first occurrence at nesting depth 1. */
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = 0;
            continue;
        }
        if (ch == '{' || ch == '[')
            depth++;
        else if (ch == '}' || ch == ']')
            depth--;
        else if (ch == '"') {
            if (depth == 1 && n - i > 22 && !memcmp(p + i, "\"additionalProperties\"", 22)) {
                size_t j = i + 22;
                while (j < n &&
                       (p[j] == ' ' || p[j] == ':' || p[j] == '\n' || p[j] == '\t' || p[j] == '\r'))
                    j++;
                return n - j >= 5 && !memcmp(p + j, "false", 5);
            }
            in_str = 1;
        }
    }
    return 0;
}

/* ---- init ------------------------------------------------------------------------------ */

static char *qualified(const char *schema, const char *name)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    if ((schema && (put_id(&b, schema) || sl_buf_putc(&b, '.'))) || put_id(&b, name) ||
        sl_buf_cstr(&b)) {
        sl_buf_fini(&b);
        return NULL;
    }
    return b.data;
}

static sl_rc pg_init(const struct sl_plugin_ctx *ctx, void **state, struct sl_error *err)
{
    const struct sl_cfg_node *node = ctx->node;
    const char *conninfo, *table, *key, *id_column, *contract;
    uint64_t cms, sms;
    sl_rc rc;
    if ((rc = sl_cfg_get_str(node, "connection", NULL, &conninfo, err)) ||
        (rc = sl_cfg_get_str(node, "table", NULL, &table, err)) ||
        (rc = sl_cfg_get_str(node, "key", NULL, &key, err)) ||
        (rc = sl_cfg_get_str(node, "id_column", "_sluice_id", &id_column, err)) ||
        (rc = sl_cfg_get_path(ctx->doc, node, "contract", NULL, &contract, err)) ||
        (rc = sl_cfg_get_duration(node, "connect_timeout", 10000, &cms, err)) ||
        (rc = sl_cfg_get_duration(node, "statement_timeout", 0, &sms, err)))
        return rc;
    if (!table || !*table)
        return sl_cfg_error(err, node, "sinks.%s: missing required option table", ctx->name);
    const char *dot = strchr(table, '.');
    if (dot && (dot == table || !dot[1] || strchr(dot + 1, '.')))
        return sl_cfg_error(err, sl_cfg_get(node, "table"),
                            "sinks.%s.table: \"%s\" is not a table or schema.table", ctx->name,
                            table);
    const char *bare = dot ? dot + 1 : table;
    if (!strncmp(bare, "_sluice_", 8))
        return sl_cfg_error(err, sl_cfg_get(node, "table"),
                            "sinks.%s.table: \"%s\" is reserved; choose another name", ctx->name,
                            table);
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
    if (key && !strcmp(key, id_column))
        return sl_cfg_error(err, sl_cfg_get(node, "id_column"),
                            "sinks.%s.id_column: \"%s\" is also the key; choose another column "
                            "for the record id or set id_column: \"\"",
                            ctx->name, id_column);
    const struct sl_cfg_node *pn = sl_cfg_get(node, "partition");
    const char *pcol = NULL, *pval = NULL;
    if (pn) {
        const struct sl_cfg_node *c = sl_cfg_get(pn, "column"), *v = sl_cfg_get(pn, "value");
        if (!c || !v || c->kind != SL_CFG_SCALAR || v->kind != SL_CFG_SCALAR || !*c->str ||
            pn->kind != SL_CFG_MAP || pn->n != 2)
            return sl_cfg_error(err, pn,
                                "sinks.%s.partition: expected {column: C, value: V} (the rows "
                                "whose column C equals V are replaced by the run)",
                                ctx->name);
        pcol = c->str;
        pval = v->str;
        if (!ctx->inspect && !ctx->staged)
            return sl_cfg_error(err, pn,
                                "sinks.%s.partition: replacing a partition needs `sluice run "
                                "--once` (the whole run replaces it at its end); run with --once "
                                "or remove partition",
                                ctx->name);
    }

    struct pg_sink *s = sl_calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    s->name = ctx->name;
    s->pipeline = ctx->pipeline ? ctx->pipeline : "";
    s->source_names = ctx->source_names;
    s->nsources = ctx->nsources;
    s->id_col = s->key_col = s->part_col_i = -1;
    s->connect_ms = cms;
    s->statement_ms = sms;
    s->inspect = ctx->inspect;
    s->exactly_once = ctx->exactly_once;
    s->staged = ctx->staged && !ctx->inspect;
    sl_buf_init(&s->sql, PG_SQL_MAX);
    sl_buf_init(&s->copy, 0);
    sl_buf_init(&s->val, 0);
    s->cols = sl_calloc(PG_MAX_COLUMNS, sizeof *s->cols);
    s->slot = sl_calloc(PG_MAX_COLUMNS, sizeof *s->slot);
    s->slot_gen = sl_calloc(PG_MAX_COLUMNS, sizeof *s->slot_gen);
    s->conninfo = conninfo && *conninfo ? sl_strdup(conninfo) : NULL;
    s->schema = dot ? sl_strndup(table, (size_t)(dot - table)) : NULL;
    s->table = sl_strdup(bare);
    s->key = key ? sl_strdup(key) : NULL;
    s->id_column = *id_column ? sl_strdup(id_column) : NULL;
    s->part_col = pcol ? sl_strdup(pcol) : NULL;
    s->part_val = pval ? sl_strdup(pval) : NULL;
    s->contract_path = contract && *contract ? sl_strdup(contract) : NULL;
    s->qtable = s->table ? qualified(s->schema, s->table) : NULL;
    s->qckpt = qualified(s->schema, "_sluice_checkpoints");
    s->qstaging = qualified(s->schema, "_sluice_staging");
    s->qstaged = qualified(s->schema, "_sluice_staged");
    s->qcontracts = qualified(s->schema, "_sluice_contracts");
    if (!s->cols || !s->slot || !s->slot_gen || (conninfo && *conninfo && !s->conninfo) ||
        (dot && !s->schema) || !s->table || (key && !s->key) || (*id_column && !s->id_column) ||
        (pcol && (!s->part_col || !s->part_val)) || (contract && *contract && !s->contract_path) ||
        !s->qtable || !s->qckpt || !s->qstaging || !s->qstaged || !s->qcontracts) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    s->target = s->key ? s->key : s->id_column;

    if ((rc = sl__pg_connect(s, err))) {
        sl_error_prefix(err, "sinks.%s: ", ctx->name);
        goto fail; /* SL_RETRY: the engine waits for the server under the retry policy */
    }
    if (s->inspect) {
        PGresult *res;
        const char *v[] = {s->qckpt};
        if ((rc = sl__pg_params(s, "SELECT to_regclass($1) IS NOT NULL", 1, v, &res,
                                "looking for the checkpoint table", err)))
            goto fail;
        s->has_ckpt = PQgetvalue(res, 0, 0)[0] == 't';
        PQclear(res);
        *state = s;
        return SL_OK;
    }
    char q[600];
    snprintf(q, sizeof q,
             "CREATE TABLE IF NOT EXISTS %s (pipeline text NOT NULL, sink text NOT NULL,"
             " source text NOT NULL, position text, records bigint NOT NULL DEFAULT 0,"
             " committed_ns bigint, PRIMARY KEY (pipeline, sink, source))",
             s->qckpt);
    if ((rc = sl__pg_exec(s, q, "creating the checkpoint table", err)))
        goto fail;
    if (s->contract_path) {
        if ((rc = sl_contract_load(s->contract_path, &s->contract, err))) {
            sl_error_prefix(err, "sinks.%s.contract: ", ctx->name);
            goto fail;
        }
        s->closed = contract_closed(s->contract);
        if ((rc = contract_apply(s, err)))
            goto fail;
    }
    if ((rc = sl__pg_load_columns(s, err)) || (rc = sl__pg_staging_open(s, err)))
        goto fail;
    *state = s;
    return SL_OK;
fail:
    /* Inspection (status, reset) answers now; a run waits for a server that is down. */
    if (rc == SL_RETRY && s->inspect)
        rc = SL_EDB;
    pg_close(s);
    return rc;
}

const struct sl_plugin sl_sink_postgres = {
    .kind = SL_PLUGIN_SINK,
    .name = "postgres",
    .description = "Upserts records into a PostgreSQL table: COPY into a staging table, then "
                   "INSERT ... ON CONFLICT and the checkpoint in one transaction per batch "
                   "(exactly-once); transient failures are retried, refused records isolated.",
    .options = pg_options,
    .init = pg_init,
    .process = pg_process,
    .committed = pg_committed,
    .commit_info = pg_commit_info,
    .reset = pg_reset,
    .rewind = pg_rewind,
    .publish = sl__pg_publish,
    .close = pg_close,
};
