/*
 * csv.c - CSV rows to JSON objects (see csv.h).
 *
 * Dialect: RFC 4180 with a configurable delimiter and quote character. A field that
 * begins with the quote character is quoted: it ends at the next lone quote, a doubled
 * quote inside it stands for one quote, and delimiters and line breaks inside it are
 * data. A quote inside an unquoted field is an ordinary character (common in the wild,
 * and unambiguous). After a closing quote only a delimiter or the line break may follow;
 * anything else makes the row malformed. Rows end at "\n" or "\r\n" outside quotes.
 * Empty lines, and lines of only spaces and tabs when there is more than one column, are
 * not rows: they are skipped and counted in the batch's `empty`.
 *
 * Rejects carry a structured reason (record.h): class "csv" with rule "column_count"
 * (expected/actual field counts) or "quoting" (the column's path, what was expected
 * after the quote and what was there), or class "cast" with the column type as the rule
 * when a typed column's value does not convert (path = the column, actual = the value).
 *
 * Typing: every column is a string unless `types` says otherwise. For int, float and
 * bool columns surrounding spaces are ignored and an empty field is null; a value that
 * does not parse rejects the row with a message naming the column and the value.
 *   int    [+-]digits that fit in 64 bits, written in canonical decimal
 *   float  decimal with optional fraction and exponent, finite; written as given when it
 *          is already a JSON number, otherwise in the shortest form that reads back
 *   bool   true/false, yes/no, y/n, t/f, 1/0 (any case)
 *   json   the field's text inserted as a JSON value; the engine's parse validates it
 *
 * Decoding again (sl__csv_decode): a row rejected while reading is kept in the
 * dead-letter queue as its bytes; replaying it scans those bytes as the input's last row
 * and converts them through the same function as reading (row_to_record), with the
 * input's schema as it is now (sl__csv_load_schema reads the header again), so the JSON
 * text and the reasons of a row that is still bad are exactly those reading gives.
 *
 * Memory: the schema of the current input lives in c->arena (reset per input); a row's
 * JSON is built in c->out (reused, bounded) and copied once into the batch arena.
 * Threading: one source thread.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "plugins/sources/file/csv.h"
#include "sluice/alloc.h"
#include "sluice/record.h"

int sl__csv_scan(const struct sl__csv_dialect *d, const char *p, size_t n, int at_eof,
                 struct sl__csv_field *f, uint32_t maxf, struct sl__csv_scan *out)
{
    const char dl = d->delim, q = d->quote;
    size_t i = 0, start = 0;
    uint32_t nf = 0;
    int quoted = 0, escaped = 0;
    memset(out, 0, sizeof *out);

    /* States: at the start of a field, inside an unquoted field, inside quotes, after
     * a closing quote. A malformed field continues as unquoted so the row still ends at
     * its real line break. */
    enum { FIELD, PLAIN, QUOTED, CLOSED } st = FIELD;
    for (;;) {
        if (i == n) {
            if (!at_eof)
                return SL__CSV_MORE;
            if (st == QUOTED) {
                out->err = "quoted field not closed before the end of the input";
                out->err_col = start ? start - 1 : 0;
            }
            out->used = out->len = n;
            break;
        }
        char c = p[i];
        if (st == FIELD) {
            if (c == q && q) {
                st = QUOTED;
                quoted = 1;
                escaped = 0;
                start = ++i;
                continue;
            }
            st = PLAIN;
            quoted = escaped = 0;
            start = i;
        }
        if (st == QUOTED) {
            const char *e = memchr(p + i, q, n - i);
            for (const char *s = p + i; e ? s < e : s < p + n; s++)
                out->newlines += *s == '\n';
            if (!e) {
                i = n;
                continue;
            }
            i = (size_t)(e - p);
            if (i + 1 == n && !at_eof)
                return SL__CSV_MORE; /* a doubled quote may straddle the buffer end */
            if (i + 1 < n && p[i + 1] == q) {
                escaped = 1;
                i += 2;
                continue;
            }
            st = CLOSED;
            i++;
            continue;
        }
        if (st == CLOSED && c == '\r' && i + 1 == n) {
            if (!at_eof)
                return SL__CSV_MORE;
            i++; /* a final "\r" without "\n" ends the row at the end of the input */
            continue;
        }
        if (st == CLOSED && c != dl && c != '\n' && !(c == '\r' && i + 1 < n && p[i + 1] == '\n')) {
            if (!out->err) {
                out->err = "unexpected character after a closing quote";
                out->err_col = i;
            }
            st = PLAIN;
        }
        if (c == dl || c == '\n') {
            size_t end = st == CLOSED ? i - 1 : i;
            if (c == '\n' && st != CLOSED && end > start && p[end - 1] == '\r')
                end--;
            if (c == '\n' && st == CLOSED && i >= 2 && p[i - 1] == '\r')
                end = i - 2; /* "...",\r\n: the quote precedes the \r */
            if (nf < maxf) {
                f[nf].off = (uint32_t)start;
                f[nf].len = (uint32_t)(end - start);
                f[nf].quoted = (uint8_t)quoted;
                f[nf].escaped = (uint8_t)escaped;
            }
            nf++;
            i++;
            if (c == '\n') {
                out->used = i;
                out->len = i - 1 - (i >= 2 && p[i - 2] == '\r');
                out->nf = nf;
                if (nf > maxf && !out->err) {
                    out->err = "too many fields";
                    out->err_col = 0;
                }
                return out->err ? SL__CSV_BAD : SL__CSV_ROW;
            }
            st = FIELD;
            continue;
        }
        if (st == CLOSED) { /* the \r of a "\r\n" after a closing quote */
            i++;
            continue;
        }
        /* PLAIN: run to the next delimiter or line break. */
        i++;
        while (i < n && p[i] != dl && p[i] != '\n')
            i++;
    }
    /* End of input without a line break: close the last field. */
    if (st != FIELD || nf > 0) {
        size_t end = n;
        if (st == CLOSED)
            end = p[n - 1] == '\r' ? n - 2 : n - 1; /* at the closing quote */
        else if (st == PLAIN && end > start && p[end - 1] == '\r')
            end--;
        if (st == FIELD)
            start = end = n;
        if (nf < maxf) {
            f[nf].off = (uint32_t)start;
            f[nf].len = (uint32_t)(end - start);
            f[nf].quoted = (uint8_t)quoted;
            f[nf].escaped = (uint8_t)escaped;
        }
        nf++;
        if (st != QUOTED && out->len > 0 && p[out->len - 1] == '\r')
            out->len--;
    }
    out->nf = nf;
    if (nf > maxf && !out->err) {
        out->err = "too many fields";
        out->err_col = 0;
    }
    return out->err ? SL__CSV_BAD : SL__CSV_ROW;
}

