/*
 * cron.c - 5-field cron expressions, evaluated in a time zone (see cron.h).
 *
 * What it does. sl_cron_parse() compiles an expression into one bit mask per field (bit i
 * set = value i matches) and loads the time zone; sl_cron_next() and sl_cron_prev() then
 * search wall-clock ("civil") time for the nearest matching minute and convert it to a
 * Unix time. The orchestrator asks for the next firing of a schedule, and a backfill asks
 * for thousands of consecutive ones, so both directions step by field, never minute by
 * minute: a month not in the month mask is skipped whole, then a day, then an hour, and
 * the minute comes from the mask with one bit scan. A search costs a few dozen steps; an
 * expression that can never fire ("0 0 30 2 *") costs one step per year of the horizon.
 *
 * Syntax accepted (per field; errors name the field and the offending text):
 *
 *     *            every value             a-b     a range, a <= b (no wrap-around)
 *     n            one value               a-b/s   every s-th value from a to b
 *     *\/s          every s-th from the min  a/s     every s-th value from a to the max
 *     x,y,...      a list of the above     names   jan..dec, sun..sat (any case)
 *
 * Day-of-week takes 0-7 (0 and 7 are Sunday); a range ending in Sunday may be written
 * "fri-sun" or "5-7". A step must lie in 1..(size of the field). Six fields (seconds or
 * years), empty fields or list items, '?', 'L', 'W' and '#' are errors.
 *
 * The day rule. A day matches when the day-of-month and day-of-week masks both match, or,
 * when both fields are restricted, when either does. As in the classic cron, a field is
 * unrestricted when its text starts with '*' ("*" or "*\/2"): "0 0 *\/2 * 1" means odd
 * days that are Mondays, while "0 0 1,15 * 1" means the 1st, the 15th and every Monday.
 *
 * Time zones. A schedule's wall clock is read in an IANA zone. glibc converts times only
 * in the process-wide zone (TZ), so the alternative to reading the zone ourselves is to
 * change TZ under a mutex around every conversion: that races with every other thread that
 * reads the environment or the local time (the logger's callers, SQLite, libcurl, user
 * Lua), and costs a tzset() per call. We read the compiled zone file instead (TZif, RFC
 * 8536) once, at parse time: the 64-bit transition table of version 2+ files (version 1's
 * 32-bit table when that is all there is) and the POSIX TZ string in the footer, which
 * extends the table past its last transition (Debian's "fat" files end in 2037; "slim"
 * ones much earlier). The result is immutable, so a compiled expression is safe to use
 * from any number of threads. Leap-second records ("right/" zones) are ignored. The zone
 * directory is $TZDIR when set, else /usr/share/zoneinfo (Debian package tzdata).
 *
 * Converting wall clock to Unix time. Let off(t) be the UTC offset at instant t. A civil
 * time c exists at each t with t + off(t) = c: none inside a spring-forward gap, two
 * inside a fall-back overlap. The offsets to try are those in force a little over a day
 * before and after c and at c itself (offsets lie within +-26 h); each is kept when it
 * reproduces c. That is exact as long as a zone changes its offset at most once within
 * 28 hours of c, which holds for every zone in tzdata today. Firing times are the first
 * such t of each matching c ("first(c)"); first() is strictly increasing in c, which is
 * what makes the searches below correct:
 *
 *   next(after): every c with first(c) > after lies after local(after), so walk matching
 *   civil minutes upward from local(after) + 1 min and return the first c that exists
 *   and whose first(c) > after (only a c repeated by a fall-back can fail the second test:
 *   its first occurrence has already passed, and it fires once).
 *
 *   prev(at): walk matching civil minutes downward from local(at) to the last c that
 *   exists; first(c) <= at. During a fall-back overlap, civil minutes later than local(at)
 *   may have fired already (the first pass through the repeated hour), so continue with
 *   next() while it stays <= at.
 *
 * Horizon. A search covers 400 years of civil time. The Gregorian calendar repeats every
 * 400 years (146097 days, a whole number of weeks), so in UTC -1 means "never fires"; in a
 * zone it can also mean that every match falls in a gap. Arguments and results outside
 * years 1..9999 give -1.
 *
 * Ownership. struct sl_cron owns its zone (one sl_malloc'd block); sl_cron_free frees it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "sluice/alloc.h"
#include "sluice/cron.h"

#define CRON_HORIZON_YEARS 400
#define CRON_MIN_T (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define CRON_MAX_T 253402300799LL   /* 9999-12-31T23:59:59Z */
#define ZONE_FILE_MAX (1 << 20)
#define ZONE_MAX_OFFSET (26 * 3600)

