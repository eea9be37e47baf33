/*
 * compile.c - the `quality:` list of a pipeline file, checked and compiled into gates.
 *
 * Each item of the list is a map:
 *
 *     - {name: buys_have_amount, on: buys, check: "null_rate(amount)", max: 0,
 *        action: quarantine, description: "..."}
 *
 * name, on and check are required; min, max, action (warn | quarantine | fail, default
 * fail), description and, for unique(), max_distinct are optional. The check string is
 * parsed here by a small scanner: one check name, then its arguments in parentheses
 * (field paths as sl_path_parse reads them, a list of quoted literals, a duration, or a
 * quoted expression compiled with sl_expr_compile). Each check's default bounds apply
 * only when neither min nor max is written (docs/quality.md lists them).
 *
 * Like the pipeline loader, compile does not stop at the first problem: each problem is
 * collected with its position and all are reported at once, sorted by position, one per
 * line as "file:line:col: message". A problem inside the check string points at the byte
 * of the string where it was found (the column of the scalar, plus one for an opening
 * quote, plus the offset).
 *
 * Ownership: everything compiled lives in the sl_quality's arena, except the ratio()
 * expressions, which sl_quality_destroy frees. Single-threaded; the result is immutable.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/alloc.h"
#include "sluice/buf.h"
#include "sluice/config.h"

#include "quality/quality_internal.h"

#define MAX_GATES 1000
#define MAX_PROBLEMS 200

struct problem {
    unsigned line, col;
    char *msg; /* "file:line:col: ..." in the quality arena */
};

struct compiler {
    struct sl_quality *q;
    const struct sl_cfg_doc *doc;
    const char *const *names;
    size_t nnames;
    struct problem probs[MAX_PROBLEMS];
    size_t nprobs, dropped;
    int oom;
};

static const char *const gate_keys[] = {"name", "on",     "check",       "min",
                                        "max",  "action", "description", "max_distinct"};
#define NGATE_KEYS (sizeof gate_keys / sizeof gate_keys[0])

static const char *const check_names[] = {"row_count",       "null_rate", "unique",
                                          "accepted_values", "freshness", "ratio"};

static const char check_forms[] =
    "row_count, null_rate(field), unique(field), accepted_values(field, ['a', 'b']), "
    "freshness(field, max_age), ratio('expression')";

