/*
 * gen_clicks.c - a fast, deterministic generator of realistic click events.
 *
 *     gen_clicks --count N [--seed S] [--bad-every K] [--out FILE]
 *
 * Writes N lines of NDJSON click events (about 270 bytes each) to FILE or stdout. The demo,
 * the integration tests and the benchmark all draw their data from here, so two
 * properties matter more than anything else:
 *
 *   1. Determinism. The same seed (and the same options) yields the same bytes on every
 *      machine: the only randomness is a 64-bit splitmix generator seeded from --seed, no
 *      clock, no locale, no floating point in the output path.
 *   2. Speed. The benchmark generates a million records before every cold run, so
 *      generation must take well under two seconds. Records are formatted by hand into one
 *      fixed-size output buffer (no printf per field, no allocation at all) that is
 *      written out whenever it passes a high-water mark.
 *
 * What a record looks like, and why:
 *
 *     {"event_id":"e-00000042","ts":"2026-11-27T10:00:00.123Z","user_id":48213,
 *      "session_id":"s-9f3a1c","event_type":"purchase","page":"/products/42",
 *      "referrer":"https://www.example.com/search?q=shoes",
 *      "device":{"type":"mobile","os":"ios","version":"17.1"},
 *      "amount":19.99,"currency":"EUR","tags":["promo","returning"]}
 *
 *   - event_id is "e-" plus the 1-based line number, so ids are unique and a test can
 *     tell which line a record came from. Bad lines consume a number too.
 *   - ts starts at 2026-11-27T10:00:00.000Z and advances by 1..250 ms per line: strictly
 *     increasing, millisecond precision.
 *   - event_type is mostly page_view (~68%), then click, search, add_to_cart (~12%),
 *     purchase (~5%) and login. Only purchases carry amount and currency; other events
 *     either have "amount":null (about a third of them) or no amount key at all, so
 *     pipelines have to handle both. A tenth of the amounts are whole numbers.
 *   - device.type includes "bot" (~3%) so filters have something to drop, and device.os
 *     comes in mixed case ("iOS", "ios", "Android") so lower() has something to do.
 *   - Strings exercise the JSON escaper: search queries with \" quotes, \u00e9-style
 *     escapes, surrogate pairs, \/ and raw multi-byte UTF-8.
 *   - user_id is skewed: about 30% of events come from 500 hot users.
 *
 * --bad-every K replaces every K-th line (lines K, 2K, ...) with a malformed one, cycling
 * through five kinds: a truncated object, an invalid UTF-8 byte inside a string, a bare
 * word, an unbalanced closing brace, and an object with an unterminated string. The
 * number of bad lines goes to stderr so callers can assert on it.
 *
 * Threading: single-threaded. Ownership: everything is static or on the stack.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OUT_CAP (1u << 20)        /* output buffer size */
#define OUT_HIGH (OUT_CAP - 4096) /* flush above this; one line never exceeds 4 KiB */
#define LINE_MAX_BYTES 4096       /* hard bound on one generated line */

/* 2026-11-27T10:00:00Z as seconds since the epoch. */
#define START_EPOCH 1795773600LL

/*
 * The output buffer. Invariants:
 *   1. len <= OUT_HIGH + LINE_MAX_BYTES <= OUT_CAP at all times (a line is appended only
 *      when len <= OUT_HIGH, and no line exceeds LINE_MAX_BYTES).
 */
struct out {
    FILE *f;
    const char *name;
    size_t len;
    int failed;
    char buf[OUT_CAP];
};

static struct out g_out;

struct rng {
    uint64_t s;
};

/* splitmix64: tiny, fast, and identical on every platform. */
static uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) for small n; the modulo bias is irrelevant for sample data. */
static uint32_t rng_below(struct rng *r, uint32_t n)
{
    return (uint32_t)((rng_next(r) >> 32) % n);
}

/* A line under construction: a cursor into the output buffer. */
struct line {
    char *p;
};

static void put_raw(struct line *l, const char *s, size_t n)
{
    memcpy(l->p, s, n);
    l->p += n;
}

static void put(struct line *l, const char *s)
{
    put_raw(l, s, strlen(s));
}

static void put_ch(struct line *l, char c)
{
    *l->p++ = c;
}

static void put_u64(struct line *l, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *l->p++ = tmp[--n];
}

/* v zero-padded to width digits (v must fit). */
static void put_u64_pad(struct line *l, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        l->p[i] = (char)('0' + v % 10);
        v /= 10;
    }
    l->p += width;
}

static void put_hex(struct line *l, uint64_t v, int digits)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--) {
        l->p[i] = hex[v & 0xf];
        v >>= 4;
    }
    l->p += digits;
}

