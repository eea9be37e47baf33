/*
 * postgres.c - the `postgres` source: incremental extraction of a query's rows (libpq).
 *
 * How it fits: the user's `query` (a SELECT) is wrapped so that it is read in pages of
 * `batch_size` rows, ordered by `cursor_column`, each page starting after the cursor value
 * of the last row already delivered:
 *
 *     SELECT * FROM (<query>) AS _sluice_q WHERE "c" > $1 ORDER BY "c" LIMIT <batch_size>
 *
 * ($1 is always a parameter, never text pasted into the statement). One page becomes one
 * batch; each row becomes a JSON object (column name -> value). Memory is bounded by the
 * page size: nothing else is held between reads.
 *
 * Positions: {"type":"<class>","cursor":"<text>"}: the cursor value of the batch's last
 * row as text, with the class of its column (int, numeric, float, time, text) so that two
 * positions can be ordered without a connection (position_cmp). restore(P) makes the next
 * page start after P's value. A row whose cursor is NULL is never read.
 *
 * Rows sharing a cursor value (a timestamp cursor, say) are never split across batches,
 * so a position always lies between two distinct values and "after P" loses nothing and
 * repeats nothing: when a page is full, the rows that share the last row's value are
 * dropped from it (the next page starts with them); when a full page holds a single value,
 * every row with that value is read with `WHERE "c" = $1` into one batch, which may then
 * exceed batch_size. docs/sources.md states the assumption this rests on: a row that
 * becomes visible later must have a larger cursor than every row already visible.
 *
 * Record ids hash (pipeline, source, row text, k) where k counts the earlier rows of the
 * batch with the same text (the text holds the cursor value): the same row read again
 * after a crash gets the same id, and identical rows sharing a cursor value still get
 * distinct ids. r->offset holds the byte offset of the cursor's value inside the record's
 * text, so covers() can read a record's cursor without parsing it (the text a source
 * produces is never changed downstream; transforms add edits beside it).
 *
 * Connection: libpq with `connection` (a conninfo string or URI) or, when absent, the PG*
 * environment variables. Nothing connects in init; read() connects when it has no
 * connection, and after a failure waits (100 ms doubling to 10 s) returning SL_AGAIN, so
 * an outage at start or mid-run is logged and ridden out. A query the server refuses for
 * a reason a retry cannot fix (syntax, a missing column, permissions) is fatal with the
 * server's message. Sessions run read-only, in UTC, with ISO dates.
 *
 * Threading: read/restore/close on the source's thread. position_cmp and covers may be
 * called from sink threads at the same time: they read only immutable state (the column
 * name) and their arguments.
 */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "sluice/alloc.h"
#include "sluice/buf.h"
#include "sluice/log.h"
#include "sluice/plugin.h"
#include "sluice/record.h"

#define PG_BACKOFF_MIN_MS 100
#define PG_BACKOFF_MAX_MS 10000
#define PG_ROW_MAX ((size_t)64 << 20) /* one row as JSON */
#define PG_BATCH_MAX 100000           /* batch_size upper bound */

/* PostgreSQL type OIDs (pg_type.dat; stable across versions). */
enum {
    OID_BOOL = 16,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_TEXT = 25,
    OID_OID = 26,
    OID_JSON = 114,
    OID_FLOAT4 = 700,
    OID_FLOAT8 = 701,
    OID_BPCHAR = 1042,
    OID_VARCHAR = 1043,
    OID_DATE = 1082,
    OID_TIMESTAMP = 1114,
    OID_TIMESTAMPTZ = 1184,
    OID_NUMERIC = 1700,
    OID_UUID = 2950,
    OID_JSONB = 3802,
};

/* How cursor values of a column compare (the "type" of a position). */
enum pg_class { PC_NONE = 0, PC_INT, PC_NUMERIC, PC_FLOAT, PC_TIME, PC_TEXT };
static const char *const class_name[] = {"", "int", "numeric", "float", "time", "text"};

/*
 * Invariants:
 *   1. conn is NULL or a connection whose session settings and statements (sql_*) match
 *      the query's current result columns; ncur is the cursor column's index in them.
 *   2. have_pos is set exactly when pos (sl_malloc'd) holds the cursor value of the last
 *      row delivered (or restored); pages start after it.
 *   3. retry_at is 0 or the monotonic time (ms) before which no connection is attempted.
 */
