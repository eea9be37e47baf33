/*
 * path.c - compiling field paths such as device.os, tags[0], tags[-1], ["odd key"].x.
 *
 * Paths appear in configs (map set/drop, filter expressions, sink keys) and are compiled
 * once when the pipeline loads; the compiled segments are then used per record by
 * record.c. Grammar:
 *
 *     path    = first ( "." ident | bracket )*
 *     first   = ident | bracket
 *     ident   = [A-Za-z_][A-Za-z0-9_]*
 *     bracket = "[" ( "-"? digits | json-string ) "]"
 *
 * A quoted key is a JSON string (same validation and escapes as record text, via the
 * parser's scanner) and is stored decoded. Indexes fit in int32; a negative index counts
 * from the end of the array.
 *
 * Threading: compiling touches only the caller's arena. Ownership: the path, its segments
 * and its NUL-terminated text live in that arena.
 */
#include <stdint.h>
#include <string.h>

#include "json/json_internal.h"
#include "sluice/json.h"
#include "sluice/record.h"

static int is_ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_ident(char c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

static sl_rc path_fail(const char *s, size_t n, size_t col, size_t *err_col, struct sl_error *err,
                       const char *what)
{
    if (err_col)
        *err_col = col;
    return sl_error_set(err, SL_EPARSE, "invalid field path \"%.*s\" at column %zu: %s",
                        (int)(n > 200 ? 200 : n), s, col + 1, what);
}

sl_rc sl_path_parse(const char *s, size_t n, struct sl_arena *a, struct sl_path *out,
                    size_t *err_col, struct sl_error *err)
{
    if (n == 0)
        return path_fail(s, n, 0, err_col, err, "the path is empty");
    /* Each segment starts at a distinct byte, so n segments always suffice. */
    uint32_t max = 1;
    for (size_t i = 0; i < n; i++)
        max += s[i] == '.' || s[i] == '[';
    struct sl_path_seg *seg = sl_arena_alloc(a, max * sizeof *seg);
    char *text = sl_arena_strndup(a, s, n);
    if (!seg || !text)
        return SL_ENOMEM;
    uint32_t nseg = 0;
    size_t pos = 0;
    int need_ident = 0;
    while (pos < n) {
        struct sl_path_seg *g = &seg[nseg];
        if (s[pos] == '[' && !need_ident) {
            size_t open = pos++;
            if (pos >= n)
                return path_fail(s, n, open, err_col, err, "unclosed '['");
            if (s[pos] == '"') {
                uint8_t fl = 0;
                struct sl_json_error je;
                size_t end = sl__json_scan_string((const uint8_t *)s, n, pos, &fl, &je);
                if (end == SIZE_MAX)
                    return path_fail(s, n, je.offset, err_col, err, je.msg);
                char *k = sl_arena_alloc(a, end - pos);
                if (!k)
                    return SL_ENOMEM;
                g->key = k;
                g->klen = (uint32_t)sl_json_unescape(s + pos + 1, end - pos - 2, k);
                g->index = 0;
                pos = end;
            } else {
                int neg = 0;
                int64_t v = 0;
                if (pos < n && s[pos] == '-') {
                    neg = 1;
                    pos++;
                }
                size_t d0 = pos;
                while (pos < n && s[pos] >= '0' && s[pos] <= '9') {
                    v = v * 10 + (s[pos] - '0');
                    if (v > INT32_MAX)
                        return path_fail(s, n, d0, err_col, err, "array index too large");
                    pos++;
                }
                if (pos == d0)
                    return path_fail(s, n, pos, err_col, err,
                                     "expected an index (digits) or a quoted key after '['");
                g->key = NULL;
                g->klen = 0;
                g->index = (int32_t)(neg ? -v : v);
            }
            if (pos >= n || s[pos] != ']')
                return path_fail(s, n, pos < n ? pos : open, err_col, err,
                                 pos < n ? "expected ']'" : "unclosed '['");
            pos++;
        } else if (is_ident_start(s[pos])) {
            size_t st = pos;
            while (pos < n && is_ident(s[pos]))
                pos++;
            g->key = text + st;
            g->klen = (uint32_t)(pos - st);
            g->index = 0;
        } else {
            return path_fail(s, n, pos, err_col, err,
                             need_ident ? "expected a field name after '.' (use [\"key\"] for "
                                          "other characters)"
                                        : "expected a field name or '[' (use [\"key\"] for "
                                          "other characters)");
        }
        nseg++;
        need_ident = 0;
        if (pos < n) {
            if (s[pos] == '.') {
                need_ident = 1;
                pos++;
                if (pos == n)
                    return path_fail(s, n, pos - 1, err_col, err, "path ends with '.'");
            } else if (s[pos] != '[') {
                return path_fail(s, n, pos, err_col, err, "expected '.' or '[' after a segment");
            }
        }
    }
    out->nseg = nseg;
    out->seg = seg;
    out->text = text;
    return SL_OK;
}
