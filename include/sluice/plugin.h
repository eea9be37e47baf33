/*
 * plugin.h - the interface every source, transform and sink implements.
 *
 * A plugin is one `const struct sl_plugin` with designated initializers: its kind, name,
 * a description, an option table and callbacks. The engine validates a component's
 * config against the option table (unknown keys with "did you mean", types, required,
 * enum choices, expression syntax) before it calls init, and the same tables generate
 * the reference in docs/configuration.md (`sluice docs config`), so docs and code
 * cannot drift.
 *
 * Lifecycle (engine side):
 *
 *     init ──> [restore] ──> read* (source) | process* (transform, sink) ──> flush ──> close
 *
 * Threading:
 *   - A source's read runs on the source's own thread.
 *   - A transform's process may run on several worker threads at once (`workers: N`) with
 *     the same state: process must treat its state as read-only (compiled expressions are)
 *     and allocate only from the batch arena.
 *   - A sink's process, flush and close run on the sink's single thread, in batch
 *     sequence order per source (the engine reorders before the sink).
 *
 * Records arrive at transforms and sinks already parsed (SL_REC_PARSED) unless dropped or
 * rejected; plugins skip records with SL_REC_DROPPED or SL_REC_BAD set.
 */
#ifndef SLUICE_PLUGIN_H
#define SLUICE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/batch.h"
#include "sluice/config.h"
#include "sluice/json.h"
#include "sluice/rc.h"

enum { SL_PUBLISH_ACCEPT = 1, SL_PUBLISH_DISCARD, SL_PUBLISH_QUARANTINE };

/* Write-audit-publish: hand one staged record (JSON, its record id) to the quarantine. */
typedef sl_rc (*sl_publish_keep_fn)(void *ctx, const uint64_t id[2], const char *json, size_t len,
                                    struct sl_error *err);

enum sl_plugin_kind { SL_PLUGIN_SOURCE = 1, SL_PLUGIN_TRANSFORM, SL_PLUGIN_SINK };

enum sl_opt_type {
    SL_OPT_STRING = 1,
    SL_OPT_INT,      /* integer; def as text */
    SL_OPT_BOOL,     /* true/false */
    SL_OPT_DURATION, /* 250ms, 30s, 5m, 2h */
    SL_OPT_SIZE,     /* 64KiB, 256MiB */
    SL_OPT_PATH,     /* string resolved against the config file's directory */
    SL_OPT_ENUM,     /* string, one of `choices` ("a|b|c") */
    SL_OPT_EXPR,     /* an expression (compiled at validation to check it) */
    SL_OPT_LIST,     /* sequence of strings; a single string is accepted as a list of one */
    SL_OPT_MAP,      /* map of string -> string */
    SL_OPT_EXPR_MAP, /* map of name -> expression (each compiled at validation) */
    SL_OPT_OBJECT,   /* nested map the plugin validates itself in init */
};

struct sl_option {
    const char *name;
    enum sl_opt_type type;
    const char *def; /* default as it would be written in YAML, or NULL */
    int required;
    const char *help;    /* one sentence for docs and --help */
    const char *choices; /* SL_OPT_ENUM: "a|b|c" */
};

/* Per-thread context handed to process(). */
struct sl_worker {
    struct sl_json_parser *parser; /* this thread's parser scratch */
    const char *stage;             /* component name */
    unsigned index;                /* worker number within the stage, from 0 */
    uint32_t max_depth;            /* JSON nesting limit */
    /*
     * Sinks that reject records themselves (a constraint, a record that cannot be
     * written) call keep_rejects(w, b, err) after marking them and before committing the
     * batch: it makes every rejected record of b that is not yet kept durable in the
     * dead-letter queue (and sets SL_REC_KEPT), so no commit ever covers a rejected
     * record the DLQ does not hold (DESIGN §4: the DLQ follows the checkpoint protocol).
     * Idempotent. Set by the engine (a no-op when the pipeline has no DLQ); NULL outside the engine
     * (unit tests), so callers check it.
     */
    sl_rc (*keep_rejects)(struct sl_worker *w, struct sl_batch *b, struct sl_error *err);
    void *engine; /* for keep_rejects */
    /*
     * Sinks returning SL_RETRY may set this to the wait the dependency asked for (HTTP
     * Retry-After, in ms); the engine waits at least that long before the next attempt.
     * The engine zeroes it before each attempt.
     */
    uint64_t retry_after_ms;
    /*
     * Sinks with defers_commit call this after each commit: every batch processed before
     * the current one is durable, and the current one too when with_current is set (the
     * commit came after it was written). Set by the engine; NULL outside it.
     */
    void (*durable)(struct sl_worker *w, int with_current);
};