/* ---- civil calendar ----------------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Days since 1970-01-01 of the proleptic Gregorian date y-m-d (era arithmetic: 400-year
 * cycles starting in March, so that the leap day is the last day of a cycle's year). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t mp = (m + 9) % 12; /* March = 0 */
    int64_t doy = (153 * mp + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* 0 = Sunday. 1970-01-01 was a Thursday. */
static int weekday(int64_t days)
{
    return (int)(((days % 7) + 11) % 7);
}

/* A civil minute. Searches let d run to 0 or past the month's end, and h or mi to -1 or
 * 24/60, as "step to the neighbouring unit"; the search loops normalize. */
struct civ {
    int64_t y;
    int mo, d, h, mi;
};

static struct civ civ_from_secs(int64_t s)
{
    struct civ c;
    int64_t days = floor_div(s, 86400);
    int64_t rem = s - days * 86400;
    civil_from_days(days, &c.y, &c.mo, &c.d);
    c.h = (int)(rem / 3600);
    c.mi = (int)(rem % 3600 / 60);
    return c;
}

static int64_t civ_to_secs(const struct civ *c)
{
    return days_from_civil(c->y, c->mo, c->d) * 86400 + c->h * 3600 + c->mi * 60;
}

/* ---- time zones (TZif, RFC 8536) ------------------------------------------------------- */

/* A POSIX TZ rule date: Jn (julian, 1..365, Feb 29 never counted), n (0..365, counted),
 * or Mm.w.d (day d of week w of month m; w = 5 is the last). secs is the local time of
 * day of the change, -167 h .. 167 h. */
struct tz_date {
    char kind; /* 'J', 'N' or 'M' */
    int n, m, w, d;
    int32_t secs;
};

struct tz_rule {
    int32_t std_off; /* UTC offset of standard time, seconds east */
    int32_t dst_off;
    int has_dst;
    struct tz_date start, end;
};

/*
 * A loaded zone. Invariants:
 *   1. trans[] is strictly increasing; idx[i] < ntypes for i < ntrans.
 *   2. ntypes >= 1; |off[i]| <= ZONE_MAX_OFFSET.
 *   3. has_rule: instants >= trans[ntrans - 1] (all instants when ntrans == 0) follow
 *      rule; otherwise they keep the last transition's type (type 0 when none).
 */
struct tz_zone {
    int64_t *trans;
    uint8_t *idx;
    int32_t *off;
    uint32_t ntrans, ntypes;
    int has_rule;
    struct tz_rule rule;
};

/* Local day number (days since the epoch) of a rule date in year y. */
static int64_t tz_date_day(const struct tz_date *t, int64_t y)
{
    int64_t jan1 = days_from_civil(y, 1, 1);
    switch (t->kind) {
    case 'J': {
        int64_t doy = t->n - 1;
        if (is_leap(y) && t->n >= 60)
            doy++;
        return jan1 + doy;
    }
    case 'N':
        return jan1 + t->n;
    default: {
        int64_t first = days_from_civil(y, t->m, 1);
        int64_t day = first + ((t->d - weekday(first)) + 7) % 7 + (int64_t)(t->w - 1) * 7;
        int64_t last = first + days_in_month(y, t->m) - 1;
        while (day > last)
            day -= 7;
        return day;
    }
    }
}

static int32_t tz_rule_offset(const struct tz_rule *r, int64_t t)
{
    if (!r->has_dst)
        return r->std_off;
    int64_t y;
    int m, d;
    civil_from_days(floor_div(t + r->std_off, 86400), &y, &m, &d);
    int64_t start = tz_date_day(&r->start, y) * 86400 + r->start.secs - r->std_off;
    int64_t end = tz_date_day(&r->end, y) * 86400 + r->end.secs - r->dst_off;
    int in_dst = start < end ? (t >= start && t < end) : !(t >= end && t < start);
    return in_dst ? r->dst_off : r->std_off;
}

/* UTC offset (seconds east) at instant t; zone NULL is UTC. */
static int32_t zone_offset(const struct tz_zone *z, int64_t t)
{
    if (!z)
        return 0;
    if (z->ntrans == 0 || t < z->trans[0])
        return z->has_rule && z->ntrans == 0 ? tz_rule_offset(&z->rule, t) : z->off[0];
    if (t >= z->trans[z->ntrans - 1]) {
        if (z->has_rule)
            return tz_rule_offset(&z->rule, t);
        return z->off[z->idx[z->ntrans - 1]];
    }
    uint32_t lo = 0, hi = z->ntrans - 1; /* trans[lo] <= t < trans[hi] */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (z->trans[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return z->off[z->idx[lo]];
}

/* The first instant whose local time is civil seconds c, or 0 when c falls in a gap. */
static int zone_first(const struct tz_zone *z, int64_t c, int64_t *out)
{
    if (!z) {
        *out = c;
        return 1;
    }
    int32_t cand[3] = {zone_offset(z, c - 28 * 3600), zone_offset(z, c),
                       zone_offset(z, c + 28 * 3600)};
    int found = 0;
    int64_t best = 0;
    for (int i = 0; i < 3; i++) {
        int64_t t = c - cand[i];
        if (zone_offset(z, t) == cand[i] && (!found || t < best)) {
            best = t;
            found = 1;
        }
    }
    *out = best;
    return found;
}

/* -- the POSIX TZ string of the footer -- */

static const char *tz_parse_name(const char *p)
{
    if (*p == '<') {
        const char *q = strchr(p, '>');
        return q && q - p >= 2 ? q + 1 : NULL;
    }
    const char *q = p;
    while ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z'))
        q++;
    return q - p >= 3 ? q : NULL;
}

/* [+-]hh[:mm[:ss]] with hh <= max_h; into *secs (sign applied). */
static const char *tz_parse_time(const char *p, int max_h, int32_t *secs)
{
    int sign = 1;
    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    int part[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        if (i > 0) {
            if (*p != ':')
                break;
            p++;
        }
        if (*p < '0' || *p > '9')
            return NULL;
        int v = 0, n = 0;
        while (*p >= '0' && *p <= '9' && n < 4) {
            v = v * 10 + (*p++ - '0');
            n++;
        }
        if ((i == 0 && v > max_h) || (i > 0 && v > 59))
            return NULL;
        part[i] = v;
    }
    *secs = sign * (part[0] * 3600 + part[1] * 60 + part[2]);
    return p;
}

static const char *tz_parse_num(const char *p, int lo, int hi, int *out)
{
    if (*p < '0' || *p > '9')
        return NULL;
    int v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p++ - '0');
        if (v > hi)
            return NULL;
    }
    if (v < lo)
        return NULL;
    *out = v;
    return p;
}

static const char *tz_parse_date(const char *p, struct tz_date *t)
{
    memset(t, 0, sizeof *t);
    if (*p == 'J') {
        t->kind = 'J';
        p = tz_parse_num(p + 1, 1, 365, &t->n);
    } else if (*p == 'M') {
        t->kind = 'M';
        p = tz_parse_num(p + 1, 1, 12, &t->m);
        if (p && *p == '.')
            p = tz_parse_num(p + 1, 1, 5, &t->w);
        else
            p = NULL;
        if (p && *p == '.')
            p = tz_parse_num(p + 1, 0, 6, &t->d);
        else
            p = NULL;
    } else {
        t->kind = 'N';
        p = tz_parse_num(p, 0, 365, &t->n);
    }
    if (!p)
        return NULL;
    t->secs = 2 * 3600;
    if (*p == '/')
        p = tz_parse_time(p + 1, 167, &t->secs);
    return p;
}

/* Parse a POSIX TZ string ("CET-1CEST,M3.5.0,M10.5.0/3"). 0 on success. */
static int tz_parse_rule(const char *s, struct tz_rule *r)
{
    memset(r, 0, sizeof *r);
    const char *p = tz_parse_name(s);
    int32_t v;
    if (!p || !(p = tz_parse_time(p, 24, &v)))
        return -1;
    r->std_off = -v; /* POSIX offsets count west of Greenwich */
    if (!*p)
        return 0;
    if (!(p = tz_parse_name(p)))
        return -1;
    r->has_dst = 1;
    r->dst_off = r->std_off + 3600;
    if (*p && *p != ',') {
        if (!(p = tz_parse_time(p, 24, &v)))
            return -1;
        r->dst_off = -v;
    }
    if (!*p) {
        /* POSIX leaves the default rule to the implementation; the US rule is the usual. */
        r->start = (struct tz_date){.kind = 'M', .m = 3, .w = 2, .d = 0, .secs = 7200};
        r->end = (struct tz_date){.kind = 'M', .m = 11, .w = 1, .d = 0, .secs = 7200};
        return 0;
    }
    if (*p != ',' || !(p = tz_parse_date(p + 1, &r->start)))
        return -1;
    if (*p != ',' || !(p = tz_parse_date(p + 1, &r->end)))
        return -1;
    return *p ? -1 : 0;
}

/* -- the binary file -- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct tzif_counts {
    uint32_t isut, isstd, leap, time, type, chars;
};

/* Read a header at p (n bytes left). Returns the data block's size or 0 when malformed. */
static size_t tzif_header(const unsigned char *p, size_t n, int wide, struct tzif_counts *k)
{
    if (n < 44 || memcmp(p, "TZif", 4) != 0)
        return 0;
    k->isut = be32(p + 20);
    k->isstd = be32(p + 24);
    k->leap = be32(p + 28);
    k->time = be32(p + 32);
    k->type = be32(p + 36);
    k->chars = be32(p + 40);
    if (k->type == 0 || k->type > 256 || k->time > 100000 || k->leap > 100000 ||
        k->chars > 100000 || (k->isut && k->isut != k->type) || (k->isstd && k->isstd != k->type))
        return 0;
    size_t tsz = wide ? 8 : 4;
    size_t data = (size_t)k->time * (tsz + 1) + (size_t)k->type * 6 + k->chars +
                  (size_t)k->leap * (tsz + 4) + k->isstd + k->isut;
    return 44 + data <= n ? data : 0;
}

static int zone_load_bytes(const unsigned char *buf, size_t n, struct tz_zone **out)
{
    struct tzif_counts k;
    size_t data = tzif_header(buf, n, 0, &k);
    if (!data)
        return -1;
    const unsigned char *p = buf + 44;
    int wide = 0;
    const char *footer = NULL;
    size_t footer_len = 0;
    if (buf[4] >= '2') {
        const unsigned char *h2 = p + data;
        size_t data2 = tzif_header(h2, n - (size_t)(h2 - buf), 1, &k);
        if (!data2)
            return -1;
        p = h2 + 44;
        wide = 1;
        const unsigned char *f = p + data2, *end = buf + n;
        if (f < end && *f == '\n') {
            const unsigned char *nl = memchr(f + 1, '\n', (size_t)(end - f - 1));
            if (!nl)
                return -1;
            footer = (const char *)f + 1;
            footer_len = (size_t)(nl - f - 1);
        }
    }
    size_t tsz = wide ? 8 : 4;
    size_t sz = sizeof(struct tz_zone) + (size_t)k.time * 8 + (size_t)k.type * 4 + k.time;
    struct tz_zone *z = sl_calloc(1, sz);
    if (!z)
        return -2;
    z->trans = (int64_t *)(z + 1);
    z->off = (int32_t *)(z->trans + k.time);
    z->idx = (uint8_t *)(z->off + k.type);
    z->ntrans = k.time;
    z->ntypes = k.type;
    const unsigned char *ti = p + (size_t)k.time * tsz, *tt = ti + k.time;
    for (uint32_t i = 0; i < k.time; i++) {
        z->trans[i] = wide ? be64(p + i * 8) : (int32_t)be32(p + i * 4);
        z->idx[i] = ti[i];
        if (ti[i] >= k.type || (i > 0 && z->trans[i] <= z->trans[i - 1]))
            goto bad;
    }
    for (uint32_t i = 0; i < k.type; i++) {
        int32_t off = (int32_t)be32(tt + i * 6);
        if (off < -ZONE_MAX_OFFSET || off > ZONE_MAX_OFFSET)
            goto bad;
        z->off[i] = off;
    }
    if (footer && footer_len > 0) {
        char s[128];
        if (footer_len >= sizeof s)
            goto bad;
        memcpy(s, footer, footer_len);
        s[footer_len] = '\0';
        if (tz_parse_rule(s, &z->rule) != 0)
            goto bad;
        if (z->rule.std_off < -ZONE_MAX_OFFSET || z->rule.std_off > ZONE_MAX_OFFSET ||
            z->rule.dst_off < -ZONE_MAX_OFFSET || z->rule.dst_off > ZONE_MAX_OFFSET)
            goto bad;
        z->has_rule = 1;
    }
    *out = z;
    return 0;
bad:
    sl_free(z);
    return -1;
}

static int zone_name_ok(const char *name)
{
    if (!*name || *name == '/' || strlen(name) > 200)
        return 0;
    for (const char *p = name; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '/' || c == '_' || c == '-' || c == '+' || c == '.'))
            return 0;
        if (c == '.' && (p == name || p[-1] == '/') && p[1] == '.')
            return 0; /* no ".." component */
    }
    return 1;
}

