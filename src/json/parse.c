/*
 * parse.c - the validating single-pass JSON parser that turns a record's text into a tape.
 *
 * Every record that enters sluice as JSON goes through sl_json_parse exactly once, so this
 * file is the hot path of the whole engine. It reads the text once, front to back, and
 * emits one struct sl_jtok per value and per object key (json.h states the tape's
 * invariants; docs/internals/json.md has its byte layout and the measurements). Nothing is
 * decoded or copied: a token is (offset, length, next, count, type, flags) into the
 * caller's text. Strings are only checked here (UTF-8, escapes, surrogate pairs); they are
 * decoded later by sl_json_str when something actually reads them.
 *
 * How it stays fast:
 *   - No recursion and no explicit stack array: while a container is open, its token's
 *     `next` field holds the index of the enclosing container (the "parent link",
 *     invariant P2 below); closing the container replaces it with the real `next`. The
 *     nesting depth is a counter checked against max_depth.
 *   - No allocation per token: tokens go to a scratch array owned by the parser, grown by
 *     doubling and reused across calls; at the end exactly ntok tokens are copied to the
 *     arena in one memcpy.
 *   - Strings are scanned 8 bytes at a time (SWAR): one 64-bit load answers "is there a
 *     quote, backslash, control byte or non-ASCII byte in these 8?". Plain ASCII runs,
 *     which is nearly every key and most values, cost one load and a few ALU ops per 8
 *     bytes. Non-ASCII bytes drop to a table-free UTF-8 validator, then back to SWAR.
 *
 * Errors: the first violation stops the parse with SL_EPARSE, the byte offset of the
 * offending byte, a rule from the fixed vocabulary of json.h (truncated, leading_zero,
 * overlong_utf8, ...) and a message saying what was expected. Naming the rule precisely
 * sometimes needs a look around the offending byte (is this ']' after a comma? does this
 * 'N' start NaN? is this bad UTF-8 overlong?); that happens in cold helpers called only
 * once a violation is certain, so valid input pays nothing for it. For invalid UTF-8 the
 * offset is that of the sequence's first byte (the byte that cannot start or finish a
 * character). With SL_JSON_REJECT_DUPLICATES a finished tape is checked for repeated keys
 * (dups.c) before it is returned.
 *
 * Threading: a parser is scratch space for one thread at a time. The tape it returns lives
 * in the caller's arena and never changes, so any thread may read it.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "json/json_internal.h"
#include "sluice/alloc.h"
#include "sluice/json.h"

/*
 * Parser scratch space.
 *
 * Invariants:
 *   P1. tok has room for cap tokens (cap == 0 iff tok == NULL); cap never exceeds
 *       TOK_CAP_MAX, which bounds the scratch memory a hostile input can cause.
 *   P2. During a parse, the `next` field of a container token that is still open holds the
 *       index of its enclosing open container, or NO_PARENT for the root. Every container
 *       is closed (P2 no longer applies) before sl_json_parse returns SL_OK.
 */
struct sl_json_parser {
    struct sl_jtok *tok;
    uint32_t cap;
    unsigned flags; /* SL_JSON_* */
};

#define NO_PARENT UINT32_MAX
/* A token consumes at least one byte of text, so 2^30 + 1 tokens always suffice. */
#define TOK_CAP_MAX ((uint32_t)(SL_JSON_MAX_TEXT + 1))
#define TOK_CAP_MIN 256u

sl_rc sl_json_parser_create(struct sl_json_parser **out)
{
    struct sl_json_parser *p = sl_calloc(1, sizeof *p);
    if (!p)
        return SL_ENOMEM;
    *out = p;
    return SL_OK;
}

void sl_json_parser_destroy(struct sl_json_parser *p)
{
    if (!p)
        return;
    sl_free(p->tok);
    sl_free(p);
}

void sl_json_parser_set_flags(struct sl_json_parser *p, unsigned flags)
{
    p->flags = flags;
}

