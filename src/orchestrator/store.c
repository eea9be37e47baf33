/*
 * store.c - the orchestrator's run state: <state_dir>/dag.db.
 *
 * What it keeps. One SQLite database per DAG state directory:
 *
 *     runs(partition PK, state, trigger, scheduled_at, started_at, ended_at,
 *          owner_pid, owner_start, sla_missed)
 *     jobs(partition, job, state, attempts)                 PK (partition, job)
 *     attempts(partition, job, attempt, state, pid, pid_start, exit_code, signal,
 *              started_at, ended_at, duration_ms, log_path) PK (partition, job, attempt)
 *     alerts(id PK, kind, partition, job, message, created_at, sent_at)
 *     meta(key PK, value)
 *
 * Times in *_at are milliseconds since the epoch, except scheduled_at (seconds).
 *
 * Claims. A run row in state `running` with an owner (pid and that process's start time,
 * so a reused pid is never mistaken for the owner) is the partition's claim. Claiming is
 * a read and a write in one BEGIN IMMEDIATE transaction, so of two processes claiming at
 * once, the second sees the first's row: the claim is exclusive. A claim whose owner is
 * gone (kill -9, a crash, a reboot) is stale and is taken over: its attempts still marked
 * `running` become `lost`, and the process groups they ran in are killed if they are
 * still there (a job outliving its sluice would otherwise run twice at once).
 *
 *   (no row) --claim--> running --all jobs done--> success | failed
 *                          |  ^                          |
 *            owner dies    |  +---- claim (resume, or force) ----+
 *                          v
 *                   running, stale --claim--> running (new owner)
 *
 * Durability. WAL with synchronous=NORMAL: a power cut may lose the last transactions
 * (the partition then runs again: jobs are idempotent), never corrupt the file. Every
 * state change of one loop iteration of the executor goes into one transaction.
 *
 * Threading: a handle belongs to one thread. Several processes may share the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sluice/alloc.h"
#include "sluice/log.h"
#include "sluice/statedir.h"

#include "orchestrator/orch_int.h"

#define BUSY_MS 30000

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER);"
    "CREATE TABLE IF NOT EXISTS runs(partition TEXT PRIMARY KEY, state TEXT NOT NULL,"
    " trigger TEXT, scheduled_at INTEGER, started_at INTEGER, ended_at INTEGER,"
    " owner_pid INTEGER, owner_start INTEGER, sla_missed INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS jobs(partition TEXT NOT NULL, job TEXT NOT NULL,"
    " state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(partition, job)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS attempts(partition TEXT NOT NULL, job TEXT NOT NULL,"
    " attempt INTEGER NOT NULL, state TEXT NOT NULL, pid INTEGER, pid_start INTEGER,"
    " exit_code INTEGER, signal INTEGER, started_at INTEGER, ended_at INTEGER,"
    " duration_ms INTEGER, log_path TEXT, PRIMARY KEY(partition, job, attempt)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS alerts(id TEXT PRIMARY KEY, kind TEXT NOT NULL,"
    " partition TEXT, job TEXT, message TEXT, created_at INTEGER, sent_at INTEGER);";

/* ---- owners ---------------------------------------------------------------------- */

/* Field 22 of /proc/<pid>/stat: the process's start time in clock ticks after boot. */
static int64_t proc_start(int64_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (!p)
        return -1;
    p++;
    /* After ")" come fields 3 (state) onwards; starttime is field 22. */
    for (int field = 3; field < 22; field++) {
        p = strchr(p + 1, ' ');
        if (!p)
            return -1;
    }
    return strtoll(p + 1, NULL, 10);
}

void sl__owner_self(struct sl__owner *o)
{
    o->pid = (int64_t)getpid();
    int64_t s = proc_start(o->pid);
    o->start = s > 0 ? s : 0;
}

