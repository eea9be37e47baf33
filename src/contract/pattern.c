/*
 * pattern.c - `pattern`: JSON Schema regular expressions run by POSIX regexec.
 *
 * JSON Schema patterns are ECMA-262 regular expressions; the C library offers POSIX ERE.
 * The two agree on most of what contracts use (literals, ., [], [^], *, +, ?, {n,m}, |,
 * (), ^, $) but not on everything, and a pattern that silently meant something else
 * would be worse than none. So a pattern is translated construct by construct into an
 * ERE with exactly the same set of matching strings, and anything without an exact
 * translation is a load error that names the construct:
 *
 *   translated  \d \D \w \W \s \S (ECMA's definitions: ASCII digits and word characters,
 *               ECMA's Unicode white space), \. \\ \/ etc. (escaped literals), \t \n \r
 *               \f \v \xHH \uHHHH (characters), (?: (a plain group: we only ask whether
 *               a pattern matches, never what a group captured), lazy quantifiers *? +?
 *               ?? {n,m}? (laziness changes which match is found, not whether one
 *               exists), . (any character except \n \r U+2028 U+2029, as in ECMA)
 *   rejected    \b \B (word boundaries), backreferences \1..\9 and \k<name>, lookaround
 *               (?= (?! (?<= (?<!, named groups (?<name>, \p{..}, \cX, \0, other
 *               escapes, POSIX-only bracket syntax [: [. [= (it means something else in
 *               ECMA), ranges whose ends are not ASCII, and the empty classes [] [^]
 *
 * Matching is an unanchored search, as JSON Schema says: "^" and "$" anchor when the
 * pattern writes them. A pattern that can match a non-ASCII character (".", a negated
 * class, \D \W \S \s, a non-ASCII literal) is compiled and run in the C.UTF-8 locale,
 * so it consumes whole characters, not bytes. Every other pattern can only ever match
 * ASCII bytes, each of which is a whole character in valid UTF-8, so it runs in the C
 * locale with the same result, about four times faster in glibc's regexec.
 *
 * Threading: translation and compilation happen at load; regexec on a compiled regex is
 * safe from several threads. uselocale() is per thread.
 */
#include <locale.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "contract/contract_internal.h"
#include "sluice/buf.h"

/* ECMA-262 WhiteSpace and LineTerminator, as UTF-8, for a bracket expression. */
static const char space_chars[] = " \t\n\v\f\r"
                                  "\xC2\xA0"                                         /* U+00A0 */
                                  "\xE1\x9A\x80"                                     /* U+1680 */
                                  "\xE2\x80\x80\xE2\x80\x81\xE2\x80\x82\xE2\x80\x83" /* 2000- */
                                  "\xE2\x80\x84\xE2\x80\x85\xE2\x80\x86\xE2\x80\x87"
                                  "\xE2\x80\x88\xE2\x80\x89\xE2\x80\x8A" /* -200A */
                                  "\xE2\x80\xA8\xE2\x80\xA9"             /* U+2028 U+2029 */
                                  "\xE2\x80\xAF\xE2\x81\x9F"             /* U+202F U+205F */
                                  "\xE3\x80\x80\xEF\xBB\xBF";            /* U+3000 U+FEFF */
static const char word_chars[] = "A-Za-z0-9_";
static const char digit_chars[] = "0-9";
static const char dot_ere[] = "[^\n\r\xE2\x80\xA8\xE2\x80\xA9]";

static locale_t utf8_locale, c_locale;
static pthread_once_t locale_once = PTHREAD_ONCE_INIT;

static void locale_init(void)
{
    utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    c_locale = newlocale(LC_CTYPE_MASK, "C", (locale_t)0);
}