/* What init gets. Everything here outlives the plugin's state. */
struct sl_plugin_ctx {
    const char *pipeline;                 /* pipeline name */
    const char *name;                     /* component name */
    const struct sl_cfg_doc *doc;         /* for sl_cfg_get_path and errors */
    const struct sl_cfg_node *node;       /* the component's own map */
    const char *state_dir;                /* absolute; exists */
    int once;                             /* run --once: sources stop when exhausted */
    int exactly_once;                     /* delivery mode */
    uint32_t index;                       /* sources: index stamped on their batches */
    const struct sl_batch_limits *limits; /* sources: batch limits */
    uint32_t max_depth;                   /* JSON nesting limit */
    const char *const *source_names;      /* by source index (sinks map batch->source) */
    size_t nsources;
    /*
     * Inspection only (`sluice status`, `sluice reset`): open existing state without
     * creating or recovering anything and read no input; only committed(), commit_info(),
     * reset(), lag(), decode() and close() are called afterwards.
     */
    int inspect;
    /* Sinks with publish(): stage this run's batches for write-audit-publish. */
    int staged;
    /*
     * Sources that keep one position per partition (kafka): set b->checkpoint on each
     * batch, and ask here, from any of their threads once read() has been called, for the
     * lowest position the sinks they feed committed under such a checkpoint name (heap
     * string via sl_malloc, NULL when some sink has none). Each sink is asked between two
     * of its commits, so the answer is a committed state. Pass lookup_handle back.
     */
    sl_rc (*committed_lookup)(void *lookup_handle, const char *checkpoint, char **position,
                              struct sl_error *err);
    void *lookup_handle;
};

struct sl_plugin {
    enum sl_plugin_kind kind;
    const char *name;
    const char *description;
    const struct sl_option *options; /* terminated by an entry with name == NULL */

    /*
     * Transforms with named outputs (route): the option whose map keys name the outputs.
     * Output i is the i-th key; one more output, "_unmatched", follows them. process()
     * sets b->outmask[r] bit i for each output record r goes to (the engine allocates
     * outmask, zeroed, before calling process).
     */
    const char *outputs_option;

    /*
     * Sinks: process() may return before the batch is durable (the file sink commits every
     * commit_interval). Such a sink reports its commits through sl_worker.durable, and the
     * engine releases source data (release()) only as far as they go.
     */
    int defers_commit;

    /*
     * Sources: keeps one position per partition (b->checkpoint names it) and resumes each
     * partition itself when it gets it, through sl_plugin_ctx.committed_lookup, instead of
     * through restore(). Such a source still keeps exactly-once.
     */
    int partitioned;

    /* Validate options beyond the table and build state. Required. */
    sl_rc (*init)(const struct sl_plugin_ctx *ctx, void **state, struct sl_error *err);

    /*
     * Sources: resume after position (a string this source produced earlier as a batch
     * position). Called at most once, after init and before the first read.
     */
    sl_rc (*restore)(void *state, const char *position, struct sl_error *err);

    /*
     * Sources: fill b (empty, with b->source set) with records up to the batch limits;
     * set b->origin, b->bytes and b->position. Must not block for more than ~200 ms.
     *   SL_OK     b has records (or only advanced the position)
     *   SL_AGAIN  nothing available now (follow mode); b left empty; called again later
     *   SL_EOF    exhausted; b may still hold a final set of records
     *   other     fatal: the pipeline stops with err's message
     */
    sl_rc (*read)(void *state, struct sl_batch *b, struct sl_error *err);

    /*
     * Transforms: mark records dropped/rejected, add edits, set outmask bits.
     * Sinks: durably write the batch's live records and commit (one commit per batch).
     * SL_OK, SL_RETRY (transient: the dependency is down, busy or timed out; nothing of the
     * batch was committed; the engine retries the same batch under the sink's retry policy
     * and circuit breaker), other codes fatal. A permanent failure caused by some records
     * (a constraint, HTTP 400/413/422) is not an error of the batch: the sink isolates
     * those records (bisecting the batch), rejects them with the dependency's message
     * (class "sink"), keeps them (keep_rejects) and commits the rest, returning SL_OK.
     */
    sl_rc (*process)(void *state, struct sl_batch *b, struct sl_worker *w, struct sl_error *err);

    /*
     * Sources (exactly-once): order two positions this source produced: negative when a
     * is behind b, 0 when equal, positive when ahead. The engine resumes the source from
     * the lowest position its sinks committed.
     */
    int (*position_cmp)(void *state, const char *a, const char *b);

    /*
     * Sources (exactly-once): 1 when record i of b lies at or before position, i.e. a sink
     * that committed position already holds it; 0 otherwise. Lets a sink that is ahead of
     * the resumed source skip exactly the records it has, even when batch boundaries differ
     * from the run that committed position.
     */
    int (*covers)(void *state, const char *position, const struct sl_batch *b, uint32_t i);

