/*
 * scheduler.c - `sluice scheduler`: fire DAG runs when they are due, catch up, watch SLAs.
 *
 * Time. A partition's interval ends when the next one begins; it is due at the first
 * firing of the DAG's schedule at or after that end (sl_dag_part_scheduled): with
 * `schedule: "0 2 * * *"` and daily partitions, 2026-11-26 is due at 2026-11-27 02:00 in
 * the DAG's time zone. At time now, the latest due partition is the one that ends at or
 * before the last firing (sl_cron_prev(now)).
 *
 * What fires. Each DAG remembers in its state when a scheduler first ran it ("since").
 * With catchup (the default) every partition from `start` (or, without it, the one due
 * at "since") up to the latest due one runs, oldest first, at most max_active_runs at
 * once; without catchup only the latest due one. A partition fires when it has no run
 * yet. One with a run left `running` by a dead process is resumed (store.c takes the
 * stale claim over); a failed or killed one is not retried by the scheduler (use `dag
 * backfill` or `dag run`). Because firing is "claim a partition that has no finished run"
 * in one transaction, a scheduler killed at any point and restarted fires nothing twice:
 * finished partitions have rows, and interrupted ones resume with their finished jobs
 * kept.
 *
 * SLA. A partition due at S with `sla: D` must have succeeded by S + D. Once that moment
 * passes without success, an sla_miss alert is raised once (its id is stable and recorded:
 * alerts.c), the run is flagged (status shows it). Only partitions whose deadline falls
 * after "since" are watched, so a first start with a `start` two years back does not
 * raise seven hundred alerts for history.
 *
 * Stopping. sl_dag_request_stop (SIGTERM, SIGINT): nothing new fires; running jobs get
 * kill_grace to finish, then their process groups are killed and recorded as killed
 * (exec.c); the runs are recorded `killed`, and a later scheduler does not resume them by
 * itself (they need a backfill, which is a decision for an operator).
 *
 * SLUICE_NOW (Unix seconds or YYYY-MM-DDTHH:MM:SSZ) sets the scheduler's clock at start
 * (it advances in real time from there), for tests and dry rehearsals.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sluice/alloc.h"
#include "sluice/buf.h"
#include "sluice/cron.h"
#include "sluice/log.h"

#include "orchestrator/exec_int.h"

struct sched {
    struct sl__exec *x;
    int64_t since;      /* first start of any scheduler on this state (Unix s) */
    int64_t sla_cursor; /* partitions before it need no more SLA checks */
    int64_t next_fire;  /* next firing after the last check */
};

static int64_t clock_base = -1, mono_base;
static int64_t clock_offset; /* scheduler time - wall time (SLUICE_NOW), seconds */

static int64_t mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

/* Parse SLUICE_NOW: digits, or 2026-11-27T02:00:00Z. -1 when malformed. */
static int64_t parse_now(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*s && !*end)
        return v;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p || (*p && strcmp(p, "Z") != 0))
        return -1;
    return (int64_t)timegm(&tm);
}

static int64_t now_s(void)
{
    if (clock_base < 0)
        return (int64_t)time(NULL);
    return clock_base + (mono_s() - mono_base);
}

static int active(const struct sl__exec *x, int64_t idx)
{
    for (size_t i = 0; i < x->nparts; i++)
        if (x->parts[i]->idx == idx)
            return 1;
    return 0;
}

