/*
 * expr.c - compiling and evaluating sluice expressions.
 *
 * Filters, maps and routes carry small expressions such as
 *
 *     event_type == "purchase" && amount > 10
 *
 * This file turns the text into a tree of nodes once, when the pipeline loads, and walks
 * that tree per record. The language itself (grammar, precedence, types, every function)
 * is specified in docs/expressions.md; the design is explained in docs/internals/expr.md.
 *
 * Compilation is a hand-written lexer feeding a recursive-descent parser with one
 * function per precedence level. Field paths are cut out of the text by the lexer and
 * handed to sl_path_parse, so a path means exactly what it means in map's `set` keys.
 * Regular expressions for matches() must be string literals and are compiled here, once.
 * Sub-trees whose operands are all constants are evaluated at compile time (constant
 * folding), which also turns a literal array such as ["ios", "android"] into a single
 * constant the `in` operator scans without allocating. A constant sub-expression that
 * fails (1 / 0) is reported as a compile error.
 *
 * Errors carry the 0-based byte column of the offending token and a message without a
 * position (the config layer adds file:line:col); runtime errors name the operator or
 * function, the types involved, the column and the expression text.
 *
 * Threading and ownership: a compiled expression owns one heap arena holding its nodes,
 * its copy of the source text, decoded literals and compiled regexes. After
 * sl_expr_compile returns it is never written again, so any number of threads may
 * evaluate it at once (glibc's regexec serialises internally on a compiled pattern).
 * Evaluation allocates only from the arena the caller passes (the batch's) and never
 * modifies the record. Results may point into the record's text, the arena, or the
 * compiled expression, which therefore must outlive every batch it was applied to.
 */
#include "sluice/expr.h"

#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/alloc.h"

#include "core/ere.h"

#define EXPR_MAX_LEN 65536   /* longest source text accepted */
#define EXPR_MAX_DEPTH 128   /* nesting of parentheses, calls, arrays, unary operators */
#define EXPR_MAX_HEIGHT 1000 /* height of the tree: bounds the recursion of eval */
#define EXPR_MAX_ARGS 16     /* most arguments any call may have */
#define EXPR_MSG_TEXT 120    /* how much of the source a runtime message quotes */

/* ------------------------------------------------------------------------------------ */
/* Nodes                                                                                */

enum node_kind {
    N_CONST = 1, /* k */
    N_FIELD,     /* path */
    N_META_ID,
    N_META_LINE,
    N_META_OFFSET,
    N_NOT, /* a */
    N_NEG, /* a */
    N_AND, /* a, b */
    N_OR,
    N_EQ,
    N_NE,
    N_LT,
    N_LE,
    N_GT,
    N_GE,
    N_ADD,
    N_SUB,
    N_MUL,
    N_DIV,
    N_MOD,
    N_IN,    /* a in b */
    N_ARRAY, /* args[nargs] */
    N_CALL,  /* fn(args[nargs]) */
};

struct node;
struct ctx;

typedef sl_rc (*fn_impl)(struct ctx *c, const struct node *n, struct sl_value *argv,
                         struct sl_value *out);

struct fn_def {
    const char *name;
    uint8_t min, max; /* arity */
    uint8_t pure;     /* may be folded when every argument is constant */
    uint8_t lazy;     /* evaluates its own arguments (coalesce) */
    fn_impl impl;
};

/*
 * Invariants:
 *   1. kind N_CONST: k is the value; anything it points at lives in the expression arena.
 *   2. N_NOT, N_NEG: a is the operand. Binary kinds: a and b are the operands.
 *   3. N_ARRAY, N_CALL: args[0..nargs) are the elements/arguments, nargs <= EXPR_MAX_ARGS
 *      for calls. N_CALL: fn is set; re is the compiled pattern for matches().
 *   4. col is the byte offset in the source of the token that names the node (the
 *      operator, the function name, the first byte of a literal or path).
 */
struct node {
    uint8_t kind;
    uint32_t col;
    uint32_t height; /* 1 for a leaf; at most EXPR_MAX_HEIGHT */
    uint32_t nargs;
    struct node *a, *b;
    struct node **args;
    const struct fn_def *fn;
    regex_t *re;
    struct sl_value k;
    struct sl_path path;
};

struct sl_expr {
    struct sl_arena arena; /* every node, literal and regex_t */
    struct node *root;
    char *text; /* NUL-terminated copy of the source */
    size_t len;
    regex_t **regexes; /* to regfree at destroy (in the arena) */
    size_t nregex;
    size_t cap_regex;
};

/* Evaluation context: one per call of sl_expr_eval, on the caller's stack. */
struct ctx {
    const struct sl_expr *e;
    struct sl_record *r;
    struct sl_arena *a;
    struct sl_error *err;
    int folding; /* evaluating constants at compile time: messages carry no position */
};

static sl_rc eval(struct ctx *c, const struct node *n, struct sl_value *out);

/* ------------------------------------------------------------------------------------ */
/* Small value helpers                                                                  */

static struct sl_value v_num(double d)
{
    struct sl_value v;
    memset(&v, 0, sizeof v);
    v.type = SL_V_NUMBER;
    v.u.num.d = d;
    v.is_int = (d == trunc(d) && fabs(d) < 9007199254740992.0);
    return v;
}

static struct sl_value v_bool(int b)
{
    struct sl_value v;
    memset(&v, 0, sizeof v);
    v.type = SL_V_BOOL;
    v.u.b = !!b;
    return v;
}

static struct sl_value v_str(const char *s, size_t n)
{
    struct sl_value v;
    memset(&v, 0, sizeof v);
    v.type = SL_V_STRING;
    v.u.str = s;
    v.len = (uint32_t)n;
    return v;
}

static struct sl_value v_null(void)
{
    struct sl_value v;
    memset(&v, 0, sizeof v);
    return v;
}

static const char *tname(const struct sl_value *v)
{
    static const char *const names[] = {"null", "bool", "number", "string", "array", "object"};
    return v->type <= SL_V_OBJECT ? names[v->type] : "unknown";
}

/*
 * A runtime error. The message names what went wrong and, outside constant folding,
 * where in which expression.
 */
static sl_rc rt_error(struct ctx *c, const struct node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static sl_rc rt_error(struct ctx *c, const struct node *n, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->folding)
        return sl_error_set(c->err, SL_ETYPE, "%s", msg);
    const char *t = c->e->text;
    int tl = c->e->len > EXPR_MSG_TEXT ? EXPR_MSG_TEXT : (int)c->e->len;
    return sl_error_set(c->err, SL_ETYPE, "%s (column %u of expression `%.*s%s`)", msg,
                        (unsigned)n->col, tl, t, c->e->len > EXPR_MSG_TEXT ? "..." : "");
}

static sl_rc oom(struct ctx *c)
{
    return sl_error_set(c->err, SL_ENOMEM, "out of memory evaluating expression");
}

/* A NUL-terminated copy of a string value in the evaluation arena (for libc calls). */
static const char *cstr(struct ctx *c, const struct sl_value *v)
{
    return sl_arena_strndup(c->a, v->u.str, v->len);
}

/*
 * Spell a number: its original text when it has one, else an integer without fraction,
 * else the shortest %g form that reads back as the same double. buf has 32 bytes.
 */
static size_t num_text(const struct sl_value *v, char *buf, size_t cap, const char **out)
{
    if (v->u.num.text) {
        *out = v->u.num.text;
        return v->len;
    }
    double d = v->u.num.d;
    int n;
    if (d == trunc(d) && fabs(d) < 1e17) {
        n = snprintf(buf, cap, "%.0f", d == 0 ? 0.0 : d);
    } else {
        n = snprintf(buf, cap, "%.15g", d);
        if (strtod(buf, NULL) != d)
            n = snprintf(buf, cap, "%.16g", d);
        if (strtod(buf, NULL) != d)
            n = snprintf(buf, cap, "%.17g", d);
    }
    *out = buf;
    return n < 0 ? 0 : (size_t)n;
}

/* Scalar to string for concat/to_string. Containers are a type error. */
static sl_rc stringify(struct ctx *c, const struct node *n, const char *what,
                       const struct sl_value *v, const char **s, size_t *len)
{
    char buf[40];
    const char *t;
    switch (v->type) {
    case SL_V_NULL:
        *s = "";
        *len = 0;
        return SL_OK;
    case SL_V_BOOL:
        *s = v->u.b ? "true" : "false";
        *len = v->u.b ? 4 : 5;
        return SL_OK;
    case SL_V_STRING:
        *s = v->u.str;
        *len = v->len;
        return SL_OK;
    case SL_V_NUMBER:
        *len = num_text(v, buf, sizeof buf, &t);
        if (t == buf) {
            t = sl_arena_dup(c->a, buf, *len);
            if (!t)
                return oom(c);
        }
        *s = t;
        return SL_OK;
    default:
        return rt_error(c, n, "%s cannot turn an %s into a string", what, tname(v));
    }
}

