/*
 * alloc.c - the allocation wrapper with fault injection.
 *
 * A single atomic countdown decides whether an allocation fails, so tests can walk a
 * function through "fail the 1st, 2nd, ... N-th allocation" and check that every path
 * returns SL_ENOMEM and leaks nothing (AddressSanitizer reports leaks at exit).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/alloc.h"

static atomic_long fail_countdown; /* 0: disabled; k > 0: the k-th next allocation fails */
static atomic_long alloc_total;

static int should_fail(void)
{
    atomic_fetch_add_explicit(&alloc_total, 1, memory_order_relaxed);
    long c = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (c <= 0)
        return 0;
    return atomic_fetch_sub(&fail_countdown, 1) == 1;
}

void sl_alloc_fail_at(long n)
{
    atomic_store(&fail_countdown, n > 0 ? n : 0);
}

long sl_alloc_count(void)
{
    return atomic_load(&alloc_total);
}

void *sl_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *sl_calloc(size_t count, size_t size)
{
    if (should_fail())
        return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *sl_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

void sl_free(void *p)
{
    free(p);
}

char *sl_strndup(const char *s, size_t n)
{
    char *d = sl_malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *sl_strdup(const char *s)
{
    return sl_strndup(s, strlen(s));
}
