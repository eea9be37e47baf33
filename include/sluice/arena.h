/*
 * arena.h - bump allocation for everything that lives and dies with one batch.
 *
 * A batch owns an arena; records, tapes, decoded strings, edits and expression results
 * are carved from it and freed all at once when the batch is released. There is no
 * per-object free. An arena is used by one thread at a time (the thread that holds the
 * batch); it has no lock.
 *
 * Invariants:
 *   1. cur <= end; [cur, end) is free space in the newest block.
 *   2. Every pointer returned is 8-byte aligned and stays valid until sl_arena_reset or
 *      sl_arena_fini.
 *   3. total is the sum of the sizes of all blocks owned (for memory accounting).
 */
#ifndef SLUICE_ARENA_H
#define SLUICE_ARENA_H

#include <stddef.h>
#include <stdint.h>

struct sl_arena_block;

struct sl_arena {
    struct sl_arena_block *head; /* newest block first */
    char *cur;
    char *end;
    size_t block_size; /* default size of a new block */
    size_t total;      /* bytes owned (invariant 3) */
};

/*
 * Bytes held in the blocks of every arena of the process right now (batches, their
 * records, tapes and edits are nearly all of a pipeline's memory). Thread-safe.
 */
size_t sl_arena_live_bytes(void);

/* Initialise an empty arena whose blocks are block_size bytes (0 = 64 KiB). No allocation. */
void sl_arena_init(struct sl_arena *a, size_t block_size);

/* Free every block. The arena may be initialised again afterwards. Accepts a zeroed arena. */
void sl_arena_fini(struct sl_arena *a);

/* Free everything allocated but keep the first block for reuse. */
void sl_arena_reset(struct sl_arena *a);

void *sl__arena_alloc_slow(struct sl_arena *a, size_t n);

/* n bytes, 8-byte aligned, uninitialised. NULL when memory is exhausted. */
static inline void *sl_arena_alloc(struct sl_arena *a, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    if ((size_t)(a->end - a->cur) >= n && n != 0) {
        void *p = a->cur;
        a->cur += n;
        return p;
    }
    return sl__arena_alloc_slow(a, n);
}

/* n zeroed bytes, or NULL. */
void *sl_arena_calloc(struct sl_arena *a, size_t n);

/* A copy of p[0..n) in the arena, or NULL. */
void *sl_arena_dup(struct sl_arena *a, const void *p, size_t n);

/* A NUL-terminated copy of s[0..n) in the arena, or NULL. */
char *sl_arena_strndup(struct sl_arena *a, const char *s, size_t n);

/* A NUL-terminated copy of s, or NULL. */
char *sl_arena_strdup(struct sl_arena *a, const char *s);

/* printf into the arena; NULL on allocation failure. */
char *sl_arena_printf(struct sl_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
