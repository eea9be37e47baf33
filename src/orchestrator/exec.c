/*
 * exec.c - the executor: runs the jobs of a DAG's partitions as child processes.
 *
 * What it does. Given partitions to run, it claims each one in the state database
 * (store.c), then runs its jobs in dependency order: a job becomes ready when its
 * dependencies are done and its trigger rule says so, and ready jobs start while fewer
 * than `concurrency` run, oldest partition first (so partitions finish in order and a
 * backfill's progress is steady). At most `max_active_runs` partitions are in flight.
 *
 * A job is a child process (vfork + execve) in its own process group (setpgid), with stdin
 * from /dev/null and stdout+stderr through a pipe to
 * <state_dir>/logs/<partition>/<job>.<attempt>.log (created on the first byte), its working
 * directory the DAG file's directory and the partition's variables in its environment
 * (SLUICE_DS, SLUICE_TS, ...). A command runs as `sh -c TEXT`. A pipeline job runs the
 * sluice binary itself (`dag exec-pipeline FILE`) on a copy of the pipeline file with
 * the templates expanded, written beside the original (relative paths inside it keep
 * their meaning); the copy is removed when the attempt ends. The child asks the kernel
 * for SIGKILL when its parent dies (PR_SET_PDEATHSIG), so a sluice killed with -9 does
 * not leave jobs running on their own; a claim taken over kills what is left of their
 * process groups as well (store.c).
 *
 * Per attempt:
 *
 *   start --exit 0--> success
 *     |---exit != 0 or signal--> failed --tries left--> retry (after back-off) --> start
 *     |                            `-----no tries left-----> failed (final; alert)
 *     `---past timeout--> SIGTERM to the group --kill_grace--> SIGKILL; counts as failed
 *
 * Trigger rules, evaluated once every dependency is final (success, failed, skipped or
 * killed): all_success runs when all succeeded, else the job is skipped (upstream
 * failed); all_done runs regardless; one_failed runs when at least one dependency failed
 * (or was skipped because its own upstream failed), else it is skipped.
 *
 * A run is `success` when no job failed or was killed (skipped jobs are fine: a
 * one_failed job not needed is skipped), `failed` otherwise, `killed` when a stop
 * interrupted it.
 *
 * The loop. Single-threaded: reap children (waitpid per running slot), enforce timeouts,
 * decide ready jobs, start them, finish partitions, commit every state change of the
 * iteration in one transaction, then sleep in poll(2) on a self-pipe that the SIGCHLD
 * handler (and sl_dag_request_stop) writes to and on the jobs' output pipes, with a timeout set by
 * the nearest deadline (a timeout, a retry, the end of a grace period). No busy waiting.
 *
 * Alerts recorded in a step are delivered by the executor's alerter (alerts.c), a thread
 * of its own, kicked after the commit.
 *
 * Ownership: the executor owns its partitions, slots, alerter and the state handle it
 * opened.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sluice/alert.h"
#include "sluice/alloc.h"
#include "sluice/log.h"

#include "orchestrator/exec_int.h"

#define SL_DAG_LOG_MAX ((int64_t)256 << 20) /* bytes of one attempt's log; the rest is cut */
#define SL_DAG_MAX_CONCURRENCY 1024         /* the loader's bound on `concurrency` */

extern char **environ;

/* ---- signals --------------------------------------------------------------------- */

static int wake_pipe[2] = {-1, -1};
static volatile sig_atomic_t stop_requested;
static struct sigaction old_chld;
static int handlers_installed;

static void on_chld(int sig)
{
    (void)sig;
    int e = errno;
    if (wake_pipe[1] >= 0) {
        ssize_t w = write(wake_pipe[1], "c", 1);
        (void)w;
    }
    errno = e;
}

void sl_dag_request_stop(void)
{
    stop_requested = 1;
    int e = errno;
    if (wake_pipe[1] >= 0) {
        ssize_t w = write(wake_pipe[1], "s", 1);
        (void)w;
    }
    errno = e;
}

int sl__exec_stop_requested(void)
{
    return stop_requested != 0;
}

static int install_handlers(struct sl_error *err)
{
    if (handlers_installed++)
        return 0;
    if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        handlers_installed = 0;
        sl_error_sys(err, SL_EIO, errno, "cannot create a pipe");
        return -1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_chld;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, &old_chld);
    return 0;
}