static sl_rc zone_load(const char *name, struct tz_zone **out, struct sl_error *err)
{
    *out = NULL;
    if (!zone_name_ok(name))
        return sl_error_set(err, SL_ECONFIG,
                            "time zone \"%.200s\" is not a zone name; use an IANA name such as "
                            "\"Europe/Berlin\" or \"UTC\"",
                            name);
    const char *dir = getenv("TZDIR");
    if (!dir || !*dir)
        dir = "/usr/share/zoneinfo";
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return sl_error_sys(err, SL_ECONFIG, errno,
                            "unknown time zone \"%s\" (cannot open %s; is package tzdata "
                            "installed?); use an IANA name such as \"Europe/Berlin\" or \"UTC\"",
                            name, path);
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return sl_error_set(err, SL_ECONFIG,
                            "time zone \"%s\" is a region, not a zone; name a zone in it, such "
                            "as \"%s/...\" (see %s)",
                            name, name, path);
    }
    size_t cap = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size < ZONE_FILE_MAX
                     ? (size_t)st.st_size + 1
                     : ZONE_FILE_MAX;
    unsigned char *buf = sl_malloc(cap);
    if (!buf) {
        fclose(f);
        return sl_error_set(err, SL_ENOMEM, "time zone \"%s\": out of memory", name);
    }
    size_t n = fread(buf, 1, cap, f);
    int rd_err = ferror(f);
    fclose(f);
    sl_rc rc = SL_OK;
    int r = rd_err ? -1 : zone_load_bytes(buf, n, out);
    if (r == -2)
        rc = sl_error_set(err, SL_ENOMEM, "time zone \"%s\": out of memory", name);
    else if (r != 0)
        rc = sl_error_set(err, SL_ECONFIG,
                          "time zone \"%s\": %s is not a valid zone file (TZif, RFC 8536)", name,
                          path);
    sl_free(buf);
    return rc;
}

