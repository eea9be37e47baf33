/*
 * test_cron.c - cron expressions: parsing (every form and every error, which must name the
 * field and the text), fixed next/prev cases (lists, ranges, steps, names, the day-of-month
 * / day-of-week rule, Feb 29, month ends, year wrap, macros), daylight saving changes in
 * Europe/Berlin and America/New_York, a randomized differential test against a brute-force
 * minute walk that uses glibc's own time zone code (seeded; SLUICE_TEST_SEED replays a
 * run), and the speed of a long chain of next() calls.
 */
#include <stdint.h>
#include <time.h>

#include "sluice/alloc.h"
#include "sluice/cron.h"
#include "test.h"

/* "YYYY-MM-DD HH:MM[:SS]" in UTC to Unix seconds. */
static int64_t T(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int n = sscanf(s, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                   &tm.tm_min, &tm.tm_sec);
    if (n < 5) {
        fprintf(stderr, "bad time in test: %s\n", s);
        exit(2);
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

static const char *fmt(int64_t t)
{
    static char bufs[4][32];
    static int k;
    char *b = bufs[k++ & 3];
    if (t == -1)
        return "-1";
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(b, 32, "%Y-%m-%d %H:%M:%S", &tm);
    return b;
}

static struct sl_cron *P(const char *expr, const char *tz)
{
    struct sl_cron *c = NULL;
    struct sl_error err;
    sl_error_clear(&err);
    sl_rc rc = sl_cron_parse(expr, tz, &c, &err);
    if (rc) {
        fprintf(stderr, "parse \"%s\" failed: %s\n", expr, err.msg);
        return NULL;
    }
    return c;
}

/* Check that the firings of expr after `from` are exactly the list (UTC strings). */
static void seq(const char *expr, const char *tz, const char *from, const char *const *want, int n)
{
    struct sl_cron *c = P(expr, tz);
    CHECK(c != NULL);
    if (!c)
        return;
    int64_t t = T(from);
    for (int i = 0; i < n; i++) {
        int64_t nx = sl_cron_next(c, t);
        int64_t w = want[i] ? T(want[i]) : -1;
        if (nx != w)
            fprintf(stderr, "  %s [%s] next(%s): %s, want %s\n", expr, tz ? tz : "UTC", fmt(t),
                    fmt(nx), fmt(w));
        CHECK_INT(nx, w);
        if (w == -1)
            break;
        /* prev() at the firing is the firing; just before it, the previous one. */
        CHECK_INT(sl_cron_prev(c, w), w);
        if (i > 0) {
            int64_t pw = T(want[i - 1]);
            int64_t pv = sl_cron_prev(c, w - 1);
            if (pv != pw)
                fprintf(stderr, "  %s [%s] prev(%s): %s, want %s\n", expr, tz ? tz : "UTC",
                        fmt(w - 1), fmt(pv), fmt(pw));
            CHECK_INT(pv, pw);
        }
        t = nx;
    }
    sl_cron_free(c);
}

#define SEQ(expr, tz, from, ...)                                                                   \
    do {                                                                                           \
        static const char *const w_[] = {__VA_ARGS__};                                             \
        seq(expr, tz, from, w_, (int)(sizeof w_ / sizeof w_[0]));                                  \
    } while (0)

static void test_steps_lists_ranges(void)
{
    SEQ("*/15 * * * *", NULL, "2026-11-27 12:07:30", "2026-11-27 12:15", "2026-11-27 12:30",
        "2026-11-27 12:45", "2026-11-27 13:00");
    SEQ("0 2 * * *", NULL, "2026-11-27 02:00", "2026-11-28 02:00", "2026-11-29 02:00");
    SEQ("5,10-12,50-59/3 * * * *", NULL, "2026-11-27 12:00", "2026-11-27 12:05", "2026-11-27 12:10",
        "2026-11-27 12:11", "2026-11-27 12:12", "2026-11-27 12:50", "2026-11-27 12:53",
        "2026-11-27 12:56", "2026-11-27 12:59", "2026-11-27 13:05");
    /* "a/s" runs from a to the field's end. */
    SEQ("7/20 22/1 * * *", NULL, "2026-11-27 21:00", "2026-11-27 22:07", "2026-11-27 22:27",
        "2026-11-27 22:47", "2026-11-27 23:07", "2026-11-27 23:27", "2026-11-27 23:47",
        "2026-11-28 22:07");
    SEQ("0 0-23/6 * * *", NULL, "2026-11-27 00:00", "2026-11-27 06:00", "2026-11-27 12:00",
        "2026-11-27 18:00", "2026-11-28 00:00");
    SEQ("  30\t8  *  * *  ", NULL, "2026-11-27 08:30", "2026-11-28 08:30");
    SEQ("* * * * *", NULL, "2026-11-27 23:59:59", "2026-11-28 00:00", "2026-11-28 00:01");
}

static void test_names_and_days(void)
{
    /* Weekdays in the first quarter; 2026-03-31 is a Tuesday, 2027-01-01 a Friday. */
    SEQ("0 9 * jan-MAR Mon-fri", NULL, "2026-03-30 09:00", "2026-03-31 09:00", "2027-01-01 09:00",
        "2027-01-04 09:00");
    /* Day-of-week 7 and "fri-sun" are Sunday. 2026-11-27 is a Friday. */
    SEQ("0 12 * * 7", NULL, "2026-11-27 00:00", "2026-11-29 12:00", "2026-12-06 12:00");
    SEQ("0 12 * * fri-sun", NULL, "2026-11-27 12:00", "2026-11-28 12:00", "2026-11-29 12:00",
        "2026-12-04 12:00");
    SEQ("0 12 * * 5-7", NULL, "2026-11-27 12:00", "2026-11-28 12:00", "2026-11-29 12:00",
        "2026-12-04 12:00");
    /* Both restricted: the 13th or a Friday. */
    SEQ("0 0 13 * 5", NULL, "2026-11-27 00:00", "2026-12-04 00:00", "2026-12-11 00:00",
        "2026-12-13 00:00", "2026-12-18 00:00", "2026-12-25 00:00", "2027-01-01 00:00");
    /* Day-of-month starting with '*': both must match (odd days that are Mondays). */
    SEQ("0 0 */2 * mon", NULL, "2026-11-27 00:00", "2026-12-07 00:00", "2026-12-21 00:00",
        "2027-01-11 00:00", "2027-01-25 00:00");
    /* Day-of-week '*': day-of-month alone. */
    SEQ("0 0 1,15 * *", NULL, "2026-11-27 00:00", "2026-12-01 00:00", "2026-12-15 00:00",
        "2027-01-01 00:00");
}

static void test_calendar_edges(void)
{
    SEQ("0 0 29 2 *", NULL, "2026-01-01 00:00", "2028-02-29 00:00", "2032-02-29 00:00");
    /* 2100 is not a leap year: eight years between two Feb 29ths. */
    SEQ("0 0 29 2 *", NULL, "2096-03-01 00:00", "2104-02-29 00:00");
    SEQ("0 0 31 * *", NULL, "2026-04-01 00:00", "2026-05-31 00:00", "2026-07-31 00:00",
        "2026-08-31 00:00", "2026-10-31 00:00");
    SEQ("59 23 31 12 *", NULL, "2026-12-31 23:59", "2027-12-31 23:59");
    SEQ("0 0 1 1 *", NULL, "2026-12-31 23:59:59", "2027-01-01 00:00", "2028-01-01 00:00");
    SEQ("0 0 28-31 2 *", NULL, "2027-02-27 00:00", "2027-02-28 00:00", "2028-02-28 00:00",
        "2028-02-29 00:00", "2029-02-28 00:00");
    /* Never fires: -1 both ways, quickly. */
    struct sl_cron *c = P("0 0 30 2 *", NULL);
    REQUIRE(c);
    CHECK_INT(sl_cron_next(c, T("2026-01-01 00:00")), -1);
    CHECK_INT(sl_cron_prev(c, T("2026-01-01 00:00")), -1);
    sl_cron_free(c);
    c = P("0 0 31 4,6,9,11 *", NULL);
    REQUIRE(c);
    CHECK_INT(sl_cron_next(c, T("2026-01-01 00:00")), -1);
    sl_cron_free(c);
    /* prev() across a year and at exact firings. */
    c = P("0 0 29 2 *", NULL);
    REQUIRE(c);
    CHECK_STR(fmt(sl_cron_prev(c, T("2026-11-27 00:00"))), "2024-02-29 00:00:00");
    CHECK_STR(fmt(sl_cron_prev(c, T("2104-02-28 23:59"))), "2096-02-29 00:00:00");
    sl_cron_free(c);
    c = P("*/10 * * * *", NULL);
    REQUIRE(c);
    CHECK_STR(fmt(sl_cron_prev(c, T("2027-01-01 00:05"))), "2027-01-01 00:00:00");
    CHECK_STR(fmt(sl_cron_prev(c, T("2026-12-31 23:59:59"))), "2026-12-31 23:50:00");
    CHECK_STR(fmt(sl_cron_prev(c, T("1969-12-31 23:59:59"))), "1969-12-31 23:50:00");
    CHECK_STR(fmt(sl_cron_next(c, T("1969-12-31 23:55"))), "1970-01-01 00:00:00");
    /* Outside years 1..9999. */
    CHECK_INT(sl_cron_next(c, INT64_MAX), -1);
    CHECK_INT(sl_cron_prev(c, INT64_MIN), -1);
    CHECK_INT(sl_cron_next(c, T("9999-12-31 23:55")), -1);
    sl_cron_free(c);
}

static void test_macros(void)
{
    static const char *const pairs[][2] = {
        {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
        {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
        {"@hourly", "0 * * * *"}, {" @DAILY ", "0 0 * * *"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        struct sl_cron *a = P(pairs[i][0], NULL), *b = P(pairs[i][1], NULL);
        CHECK(a && b);
        if (!a || !b) {
            sl_cron_free(a);
            sl_cron_free(b);
            continue;
        }
        int64_t t = T("2026-11-27 12:34");
        for (int k = 0; k < 20; k++) {
            int64_t x = sl_cron_next(a, t), y = sl_cron_next(b, t);
            CHECK_INT(x, y);
            t = x;
        }
        sl_cron_free(a);
        sl_cron_free(b);
    }
    SEQ("@weekly", NULL, "2026-11-27 00:00", "2026-11-29 00:00", "2026-12-06 00:00");
    SEQ("@hourly", "Asia/Kolkata", "2026-11-27 00:00", "2026-11-27 00:30", "2026-11-27 01:30");
}

/* The parse must fail with SL_ECONFIG and a message containing each needle. */
static void bad(const char *expr, const char *tz, const char *n1, const char *n2)
{
    struct sl_cron *c = (struct sl_cron *)1;
    struct sl_error err;
    sl_error_clear(&err);
    sl_rc rc = sl_cron_parse(expr, tz, &c, &err);
    CHECK_INT(rc, SL_ECONFIG);
    CHECK(c == NULL);
    int ok = strstr(err.msg, n1) && (!n2 || strstr(err.msg, n2));
    if (!ok)
        fprintf(stderr, "  \"%s\": message \"%s\" lacks \"%s\"/\"%s\"\n", expr, err.msg, n1,
                n2 ? n2 : "");
    CHECK(ok);
    if (rc == SL_OK)
        sl_cron_free(c);
}

static void test_errors(void)
{
    bad("60 * * * *", NULL, "minute field \"60\"", "out of range 0-59");
    bad("* 24 * * *", NULL, "hour field \"24\"", "out of range 0-23");
    bad("* * 0 * *", NULL, "day-of-month field \"0\"", "1-31");
    bad("* * 32 * *", NULL, "day-of-month", "32");
    bad("* * * 13 *", NULL, "month field \"13\"", "1-12");
    bad("* * * 0 *", NULL, "month field", "out of range");
    bad("* * * * 8", NULL, "day-of-week field \"8\"", "0-7");
    bad("*/0 * * * *", NULL, "minute field \"*/0\"", "step 0");
    bad("0-30/0 * * * *", NULL, "minute", "step 0");
    bad("*/61 * * * *", NULL, "minute", "larger than");
    bad("5-1 * * * *", NULL, "minute field \"5-1\"", "reversed");
    bad("* 22-2 * * *", NULL, "hour", "reversed");
    bad("* * * dec-jan *", NULL, "month", "reversed");
    bad("* * * * * *", NULL, "6 fields", "seconds");
    bad("0 0 12 * * 2026", NULL, "6 fields", NULL);
    bad("* * * *", NULL, "4 fields", "expected 5");
    bad("*", NULL, "1 fields", NULL);
    bad("* * * * * * * *", NULL, "more than 6", NULL);
    bad("1,,2 * * * *", NULL, "minute field \"1,,2\"", "empty list item");
    bad("1, * * * *", NULL, "minute", "empty list item");
    bad(",1 * * * *", NULL, "minute", "empty list item");
    bad("", NULL, "empty expression", NULL);
    bad("   ", NULL, "empty expression", NULL);
    bad("@reboot", NULL, "unknown macro", NULL);
    bad("@daily extra", NULL, "unknown macro", NULL);
    bad("* * * foo *", NULL, "month field \"foo\"", "month name");
    bad("* * * * funday", NULL, "day-of-week", "day name");
    bad("mon * * * *", NULL, "minute field \"mon\"", "not a number");
    bad("* * * * L", NULL, "day-of-week", "not supported");
    bad("* * ? * *", NULL, "day-of-month", "not supported");
    bad("1- * * * *", NULL, "minute", "missing");
    bad("-1 * * * *", NULL, "minute", "missing");
    bad("*/ * * * *", NULL, "minute", "no step");
    bad("*/x * * * *", NULL, "minute", "not a number");
    bad("1x * * * *", NULL, "minute", "not a number");
    bad("99999999999999999999 * * * *", NULL, "minute", "out of range");
    bad("0 0 * * *", "Mars/Olympus_Mons", "unknown time zone \"Mars/Olympus_Mons\"", "IANA");
    bad("0 0 * * *", "../../etc/passwd", "not a zone name", NULL);
    bad("0 0 * * *", "/etc/localtime", "not a zone name", NULL);
    bad("0 0 * * *", "", "empty time zone", NULL);
    bad("0 0 * * *", "America", "is a region, not a zone", NULL);
    /* A file that is not TZif. */
    bad("0 0 * * *", "zone.tab", "not a valid zone file", NULL);

    struct sl_cron *c = P("0 0 * * *", "UTC");
    CHECK(c != NULL);
    sl_cron_free(c);
    c = P("0 0 * * *", "Etc/UTC");
    CHECK(c != NULL);
    if (c)
        CHECK_STR(fmt(sl_cron_next(c, T("2026-11-27 00:00"))), "2026-11-28 00:00:00");
    sl_cron_free(c);
    sl_cron_free(NULL);
}

/* Each allocation of a parse failing in turn: SL_ENOMEM, nothing leaked (ASan), then OK. */
static void test_alloc_failures(void)
{
    int n;
    for (n = 1; n < 20; n++) {
        struct sl_cron *c = (struct sl_cron *)&n;
        struct sl_error err;
        sl_alloc_fail_at(n);
        sl_rc rc = sl_cron_parse("*/5 * * * *", "Europe/Berlin", &c, &err);
        sl_alloc_fail_at(0);
        if (rc == SL_OK) {
            CHECK(c != NULL);
            sl_cron_free(c);
            break;
        }
        CHECK_INT(rc, SL_ENOMEM);
        CHECK(c == NULL);
    }
    CHECK(n > 1 && n < 20);
}

static void test_dst_berlin(void)
{
    const char *z = "Europe/Berlin";
    /* 2026-03-29 02:00 CET -> 03:00 CEST: 02:30 does not exist that day. */
    SEQ("30 2 * * *", z, "2026-03-27 12:00", "2026-03-28 01:30", "2026-03-30 00:30",
        "2026-03-31 00:30");
    /* 2026-10-25 03:00 CEST -> 02:00 CET: 02:30 happens twice, fires once (the first). */
    SEQ("30 2 * * *", z, "2026-10-24 12:00", "2026-10-25 00:30", "2026-10-26 01:30");
    struct sl_cron *c = P("30 2 * * *", z);
    REQUIRE(c);
    CHECK_STR(fmt(sl_cron_prev(c, T("2026-10-25 01:45"))), "2026-10-25 00:30:00");
    CHECK_STR(fmt(sl_cron_prev(c, T("2026-10-25 01:30"))), "2026-10-25 00:30:00");
    CHECK_STR(fmt(sl_cron_next(c, T("2026-10-25 00:30"))), "2026-10-26 01:30:00");
    /* Beyond the zone file's table (2037): the footer's rule. Last Sunday of March 2050 is
     * the 27th. */
    CHECK_STR(fmt(sl_cron_next(c, T("2050-03-26 02:00"))), "2050-03-28 00:30:00");
    /* ... and the last Sunday of October 2050 is the 30th. */
    CHECK_STR(fmt(sl_cron_next(c, T("2050-10-29 12:00"))), "2050-10-30 00:30:00");
    CHECK_STR(fmt(sl_cron_next(c, T("2050-10-30 00:30"))), "2050-10-31 01:30:00");
    CHECK_STR(fmt(sl_cron_next(c, T("2050-07-01 12:00"))), "2050-07-02 00:30:00");
    sl_cron_free(c);
    /* Every 30 minutes across both changes. */
    SEQ("*/30 * * * *", z, "2026-03-29 00:15", "2026-03-29 00:30", "2026-03-29 01:00",
        "2026-03-29 01:30");
    /* 02:00 and 02:30 CET (01:00, 01:30 UTC) repeat 02:00 and 02:30 CEST: skipped. */
    SEQ("*/30 * * * *", z, "2026-10-25 00:15", "2026-10-25 00:30", "2026-10-25 02:00",
        "2026-10-25 02:30");
    /* Midnight local: 23:00 UTC in winter, 22:00 in summer. */
    SEQ("@daily", z, "2026-03-27 12:00", "2026-03-27 23:00", "2026-03-28 23:00",
        "2026-03-29 22:00");
}

static void test_dst_new_york(void)
{
    const char *z = "America/New_York";
    /* 2026-03-08 02:00 EST -> 03:00 EDT: 02:30 is skipped. */
    SEQ("30 2 * * *", z, "2026-03-07 00:00", "2026-03-07 07:30", "2026-03-09 06:30");
    SEQ("*/30 * * * *", z, "2026-03-08 06:15", "2026-03-08 06:30", "2026-03-08 07:00",
        "2026-03-08 07:30");
    /* 2026-11-01 02:00 EDT -> 01:00 EST: 01:30 fires once, at 01:30 EDT. */
    SEQ("30 1 * * *", z, "2026-10-31 12:00", "2026-11-01 05:30", "2026-11-02 06:30");
    SEQ("*/30 * * * *", z, "2026-11-01 04:45", "2026-11-01 05:00", "2026-11-01 05:30",
        "2026-11-01 07:00", "2026-11-01 07:30");
    struct sl_cron *c = P("*/30 * * * *", z);
    REQUIRE(c);
    /* During the second pass through 01:xx, the last firing was 01:30 EDT. */
    CHECK_STR(fmt(sl_cron_prev(c, T("2026-11-01 06:45"))), "2026-11-01 05:30:00");
    CHECK_STR(fmt(sl_cron_prev(c, T("2026-11-01 06:00"))), "2026-11-01 05:30:00");
    CHECK_STR(fmt(sl_cron_prev(c, T("2026-11-01 07:00"))), "2026-11-01 07:00:00");
    CHECK_STR(fmt(sl_cron_prev(c, T("2026-03-08 06:59"))), "2026-03-08 06:30:00");
    sl_cron_free(c);
    c = P("30 1 * * *", z);
    REQUIRE(c);
    CHECK_STR(fmt(sl_cron_prev(c, T("2026-11-01 06:45"))), "2026-11-01 05:30:00");
    CHECK_STR(fmt(sl_cron_next(c, T("2026-11-01 06:00"))), "2026-11-02 06:30:00");
    sl_cron_free(c);
}

/* ---- randomized differential test ---------------------------------------------------- */

static uint64_t rng_state;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

/* A field as the generator built it: the set it means and whether its text starts with '*'. */
struct gfield {
    uint64_t set;
    int star;
};

static const char *const g_months[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                       "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const g_days[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static void put_value(char **p, int f, int v)
{
    if (f == 3 && rnd(3) == 0)
        *p += sprintf(*p, "%s", g_months[v - 1]);
    else if (f == 4 && v <= 6 && rnd(3) == 0)
        *p += sprintf(*p, "%s", g_days[v]);
    else
        *p += sprintf(*p, "%d", v);
}

/* Generate one field's text at *p and its meaning. Sparse enough to be interesting, dense
 * enough that most expressions fire within the brute force's window. */
static void gen_field(char **p, int f, struct gfield *g)
{
    static const int lo_[] = {0, 0, 1, 1, 0}, hi_[] = {59, 23, 31, 12, 7};
    int lo = lo_[f], hi = hi_[f];
    g->set = 0;
    g->star = 0;
    int star_prob = f == 0 ? 4 : f == 1 ? 3 : 2; /* 1 in N: a bare '*' */
    if (rnd((uint32_t)star_prob) == 0) {
        **p = '*';
        (*p)++;
        g->star = 1;
        for (int v = lo; v <= (f == 4 ? 6 : hi); v++)
            g->set |= 1ULL << v;
        return;
    }
    int items = 1 + (int)rnd(3);
    for (int i = 0; i < items; i++) {
        if (i)
            *(*p)++ = ',';
        int kind = (int)rnd(5), a, b, s = 1;
        int top = f == 4 ? 6 : hi;
        if (kind == 0 && i == 0) { /* "*\/s" */
            s = 1 + (int)rnd((uint32_t)(top - lo + 1 < 12 ? top - lo + 1 : 12));
            *p += sprintf(*p, "*/%d", s);
            g->star = 1;
            a = lo;
            b = top;
        } else if (kind <= 1) { /* a value */
            a = b = lo + (int)rnd((uint32_t)(hi - lo + 1));
            put_value(p, f, a);
        } else if (kind <= 3) { /* a-b, maybe /s */
            a = lo + (int)rnd((uint32_t)(hi - lo + 1));
            b = a + (int)rnd((uint32_t)(hi - a + 1));
            put_value(p, f, a);
            *(*p)++ = '-';
            put_value(p, f, b);
            if (rnd(2)) {
                s = 1 + (int)rnd(top - lo + 1 < 10 ? (uint32_t)(top - lo + 1) : 10);
                *p += sprintf(*p, "/%d", s);
            }
        } else { /* a/s */
            a = lo + (int)rnd((uint32_t)(top - lo + 1));
            s = 1 + (int)rnd(top - lo + 1 < 10 ? (uint32_t)(top - lo + 1) : 10);
            *p += sprintf(*p, "%d/%d", a, s);
            b = top;
        }
        for (int v = a; v <= b; v += s)
            g->set |= 1ULL << (f == 4 && v == 7 ? 0 : v);
    }
}

struct gexpr {
    char text[256];
    struct gfield f[5];
};

static void gen_expr(struct gexpr *e)
{
    char *p = e->text;
    for (int f = 0; f < 5; f++) {
        if (f)
            *p++ = ' ';
        gen_field(&p, f, &e->f[f]);
    }
    *p = '\0';
}

static int g_match(const struct gexpr *e, const struct tm *tm)
{
    if (!((e->f[0].set >> tm->tm_min) & 1) || !((e->f[1].set >> tm->tm_hour) & 1) ||
        !((e->f[3].set >> (tm->tm_mon + 1)) & 1))
        return 0;
    int dm = (e->f[2].set >> tm->tm_mday) & 1, wm = (e->f[4].set >> tm->tm_wday) & 1;
    return e->f[2].star || e->f[4].star ? dm && wm : dm || wm;
}

/* The zone's offset at t, from glibc (TZ is set to the zone under test). */
static long gmtoff(int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    return tm.tm_gmtoff;
}

/* Does instant t repeat a local time that already happened (second pass of a fall-back)? */
static int repeated(int64_t t, long off)
{
    for (int k = 1; k <= 3; k++) {
        long o2 = gmtoff(t - k * 3600);
        if (o2 > off) {
            int64_t t2 = t + off - o2;
            if (t2 < t && gmtoff(t2) == o2)
                return 1;
        }
    }
    return 0;
}

static int brute_fires(const struct gexpr *e, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    return tm.tm_sec == 0 && g_match(e, &tm) && !repeated(t, tm.tm_gmtoff);
}

#define WINDOW_MIN (40 * 24 * 60)

static int64_t brute_next(const struct gexpr *e, int64_t after)
{
    int64_t t = (after - ((after % 60) + 60) % 60) + 60;
    for (int i = 0; i < WINDOW_MIN; i++, t += 60)
        if (brute_fires(e, t))
            return t;
    return -2; /* none within the window */
}

static int64_t brute_prev(const struct gexpr *e, int64_t at)
{
    int64_t t = at - ((at % 60) + 60) % 60;
    for (int i = 0; i < WINDOW_MIN; i++, t -= 60)
        if (brute_fires(e, t))
            return t;
    return -2;
}

static int64_t rand_time(void)
{
    /* Half uniform over 1970..2100, half in the months where clocks change. */
    int64_t y = 1970 + rnd(131);
    if (rnd(2)) {
        static const int months[] = {3, 4, 9, 10, 11};
        char s[64];
        snprintf(s, sizeof s, "%d-%02d-%02d %02d:%02d:%02d", (int)y, months[rnd(5)],
                 1 + (int)rnd(28), (int)rnd(24), (int)rnd(60), rnd(4) ? 0 : (int)rnd(60));
        return T(s);
    }
    return T("1970-01-01 00:00") + (int64_t)rnd(131u * 365u * 86400u / 60u) * 60 +
           (rnd(4) ? 0 : rnd(60));
}

/* A time up to 4 hours before one of the zone's offset changes in a random year (glibc's
 * view of the zone, TZ being set), or a random time when that year has none. */
static int64_t near_transition(void)
{
    char s[32];
    snprintf(s, sizeof s, "%d-01-01 12:00", 1971 + (int)rnd(129));
    int64_t lo = T(s);
    long off = gmtoff(lo);
    for (int d = 1; d <= 366; d++) {
        int64_t hi = lo + 86400;
        if (gmtoff(hi) != off) {
            while (hi - lo > 60) { /* the change lies in (lo, hi] */
                int64_t mid = lo + (hi - lo) / 2;
                if (gmtoff(mid) == off)
                    lo = mid;
                else
                    hi = mid;
            }
            return hi - (int64_t)rnd(4 * 3600);
        }
        lo = hi;
    }
    return rand_time();
}

static int diff_case(const char *zone, int verbose)
{
    struct gexpr e;
    gen_expr(&e);
    struct sl_cron *c = P(e.text, zone);
    CHECK(c != NULL);
    if (!c)
        return 1;
    int64_t t = strcmp(zone, "UTC") != 0 && rnd(2) ? near_transition() : rand_time(), fails = 0;
    for (int step = 0; step < 3; step++) {
        int64_t want = brute_next(&e, t), got = sl_cron_next(c, t);
        int ok = want == -2 ? (got == -1 || got >= t + (int64_t)WINDOW_MIN * 60) : got == want;
        if (!ok || verbose)
            fprintf(stderr, "  %s \"%s\" [%s] next(%s) = %s, brute force %s\n",
                    ok ? "ok" : "MISMATCH", e.text, zone, fmt(t), fmt(got),
                    want == -2 ? "none in window" : fmt(want));
        CHECK(ok);
        fails += !ok;
        int64_t pwant = brute_prev(&e, t), pgot = sl_cron_prev(c, t);
        ok = pwant == -2 ? (pgot == -1 || pgot < t - (int64_t)WINDOW_MIN * 60 + 60) : pgot == pwant;
        if (!ok)
            fprintf(stderr, "  MISMATCH \"%s\" [%s] prev(%s) = %s, brute force %s\n", e.text, zone,
                    fmt(t), fmt(pgot), pwant == -2 ? "none in window" : fmt(pwant));
        CHECK(ok);
        fails += !ok;
        if (got == -1 || want == -2)
            break;
        t = got;
    }
    sl_cron_free(c);
    return fails != 0;
}

/* The zone API on its own: offsets, a skipped and a repeated wall time, and errors. */
static void test_tz_api(void)
{
    struct sl_error err;
    struct sl_tz *z = NULL;
    CHECK_INT(sl_tz_open(NULL, &z, &err), SL_OK);
    CHECK(z == NULL);
    CHECK_INT(sl_tz_offset(NULL, 1795651200), 0);
    CHECK_INT(sl_tz_from_local(NULL, 1795651200), 1795651200);
    CHECK_INT(sl_tz_open("Mars/Olympus", &z, &err), SL_ECONFIG);
    CHECK(z == NULL && strstr(err.msg, "Mars/Olympus"));
    REQUIRE(sl_tz_open("Europe/Berlin", &z, &err) == SL_OK && z);
    /* 2026-11-26T00:00Z is 01:00 CET; 2026-07-01T00:00Z is 02:00 CEST. */
    CHECK_INT(sl_tz_offset(z, 1795651200), 3600);
    CHECK_INT(sl_tz_offset(z, 1782864000), 7200);
    /* 2026-03-29 02:30 local does not exist: read with the winter offset, it is 01:30Z
     * (03:30 CEST); 02:00, the start of that hour, is 01:00Z, where the skip ends. */
    int64_t day = 1774742400; /* 2026-03-29T00:00 as civil seconds */
    CHECK_INT(sl_tz_from_local(z, day + 2 * 3600 + 1800), day + 3600 + 1800);
    CHECK_INT(sl_tz_from_local(z, day + 2 * 3600), day + 3600);
    /* 2026-10-25 02:30 local happens twice: the first is 00:30Z (CEST). */
    int64_t fall = 1792886400; /* 2026-10-25T00:00 as civil seconds */
    CHECK_INT(sl_tz_from_local(z, fall + 2 * 3600 + 1800), fall + 1800);
    sl_tz_close(z);
    sl_tz_close(NULL);
}

static void test_differential(void)
{
    const char *env = getenv("SLUICE_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
    fprintf(stderr, "test_differential: seed %llu (replay with SLUICE_TEST_SEED=%llu)\n",
            (unsigned long long)seed, (unsigned long long)seed);
    rng_state = seed * 2654435761u + 0x9e3779b97f4a7c15ULL;
    if (!rng_state)
        rng_state = 1;
    static const struct {
        const char *zone;
        int cases;
    } zones[] = {
        {"UTC", 700},
        {"Europe/Berlin", 160},
        {"America/New_York", 160},
        {"Australia/Sydney", 80},    /* southern hemisphere: DST across the new year */
        {"Australia/Lord_Howe", 60}, /* 30-minute DST shift */
        {"Asia/Kolkata", 30},        /* +05:30, no DST */
        {"America/Sao_Paulo", 60},   /* DST until 2019, then none */
    };
    int failed = 0, total = 0;
    for (size_t z = 0; z < sizeof zones / sizeof zones[0]; z++) {
        setenv("TZ", zones[z].zone, 1);
        tzset();
        for (int i = 0; i < zones[z].cases; i++, total++)
            failed += diff_case(zones[z].zone, 0);
    }
    setenv("TZ", "UTC", 1);
    tzset();
    fprintf(stderr, "test_differential: %d expressions, %d mismatched\n", total, failed);
}

/* ---- speed ------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void chain(const char *expr, const char *tz, int n, int64_t from)
{
    struct sl_cron *c = P(expr, tz);
    REQUIRE(c);
    double t0 = now_s();
    int64_t t = from, last = from;
    int k = 0;
    for (; k < n; k++) {
        t = sl_cron_next(c, t);
        if (t == -1)
            break;
        CHECK(t > last);
        last = t;
    }
    double t1 = now_s();
    int64_t back = last;
    for (int i = 0; i < k - 1; i++)
        back = sl_cron_prev(c, back - 1);
    double t2 = now_s();
    CHECK_INT(k, n);
    CHECK(back > from && back <= sl_cron_next(c, from));
    fprintf(stderr, "  %-22s %-16s %d next() in %.3f s (%.2f us each), %d prev() in %.3f s\n", expr,
            tz ? tz : "UTC", k, t1 - t0, (t1 - t0) / k * 1e6, k - 1, t2 - t1);
    /* Generous even under sanitizers: a minute-by-minute walk would take minutes. */
    CHECK(t1 - t0 < 5.0);
    sl_cron_free(c);
}

static void test_speed(void)
{
    int64_t from = T("2026-01-01 00:00");
    chain("0 2 * * *", NULL, 20000, from);
    chain("0 2 * * *", "Europe/Berlin", 20000, from);
    chain("*/5 * * * *", "America/New_York", 100000, from);
    chain("0 0 29 2 *", NULL, 300, from);
    chain("30 4 1,15 * mon", "Australia/Sydney", 5000, from);
    /* The worst case: an expression that never fires scans the whole horizon. */
    struct sl_cron *c = P("0 0 31 2 *", "Europe/Berlin");
    REQUIRE(c);
    double t0 = now_s();
    for (int i = 0; i < 100; i++)
        CHECK_INT(sl_cron_next(c, from + i * 86400), -1);
    double t1 = now_s();
    fprintf(stderr, "  never-firing expression: %.2f ms per next()\n", (t1 - t0) * 10);
    CHECK(t1 - t0 < 5.0);
    sl_cron_free(c);
}

int main(void)
{
    RUN(test_steps_lists_ranges);
    RUN(test_names_and_days);
    RUN(test_calendar_edges);
    RUN(test_macros);
    RUN(test_errors);
    RUN(test_alloc_failures);
    RUN(test_dst_berlin);
    RUN(test_dst_new_york);
    RUN(test_tz_api);
    RUN(test_differential);
    RUN(test_speed);
    return TEST_DONE();
}