static void remove_handlers(void)
{
    if (!handlers_installed || --handlers_installed)
        return;
    sigaction(SIGCHLD, &old_chld, NULL);
    close(wake_pipe[0]);
    close(wake_pipe[1]);
    wake_pipe[0] = wake_pipe[1] = -1;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- executor -------------------------------------------------------------------- */

static int final_state(enum sl_dag_job_state s)
{
    return s == SL_DAG_JOB_SUCCESS || s == SL_DAG_JOB_FAILED || s == SL_DAG_JOB_SKIPPED ||
           s == SL_DAG_JOB_KILLED;
}

sl_rc sl__exec_create(struct sl_dag *d, const struct sl_dag_run_opts *o, struct sl__exec **out,
                      struct sl_error *err)
{
    *out = NULL;
    struct sl__exec *x = sl_calloc(1, sizeof *x);
    if (!x)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    x->d = d;
    if (o)
        x->opts = *o;
    if (!x->opts.trigger)
        x->opts.trigger = "run";
    x->slots = sl_calloc(d->concurrency, sizeof *x->slots);
    x->parts = sl_calloc(d->max_active_runs, sizeof *x->parts);
    if (!x->slots || !x->parts) {
        sl__exec_destroy(x);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    const char *exe = x->opts.self_exe ? x->opts.self_exe : "/proc/self/exe";
    ssize_t n = readlink(exe, x->self_exe, sizeof x->self_exe - 1);
    if (n > 0)
        x->self_exe[n] = '\0';
    else
        snprintf(x->self_exe, sizeof x->self_exe, "%s", exe);
    sl_rc rc = sl__dagdb_open(d->state_dir, 1, &x->db, err);
    if (rc) {
        sl_error_prefix(err, "dag %s: ", d->name);
        sl__exec_destroy(x);
        return rc;
    }
    if ((rc = sl__alerter_start(d, &x->alerter, err))) {
        sl__exec_destroy(x);
        return rc;
    }
    if (install_handlers(err)) {
        sl__exec_destroy(x);
        return SL_EIO;
    }
    x->handlers = 1;
    x->t0 = mono_ms();
    srand48((long)getpid() ^ (long)time(NULL));
    *out = x;
    return SL_OK;
}

static void part_free(struct sl__xpart *p)
{
    if (!p)
        return;
    sl_free(p->jobs);
    sl_free(p);
}

void sl__exec_destroy(struct sl__exec *x)
{
    if (!x)
        return;
    /* Jobs still running here are left by a failure: they must not outlive the executor. */
    for (size_t i = 0; x->slots && i < x->d->concurrency; i++) {
        struct sl__xslot *s = &x->slots[i];
        if (!s->pid)
            continue;
        kill(-s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        if (s->out_fd >= 0)
            close(s->out_fd);
        if (s->log_fd >= 0)
            close(s->log_fd);
        if (s->tmpcfg[0])
            unlink(s->tmpcfg);
        sl_free(s->head);
    }
    for (size_t i = 0; x->parts && i < x->nparts; i++)
        part_free(x->parts[i]);
    sl_free(x->parts);
    sl_free(x->slots);
    sl__alerter_stop(x->alerter);
    sl__dagdb_close(x->db);
    if (x->handlers)
        remove_handlers();
    sl_free(x);
}

static void progress(struct sl__exec *x, const char *key, enum sl_dag_run_state st, int busy)
{
    x->done++;
    if (!x->opts.progress)
        return;
    struct sl_dag_progress p = {x->done, x->total, x->sum.failed, x->nrunning, key, st, busy};
    x->opts.progress(&p, x->opts.progress_ctx);
}

static sl_rc mkdir_p(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int r = mkdir(path, 0755);
        *p = '/';
        if (r != 0 && errno != EEXIST)
            return SL_EIO;
    }
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return SL_EIO;
    return SL_OK;
}

sl_rc sl__exec_add(struct sl__exec *x, int64_t idx, int64_t scheduled_at, int *added,
                   struct sl_error *err)
{
    struct sl_dag *d = x->d;
    *added = 0;
    if (x->nparts >= d->max_active_runs)
        return SL_AGAIN;
    struct sl__xpart *p = sl_calloc(1, sizeof *p);
    if (!p)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    p->jobs = sl_calloc(d->njobs, sizeof *p->jobs);
    enum sl_dag_job_state *js = sl_calloc(d->njobs, sizeof *js);
    unsigned *att = sl_calloc(d->njobs, sizeof *att);
    sl_rc rc = SL_OK;
    if (!p->jobs || !js || !att) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    p->idx = idx;
    sl_dag_part_key(d, idx, p->key);
    if ((rc = sl__dagdb_begin(x->db, err)))
        goto out;
    enum sl__claim res;
    int64_t busy_pid = 0;
    rc = sl__dagdb_claim(x->db, d, p->key, x->opts.trigger, scheduled_at, x->opts.force, &res,
                         &busy_pid, js, att, err);
    if (rc)
        goto out;
    if (res == SL__BUSY) {
        /* The scheduler meets the same busy partition every second: say it quietly. */
        sl_log(strcmp(x->opts.trigger, "scheduler") == 0 ? SL_LOG_DEBUG : SL_LOG_INFO, "dag",
               "%s %s: skipped: sluice pid %lld is running it", d->name, p->key,
               (long long)busy_pid);
        x->sum.busy++;
        progress(x, p->key, SL_DAG_RUN_RUNNING, 1);
        goto out;
    }
    if (res == SL__DONE) {
        x->sum.skipped_done++;
        progress(x, p->key, SL_DAG_RUN_SUCCESS, 0);
        goto out;
    }
    p->left = 0;
    for (size_t j = 0; j < d->njobs; j++) {
        p->jobs[j].st = js[j];
        p->jobs[j].attempt = att[j];
        if (js[j] != SL_DAG_JOB_SUCCESS)
            p->left++;
    }
    if ((size_t)snprintf(p->logdir, sizeof p->logdir, "%s/logs/%s", d->state_dir, p->key) >=
        sizeof p->logdir) {
        rc = sl_error_set(err, SL_EINVAL, "state_dir %s: path too long", d->state_dir);
        goto out;
    }
    p->started_ms = mono_ms();
    x->parts[x->nparts++] = p;
    x->sum.partitions++;
    *added = 1;
    p = NULL;
out:
    part_free(p);
    sl_free(js);
    sl_free(att);
    return rc;
}

/* ---- starting a job -------------------------------------------------------------- */

/* The environment of a job: ours, then the DAG's env, the job's env, SLUICE_* last. */
static char **job_env(const struct sl_dag *d, const struct sl_dag_job *j,
                      const struct sl_dag_vars *v, struct sl_error *err)
{
    size_t n0 = 0;
    while (environ && environ[n0])
        n0++;
    size_t cap = n0 + d->nenv + j->nenv + SL_DAG_NVARS + 2;
    char **env = sl_calloc(cap, sizeof *env);
    if (!env)
        return NULL;
    size_t n = 0;
    struct sl_buf b;
    sl_buf_init(&b, 1 << 20);
    /* Later definitions of a name replace earlier ones. */
#define PUT(name, value)                                                                           \
    do {                                                                                           \
        size_t nl = strlen(name);                                                                  \
        char *s = sl_malloc(nl + strlen(value) + 2);                                               \
        if (!s)                                                                                    \
            goto oom;                                                                              \
        sprintf(s, "%s=%s", name, value);                                                          \
        size_t kk;                                                                                 \
        for (kk = 0; kk < n; kk++)                                                                 \
            if (strncmp(env[kk], s, nl + 1) == 0)                                                  \
                break;                                                                             \
        if (kk < n) {                                                                              \
            sl_free(env[kk]);                                                                      \
            env[kk] = s;                                                                           \
        } else {                                                                                   \
            env[n++] = s;                                                                          \
        }                                                                                          \
    } while (0)
    for (size_t i = 0; i < n0; i++) {
        if (!(env[n] = sl_strdup(environ[i])))
            goto oom;
        n++;
    }
    for (int pass = 0; pass < 2; pass++) {
        const struct sl_dag_env *e = pass ? j->env : d->env;
        size_t ne = pass ? j->nenv : d->nenv;
        for (size_t i = 0; i < ne; i++) {
            sl_buf_clear(&b);
            if (sl_dag_template(e[i].value, strlen(e[i].value), v, &b, NULL, NULL, err) ||
                sl_buf_cstr(&b))
                goto oom;
            PUT(e[i].key, b.data);
        }
    }
    for (int k = 0; sl_dag_vars_names[k]; k++) {
        char name[64];
        snprintf(name, sizeof name, "SLUICE_");
        for (const char *c = sl_dag_vars_names[k]; *c && strlen(name) < sizeof name - 1; c++) {
            size_t l = strlen(name);
            name[l] = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
            name[l + 1] = '\0';
        }
        PUT(name, v->val[k]);
    }
#undef PUT
    sl_buf_fini(&b);
    env[n] = NULL;
    return env;
oom:
    sl_buf_fini(&b);
    for (size_t k = 0; k < n; k++)
        sl_free(env[k]);
    sl_free(env);
    return NULL;
}

static void free_env(char **env)
{
    for (size_t k = 0; env && env[k]; k++)
        sl_free(env[k]);
    sl_free(env);
}

static sl_rc write_file(const char *path, const char *data, size_t len, struct sl_error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return sl_error_sys(err, SL_EIO, errno, "cannot create %s", path);
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            return sl_error_sys(err, SL_EIO, e, "cannot write %s", path);
        }
        off += (size_t)w;
    }
    close(fd);
    return SL_OK;
}

