/*
 * dag.c - `sluice dag validate|run|backfill|status|graph DAG.yaml`: the orchestrator's
 * verbs (and `dag exec-pipeline`, how a pipeline job runs inside its child process).
 *
 * A thin client of include/sluice/dag.h and dagrun.h: argument parsing, the progress bar,
 * and printing. Exit codes as everywhere: 0 success, 1 a job finally failed (or the run
 * was stopped, or another process holds the partition `run` was asked for), 2 usage or
 * configuration error.
 *
 * Signals (run, backfill): the first SIGINT/SIGTERM stops starting jobs and lets running
 * ones finish within the DAG's kill_grace, then kills their process groups; a second one
 * exits at once (the jobs die with us: PR_SET_PDEATHSIG), and the next run resumes.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sluice/alloc.h"
#include "sluice/buf.h"
#include "sluice/dag.h"
#include "sluice/dagrun.h"
#include "sluice/json.h"
#include "sluice/log.h"
#include "sluice/pipeline.h"

#include "cli/cli.h"

static const char help[] =
    "usage: sluice dag <command> DAG.yaml [options]\n"
    "\n"
    "commands:\n"
    "  validate DAG.yaml [--partition P]\n"
    "                               check the DAG file and every pipeline it names (expanded\n"
    "                               for P, default the latest day or hour); errors as\n"
    "                               file:line:col: message\n"
    "  run DAG.yaml --partition P   run every job of partition P (again, if it ran before:\n"
    "                               jobs replace their outputs)\n"
    "  backfill DAG.yaml --from P --to P\n"
    "                               run each partition in the range that has not succeeded\n"
    "                               (resuming interrupted ones), oldest first\n"
    "  status DAG.yaml [--from P] [--to P] [--json]\n"
    "                               partitions x jobs: state, attempts, duration\n"
    "  graph DAG.yaml [--dot]       the jobs and their dependencies (text or Graphviz)\n"
    "\n"
    "options:\n"
    "  --no-progress      backfill: plain lines even on a terminal\n"
    "  --quiet            no per-partition lines\n"
    "  --log-format F, --log-level L\n"
    "\n"
    "P is a day (2026-11-26) for `partition: daily`, an hour (2026-11-26T03) for hourly.\n"
    "Exit codes: 0 success, 1 a job failed (or the run was stopped), 2 usage or config error.\n"
    "See docs/orchestration.md.\n";

static volatile sig_atomic_t signals_seen;

static void on_signal(int sig)
{
    if (signals_seen++)
        _exit(128 + sig);
    sl_dag_request_stop();
}

static int load(const char *path, struct sl_dag **d)
{
    struct sl_error err;
    sl_error_clear(&err);
    sl_rc rc = sl_dag_load(path, d, &err);
    if (rc) {
        fprintf(stderr, "%s\n", err.msg[0] ? err.msg : sl_strerror(rc));
        return SL_EXIT_USAGE;
    }
    return SL_EXIT_OK;
}

static int parse_part(const struct sl_dag *d, const char *opt, const char *s, int64_t *idx)
{
    if (sl_dag_part_parse(d, s, idx) == 0)
        return 0;
    fprintf(stderr, "sluice dag: %s \"%s\" is not a partition of dag %s; write it like %s\n", opt,
            s, d->name, d->partitioning == SL_DAG_HOURLY ? "2026-11-26T03" : "2026-11-26");
    return -1;
}

/* ---- validate ------------------------------------------------------------------- */

/*
 * Each pipeline job's file, expanded for partition idx, must load as a pipeline: the
 * copy is written beside the original (as runs do) and removed.
 */