struct pg_src {
    const char *name;
    const char *pipeline;
    char *conninfo; /* NULL: PG* environment */
    char *query;    /* trailing ';' and blanks removed */
    char *cursor;   /* cursor_column */
    uint32_t batch_size;
    uint64_t poll_ms;
    int once;
    PGconn *conn;
    int ncur;
    enum pg_class cls;
    char *sql_first, *sql_next, *sql_group; /* built from the column's type at connect */
    char *pos;
    int have_pos;
    uint64_t retry_at, backoff_ms;
    uint64_t next_poll;
    int down_logged;
    struct sl_buf row;
    uint64_t (*seen)[3]; /* emit_rows: id with k = 0 -> occurrences (k of the next) */
    size_t seen_cap;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- cursor values: classes and ordering --------------------------------------------- */

static enum pg_class class_of(Oid t)
{
    switch (t) {
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
        return PC_INT;
    case OID_NUMERIC:
        return PC_NUMERIC;
    case OID_FLOAT4:
    case OID_FLOAT8:
        return PC_FLOAT;
    case OID_DATE:
    case OID_TIMESTAMP:
    case OID_TIMESTAMPTZ:
        return PC_TIME;
    case OID_TEXT:
    case OID_VARCHAR:
    case OID_UUID:
        return PC_TEXT;
    default:
        return PC_NONE;
    }
}

static enum pg_class class_parse(const char *s, size_t n)
{
    for (int c = PC_INT; c <= PC_TEXT; c++)
        if (strlen(class_name[c]) == n && memcmp(class_name[c], s, n) == 0)
            return (enum pg_class)c;
    return PC_NONE;
}

/* Compare two decimal digit strings without sign (integer part, optional fraction). */
static int decimal_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    while (an > 1 && a[0] == '0' && a[1] != '.')
        a++, an--;
    while (bn > 1 && b[0] == '0' && b[1] != '.')
        b++, bn--;
    const char *ad = memchr(a, '.', an), *bd = memchr(b, '.', bn);
    size_t ai = ad ? (size_t)(ad - a) : an, bi = bd ? (size_t)(bd - b) : bn;
    if (ai != bi)
        return ai < bi ? -1 : 1;
    int c = memcmp(a, b, ai);
    if (c)
        return c < 0 ? -1 : 1;
    const char *af = ad ? ad + 1 : "", *bf = bd ? bd + 1 : "";
    size_t afn = ad ? an - ai - 1 : 0, bfn = bd ? bn - bi - 1 : 0;
    for (size_t i = 0; i < afn || i < bfn; i++) {
        char x = i < afn ? af[i] : '0', y = i < bfn ? bf[i] : '0';
        if (x != y)
            return x < y ? -1 : 1;
    }
    return 0;
}

/* Rank of a special value: -1 -Infinity, 0 finite, 1 Infinity, 2 NaN (PostgreSQL's order). */
static int special_rank(const char *s, size_t n)
{
    if (n == 3 && memcmp(s, "NaN", 3) == 0)
        return 2;
    if ((n == 8 && memcmp(s, "Infinity", 8) == 0) || (n == 8 && memcmp(s, "infinity", 8) == 0))
        return 1;
    if ((n == 9 && memcmp(s, "-Infinity", 9) == 0) || (n == 9 && memcmp(s, "-infinity", 9) == 0))
        return -1;
    return 0;
}

static int signed_decimal_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int ra = special_rank(a, an), rb = special_rank(b, bn);
    if (ra || rb)
        return ra == rb ? 0 : ra < rb ? -1 : 1;
    int na = an && a[0] == '-', nb = bn && b[0] == '-';
    if (na != nb)
        return na ? -1 : 1;
    int c = decimal_cmp(a + na, an - (size_t)na, b + nb, bn - (size_t)nb);
    return na ? -c : c;
}

/* RFC 3339 text as this source writes it: date, then "THH:MM:SS", fraction, offset. */
static int time_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int ra = special_rank(a, an), rb = special_rank(b, bn);
    if (ra || rb)
        return ra == rb ? 0 : ra < rb ? -1 : 1;
    size_t head = an < 19 || bn < 19 ? (an < bn ? an : bn) : 19;
    int c = memcmp(a, b, head);
    if (c || head < 19)
        return c < 0 ? -1 : c > 0 ? 1 : an < bn ? -1 : an > bn ? 1 : 0;
    const char *af = a + 19, *bf = b + 19;
    size_t afn = 0, bfn = 0;
    if (an > 19 && *af == '.')
        for (af++; 20 + afn < an && isdigit((unsigned char)af[afn]); afn++)
            ;
    if (bn > 19 && *bf == '.')
        for (bf++; 20 + bfn < bn && isdigit((unsigned char)bf[bfn]); bfn++)
            ;
    for (size_t i = 0; i < afn || i < bfn; i++) {
        char x = i < afn ? af[i] : '0', y = i < bfn ? bf[i] : '0';
        if (x != y)
            return x < y ? -1 : 1;
    }
    return 0;
}

static int value_cmp(enum pg_class cls, const char *a, size_t an, const char *b, size_t bn)
{
    switch (cls) {
    case PC_INT:
    case PC_NUMERIC:
        return signed_decimal_cmp(a, an, b, bn);
    case PC_FLOAT: {
        int ra = special_rank(a, an), rb = special_rank(b, bn);
        if (ra || rb)
            return ra == rb ? 0 : ra < rb ? -1 : 1;
        char x[64], y[64];
        snprintf(x, sizeof x, "%.*s", (int)an, a);
        snprintf(y, sizeof y, "%.*s", (int)bn, b);
        double dx = strtod(x, NULL), dy = strtod(y, NULL);
        return dx < dy ? -1 : dx > dy ? 1 : 0;
    }
    case PC_TIME:
        return time_cmp(a, an, b, bn);
    case PC_TEXT:
    case PC_NONE:
        break;
    }
    size_t n = an < bn ? an : bn;
    int c = memcmp(a, b, n);
    return c < 0 ? -1 : c > 0 ? 1 : an < bn ? -1 : an > bn ? 1 : 0;
}

