/*
 * batch.h - the unit of queueing, retry and commit.
 *
 * A source fills a batch with up to max_records records or max_bytes of input. The batch
 * owns an arena holding the input bytes, the record array, tapes, and everything every
 * stage allocates for those records. Releasing the last reference frees it all.
 *
 * Fan-out: when one stage feeds several, each consumer after the first receives a clone.
 * A clone has its own arena and record array (shallow copies of the records) and holds a
 * reference to the original (backing), so text, tapes and edits allocated in the original
 * stay valid; nothing shared is ever mutated (tapes and edits are immutable once linked).
 *
 * Invariants:
 *   1. Every batch a source emits reaches every sink reachable from that source exactly
 *      once per path, even when all its records were dropped: sinks see gap-free seq
 *      numbers and checkpoints stay monotonic.
 *   2. seq starts at 1 per source per run and increases by 1 per batch.
 *   3. position (when not NULL) is the source's checkpoint after the last record of this
 *      batch, as an opaque NUL-terminated string the source can restore from.
 *   4. refs > 0 while anyone holds the batch; only the holder of the sole reference may
 *      mutate records (the engine clones before handing a batch to a second consumer).
 */
#ifndef SLUICE_BATCH_H
#define SLUICE_BATCH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/arena.h"
#include "sluice/rc.h"
#include "sluice/record.h"

#define SL_BATCH_EOS 0x1 /* end-of-stream marker: carries no records */

struct sl_batch_limits {
    uint32_t max_records; /* default 1024 */
    size_t max_bytes;     /* default 1 MiB of input */
};

struct sl_batch {
    atomic_int refs;
    struct sl_batch *backing; /* original this clone was taken from, or NULL */
    struct sl_arena arena;
    struct sl_record *recs;
    uint32_t n;
    uint32_t cap;
    uint64_t seq;         /* invariant 2 */
    uint32_t source;      /* index of the source component that produced it */
    uint32_t flags;       /* SL_BATCH_* */
    size_t bytes;         /* input bytes, for queue byte limits */
    const char *origin;   /* input file path (arena), "-" for stdin, or NULL */
    const char *position; /* invariant 3 */
    /* the name sinks record position under: NULL = the source's name; a source keeping a
       position per partition names the partition ("<source>#<topic>/<partition>") */
    const char *checkpoint;
    uint64_t *outmask;  /* routing: one bit per output per record (route transform) */
    uint64_t ingest_ns; /* CLOCK_REALTIME when the source emitted it */
    uint32_t empty;     /* empty (or blank) lines the source skipped to fill it: counted,
                           never records */
};

/* A new empty batch with one reference. arena_block 0 = 256 KiB. SL_OK / SL_ENOMEM. */
sl_rc sl_batch_create(size_t arena_block, struct sl_batch **out);

/* Take another reference. Returns b. */
struct sl_batch *sl_batch_ref(struct sl_batch *b);

/* Drop a reference; frees the batch (and releases backing) on the last. Accepts NULL. */
void sl_batch_unref(struct sl_batch *b);

/* A clone for fan-out (see above). SL_OK / SL_ENOMEM. */
sl_rc sl_batch_clone(struct sl_batch *b, struct sl_batch **out);

/* Append a zeroed record, growing the array in the arena. NULL on ENOMEM. */
struct sl_record *sl_batch_add(struct sl_batch *b);

/*
 * Mark record r rejected by stage with a printf-style reason (copied into the arena).
 * Keeps the first reason if already rejected. The engine counts and reports it.
 */
void sl_record_reject(struct sl_batch *b, struct sl_record *r, const char *stage, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));

/*
 * As sl_record_reject, with the structured reason why (copied into the arena, strings
 * included; why may be NULL). Keeps the first reason if already rejected.
 */
void sl_record_reject_why(struct sl_batch *b, struct sl_record *r, const char *stage,
                          const struct sl_reject_info *why, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Batches created and not yet freed, process-wide. */
long sl_batches_in_flight(void);

/* Number of records that are neither dropped nor rejected. */
uint32_t sl_batch_live(const struct sl_batch *b);

#endif
