/*
 * fuzz_csv.c - fuzz target for the CSV reader of the file and stdin sources.
 *
 * The first input byte picks the dialect, whether the input is complete, and the column
 * types; the rest is CSV. Every row is scanned and converted, and the scanner's promises
 * are checked: a row never claims more bytes than it was given, fields lie inside the
 * row, MORE only happens on incomplete input, and conversion either succeeds with
 * output that starts with '{' and ends with '}' or fails with a message. Then the same
 * bytes go through the row reader and the NDJSON line splitter (read_rows).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plugins/sources/file/csv.h"
#include "plugins/sources/file/lines.h"
#include "sluice/batch.h"

#define NCOL 6

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * The row reader and the NDJSON splitter over a read window, with a tiny record limit
 * and tiny batches: records must come out in order, within their limits, with line
 * numbers that never go backwards, and nothing may be left unconsumed at the end.
 */
static void read_rows(const struct sl__csv_dialect *d, const char *p, size_t n, uint8_t ctl)
{
    static const struct sl_batch_limits lim = {3, 200};
    struct sl__emit e = {&lim, "fuzz", "fuzz.csv", {1, 2}};
    for (int csv = 0; csv < 2; csv++) {
        struct sl__lines l;
        struct sl__csv c;
        memset(&c, 0, sizeof c);
        if (sl__lines_init(&l, 0, 16 + (ctl & 0x30)) != SL_OK)
            return;
        if (n > l.cap)
            n = l.cap;
        memcpy(l.buf, p, n);
        l.end = n;
        c.d = *d;
        c.header = 1;
        sl_arena_init(&c.arena, 4096);
        sl_buf_init(&c.out, 1 << 20);
        sl_buf_init(&c.tmp, 1 << 20);
        c.f = malloc(SL__CSV_MAX_FIELDS * sizeof *c.f);
        uint64_t last_off = 0, last_line = 0;
        for (int round = 0; round < 100000; round++) {
            struct sl_batch *b;
            if (!c.f || sl_batch_create(0, &b) != SL_OK)
                break;
            struct sl__span sp;
            struct sl_error err;
            sl__lines_span_begin(&l, &sp, b);
            sl_rc rc = csv ? sl__csv_rows(&c, &l, b, &sp, &e, 1, &err)
                           : sl__lines_ndjson(&l, b, &sp, &e, 1);
            if (rc == SL_OK || rc == SL_AGAIN)
                rc = sl__lines_flush(&l, b, &sp, l.start) ? SL_ENOMEM : rc;
            for (uint32_t i = 0; i < b->n; i++) {
                const struct sl_record *r = &b->recs[i];
                if (r->offset < last_off || r->line < last_line || r->line == 0 ||
                    r->orig_len > l.max_record || !r->text || !r->orig)
                    abort();
                if (r->flags & SL_REC_BAD) { /* every reject carries a structured reason */
                    const struct sl_reject_info *w = r->why;
                    if (!w || !w->error_class || !w->rule || !r->error)
                        abort();
                    int tl = !strcmp(w->error_class, "record_too_large");
                    if (!tl && strcmp(w->error_class, "csv") && strcmp(w->error_class, "cast"))
                        abort();
                    if (tl && (w->true_len <= l.max_record || r->orig_len != l.max_record))
                        abort();
                }
                last_off = r->offset + 1;
                last_line = r->line;
            }
            if (b->n > lim.max_records)
                abort();
            sl_batch_unref(b);
            if (rc != SL_OK)
                break; /* SL_AGAIN: all consumed; SL_ECONFIG: a bad header */
        }
        if (l.end - l.start != 0 && !(csv && !c.ready))
            abort();
        free(c.f);
        sl_buf_fini(&c.out);
        sl_buf_fini(&c.tmp);
        sl_arena_fini(&c.arena);
        sl__lines_fini(&l);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t ctl = data[0];
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    struct sl__csv_dialect d = {(ctl & 1) ? ';' : ',', (ctl & 2) ? '\'' : '"'};
    int at_eof = (ctl & 4) != 0;

    static const char *const names[NCOL] = {"a", "b", "c", "d", "e", "f"};
    static const char *const keys[NCOL] = {
        "\"a\":", "\"b\":", "\"c\":", "\"d\":", "\"e\":", "\"f\":"};
    static uint32_t klen[NCOL] = {4, 4, 4, 4, 4, 4};
    uint8_t types[NCOL];
    for (int i = 0; i < NCOL; i++)
        types[i] = (uint8_t)(((ctl >> 3) + i) % 5);
    struct sl__csv_schema s = {NCOL,   (const char **)names, (const char **)keys, klen, types,
                               d.quote};

    struct sl__csv_field f[8];
    struct sl_buf out, tmp;
    sl_buf_init(&out, 1 << 22);
    sl_buf_init(&tmp, 1 << 22);
    size_t off = 0;
    while (off < n) {
        struct sl__csv_scan sc;
        int st = sl__csv_scan(&d, p + off, n - off, at_eof, f, 8, &sc);
        if (st == SL__CSV_MORE) {
            if (at_eof)
                abort(); /* complete input always yields a row */
            break;
        }
        if (sc.used == 0 || sc.used > n - off || sc.len > sc.used)
            abort();
        for (uint32_t i = 0; i < sc.nf && i < 8; i++)
            if ((size_t)f[i].off + f[i].len > sc.used)
                abort();
        if (st == SL__CSV_ROW && sc.nf <= 8) {
            char msg[256];
            uint32_t nf = sc.nf < NCOL ? sc.nf : NCOL;
            struct sl__csv_cast_error ce;
            sl_rc rc = sl__csv_to_json(&s, p + off, f, nf, &out, &tmp, msg, sizeof msg, &ce);
            if (rc == SL_OK && (out.len < 2 || out.data[0] != '{' || out.data[out.len - 1] != '}'))
                abort();
            if (rc == SL_EPARSE && (!msg[0] || ce.col >= nf || strlen(ce.value) > 67))
                abort(); /* the reason names a real column and a short value */
        }
        off += sc.used;
    }
    sl_buf_fini(&out);
    sl_buf_fini(&tmp);
    read_rows(&d, p, n, ctl);
    return 0;
}
