/*
 * replay.h - send kept records back through a pipeline: DLQ replay, quarantine release.
 *
 * A replay runs a copy of the pipeline in which one synthetic source stands in for
 * everything upstream of a chosen stage: it reads kept records (from the dead-letter
 * queue or the quarantine store) through a callback, in key order, and feeds them into
 * that stage (or into the stage's consumers). Everything downstream is the pipeline as it
 * is configured now, sinks and their checkpoints included. The source's position is the
 * key of the last record of a batch; sinks commit it under the source's name like any
 * other position, so a replay cut short resumes where its sinks stopped and nothing is
 * delivered twice (DESIGN §4). Records keep their original record ids.
 *
 * Quality gates do not judge a replay: it repairs what was held back, it is not a unit of
 * new data.
 */
#ifndef SLUICE_REPLAY_H
#define SLUICE_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/pipeline.h"
#include "sluice/rc.h"

/* One kept record as the feed hands it over. Pointers are valid during the callback. */
struct sl_replay_item {
    int64_t key;           /* > 0, increasing in feed order: the replay position */
    const char *record_id; /* 32 hex digits */
    const char *json;      /* the record as JSON; NULL when it never parsed (then raw is
                              parsed as the record's text) */
    size_t json_len;
    const void *raw; /* original bytes */
    size_t raw_len;
    uint64_t line, offset; /* where it was read */
    const char *origin;    /* the input it was read from (a file path), or NULL */
    uint64_t true_len;     /* the record's full length when raw holds only its first
                              max_record_bytes (then it cannot be replayed), else 0 */
};

/* Called by the feed for each item; returns 0 to go on. */
typedef int (*sl_replay_item_fn)(void *ectx, const struct sl_replay_item *it);

/* Hand up to limit items with key > after to emit, in key order. SL_OK or an error. */
typedef sl_rc (*sl_replay_read_fn)(void *ctx, int64_t after, size_t limit, sl_replay_item_fn emit,
                                   void *ectx, struct sl_error *err);

struct sl_replay_feed {
    const char *name;  /* the synthetic source's name, e.g. "_dlq_replay_7" (unique per
                          replay: it keys the sinks' checkpoints) */
    const char *stage; /* the component records go back into */
    int after;         /* 1: feed stage's consumers instead of stage itself (always so
                          when stage is a source) */
    sl_replay_read_fn read;
    void *ctx;
    const char *origin; /* what messages call the input, e.g. "dead-letter queue" */
};

/*
 * Build the replay pipeline for p: the synthetic source, then the components downstream
 * of the injection point with their inputs limited to that part of the graph. It borrows
 * p's document (p must outlive it). When the injection point is a source whose plugin can
 * decode (plugin.h), that source is initialised for inspection and decodes the items that
 * come without JSON (rows it rejected while reading) with its current settings. SL_ENOENT when
 * feed->stage is not a component of p (err says so), SL_ECONFIG when nothing lies downstream,
 * SL_ENOMEM.
 */
sl_rc sl_replay_pipeline(const struct sl_pipeline *p, const struct sl_replay_feed *feed,
                         struct sl_pipeline **out, struct sl_error *err);

/* Free a replay pipeline (not the borrowed document). Accepts NULL. */
void sl_replay_pipeline_destroy(struct sl_pipeline *rp);

#endif
