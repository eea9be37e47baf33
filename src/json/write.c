/*
 * write.c - decoding and encoding of JSON scalars: string escapes and numbers.
 *
 * The parser only validates; this file does the conversions, lazily, when a stage reads
 * a field (sl_json_str, sl_json_unescape, sl_json_num_to_*) or writes one back
 * (sl_json_write_str, sl_json_write_double). Untouched values never come here: sinks copy
 * their original spans.
 *
 * Strings: decoding never grows a string (every escape is at least as long as the UTF-8
 * it stands for: \n is 2 bytes for 1, \u00e9 6 for 2, a surrogate pair 12 for 4), so a
 * buffer of the escaped length always suffices. Encoding escapes only what RFC 8259
 * requires (quote, backslash, U+0000..U+001F) and writes everything else, including
 * non-ASCII UTF-8, as is: output stays byte-compact and readable.
 *
 * Numbers: doubles are written in the shortest of %.15g/%.16g/%.17g that reads back to the
 * same bits, integral values within +-2^53 as plain integers. Reading uses the exact fast
 * path (mantissa <= 2^53 and a power of ten <= 1e22, both exact in a double, so one IEEE
 * multiply or divide is correctly rounded) and strtod for everything else.
 *
 * Threading: pure functions; safe from any thread. Ownership: outputs go to the caller's
 * arena or buffer.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/json_internal.h"
#include "sluice/json.h"

static inline int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c - 'a' + 10; /* input already validated */
}

static inline uint32_t hex4(const char *s)
{
    return (uint32_t)((hexval((uint8_t)s[0]) << 12) | (hexval((uint8_t)s[1]) << 8) |
                      (hexval((uint8_t)s[2]) << 4) | hexval((uint8_t)s[3]));
}

/* Encode code point cp (valid, not a surrogate) as UTF-8 into o; returns the length. */
static inline size_t put_utf8(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/*
 * Decode the escape at in[0] == '\\' (validated) into o. Returns the number of input bytes
 * consumed and sets *olen to the bytes written (1..4).
 */
static inline size_t decode_escape(const char *in, char *o, size_t *olen)
{
    char c = in[1];
    switch (c) {
    case 'b':
        c = '\b';
        break;
    case 'f':
        c = '\f';
        break;
    case 'n':
        c = '\n';
        break;
    case 'r':
        c = '\r';
        break;
    case 't':
        c = '\t';
        break;
    case 'u': {
        uint32_t cp = hex4(in + 2);
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo = hex4(in + 8);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            *olen = put_utf8(cp, o);
            return 12;
        }
        *olen = put_utf8(cp, o);
        return 6;
    }
    default: /* '"', '\\', '/' stand for themselves */
        break;
    }
    o[0] = c;
    *olen = 1;
    return 2;
}

size_t sl_json_unescape(const char *in, size_t n, char *out)
{
    size_t i = 0, o = 0;
    while (i < n) {
        const char *bs = memchr(in + i, '\\', n - i);
        size_t run = bs ? (size_t)(bs - (in + i)) : n - i;
        memmove(out + o, in + i, run);
        i += run;
        o += run;
        if (!bs)
            break;
        size_t k;
        i += decode_escape(in + i, out + o, &k);
        o += k;
    }
    return o;
}

int sl__json_raw_eq(const char *raw, size_t rawlen, const char *key, size_t klen)
{
    size_t i = 0, j = 0;
    char tmp[4];
    while (i < rawlen) {
        if (raw[i] != '\\') {
            if (j >= klen || raw[i] != key[j])
                return 0;
            i++;
            j++;
            continue;
        }
        size_t k;
        i += decode_escape(raw + i, tmp, &k);
        if (klen - j < k || memcmp(tmp, key + j, k) != 0)
            return 0;
        j += k;
    }
    return j == klen;
}

sl_rc sl_json_str(const struct sl_tape *t, uint32_t i, struct sl_arena *a, const char **s,
                  size_t *n)
{
    if (i >= t->ntok || t->tok[i].type != SL_J_STRING)
        return SL_ETYPE;
    const struct sl_jtok *k = &t->tok[i];
    const char *raw = t->text + k->off + 1;
    size_t rawlen = k->len - 2;
    if (!(k->flags & SL_JTOK_ESCAPED)) {
        *s = raw;
        *n = rawlen;
        return SL_OK;
    }
    char *o = sl_arena_alloc(a, rawlen);
    if (!o)
        return SL_ENOMEM;
    *n = sl_json_unescape(raw, rawlen, o);
    *s = o;
    return SL_OK;
}

/* Non-zero for bytes that must be escaped in a JSON string. */
static inline int needs_escape(uint8_t c)
{
    return c < 0x20 || c == '"' || c == '\\';
}

sl_rc sl_json_write_str(struct sl_buf *b, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *s = (const uint8_t *)str;
    sl_rc rc = sl_buf_reserve(b, n + 2);
    if (rc)
        return rc;
    b->data[b->len++] = '"';
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && !needs_escape(s[j]))
            j++;
        if ((rc = sl_buf_append(b, s + i, j - i)))
            return rc;
        if (j == n)
            break;
        char e[6] = {'\\', 0, 0, 0, 0, 0};
        size_t elen = 2;
        switch (s[j]) {
        case '"':
            e[1] = '"';
            break;
        case '\\':
            e[1] = '\\';
            break;
        case '\b':
            e[1] = 'b';
            break;
        case '\f':
            e[1] = 'f';
            break;
        case '\n':
            e[1] = 'n';
            break;
        case '\r':
            e[1] = 'r';
            break;
        case '\t':
            e[1] = 't';
            break;
        default:
            e[1] = 'u';
            e[2] = '0';
            e[3] = '0';
            e[4] = hex[s[j] >> 4];
            e[5] = hex[s[j] & 0xF];
            elen = 6;
            break;
        }
        if ((rc = sl_buf_append(b, e, elen)))
            return rc;
        i = j + 1;
    }
    return sl_buf_putc(b, '"');
}