/*
 * Strict number syntax for to_number/to_int/cast: optional sign, digits with an optional
 * fraction, optional exponent, surrounding ASCII spaces allowed. No hex, inf or nan.
 */
static int parse_number(const char *s, size_t n, double *out)
{
    char buf[64];
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= sizeof buf)
        return -1;
    size_t i = 0, digits = 0;
    if (s[i] == '+' || s[i] == '-')
        i++;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++, digits++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++, digits++;
    }
    if (!digits)
        return -1;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t ed = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++, ed++;
        if (!ed)
            return -1;
    }
    if (i != n)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    double d = strtod(buf, NULL);
    if (!isfinite(d))
        return -1;
    *out = d;
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Time                                                                                 */

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

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dm[m - 1];
}

static int digits_at(const char *s, size_t n, size_t i, int count, int *out)
{
    int v = 0;
    if (i + (size_t)count > n)
        return -1;
    for (int k = 0; k < count; k++) {
        char ch = s[i + (size_t)k];
        if (ch < '0' || ch > '9')
            return -1;
        v = v * 10 + (ch - '0');
    }
    *out = v;
    return 0;
}

/*
 * RFC 3339: YYYY-MM-DD, optionally followed by T (or t or space) HH:MM:SS, an optional
 * fraction and Z or +hh:mm/-hh:mm (a time needs an offset). Returns 0 and epoch seconds.
 */
