/*
 * fastre.c - a matcher for the simple patterns contracts mostly use, without regexec.
 *
 * Patterns such as "^e-[0-9]{8}$", "^[A-Z]{3}$" or "^s-[0-9a-f]{6}$" are a sequence of
 * ASCII character sets, each repeated between min and max times, optionally anchored at
 * either end. glibc's regexec costs a few hundred nanoseconds per call whatever the
 * pattern; this matcher decides such patterns in one pass per atom over the string.
 *
 * Eligible patterns (anything else keeps using regexec, so this is purely a speed-up):
 * an optional leading "^", atoms, an optional trailing "$"; an atom is an ASCII literal,
 * an escaped punctuation character, \t \n \r \f \v, \xHH or \uHHHH below 0x80 (not NUL),
 * \d, \w, or a non-negated class of those with ASCII ranges; each atom may carry * + ?
 * {n} {n,} {n,m} (lazy forms too: only whether a match exists matters). No ".", "|",
 * groups, negation or non-ASCII: exactly the patterns that can only match ASCII bytes,
 * so working on bytes is exact.
 *
 * Matching. When every atom has a fixed count (the usual "^e-[0-9]{8}$"), a match from
 * a given start is one byte-by-byte walk. Otherwise cur is the set of positions where the atoms so
 * far can end (all positions for an unanchored start). For each atom, run[p] is the number of
 * consecutive bytes from p in its set; every p in cur contributes the interval [p + min, p +
 * min(max, run[p])] of end positions, added with a difference array. O(atoms x length) time,
 * whatever the pattern: no backtracking. Strings longer than FASTRE_MAX_LEN go to
 * regexec (the arrays live on the stack).
 *
 * Threading: a compiled matcher is immutable; matching uses only the stack.
 */
#include <string.h>

#include "contract/contract_internal.h"

#define FASTRE_MAX_ATOMS 64
#define FASTRE_MAX_COUNT 100000u
#define FASTRE_INF UINT32_MAX

struct fastre_atom {
    uint64_t set[2]; /* bit c: byte c (< 128) is in the set */
    uint32_t min, max;
};

struct sl_fastre {
    uint8_t anchor_start, anchor_end;
    uint8_t fixed; /* every atom has min == max: one way to match from a given start */
    uint32_t n;
    uint32_t span; /* fixed: the number of bytes a match covers */
    struct fastre_atom atom[];
};

static void add(struct fastre_atom *a, unsigned c)
{
    a->set[c >> 6] |= (uint64_t)1 << (c & 63);
}

