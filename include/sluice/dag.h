/*
 * dag.h - DAG files: jobs, their dependencies, partitions and templates.
 *
 * A DAG file (YAML) names jobs that run per partition of time (a day or an hour): each is
 * a command run with `sh -c` or a pipeline run with `--once`, and may depend on others.
 *
 *     dag: nightly
 *     schedule: "0 2 * * *"
 *     partition: daily
 *     jobs:
 *       extract: {pipeline: extract.yaml, retries: 2}
 *       report:  {command: "make-report {{ds}}", depends_on: [extract]}
 *
 * Loading checks everything that can be checked without running anything and reports
 * every problem at once, one "file:line:col: message" per line: unknown keys (with a "did
 * you mean"), types, durations, a job with neither or both of command/pipeline, unknown
 * dependencies, cycles (naming the jobs that form one), unknown template names in
 * commands, env values and pipeline files, and the cron expression.
 *
 * Partitions are civil days or hours in the DAG's time zone, numbered from 1970-01-01
 * (day 0) or 1970-01-01T00 (hour 0), so arithmetic on them is integer arithmetic and their
 * keys ("2026-11-26", "2026-11-26T03") sort as they follow each other in time.
 *
 * Templates: {{name}} (spaces inside the braces allowed) with the names of
 * sl_dag_vars_names; an unknown name is an error, {{{{ is a literal {{ .
 */
#ifndef SLUICE_DAG_H
#define SLUICE_DAG_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/buf.h"
#include "sluice/rc.h"

struct sl_cfg_doc;
struct sl_cron;
struct sl_tz;

enum sl_dag_partitioning { SL_DAG_DAILY = 1, SL_DAG_HOURLY };

enum sl_dag_trigger { SL_DAG_ALL_SUCCESS = 1, SL_DAG_ALL_DONE, SL_DAG_ONE_FAILED };

/* One KEY: VALUE of an env map (value not yet templated). */
struct sl_dag_env {
    const char *key;
    const char *value;
};

/*
 * One job.
 *
 * Invariants:
 *   1. Exactly one of command and pipeline is non-NULL.
 *   2. deps[0..ndeps) are indices of other jobs of the same DAG, each at most once, and
 *      every dep comes before this job in sl_dag.order.
 */
struct sl_dag_job {
    const char *name;
    const char *command;       /* shell text (templated per partition) */
    const char *pipeline;      /* absolute path of the pipeline file */
    const char *pipeline_text; /* its text, read at load (templated per partition) */
    size_t *deps;
    size_t ndeps;
    unsigned retries;          /* attempts after the first */
    uint64_t retry_backoff_ms; /* before the 1st retry; doubled each time, +-20% jitter */
    uint64_t timeout_ms;       /* 0: none */
    enum sl_dag_trigger trigger;
    struct sl_dag_env *env;
    size_t nenv;
};

struct sl_dag {
    struct sl_cfg_doc *doc; /* owns every string and array below */
    const char *path;
    const char *dir; /* absolute directory of the DAG file: jobs' working directory */
    const char *name;
    const char *schedule; /* cron text, or NULL */
    struct sl_cron *cron; /* compiled schedule, or NULL */
    const char *timezone; /* NULL = UTC */
    struct sl_tz *tz;     /* the zone of timezone, NULL for UTC */
    enum sl_dag_partitioning partitioning;
    int64_t start;            /* first partition the scheduler runs, or INT64_MIN when unset */
    int catchup;              /* default true */
    unsigned max_active_runs; /* partitions in flight at once (default 16) */
    unsigned concurrency;     /* jobs running at once (default 4) */
    uint64_t sla_ms;          /* 0: none */
    uint64_t kill_grace_ms;   /* SIGTERM to SIGKILL (default 10s) */
    const char *state_dir;    /* absolute */
    const char *webhook;      /* alerts.webhook, or NULL */
    uint64_t webhook_timeout_ms;
    struct sl_dag_env *env; /* for every job */
    size_t nenv;
    struct sl_dag_job *jobs;
    size_t njobs;
    size_t *order; /* a topological order of job indices */
};

/*
 * Load and validate the DAG at path. SL_ECONFIG with every problem in err->msg, one per
 * line; SL_ENOENT/SL_EIO when it cannot be read; SL_ENOMEM.
 */
sl_rc sl_dag_load(const char *path, struct sl_dag **out, struct sl_error *err);

void sl_dag_destroy(struct sl_dag *d);

/* The index of job name, or -1. */
int sl_dag_find(const struct sl_dag *d, const char *name);

/* ---- partitions ----------------------------------------------------------------- */

#define SL_DAG_KEY_MAX 24 /* "2026-11-26T03" and its NUL, with room */

/*
 * Parse a partition key: daily "2026-11-26"; hourly "2026-11-26T03" (also "T03:00",
 * "T03:00:00", a trailing "Z" and a space for the T). 0 on success, -1 when malformed.
 */
int sl_dag_part_parse(const struct sl_dag *d, const char *s, int64_t *idx);

/* The canonical key of partition idx into out (SL_DAG_KEY_MAX bytes). */
void sl_dag_part_key(const struct sl_dag *d, int64_t idx, char *out);

/* Unix seconds when partition idx begins, in the DAG's time zone. */
int64_t sl_dag_part_start(const struct sl_dag *d, int64_t idx);

/* The partition holding Unix time t (in the DAG's time zone). */
int64_t sl_dag_part_at(const struct sl_dag *d, int64_t t);

/*
 * When partition idx is scheduled: the first firing of the schedule at or after the end
 * of its interval (the interval's end without a schedule). Unix seconds; -1 when the
 * schedule never fires.
 */
int64_t sl_dag_part_scheduled(const struct sl_dag *d, int64_t idx);

/* ---- templates ------------------------------------------------------------------ */

/* The template variables of one partition (and optionally one job attempt). */
#define SL_DAG_NVARS 12
struct sl_dag_vars {
    char val[SL_DAG_NVARS][64];
};

/* Names of the variables, index-aligned with sl_dag_vars.val; NULL-terminated. */
extern const char *const sl_dag_vars_names[];

/* Fill v for partition idx of d; job may be NULL ({{job}} is then empty); attempt >= 1. */
void sl_dag_vars_init(const struct sl_dag *d, int64_t idx, const char *job, unsigned attempt,
                      struct sl_dag_vars *v);

/*
 * Expand the templates of text[0..len) into out (appended; not NUL-terminated). With v
 * NULL only checks the names. An unknown name or an unclosed "{{" is SL_ECONFIG with a
 * message naming the name and "line:col" within text (1-based); line and col (may be NULL)
 * receive that position.
 */
sl_rc sl_dag_template(const char *text, size_t len, const struct sl_dag_vars *v, struct sl_buf *out,
                      unsigned *line, unsigned *col, struct sl_error *err);

#endif