/*
 * In the child, after vfork: never returns. System calls only, on the parent's memory
 * (nothing is allocated or written but the child's own stack frame), then execve.
 */
static void child(const struct sl_dag *d, int out, char *const argv[], char **env, pid_t parent)
{
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    /* Every signal is blocked (see start_job). Caught signals go back to their default
     * before any is let through: a handler of ours must never run in the child, which
     * shares the parent's memory until execve. Ignored ones stay ignored (nohup), except
     * SIGPIPE, which sluice ignores for itself and a job's pipelines need. */
    struct sigaction sa, cur;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &cur) != 0)
            continue;
        if (sig == SIGPIPE || (cur.sa_handler != SIG_DFL && cur.sa_handler != SIG_IGN))
            sigaction(sig, &sa, NULL);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int nul = open("/dev/null", O_RDONLY);
    if (nul < 0)
        _exit(126);
    dup2(nul, 0);
    dup2(out, 1);
    dup2(out, 2);
    if (out > 2)
        close(out);
    if (nul > 2)
        close(nul);
    if (chdir(d->dir) != 0)
        _exit(126);
    execve(argv[0], argv, env);
    static const char msg[] = "sluice: cannot execute the job\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(127);
}

/*
 * Move what the job wrote from its pipe to its log file, creating the file (and the
 * partition's log directory) on the first byte: most trivial jobs print nothing, and an
 * inode per attempt is the dominant cost of a backfill of trivial jobs on ext4. final:
 * the job is over; read until EOF (its group was killed) and close.
 */
