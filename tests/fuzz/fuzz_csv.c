/*
 * fuzz_csv.c - fuzz target for the CSV reader of the file and stdin sources.
 *
 * The first input byte picks the dialect, whether the input is complete, and the column
 * types; the rest is CSV. Every row is scanned and converted, and the scanner's promises
 * are checked: a row never claims more bytes than it was given, fields lie inside the
 * row, MORE only happens on incomplete input, and conversion either succeeds with
 * output that starts with '{' and ends with '}' or fails with a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plugins/sources/file/csv.h"

#define NCOL 6

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
            sl_rc rc = sl__csv_to_json(&s, p + off, f, nf, &out, &tmp, msg, sizeof msg);
            if (rc == SL_OK && (out.len < 2 || out.data[0] != '{' || out.data[out.len - 1] != '}'))
                abort();
            if (rc == SL_EPARSE && !msg[0])
                abort();
        }
        off += sc.used;
    }
    sl_buf_fini(&out);
    sl_buf_fini(&tmp);
    return 0;
}
