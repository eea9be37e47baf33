/*
 * unit.c - quality gates at run time: accumulate a commit unit, then judge it.
 *
 * A unit is what one commit covers on one component: a batch when streaming, the whole
 * run with `run --once` (DESIGN §5). The engine creates one struct sl_quality_unit per
 * component that gates watch, feeds it every batch the component passes on
 * (sl_quality_unit_add), and when the unit is complete asks for the verdict
 * (sl_quality_unit_judge), then resets it for the next unit.
 *
 * Adding keeps only counters per gate, so a unit of any size costs constant memory, with
 * one exception: unique() must remember the values it has seen. It keeps a 64-bit hash of
 * each distinct value in an open-addressing table (8 bytes a slot, at most half full, so
 * 16 to 32 bytes per distinct value), up to the gate's max_distinct (default 1,000,000);
 * past that the gate stops counting and fails with a message saying so. Two different
 * values share a hash with probability about n^2 / 2^65 over n distinct values (3e-8 at a
 * million), which would count one false repeat.
 *
 * The hash of a value is canonical: numbers by value (1, 1.0 and 1e0 are one value;
 * integers beyond 64 bits by their digits), strings by their decoded bytes, objects
 * independent of member order, arrays in order. Containers are read one level at a time
 * with sl_value_materialize; the scratch comes from the batch arena.
 *
 * Threading: a unit belongs to one thread at a time (quality.h). Ownership: the unit owns
 * its counters and hash tables (heap, freed by destroy); it points at the immutable gates
 * of its sl_quality, which must outlive it.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sluice/alloc.h"
#include "sluice/json.h"

#include "quality/quality_internal.h"

/*
 * What one gate has seen in the current unit.
 *
 * Invariants:
 *   1. hits <= rows (the unit's live records added so far).
 *   2. set is NULL or has cap slots, cap a power of two, used < cap / 2; slot value 0
 *      means empty (a hash that is 0 is stored as 1).
 *   3. overflow is set once used would exceed the gate's max_distinct; from then on the
 *      table is not touched.
 */
struct gate_state {
    const struct sl__gate *g;
    uint64_t hits;    /* null_rate: missing or null; accepted: not accepted; ratio: truthy;
                         unique: repeats */
    uint64_t errors;  /* ratio: records the expression could not be evaluated on */
    uint64_t stamped; /* freshness: records with a timestamp */
    double newest;    /* freshness: the newest timestamp, seconds since the epoch */
    uint64_t *set;    /* unique: invariant 2 */
    size_t cap, used;
    int overflow;
};

struct sl_quality_unit {
    const struct sl_quality *q;
    uint32_t comp;
    uint64_t rows;
    size_t n;
    struct gate_state *st;
};

sl_rc sl_quality_unit_create(const struct sl_quality *q, uint32_t comp,
                             struct sl_quality_unit **out)
{
    struct sl_quality_unit *u = sl_calloc(1, sizeof *u);
    if (!u)
        return SL_ENOMEM;
    u->q = q;
    u->comp = comp;
    u->n = sl_quality_count_on(q, comp);
    u->st = sl_calloc(u->n ? u->n : 1, sizeof *u->st);
    if (!u->st) {
        sl_free(u);
        return SL_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; q && i < q->n; i++)
        if (q->gates[i].comp == comp)
            u->st[k++].g = &q->gates[i];
    *out = u;
    return SL_OK;
}

void sl_quality_unit_destroy(struct sl_quality_unit *u)
{
    if (!u)
        return;
    for (size_t i = 0; i < u->n; i++)
        sl_free(u->st[i].set);
    sl_free(u->st);
    sl_free(u);
}

void sl_quality_unit_reset(struct sl_quality_unit *u)
{
    u->rows = 0;
    for (size_t i = 0; i < u->n; i++) {
        struct gate_state *s = &u->st[i];
        s->hits = s->errors = s->stamped = 0;
        s->newest = 0;
        s->used = 0;
        s->overflow = 0;
        if (s->set)
            memset(s->set, 0, s->cap * sizeof *s->set);
    }
}