static void slot_output(struct sl__xslot *s, int final)
{
    if (s->out_fd < 0)
        return;
    char buf[65536];
    for (;;) {
        ssize_t n = read(s->out_fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN && final) {
            /* Writers are dying (SIGKILL to the group): wait for them briefly. */
            struct pollfd pfd = {s->out_fd, POLLIN, 0};
            if (poll(&pfd, 1, 100) > 0)
                continue;
        }
        if (n <= 0)
            break;
        if (s->log_fd < 0 && !s->log_failed) {
            struct sl__xpart *p = s->part;
            if (!p->logdir_made) {
                mkdir_p(p->logdir);
                p->logdir_made = 1;
            }
            s->log_fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
            if (s->log_fd < 0) {
                s->log_failed = 1;
                sl_log(SL_LOG_WARN, "dag", "cannot create the log %s: %s; the job's output is lost",
                       s->log, strerror(errno));
            } else if (s->head) {
                ssize_t w = write(s->log_fd, s->head, strlen(s->head));
                (void)w;
            }
        }
        if (s->log_fd >= 0 && s->logged < SL_DAG_LOG_MAX) {
            size_t room = (size_t)(SL_DAG_LOG_MAX - s->logged);
            size_t m = (size_t)n < room ? (size_t)n : room;
            ssize_t w = write(s->log_fd, buf, m);
            (void)w;
            s->logged += m;
            if (s->logged >= SL_DAG_LOG_MAX) {
                static const char cut[] = "\n# sluice: log cut at its size limit\n";
                w = write(s->log_fd, cut, sizeof cut - 1);
                (void)w;
            }
        }
    }
    if (final) {
        close(s->out_fd);
        s->out_fd = -1;
        if (s->log_fd >= 0)
            close(s->log_fd);
        s->log_fd = -1;
    }
}

