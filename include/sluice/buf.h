/*
 * buf.h - a growable byte buffer with a hard maximum.
 *
 * Used for output serialization and anything else that builds bytes of unknown length.
 * Memory comes from sl_malloc (not an arena) so a buffer can be reused across batches.
 * Growing past max is SL_ELIMIT, never unbounded growth.
 *
 * Invariants:
 *   1. len <= cap <= max (when max != 0).
 *   2. data is NULL iff cap == 0.
 */
#ifndef SLUICE_BUF_H
#define SLUICE_BUF_H

#include <stddef.h>
#include <string.h>

#include "sluice/rc.h"

struct sl_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max; /* 0 means SIZE_MAX */
};

/* Empty buffer with the given hard maximum (0 = unlimited). No allocation. */
void sl_buf_init(struct sl_buf *b, size_t max);

/* Free the storage. Accepts a zeroed buffer. */
void sl_buf_fini(struct sl_buf *b);

/* Ensure room for extra more bytes. SL_ENOMEM or SL_ELIMIT; b unchanged on failure. */
sl_rc sl_buf_reserve(struct sl_buf *b, size_t extra);

static inline sl_rc sl_buf_append(struct sl_buf *b, const void *p, size_t n)
{
    if (b->cap - b->len < n) {
        sl_rc rc = sl_buf_reserve(b, n);
        if (rc)
            return rc;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return SL_OK;
}

static inline sl_rc sl_buf_putc(struct sl_buf *b, char c)
{
    if (b->cap == b->len) {
        sl_rc rc = sl_buf_reserve(b, 1);
        if (rc)
            return rc;
    }
    b->data[b->len++] = c;
    return SL_OK;
}

static inline sl_rc sl_buf_puts(struct sl_buf *b, const char *s)
{
    return sl_buf_append(b, s, strlen(s));
}

sl_rc sl_buf_printf(struct sl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Ensure data is NUL-terminated after len (the NUL is not counted in len). */
sl_rc sl_buf_cstr(struct sl_buf *b);

static inline void sl_buf_clear(struct sl_buf *b)
{
    b->len = 0;
}

#endif