/* ---- JSON text helpers ----------------------------------------------------------------- */

static sl_rc put_jstr(struct sl_buf *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    sl_rc rc = sl_buf_putc(o, '"');
    size_t run = 0;
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        rc = sl_buf_append(o, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        if (rc == SL_OK && (c == '"' || c == '\\')) {
            char two[2] = {'\\', (char)c};
            rc = sl_buf_append(o, two, 2);
        } else if (rc == SL_OK && c == '\n') {
            rc = sl_buf_append(o, "\\n", 2);
        } else if (rc == SL_OK && c == '\t') {
            rc = sl_buf_append(o, "\\t", 2);
        } else if (rc == SL_OK) {
            rc = sl_buf_append(o, esc, 6);
        }
    }
    if (rc == SL_OK)
        rc = sl_buf_append(o, s + run, n - run);
    return rc ? rc : sl_buf_putc(o, '"');
}

/* Decode a JSON string token at s (s[0] == '"') as put_jstr writes them. NULL on error. */
static char *get_jstr(const char *s, size_t *len, const char **end)
{
    if (*s != '"')
        return NULL;
    size_t cap = 0;
    const char *p = s + 1;
    for (; *p && *p != '"'; p++, cap++)
        if (*p == '\\' && p[1])
            p++;
    if (*p != '"')
        return NULL;
    char *out = sl_malloc(cap + 1), *w = out;
    if (!out)
        return NULL;
    for (p = s + 1; *p != '"'; p++) {
        if (*p != '\\') {
            *w++ = *p;
            continue;
        }
        p++;
        switch (*p) {
        case 'n':
            *w++ = '\n';
            break;
        case 't':
            *w++ = '\t';
            break;
        case 'r':
            *w++ = '\r';
            break;
        case 'b':
            *w++ = '\b';
            break;
        case 'f':
            *w++ = '\f';
            break;
        case 'u': {
            unsigned v = 0;
            for (int k = 1; k <= 4; k++) {
                char h = p[k];
                unsigned d = h >= '0' && h <= '9'   ? (unsigned)(h - '0')
                             : h >= 'a' && h <= 'f' ? (unsigned)(h - 'a' + 10)
                             : h >= 'A' && h <= 'F' ? (unsigned)(h - 'A' + 10)
                                                    : 99u;
                if (d > 15 || v > 0xff) {
                    sl_free(out);
                    return NULL;
                }
                v = v << 4 | d;
            }
            if (v > 0x7f) { /* this source escapes only control characters */
                sl_free(out);
                return NULL;
            }
            *w++ = (char)v;
            p += 4;
            break;
        }
        default:
            *w++ = *p;
        }
    }
    *w = '\0';
    *len = (size_t)(w - out);
    if (end)
        *end = p + 1;
    return out;
}

/* 1 when s[0..n) is a JSON number. */
static int is_json_number(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i >= n || !isdigit((unsigned char)s[i]))
        return 0;
    if (s[i] == '0')
        i++;
    else
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !isdigit((unsigned char)s[i]))
            return 0;
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= n || !isdigit((unsigned char)s[i]))
            return 0;
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
    }
    return i == n;
}

/* Append JSON text without the whitespace between tokens (json may hold newlines). */
static sl_rc put_compact_json(struct sl_buf *o, const char *s, size_t n)
{
    int in_str = 0;
    size_t run = 0;
    sl_rc rc = SL_OK;
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
            continue;
        }
        if (c == '"') {
            in_str = 1;
        } else if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
            rc = sl_buf_append(o, s + run, i - run);
            run = i + 1;
        }
    }
    return rc ? rc : sl_buf_append(o, s + run, n - run);
}

/*
 * PostgreSQL's ISO text of a timestamp ("2024-05-01 12:00:00.5+00") as RFC 3339
 * ("2024-05-01T12:00:00.5Z"); an offset "+05" becomes "+05:00". Anything else (infinity,
 * BC dates) is kept as PostgreSQL wrote it.
 */
static sl_rc put_time(struct sl_buf *o, const char *s, size_t n, int tz)
{
    char out[80];
    size_t w = 0;
    if (n < 19 || n > 40 || s[10] != ' ' || memchr(s, 'B', n))
        return put_jstr(o, s, n);
    memcpy(out, s, n);
    out[10] = 'T';
    w = n;
    if (tz) {
        size_t k = 19;
        while (k < n && s[k] != '+' && s[k] != '-')
            k++;
        if (k < n) {
            const char *off = s + k;
            size_t on = n - k;
            w = k;
            if (on == 3 && memcmp(off, "+00", 3) == 0) {
                out[w++] = 'Z';
            } else if (on == 3) {
                memcpy(out + w, off, 3);
                memcpy(out + w + 3, ":00", 3);
                w += 6;
            } else {
                memcpy(out + w, off, on);
                w += on;
            }
        }
    }
    return put_jstr(o, out, w);
}