/* Grow the scratch token array (P1). Cold: a reused parser grows only on its first docs. */
static __attribute__((noinline)) sl_rc grow_tokens(struct sl_json_parser *p)
{
    uint32_t cap = p->cap ? p->cap : TOK_CAP_MIN / 2;
    if (cap >= TOK_CAP_MAX)
        return SL_ELIMIT;
    cap = cap > TOK_CAP_MAX / 2 ? TOK_CAP_MAX : cap * 2;
    struct sl_jtok *t = sl_realloc(p->tok, (size_t)cap * sizeof *t);
    if (!t)
        return SL_ENOMEM;
    p->tok = t;
    p->cap = cap;
    return SL_OK;
}

static sl_rc fail(struct sl_json_error *err, size_t off, const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Fill err (when given) with the offset, rule (a static SL_JSON_RULE_* string) and message
 * and return SL_EPARSE. */
static __attribute__((noinline, cold)) sl_rc fail(struct sl_json_error *err, size_t off,
                                                  const char *rule, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->offset = off;
        err->rule = rule;
        err->path[0] = 0;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return SL_EPARSE;
}

/* Describe byte c for an error message: 'x' when printable ASCII, else 0xNN. */
static const char *byte_desc(uint8_t c, char buf[8])
{
    if (c >= 0x20 && c < 0x7F)
        snprintf(buf, 8, "'%c'", c);
    else
        snprintf(buf, 8, "0x%02X", c);
    return buf;
}

/*
 * Length of the valid UTF-8 sequence starting at s[0] (a byte >= 0x80), or 0 when it is
 * invalid: a continuation byte where a character must start, an overlong form (C0, C1,
 * E0 80..9F, F0 80..8F), a UTF-16 surrogate (ED A0..BF), a code point above U+10FFFF
 * (F4 90.., F5..FF) or a sequence cut short by the end of the text.
 */
static inline size_t utf8_seq(const uint8_t *s, size_t avail)
{
    uint8_t c = s[0];
    if (c >= 0xC2 && c <= 0xDF) {
        if (avail >= 2 && (s[1] & 0xC0) == 0x80)
            return 2;
        return 0;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (avail < 3 || (s[2] & 0xC0) != 0x80)
            return 0;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
        return s[1] >= lo && s[1] <= hi ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (avail < 4 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
        return s[1] >= lo && s[1] <= hi ? 4 : 0;
    }
    return 0;
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static inline uint64_t load64(const uint8_t *s)
{
    uint64_t w;
    memcpy(&w, s, 8);
    return w;
}

/*
 * For 8 bytes in w, a mask whose lowest set high bit marks the first byte that is a quote,
 * a backslash, a control character (< 0x20) or non-ASCII (>= 0x80). Bits above the first
 * may be spurious (borrows), which is fine: only the lowest one is used. Little-endian
 * only; big-endian builds take the byte loop.
 */
static inline uint64_t string_stop_mask(uint64_t w)
{
    uint64_t q = w ^ (ONES * '"');
    uint64_t b = w ^ (ONES * '\\');
    uint64_t m = ((q - ONES) & ~q) | ((b - ONES) & ~b) | ((w - ONES * 0x20) & ~w);
    return (m | w) & HIGHS;
}

int sl_utf8_valid(const char *str, size_t n, size_t *bad_off)
{
    const uint8_t *s = (const uint8_t *)str;
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n && (load64(s + i) & HIGHS) == 0) {
            i += 8;
            continue;
        }
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = utf8_seq(s + i, n - i);
        if (k == 0) {
            if (bad_off)
                *bad_off = i;
            return 0;
        }
        i += k;
    }
    return 1;
}

static inline int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Read 4 hex digits at s[pos]; -1 when they are not there. */
static inline int32_t hex4(const uint8_t *s, size_t len, size_t pos)
{
    if (len - pos < 4)
        return -1;
    int a = hexval(s[pos]), b = hexval(s[pos + 1]), c = hexval(s[pos + 2]), d = hexval(s[pos + 3]);
    if ((a | b | c | d) < 0)
        return -1;
    return (a << 12) | (b << 8) | (c << 4) | d;
}

/*
 * Error classification. Everything below runs only after the parser has found a violation,
 * so it may look around the offending byte (backwards too) to name the rule precisely;
 * the hot path above pays nothing for it.
 */

/* Does s[pos..len) start with word (ASCII, case-insensitive)? */
static int starts_with_ci(const uint8_t *s, size_t len, size_t pos, const char *word)
{
    size_t n = strlen(word);
    if (len - pos < n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((s[pos + i] | 0x20) != (uint8_t)word[i])
            return 0;
    return 1;
}

/* NaN, Infinity or inf (any case) at pos: the non-standard numbers some writers emit. */
static int is_nan_inf(const uint8_t *s, size_t len, size_t pos)
{
    return starts_with_ci(s, len, pos, "nan") || starts_with_ci(s, len, pos, "inf");
}

/* The last byte before pos that is not JSON whitespace, or -1 when there is none. */
static int prev_nonspace(const uint8_t *s, size_t pos)
{
    while (pos > 0) {
        uint8_t c = s[--pos];
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
            return c;
    }
    return -1;
}

/* A \u escape at s[pos] without 4 hex digits: cut short by the end, or a bad digit. */
static __attribute__((noinline, cold)) void bad_hex_escape(const uint8_t *s, size_t len, size_t pos,
                                                           struct sl_json_error *err)
{
    size_t i = pos + 2;
    while (i < len && i < pos + 6 && hexval(s[i]) >= 0)
        i++;
    if (i >= len)
        fail(err, len, "unterminated_string",
             "unterminated string: the input ends inside the \\u escape at byte %zu", pos);
    else
        fail(err, i, "bad_escape",
             "invalid \\u escape at byte %zu: expected 4 hex digits after \\u, found %s", pos,
             byte_desc(s[i], (char[8]){0}));
}

/* Name what is wrong with the UTF-8 sequence starting at s[pos] (utf8_seq returned 0). */
static __attribute__((noinline, cold)) void utf8_fail(const uint8_t *s, size_t len, size_t pos,
                                                      struct sl_json_error *err)
{
    uint8_t c = s[pos], c1 = pos + 1 < len ? s[pos + 1] : 0;
    size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    if (c < 0xC0) {
        fail(err, pos, "invalid_utf8",
             "invalid UTF-8 in string: continuation byte 0x%02X where a character must start "
             "(the text is not UTF-8; convert it, e.g. from Latin-1)",
             c);
        return;
    }
    if (c == 0xC0 || c == 0xC1 || (c == 0xE0 && c1 >= 0x80 && c1 < 0xA0) ||
        (c == 0xF0 && c1 >= 0x80 && c1 < 0x90)) {
        fail(err, pos, "overlong_utf8",
             "overlong UTF-8 encoding in string: lead byte 0x%02X encodes a character in more "
             "bytes than needed (forbidden by RFC 3629)",
             c);
        return;
    }
    if (c == 0xED && c1 >= 0xA0 && c1 <= 0xBF) {
        fail(err, pos, "invalid_utf8",
             "invalid UTF-8 in string: bytes 0x%02X 0x%02X encode a UTF-16 surrogate "
             "(U+D800..U+DFFF), which UTF-8 forbids",
             c, c1);
        return;
    }
    if (c >= 0xF8) {
        fail(err, pos, "invalid_utf8",
             "invalid UTF-8 in string: byte 0x%02X never occurs in UTF-8 (the text is not "
             "UTF-8)",
             c);
        return;
    }
    if (c > 0xF4 || (c == 0xF4 && c1 >= 0x90)) {
        fail(err, pos, "invalid_utf8",
             "invalid UTF-8 in string: byte 0x%02X starts a code point above U+10FFFF", c);
        return;
    }
    for (size_t k = 1; k < need; k++) {
        if (pos + k >= len) {
            fail(err, pos, "invalid_utf8",
                 "invalid UTF-8 in string: the %zu-byte sequence starting with 0x%02X is cut "
                 "short by the end of the input",
                 need, c);
            return;
        }
        if ((s[pos + k] & 0xC0) != 0x80) {
            fail(err, pos, "invalid_utf8",
                 "invalid UTF-8 in string: lead byte 0x%02X needs %zu continuation bytes, "
                 "byte %zu is 0x%02X",
                 c, need - 1, pos + k, s[pos + k]);
            return;
        }
    }
    fail(err, pos, "invalid_utf8", "invalid UTF-8 sequence starting with byte 0x%02X in string", c);
}

/* A number starting at start is malformed at pos (a digit was required there). */
static __attribute__((noinline, cold)) void bad_number(const uint8_t *s, size_t len, size_t start,
                                                       size_t pos, struct sl_json_error *err)
{
    char d[8];
    if (pos == start + 1 && s[start] == '-' && pos < len && is_nan_inf(s, len, pos)) {
        fail(err, start, "nan_infinity",
             "-Infinity is not a JSON number (JSON has no NaN or infinities; write null or a "
             "string)");
        return;
    }
    const char *what = s[pos - 1] == '-' && pos - 1 == start ? "after '-'"
                       : s[pos - 1] == '.'                   ? "after '.'"
                                                             : "in the exponent";
    if (pos >= len)
        fail(err, len, "truncated",
             "unexpected end of input at byte %zu: expected a digit %s in number "
             "(the document is truncated)",
             len, what);
    else
        fail(err, pos, "invalid_number", "invalid number: expected a digit %s, found %s", what,
             byte_desc(s[pos], d));
}

/* A value starting with t, f or n at pos that is not true, false or null. */
static __attribute__((noinline, cold)) sl_rc bad_literal(const uint8_t *s, size_t len, size_t pos,
                                                         const char *lit, struct sl_json_error *err)
{
    size_t n = strlen(lit), e = pos + 1;
    if (is_nan_inf(s, len, pos))
        return fail(err, pos, "nan_infinity",
                    "NaN/Infinity is not a JSON value (JSON has no NaN or infinities; write "
                    "null or a string)");
    while (e < len && e < pos + n && s[e] == (uint8_t)lit[e - pos])
        e++;
    if (e >= len)
        return fail(err, len, "truncated",
                    "unexpected end of input at byte %zu inside literal (expected %s; the "
                    "document is truncated)",
                    len, lit);
    return fail(err, e, "invalid_literal", "invalid literal at byte %zu (expected %s)", pos, lit);
}

/* s[pos] cannot start a value. */
static __attribute__((noinline, cold)) sl_rc bad_value(const uint8_t *s, size_t len, size_t pos,
                                                       struct sl_json_error *err)
{
    char d[8];
    uint8_t c = s[pos];
    if (c == ']' || c == '}') {
        if (prev_nonspace(s, pos) == ',')
            return fail(err, pos, "trailing_comma",
                        "trailing comma before '%c' (JSON allows no comma after the last "
                        "element)",
                        c);
        return fail(err, pos, "expected_value", "expected a value before '%c'", c);
    }
    if (c == '\'')
        return fail(err, pos, "single_quote",
                    "single-quoted string (JSON strings use double quotes \")");
    if (is_nan_inf(s, len, pos) || (c == '+' && pos + 1 < len && is_nan_inf(s, len, pos + 1)))
        return fail(err, pos, "nan_infinity",
                    "NaN/Infinity is not a JSON value (JSON has no NaN or infinities; write "
                    "null or a string)");
    if (c == '+')
        return fail(err, pos, "invalid_number", "invalid number: JSON numbers have no '+' sign");
    if (c == '.')
        return fail(err, pos, "invalid_number",
                    "invalid number: a digit is required before '.' (write 0.5, not .5)");
    if (pos == 0 && len >= 3 && c == 0xEF && s[1] == 0xBB && s[2] == 0xBF)
        return fail(err, 0, "byte_order_mark",
                    "UTF-8 byte order mark at the start of the input (remove it: JSON text "
                    "must not begin with one)");
    if (c >= 0x80)
        return fail(err, pos, "expected_value", "invalid byte 0x%02X where a value was expected",
                    c);
    return fail(err, pos, "expected_value", "unexpected %s where a value was expected",
                byte_desc(c, d));
}

/* An object key was expected at pos (the end of the input or a byte other than '"'). */
static __attribute__((noinline, cold)) sl_rc bad_key(const uint8_t *s, size_t len, size_t pos,
                                                     struct sl_json_error *err)
{
    char d[8];
    if (pos >= len)
        return fail(err, len, "truncated",
                    "unexpected end of input at byte %zu: expected an object key (the document "
                    "is truncated)",
                    len);
    if (s[pos] == '}')
        return fail(err, pos, "trailing_comma",
                    "trailing comma before '}' (JSON allows no comma after the last member)");
    if (s[pos] == '\'')
        return fail(err, pos, "single_quote",
                    "single-quoted object key (JSON keys are strings in double quotes \")");
    return fail(err, pos, "expected_key", "expected a string key in double quotes, found %s",
                byte_desc(s[pos], d));
}

/*
 * Check one escape at s[pos] == '\\'. Returns the offset after it, or SIZE_MAX with err
 * filled. A \u high surrogate must be followed directly by a \u low surrogate.
 */
static __attribute__((noinline)) size_t scan_escape(const uint8_t *s, size_t len, size_t pos,
                                                    struct sl_json_error *err)
{
    if (pos + 1 >= len) {
        fail(err, len, "unterminated_string",
             "unterminated string: the input ends inside an escape sequence");
        return SIZE_MAX;
    }
    switch (s[pos + 1]) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
        return pos + 2;
    case 'u':
        break;
    default:
        if (s[pos + 1] >= 0x20 && s[pos + 1] < 0x7F)
            fail(err, pos + 1, "bad_escape",
                 "invalid escape '\\%c' in string (allowed: \\\" \\\\ \\/ \\b \\f "
                 "\\n \\r \\t \\uXXXX)",
                 s[pos + 1]);
        else
            fail(err, pos + 1, "bad_escape",
                 "invalid escape: backslash followed by byte 0x%02X in string", s[pos + 1]);
        return SIZE_MAX;
    }
    int32_t u = hex4(s, len, pos + 2);
    if (u < 0) {
        bad_hex_escape(s, len, pos, err);
        return SIZE_MAX;
    }
    if (u >= 0xDC00 && u <= 0xDFFF) {
        fail(err, pos, "lone_surrogate",
             "lone low surrogate \\u%04X in string (not preceded by a high surrogate)",
             (unsigned)u);
        return SIZE_MAX;
    }
    if (u < 0xD800 || u > 0xDBFF)
        return pos + 6;
    int32_t lo = -1;
    if (len - pos >= 8 && s[pos + 6] == '\\' && s[pos + 7] == 'u')
        lo = hex4(s, len, pos + 8);
    if (lo < 0xDC00 || lo > 0xDFFF) {
        fail(err, pos, "lone_surrogate",
             "lone high surrogate \\u%04X in string (must be followed by a \\uDC00-"
             "\\uDFFF escape)",
             (unsigned)u);
        return SIZE_MAX;
    }
    return pos + 12;
}

/*
 * Offset of the first byte at or after pos that ends a plain run inside a string (quote,
 * backslash, control byte, non-ASCII), or len when the text ends first.
 */
static inline size_t skip_plain(const uint8_t *s, size_t len, size_t pos)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (len - pos >= 8) {
        uint64_t m = string_stop_mask(load64(s + pos));
        if (m)
            return pos + ((size_t)__builtin_ctzll(m) >> 3);
        pos += 8;
    }
#endif
    while (pos < len && s[pos] >= 0x20 && s[pos] != '"' && s[pos] != '\\' && s[pos] < 0x80)
        pos++;
    return pos;
}