/* "key": — keys are plain ASCII and never need escaping. */
static void put_key(struct line *l, const char *key, int first)
{
    if (!first)
        put_ch(l, ',');
    put_ch(l, '"');
    put(l, key);
    put(l, "\":");
}

/* A string value written exactly as given: callers pass text that is already escaped. */
static void put_str(struct line *l, const char *escaped)
{
    put_ch(l, '"');
    put(l, escaped);
    put_ch(l, '"');
}

/*
 * Timestamp cache: formatting a date is the one costly step, and consecutive events
 * mostly share the same second, so the "YYYY-MM-DDTHH:MM:SS" prefix is rebuilt only when
 * the second changes.
 */
struct ts_cache {
    int64_t sec;
    char prefix[32];
    size_t len;
};

static void put_ts(struct line *l, struct ts_cache *c, int64_t ms)
{
    int64_t sec = ms / 1000;
    if (sec != c->sec || c->len == 0) {
        time_t t = (time_t)sec;
        struct tm tm;
        gmtime_r(&t, &tm);
        c->len = strftime(c->prefix, sizeof(c->prefix), "%Y-%m-%dT%H:%M:%S", &tm);
        c->sec = sec;
    }
    put_ch(l, '"');
    put_raw(l, c->prefix, c->len);
    put_ch(l, '.');
    put_u64_pad(l, (uint64_t)(ms % 1000), 3);
    put(l, "Z\"");
}

/* Weighted choice: weights sum to total; returns an index. */
static size_t pick_weighted(struct rng *r, const unsigned *w, size_t n, unsigned total)
{
    unsigned x = rng_below(r, total);
    for (size_t i = 0; i < n; i++) {
        if (x < w[i])
            return i;
        x -= w[i];
    }
    return n - 1;
}

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

enum ev { EV_PAGE_VIEW, EV_CLICK, EV_SEARCH, EV_ADD_TO_CART, EV_PURCHASE, EV_LOGIN };
static const char *const ev_names[] = {"page_view",   "click",    "search",
                                       "add_to_cart", "purchase", "login"};
static const unsigned ev_weights[] = {680, 80, 50, 120, 50, 20}; /* per mille */

/* Search queries, pre-escaped as JSON string content: quotes, \u escapes, raw UTF-8. */
static const char *const queries[] = {
    "shoes",
    "running+shoes",
    "red%20dress",
    "\\\"waterproof jacket\\\"",
    "caf\\u00e9 table",
    "Z\xc3\xbcrich guide",
    "na\xc3\xafve art print",
    "\\ud83d\\udc5f sneakers",
    "socks",
    "back\\\\slash",
    "50% off",
    "\xe6\x97\xa5\xe6\x9c\xac t-shirt",
};

static const char *const referrers[] = {
    "https://www.example.com/",
    "https://www.google.com/",
    "https://duckduckgo.com/",
    "https://t.co/abc123",
    "https://news.example.org/article?id=7",
    "https:\\/\\/www.example.com\\/deals",
};

static const char *const tag_names[] = {
    "promo",
    "returning",
    "new",
    "newsletter",
    "sale",
    "mobile_app",
    "gift",
    "prix-sp\303\251cial", /* octal: a hex escape would swallow the "c" */
    "\\ud83d\\udd25hot",
};

static const char *const currencies[] = {"EUR", "EUR", "EUR", "USD", "USD", "GBP"};

struct device_kind {
    const char *type;
    const char *os;
    const char *const *versions;
    size_t nversions;
};

static const char *const v_ios[] = {"16.6", "17.1", "17.2", "18.0"};
static const char *const v_android[] = {"12", "13", "14"};
static const char *const v_win[] = {"10", "11"};
static const char *const v_mac[] = {"13.5", "14.1"};
static const char *const v_linux[] = {"6.1"};
static const char *const v_bot[] = {"2.1"};

static const struct device_kind devices[] = {
    {"mobile", "ios", v_ios, NELEM(v_ios)},
    {"mobile", "iOS", v_ios, NELEM(v_ios)},
    {"mobile", "android", v_android, NELEM(v_android)},
    {"mobile", "Android", v_android, NELEM(v_android)},
    {"desktop", "windows", v_win, NELEM(v_win)},
    {"desktop", "macos", v_mac, NELEM(v_mac)},
    {"desktop", "linux", v_linux, NELEM(v_linux)},
    {"tablet", "ios", v_ios, NELEM(v_ios)},
    {"tablet", "android", v_android, NELEM(v_android)},
    {"bot", "linux", v_bot, NELEM(v_bot)},
};
static const unsigned device_weights[] = {260, 60, 220, 40, 180, 100, 30, 50, 30, 30};

