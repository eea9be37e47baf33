/*
 * queue.c - bounded batch queue with blocking push/pop (see queue.h).
 *
 * One mutex and two condition variables. Contention is per batch (up to 1024 records),
 * not per record, so a plain mutex is far from being a bottleneck: at 400 MB/s with
 * 1 MiB batches a queue sees a few hundred operations per second.
 */
#include <time.h>

#include "sluice/alloc.h"
#include "sluice/engine.h"

#include "core/queue.h"

sl_rc sl__queue_init(struct sl_queue *q, uint32_t max_batches, uint64_t max_bytes)
{
    if (max_batches == 0)
        max_batches = 1;
    q->ring = sl_calloc(max_batches, sizeof *q->ring);
    if (!q->ring)
        return SL_ENOMEM;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
    q->cap = max_batches;
    q->head = q->count = 0;
    q->bytes = 0;
    q->max_bytes = max_bytes ? max_bytes : UINT64_MAX;
    q->producers = 0;
    q->aborted = 0;
    q->high_water = 0;
    q->blocked_ns = 0;
    return SL_OK;
}

void sl__queue_fini(struct sl_queue *q)
{
    if (!q->ring)
        return;
    for (uint32_t i = 0; i < q->count; i++)
        sl_batch_unref(q->ring[(q->head + i) % q->cap]);
    sl_free(q->ring);
    q->ring = NULL;
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
}

void sl__queue_add_producer(struct sl_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->producers++;
    pthread_mutex_unlock(&q->mu);
}

static int is_full(const struct sl_queue *q)
{
    return q->count == q->cap || (q->count > 0 && q->bytes >= q->max_bytes);
}

sl_rc sl__queue_push(struct sl_queue *q, struct sl_batch *b)
{
    pthread_mutex_lock(&q->mu);
    if (is_full(q) && !q->aborted) {
        uint64_t t0 = sl_now_mono_ns();
        while (is_full(q) && !q->aborted)
            pthread_cond_wait(&q->not_full, &q->mu);
        q->blocked_ns += sl_now_mono_ns() - t0;
    }
    if (q->aborted) {
        pthread_mutex_unlock(&q->mu);
        sl_batch_unref(b);
        return SL_ECANCELED;
    }
    q->ring[(q->head + q->count) % q->cap] = b;
    q->count++;
    q->bytes += b->bytes;
    if (q->count > q->high_water)
        q->high_water = q->count;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
    return SL_OK;
}

struct sl_batch *sl__queue_pop(struct sl_queue *q)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == 0 && q->producers > 0 && !q->aborted)
        pthread_cond_wait(&q->not_empty, &q->mu);
    struct sl_batch *b = NULL;
    if (q->count > 0 && !q->aborted) {
        b = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
        q->bytes -= b->bytes;
        pthread_cond_signal(&q->not_full);
    }
    pthread_mutex_unlock(&q->mu);
    return b;
}

void sl__queue_close(struct sl_queue *q)
{
    pthread_mutex_lock(&q->mu);
    if (q->producers > 0)
        q->producers--;
    if (q->producers == 0)
        pthread_cond_broadcast(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

void sl__queue_abort(struct sl_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->aborted = 1;
    while (q->count > 0) {
        sl_batch_unref(q->ring[q->head]);
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
    q->bytes = 0;
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->mu);
}

uint32_t sl__queue_depth(struct sl_queue *q)
{
    pthread_mutex_lock(&q->mu);
    uint32_t d = q->count;
    pthread_mutex_unlock(&q->mu);
    return d;
}