/* The scanner proper, inlined into the parse loop (the exported wrapper is for path.c). */
static inline __attribute__((always_inline)) size_t
scan_string(const uint8_t *s, size_t len, size_t pos, uint8_t *flags, struct sl_json_error *err)
{
    size_t start = pos;
    pos++; /* the opening quote */
    for (;;) {
        pos = skip_plain(s, len, pos);
        if (pos >= len) {
            fail(err, len, "unterminated_string",
                 "unterminated string: the string starting at byte %zu has no closing quote",
                 start);
            return SIZE_MAX;
        }
        uint8_t c = s[pos];
        if (c == '"')
            return pos + 1;
        if (c == '\\') {
            *flags |= SL_JTOK_ESCAPED;
            pos = scan_escape(s, len, pos, err);
            if (pos == SIZE_MAX)
                return SIZE_MAX;
        } else if (c < 0x20) {
            fail(err, pos, "control_character",
                 "unescaped control character 0x%02X in string (write it as \\u%04X)", c, c);
            return SIZE_MAX;
        } else {
            size_t k = utf8_seq(s + pos, len - pos);
            if (k == 0) {
                utf8_fail(s, len, pos, err);
                return SIZE_MAX;
            }
            pos += k;
        }
    }
}

size_t sl__json_scan_string(const uint8_t *s, size_t len, size_t pos, uint8_t *flags,
                            struct sl_json_error *err)
{
    return scan_string(s, len, pos, flags, err);
}

