/*
 * ere.c - estimate what regcomp would build for an ERE, and refuse what is too big
 * (ere.h).
 *
 * One pass over the pattern with a stack of open groups. Each group sums the nodes of its
 * items; an atom is one node; a quantifier multiplies the item before it (the last atom
 * or the group just closed) by the copies glibc makes of it: 2 for * + ?, n or m for
 * {n}, {n,}, {n,m} (at least 1). Sums saturate, so a huge product cannot wrap around.
 * Bracket expressions ([...], with [:class:], [=x=], [.x.] and a leading ] or ^]) and
 * backslash escapes are single atoms.
 */
#include <stdint.h>
#include <stdio.h>

#include "core/ere.h"

#define ERE_MAX_DEPTH 256

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
    return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

/* End of the bracket expression starting at pat[i] == '[' (index of its ']'), or len. */
static size_t bracket_end(const char *pat, size_t len, size_t i)
{
    size_t j = i + 1;
    if (j < len && pat[j] == '^')
        j++;
    if (j < len && pat[j] == ']')
        j++;
    while (j < len && pat[j] != ']') {
        if (pat[j] == '[' && j + 1 < len &&
            (pat[j + 1] == ':' || pat[j + 1] == '=' || pat[j + 1] == '.')) {
            char kind = pat[j + 1];
            size_t k = j + 2;
            while (k + 1 < len && !(pat[k] == kind && pat[k + 1] == ']'))
                k++;
            j = k + 2;
            continue;
        }
        j++;
    }
    return j;
}

/* A valid interval {n}, {n,}, {n,m} at pat[i] == '{': its end (index of '}') and factor. */
static int interval(const char *pat, size_t len, size_t i, size_t *end, uint64_t *factor)
{
    size_t j = i + 1;
    uint64_t n = 0, m = 0;
    int digits = 0, comma = 0, mdigits = 0;
    while (j < len && pat[j] >= '0' && pat[j] <= '9') {
        n = sat_add(sat_mul(n, 10), (uint64_t)(pat[j] - '0'));
        j++;
        digits++;
    }
    if (j < len && pat[j] == ',') {
        comma = 1;
        j++;
        while (j < len && pat[j] >= '0' && pat[j] <= '9') {
            m = sat_add(sat_mul(m, 10), (uint64_t)(pat[j] - '0'));
            j++;
            mdigits++;
        }
    }
    if (!digits || j >= len || pat[j] != '}')
        return 0;
    *end = j;
    *factor = comma ? (mdigits ? m : sat_add(n, 1)) : n;
    if (*factor == 0)
        *factor = 1;
    return 1;
}

int sl__ere_check(const char *pat, size_t len, char *why, size_t whylen)
{
    uint64_t sum[ERE_MAX_DEPTH + 1];
    size_t depth = 0;
    uint64_t last = 0; /* nodes of the item a quantifier would repeat; 0: none */
    int after_quant = 0;
    sum[0] = 0;
    for (size_t i = 0; i < len; i++) {
        char c = pat[i];
        uint64_t factor = 0;
        size_t end = i;
        if (c == '*' || c == '+' || c == '?')
            factor = 2;
        else if (c == '{' && last)
            interval(pat, len, i, &end, &factor); /* leaves factor 0 for a literal brace */
        if (factor) {
            if (after_quant) {
                snprintf(why, whylen, "a quantifier cannot follow another quantifier (at byte %zu)",
                         i);
                return -1;
            }
            uint64_t grown = sat_mul(last, factor);
            sum[depth] = sat_add(sum[depth], grown - last);
            last = grown;
            after_quant = 1;
            i = end;
        } else if (c == '(') {
            if (depth == ERE_MAX_DEPTH) {
                snprintf(why, whylen, "groups nest deeper than %d", ERE_MAX_DEPTH);
                return -1;
            }
            sum[++depth] = 0;
            last = 0;
            after_quant = 0;
        } else if (c == ')' && depth > 0) {
            last = sum[depth--];
            sum[depth] = sat_add(sum[depth], last);
            after_quant = 0;
        } else if (c == '|') {
            last = 0;
            after_quant = 0;
        } else {
            if (c == '\\' && i + 1 < len)
                i++;
            else if (c == '[')
                i = bracket_end(pat, len, i);
            last = 1;
            sum[depth] = sat_add(sum[depth], 1);
            after_quant = 0;
        }
        uint64_t total = 0;
        for (size_t k = 0; k <= depth; k++)
            total = sat_add(total, sum[k]);
        if (total > SL__ERE_MAX_NODES) {
            snprintf(why, whylen,
                     "its repetitions expand to more than %d pattern nodes; use smaller counts",
                     SL__ERE_MAX_NODES);
            return -1;
        }
    }
    return 0;
}