static void add_range(struct fastre_atom *a, unsigned lo, unsigned hi)
{
    for (unsigned c = lo; c <= hi; c++)
        add(a, c);
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

/*
 * One escaped character after the backslash at p[*i] (the letter): its byte, or -1 when
 * not eligible. \d and \w are handled by the callers.
 */
static int escaped(const char *p, size_t n, size_t *i)
{
    char e = p[*i];
    static const char esc[] = "tnrfv", val[] = "\t\n\r\f\v";
    const char *k = e ? strchr(esc, e) : NULL;
    if (k) {
        (*i)++;
        return (unsigned char)val[k - esc];
    }
    if (e == 'x' || e == 'u') {
        size_t digits = e == 'x' ? 2 : 4;
        if (*i + digits >= n)
            return -1;
        int v = 0;
        for (size_t d = 1; d <= digits; d++) {
            int h = hexval(p[*i + d]);
            if (h < 0)
                return -1;
            v = v * 16 + h;
        }
        if (v == 0 || v >= 0x80)
            return -1;
        *i += digits + 1;
        return v;
    }
    if (e && strchr("^$\\.*+?()[]{}|/-", e)) {
        (*i)++;
        return (unsigned char)e;
    }
    return -1;
}

/* A class [...] at p[*i] == '['. 0 ok, -1 not eligible. */
static int parse_class(const char *p, size_t n, size_t *i, struct fastre_atom *a)
{
    size_t k = *i + 1;
    if (k < n && p[k] == '^')
        return -1;
    int items = 0;
    while (k < n && p[k] != ']') {
        int lo;
        if ((unsigned char)p[k] >= 0x80 || (p[k] == '[' && k + 1 < n && strchr(":.=", p[k + 1])))
            return -1;
        if (p[k] == '\\') {
            k++;
            if (k >= n)
                return -1;
            if (p[k] == 'd' || p[k] == 'w') {
                add_range(a, '0', '9');
                if (p[k] == 'w') {
                    add_range(a, 'A', 'Z');
                    add_range(a, 'a', 'z');
                    add(a, '_');
                }
                k++;
                items++;
                continue;
            }
            if ((lo = escaped(p, n, &k)) < 0)
                return -1;
        } else {
            lo = (unsigned char)p[k++];
        }
        int hi = lo;
        if (k + 1 < n && p[k] == '-' && p[k + 1] != ']') {
            k++;
            if (p[k] == '\\') {
                k++;
                if (k >= n || (hi = escaped(p, n, &k)) < 0)
                    return -1;
            } else if ((unsigned char)p[k] >= 0x80) {
                return -1;
            } else {
                hi = (unsigned char)p[k++];
            }
            if (hi < lo)
                return -1;
        }
        add_range(a, (unsigned)lo, (unsigned)hi);
        items++;
    }
    if (k >= n || items == 0)
        return -1;
    *i = k + 1;
    return 0;
}

static int parse_count(const char *p, size_t n, size_t *i, uint32_t *v)
{
    size_t st = *i;
    uint64_t x = 0;
    while (*i < n && p[*i] >= '0' && p[*i] <= '9') {
        x = x * 10 + (uint64_t)(p[*i] - '0');
        if (x > FASTRE_MAX_COUNT)
            return -1;
        (*i)++;
    }
    *v = (uint32_t)x;
    return *i > st ? 0 : -1;
}

/* A quantifier at p[*i] (if any) into a. 0 ok, -1 not eligible. */
static int parse_quantifier(const char *p, size_t n, size_t *i, struct fastre_atom *a)
{
    a->min = a->max = 1;
    if (*i >= n)
        return 0;
    switch (p[*i]) {
    case '*':
        a->min = 0, a->max = FASTRE_INF, (*i)++;
        break;
    case '+':
        a->min = 1, a->max = FASTRE_INF, (*i)++;
        break;
    case '?':
        a->min = 0, a->max = 1, (*i)++;
        break;
    case '{':
        (*i)++;
        if (parse_count(p, n, i, &a->min))
            return -1;
        a->max = a->min;
        if (*i < n && p[*i] == ',') {
            (*i)++;
            a->max = FASTRE_INF;
            if (*i < n && p[*i] != '}' && parse_count(p, n, i, &a->max))
                return -1;
        }
        if (*i >= n || p[*i] != '}' || a->max < a->min)
            return -1;
        (*i)++;
        break;
    default:
        return 0;
    }
    if (*i < n && p[*i] == '?') /* lazy */
        (*i)++;
    if (*i < n && strchr("*+?{", p[*i]))
        return -1;
    return 0;
}

int sl__contract_fastre_compile(const char *p, size_t n, struct sl_arena *ar,
                                struct sl_fastre **out)
{
    struct fastre_atom atoms[FASTRE_MAX_ATOMS];
    struct sl_fastre f = {0, 0, 1, 0, 0};
    size_t i = 0;
    *out = NULL;
    if (i < n && p[i] == '^')
        f.anchor_start = 1, i++;
    while (i < n) {
        if (p[i] == '$' && i + 1 == n) {
            f.anchor_end = 1;
            break;
        }
        if (f.n == FASTRE_MAX_ATOMS)
            return 0;
        struct fastre_atom *a = &atoms[f.n];
        memset(a, 0, sizeof *a);
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x80 || c == 0 || strchr(".()|*+?{}]^$", c)) {
            return 0;
        } else if (c == '[') {
            if (parse_class(p, n, &i, a))
                return 0;
        } else if (c == '\\') {
            i++;
            if (i >= n)
                return 0;
            if (p[i] == 'd' || p[i] == 'w') {
                add_range(a, '0', '9');
                if (p[i] == 'w') {
                    add_range(a, 'A', 'Z');
                    add_range(a, 'a', 'z');
                    add(a, '_');
                }
                i++;
            } else {
                int e = escaped(p, n, &i);
                if (e < 0)
                    return 0;
                add(a, (unsigned)e);
            }
        } else {
            add(a, c);
            i++;
        }
        if (parse_quantifier(p, n, &i, a))
            return 0;
        if (a->min != a->max)
            f.fixed = 0;
        else
            f.span += a->min; /* at most 64 atoms of at most FASTRE_MAX_COUNT */
        f.n++;
    }
    struct sl_fastre *r = sl_arena_alloc(ar, sizeof *r + f.n * sizeof r->atom[0]);
    if (!r)
        return -1;
    *r = f;
    if (f.n)
        memcpy(r->atom, atoms, f.n * sizeof atoms[0]);
    *out = r;
    return 1;
}

