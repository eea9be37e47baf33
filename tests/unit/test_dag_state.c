/*
 * test_dag_state.c - the orchestrator's run state (src/orchestrator/store.c): claims are
 * exclusive between live processes, a claim whose owner died (or whose pid now belongs
 * to another process) is taken over with its running attempts recorded as lost and their
 * process groups killed, finished runs are not claimed again unless forced, a resumed run
 * keeps its succeeded jobs, alerts are recorded once, and status reads it all back.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "orchestrator/orch_int.h"
#include "sluice/dag.h"
#include "sluice/dagrun.h"
#include "test.h"

static char dir[256];

static struct sl_dag *load_dag(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/d.yaml", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return NULL;
    fprintf(f, "dag: st\nstate_dir: state\njobs:\n  a: {command: x}\n"
               "  b: {command: x, depends_on: a}\n");
    fclose(f);
    struct sl_dag *d = NULL;
    struct sl_error err;
    sl_error_clear(&err);
    if (sl_dag_load(path, &d, &err))
        fprintf(stderr, "%s\n", err.msg);
    return d;
}

/* A pid that is certainly dead: a child that exited and was reaped. */
static pid_t dead_pid(void)
{
    pid_t p = fork();
    if (p == 0)
        _exit(0);
    waitpid(p, NULL, 0);
    return p;
}

static void set_owner(struct sl__dagdb *db, const char *key, int64_t pid, int64_t start)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "UPDATE runs SET owner_pid = %lld, owner_start = %lld WHERE partition = '%s'",
             (long long)pid, (long long)start, key);
    sqlite3_exec(db->db, sql, NULL, NULL, NULL);
}

static enum sl__claim claim(struct sl__dagdb *db, const struct sl_dag *d, const char *key,
                            int force, int64_t *busy, enum sl_dag_job_state *js, unsigned *att)
{
    struct sl_error err;
    sl_error_clear(&err);
    enum sl__claim res = 0;
    CHECK_INT(sl__dagdb_begin(db, &err), SL_OK);
    CHECK_INT(sl__dagdb_claim(db, d, key, "test", 0, force, &res, busy, js, att, &err), SL_OK);
    CHECK_INT(sl__dagdb_commit(db, &err), SL_OK);
    return res;
}

