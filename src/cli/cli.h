/*
 * cli.h - the verbs of the sluice command line (internal to src/cli/).
 *
 * main.c parses global options and dispatches to one function per verb. Each verb
 * returns the process exit code: 0 success, 1 run failure, 2 usage or config error.
 */
#ifndef SLUICE_CLI_H
#define SLUICE_CLI_H

#include <stdint.h>

#define SL_EXIT_OK 0
#define SL_EXIT_FAIL 1
#define SL_EXIT_USAGE 2

struct sl_pipeline;
struct sl_plugin;

int sl__cli_run(int argc, char **argv);
int sl__cli_validate(int argc, char **argv);
int sl__cli_docs(int argc, char **argv);
int sl__cli_status(int argc, char **argv);
int sl__cli_reset(int argc, char **argv);
int sl__cli_contract(int argc, char **argv);   /* contract.c */
int sl__cli_dlq(int argc, char **argv);        /* dlq.c */
int sl__cli_quarantine(int argc, char **argv); /* quarantine.c */
int sl__cli_wal(int argc, char **argv);        /* wal.c */
int sl__cli_dag(int argc, char **argv);        /* dag.c */
int sl__cli_scheduler(int argc, char **argv);  /* scheduler.c */

/*
 * `sluice dlq replay` and `sluice quarantine release` (replay.c): argv[0] is the
 * subcommand word; the rest are its arguments. Return an exit code.
 */
int sl__cli_dlq_replay(int argc, char **argv);

/*
 * WHEN of --since (dlq.c): an RFC 3339 time, or a duration (30m, 2h, 7d) meaning that
 * long before now (ns). Sets *out (ns since the epoch); 0 on success, -1 when malformed.
 */
int sl__cli_parse_since(const char *s, int64_t now, int64_t *out);
int sl__cli_quarantine_release(int argc, char **argv);

struct sl_pipeline;

/*
 * Take a non-logging command-line word a as the verb's pipeline file. An option nobody
 * recognised, or a second file, prints why (with help) and returns SL_EXIT_USAGE; else 0.
 */
int sl__cli_path_arg(const char *verb, const char *a, const char **path, const char *help);

/* Load and validate the pipeline at path; on failure print every problem, return 2. */
int sl__cli_load(const char *path, struct sl_pipeline **p);

/* Shared option handling: returns 1 if argv[*i] was a logging option (and consumed). */
int sl__cli_log_option(int argc, char **argv, int *i, int *bad);

/* SIGINT and SIGTERM call on_stop (a stop request: drain and finish); SIGPIPE is ignored. */
void sl__cli_stop_signals(void (*on_stop)(int));

/*
 * A pipeline opened for inspection (`status`, `reset`, in status.c): loaded, its state
 * directory checked without creating anything, and its sinks (and, when asked, its
 * sources) initialised with ctx.inspect = 1, so they create, recover and read nothing.
 *
 * Invariants:
 *   1. state[c] != NULL only for an initialised component; close() is called exactly for
 *      those by sl__cli_inspect_close.
 *   2. init_err[c] != NULL iff component c was to be initialised and its init failed.
 *   3. reach[c * p->nsources + s] != 0 iff records of source s can arrive at component c.
 */
struct sl_cli_inspect {
    struct sl_pipeline *p;
    int state_present;         /* the state directory exists and carries our format */
    void **state;              /* per component */
    char **init_err;           /* per component */
    unsigned char *reach;      /* ncomp x nsources */
    const char **source_names; /* by source index */
};

/*
 * Load path and initialise for inspection (sources too when with_sources). Returns an exit
 * code: SL_EXIT_OK, SL_EXIT_USAGE when the pipeline does not load, SL_EXIT_FAIL when the
 * state directory cannot be read; the message is printed, prefixed with "sluice VERB: ".
 * Plugin init failures are not fatal here: they are left in init_err for the verb to report.
 */
int sl__cli_inspect_open(const char *verb, const char *path, int with_sources,
                         struct sl_cli_inspect *in);
void sl__cli_inspect_close(struct sl_cli_inspect *in);

/* Whether a sink keeps checkpoints (can be exactly-once and can be reset). */
int sl__cli_sink_checkpoints(const struct sl_plugin *sink);

/* Whether records of source s reach component c. */
int sl__cli_reaches(const struct sl_cli_inspect *in, size_t c, size_t s);

/* A position shortened for one line of text (into out, at most cap bytes). */
void sl__cli_short_position(const char *pos, char *out, size_t cap);

#endif
