/*
 * lines.c - the read window and NDJSON line splitter (see lines.h).
 *
 * The file and stdin sources own one window each. A read() call of the source begins a
 * span, alternates "split what is buffered" and "refill", and flushes the span into the
 * batch arena before every refill and before returning the batch. Splitting is a memchr
 * per line over a buffer of a megabyte or more, which runs at memory speed; the only
 * other per-line work is filling in the record and deriving its id.
 *
 * Overlong lines: the window is larger than max_record, so a line that has no '\n'
 * within max_record + 1 bytes is known to be overlong without reading it to the end.
 * It becomes one rejected record holding its first max_record bytes (enough for the
 * dead-letter queue to show what it was), and the rest of the line is skipped however
 * long it is, without ever holding more than a window of it. The record's reason carries
 * the line's full length (why->true_len): known at once when the line ends inside the
 * window, otherwise counted while skipping and filled in when the end is found.
 *
 * Blank lines (empty, or only spaces and tabs) are never records: they are counted in
 * b->empty so the run report can account for every line.
 *
 * Threading: none; a window belongs to one source thread. Ownership: the window buffer
 * is the source's (sl_malloc); records point into batch arenas once flushed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "plugins/sources/file/lines.h"
#include "sluice/alloc.h"
#include "sluice/record.h"

sl_rc sl__lines_init(struct sl__lines *l, size_t window, size_t max_record)
{
    memset(l, 0, sizeof *l);
    /* Invariant 3, with room for a read of useful size after the longest partial line. */
    if (window < max_record + 64 * 1024)
        window = max_record + 64 * 1024;
    l->buf = sl_malloc(window);
    if (!l->buf)
        return SL_ENOMEM;
    l->cap = window;
    l->max_record = max_record;
    l->line = 1;
    return SL_OK;
}

void sl__lines_fini(struct sl__lines *l)
{
    sl_free(l->buf);
    l->buf = NULL;
    l->cap = 0;
}

void sl__lines_reset(struct sl__lines *l, uint64_t off, uint64_t line, int skipping)
{
    l->start = l->end = l->scan = 0;
    l->off = off;
    l->line = line ? line : 1;
    l->skipping = skipping;
}

void sl__lines_span_begin(struct sl__lines *l, struct sl__span *sp, const struct sl_batch *b)
{
    if (b->n == 0)
        l->ovl_batch = NULL; /* a new batch: the one holding the record was handed on */
    sp->from = l->start;
    sp->first = b->n;
    sp->bytes = 0;
}

sl_rc sl__lines_flush(struct sl__lines *l, struct sl_batch *b, struct sl__span *sp, size_t upto)
{
    size_t n = upto - sp->from;
    if (n) {
        char *dst = sl_arena_alloc(&b->arena, n);
        if (!dst)
            return SL_ENOMEM;
        const char *lo = l->buf + sp->from, *hi = l->buf + upto;
        memcpy(dst, lo, n);
        for (uint32_t i = sp->first; i < b->n; i++) {
            struct sl_record *r = &b->recs[i];
            if (r->text >= lo && r->text <= hi)
                r->text = dst + (r->text - lo);
            if (r->orig >= lo && r->orig <= hi)
                r->orig = dst + (r->orig - lo);
        }
        b->bytes += n;
    }
    sp->first = b->n;
    sp->from = upto;
    return SL_OK;
}

ssize_t sl__lines_fill(struct sl__lines *l, struct sl__span *sp, int fd, int use_pread)
{
    size_t have = l->end - l->start;
    if (l->start) {
        memmove(l->buf, l->buf + l->start, have);
        l->start = 0;
        l->end = have;
    }
    if (sp)
        sp->from = 0;
    size_t room = l->cap - l->end;
    if (!room)
        return -ENOBUFS; /* cannot happen: invariant 3 */
    ssize_t got;
    do {
        if (use_pread)
            got = pread(fd, l->buf + l->end, room, (off_t)(l->off + have));
        else
            got = read(fd, l->buf + l->end, room);
    } while (got < 0 && errno == EINTR);
    if (got < 0)
        return -errno;
    l->end += (size_t)got;
    return got;
}

void sl__lines_set_record(struct sl_record *r, const struct sl__emit *e, const char *p, size_t n,
                          uint64_t off, uint64_t line)
{
    r->text = r->orig = p;
    r->text_len = r->orig_len = (uint32_t)n;
    r->offset = off;
    r->line = (uint32_t)line;
    sl_record_id(e->id_base, off, r->id);
}

const char *sl__lines_size_text(uint64_t n, char buf[32])
{
    static const char *const unit[] = {"GiB", "MiB", "KiB"};
    for (int i = 0; i < 3; i++) {
        uint64_t u = (uint64_t)1 << (30 - 10 * i);
        if (n >= u && n % u == 0) {
            snprintf(buf, 32, "%llu %s", (unsigned long long)(n / u), unit[i]);
            return buf;
        }
    }
    snprintf(buf, 32, "%llu bytes", (unsigned long long)n);
    return buf;
}

/*
 * (Re)state why overlong record r was rejected: its line is total bytes long (exact), or
 * at least total bytes (!exact: its end has not been read yet).
 */
