/*
 * orch_int.h - internals shared by the orchestrator's files (store.c, exec.c,
 * scheduler.c): the run-state database.
 *
 * The database is <state_dir>/dag.db (SQLite, WAL, synchronous=NORMAL). Its tables are
 * described in store.c and docs/internals/orchestrator.md.
 */
#ifndef SLUICE_ORCH_INT_H
#define SLUICE_ORCH_INT_H

#include <stdint.h>
#include <sys/types.h>

#include <sqlite3.h>

#include "sluice/dag.h"
#include "sluice/dagrun.h"

/* Who holds a claim: a pid and that process's start time (so a reused pid is not us). */
struct sl__owner {
    int64_t pid;
    int64_t start; /* clock ticks since boot, from /proc/<pid>/stat; 0 when unknown */
};

struct sl__dagdb {
    sqlite3 *db;
    struct sl__owner self;
    int in_tx;
    int alerts_new; /* an alert was recorded and not yet delivered */
};

/* This process's identity, and whether owner o is a live process (not a reused pid). */
void sl__owner_self(struct sl__owner *o);
int sl__owner_alive(const struct sl__owner *o);

/* Milliseconds since the epoch (wall clock). */
int64_t sl__now_ms(void);

/*
 * Open (create == 1: create) <state_dir>/dag.db. SL_ENOENT when create == 0 and it does
 * not exist.
 */
sl_rc sl__dagdb_open(const char *state_dir, int create, struct sl__dagdb **out,
                     struct sl_error *err);
void sl__dagdb_close(struct sl__dagdb *db);

/* BEGIN IMMEDIATE (waits on another writer up to the busy timeout) / COMMIT. */
sl_rc sl__dagdb_begin(struct sl__dagdb *db, struct sl_error *err);
sl_rc sl__dagdb_commit(struct sl__dagdb *db, struct sl_error *err);
void sl__dagdb_rollback(struct sl__dagdb *db);

/* What claiming a partition found. */
enum sl__claim {
    SL__CLAIMED = 1, /* ours now */
    SL__BUSY,        /* a live process holds it (owner_pid set) */
    SL__DONE         /* finished with success and not forced */
};

/*
 * Claim partition key for this process, inside the caller's transaction. force: claim a
 * finished run too (every job runs again). A claim held by a dead process is taken over:
 * its attempts left `running` become `lost`, and the process groups they ran in are
 * killed (in case they outlived their parent). On SL__CLAIMED, jobstate[j] (for the DAG's
 * jobs, by index) is set to SL_DAG_JOB_SUCCESS for jobs already done that do not need to
 * run again (resume), SL_DAG_JOB_NONE otherwise; attempts[j] is the last attempt number.
 */
sl_rc sl__dagdb_claim(struct sl__dagdb *db, const struct sl_dag *d, const char *key,
                      const char *trigger, int64_t scheduled_at, int force, enum sl__claim *result,
                      int64_t *busy_pid, enum sl_dag_job_state *jobstate, unsigned *attempts,
                      struct sl_error *err);

sl_rc sl__dagdb_attempt_start(struct sl__dagdb *db, const char *key, const char *job,
                              unsigned attempt, pid_t pid, int64_t start_ms, const char *log,
                              struct sl_error *err);
sl_rc sl__dagdb_attempt_end(struct sl__dagdb *db, const char *key, const char *job,
                            unsigned attempt, enum sl_dag_job_state state, int exit_code, int sig,
                            int64_t end_ms, enum sl_dag_job_state job_state, struct sl_error *err);
/* A job decided without running (skipped by its trigger rule). */
sl_rc sl__dagdb_job_set(struct sl__dagdb *db, const char *key, const char *job,
                        enum sl_dag_job_state state, struct sl_error *err);
/* The run is over: state and end time; the claim is released. */
sl_rc sl__dagdb_run_end(struct sl__dagdb *db, const char *key, enum sl_dag_run_state state,
                        int64_t end_ms, struct sl_error *err);

/* A run's stored state, or SL_DAG_RUN_NONE when there is no row. */
sl_rc sl__dagdb_run_state(struct sl__dagdb *db, const char *key, enum sl_dag_run_state *st,
                          struct sl_error *err);

/*
 * Alerts: record alert id as pending (returns *fresh = 1 when it was not there before),
 * then mark it sent. A pending alert is one whose delivery has not succeeded yet.
 */
sl_rc sl__dagdb_alert_add(struct sl__dagdb *db, const char *id, const char *kind, const char *key,
                          const char *job, const char *message, int *fresh, struct sl_error *err);
sl_rc sl__dagdb_alert_sent(struct sl__dagdb *db, const char *id, struct sl_error *err);

/* Meta values (scheduler's first start and the like). */
sl_rc sl__dagdb_meta_get(struct sl__dagdb *db, const char *k, int64_t *v, int *found,
                         struct sl_error *err);
sl_rc sl__dagdb_meta_set(struct sl__dagdb *db, const char *k, int64_t v, struct sl_error *err);

/*
 * Raise an alert once (alerts.c): recorded in the store, inside the caller's transaction,
 * under the id kind/dag/key[/job][/seq] (a second raise of the same id is a no-op), and
 * db->alerts_new set; after the commit the caller kicks its alerter, which logs it and
 * sends it to the DAG's webhook.
 */
void sl__dag_alert(struct sl__dagdb *db, const struct sl_dag *d, const char *kind, const char *key,
                   const char *job, unsigned seq, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

/*
 * The alerter (alerts.c): a thread with its own connection to d's state that delivers
 * pending alerts when kicked (and retries failed ones every 30 s). start: SL_EDB, SL_EIO,
 * SL_ENOMEM. kick: deliver what is pending (call after a commit). stop: one last pass if
 * kicked, then join and free; accepts NULL.
 */
struct sl__alerter;
sl_rc sl__alerter_start(const struct sl_dag *d, struct sl__alerter **out, struct sl_error *err);
void sl__alerter_kick(struct sl__alerter *al);
void sl__alerter_stop(struct sl__alerter *al);

#endif
