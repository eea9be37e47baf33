/*
 * engine.h - run a loaded pipeline.
 *
 * The engine starts one thread per source, `workers` threads per transform and one thread
 * per sink, connects them with bounded queues (limits in batches and bytes), and moves
 * batches until every source is exhausted (or a stop is requested), then drains, flushes
 * and closes every stage. A full queue blocks its producer, and so backpressure reaches
 * the source, which stops reading. See docs/internals/engine.md.
 */
#ifndef SLUICE_ENGINE_H
#define SLUICE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/pipeline.h"
#include "sluice/rc.h"

struct sl_run_opts {
    int once;        /* stop when every source is exhausted, even follow-mode ones */
    uint64_t replay; /* a DLQ replay with this id is running (dlq.h); 0 otherwise */
};

struct sl_stage_stats {
    const char *name;
    enum sl_plugin_kind kind;
    const char *plugin;
    uint64_t batches;
    uint64_t records_in;  /* live records received (sources: records read) */
    uint64_t records_out; /* live records passed on (sinks: written) */
    uint64_t dropped;     /* filtered out here */
    uint64_t rejected;    /* rejected here (bad input, type errors) */
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t skipped;       /* sinks: records delivered before a restart and not written again;
                               records_in = records_out + dropped + rejected + skipped
                               + quarantined */
    uint64_t dlq;           /* of rejected: those the dead-letter queue holds */
    uint64_t quarantined;   /* held by a quality gate on this stage (quarantine store) */
    uint64_t empty;         /* sources: empty lines skipped (not records) */
    uint64_t gate_warns;    /* gates on this stage that failed with action warn */
    uint64_t retries;       /* sinks: failed attempts that were retried */
    uint64_t breaker_opens; /* sinks: times the circuit breaker opened */
    const char *breaker;    /* sinks: the breaker's state at the end ("closed", ...) */
};

struct sl_run_report {
    struct sl_stage_stats *stages; /* one per component, same order as pipeline->comp */
    size_t nstages;
    double elapsed_s;
    uint64_t input_bytes;
    int stopped_by_signal;
    int gates_failed; /* a quality gate with action fail failed (the run returns SL_EGATE) */
};

/*
 * Run p. Returns SL_OK when every stage finished cleanly, the first fatal error otherwise
 * (err says which stage and why). rep (may be NULL) is filled either way; free with
 * sl_run_report_fini.
 */
sl_rc sl_engine_run(struct sl_pipeline *p, const struct sl_run_opts *o, struct sl_run_report *rep,
                    struct sl_error *err);

void sl_run_report_fini(struct sl_run_report *rep);

/* Upper bounds (seconds) of the batch latency histogram buckets; +Inf follows. */
#define SL_LATENCY_BUCKETS 12
extern const double sl_latency_bounds[SL_LATENCY_BUCKETS];

/* What a running engine shows beyond its counters (the admin server's /metrics). */
struct sl_stage_live {
    uint32_t queue_batches;  /* batches waiting in this stage's input queue */
    uint64_t queue_bytes;    /* their input bytes */
    uint32_t queue_capacity; /* queue.max_batches */
    uint64_t queue_max_bytes;
    /* sinks: time from a batch leaving its source to its commit, cumulative counts per
       bucket (Prometheus style: bucket i counts latencies <= sl_latency_bounds[i]; the
       last one, index SL_LATENCY_BUCKETS, is +Inf = count) and the sum in seconds */
    uint64_t latency_buckets[SL_LATENCY_BUCKETS + 1];
    double latency_sum_s;
    uint64_t last_commit_ns;        /* sinks: wall clock of the last commit, 0 = none yet */
    uint64_t last_commit_ingest_ns; /* sinks: when that batch left its source */
    int breaker_state;              /* sinks: 0 closed, 1 open, 2 half-open */
    int has_wal;                    /* sources with a write-ahead log (plugin wal_usage): */
    uint64_t wal_bytes;             /* the bytes its segment files hold */
    uint64_t wal_segments;          /* and how many there are */
};

typedef void (*sl_engine_live_fn)(void *ctx, const struct sl_stage_stats *s,
                                  const struct sl_stage_live *l);

/*
 * Call fn for every stage of the engine running in this process, in pipeline order, with
 * its counters so far. Safe from any thread while the engine runs; the engine cannot
 * finish while fn runs, so fn must be quick. SL_OK, or SL_ENOENT when no engine runs.
 */
sl_rc sl_engine_live(sl_engine_live_fn fn, void *ctx);

/* One sink's checkpoint for one source it reads, as the running engine knows it. */
struct sl_checkpoint_live {
    const char *sink, *sink_plugin;     /* component name, type */
    const char *source, *source_plugin; /* component name, type */
    const char *position;               /* committed position; NULL when none yet */
    uint64_t commit_ns;                 /* wall clock of that commit; 0 unknown */
    int has_number;                     /* the source's position_number answered: */
    uint64_t number;                    /* the position as a number */
    int has_segment;                    /* (segment, offset) positions: */
    uint64_t segment;                   /* the segment of that offset */
    int has_lag;                        /* the source's lag() answered: */
    uint64_t lag;                       /* what lies after position, in lag_unit */
    const char *lag_unit;               /* "bytes" or "messages" */
};

typedef void (*sl_engine_checkpoint_fn)(void *ctx, const struct sl_checkpoint_live *c);

/*
 * Call fn for every (sink, source) pair of the running engine where the sink keeps
 * checkpoints (plugin committed()) and the source keeps one position (not partitioned),
 * in pipeline order: the position committed before the
 * run or by its latest commit (for sinks with defers_commit, the latest one they reported
 * durable), its time, the position as a number and the source's lag after it. Calls the
 * sources' lag(), which may take a network round trip, while the engine cannot finish;
 * strings are valid during fn only. SL_OK, SL_ENOENT when no engine runs, SL_ENOMEM.
 */
sl_rc sl_engine_checkpoints(sl_engine_checkpoint_fn fn, void *ctx);

/*
 * Whether the running engine's memory_limit is exceeded right now: sources that serve
 * clients (the http source) refuse new data with 503 while it is.
 */
int sl_engine_memory_full(void);

/* Whether the running engine has started every stage (for /ready). */
int sl_engine_ready(void);

/*
 * Ask a running engine to stop: sources stop reading, in-flight batches drain and
 * commit. Async-signal-safe.
 */
void sl_engine_request_stop(void);

/* Whether a stop was requested (sources poll this). */
int sl_engine_stopping(void);

/* Monotonic and wall clocks in nanoseconds. */
uint64_t sl_now_mono_ns(void);
uint64_t sl_now_real_ns(void);

#endif