/* ---- canonical value hashes ----------------------------------------------------------- */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 31;
    x *= 0x7FB5D329728EA185ull;
    x ^= x >> 27;
    x *= 0x81DADEF4BC2DD44Dull;
    x ^= x >> 33;
    return x;
}

static uint64_t step(uint64_t h, uint64_t w)
{
    return mix(h ^ (w + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2)));
}

static uint64_t hash_bytes(uint64_t h, const char *s, size_t n)
{
    h = step(h, n);
    for (size_t i = 0; i < n; i += 8) {
        uint64_t w = 0;
        size_t k = n - i < 8 ? n - i : 8;
        memcpy(&w, s + i, k);
        h = step(h, w);
    }
    return h;
}

enum { T_NULL = 1, T_FALSE, T_TRUE, T_INT, T_DOUBLE, T_BIGINT, T_STRING, T_ARRAY, T_OBJECT };

static sl_rc hash_value(const struct sl_value *v, struct sl_arena *a, uint64_t *out)
{
    uint64_t h = 0x51D1CE0000000000ull;
    switch (v->type) {
    case SL_V_NULL:
        *out = step(h, T_NULL);
        return SL_OK;
    case SL_V_BOOL:
        *out = step(h, v->u.b ? T_TRUE : T_FALSE);
        return SL_OK;
    case SL_V_NUMBER: {
        int64_t i;
        double d = v->u.num.d;
        const char *t = v->u.num.text;
        if (t && sl_json_num_to_i64(t, v->len, &i)) {
            *out = step(step(h, T_INT), (uint64_t)i);
        } else if (t && !memchr(t, '.', v->len) && !memchr(t, 'e', v->len) &&
                   !memchr(t, 'E', v->len)) {
            /* An integer beyond 64 bits: its digits, not a rounded double. */
            *out = hash_bytes(step(h, T_BIGINT), v->u.num.text, v->len);
        } else if (d == floor(d) && d >= -9.2e18 && d <= 9.2e18) {
            *out = step(step(h, T_INT), (uint64_t)(int64_t)d);
        } else {
            uint64_t bits;
            memcpy(&bits, &d, sizeof bits);
            *out = step(step(h, T_DOUBLE), bits);
        }
        return SL_OK;
    }
    case SL_V_STRING:
        *out = hash_bytes(step(h, T_STRING), v->u.str, v->len);
        return SL_OK;
    default:
        break;
    }
    struct sl_value m;
    sl_rc rc = sl_value_materialize(v, a, &m);
    if (rc)
        return rc;
    if (m.type == SL_V_ARRAY) {
        h = step(step(h, T_ARRAY), m.len);
        for (uint32_t k = 0; k < m.len; k++) {
            uint64_t e;
            if ((rc = hash_value(&m.u.items[k], a, &e)))
                return rc;
            h = step(h, e);
        }
        *out = h;
        return SL_OK;
    }
    /* Objects: a sum of per-member hashes, so member order does not matter. */
    uint64_t sum = 0;
    for (uint32_t k = 0; k < m.len; k++) {
        uint64_t e;
        if ((rc = hash_value(&m.u.members[k].val, a, &e)))
            return rc;
        sum += step(hash_bytes(T_STRING, m.u.members[k].key, m.u.members[k].klen), e);
    }
    *out = step(step(step(h, T_OBJECT), m.len), sum);
    return SL_OK;
}

/* Insert hash x; *seen = 1 when it was there already. SL_OK, SL_ENOMEM. */
static sl_rc set_insert(struct gate_state *s, uint64_t x, int *seen)
{
    x = x ? x : 1;
    if (!s->set || (s->used + 1) * 2 > s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 1024;
        uint64_t *ns = sl_calloc(ncap, sizeof *ns);
        if (!ns)
            return SL_ENOMEM;
        for (size_t i = 0; i < s->cap; i++)
            if (s->set[i]) {
                size_t j = (size_t)mix(s->set[i]) & (ncap - 1);
                while (ns[j])
                    j = (j + 1) & (ncap - 1);
                ns[j] = s->set[i];
            }
        sl_free(s->set);
        s->set = ns;
        s->cap = ncap;
    }
    size_t j = (size_t)mix(x) & (s->cap - 1);
    while (s->set[j]) {
        if (s->set[j] == x) {
            *seen = 1;
            return SL_OK;
        }
        j = (j + 1) & (s->cap - 1);
    }
    s->set[j] = x;
    s->used++;
    *seen = 0;
    return SL_OK;
}

