/*
 * scheduler.c - `sluice scheduler DAG.yaml...`: run DAGs on their schedules until stopped.
 *
 * Loads every DAG (all problems of all files are printed; exit 2 if any), then hands
 * them to sl_dag_scheduler (src/orchestrator/scheduler.c). SIGTERM/SIGINT: stop firing,
 * give running jobs each DAG's kill_grace, kill what is left, record it, exit 0; a second
 * signal exits at once (the jobs die with the process; the next start resumes).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sluice/alloc.h"
#include "sluice/dag.h"
#include "sluice/dagrun.h"

#include "cli/cli.h"

#define MAX_DAGS 256

static const char help[] =
    "usage: sluice scheduler DAG.yaml... [options]\n"
    "\n"
    "Runs until SIGTERM/SIGINT: fires each DAG's partitions when their schedule says they\n"
    "are due (catching up missed ones with `catchup: true`), at most max_active_runs at a\n"
    "time, resumes runs a previous scheduler left unfinished, and raises an alert when a\n"
    "partition misses its `sla`. A restarted scheduler fires nothing twice.\n"
    "\n"
    "options:\n"
    "  --metrics-file FILE  write Prometheus metrics (runs by state, SLA misses, job\n"
    "                       failures, alerts pending, jobs running) to FILE every second\n"
    "                       (for node_exporter's textfile collector)\n"
    "  --log-format F, --log-level L\n"
    "\n"
    "environment:\n"
    "  SLUICE_NOW   start the scheduler's clock at this time (Unix seconds or\n"
    "               2026-11-27T02:00:00Z); it advances in real time from there\n"
    "\n"
    "On SIGTERM running jobs get the DAG's kill_grace (default 10s) to finish; then their\n"
    "process groups are killed and the runs recorded as killed. Exit 0 after a clean stop,\n"
    "1 on a state failure, 2 on a usage or config error. See docs/orchestration.md.\n";

static volatile sig_atomic_t signals_seen;

static void on_signal(int sig)
{
    if (signals_seen++)
        _exit(128 + sig);
    sl_dag_request_stop();
}

int sl__cli_scheduler(int argc, char **argv)
{
    const char *paths[MAX_DAGS];
    size_t n = 0;
    int bad = 0;
    const char *metrics = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (sl__cli_log_option(argc, argv, &i, &bad))
            continue;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(help, stdout);
            return SL_EXIT_OK;
        }
        if (strcmp(a, "--metrics-file") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "sluice scheduler: --metrics-file needs a file\n");
                return SL_EXIT_USAGE;
            }
            metrics = argv[++i];
            continue;
        }
        if (a[0] == '-' && a[1]) {
            fprintf(stderr, "sluice scheduler: unknown option %s\n%s", a, help);
            return SL_EXIT_USAGE;
        }
        if (n == MAX_DAGS) {
            fprintf(stderr, "sluice scheduler: at most %d DAG files\n", MAX_DAGS);
            return SL_EXIT_USAGE;
        }
        paths[n++] = a;
    }
    if (bad)
        return SL_EXIT_USAGE;
    if (!n) {
        fprintf(stderr, "sluice scheduler: which DAG files?\n%s", help);
        return SL_EXIT_USAGE;
    }
    struct sl_dag **dags = sl_calloc(n, sizeof *dags);
    if (!dags) {
        fprintf(stderr, "sluice scheduler: out of memory\n");
        return SL_EXIT_FAIL;
    }
    int rc = SL_EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        struct sl_error err;
        sl_error_clear(&err);
        if (sl_dag_load(paths[i], &dags[i], &err)) {
            fprintf(stderr, "%s\n", err.msg);
            rc = SL_EXIT_USAGE;
        }
    }
    for (size_t i = 0; rc == SL_EXIT_OK && i < n; i++)
        for (size_t k = 0; k < i; k++)
            if (strcmp(dags[i]->state_dir, dags[k]->state_dir) == 0) {
                fprintf(stderr,
                        "sluice scheduler: %s and %s share the state directory %s; give each "
                        "DAG its own state_dir\n",
                        paths[k], paths[i], dags[i]->state_dir);
                rc = SL_EXIT_USAGE;
                break;
            }
    if (rc == SL_EXIT_OK) {
        sl__cli_stop_signals(on_signal);
        struct sl_error err;
        sl_error_clear(&err);
        struct sl_dag_run_opts o = {0, "scheduler", NULL, NULL, NULL, metrics};
        sl_rc r = sl_dag_scheduler(dags, n, &o, &err);
        if (r) {
            fprintf(stderr, "sluice scheduler: %s\n", err.msg[0] ? err.msg : sl_strerror(r));
            rc = r == SL_EINVAL ? SL_EXIT_USAGE : SL_EXIT_FAIL;
        } else {
            fprintf(stderr, "sluice scheduler: stopped\n");
        }
    }
    for (size_t i = 0; i < n; i++)
        sl_dag_destroy(dags[i]);
    sl_free(dags);
    return rc;
}