static void reject_overlong(struct sl_batch *b, struct sl_record *r, const char *stage,
                            const char *origin, size_t max_record, uint64_t total, int exact)
{
    char lim[32], expected[48], actual[48];
    sl__lines_size_text(max_record, lim);
    snprintf(expected, sizeof expected, "<= %zu bytes", max_record);
    snprintf(actual, sizeof actual, "%s%llu bytes", exact ? "" : ">= ", (unsigned long long)total);
    struct sl_reject_info why = {.error_class = "record_too_large",
                                 .rule = "max_record_bytes",
                                 .expected = expected,
                                 .actual = actual,
                                 .true_len = total};
    r->flags &= ~(uint32_t)SL_REC_BAD; /* replaces a provisional reason (invariant 6) */
    if (exact)
        sl_record_reject_why(b, r, stage, &why,
                             "line %u of %s is %llu bytes, over max_record_bytes (%s); raise "
                             "max_record_bytes or fix the producer",
                             r->line, origin, (unsigned long long)total, lim);
    else
        sl_record_reject_why(b, r, stage, &why,
                             "line %u of %s is longer than max_record_bytes (%s), at least %llu "
                             "bytes; raise max_record_bytes or fix the producer",
                             r->line, origin, lim, (unsigned long long)total);
}

sl_rc sl__lines_overlong(struct sl__lines *l, struct sl_batch *b, struct sl__span *sp,
                         const struct sl__emit *e, size_t total, size_t consume, int line_done)
{
    struct sl_record *r = sl_batch_add(b);
    if (!r)
        return SL_ENOMEM;
    sl__lines_set_record(r, e, l->buf + l->start, l->max_record, l->off, l->line);
    reject_overlong(b, r, e->stage, e->origin, l->max_record, total ? total : consume, total != 0);
    if (!total) { /* invariant 6: finish the length while skipping */
        l->ovl_batch = b;
        l->ovl_origin = e->origin;
        l->ovl_rec = b->n - 1;
        l->ovl_len = consume;
        l->ovl_cr = consume && l->buf[l->start + consume - 1] == '\r';
    }
    sl_rc rc = sl__lines_flush(l, b, sp, l->start + l->max_record);
    if (rc)
        return rc;
    sp->bytes += consume;
    l->start += consume;
    l->off += consume;
    l->scan = 0;
    sp->from = l->start;
    if (line_done)
        l->line++;
    else
        l->skipping = 1;
    return SL_OK;
}

/* The overlong line being skipped ended: make its record's length exact (invariant 6). */
static void overlong_done(struct sl__lines *l, struct sl_batch *b)
{
    if (l->ovl_batch == b && b && l->ovl_rec < b->n) {
        struct sl_record *r = &b->recs[l->ovl_rec];
        reject_overlong(b, r, r->error_stage, l->ovl_origin, l->max_record,
                        l->ovl_len - (uint64_t)l->ovl_cr, 1);
    }
    l->ovl_batch = NULL;
}

int sl__lines_skip(struct sl__lines *l, struct sl_batch *b, struct sl__span *sp, int at_eof)
{
    const char *p = l->buf + l->start;
    size_t n = l->end - l->start;
    const char *nl = memchr(p, '\n', n);
    size_t drop = nl ? (size_t)(nl - p) + 1 : n;
    if (nl) {
        l->ovl_cr = nl > p ? nl[-1] == '\r' : l->ovl_cr;
        l->ovl_len += drop - 1;
    } else if (n) {
        l->ovl_cr = p[n - 1] == '\r';
        l->ovl_len += n;
    }
    l->start += drop;
    l->off += drop;
    l->scan = 0;
    sp->from = l->start;
    sp->bytes += drop;
    if (!nl) {
        if (at_eof)
            overlong_done(l, b); /* the input ends the line (skipping stays on: a file
                                    that grows continues the same line) */
        return 0;
    }
    overlong_done(l, b);
    l->skipping = 0;
    l->line++;
    return 1;
}

/* Whether p[0..n) holds only spaces and tabs (n > 0 is not required). */
static int blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t')
            return 0;
    return 1;
}

sl_rc sl__lines_ndjson(struct sl__lines *l, struct sl_batch *b, struct sl__span *sp,
                       const struct sl__emit *e, int at_eof)
{
    const uint32_t max_records = e->limits->max_records ? e->limits->max_records : 1024;
    const size_t max_bytes = e->limits->max_bytes ? e->limits->max_bytes : (size_t)1 << 20;

    for (;;) {
        if (l->skipping && !sl__lines_skip(l, b, sp, at_eof))
            return SL_AGAIN;
        if (b->n >= max_records || (b->n && sp->bytes >= max_bytes))
            return SL_OK;

        const char *p = l->buf + l->start;
        size_t avail = l->end - l->start;
        const char *nl = memchr(p + l->scan, '\n', avail - l->scan);
        size_t len, consume;
        if (nl) {
            len = (size_t)(nl - p);
            consume = len + 1;
        } else if (avail >= l->cap && !at_eof) {
            /* No end within a full window: overlong, length unknown (invariant 3). */
            sl_rc rc = sl__lines_overlong(l, b, sp, e, 0, avail, 0);
            if (rc)
                return rc;
            continue;
        } else if (at_eof && avail) {
            len = consume = avail; /* final line without '\n' */
        } else {
            l->scan = avail;
            return SL_AGAIN;
        }
        if (len && p[len - 1] == '\r')
            len--;
        if (len > l->max_record) {
            sl_rc rc = sl__lines_overlong(l, b, sp, e, len, consume, 1);
            if (rc)
                return rc;
            continue;
        }
        /* Keep the batch within max_bytes, but always take at least one record. */
        if (b->n && sp->bytes + consume > max_bytes)
            return SL_OK;
        if (len && ((p[0] != ' ' && p[0] != '\t') || !blank(p, len))) {
            struct sl_record *r = sl_batch_add(b);
            if (!r)
                return SL_ENOMEM;
            sl__lines_set_record(r, e, p, len, l->off, l->line);
        } else {
            b->empty++;
        }
        sp->bytes += consume;
        l->start += consume;
        l->off += consume;
        l->line++;
        l->scan = 0;
    }
}
