/*
 * main.c - entry point of the sluice binary: global help and verb dispatch.
 *
 * The CLI is a thin client of the engine (include/sluice/): each verb lives in its own
 * file and does argument parsing, calls into the library and prints results. Only here
 * does the process decide to exit.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "sluice/config.h"
#include "sluice/log.h"
#include "sluice/pipeline.h"

#include "cli/cli.h"

static const char usage[] =
    "sluice " SLUICE_VERSION " - a data-pipeline engine that never loses or duplicates a record\n"
    "\n"
    "usage: sluice <verb> [options] [arguments]\n"
    "\n"
    "verbs:\n"
    "  run PIPELINE.yaml [--once]   run a pipeline (--once: stop when every source is exhausted)\n"
    "  validate PIPELINE.yaml       check a config; errors as file:line:col: message\n"
    "  status PIPELINE.yaml [--json]\n"
    "                               per sink and source: committed position, records, last\n"
    "                               commit, bytes behind, delivery mode\n"
    "  reset PIPELINE.yaml [--sink S] [--source SRC] --yes\n"
    "                               forget sinks' checkpoints: the next run delivers again\n"
    "  contract check OLD NEW [--mode backward|forward|full] [--json]\n"
    "                               breaking changes between two versions of a data contract\n"
    "  contract show FILE [--json]  a contract's name, version and fields\n"
    "  dlq list|show|stats|purge|replay PIPELINE.yaml ...\n"
    "                               the dead-letter queue: rejected records, why, and replay\n"
    "  quarantine list|show|release|drop PIPELINE.yaml ...\n"
    "                               units of records a quality gate held back\n"
    "  wal check|repair PIPELINE.yaml\n"
    "                               verify the http sources' write-ahead logs; cut a torn tail\n"
    "  dag validate|run|backfill|status|graph DAG.yaml ...\n"
    "                               DAGs of jobs by partition: runs, backfills, state\n"
    "  scheduler DAG.yaml...        run DAGs on their schedules (catchup, SLAs, alerts)\n"
    "  docs config                  print the configuration reference (markdown)\n"
    "\n"
    "global options (accepted by every verb):\n"
    "  --log-format text|json       log lines as text (default) or JSON lines, on stderr\n"
    "  --log-level debug|info|warn|error|off\n"
    "  -h, --help                   help; `sluice <verb> --help` for a verb's options\n"
    "  --version                    print the version\n"
    "\n"
    "exit codes: 0 success, 1 pipeline/run failure, 2 usage or config error\n"
    "documentation: README.md and docs/ in the source tree\n";

int sl__cli_log_option(int argc, char **argv, int *i, int *bad)
{
    const char *a = argv[*i];
    const char *val = NULL;
    int is_format = 0;
    if (strcmp(a, "--log-format") == 0 || strcmp(a, "--log-level") == 0) {
        is_format = a[6] == 'f';
        if (*i + 1 >= argc) {
            fprintf(stderr, "sluice: %s needs a value\n", a);
            *bad = 1;
            return 1;
        }
        val = argv[++*i];
    } else if (strncmp(a, "--log-format=", 13) == 0) {
        is_format = 1;
        val = a + 13;
    } else if (strncmp(a, "--log-level=", 12) == 0) {
        val = a + 12;
    } else {
        return 0;
    }
    if (is_format) {
        if (strcmp(val, "json") == 0) {
            sl_log_set_json(1);
        } else if (strcmp(val, "text") == 0) {
            sl_log_set_json(0);
        } else {
            fprintf(stderr, "sluice: --log-format must be text or json, not \"%s\"\n", val);
            *bad = 1;
        }
    } else {
        int lvl = sl_log_level_parse(val);
        if (lvl < 0) {
            fprintf(stderr,
                    "sluice: --log-level must be debug, info, warn, error or off, not \"%s\"\n",
                    val);
            *bad = 1;
        } else {
            sl_log_set_level((enum sl_log_level)lvl);
        }
    }
    return 1;
}

void sl__cli_stop_signals(void (*on_stop)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int sl__cli_path_arg(const char *verb, const char *a, const char **path, const char *help)
{
    if (a[0] == '-' && a[1]) {
        fprintf(stderr, "sluice %s: unknown option %s\n%s", verb, a, help);
        return SL_EXIT_USAGE;
    }
    if (*path) {
        fprintf(stderr, "sluice %s: one pipeline file at a time\n", verb);
        return SL_EXIT_USAGE;
    }
    *path = a;
    return SL_EXIT_OK;
}

int sl__cli_load(const char *path, struct sl_pipeline **p)
{
    struct sl_error err;
    sl_error_clear(&err);
    *p = NULL;
    sl_rc rc = sl_pipeline_load(path, p, &err);
    if (rc) {
        fprintf(stderr, "%s\n", err.msg[0] ? err.msg : sl_strerror(rc));
        *p = NULL;
        return SL_EXIT_USAGE;
    }
    return SL_EXIT_OK;
}

struct verb {
    const char *name;
    int (*fn)(int argc, char **argv);
};

static const struct verb verbs[] = {
    {"run", sl__cli_run},       {"validate", sl__cli_validate},     {"docs", sl__cli_docs},
    {"status", sl__cli_status}, {"reset", sl__cli_reset},           {"contract", sl__cli_contract},
    {"dlq", sl__cli_dlq},       {"quarantine", sl__cli_quarantine}, {"wal", sl__cli_wal},
    {"dag", sl__cli_dag},       {"scheduler", sl__cli_scheduler},
};

/* Verbs of the design that this version does not have yet: say so plainly. */
static const char *const planned[] = {"test"};

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return SL_EXIT_USAGE;
    }
    const char *v = argv[1];
    if (strcmp(v, "-h") == 0 || strcmp(v, "--help") == 0 || strcmp(v, "help") == 0) {
        fputs(usage, stdout);
        return SL_EXIT_OK;
    }
    if (strcmp(v, "--version") == 0 || strcmp(v, "version") == 0) {
        printf("sluice %s\n", SLUICE_VERSION);
        return SL_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (strcmp(v, verbs[i].name) == 0)
            return verbs[i].fn(argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof planned / sizeof planned[0]; i++)
        if (strcmp(v, planned[i]) == 0) {
            fprintf(stderr, "sluice: `%s` is not available in this version of sluice\n", v);
            return SL_EXIT_USAGE;
        }
    const char *names[sizeof verbs / sizeof verbs[0]];
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        names[i] = verbs[i].name;
    const char *s = sl_suggest(v, names, sizeof names / sizeof names[0]);
    fprintf(stderr, "sluice: unknown verb \"%s\"%s%s%s; see `sluice --help`\n", v,
            s ? "; did you mean \"" : "", s ? s : "", s ? "\"?" : "");
    return SL_EXIT_USAGE;
}