static void problem(struct compiler *C, const char *file, unsigned line, unsigned col,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void problem(struct compiler *C, const char *file, unsigned line, unsigned col,
                    const char *fmt, ...)
{
    if (C->nprobs == MAX_PROBLEMS) {
        C->dropped++;
        return;
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *m =
        sl_arena_printf(&C->q->arena, "%s:%u:%u: %s", file ? file : "<config>", line, col, msg);
    if (!m) {
        C->oom = 1;
        return;
    }
    C->probs[C->nprobs++] = (struct problem){line, col, m};
}

/* A message that already carries its position. */
static void problem_raw(struct compiler *C, unsigned line, unsigned col, const char *msg)
{
    if (C->nprobs == MAX_PROBLEMS) {
        C->dropped++;
        return;
    }
    char *m = sl_arena_strdup(&C->q->arena, msg);
    if (!m) {
        C->oom = 1;
        return;
    }
    C->probs[C->nprobs++] = (struct problem){line, col, m};
}

#define PROBLEM_AT(C, node, ...) problem((C), (node)->file, (node)->line, (node)->col, __VA_ARGS__)

static const char *kind_noun(const struct sl_cfg_node *n)
{
    if (n->kind == SL_CFG_MAP)
        return "a map";
    if (n->kind == SL_CFG_SEQ)
        return "a list";
    return n->is_null ? "null" : "a string";
}

/* A scalar string value, or NULL after reporting what was found instead. */
static const char *scalar(struct compiler *C, const struct sl_cfg_node *v, const char *what)
{
    if (v->kind != SL_CFG_SCALAR || v->is_null || !v->str[0]) {
        PROBLEM_AT(C, v, "%s: expected %s, found %s", v->keypath, what,
                   v->kind == SL_CFG_SCALAR && !v->is_null ? "an empty string" : kind_noun(v));
        return NULL;
    }
    return v->str;
}

static int parse_number(const char *s, double *out)
{
    char *end;
    while (isspace((unsigned char)*s))
        s++;
    if (!*s)
        return -1;
    double d = strtod(s, &end);
    while (isspace((unsigned char)*end))
        end++;
    if (*end || !isfinite(d))
        return -1;
    *out = d;
    return 0;
}

/* ---- the check string ---------------------------------------------------------------- */

/* Where a check string sits, to turn byte offsets into columns. */
struct checkpos {
    const struct sl_cfg_node *node;
    const char *s;
    size_t n;
};

static void check_problem(struct compiler *C, const struct checkpos *cp, size_t off,
                          const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void check_problem(struct compiler *C, const struct checkpos *cp, size_t off,
                          const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (off > cp->n)
        off = cp->n;
    unsigned col = cp->node->col + (unsigned)off + (cp->node->quoted ? 1u : 0u);
    problem(C, cp->node->file, cp->node->line, col, "%s: %s", cp->node->keypath, msg);
}

static size_t skip_ws(const char *s, size_t i, size_t n)
{
    while (i < n && isspace((unsigned char)s[i]))
        i++;
    return i;
}

/*
 * The end of a field-path argument starting at i: the first ',' or ')' outside brackets
 * and quoted keys. Returns the offset of that delimiter (n when there is none).
 */
static size_t path_end(const char *s, size_t i, size_t n)
{
    int depth = 0;
    while (i < n) {
        char c = s[i];
        if (c == '"') {
            for (i++; i < n && s[i] != '"'; i++)
                if (s[i] == '\\')
                    i++;
        } else if (c == '[') {
            depth++;
        } else if (c == ']') {
            depth--;
        } else if ((c == ',' || c == ')') && depth <= 0) {
            return i;
        }
        i++;
    }
    return n;
}

/* Parse the field path s[from..to) (trimmed) into g->path. 0 or -1 (reported). */
static int field_arg(struct compiler *C, const struct checkpos *cp, struct sl__gate *g, size_t from,
                     size_t to, const char *fname)
{
    from = skip_ws(cp->s, from, to);
    while (to > from && isspace((unsigned char)cp->s[to - 1]))
        to--;
    if (to == from) {
        check_problem(C, cp, from, "%s needs a field path as its first argument, like %s(amount)",
                      fname, fname);
        return -1;
    }
    struct sl_error e;
    sl_error_clear(&e);
    size_t col = 0;
    sl_rc rc = sl_path_parse(cp->s + from, to - from, &C->q->arena, &g->path, &col, &e);
    if (rc == SL_ENOMEM) {
        C->oom = 1;
        return -1;
    }
    if (rc) {
        if (e.msg[0])
            check_problem(C, cp, from + col, "%s: %s", fname, e.msg);
        else
            check_problem(C, cp, from + col, "%s: invalid field path \"%.*s\"", fname,
                          (int)(to - from), cp->s + from);
        return -1;
    }
    return 0;
}

/* One quoted literal at s[i] ('...' or "..."), decoded into the arena. Returns the end. */
static size_t quoted_literal(struct compiler *C, const struct checkpos *cp, size_t i,
                             struct sl_value *out)
{
    const char *s = cp->s;
    char q = s[i];
    struct sl_buf b;
    sl_buf_init(&b, 0);
    size_t j = i + 1;
    for (; j < cp->n && s[j] != q; j++) {
        char c = s[j];
        if (c == '\\' && j + 1 < cp->n) {
            c = s[++j];
            c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
        }
        if (sl_buf_putc(&b, c)) {
            C->oom = 1;
            sl_buf_fini(&b);
            return cp->n;
        }
    }
    if (j >= cp->n) {
        check_problem(C, cp, i, "unterminated string: add the closing %c", q);
        sl_buf_fini(&b);
        return cp->n;
    }
    char *str = sl_arena_strndup(&C->q->arena, b.data ? b.data : "", b.len);
    if (!str)
        C->oom = 1;
    *out = sl_value_string(str ? str : "", str ? b.len : 0);
    sl_buf_fini(&b);
    return j + 1;
}

/* accepted_values' list at s[i] ('[' expected). Returns the offset after ']', or n. */
static size_t accepted_list(struct compiler *C, const struct checkpos *cp, struct sl__gate *g,
                            size_t i)
{
    const char *s = cp->s;
    size_t n = cp->n;
    if (i >= n || s[i] != '[') {
        check_problem(C, cp, i,
                      "accepted_values needs a list of values as its second argument, like "
                      "accepted_values(status, ['paid', 'refunded'])");
        return n;
    }
    size_t cap = 8;
    g->accepted = sl_arena_alloc(&C->q->arena, cap * sizeof *g->accepted);
    if (!g->accepted) {
        C->oom = 1;
        return n;
    }
    i = skip_ws(s, i + 1, n);
    if (i < n && s[i] == ']') {
        check_problem(C, cp, i, "accepted_values: the list of values is empty");
        return n;
    }
    for (;;) {
        i = skip_ws(s, i, n);
        struct sl_value v;
        if (i < n && (s[i] == '\'' || s[i] == '"')) {
            i = quoted_literal(C, cp, i, &v);
            if (i >= n)
                return n;
        } else {
            size_t j = i;
            while (j < n && s[j] != ',' && s[j] != ']' && !isspace((unsigned char)s[j]))
                j++;
            char word[64];
            double d;
            if (j - i == 4 && memcmp(s + i, "null", 4) == 0) {
                v = sl_value_null();
            } else if (j - i == 4 && memcmp(s + i, "true", 4) == 0) {
                v = sl_value_bool(1);
            } else if (j - i == 5 && memcmp(s + i, "false", 5) == 0) {
                v = sl_value_bool(0);
            } else if (j > i && j - i < sizeof word &&
                       (snprintf(word, sizeof word, "%.*s", (int)(j - i), s + i), 1) &&
                       parse_number(word, &d) == 0) {
                v = sl_value_number(d);
            } else {
                check_problem(C, cp, i,
                              "accepted_values: \"%.*s\" is not a value; quote strings like "
                              "'paid', or write a number, true, false or null",
                              (int)(j > i ? j - i : 1), s + i);
                return n;
            }
            i = j;
        }
        if (g->naccepted == cap) {
            struct sl_value *nv = sl_arena_alloc(&C->q->arena, 2 * cap * sizeof *nv);
            if (!nv) {
                C->oom = 1;
                return n;
            }
            memcpy(nv, g->accepted, cap * sizeof *nv);
            g->accepted = nv;
            cap *= 2;
        }
        g->accepted[g->naccepted++] = v;
        i = skip_ws(s, i, n);
        if (i < n && s[i] == ',') {
            i++;
            continue;
        }
        if (i < n && s[i] == ']')
            return i + 1;
        check_problem(C, cp, i, "accepted_values: expected ',' or ']' in the list of values");
        return n;
    }
}

/* Expect ')' then the end of the string at i. 0 or -1 (reported). */
static int close_paren(struct compiler *C, const struct checkpos *cp, size_t i, const char *fname)
{
    i = skip_ws(cp->s, i, cp->n);
    if (i >= cp->n || cp->s[i] != ')') {
        check_problem(C, cp, i, "%s: expected ')'%s", fname,
                      i < cp->n && cp->s[i] == ',' ? " (too many arguments)" : "");
        return -1;
    }
    i = skip_ws(cp->s, i + 1, cp->n);
    if (i < cp->n) {
        check_problem(C, cp, i, "unexpected text after the check: \"%s\"", cp->s + i);
        return -1;
    }
    return 0;
}

/* Parse g->check into g's kind and arguments. 0 or -1 (reported). */
static int parse_check(struct compiler *C, const struct sl_cfg_node *node, struct sl__gate *g)
{
    struct checkpos cp = {node, node->str, strlen(node->str)};
    const char *s = cp.s;
    size_t n = cp.n;
    size_t i = skip_ws(s, 0, n);
    size_t w0 = i;
    while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '_'))
        i++;
    char fname[40];
    snprintf(fname, sizeof fname, "%.*s", (int)(i - w0 < 39 ? i - w0 : 39), s + w0);
    size_t k = 0;
    while (k < sizeof check_names / sizeof check_names[0] && strcmp(fname, check_names[k]) != 0)
        k++;
    if (k == sizeof check_names / sizeof check_names[0]) {
        const char *sug = fname[0] ? sl_suggest(fname, check_names, k) : NULL;
        if (sug)
            check_problem(C, &cp, w0, "unknown check \"%s\"; did you mean \"%s\"?", fname, sug);
        else
            check_problem(C, &cp, w0, "unknown check \"%s\"; the checks are %s",
                          fname[0] ? fname : s, check_forms);
        return -1;
    }
    g->kind = (enum sl__check_kind)(k + 1);
    size_t after_name = i;
    i = skip_ws(s, i, n);
    if (g->kind == SL__CHECK_ROW_COUNT) {
        if (i < n && s[i] == '(') {
            size_t j = skip_ws(s, i + 1, n);
            if (j < n && s[j] == ')')
                return close_paren(C, &cp, j, fname);
            check_problem(C, &cp, i, "row_count takes no arguments: write row_count");
            return -1;
        }
        if (i < n) {
            check_problem(C, &cp, i, "unexpected text after the check: \"%s\"", s + i);
            return -1;
        }
        return 0;
    }
    if (i >= n || s[i] != '(') {
        static const char *const forms[] = {"",
                                            "",
                                            "null_rate(field)",
                                            "unique(field)",
                                            "accepted_values(field, ['a', 'b'])",
                                            "freshness(field, max_age)",
                                            "ratio('expression')"};
        check_problem(C, &cp, i >= n ? after_name : i, "%s needs arguments: write %s", fname,
                      forms[g->kind]);
        return -1;
    }
    i++;
    if (g->kind == SL__CHECK_RATIO) {
        i = skip_ws(s, i, n);
        size_t end = n;
        while (end > i && isspace((unsigned char)s[end - 1]))
            end--;
        if (i >= n || (s[i] != '\'' && s[i] != '"')) {
            check_problem(C, &cp, i, "ratio needs a quoted expression, like ratio('amount > 0')");
            return -1;
        }
        char q = s[i];
        if (end == 0 || s[end - 1] != ')') {
            check_problem(C, &cp, end, "ratio: expected ')' at the end");
            return -1;
        }
        end--;
        while (end > i && isspace((unsigned char)s[end - 1]))
            end--;
        if (end <= i + 1 || s[end - 1] != q) {
            check_problem(C, &cp, end,
                          "ratio: the expression must end with the quote (%c) "
                          "it starts with, followed by ')'",
                          q);
            return -1;
        }
        size_t e0 = i + 1, e1 = end - 1;
        struct sl_error e;
        sl_error_clear(&e);
        size_t col = 0;
        sl_rc rc = sl_expr_compile(s + e0, e1 - e0, &g->expr, &col, &e);
        if (rc == SL_ENOMEM) {
            C->oom = 1;
            return -1;
        }
        if (rc) {
            g->expr = NULL;
            check_problem(C, &cp, e0 + col, "ratio: %s", e.msg[0] ? e.msg : "invalid expression");
            return -1;
        }
        return 0;
    }
    size_t pe = path_end(s, i, n);
    if (field_arg(C, &cp, g, i, pe, fname))
        return -1;
    i = pe;
    if (g->kind == SL__CHECK_NULL_RATE || g->kind == SL__CHECK_UNIQUE)
        return close_paren(C, &cp, i, fname);
    if (i >= n || s[i] != ',') {
        check_problem(C, &cp, i, "%s needs a second argument: write %s", fname,
                      g->kind == SL__CHECK_ACCEPTED ? "accepted_values(field, ['a', 'b'])"
                                                    : "freshness(field, max_age)");
        return -1;
    }
    i = skip_ws(s, i + 1, n);
    if (g->kind == SL__CHECK_ACCEPTED) {
        i = accepted_list(C, &cp, g, i);
        if (i >= n)
            return -1;
        return close_paren(C, &cp, i, fname);
    }
    /* freshness: a duration up to ')' */
    size_t j = i;
    while (j < n && s[j] != ')' && s[j] != ',')
        j++;
    size_t d1 = j;
    while (d1 > i && isspace((unsigned char)s[d1 - 1]))
        d1--;
    char dur[64];
    uint64_t ms = 0;
    if (d1 == i || d1 - i >= sizeof dur ||
        (snprintf(dur, sizeof dur, "%.*s", (int)(d1 - i), s + i), sl_parse_duration(dur, &ms)) ||
        ms == 0) {
        check_problem(C, &cp, i,
                      "freshness: \"%.*s\" is not a maximum age; write a duration like 30s, 15m, "
                      "2h or 1d",
                      (int)(d1 - i), s + i);
        return -1;
    }
    g->has_max = 1;
    g->max = (double)ms / 1000.0;
    return close_paren(C, &cp, j, fname);
}

/* ---- one gate ------------------------------------------------------------------------- */

static void compile_gate(struct compiler *C, const struct sl_cfg_node *item, struct sl__gate *g,
                         const struct sl_cfg_node **name_nodes, size_t index)
{
    struct sl_arena *a = &C->q->arena;
    if (item->kind != SL_CFG_MAP) {
        PROBLEM_AT(C, item, "%s: expected a map with name, on and check, found %s", item->keypath,
                   kind_noun(item));
        return;
    }
    for (size_t k = 0; k < item->n; k++) {
        const struct sl_cfg_pair *pr = &item->pairs[k];
        size_t j = 0;
        while (j < NGATE_KEYS && strcmp(pr->key, gate_keys[j]) != 0)
            j++;
        if (j < NGATE_KEYS)
            continue;
        const char *sug = sl_suggest(pr->key, gate_keys, NGATE_KEYS);
        if (sug)
            problem(C, item->file, pr->line, pr->col,
                    "unknown key \"%s\" in %s; did you mean \"%s\"?", pr->key, item->keypath, sug);
        else
            problem(C, item->file, pr->line, pr->col,
                    "unknown key \"%s\" in %s; expected one of name, on, check, min, max, "
                    "action, description, max_distinct",
                    pr->key, item->keypath);
    }
    int ok = 1;
    static const char *const required[] = {"name", "on", "check"};
    for (size_t k = 0; k < 3; k++)
        if (!sl_cfg_get(item, required[k])) {
            PROBLEM_AT(C, item, "%s: missing required key \"%s\"", item->keypath, required[k]);
            ok = 0;
        }

    const struct sl_cfg_node *v;
    if ((v = sl_cfg_get(item, "name"))) {
        const char *s = scalar(C, v, "the gate's name");
        if (s) {
            for (size_t k = 0; k < index; k++)
                if (name_nodes[k] && strcmp(name_nodes[k]->str, s) == 0) {
                    PROBLEM_AT(C, v,
                               "%s: gate \"%s\" is defined twice (first at line %u); give "
                               "each gate its own name",
                               v->keypath, s, name_nodes[k]->line);
                    s = NULL;
                    break;
                }
        }
        if (s) {
            name_nodes[index] = v;
            g->name = sl_arena_strdup(a, s);
        } else {
            ok = 0;
        }
    }
    if ((v = sl_cfg_get(item, "on"))) {
        const char *s = scalar(C, v, "a component name");
        size_t k = 0;
        if (s) {
            while (k < C->nnames && strcmp(C->names[k], s) != 0)
                k++;
            if (k == C->nnames) {
                const char *sug = sl_suggest(s, C->names, C->nnames);
                if (sug)
                    PROBLEM_AT(C, v, "%s: \"%s\" names no component; did you mean \"%s\"?",
                               v->keypath, s, sug);
                else
                    PROBLEM_AT(C, v,
                               "%s: \"%s\" names no component; `on` takes the name of a "
                               "source, transform or sink",
                               v->keypath, s);
                s = NULL;
            }
        }
        if (s)
            g->comp = (uint32_t)k;
        else
            ok = 0;
    }
    if ((v = sl_cfg_get(item, "check"))) {
        const char *s = scalar(C, v, "a check such as null_rate(field)");
        if (!s || parse_check(C, v, g))
            ok = 0;
        else
            g->check = sl_arena_strdup(a, s);
    }

    int wrote_min = 0, wrote_max = 0, wrote_any = 0;
    double bound[2] = {0, 0};
    static const char *const bound_keys[] = {"min", "max"};
    for (int k = 0; k < 2; k++) {
        if (!(v = sl_cfg_get(item, bound_keys[k])))
            continue;
        wrote_any = 1;
        if (v->kind != SL_CFG_SCALAR || v->is_null || parse_number(v->str, &bound[k])) {
            PROBLEM_AT(C, v, "%s: expected a number, found %s%s%s", v->keypath,
                       v->kind == SL_CFG_SCALAR && !v->is_null ? "\"" : kind_noun(v),
                       v->kind == SL_CFG_SCALAR && !v->is_null ? v->str : "",
                       v->kind == SL_CFG_SCALAR && !v->is_null ? "\"" : "");
            ok = 0;
            continue;
        }
        if (k == 0)
            wrote_min = 1;
        else
            wrote_max = 1;
        if (g->kind == SL__CHECK_FRESHNESS) {
            PROBLEM_AT(C, v,
                       "%s: freshness takes its bound from its max_age argument; remove %s "
                       "(write freshness(field, 2h))",
                       v->keypath, bound_keys[k]);
            ok = 0;
            continue;
        }
        int rate = g->kind == SL__CHECK_NULL_RATE || g->kind == SL__CHECK_ACCEPTED ||
                   g->kind == SL__CHECK_RATIO;
        if (rate && (bound[k] < 0 || bound[k] > 1)) {
            PROBLEM_AT(C, v,
                       "%s: %g is not a fraction; %s is a fraction of records between 0 and 1 "
                       "(write 0.05 for 5%%)",
                       v->keypath, bound[k], check_names[g->kind - 1]);
            ok = 0;
        } else if (!rate && g->kind && bound[k] < 0) {
            PROBLEM_AT(C, v, "%s: %g is negative; %s counts records", v->keypath, bound[k],
                       check_names[g->kind - 1]);
            ok = 0;
        }
    }
    if (wrote_min && wrote_max && bound[0] > bound[1]) {
        v = sl_cfg_get(item, "min");
        PROBLEM_AT(C, v, "%s: min %g is greater than max %g; no value can pass", item->keypath,
                   bound[0], bound[1]);
        ok = 0;
    }
    if (g->kind && g->kind != SL__CHECK_FRESHNESS) {
        g->has_min = wrote_min;
        g->has_max = wrote_max;
        g->min = bound[0];
        g->max = bound[1];
        if (!wrote_min && !wrote_max) {
            /* The defaults: a perfect unit. row_count has none and must be told. */
            switch (g->kind) {
            case SL__CHECK_ROW_COUNT:
                if (wrote_any) /* a bound was written but is wrong: reported above */
                    break;
                PROBLEM_AT(C, item,
                           "%s: row_count needs a bound: add min (e.g. min: 1) or max or both",
                           item->keypath);
                ok = 0;
                break;
            case SL__CHECK_RATIO:
                g->has_min = 1;
                g->min = 1;
                break;
            default:
                g->has_max = 1;
                g->max = 0;
                break;
            }
        }
    }

    g->action = SL_GATE_FAIL;
    if ((v = sl_cfg_get(item, "action"))) {
        static const char *const actions[] = {"warn", "quarantine", "fail"};
        const char *s = scalar(C, v, "warn, quarantine or fail");
        size_t k = 0;
        if (s) {
            while (k < 3 && strcmp(actions[k], s) != 0)
                k++;
            if (k == 3) {
                const char *sug = sl_suggest(s, actions, 3);
                PROBLEM_AT(C, v, "%s: \"%s\" is not one of warn, quarantine, fail%s%s%s",
                           v->keypath, s, sug ? "; did you mean \"" : "", sug ? sug : "",
                           sug ? "\"?" : "");
                s = NULL;
            }
        }
        if (s)
            g->action = (enum sl_gate_action)(k + 1);
        else
            ok = 0;
    }
    if ((v = sl_cfg_get(item, "description"))) {
        const char *s = scalar(C, v, "a string");
        if (s)
            g->description = sl_arena_strdup(a, s);
        else
            ok = 0;
    }
    g->max_distinct = SL__UNIQUE_DEFAULT_DISTINCT;
    if ((v = sl_cfg_get(item, "max_distinct"))) {
        struct sl_error e;
        sl_error_clear(&e);
        int64_t md = 0;
        if (sl_cfg_get_int(item, "max_distinct", 0, &md, &e)) {
            problem_raw(C, v->line, v->col, e.msg);
            ok = 0;
        } else if (g->kind && g->kind != SL__CHECK_UNIQUE) {
            PROBLEM_AT(C, v, "%s: max_distinct applies only to unique(field); remove it",
                       v->keypath);
            ok = 0;
        } else if (md < 1 || md > (int64_t)SL__UNIQUE_MAX_DISTINCT) {
            PROBLEM_AT(C, v, "%s: %lld is out of range; max_distinct is 1 to %u", v->keypath,
                       (long long)md, SL__UNIQUE_MAX_DISTINCT);
            ok = 0;
        } else {
            g->max_distinct = (uint64_t)md;
        }
    }
    (void)ok;
}

/* ---- the list ------------------------------------------------------------------------- */

static int by_position(const void *x, const void *y)
{
    const struct problem *a = x, *b = y;
    if (a->line != b->line)
        return a->line < b->line ? -1 : 1;
    if (a->col != b->col)
        return a->col < b->col ? -1 : 1;
    return 0;
}

static sl_rc report(struct compiler *C, struct sl_error *err)
{
    qsort(C->probs, C->nprobs, sizeof C->probs[0], by_position);
    char *m = err ? err->msg : NULL;
    size_t cap = SL_ERROR_MSG_MAX, len = 0;
    size_t shown = 0;
    if (m) {
        m[0] = 0;
        for (; shown < C->nprobs; shown++) {
            size_t need = strlen(C->probs[shown].msg) + (shown ? 1 : 0);
            if (len + need + 40 >= cap)
                break;
            len += (size_t)snprintf(m + len, cap - len, "%s%s", shown ? "\n" : "",
                                    C->probs[shown].msg);
        }
        size_t more = C->nprobs - shown + C->dropped;
        if (more)
            snprintf(m + len, cap - len, "\n... and %zu more", more);
        err->rc = SL_ECONFIG;
        err->sys_errno = 0;
    }
    return SL_ECONFIG;
}

sl_rc sl_quality_compile(const struct sl_cfg_doc *doc, const struct sl_cfg_node *list,
                         const char *const *names, size_t n, struct sl_quality **out,
                         struct sl_error *err)
{
    struct sl_quality *q = sl_calloc(1, sizeof *q);
    struct compiler *C = sl_calloc(1, sizeof *C);
    const struct sl_cfg_node **name_nodes = NULL;
    sl_rc rc = SL_ENOMEM;
    if (!q || !C)
        goto fail;
    sl_arena_init(&q->arena, 16384);
    C->q = q;
    C->doc = doc;
    C->names = names;
    C->nnames = n;
    if (!list || (list->kind == SL_CFG_SCALAR && list->is_null)) {
        *out = q;
        sl_free(C);
        return SL_OK;
    }
    if (list->kind != SL_CFG_SEQ) {
        PROBLEM_AT(C, list,
                   "%s: expected a list of gates (each a map with name, on and check), "
                   "found %s",
                   list->keypath[0] ? list->keypath : "quality", kind_noun(list));
        goto problems;
    }
    if (list->n > MAX_GATES) {
        PROBLEM_AT(C, list, "%s: %zu gates is more than the limit of %d",
                   list->keypath[0] ? list->keypath : "quality", list->n, MAX_GATES);
        goto problems;
    }
    q->gates = sl_arena_calloc(&q->arena, (list->n ? list->n : 1) * sizeof *q->gates);
    name_nodes = sl_calloc(list->n ? list->n : 1, sizeof *name_nodes);
    if (!q->gates || !name_nodes)
        goto fail;
    q->n = list->n;
    for (size_t i = 0; i < list->n && !C->oom; i++)
        compile_gate(C, list->items[i], &q->gates[i], name_nodes, i);
    if (C->oom)
        goto fail;
    if (C->nprobs || C->dropped)
        goto problems;
    sl_free(name_nodes);
    sl_free(C);
    *out = q;
    return SL_OK;

problems:
    if (C->oom)
        goto fail;
    rc = report(C, err);
    sl_free(name_nodes);
    sl_free(C);
    sl_quality_destroy(q);
    return rc;
fail:
    sl_free(name_nodes);
    sl_free(C);
    sl_quality_destroy(q);
    return sl_error_set(err, SL_ENOMEM, "out of memory compiling the quality gates");
}

void sl_quality_destroy(struct sl_quality *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->n; i++)
        sl_expr_destroy(q->gates[i].expr);
    sl_arena_fini(&q->arena);
    sl_free(q);
}

size_t sl_quality_count(const struct sl_quality *q)
{
    return q ? q->n : 0;
}

size_t sl_quality_count_on(const struct sl_quality *q, uint32_t comp)
{
    size_t k = 0;
    for (size_t i = 0; q && i < q->n; i++)
        k += q->gates[i].comp == comp;
    return k;
}