/* ---- expressions -------------------------------------------------------------------- */

/*
 * A compiled expression. Invariants:
 *   1. Bits outside a field's range are clear: minute 0..59, hour 0..23, dom 1..31,
 *      month 1..12, dow 0..6 (7 is folded into 0 at parse time).
 *   2. Every mask has at least one bit set.
 *   3. zone is NULL for UTC.
 */
struct sl_cron {
    uint64_t minute;
    uint32_t hour, dom;
    uint16_t month;
    uint8_t dow;
    unsigned dom_star : 1, dow_star : 1;
    struct tz_zone *zone;
};

enum { F_MINUTE, F_HOUR, F_DOM, F_MONTH, F_DOW };

static const struct field_def {
    const char *name;
    int lo, hi;
} fields[] = {
    {"minute", 0, 59}, {"hour", 0, 23},       {"day-of-month", 1, 31},
    {"month", 1, 12},  {"day-of-week", 0, 7},
};

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const dow_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

struct parse_ctx {
    const char *expr;
    int field;
    const char *text; /* the field's text */
    size_t text_len;
    struct sl_error *err;
};

static sl_rc field_error(const struct parse_ctx *px, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static sl_rc field_error(const struct parse_ctx *px, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return sl_error_set(px->err, SL_ECONFIG, "cron \"%.200s\": %s field \"%.*s\": %s", px->expr,
                        fields[px->field].name, (int)(px->text_len > 100 ? 100 : px->text_len),
                        px->text, why);
}

/* One value (number or name) at s[0..n). Sets *named when it was a name. */
static sl_rc parse_value(const struct parse_ctx *px, const char *s, size_t n, int *out, int *named)
{
    const struct field_def *fd = &fields[px->field];
    *named = 0;
    if (n == 0)
        return field_error(px, "a value is missing");
    if (s[0] >= '0' && s[0] <= '9') {
        int v = 0;
        for (size_t i = 0; i < n; i++) {
            if (s[i] < '0' || s[i] > '9')
                return field_error(px, "\"%.*s\" is not a number", (int)n, s);
            if (v < 1000)
                v = v * 10 + (s[i] - '0');
        }
        if (v < fd->lo || v > fd->hi) {
            return field_error(px, "%.*s is out of range %d-%d", (int)n, s, fd->lo, fd->hi);
        }
        *out = v;
        return SL_OK;
    }
    const char *const *names = NULL;
    int count = 0, base = 0;
    if (px->field == F_MONTH) {
        names = month_names;
        count = 12;
        base = 1;
    } else if (px->field == F_DOW) {
        names = dow_names;
        count = 7;
    }
    for (int i = 0; names && n == 3 && i < count; i++)
        if (strncasecmp(s, names[i], 3) == 0) {
            *out = i + base;
            *named = 1;
            return SL_OK;
        }
    if (n == 1 && strchr("?LW#", s[0]))
        return field_error(px,
                           "\"%.*s\" is not supported (5-field cron: use *, numbers, "
                           "ranges, steps, lists and names)",
                           (int)n, s);
    if (names)
        return field_error(px, "\"%.*s\" is neither a number nor a %s name (%s)", (int)n, s,
                           px->field == F_MONTH ? "month" : "day",
                           px->field == F_MONTH ? "jan..dec" : "sun..sat");
    return field_error(px, "\"%.*s\" is not a number", (int)n, s);
}

/* One list item at s[0..n): *, n, a-b, with an optional /step. Sets bits in *mask. */
static sl_rc parse_item(const struct parse_ctx *px, const char *s, size_t n, uint64_t *mask)
{
    const struct field_def *fd = &fields[px->field];
    int hi_lim = px->field == F_DOW ? 6 : fd->hi; /* the span a step may cover */
    int span = hi_lim - fd->lo + 1;
    const char *slash = memchr(s, '/', n);
    size_t base_n = slash ? (size_t)(slash - s) : n;
    int step = 1, lo, hi, named;
    sl_rc rc;
    if (slash) {
        const char *st = slash + 1;
        size_t st_n = n - base_n - 1;
        if (st_n == 0)
            return field_error(px, "\"%.*s\" has no step after '/'", (int)n, s);
        step = 0;
        for (size_t i = 0; i < st_n; i++) {
            if (st[i] < '0' || st[i] > '9')
                return field_error(px, "step in \"%.*s\" is not a number", (int)n, s);
            if (step < 100000)
                step = step * 10 + (st[i] - '0');
        }
        if (step == 0)
            return field_error(px, "step 0 in \"%.*s\" (a step must be at least 1)", (int)n, s);
        if (step > span) {
            return field_error(px, "step in \"%.*s\" is larger than the field's %d values", (int)n,
                               s, span);
        }
    }
    if (base_n == 1 && s[0] == '*') {
        lo = fd->lo;
        hi = hi_lim;
    } else {
        const char *dash = memchr(s, '-', base_n);
        if (dash) {
            size_t a_n = (size_t)(dash - s);
            if ((rc = parse_value(px, s, a_n, &lo, &named)))
                return rc;
            if ((rc = parse_value(px, dash + 1, base_n - a_n - 1, &hi, &named)))
                return rc;
            if (px->field == F_DOW && hi == 0 && lo > 0)
                hi = 7; /* "fri-sun" */
            if (lo > hi)
                return field_error(px,
                                   "range \"%.*s\" is reversed (ranges do not wrap around; "
                                   "write two items, as in 22-23,0-2)",
                                   (int)base_n, s);
        } else {
            if ((rc = parse_value(px, s, base_n, &lo, &named)))
                return rc;
            hi = slash ? hi_lim : lo; /* "a/s" runs to the field's end */
            if (slash && lo > hi)
                hi = lo;
        }
    }
    for (int v = lo; v <= hi; v += step)
        *mask |= 1ULL << (px->field == F_DOW && v == 7 ? 0 : v);
    return SL_OK;
}

static sl_rc parse_field(struct parse_ctx *px, const char *s, size_t n, uint64_t *mask, int *star)
{
    px->text = s;
    px->text_len = n;
    *mask = 0;
    *star = s[0] == '*';
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < n && s[j] != ',')
            j++;
        if (j == i)
            return field_error(px, "empty list item");
        sl_rc rc = parse_item(px, s + i, j - i, mask);
        if (rc)
            return rc;
        if (j == n)
            break;
        i = j + 1;
    }
    return SL_OK;
}

