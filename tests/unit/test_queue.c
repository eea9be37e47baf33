/*
 * test_queue.c - the bounded queue: limits in batches and bytes, blocking, close, abort.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "sluice/batch.h"

#include "core/queue.h"
#include "test.h"

static struct sl_batch *mk(uint64_t seq, size_t bytes)
{
    struct sl_batch *b;
    if (sl_batch_create(0, &b))
        return NULL;
    b->seq = seq;
    b->bytes = bytes;
    return b;
}

static void test_fifo_and_close(void)
{
    struct sl_queue q;
    REQUIRE(sl__queue_init(&q, 4, 0) == SL_OK);
    sl__queue_add_producer(&q);
    for (uint64_t i = 1; i <= 3; i++)
        CHECK_INT(sl__queue_push(&q, mk(i, 10)), SL_OK);
    CHECK_INT(sl__queue_depth(&q), 3);
    sl__queue_close(&q);
    for (uint64_t i = 1; i <= 3; i++) {
        struct sl_batch *b = sl__queue_pop(&q);
        REQUIRE(b);
        CHECK_INT(b->seq, i);
        sl_batch_unref(b);
    }
    CHECK(sl__queue_pop(&q) == NULL);
    sl__queue_fini(&q);
}

struct prod {
    struct sl_queue *q;
    int n;
    atomic_int pushed;
};

static void *producer(void *arg)
{
    struct prod *p = arg;
    for (int i = 1; i <= p->n; i++) {
        sl__queue_push(p->q, mk((uint64_t)i, 100));
        atomic_fetch_add(&p->pushed, 1);
    }
    sl__queue_close(p->q);
    return NULL;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void test_blocks_when_full_by_count(void)
{
    struct sl_queue q;
    REQUIRE(sl__queue_init(&q, 2, 0) == SL_OK);
    sl__queue_add_producer(&q);
    struct prod p = {.q = &q, .n = 10};
    pthread_t t;
    pthread_create(&t, NULL, producer, &p);
    sleep_ms(50);
    CHECK_INT(atomic_load(&p.pushed), 2); /* blocked on the third */
    int got = 0;
    struct sl_batch *b;
    while ((b = sl__queue_pop(&q)) != NULL) {
        CHECK_INT(b->seq, got + 1);
        got++;
        sl_batch_unref(b);
    }
    pthread_join(t, NULL);
    CHECK_INT(got, 10);
    CHECK(q.high_water <= 2);
    sl__queue_fini(&q);
}

static void test_blocks_when_full_by_bytes(void)
{
    struct sl_queue q;
    REQUIRE(sl__queue_init(&q, 100, 250) == SL_OK);
    sl__queue_add_producer(&q);
    struct prod p = {.q = &q, .n = 5};
    pthread_t t;
    pthread_create(&t, NULL, producer, &p);
    sleep_ms(50);
    CHECK_INT(atomic_load(&p.pushed), 3); /* 300 bytes >= 250: full */
    struct sl_batch *b;
    int got = 0;
    while ((b = sl__queue_pop(&q)) != NULL) {
        got++;
        sl_batch_unref(b);
    }
    pthread_join(t, NULL);
    CHECK_INT(got, 5);
    sl__queue_fini(&q);
}

static void test_oversized_batch_admitted_when_empty(void)
{
    struct sl_queue q;
    REQUIRE(sl__queue_init(&q, 4, 100) == SL_OK);
    sl__queue_add_producer(&q);
    CHECK_INT(sl__queue_push(&q, mk(1, 1000)), SL_OK); /* would deadlock otherwise */
    struct sl_batch *b = sl__queue_pop(&q);
    REQUIRE(b);
    CHECK_INT(b->bytes, 1000);
    sl_batch_unref(b);
    sl__queue_close(&q);
    sl__queue_fini(&q);
}

static void test_abort_wakes_blocked_producer(void)
{
    struct sl_queue q;
    REQUIRE(sl__queue_init(&q, 1, 0) == SL_OK);
    sl__queue_add_producer(&q);
    struct prod p = {.q = &q, .n = 5};
    pthread_t t;
    pthread_create(&t, NULL, producer, &p);
    sleep_ms(30);
    sl__queue_abort(&q);
    pthread_join(t, NULL); /* returns: pushes after abort drop their batch */
    CHECK_INT(atomic_load(&p.pushed), 5);
    CHECK(sl__queue_pop(&q) == NULL);
    CHECK_INT(sl__queue_push(&q, mk(9, 1)), SL_ECANCELED);
    sl__queue_fini(&q); /* ASan checks nothing leaked */
}

static void test_two_producers_close_once_each(void)
{
    struct sl_queue q;
    REQUIRE(sl__queue_init(&q, 3, 0) == SL_OK);
    sl__queue_add_producer(&q);
    sl__queue_add_producer(&q);
    struct prod a = {.q = &q, .n = 50}, c = {.q = &q, .n = 70};
    pthread_t ta, tc;
    pthread_create(&ta, NULL, producer, &a);
    pthread_create(&tc, NULL, producer, &c);
    int got = 0;
    struct sl_batch *b;
    while ((b = sl__queue_pop(&q)) != NULL) {
        got++;
        sl_batch_unref(b);
    }
    pthread_join(ta, NULL);
    pthread_join(tc, NULL);
    CHECK_INT(got, 120);
    sl__queue_fini(&q);
}

int main(void)
{
    RUN(test_fifo_and_close);
    RUN(test_blocks_when_full_by_count);
    RUN(test_blocks_when_full_by_bytes);
    RUN(test_oversized_batch_admitted_when_empty);
    RUN(test_abort_wakes_blocked_producer);
    RUN(test_two_producers_close_once_each);
    return TEST_DONE();
}