static inline int is_digit(uint8_t c)
{
    return (uint8_t)(c - '0') < 10;
}

/*
 * Validate a number at s[pos] (a '-' or a digit). Returns the offset after it or SIZE_MAX
 * with err filled. Sets SL_JTOK_INTEGER when there is neither fraction nor exponent.
 */
static inline size_t scan_number(const uint8_t *s, size_t len, size_t pos, uint8_t *flags,
                                 struct sl_json_error *err)
{
    size_t start = pos;
    if (s[pos] == '-') {
        pos++;
        if (pos >= len || !is_digit(s[pos])) {
            bad_number(s, len, start, pos, err);
            return SIZE_MAX;
        }
    }
    if (s[pos] == '0') {
        pos++;
        if (pos < len && is_digit(s[pos])) {
            fail(err, start, "leading_zero",
                 "leading zero in number (JSON allows 0, 0.x or a number without leading "
                 "zeros; quote it if it is an identifier)");
            return SIZE_MAX;
        }
    } else {
        while (pos < len && is_digit(s[pos]))
            pos++;
    }
    uint8_t f = SL_JTOK_INTEGER;
    if (pos < len && s[pos] == '.') {
        pos++;
        if (pos >= len || !is_digit(s[pos])) {
            bad_number(s, len, start, pos, err);
            return SIZE_MAX;
        }
        while (pos < len && is_digit(s[pos]))
            pos++;
        f = 0;
    }
    if (pos < len && (s[pos] | 0x20) == 'e') {
        pos++;
        if (pos < len && (s[pos] == '+' || s[pos] == '-'))
            pos++;
        if (pos >= len || !is_digit(s[pos])) {
            bad_number(s, len, start, pos, err);
            return SIZE_MAX;
        }
        while (pos < len && is_digit(s[pos]))
            pos++;
        f = 0;
    }
    *flags = f;
    return pos;
}