static const struct {
    const char *name, *expansion;
} macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

sl_rc sl_cron_parse(const char *expr, const char *tz, struct sl_cron **out, struct sl_error *err)
{
    *out = NULL;
    if (!expr)
        return sl_error_set(err, SL_ECONFIG, "cron: no expression given");
    const char *s = expr;
    while (is_space(*s))
        s++;
    size_t len = strlen(s);
    while (len > 0 && is_space(s[len - 1]))
        len--;
    if (len == 0)
        return sl_error_set(err, SL_ECONFIG,
                            "cron \"%.200s\": empty expression; expected 5 fields (minute hour "
                            "day-of-month month day-of-week) or a macro such as @daily",
                            expr);
    if (s[0] == '@') {
        for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
            if (strlen(macros[i].name) == len && strncasecmp(s, macros[i].name, len) == 0) {
                sl_rc rc = sl_cron_parse(macros[i].expansion, tz, out, err);
                return rc;
            }
        return sl_error_set(err, SL_ECONFIG,
                            "cron \"%.200s\": unknown macro; use @yearly, @annually, @monthly, "
                            "@weekly, @daily, @midnight or @hourly",
                            expr);
    }

    const char *fs[6];
    size_t fn[6];
    int nf = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && !is_space(s[j]))
            j++;
        if (nf == 6) {
            nf++;
            break;
        }
        fs[nf] = s + i;
        fn[nf] = j - i;
        nf++;
        while (j < len && is_space(s[j]))
            j++;
        i = j;
    }
    if (nf == 6)
        return sl_error_set(err, SL_ECONFIG,
                            "cron \"%.200s\": 6 fields; seconds and years are not supported, "
                            "expected 5 (minute hour day-of-month month day-of-week)",
                            expr);
    if (nf != 5)
        return sl_error_set(err, SL_ECONFIG,
                            "cron \"%.200s\": %s%d fields; expected 5 (minute hour day-of-month "
                            "month day-of-week)",
                            expr, nf > 6 ? "more than " : "", nf > 6 ? 6 : nf);

    struct sl_cron c;
    memset(&c, 0, sizeof c);
    struct parse_ctx px = {.expr = expr, .err = err};
    uint64_t m[5];
    int star[5];
    for (int f = 0; f < 5; f++) {
        px.field = f;
        sl_rc rc = parse_field(&px, fs[f], fn[f], &m[f], &star[f]);
        if (rc)
            return rc;
    }
    c.minute = m[F_MINUTE];
    c.hour = (uint32_t)m[F_HOUR];
    c.dom = (uint32_t)m[F_DOM];
    c.month = (uint16_t)m[F_MONTH];
    c.dow = (uint8_t)m[F_DOW];
    c.dom_star = star[F_DOM] ? 1 : 0;
    c.dow_star = star[F_DOW] ? 1 : 0;

    if (tz && strcmp(tz, "UTC") != 0) {
        if (!*tz)
            return sl_error_set(err, SL_ECONFIG,
                                "cron \"%.200s\": empty time zone name; leave it out for UTC or "
                                "use an IANA name such as \"Europe/Berlin\"",
                                expr);
        sl_rc rc = zone_load(tz, &c.zone, err);
        if (rc)
            return rc;
    }
    struct sl_cron *r = sl_malloc(sizeof *r);
    if (!r) {
        sl_free(c.zone);
        return sl_error_set(err, SL_ENOMEM, "cron \"%.200s\": out of memory", expr);
    }
    *r = c;
    *out = r;
    return SL_OK;
}

