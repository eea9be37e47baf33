/*
 * run.c - `sluice run PIPELINE.yaml`: load, validate, run, summarize.
 *
 * Signals: the first SIGINT or SIGTERM asks the engine to stop (sources stop reading,
 * in-flight batches drain and commit, exit 0); a second one exits at once with 128+signal.
 * Exiting at once is safe for the same reason SIGKILL is: what was committed is
 * committed, and what was not is read again on the next start.
 *
 * The summary goes to stderr (stdout may be a sink). --report FILE writes the same
 * numbers as JSON for scripts and tests.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sluice/admin.h"
#include "sluice/buf.h"
#include "sluice/config.h"
#include "sluice/engine.h"
#include "sluice/json.h"
#include "sluice/log.h"
#include "sluice/pipeline.h"
#include "sluice/statedir.h"

#include "cli/cli.h"

static const char help[] =
    "usage: sluice run PIPELINE.yaml [options]\n"
    "\n"
    "Runs the pipeline until every source is exhausted (follow-mode sources never are:\n"
    "stop them with SIGINT/SIGTERM, which drains and commits in-flight batches).\n"
    "\n"
    "options:\n"
    "  --once              stop when every source is exhausted, follow-mode ones included\n"
    "  --shutdown-timeout D  after SIGINT/SIGTERM, drain and commit for at most D (default\n"
    "                      30s; 0 waits forever), then exit 1 without waiting\n"
    "  --report FILE       write the run's counts as JSON to FILE\n"
    "  --quiet             no summary at the end\n"
    "  --log-format F      text (default) or json\n"
    "  --log-level L       debug, info (default), warn, error, off\n";

static volatile sig_atomic_t signals_seen;
static unsigned shutdown_timeout_s = 30;

static void on_alarm(int sig)
{
    static const char msg[] =
        "sluice: shutdown did not finish within --shutdown-timeout; exiting without waiting "
        "(safe: what was committed stays committed, the rest is read again on the next start)\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    (void)sig;
    _exit(SL_EXIT_FAIL);
}

static void on_signal(int sig)
{
    if (signals_seen++) {
        /* Second signal: leave now. Safe: only committed output is ever trusted. */
        _exit(128 + sig);
    }
    sl_engine_request_stop();
    /* Draining is bounded: a sink stuck on a dead dependency must not hold the exit. */
    if (shutdown_timeout_s)
        alarm(shutdown_timeout_s);
}

static void install_signals(void)
{
    sl__cli_stop_signals(on_signal);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
}