/* Fire what is due; returns when the next firing is (Unix s), or INT64_MAX. */
static sl_rc fire(struct sched *s, int64_t now, struct sl_error *err)
{
    struct sl__exec *x = s->x;
    struct sl_dag *d = x->d;
    s->next_fire = INT64_MAX;
    if (!d->cron)
        return SL_OK;
    int64_t f = sl_cron_prev(d->cron, now);
    int64_t nf = sl_cron_next(d->cron, now);
    if (nf > 0)
        s->next_fire = nf;
    if (f < 0)
        return SL_OK;
    int64_t latest = sl_dag_part_at(d, f) - 1;
    int64_t first = latest;
    if (d->catchup && d->start != INT64_MIN) {
        first = d->start;
    } else if (d->catchup) {
        /* From the partition due at the first start (at least the latest due one). */
        first = sl_dag_part_at(d, s->since) - 1;
        if (first > latest)
            first = latest;
    }
    /* Nothing before `start`, with or without catchup. */
    if (d->start != INT64_MIN && first < d->start)
        first = d->start;
    /* Scheduled partitions may not be due yet when the schedule fires inside the
     * interval (e.g. every hour for daily partitions): only those whose time came. */
    for (int64_t p = first; p <= latest && x->nparts < d->max_active_runs; p++) {
        if (active(x, p))
            continue;
        char key[SL_DAG_KEY_MAX];
        sl_dag_part_key(d, p, key);
        enum sl_dag_run_state st;
        sl_rc rc = sl__dagdb_run_state(x->db, key, &st, err);
        if (rc)
            return rc;
        if (st != SL_DAG_RUN_NONE && st != SL_DAG_RUN_RUNNING)
            continue;
        int64_t sched = sl_dag_part_scheduled(d, p);
        if (sched < 0 || sched > now)
            continue;
        int added = 0;
        if ((rc = sl__exec_add(x, p, sched, &added, err)))
            return rc;
        if (added)
            sl_log(SL_LOG_INFO, "scheduler", "%s %s: %s run (due %lld)", d->name, key,
                   st == SL_DAG_RUN_RUNNING ? "resuming an interrupted" : "firing",
                   (long long)sched);
    }
    return SL_OK;
}

static sl_rc check_sla(struct sched *s, int64_t now, struct sl_error *err)
{
    struct sl__exec *x = s->x;
    struct sl_dag *d = x->d;
    if (!d->sla_ms || !d->cron)
        return SL_OK;
    int64_t f = sl_cron_prev(d->cron, now);
    if (f < 0)
        return SL_OK;
    int64_t latest = sl_dag_part_at(d, f) - 1;
    for (int64_t p = s->sla_cursor; p <= latest; p++) {
        int64_t sched = sl_dag_part_scheduled(d, p);
        if (sched < 0)
            break;
        int64_t deadline = sched + (int64_t)(d->sla_ms / 1000);
        if (deadline > now)
            break;
        if (deadline < s->since) {
            if (p == s->sla_cursor)
                s->sla_cursor = p + 1;
            continue;
        }
        char key[SL_DAG_KEY_MAX];
        sl_dag_part_key(d, p, key);
        enum sl_dag_run_state st;
        sl_rc rc = sl__dagdb_run_state(x->db, key, &st, err);
        if (rc)
            return rc;
        int done_in_time = 0;
        if (st == SL_DAG_RUN_SUCCESS) {
            /* Succeeded: in time unless it ended after the deadline. */
            sqlite3_stmt *q = NULL;
            if (sqlite3_prepare_v2(x->db->db, "SELECT ended_at FROM runs WHERE partition = ?", -1,
                                   &q, NULL) == SQLITE_OK) {
                sqlite3_bind_text(q, 1, key, -1, SQLITE_TRANSIENT);
                if (sqlite3_step(q) == SQLITE_ROW)
                    done_in_time =
                        sqlite3_column_int64(q, 0) + clock_offset * 1000 <= deadline * 1000;
            }
            sqlite3_finalize(q);
        }
        if (!done_in_time) {
            if ((rc = sl__dagdb_begin(x->db, err)))
                return rc;
            sl__dag_alert(x->db, d, "sla_miss", key, NULL, 0,
                          "dag %s partition %s missed its SLA: not succeeded %llu s after it was "
                          "due (%s)",
                          d->name, key, (unsigned long long)(d->sla_ms / 1000),
                          st == SL_DAG_RUN_NONE      ? "not started at the deadline"
                          : st == SL_DAG_RUN_SUCCESS ? "it succeeded later"
                                                     : sl_dag_run_state_name(st));
            if ((rc = sl__dagdb_commit(x->db, err)))
                return rc;
        }
        if (p == s->sla_cursor)
            s->sla_cursor = p + 1;
    }
    if (x->db->alerts_new) {
        x->db->alerts_new = 0;
        sl__alerter_kick(x->alerter);
    }
    return SL_OK;
}