void sl_cron_free(struct sl_cron *c)
{
    if (!c)
        return;
    sl_free(c->zone);
    sl_free(c);
}

/* ---- time zones on their own (cron.h) ------------------------------------------------ */

struct sl_tz {
    struct tz_zone *zone; /* never NULL: UTC is a NULL struct sl_tz */
};

sl_rc sl_tz_open(const char *name, struct sl_tz **out, struct sl_error *err)
{
    *out = NULL;
    if (!name || strcmp(name, "UTC") == 0)
        return SL_OK;
    struct tz_zone *zone = NULL;
    sl_rc rc = zone_load(name, &zone, err);
    if (rc)
        return rc;
    struct sl_tz *z = sl_malloc(sizeof *z);
    if (!z) {
        sl_free(zone);
        return sl_error_set(err, SL_ENOMEM, "time zone \"%s\": out of memory", name);
    }
    z->zone = zone;
    *out = z;
    return SL_OK;
}

int32_t sl_tz_offset(const struct sl_tz *z, int64_t t)
{
    return zone_offset(z ? z->zone : NULL, t);
}

int64_t sl_tz_from_local(const struct sl_tz *z, int64_t local)
{
    int64_t t;
    if (zone_first(z ? z->zone : NULL, local, &t))
        return t;
    /* In a gap: read the wall time with the offset in force before it. */
    return local - zone_offset(z->zone, local - 28 * 3600);
}

