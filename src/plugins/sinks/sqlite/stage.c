/*
 * stage.c - write-audit-publish for the sqlite sink: the staging journal and publish().
 *
 * When the engine starts the sink staged (ctx->staged: a `run --once` whose quality gates
 * watch this sink's records), process() appends each live record to _sluice_staging (its
 * id and its JSON, edits applied) and each batch's position to _sluice_staged, in the
 * batch's one transaction, and never touches the target or _sluice_checkpoints (invariant
 * 7 in sqlite_int.h). publish() then ends the run with one transaction per verdict:
 * ACCEPT replays the journal through the ordinary write path into the target and moves
 * the staged positions into _sluice_checkpoints; DISCARD empties the journal; QUARANTINE
 * hands every journal record to the quarantine store and, once the store has committed
 * them, moves the positions and empties the journal. A start drops whatever an earlier
 * run left staged. docs/internals/sqlite-sink.md walks through a crash at every step.
 *
 * The staging checks (stage_field) are the sink's rejections that do not need the target
 * table, so that records the sink would refuse are rejected, and kept in the dead-letter
 * queue, during the run rather than at publish.
 *
 * Partitions (`partition: {column: C, value: V}`, `run --once` only, always staged): a
 * record holding another value in C is rejected while staging (rule "partition"), one
 * without C gets C = V (as text) before it is staged, and ACCEPT first deletes the
 * target's rows WHERE C = V in the publish transaction, so the partition is replaced
 * whole or not at all.
 *
 * Threading: the sink's thread only, like the rest of the sink.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/alloc.h"
#include "sluice/log.h"
#include "sluice/record.h"
#include "sqlite_int.h"

/* ---- staging checks ---------------------------------------------------------------------- */

/* Checks a staged record gets: the ones writing it to the target would make later. */
struct stage_ctx {
    struct sqlite_sink *s;
    struct row_ctx *c;
    uint32_t nfields;
    int has_key;
    int has_part; /* the record holds the partition column (with the partition's value) */
};

/*
 * 1 when v, a record's value for the partition column, is the partition's value V (text
 * from the YAML): a string equal to V; a number spelled as V or equal to V read as a
 * number; true/false when V is "true"/"false". null, arrays and objects never are.
 */
static int partition_value_is(const struct sqlite_sink *s, const struct sl_value *v)
{
    const char *pv = s->part_val;
    size_t n = strlen(pv);
    switch (v->type) {
    case SL_V_STRING:
        return v->len == n && memcmp(v->u.str, pv, n) == 0;
    case SL_V_NUMBER: {
        if (v->u.num.text && v->len == n && memcmp(v->u.num.text, pv, n) == 0)
            return 1;
        /* V read as a JSON-style number only: no hex, blanks, inf or nan */
        if (n == 0 || strspn(pv, "-+.0123456789eE") != n)
            return 0;
        char *end;
        double d = strtod(pv, &end);
        return *end == '\0' && d == v->u.num.d;
    }
    case SL_V_BOOL:
        return strcmp(pv, v->u.b ? "true" : "false") == 0;
    default:
        return 0;
    }
}