/* ---- timestamps --------------------------------------------------------------------- */

static int digits(const char *s, size_t n, size_t at, size_t count, int *out)
{
    if (at + count > n)
        return -1;
    int v = 0;
    for (size_t i = at; i < at + count; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int sl__quality_rfc3339(const char *s, size_t n, double *out)
{
    int y, mo, d, h, mi, se;
    if (digits(s, n, 0, 4, &y) || n < 19 || s[4] != '-' || digits(s, n, 5, 2, &mo) || s[7] != '-' ||
        digits(s, n, 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s, n, 11, 2, &h) || s[13] != ':' || digits(s, n, 14, 2, &mi) || s[16] != ':' ||
        digits(s, n, 17, 2, &se))
        return -1;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) ||
        h > 23 || mi > 59 || se > 60)
        return -1;
    size_t i = 19;
    double frac = 0;
    if (i < n && s[i] == '.') {
        double scale = 0.1;
        size_t j = ++i;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, scale /= 10)
            frac += (s[i] - '0') * scale;
        if (i == j)
            return -1;
    }
    int off = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        int oh, om;
        if (digits(s, n, i + 1, 2, &oh) || i + 3 >= n || s[i + 3] != ':' ||
            digits(s, n, i + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        off = (oh * 60 + om) * 60 * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return -1;
    }
    if (i != n)
        return -1;
    int64_t days = days_from_civil(y, mo, d);
    *out = (double)(days * 86400 + h * 3600 + mi * 60 + se - off) + frac;
    return 0;
}

/* ---- adding records ------------------------------------------------------------------- */

static int accepted(const struct sl__gate *g, const struct sl_value *v)
{
    for (size_t i = 0; i < g->naccepted; i++) {
        const struct sl_value *a = &g->accepted[i];
        if (a->type != v->type)
            continue;
        switch (v->type) {
        case SL_V_NULL:
            return 1;
        case SL_V_BOOL:
            if (!a->u.b == !v->u.b)
                return 1;
            break;
        case SL_V_NUMBER:
            if (a->u.num.d == v->u.num.d)
                return 1;
            break;
        case SL_V_STRING:
            if (a->len == v->len && memcmp(a->u.str, v->u.str, v->len) == 0)
                return 1;
            break;
        default:
            break;
        }
    }
    return 0;
}

static sl_rc add_record(struct gate_state *s, struct sl_record *r, struct sl_arena *a)
{
    const struct sl__gate *g = s->g;
    struct sl_value v;
    int have = 0;
    if (g->kind != SL__CHECK_ROW_COUNT && g->kind != SL__CHECK_RATIO)
        have = sl_record_get(r, &g->path, a, &v);
    switch (g->kind) {
    case SL__CHECK_ROW_COUNT:
        return SL_OK;
    case SL__CHECK_NULL_RATE:
        s->hits += !have || v.type == SL_V_NULL;
        return SL_OK;
    case SL__CHECK_ACCEPTED:
        if (!have)
            v = sl_value_null();
        s->hits += !accepted(g, &v);
        return SL_OK;
    case SL__CHECK_UNIQUE: {
        if (!have || v.type == SL_V_NULL || s->overflow)
            return SL_OK;
        uint64_t h;
        sl_rc rc = hash_value(&v, a, &h);
        if (rc)
            return rc;
        if (s->used >= g->max_distinct) {
            /* Full: a value already seen is still a repeat; a new one cannot be kept. */
            size_t j = (size_t)mix(h ? h : 1) & (s->cap - 1);
            while (s->set[j] && s->set[j] != (h ? h : 1))
                j = (j + 1) & (s->cap - 1);
            if (s->set[j])
                s->hits++;
            else
                s->overflow = 1;
            return SL_OK;
        }
        int seen = 0;
        if ((rc = set_insert(s, h, &seen)))
            return rc;
        s->hits += seen;
        return SL_OK;
    }
    case SL__CHECK_FRESHNESS: {
        double t;
        if (!have)
            return SL_OK;
        if (v.type == SL_V_NUMBER)
            t = v.u.num.d;
        else if (v.type != SL_V_STRING || sl__quality_rfc3339(v.u.str, v.len, &t))
            return SL_OK;
        if (!s->stamped || t > s->newest)
            s->newest = t;
        s->stamped++;
        return SL_OK;
    }
    case SL__CHECK_RATIO: {
        struct sl_error e;
        int truth = 0;
        sl_rc rc = sl_expr_test(g->expr, r, a, &truth, &e);
        if (rc == SL_ENOMEM)
            return rc;
        if (rc)
            s->errors++;
        else
            s->hits += truth != 0;
        return SL_OK;
    }
    }
    return SL_OK;
}