static int parse_rfc3339(const char *s, size_t n, double *out)
{
    int y, mo, d, h = 0, mi = 0, sec = 0, oh = 0, om = 0;
    double frac = 0;
    size_t i = 0;
    if (digits_at(s, n, 0, 4, &y) || n < 10 || s[4] != '-' || digits_at(s, n, 5, 2, &mo) ||
        s[7] != '-' || digits_at(s, n, 8, 2, &d))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return -1;
    i = 10;
    int sign = 0;
    if (i < n) {
        if (s[i] != 'T' && s[i] != 't' && s[i] != ' ')
            return -1;
        if (digits_at(s, n, i + 1, 2, &h) || i + 3 >= n || s[i + 3] != ':' ||
            digits_at(s, n, i + 4, 2, &mi) || i + 6 >= n || s[i + 6] != ':' ||
            digits_at(s, n, i + 7, 2, &sec))
            return -1;
        if (h > 23 || mi > 59 || sec > 60)
            return -1;
        i += 9;
        if (i < n && s[i] == '.') {
            double scale = 0.1;
            size_t start = ++i;
            while (i < n && s[i] >= '0' && s[i] <= '9') {
                frac += (s[i] - '0') * scale;
                scale /= 10;
                i++;
            }
            if (i == start)
                return -1;
        }
        if (i >= n)
            return -1;
        if (s[i] == 'Z' || s[i] == 'z') {
            i++;
        } else if (s[i] == '+' || s[i] == '-') {
            sign = s[i] == '-' ? -1 : 1;
            if (digits_at(s, n, i + 1, 2, &oh) || i + 3 >= n || s[i + 3] != ':' ||
                digits_at(s, n, i + 4, 2, &om) || oh > 23 || om > 59)
                return -1;
            i += 6;
        } else {
            return -1;
        }
        if (i != n)
            return -1;
    }
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    t -= sign * (oh * 3600 + om * 60);
    *out = (double)t + frac;
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Functions                                                                            */

/* Null in, null out: most functions return null when their first argument is null. */
#define NULL_IN_NULL_OUT(argv, out)                                                                \
    do {                                                                                           \
        if ((argv)[0].type == SL_V_NULL) {                                                         \
            *(out) = v_null();                                                                     \
            return SL_OK;                                                                          \
        }                                                                                          \
    } while (0)

static sl_rc want(struct ctx *c, const struct node *n, const struct sl_value *argv, int i,
                  enum sl_vtype t)
{
    if (argv[i].type == t)
        return SL_OK;
    static const char *const names[] = {"null", "bool", "number", "string", "array", "object"};
    return rt_error(c, n, "%s() argument %d must be a %s, got %s", n->fn->name, i + 1, names[t],
                    tname(&argv[i]));
}

static sl_rc fn_case(struct ctx *c, const struct node *n, struct sl_value *argv,
                     struct sl_value *out, int upper)
{
    NULL_IN_NULL_OUT(argv, out);
    sl_rc rc = want(c, n, argv, 0, SL_V_STRING);
    if (rc)
        return rc;
    const char *s = argv[0].u.str;
    size_t len = argv[0].len, i;
    for (i = 0; i < len; i++) {
        char ch = s[i];
        if (upper ? (ch >= 'a' && ch <= 'z') : (ch >= 'A' && ch <= 'Z'))
            break;
    }
    if (i == len) { /* already in the wanted case: no copy */
        *out = argv[0];
        return SL_OK;
    }
    char *d = sl_arena_alloc(c->a, len ? len : 1);
    if (!d)
        return oom(c);
    for (i = 0; i < len; i++) {
        char ch = s[i];
        if (upper && ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 32);
        else if (!upper && ch >= 'A' && ch <= 'Z')
            ch = (char)(ch + 32);
        d[i] = ch;
    }
    *out = v_str(d, len);
    return SL_OK;
}

static sl_rc fn_lower(struct ctx *c, const struct node *n, struct sl_value *argv,
                      struct sl_value *out)
{
    return fn_case(c, n, argv, out, 0);
}

static sl_rc fn_upper(struct ctx *c, const struct node *n, struct sl_value *argv,
                      struct sl_value *out)
{
    return fn_case(c, n, argv, out, 1);
}

static int is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

static sl_rc fn_trim(struct ctx *c, const struct node *n, struct sl_value *argv,
                     struct sl_value *out)
{
    NULL_IN_NULL_OUT(argv, out);
    sl_rc rc = want(c, n, argv, 0, SL_V_STRING);
    if (rc)
        return rc;
    const char *s = argv[0].u.str;
    size_t len = argv[0].len;
    while (len && is_space(*s))
        s++, len--;
    while (len && is_space(s[len - 1]))
        len--;
    *out = v_str(s, len);
    return SL_OK;
}

static sl_rc two_strings(struct ctx *c, const struct node *n, struct sl_value *argv)
{
    sl_rc rc = want(c, n, argv, 0, SL_V_STRING);
    return rc ? rc : want(c, n, argv, 1, SL_V_STRING);
}

static sl_rc fn_starts_with(struct ctx *c, const struct node *n, struct sl_value *argv,
                            struct sl_value *out)
{
    NULL_IN_NULL_OUT(argv, out);
    sl_rc rc = two_strings(c, n, argv);
    if (rc)
        return rc;
    *out = v_bool(argv[1].len <= argv[0].len &&
                  memcmp(argv[0].u.str, argv[1].u.str, argv[1].len) == 0);
    return SL_OK;
}

static sl_rc fn_ends_with(struct ctx *c, const struct node *n, struct sl_value *argv,
                          struct sl_value *out)
{
    NULL_IN_NULL_OUT(argv, out);
    sl_rc rc = two_strings(c, n, argv);
    if (rc)
        return rc;
    *out = v_bool(argv[1].len <= argv[0].len && memcmp(argv[0].u.str + argv[0].len - argv[1].len,
                                                       argv[1].u.str, argv[1].len) == 0);
    return SL_OK;
}

/* Whether array v holds an element deeply equal to x. */
static sl_rc array_has(struct ctx *c, const struct sl_value *v, const struct sl_value *x,
                       int *found)
{
    struct sl_value m;
    if (sl_value_materialize(v, c->a, &m))
        return oom(c);
    *found = 0;
    for (uint32_t i = 0; i < m.len; i++) {
        if (sl_value_equal(&m.u.items[i], x)) {
            *found = 1;
            break;
        }
    }
    return SL_OK;
}

static sl_rc fn_contains(struct ctx *c, const struct node *n, struct sl_value *argv,
                         struct sl_value *out)
{
    NULL_IN_NULL_OUT(argv, out);
    if (argv[0].type == SL_V_ARRAY) {
        int found;
        sl_rc rc = array_has(c, &argv[0], &argv[1], &found);
        if (rc)
            return rc;
        *out = v_bool(found);
        return SL_OK;
    }
    if (argv[0].type != SL_V_STRING)
        return rt_error(c, n, "contains() argument 1 must be a string or an array, got %s",
                        tname(&argv[0]));
    sl_rc rc = want(c, n, argv, 1, SL_V_STRING);
    if (rc)
        return rc;
    *out = v_bool(argv[1].len == 0 ||
                  memmem(argv[0].u.str, argv[0].len, argv[1].u.str, argv[1].len) != NULL);
    return SL_OK;
}

static sl_rc fn_matches(struct ctx *c, const struct node *n, struct sl_value *argv,
                        struct sl_value *out)
{
    NULL_IN_NULL_OUT(argv, out);
    sl_rc rc = want(c, n, argv, 0, SL_V_STRING);
    if (rc)
        return rc;
    const char *s = cstr(c, &argv[0]);
    if (!s)
        return oom(c);
    *out = v_bool(regexec(n->re, s, 0, NULL, 0) == 0);
    return SL_OK;
}

static sl_rc fn_split(struct ctx *c, const struct node *n, struct sl_value *argv,
                      struct sl_value *out)
{
    NULL_IN_NULL_OUT(argv, out);
    sl_rc rc = two_strings(c, n, argv);
    if (rc)
        return rc;
    const char *s = argv[0].u.str, *sep = argv[1].u.str;
    size_t len = argv[0].len, sl = argv[1].len;
    if (sl == 0)
        return rt_error(c, n, "split() separator must not be empty");
    size_t parts = 1;
    for (const char *p = s; (p = memmem(p, len - (size_t)(p - s), sep, sl)) != NULL; p += sl)
        parts++;
    struct sl_value *items = sl_arena_alloc(c->a, parts * sizeof *items);
    if (!items)
        return oom(c);
    size_t k = 0;
    const char *start = s;
    for (;;) {
        const char *p = memmem(start, len - (size_t)(start - s), sep, sl);
        if (!p) {
            items[k++] = v_str(start, len - (size_t)(start - s));
            break;
        }
        items[k++] = v_str(start, (size_t)(p - start));
        start = p + sl;
    }
    memset(out, 0, sizeof *out);
    out->type = SL_V_ARRAY;
    out->len = (uint32_t)k;
    out->u.items = items;
    return SL_OK;
}

static sl_rc fn_concat(struct ctx *c, const struct node *n, struct sl_value *argv,
                       struct sl_value *out)
{
    const char *s[EXPR_MAX_ARGS];
    size_t l[EXPR_MAX_ARGS], total = 0;
    for (uint32_t i = 0; i < n->nargs; i++) {
        sl_rc rc = stringify(c, n, "concat()", &argv[i], &s[i], &l[i]);
        if (rc)
            return rc;
        total += l[i];
    }
    char *d = sl_arena_alloc(c->a, total ? total : 1);
    if (!d)
        return oom(c);
    size_t off = 0;
    for (uint32_t i = 0; i < n->nargs; i++) {
        memcpy(d + off, s[i], l[i]);
        off += l[i];
    }
    *out = v_str(d, total);
    return SL_OK;
}

static sl_rc fn_len(struct ctx *c, const struct node *n, struct sl_value *argv,
                    struct sl_value *out)
{
    NULL_IN_NULL_OUT(argv, out);
    if (argv[0].type == SL_V_STRING) {
        size_t chars = 0;
        for (uint32_t i = 0; i < argv[0].len; i++)
            chars += ((unsigned char)argv[0].u.str[i] & 0xC0) != 0x80;
        *out = v_num((double)chars);
        return SL_OK;
    }
    if (argv[0].type == SL_V_ARRAY || argv[0].type == SL_V_OBJECT) {
        *out = v_num((double)sl_value_count(&argv[0]));
        return SL_OK;
    }
    return rt_error(c, n, "len() needs a string, an array or an object, got %s", tname(&argv[0]));
}

static sl_rc finite_num(struct ctx *c, const struct node *n, double d, struct sl_value *out)
{
    if (!isfinite(d))
        return rt_error(c, n, "%s() result is not a finite number", n->fn->name);
    *out = v_num(d);
    return SL_OK;
}

static sl_rc fn_round(struct ctx *c, const struct node *n, struct sl_value *argv,
                      struct sl_value *out)
{
    NULL_IN_NULL_OUT(argv, out);
    sl_rc rc = want(c, n, argv, 0, SL_V_NUMBER);
    if (rc)
        return rc;
    double x = argv[0].u.num.d;
    if (n->nargs == 1)
        return finite_num(c, n, round(x), out);
    if ((rc = want(c, n, argv, 1, SL_V_NUMBER)))
        return rc;
    double dg = argv[1].u.num.d;
    if (dg != trunc(dg) || dg < -15 || dg > 15)
        return rt_error(c, n, "round() digits must be an integer from -15 to 15, got %g", dg);
    double scale = pow(10, dg);
    double r = round(x * scale) / scale;
    if (!isfinite(x * scale)) /* too large to have digits beyond the point: keep x */
        r = x;
    return finite_num(c, n, r, out);
}

static sl_rc fn_math1(struct ctx *c, const struct node *n, struct sl_value *argv,
                      struct sl_value *out, double (*f)(double))
{
    NULL_IN_NULL_OUT(argv, out);
    sl_rc rc = want(c, n, argv, 0, SL_V_NUMBER);
    if (rc)
        return rc;
    return finite_num(c, n, f(argv[0].u.num.d), out);
}

static sl_rc fn_floor(struct ctx *c, const struct node *n, struct sl_value *argv,
                      struct sl_value *out)
{
    return fn_math1(c, n, argv, out, floor);
}

static sl_rc fn_ceil(struct ctx *c, const struct node *n, struct sl_value *argv,
                     struct sl_value *out)
{
    return fn_math1(c, n, argv, out, ceil);
}

static sl_rc fn_abs(struct ctx *c, const struct node *n, struct sl_value *argv,
                    struct sl_value *out)
{
    return fn_math1(c, n, argv, out, fabs);
}

static sl_rc fn_now(struct ctx *c, const struct node *n, struct sl_value *argv,
                    struct sl_value *out)
{
    (void)c, (void)n, (void)argv;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    *out = v_num((double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    return SL_OK;
}

static sl_rc fn_parse_timestamp(struct ctx *c, const struct node *n, struct sl_value *argv,
                                struct sl_value *out)
{
    NULL_IN_NULL_OUT(argv, out);
    sl_rc rc = want(c, n, argv, 0, SL_V_STRING);
    if (rc)
        return rc;
    double t;
    if (n->nargs == 1) {
        if (parse_rfc3339(argv[0].u.str, argv[0].len, &t))
            return rt_error(c, n,
                            "parse_timestamp(): \"%.*s\" is not an RFC 3339 timestamp "
                            "(like 2026-11-27T12:00:00Z)",
                            (int)(argv[0].len > 64 ? 64 : argv[0].len), argv[0].u.str);
        *out = v_num(t);
        return SL_OK;
    }
    if ((rc = want(c, n, argv, 1, SL_V_STRING)))
        return rc;
    const char *s = cstr(c, &argv[0]), *fmt = cstr(c, &argv[1]);
    if (!s || !fmt)
        return oom(c);
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = 70; /* what the format leaves out is 1970-01-01 00:00:00 */
    tm.tm_mday = 1;
    const char *end = strptime(s, fmt, &tm);
    if (!end || *end)
        return rt_error(c, n, "parse_timestamp(): \"%.*s\" does not match format \"%.*s\"",
                        (int)(argv[0].len > 64 ? 64 : argv[0].len), argv[0].u.str,
                        (int)(argv[1].len > 64 ? 64 : argv[1].len), argv[1].u.str);
    long off = tm.tm_gmtoff;
    time_t tt = timegm(&tm);
    *out = v_num((double)tt - (double)off);
    return SL_OK;
}

static sl_rc fn_format_timestamp(struct ctx *c, const struct node *n, struct sl_value *argv,
                                 struct sl_value *out)
{
    NULL_IN_NULL_OUT(argv, out);
    sl_rc rc = want(c, n, argv, 0, SL_V_NUMBER);
    if (rc)
        return rc;
    double t = argv[0].u.num.d;
    /* Years 0001..9999: what RFC 3339 can spell. */
    if (!(t >= -62135596800.0 && t < 253402300800.0))
        return rt_error(c, n, "format_timestamp(): %g is outside the years 1 to 9999", t);
    double secs = floor(t);
    long ms = lround((t - secs) * 1000);
    if (ms >= 1000) {
        secs += 1;
        ms -= 1000;
    }
    time_t tt = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&tt, &tm))
        return rt_error(c, n, "format_timestamp(): %g cannot be represented", t);
    char buf[256];
    size_t len;
    if (n->nargs == 1) {
        int k = snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
                         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
        len = k < 0 ? 0 : (size_t)k;
    } else {
        if ((rc = want(c, n, argv, 1, SL_V_STRING)))
            return rc;
        const char *fmt = cstr(c, &argv[1]);
        if (!fmt)
            return oom(c);
            /* The format is the user's by design; strftime cannot overrun buf. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        len = argv[1].len ? strftime(buf, sizeof buf, fmt, &tm) : 0;
#pragma GCC diagnostic pop
        if (len == 0 && argv[1].len)
            return rt_error(c, n, "format_timestamp(): result longer than %zu bytes or empty",
                            sizeof buf - 1);
    }
    char *d = sl_arena_dup(c->a, buf, len ? len : 1);
    if (!d)
        return oom(c);
    *out = v_str(d, len);
    return SL_OK;
}

static sl_rc fn_coalesce(struct ctx *c, const struct node *n, struct sl_value *argv,
                         struct sl_value *out)
{
    (void)argv;
    for (uint32_t i = 0; i < n->nargs; i++) {
        sl_rc rc = eval(c, n->args[i], out);
        if (rc)
            return rc;
        if (out->type != SL_V_NULL)
            return SL_OK;
    }
    *out = v_null();
    return SL_OK;
}

static sl_rc fn_is_null(struct ctx *c, const struct node *n, struct sl_value *argv,
                        struct sl_value *out)
{
    (void)c, (void)n;
    *out = v_bool(argv[0].type == SL_V_NULL);
    return SL_OK;
}

static sl_rc fn_to_string(struct ctx *c, const struct node *n, struct sl_value *argv,
                          struct sl_value *out)
{
    NULL_IN_NULL_OUT(argv, out);
    const char *s;
    size_t len;
    sl_rc rc = stringify(c, n, "to_string()", &argv[0], &s, &len);
    if (rc)
        return rc;
    *out = v_str(s, len);
    return SL_OK;
}

/* Number from a number, a numeric string or a bool; rt error otherwise. */
static sl_rc to_double(struct ctx *c, const struct node *n, const struct sl_value *v, double *d)
{
    switch (v->type) {
    case SL_V_NUMBER:
        *d = v->u.num.d;
        return SL_OK;
    case SL_V_BOOL:
        *d = v->u.b;
        return SL_OK;
    case SL_V_STRING:
        if (parse_number(v->u.str, v->len, d) == 0)
            return SL_OK;
        return rt_error(c, n, "%s(): \"%.*s\" is not a number", n->fn->name,
                        (int)(v->len > 64 ? 64 : v->len), v->u.str);
    default:
        return rt_error(c, n, "%s() cannot convert an %s to a number", n->fn->name, tname(v));
    }
}

static sl_rc fn_to_number(struct ctx *c, const struct node *n, struct sl_value *argv,
                          struct sl_value *out)
{
    NULL_IN_NULL_OUT(argv, out);
    if (argv[0].type == SL_V_NUMBER) {
        *out = argv[0];
        return SL_OK;
    }
    double d;
    sl_rc rc = to_double(c, n, &argv[0], &d);
    if (rc)
        return rc;
    *out = v_num(d);
    return SL_OK;
}

static sl_rc fn_to_int(struct ctx *c, const struct node *n, struct sl_value *argv,
                       struct sl_value *out)
{
    NULL_IN_NULL_OUT(argv, out);
    if (argv[0].type == SL_V_NUMBER && argv[0].is_int &&
        fabs(argv[0].u.num.d) < 9223372036854775808.0) { /* keep the spelling */
        *out = argv[0];
        return SL_OK;
    }
    double d;
    sl_rc rc = to_double(c, n, &argv[0], &d);
    if (rc)
        return rc;
    d = trunc(d);
    if (!(d > -9223372036854775808.0 && d < 9223372036854775808.0))
        return rt_error(c, n, "to_int(): %g does not fit in a 64-bit integer", d);
    *out = v_num(d == 0 ? 0.0 : d);
    return SL_OK;
}

/* Sorted by name only for the reader; lookup is linear (compile time only). */
static const struct fn_def functions[] = {
    {"abs", 1, 1, 1, 0, fn_abs},
    {"ceil", 1, 1, 1, 0, fn_ceil},
    {"coalesce", 1, EXPR_MAX_ARGS, 1, 1, fn_coalesce},
    {"concat", 1, EXPR_MAX_ARGS, 1, 0, fn_concat},
    {"contains", 2, 2, 1, 0, fn_contains},
    {"ends_with", 2, 2, 1, 0, fn_ends_with},
    {"floor", 1, 1, 1, 0, fn_floor},
    {"format_timestamp", 1, 2, 1, 0, fn_format_timestamp},
    {"is_null", 1, 1, 1, 0, fn_is_null},
    {"len", 1, 1, 1, 0, fn_len},
    {"lower", 1, 1, 1, 0, fn_lower},
    {"matches", 2, 2, 1, 0, fn_matches},
    {"now", 0, 0, 0, 0, fn_now},
    {"parse_timestamp", 1, 2, 1, 0, fn_parse_timestamp},
    {"round", 1, 2, 1, 0, fn_round},
    {"split", 2, 2, 1, 0, fn_split},
    {"starts_with", 2, 2, 1, 0, fn_starts_with},
    {"to_int", 1, 1, 1, 0, fn_to_int},
    {"to_number", 1, 1, 1, 0, fn_to_number},
    {"to_string", 1, 1, 1, 0, fn_to_string},
    {"trim", 1, 1, 1, 0, fn_trim},
    {"upper", 1, 1, 1, 0, fn_upper},
};
#define NFUNCTIONS (sizeof functions / sizeof functions[0])

/* ------------------------------------------------------------------------------------ */
/* Evaluation                                                                           */

static int str_cmp(const struct sl_value *x, const struct sl_value *y)
{
    size_t n = x->len < y->len ? x->len : y->len;
    int r = memcmp(x->u.str, y->u.str, n);
    if (r)
        return r;
    return x->len < y->len ? -1 : x->len > y->len;
}

static const char *op_name(int kind)
{
    switch (kind) {
    case N_LT:
        return "<";
    case N_LE:
        return "<=";
    case N_GT:
        return ">";
    case N_GE:
        return ">=";
    case N_ADD:
        return "+";
    case N_SUB:
        return "-";
    case N_MUL:
        return "*";
    case N_DIV:
        return "/";
    case N_MOD:
        return "%";
    case N_NEG:
        return "unary -";
    default:
        return "?";
    }
}

static sl_rc eval_order(struct ctx *c, const struct node *n, const struct sl_value *x,
                        const struct sl_value *y, struct sl_value *out)
{
    int cmp;
    if (x->type == SL_V_NUMBER && y->type == SL_V_NUMBER)
        cmp = x->u.num.d < y->u.num.d ? -1 : x->u.num.d > y->u.num.d;
    else if (x->type == SL_V_STRING && y->type == SL_V_STRING)
        cmp = str_cmp(x, y);
    else
        return rt_error(c, n, "operator %s cannot compare %s with %s", op_name(n->kind), tname(x),
                        tname(y));
    int r;
    switch (n->kind) {
    case N_LT:
        r = cmp < 0;
        break;
    case N_LE:
        r = cmp <= 0;
        break;
    case N_GT:
        r = cmp > 0;
        break;
    default:
        r = cmp >= 0;
        break;
    }
    *out = v_bool(r);
    return SL_OK;
}

static sl_rc eval_arith(struct ctx *c, const struct node *n, const struct sl_value *x,
                        const struct sl_value *y, struct sl_value *out)
{
    if (n->kind == N_ADD && x->type == SL_V_STRING && y->type == SL_V_STRING) {
        size_t len = (size_t)x->len + y->len;
        char *d = sl_arena_alloc(c->a, len ? len : 1);
        if (!d)
            return oom(c);
        memcpy(d, x->u.str, x->len);
        memcpy(d + x->len, y->u.str, y->len);
        *out = v_str(d, len);
        return SL_OK;
    }
    if (x->type != SL_V_NUMBER || y->type != SL_V_NUMBER)
        return rt_error(c, n, "operator %s needs two numbers%s, got %s and %s", op_name(n->kind),
                        n->kind == N_ADD ? " or two strings" : "", tname(x), tname(y));
    double a = x->u.num.d, b = y->u.num.d, r;
    switch (n->kind) {
    case N_ADD:
        r = a + b;
        break;
    case N_SUB:
        r = a - b;
        break;
    case N_MUL:
        r = a * b;
        break;
    case N_DIV:
        if (b == 0)
            return rt_error(c, n, "division by zero");
        r = a / b;
        break;
    default:
        if (b == 0)
            return rt_error(c, n, "remainder of division by zero");
        r = fmod(a, b);
        break;
    }
    if (!isfinite(r))
        return rt_error(c, n, "operator %s overflowed (result is not a finite number)",
                        op_name(n->kind));
    *out = v_num(r);
    return SL_OK;
}

static sl_rc eval(struct ctx *c, const struct node *n, struct sl_value *out)
{
    struct sl_value x, y;
    sl_rc rc;
    switch (n->kind) {
    case N_CONST:
        *out = n->k;
        return SL_OK;
    case N_FIELD:
        if (!sl_record_get(c->r, &n->path, c->a, out))
            *out = v_null();
        return SL_OK;
    case N_META_ID: {
        char buf[33];
        sl_record_id_format(c->r->id, buf);
        char *d = sl_arena_dup(c->a, buf, 32);
        if (!d)
            return oom(c);
        *out = v_str(d, 32);
        return SL_OK;
    }
    case N_META_LINE:
        *out = v_num((double)c->r->line);
        return SL_OK;
    case N_META_OFFSET:
        *out = v_num((double)c->r->offset);
        return SL_OK;
    case N_NOT:
        if ((rc = eval(c, n->a, &x)))
            return rc;
        *out = v_bool(!sl_value_truthy(&x));
        return SL_OK;
    case N_NEG:
        if ((rc = eval(c, n->a, &x)))
            return rc;
        if (x.type != SL_V_NUMBER)
            return rt_error(c, n, "unary - needs a number, got %s", tname(&x));
        *out = v_num(-x.u.num.d);
        return SL_OK;
    case N_AND:
    case N_OR:
        if ((rc = eval(c, n->a, &x)))
            return rc;
        if (sl_value_truthy(&x) == (n->kind == N_OR)) {
            *out = v_bool(n->kind == N_OR);
            return SL_OK;
        }
        if ((rc = eval(c, n->b, &y)))
            return rc;
        *out = v_bool(sl_value_truthy(&y));
        return SL_OK;
    case N_EQ:
    case N_NE: {
        /* field == "constant" is the hot case: no copy of the constant, no call. */
        const struct sl_value *py = &y;
        if ((rc = eval(c, n->a, &x)))
            return rc;
        if (n->b->kind == N_CONST)
            py = &n->b->k;
        else if ((rc = eval(c, n->b, &y)))
            return rc;
        int eq;
        if (x.type != py->type)
            eq = 0;
        else if (x.type == SL_V_STRING)
            eq = x.len == py->len && memcmp(x.u.str, py->u.str, x.len) == 0;
        else if (x.type == SL_V_NUMBER)
            eq = x.u.num.d == py->u.num.d;
        else
            eq = sl_value_equal(&x, py);
        *out = v_bool(n->kind == N_EQ ? eq : !eq);
        return SL_OK;
    }
    case N_LT:
    case N_LE:
    case N_GT:
    case N_GE:
        if ((rc = eval(c, n->a, &x)) || (rc = eval(c, n->b, &y)))
            return rc;
        return eval_order(c, n, &x, &y, out);
    case N_ADD:
    case N_SUB:
    case N_MUL:
    case N_DIV:
    case N_MOD:
        if ((rc = eval(c, n->a, &x)) || (rc = eval(c, n->b, &y)))
            return rc;
        return eval_arith(c, n, &x, &y, out);
    case N_IN: {
        if ((rc = eval(c, n->a, &x)) || (rc = eval(c, n->b, &y)))
            return rc;
        if (y.type == SL_V_NULL) {
            *out = v_bool(0);
            return SL_OK;
        }
        if (y.type != SL_V_ARRAY)
            return rt_error(c, n, "operator in needs an array on its right, got %s", tname(&y));
        int found;
        if ((rc = array_has(c, &y, &x, &found)))
            return rc;
        *out = v_bool(found);
        return SL_OK;
    }
    case N_ARRAY: {
        struct sl_value *items = sl_arena_alloc(c->a, (n->nargs ? n->nargs : 1) * sizeof *items);
        if (!items)
            return oom(c);
        for (uint32_t i = 0; i < n->nargs; i++)
            if ((rc = eval(c, n->args[i], &items[i])))
                return rc;
        memset(out, 0, sizeof *out);
        out->type = SL_V_ARRAY;
        out->len = n->nargs;
        out->u.items = items;
        return SL_OK;
    }
    case N_CALL: {
        struct sl_value argv[EXPR_MAX_ARGS];
        if (!n->fn->lazy)
            for (uint32_t i = 0; i < n->nargs; i++)
                if ((rc = eval(c, n->args[i], &argv[i])))
                    return rc;
        return n->fn->impl(c, n, argv, out);
    }
    default:
        return sl_error_set(c->err, SL_ESTATE, "corrupt expression node %d", n->kind);
    }
}

sl_rc sl_expr_eval(const struct sl_expr *e, struct sl_record *r, struct sl_arena *a,
                   struct sl_value *out, struct sl_error *err)
{
    struct ctx c = {e, r, a, err, 0};
    return eval(&c, e->root, out);
}

sl_rc sl_expr_test(const struct sl_expr *e, struct sl_record *r, struct sl_arena *a, int *truth,
                   struct sl_error *err)
{
    struct ctx c = {e, r, a, err, 0};
    struct sl_value v;
    sl_rc rc = eval(&c, e->root, &v);
    if (rc)
        return rc;
    *truth = v.type == SL_V_BOOL ? v.u.b : sl_value_truthy(&v);
    return SL_OK;
}

const char *sl_expr_text(const struct sl_expr *e)
{
    return e->text;
}

/* Whether the subtree at n reads a field by key (a path whose first segment is a name). */
static int node_reads_keys(const struct node *n)
{
    if (!n)
        return 0;
    if (n->kind == N_FIELD)
        return n->path.nseg > 0 && n->path.seg[0].key != NULL;
    if (node_reads_keys(n->a) || node_reads_keys(n->b))
        return 1;
    for (uint32_t i = 0; i < n->nargs; i++)
        if (node_reads_keys(n->args[i]))
            return 1;
    return 0;
}

int sl_expr_reads_keys(const struct sl_expr *e)
{
    return node_reads_keys(e->root);
}

/* ------------------------------------------------------------------------------------ */
/* Lexer                                                                                */

enum tok_kind {
    T_EOF = 0,
    T_NUM,
    T_STR,
    T_PATH, /* a field path, including the _id/_line/_offset identifiers */
    T_FUNC, /* an identifier directly followed by '(' (spaces allowed) */
    T_NULL,
    T_TRUE,
    T_FALSE,
    T_IN,
    T_LPAREN,
    T_RPAREN,
    T_LBRACK,
    T_RBRACK,
    T_COMMA,
    T_EQ,
    T_NE,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    T_AND,
    T_OR,
    T_NOT,
    T_PLUS,
    T_MINUS,
    T_STAR,
    T_SLASH,
    T_PCT,
};

struct tok {
    enum tok_kind kind;
    size_t pos, len; /* span in the source */
};

struct parser {
    struct sl_expr *e;
    const char *s;
    size_t n;
    size_t pos; /* next byte to lex */
    struct tok t;
    int depth;
    size_t err_col;
    struct sl_error *err;
};

static sl_rc perr(struct parser *p, size_t col, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static sl_rc perr(struct parser *p, size_t col, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->err_col = col;
    return sl_error_set(p->err, SL_EPARSE, "%s", msg);
}

static int is_ident_start(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
}

static int is_ident(char ch)
{
    return is_ident_start(ch) || (ch >= '0' && ch <= '9');
}

/* End of the quoted string starting at i (index after the closing quote), or 0. */
static size_t skip_string(const char *s, size_t n, size_t i)
{
    char q = s[i++];
    while (i < n) {
        if (s[i] == '\\') {
            i += 2;
            continue;
        }
        if (s[i] == q)
            return i + 1;
        i++;
    }
    return 0;
}

/*
 * Extent of a path continuing at i: any number of .ident, [digits], [-digits] and
 * ["key"] suffixes, without spaces. Returns the end index or 0 on an unterminated quote.
 */
static size_t path_suffix_end(const char *s, size_t n, size_t i)
{
    for (;;) {
        if (i + 1 < n && s[i] == '.' && is_ident_start(s[i + 1])) {
            i++;
            while (i < n && is_ident(s[i]))
                i++;
        } else if (i + 1 < n && s[i] == '[' && (s[i + 1] == '"' || s[i + 1] == '\'')) {
            size_t e = skip_string(s, n, i + 1);
            if (!e || e >= n || s[e] != ']')
                return i; /* not a key subscript: let the parser complain */
            i = e + 1;
        } else if (i + 1 < n && s[i] == '[' &&
                   ((s[i + 1] >= '0' && s[i + 1] <= '9') || s[i + 1] == '-')) {
            size_t j = i + 1 + (s[i + 1] == '-');
            size_t d = j;
            while (j < n && s[j] >= '0' && s[j] <= '9')
                j++;
            if (j == d || j >= n || s[j] != ']')
                return i;
            i = j + 1;
        } else {
            return i;
        }
    }
}

static sl_rc lex(struct parser *p)
{
    const char *s = p->s;
    size_t n = p->n, i = p->pos;
    while (i < n && is_space(s[i]))
        i++;
    p->t.pos = i;
    if (i >= n) {
        p->t.kind = T_EOF;
        p->t.len = 0;
        p->pos = i;
        return SL_OK;
    }
    char ch = s[i];
    enum tok_kind k;
    size_t len = 1;
    switch (ch) {
    case '(':
        k = T_LPAREN;
        break;
    case ')':
        k = T_RPAREN;
        break;
    case ']':
        k = T_RBRACK;
        break;
    case ',':
        k = T_COMMA;
        break;
    case '+':
        k = T_PLUS;
        break;
    case '-':
        k = T_MINUS;
        break;
    case '*':
        k = T_STAR;
        break;
    case '/':
        k = T_SLASH;
        break;
    case '%':
        k = T_PCT;
        break;
    case '=':
        if (i + 1 < n && s[i + 1] == '=') {
            k = T_EQ;
            len = 2;
            break;
        }
        return perr(p, i, "unexpected '=': write == to compare");
    case '!':
        k = (i + 1 < n && s[i + 1] == '=') ? T_NE : T_NOT;
        len = k == T_NE ? 2 : 1;
        break;
    case '<':
        k = (i + 1 < n && s[i + 1] == '=') ? T_LE : T_LT;
        len = k == T_LE ? 2 : 1;
        break;
    case '>':
        k = (i + 1 < n && s[i + 1] == '=') ? T_GE : T_GT;
        len = k == T_GE ? 2 : 1;
        break;
    case '&':
        if (i + 1 < n && s[i + 1] == '&') {
            k = T_AND;
            len = 2;
            break;
        }
        return perr(p, i, "unexpected '&': write && for a logical and");
    case '|':
        if (i + 1 < n && s[i + 1] == '|') {
            k = T_OR;
            len = 2;
            break;
        }
        return perr(p, i, "unexpected '|': write || for a logical or");
    case '"':
    case '\'': {
        size_t e = skip_string(s, n, i);
        if (!e)
            return perr(p, i, "unterminated string: add the closing %c", ch);
        k = T_STR;
        len = e - i;
        break;
    }
    case '[': {
        /* ["key"] directly followed by . or [ starts a path; otherwise an array. */
        k = T_LBRACK;
        if (i + 1 < n && (s[i + 1] == '"' || s[i + 1] == '\'')) {
            size_t e = skip_string(s, n, i + 1);
            if (e && e + 1 < n && s[e] == ']' && (s[e + 1] == '.' || s[e + 1] == '[')) {
                size_t end = path_suffix_end(s, n, e + 1);
                if (end > e + 1) {
                    k = T_PATH;
                    len = end - i;
                }
            }
        }
        break;
    }
    case '.':
        /*
         * .["key"] or .name: a path written with a leading dot, which is never a keyword,
         * a function or a metadata name (.in, ._id are fields).
         */
        if (i + 1 < n && (is_ident_start(s[i + 1]) || (i + 2 < n && s[i + 1] == '[' &&
                                                       (s[i + 2] == '"' || s[i + 2] == '\'')))) {
            size_t end = path_suffix_end(s, n, i + 1);
            if (is_ident_start(s[i + 1])) {
                size_t j = i + 1;
                while (j < n && is_ident(s[j]))
                    j++;
                end = path_suffix_end(s, n, j);
            }
            if (end > i + 1) {
                k = T_PATH;
                len = end - i;
                break;
            }
        }
        return perr(p, i, "unexpected '.': a field path starts with a name or [\"key\"]");
    default:
        if (ch >= '0' && ch <= '9') {
            size_t j = i;
            if (s[j] == '0' && j + 1 < n && s[j + 1] >= '0' && s[j + 1] <= '9')
                return perr(p, i, "number with a leading zero");
            while (j < n && s[j] >= '0' && s[j] <= '9')
                j++;
            if (j < n && s[j] == '.') {
                j++;
                if (j >= n || s[j] < '0' || s[j] > '9')
                    return perr(p, j, "expected a digit after the decimal point");
                while (j < n && s[j] >= '0' && s[j] <= '9')
                    j++;
            }
            if (j < n && (s[j] == 'e' || s[j] == 'E')) {
                j++;
                if (j < n && (s[j] == '+' || s[j] == '-'))
                    j++;
                if (j >= n || s[j] < '0' || s[j] > '9')
                    return perr(p, j, "expected a digit in the exponent");
                while (j < n && s[j] >= '0' && s[j] <= '9')
                    j++;
            }
            if (j < n && (is_ident(s[j]) || s[j] == '.'))
                return perr(p, j, "unexpected '%c' in a number", s[j]);
            k = T_NUM;
            len = j - i;
            break;
        }
        if (is_ident_start(ch)) {
            size_t j = i;
            while (j < n && is_ident(s[j]))
                j++;
            size_t w = j - i;
            size_t after = j;
            while (after < n && is_space(s[after]))
                after++;
            int kw = (w == 4 && (!memcmp(s + i, "null", 4) || !memcmp(s + i, "true", 4))) ||
                     (w == 5 && !memcmp(s + i, "false", 5)) || (w == 2 && !memcmp(s + i, "in", 2));
            if (!kw && after < n && s[after] == '(') {
                k = T_FUNC;
                len = w;
                break;
            }
            if (w == 4 && !memcmp(s + i, "null", 4))
                k = T_NULL;
            else if (w == 4 && !memcmp(s + i, "true", 4))
                k = T_TRUE;
            else if (w == 5 && !memcmp(s + i, "false", 5))
                k = T_FALSE;
            else if (w == 2 && !memcmp(s + i, "in", 2))
                k = T_IN;
            else {
                k = T_PATH;
                j = path_suffix_end(s, n, j);
            }
            len = j - i;
            break;
        }
        if (ch == '{')
            return perr(p, i, "unexpected '{': there are no object literals");
        if ((unsigned char)ch >= 0x80 || ch < 0x20)
            return perr(p, i, "unexpected byte 0x%02X", (unsigned)(unsigned char)ch);
        return perr(p, i, "unexpected '%c'", ch);
    }
    p->t.kind = k;
    p->t.len = len;
    p->pos = i + len;
    return SL_OK;
}

/* ------------------------------------------------------------------------------------ */
/* Parser                                                                               */

static struct node *new_node(struct parser *p, int kind, size_t col)
{
    struct node *nd = sl_arena_calloc(&p->e->arena, sizeof *nd);
    if (nd) {
        nd->kind = (uint8_t)kind;
        nd->col = (uint32_t)col;
        nd->height = 1;
    }
    return nd;
}

static sl_rc nomem(struct parser *p)
{
    p->err_col = 0;
    return sl_error_set(p->err, SL_ENOMEM, "out of memory compiling expression");
}

/* Account for child under nd; rejects trees too tall to evaluate by recursion. */
static sl_rc grow(struct parser *p, struct node *nd, const struct node *child)
{
    if (child->height + 1 > nd->height)
        nd->height = child->height + 1;
    if (nd->height > EXPR_MAX_HEIGHT)
        return perr(p, nd->col, "expression too large: more than %d operators deep; split it",
                    EXPR_MAX_HEIGHT);
    return SL_OK;
}

static const char *tok_desc(const struct tok *t, const char *s, char *buf, size_t cap)
{
    if (t->kind == T_EOF)
        return "end of expression";
    snprintf(buf, cap, "'%.*s'", (int)(t->len > 40 ? 40 : t->len), s + t->pos);
    return buf;
}

static sl_rc unexpected(struct parser *p, const char *wanted)
{
    char buf[64];
    return perr(p, p->t.pos, "unexpected %s; expected %s", tok_desc(&p->t, p->s, buf, sizeof buf),
                wanted);
}

/*
 * Decode a quoted literal (JSON escapes; in single quotes \' too) into the expression
 * arena. Validates the escapes and the UTF-8 of the result.
 */
static sl_rc decode_string(struct parser *p, size_t pos, size_t len, const char **out,
                           size_t *outlen)
{
    const char *s = p->s + pos + 1;
    size_t n = len - 2;
    char *d = sl_arena_alloc(&p->e->arena, n + 1);
    if (!d)
        return nomem(p);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20)
            return perr(p, pos + 1 + i, "control character 0x%02X in a string: escape it", ch);
        if (ch != '\\') {
            d[o++] = (char)ch;
            continue;
        }
        size_t at = pos + 1 + i;
        char esc = s[++i];
        switch (esc) {
        case '"':
            d[o++] = '"';
            break;
        case '\'':
            d[o++] = '\'';
            break;
        case '\\':
            d[o++] = '\\';
            break;
        case '/':
            d[o++] = '/';
            break;
        case 'b':
            d[o++] = '\b';
            break;
        case 'f':
            d[o++] = '\f';
            break;
        case 'n':
            d[o++] = '\n';
            break;
        case 'r':
            d[o++] = '\r';
            break;
        case 't':
            d[o++] = '\t';
            break;
        case 'u': {
            unsigned cp = 0;
            for (int k = 0; k < 4; k++) {
                char h = (i + 1 < n) ? s[++i] : 0;
                int v = (h >= '0' && h <= '9')   ? h - '0'
                        : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                        : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                                 : -1;
                if (v < 0)
                    return perr(p, at, "bad \\u escape: expected 4 hex digits");
                cp = cp * 16 + (unsigned)v;
            }
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return perr(p, at, "lone low surrogate in \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo = 0;
                if (i + 6 >= n + 0 || s[i + 1] != '\\' || s[i + 2] != 'u')
                    return perr(p, at, "high surrogate not followed by a low surrogate");
                i += 2;
                for (int k = 0; k < 4; k++) {
                    char h = s[++i];
                    int v = (h >= '0' && h <= '9')   ? h - '0'
                            : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                            : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                                     : -1;
                    if (v < 0)
                        return perr(p, at, "bad \\u escape: expected 4 hex digits");
                    lo = lo * 16 + (unsigned)v;
                }
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return perr(p, at, "high surrogate not followed by a low surrogate");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp < 0x80) {
                d[o++] = (char)cp;
            } else if (cp < 0x800) {
                d[o++] = (char)(0xC0 | (cp >> 6));
                d[o++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                d[o++] = (char)(0xE0 | (cp >> 12));
                d[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                d[o++] = (char)(0x80 | (cp & 0x3F));
            } else {
                d[o++] = (char)(0xF0 | (cp >> 18));
                d[o++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                d[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                d[o++] = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default:
            return perr(p, at, "unknown escape '\\%c' in a string", esc ? esc : '0');
        }
    }
    size_t bad;
    if (!sl_utf8_valid(d, o, &bad))
        return perr(p, pos + 1, "string literal is not valid UTF-8");
    d[o] = '\0';
    *out = d;
    *outlen = o;
    return SL_OK;
}

static sl_rc parse_expr(struct parser *p, struct node **out);

/* Evaluate a node whose operands are all constants and make it a constant. */
static sl_rc fold(struct parser *p, struct node *nd)
{
    struct sl_error ferr;
    struct ctx c = {p->e, NULL, &p->e->arena, &ferr, 1};
    struct sl_value v;
    sl_error_clear(&ferr);
    sl_rc rc = eval(&c, nd, &v);
    if (rc == SL_ENOMEM)
        return nomem(p);
    if (rc)
        return perr(p, nd->col, "%s", ferr.msg);
    nd->kind = N_CONST;
    nd->height = 1;
    nd->k = v;
    nd->a = nd->b = NULL;
    nd->args = NULL;
    nd->nargs = 0;
    return SL_OK;
}

static int edit_distance(const char *a, size_t la, const char *b)
{
    size_t lb = strlen(b);
    int row[64];
    if (la >= 63 || lb >= 63)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int prev = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int cur = row[j];
            int best = prev + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            prev = cur;
        }
    }
    return row[lb];
}

static sl_rc parse_call(struct parser *p, struct node **out)
{
    size_t npos = p->t.pos, nlen = p->t.len;
    const struct fn_def *fn = NULL;
    for (size_t i = 0; i < NFUNCTIONS; i++)
        if (strlen(functions[i].name) == nlen && !memcmp(functions[i].name, p->s + npos, nlen))
            fn = &functions[i];
    if (!fn) {
        const char *best = NULL;
        int bestd = 99;
        for (size_t i = 0; i < NFUNCTIONS; i++) {
            int d = edit_distance(p->s + npos, nlen, functions[i].name);
            if (d < bestd) {
                bestd = d;
                best = functions[i].name;
            }
        }
        int limit = (int)nlen / 3 > 2 ? (int)nlen / 3 : 2;
        if (best && bestd <= limit)
            return perr(p, npos, "unknown function '%.*s' (did you mean '%s'?)", (int)nlen,
                        p->s + npos, best);
        return perr(p, npos, "unknown function '%.*s'; see docs/expressions.md for the list",
                    (int)nlen, p->s + npos);
    }
    struct node *nd = new_node(p, N_CALL, npos);
    if (!nd)
        return nomem(p);
    nd->fn = fn;
    nd->args = sl_arena_calloc(&p->e->arena, EXPR_MAX_ARGS * sizeof *nd->args);
    if (!nd->args)
        return nomem(p);
    sl_rc rc;
    if ((rc = lex(p))) /* the '(' */
        return rc;
    if ((rc = lex(p)))
        return rc;
    if (p->t.kind != T_RPAREN) {
        for (;;) {
            if (nd->nargs == EXPR_MAX_ARGS)
                return perr(p, p->t.pos, "too many arguments to %s() (at most %d)", fn->name,
                            EXPR_MAX_ARGS);
            size_t apos = p->t.pos;
            if ((rc = parse_expr(p, &nd->args[nd->nargs])) ||
                (rc = grow(p, nd, nd->args[nd->nargs])))
                return rc;
            if (fn->impl == fn_matches && nd->nargs == 1) {
                struct node *pat = nd->args[1];
                if (pat->kind != N_CONST || pat->k.type != SL_V_STRING)
                    return perr(p, apos, "matches() needs its pattern as a string literal");
                regex_t *re = sl_arena_calloc(&p->e->arena, sizeof *re);
                if (!re)
                    return nomem(p);
                if (memchr(pat->k.u.str, '\0', pat->k.len))
                    return perr(p, apos, "bad regular expression: contains a NUL character");
                char why[160];
                if (sl__ere_check(pat->k.u.str, pat->k.len, why, sizeof why))
                    return perr(p, apos, "bad regular expression: %s", why);
                int ec = regcomp(re, pat->k.u.str, REG_EXTENDED | REG_NOSUB);
                if (ec) {
                    char m[160];
                    regerror(ec, re, m, sizeof m);
                    return perr(p, apos, "bad regular expression: %s", m);
                }
                if (p->e->nregex == p->e->cap_regex) {
                    size_t cap = p->e->cap_regex ? p->e->cap_regex * 2 : 4;
                    regex_t **nr = sl_arena_alloc(&p->e->arena, cap * sizeof *nr);
                    if (!nr) {
                        regfree(re);
                        return nomem(p);
                    }
                    if (p->e->nregex)
                        memcpy(nr, p->e->regexes, p->e->nregex * sizeof *nr);
                    p->e->regexes = nr;
                    p->e->cap_regex = cap;
                }
                p->e->regexes[p->e->nregex++] = re;
                nd->re = re;
            }
            nd->nargs++;
            if (p->t.kind == T_COMMA) {
                if ((rc = lex(p)))
                    return rc;
                continue;
            }
            if (p->t.kind == T_RPAREN)
                break;
            return unexpected(p, "',' or ')' in the argument list");
        }
    }
    if (nd->nargs < fn->min || nd->nargs > fn->max) {
        if (fn->min == fn->max)
            return perr(p, npos, "%s() takes %u argument%s, got %u", fn->name, fn->min,
                        fn->min == 1 ? "" : "s", nd->nargs);
        if (fn->max == EXPR_MAX_ARGS)
            return perr(p, npos, "%s() takes at least %u argument%s, got %u", fn->name, fn->min,
                        fn->min == 1 ? "" : "s", nd->nargs);
        return perr(p, npos, "%s() takes %u to %u arguments, got %u", fn->name, fn->min, fn->max,
                    nd->nargs);
    }
    if ((rc = lex(p))) /* past ')' */
        return rc;
    *out = nd;
    if (fn->pure) {
        for (uint32_t i = 0; i < nd->nargs; i++)
            if (nd->args[i]->kind != N_CONST)
                return SL_OK;
        return fold(p, nd);
    }
    return SL_OK;
}

static sl_rc parse_path(struct parser *p, struct node **out)
{
    size_t pos = p->t.pos, len = p->t.len;
    const char *s = p->s + pos;
    struct node *nd;
    if (len == 3 && !memcmp(s, "_id", 3))
        nd = new_node(p, N_META_ID, pos);
    else if (len == 5 && !memcmp(s, "_line", 5))
        nd = new_node(p, N_META_LINE, pos);
    else if (len == 7 && !memcmp(s, "_offset", 7))
        nd = new_node(p, N_META_OFFSET, pos);
    else
        nd = new_node(p, N_FIELD, pos);
    if (!nd)
        return nomem(p);
    if (nd->kind == N_FIELD) {
        if (*s == '.') { /* leading-dot form */
            s++, len--, pos++;
        }
        size_t ecol = 0;
        struct sl_error perr_;
        sl_error_clear(&perr_);
        sl_rc rc = sl_path_parse(s, len, &p->e->arena, &nd->path, &ecol, &perr_);
        if (rc == SL_ENOMEM)
            return nomem(p);
        if (rc)
            return perr(p, pos + ecol, "bad field path: %s", perr_.msg);
    }
    *out = nd;
    return lex(p);
}

static sl_rc parse_primary(struct parser *p, struct node **out)
{
    sl_rc rc;
    struct node *nd;
    switch (p->t.kind) {
    case T_NUM: {
        nd = new_node(p, N_CONST, p->t.pos);
        if (!nd)
            return nomem(p);
        char buf[400];
        if (p->t.len >= sizeof buf)
            return perr(p, p->t.pos, "number literal too long");
        memcpy(buf, p->s + p->t.pos, p->t.len);
        buf[p->t.len] = '\0';
        double d = strtod(buf, NULL);
        if (!isfinite(d))
            return perr(p, p->t.pos, "number out of range");
        nd->k = v_num(d);
        /* Keep the spelling so `set: {x: "1.50"}` writes 1.50. */
        nd->k.u.num.text = sl_arena_strndup(&p->e->arena, buf, p->t.len);
        if (!nd->k.u.num.text)
            return nomem(p);
        nd->k.len = (uint32_t)p->t.len;
        *out = nd;
        return lex(p);
    }
    case T_STR: {
        nd = new_node(p, N_CONST, p->t.pos);
        if (!nd)
            return nomem(p);
        const char *s = NULL; /* set by decode_string on success; gcc -O2 cannot see it */
        size_t len = 0;
        if ((rc = decode_string(p, p->t.pos, p->t.len, &s, &len)))
            return rc;
        nd->k = v_str(s, len);
        *out = nd;
        return lex(p);
    }
    case T_NULL:
    case T_TRUE:
    case T_FALSE:
        nd = new_node(p, N_CONST, p->t.pos);
        if (!nd)
            return nomem(p);
        nd->k = p->t.kind == T_NULL ? v_null() : v_bool(p->t.kind == T_TRUE);
        *out = nd;
        return lex(p);
    case T_PATH:
        return parse_path(p, out);
    case T_FUNC:
        return parse_call(p, out);
    case T_LPAREN: {
        size_t open = p->t.pos;
        if ((rc = lex(p)) || (rc = parse_expr(p, out)))
            return rc;
        if (p->t.kind != T_RPAREN) {
            char buf[64];
            return perr(p, p->t.pos, "unexpected %s; expected ')' to close the '(' at column %zu",
                        tok_desc(&p->t, p->s, buf, sizeof buf), open);
        }
        return lex(p);
    }
    case T_LBRACK: {
        nd = new_node(p, N_ARRAY, p->t.pos);
        if (!nd)
            return nomem(p);
        size_t cap = 0;
        if ((rc = lex(p)))
            return rc;
        int all_const = 1;
        while (p->t.kind != T_RBRACK) {
            if (nd->nargs == cap) {
                size_t ncap = cap ? cap * 2 : 8;
                struct node **na = sl_arena_alloc(&p->e->arena, ncap * sizeof *na);
                if (!na)
                    return nomem(p);
                if (cap)
                    memcpy(na, nd->args, cap * sizeof *na);
                nd->args = na;
                cap = ncap;
            }
            if ((rc = parse_expr(p, &nd->args[nd->nargs])) ||
                (rc = grow(p, nd, nd->args[nd->nargs])))
                return rc;
            all_const &= nd->args[nd->nargs]->kind == N_CONST;
            nd->nargs++;
            if (p->t.kind == T_COMMA) {
                if ((rc = lex(p)))
                    return rc;
                if (p->t.kind == T_RBRACK)
                    return unexpected(p, "an array element after ','");
                continue;
            }
            if (p->t.kind != T_RBRACK)
                return unexpected(p, "',' or ']' in the array");
        }
        if ((rc = lex(p)))
            return rc;
        *out = nd;
        return all_const ? fold(p, nd) : SL_OK;
    }
    default:
        return unexpected(p, "a value, a field or a function call");
    }
}

static sl_rc parse_unary(struct parser *p, struct node **out)
{
    if (p->t.kind != T_NOT && p->t.kind != T_MINUS)
        return parse_primary(p, out);
    if (++p->depth > EXPR_MAX_DEPTH)
        return perr(p, p->t.pos, "expression nested deeper than %d levels", EXPR_MAX_DEPTH);
    struct node *nd = new_node(p, p->t.kind == T_NOT ? N_NOT : N_NEG, p->t.pos);
    if (!nd)
        return nomem(p);
    sl_rc rc;
    if ((rc = lex(p)) || (rc = parse_unary(p, &nd->a)) || (rc = grow(p, nd, nd->a)))
        return rc;
    p->depth--;
    *out = nd;
    return nd->a->kind == N_CONST ? fold(p, nd) : SL_OK;
}

/* Binary levels, loosest first. */
static const struct {
    enum tok_kind tok;
    int kind;
    int level;
} binops[] = {
    {T_OR, N_OR, 0},     {T_AND, N_AND, 1},  {T_EQ, N_EQ, 2},     {T_NE, N_NE, 2},
    {T_LT, N_LT, 3},     {T_LE, N_LE, 3},    {T_GT, N_GT, 3},     {T_GE, N_GE, 3},
    {T_IN, N_IN, 3},     {T_PLUS, N_ADD, 4}, {T_MINUS, N_SUB, 4}, {T_STAR, N_MUL, 5},
    {T_SLASH, N_DIV, 5}, {T_PCT, N_MOD, 5},
};
#define NLEVELS 6

static sl_rc parse_level(struct parser *p, int level, struct node **out)
{
    if (level == NLEVELS)
        return parse_unary(p, out);
    struct node *lhs;
    sl_rc rc = parse_level(p, level + 1, &lhs);
    if (rc)
        return rc;
    for (;;) {
        int kind = 0;
        for (size_t i = 0; i < sizeof binops / sizeof binops[0]; i++)
            if (binops[i].tok == p->t.kind && binops[i].level == level)
                kind = binops[i].kind;
        if (!kind)
            break;
        struct node *nd = new_node(p, kind, p->t.pos);
        if (!nd)
            return nomem(p);
        nd->a = lhs;
        if ((rc = lex(p)) || (rc = parse_level(p, level + 1, &nd->b)) ||
            (rc = grow(p, nd, nd->a)) || (rc = grow(p, nd, nd->b)))
            return rc;
        if (nd->a->kind == N_CONST && nd->b->kind == N_CONST && (rc = fold(p, nd)))
            return rc;
        lhs = nd;
    }
    *out = lhs;
    return SL_OK;
}

static sl_rc parse_expr(struct parser *p, struct node **out)
{
    if (++p->depth > EXPR_MAX_DEPTH)
        return perr(p, p->t.pos, "expression nested deeper than %d levels", EXPR_MAX_DEPTH);
    sl_rc rc = parse_level(p, 0, out);
    p->depth--;
    return rc;
}

/* ------------------------------------------------------------------------------------ */
/* Compile and destroy                                                                  */

sl_rc sl_expr_compile(const char *src, size_t len, struct sl_expr **out, size_t *err_col,
                      struct sl_error *err)
{
    size_t col_scratch;
    if (!err_col)
        err_col = &col_scratch;
    *err_col = 0;
    if (len > EXPR_MAX_LEN)
        return sl_error_set(err, SL_EPARSE, "expression longer than %d bytes", EXPR_MAX_LEN);
    struct sl_expr *e = sl_calloc(1, sizeof *e);
    if (!e)
        return sl_error_set(err, SL_ENOMEM, "out of memory compiling expression");
    sl_arena_init(&e->arena, 4096);
    sl_rc rc;
    struct parser p = {e, NULL, len, 0, {T_EOF, 0, 0}, 0, 0, err};
    e->text = sl_arena_strndup(&e->arena, src, len);
    if (!e->text) {
        rc = nomem(&p);
        goto fail;
    }
    e->len = len;
    p.s = e->text;
    if (memchr(src, '\0', len)) {
        rc = perr(&p, (size_t)((const char *)memchr(src, '\0', len) - src), "unexpected NUL byte");
        goto fail;
    }
    if ((rc = lex(&p)))
        goto fail;
    if (p.t.kind == T_EOF) {
        rc = perr(&p, 0, "empty expression");
        goto fail;
    }
    if ((rc = parse_expr(&p, &e->root)))
        goto fail;
    if (p.t.kind != T_EOF) {
        char buf[64];
        rc = perr(&p, p.t.pos, "unexpected %s after a complete expression; missing an operator?",
                  tok_desc(&p.t, p.s, buf, sizeof buf));
        goto fail;
    }
    *out = e;
    return SL_OK;
fail:
    *err_col = p.err_col;
    sl_expr_destroy(e);
    return rc;
}

void sl_expr_destroy(struct sl_expr *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->nregex; i++)
        regfree(e->regexes[i]);
    sl_arena_fini(&e->arena);
    sl_free(e);
}