/*
 * The metrics file: Prometheus text exposition (format 0.0.4) for a textfile collector,
 * written to a temporary name and renamed, so a reader never sees half of it.
 */
static void write_metrics(struct sched *s, size_t n, const char *path)
{
    struct sl_buf b;
    sl_buf_init(&b, 4u << 20);
    sl_buf_puts(&b, "# HELP sluice_dag_runs Partition runs in the state, by state.\n"
                    "# TYPE sluice_dag_runs gauge\n");
    for (size_t i = 0; i < n; i++) {
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(s[i].x->db->db, "SELECT state, count(*) FROM runs GROUP BY state",
                               -1, &q, NULL) != SQLITE_OK)
            continue;
        while (sqlite3_step(q) == SQLITE_ROW)
            sl_buf_printf(&b, "sluice_dag_runs{dag=\"%s\",state=\"%s\"} %lld\n", s[i].x->d->name,
                          (const char *)sqlite3_column_text(q, 0),
                          (long long)sqlite3_column_int64(q, 1));
        sqlite3_finalize(q);
    }
    static const char *const kinds[][3] = {
        {"sla_miss", "sluice_dag_sla_misses_total", "Partitions that missed their SLA."},
        {"job_failed", "sluice_dag_job_failures_total",
         "Jobs that failed with their retries exhausted."}};
    for (size_t k = 0; k < 2; k++) {
        sl_buf_printf(&b, "# HELP %s %s\n# TYPE %s counter\n", kinds[k][1], kinds[k][2],
                      kinds[k][1]);
        for (size_t i = 0; i < n; i++) {
            sqlite3_stmt *q = NULL;
            long long c = 0;
            if (sqlite3_prepare_v2(s[i].x->db->db, "SELECT count(*) FROM alerts WHERE kind = ?", -1,
                                   &q, NULL) == SQLITE_OK) {
                sqlite3_bind_text(q, 1, kinds[k][0], -1, SQLITE_STATIC);
                if (sqlite3_step(q) == SQLITE_ROW)
                    c = sqlite3_column_int64(q, 0);
            }
            sqlite3_finalize(q);
            sl_buf_printf(&b, "%s{dag=\"%s\"} %lld\n", kinds[k][1], s[i].x->d->name, c);
        }
    }
    sl_buf_puts(&b, "# HELP sluice_dag_alerts_pending Alerts not delivered yet.\n"
                    "# TYPE sluice_dag_alerts_pending gauge\n");
    for (size_t i = 0; i < n; i++) {
        sqlite3_stmt *q = NULL;
        long long c = 0;
        if (sqlite3_prepare_v2(s[i].x->db->db, "SELECT count(*) FROM alerts WHERE sent_at IS NULL",
                               -1, &q, NULL) == SQLITE_OK &&
            sqlite3_step(q) == SQLITE_ROW)
            c = sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
        sl_buf_printf(&b, "sluice_dag_alerts_pending{dag=\"%s\"} %lld\n", s[i].x->d->name, c);
    }
    sl_buf_puts(&b, "# HELP sluice_dag_jobs_running Jobs running now.\n"
                    "# TYPE sluice_dag_jobs_running gauge\n");
    for (size_t i = 0; i < n; i++)
        sl_buf_printf(&b, "sluice_dag_jobs_running{dag=\"%s\"} %zu\n", s[i].x->d->name,
                      s[i].x->nrunning);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f) {
        int ok = fwrite(b.data, 1, b.len, f) == b.len;
        ok &= fclose(f) == 0;
        if (ok)
            rename(tmp, path);
        else
            unlink(tmp);
    }
    sl_buf_fini(&b);
}

