/*
 * dagrun.h - running a DAG's partitions: run, backfill, scheduler, and the state they
 * leave in <state_dir>/dag.db.
 *
 * One executor (exec.c) runs the jobs of any number of partitions as child processes,
 * at most `concurrency` at once, each in its own process group with its output captured
 * to a file; it honours dependencies and trigger rules, retries with back-off, kills a
 * timed-out job's whole process group, and records every attempt. A partition is claimed
 * in the state database before any of its jobs runs, so two processes never run the same
 * partition (and hence the same partition job) at once; a claim whose process died is
 * taken over, and what that process had finished is kept.
 *
 * Threading: one thread drives an executor (alerts are delivered by a helper thread of
 * its own). SIGCHLD is caught (a self-pipe wakes the loop) while an executor exists.
 */
#ifndef SLUICE_DAGRUN_H
#define SLUICE_DAGRUN_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/rc.h"

struct sl_dag;

/* States of a job within one partition run (and of one attempt). */
enum sl_dag_job_state {
    SL_DAG_JOB_NONE = 0, /* not decided yet (waiting for dependencies) */
    SL_DAG_JOB_RUNNING,
    SL_DAG_JOB_RETRY, /* an attempt failed; another one follows after the back-off */
    SL_DAG_JOB_SUCCESS,
    SL_DAG_JOB_FAILED,  /* finally (retries exhausted) */
    SL_DAG_JOB_SKIPPED, /* its trigger rule was not met (e.g. upstream failed) */
    SL_DAG_JOB_KILLED,  /* stopped by a shutdown */
    SL_DAG_JOB_TIMEOUT, /* an attempt that ran past `timeout` (attempts only) */
    SL_DAG_JOB_LOST     /* an attempt whose sluice process died (attempts only) */
};

enum sl_dag_run_state {
    SL_DAG_RUN_NONE = 0,
    SL_DAG_RUN_RUNNING,
    SL_DAG_RUN_SUCCESS,
    SL_DAG_RUN_FAILED,
    SL_DAG_RUN_KILLED
};

/* Progress callback: a partition finished (or was found done or busy). */
struct sl_dag_progress {
    size_t done, total;  /* partitions finished (any state) / to do */
    size_t failed;       /* of done, failed */
    size_t jobs_running; /* at this moment */
    const char *key;     /* the partition just finished */
    enum sl_dag_run_state state;
    int busy; /* 1: skipped because another process holds it */
};
typedef void (*sl_dag_progress_fn)(const struct sl_dag_progress *p, void *ctx);

struct sl_dag_run_opts {
    int force;           /* run finished partitions again (run --partition) */
    const char *trigger; /* "run", "backfill", "scheduler" (stored with the run) */
    sl_dag_progress_fn progress;
    void *progress_ctx;
    const char *self_exe;     /* the sluice binary for pipeline jobs (default
                                 /proc/self/exe) */
    const char *metrics_file; /* scheduler: Prometheus text written here every tick */
};

struct sl_dag_summary {
    size_t partitions; /* in the range */
    size_t succeeded, failed, skipped_done, busy, killed;
    size_t job_runs; /* attempts started */
    double elapsed_s;
};

/*
 * Run the partitions [from, to] (indices, inclusive) of d in order of time, at most
 * d->max_active_runs partitions and d->concurrency jobs at once. Without force, a
 * partition that already succeeded is skipped and one that failed or was interrupted
 * resumes (its succeeded jobs are kept). A partition another live process holds is
 * skipped (counted in busy).
 *
 * Returns SL_OK when every job run finished (sum->failed may be > 0: the caller decides the
 * exit code); SL_ECANCELED when stopped by sl_dag_request_stop (running jobs were given
 * the DAG's kill_grace, then their groups killed; they are recorded as killed); SL_EDB /
 * SL_EIO for state or system failures.
 */
sl_rc sl_dag_run_range(struct sl_dag *d, int64_t from, int64_t to, const struct sl_dag_run_opts *o,
                       struct sl_dag_summary *sum, struct sl_error *err);

/*
 * The scheduler: runs until sl_dag_request_stop, firing each DAG's partitions when their
 * scheduled time has come (catchup, max_active_runs), resuming partitions a previous
 * scheduler left unfinished, and raising SLA alerts. Time comes from SLUICE_NOW (Unix
 * seconds or RFC 3339, advancing with the wall clock from when the process started) when
 * set, for tests. Returns SL_OK after a clean stop.
 */
sl_rc sl_dag_scheduler(struct sl_dag **dags, size_t n, const struct sl_dag_run_opts *o,
                       struct sl_error *err);

/* Async-signal-safe: stop firing; let running jobs finish for kill_grace, then kill. */
void sl_dag_request_stop(void);

/* ---- state, for `dag status` ---------------------------------------------------- */

struct sl_dag_cell {
    enum sl_dag_job_state state;
    unsigned attempts;
    int64_t duration_ms; /* of the last attempt; -1 when none */
    int exit_code;       /* of the last attempt; -1 when none */
    int sig;             /* signal that ended it, 0 when none */
    char *log;           /* path of the last attempt's log, or NULL */
};

struct sl_dag_row {
    char key[24];
    enum sl_dag_run_state state;
    char trigger[16];
    int64_t started_ms, ended_ms, scheduled_s; /* 0 when unknown */
    int64_t owner_pid;                         /* while running */
    int sla_missed;
    struct sl_dag_cell *cells; /* by job index */
};

struct sl_dag_status {
    struct sl_dag_row *rows; /* by partition key ascending */
    size_t nrows;
    size_t njobs; /* cells per row */
    size_t alerts_pending;
};

/*
 * Read the runs of partitions [from, to] (keys, inclusive; NULL for open ends).
 * SL_ENOENT when the state database does not exist yet (nothing ever ran).
 */
sl_rc sl_dag_status_read(const struct sl_dag *d, const char *from, const char *to,
                         struct sl_dag_status *st, struct sl_error *err);
void sl_dag_status_fini(struct sl_dag_status *st);

const char *sl_dag_job_state_name(enum sl_dag_job_state s);
const char *sl_dag_run_state_name(enum sl_dag_run_state s);

#endif