static int check_pipelines(const struct sl_dag *d, int64_t idx)
{
    int bad = 0;
    for (size_t j = 0; j < d->njobs; j++) {
        const struct sl_dag_job *job = &d->jobs[j];
        if (!job->pipeline)
            continue;
        struct sl_dag_vars v;
        sl_dag_vars_init(d, idx, job->name, 1, &v);
        struct sl_buf b;
        sl_buf_init(&b, 16u << 20);
        struct sl_error err;
        sl_error_clear(&err);
        char tmp[4096];
        const char *slash = strrchr(job->pipeline, '/');
        snprintf(tmp, sizeof tmp, "%.*s/.%s.validate.%s.%ld.sluice.yaml",
                 (int)(slash ? slash - job->pipeline : 0), job->pipeline, d->name, job->name,
                 (long)getpid());
        FILE *f = NULL;
        if (sl_dag_template(job->pipeline_text, strlen(job->pipeline_text), &v, &b, NULL, NULL,
                            &err) == SL_OK &&
            (f = fopen(tmp, "wb")) != NULL) {
            fwrite(b.data ? b.data : "", 1, b.len, f);
            fclose(f);
            struct sl_pipeline *p = NULL;
            sl_error_clear(&err);
            sl_rc rc = sl_pipeline_load(tmp, &p, &err);
            unlink(tmp);
            if (rc) {
                /* Name the real file, not the temporary copy. */
                char *m = err.msg;
                size_t tl = strlen(tmp);
                fprintf(stderr,
                        "job %s (pipeline %s, expanded for %s; a column after a template "
                        "counts in the expanded text):\n",
                        job->name, job->pipeline, v.val[6]);
                while (*m) {
                    char *hit = strstr(m, tmp);
                    if (!hit) {
                        fputs(m, stderr);
                        break;
                    }
                    fwrite(m, 1, (size_t)(hit - m), stderr);
                    fputs(job->pipeline, stderr);
                    m = hit + tl;
                }
                fputc('\n', stderr);
                bad++;
            }
            sl_pipeline_destroy(p);
        } else {
            fprintf(stderr, "job %s: cannot check %s: %s\n", job->name, job->pipeline,
                    err.msg[0] ? err.msg : "cannot write a temporary copy beside it");
            bad++;
        }
        sl_buf_fini(&b);
    }
    return bad;
}

static int cmd_validate(const struct sl_dag *d, const char *partition)
{
    int64_t idx = sl_dag_part_at(d, (int64_t)time(NULL)) - 1;
    if (partition && parse_part(d, "--partition", partition, &idx))
        return SL_EXIT_USAGE;
    if (check_pipelines(d, idx))
        return SL_EXIT_USAGE;
    size_t np = 0, nc = 0;
    for (size_t j = 0; j < d->njobs; j++)
        d->jobs[j].pipeline ? np++ : nc++;
    printf("%s: dag %s is valid: %zu job%s (%zu pipeline%s, %zu command%s), partition %s%s%s\n",
           d->path, d->name, d->njobs, d->njobs == 1 ? "" : "s", np, np == 1 ? "" : "s", nc,
           nc == 1 ? "" : "s", d->partitioning == SL_DAG_HOURLY ? "hourly" : "daily",
           d->schedule ? ", schedule " : "", d->schedule ? d->schedule : "");
    return SL_EXIT_OK;
}

/* ---- run / backfill --------------------------------------------------------------- */

struct prog {
    int bar;   /* a terminal: redraw one line */
    int quiet; /* no lines at all */
    time_t t0;
};

static void on_progress(const struct sl_dag_progress *p, void *ctx)
{
    struct prog *pr = ctx;
    if (pr->bar) {
        int width = 30;
        int fill = p->total ? (int)((double)p->done * width / (double)p->total) : width;
        char bar[64];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        double el = difftime(time(NULL), pr->t0);
        fprintf(stderr, "\r[%s] %zu/%zu partitions, %zu failed, %zu jobs running, %.0fs  ", bar,
                p->done, p->total, p->failed, p->jobs_running, el);
        if (p->done == p->total)
            fputc('\n', stderr);
        fflush(stderr);
        return;
    }
    if (pr->quiet)
        return;
    fprintf(stderr, "%s %s (%zu/%zu)\n", p->key,
            p->busy                          ? "skipped: another process is running it"
            : p->state == SL_DAG_RUN_SUCCESS ? "success"
                                             : sl_dag_run_state_name(p->state),
            p->done, p->total);
}