/* Append one column value as JSON. */
static sl_rc put_value(struct sl_buf *o, Oid t, const char *v, size_t n)
{
    switch (t) {
    case OID_BOOL:
        return sl_buf_puts(o, v[0] == 't' ? "true" : "false");
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
        return sl_buf_append(o, v, n);
    case OID_FLOAT4:
    case OID_FLOAT8:
    case OID_NUMERIC:
        return is_json_number(v, n) ? sl_buf_append(o, v, n) : put_jstr(o, v, n);
    case OID_JSON:
    case OID_JSONB:
        return put_compact_json(o, v, n);
    case OID_TIMESTAMP:
        return put_time(o, v, n, 0);
    case OID_TIMESTAMPTZ:
        return put_time(o, v, n, 1);
    default:
        return put_jstr(o, v, n);
    }
}

/* ---- positions ------------------------------------------------------------------------ */

/*
 * Split a position {"type":"<class>","cursor":"<text>"} into its class and its decoded
 * cursor value (sl_malloc'd). SL_EPARSE when it is not one this source wrote.
 */
static sl_rc position_parse(const char *p, enum pg_class *cls, char **val, size_t *len)
{
    static const char t0[] = "{\"type\":\"", c0[] = "\",\"cursor\":";
    if (!p || strncmp(p, t0, sizeof t0 - 1) != 0)
        return SL_EPARSE;
    const char *ts = p + sizeof t0 - 1, *te = strchr(ts, '"');
    if (!te || strncmp(te, c0, sizeof c0 - 1) != 0)
        return SL_EPARSE;
    *cls = class_parse(ts, (size_t)(te - ts));
    if (*cls == PC_NONE)
        return SL_EPARSE;
    const char *end;
    *val = get_jstr(te + sizeof c0 - 1, len, &end);
    if (!*val)
        return SL_EPARSE;
    if (strcmp(end, "}") != 0) {
        sl_free(*val);
        *val = NULL;
        return SL_EPARSE;
    }
    return SL_OK;
}

static int pg_position_cmp(void *state, const char *a, const char *b)
{
    (void)state;
    enum pg_class ca, cb;
    char *va = NULL, *vb = NULL;
    size_t la, lb;
    int ok_a = position_parse(a, &ca, &va, &la) == SL_OK;
    int ok_b = position_parse(b, &cb, &vb, &lb) == SL_OK;
    int r;
    if (!ok_a || !ok_b) /* unreadable positions order first: re-reading beats losing */
        r = ok_a == ok_b ? strcmp(a ? a : "", b ? b : "") : ok_a ? 1 : -1;
    else
        r = value_cmp(ca, va, la, vb, lb);
    sl_free(va);
    sl_free(vb);
    return r;
}

/* covers: record i's cursor value (at r->offset in its text) is at or before position. */
static int pg_covers(void *state, const char *position, const struct sl_batch *b, uint32_t i)
{
    (void)state;
    const struct sl_record *r = &b->recs[i];
    enum pg_class cls;
    char *pv = NULL, *rv = NULL;
    size_t pl, rl;
    if (r->offset >= r->text_len || position_parse(position, &cls, &pv, &pl) != SL_OK)
        return 0;
    const char *v = r->text + r->offset;
    int covered = 0;
    if (*v == '"') {
        /* text is NUL-terminated: sources allocate one byte past text_len */
        rv = get_jstr(v, &rl, NULL);
        covered = rv && value_cmp(cls, rv, rl, pv, pl) <= 0;
    } else {
        size_t n = 0;
        while (r->offset + n < r->text_len && v[n] != ',' && v[n] != '}')
            n++;
        covered = value_cmp(cls, v, n, pv, pl) <= 0;
    }
    sl_free(pv);
    sl_free(rv);
    return covered;
}

static sl_rc pg_restore(void *state, const char *position, struct sl_error *err)
{
    struct pg_src *s = state;
    enum pg_class cls;
    char *v;
    size_t n;
    if (position_parse(position, &cls, &v, &n) != SL_OK)
        return sl_error_set(err, SL_ESTATE,
                            "postgres source %s: position %s was not written by this source "
                            "(expected {\"type\":...,\"cursor\":...}); reset the sinks' "
                            "checkpoints with `sluice reset` to read from the start",
                            s->name, position);
    sl_free(s->pos);
    s->pos = v;
    s->have_pos = 1;
    s->cls = cls;
    return SL_OK;
}

/* ---- connection ------------------------------------------------------------------------ */

static void disconnect(struct pg_src *s)
{
    if (s->conn)
        PQfinish(s->conn);
    s->conn = NULL;
    sl_free(s->sql_first);
    sl_free(s->sql_next);
    sl_free(s->sql_group);
    s->sql_first = s->sql_next = s->sql_group = NULL;
}

