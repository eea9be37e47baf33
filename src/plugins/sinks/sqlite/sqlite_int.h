/*
 * sqlite_int.h - what the files of the sqlite sink share, and nobody else.
 *
 * sqlite.c holds the sink proper (rows, schema growth, checkpoints, the plugin table);
 * contract.c makes and evolves the table from a data contract; stage.c is
 * write-audit-publish (the staging journal and publish()). They share the sink's state
 * and the small database helpers below; every function here runs on the sink's thread.
 */
#ifndef SLUICE_SINK_SQLITE_INT_H
#define SLUICE_SINK_SQLITE_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "sluice/batch.h"
#include "sluice/buf.h"
#include "sluice/contract.h"
#include "sluice/plugin.h"
#include "sluice/rc.h"

#define SQ_MAX_COLUMNS 1000            /* below SQLite's default 2000-column limit */
#define SQ_SLOTS 2048                  /* hash slots: a power of two > 2 * SQ_MAX_COLUMNS */
#define SQ_HINTS 256                   /* field positions whose column is guessed */
#define SQ_GROUP 16                    /* rows per multi-row INSERT */
#define SQ_JSON_MAX ((size_t)64 << 20) /* one object/array value as JSON */
#define SQ_SQL_MAX ((size_t)16 << 20)  /* one statement's text */
#define SQ_WAL_STEP 4096               /* WAL frames between background checkpoints */
#define SQ_WAL_MAX 16384               /* WAL frames at which the writer rewinds the WAL */

enum sq_ctype { SQ_T_UNSET = 0, SQ_T_INTEGER, SQ_T_REAL, SQ_T_TEXT };

struct sq_column {
    char *name; /* as the table spells it; sl_malloc'd */
    uint32_t len;
    uint32_t hash; /* of the ASCII-folded name */
};

/* A field name seen in the record being staged (seen_gen tells the live entries). */
struct sq_seen {
    uint32_t gen;
    uint32_t len;
    uint32_t hash;
    const char *key;
};

/*
 * Invariants:
 *   1. cols[0..ncols) are the table's columns in table order, exactly as PRAGMA
 *      table_info reports them; the table exists iff ncols > 0.
 *   2. slots maps the folded hash of each column name to its index + 1 (0 = empty).
 *   3. insert, when not NULL, names cols[0..ncols) in order: parameter i + 1 is column i;
 *      group is the same for SQ_GROUP rows: parameter j * ncols + i + 1 is column i of
 *      row j.
 *   4. id_col / key_col index cols, or are -1 when that column does not exist (yet).
 *   5. Outside process() and publish(), no transaction is open and insert and group
 *      have no bindings that point into a batch.
 *   6. ck_on is set exactly while the checkpointer thread runs; ck_db is that thread's
 *      alone until it is joined; ck_pending, ck_busy (a background checkpoint is running)
 *      and ck_stop are read and written under ck_mu; only the writer sets ck_pending.
 *      ck_last is the writer's (WAL frames at the last signal).
 *   7. When staged, process() never writes the target table or _sluice_checkpoints: a
 *      batch's rows go to _sluice_staging and its position to _sluice_staged, committed
 *      together; only publish() moves them. stage_seq is the number of rows this run has
 *      committed to _sluice_staging (init clears what an earlier run left there).
 */