static sl_rc start_job(struct sl__exec *x, struct sl__xpart *p, size_t j, struct sl_error *err)
{
    struct sl_dag *d = x->d;
    const struct sl_dag_job *job = &d->jobs[j];
    struct sl__xjob *xj = &p->jobs[j];
    struct sl__xslot *s = NULL;
    for (size_t i = 0; i < d->concurrency; i++)
        if (!x->slots[i].pid) {
            s = &x->slots[i];
            break;
        }
    if (!s)
        return SL_AGAIN;
    unsigned attempt = xj->attempt + 1;
    struct sl_dag_vars v;
    sl_dag_vars_init(d, p->idx, job->name, attempt, &v);
    struct sl_buf text;
    sl_buf_init(&text, 16u << 20);
    char **env = NULL;
    sl_rc rc = SL_OK;
    memset(s, 0, sizeof *s);
    if ((size_t)snprintf(s->log, sizeof s->log, "%s/%s.%u.log", p->logdir, job->name, attempt) >=
        sizeof s->log) {
        rc = sl_error_set(err, SL_EINVAL, "log path too long under %s", p->logdir);
        goto out;
    }
    const char *src = job->command ? job->command : job->pipeline_text;
    if ((rc = sl_dag_template(src, strlen(src), &v, &text, NULL, NULL, err)) ||
        (rc = sl_buf_cstr(&text)))
        goto out;
    char *argv[5] = {NULL};
    if (job->command) {
        argv[0] = (char *)"/bin/sh";
        argv[1] = (char *)"-c";
        argv[2] = text.data;
    } else {
        /* The expanded pipeline file beside the original, so its relative paths hold. */
        const char *slash = strrchr(job->pipeline, '/');
        size_t dl = slash ? (size_t)(slash - job->pipeline) : 0;
        snprintf(s->tmpcfg, sizeof s->tmpcfg, "%.*s/.%s.%s.%s.%u.%ld.sluice.yaml", (int)dl,
                 job->pipeline, d->name, p->key, job->name, attempt, (long)getpid());
        char copy[PATH_MAX + 16];
        snprintf(copy, sizeof copy, "%s.yaml", s->log);
        if ((rc = write_file(s->tmpcfg, text.data, text.len, err)))
            goto out;
        if (!p->logdir_made) {
            mkdir_p(p->logdir);
            p->logdir_made = 1;
        }
        write_file(copy, text.data, text.len, NULL);
        argv[0] = x->self_exe;
        argv[1] = (char *)"dag";
        argv[2] = (char *)"exec-pipeline";
        argv[3] = s->tmpcfg;
    }
    if (!(env = job_env(d, job, &v, err))) {
        rc = err && err->rc ? err->rc : sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    /* The log starts with what runs, so a reader needs nothing else to reproduce it. */
    {
        struct sl_buf hb;
        sl_buf_init(&hb, 0);
        if (sl_buf_printf(&hb, "# sluice dag %s partition %s job %s attempt %u: %s\n", d->name,
                          p->key, job->name, attempt,
                          job->command ? "sh -c (command below)" : job->pipeline) == SL_OK &&
            job->command)
            sl_buf_printf(&hb, "# %s\n", text.data);
        if (sl_buf_cstr(&hb) == SL_OK)
            s->head = hb.data;
        else
            sl_buf_fini(&hb);
    }
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        rc = sl_error_sys(err, SL_EIO, errno, "cannot start job %s", job->name);
        goto out;
    }
    /*
     * vfork: the child borrows the parent's memory until execve instead of copying its
     * page tables, which doubles the rate of job starts (bench/dag.sh). Every signal is
     * blocked across it so that no handler runs in the child before it has reset them.
     */
    pid_t parent = getpid();
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    pid_t pid = vfork();
    if (pid == 0)
        child(d, pfd[1], argv, env, parent);
    int fork_errno = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        rc = sl_error_sys(err, SL_EIO, fork_errno, "cannot start job %s", job->name);
        goto out;
    }
    close(pfd[1]);
    fcntl(pfd[0], F_SETFL, O_NONBLOCK);
    s->out_fd = pfd[0];
    s->log_fd = -1;
    setpgid(pid, pid); /* also in the child: whichever runs first */
    s->pid = pid;
    s->part = p;
    s->job = j;
    s->attempt = attempt;
    s->start_ms = sl__now_ms();
    s->start_mono = mono_ms();
    s->deadline = job->timeout_ms ? s->start_mono + (int64_t)job->timeout_ms : 0;
    xj->attempt = attempt;
    xj->tries++;
    xj->st = SL_DAG_JOB_RUNNING;
    xj->ready = 0;
    p->running++;
    x->nrunning++;
    x->sum.job_runs++;
    if ((rc = sl__dagdb_begin(x->db, err)) ||
        (rc = sl__dagdb_attempt_start(x->db, p->key, job->name, attempt, pid, s->start_ms, s->log,
                                      err)))
        goto out;
out:
    if (rc && !s->pid) {
        if (s->tmpcfg[0])
            unlink(s->tmpcfg);
        sl_free(s->head);
        memset(s, 0, sizeof *s);
    }
    free_env(env);
    sl_buf_fini(&text);
    return rc;
}

/* ---- finishing ------------------------------------------------------------------- */

static void job_failed_alert(struct sl__exec *x, struct sl__xpart *p, size_t j, const char *why)
{
    const struct sl_dag_job *job = &x->d->jobs[j];
    sl__dag_alert(x->db, x->d, "job_failed", p->key, job->name, p->jobs[j].attempt,
                  "dag %s partition %s: job %s failed after %u attempt%s (%s); log: "
                  "%s/logs/%s/%s.%u.log",
                  x->d->name, p->key, job->name, p->jobs[j].tries, p->jobs[j].tries == 1 ? "" : "s",
                  why, x->d->state_dir, p->key, job->name, p->jobs[j].attempt);
}

