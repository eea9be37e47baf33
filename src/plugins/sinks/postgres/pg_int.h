/*
 * pg_int.h - what the files of the postgres sink share, and nobody else.
 *
 * postgres.c holds the sink proper (connection, error classification, schema, the batch
 * transaction with its COPY, upsert, poison isolation and checkpoint, the plugin table);
 * stage.c is the staged mode (write-audit-publish and `partition`). Every function here
 * runs on the sink's thread.
 */
#ifndef SLUICE_SINK_PG_INT_H
#define SLUICE_SINK_PG_INT_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "sluice/batch.h"
#include "sluice/buf.h"
#include "sluice/contract.h"
#include "sluice/plugin.h"
#include "sluice/rc.h"

#define PG_MAX_COLUMNS 1600 /* PostgreSQL's own limit per table */
#define PG_SLOTS 4096       /* hash slots: a power of two > 2 * PG_MAX_COLUMNS */
#define PG_DIRECT_PAUSE 16  /* batches without direct COPY after one met an existing key */
#define PG_SQL_MAX ((size_t)16 << 20)
#define PG_COPY_CHUNK                                                                              \
    ((size_t)256                                                                                   \
     << 10) /* bytes per PQputCopyData call: the server parses one while the next is built */

enum pg_ctype {
    PG_T_UNSET = 0,
    PG_T_BIGINT,
    PG_T_DOUBLE,
    PG_T_NUMERIC,
    PG_T_TEXT,
    PG_T_BOOL,
    PG_T_JSONB,
    PG_T_OTHER
};

struct pg_column {
    char *name; /* exactly as the catalog spells it; sl_malloc'd */
    char *type; /* format_type() of the column, for casts */
    uint32_t len;
    uint32_t hash;
    uint8_t ctype;     /* enum pg_ctype */
    uint8_t generated; /* identity or generated: never written */
};

/*
 * Invariants:
 *   1. cols[0..ncols) are the table's columns in attnum order as the catalog reports them;
 *      the table exists iff ncols > 0. slots maps hash(name) to index + 1 (exact names:
 *      quoted identifiers are case-sensitive).
 *   2. conn is NULL or a connection on which no transaction is open outside process(),
 *      publish(), reset() and rewind(); temp_ready says the connection has the TEMP
 *      table _sluice_batch (made once per connection).
 *   3. After any failed transaction the column list is read again before the next write
 *      (schema_stale), since the failed transaction's DDL was undone.
 *   4. A connection whose status is not CONNECTION_OK is closed at once (conn = NULL); the
 *      next call connects again.
 *   5. When staged, process() never writes the target table's rows or _sluice_checkpoints:
 *      a batch's records go to _sluice_staging and its position to _sluice_staged,
 *      committed together; only publish() moves them.
 */
struct pg_sink {
    const char *name;     /* component name (outlives the state) */
    const char *pipeline; /* pipeline name (outlives the state) */
    const char *const *source_names;
    size_t nsources;
    char *conninfo;       /* NULL: PG* environment variables */
    char *schema, *table; /* schema NULL when unqualified */
    char *qtable;         /* "schema"."table", quoted */
    char *qckpt, *qstaging, *qstaged,
        *qcontracts;           /* the sink's own tables, in the target's schema */
    char *key, *id_column;     /* id_column NULL when switched off */
    const char *target;        /* key or id_column: the conflict column */
    char *part_col, *part_val; /* partition, or NULL */
    uint64_t connect_ms, statement_ms;
    PGconn *conn;
    int temp_ready;
    int typed_ready;      /* the TEMP table _sluice_rows (LIKE the target) matches cols */
    uint32_t direct_wait; /* batches to go before COPY straight into the target is tried again */
    int inspect, exactly_once;
    int has_ckpt; /* inspect: _sluice_checkpoints exists */
    int schema_stale;
    int target_ok; /* the conflict column has a unique index */
    struct pg_column *cols;
    uint32_t ncols;
    int32_t id_col, key_col, part_col_i;
    uint32_t slots[PG_SLOTS];
    struct sl_buf sql, copy, val;
    struct sl_value *slot; /* typed COPY: a record's value per column (copies) */
    uint32_t *slot_gen;    /* ... valid when slot_gen[i] == gen */
    uint32_t gen;
    /* Staged mode (invariant 5, stage.c). */
    int staged;
    int64_t stage_seq;
    /* Contract; NULL without the option. */
    struct sl_contract *contract;
    char *contract_path;
    int closed; /* additionalProperties: false */
};