/* The field's value with doubled quotes undone: into tmp when needed. */
static sl_rc field_value(const char *row, const struct sl__csv_field *f, char q, struct sl_buf *tmp,
                         const char **v, size_t *n)
{
    const char *s = row + f->off;
    if (!f->escaped) {
        *v = s;
        *n = f->len;
        return SL_OK;
    }
    sl_buf_clear(tmp);
    sl_rc rc = sl_buf_reserve(tmp, f->len);
    if (rc)
        return rc;
    for (size_t i = 0; i < f->len; i++) {
        tmp->data[tmp->len++] = s[i];
        if (s[i] == q && i + 1 < f->len && s[i + 1] == q)
            i++;
    }
    *v = tmp->data;
    *n = tmp->len;
    return SL_OK;
}

/* Append s[0..n) as a JSON string; bytes >= 0x80 pass through (the parse checks UTF-8). */
static sl_rc put_str(struct sl_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    sl_rc rc = sl_buf_reserve(b, n + 2);
    if (rc)
        return rc;
    b->data[b->len++] = '"';
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if ((rc = sl_buf_append(b, s + run, i - run)))
            return rc;
        run = i + 1;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t k = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            k = 6;
        }
        if ((rc = sl_buf_append(b, esc, k)))
            return rc;
    }
    if ((rc = sl_buf_append(b, s + run, n - run)))
        return rc;
    return sl_buf_putc(b, '"');
}

static void trim(const char **v, size_t *n)
{
    while (*n && (**v == ' ' || **v == '\t')) {
        (*v)++;
        (*n)--;
    }
    while (*n && ((*v)[*n - 1] == ' ' || (*v)[*n - 1] == '\t'))
        (*n)--;
}

static int digits(const char *s, size_t n, size_t *i)
{
    size_t j = *i;
    while (*i < n && s[*i] >= '0' && s[*i] <= '9')
        (*i)++;
    return *i > j;
}

/* Whether s[0..n) is a number in RFC 8259's grammar. */
static int json_number(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i < n && s[i] == '0')
        i++;
    else if (!(i < n && s[i] >= '1' && s[i] <= '9' && digits(s, n, &i)))
        return 0;
    if (i < n && s[i] == '.') {
        i++;
        if (!digits(s, n, &i))
            return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (!digits(s, n, &i))
            return 0;
    }
    return i == n;
}

/* Decimal float syntax we accept: [+-] (digits [. digits?] | . digits) [e [+-] digits]. */
static int float_syntax(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    int intd = digits(s, n, &i), frac = 0;
    if (i < n && s[i] == '.') {
        i++;
        frac = digits(s, n, &i);
    }
    if (!intd && !frac)
        return 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (!digits(s, n, &i))
            return 0;
    }
    return i == n;
}