static sl_rc reap(struct sl__exec *x, struct sl_error *err)
{
    struct sl_dag *d = x->d;
    for (size_t i = 0; i < d->concurrency; i++) {
        struct sl__xslot *s = &x->slots[i];
        if (!s->pid)
            continue;
        int status = 0;
        pid_t r = waitpid(s->pid, &status, WNOHANG);
        if (r == 0 || (r < 0 && errno == EINTR))
            continue;
        if (r < 0)
            status = 127 << 8; /* lost track of it: treat as failed */
        /* The leader is gone; what it started in its group goes with it. */
        kill(-s->pid, SIGKILL);
        slot_output(s, 1);
        struct sl__xpart *p = s->part;
        struct sl__xjob *xj = &p->jobs[s->job];
        const struct sl_dag_job *job = &d->jobs[s->job];
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
        int64_t now = sl__now_ms();
        enum sl_dag_job_state ast, jst;
        char why[96];
        /* A job stopped by a shutdown that still exits 0 finished its work: success. */
        if (code == 0 && !s->timed_out) {
            ast = jst = SL_DAG_JOB_SUCCESS;
        } else {
            ast = s->timed_out ? SL_DAG_JOB_TIMEOUT
                  : s->killed  ? SL_DAG_JOB_KILLED
                               : SL_DAG_JOB_FAILED;
            if (s->timed_out)
                snprintf(why, sizeof why, "timed out after %llu ms",
                         (unsigned long long)job->timeout_ms);
            else if (sig)
                snprintf(why, sizeof why, "killed by signal %d", sig);
            else
                snprintf(why, sizeof why, "exit code %d", code);
            if (s->killed)
                jst = SL_DAG_JOB_KILLED;
            else if (!stop_requested && xj->tries <= job->retries)
                jst = SL_DAG_JOB_RETRY;
            else
                jst = SL_DAG_JOB_FAILED; /* no new attempt while stopping */
            sl_log(jst == SL_DAG_JOB_RETRY ? SL_LOG_WARN : SL_LOG_ERROR, "dag",
                   "%s %s: job %s attempt %u %s%s; log: %s", d->name, p->key, job->name, s->attempt,
                   why, jst == SL_DAG_JOB_RETRY ? ", retrying" : "", s->log);
        }
        sl_rc rc;
        if ((rc = sl__dagdb_begin(x->db, err)) ||
            (rc = sl__dagdb_attempt_end(x->db, p->key, job->name, s->attempt, ast, code, sig, now,
                                        jst, err)))
            return rc;
        xj->st = jst;
        if (jst == SL_DAG_JOB_RETRY) {
            double base = (double)job->retry_backoff_ms * pow(2.0, (double)(xj->tries - 1));
            if (base > 3600e3)
                base = 3600e3;
            xj->not_before = mono_ms() + (int64_t)(base * (0.8 + 0.4 * drand48()));
        } else {
            p->left--;
        }
        if (jst == SL_DAG_JOB_FAILED)
            job_failed_alert(x, p, s->job, why);
        if (s->tmpcfg[0])
            unlink(s->tmpcfg);
        sl_free(s->head);
        p->running--;
        x->nrunning--;
        memset(s, 0, sizeof *s);
    }
    return SL_OK;
}

/* Timeouts and the end of a stop's grace period. */
static void enforce_deadlines(struct sl__exec *x, int64_t now, int64_t *next)
{
    struct sl_dag *d = x->d;
    for (size_t i = 0; i < d->concurrency; i++) {
        struct sl__xslot *s = &x->slots[i];
        if (!s->pid)
            continue;
        if (s->term_at) {
            if (now >= s->term_at + (int64_t)d->kill_grace_ms) {
                kill(-s->pid, SIGKILL);
                s->term_at = now; /* again after another grace, should it survive */
            }
            int64_t t = s->term_at + (int64_t)d->kill_grace_ms;
            if (t < *next)
                *next = t;
            continue;
        }
        if (s->deadline && now >= s->deadline) {
            sl_log(SL_LOG_WARN, "dag",
                   "%s %s: job %s ran past its timeout; stopping its "
                   "process group",
                   d->name, s->part->key, d->jobs[s->job].name);
            s->timed_out = 1;
            s->term_at = now;
            kill(-s->pid, SIGTERM);
            int64_t t = now + (int64_t)d->kill_grace_ms;
            if (t < *next)
                *next = t;
            continue;
        }
        if (x->stop_at && now >= x->stop_at + (int64_t)d->kill_grace_ms) {
            sl_log(SL_LOG_WARN, "dag",
                   "%s %s: job %s still running at the end of the "
                   "shutdown grace period; stopping its process group",
                   d->name, s->part->key, d->jobs[s->job].name);
            s->killed = 1;
            s->term_at = now;
            kill(-s->pid, SIGTERM);
            continue;
        }
        if (s->deadline && s->deadline < *next)
            *next = s->deadline;
        if (x->stop_at && x->stop_at + (int64_t)d->kill_grace_ms < *next)
            *next = x->stop_at + (int64_t)d->kill_grace_ms;
    }
}

