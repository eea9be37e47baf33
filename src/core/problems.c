/*
 * problems.c - collect a load's problems and report them together (problems.h).
 *
 * Single-threaded: one list belongs to one load.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/alloc.h"

#include "core/problems.h"

void sl__problems_init(struct sl__problems *ps, const char *path, struct sl_arena *a)
{
    memset(ps, 0, sizeof *ps);
    ps->path = path;
    ps->a = a;
}

void sl__problems_fini(struct sl__problems *ps)
{
    sl_free(ps->list);
    ps->list = NULL;
    ps->n = 0;
}

void sl__problems_add_text(struct sl__problems *ps, unsigned line, unsigned col, const char *text)
{
    if (ps->n >= SL__PROBLEMS_MAX) {
        ps->dropped++;
        return;
    }
    if (!ps->list && !(ps->list = sl_calloc(SL__PROBLEMS_MAX, sizeof *ps->list))) {
        ps->oom = 1;
        return;
    }
    char *t = sl_arena_strdup(ps->a, text);
    if (!t) {
        ps->oom = 1;
        return;
    }
    ps->list[ps->n++] = (struct sl__problem){line, col, ps->seq++, t};
}

void sl__problems_addf(struct sl__problems *ps, unsigned line, unsigned col, const char *fmt, ...)
{
    char msg[SL_ERROR_MSG_MAX], full[SL_ERROR_MSG_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "%s:%u:%u: %s", ps->path, line, col, msg);
    sl__problems_add_text(ps, line, col, full);
}

void sl__problems_add_err(struct sl__problems *ps, const struct sl_cfg_node *n,
                          const struct sl_error *e)
{
    if (e->rc == SL_ENOMEM) {
        ps->oom = 1;
        return;
    }
    sl__problems_add_text(ps, n ? n->line : 1, n ? n->col : 1, e->msg);
}

int sl__problems_any(const struct sl__problems *ps)
{
    return ps->n || ps->dropped || ps->oom;
}

static int problem_cmp(const void *x, const void *y)
{
    const struct sl__problem *a = x, *b = y;
    if (a->line != b->line)
        return a->line < b->line ? -1 : 1;
    if (a->col != b->col)
        return a->col < b->col ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

sl_rc sl__problems_report(struct sl__problems *ps, struct sl_error *err)
{
    if (ps->oom)
        return sl_error_set(err, SL_ENOMEM, "out of memory while loading %s", ps->path);
    if (ps->n)
        qsort(ps->list, ps->n, sizeof *ps->list, problem_cmp);
    sl_error_set(err, SL_ECONFIG, "%s", "");
    if (!err)
        return SL_ECONFIG;
    size_t len = 0, total = ps->n + ps->dropped;
    const size_t tail_room = 48; /* "\n... and N more problems" */
    for (size_t i = 0; i < ps->n; i++) {
        size_t tl = strlen(ps->list[i].text);
        size_t need = (len ? 1 : 0) + tl;
        int last = i + 1 == ps->n && ps->dropped == 0;
        if (len == 0 && tl + (last ? 0 : tail_room) >= sizeof err->msg) {
            /* Even an oversized first problem is shown, cut short, rather than hidden. */
            tl = sizeof err->msg - 1 - (last ? 0 : tail_room);
            need = tl;
        }
        if (len + need + (last ? 0 : tail_room) >= sizeof err->msg) {
            snprintf(err->msg + len, sizeof err->msg - len, "%s... and %zu more problem%s",
                     len ? "\n" : "", total - i, total - i == 1 ? "" : "s");
            return SL_ECONFIG;
        }
        if (len)
            err->msg[len++] = '\n';
        memcpy(err->msg + len, ps->list[i].text, tl);
        len += tl;
        err->msg[len] = '\0';
    }
    if (ps->dropped)
        snprintf(err->msg + len, sizeof err->msg - len, "\n... and %zu more problem%s", ps->dropped,
                 ps->dropped == 1 ? "" : "s");
    return SL_ECONFIG;
}
