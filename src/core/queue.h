/*
 * queue.h - bounded multi-producer multi-consumer queue of batches (internal).
 *
 * The queue is an edge of the stage graph. It is limited both in batches and in input
 * bytes; a full queue blocks its producers, which is how backpressure travels from a
 * slow sink back to the source. A batch larger than the byte limit is still admitted
 * into an empty queue, so an oversized batch slows the pipeline instead of deadlocking it.
 *
 * Lifetime: every producer registers (sl__queue_add_producer) before the graph starts and
 * calls sl__queue_close once when it is done. pop returns NULL once every producer has
 * closed and the queue is empty. sl__queue_abort wakes everyone: pushes then drop their
 * batch and pops return NULL at once (used when a stage fails fatally).
 *
 * Invariants:
 *   1. count <= cap; bytes is the sum of b->bytes of the queued batches.
 *   2. count == cap, or bytes >= max_bytes with count > 0, means full.
 *   3. Once aborted, the queue holds no batches.
 */
#ifndef SLUICE_QUEUE_H
#define SLUICE_QUEUE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/batch.h"
#include "sluice/rc.h"

struct sl_queue {
    pthread_mutex_t mu;
    pthread_cond_t not_empty;
    pthread_cond_t not_full;
    struct sl_batch **ring;
    uint32_t cap, head, count;
    uint64_t bytes, max_bytes;
    int producers; /* registered and not yet closed */
    int aborted;
    uint64_t high_water; /* most batches ever queued at once (for stats) */
    uint64_t blocked_ns; /* total time producers spent blocked on a full queue */
};

sl_rc sl__queue_init(struct sl_queue *q, uint32_t max_batches, uint64_t max_bytes);
void sl__queue_fini(struct sl_queue *q);
void sl__queue_add_producer(struct sl_queue *q);

/* Blocks while full. Takes the caller's reference. SL_OK, or SL_ECANCELED when aborted. */
sl_rc sl__queue_push(struct sl_queue *q, struct sl_batch *b);

/* Blocks while empty. Returns a batch (caller owns the reference) or NULL at the end. */
struct sl_batch *sl__queue_pop(struct sl_queue *q);

/* One producer is done. */
void sl__queue_close(struct sl_queue *q);

/* Fail fast: drop queued batches, wake every waiter. */
void sl__queue_abort(struct sl_queue *q);

/* Current depth (batches) for metrics. */
uint32_t sl__queue_depth(struct sl_queue *q);

#endif