/* Decide which waiting jobs are ready, skipped, or still waiting. */
static sl_rc resolve(struct sl__exec *x, struct sl__xpart *p, int64_t now, int64_t *next,
                     struct sl_error *err)
{
    struct sl_dag *d = x->d;
    for (size_t oi = 0; oi < d->njobs; oi++) {
        size_t j = d->order[oi];
        struct sl__xjob *xj = &p->jobs[j];
        if (xj->st == SL_DAG_JOB_RETRY) {
            if (now >= xj->not_before)
                xj->ready = 1;
            else if (xj->not_before < *next)
                *next = xj->not_before;
            continue;
        }
        if (xj->st != SL_DAG_JOB_NONE || xj->ready)
            continue;
        const struct sl_dag_job *job = &d->jobs[j];
        int all_final = 1, all_ok = 1, any_failed = 0;
        for (size_t k = 0; k < job->ndeps; k++) {
            const struct sl__xjob *dj = &p->jobs[job->deps[k]];
            if (!final_state(dj->st))
                all_final = 0;
            if (dj->st != SL_DAG_JOB_SUCCESS)
                all_ok = 0;
            if (dj->st == SL_DAG_JOB_FAILED || dj->st == SL_DAG_JOB_KILLED ||
                (dj->st == SL_DAG_JOB_SKIPPED && dj->upstream_failed))
                any_failed = 1;
        }
        if (!all_final)
            continue;
        int run;
        switch (job->trigger) {
        case SL_DAG_ALL_DONE:
            run = 1;
            break;
        case SL_DAG_ONE_FAILED:
            run = any_failed;
            break;
        default:
            run = all_ok;
            break;
        }
        if (run) {
            xj->ready = 1;
            continue;
        }
        xj->st = SL_DAG_JOB_SKIPPED;
        xj->upstream_failed = any_failed;
        p->left--;
        sl_rc rc;
        if ((rc = sl__dagdb_begin(x->db, err)) ||
            (rc = sl__dagdb_job_set(x->db, p->key, job->name, SL_DAG_JOB_SKIPPED, err)))
            return rc;
    }
    return SL_OK;
}

static sl_rc finish_part(struct sl__exec *x, size_t i, enum sl_dag_run_state st,
                         struct sl_error *err)
{
    struct sl__xpart *p = x->parts[i];
    sl_rc rc;
    if ((rc = sl__dagdb_begin(x->db, err)) ||
        (rc = sl__dagdb_run_end(x->db, p->key, st, sl__now_ms(), err)))
        return rc;
    if (st == SL_DAG_RUN_SUCCESS)
        x->sum.succeeded++;
    else if (st == SL_DAG_RUN_FAILED)
        x->sum.failed++;
    else
        x->sum.killed++;
    sl_log(st == SL_DAG_RUN_SUCCESS ? SL_LOG_DEBUG : SL_LOG_WARN, "dag", "%s %s: %s in %.2f s",
           x->d->name, p->key, sl_dag_run_state_name(st),
           (double)(mono_ms() - p->started_ms) / 1e3);
    progress(x, p->key, st, 0);
    part_free(p);
    memmove(&x->parts[i], &x->parts[i + 1], (x->nparts - i - 1) * sizeof *x->parts);
    x->nparts--;
    return SL_OK;
}