static int stage_field(void *ctx, const char *key, size_t klen, const struct sl_value *v)
{
    struct stage_ctx *k = ctx;
    struct sqlite_sink *s = k->s;
    struct row_ctx *c = k->c;
    int kl = (int)(klen > 64 ? 64 : klen);
    if (memchr(key, '\0', klen)) {
        snprintf(c->why, sizeof c->why,
                 "field name \"%.*s\" contains a NUL character, which no column name can hold", kl,
                 key);
        sl__sqlite_why_set(c, "sink", "column_name", key, klen);
        return 1;
    }
    if (++k->nfields + (s->id_column != NULL) > SQ_MAX_COLUMNS) {
        snprintf(c->why, sizeof c->why,
                 "record has more than %d fields, more than table %s can have as columns",
                 SQ_MAX_COLUMNS - (s->id_column != NULL), s->table);
        sl__sqlite_why_set(c, "sink", "column_limit", key, klen);
        return 1;
    }
    if (s->id_column && sl__sqlite_name_eq(key, klen, s->id_column, strlen(s->id_column))) {
        snprintf(c->why, sizeof c->why,
                 "field \"%.*s\" has the name of the id column; rename the field or set "
                 "id_column",
                 kl, key);
        sl__sqlite_why_set(c, "sink", "id_column", key, klen);
        return 1;
    }
    if (s->closed && sl__sqlite_find_col(s, key, klen) < 0) {
        snprintf(c->why, sizeof c->why,
                 "field \"%.*s\" is not a property of contract %s, which allows no others "
                 "(additionalProperties: false)",
                 kl, key, sl_contract_label(s->contract));
        sl__sqlite_why_set(c, "contract", "additionalProperties", key, klen);
        return 1;
    }
    uint32_t h = sl__sqlite_fold_hash(key, klen);
    uint32_t i = h & (SQ_SLOTS - 1);
    for (; s->seen[i].gen == s->seen_gen; i = (i + 1) & (SQ_SLOTS - 1)) {
        const struct sq_seen *e = &s->seen[i];
        if (e->hash == h && sl__sqlite_name_eq(e->key, e->len, key, klen)) {
            snprintf(c->why, sizeof c->why,
                     "two fields map to column \"%.*s\" (SQLite column names ignore case)",
                     (int)(e->len > 64 ? 64 : e->len), e->key);
            sl__sqlite_why_set(c, "sink", "column_collision", key, klen);
            return 1;
        }
    }
    s->seen[i] = (struct sq_seen){.gen = s->seen_gen, .len = (uint32_t)klen, .hash = h, .key = key};
    if (s->part_col && sl__sqlite_name_eq(key, klen, s->part_col, strlen(s->part_col))) {
        if (!partition_value_is(s, v)) {
            snprintf(c->why, sizeof c->why,
                     "partition column \"%.*s\" holds another value than this run's "
                     "partition \"%.64s\"; the run replaces only that partition",
                     kl, key, s->part_val);
            sl__sqlite_why_set(c, "sink", "partition", key, klen);
            return 1;
        }
        k->has_part = 1;
    }
    if (s->key && sl__sqlite_name_eq(key, klen, s->key, strlen(s->key))) {
        if (v->type == SL_V_NULL) {
            snprintf(c->why, sizeof c->why, "key field \"%s\" is null", s->key);
            sl__sqlite_why_set(c, "sink", "key_null", key, klen);
            return 1;
        }
        k->has_key = 1;
    }
    return 0;
}

/*
 * 1 when r passes the checks of stage_field, else 0 with c saying why. *has_part: r holds
 * the partition column.
 */
static int stage_check(struct sqlite_sink *s, struct sl_batch *b, struct sl_record *r,
                       struct row_ctx *c, int *has_part)
{
    struct stage_ctx k = {.s = s, .c = c};
    c->status = ROW_OK;
    if (++s->seen_gen == 0) {
        memset(s->seen, 0, sizeof s->seen);
        s->seen_gen = 1;
    }
    sl_record_foreach(r, &b->arena, stage_field, &k);
    if (c->status == ROW_OK && s->key && !k.has_key) {
        snprintf(c->why, sizeof c->why, "record has no key field \"%s\"", s->key);
        sl__sqlite_why_set(c, "sink", "key_missing", s->key, strlen(s->key));
    }
    *has_part = k.has_part;
    return c->status == ROW_OK;
}

/*
 * Append the live records of b to _sluice_staging (record id and the record as JSON,
 * edits applied), inside the open transaction. *seq is the next row's number; *staged
 * counts the rows.
 */