/* The connection is gone or unusable: log once per outage, schedule the next attempt. */
static sl_rc went_down(struct pg_src *s, const char *what, const char *msg)
{
    char m[512];
    snprintf(m, sizeof m, "%s", msg ? msg : "");
    disconnect(s);
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : PG_BACKOFF_MIN_MS;
    if (s->backoff_ms > PG_BACKOFF_MAX_MS)
        s->backoff_ms = PG_BACKOFF_MAX_MS;
    s->retry_at = now_ms() + s->backoff_ms;
    for (char *c = m; *c; c++)
        if (*c == '\n' || *c == '\t')
            *c = ' ';
    if (!s->down_logged || s->backoff_ms >= PG_BACKOFF_MAX_MS)
        sl_warn(s->name,
                "%s: %s; retrying in %llu ms (the next batch starts where the last one "
                "ended)",
                what, m, (unsigned long long)s->backoff_ms);
    s->down_logged = 1;
    return SL_AGAIN;
}

/* SQLSTATEs a retry can cure: connection exceptions, shutdowns, overload, conflicts. */
static int transient_state(const char *st)
{
    if (!st)
        return 0;
    static const char *const codes[] = {"57P01", "57P02", "57P03", "53300",
                                        "40001", "40P01", "55P03"};
    if (strncmp(st, "08", 2) == 0)
        return 1;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(st, codes[i]) == 0)
            return 1;
    return 0;
}

/*
 * A failed result: SL_AGAIN (after disconnecting) when the connection broke or the error
 * is transient; otherwise the server's message as a fatal error.
 */
static sl_rc query_failed(struct pg_src *s, PGresult *res, const char *what, struct sl_error *err)
{
    const char *stp = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char st_buf[8];
    snprintf(st_buf, sizeof st_buf, "%s", stp ? stp : "");
    const char *st = stp ? st_buf : NULL; /* res is cleared below */
    char msg[1024];
    snprintf(msg, sizeof msg, "%s",
             res && *PQresultErrorMessage(res) ? PQresultErrorMessage(res)
                                               : PQerrorMessage(s->conn));
    size_t ml = strlen(msg);
    while (ml && (msg[ml - 1] == '\n' || msg[ml - 1] == ' '))
        msg[--ml] = '\0';
    int broken = !res || PQstatus(s->conn) == CONNECTION_BAD || transient_state(st);
    PQclear(res);
    if (broken)
        return went_down(s, what, msg);
    return sl_error_set(err, SL_EDB,
                        "postgres source %s: %s failed: %s (SQLSTATE %s); fix the query or "
                        "cursor_column option",
                        s->name, what, msg, st ? st : "?");
}

static char *ident(const char *name)
{
    struct sl_buf b;
    sl_buf_init(&b, 1 << 16);
    sl_rc rc = sl_buf_putc(&b, '"');
    for (const char *c = name; *c && rc == SL_OK; c++)
        rc = *c == '"' ? sl_buf_append(&b, "\"\"", 2) : sl_buf_putc(&b, *c);
    if (rc == SL_OK)
        rc = sl_buf_putc(&b, '"');
    char *out = rc == SL_OK ? sl_strndup(b.data, b.len) : NULL;
    sl_buf_fini(&b);
    return out;
}

/*
 * Learn the query's columns (LIMIT 0), check the cursor column, and build the paging
 * statements for its type.
 */