static int parse_int(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (i == n)
        return 0;
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (lim - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 1;
}

static int parse_bool(const char *s, size_t n, int *out)
{
    static const char *const yes[] = {"true", "yes", "y", "t", "1"};
    static const char *const no[] = {"false", "no", "n", "f", "0"};
    for (int i = 0; i < 5; i++) {
        if (n == strlen(yes[i]) && strncasecmp(s, yes[i], n) == 0)
            return *out = 1, 1;
        if (n == strlen(no[i]) && strncasecmp(s, no[i], n) == 0)
            return *out = 0, 1;
    }
    return 0;
}

static const char *const type_names[] = {"string", "int", "float", "bool", "json"};

/* "\"abc\"" shortened to 64 bytes, for messages; non-printable bytes as '?'. */
static const char *quote_value(const char *v, size_t n, char buf[80])
{
    size_t k = 0, max = n > 64 ? 61 : n;
    buf[k++] = '"';
    for (size_t i = 0; i < max; i++)
        buf[k++] = (v[i] >= 0x20 && v[i] < 0x7f) ? v[i] : '?';
    if (max < n)
        buf[k++] = '.', buf[k++] = '.', buf[k++] = '.';
    buf[k++] = '"';
    buf[k] = '\0';
    return buf;
}

/* v[0..n) shortened for a reject reason's `actual`: 64 bytes then "...", unprintables '?'. */
static void short_value(const char *v, size_t n, char buf[72])
{
    size_t k = 0, max = n > 64 ? 64 : n;
    for (size_t i = 0; i < max; i++)
        buf[k++] = (v[i] >= 0x20 && v[i] < 0x7f) ? v[i] : '?';
    if (max < n)
        buf[k++] = '.', buf[k++] = '.', buf[k++] = '.';
    buf[k] = '\0';
}

void sl__csv_column_path(const char *name, char *buf, size_t cap)
{
    size_t n = strlen(name), i = 0;
    int bare = n > 0 && !(name[0] >= '0' && name[0] <= '9');
    for (i = 0; i < n && bare; i++)
        bare = (name[i] >= 'A' && name[i] <= 'Z') || (name[i] >= 'a' && name[i] <= 'z') ||
               (name[i] >= '0' && name[i] <= '9') || name[i] == '_';
    if (bare) {
        snprintf(buf, cap, "$.%s", name);
        return;
    }
    struct sl_buf b;
    sl_buf_init(&b, 0);
    if (put_str(&b, name, n) == SL_OK)
        snprintf(buf, cap, "$[%.*s]", (int)b.len, b.data);
    else
        snprintf(buf, cap, "$");
    sl_buf_fini(&b);
}

sl_rc sl__csv_to_json(const struct sl__csv_schema *s, const char *row,
                      const struct sl__csv_field *f, uint32_t nf, struct sl_buf *out,
                      struct sl_buf *tmp, char *msg, size_t msgcap, struct sl__csv_cast_error *ce)
{
    sl_rc rc;
    sl_buf_clear(out);
    if ((rc = sl_buf_putc(out, '{')))
        return rc;
    for (uint32_t i = 0; i < nf && i < s->ncol; i++) {
        const char *v;
        size_t n;
        if ((rc = field_value(row, &f[i], s->quote, tmp, &v, &n)))
            return rc;
        if (i && (rc = sl_buf_putc(out, ',')))
            return rc;
        if ((rc = sl_buf_append(out, s->keys[i], s->key_len[i])))
            return rc;
        uint8_t t = s->types[i];
        if (t == SL__CSV_STRING) {
            if ((rc = put_str(out, v, n)))
                return rc;
            continue;
        }
        trim(&v, &n);
        if (n == 0) {
            if ((rc = sl_buf_append(out, "null", 4)))
                return rc;
            continue;
        }
        char vb[80];
        switch (t) {
        case SL__CSV_INT: {
            int64_t x;
            if (!parse_int(v, n, &x))
                goto bad;
            rc = sl_buf_printf(out, "%" PRId64, x);
            break;
        }
        case SL__CSV_FLOAT: {
            if (!float_syntax(v, n) || n > 512)
                goto bad;
            char num[520];
            memcpy(num, v, n);
            num[n] = '\0';
            errno = 0;
            double x = strtod(num, NULL);
            if (!isfinite(x))
                goto bad;
            if (json_number(v, n)) {
                rc = sl_buf_append(out, v, n);
                break;
            }
            char txt[40];
            for (int prec = 15; prec <= 17; prec++) {
                snprintf(txt, sizeof txt, "%.*g", prec, x);
                if (strtod(txt, NULL) == x)
                    break;
            }
            rc = sl_buf_puts(out, txt);
            break;
        }
        case SL__CSV_BOOL: {
            int x;
            if (!parse_bool(v, n, &x))
                goto bad;
            rc = sl_buf_puts(out, x ? "true" : "false");
            break;
        }
        default: /* SL__CSV_JSON */
            rc = sl_buf_append(out, v, n);
            break;
        }
        if (rc)
            return rc;
        continue;
    bad:
        snprintf(msg, msgcap, "column %s: %s is not %s %s", s->names[i], quote_value(v, n, vb),
                 t == SL__CSV_INT ? "an" : "a", type_names[t]);
        if (ce) {
            ce->col = i;
            short_value(v, n, ce->value);
        }
        return SL_EPARSE;
    }
    return sl_buf_putc(out, '}');
}

/* ---- options ---------------------------------------------------------------------- */

static sl_rc one_char(const struct sl_cfg_node *node, const char *key, const char *def, char *out,
                      struct sl_error *err)
{
    const char *s;
    sl_rc rc = sl_cfg_get_str(node, key, def, &s, err);
    if (rc)
        return rc;
    if (strcmp(s, "tab") == 0 || strcmp(s, "\\t") == 0)
        s = "\t";
    if (strlen(s) != 1 || s[0] == '\n' || s[0] == '\r')
        return sl_cfg_error(err, sl_cfg_get(node, key),
                            "%s: \"%s\" must be exactly one character (use \"tab\" for a tab)", key,
                            s);
    *out = s[0];
    return SL_OK;
}

static int type_parse(const char *s)
{
    for (int i = 0; i < 5; i++)
        if (strcmp(s, type_names[i]) == 0)
            return i;
    return -1;
}

sl_rc sl__csv_reject_options(const struct sl_cfg_node *node, struct sl_error *err)
{
    static const char *const csv_only[] = {"delimiter", "quote", "header", "columns", "types"};
    for (size_t i = 0; i < sizeof csv_only / sizeof csv_only[0]; i++) {
        const struct sl_cfg_node *v = sl_cfg_get(node, csv_only[i]);
        if (v)
            return sl_cfg_error(err, v, "%s: only applies to format: csv", csv_only[i]);
    }
    return SL_OK;
}

sl_rc sl__csv_configure(struct sl__csv *c, const struct sl_cfg_doc *doc,
                        const struct sl_cfg_node *node, size_t max_record, struct sl_error *err)
{
    sl_rc rc;
    memset(c, 0, sizeof *c);
    sl_arena_init(&c->arena, 16 * 1024);
    /* Worst case a byte becomes \u00XX (6 bytes), plus keys and punctuation. */
    sl_buf_init(&c->out, 8 * max_record + 1024 * 1024);
    sl_buf_init(&c->tmp, max_record + 1);
    (void)doc;
    if ((rc = one_char(node, "delimiter", ",", &c->d.delim, err)))
        goto fail;
    if ((rc = one_char(node, "quote", "\"", &c->d.quote, err)))
        goto fail;
    if (c->d.quote == c->d.delim) {
        rc = sl_cfg_error(err, sl_cfg_get(node, "quote"), "quote and delimiter must differ");
        goto fail;
    }
    if ((rc = sl_cfg_get_bool(node, "header", 1, &c->header, err)))
        goto fail;
    const struct sl_cfg_node *cols = sl_cfg_get(node, "columns");
    if (cols) {
        if (cols->kind == SL_CFG_SCALAR && !cols->is_null) {
            c->ncfg_columns = 1;
        } else if (cols->kind == SL_CFG_SEQ) {
            c->ncfg_columns = (uint32_t)cols->n;
        } else if (!(cols->kind == SL_CFG_SCALAR && cols->is_null)) {
            rc = sl_cfg_error(err, cols, "columns: expected a list of column names");
            goto fail;
        }
        if (c->ncfg_columns > SL__CSV_MAX_FIELDS) {
            rc = sl_cfg_error(err, cols, "columns: at most %d columns", SL__CSV_MAX_FIELDS);
            goto fail;
        }
        if (c->ncfg_columns) {
            c->cfg_columns = sl_calloc(c->ncfg_columns, sizeof(char *));
            if (!c->cfg_columns) {
                rc = SL_ENOMEM;
                goto fail;
            }
        }
        for (uint32_t i = 0; i < c->ncfg_columns; i++) {
            const struct sl_cfg_node *it = cols->kind == SL_CFG_SEQ ? cols->items[i] : cols;
            if (it->kind != SL_CFG_SCALAR || it->is_null || !it->str[0]) {
                rc = sl_cfg_error(err, it, "columns: each column needs a non-empty name");
                goto fail;
            }
            for (uint32_t j = 0; j < i; j++)
                if (strcmp(c->cfg_columns[j], it->str) == 0) {
                    rc = sl_cfg_error(err, it, "columns: \"%s\" is named twice", it->str);
                    goto fail;
                }
            c->cfg_columns[i] = it->str;
        }
    }
    if (!c->header && !c->ncfg_columns) {
        rc = sl_cfg_error(err, sl_cfg_get(node, "header") ? sl_cfg_get(node, "header") : node,
                          "header: false needs `columns:` listing the column names");
        goto fail;
    }
    const struct sl_cfg_node *types = sl_cfg_get(node, "types");
    if (types && !(types->kind == SL_CFG_SCALAR && types->is_null)) {
        if (types->kind != SL_CFG_MAP) {
            rc = sl_cfg_error(err, types, "types: expected a map of column: type");
            goto fail;
        }
        c->cfg_types = types;
        c->cfg_type_vals = sl_calloc(types->n + 1, 1);
        if (!c->cfg_type_vals) {
            rc = SL_ENOMEM;
            goto fail;
        }
        for (size_t i = 0; i < types->n; i++) {
            const struct sl_cfg_node *v = types->pairs[i].val;
            int t = v->kind == SL_CFG_SCALAR && !v->is_null ? type_parse(v->str) : -1;
            if (t < 0) {
                rc = sl_cfg_error(err, v, "types.%s: expected string, int, float, bool or json",
                                  types->pairs[i].key);
                goto fail;
            }
            c->cfg_type_vals[i] = (uint8_t)t;
            if (c->ncfg_columns) { /* names are known now: check them now */
                uint32_t j = 0;
                while (j < c->ncfg_columns && strcmp(c->cfg_columns[j], types->pairs[i].key))
                    j++;
                if (j == c->ncfg_columns) {
                    rc = sl_cfg_error(err, v, "types: \"%s\" is not one of the columns",
                                      types->pairs[i].key);
                    goto fail;
                }
            }
        }
    }
    c->f = sl_malloc(SL__CSV_MAX_FIELDS * sizeof *c->f);
    if (!c->f) {
        rc = SL_ENOMEM;
        goto fail;
    }
    return SL_OK;
fail:
    sl__csv_fini(c);
    return rc;
}

void sl__csv_fini(struct sl__csv *c)
{
    if (!c)
        return;
    sl_free(c->f);
    c->f = NULL;
    sl_free((void *)c->cfg_columns);
    c->cfg_columns = NULL;
    sl_free(c->cfg_type_vals);
    c->cfg_type_vals = NULL;
    sl_buf_fini(&c->out);
    sl_buf_fini(&c->tmp);
    sl_arena_fini(&c->arena);
}

/*
 * Build schema s (memory from a) from names (n of them) and the configured types. The
 * caller marks it ready on SL_OK.
 */
static sl_rc schema_build(const struct sl__csv *c, struct sl_arena *a, struct sl__csv_schema *s,
                          const char *const *names, const uint32_t *lens, uint32_t n,
                          const char *origin, struct sl_error *err)
{
    s->ncol = n;
    s->quote = c->d.quote;
    s->names = sl_arena_alloc(a, (n + 1) * sizeof *s->names);
    s->keys = sl_arena_alloc(a, (n + 1) * sizeof *s->keys);
    s->key_len = sl_arena_alloc(a, (n + 1) * sizeof *s->key_len);
    s->types = sl_arena_calloc(a, n + 1);
    if (!s->names || !s->keys || !s->key_len || !s->types)
        return SL_ENOMEM;
    struct sl_buf kb;
    sl_buf_init(&kb, 0);
    sl_rc rc = SL_OK;
    for (uint32_t i = 0; i < n; i++) {
        s->names[i] = sl_arena_strndup(a, names[i], lens[i]);
        if (!s->names[i]) {
            rc = SL_ENOMEM;
            goto out;
        }
        if (!lens[i]) {
            rc = sl_error_set(err, SL_ECONFIG,
                              "%s: column %u of the header has no name; name it in the file "
                              "or list the names with `columns:`",
                              origin, i + 1);
            goto out;
        }
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(s->names[j], s->names[i]) == 0) {
                rc = sl_error_set(err, SL_ECONFIG,
                                  "%s: the header names column \"%s\" twice; rename one or "
                                  "list the names with `columns:`",
                                  origin, s->names[i]);
                goto out;
            }
        sl_buf_clear(&kb);
        if ((rc = put_str(&kb, s->names[i], lens[i])) || (rc = sl_buf_putc(&kb, ':')))
            goto out;
        s->keys[i] = sl_arena_dup(a, kb.data, kb.len);
        s->key_len[i] = (uint32_t)kb.len;
        if (!s->keys[i]) {
            rc = SL_ENOMEM;
            goto out;
        }
    }
    if (c->cfg_types) {
        for (size_t k = 0; k < c->cfg_types->n; k++) {
            const char *key = c->cfg_types->pairs[k].key;
            uint32_t i = 0;
            while (i < n && strcmp(s->names[i], key))
                i++;
            if (i == n) {
                rc = sl_error_set(err, SL_ECONFIG,
                                  "types names column \"%s\", but %s has no such column; "
                                  "its columns are: %s%s",
                                  key, origin, n ? s->names[0] : "(none)", n > 1 ? ", ..." : "");
                goto out;
            }
            s->types[i] = c->cfg_type_vals[k];
        }
    }
out:
    sl_buf_fini(&kb);
    return rc;
}