static int in_set(const struct fastre_atom *a, unsigned char c)
{
    return c < 0x80 && ((a->set[c >> 6] >> (c & 63)) & 1);
}

/* A fixed pattern at start position p: each atom consumes exactly min bytes of its set. */
static int fixed_at(const struct sl_fastre *f, const char *s, size_t p)
{
    for (uint32_t k = 0; k < f->n; k++)
        for (uint32_t c = 0; c < f->atom[k].min; c++, p++)
            if (!in_set(&f->atom[k], (unsigned char)s[p]))
                return 0;
    return 1;
}

int sl__contract_fastre_match(const struct sl_fastre *f, const char *s, size_t n)
{
    if (f->fixed) {
        if (f->span > n)
            return 0;
        if (f->anchor_start)
            return (!f->anchor_end || f->span == n) && fixed_at(f, s, 0);
        if (f->anchor_end)
            return fixed_at(f, s, n - f->span);
        for (size_t p = 0; p + f->span <= n; p++)
            if (fixed_at(f, s, p))
                return 1;
        return 0;
    }
    if (n > FASTRE_MAX_LEN)
        return -1;
    unsigned char cur[FASTRE_MAX_LEN + 1];
    uint32_t run[FASTRE_MAX_LEN + 1];
    int32_t diff[FASTRE_MAX_LEN + 2];
    if (f->anchor_start) {
        memset(cur, 0, n + 1);
        cur[0] = 1;
    } else {
        memset(cur, 1, n + 1);
    }
    for (uint32_t k = 0; k < f->n; k++) {
        const struct fastre_atom *a = &f->atom[k];
        run[n] = 0;
        for (size_t p = n; p-- > 0;)
            run[p] = in_set(a, (unsigned char)s[p]) ? run[p + 1] + 1 : 0;
        memset(diff, 0, (n + 2) * sizeof diff[0]);
        int any = 0;
        for (size_t p = 0; p <= n; p++) {
            if (!cur[p] || run[p] < a->min)
                continue;
            uint32_t most = a->max < run[p] ? a->max : run[p];
            diff[p + a->min]++;
            diff[p + most + 1]--;
            any = 1;
        }
        if (!any)
            return 0;
        int32_t acc = 0;
        for (size_t p = 0; p <= n; p++) {
            acc += diff[p];
            cur[p] = acc > 0;
        }
    }
    if (f->anchor_end)
        return cur[n];
    for (size_t p = 0; p <= n; p++)
        if (cur[p])
            return 1;
    return 0;
}