static sl_rc describe(struct pg_src *s, struct sl_error *err)
{
    char *sql = NULL, *col = ident(s->cursor);
    sl_rc rc = SL_OK;
    if (!col)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    size_t cap = strlen(s->query) + strlen(col) * 2 + 256;
    sql = sl_malloc(cap);
    if (!sql) {
        sl_free(col);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    snprintf(sql, cap, "SELECT * FROM (%s) AS _sluice_q LIMIT 0", s->query);
    PGresult *res = PQexec(s->conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = query_failed(s, res, "the query", err);
        goto out;
    }
    int nf = PQnfields(res);
    s->ncur = -1;
    for (int i = 0; i < nf; i++) {
        const char *fi = PQfname(res, i);
        for (int j = 0; j < i; j++)
            if (strcmp(fi, PQfname(res, j)) == 0) {
                rc = sl_error_set(err, SL_ECONFIG,
                                  "postgres source %s: the query returns two columns named "
                                  "\"%s\"; give one of them another name (AS ...) so each "
                                  "becomes its own field",
                                  s->name, fi);
                PQclear(res);
                goto out;
            }
        if (strcmp(fi, s->cursor) == 0)
            s->ncur = i;
    }
    if (s->ncur < 0) {
        rc = sl_error_set(err, SL_ECONFIG,
                          "postgres source %s: cursor_column \"%s\" is not a column of the "
                          "query's result; select it (names are case-sensitive as the result "
                          "spells them)",
                          s->name, s->cursor);
        PQclear(res);
        goto out;
    }
    Oid t = PQftype(res, s->ncur);
    PQclear(res);
    enum pg_class cls = class_of(t);
    if (cls == PC_NONE) {
        rc = sl_error_set(err, SL_ECONFIG,
                          "postgres source %s: cursor_column \"%s\" has a type (oid %u) that "
                          "cannot serve as a cursor; use an integer, numeric, float, date, "
                          "timestamp, timestamptz, text, varchar or uuid column",
                          s->name, s->cursor, (unsigned)t);
        goto out;
    }
    if (s->have_pos && s->cls != cls) {
        rc = sl_error_set(err, SL_ESTATE,
                          "postgres source %s: the committed position holds a %s cursor but "
                          "cursor_column \"%s\" is now of class %s; reset the sinks' "
                          "checkpoints (`sluice reset`) after changing the cursor",
                          s->name, class_name[s->cls], s->cursor, class_name[cls]);
        goto out;
    }
    s->cls = cls;
    const char *coll = t == OID_TEXT || t == OID_VARCHAR ? " COLLATE \"C\"" : "";
    s->sql_first = sl_malloc(cap);
    s->sql_next = sl_malloc(cap);
    s->sql_group = sl_malloc(cap);
    if (!s->sql_first || !s->sql_next || !s->sql_group) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(s->sql_first, cap,
             "SELECT * FROM (%s) AS _sluice_q WHERE %s IS NOT NULL ORDER BY %s%s LIMIT %u",
             s->query, col, col, coll, s->batch_size);
    snprintf(s->sql_next, cap,
             "SELECT * FROM (%s) AS _sluice_q WHERE %s%s > $1 ORDER BY %s%s "
             "LIMIT %u",
             s->query, col, coll, col, coll, s->batch_size);
    snprintf(s->sql_group, cap, "SELECT * FROM (%s) AS _sluice_q WHERE %s = $1", s->query, col);
out:
    sl_free(sql);
    sl_free(col);
    return rc;
}

static sl_rc connect_now(struct pg_src *s, struct sl_error *err)
{
    /* connect_timeout first: a value in the user's connection string overrides it */
    const char *keys[] = {"connect_timeout", s->conninfo ? "dbname" : NULL, NULL};
    const char *vals[] = {"10", s->conninfo, NULL};
    s->conn = PQconnectdbParams(keys, vals, 1);
    if (!s->conn)
        return sl_error_set(err, SL_ENOMEM, "out of memory creating a connection");
    if (PQstatus(s->conn) != CONNECTION_OK)
        return went_down(s, "cannot connect to PostgreSQL", PQerrorMessage(s->conn));
    PGresult *res = PQexec(s->conn, "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD';"
                                    " SET IntervalStyle = 'iso_8601'; SET extra_float_digits = 1;"
                                    " SET default_transaction_read_only = on");
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return query_failed(s, res, "setting up the session", err);
    PQclear(res);
    sl_rc rc = describe(s, err);
    if (rc) {
        if (rc != SL_AGAIN)
            disconnect(s);
        return rc;
    }
    if (s->down_logged)
        sl_info(s->name, "connected to PostgreSQL again");
    s->down_logged = 0;
    s->backoff_ms = 0;
    s->retry_at = 0;
    return SL_OK;
}

/* ---- rows ------------------------------------------------------------------------------ */

/* Append row i of res to b as a record. */
static sl_rc add_row(struct pg_src *s, PGresult *res, int i, struct sl_batch *b,
                     struct sl_error *err)
{
    struct sl_buf *o = &s->row;
    int nf = PQnfields(res);
    uint64_t cur_at = 0;
    sl_buf_clear(o);
    sl_rc rc = sl_buf_putc(o, '{');
    for (int f = 0; f < nf && rc == SL_OK; f++) {
        if (f)
            rc = sl_buf_putc(o, ',');
        const char *fn = PQfname(res, f);
        if (rc == SL_OK)
            rc = put_jstr(o, fn, strlen(fn));
        if (rc == SL_OK)
            rc = sl_buf_putc(o, ':');
        if (f == s->ncur)
            cur_at = o->len;
        if (rc == SL_OK)
            rc = PQgetisnull(res, i, f) ? sl_buf_puts(o, "null")
                                        : put_value(o, PQftype(res, f), PQgetvalue(res, i, f),
                                                    (size_t)PQgetlength(res, i, f));
    }
    if (rc == SL_OK)
        rc = sl_buf_putc(o, '}');
    if (rc == SL_ELIMIT)
        return sl_error_set(err, rc,
                            "postgres source %s: a row is larger than %zu MiB as JSON; select "
                            "fewer or smaller columns",
                            s->name, PG_ROW_MAX >> 20);
    if (rc)
        return sl_error_set(err, rc, "out of memory");
    struct sl_record *r = sl_batch_add(b);
    char *text = r ? sl_arena_alloc(&b->arena, o->len + 1) : NULL;
    if (!text)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    memcpy(text, o->data, o->len);
    text[o->len] = '\0';
    r->text = r->orig = text;
    r->text_len = r->orig_len = (uint32_t)o->len;
    r->offset = cur_at;
    /*
     * Record id: a hash of (pipeline, source, row text), the text holding the cursor value,
     * then k, the number of earlier rows of this batch with that same hash (identical rows
     * sharing a cursor value).
     */
    uint64_t h[2];
    sl_record_id_base(s->pipeline, s->name, text, h);
    size_t mask = s->seen_cap - 1, j = (size_t)h[0] & mask;
    while (s->seen[j][2] && (s->seen[j][0] != h[0] || s->seen[j][1] != h[1]))
        j = (j + 1) & mask;
    uint64_t k = s->seen[j][2];
    s->seen[j][0] = h[0];
    s->seen[j][1] = h[1];
    s->seen[j][2] = k + 1;
    sl_record_id(h, k, r->id);
    b->bytes += o->len;
    return SL_OK;
}

/* Cursor value of row i as this source writes it in positions (RFC 3339 for times). */
static sl_rc cursor_text(struct pg_src *s, PGresult *res, int i, struct sl_buf *out)
{
    sl_buf_clear(out);
    const char *v = PQgetvalue(res, i, s->ncur);
    size_t n = (size_t)PQgetlength(res, i, s->ncur);
    Oid t = PQftype(res, s->ncur);
    if (t != OID_TIMESTAMP && t != OID_TIMESTAMPTZ)
        return sl_buf_append(out, v, n);
    /* put_time writes a JSON string; keep what is between the quotes (no escapes occur). */
    sl_rc rc = put_time(out, v, n, t == OID_TIMESTAMPTZ);
    if (rc == SL_OK && out->len >= 2) {
        memmove(out->data, out->data + 1, out->len - 2);
        out->len -= 2;
    }
    return rc;
}

/* Emit rows [0, n) of res into b, set the position to row n - 1's cursor. */
static sl_rc emit_rows(struct pg_src *s, PGresult *res, int n, struct sl_batch *b,
                       struct sl_error *err)
{
    struct sl_buf cur;
    sl_rc rc = SL_OK;
    sl_buf_init(&cur, 1 << 20);
    size_t cap = 16;
    while (cap < (size_t)n * 2)
        cap *= 2;
    if (cap > s->seen_cap) {
        sl_free(s->seen);
        s->seen_cap = 0;
        if (!(s->seen = sl_malloc(cap * sizeof *s->seen)))
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        else
            s->seen_cap = cap;
    }
    if (s->seen)
        memset(s->seen, 0, s->seen_cap * sizeof *s->seen);
    for (int i = 0; i < n && rc == SL_OK; i++)
        rc = add_row(s, res, i, b, err);
    if (rc == SL_OK && n > 0) {
        rc = cursor_text(s, res, n - 1, &cur);
        char *pos = rc ? NULL : sl_malloc(cur.len + 1);
        struct sl_buf pj;
        sl_buf_init(&pj, 1 << 21);
        if (pos) {
            memcpy(pos, cur.data, cur.len);
            pos[cur.len] = '\0';
            sl_free(s->pos);
            s->pos = pos;
            s->have_pos = 1;
            rc = sl_buf_printf(&pj, "{\"type\":\"%s\",\"cursor\":", class_name[s->cls]);
            if (rc == SL_OK)
                rc = put_jstr(&pj, cur.data, cur.len);
            if (rc == SL_OK)
                rc = sl_buf_putc(&pj, '}');
            b->position = rc ? NULL : sl_arena_strndup(&b->arena, pj.data, pj.len);
            if (!b->position)
                rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        } else if (!rc) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        }
        sl_buf_fini(&pj);
    }
    sl_buf_fini(&cur);
    b->origin = sl_arena_strdup(&b->arena, s->name);
    return rc;
}

