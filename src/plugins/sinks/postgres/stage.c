/*
 * stage.c - the postgres sink's staged mode: write-audit-publish and `partition`.
 *
 * Started with ctx->staged (a `run --once` whose quality gates watch this sink, or a sink
 * with `partition`), process() commits each batch to two real tables beside the target
 * instead of to the target (invariant 5 in pg_int.h):
 *
 *     _sluice_staging (pipeline, sink, seq, id, doc)   the records, in arrival order
 *     _sluice_staged  (pipeline, sink, source, position, records)   the positions
 *
 * They must be real tables, not TEMP ones: every batch commits on its own, and publish()
 * may run on a new connection after an outage. publish() then ends the run in one
 * transaction per verdict:
 *
 *   ACCEPT      [DELETE FROM target WHERE C = V]; upsert every staged record (the last
 *               one per key wins) into the target; move the staged positions into
 *               _sluice_checkpoints (records added); empty the staging; COMMIT.
 *   DISCARD     empty the staging; positions stay where they were.
 *   QUARANTINE  hand every staged record to keep() (its original text, byte-exact, and
 *               its id), then keep(NULL) (the unit is durable); then one transaction
 *               moves the positions (records not added: nothing was written) and empties
 *               the staging.
 *
 * A crash at any point leaves either the old target and checkpoints with some staging
 * (removed by the next run's init, which starts from the old checkpoint) or the new
 * target and checkpoints with empty staging. A record the target refuses at publish time
 * fails the publish; nothing is published and the next run starts again from the old
 * checkpoint.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg_int.h"
#include "sluice/log.h"

sl_rc sl__pg_staging_open(struct pg_sink *s, struct sl_error *err)
{
    char q[800];
    sl_rc rc;
    if (s->staged) {
        snprintf(q, sizeof q,
                 "CREATE TABLE IF NOT EXISTS %s (pipeline text NOT NULL, sink text NOT NULL,"
                 " seq bigint NOT NULL, id text NOT NULL, doc text NOT NULL,"
                 " PRIMARY KEY (pipeline, sink, seq))",
                 s->qstaging);
        if ((rc = sl__pg_exec(s, q, "creating the staging table", err)))
            return rc;
        snprintf(q, sizeof q,
                 "CREATE TABLE IF NOT EXISTS %s (pipeline text NOT NULL, sink text NOT NULL,"
                 " source text NOT NULL, position text, records bigint NOT NULL DEFAULT 0,"
                 " PRIMARY KEY (pipeline, sink, source))",
                 s->qstaged);
        if ((rc = sl__pg_exec(s, q, "creating the staged positions table", err)))
            return rc;
    }
    PGresult *res;
    const char *v[] = {s->qstaging, s->qstaged};
    if ((rc = sl__pg_params(s, "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL",
                            2, v, &res, "looking for staging tables", err)))
        return rc;
    int have = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    s->stage_seq = 0;
    if (!have)
        return SL_OK;
    /* Whatever an earlier run left staged was never published: drop it. */
    snprintf(q, sizeof q,
             "WITH a AS (DELETE FROM %s WHERE pipeline = $1 AND sink = $2 RETURNING 1),"
             " b AS (DELETE FROM %s WHERE pipeline = $1 AND sink = $2 RETURNING 1)"
             " SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM b)",
             s->qstaging, s->qstaged);
    const char *v2[] = {s->pipeline, s->name};
    if ((rc = sl__pg_params(s, q, 2, v2, &res, "clearing an earlier run's staging", err)))
        return rc;
    if (strcmp(PQgetvalue(res, 0, 0), "0") != 0)
        sl_info(s->name,
                "dropped %s records an earlier run staged but never published (it did not "
                "finish); this run reads them again",
                PQgetvalue(res, 0, 0));
    PQclear(res);
    return SL_OK;
}

sl_rc sl__pg_stage_rows(struct pg_sink *s, struct sl_error *err)
{
    char q[600], seq[32];
    snprintf(seq, sizeof seq, "%" PRId64, s->stage_seq);
    snprintf(q, sizeof q,
             "INSERT INTO %s (pipeline, sink, seq, id, doc) SELECT $1, $2, $3::bigint + n, id, doc"
             " FROM _sluice_batch",
             s->qstaging);
    const char *v[] = {s->pipeline, s->name, seq};
    return sl__pg_params(s, q, 3, v, NULL, "staging the batch", err);
}

