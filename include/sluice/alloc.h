/*
 * alloc.h - the one allocation wrapper.
 *
 * All heap allocation in sluice goes through these functions so that tests can make the
 * N-th allocation fail and check that every caller propagates SL_ENOMEM cleanly. Library
 * code never aborts on allocation failure; only main() decides to exit.
 *
 * Hot paths do not call these per record: records and fields live in batch arenas
 * (arena.h), which allocate large blocks here.
 */
#ifndef SLUICE_ALLOC_H
#define SLUICE_ALLOC_H

#include <stddef.h>

void *sl_malloc(size_t n);
void *sl_calloc(size_t count, size_t size);
void *sl_realloc(void *p, size_t n);
void sl_free(void *p);
char *sl_strdup(const char *s);
char *sl_strndup(const char *s, size_t n);

/*
 * Fault injection for tests: the n-th allocation from now (1 = the next one) returns NULL,
 * and every one after it succeeds again. n <= 0 disables injection. Thread-safe.
 */
void sl_alloc_fail_at(long n);

/* Number of allocations made through this wrapper since start (for tests). */
long sl_alloc_count(void);

#endif