/* 1 when rows i and j of res have equal cursor values (by the column's ordering). */
static int same_cursor(struct pg_src *s, PGresult *res, int i, int j)
{
    return value_cmp(s->cls, PQgetvalue(res, i, s->ncur), (size_t)PQgetlength(res, i, s->ncur),
                     PQgetvalue(res, j, s->ncur), (size_t)PQgetlength(res, j, s->ncur)) == 0;
}

static sl_rc pg_read(void *state, struct sl_batch *b, struct sl_error *err)
{
    struct pg_src *s = state;
    uint64_t now = now_ms();
    if (s->next_poll && now < s->next_poll)
        return SL_AGAIN;
    s->next_poll = 0;
    if (!s->conn) {
        if (s->retry_at && now < s->retry_at)
            return SL_AGAIN;
        sl_rc rc = connect_now(s, err);
        if (rc)
            return rc;
    }
    const char *param[1] = {s->pos};
    PGresult *res = s->have_pos ? PQexecParams(s->conn, s->sql_next, 1, NULL, param, NULL, NULL, 0)
                                : PQexec(s->conn, s->sql_first);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return query_failed(s, res, "reading the next rows", err);
    int n = PQntuples(res);
    if (n == 0) {
        PQclear(res);
        if (s->once)
            return SL_EOF;
        s->next_poll = now_ms() + s->poll_ms;
        return SL_AGAIN;
    }
    int keep = n;
    if ((uint32_t)n >= s->batch_size) {
        /* The page may have cut a group of equal cursor values: hold the group back. */
        while (keep > 0 && same_cursor(s, res, keep - 1, n - 1))
            keep--;
    }
    sl_rc rc;
    if (keep > 0) {
        rc = emit_rows(s, res, keep, b, err);
        PQclear(res);
        if (rc || (uint32_t)n >= s->batch_size)
            return rc;
        /* A short page: nothing more is there now; --once ends, follow waits. */
        if (s->once)
            return SL_EOF;
        s->next_poll = now_ms() + s->poll_ms;
        return SL_OK;
    }
    /* One value fills the page: read all of its rows as one batch. */
    struct sl_buf cur;
    sl_buf_init(&cur, 1 << 20);
    rc = cursor_text(s, res, 0, &cur);
    char *v = rc ? NULL : sl_strndup(cur.data, cur.len);
    sl_buf_fini(&cur);
    PQclear(res);
    if (!v)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    const char *gp[1] = {v};
    res = PQexecParams(s->conn, s->sql_group, 1, NULL, gp, NULL, NULL, 0);
    sl_free(v);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return query_failed(s, res, "reading the rows sharing one cursor value", err);
    rc = emit_rows(s, res, PQntuples(res), b, err);
    PQclear(res);
    return rc;
}