void sl__csv_input_begin(struct sl__csv *c)
{
    sl_arena_reset(&c->arena);
    c->ready = 0;
}

static sl_rc schema_from_config(const struct sl__csv *c, struct sl_arena *a,
                                struct sl__csv_schema *s, const char *origin, struct sl_error *err)
{
    uint32_t n = c->ncfg_columns;
    uint32_t *lens = sl_arena_alloc(a, (n + 1) * sizeof *lens);
    if (!lens)
        return SL_ENOMEM;
    for (uint32_t i = 0; i < n; i++)
        lens[i] = (uint32_t)strlen(c->cfg_columns[i]);
    return schema_build(c, a, s, c->cfg_columns, lens, n, origin, err);
}

/* The schema named by the header row (scanned: fields in c->f), into s (memory from a). */
static sl_rc schema_from_row(struct sl__csv *c, struct sl_arena *a, struct sl__csv_schema *s,
                             const char *row, const struct sl__csv_scan *sc, const char *origin,
                             struct sl_error *err)
{
    if (c->ncfg_columns) /* `columns:` renames the header's columns */
        return schema_from_config(c, a, s, origin, err);
    if (sc->nf > SL__CSV_MAX_FIELDS)
        return sl_error_set(err, SL_ECONFIG, "%s: the header has %u columns, more than %d", origin,
                            sc->nf, SL__CSV_MAX_FIELDS);
    const char **names = sl_arena_alloc(a, (sc->nf + 1) * sizeof *names);
    uint32_t *lens = sl_arena_alloc(a, (sc->nf + 1) * sizeof *lens);
    if (!names || !lens)
        return SL_ENOMEM;
    for (uint32_t i = 0; i < sc->nf; i++) {
        const char *v;
        size_t n;
        sl_rc rc = field_value(row, &c->f[i], c->d.quote, &c->tmp, &v, &n);
        if (rc)
            return rc;
        names[i] = sl_arena_strndup(a, v, n);
        if (!names[i])
            return SL_ENOMEM;
        lens[i] = (uint32_t)n;
    }
    return schema_build(c, a, s, names, lens, sc->nf, origin, err);
}