sl_rc sl__sqlite_stage_rows(struct sqlite_sink *s, struct sl_batch *b, struct sl_worker *w,
                            const char *source, int64_t *seq, int64_t *staged, struct sl_error *err)
{
    struct row_ctx c = {.s = s};
    sqlite3_stmt *st = s->stage_put;
    char rid[33];
    sl_rc rc = SL_OK;
    for (uint32_t i = 0; i < b->n && rc == SL_OK; i++) {
        struct sl_record *r = &b->recs[i];
        if (r->flags & (SL_REC_DROPPED | SL_REC_BAD))
            continue;
        if (!sl__sqlite_record_ready(s, b, r, w))
            continue;
        int has_part;
        if (!stage_check(s, b, r, &c, &has_part)) {
            sl__sqlite_reject_row(s, b, r, &c);
            continue;
        }
        if (s->part_col && !has_part) {
            /* The partition's value, as text (SQLite's column affinity types it). */
            struct sl_value pv = sl_value_string(s->part_val, strlen(s->part_val));
            rc = sl_record_set_key(r, s->part_col, strlen(s->part_col), &pv, &b->arena);
            if (rc == SL_ETYPE) {
                snprintf(c.why, sizeof c.why, "record is not an object");
                sl__sqlite_why_set(&c, "sink", "not_object", NULL, 0);
                sl__sqlite_reject_row(s, b, r, &c);
                rc = SL_OK;
                continue;
            }
            if (rc)
                return sl_error_set(err, rc, "setting the partition column: %s", sl_strerror(rc));
        }
        sl_buf_clear(&s->json);
        if ((rc = sl_record_write(r, &s->json)) == SL_ELIMIT) {
            snprintf(c.why, sizeof c.why, "record is larger than %zu MiB as JSON, the sink's limit",
                     SQ_JSON_MAX >> 20);
            sl__sqlite_why_set(&c, "sink", "value_too_large", NULL, 0);
            sl__sqlite_reject_row(s, b, r, &c);
            rc = SL_OK;
            continue;
        }
        if (rc)
            return sl_error_set(err, rc, "staging a record: %s", sl_strerror(rc));
        sl_record_id_format(r->id, rid);
        sqlite3_bind_text(st, 1, s->pipeline, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, s->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (*seq)++);
        if (source)
            sqlite3_bind_text(st, 4, source, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 4);
        sqlite3_bind_text(st, 5, rid, 32, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, s->json.len ? s->json.data : "", (int)s->json.len, SQLITE_STATIC);
        rc = sl__sqlite_step_done(s, st, "staging a record", err);
        sqlite3_clear_bindings(st);
        if (rc == SL_OK)
            (*staged)++;
    }
    return rc;
}

/* ---- publish (write-audit-publish) ------------------------------------------------------ */

static const char staging_tables[] =
    "CREATE TABLE IF NOT EXISTS _sluice_staging(pipeline TEXT NOT NULL, sink TEXT NOT NULL,"
    " seq INTEGER NOT NULL, source TEXT, rid TEXT NOT NULL, record TEXT NOT NULL,"
    " PRIMARY KEY(pipeline, sink, seq));"
    "CREATE TABLE IF NOT EXISTS _sluice_staged(pipeline TEXT NOT NULL, sink TEXT NOT NULL,"
    " source TEXT NOT NULL, position TEXT, records INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(pipeline, sink, source))";

/* Run sql (one statement) with ?1 = pipeline, ?2 = sink; *changes gets the rows changed. */
static sl_rc exec_mine(struct sqlite_sink *s, const char *sql, const char *what, int64_t *changes,
                       struct sl_error *err)
{
    sqlite3_stmt *st;
    sl_rc rc = sl__sqlite_prepare(s, sql, strlen(sql), &st, err);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, s->pipeline, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, s->name, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    rc = src == SQLITE_DONE ? SL_OK : sl__sqlite_db_error(s, src, err, what);
    if (rc == SL_OK && changes)
        *changes = sqlite3_changes(s->db);
    sqlite3_finalize(st);
    return rc;
}