struct sqlite_sink {
    const char *name;     /* component name (outlives the state) */
    const char *pipeline; /* pipeline name (outlives the state) */
    const char *const *source_names;
    size_t nsources;
    char *path, *table, *key, *id_column; /* id_column NULL when switched off */
    const char *target;                   /* key or id_column: the conflict column */
    sqlite3 *db;
    int inspect;  /* opened read-only for `sluice status` / `sluice reset` */
    int has_ckpt; /* inspect: the database and its _sluice_checkpoints table exist */
    sqlite3_stmt *begin, *commit, *rollback, *ckpt_put, *ckpt_get, *ckpt_info;
    sqlite3_stmt *insert; /* one row */
    sqlite3_stmt *group;  /* SQ_GROUP rows; NULL exactly when insert is */
    int target_ok;        /* the conflict column is known to have a unique index */
    struct sq_column *cols;
    uint32_t ncols;
    int32_t id_col, key_col;
    uint32_t slots[SQ_SLOTS];
    uint32_t hint[SQ_HINTS];        /* field position -> column index + 1 */
    uint32_t bound[SQ_MAX_COLUMNS]; /* gen of the row that last bound the column */
    uint32_t gen;
    int schema_stale;             /* a rollback undid DDL: read the columns again before writing */
    char idbuf[SQ_GROUP + 1][33]; /* ids bound with SQLITE_STATIC: group rows, then insert */
    struct sl_buf json;           /* compact JSON of container values */
    struct sl_buf sql;            /* statement text being built */
    sqlite3 *ck_db;               /* checkpointer's connection (exactly_once) */
    pthread_t ck_thread;
    pthread_mutex_t ck_mu;
    pthread_cond_t ck_cv;
    int ck_on, ck_pending, ck_busy, ck_stop;
    int ck_last;
    int busy_ms; /* the writer's busy timeout */
    uint32_t max_depth;
    /* Write-audit-publish (invariant 7). */
    int staged;        /* ctx->staged: process() appends to the staging journal */
    int64_t stage_seq; /* rows staged in this run (the next row's seq) */
    sqlite3_stmt *stage_put, *stage_pos;
    struct sl_json_parser *parser; /* publish(ACCEPT) parses the staged records */
    struct sq_seen seen[SQ_SLOTS]; /* staging: field names of the record being checked */
    uint32_t seen_gen;
    /* Contract (contract.c); NULL without the contract option. */
    struct sl_contract *contract;
    char *contract_path;
    int closed; /* the contract's root has additionalProperties: false */
    /*
     * partition: {column, value} (stage.c): NULL without the option. When set the sink is
     * staged, every staged record holds part_col = part_val, and publish(ACCEPT) deletes
     * the target's rows with that value in the transaction that inserts the staged ones.
     */
    char *part_col, *part_val;
};

enum row_status { ROW_OK = 0, ROW_UNKNOWN, ROW_REJECT, ROW_FAIL };

struct row_ctx {
    struct sqlite_sink *s;
    sqlite3_stmt *st; /* insert or group */
    int base;         /* parameter offset of the row in st */
    uint32_t pos;     /* position of the field in the record */
    int status;       /* enum row_status */
    sl_rc rc;         /* ROW_FAIL */
    char why[300];    /* ROW_REJECT: the message */
    /* ROW_REJECT: the dead-letter queue's fields (struct sl_reject_info). */
    const char *cls;  /* "sink" or "contract" */
    const char *rule; /* what the record broke, e.g. "key_missing", "unique" */
    char path[80];    /* "$.field", "$" for the record as a whole */
};

/* ---- sqlite.c: names ------------------------------------------------------------------ */

/* FNV-1a of the ASCII-folded name (SQLite compares identifiers ignoring ASCII case). */
uint32_t sl__sqlite_fold_hash(const char *s, size_t n);

/* 1 when a and b name the same SQLite identifier (ASCII case ignored). */
int sl__sqlite_name_eq(const char *a, size_t an, const char *b, size_t bn);

/* Index of the table's column called name (invariant 2), or -1. */
int32_t sl__sqlite_find_col(const struct sqlite_sink *s, const char *name, size_t n);

/* Append name as a quoted identifier. SL_OK or the buffer's error. */
sl_rc sl__sqlite_put_ident(struct sl_buf *b, const char *name, size_t n);

/* ---- sqlite.c: database helpers --------------------------------------------------------- */

/*
 * Turn SQLite's result src of the step `what` into an sl_rc with err set: SL_RETRY for
 * BUSY/LOCKED/FULL, SL_ENOMEM, else SL_EDB naming the database, table and SQLite's message.
 */
sl_rc sl__sqlite_db_error(struct sqlite_sink *s, int src, struct sl_error *err, const char *what);