sl_rc sl_quality_unit_add(struct sl_quality_unit *u, struct sl_batch *b)
{
    for (uint32_t i = 0; i < b->n; i++) {
        struct sl_record *r = &b->recs[i];
        if ((r->flags & (SL_REC_DROPPED | SL_REC_BAD)) || !(r->flags & SL_REC_PARSED))
            continue;
        u->rows++;
        for (size_t k = 0; k < u->n; k++) {
            sl_rc rc = add_record(&u->st[k], r, &b->arena);
            if (rc)
                return rc;
        }
    }
    return SL_OK;
}

/* ---- judging -------------------------------------------------------------------------- */

/* ", min 0.5, max 1" style bounds into out. */
static void bounds_text(const struct sl__gate *g, const char *unit, char *out, size_t cap)
{
    if (g->has_min && g->has_max)
        snprintf(out, cap, "min %g%s, max %g%s", g->min, unit, g->max, unit);
    else if (g->has_min)
        snprintf(out, cap, "min %g%s", g->min, unit);
    else
        snprintf(out, cap, "max %g%s", g->max, unit);
}

static void judge_gate(const struct sl_quality_unit *u, const struct gate_state *s, uint64_t now_ns,
                       struct sl_gate_result *res)
{
    const struct sl__gate *g = s->g;
    uint64_t rows = u->rows;
    char bounds[96];
    bounds_text(g, g->kind == SL__CHECK_FRESHNESS ? " s" : "", bounds, sizeof bounds);
    memset(res, 0, sizeof *res);
    res->gate = g->name;
    res->check = g->check;
    res->has_min = g->has_min;
    res->has_max = g->has_max;
    res->min = g->min;
    res->max = g->max;
    res->action = g->action;
    res->value = NAN;
    int undefined = 0;
    switch (g->kind) {
    case SL__CHECK_ROW_COUNT:
        res->value = (double)rows;
        snprintf(res->message, sizeof res->message, "%s = %llu; %s", g->check,
                 (unsigned long long)rows, bounds);
        break;
    case SL__CHECK_NULL_RATE:
    case SL__CHECK_ACCEPTED:
    case SL__CHECK_RATIO: {
        if (!rows) {
            undefined = 1;
            snprintf(res->message, sizeof res->message, "%s: no records in the unit; %s", g->check,
                     bounds);
            break;
        }
        res->value = (double)s->hits / (double)rows;
        const char *what = g->kind == SL__CHECK_NULL_RATE  ? "missing or null"
                           : g->kind == SL__CHECK_ACCEPTED ? "not accepted"
                                                           : "true";
        int n = snprintf(res->message, sizeof res->message, "%s = %.6g (%llu of %llu records %s",
                         g->check, res->value, (unsigned long long)s->hits,
                         (unsigned long long)rows, what);
        if (s->errors && n > 0 && (size_t)n < sizeof res->message)
            n += snprintf(res->message + n, sizeof res->message - (size_t)n,
                          ", %llu could not be evaluated", (unsigned long long)s->errors);
        if (n > 0 && (size_t)n < sizeof res->message)
            snprintf(res->message + n, sizeof res->message - (size_t)n, "); %s", bounds);
        break;
    }
    case SL__CHECK_UNIQUE:
        if (s->overflow) {
            snprintf(res->message, sizeof res->message,
                     "%s: more than %llu distinct values in one unit, the most this gate "
                     "remembers; raise max_distinct (16-32 bytes of memory per value)",
                     g->check, (unsigned long long)g->max_distinct);
            res->value = (double)s->hits;
            res->passed = 0;
            return;
        }
        res->value = (double)s->hits;
        snprintf(res->message, sizeof res->message,
                 "%s = %llu repeated values over %llu records; %s", g->check,
                 (unsigned long long)s->hits, (unsigned long long)rows, bounds);
        break;
    case SL__CHECK_FRESHNESS: {
        if (!s->stamped) {
            snprintf(res->message, sizeof res->message,
                     "%s: none of %llu records has a timestamp in %s (an RFC 3339 string or "
                     "epoch seconds)",
                     g->check, (unsigned long long)rows, g->path.text);
            res->passed = 0;
            return;
        }
        res->value = (double)now_ns / 1e9 - s->newest;
        char when[40] = "";
        time_t t = (time_t)floor(s->newest);
        struct tm tm;
        if (gmtime_r(&t, &tm))
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        snprintf(res->message, sizeof res->message,
                 "%s = %.0f s (newest %s, %llu of %llu records with a timestamp); %s", g->check,
                 res->value, when, (unsigned long long)s->stamped, (unsigned long long)rows,
                 bounds);
        break;
    }
    }
    if (undefined) {
        res->passed = 1;
        return;
    }
    res->passed = (!g->has_min || res->value >= g->min) && (!g->has_max || res->value <= g->max);
}