sl_rc sl_json_write_double(struct sl_buf *b, double d)
{
    char tmp[40];
    int n;
    if (!isfinite(d))
        return sl_buf_append(b, "null", 4);
    if (d == trunc(d) && fabs(d) <= 9007199254740992.0) {
        if (d == 0 && signbit(d))
            return sl_buf_append(b, "-0", 2);
        n = snprintf(tmp, sizeof tmp, "%" PRId64, (int64_t)d);
        return sl_buf_append(b, tmp, (size_t)n);
    }
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (prec == 17 || strtod(tmp, NULL) == d)
            break;
    }
    return sl_buf_append(b, tmp, (size_t)n);
}

/* 10^0 .. 10^22: every one exactly representable as a double. */
static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/*
 * strtod for number text of any length without a heap copy: rewrite it as
 * [-]0.<at most LONG_DIGITS significant digits>e<exponent>. Correct rounding never needs
 * more than 768 significant digits; when more are dropped and any of them is non-zero, a
 * final '1' (a sticky digit) keeps the value strictly on the same side of every rounding
 * boundary, so the result is exactly strtod's on the full text.
 */
#define LONG_DIGITS 780
static double long_to_double(const char *s, size_t n)
{
    char buf[LONG_DIGITS + 40];
    size_t i = 0, o = 0;
    long exp10 = 0;
    int nd = 0, nonzero = 0, sticky = 0;
    if (s[i] == '-')
        buf[o++] = s[i++];
    buf[o++] = '0';
    buf[o++] = '.';
    for (int frac = 0; i < n; i++) {
        char c = s[i];
        if (c == '.' && !frac) {
            frac = 1;
            continue;
        }
        if ((uint8_t)(c - '0') >= 10)
            break;
        if (!nonzero && c == '0') {
            exp10 -= frac; /* leading zeros of a fraction shift the exponent */
            continue;
        }
        nonzero = 1;
        if (nd < LONG_DIGITS) {
            buf[o++] = c;
            nd++;
        } else if (c != '0') {
            sticky = 1;
        }
        exp10 += !frac;
    }
    if (!nd)
        buf[o++] = '0';
    if (sticky)
        buf[o++] = '1';
    if (i < n && (s[i] | 0x20) == 'e') {
        int neg = 0;
        long ev = 0;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            neg = s[i++] == '-';
        for (; i < n && (uint8_t)(s[i] - '0') < 10; i++)
            if (ev < 100000000)
                ev = ev * 10 + (s[i] - '0');
        exp10 += neg ? -ev : ev;
    }
    snprintf(buf + o, sizeof buf - o, "e%ld", exp10);
    return strtod(buf, NULL);
}

double sl_json_num_to_double(const char *str, size_t n)
{
    const char *s = str, *e = str + n;
    int neg = 0;
    if (s < e && *s == '-') {
        neg = 1;
        s++;
    }
    uint64_t m = 0;
    int digits = 0, exp10 = 0;
    for (; s < e && (uint8_t)(*s - '0') < 10; s++) {
        if (m || *s != '0')
            digits++;
        m = m * 10 + (uint64_t)(*s - '0');
        if (digits > 18)
            goto slow;
    }
    if (s < e && *s == '.') {
        for (s++; s < e && (uint8_t)(*s - '0') < 10; s++) {
            if (m || *s != '0')
                digits++;
            m = m * 10 + (uint64_t)(*s - '0');
            exp10--;
            if (digits > 18)
                goto slow;
        }
    }
    if (s < e && (*s | 0x20) == 'e') {
        int eneg = 0, ev = 0;
        s++;
        if (s < e && (*s == '+' || *s == '-'))
            eneg = *s++ == '-';
        for (; s < e && (uint8_t)(*s - '0') < 10; s++) {
            if (ev > 10000)
                goto slow;
            ev = ev * 10 + (*s - '0');
        }
        exp10 += eneg ? -ev : ev;
    }
    if (s != e || m > ((uint64_t)1 << 53) || exp10 < -22 || exp10 > 22)
        goto slow;
    {
        double d = (double)m;
        d = exp10 < 0 ? d / pow10_exact[-exp10] : d * pow10_exact[exp10];
        return neg ? -d : d;
    }
slow:
    /* The text is not NUL-terminated: strtod needs a terminated copy. */
    if (n < 128) {
        char tmp[128];
        memcpy(tmp, str, n);
        tmp[n] = 0;
        return strtod(tmp, NULL);
    }
    return long_to_double(str, n);
}

int sl_json_num_to_i64(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (i < n && s[i] == '-') {
        neg = 1;
        i++;
    }
    if (i == n)
        return 0;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t v = 0;
    for (; i < n; i++) {
        unsigned dgt = (unsigned)(uint8_t)s[i] - '0';
        if (dgt > 9)
            return 0;
        if (v > (limit - dgt) / 10)
            return 0;
        v = v * 10 + dgt;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 1;
}