/* ---- lifecycle ------------------------------------------------------------------------- */

static void pg_close(void *state)
{
    struct pg_src *s = state;
    if (!s)
        return;
    disconnect(s);
    sl_buf_fini(&s->row);
    sl_free(s->conninfo);
    sl_free(s->query);
    sl_free(s->cursor);
    sl_free(s->pos);
    sl_free(s->seen);
    sl_free(s);
}

static sl_rc pg_init(const struct sl_plugin_ctx *ctx, void **state, struct sl_error *err)
{
    const struct sl_cfg_node *node = ctx->node;
    const char *conninfo, *query, *cursor;
    int64_t batch;
    uint64_t poll;
    sl_rc rc;
    if ((rc = sl_cfg_get_str(node, "connection", NULL, &conninfo, err)) ||
        (rc = sl_cfg_get_str(node, "query", NULL, &query, err)) ||
        (rc = sl_cfg_get_str(node, "cursor_column", NULL, &cursor, err)) ||
        (rc = sl_cfg_get_int(node, "batch_size", 1000, &batch, err)) ||
        (rc = sl_cfg_get_duration(node, "poll_interval", 1000, &poll, err)))
        return rc;
    if (!query || !*query)
        return sl_cfg_error(err, node, "sources.%s: missing required option query (a SELECT)",
                            ctx->name);
    if (!cursor || !*cursor)
        return sl_cfg_error(err, node,
                            "sources.%s: missing required option cursor_column (an increasing "
                            "column such as an id or updated_at; it is what the checkpoint "
                            "records)",
                            ctx->name);
    if (batch < 1 || batch > PG_BATCH_MAX)
        return sl_cfg_error(err, sl_cfg_get(node, "batch_size"),
                            "sources.%s.batch_size: %lld is outside 1..%d", ctx->name,
                            (long long)batch, PG_BATCH_MAX);
    if (poll < 10)
        return sl_cfg_error(err, sl_cfg_get(node, "poll_interval"),
                            "sources.%s.poll_interval: must be at least 10ms", ctx->name);
    struct pg_src *s = sl_calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    s->name = ctx->name;
    s->pipeline = ctx->pipeline ? ctx->pipeline : "";
    s->batch_size = (uint32_t)batch;
    s->poll_ms = poll;
    s->once = ctx->once;
    s->ncur = -1;
    sl_buf_init(&s->row, PG_ROW_MAX);
    size_t ql = strlen(query);
    while (ql && (query[ql - 1] == ';' || isspace((unsigned char)query[ql - 1])))
        ql--;
    s->query = sl_strndup(query, ql);
    s->cursor = sl_strdup(cursor);
    s->conninfo = conninfo && *conninfo ? sl_strdup(conninfo) : NULL;
    if (!s->query || !s->cursor || (conninfo && *conninfo && !s->conninfo)) {
        pg_close(s);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    if (ql == 0) {
        pg_close(s);
        return sl_cfg_error(err, sl_cfg_get(node, "query"), "sources.%s.query: is empty",
                            ctx->name);
    }
    *state = s;
    return SL_OK;
}

static const struct sl_option pg_options[] = {
    {.name = "connection",
     .type = SL_OPT_STRING,
     .help = "libpq connection string or URI; when absent the PG* environment variables "
             "(PGHOST, PGPORT, PGUSER, PGDATABASE, ...) apply."},
    {.name = "query",
     .type = SL_OPT_STRING,
     .required = 1,
     .help = "A SELECT whose rows become records; it is wrapped to page through it in "
             "cursor_column order."},
    {.name = "cursor_column",
     .type = SL_OPT_STRING,
     .required = 1,
     .help = "Increasing column of the query's result (an id, updated_at); the checkpoint "
             "is its last value delivered."},
    {.name = "batch_size",
     .type = SL_OPT_INT,
     .def = "1000",
     .help = "Rows fetched per query and per batch (rows sharing one cursor value are never "
             "split)."},
    {.name = "poll_interval",
     .type = SL_OPT_DURATION,
     .def = "1s",
     .help = "Without --once: how long to wait before asking again after a query returned "
             "fewer than batch_size rows."},
    {0},
};

const struct sl_plugin sl_source_postgres = {
    .kind = SL_PLUGIN_SOURCE,
    .name = "postgres",
    .description = "Extract a query's rows incrementally from PostgreSQL, resuming after the "
                   "last committed cursor value.",
    .options = pg_options,
    .init = pg_init,
    .restore = pg_restore,
    .read = pg_read,
    .position_cmp = pg_position_cmp,
    .covers = pg_covers,
    .close = pg_close,
};