enum sl_gate_action sl_quality_unit_judge(struct sl_quality_unit *u, uint64_t now_ns,
                                          sl_gate_result_fn fn, void *ctx)
{
    enum sl_gate_action worst = SL_GATE_PASS;
    for (size_t k = 0; k < u->n; k++) {
        struct sl_gate_result res;
        judge_gate(u, &u->st[k], now_ns, &res);
        if (!res.passed && res.action > worst)
            worst = res.action;
        if (fn)
            fn(ctx, &res);
    }
    return worst;
}

const char *sl_gate_action_name(enum sl_gate_action a)
{
    switch (a) {
    case SL_GATE_PASS:
        return "pass";
    case SL_GATE_WARN:
        return "warn";
    case SL_GATE_QUARANTINE:
        return "quarantine";
    case SL_GATE_FAIL:
        return "fail";
    }
    return "unknown";
}

/* ---- summaries ------------------------------------------------------------------------ */

void sl_gate_summary_init(struct sl_gate_summary *s)
{
    memset(s, 0, sizeof *s);
}

/* Append text to a fixed buffer; when it does not fit, end the buffer with "...". */
static void append(char *buf, size_t cap, const char *sep, const char *text)
{
    size_t len = strlen(buf);
    if (len >= 3 && strcmp(buf + len - 3, "...") == 0)
        return;
    size_t need = (len ? strlen(sep) : 0) + strlen(text);
    if (len + need < cap) {
        snprintf(buf + len, cap - len, "%s%s", len ? sep : "", text);
        return;
    }
    size_t keep = cap - 4;
    if (len < keep)
        snprintf(buf + len, cap - len, "%s%.*s", len ? sep : "", (int)(keep - len), text);
    memcpy(buf + keep, "...", 4);
}

void sl_gate_summary_add(void *ctx, const struct sl_gate_result *r)
{
    struct sl_gate_summary *s = ctx;
    if (r->passed)
        return;
    s->failed++;
    if (r->action == SL_GATE_WARN)
        s->warned++;
    if (r->action > s->action)
        s->action = r->action;
    append(s->gates, sizeof s->gates, ", ", r->gate);
    char line[320];
    snprintf(line, sizeof line, "%s: %s", r->gate, r->message);
    append(s->reason, sizeof s->reason, "\n", line);
}