/* Whether p[0..n) holds only spaces and tabs. */
static int blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t')
            return 0;
    return 1;
}

/*
 * Reject row r (p[0..sc->len)) that is malformed (bad: quoting, as sl__csv_scan found)
 * or has the wrong number of fields: error class "csv", rule "quoting" or
 * "column_count", with the column and byte where that helps.
 */
static void reject_row(const struct sl__csv *c, const struct sl__csv_schema *s, struct sl_batch *b,
                       struct sl_record *r, const struct sl__emit *e, const char *p,
                       const struct sl__csv_scan *sc, int bad)
{
    unsigned long long line = r->line;
    char expected[64], actual[64], path[160];
    struct sl_reject_info why = {.error_class = "csv", .expected = expected, .actual = actual};
    if (bad && strcmp(sc->err, "too many fields") != 0) {
        /* The field holding the problem: the last one starting at or before it. */
        uint32_t col = 0, nstored = sc->nf < SL__CSV_MAX_FIELDS ? sc->nf : SL__CSV_MAX_FIELDS;
        for (uint32_t k = 0; k < nstored; k++)
            if (c->f[k].off <= sc->err_col + 1)
                col = k;
        int unclosed = sc->err_col >= sc->len || p[sc->err_col] == c->d.quote;
        why.rule = "quoting";
        if (col < s->ncol) {
            sl__csv_column_path(s->names[col], path, sizeof path);
            why.path = path;
        }
        if (unclosed) {
            snprintf(expected, sizeof expected, "a closing %c", c->d.quote);
            snprintf(actual, sizeof actual, "end of input");
        } else {
            char ch = p[sc->err_col];
            snprintf(expected, sizeof expected, "'%c' or a line break after the closing %c",
                     c->d.delim, c->d.quote);
            if (ch >= 0x20 && ch < 0x7f)
                snprintf(actual, sizeof actual, "'%c'", ch);
            else
                snprintf(actual, sizeof actual, "byte 0x%02X", (unsigned char)ch);
        }
        if (col < s->ncol)
            sl_record_reject_why(b, r, e->stage, &why,
                                 "line %llu of %s: malformed CSV: %s (byte %zu of the row, "
                                 "column %u \"%s\"); quote the whole field and double any %c "
                                 "inside it",
                                 line, e->origin, sc->err, sc->err_col + 1, col + 1, s->names[col],
                                 c->d.quote);
        else
            sl_record_reject_why(b, r, e->stage, &why,
                                 "line %llu of %s: malformed CSV: %s (byte %zu of the row); "
                                 "quote the whole field and double any %c inside it",
                                 line, e->origin, sc->err, sc->err_col + 1, c->d.quote);
        return;
    }
    why.rule = "column_count";
    snprintf(expected, sizeof expected, "%u fields", s->ncol);
    snprintf(actual, sizeof actual, "%u fields", sc->nf);
    sl_record_reject_why(b, r, e->stage, &why, "line %llu of %s: %u fields, expected %u (%s%s%s)",
                         line, e->origin, sc->nf, s->ncol, s->ncol ? s->names[0] : "",
                         s->ncol > 1 ? " ... " : "", s->ncol > 1 ? s->names[s->ncol - 1] : "");
}