static void human_bytes(double v, char *out, size_t n)
{
    const char *units[] = {"B", "KB", "MB", "GB", "TB"};
    int u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    snprintf(out, n, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void print_summary(const struct sl_pipeline *p, const struct sl_run_report *rep, sl_rc rc)
{
    uint64_t read = 0, rejected = 0, dropped = 0, kept = 0, held = 0, empty = 0, warns = 0;
    for (size_t i = 0; i < rep->nstages; i++) {
        const struct sl_stage_stats *s = &rep->stages[i];
        if (s->kind == SL_PLUGIN_SOURCE)
            read += s->records_in;
        rejected += s->rejected;
        dropped += s->dropped;
        kept += s->dlq;
        held += s->quarantined;
        empty += s->empty;
        warns += s->gate_warns;
    }
    char bytes[32], rate[32];
    human_bytes((double)rep->input_bytes, bytes, sizeof bytes);
    double el = rep->elapsed_s > 1e-6 ? rep->elapsed_s : 1e-6;
    human_bytes((double)rep->input_bytes / el, rate, sizeof rate);
    fprintf(stderr, "\nsluice: pipeline %s %s in %.2f s (%s)\n", p->name,
            rc                       ? "FAILED"
            : rep->stopped_by_signal ? "stopped"
                                     : "finished",
            rep->elapsed_s, p->exactly_once ? "exactly_once" : "at_least_once");
    fprintf(stderr, "  read       %llu records, %s from %zu source%s\n", (unsigned long long)read,
            bytes, p->nsources, p->nsources == 1 ? "" : "s");
    for (size_t i = 0; i < rep->nstages; i++) {
        const struct sl_stage_stats *s = &rep->stages[i];
        if (s->kind == SL_PLUGIN_SINK && s->skipped)
            fprintf(stderr, "  sink       %-20s %llu written, %llu already delivered before\n",
                    s->name, (unsigned long long)s->records_out, (unsigned long long)s->skipped);
        else if (s->kind == SL_PLUGIN_SINK)
            fprintf(stderr, "  sink       %-20s %llu written\n", s->name,
                    (unsigned long long)s->records_out);
        if (s->kind == SL_PLUGIN_SINK && (s->retries || s->breaker_opens))
            fprintf(stderr,
                    "             %-20s %llu attempts retried, circuit breaker opened %llu "
                    "time%s\n",
                    "", (unsigned long long)s->retries, (unsigned long long)s->breaker_opens,
                    s->breaker_opens == 1 ? "" : "s");
    }
    fprintf(stderr, "  filtered   %llu\n", (unsigned long long)dropped);
    if (!rejected)
        fprintf(stderr, "  rejected   0\n");
    else if (p->dlq_path)
        fprintf(stderr,
                "  rejected   %llu, %llu kept in the dead-letter queue (`sluice dlq list %s`)\n",
                (unsigned long long)rejected, (unsigned long long)kept, p->path);
    else
        fprintf(stderr, "  rejected   %llu (logged above; the dead-letter queue is disabled)\n",
                (unsigned long long)rejected);
    if (held)
        fprintf(stderr, "  quarantined %llu (`sluice quarantine list %s`)\n",
                (unsigned long long)held, p->path);
    if (warns)
        fprintf(stderr, "  gate warnings %llu\n", (unsigned long long)warns);
    if (empty)
        fprintf(stderr, "  empty lines %llu skipped\n", (unsigned long long)empty);
    fprintf(stderr, "  speed      %.0f records/s, %s/s\n", (double)read / el, rate);
}

static int write_report(const char *path, const struct sl_pipeline *p,
                        const struct sl_run_report *rep, sl_rc rc)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    uint64_t read = 0;
    for (size_t i = 0; i < rep->nstages; i++)
        if (rep->stages[i].kind == SL_PLUGIN_SOURCE)
            read += rep->stages[i].records_in;
    sl_buf_puts(&b, "{\"pipeline\":");
    sl_json_write_str(&b, p->name, strlen(p->name));
    sl_buf_printf(&b,
                  ",\"ok\":%s,\"gates_failed\":%s,\"elapsed_s\":%.6f,\"records_read\":%llu,"
                  "\"bytes_read\":%llu",
                  rc ? "false" : "true", rep->gates_failed ? "true" : "false", rep->elapsed_s,
                  (unsigned long long)read, (unsigned long long)rep->input_bytes);
    sl_buf_puts(&b, ",\"dead_letter_queue\":");
    if (p->dlq_path)
        sl_json_write_str(&b, p->dlq_path, strlen(p->dlq_path));
    else
        sl_buf_puts(&b, "null");
    sl_buf_puts(&b, ",\"stages\":[");
    for (size_t i = 0; i < rep->nstages; i++) {
        const struct sl_stage_stats *s = &rep->stages[i];
        if (i)
            sl_buf_putc(&b, ',');
        sl_buf_puts(&b, "{\"name\":");
        sl_json_write_str(&b, s->name, strlen(s->name));
        /* The graph, so scripts can check conservation along every path. */
        const struct sl_component *c = &p->comp[i];
        sl_buf_puts(&b, ",\"inputs\":[");
        for (size_t k = 0; k < c->ninputs; k++) {
            if (k)
                sl_buf_putc(&b, ',');
            sl_json_write_str(&b, c->inputs[k].text, strlen(c->inputs[k].text));
        }
        sl_buf_putc(&b, ']');
        sl_buf_printf(&b,
                      ",\"kind\":\"%s\",\"plugin\":\"%s\",\"batches\":%llu,\"records_in\":%llu,"
                      "\"records_out\":%llu,\"dropped\":%llu,\"rejected\":%llu,"
                      "\"skipped\":%llu,\"dlq\":%llu,\"quarantined\":%llu,\"empty\":%llu,"
                      "\"gate_warnings\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu}",
                      sl_plugin_kind_name(s->kind), s->plugin, (unsigned long long)s->batches,
                      (unsigned long long)s->records_in, (unsigned long long)s->records_out,
                      (unsigned long long)s->dropped, (unsigned long long)s->rejected,
                      (unsigned long long)s->skipped, (unsigned long long)s->dlq,
                      (unsigned long long)s->quarantined, (unsigned long long)s->empty,
                      (unsigned long long)s->gate_warns, (unsigned long long)s->bytes_in,
                      (unsigned long long)s->bytes_out);
        if (s->kind == SL_PLUGIN_SINK) {
            b.len--; /* reopen the object */
            sl_buf_printf(&b, ",\"retries\":%llu,\"breaker_opens\":%llu,\"breaker\":\"%s\"}",
                          (unsigned long long)s->retries, (unsigned long long)s->breaker_opens,
                          s->breaker ? s->breaker : "closed");
        }
    }
    sl_buf_puts(&b, "]}\n");
    int ok = -1;
    FILE *f = fopen(path, "w");
    if (f) {
        ok = fwrite(b.data, 1, b.len, f) == b.len ? 0 : -1;
        if (fclose(f) != 0)
            ok = -1;
    }
    if (ok)
        fprintf(stderr, "sluice run: cannot write report %s: %s\n", path, strerror(errno));
    sl_buf_fini(&b);
    return ok;
}

int sl__cli_run(int argc, char **argv)
{
    const char *path = NULL, *report = NULL;
    int once = 0, quiet = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(help, stdout);
            return SL_EXIT_OK;
        } else if (strcmp(a, "--shutdown-timeout") == 0 ||
                   strncmp(a, "--shutdown-timeout=", 19) == 0) {
            const char *v = a[18] == '=' ? a + 19 : i + 1 < argc ? argv[++i] : NULL;
            uint64_t ms;
            if (!v || sl_parse_duration(v, &ms) != 0 || ms > 86400000ull) {
                fprintf(stderr, "sluice run: --shutdown-timeout needs a duration like 30s or 2m "
                                "(0 waits forever)\n");
                return SL_EXIT_USAGE;
            }
            shutdown_timeout_s = (unsigned)((ms + 999) / 1000);
        } else if (strcmp(a, "--once") == 0) {
            once = 1;
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            quiet = 1;
        } else if (strcmp(a, "--report") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "sluice run: --report needs a file name\n");
                return SL_EXIT_USAGE;
            }
            report = argv[++i];
        } else if (strncmp(a, "--report=", 9) == 0) {
            report = a + 9;
        } else if (sl__cli_log_option(argc, argv, &i, &bad)) {
            continue;
        } else if (sl__cli_path_arg("run", a, &path, help)) {
            return SL_EXIT_USAGE;
        }
    }
    if (bad)
        return SL_EXIT_USAGE;
    if (!path) {
        fputs(help, stderr);
        return SL_EXIT_USAGE;
    }

    struct sl_pipeline *p = NULL;
    if (sl__cli_load(path, &p))
        return SL_EXIT_USAGE;
    struct sl_error err;
    sl_error_clear(&err);
    sl_rc rc;
    /*
     * Before any plugin sees the state directory: create it, or refuse a foreign format;
     * then make sure no other process runs or resets this pipeline meanwhile.
     */
    rc = sl_statedir_open(p->state_dir, 1, &err);
    if (rc == SL_OK)
        rc = sl_statedir_lock(p->state_dir, &err);
    if (rc) {
        fprintf(stderr, "sluice run: %s\n", err.msg[0] ? err.msg : sl_strerror(rc));
        sl_pipeline_destroy(p);
        return SL_EXIT_FAIL;
    }
    /* The admin server runs around the engine: /health answers from here on, /ready once
       the engine has started every stage. A bind failure stops the run before it starts. */
    struct sl_admin *admin = NULL;
    if (p->admin_listen && (rc = sl_admin_start(p->admin_listen, p, &admin, &err))) {
        fprintf(stderr, "sluice run: %s\n", err.msg[0] ? err.msg : sl_strerror(rc));
        sl_pipeline_destroy(p);
        return SL_EXIT_FAIL;
    }
    install_signals();
    struct sl_run_opts opts = {.once = once};
    struct sl_run_report rep;
    rc = sl_engine_run(p, &opts, &rep, &err);
    sl_admin_stop(admin);
    if (rc)
        sl_error_log(NULL, "%s", err.msg[0] ? err.msg : sl_strerror(rc));
    if (!quiet)
        print_summary(p, &rep, rc);
    int code = rc ? SL_EXIT_FAIL : SL_EXIT_OK;
    if (report && write_report(report, p, &rep, rc) != 0)
        code = SL_EXIT_FAIL;
    sl_run_report_fini(&rep);
    sl_pipeline_destroy(p);
    return code;
}