/* Delete this sink's staged rows and positions (inside the caller's transaction). */
static sl_rc staging_clear(struct sqlite_sink *s, int64_t *rows, struct sl_error *err)
{
    sl_rc rc = exec_mine(s, "DELETE FROM _sluice_staging WHERE pipeline = ?1 AND sink = ?2",
                         "clearing the staged records", rows, err);
    if (rc == SL_OK)
        rc = exec_mine(s, "DELETE FROM _sluice_staged WHERE pipeline = ?1 AND sink = ?2",
                       "clearing the staged positions", NULL, err);
    return rc;
}

/*
 * Copy the staged positions into _sluice_checkpoints (inside the caller's transaction);
 * count: add the staged record counts to `records` (ACCEPT) or not (QUARANTINE).
 */
static sl_rc staging_commit_positions(struct sqlite_sink *s, int count, struct sl_error *err)
{
    static const char with_count[] =
        "INSERT INTO _sluice_checkpoints(pipeline, sink, source, position, records, updated_at)"
        " SELECT pipeline, sink, source, position, records,"
        " strftime('%Y-%m-%dT%H:%M:%fZ', 'now') FROM _sluice_staged"
        " WHERE pipeline = ?1 AND sink = ?2 AND position IS NOT NULL"
        " ON CONFLICT(pipeline, sink, source) DO UPDATE SET position = excluded.position,"
        " records = records + excluded.records, updated_at = excluded.updated_at";
    static const char without[] =
        "INSERT INTO _sluice_checkpoints(pipeline, sink, source, position, records, updated_at)"
        " SELECT pipeline, sink, source, position, 0,"
        " strftime('%Y-%m-%dT%H:%M:%fZ', 'now') FROM _sluice_staged"
        " WHERE pipeline = ?1 AND sink = ?2 AND position IS NOT NULL"
        " ON CONFLICT(pipeline, sink, source) DO UPDATE SET position = excluded.position,"
        " updated_at = excluded.updated_at";
    return exec_mine(s, count ? with_count : without, "committing the staged positions", NULL, err);
}

/* Parse 32 hex digits (as sl_record_id_format writes them) into id. 0 when malformed. */
static int parse_rid(const char *t, int n, uint64_t id[2])
{
    if (!t || n != 32)
        return 0;
    id[0] = id[1] = 0;
    for (int i = 0; i < 32; i++) {
        char ch = t[i];
        unsigned d = ch >= '0' && ch <= '9'   ? (unsigned)(ch - '0')
                     : ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10)
                                              : 16u;
        if (d > 15)
            return 0;
        id[i / 16] = id[i / 16] << 4 | d;
    }
    return 1;
}

static const char staged_sql[] = "SELECT rid, record FROM _sluice_staging"
                                 " WHERE pipeline = ?1 AND sink = ?2 ORDER BY seq";

/*
 * Upsert one chunk of staged records into the target (ACCEPT). The records passed the
 * sink's own checks when they were staged; a record the target table still refuses (a
 * constraint the table has beyond the sink's) fails the publish, since there is no
 * dead-letter queue to hand it to at this point.
 */