/*
 * Record r holds the row p (scanned: sc, st from sl__csv_scan, fields in c->f) of an
 * input with schema s: set its text to the row's JSON object (copied into b's arena), or
 * reject it, with class csv (quoting, column_count) or cast. The one path from a scanned
 * row to a record, for reading (sl__csv_rows) and for decoding again (sl__csv_decode).
 * SL_OK (also when rejected) / SL_ENOMEM.
 */
static sl_rc row_to_record(struct sl__csv *c, const struct sl__csv_schema *s, struct sl_batch *b,
                           struct sl_record *r, const struct sl__emit *e, const char *p,
                           const struct sl__csv_scan *sc, int st)
{
    char msg[512];
    struct sl__csv_cast_error ce;
    if (st == SL__CSV_BAD || sc->nf != s->ncol) {
        reject_row(c, s, b, r, e, p, sc, st == SL__CSV_BAD);
        return SL_OK;
    }
    sl_rc rc = sl__csv_to_json(s, p, c->f, sc->nf, &c->out, &c->tmp, msg, sizeof msg, &ce);
    if (rc == SL_EPARSE) {
        uint8_t t = s->types[ce.col];
        char path[160];
        sl__csv_column_path(s->names[ce.col], path, sizeof path);
        struct sl_reject_info why = {.error_class = "cast",
                                     .rule = type_names[t],
                                     .path = path,
                                     .expected = type_names[t],
                                     .actual = ce.value};
        sl_record_reject_why(b, r, e->stage, &why, "line %llu of %s, %s",
                             (unsigned long long)r->line, e->origin, msg);
        return SL_OK;
    }
    if (rc)
        return rc == SL_ELIMIT ? SL_ENOMEM : rc;
    char *t = sl_arena_dup(&b->arena, c->out.data, c->out.len);
    if (!t)
        return SL_ENOMEM;
    r->text = t;
    r->text_len = (uint32_t)c->out.len;
    return SL_OK;
}