int sl__owner_alive(const struct sl__owner *o)
{
    if (o->pid <= 0)
        return 0;
    if (kill((pid_t)o->pid, 0) != 0 && errno == ESRCH)
        return 0;
    int64_t s = proc_start(o->pid);
    if (s < 0)
        return kill((pid_t)o->pid, 0) == 0 || errno == EPERM;
    if (o->start && s != o->start)
        return 0;
    /* A zombie holds its pid but runs nothing: not an owner. */
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%lld/stat", (long long)o->pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n > 0) {
            buf[n] = '\0';
            char *p = strrchr(buf, ')');
            if (p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'))
                return 0;
        }
    }
    return 1;
}

int64_t sl__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- states ---------------------------------------------------------------------- */

static const char *const job_names[] = {"none",    "running", "retry",   "success", "failed",
                                        "skipped", "killed",  "timeout", "lost"};
static const char *const run_names[] = {"none", "running", "success", "failed", "killed"};

const char *sl_dag_job_state_name(enum sl_dag_job_state s)
{
    return (unsigned)s < sizeof job_names / sizeof job_names[0] ? job_names[s] : "?";
}

const char *sl_dag_run_state_name(enum sl_dag_run_state s)
{
    return (unsigned)s < sizeof run_names / sizeof run_names[0] ? run_names[s] : "?";
}

static enum sl_dag_job_state job_parse(const char *s)
{
    for (size_t i = 0; s && i < sizeof job_names / sizeof job_names[0]; i++)
        if (strcmp(s, job_names[i]) == 0)
            return (enum sl_dag_job_state)i;
    return SL_DAG_JOB_NONE;
}

static enum sl_dag_run_state run_parse(const char *s)
{
    for (size_t i = 0; s && i < sizeof run_names / sizeof run_names[0]; i++)
        if (strcmp(s, run_names[i]) == 0)
            return (enum sl_dag_run_state)i;
    return SL_DAG_RUN_NONE;
}

/* ---- statements ------------------------------------------------------------------ */

static sl_rc db_error(struct sl__dagdb *db, struct sl_error *err, const char *what)
{
    return sl_error_set(err, SL_EDB, "run state database: %s: %s", what, sqlite3_errmsg(db->db));
}

/*
 * Prepare sql (cached by the address of the static string) and bind args by fmt:
 * 's' string (NULL binds NULL), 'i' int64, 'n' NULL (takes no argument). Returns the statement,
 * reset, or NULL.
 */
#define STMT_CACHE 32
struct cached {
    const char *sql;
    sqlite3_stmt *st;
};

struct stmt_cache {
    struct cached c[STMT_CACHE];
};

