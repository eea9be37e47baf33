/*
 * batch.c - batch lifetime: creation, references, clones for fan-out (see batch.h).
 *
 * The batch struct comes from sl_malloc (its arena is inside it); everything the batch
 * carries comes from the arena. A clone's record array is copied into its own arena;
 * the text, tapes and edits those records point at stay in the original's arena, which
 * the clone keeps alive through its backing reference.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sluice/alloc.h"
#include "sluice/batch.h"

/* Batches alive in the process (the engine's memory_limit never waits on an idle graph). */
static atomic_long in_flight;

long sl_batches_in_flight(void)
{
    return atomic_load(&in_flight);
}

sl_rc sl_batch_create(size_t arena_block, struct sl_batch **out)
{
    struct sl_batch *b = sl_calloc(1, sizeof *b);
    if (!b)
        return SL_ENOMEM;
    atomic_fetch_add(&in_flight, 1);
    atomic_init(&b->refs, 1);
    sl_arena_init(&b->arena, arena_block ? arena_block : 256 * 1024);
    *out = b;
    return SL_OK;
}

struct sl_batch *sl_batch_ref(struct sl_batch *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void sl_batch_unref(struct sl_batch *b)
{
    while (b) {
        if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
            return;
        struct sl_batch *backing = b->backing;
        sl_arena_fini(&b->arena);
        sl_free(b);
        atomic_fetch_sub(&in_flight, 1);
        b = backing; /* release our reference to the original, iteratively */
    }
}

sl_rc sl_batch_clone(struct sl_batch *b, struct sl_batch **out)
{
    struct sl_batch *c;
    sl_rc rc = sl_batch_create(64 * 1024, &c);
    if (rc)
        return rc;
    if (b->n) {
        c->recs = sl_arena_dup(&c->arena, b->recs, (size_t)b->n * sizeof *b->recs);
        if (!c->recs) {
            sl_batch_unref(c);
            return SL_ENOMEM;
        }
    }
    c->n = c->cap = b->n;
    c->seq = b->seq;
    c->source = b->source;
    c->flags = b->flags;
    c->bytes = b->bytes;
    c->origin = b->origin;
    c->position = b->position;
    c->checkpoint = b->checkpoint;
    c->ingest_ns = b->ingest_ns;
    c->outmask = NULL;
    c->backing = sl_batch_ref(b);
    *out = c;
    return SL_OK;
}

struct sl_record *sl_batch_add(struct sl_batch *b)
{
    if (b->n == b->cap) {
        uint32_t cap = b->cap ? b->cap * 2 : 256;
        struct sl_record *r = sl_arena_alloc(&b->arena, (size_t)cap * sizeof *r);
        if (!r)
            return NULL;
        if (b->n)
            memcpy(r, b->recs, (size_t)b->n * sizeof *r);
        b->recs = r;
        b->cap = cap;
    }
    struct sl_record *r = &b->recs[b->n++];
    memset(r, 0, sizeof *r);
    return r;
}

static void reject_v(struct sl_batch *b, struct sl_record *r, const char *stage,
                     const struct sl_reject_info *why, const char *fmt, va_list ap)
{
    if (r->flags & SL_REC_BAD)
        return;
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    r->flags = (r->flags & ~(uint32_t)SL_REC_DROPPED) | SL_REC_BAD;
    r->error = sl_arena_strdup(&b->arena, msg);
    if (!r->error)
        r->error = "rejected (message lost: out of memory)";
    r->error_stage = stage;
    r->why = NULL;
    if (!why)
        return;
    struct sl_reject_info *w = sl_arena_alloc(&b->arena, sizeof *w);
    if (!w)
        return;
    *w = *why;
    /* Copies: the caller's strings may be on its stack. NULL stays NULL. */
    const char **fields[] = {&w->error_class, &w->rule,     &w->path,   &w->expected,
                             &w->actual,      &w->contract, &w->details};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (*fields[i])
            *fields[i] = sl_arena_strdup(&b->arena, *fields[i]);
    r->why = w;
}

void sl_record_reject(struct sl_batch *b, struct sl_record *r, const char *stage, const char *fmt,
                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    reject_v(b, r, stage, NULL, fmt, ap);
    va_end(ap);
}

void sl_record_reject_why(struct sl_batch *b, struct sl_record *r, const char *stage,
                          const struct sl_reject_info *why, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reject_v(b, r, stage, why, fmt, ap);
    va_end(ap);
}

uint32_t sl_batch_live(const struct sl_batch *b)
{
    uint32_t live = 0;
    for (uint32_t i = 0; i < b->n; i++)
        live += !(b->recs[i].flags & (SL_REC_DROPPED | SL_REC_BAD));
    return live;
}