/* Prepare sql[0..n) (persistent) into *st; *st is NULL on error. */
sl_rc sl__sqlite_prepare(struct sqlite_sink *s, const char *sql, size_t n, sqlite3_stmt **st,
                         struct sl_error *err);

/* Run one statement without results; several (a DDL script) with exec_script. */
sl_rc sl__sqlite_exec_sql(struct sqlite_sink *s, const char *sql, size_t n, const char *what,
                          struct sl_error *err);
sl_rc sl__sqlite_exec_script(struct sqlite_sink *s, const char *sql, const char *what,
                             struct sl_error *err);

/* Step a prepared statement that returns nothing, then reset it. */
sl_rc sl__sqlite_step_done(struct sqlite_sink *s, sqlite3_stmt *st, const char *what,
                           struct sl_error *err);

/* Read the table's columns (invariants 1, 2, 4) and drop the insert statements. */
sl_rc sl__sqlite_load_columns(struct sqlite_sink *s, struct sl_error *err);

/*
 * End a failed transaction: reset the statements, roll back when one is open, forget the
 * schema (its DDL was undone too). Returns rc.
 */
sl_rc sl__sqlite_abort_batch(struct sqlite_sink *s, sl_rc rc);

/* ---- sqlite.c: rows ----------------------------------------------------------------------- */

/* Fill the structured part of a rejection (class, rule, "$.key" or "$"); sets ROW_REJECT. */
void sl__sqlite_why_set(struct row_ctx *c, const char *cls, const char *rule, const char *key,
                        size_t klen);

/* Mark r rejected with the reason and structured fields left in c. */
void sl__sqlite_reject_row(struct sqlite_sink *s, struct sl_batch *b, struct sl_record *r,
                           const struct row_ctx *c);

/* Parse r when needed; 1 when it is an object, else 0 with r rejected. */
int sl__sqlite_record_ready(struct sqlite_sink *s, struct sl_batch *b, struct sl_record *r,
                            struct sl_worker *w);

/*
 * Upsert the live records of b into the target, inside the open transaction (rows the
 * table refuses are rejected). SL_OK unless the transaction must be rolled back;
 * *written counts the rows.
 */
sl_rc sl__sqlite_write_rows(struct sqlite_sink *s, struct sl_batch *b, struct sl_worker *w,
                            int64_t *written, struct sl_error *err);

/* ---- contract.c ----------------------------------------------------------------------------- */

/* *closed = 1 when c's root says additionalProperties: false. */
sl_rc sl__sqlite_contract_is_closed(const struct sl_contract *c, int *closed, struct sl_error *err);

/*
 * At init with a contract (s->contract loaded): create the table or evolve it and store
 * the contract, in one transaction; SL_ECONFIG listing the breaking changes when the
 * stored contract is not backward compatible with the new one.
 */
sl_rc sl__sqlite_contract_apply(struct sqlite_sink *s, struct sl_error *err);

/* ---- stage.c -------------------------------------------------------------------------------- */

/*
 * Append the live records of b to _sluice_staging inside the open transaction, after the
 * checks a write to the target would make; *seq is the next row's number, *staged counts
 * the rows.
 */
sl_rc sl__sqlite_stage_rows(struct sqlite_sink *s, struct sl_batch *b, struct sl_worker *w,
                            const char *source, int64_t *seq, int64_t *staged,
                            struct sl_error *err);

/* At init (not inspect): drop what an earlier run left staged; prepare staging if staged. */
sl_rc sl__sqlite_staging_open(struct sqlite_sink *s, int staged, struct sl_error *err);

/*
 * At init: read the partition option ({column: C, value: V}) into s->part_col/part_val;
 * SL_ECONFIG when malformed, outside `run --once`, or when the run is not staged.
 */
sl_rc sl__sqlite_partition_open(struct sqlite_sink *s, const struct sl_plugin_ctx *ctx,
                                struct sl_error *err);

/* The plugin's publish callback (plugin.h). */
sl_rc sl__sqlite_publish(void *state, int verdict, sl_publish_keep_fn keep, void *keep_ctx,
                         struct sl_error *err);

#endif