sl_rc sl__csv_rows(struct sl__csv *c, struct sl__lines *l, struct sl_batch *b, struct sl__span *sp,
                   const struct sl__emit *e, int at_eof, struct sl_error *err)
{
    const uint32_t max_records = e->limits->max_records ? e->limits->max_records : 1024;
    const size_t max_bytes = e->limits->max_bytes ? e->limits->max_bytes : (size_t)1 << 20;
    sl_rc rc;

    if (!c->ready && !c->header) {
        if ((rc = schema_from_config(c, &c->arena, &c->schema, e->origin, err)))
            return rc;
        c->ready = 1;
    }
    for (;;) {
        if (l->skipping && !sl__lines_skip(l, b, sp, at_eof))
            return SL_AGAIN;
        if (b->n >= max_records || (b->n && sp->bytes >= max_bytes))
            return SL_OK;
        const char *p = l->buf + l->start;
        size_t avail = l->end - l->start;
        if (!avail)
            return SL_AGAIN;
        struct sl__csv_scan sc;
        size_t scan_n = avail > l->max_record + 2 ? l->max_record + 2 : avail;
        int st = sl__csv_scan(&c->d, p, scan_n, at_eof && scan_n == avail, c->f, SL__CSV_MAX_FIELDS,
                              &sc);
        if (st == SL__CSV_MORE) {
            if (avail > l->max_record) {
                /* No row end within max_record bytes: overlong. Resynchronise at the
                 * next line break, which may lie inside the quoted field. */
                if ((rc = sl__lines_overlong(l, b, sp, e, 0, avail, 0)))
                    return rc;
                continue;
            }
            return SL_AGAIN;
        }
        if (sc.len > l->max_record) {
            if ((rc = sl__lines_overlong(l, b, sp, e, sc.len, sc.used, 1)))
                return rc;
            l->line += sc.newlines;
            continue;
        }
        if (b->n && sp->bytes + sc.used > max_bytes)
            return SL_OK;
        uint64_t line = l->line, off = l->off;
        if (!c->ready && c->header) {
            if (!sc.len)
                b->empty++;
            else if ((rc = schema_from_row(c, &c->arena, &c->schema, p, &sc, e->origin, err)))
                return rc;
            else
                c->ready = 1;
        } else if (sc.len == 0 || (c->schema.ncol > 1 && st == SL__CSV_ROW && sc.nf == 1 &&
                                   !c->f[0].quoted && blank(p, sc.len))) {
            b->empty++; /* an empty or blank line: never a record */
        } else {
            struct sl_record *r = sl_batch_add(b);
            if (!r)
                return SL_ENOMEM;
            sl__lines_set_record(r, e, p, sc.len, off, line);
            if ((rc = row_to_record(c, &c->schema, b, r, e, p, &sc, st)))
                return rc;
        }
        sp->bytes += sc.used;
        l->start += sc.used;
        l->off += sc.used;
        l->line += 1 + sc.newlines;
        l->scan = 0;
    }
}

