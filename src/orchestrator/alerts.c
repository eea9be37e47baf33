/*
 * alerts.c - raising the orchestrator's alerts exactly once per condition.
 *
 * An alert (an SLA miss, a job whose retries are exhausted) is first recorded in the
 * state database under a stable id ("sla_miss/nightly/2026-11-26",
 * "job_failed/nightly/2026-11-26/extract/3"), in the same transaction as the state change
 * that caused it. Recording is idempotent (INSERT OR IGNORE), so a condition seen again
 * (after a restart, by a second process) raises nothing new.
 *
 * Delivery is the alerter's: a thread of its own with its own connection to the state,
 * woken after the executor commits (sl__alerter_kick), never while the write lock is held
 * and never in the executor's loop (a webhook that times out would otherwise hold up
 * reaping, timeouts and the start of jobs). Every alert without a sent_at is logged and
 * POSTed to the webhook (alert.h), then marked sent. After a failed delivery the alerter
 * waits RETRY_MS before trying again. An alert whose delivery failed, or whose process
 * died while delivering, stays pending and is delivered later by this or the next
 * executor or scheduler: at least once, with the id as the receivers' Idempotency-Key.
 *
 *   idle --kick or RETRY_MS--> deliver pending --ok--> idle
 *                                  `--a failure--> idle (next try after RETRY_MS)
 *   stop: one last pass if kicked (until the first failure), then the thread ends
 *
 * The counts (alerts raised, pending) are kept in the database; `sluice dag status`
 * shows them and the scheduler's --metrics-file exports them.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sluice/alert.h"
#include "sluice/alloc.h"
#include "sluice/log.h"

#include "orchestrator/orch_int.h"

#define MAX_PENDING 64 /* delivered per pass; the rest wait for the next one */
#define RETRY_MS 30000 /* after a failed delivery */

void sl__dag_alert(struct sl__dagdb *db, const struct sl_dag *d, const char *kind, const char *key,
                   const char *job, unsigned seq, const char *fmt, ...)
{
    char msg[1024], id[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int l = snprintf(id, sizeof id, "%s/%s/%s%s%s", kind, d->name, key ? key : "-", job ? "/" : "",
                     job ? job : "");
    if (seq && l > 0 && (size_t)l < sizeof id)
        snprintf(id + l, sizeof id - (size_t)l, "/%u", seq);
    int fresh = 0;
    struct sl_error err;
    sl_error_clear(&err);
    if (sl__dagdb_alert_add(db, id, kind, key, job, msg, &fresh, &err)) {
        /* The alert cannot be recorded: say it now rather than lose it. */
        sl_log(SL_LOG_ERROR, "alert", "kind=%s dag=%s partition=%s job=%s: %s (not recorded: %s)",
               kind, d->name, key ? key : "-", job ? job : "-", msg, err.msg);
        return;
    }
    if (fresh)
        db->alerts_new = 1;
}

static const char q_pending[] =
    "SELECT id, kind, partition, job, message, created_at FROM alerts WHERE sent_at IS NULL"
    " ORDER BY created_at LIMIT 64";

struct pending {
    char id[512], kind[32], key[SL_DAG_KEY_MAX], job[80], msg[1024];
    int has_key, has_job;
    int64_t at;
};

/*
 * The alerter.
 *
 * Invariants:
 *   1. kick, stop and the thread's lifetime are guarded by mu.
 *   2. Only the thread touches db (its own connection) and list.
 */
struct sl__alerter {
    const struct sl_dag *d;
    struct sl__dagdb *db;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int kick, stop;
    struct pending list[MAX_PENDING];
};

/* One pass over the pending alerts; returns -1 after the first failed delivery. */
static int deliver(struct sl__alerter *al, int stop_at_failure)
{
    const struct sl_dag *d = al->d;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(al->db->db, q_pending, -1, &st, NULL) != SQLITE_OK)
        return -1;
    size_t n = 0;
    while (n < MAX_PENDING && sqlite3_step(st) == SQLITE_ROW) {
        struct pending *a = &al->list[n++];
        memset(a, 0, sizeof *a);
        snprintf(a->id, sizeof a->id, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(a->kind, sizeof a->kind, "%s", (const char *)sqlite3_column_text(st, 1));
        a->has_key = sqlite3_column_type(st, 2) != SQLITE_NULL;
        if (a->has_key)
            snprintf(a->key, sizeof a->key, "%s", (const char *)sqlite3_column_text(st, 2));
        a->has_job = sqlite3_column_type(st, 3) != SQLITE_NULL;
        if (a->has_job)
            snprintf(a->job, sizeof a->job, "%s", (const char *)sqlite3_column_text(st, 3));
        const char *m = (const char *)sqlite3_column_text(st, 4);
        snprintf(a->msg, sizeof a->msg, "%s", m ? m : "");
        a->at = sqlite3_column_int64(st, 5) / 1000;
    }
    sqlite3_finalize(st);
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        struct pending *p = &al->list[i];
        struct sl_alert a = {
            p->kind, d->name, p->has_key ? p->key : NULL, p->has_job ? p->job : NULL, p->msg,
            p->at,   p->id};
        struct sl_error err;
        sl_error_clear(&err);
        sl_rc rc = sl_alert_raise(&a, d->webhook, (long)d->webhook_timeout_ms, &err);
        if (rc) {
            sl_log(SL_LOG_ERROR, "alert",
                   "alert %s not delivered: %s; it stays pending and is sent again later "
                   "(by this process in %d s, or the next run or scheduler)",
                   p->id, err.msg[0] ? err.msg : sl_strerror(rc), RETRY_MS / 1000);
            failed = 1;
            if (stop_at_failure || d->webhook)
                break; /* the webhook is down: do not wait for it once per alert */
            continue;
        }
        sl_error_clear(&err);
        if (sl__dagdb_alert_sent(al->db, p->id, &err))
            sl_log(SL_LOG_ERROR, "alert", "alert %s delivered but not marked: %s", p->id, err.msg);
    }
    return failed ? -1 : 0;
}