static uint32_t pick_user(struct rng *r)
{
    if (rng_below(r, 10) < 3)
        return 10000 + rng_below(r, 500); /* the hot users */
    return 1 + rng_below(r, 99999);
}

static void put_page(struct line *l, struct rng *r, enum ev ev)
{
    uint32_t x = rng_below(r, 100);
    put_ch(l, '"');
    if (ev == EV_PURCHASE) {
        put(l, "/checkout/complete");
    } else if (ev == EV_SEARCH) {
        put(l, "/search?q=");
        put(l, queries[rng_below(r, NELEM(queries))]);
    } else if (ev == EV_ADD_TO_CART || x < 55) {
        put(l, "/products/");
        put_u64(l, 1 + rng_below(r, 5000));
    } else if (x < 70) {
        put(l, "/search?q=");
        put(l, queries[rng_below(r, NELEM(queries))]);
    } else if (x < 85) {
        put(l, "/");
    } else if (x < 93) {
        put(l, "/cart");
    } else {
        put(l, "/account/orders");
    }
    put_ch(l, '"');
}

static void put_referrer(struct line *l, struct rng *r)
{
    uint32_t x = rng_below(r, 100);
    if (x < 15) {
        put(l, "null");
    } else if (x < 45) {
        put(l, "\"https://www.example.com/search?q=");
        put(l, queries[rng_below(r, NELEM(queries))]);
        put_ch(l, '"');
    } else {
        put_str(l, referrers[rng_below(r, NELEM(referrers))]);
    }
}

/* One good record, fields in a fixed order. */
static void put_record(struct line *l, struct rng *r, struct ts_cache *tc, uint64_t lineno,
                       int64_t ts_ms)
{
    enum ev ev = (enum ev)pick_weighted(r, ev_weights, NELEM(ev_weights), 1000);
    uint32_t user = pick_user(r);
    const struct device_kind *dev =
        &devices[pick_weighted(r, device_weights, NELEM(device_weights), 1000)];

    put_ch(l, '{');
    put_key(l, "event_id", 1);
    put(l, "\"e-");
    put_u64_pad(l, lineno, 8);
    put_ch(l, '"');

    put_key(l, "ts", 0);
    put_ts(l, tc, ts_ms);

    put_key(l, "user_id", 0);
    put_u64(l, user);

    /* A session is a user's half hour: stable within it, different across users. */
    put_key(l, "session_id", 0);
    put(l, "\"s-");
    {
        uint64_t h = (uint64_t)user * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(ts_ms / 1800000);
        h = (h ^ (h >> 29)) * 0xbf58476d1ce4e5b9ULL;
        put_hex(l, h >> 40, 6);
    }
    put_ch(l, '"');

    put_key(l, "event_type", 0);
    put_str(l, ev_names[ev]);

    put_key(l, "page", 0);
    put_page(l, r, ev);

    put_key(l, "referrer", 0);
    put_referrer(l, r);

    put_key(l, "device", 0);
    put(l, "{\"type\":\"");
    put(l, dev->type);
    put(l, "\",\"os\":\"");
    put(l, dev->os);
    put(l, "\",\"version\":\"");
    put(l, dev->versions[rng_below(r, (uint32_t)dev->nversions)]);
    put(l, "\"}");

    if (ev == EV_PURCHASE) {
        uint32_t cents = 99 + rng_below(r, 49900);
        put_key(l, "amount", 0);
        if (rng_below(r, 10) == 0) {
            put_u64(l, cents / 100 + 1); /* a whole amount, written as an integer */
        } else {
            put_u64(l, cents / 100);
            put_ch(l, '.');
            put_u64_pad(l, cents % 100, 2);
        }
        put_key(l, "currency", 0);
        put_str(l, currencies[rng_below(r, NELEM(currencies))]);
    } else if (rng_below(r, 3) == 0) {
        put_key(l, "amount", 0);
        put(l, "null");
    }

    put_key(l, "tags", 0);
    put_ch(l, '[');
    {
        uint32_t ntags = rng_below(r, 4);
        uint32_t start = rng_below(r, (uint32_t)NELEM(tag_names));
        for (uint32_t i = 0; i < ntags; i++) {
            if (i)
                put_ch(l, ',');
            put_str(l, tag_names[(start + i * 2) % NELEM(tag_names)]);
        }
    }
    put(l, "]}");
}

enum bad_kind {
    BAD_TRUNCATED,
    BAD_UTF8,
    BAD_BARE_WORD,
    BAD_UNBALANCED,
    BAD_OPEN_STRING,
    BAD_KINDS
};