static int cmd_run(struct sl_dag *d, int64_t from, int64_t to, int force, const char *trigger,
                   int progress_bar, int quiet)
{
    struct prog pr = {progress_bar && isatty(STDERR_FILENO), quiet, time(NULL)};
    struct sl_dag_run_opts o = {force, trigger, on_progress, &pr, NULL, NULL};
    struct sl_dag_summary sum;
    struct sl_error err;
    sl_error_clear(&err);
    sl__cli_stop_signals(on_signal);
    sl_rc rc = sl_dag_run_range(d, from, to, &o, &sum, &err);
    if (rc && rc != SL_ECANCELED) {
        fprintf(stderr, "sluice dag: %s\n", err.msg[0] ? err.msg : sl_strerror(rc));
        return SL_EXIT_FAIL;
    }
    if (!quiet)
        fprintf(stderr,
                "sluice dag %s: %s: %zu partition%s: %zu succeeded, %zu failed, %zu already "
                "done, %zu held by another process%s; %zu job runs in %.2f s\n",
                trigger, d->name, sum.partitions, sum.partitions == 1 ? "" : "s", sum.succeeded,
                sum.failed, sum.skipped_done, sum.busy, rc == SL_ECANCELED ? "; STOPPED" : "",
                sum.job_runs, sum.elapsed_s);
    if (rc == SL_ECANCELED || sum.failed || sum.killed)
        return SL_EXIT_FAIL;
    if (force && sum.busy)
        return SL_EXIT_FAIL;
    return SL_EXIT_OK;
}

/* ---- status ----------------------------------------------------------------------- */

static void fmt_dur(int64_t ms, char *out, size_t n)
{
    if (ms < 0)
        snprintf(out, n, "-");
    else if (ms < 10000)
        snprintf(out, n, "%.1fs", (double)ms / 1e3);
    else if (ms < 600000)
        snprintf(out, n, "%llds", (long long)(ms / 1000));
    else if (ms < 36000000)
        snprintf(out, n, "%lldm", (long long)(ms / 60000));
    else
        snprintf(out, n, "%lldh", (long long)(ms / 3600000));
}

static void json_str(struct sl_buf *b, const char *s)
{
    sl_buf_putc(b, '"');
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            sl_buf_printf(b, "\\%c", c);
        else if (c < 0x20)
            sl_buf_printf(b, "\\u%04x", c);
        else
            sl_buf_putc(b, (char)c);
    }
    sl_buf_putc(b, '"');
}

