/*
 * arena.c - bump allocator backing every batch (see arena.h for the invariants).
 *
 * Blocks come from sl_malloc. A request larger than a quarter of the block size gets a
 * block of its own, so a 1 MiB input chunk does not waste the rest of a standard block.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>

#include "sluice/alloc.h"
#include "sluice/arena.h"

struct sl_arena_block {
    struct sl_arena_block *next;
    size_t size; /* usable bytes after the header */
    /* data follows, 16-byte aligned */
};

#define BLOCK_HDR ((sizeof(struct sl_arena_block) + 15) & ~(size_t)15)

/* Bytes in every arena's blocks, process-wide (the engine's memory_limit reads it). */
static atomic_size_t live_bytes;

size_t sl_arena_live_bytes(void)
{
    return atomic_load(&live_bytes);
}

void sl_arena_init(struct sl_arena *a, size_t block_size)
{
    a->head = NULL;
    a->cur = a->end = NULL;
    a->block_size = block_size ? block_size : 64 * 1024;
    a->total = 0;
}

void sl_arena_fini(struct sl_arena *a)
{
    struct sl_arena_block *b = a->head;
    while (b) {
        struct sl_arena_block *next = b->next;
        atomic_fetch_sub(&live_bytes, BLOCK_HDR + b->size);
        sl_free(b);
        b = next;
    }
    a->head = NULL;
    a->cur = a->end = NULL;
    a->total = 0;
}

void sl_arena_reset(struct sl_arena *a)
{
    if (!a->head)
        return;
    /* Keep the oldest block (the last in the list): it has the standard size. */
    struct sl_arena_block *b = a->head, *keep = NULL;
    while (b) {
        struct sl_arena_block *next = b->next;
        if (!next) {
            keep = b;
        } else {
            atomic_fetch_sub(&live_bytes, BLOCK_HDR + b->size);
            sl_free(b);
        }
        b = next;
    }
    keep->next = NULL;
    a->head = keep;
    a->cur = (char *)keep + BLOCK_HDR;
    a->end = a->cur + keep->size;
    a->total = keep->size;
}

void *sl__arena_alloc_slow(struct sl_arena *a, size_t n)
{
    if (n == 0)
        n = 8;
    if (n > ((size_t)1 << 40))
        return NULL;
    int own_block = n > a->block_size / 4;
    size_t size = own_block ? n : a->block_size;
    struct sl_arena_block *b = sl_malloc(BLOCK_HDR + size);
    if (!b)
        return NULL;
    b->size = size;
    a->total += size;
    atomic_fetch_add(&live_bytes, BLOCK_HDR + size);
    char *data = (char *)b + BLOCK_HDR;
    if (own_block && a->head) {
        /* Put it behind the current block so the current free space stays in use. */
        b->next = a->head->next;
        a->head->next = b;
        return data;
    }
    b->next = a->head;
    a->head = b;
    a->cur = data + n;
    a->end = data + size;
    return data;
}

void *sl_arena_calloc(struct sl_arena *a, size_t n)
{
    void *p = sl_arena_alloc(a, n);
    if (p)
        memset(p, 0, n);
    return p;
}

void *sl_arena_dup(struct sl_arena *a, const void *p, size_t n)
{
    void *d = sl_arena_alloc(a, n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

char *sl_arena_strndup(struct sl_arena *a, const char *s, size_t n)
{
    char *d = sl_arena_alloc(a, n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *sl_arena_strdup(struct sl_arena *a, const char *s)
{
    return sl_arena_strndup(a, s, strlen(s));
}

char *sl_arena_printf(struct sl_arena *a, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        return NULL;
    }
    char *d = sl_arena_alloc(a, (size_t)n + 1);
    if (d)
        vsnprintf(d, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return d;
}