/*
 * Read the header row of the input open as fd (with pread from offset 0, through the
 * window l, which is left reset to offset 0) into s, memory from a. *found = 0 when the
 * input holds no row. SL_OK, SL_EIO, SL_ECONFIG, SL_ENOMEM.
 */
static sl_rc header_load(struct sl__csv *c, struct sl__lines *l, int fd, const char *origin,
                         struct sl_arena *a, struct sl__csv_schema *s, int *found,
                         struct sl_error *err)
{
    sl_rc rc = SL_OK;
    *found = 0;
    sl__lines_reset(l, 0, 1, 0);
    for (;;) {
        ssize_t got = sl__lines_fill(l, NULL, fd, 1);
        if (got < 0) {
            rc = sl_error_sys(err, SL_EIO, (int)-got, "%s: cannot read the CSV header", origin);
            break;
        }
        int at_eof = got == 0;
        struct sl__csv_scan sc;
        size_t avail = l->end - l->start;
        if (!avail)
            break;
        int st =
            sl__csv_scan(&c->d, l->buf + l->start, avail, at_eof, c->f, SL__CSV_MAX_FIELDS, &sc);
        if (st == SL__CSV_MORE) {
            if (avail > l->max_record) {
                rc = sl_error_set(err, SL_ECONFIG,
                                  "%s: the CSV header is longer than max_record_bytes", origin);
                break;
            }
            continue;
        }
        if (sc.len == 0) { /* blank lines before the header */
            l->start += sc.used;
            l->off += sc.used;
            continue;
        }
        rc = schema_from_row(c, a, s, l->buf + l->start, &sc, origin, err);
        *found = rc == SL_OK;
        break;
    }
    sl__lines_reset(l, 0, 1, 0);
    return rc;
}

sl_rc sl__csv_read_header(struct sl__csv *c, struct sl__lines *l, int fd, const struct sl__emit *e,
                          struct sl_error *err)
{
    sl__lines_reset(l, 0, 1, 0);
    if (!c->header || c->ready)
        return SL_OK;
    int found;
    sl_rc rc = header_load(c, l, fd, e->origin, &c->arena, &c->schema, &found, err);
    if (rc == SL_OK && found)
        c->ready = 1;
    return rc;
}

/* ---- decoding a kept row again ----------------------------------------------------- */

int sl__csv_needs_header(const struct sl__csv *c)
{
    return c->header && !c->ncfg_columns;
}

sl_rc sl__csv_load_schema(struct sl__csv *c, struct sl__lines *l, int fd, const char *origin,
                          struct sl_arena *a, struct sl__csv_schema *s, int *found,
                          struct sl_error *err)
{
    memset(s, 0, sizeof *s);
    if (!sl__csv_needs_header(c)) {
        *found = 1;
        return schema_from_config(c, a, s, origin, err);
    }
    return header_load(c, l, fd, origin, a, s, found, err);
}

sl_rc sl__csv_decode(struct sl__csv *c, const struct sl__csv_schema *s, struct sl_batch *b,
                     struct sl_record *r, const struct sl__emit *e)
{
    const char *p = r->orig;
    size_t n = r->orig_len;
    r->text = r->orig; /* what a row rejected while reading holds */
    r->text_len = r->orig_len;
    if (n && p[n - 1] == '\r') {
        /* Reading took one "\r" before the row's end for the line break ("\r\n", or a
         * final "\r") and kept this one as data: scan the row with that line break back,
         * so the last field keeps it exactly as reading did. */
        char *q = sl_arena_alloc(&b->arena, n + 2);
        if (!q)
            return SL_ENOMEM;
        memcpy(q, p, n);
        q[n] = '\r';
        q[n + 1] = '\n';
        p = q;
        n += 2;
    }
    struct sl__csv_scan sc;
    int st = sl__csv_scan(&c->d, p, n, 1, c->f, SL__CSV_MAX_FIELDS, &sc);
    if (sc.used < n) {
        /* Only when `quote` or `delimiter` changed since the row was read: what was one row
         * now ends at a line break with more after it. One kept row stays one record. */
        char actual[96];
        snprintf(actual, sizeof actual, "a line break outside quotes at byte %zu", sc.used);
        struct sl_reject_info why = {
            .error_class = "csv", .rule = "quoting", .expected = "one row", .actual = actual};
        sl_record_reject_why(b, r, e->stage, &why,
                             "line %llu of %s: with the current `quote` and `delimiter` this row "
                             "ends at a line break at byte %zu and more rows follow it; set "
                             "them back to what the file uses, or read the file again",
                             (unsigned long long)r->line, e->origin, sc.used);
        return SL_OK;
    }
    return row_to_record(c, s, b, r, e, p, &sc, st);
}