static inline size_t skip_ws(const uint8_t *s, size_t len, size_t pos)
{
    while (pos < len && (s[pos] == ' ' || s[pos] == '\n' || s[pos] == '\r' || s[pos] == '\t'))
        pos++;
    return pos;
}

/* Whitespace is rare in machine-written JSON: test one byte inline before looping. */
#define SKIP_WS()                                                                                  \
    do {                                                                                           \
        if (pos < len && s[pos] <= ' ')                                                            \
            pos = skip_ws(s, len, pos);                                                            \
    } while (0)

#define NEED_TOKEN()                                                                               \
    do {                                                                                           \
        if (ntok == p->cap) {                                                                      \
            rc = grow_tokens(p);                                                                   \
            if (rc)                                                                                \
                goto out;                                                                          \
            tok = p->tok;                                                                          \
        }                                                                                          \
    } while (0)

sl_rc sl_json_parse(struct sl_json_parser *p, const char *text, size_t len, uint32_t max_depth,
                    struct sl_arena *a, struct sl_tape *out, struct sl_json_error *err)
{
    const uint8_t *s = (const uint8_t *)text;
    struct sl_jtok *tok = p->tok;
    uint32_t ntok = 0, cur = NO_PARENT, depth = 0;
    size_t pos = 0;
    sl_rc rc = SL_OK;
    char d[8];