/* How a failure is to be handled. */
enum pg_class { PG_TRANSIENT = 1, PG_RECORD, PG_FATAL };

/* ---- postgres.c ------------------------------------------------------------------------ */

/* Classify a failed result (NULL: the connection failed before a result). */
int sl__pg_classify(PGconn *conn, const PGresult *res);

/*
 * Turn a failure of the step `what` into an sl_rc with err set: SL_RETRY for transient
 * failures (the connection is dropped when it is broken), SL_EDB otherwise. Clears res.
 */
sl_rc sl__pg_fail(struct pg_sink *s, PGresult *res, const char *what, struct sl_error *err);

/* Run sql (no parameters) expecting no rows or rows; SL_OK or as sl__pg_fail. */
sl_rc sl__pg_exec(struct pg_sink *s, const char *sql, const char *what, struct sl_error *err);

/* Run sql with text parameters; *out (when not NULL) gets the result on success. */
sl_rc sl__pg_params(struct pg_sink *s, const char *sql, int n, const char *const *vals,
                    PGresult **out, const char *what, struct sl_error *err);

/* Connect when there is no usable connection (invariant 4). SL_RETRY when unreachable. */
sl_rc sl__pg_connect(struct pg_sink *s, struct sl_error *err);

/* Roll back whatever is open, mark the schema stale; returns rc. */
sl_rc sl__pg_abort(struct pg_sink *s, sl_rc rc);

/* Append name as a quoted identifier. */
sl_rc sl__pg_put_ident(struct sl_buf *b, const char *name, size_t n);

/* Prepare the live records of b (parse, object, key, partition) and make the schema fit
 * them: fills idx with the indexes of the records to write, *n their number. Inside the
 * open transaction. */
sl_rc sl__pg_prepare_batch(struct pg_sink *s, struct sl_batch *b, struct sl_worker *w,
                           uint32_t **idx, uint32_t *n, struct sl_error *err);

/* COPY records b->recs[idx[0..n)] into the TEMP table _sluice_batch (n, id, doc). */
sl_rc sl__pg_copy_batch(struct pg_sink *s, struct sl_batch *b, const uint32_t *idx, uint32_t n,
                        struct sl_error *err);

/*
 * Append "INSERT INTO target (cols) SELECT ... FROM <from> s, jsonb_populate_record(...) p
 * WHERE <where> ORDER BY ... ON CONFLICT ..." to q; order_col is the staging column that
 * orders records (the last one per key wins).
 */
sl_rc sl__pg_insert_sql(struct pg_sink *s, struct sl_buf *q, const char *from, const char *where,
                        const char *order_col);

/* Read the table's columns (invariant 1). */
sl_rc sl__pg_load_columns(struct pg_sink *s, struct sl_error *err);

/* ---- stage.c --------------------------------------------------------------------------- */

/* At init (not inspect): drop what an earlier run left staged; create staging if staged. */
sl_rc sl__pg_staging_open(struct pg_sink *s, struct sl_error *err);

/* Move the batch in _sluice_batch into _sluice_staging (inside the open transaction). */
sl_rc sl__pg_stage_rows(struct pg_sink *s, struct sl_error *err);

/* The plugin's publish callback (plugin.h). */
sl_rc sl__pg_publish(void *state, int verdict, sl_publish_keep_fn keep, void *keep_ctx,
                     struct sl_error *err);

#endif