/* A malformed line of the given kind; built from a good record where that helps. */
static void put_bad(struct line *l, struct rng *r, struct ts_cache *tc, uint64_t lineno,
                    int64_t ts_ms, enum bad_kind kind)
{
    char *start = l->p;
    switch (kind) {
    case BAD_TRUNCATED:
        /* A record cut off mid-way, as a crashed writer leaves it. */
        put_record(l, r, tc, lineno, ts_ms);
        l->p = start + (l->p - start) / 2;
        break;
    case BAD_UTF8:
        /* A valid-looking object with a lone 0xff byte inside a string. */
        put(l, "{\"event_id\":\"e-");
        put_u64_pad(l, lineno, 8);
        put(l, "\",\"ts\":");
        put_ts(l, tc, ts_ms);
        put(l, ",\"event_type\":\"page_view\",\"page\":\"/products/\xff\"}");
        break;
    case BAD_BARE_WORD:
        put(l, "garbage");
        break;
    case BAD_UNBALANCED:
        put_record(l, r, tc, lineno, ts_ms);
        put_ch(l, '}');
        break;
    case BAD_OPEN_STRING:
        put(l, "{\"event_id\":\"e-");
        put_u64_pad(l, lineno, 8);
        put(l, "\",\"event_type\":\"purchase,\"amount\":1}");
        break;
    case BAD_KINDS:
        break;
    }
}

static int out_flush(struct out *o)
{
    if (o->len && !o->failed && fwrite(o->buf, 1, o->len, o->f) != o->len) {
        fprintf(stderr, "gen_clicks: cannot write %s: %s\n", o->name, strerror(errno));
        o->failed = 1;
    }
    o->len = 0;
    return o->failed ? -1 : 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!s || !*s || *s == '-')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

static void usage(FILE *f)
{
    fputs("usage: gen_clicks --count N [--seed S] [--bad-every K] [--out FILE]\n"
          "  Writes N click events as NDJSON (about 270 bytes per line) to FILE or stdout.\n"
          "  --seed S       generator seed (default 1); the same seed gives the same bytes\n"
          "  --bad-every K  make every K-th line malformed (0 = none, the default)\n",
          f);
}

int main(int argc, char **argv)
{
    uint64_t count = 0, seed = 1, bad_every = 0, bad = 0;
    const char *path = NULL;
    int have_count = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "gen_clicks: %s needs a value\n", a);
            usage(stderr);
            return 2;
        }
        if (!strcmp(a, "--count")) {
            if (parse_u64(v, &count) != 0 || count > 99999999) {
                fprintf(stderr, "gen_clicks: --count %s: expected 0..99999999\n", v);
                return 2;
            }
            have_count = 1;
        } else if (!strcmp(a, "--seed")) {
            if (parse_u64(v, &seed) != 0) {
                fprintf(stderr, "gen_clicks: --seed %s: expected a non-negative integer\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--bad-every")) {
            if (parse_u64(v, &bad_every) != 0) {
                fprintf(stderr, "gen_clicks: --bad-every %s: expected a non-negative integer\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--out")) {
            path = v;
        } else {
            fprintf(stderr, "gen_clicks: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (!have_count) {
        fprintf(stderr, "gen_clicks: --count is required\n");
        usage(stderr);
        return 2;
    }

    struct out *o = &g_out;
    o->name = path ? path : "stdout";
    o->f = path ? fopen(path, "wb") : stdout;
    if (!o->f) {
        fprintf(stderr, "gen_clicks: cannot create %s: %s\n", path, strerror(errno));
        return 1;
    }

    struct rng r = {seed * 0x2545f4914f6cdd1dULL + 0x1234567ULL};
    struct ts_cache tc = {0};
    int64_t ts_ms = START_EPOCH * 1000;

    for (uint64_t n = 1; n <= count; n++) {
        struct line l = {o->buf + o->len};
        ts_ms += 1 + rng_below(&r, 250);
        if (bad_every && n % bad_every == 0) {
            put_bad(&l, &r, &tc, n, ts_ms, (enum bad_kind)(bad % BAD_KINDS));
            bad++;
        } else {
            put_record(&l, &r, &tc, n, ts_ms);
        }
        put_ch(&l, '\n');
        o->len = (size_t)(l.p - o->buf);
        if (o->len > OUT_HIGH && out_flush(o) != 0)
            break;
    }
    out_flush(o);
    if (path && fclose(o->f) != 0 && !o->failed) {
        fprintf(stderr, "gen_clicks: cannot write %s: %s\n", path, strerror(errno));
        o->failed = 1;
    } else if (!path && fflush(stdout) != 0 && !o->failed) {
        fprintf(stderr, "gen_clicks: cannot write stdout: %s\n", strerror(errno));
        o->failed = 1;
    }
    if (o->failed)
        return 1;
    if (bad_every)
        fprintf(stderr, "gen_clicks: wrote %" PRIu64 " lines, %" PRIu64 " bad\n", count, bad);
    return 0;
}
