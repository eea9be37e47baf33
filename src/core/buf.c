/*
 * buf.c - growable byte buffer with a hard maximum (see buf.h).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "sluice/alloc.h"
#include "sluice/buf.h"

void sl_buf_init(struct sl_buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

void sl_buf_fini(struct sl_buf *b)
{
    sl_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

sl_rc sl_buf_reserve(struct sl_buf *b, size_t extra)
{
    size_t max = b->max ? b->max : SIZE_MAX;
    if (extra > max || b->len > max - extra)
        return SL_ELIMIT;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return SL_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > max)
        cap = max;
    char *d = sl_realloc(b->data, cap);
    if (!d)
        return SL_ENOMEM;
    b->data = d;
    b->cap = cap;
    return SL_OK;
}

sl_rc sl_buf_printf(struct sl_buf *b, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        return SL_EINVAL;
    }
    sl_rc rc = sl_buf_reserve(b, (size_t)n + 1);
    if (rc) {
        va_end(ap2);
        return rc;
    }
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
    return SL_OK;
}

sl_rc sl_buf_cstr(struct sl_buf *b)
{
    sl_rc rc = sl_buf_reserve(b, 1);
    if (rc)
        return rc;
    b->data[b->len] = '\0';
    return SL_OK;
}