sl_rc sl__exec_step(struct sl__exec *x, int64_t max_wait_ms, struct sl_error *err)
{
    struct sl_dag *d = x->d;
    sl_rc rc;
    if (stop_requested && !x->stop_at) {
        x->stop_at = mono_ms();
        if (x->nrunning)
            sl_log(SL_LOG_WARN, "dag",
                   "%s: stopping: no new jobs start; %zu running job%s may finish within "
                   "kill_grace (%llu ms)",
                   d->name, x->nrunning, x->nrunning == 1 ? "" : "s",
                   (unsigned long long)d->kill_grace_ms);
    }
    if ((rc = reap(x, err)))
        goto fail;
    int64_t now = mono_ms();
    int64_t next = now + max_wait_ms;
    enforce_deadlines(x, now, &next);
    /* While stopping nothing new is decided: jobs not started stay as they are ("none"),
     * rather than being recorded as skipped for a reason that is not theirs. */
    for (size_t i = 0; i < x->nparts && !x->stop_at; i++)
        if ((rc = resolve(x, x->parts[i], now, &next, err)))
            goto fail;
    if (!x->stop_at) {
        for (size_t i = 0; i < x->nparts && x->nrunning < d->concurrency; i++) {
            struct sl__xpart *p = x->parts[i];
            for (size_t oi = 0; oi < d->njobs && x->nrunning < d->concurrency; oi++) {
                size_t j = d->order[oi];
                if (!p->jobs[j].ready)
                    continue;
                rc = start_job(x, p, j, err);
                if (rc == SL_AGAIN)
                    break;
                if (rc) {
                    /* A job that cannot even start fails like one that exits non-zero. */
                    sl_log(SL_LOG_ERROR, "dag", "%s %s: job %s could not start: %s", d->name,
                           p->key, d->jobs[j].name, err ? err->msg : sl_strerror(rc));
                    p->jobs[j].ready = 0;
                    p->jobs[j].st = SL_DAG_JOB_FAILED;
                    p->left--;
                    if (sl__dagdb_begin(x->db, err) == SL_OK)
                        sl__dagdb_job_set(x->db, p->key, d->jobs[j].name, SL_DAG_JOB_FAILED, err);
                    job_failed_alert(x, p, j, "could not start");
                    rc = SL_OK;
                }
            }
        }
    }
    int again = 0;
    for (size_t i = 0; i < x->nparts; i++)
        for (size_t j = 0; j < d->njobs && !x->stop_at; j++)
            if (x->parts[i]->jobs[j].ready && x->nrunning < d->concurrency)
                again = 1;
    for (size_t i = 0; i < x->nparts;) {
        struct sl__xpart *p = x->parts[i];
        enum sl_dag_run_state st = SL_DAG_RUN_NONE;
        if (p->left == 0) {
            st = SL_DAG_RUN_SUCCESS;
            for (size_t j = 0; j < d->njobs; j++) {
                if (p->jobs[j].st == SL_DAG_JOB_KILLED)
                    st = SL_DAG_RUN_KILLED;
                else if (p->jobs[j].st == SL_DAG_JOB_FAILED && st == SL_DAG_RUN_SUCCESS)
                    st = SL_DAG_RUN_FAILED;
            }
        } else if (x->stop_at && p->running == 0) {
            st = SL_DAG_RUN_KILLED;
        }
        if (st == SL_DAG_RUN_NONE) {
            i++;
            continue;
        }
        if ((rc = finish_part(x, i, st, err)))
            goto fail;
        again = 1; /* room for another partition */
    }
    if ((rc = sl__dagdb_commit(x->db, err)))
        goto fail;
    if (x->db->alerts_new) {
        x->db->alerts_new = 0;
        sl__alerter_kick(x->alerter);
    }
    x->again = again;
    if ((x->nparts == 0 && !x->want_more) || again)
        return SL_OK;
    /* Jobs started in this iteration have deadlines too. */
    for (size_t i = 0; i < d->concurrency; i++) {
        const struct sl__xslot *sl = &x->slots[i];
        if (sl->pid && sl->deadline && !sl->term_at && sl->deadline < next)
            next = sl->deadline;
    }
    now = mono_ms();
    int timeout = next > now ? (int)(next - now) : 0;
    struct pollfd pfd[1 + SL_DAG_MAX_CONCURRENCY];
    nfds_t nfd = 0;
    pfd[nfd++] = (struct pollfd){wake_pipe[0], POLLIN, 0};
    for (size_t i = 0; i < d->concurrency; i++)
        if (x->slots[i].pid && x->slots[i].out_fd >= 0)
            pfd[nfd++] = (struct pollfd){x->slots[i].out_fd, POLLIN, 0};
    int pr = poll(pfd, nfd, timeout);
    if (pr > 0 && (pfd[0].revents & POLLIN)) {
        char buf[256];
        while (read(wake_pipe[0], buf, sizeof buf) > 0)
            ;
    }
    if (pr > 0)
        for (size_t i = 0; i < d->concurrency; i++)
            if (x->slots[i].pid && x->slots[i].out_fd >= 0)
                slot_output(&x->slots[i], 0);
    return SL_OK;
fail:
    sl__dagdb_rollback(x->db);
    return rc;
}

size_t sl__exec_active(const struct sl__exec *x)
{
    return x->nparts;
}

/* ---- run a range ----------------------------------------------------------------- */

sl_rc sl_dag_run_range(struct sl_dag *d, int64_t from, int64_t to, const struct sl_dag_run_opts *o,
                       struct sl_dag_summary *sum, struct sl_error *err)
{
    memset(sum, 0, sizeof *sum);
    struct sl__exec *x = NULL;
    sl_rc rc = sl__exec_create(d, o, &x, err);
    if (rc)
        return rc;
    x->total = to >= from ? (size_t)(to - from + 1) : 0;
    sl__alerter_kick(x->alerter); /* what an earlier process left undelivered */
    int64_t next = from;
    for (;;) {
        while (!stop_requested && next <= to && x->nparts < d->max_active_runs) {
            int added = 0;
            if ((rc = sl__exec_add(x, next, 0, &added, err)))
                goto out;
            next++;
        }
        x->want_more = !stop_requested && next <= to;
        if (x->nparts == 0 && !x->want_more)
            break;
        if ((rc = sl__exec_step(x, 1000, err)))
            goto out;
    }
    if (stop_requested)
        rc = sl_error_set(err, SL_ECANCELED, "stopped before every partition ran");
out:
    if (rc && rc != SL_ECANCELED)
        sl__dagdb_rollback(x->db);
    else
        sl__dagdb_commit(x->db, NULL);
    x->sum.elapsed_s = (double)(mono_ms() - x->t0) / 1e3;
    *sum = x->sum;
    sum->partitions = x->total;
    sl__exec_destroy(x);
    return rc;
}