/* Move the staged positions to _sluice_checkpoints and empty the staging (in a transaction). */
static sl_rc commit_positions(struct pg_sink *s, int add_records, struct sl_error *err)
{
    char q[900], ns[32];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(ns, sizeof ns, "%" PRIu64, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
    snprintf(q, sizeof q,
             "INSERT INTO %s AS c (pipeline, sink, source, position, records, committed_ns)"
             " SELECT pipeline, sink, source, position, %s, $3::bigint FROM %s"
             " WHERE pipeline = $1 AND sink = $2 ON CONFLICT (pipeline, sink, source) DO UPDATE"
             " SET position = EXCLUDED.position, records = c.records + EXCLUDED.records,"
             " committed_ns = EXCLUDED.committed_ns",
             s->qckpt, add_records ? "records" : "0", s->qstaged);
    const char *v[] = {s->pipeline, s->name, ns};
    sl_rc rc = sl__pg_params(s, q, 3, v, NULL, "committing the staged positions", err);
    if (rc)
        return rc;
    snprintf(q, sizeof q, "DELETE FROM %s WHERE pipeline = $1 AND sink = $2; ", s->qstaging);
    if ((rc = sl__pg_params(s, q, 2, v, NULL, "emptying the staging", err)))
        return rc;
    snprintf(q, sizeof q, "DELETE FROM %s WHERE pipeline = $1 AND sink = $2", s->qstaged);
    return sl__pg_params(s, q, 2, v, NULL, "emptying the staged positions", err);
}

static sl_rc publish_accept(struct pg_sink *s, int64_t *rows, struct sl_error *err)
{
    sl_rc rc;
    char q[600];
    const char *v[] = {s->pipeline, s->name};
    if ((rc = sl__pg_load_columns(s, err)))
        return rc;
    if (s->part_col && s->part_col_i >= 0) {
        struct sl_buf *d = &s->sql;
        sl_buf_clear(d);
        if ((rc = sl_buf_puts(d, "DELETE FROM ")) || (rc = sl_buf_puts(d, s->qtable)) ||
            (rc = sl_buf_puts(d, " WHERE ")) ||
            (rc = sl__pg_put_ident(d, s->part_col, strlen(s->part_col))) ||
            (rc = sl_buf_puts(d, " = $1")) || (rc = sl_buf_cstr(d)))
            return sl_error_set(err, rc, "building SQL: %s", sl_strerror(rc));
        PGresult *res;
        const char *pv[] = {s->part_val};
        if ((rc = sl__pg_params(s, d->data, 1, pv, &res, "replacing the partition", err)))
            return rc;
        sl_info(s->name, "replacing partition %s = %s of %s: %s old rows deleted", s->part_col,
                s->part_val, s->qtable, PQcmdTuples(res));
        PQclear(res);
    }
    PGresult *res;
    snprintf(q, sizeof q, "SELECT count(*) FROM %s WHERE pipeline = $1 AND sink = $2", s->qstaging);
    if ((rc = sl__pg_params(s, q, 2, v, &res, "counting the staged records", err)))
        return rc;
    *rows = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (*rows == 0)
        return SL_OK;
    if ((s->key ? s->key_col : s->id_col) < 0)
        return sl_error_set(err, SL_ESTATE, "sink %s: conflict column %s is missing from %s",
                            s->name, s->target, s->qtable);
    if ((rc = sl__pg_insert_sql(s, &s->sql, s->qstaging, "s.pipeline = $1 AND s.sink = $2", "seq")))
        return sl_error_set(err, rc, "building SQL: %s", sl_strerror(rc));
    rc = sl__pg_params(s, s->sql.data, 2, v, NULL, "publishing the staged records", err);
    if (rc == SL_EDB)
        sl_error_prefix(err, "the table refused a staged record, so nothing was published and "
                             "the checkpoint is unchanged; fix the table or the data and run "
                             "again: ");
    return rc;
}

static int parse_rid(const char *t, uint64_t id[2])
{
    if (!t || strlen(t) != 32)
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

static sl_rc publish_quarantine(struct pg_sink *s, sl_publish_keep_fn keep, void *keep_ctx,
                                int64_t *rows, struct sl_error *err)
{
    char q[400];
    PGresult *res;
    const char *v[] = {s->pipeline, s->name};
    snprintf(q, sizeof q, "SELECT id, doc FROM %s WHERE pipeline = $1 AND sink = $2 ORDER BY seq",
             s->qstaging);
    sl_rc rc = sl__pg_params(s, q, 2, v, &res, "reading the staged records", err);
    if (rc)
        return rc;
    int n = PQntuples(res);
    for (int i = 0; i < n && rc == SL_OK; i++) {
        uint64_t id[2];
        const char *rid = PQgetvalue(res, i, 0);
        if (!parse_rid(rid, id)) {
            rc = sl_error_set(err, SL_ESTATE,
                              "sink %s: staged row %d in %s has a malformed record id; "
                              "nothing was quarantined past it",
                              s->name, i + 1, s->qstaging);
            break;
        }
        if ((rc = keep(keep_ctx, id, PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1), err))) {
            sl_error_prefix(err,
                            "sink %s: quarantining staged record %.32s: the checkpoint is "
                            "unchanged, so the next run reads these records again: ",
                            s->name, rid);
            break;
        }
        (*rows)++;
    }
    PQclear(res);
    if (rc)
        return rc;
    static const uint64_t none[2];
    if ((rc = keep(keep_ctx, none, NULL, 0, err))) {
        sl_error_prefix(err,
                        "sink %s: committing the quarantined records: the checkpoint is "
                        "unchanged, so the next run reads these records again: ",
                        s->name);
        return rc;
    }
    return SL_OK;
}

sl_rc sl__pg_publish(void *state, int verdict, sl_publish_keep_fn keep, void *keep_ctx,
                     struct sl_error *err)
{
    struct pg_sink *s = state;
    int64_t rows = 0;
    sl_rc rc;
    if (!s->staged)
        return SL_OK;
    if ((rc = sl__pg_connect(s, err)))
        return rc;
    if (verdict == SL_PUBLISH_QUARANTINE) {
        if (!keep)
            return sl_error_set(err, SL_EINVAL, "sink %s: quarantine verdict without a store",
                                s->name);
        if ((rc = publish_quarantine(s, keep, keep_ctx, &rows, err)))
            return rc;
    } else if (verdict != SL_PUBLISH_ACCEPT && verdict != SL_PUBLISH_DISCARD) {
        return sl_error_set(err, SL_EINVAL, "sink %s: unknown publish verdict %d", s->name,
                            verdict);
    }
    if ((rc = sl__pg_exec(s, "BEGIN", "starting the publish transaction", err)))
        return sl__pg_abort(s, rc);
    if (verdict == SL_PUBLISH_ACCEPT)
        rc = publish_accept(s, &rows, err);
    if (rc == SL_OK) {
        if (verdict == SL_PUBLISH_DISCARD) {
            char q[300];
            const char *v[] = {s->pipeline, s->name};
            snprintf(q, sizeof q, "DELETE FROM %s WHERE pipeline = $1 AND sink = $2", s->qstaging);
            rc = sl__pg_params(s, q, 2, v, NULL, "discarding the staging", err);
            if (rc == SL_OK) {
                snprintf(q, sizeof q, "DELETE FROM %s WHERE pipeline = $1 AND sink = $2",
                         s->qstaged);
                rc = sl__pg_params(s, q, 2, v, NULL, "discarding the staged positions", err);
            }
        } else {
            rc = commit_positions(s, verdict == SL_PUBLISH_ACCEPT, err);
        }
    }
    if (rc || (rc = sl__pg_exec(s, "COMMIT", "committing the publish", err)))
        return sl__pg_abort(s, rc);
    s->stage_seq = 0;
    sl_info(s->name, "%s %" PRId64 " staged records%s",
            verdict == SL_PUBLISH_ACCEPT    ? "published"
            : verdict == SL_PUBLISH_DISCARD ? "discarded"
                                            : "quarantined",
            rows, verdict == SL_PUBLISH_ACCEPT ? "" : " (the target table is unchanged)");
    return SL_OK;
}