void sl_tz_close(struct sl_tz *z)
{
    if (!z)
        return;
    sl_free(z->zone);
    sl_free(z);
}

/* ---- search ------------------------------------------------------------------------- */

/* Lowest set bit >= from in mask, or -1. from may exceed 63. */
static int bit_next(uint64_t mask, int from)
{
    if (from > 63)
        return -1;
    if (from > 0)
        mask &= ~((1ULL << from) - 1);
    return mask ? __builtin_ctzll(mask) : -1;
}

/* Highest set bit <= from in mask, or -1. from may be negative. */
static int bit_prev(uint64_t mask, int from)
{
    if (from < 0)
        return -1;
    if (from < 63)
        mask &= (2ULL << from) - 1;
    return mask ? 63 - __builtin_clzll(mask) : -1;
}

static int day_ok(const struct sl_cron *c, int d, int wd)
{
    int dm = (c->dom >> d) & 1, wm = (c->dow >> wd) & 1;
    return c->dom_star || c->dow_star ? dm && wm : dm || wm;
}

/* Move t to the first matching civil minute >= t. 0 found, -1 past year y_lim. */
static int civ_next(const struct sl_cron *c, struct civ *t, int64_t y_lim)
{
    for (;;) {
        if (t->y > y_lim)
            return -1;
        int mo = bit_next(c->month, t->mo);
        if (mo < 0 || mo > 12) {
            t->y++;
            t->mo = 1;
            t->d = 1;
            t->h = t->mi = 0;
            continue;
        }
        if (mo != t->mo) {
            t->mo = mo;
            t->d = 1;
            t->h = t->mi = 0;
        }
        int dim = days_in_month(t->y, t->mo), d = t->d;
        if (d <= dim) {
            int wd = weekday(days_from_civil(t->y, t->mo, d));
            while (d <= dim && !day_ok(c, d, wd)) {
                d++;
                wd = wd == 6 ? 0 : wd + 1;
            }
        }
        if (d > dim) {
            if (++t->mo > 12) {
                t->mo = 1;
                t->y++;
            }
            t->d = 1;
            t->h = t->mi = 0;
            continue;
        }
        if (d != t->d) {
            t->d = d;
            t->h = t->mi = 0;
        }
        int h = bit_next(c->hour, t->h);
        if (h < 0) {
            t->d++;
            t->h = t->mi = 0;
            continue;
        }
        if (h != t->h) {
            t->h = h;
            t->mi = 0;
        }
        int mi = bit_next(c->minute, t->mi);
        if (mi < 0) {
            t->h++;
            t->mi = 0;
            continue;
        }
        t->mi = mi;
        return 0;
    }
}