    /*
     * Sources (status): how many input bytes lie after position right now (NULL position:
     * from the start); lag_unit says when the source counts something else. Optional.
     * Also called from the admin server's thread while the engine runs (the lag gauges of
     * /metrics), concurrently with read() and release(): the source synchronizes, or reads
     * only its arguments and immutable state.
     */
    sl_rc (*lag)(void *state, const char *position, uint64_t *bytes, struct sl_error *err);

    /* What lag() counts: NULL means "bytes"; "messages" for sources that count messages. */
    const char *lag_unit;

    /*
     * Sources (optional): position as a number, where it has a natural one, for the
     * checkpoint gauges of /metrics: a stream sequence, a byte offset. Sources whose
     * positions are (segment, byte offset) pairs also set *segment (else they leave it
     * alone). 1 with *number set, 0 when position has no such number. Any thread; reads
     * only its arguments.
     */
    int (*position_number)(void *state, const char *position, uint64_t *number, uint64_t *segment);

    /*
     * Sources with a write-ahead log (optional): the bytes its segment files hold and how
     * many segment files there are, right now. Called from the admin server's thread while
     * read() runs: the source synchronizes.
     */
    void (*wal_usage)(void *state, uint64_t *bytes, uint64_t *segments);

    /* Sinks: the committed position for source (heap string via sl_malloc, or NULL). */
    sl_rc (*committed)(void *state, const char *source, char **position, struct sl_error *err);

    /*
     * Sinks (status): records committed in total for source and the wall-clock time of the
     * last commit (ns since the epoch; 0 when unknown). Optional.
     */
    sl_rc (*commit_info)(void *state, const char *source, uint64_t *records, uint64_t *commit_ns,
                         struct sl_error *err);

    /*
     * Sinks: forget what was committed for source (every source when source is NULL), so
     * the next run delivers again from the start (`sluice reset`). Optional.
     */
    sl_rc (*reset)(void *state, const char *source, struct sl_error *err);

    /*
     * Sinks: set the committed position for source to position (a string the source
     * produced, e.g. from `sluice status --json`), so the next run delivers again what lies
     * after it (`sluice reset --to-position`). Optional.
     */
    sl_rc (*rewind)(void *state, const char *source, const char *position, struct sl_error *err);

    /*
     * Sinks with write-audit-publish (optional). When ctx->staged is set (a `run --once`
     * whose quality gates watch records this sink receives), process() writes each batch
     * to a staging area and commits nothing to the target. After the last batch the
     * engine calls publish exactly once with the run's verdict:
     *   SL_PUBLISH_ACCEPT      move the staged records into the target and commit the
     *                          positions, in one transaction;
     *   SL_PUBLISH_DISCARD     drop the staged records; positions stay where they were;
     *   SL_PUBLISH_QUARANTINE  pass every staged record to keep(), then call keep once
     *                          more with json == NULL (end of the unit: it is durable in
     *                          the quarantine store when that call returns SL_OK), and
     *                          only then commit the positions (the unit is consumed) and
     *                          drop the staged records. A keep() error aborts the publish.
     * A sink that starts with staged records left by a crash drops them.
     */
    sl_rc (*publish)(void *state, int verdict, sl_publish_keep_fn keep, void *keep_ctx,
                     struct sl_error *err);

    /*
     * Sources (replay of records this source rejected): turn the original bytes raw[0..n)
     * of record r, which this source read from origin (a path it set as b->origin), into
     * the record's text again with the source's current settings, e.g. a CSV row into a
     * JSON object with the current columns and types. Sets r->text/r->text_len (allocated
     * in b's arena) and returns SL_OK; a row that still cannot be decoded is rejected with
     * sl_record_reject_why (stage = the source's name) and SL_OK is returned. Called after
     * init with ctx.inspect set. Optional: without it the bytes are the record's text.
     * Other return codes are fatal.
     */
    sl_rc (*decode)(void *state, const char *origin, struct sl_batch *b, struct sl_record *r,
                    struct sl_error *err);

    /*
     * Sources (optional): every sink fed by this source has committed (or skipped as
     * already delivered) every batch up to and including the one whose position is
     * position. The source may now let go of what it keeps for those records: delete
     * write-ahead-log segments, acknowledge broker messages. Called in increasing order
     * and never twice at once, but from sink threads, so possibly while read() runs on the
     * source's thread: the source synchronizes. Only for batches of this run with a
     * position; position is valid during the call only.
     */
    void (*release)(void *state, const char *position);

    /* Make everything written so far durable. Optional. */
    sl_rc (*flush)(void *state, struct sl_error *err);

    /* Release state. Accepts NULL. Optional. */
    void (*close)(void *state);
};

/* The plugin named name of the given kind, or NULL. */
const struct sl_plugin *sl_plugin_find(enum sl_plugin_kind kind, const char *name);

/* All registered plugins (NULL-terminated array). */
const struct sl_plugin *const *sl_plugin_all(void);

/* "source", "transform", "sink". */
const char *sl_plugin_kind_name(enum sl_plugin_kind kind);

#endif