static int cmd_status(const struct sl_dag *d, const char *from, const char *to, int json)
{
    struct sl_dag_status st;
    struct sl_error err;
    sl_error_clear(&err);
    int64_t tmp;
    if ((from && parse_part(d, "--from", from, &tmp)) || (to && parse_part(d, "--to", to, &tmp)))
        return SL_EXIT_USAGE;
    sl_rc rc = sl_dag_status_read(d, from, to, &st, &err);
    if (rc == SL_ENOENT) {
        memset(&st, 0, sizeof st);
    } else if (rc) {
        fprintf(stderr, "sluice dag status: %s\n", err.msg);
        return SL_EXIT_FAIL;
    }
    size_t nsla = 0;
    for (size_t i = 0; i < st.nrows; i++)
        nsla += st.rows[i].sla_missed != 0;
    if (json) {
        struct sl_buf b;
        sl_buf_init(&b, 0);
        sl_buf_puts(&b, "{\"dag\":");
        json_str(&b, d->name);
        sl_buf_puts(&b, ",\"jobs\":[");
        for (size_t oi = 0; oi < d->njobs; oi++) {
            if (oi)
                sl_buf_putc(&b, ',');
            json_str(&b, d->jobs[d->order[oi]].name);
        }
        sl_buf_printf(&b, "],\"sla_misses\":%zu,\"alerts_pending\":%zu,\"partitions\":[", nsla,
                      st.alerts_pending);
        for (size_t i = 0; i < st.nrows; i++) {
            const struct sl_dag_row *r = &st.rows[i];
            if (i)
                sl_buf_putc(&b, ',');
            sl_buf_puts(&b, "{\"partition\":");
            json_str(&b, r->key);
            sl_buf_puts(&b, ",\"state\":");
            json_str(&b, sl_dag_run_state_name(r->state));
            sl_buf_puts(&b, ",\"trigger\":");
            json_str(&b, r->trigger);
            sl_buf_printf(&b, ",\"sla_missed\":%s", r->sla_missed ? "true" : "false");
            if (r->ended_ms && r->started_ms)
                sl_buf_printf(&b, ",\"duration_ms\":%lld",
                              (long long)(r->ended_ms - r->started_ms));
            sl_buf_puts(&b, ",\"jobs\":{");
            int first = 1;
            for (size_t oi = 0; oi < d->njobs; oi++) {
                size_t j = d->order[oi];
                const struct sl_dag_cell *c = &r->cells[j];
                if (!first)
                    sl_buf_putc(&b, ',');
                first = 0;
                json_str(&b, d->jobs[j].name);
                sl_buf_puts(&b, ":{\"state\":");
                json_str(&b, sl_dag_job_state_name(c->state));
                sl_buf_printf(&b, ",\"attempts\":%u", c->attempts);
                if (c->duration_ms >= 0)
                    sl_buf_printf(&b, ",\"duration_ms\":%lld", (long long)c->duration_ms);
                if (c->exit_code >= 0)
                    sl_buf_printf(&b, ",\"exit_code\":%d", c->exit_code);
                if (c->sig)
                    sl_buf_printf(&b, ",\"signal\":%d", c->sig);
                if (c->log) {
                    sl_buf_puts(&b, ",\"log\":");
                    json_str(&b, c->log);
                }
                sl_buf_putc(&b, '}');
            }
            sl_buf_puts(&b, "}}");
        }
        sl_buf_puts(&b, "]}\n");
        fwrite(b.data, 1, b.len, stdout);
        sl_buf_fini(&b);
        sl_dag_status_fini(&st);
        return SL_EXIT_OK;
    }
    /* The grid: one row per partition, one column per job (in topological order). */
    int w = 15;
    for (size_t j = 0; j < d->njobs; j++) {
        int l = (int)strlen(d->jobs[j].name);
        if (l > w)
            w = l;
    }
    if (w > 24)
        w = 24;
    printf("%-14s %-8s", "partition", "run");
    for (size_t oi = 0; oi < d->njobs; oi++)
        printf(" %-*.*s", w, w, d->jobs[d->order[oi]].name);
    printf("\n");
    for (size_t i = 0; i < st.nrows; i++) {
        const struct sl_dag_row *r = &st.rows[i];
        printf("%-14s %-8s", r->key, sl_dag_run_state_name(r->state));
        for (size_t oi = 0; oi < d->njobs; oi++) {
            const struct sl_dag_cell *c = &r->cells[d->order[oi]];
            char cell[64], dur[16];
            if (c->state == SL_DAG_JOB_NONE) {
                snprintf(cell, sizeof cell, "-");
            } else {
                fmt_dur(c->duration_ms, dur, sizeof dur);
                if (c->attempts > 1)
                    snprintf(cell, sizeof cell, "%s %s x%u", sl_dag_job_state_name(c->state),
                             c->duration_ms >= 0 ? dur : "", c->attempts);
                else
                    snprintf(cell, sizeof cell, "%s %s", sl_dag_job_state_name(c->state),
                             c->duration_ms >= 0 ? dur : "");
            }
            printf(" %-*.*s", w, w, cell);
        }
        if (r->sla_missed)
            printf("  SLA MISSED");
        printf("\n");
    }
    printf("%zu partition%s", st.nrows, st.nrows == 1 ? "" : "s");
    if (nsla)
        printf(", %zu SLA miss%s", nsla, nsla == 1 ? "" : "es");
    if (st.alerts_pending)
        printf(", %zu alert%s not yet delivered", st.alerts_pending,
               st.alerts_pending == 1 ? "" : "s");
    printf("\n");
    sl_dag_status_fini(&st);
    return SL_EXIT_OK;
}