static sqlite3_stmt *prep(struct sl__dagdb *db, struct stmt_cache *sc, const char *sql,
                          const char *fmt, va_list ap)
{
    sqlite3_stmt *st = NULL;
    size_t i;
    for (i = 0; i < STMT_CACHE && sc->c[i].sql; i++)
        if (sc->c[i].sql == sql) {
            st = sc->c[i].st;
            break;
        }
    if (!st) {
        if (sqlite3_prepare_v3(db->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
            return NULL;
        if (i < STMT_CACHE) {
            sc->c[i].sql = sql;
            sc->c[i].st = st;
        }
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    int k = 1;
    for (const char *f = fmt; *f; f++, k++) {
        if (*f == 'n') {
            sqlite3_bind_null(st, k);
        } else if (*f == 's') {
            const char *s = va_arg(ap, const char *);
            if (s)
                sqlite3_bind_text(st, k, s, -1, SQLITE_TRANSIENT);
            else
                sqlite3_bind_null(st, k);
        } else {
            sqlite3_bind_int64(st, k, va_arg(ap, int64_t));
        }
    }
    return st;
}

/* The cache lives beside the handle (allocated with it). */
struct dagdb_full {
    struct sl__dagdb pub;
    struct stmt_cache cache;
};

static struct stmt_cache *cache_of(struct sl__dagdb *db)
{
    return &((struct dagdb_full *)db)->cache;
}

/* Run sql to completion. */
static sl_rc run(struct sl__dagdb *db, struct sl_error *err, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sqlite3_stmt *st = prep(db, cache_of(db), sql, fmt, ap);
    va_end(ap);
    if (!st)
        return db_error(db, err, "prepare");
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW)
        ;
    sl_rc rc = r == SQLITE_DONE ? SL_OK : db_error(db, err, "write");
    sqlite3_reset(st);
    return rc;
}

/* A statement ready to step (the caller steps it; the next prep resets it). */
static sqlite3_stmt *query(struct sl__dagdb *db, const char *sql, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sqlite3_stmt *st = prep(db, cache_of(db), sql, fmt, ap);
    va_end(ap);
    return st;
}

/* ---- open / close ---------------------------------------------------------------- */

sl_rc sl__dagdb_open(const char *state_dir, int create, struct sl__dagdb **out,
                     struct sl_error *err)
{
    *out = NULL;
    sl_rc rc = sl_statedir_open(state_dir, create, err);
    if (rc)
        return rc;
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/dag.db", state_dir) >= sizeof path)
        return sl_error_set(err, SL_EINVAL, "state_dir %s: path too long", state_dir);
    if (!create && access(path, F_OK) != 0)
        return sl_error_set(err, SL_ENOENT, "%s does not exist: nothing has run yet", path);
    struct dagdb_full *f = sl_calloc(1, sizeof *f);
    if (!f)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    struct sl__dagdb *db = &f->pub;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(path, &db->db, flags, NULL) != SQLITE_OK) {
        rc = sl_error_set(err, SL_EDB, "cannot open %s: %s", path,
                          db->db ? sqlite3_errmsg(db->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(db->db, BUSY_MS);
    /* Two processes creating the database at once: switching to WAL can answer BUSY
     * without waiting on the busy handler, so wait here (up to the same bound). */
    for (int tries = 0;; tries++) {
        char *msg = NULL;
        int r = sqlite3_exec(db->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL,
                             NULL, &msg);
        if (r == SQLITE_OK)
            r = sqlite3_exec(db->db, schema, NULL, NULL, &msg);
        if (r == SQLITE_OK)
            break;
        if ((r == SQLITE_BUSY || r == SQLITE_LOCKED) && tries < BUSY_MS / 10) {
            sqlite3_free(msg);
            usleep(10000);
            continue;
        }
        rc = sl_error_set(err, SL_EDB, "%s: %s", path, msg ? msg : "cannot set up the schema");
        sqlite3_free(msg);
        goto fail;
    }
    sl__owner_self(&db->self);
    *out = db;
    return SL_OK;
fail:
    sqlite3_close(db->db);
    sl_free(f);
    return rc;
}

void sl__dagdb_close(struct sl__dagdb *db)
{
    if (!db)
        return;
    struct stmt_cache *sc = cache_of(db);
    for (size_t i = 0; i < STMT_CACHE; i++)
        sqlite3_finalize(sc->c[i].st);
    if (db->in_tx)
        sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db->db);
    sl_free((struct dagdb_full *)db);
}

sl_rc sl__dagdb_begin(struct sl__dagdb *db, struct sl_error *err)
{
    if (db->in_tx)
        return SL_OK;
    if (sqlite3_exec(db->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return db_error(db, err, "begin");
    db->in_tx = 1;
    return SL_OK;
}

sl_rc sl__dagdb_commit(struct sl__dagdb *db, struct sl_error *err)
{
    if (!db->in_tx)
        return SL_OK;
    if (sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sl_rc rc = db_error(db, err, "commit");
        sl__dagdb_rollback(db);
        return rc;
    }
    db->in_tx = 0;
    return SL_OK;
}

void sl__dagdb_rollback(struct sl__dagdb *db)
{
    if (db->in_tx)
        sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
    db->in_tx = 0;
}

/* ---- claims ---------------------------------------------------------------------- */

static const char q_run_get[] =
    "SELECT state, owner_pid, owner_start FROM runs WHERE partition = ?";
static const char q_lost_list[] =
    "SELECT job, attempt, pid, pid_start FROM attempts WHERE partition = ? AND state = 'running'";
static const char q_lost_mark[] =
    "UPDATE attempts SET state = 'lost', ended_at = ?, duration_ms = ? - started_at"
    " WHERE partition = ? AND state = 'running'";
static const char q_jobs_lost[] =
    "UPDATE jobs SET state = 'lost' WHERE partition = ? AND state IN ('running', 'retry')";
static const char q_jobs_get[] = "SELECT job, state, attempts FROM jobs WHERE partition = ?";
static const char q_jobs_reset[] =
    "UPDATE jobs SET state = 'none' WHERE partition = ? AND state <> 'success'";
static const char q_jobs_reset_all[] = "UPDATE jobs SET state = 'none' WHERE partition = ?";
static const char q_run_claim[] =
    "INSERT INTO runs(partition, state, trigger, scheduled_at, started_at, owner_pid,"
    " owner_start) VALUES(?, 'running', ?, ?, ?, ?, ?)"
    " ON CONFLICT(partition) DO UPDATE SET state = 'running', trigger = excluded.trigger,"
    " scheduled_at = coalesce(excluded.scheduled_at, runs.scheduled_at),"
    " started_at = excluded.started_at, ended_at = NULL, owner_pid = excluded.owner_pid,"
    " owner_start = excluded.owner_start";

/*
 * Kill a process group a lost attempt ran in, if it is still there, and wait (up to 2 s)
 * until it is gone: the job runs again right after, and must not meet its own leftovers
 * (an output file still open, a lock still held).
 */
static void kill_lost_group(int64_t pid, int64_t pid_start)
{
    if (pid <= 1)
        return;
    struct sl__owner o = {pid, pid_start};
    int leader_alive = sl__owner_alive(&o);
    if (!leader_alive && kill(-(pid_t)pid, 0) != 0)
        return;
    kill(-(pid_t)pid, SIGKILL);
    for (int i = 0; i < 200 && kill(-(pid_t)pid, 0) == 0; i++)
        usleep(10000);
}

sl_rc sl__dagdb_claim(struct sl__dagdb *db, const struct sl_dag *d, const char *key,
                      const char *trigger, int64_t scheduled_at, int force, enum sl__claim *result,
                      int64_t *busy_pid, enum sl_dag_job_state *jobstate, unsigned *attempts,
                      struct sl_error *err)
{
    sl_rc rc;
    int64_t now = sl__now_ms();
    sqlite3_stmt *st = query(db, q_run_get, "s", key);
    if (!st)
        return db_error(db, err, "prepare");
    int r = sqlite3_step(st);
    enum sl_dag_run_state prev = SL_DAG_RUN_NONE;
    struct sl__owner owner = {0, 0};
    if (r == SQLITE_ROW) {
        prev = run_parse((const char *)sqlite3_column_text(st, 0));
        owner.pid = sqlite3_column_int64(st, 1);
        owner.start = sqlite3_column_int64(st, 2);
    } else if (r != SQLITE_DONE) {
        return db_error(db, err, "read runs");
    }
    sqlite3_reset(st);
    int mine = owner.pid == db->self.pid && owner.start == db->self.start;
    if (prev == SL_DAG_RUN_RUNNING && !mine) {
        if (sl__owner_alive(&owner)) {
            *result = SL__BUSY;
            *busy_pid = owner.pid;
            return SL_OK;
        }
        /* Stale: its owner died. Kill what it left running, and say so. */
        st = query(db, q_lost_list, "s", key);
        if (!st)
            return db_error(db, err, "prepare");
        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
            sl_log(SL_LOG_WARN, "dag",
                   "%s %s: attempt %lld of job %s was running when sluice pid %lld died; "
                   "recorded as lost and run again",
                   d->name, key, (long long)sqlite3_column_int64(st, 1),
                   (const char *)sqlite3_column_text(st, 0), (long long)owner.pid);
            kill_lost_group(sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3));
        }
        sqlite3_reset(st);
        if ((rc = run(db, err, q_lost_mark, "iis", now, now, key)) ||
            (rc = run(db, err, q_jobs_lost, "s", key)))
            return rc;
    } else if (prev == SL_DAG_RUN_SUCCESS && !force) {
        *result = SL__DONE;
        return SL_OK;
    }
    for (size_t j = 0; j < d->njobs; j++) {
        jobstate[j] = SL_DAG_JOB_NONE;
        attempts[j] = 0;
    }
    st = query(db, q_jobs_get, "s", key);
    if (!st)
        return db_error(db, err, "prepare");
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        int j = sl_dag_find(d, (const char *)sqlite3_column_text(st, 0));
        if (j < 0)
            continue; /* a job since removed from the DAG */
        enum sl_dag_job_state js = job_parse((const char *)sqlite3_column_text(st, 1));
        if (js == SL_DAG_JOB_SUCCESS && !force)
            jobstate[j] = SL_DAG_JOB_SUCCESS;
        attempts[j] = (unsigned)sqlite3_column_int64(st, 2);
    }
    sqlite3_reset(st);
    if (r != SQLITE_DONE)
        return db_error(db, err, "read jobs");
    if ((rc = run(db, err, force ? q_jobs_reset_all : q_jobs_reset, "s", key)))
        return rc;
    if (scheduled_at > 0)
        rc = run(db, err, q_run_claim, "ssiiii", key, trigger, scheduled_at, now, db->self.pid,
                 db->self.start);
    else
        rc = run(db, err, q_run_claim, "ssnii", key, trigger, now, db->self.pid, db->self.start);
    if (rc)
        return rc;
    *result = SL__CLAIMED;
    return SL_OK;
}

/* ---- attempts and jobs ----------------------------------------------------------- */

static const char q_attempt_start[] =
    "INSERT OR REPLACE INTO attempts(partition, job, attempt, state, pid, pid_start,"
    " started_at, log_path) VALUES(?, ?, ?, 'running', ?, ?, ?, ?)";
static const char q_job_upsert[] =
    "INSERT INTO jobs(partition, job, state, attempts) VALUES(?, ?, ?, ?)"
    " ON CONFLICT(partition, job) DO UPDATE SET state = excluded.state,"
    " attempts = max(jobs.attempts, excluded.attempts)";
static const char q_attempt_end[] =
    "UPDATE attempts SET state = ?, exit_code = ?, signal = ?, ended_at = ?,"
    " duration_ms = ? - started_at WHERE partition = ? AND job = ? AND attempt = ?";

sl_rc sl__dagdb_attempt_start(struct sl__dagdb *db, const char *key, const char *job,
                              unsigned attempt, pid_t pid, int64_t start_ms, const char *log,
                              struct sl_error *err)
{
    int64_t ps = proc_start(pid);
    sl_rc rc = run(db, err, q_attempt_start, "ssiiiis", key, job, (int64_t)attempt, (int64_t)pid,
                   ps > 0 ? ps : (int64_t)0, start_ms, log);
    if (!rc)
        rc = run(db, err, q_job_upsert, "sssi", key, job, "running", (int64_t)attempt);
    return rc;
}

sl_rc sl__dagdb_attempt_end(struct sl__dagdb *db, const char *key, const char *job,
                            unsigned attempt, enum sl_dag_job_state state, int exit_code, int sig,
                            int64_t end_ms, enum sl_dag_job_state job_state, struct sl_error *err)
{
    sl_rc rc = run(db, err, q_attempt_end, "siiiissi", sl_dag_job_state_name(state),
                   (int64_t)exit_code, (int64_t)sig, end_ms, end_ms, key, job, (int64_t)attempt);
    if (!rc)
        rc = run(db, err, q_job_upsert, "sssi", key, job, sl_dag_job_state_name(job_state),
                 (int64_t)attempt);
    return rc;
}

sl_rc sl__dagdb_job_set(struct sl__dagdb *db, const char *key, const char *job,
                        enum sl_dag_job_state state, struct sl_error *err)
{
    return run(db, err, q_job_upsert, "sssi", key, job, sl_dag_job_state_name(state), (int64_t)0);
}

static const char q_run_end[] =
    "UPDATE runs SET state = ?, ended_at = ?, owner_pid = NULL, owner_start = NULL"
    " WHERE partition = ?";

sl_rc sl__dagdb_run_end(struct sl__dagdb *db, const char *key, enum sl_dag_run_state state,
                        int64_t end_ms, struct sl_error *err)
{
    return run(db, err, q_run_end, "sis", sl_dag_run_state_name(state), end_ms, key);
}

sl_rc sl__dagdb_run_state(struct sl__dagdb *db, const char *key, enum sl_dag_run_state *out,
                          struct sl_error *err)
{
    sqlite3_stmt *st = query(db, q_run_get, "s", key);
    if (!st)
        return db_error(db, err, "prepare");
    int r = sqlite3_step(st);
    *out = r == SQLITE_ROW ? run_parse((const char *)sqlite3_column_text(st, 0)) : SL_DAG_RUN_NONE;
    sqlite3_reset(st);
    return r == SQLITE_ROW || r == SQLITE_DONE ? SL_OK : db_error(db, err, "read runs");
}

/* ---- alerts and meta ------------------------------------------------------------- */

static const char q_alert_add[] =
    "INSERT OR IGNORE INTO alerts(id, kind, partition, job, message, created_at)"
    " VALUES(?, ?, ?, ?, ?, ?)";
static const char q_alert_sent[] = "UPDATE alerts SET sent_at = ? WHERE id = ?";
static const char q_sla_mark[] = "UPDATE runs SET sla_missed = 1 WHERE partition = ?";

sl_rc sl__dagdb_alert_add(struct sl__dagdb *db, const char *id, const char *kind, const char *key,
                          const char *job, const char *message, int *fresh, struct sl_error *err)
{
    sl_rc rc = run(db, err, q_alert_add, "sssssi", id, kind, key, job, message, sl__now_ms());
    if (rc)
        return rc;
    *fresh = sqlite3_changes(db->db) > 0;
    if (*fresh && key && strcmp(kind, "sla_miss") == 0)
        rc = run(db, err, q_sla_mark, "s", key);
    return rc;
}

sl_rc sl__dagdb_alert_sent(struct sl__dagdb *db, const char *id, struct sl_error *err)
{
    return run(db, err, q_alert_sent, "is", sl__now_ms(), id);
}

static const char q_meta_get[] = "SELECT value FROM meta WHERE key = ?";
static const char q_meta_set[] = "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)";

sl_rc sl__dagdb_meta_get(struct sl__dagdb *db, const char *k, int64_t *v, int *found,
                         struct sl_error *err)
{
    sqlite3_stmt *st = query(db, q_meta_get, "s", k);
    if (!st)
        return db_error(db, err, "prepare");
    int r = sqlite3_step(st);
    *found = r == SQLITE_ROW;
    if (*found)
        *v = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return r == SQLITE_ROW || r == SQLITE_DONE ? SL_OK : db_error(db, err, "read meta");
}

sl_rc sl__dagdb_meta_set(struct sl__dagdb *db, const char *k, int64_t v, struct sl_error *err)
{
    return run(db, err, q_meta_set, "si", k, v);
}

/* ---- status ---------------------------------------------------------------------- */

static const char q_status_runs[] =
    "SELECT partition, state, trigger, started_at, ended_at, scheduled_at, owner_pid,"
    " owner_start, sla_missed FROM runs WHERE (?1 IS NULL OR partition >= ?1)"
    " AND (?2 IS NULL OR partition <= ?2) ORDER BY partition";
static const char q_status_jobs[] =
    "SELECT j.job, j.state, j.attempts, a.duration_ms, a.exit_code, a.signal, a.log_path,"
    " a.started_at FROM jobs j LEFT JOIN attempts a ON a.partition = j.partition"
    " AND a.job = j.job AND a.attempt = j.attempts WHERE j.partition = ?";
static const char q_alerts_pending[] = "SELECT count(*) FROM alerts WHERE sent_at IS NULL";

sl_rc sl_dag_status_read(const struct sl_dag *d, const char *from, const char *to,
                         struct sl_dag_status *out, struct sl_error *err)
{
    memset(out, 0, sizeof *out);
    out->njobs = d->njobs;
    struct sl__dagdb *db = NULL;
    sl_rc rc = sl__dagdb_open(d->state_dir, 0, &db, err);
    if (rc)
        return rc;
    size_t cap = 0;
    sqlite3_stmt *st = query(db, q_status_runs, "ss", from, to);
    if (!st) {
        rc = db_error(db, err, "prepare");
        goto out;
    }
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->nrows == cap) {
            size_t nc = cap ? cap * 2 : 64;
            struct sl_dag_row *nr = sl_realloc(out->rows, nc * sizeof *nr);
            if (!nr) {
                rc = sl_error_set(err, SL_ENOMEM, "out of memory");
                goto out;
            }
            out->rows = nr;
            cap = nc;
        }
        struct sl_dag_row *row = &out->rows[out->nrows];
        memset(row, 0, sizeof *row);
        row->cells = sl_calloc(d->njobs ? d->njobs : 1, sizeof *row->cells);
        if (!row->cells) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
            goto out;
        }
        out->nrows++;
        snprintf(row->key, sizeof row->key, "%s", (const char *)sqlite3_column_text(st, 0));
        row->state = run_parse((const char *)sqlite3_column_text(st, 1));
        const char *tr = (const char *)sqlite3_column_text(st, 2);
        snprintf(row->trigger, sizeof row->trigger, "%s", tr ? tr : "");
        row->started_ms = sqlite3_column_int64(st, 3);
        row->ended_ms = sqlite3_column_int64(st, 4);
        row->scheduled_s = sqlite3_column_int64(st, 5);
        struct sl__owner o = {sqlite3_column_int64(st, 6), sqlite3_column_int64(st, 7)};
        row->owner_pid = o.pid;
        row->sla_missed = sqlite3_column_int(st, 8);
        /* A run whose owner died is shown as what it is: interrupted, resumable. */
        if (row->state == SL_DAG_RUN_RUNNING && !sl__owner_alive(&o))
            row->state = SL_DAG_RUN_KILLED;
        for (size_t j = 0; j < d->njobs; j++) {
            row->cells[j].duration_ms = -1;
            row->cells[j].exit_code = -1;
        }
    }
    if (r != SQLITE_DONE) {
        rc = db_error(db, err, "read runs");
        goto out;
    }
    for (size_t i = 0; i < out->nrows; i++) {
        struct sl_dag_row *row = &out->rows[i];
        st = query(db, q_status_jobs, "s", row->key);
        if (!st) {
            rc = db_error(db, err, "prepare");
            goto out;
        }
        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
            int j = sl_dag_find(d, (const char *)sqlite3_column_text(st, 0));
            if (j < 0)
                continue;
            struct sl_dag_cell *c = &row->cells[j];
            c->state = job_parse((const char *)sqlite3_column_text(st, 1));
            c->attempts = (unsigned)sqlite3_column_int64(st, 2);
            if (sqlite3_column_type(st, 3) != SQLITE_NULL)
                c->duration_ms = sqlite3_column_int64(st, 3);
            else if (c->state == SL_DAG_JOB_RUNNING && sqlite3_column_type(st, 7) != SQLITE_NULL)
                c->duration_ms = sl__now_ms() - sqlite3_column_int64(st, 7);
            if (sqlite3_column_type(st, 4) != SQLITE_NULL)
                c->exit_code = sqlite3_column_int(st, 4);
            c->sig = sqlite3_column_int(st, 5);
            const char *lp = (const char *)sqlite3_column_text(st, 6);
            if (lp && !(c->log = sl_strdup(lp))) {
                rc = sl_error_set(err, SL_ENOMEM, "out of memory");
                goto out;
            }
            if (row->state == SL_DAG_RUN_KILLED && c->state == SL_DAG_JOB_RUNNING)
                c->state = SL_DAG_JOB_LOST;
        }
        if (r != SQLITE_DONE) {
            rc = db_error(db, err, "read jobs");
            goto out;
        }
    }
    st = query(db, q_alerts_pending, "");
    if (st && sqlite3_step(st) == SQLITE_ROW)
        out->alerts_pending = (size_t)sqlite3_column_int64(st, 0);
out:
    if (rc)
        sl_dag_status_fini(out);
    sl__dagdb_close(db);
    return rc;
}

void sl_dag_status_fini(struct sl_dag_status *st)
{
    for (size_t i = 0; i < st->nrows; i++) {
        for (size_t j = 0; st->rows[i].cells && j < st->njobs; j++)
            sl_free(st->rows[i].cells[j].log);
        sl_free(st->rows[i].cells);
    }
    sl_free(st->rows);
    st->rows = NULL;
    st->nrows = 0;
}