/* The locale a pattern runs in: C.UTF-8 when it needs characters, else C (bytes). */
static locale_t pattern_locale(int chars)
{
    pthread_once(&locale_once, locale_init);
    return chars ? utf8_locale : c_locale;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static size_t put_utf8(char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

struct tr {
    const char *p;
    size_t n, i;
    struct sl_buf *b;
    char *msg;
    size_t cap;
    int chars; /* the ERE needs character (not byte) semantics: see bytes_ok below */
};

static int fail(struct tr *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct tr *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->msg, t->cap, fmt, ap);
    va_end(ap);
    return 1;
}

/*
 * A character escape after the backslash at t->i (pointing at the letter): the code
 * point in *cp, t->i advanced past it. 0 ok, 1 not a character escape (caller decides),
 * 2 a malformed or unsupported escape (message set).
 */
static int char_escape(struct tr *t, unsigned *cp)
{
    char c = t->p[t->i];
    switch (c) {
    case 't':
        *cp = '\t';
        break;
    case 'n':
        *cp = '\n';
        break;
    case 'r':
        *cp = '\r';
        break;
    case 'f':
        *cp = '\f';
        break;
    case 'v':
        *cp = '\v';
        break;
    case 'x':
    case 'u': {
        size_t digits = c == 'x' ? 2 : 4;
        if (t->i + digits >= t->n)
            return fail(t, "\\%s escape needs hex digits", c == 'x' ? "x" : "u"), 2;
        unsigned v = 0;
        for (size_t k = 1; k <= digits; k++) {
            int h = hexval(t->p[t->i + k]);
            if (h < 0)
                return fail(t, "\\%s escape needs hex digits", c == 'x' ? "x" : "u"), 2;
            v = v * 16 + (unsigned)h;
        }
        if (v == 0)
            return fail(t, "%s: a NUL character cannot be matched by a POSIX pattern",
                        "\\x00/\\u0000"),
                   2;
        if (v >= 0xD800 && v <= 0xDFFF)
            return fail(t, "%s: surrogate escapes are not supported", "\\uD800-\\uDFFF"), 2;
        *cp = v;
        t->i += digits;
        break;
    }
    default:
        if (c && strchr("^$\\.*+?()[]{}|/-", c)) {
            *cp = (unsigned char)c;
            break;
        }
        return 1;
    }
    t->i++;
    return 0;
}

static int put_literal(struct tr *t, unsigned cp)
{
    char u[4];
    t->chars |= cp >= 0x80;
    if (cp < 0x80 && strchr("^$\\.*+?()[]{}|", (int)cp) && cp != 0)
        if (sl_buf_putc(t->b, '\\'))
            return -1;
    size_t k = put_utf8(u, cp);
    return sl_buf_append(t->b, u, k) ? -1 : 0;
}

/* One item of a bracket expression: a code point or a range. */
struct item {
    unsigned lo, hi;
};

/*
 * Whether "[x" at t->i (x one of : . =) is closed by "x]" where the class ends: then it
 * was written as POSIX [:class:], [.sym.] or [=equiv=], which ECMA-262 reads as plain
 * characters, so the author's intent and the meaning differ. A lone "[." is a "[" and a
 * "." in both readings, and is translated.
 */
static int posix_class_closes(const struct tr *t, char x)
{
    /* The ECMA-262 class ends at the first unescaped ']': POSIX syntax shows as "x]". */
    for (size_t k = t->i + 2; k < t->n; k++) {
        if (t->p[k] == '\\') {
            k++;
            continue;
        }
        if (t->p[k] == ']')
            return k > t->i + 2 && t->p[k - 1] == x && t->p[k - 2] != '\\';
    }
    return 0;
}

/* Translate a bracket expression starting at t->i == '['. 0 ok, 1 error, -1 ENOMEM. */
static int bracket(struct tr *t)
{
    size_t start = t->i;
    t->i++;
    int neg = 0;
    if (t->i < t->n && t->p[t->i] == '^') {
        neg = 1;
        t->chars = 1;
        t->i++;
    }
    struct item items[256];
    size_t ni = 0;
    int has_d = 0, has_w = 0, has_s = 0;
    for (;;) {
        if (t->i >= t->n)
            return fail(t, "%.*s: unterminated [", (int)(t->n - start > 40 ? 40 : t->n - start),
                        t->p + start);
        char c = t->p[t->i];
        if (c == ']')
            break;
        if (c == '[' && t->i + 2 < t->n && t->p[t->i + 1] && strchr(":.=", t->p[t->i + 1]) &&
            posix_class_closes(t, t->p[t->i + 1]))
            return fail(t, "%s",
                        "POSIX bracket syntax [: [. [= means something else in JSON Schema "
                        "patterns; write the characters out (e.g. [A-Za-z] for [[:alpha:]])");
        unsigned lo;
        if (c == '\\') {
            t->i++;
            if (t->i >= t->n)
                return fail(t, "%s", "pattern ends with a backslash");
            char e = t->p[t->i];
            if (e == 'd' || e == 'w' || e == 's') {
                has_d |= e == 'd';
                has_w |= e == 'w';
                has_s |= e == 's';
                t->chars |= e == 's';
                t->i++;
                continue;
            }
            if (e == 'D' || e == 'W' || e == 'S')
                return fail(t, "%s",
                            "negated class escapes (\\D \\W \\S) inside [...] have no POSIX "
                            "equivalent");
            if (e == 'b')
                return fail(t, "%s", "\\b inside [...] (backspace) is not supported");
            int r = char_escape(t, &lo);
            if (r == 1)
                return fail(t, "\\%c: unknown or unsupported escape", e);
            if (r)
                return 1;
        } else {
            /* One UTF-8 character (the text is valid UTF-8). */
            unsigned char u = (unsigned char)c;
            size_t len = u < 0x80 ? 1 : u < 0xE0 ? 2 : u < 0xF0 ? 3 : 4;
            if (t->i + len > t->n)
                len = t->n - t->i;
            if (len > 1) {
                /* Keep non-ASCII characters as their bytes. */
                t->chars = 1;
                if (ni == 256)
                    return fail(t, "%s", "bracket expression too long");
                items[ni].lo = 0x110000 + (unsigned)(t->i);
                items[ni].hi = (unsigned)len;
                ni++;
                t->i += len;
                if (t->i < t->n && t->p[t->i] == '-' && t->i + 1 < t->n && t->p[t->i + 1] != ']')
                    return fail(t, "%s",
                                "ranges of non-ASCII characters are not supported; list the "
                                "characters");
                continue;
            }
            lo = u;
            t->i++;
        }
        unsigned hi = lo;
        if (t->i + 1 < t->n && t->p[t->i] == '-' && t->p[t->i + 1] != ']') {
            t->i++;
            char c2 = t->p[t->i];
            if (c2 == '\\') {
                t->i++;
                int r = t->i < t->n ? char_escape(t, &hi) : 1;
                if (r == 1)
                    return fail(t, "%s", "a range must end in a character");
                if (r)
                    return 1;
            } else if ((unsigned char)c2 >= 0x80) {
                return fail(t, "%s",
                            "ranges of non-ASCII characters are not supported; list the "
                            "characters");
            } else {
                hi = (unsigned char)c2;
                t->i++;
            }
            if (hi < lo)
                return fail(t, "%s", "range out of order");
        }
        if (lo >= 0x80 || hi >= 0x80) {
            t->chars = 1;
            if (lo != hi)
                return fail(t, "%s",
                            "ranges of non-ASCII characters are not supported; list the "
                            "characters");
        }
        if (ni == 256)
            return fail(t, "%s", "bracket expression too long");
        items[ni].lo = lo;
        items[ni].hi = hi;
        ni++;
    }
    t->i++; /* ] */
    if (ni == 0 && !has_d && !has_w && !has_s)
        return fail(t, "%s", "empty classes [] and [^] are not supported");
    /*
     * Emit a POSIX bracket: ']' first, then everything else, '[' and '^' not where they
     * would be special, '-' last. Backslash is an ordinary character inside a POSIX
     * bracket.
     */
    struct sl_buf *b = t->b;
    int close = 0, dash = 0, caret = 0, open = 0;
    for (size_t k = 0; k < ni; k++) {
        unsigned lo = items[k].lo, hi = items[k].hi;
        if (lo < 0x110000 && lo != hi &&
            (lo == ']' || hi == ']' || lo == '-' || hi == '-' || lo == '[' || hi == '[' ||
             lo == '^'))
            return fail(t, "%s", "ranges starting or ending in ] - [ ^ are not supported");
        close |= lo == ']';
        dash |= lo == '-';
        caret |= lo == '^';
        open |= lo == '[';
    }
    int others = has_d || has_w || has_s;
    for (size_t k = 0; k < ni; k++)
        others |= items[k].lo >= 0x110000 || !(items[k].lo == ']' || items[k].lo == '-' ||
                                               items[k].lo == '^' || items[k].lo == '[');
    /*
     * Emit a POSIX bracket: ']' first, then the rest, '[' late (never followed by . : =),
     * '^' after something (first it would negate), '-' last. Backslash is an ordinary
     * character inside a POSIX bracket. A set of only '^' (and maybe '-') has nothing to
     * put before the caret: "[-^]" with a dash, else the escaped literal "\^".
     */
    if (caret && !neg && !close && !others && !open)
        return sl_buf_puts(b, dash ? "[-^]" : "\\^") ? -1 : 0;
    if (sl_buf_puts(b, neg ? "[^" : "["))
        return -1;
    if (close && sl_buf_putc(b, ']'))
        return -1;
    for (size_t k = 0; k < ni; k++) {
        unsigned lo = items[k].lo, hi = items[k].hi;
        char u[4];
        if (lo >= 0x110000) {
            if (sl_buf_append(b, t->p + (lo - 0x110000), hi))
                return -1;
            continue;
        }
        if (lo == ']' || lo == '-' || lo == '^' || lo == '[')
            continue;
        if (sl_buf_append(b, u, put_utf8(u, lo)))
            return -1;
        if (hi != lo && (sl_buf_putc(b, '-') || sl_buf_append(b, u, put_utf8(u, hi))))
            return -1;
    }
    if ((has_d && sl_buf_puts(b, digit_chars)) || (has_w && sl_buf_puts(b, word_chars)) ||
        (has_s && sl_buf_puts(b, space_chars)) || (open && sl_buf_putc(b, '[')) ||
        (caret && sl_buf_putc(b, '^')) || (dash && sl_buf_putc(b, '-')))
        return -1;
    return sl_buf_putc(b, ']') ? -1 : 0;
}

static int translate(struct tr *t)
{
    struct sl_buf *b = t->b;
    int quantifiable = 0; /* the previous item can take a quantifier */
    while (t->i < t->n) {
        char c = t->p[t->i];
        switch (c) {
        case '\\': {
            t->i++;
            if (t->i >= t->n)
                return fail(t, "%s", "pattern ends with a backslash");
            char e = t->p[t->i];
            const char *cls = NULL;
            int negc = 0;
            switch (e) {
            case 'd':
                cls = digit_chars;
                break;
            case 'D':
                cls = digit_chars, negc = 1;
                break;
            case 'w':
                cls = word_chars;
                break;
            case 'W':
                cls = word_chars, negc = 1;
                break;
            case 's':
                cls = space_chars;
                break;
            case 'S':
                cls = space_chars, negc = 1;
                break;
            default:
                break;
            }
            if (cls) {
                t->chars |= negc || e == 's';
                t->i++;
                if (sl_buf_puts(b, negc ? "[^" : "[") || sl_buf_puts(b, cls) || sl_buf_putc(b, ']'))
                    return -1;
                quantifiable = 1;
                break;
            }
            if (e == 'b' || e == 'B')
                return fail(t, "\\%s: word boundaries have no POSIX ERE equivalent",
                            e == 'b' ? "b" : "B");
            if (e >= '0' && e <= '9')
                return fail(t, "%s", "backreferences (\\1 ...) and \\0 are not supported");
            unsigned cp;
            int r = char_escape(t, &cp);
            if (r == 1) {
                char what[3] = {'\\', e, 0};
                return fail(t, "%s: unknown or unsupported escape", what);
            }
            if (r)
                return 1;
            if (put_literal(t, cp))
                return -1;
            quantifiable = 1;
            break;
        }
        case '[': {
            int r = bracket(t);
            if (r)
                return r;
            quantifiable = 1;
            break;
        }
        case '(':
            if (t->i + 1 < t->n && t->p[t->i + 1] == '?') {
                if (t->i + 2 < t->n && t->p[t->i + 2] == ':') {
                    t->i += 3;
                    if (sl_buf_putc(b, '('))
                        return -1;
                    quantifiable = 0;
                    break;
                }
                return fail(t, "%s",
                            "lookahead, lookbehind and named groups ((?= (?! (?<= (?<! "
                            "(?<name>) have no POSIX ERE equivalent");
            }
            t->i++;
            if (sl_buf_putc(b, '('))
                return -1;
            quantifiable = 0;
            break;
        case '.':
            t->chars = 1;
            t->i++;
            if (sl_buf_puts(b, dot_ere))
                return -1;
            quantifiable = 1;
            break;
        case '*':
        case '+':
        case '?':
        case '{': {
            size_t qs = t->i;
            if (c == '{') {
                /* A quantifier {n}, {n,}, {n,m}; otherwise a literal brace as in ECMA. */
                size_t k = t->i + 1;
                int digits = 0;
                while (k < t->n && t->p[k] >= '0' && t->p[k] <= '9')
                    k++, digits++;
                if (digits && k < t->n && t->p[k] == ',') {
                    k++;
                    while (k < t->n && t->p[k] >= '0' && t->p[k] <= '9')
                        k++;
                }
                if (!digits || k >= t->n || t->p[k] != '}') {
                    t->i++;
                    if (sl_buf_puts(b, "\\{"))
                        return -1;
                    quantifiable = 1;
                    break;
                }
                t->i = k + 1;
            } else {
                t->i++;
            }
            if (!quantifiable)
                return fail(t, "%s", "a quantifier (* + ? {n}) must follow something to repeat");
            if (sl_buf_append(b, t->p + qs, t->i - qs))
                return -1;
            if (t->i < t->n && t->p[t->i] == '?') /* lazy: same set of matches */
                t->i++;
            if (t->i < t->n && strchr("*+?{", t->p[t->i]) &&
                !(t->p[t->i] == '{' &&
                  (t->i + 1 >= t->n || t->p[t->i + 1] < '0' || t->p[t->i + 1] > '9')))
                return fail(t, "%s", "a quantifier cannot follow another quantifier");
            quantifiable = 0;
            break;
        }
        case '}':
            t->i++;
            if (sl_buf_puts(b, "\\}"))
                return -1;
            quantifiable = 1;
            break;
        case ')':
        case '|':
        case '^':
        case '$':
            t->i++;
            if (sl_buf_putc(b, c))
                return -1;
            quantifiable = c == ')';
            break;
        case ']':
            t->i++;
            if (sl_buf_puts(b, "\\]"))
                return -1;
            quantifiable = 1;
            break;
        default: {
            if (c == '\0')
                return fail(t, "%s", "a NUL character cannot appear in a POSIX pattern");
            unsigned char u = (unsigned char)c;
            size_t len = u < 0x80 ? 1 : u < 0xE0 ? 2 : u < 0xF0 ? 3 : 4;
            if (t->i + len > t->n)
                len = t->n - t->i;
            size_t st = t->i;
            t->i += len;
            t->chars |= len > 1;
            /* A multi-byte character repeated by a quantifier must be one unit. */
            int group = len > 1 && t->i < t->n && strchr("*+?{", t->p[t->i]);
            if ((group && sl_buf_putc(b, '(')) || sl_buf_append(b, t->p + st, len) ||
                (group && sl_buf_putc(b, ')')))
                return -1;
            quantifiable = 1;
            break;
        }
        }
    }
    return 0;
}

int sl__contract_pattern_translate(const char *pat, size_t n, struct sl_arena *a, char **out,
                                   int *chars, char *msg, size_t cap)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    struct tr t = {.p = pat, .n = n, .i = 0, .b = &b, .msg = msg, .cap = cap};
    msg[0] = '\0';
    int r = translate(&t);
    *chars = t.chars;
    if (r == 0) {
        if (sl_buf_cstr(&b) || !(*out = sl_arena_strndup(a, b.data ? b.data : "", b.len)))
            r = -1;
    }
    sl_buf_fini(&b);
    return r;
}

int sl__contract_regcomp(regex_t *re, const char *ere, int chars)
{
    locale_t u = pattern_locale(chars);
    if (!u)
        return REG_ECTYPE;
    locale_t old = uselocale(u);
    int rc = regcomp(re, ere, REG_EXTENDED | REG_NOSUB);
    uselocale(old);
    return rc;
}

int sl__contract_regsearch(const regex_t *re, int chars, const char *s, size_t n)
{
    regmatch_t m[1];
    m[0].rm_so = 0;
    m[0].rm_eo = (regoff_t)n;
    locale_t old = uselocale(pattern_locale(chars));
    int rc = regexec(re, s, 1, m, REG_STARTEND);
    uselocale(old);
    return rc == 0;
}