/* ---- graph ------------------------------------------------------------------------ */

static const char *trigger_name(enum sl_dag_trigger t)
{
    return t == SL_DAG_ALL_DONE     ? "all_done"
           : t == SL_DAG_ONE_FAILED ? "one_failed"
                                    : "all_success";
}

static int cmd_graph(const struct sl_dag *d, int dot)
{
    if (dot) {
        printf("digraph \"%s\" {\n  rankdir=LR;\n  node [shape=box];\n", d->name);
        for (size_t oi = 0; oi < d->njobs; oi++) {
            const struct sl_dag_job *j = &d->jobs[d->order[oi]];
            printf("  \"%s\" [label=\"%s\\n%s\"%s];\n", j->name, j->name,
                   j->pipeline ? "pipeline" : "command",
                   j->trigger == SL_DAG_ALL_SUCCESS ? "" : ", style=dashed");
        }
        for (size_t oi = 0; oi < d->njobs; oi++) {
            const struct sl_dag_job *j = &d->jobs[d->order[oi]];
            for (size_t k = 0; k < j->ndeps; k++)
                printf("  \"%s\" -> \"%s\"%s;\n", d->jobs[j->deps[k]].name, j->name,
                       j->trigger == SL_DAG_ALL_SUCCESS
                           ? ""
                           : (j->trigger == SL_DAG_ONE_FAILED ? " [label=\"one_failed\"]"
                                                              : " [label=\"all_done\"]"));
        }
        printf("}\n");
        return SL_EXIT_OK;
    }
    printf("dag %s (%s%s%s), %zu job%s in run order:\n", d->name,
           d->partitioning == SL_DAG_HOURLY ? "hourly" : "daily", d->schedule ? ", " : "",
           d->schedule ? d->schedule : "", d->njobs, d->njobs == 1 ? "" : "s");
    for (size_t oi = 0; oi < d->njobs; oi++) {
        const struct sl_dag_job *j = &d->jobs[d->order[oi]];
        printf("  %s", j->name);
        if (j->ndeps) {
            printf(" <- ");
            for (size_t k = 0; k < j->ndeps; k++)
                printf("%s%s", k ? ", " : "", d->jobs[j->deps[k]].name);
        }
        if (j->trigger != SL_DAG_ALL_SUCCESS)
            printf(" [%s]", trigger_name(j->trigger));
        printf("\n");
    }
    return SL_EXIT_OK;
}

/* ---- exec-pipeline (inside a job's child process) --------------------------------- */

/*
 * A pipeline job: start from scratch (forget the sinks' checkpoints of this pipeline, so
 * a re-run reads its whole input again and a partitioned sink replaces the partition),
 * then run it once.
 */
static int exec_pipeline(const char *cfg)
{
    char *reset_argv[] = {(char *)"reset", (char *)cfg, (char *)"--yes", NULL};
    int rc = sl__cli_reset(3, reset_argv);
    if (rc != SL_EXIT_OK) {
        fprintf(stderr, "sluice dag: resetting %s before the run failed (exit %d)\n", cfg, rc);
        return rc;
    }
    char *run_argv[] = {(char *)"run", (char *)cfg, (char *)"--once", NULL};
    return sl__cli_run(3, run_argv);
}

/* ---- dispatch --------------------------------------------------------------------- */