/* Move t to the last matching civil minute <= t. 0 found, -1 before year y_lim. */
static int civ_prev(const struct sl_cron *c, struct civ *t, int64_t y_lim)
{
    for (;;) {
        if (t->y < y_lim)
            return -1;
        int mo = bit_prev(c->month, t->mo);
        if (mo < 1) {
            t->y--;
            t->mo = 12;
            t->d = 31;
            t->h = 23;
            t->mi = 59;
            continue;
        }
        int dim = days_in_month(t->y, mo);
        if (mo != t->mo) {
            t->mo = mo;
            t->d = dim;
            t->h = 23;
            t->mi = 59;
        }
        if (t->d > dim) {
            t->d = dim;
            t->h = 23;
            t->mi = 59;
        }
        int d = t->d;
        if (d >= 1) {
            int wd = weekday(days_from_civil(t->y, t->mo, d));
            while (d >= 1 && !day_ok(c, d, wd)) {
                d--;
                wd = wd == 0 ? 6 : wd - 1;
            }
        }
        if (d < 1) {
            if (--t->mo < 1) {
                t->mo = 12;
                t->y--;
            }
            t->d = 31; /* clamped to the month's end above */
            t->h = 23;
            t->mi = 59;
            continue;
        }
        if (d != t->d) {
            t->d = d;
            t->h = 23;
            t->mi = 59;
        }
        int h = bit_prev(c->hour, t->h);
        if (h < 0) {
            t->d--;
            t->h = 23;
            t->mi = 59;
            continue;
        }
        if (h != t->h) {
            t->h = h;
            t->mi = 59;
        }
        int mi = bit_prev(c->minute, t->mi);
        if (mi < 0) {
            t->h--;
            t->mi = 59;
            continue;
        }
        t->mi = mi;
        return 0;
    }
}

int64_t sl_cron_next(const struct sl_cron *c, int64_t after)
{
    if (!c || after < CRON_MIN_T || after > CRON_MAX_T)
        return -1;
    int64_t local = after + zone_offset(c->zone, after);
    struct civ t = civ_from_secs(floor_div(local, 60) * 60 + 60);
    int64_t y_lim = t.y + CRON_HORIZON_YEARS;
    for (;;) {
        if (civ_next(c, &t, y_lim) != 0)
            return -1;
        int64_t cs = civ_to_secs(&t), first;
        if (zone_first(c->zone, cs, &first) && first > after)
            return first <= CRON_MAX_T ? first : -1;
        /* In a gap, or the second pass through a repeated hour: try the next minute. */
        t = civ_from_secs(cs + 60);
    }
}

int64_t sl_cron_prev(const struct sl_cron *c, int64_t at)
{
    if (!c || at < CRON_MIN_T || at > CRON_MAX_T)
        return -1;
    int64_t local = at + zone_offset(c->zone, at);
    struct civ t = civ_from_secs(floor_div(local, 60) * 60);
    int64_t y_lim = t.y - CRON_HORIZON_YEARS, p = -1;
    int found = 0;
    while (!found) {
        if (civ_prev(c, &t, y_lim) != 0)
            break;
        int64_t cs = civ_to_secs(&t), first;
        if (zone_first(c->zone, cs, &first) && first <= at) {
            p = first;
            found = 1;
        } else {
            t = civ_from_secs(cs - 60);
        }
    }
    if (found && p < CRON_MIN_T)
        return -1;
    if (!c->zone)
        return p;
    /* Minutes of a repeated hour later than local(at) may have fired before at. */
    int64_t q = sl_cron_next(c, found ? p : at - 2 * 86400);
    while (q != -1 && q <= at) {
        p = q;
        q = sl_cron_next(c, p);
    }
    return p;
}