static void *alerter_main(void *arg)
{
    struct sl__alerter *al = arg;
    int64_t next_try = 0; /* ms, wall clock; 0: at once */
    pthread_mutex_lock(&al->mu);
    for (;;) {
        while (!al->stop && !(al->kick && sl__now_ms() >= next_try)) {
            /* Wake for a kick, a stop, or the next retry of what is pending. */
            int64_t wake = next_try ? next_try : sl__now_ms() + RETRY_MS;
            struct timespec ts = {(time_t)(wake / 1000), (long)(wake % 1000) * 1000000};
            int r = pthread_cond_timedwait(&al->cv, &al->mu, &ts);
            if (r == ETIMEDOUT && next_try) {
                al->kick = 1; /* retry what failed */
                if (sl__now_ms() >= next_try)
                    break;
            }
        }
        int stopping = al->stop;
        int kicked = al->kick;
        al->kick = 0;
        pthread_mutex_unlock(&al->mu);
        int r = 0;
        /* Stopping right after a failure: the webhook is down; do not hold up the exit. */
        if (kicked && !(stopping && next_try > sl__now_ms()))
            r = deliver(al, stopping);
        pthread_mutex_lock(&al->mu);
        next_try = r ? sl__now_ms() + RETRY_MS : 0;
        if (stopping)
            break;
    }
    pthread_mutex_unlock(&al->mu);
    return NULL;
}

sl_rc sl__alerter_start(const struct sl_dag *d, struct sl__alerter **out, struct sl_error *err)
{
    *out = NULL;
    struct sl__alerter *al = sl_calloc(1, sizeof *al);
    if (!al)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    al->d = d;
    sl_rc rc = sl__dagdb_open(d->state_dir, 1, &al->db, err);
    if (rc) {
        sl_free(al);
        return rc;
    }
    pthread_mutex_init(&al->mu, NULL);
    pthread_cond_init(&al->cv, NULL);
    /* Signals go to the main thread (whose poll they wake), never to this one. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&al->thread, NULL, alerter_main, al);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        pthread_mutex_destroy(&al->mu);
        pthread_cond_destroy(&al->cv);
        sl__dagdb_close(al->db);
        sl_free(al);
        return sl_error_sys(err, SL_EIO, e, "cannot start the alert thread");
    }
    *out = al;
    return SL_OK;
}

void sl__alerter_kick(struct sl__alerter *al)
{
    if (!al)
        return;
    pthread_mutex_lock(&al->mu);
    al->kick = 1;
    pthread_cond_signal(&al->cv);
    pthread_mutex_unlock(&al->mu);
}

void sl__alerter_stop(struct sl__alerter *al)
{
    if (!al)
        return;
    pthread_mutex_lock(&al->mu);
    al->stop = 1;
    pthread_cond_signal(&al->cv);
    pthread_mutex_unlock(&al->mu);
    pthread_join(al->thread, NULL);
    pthread_mutex_destroy(&al->mu);
    pthread_cond_destroy(&al->cv);
    sl__dagdb_close(al->db);
    sl_free(al);
}