int sl__cli_dag(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(help, argc < 2 ? stderr : stdout);
        return argc < 2 ? SL_EXIT_USAGE : SL_EXIT_OK;
    }
    const char *cmd = argv[1];
    static const char *const cmds[] = {"validate", "run", "backfill", "status", "graph"};
    if (strcmp(cmd, "exec-pipeline") == 0) {
        if (argc != 3) {
            fprintf(stderr, "usage: sluice dag exec-pipeline PIPELINE.yaml\n");
            return SL_EXIT_USAGE;
        }
        return exec_pipeline(argv[2]);
    }
    size_t c;
    for (c = 0; c < sizeof cmds / sizeof cmds[0]; c++)
        if (strcmp(cmd, cmds[c]) == 0)
            break;
    if (c == sizeof cmds / sizeof cmds[0]) {
        const char *s = sl_suggest(cmd, cmds, sizeof cmds / sizeof cmds[0]);
        fprintf(stderr, "sluice dag: unknown command \"%s\"%s%s%s\n%s", cmd,
                s ? "; did you mean \"" : "", s ? s : "", s ? "\"?" : "", help);
        return SL_EXIT_USAGE;
    }
    const char *path = NULL, *partition = NULL, *from = NULL, *to = NULL;
    int json = 0, dot = 0, no_progress = 0, quiet = 0, bad = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (sl__cli_log_option(argc, argv, &i, &bad))
            continue;
        const char **slot = strcmp(a, "--partition") == 0 ? &partition
                            : strcmp(a, "--from") == 0    ? &from
                            : strcmp(a, "--to") == 0      ? &to
                                                          : NULL;
        if (slot) {
            if (i + 1 >= argc) {
                fprintf(stderr, "sluice dag %s: %s needs a value\n", cmd, a);
                return SL_EXIT_USAGE;
            }
            *slot = argv[++i];
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--dot") == 0) {
            dot = 1;
        } else if (strcmp(a, "--no-progress") == 0) {
            no_progress = 1;
        } else if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(help, stdout);
            return SL_EXIT_OK;
        } else {
            int r = sl__cli_path_arg("dag", a, &path, help);
            if (r)
                return r;
        }
    }
    if (bad)
        return SL_EXIT_USAGE;
    if (!path) {
        fprintf(stderr, "sluice dag %s: which DAG file?\n%s", cmd, help);
        return SL_EXIT_USAGE;
    }
    int wants_part = c == 1, wants_range = c == 2;
    if ((partition && c != 1 && c != 0) || ((from || to) && c != 2 && c != 3) || (json && c != 3) ||
        (dot && c != 4)) {
        fprintf(stderr, "sluice dag %s: option not valid for this command\n%s", cmd, help);
        return SL_EXIT_USAGE;
    }
    if (wants_part && !partition) {
        fprintf(stderr, "sluice dag run: --partition P is required\n");
        return SL_EXIT_USAGE;
    }
    if (wants_range && (!from || !to)) {
        fprintf(stderr, "sluice dag backfill: --from P and --to P are required\n");
        return SL_EXIT_USAGE;
    }
    struct sl_dag *d = NULL;
    int rc = load(path, &d);
    if (rc)
        return rc;
    switch (c) {
    case 0:
        rc = cmd_validate(d, partition);
        break;
    case 1: {
        int64_t idx;
        rc = parse_part(d, "--partition", partition, &idx)
                 ? SL_EXIT_USAGE
                 : cmd_run(d, idx, idx, 1, "run", 0, quiet);
        break;
    }
    case 2: {
        int64_t a, b;
        if (parse_part(d, "--from", from, &a) || parse_part(d, "--to", to, &b)) {
            rc = SL_EXIT_USAGE;
        } else if (b < a) {
            fprintf(stderr, "sluice dag backfill: --to %s is before --from %s\n", to, from);
            rc = SL_EXIT_USAGE;
        } else {
            rc = cmd_run(d, a, b, 0, "backfill", !no_progress, quiet);
        }
        break;
    }
    case 3:
        rc = cmd_status(d, from, to, json);
        break;
    default:
        rc = cmd_graph(d, dot);
        break;
    }
    sl_dag_destroy(d);
    return rc;
}
