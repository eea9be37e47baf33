/*
 * pipeline.h - a pipeline file loaded, validated and resolved into a stage graph.
 *
 * Loading checks everything that can be checked before any data is read: YAML syntax,
 * top-level keys, each component's options against its plugin's table (unknown keys get
 * a "did you mean"), value types, expression syntax, inputs that name nothing, cycles, and
 * sources or transforms whose output nobody reads. All problems are reported at once, one
 * per line, each as file:line:col: message.
 */
#ifndef SLUICE_PIPELINE_H
#define SLUICE_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/batch.h"
#include "sluice/config.h"
#include "sluice/plugin.h"
#include "sluice/rc.h"

struct sl_quality;

/* Sinks: how a batch that failed transiently is retried (`retry:`). */
struct sl_retry_policy {
    uint32_t max_attempts;   /* per batch; 0 = no limit */
    uint64_t max_elapsed_ms; /* per batch; 0 = no limit */
    uint64_t initial_ms;     /* first backoff */
    uint64_t max_ms;         /* backoff cap */
    double multiplier;       /* backoff growth per failure */
};

/* Sinks: the circuit breaker (`circuit_breaker:`). */
struct sl_breaker_policy {
    uint32_t failure_threshold; /* consecutive failures that open it; 0 = no breaker */
    uint64_t open_for_ms;       /* how long it stays open before probing */
    uint32_t half_open_probes;  /* attempts let through while half-open */
};

struct sl_input {
    const char *text; /* as written: "split.purchases" */
    uint32_t comp;    /* index into pipeline->comp of the producing component */
    uint32_t output;  /* output index of the producer (0 unless it has named outputs) */
};

struct sl_component {
    const char *name;
    enum sl_plugin_kind kind;
    const struct sl_plugin *plugin;
    const struct sl_cfg_node *node; /* the component's map */
    struct sl_input *inputs;
    size_t ninputs;
    unsigned workers;     /* transforms: parallel workers (default 1) */
    const char **outputs; /* named outputs (route), then "_unmatched"; NULL otherwise */
    size_t noutputs;      /* 1 for ordinary components */
    /*
     * Replay pipelines (replay.h) only: the plugin's state, made by the caller; the engine
     * uses it instead of calling init and closes it with the plugin's close.
     */
    void *preset_state;
    /* Replay pipelines: the stage named when a record fails to parse (else name). */
    const char *reject_as;
    struct sl_retry_policy retry;     /* sinks */
    struct sl_breaker_policy breaker; /* sinks */
};

struct sl_pipeline {
    struct sl_cfg_doc *doc;
    const char *path;
    const char *name;
    const char *state_dir; /* absolute */
    int exactly_once;      /* delivery: exactly_once (default) or at_least_once */
    struct sl_batch_limits batch;
    uint32_t queue_max_batches;  /* per edge; default 4 */
    uint64_t queue_max_bytes;    /* per edge; default 16 MiB */
    uint64_t memory_limit;       /* bytes of batch memory before sources wait; 0 = none */
    uint32_t max_depth;          /* JSON nesting limit; default 128 */
    unsigned json_flags;         /* SL_JSON_* parser flags (json.duplicate_keys: reject) */
    int require_object;          /* json.require_object (default false): other values rejected */
    const char *admin_listen;    /* NULL when absent */
    const char *dlq_path;        /* dead-letter queue database (absolute): `dlq: {path}`,
                                    default <state_dir>/dlq.db; NULL with `dlq: {enabled: false}` */
    const char *quarantine_path; /* quarantine store (absolute), <state_dir>/quarantine.db */
    struct sl_quality *quality;  /* compiled `quality:` gates (never NULL after load) */
    /* Sources first, then transforms in topological order, then sinks. */
    struct sl_component *comp;
    size_t ncomp;
    size_t nsources;
};

/*
 * Load and validate. On SL_ECONFIG err->msg holds every problem, one per line. SL_ENOENT
 * when the file does not exist.
 */
sl_rc sl_pipeline_load(const char *path, struct sl_pipeline **out, struct sl_error *err);

void sl_pipeline_destroy(struct sl_pipeline *p);

/* The index of component name, or -1. */
int sl_pipeline_find(const struct sl_pipeline *p, const char *name);

/*
 * Write the configuration reference (markdown) generated from every plugin's option
 * table and the top-level keys to b.
 */
sl_rc sl_pipeline_doc_reference(struct sl_buf *b);

#endif