static sl_rc publish_chunk(struct sqlite_sink *s, struct sl_batch *b, int64_t *written,
                           struct sl_error *err)
{
    struct sl_worker w = {.parser = s->parser, .stage = s->name, .max_depth = s->max_depth};
    /*
     * Parse first, as the engine does before a sink sees a batch: columns are typed from
     * parsed values, so an unparsed chunk would type a new column from whichever record
     * happened to need it first (a null amount made the column TEXT).
     */
    for (uint32_t i = 0; i < b->n; i++) {
        struct sl_record *r = &b->recs[i];
        struct sl_json_error jerr;
        sl_rc prc = sl_record_parse(r, s->parser, s->max_depth, &b->arena, &jerr);
        if (prc == SL_ENOMEM)
            return sl_error_set(err, prc, "out of memory");
        if (prc) {
            char rid[33];
            sl_record_id_format(r->id, rid);
            return sl_error_set(err, SL_EDB,
                                "sink %s: staged record %s is not valid JSON any more (%s); "
                                "nothing was published and the checkpoint is unchanged",
                                s->name, rid, jerr.msg);
        }
    }
    sl_rc rc = sl__sqlite_write_rows(s, b, &w, written, err);
    if (s->insert) { /* invariant 5: nothing points into b */
        sqlite3_clear_bindings(s->insert);
        sqlite3_clear_bindings(s->group);
    }
    if (rc)
        return rc;
    for (uint32_t i = 0; i < b->n; i++) {
        const struct sl_record *r = &b->recs[i];
        if (r->flags & SL_REC_BAD) {
            char rid[33];
            sl_record_id_format(r->id, rid);
            return sl_error_set(err, SL_EDB,
                                "sink %s: publishing to table %s: staged record %s: %s; "
                                "nothing was published and the checkpoint is unchanged (the "
                                "next run stages the same records again): change the table "
                                "or the data",
                                s->name, s->table, rid, r->error);
        }
    }
    return SL_OK;
}

/*
 * partition: inside the publish transaction, delete the target's rows whose partition
 * column holds the partition's value (bound as text: a column with INTEGER or REAL
 * affinity compares it as a number). Nothing to do before the table or the column exist.
 */