static void test_claims(void)
{
    struct sl_dag *d = load_dag();
    REQUIRE(d);
    struct sl__dagdb *db = NULL;
    struct sl_error err;
    sl_error_clear(&err);
    REQUIRE(sl__dagdb_open(d->state_dir, 1, &db, &err) == SL_OK);
    enum sl_dag_job_state js[2];
    unsigned att[2];
    int64_t busy = 0;
    int a = sl_dag_find(d, "a"), b = sl_dag_find(d, "b");

    /* A fresh partition is ours; claiming it again from the same process is too. */
    CHECK_INT(claim(db, d, "2026-11-26", 0, &busy, js, att), SL__CLAIMED);
    CHECK_INT(js[a], SL_DAG_JOB_NONE);

    /* A job runs in its own process group; then the owner "dies". */
    pid_t job = fork();
    if (job == 0) {
        setpgid(0, 0);
        execl("/bin/sleep", "sleep", "30", (char *)NULL);
        _exit(127);
    }
    setpgid(job, job);
    sl__dagdb_begin(db, &err);
    CHECK_INT(sl__dagdb_attempt_start(db, "2026-11-26", "a", 1, job, 1000, "/x/a.1.log", &err),
              SL_OK);
    sl__dagdb_commit(db, &err);
    set_owner(db, "2026-11-26", dead_pid(), 0);

    /* Taken over: the attempt is lost and its process group killed. */
    CHECK_INT(claim(db, d, "2026-11-26", 0, &busy, js, att), SL__CLAIMED);
    int status = 0;
    CHECK_INT(waitpid(job, &status, 0), job);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    sqlite3_stmt *q = NULL;
    sqlite3_prepare_v2(db->db, "SELECT state FROM attempts WHERE job = 'a' AND attempt = 1", -1, &q,
                       NULL);
    REQUIRE(q && sqlite3_step(q) == SQLITE_ROW);
    CHECK_STR((const char *)sqlite3_column_text(q, 0), "lost");
    sqlite3_finalize(q);
    CHECK_INT(js[a], SL_DAG_JOB_NONE); /* lost: runs again */
    CHECK_INT(att[a], 1);              /* numbering goes on from the last attempt */

    /* A live owner (our parent, start time unknown) holds it: busy. */
    set_owner(db, "2026-11-26", (int64_t)getppid(), 0);
    CHECK_INT(claim(db, d, "2026-11-26", 0, &busy, js, att), SL__BUSY);
    CHECK_INT(busy, getppid());
    /* The same pid with another start time is another process: the claim is stale. */
    set_owner(db, "2026-11-26", (int64_t)getppid(), 1);
    CHECK_INT(claim(db, d, "2026-11-26", 0, &busy, js, att), SL__CLAIMED);

    /* a succeeded, b failed, the run failed: a resume keeps a, runs b. */
    sl__dagdb_begin(db, &err);
    sl__dagdb_attempt_start(db, "2026-11-26", "a", 2, getpid(), 2000, NULL, &err);
    sl__dagdb_attempt_end(db, "2026-11-26", "a", 2, SL_DAG_JOB_SUCCESS, 0, 0, 2500,
                          SL_DAG_JOB_SUCCESS, &err);
    sl__dagdb_attempt_start(db, "2026-11-26", "b", 1, getpid(), 2600, NULL, &err);
    sl__dagdb_attempt_end(db, "2026-11-26", "b", 1, SL_DAG_JOB_FAILED, 3, 0, 2700,
                          SL_DAG_JOB_FAILED, &err);
    sl__dagdb_run_end(db, "2026-11-26", SL_DAG_RUN_FAILED, 2800, &err);
    CHECK_INT(sl__dagdb_commit(db, &err), SL_OK);
    CHECK_INT(claim(db, d, "2026-11-26", 0, &busy, js, att), SL__CLAIMED);
    CHECK_INT(js[a], SL_DAG_JOB_SUCCESS);
    CHECK_INT(js[b], SL_DAG_JOB_NONE);
    CHECK_INT(att[a], 2);
    CHECK_INT(att[b], 1);

    /* A finished run is done, unless forced; forced, every job runs again. */
    sl__dagdb_begin(db, &err);
    sl__dagdb_run_end(db, "2026-11-26", SL_DAG_RUN_SUCCESS, 3000, &err);
    sl__dagdb_commit(db, &err);
    CHECK_INT(claim(db, d, "2026-11-26", 0, &busy, js, att), SL__DONE);
    CHECK_INT(claim(db, d, "2026-11-26", 1, &busy, js, att), SL__CLAIMED);
    CHECK_INT(js[a], SL_DAG_JOB_NONE);
    CHECK_INT(js[b], SL_DAG_JOB_NONE);
    enum sl_dag_run_state rs;
    CHECK_INT(sl__dagdb_run_state(db, "2026-11-26", &rs, &err), SL_OK);
    CHECK_INT(rs, SL_DAG_RUN_RUNNING);
    CHECK_INT(sl__dagdb_run_state(db, "2026-11-25", &rs, &err), SL_OK);
    CHECK_INT(rs, SL_DAG_RUN_NONE);

    /* Alerts: recorded once per id. */
    int fresh = -1;
    sl__dagdb_begin(db, &err);
    CHECK_INT(sl__dagdb_alert_add(db, "sla_miss/st/2026-11-26", "sla_miss", "2026-11-26", NULL,
                                  "late", &fresh, &err),
              SL_OK);
    CHECK_INT(fresh, 1);
    CHECK_INT(sl__dagdb_alert_add(db, "sla_miss/st/2026-11-26", "sla_miss", "2026-11-26", NULL,
                                  "late", &fresh, &err),
              SL_OK);
    CHECK_INT(fresh, 0);
    sl__dagdb_commit(db, &err);

    /* meta */
    int found = 1;
    int64_t v = 0;
    CHECK_INT(sl__dagdb_meta_get(db, "since", &v, &found, &err), SL_OK);
    CHECK_INT(found, 0);
    sl__dagdb_meta_set(db, "since", 42, &err);
    CHECK_INT(sl__dagdb_meta_get(db, "since", &v, &found, &err), SL_OK);
    CHECK_INT(found, 1);
    CHECK_INT(v, 42);
    sl__dagdb_close(db);

    /* Status: the run (ours, alive: running), its cells, the SLA flag, pending alerts. */
    struct sl_dag_status st;
    CHECK_INT(sl_dag_status_read(d, NULL, NULL, &st, &err), SL_OK);
    REQUIRE(st.nrows == 1);
    CHECK_STR(st.rows[0].key, "2026-11-26");
    CHECK_INT(st.rows[0].state, SL_DAG_RUN_RUNNING);
    CHECK_INT(st.rows[0].sla_missed, 1);
    CHECK_INT(st.rows[0].cells[a].attempts, 2);
    CHECK_INT(st.rows[0].cells[b].exit_code, 3);
    CHECK_INT(st.rows[0].cells[b].duration_ms, 100);
    CHECK_INT(st.alerts_pending, 1);
    sl_dag_status_fini(&st);
    CHECK_INT(sl_dag_status_read(d, "2026-11-27", NULL, &st, &err), SL_OK);
    CHECK_INT(st.nrows, 0);
    sl_dag_status_fini(&st);
    sl_dag_destroy(d);
}

static void test_status_without_state(void)
{
    struct sl_dag *d = load_dag();
    REQUIRE(d);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/state'", dir);
    CHECK_INT(system(cmd), 0);
    struct sl_dag_status st;
    struct sl_error err;
    sl_error_clear(&err);
    CHECK_INT(sl_dag_status_read(d, NULL, NULL, &st, &err), SL_ENOENT);
    CHECK_INT(st.nrows, 0);
    sl_dag_destroy(d);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sluice-test-dagstate.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_claims);
    RUN(test_status_without_state);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return TEST_DONE();
}