    if (len > SL_JSON_MAX_TEXT) {
        if (err) {
            err->offset = SL_JSON_MAX_TEXT;
            err->rule = "too_large";
            err->path[0] = 0;
            snprintf(err->msg, sizeof err->msg,
                     "document of %zu bytes exceeds the 1 GiB limit for one JSON text", len);
        }
        return SL_ELIMIT;
    }
    if (max_depth == 0)
        max_depth = SL_JSON_DEFAULT_MAX_DEPTH;

value:
    /* A value starts at pos (after optional whitespace). */
    SKIP_WS();
    if (pos >= len) {
        rc = ntok == 0 ? fail(err, len, "empty", "empty input: expected a JSON value")
                       : fail(err, len, "truncated",
                              "unexpected end of input at byte %zu: expected a value (the "
                              "document is truncated)",
                              len);
        goto out;
    }
    NEED_TOKEN();
    {
        struct sl_jtok *t = &tok[ntok];
        t->off = (uint32_t)pos;
        t->count = 0;
        t->flags = 0;
        t->reserved = 0;
        uint8_t c = s[pos];
        switch (c) {
        case '"': {
            uint8_t fl = 0;
            size_t end = scan_string(s, len, pos, &fl, err);
            if (end == SIZE_MAX) {
                rc = SL_EPARSE;
                goto out;
            }
            t->type = SL_J_STRING;
            t->flags = fl;
            t->len = (uint32_t)(end - pos);
            t->next = ++ntok;
            pos = end;
            goto after_value;
        }
        case '{':
        case '[':
            if (depth >= max_depth) {
                rc = fail(err, pos, "depth",
                          "nesting deeper than %u levels (raise max_depth or flatten the data)",
                          (unsigned)max_depth);
                goto out;
            }
            depth++;
            t->type = c == '{' ? SL_J_OBJECT : SL_J_ARRAY;
            t->next = cur; /* P2: parent link until closed */
            cur = ntok++;
            pos++;
            SKIP_WS();
            if (pos < len && s[pos] == (c == '{' ? '}' : ']'))
                goto close;
            if (c == '{')
                goto key;
            tok[cur].count = 1;
            goto value;
        case 't':
        case 'f':
        case 'n': {
            static const char *const lit[3] = {"true", "false", "null"};
            static const uint8_t litlen[3] = {4, 5, 4};
            static const uint8_t littype[3] = {SL_J_TRUE, SL_J_FALSE, SL_J_NULL};
            int k = c == 't' ? 0 : c == 'f' ? 1 : 2;
            size_t n = litlen[k];
            if (len - pos < n || memcmp(s + pos, lit[k], n) != 0) {
                rc = bad_literal(s, len, pos, lit[k], err);
                goto out;
            }
            t->type = littype[k];
            t->len = (uint32_t)n;
            t->next = ++ntok;
            pos += n;
            goto after_value;
        }
        default:
            if (c == '-' || is_digit(c)) {
                uint8_t fl = 0;
                size_t end = scan_number(s, len, pos, &fl, err);
                if (end == SIZE_MAX) {
                    rc = SL_EPARSE;
                    goto out;
                }
                t->type = SL_J_NUMBER;
                t->flags = fl;
                t->len = (uint32_t)(end - pos);
                t->next = ++ntok;
                pos = end;
                goto after_value;
            }
            rc = bad_value(s, len, pos, err);
            goto out;
        }
    }

key:
    /* An object member starts at pos: a string key, ':' and a value. */
    if (pos >= len || s[pos] != '"') {
        rc = bad_key(s, len, pos, err);
        goto out;
    }
    NEED_TOKEN();
    {
        struct sl_jtok *t = &tok[ntok];
        uint8_t fl = 0;
        size_t end = scan_string(s, len, pos, &fl, err);
        if (end == SIZE_MAX) {
            rc = SL_EPARSE;
            goto out;
        }
        t->off = (uint32_t)pos;
        t->len = (uint32_t)(end - pos);
        t->next = ++ntok;
        t->count = 0;
        t->type = SL_J_STRING;
        t->flags = fl;
        t->reserved = 0;
        tok[cur].count++;
        pos = end;
    }
    if (pos < len && s[pos] == ':') {
        pos++;
        goto value;
    }
    SKIP_WS();
    if (pos >= len || s[pos] != ':') {
        rc = pos >= len ? fail(err, len, "truncated",
                               "unexpected end of input at byte %zu: expected ':' after object "
                               "key (the document is truncated)",
                               len)
                        : fail(err, pos, "expected_colon",
                               "expected ':' after object key, found %s", byte_desc(s[pos], d));
        goto out;
    }
    pos++;
    goto value;

after_value:
    /* A value just ended at pos: what may follow depends on the enclosing container. */
    if (cur == NO_PARENT)
        goto done;
    SKIP_WS();
    if (pos >= len) {
        rc = fail(err, len, "truncated",
                  "unexpected end of input at byte %zu: expected ',' or '%c' (the document is "
                  "truncated)",
                  len, tok[cur].type == SL_J_OBJECT ? '}' : ']');
        goto out;
    }
    if (tok[cur].type == SL_J_OBJECT) {
        if (s[pos] == ',') {
            pos++;
            SKIP_WS();
            goto key;
        }
        if (s[pos] == '}')
            goto close;
        rc = fail(err, pos, "expected_comma", "expected ',' or '}' after object member, found %s",
                  byte_desc(s[pos], d));
        goto out;
    }
    if (s[pos] == ',') {
        pos++;
        tok[cur].count++;
        goto value;
    }
    if (s[pos] == ']')
        goto close;
    rc = fail(err, pos, "expected_comma", "expected ',' or ']' after array element, found %s",
              byte_desc(s[pos], d));
    goto out;

close:
    /* s[pos] is the closing bracket of container cur. */
    {
        struct sl_jtok *t = &tok[cur];
        uint32_t parent = t->next; /* P2 */
        assert(t->type == SL_J_OBJECT || t->type == SL_J_ARRAY);
        assert(parent == NO_PARENT || parent < cur);
        t->next = ntok;
        t->len = (uint32_t)(pos + 1 - t->off);
        pos++;
        depth--;
        cur = parent;
        goto after_value;
    }

done:
    assert(depth == 0 && ntok > 0 && tok[0].next == ntok); /* P2 closed; json.h inv. 1 */
    SKIP_WS();
    if (pos != len) {
        rc = fail(err, pos, "trailing_garbage",
                  "unexpected %s after the JSON value ended at byte %zu (one value per "
                  "document)",
                  byte_desc(s[pos], d), tok[0].off + (size_t)tok[0].len);
        goto out;
    }
    {
        struct sl_jtok *copy = sl_arena_alloc(a, (size_t)ntok * sizeof *copy);
        if (!copy) {
            rc = SL_ENOMEM;
            goto out;
        }
        memcpy(copy, tok, (size_t)ntok * sizeof *copy);
        /* Invariant 1 of json.h. */
        struct sl_tape t = {text, (uint32_t)len, ntok, copy};
        if ((p->flags & SL_JSON_REJECT_DUPLICATES) && (rc = sl__json_check_duplicates(&t, err)))
            goto out; /* the tokens stay in the arena, unreferenced */
        *out = t;
    }
out:
    return rc;
}