static sl_rc partition_clear(struct sqlite_sink *s, struct sl_error *err)
{
    if (s->ncols == 0 || sl__sqlite_find_col(s, s->part_col, strlen(s->part_col)) < 0)
        return SL_OK;
    sqlite3_stmt *st;
    sl_buf_clear(&s->sql);
    sl_rc rc = sl_buf_puts(&s->sql, "DELETE FROM ");
    if (rc == SL_OK)
        rc = sl__sqlite_put_ident(&s->sql, s->table, strlen(s->table));
    if (rc == SL_OK)
        rc = sl_buf_puts(&s->sql, " WHERE ");
    if (rc == SL_OK)
        rc = sl__sqlite_put_ident(&s->sql, s->part_col, strlen(s->part_col));
    if (rc == SL_OK)
        rc = sl_buf_puts(&s->sql, " = ?1");
    if (rc)
        return sl_error_set(err, rc, "out of memory");
    if ((rc = sl__sqlite_prepare(s, s->sql.data, s->sql.len, &st, err)))
        return rc;
    sqlite3_bind_text(st, 1, s->part_val, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    rc = src == SQLITE_DONE ? SL_OK : sl__sqlite_db_error(s, src, err, "replacing the partition");
    if (rc == SL_OK)
        sl_info(s->name, "replacing partition %s = %s of table %s: %d rows deleted", s->part_col,
                s->part_val, s->table, sqlite3_changes(s->db));
    sqlite3_finalize(st);
    return rc;
}

static sl_rc publish_accept(struct sqlite_sink *s, int64_t *rows, struct sl_error *err)
{
    sqlite3_stmt *sel = NULL;
    struct sl_batch *b = NULL;
    int64_t written = 0;
    sl_rc rc;
    int src;
    if (!s->parser && sl_json_parser_create(&s->parser) != SL_OK)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    if (s->schema_stale) {
        if ((rc = sl__sqlite_load_columns(s, err)))
            return rc;
        s->schema_stale = 0;
    }
    if ((rc = sl__sqlite_step_done(s, s->begin, "starting the publish transaction", err)))
        return rc;
    if (s->part_col && (rc = partition_clear(s, err)))
        goto fail;
    if ((rc = sl__sqlite_prepare(s, staged_sql, sizeof staged_sql - 1, &sel, err)))
        goto fail;
    sqlite3_bind_text(sel, 1, s->pipeline, -1, SQLITE_STATIC);
    sqlite3_bind_text(sel, 2, s->name, -1, SQLITE_STATIC);
    while ((src = sqlite3_step(sel)) == SQLITE_ROW) {
        const char *rid = (const char *)sqlite3_column_text(sel, 0);
        int rn = sqlite3_column_bytes(sel, 0);
        const char *text = (const char *)sqlite3_column_text(sel, 1);
        int tn = sqlite3_column_bytes(sel, 1);
        if (!b && (rc = sl_batch_create(0, &b)))
            goto nomem;
        struct sl_record *r = sl_batch_add(b);
        char *copy = r ? sl_arena_dup(&b->arena, text ? text : "", (size_t)tn + 1) : NULL;
        if (!copy)
            goto nomem;
        r->text = r->orig = copy;
        r->text_len = r->orig_len = (uint32_t)tn;
        r->line = (uint32_t)(*rows + 1);
        if (!parse_rid(rid, rn, r->id)) {
            rc = sl_error_set(err, SL_ESTATE,
                              "sink %s: staged row %lld in _sluice_staging of %s has a malformed "
                              "record id; nothing was published",
                              s->name, (long long)*rows + 1, s->path);
            goto fail;
        }
        b->origin = "(staged records)";
        (*rows)++;
        if (b->n == 1024) {
            rc = publish_chunk(s, b, &written, err);
            sl_batch_unref(b);
            b = NULL;
            if (rc)
                goto fail;
        }
    }
    if (src != SQLITE_DONE) {
        rc = sl__sqlite_db_error(s, src, err, "reading the staged records");
        goto fail;
    }
    sqlite3_finalize(sel);
    sel = NULL;
    if (b) {
        rc = publish_chunk(s, b, &written, err);
        sl_batch_unref(b);
        b = NULL;
        if (rc)
            goto fail;
    }
    if ((rc = staging_commit_positions(s, 1, err)) || (rc = staging_clear(s, NULL, err)) ||
        (rc = sl__sqlite_step_done(s, s->commit, "committing the publish transaction", err)))
        goto fail;
    return SL_OK;
nomem:
    rc = sl_error_set(err, SL_ENOMEM, "out of memory");
fail:
    sqlite3_finalize(sel);
    sl_batch_unref(b);
    return sl__sqlite_abort_batch(s, rc);
}

static sl_rc publish_quarantine(struct sqlite_sink *s, sl_publish_keep_fn keep, void *keep_ctx,
                                int64_t *rows, struct sl_error *err)
{
    sqlite3_stmt *sel;
    sl_rc rc = sl__sqlite_prepare(s, staged_sql, sizeof staged_sql - 1, &sel, err);
    int src;
    if (rc)
        return rc;
    sqlite3_bind_text(sel, 1, s->pipeline, -1, SQLITE_STATIC);
    sqlite3_bind_text(sel, 2, s->name, -1, SQLITE_STATIC);
    while ((src = sqlite3_step(sel)) == SQLITE_ROW) {
        uint64_t id[2];
        const char *rid = (const char *)sqlite3_column_text(sel, 0);
        int rn = sqlite3_column_bytes(sel, 0);
        const char *text = (const char *)sqlite3_column_text(sel, 1);
        size_t tn = (size_t)sqlite3_column_bytes(sel, 1);
        if (!parse_rid(rid, rn, id)) {
            rc = sl_error_set(err, SL_ESTATE,
                              "sink %s: staged row %lld in _sluice_staging of %s has a malformed "
                              "record id; nothing was quarantined past it",
                              s->name, (long long)*rows + 1, s->path);
            break;
        }
        if ((rc = keep(keep_ctx, id, text ? text : "", tn, err))) {
            sl_error_prefix(err,
                            "sink %s: quarantining staged record %.32s: the checkpoint is "
                            "unchanged, so the next run reads these records again: ",
                            s->name, rid);
            break;
        }
        (*rows)++;
    }
    if (rc == SL_OK && src != SQLITE_DONE)
        rc = sl__sqlite_db_error(s, src, err, "reading the staged records");
    sqlite3_finalize(sel);
    if (rc)
        return rc;
    /* End of the unit: when this returns SL_OK the records are durable in the store. */
    static const uint64_t none[2];
    if ((rc = keep(keep_ctx, none, NULL, 0, err))) {
        sl_error_prefix(err,
                        "sink %s: committing the quarantined records: the checkpoint is "
                        "unchanged, so the next run reads these records again: ",
                        s->name);
        return rc;
    }
    if ((rc = sl__sqlite_step_done(s, s->begin, "starting the quarantine transaction", err)))
        return rc;
    if ((rc = staging_commit_positions(s, 0, err)) || (rc = staging_clear(s, NULL, err)) ||
        (rc = sl__sqlite_step_done(s, s->commit, "committing the quarantine transaction", err)))
        return sl__sqlite_abort_batch(s, rc);
    return SL_OK;
}

/*
 * publish: see plugin.h. Each verdict ends in one transaction that empties this sink's
 * staging; ACCEPT and QUARANTINE also move the staged positions to _sluice_checkpoints in
 * it. docs/internals/sqlite-sink.md walks through a crash at every point.
 */
sl_rc sl__sqlite_publish(void *state, int verdict, sl_publish_keep_fn keep, void *keep_ctx,
                         struct sl_error *err)
{
    struct sqlite_sink *s = state;
    int64_t rows = 0;
    sl_rc rc;
    if (s->inspect || !s->staged)
        return sl_error_set(err, SL_ESTATE,
                            "sink %s: publish called but the sink was not started for "
                            "write-audit-publish",
                            s->name);
    switch (verdict) {
    case SL_PUBLISH_ACCEPT:
        rc = publish_accept(s, &rows, err);
        if (rc == SL_OK)
            sl_info(s->name, "published %lld staged records to table %s", (long long)rows,
                    s->table);
        break;
    case SL_PUBLISH_DISCARD:
        if ((rc = sl__sqlite_step_done(s, s->begin, "starting the discard transaction", err)))
            return rc;
        if ((rc = staging_clear(s, &rows, err)) ||
            (rc = sl__sqlite_step_done(s, s->commit, "committing the discard transaction", err)))
            return sl__sqlite_abort_batch(s, rc);
        sl_info(s->name, "discarded %lld staged records; table %s and the checkpoint are unchanged",
                (long long)rows, s->table);
        break;
    case SL_PUBLISH_QUARANTINE:
        if (!keep)
            return sl_error_set(err, SL_EINVAL, "sink %s: quarantine verdict without a store",
                                s->name);
        rc = publish_quarantine(s, keep, keep_ctx, &rows, err);
        if (rc == SL_OK)
            sl_info(s->name, "quarantined %lld staged records; table %s is unchanged",
                    (long long)rows, s->table);
        break;
    default:
        return sl_error_set(err, SL_EINVAL, "sink %s: unknown publish verdict %d", s->name,
                            verdict);
    }
    if (rc == SL_OK)
        s->stage_seq = 0;
    return rc;
}

/*
 * Start of a run (not inspect): staged records an earlier run left (it crashed or failed
 * before publish) were never published and their positions never committed, so the
 * source delivers them again; drop them. Then, when this run stages, make the tables.
 */
sl_rc sl__sqlite_staging_open(struct sqlite_sink *s, int staged, struct sl_error *err)
{
    static const char q[] =
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sluice_staging'";
    static const char put[] = "INSERT INTO _sluice_staging(pipeline, sink, seq, source, rid, "
                              "record) VALUES(?1, ?2, ?3, ?4, ?5, ?6)";
    static const char pos[] =
        "INSERT INTO _sluice_staged(pipeline, sink, source, position, records)"
        " VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(pipeline, sink, source) DO UPDATE SET"
        " position = excluded.position, records = records + excluded.records";
    sqlite3_stmt *st;
    int64_t rows = 0;
    sl_rc rc = sl__sqlite_prepare(s, q, sizeof q - 1, &st, err);
    if (rc)
        return rc;
    int src = sqlite3_step(st);
    sqlite3_finalize(st);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return sl__sqlite_db_error(s, src, err, "looking for _sluice_staging");
    if (src == SQLITE_ROW) {
        if ((rc = sl__sqlite_step_done(s, s->begin, "starting a transaction", err)))
            return rc;
        if ((rc = staging_clear(s, &rows, err)) ||
            (rc = sl__sqlite_step_done(s, s->commit,
                                       "dropping the staged records of an earlier run", err)))
            return sl__sqlite_abort_batch(s, rc);
        if (rows)
            sl_warn(s->name,
                    "dropped %lld staged records an earlier run left unpublished; they are "
                    "read again from the last published position",
                    (long long)rows);
    }
    if (!staged)
        return SL_OK;
    s->staged = 1;
    if ((rc = sl__sqlite_exec_script(s, staging_tables, "creating the staging tables", err)) ||
        (rc = sl__sqlite_prepare(s, put, sizeof put - 1, &s->stage_put, err)) ||
        (rc = sl__sqlite_prepare(s, pos, sizeof pos - 1, &s->stage_pos, err)))
        return rc;
    return SL_OK;
}

sl_rc sl__sqlite_partition_open(struct sqlite_sink *s, const struct sl_plugin_ctx *ctx,
                                struct sl_error *err)
{
    const struct sl_cfg_node *pn = sl_cfg_get(ctx->node, "partition");
    const char *col = NULL, *val = NULL;
    if (!pn)
        return SL_OK;
    if (pn->kind != SL_CFG_MAP)
        return sl_cfg_error(err, pn, "sinks.%s.partition: must be a map {column: C, value: V}",
                            ctx->name);
    for (size_t i = 0; i < pn->n; i++) {
        const struct sl_cfg_pair *p = &pn->pairs[i];
        if (strcmp(p->key, "column") != 0 && strcmp(p->key, "value") != 0)
            return sl_cfg_error(err, p->val,
                                "sinks.%s.partition: unknown key \"%s\"; it takes column and "
                                "value",
                                ctx->name, p->key);
        if (p->val->kind != SL_CFG_SCALAR || p->val->is_null)
            return sl_cfg_error(err, p->val, "sinks.%s.partition.%s: must be a string", ctx->name,
                                p->key);
        if (strcmp(p->key, "column") == 0)
            col = p->val->str;
        else
            val = p->val->str;
    }
    if (!col || !*col || !val)
        return sl_cfg_error(err, pn,
                            "sinks.%s.partition: needs both column (a non-empty name) and value",
                            ctx->name);
    if (s->id_column && sl__sqlite_name_eq(col, strlen(col), s->id_column, strlen(s->id_column)))
        return sl_cfg_error(err, sl_cfg_get(pn, "column"),
                            "sinks.%s.partition.column: \"%s\" is the id column; name a field "
                            "of the records",
                            ctx->name, col);
    if (!ctx->once)
        return sl_cfg_error(err, pn,
                            "sinks.%s.partition: works only with `sluice run --once` (the run "
                            "replaces the partition as a whole when it ends); remove partition "
                            "for a streaming run",
                            ctx->name);
    if (!ctx->staged)
        return sl_cfg_error(err, pn,
                            "sinks.%s.partition: the run did not stage this sink "
                            "(write-audit-publish), so the partition cannot be replaced "
                            "atomically; this is a bug in sluice",
                            ctx->name);
    s->part_col = sl_strdup(col);
    s->part_val = sl_strdup(val);
    if (!s->part_col || !s->part_val)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    return SL_OK;
}