/* Resume runs a dead scheduler left `running` (whatever their partition). */
static sl_rc resume_orphans(struct sched *s, struct sl_error *err)
{
    struct sl__exec *x = s->x;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(x->db->db,
                           "SELECT partition FROM runs WHERE state = 'running' AND"
                           " trigger = 'scheduler' ORDER BY partition",
                           -1, &q, NULL) != SQLITE_OK)
        return sl_error_set(err, SL_EDB, "run state database: %s", sqlite3_errmsg(x->db->db));
    int64_t keys[256];
    size_t n = 0;
    while (n < 256 && sqlite3_step(q) == SQLITE_ROW) {
        int64_t idx;
        if (sl_dag_part_parse(x->d, (const char *)sqlite3_column_text(q, 0), &idx) == 0)
            keys[n++] = idx;
    }
    sqlite3_finalize(q);
    for (size_t i = 0; i < n && x->nparts < x->d->max_active_runs; i++) {
        int added = 0;
        sl_rc rc = sl__exec_add(x, keys[i], 0, &added, err);
        if (rc)
            return rc;
        if (added)
            sl_log(SL_LOG_INFO, "scheduler", "%s: resuming partition %s left unfinished",
                   x->d->name, x->parts[x->nparts - 1]->key);
    }
    return SL_OK;
}

sl_rc sl_dag_scheduler(struct sl_dag **dags, size_t n, const struct sl_dag_run_opts *o,
                       struct sl_error *err)
{
    const char *env = getenv("SLUICE_NOW");
    if (env && *env) {
        clock_base = parse_now(env);
        if (clock_base < 0)
            return sl_error_set(err, SL_EINVAL,
                                "SLUICE_NOW=\"%s\" is not Unix seconds or "
                                "YYYY-MM-DDTHH:MM:SSZ",
                                env);
        mono_base = mono_s();
        clock_offset = clock_base - (int64_t)time(NULL);
    }
    struct sched *s = sl_calloc(n ? n : 1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    struct sl_dag_run_opts opts = o ? *o : (struct sl_dag_run_opts){0};
    opts.trigger = "scheduler";
    opts.force = 0;
    sl_rc rc = SL_OK;
    int64_t now = now_s();
    for (size_t i = 0; i < n; i++) {
        if ((rc = sl__exec_create(dags[i], &opts, &s[i].x, err)))
            goto out;
        s[i].x->want_more = 1;
        int found = 0;
        struct sl__dagdb *db = s[i].x->db;
        if ((rc = sl__dagdb_meta_get(db, "scheduler_since", &s[i].since, &found, err)))
            goto out;
        if (!found) {
            s[i].since = now;
            if ((rc = sl__dagdb_meta_set(db, "scheduler_since", now, err)))
                goto out;
        }
        /* SLA watching starts with the partitions due around "since". */
        s[i].sla_cursor = sl_dag_part_at(dags[i], s[i].since) - 2;
        if (!dags[i]->cron)
            sl_log(SL_LOG_WARN, "scheduler", "%s has no schedule: nothing will fire for it",
                   dags[i]->name);
        sl__alerter_kick(s[i].x->alerter); /* what an earlier process left undelivered */
        if ((rc = resume_orphans(&s[i], err)))
            goto out;
        sl_log(SL_LOG_INFO, "scheduler", "%s: scheduling (%s, catchup %s, max_active_runs %u)",
               dags[i]->name, dags[i]->schedule ? dags[i]->schedule : "no schedule",
               dags[i]->catchup ? "on" : "off", dags[i]->max_active_runs);
    }
    for (;;) {
        int stopping = sl__exec_stop_requested();
        size_t busy = 0;
        now = now_s();
        int64_t wake = now + 1;
        for (size_t i = 0; i < n; i++) {
            if (!stopping) {
                if ((rc = fire(&s[i], now, err)) || (rc = check_sla(&s[i], now, err)))
                    goto out;
                if (s[i].next_fire < wake)
                    wake = s[i].next_fire;
            }
            s[i].x->want_more = !stopping;
            busy += s[i].x->nparts;
        }
        if (opts.metrics_file)
            write_metrics(s, n, opts.metrics_file);
        if (stopping && busy == 0)
            break;
        int64_t wait_ms = (wake - now) * 1000;
        if (wait_ms > 1000)
            wait_ms = 1000;
        if (wait_ms < 10)
            wait_ms = 10;
        if (n > 1)
            wait_ms = wait_ms > 200 ? 200 : wait_ms;
        for (size_t i = 0; i < n; i++)
            if ((rc = sl__exec_step(s[i].x, wait_ms, err)))
                goto out;
    }
out:
    for (size_t i = 0; i < n; i++)
        sl__exec_destroy(s[i].x);
    sl_free(s);
    return rc;
}
