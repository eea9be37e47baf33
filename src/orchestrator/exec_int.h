/*
 * exec_int.h - the executor's structures, shared by exec.c and scheduler.c.
 *
 * See exec.c for how the executor works.
 */
#ifndef SLUICE_EXEC_INT_H
#define SLUICE_EXEC_INT_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "orchestrator/orch_int.h"

/*
 * One job of one active partition.
 *
 * Invariants:
 *   1. ready == 1 only while st is NONE or RETRY: the job may start now.
 *   2. tries counts attempts started by this process for this run; a job whose tries
 *      exceed its retries is final.
 */
struct sl__xjob {
    enum sl_dag_job_state st;
    unsigned attempt;   /* the last attempt number (continues across runs) */
    unsigned tries;     /* attempts in this run */
    int64_t not_before; /* RETRY: monotonic ms when it may start again */
    int ready;
    int upstream_failed; /* SKIPPED because a dependency failed */
};

/*
 * A claimed partition in flight.
 *
 * Invariants:
 *   1. left == number of jobs whose st is not final (success, failed, skipped, killed).
 *   2. running == number of slots whose part is this partition.
 */
struct sl__xpart {
    int64_t idx;
    char key[SL_DAG_KEY_MAX];
    struct sl__xjob *jobs;
    size_t left, running;
    int64_t started_ms;
    int logdir_made; /* the log directory exists (made on the first output) */
    char logdir[PATH_MAX];
};

/* A running child. pid == 0: free. */
struct sl__xslot {
    pid_t pid; /* also its process group id */
    struct sl__xpart *part;
    size_t job;
    unsigned attempt;
    int64_t start_ms, start_mono;
    int64_t deadline; /* monotonic ms of the timeout, 0 = none */
    int64_t term_at;  /* when SIGTERM was sent, 0 = not yet */
    int timed_out, killed;
    int out_fd;     /* read end of the job's stdout+stderr pipe, -1 when closed */
    int log_fd;     /* the log file, opened on the first byte, -1 before */
    int log_failed; /* the log could not be created: output is dropped */
    int64_t logged; /* bytes written to the log */
    char *head;     /* the log's first lines (what runs) */
    char log[PATH_MAX];
    char tmpcfg[PATH_MAX]; /* pipeline jobs: the expanded copy to remove afterwards */
};

/*
 * Invariants:
 *   1. nparts <= d->max_active_runs; parts[] is in the order partitions were added.
 *   2. nrunning <= d->concurrency == number of slots with pid != 0.
 */
struct sl__exec {
    struct sl_dag *d;
    struct sl_dag_run_opts opts;
    struct sl__dagdb *db;
    struct sl__alerter *alerter;
    struct sl__xpart **parts;
    size_t nparts;
    struct sl__xslot *slots;
    size_t nrunning;
    size_t done, total; /* for progress */
    int want_more;      /* more partitions may come: keep waiting when nparts == 0 */
    int again;          /* the last step changed something: step again without sleeping */
    int handlers;
    int64_t stop_at; /* monotonic ms when a stop was seen, 0 = none */
    int64_t t0;
    char self_exe[PATH_MAX];
    struct sl_dag_summary sum;
};

sl_rc sl__exec_create(struct sl_dag *d, const struct sl_dag_run_opts *o, struct sl__exec **out,
                      struct sl_error *err);
void sl__exec_destroy(struct sl__exec *x);

/*
 * Claim partition idx and make it active (scheduled_at: Unix seconds, 0 = unknown).
 * *added = 0 when it was done already or another process holds it. SL_AGAIN when
 * max_active_runs partitions are active.
 */
sl_rc sl__exec_add(struct sl__exec *x, int64_t idx, int64_t scheduled_at, int *added,
                   struct sl_error *err);

/* One iteration: reap, time out, start, finish, commit; then sleep up to max_wait_ms. */
sl_rc sl__exec_step(struct sl__exec *x, int64_t max_wait_ms, struct sl_error *err);

size_t sl__exec_active(const struct sl__exec *x);
int sl__exec_stop_requested(void);

#endif
