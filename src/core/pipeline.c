/*
 * pipeline.c - load a pipeline file, validate every part of it, resolve the stage graph.
 *
 * This is the gate between what a user wrote and what the engine runs. Everything that
 * can be checked without reading data is checked here, before any thread starts:
 *
 *   1. top-level keys (known, reserved-for-later, or a typo with "did you mean");
 *   2. the scalar settings (name, state_dir, delivery, batch, queue, json) with ranges;
 *   3. each component: a map with a known `type` of its section's kind, the common keys
 *      (`inputs` for transforms and sinks, `workers` for transforms), and every other key
 *      against its plugin's option table (plugin.h): unknown keys, required keys, value
 *      types, enum choices, and expression syntax (compiled, then thrown away);
 *   4. the graph: names unique across sections, every input names a source or transform
 *      (or one named output of a route), no sink is read from, nothing produces records
 *      nobody reads, and no cycle.
 *
 * A user fixing a file should see every problem at once rather than one per run, so
 * checks do not stop at the first failure: each problem is collected with its position,
 * and sl_pipeline_load reports them all, sorted by position, one per line, as
 * "file:line:col: message" (truncated with "... and N more" when err->msg is full).
 *
 * The same tables that drive validation (the plugins' option tables and this file's
 * tables for the top-level keys) generate the configuration reference
 * (sl_pipeline_doc_reference), so the documentation cannot drift from the code.
 *
 * Ownership: the pipeline owns its cfg document; every string and array of the pipeline
 * (component names, inputs, outputs, state_dir) lives in the document's arena. Nothing
 * here is shared between threads; a loaded pipeline is read-only afterwards.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice/alloc.h"
#include "sluice/buf.h"
#include "sluice/config.h"
#include "sluice/expr.h"
#include "sluice/pipeline.h"
#include "sluice/quality.h"

#include "core/problems.h"

#define MAX_COMPONENTS 1024 /* per pipeline; far beyond any sane graph */
#define MAX_WORKERS 64

/* ---- the top-level keys, as option tables (validation and docs share them) ---------- */

static const struct sl_option top_options[] = {
    {"pipeline", SL_OPT_STRING, NULL, 1,
     "The pipeline's name: letters, digits, _ and -. It keys checkpoints and record ids, so "
     "renaming a pipeline starts it from scratch.",
     NULL},
    {"state_dir", SL_OPT_PATH, ".sluice/<pipeline>", 0,
     "Directory for checkpoints, the write-ahead log and the dead-letter queue; relative to "
     "the configuration file.",
     NULL},
    {"delivery", SL_OPT_ENUM, "exactly_once", 0,
     "exactly_once commits each sink's checkpoint atomically with its output; at_least_once "
     "may repeat records after a crash.",
     "exactly_once|at_least_once"},
    {"sources", SL_OPT_OBJECT, NULL, 1, "Map of source name to source component.", NULL},
    {"transforms", SL_OPT_OBJECT, NULL, 0, "Map of transform name to transform component.", NULL},
    {"sinks", SL_OPT_OBJECT, NULL, 1, "Map of sink name to sink component.", NULL},
    {"batch", SL_OPT_OBJECT, NULL, 0, "Batch limits (see below).", NULL},
    {"queue", SL_OPT_OBJECT, NULL, 0, "Limits of the queue on every edge (see below).", NULL},
    {"json", SL_OPT_OBJECT, NULL, 0, "JSON parsing limits (see below).", NULL},
    {"memory_limit", SL_OPT_SIZE, "0", 0,
     "Memory for records in flight (every batch, its records, parse tapes and edits, in all "
     "queues and stages): above it sources stop reading and ingest endpoints answer 503 "
     "until it drains. 0: no limit beyond the queue limits.",
     NULL},
    {"dlq", SL_OPT_OBJECT, NULL, 0,
     "The dead-letter queue that keeps every rejected record with its reason (see below "
     "and docs/dlq.md).",
     NULL},
    {"admin", SL_OPT_OBJECT, NULL, 0,
     "The admin HTTP server: /metrics (Prometheus), /health, /ready (see below).", NULL},
    {"quality", SL_OPT_OBJECT, NULL, 0,
     "A list of quality gates, each judging the records one component passes on "
     "(docs/quality.md).",
     NULL},
    {NULL, 0, NULL, 0, NULL, NULL},
};

static const struct sl_option admin_options[] = {
    {"listen", SL_OPT_STRING, "127.0.0.1:9464", 0,
     "host:port the admin server listens on while the pipeline runs.", NULL},
    {NULL, 0, NULL, 0, NULL, NULL},
};

static const struct sl_option dlq_options[] = {
    {"enabled", SL_OPT_BOOL, "true", 0,
     "Keep rejected records in the dead-letter queue. With false they are only logged and "
     "counted, and lost.",
     NULL},
    {"path", SL_OPT_PATH, "<state_dir>/dlq.db", 0,
     "The dead-letter queue's SQLite database; relative to the configuration file.", NULL},
    {NULL, 0, NULL, 0, NULL, NULL},
};

static const struct sl_option batch_options[] = {
    {"max_records", SL_OPT_INT, "1024", 0,
     "A source closes a batch at this many records (1 to 1000000).", NULL},
    {"max_bytes", SL_OPT_SIZE, "1MiB", 0,
     "A source closes a batch at this many bytes of input (1 byte to 1GiB).", NULL},
    {NULL, 0, NULL, 0, NULL, NULL},
};

static const struct sl_option queue_options[] = {
    {"max_batches", SL_OPT_INT, "4", 0,
     "Batches waiting on one edge before its producer blocks (1 to 1024).", NULL},
    {"max_bytes", SL_OPT_SIZE, "16MiB", 0,
     "Bytes waiting on one edge before its producer blocks (1 byte to 64GiB).", NULL},
    {NULL, 0, NULL, 0, NULL, NULL},
};

static const struct sl_option json_options[] = {
    {"max_depth", SL_OPT_INT, "128", 0,
     "Deepest nesting of arrays and objects a record may have; deeper records go to the "
     "dead-letter queue (1 to 1024).",
     NULL},
    {"duplicate_keys", SL_OPT_ENUM, "last", 0,
     "An object that names a key twice: last keeps the last value (what every reader sees); "
     "reject sends the record to the dead-letter queue.",
     "last|reject"},
    {"require_object", SL_OPT_BOOL, "false", 0,
     "Every record must be a JSON object; with true any other top-level value (array, "
     "string, number, ...) goes to the dead-letter queue when parsed. Stages that need an "
     "object (a sqlite sink, a map) reject such records either way.",
     NULL},
    {NULL, 0, NULL, 0, NULL, NULL},
};

/* Keys every component may have besides its plugin's options. */
static const struct sl_option common_options[] = {
    {"type", SL_OPT_STRING, NULL, 1, "The plugin, one of the types listed below.", NULL},
    {"inputs", SL_OPT_LIST, NULL, 1,
     "Transforms and sinks: the components it reads from, by name; a route's output as "
     "route_name.output. Sources take no inputs.",
     NULL},
    {"workers", SL_OPT_INT, "1", 0,
     "Transforms: parallel worker threads (1 to 64). Output order is restored before sinks.", NULL},
    {"retry", SL_OPT_OBJECT, NULL, 0,
     "Sinks: how transient failures are retried (see `retry` below).", NULL},
    {"circuit_breaker", SL_OPT_OBJECT, NULL, 0,
     "Sinks: when to stop calling a failing dependency for a while (see `circuit_breaker` "
     "below).",
     NULL},
    {NULL, 0, NULL, 0, NULL, NULL},
};

static const struct sl_option retry_options[] = {
    {"max_attempts", SL_OPT_INT, "0", 0,
     "Attempts per batch before the run fails (0: no limit). Transient failures only: a "
     "permanent one isolates the bad records instead.",
     NULL},
    {"max_elapsed", SL_OPT_DURATION, "0s", 0,
     "Give up on a batch (the run fails, nothing is lost) after retrying it this long (0s: "
     "no limit).",
     NULL},
    {"initial_backoff", SL_OPT_DURATION, "100ms", 0,
     "Wait before the first retry; each retry waits a random time up to the current backoff "
     "(full jitter).",
     NULL},
    {"max_backoff", SL_OPT_DURATION, "30s", 0, "The backoff grows up to this.", NULL},
    {"multiplier", SL_OPT_STRING, "2", 0,
     "The backoff is multiplied by this after each failure (1 to 10).", NULL},
    {NULL, 0, NULL, 0, NULL, NULL},
};

static const struct sl_option breaker_options[] = {
    {"failure_threshold", SL_OPT_INT, "5", 0,
     "Consecutive failed attempts that open the breaker (0: no breaker).", NULL},
    {"open_for", SL_OPT_DURATION, "30s", 0,
     "How long an open breaker lets nothing through before probing.", NULL},
    {"half_open_probes", SL_OPT_INT, "1", 0,
     "Attempts allowed through when half-open; one success closes the breaker, all failing "
     "opens it again.",
     NULL},
    {NULL, 0, NULL, 0, NULL, NULL},
};

struct reserved_key {
    const char *name;
    const char *what;
};

/* Keys of later versions: rejected loudly, because ignoring them would fake a feature. */
static const struct reserved_key reserved_keys[] = {
    {NULL, NULL},
};

/* ---- problems ---------------------------------------------------------------------- */

/*
 * Everything one load needs.
 *
 * Invariants:
 *   1. comp[0..ncomp) are in file order: sources, then transforms, then sinks (the
 *      final, topological order is made only when no problem was found).
 */
struct loader {
    struct sl_pipeline *p;
    struct sl_cfg_doc *doc;
    struct sl_arena *a;
    struct sl__problems ps;
    /* per component, parallel to comp[] during loading */
    struct sl_component comp[MAX_COMPONENTS];
    const struct sl_cfg_pair *key[MAX_COMPONENTS];    /* the name's pair in its section */
    const struct sl_cfg_node *innode[MAX_COMPONENTS]; /* "inputs" value, or NULL */
    const char *section[MAX_COMPONENTS];
    size_t ncomp;
    int too_many;
};

static void problem_at(struct loader *L, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void problem_at(struct loader *L, unsigned line, unsigned col, const char *fmt, ...)
{
    char msg[SL_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sl__problems_addf(&L->ps, line, col, "%s", msg);
}

/* A problem already formatted by a getter (err->msg holds "file:line:col: ..."). */
static void problem_err(struct loader *L, const struct sl_cfg_node *n, const struct sl_error *e)
{
    sl__problems_add_err(&L->ps, n, e);
}

/* ---- small helpers ----------------------------------------------------------------- */

static const char *kind_noun(const struct sl_cfg_node *n)
{
    if (n->kind == SL_CFG_MAP)
        return "a map";
    if (n->kind == SL_CFG_SEQ)
        return "a list";
    return n->is_null ? "null" : "a string";
}

static int valid_name(const char *s)
{
    if (!*s || strlen(s) > 128)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
            return 0;
    return 1;
}

/* "a, b, c" from a NULL-terminated list of names, in the arena ("" on failure). */
static const char *join(struct loader *L, const char *const *names, size_t n, const char *sep)
{
    struct sl_buf b;
    sl_buf_init(&b, 4096);
    for (size_t i = 0; i < n; i++)
        if (sl_buf_puts(&b, i ? sep : "") || sl_buf_puts(&b, names[i]))
            break;
    const char *s = b.len ? sl_arena_strndup(L->a, b.data, b.len) : "";
    sl_buf_fini(&b);
    if (!s) {
        L->ps.oom = 1;
        return "";
    }
    return s;
}

/* Split "a|b|c" into names in the arena; returns the count (at most max). */
static size_t split_choices(struct loader *L, const char *choices, const char **out, size_t max)
{
    size_t n = 0;
    while (choices && *choices && n < max) {
        const char *bar = strchr(choices, '|');
        size_t len = bar ? (size_t)(bar - choices) : strlen(choices);
        out[n] = sl_arena_strndup(L->a, choices, len);
        if (!out[n]) {
            L->ps.oom = 1;
            return n;
        }
        n++;
        choices = bar ? bar + 1 : NULL;
    }
    return n;
}

/* Report an unknown key, with a suggestion or else the list of valid keys. */
static void unknown_key(struct loader *L, const struct sl_cfg_pair *pr, const char *where,
                        const char *const *valid, size_t nvalid)
{
    const char *s = sl_suggest(pr->key, valid, nvalid);
    char in[600] = "";
    if (where && *where)
        snprintf(in, sizeof in, " in %s", where);
    if (s)
        problem_at(L, pr->line, pr->col, "unknown %skey \"%s\"%s; did you mean \"%s\"?",
                   where ? "" : "top-level ", pr->key, in, s);
    else
        problem_at(L, pr->line, pr->col, "unknown %skey \"%s\"%s; expected one of %s",
                   where ? "" : "top-level ", pr->key, in, join(L, valid, nvalid, ", "));
}

/* ---- option values ----------------------------------------------------------------- */

static void check_expr(struct loader *L, const struct sl_cfg_node *v)
{
    struct sl_error e;
    struct sl_expr *x = NULL;
    size_t col = 0;
    sl_error_clear(&e);
    if (v->kind != SL_CFG_SCALAR || v->is_null) {
        problem_at(L, v->line, v->col, "%s: expected an expression, found %s", v->keypath,
                   kind_noun(v));
        return;
    }
    sl_rc rc = sl_expr_compile(v->str, strlen(v->str), &x, &col, &e);
    if (rc == SL_ENOMEM) {
        L->ps.oom = 1;
        return;
    }
    if (rc) {
        if (col > strlen(v->str))
            col = strlen(v->str);
        problem_at(L, v->line, v->col + (unsigned)col + (v->quoted ? 1u : 0u), "%s: %s", v->keypath,
                   e.msg[0] ? e.msg : "invalid expression");
        return;
    }
    sl_expr_destroy(x);
}

static void check_scalar_str(struct loader *L, const struct sl_cfg_node *v, const char *what)
{
    if (v->kind != SL_CFG_SCALAR || v->is_null)
        problem_at(L, v->line, v->col, "%s: expected %s, found %s", v->keypath, what, kind_noun(v));
}

/* Check one option's value v (found under key in map) against its declared type. */
static void check_option(struct loader *L, const struct sl_option *o, const struct sl_cfg_node *map,
                         const struct sl_cfg_node *v)
{
    struct sl_error e;
    sl_error_clear(&e);
    const char *s;
    int64_t i;
    int b;
    uint64_t u;
    sl_rc rc = SL_OK;
    switch (o->type) {
    case SL_OPT_STRING:
        rc = sl_cfg_get_str(map, o->name, NULL, &s, &e);
        break;
    case SL_OPT_INT:
        rc = sl_cfg_get_int(map, o->name, 0, &i, &e);
        break;
    case SL_OPT_BOOL:
        rc = sl_cfg_get_bool(map, o->name, 0, &b, &e);
        break;
    case SL_OPT_DURATION:
        rc = sl_cfg_get_duration(map, o->name, 0, &u, &e);
        break;
    case SL_OPT_SIZE:
        rc = sl_cfg_get_size(map, o->name, 0, &u, &e);
        break;
    case SL_OPT_PATH:
        rc = sl_cfg_get_path(L->doc, map, o->name, NULL, &s, &e);
        break;
    case SL_OPT_ENUM: {
        rc = sl_cfg_get_str(map, o->name, NULL, &s, &e);
        if (rc)
            break;
        const char *names[64];
        size_t n = split_choices(L, o->choices, names, 64);
        size_t k = 0;
        while (k < n && strcmp(names[k], s) != 0)
            k++;
        if (k < n)
            break;
        const char *sug = sl_suggest(s, names, n);
        if (sug)
            problem_at(L, v->line, v->col, "%s: \"%s\" is not one of %s; did you mean \"%s\"?",
                       v->keypath, s, join(L, names, n, ", "), sug);
        else
            problem_at(L, v->line, v->col, "%s: \"%s\" is not one of %s", v->keypath, s,
                       join(L, names, n, ", "));
        return;
    }
    case SL_OPT_EXPR:
        check_expr(L, v);
        return;
    case SL_OPT_LIST:
        if (v->kind == SL_CFG_SCALAR && !v->is_null)
            return;
        if (v->kind != SL_CFG_SEQ) {
            problem_at(L, v->line, v->col, "%s: expected a list of strings, found %s", v->keypath,
                       kind_noun(v));
            return;
        }
        for (size_t k = 0; k < v->n; k++)
            check_scalar_str(L, v->items[k], "a string");
        return;
    case SL_OPT_MAP:
    case SL_OPT_EXPR_MAP:
        if (v->kind != SL_CFG_MAP) {
            problem_at(L, v->line, v->col, "%s: expected a map of %s, found %s", v->keypath,
                       o->type == SL_OPT_MAP ? "names to strings" : "names to expressions",
                       kind_noun(v));
            return;
        }
        for (size_t k = 0; k < v->n; k++) {
            if (o->type == SL_OPT_MAP)
                check_scalar_str(L, v->pairs[k].val, "a string");
            else
                check_expr(L, v->pairs[k].val);
        }
        return;
    case SL_OPT_OBJECT:
        if (v->kind != SL_CFG_MAP)
            problem_at(L, v->line, v->col, "%s: expected a map, found %s", v->keypath,
                       kind_noun(v));
        return;
    }
    if (rc)
        problem_err(L, v, &e);
}

static size_t count_options(const struct sl_option *opts)
{
    size_t n = 0;
    while (opts && opts[n].name)
        n++;
    return n;
}

static const struct sl_option *find_option(const struct sl_option *opts, const char *name)
{
    for (size_t i = 0; opts && opts[i].name; i++)
        if (strcmp(opts[i].name, name) == 0)
            return &opts[i];
    return NULL;
}

/*
 * Check a simple settings map (batch, queue, json) against its table: the value must be
 * a map, keys must be known and values well typed.
 */
static int check_settings(struct loader *L, const struct sl_cfg_node *map,
                          const struct sl_option *opts)
{
    if (!map || (map->kind == SL_CFG_SCALAR && map->is_null))
        return 0;
    if (map->kind != SL_CFG_MAP) {
        problem_at(L, map->line, map->col, "%s: expected a map, found %s", map->keypath,
                   kind_noun(map));
        return -1;
    }
    const char *names[32];
    size_t n = count_options(opts);
    for (size_t i = 0; i < n && i < 32; i++)
        names[i] = opts[i].name;
    int bad = 0;
    for (size_t i = 0; i < map->n; i++) {
        const struct sl_cfg_pair *pr = &map->pairs[i];
        const struct sl_option *o = find_option(opts, pr->key);
        if (!o) {
            unknown_key(L, pr, map->keypath, names, n);
            bad = 1;
            continue;
        }
        size_t before = L->ps.n;
        check_option(L, o, map, pr->val);
        if (L->ps.n != before)
            bad = 1;
    }
    return bad ? -1 : 0;
}

/* An integer setting in [lo, hi]; the value was type-checked by check_settings. */
static uint64_t int_setting(struct loader *L, const struct sl_cfg_node *map, const char *key,
                            int64_t def, int64_t lo, int64_t hi)
{
    int64_t v = def;
    struct sl_error e;
    if (sl_cfg_get_int(map, key, def, &v, &e))
        return (uint64_t)def;
    if (v < lo || v > hi) {
        const struct sl_cfg_node *n = sl_cfg_get(map, key);
        problem_at(L, n->line, n->col, "%s: %lld is out of range; use %lld to %lld", n->keypath,
                   (long long)v, (long long)lo, (long long)hi);
        return (uint64_t)def;
    }
    return (uint64_t)v;
}

static uint64_t size_setting(struct loader *L, const struct sl_cfg_node *map, const char *key,
                             uint64_t def, uint64_t lo, uint64_t hi, const char *range)
{
    uint64_t v = def;
    struct sl_error e;
    if (sl_cfg_get_size(map, key, def, &v, &e))
        return def;
    if (v < lo || v > hi) {
        const struct sl_cfg_node *n = sl_cfg_get(map, key);
        problem_at(L, n->line, n->col, "%s: %s is out of range; use %s", n->keypath, n->str, range);
        return def;
    }
    return v;
}

/* ---- components -------------------------------------------------------------------- */

static const char *kind_section(enum sl_plugin_kind k)
{
    return k == SL_PLUGIN_SOURCE ? "sources" : k == SL_PLUGIN_TRANSFORM ? "transforms" : "sinks";
}

/* Names of every plugin of kind k, in registry order. */
static size_t plugin_names(enum sl_plugin_kind k, const char **out, size_t max)
{
    size_t n = 0;
    const struct sl_plugin *const *all = sl_plugin_all();
    for (size_t i = 0; all && all[i] && n < max; i++)
        if (all[i]->kind == k)
            out[n++] = all[i]->name;
    return n;
}

static const struct sl_plugin *resolve_type(struct loader *L, enum sl_plugin_kind k,
                                            const struct sl_cfg_pair *namepair,
                                            const struct sl_cfg_node *m)
{
    const char *names[128];
    size_t n = plugin_names(k, names, 128);
    const char *kn = sl_plugin_kind_name(k);
    const struct sl_cfg_node *t = sl_cfg_get(m, "type");
    if (!t) {
        problem_at(L, namepair->line, namepair->col,
                   "%s: missing required key \"type\" (%s types: %s)", m->keypath, kn,
                   join(L, names, n, ", "));
        return NULL;
    }
    if (t->kind != SL_CFG_SCALAR || t->is_null) {
        problem_at(L, t->line, t->col, "%s: expected a %s type, found %s; one of %s", t->keypath,
                   kn, kind_noun(t), join(L, names, n, ", "));
        return NULL;
    }
    const struct sl_plugin *pl = sl_plugin_find(k, t->str);
    if (pl)
        return pl;
    for (int other = SL_PLUGIN_SOURCE; other <= SL_PLUGIN_SINK; other++) {
        if ((enum sl_plugin_kind)other != k && sl_plugin_find(other, t->str)) {
            problem_at(L, t->line, t->col,
                       "%s: \"%s\" is a %s type, not a %s type; move it under %s: or use "
                       "one of %s",
                       t->keypath, t->str, sl_plugin_kind_name(other), kn, kind_section(other),
                       join(L, names, n, ", "));
            return NULL;
        }
    }
    const char *s = sl_suggest(t->str, names, n);
    if (s)
        problem_at(L, t->line, t->col, "%s: unknown %s type \"%s\"; did you mean \"%s\"?",
                   t->keypath, kn, t->str, s);
    else
        problem_at(L, t->line, t->col, "%s: unknown %s type \"%s\"; expected one of %s", t->keypath,
                   kn, t->str, join(L, names, n, ", "));
    return NULL;
}

/* Named outputs of a route-like component: the keys of its outputs_option map. */
static void resolve_outputs(struct loader *L, struct sl_component *c)
{
    const struct sl_plugin *pl = c->plugin;
    c->outputs = NULL;
    c->noutputs = 1;
    if (!pl || !pl->outputs_option)
        return;
    const struct sl_cfg_node *m = sl_cfg_get(c->node, pl->outputs_option);
    size_t n = m && m->kind == SL_CFG_MAP ? m->n : 0;
    const char **outs = sl_arena_alloc(L->a, (n + 1) * sizeof *outs);
    if (!outs) {
        L->ps.oom = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const struct sl_cfg_pair *pr = &m->pairs[i];
        if (strcmp(pr->key, "_unmatched") == 0)
            problem_at(L, pr->line, pr->col,
                       "%s: \"_unmatched\" is reserved for records no route matches; "
                       "choose another name",
                       m->keypath);
        else if (!valid_name(pr->key))
            problem_at(L, pr->line, pr->col,
                       "%s: \"%s\" is not a valid output name; use letters, digits, _ and -",
                       m->keypath, pr->key);
        outs[i] = pr->key;
    }
    outs[n] = "_unmatched";
    c->outputs = outs;
    c->noutputs = n + 1;
}

/*
 * retry and circuit_breaker: sinks only. Defaults when absent (DESIGN §5): retry forever
 * with full-jitter backoff from 100ms to 30s, a breaker that opens after 5 consecutive
 * failures for 30s.
 */
static void load_sink_policies(struct loader *L, enum sl_plugin_kind k, const struct sl_cfg_node *m,
                               struct sl_component *c)
{
    c->retry = (struct sl_retry_policy){0, 0, 100, 30000, 2.0};
    c->breaker = (struct sl_breaker_policy){5, 30000, 1};
    const struct sl_cfg_node *r = sl_cfg_get(m, "retry");
    const struct sl_cfg_node *b = sl_cfg_get(m, "circuit_breaker");
    if (k != SL_PLUGIN_SINK) {
        if (r)
            problem_at(L, r->line, r->col, "%s: only sinks retry; remove it", r->keypath);
        if (b)
            problem_at(L, b->line, b->col, "%s: only sinks have a circuit breaker; remove it",
                       b->keypath);
        return;
    }
    struct sl_error e;
    if (!check_settings(L, r, retry_options) && r && r->kind == SL_CFG_MAP) {
        c->retry.max_attempts = (uint32_t)int_setting(L, r, "max_attempts", 0, 0, 1000000000);
        uint64_t ms;
        if (sl_cfg_get_duration(r, "max_elapsed", 0, &ms, &e) == SL_OK)
            c->retry.max_elapsed_ms = ms;
        if (sl_cfg_get_duration(r, "initial_backoff", 100, &ms, &e) == SL_OK)
            c->retry.initial_ms = ms;
        if (sl_cfg_get_duration(r, "max_backoff", 30000, &ms, &e) == SL_OK)
            c->retry.max_ms = ms;
        const struct sl_cfg_node *mu = sl_cfg_get(r, "multiplier");
        if (mu && mu->kind == SL_CFG_SCALAR) {
            char *end = NULL;
            double v = strtod(mu->str, &end);
            if (!end || *end || !(v >= 1.0 && v <= 10.0))
                problem_at(L, mu->line, mu->col, "%s: expected a number from 1 to 10, found \"%s\"",
                           mu->keypath, mu->str);
            else
                c->retry.multiplier = v;
        }
        if (c->retry.initial_ms == 0)
            c->retry.initial_ms = 1;
        if (c->retry.max_ms < c->retry.initial_ms) {
            const struct sl_cfg_node *n = sl_cfg_get(r, "max_backoff");
            problem_at(L, n ? n->line : r->line, n ? n->col : r->col,
                       "%s: max_backoff is shorter than initial_backoff", r->keypath);
        }
    }
    if (!check_settings(L, b, breaker_options) && b && b->kind == SL_CFG_MAP) {
        c->breaker.failure_threshold =
            (uint32_t)int_setting(L, b, "failure_threshold", 5, 0, 1000000);
        uint64_t ms;
        if (sl_cfg_get_duration(b, "open_for", 30000, &ms, &e) == SL_OK)
            c->breaker.open_for_ms = ms;
        c->breaker.half_open_probes = (uint32_t)int_setting(L, b, "half_open_probes", 1, 1, 1000);
    }
}

static void load_component(struct loader *L, enum sl_plugin_kind k,
                           const struct sl_cfg_pair *namepair)
{
    const struct sl_cfg_node *m = namepair->val;
    const char *sec = kind_section(k);
    if (!valid_name(namepair->key)) {
        problem_at(L, namepair->line, namepair->col,
                   "%s: \"%s\" is not a valid component name; use letters, digits, _ and - "
                   "(at most 128)",
                   sec, namepair->key);
        return;
    }
    for (size_t i = 0; i < L->ncomp; i++)
        if (strcmp(L->comp[i].name, namepair->key) == 0) {
            problem_at(L, namepair->line, namepair->col,
                       "%s.%s: the name \"%s\" is already used by %s.%s (line %u); component "
                       "names must be unique",
                       sec, namepair->key, namepair->key, L->section[i], L->comp[i].name,
                       L->key[i]->line);
            return;
        }
    if (L->ncomp >= MAX_COMPONENTS) {
        if (!L->too_many)
            problem_at(L, namepair->line, namepair->col,
                       "more than %d components; split the pipeline", MAX_COMPONENTS);
        L->too_many = 1;
        return;
    }
    if (m->kind != SL_CFG_MAP) {
        problem_at(L, m->line, m->col, "%s: expected a map with a \"type\" key, found %s",
                   m->keypath, kind_noun(m));
        return;
    }
    size_t idx = L->ncomp++;
    struct sl_component *c = &L->comp[idx];
    memset(c, 0, sizeof *c);
    c->name = namepair->key;
    c->kind = k;
    c->node = m;
    c->workers = 1;
    c->noutputs = 1;
    L->key[idx] = namepair;
    L->section[idx] = sec;
    L->innode[idx] = NULL;
    const struct sl_plugin *pl = resolve_type(L, k, namepair, m);
    c->plugin = pl;

    /* Common keys. */
    const struct sl_cfg_node *in = sl_cfg_get(m, "inputs");
    if (k == SL_PLUGIN_SOURCE) {
        if (in)
            problem_at(L, in->line, in->col, "%s: a source does not take inputs; remove it",
                       in->keypath);
    } else if (!in) {
        problem_at(L, namepair->line, namepair->col,
                   "%s: missing required key \"inputs\" (the names of the components it "
                   "reads from)",
                   m->keypath);
    } else {
        size_t before = L->ps.n;
        check_option(L, &common_options[1], m, in);
        if (L->ps.n == before) {
            if (in->kind == SL_CFG_SEQ && in->n == 0)
                problem_at(L, in->line, in->col, "%s: at least one input is needed", in->keypath);
            else
                L->innode[idx] = in;
        }
    }
    const struct sl_cfg_node *w = sl_cfg_get(m, "workers");
    if (w && k != SL_PLUGIN_TRANSFORM) {
        problem_at(L, w->line, w->col, "%s: only transforms take workers; remove it", w->keypath);
    } else if (w) {
        size_t before = L->ps.n;
        check_option(L, &common_options[2], m, w);
        if (L->ps.n == before)
            c->workers = (unsigned)int_setting(L, m, "workers", 1, 1, MAX_WORKERS);
    }
    load_sink_policies(L, k, m, c);
    if (!pl)
        return;

    /* Plugin options. */
    const char *valid[128];
    size_t nvalid = 0;
    valid[nvalid++] = "type";
    if (k != SL_PLUGIN_SOURCE)
        valid[nvalid++] = "inputs";
    if (k == SL_PLUGIN_TRANSFORM)
        valid[nvalid++] = "workers";
    if (k == SL_PLUGIN_SINK) {
        valid[nvalid++] = "retry";
        valid[nvalid++] = "circuit_breaker";
    }
    for (size_t i = 0; pl->options && pl->options[i].name && nvalid < 128; i++)
        valid[nvalid++] = pl->options[i].name;
    for (size_t i = 0; i < m->n; i++) {
        const struct sl_cfg_pair *pr = &m->pairs[i];
        if (!strcmp(pr->key, "type") || !strcmp(pr->key, "inputs") || !strcmp(pr->key, "workers"))
            continue;
        if (k == SL_PLUGIN_SINK &&
            (!strcmp(pr->key, "retry") || !strcmp(pr->key, "circuit_breaker")))
            continue;
        const struct sl_option *o = find_option(pl->options, pr->key);
        if (!o)
            unknown_key(L, pr, m->keypath, valid, nvalid);
        else
            check_option(L, o, m, pr->val);
    }
    for (size_t i = 0; pl->options && pl->options[i].name; i++)
        if (pl->options[i].required && !sl_cfg_get(m, pl->options[i].name))
            problem_at(L, namepair->line, namepair->col,
                       "%s: missing required key \"%s\" for %s type \"%s\"", m->keypath,
                       pl->options[i].name, sl_plugin_kind_name(k), pl->name);
    resolve_outputs(L, c);
}

static void load_section(struct loader *L, const struct sl_cfg_node *root, enum sl_plugin_kind k,
                         int required)
{
    const char *sec = kind_section(k);
    const struct sl_cfg_pair *pr = sl_cfg_pair(root, sec);
    if (!pr) {
        if (required)
            problem_at(L, 1, 1, "missing required top-level key \"%s\" (%s)", sec,
                       k == SL_PLUGIN_SOURCE ? "where records come from" : "where records go");
        return;
    }
    const struct sl_cfg_node *m = pr->val;
    if (m->kind == SL_CFG_SCALAR && m->is_null) {
        if (required)
            problem_at(L, pr->line, pr->col, "%s: at least one %s is needed", sec,
                       sl_plugin_kind_name(k));
        return;
    }
    if (m->kind != SL_CFG_MAP) {
        problem_at(L, m->line, m->col,
                   "%s: expected a map of component names to components, found %s", sec,
                   kind_noun(m));
        return;
    }
    if (m->n == 0 && required)
        problem_at(L, pr->line, pr->col, "%s: at least one %s is needed", sec,
                   sl_plugin_kind_name(k));
    for (size_t i = 0; i < m->n; i++)
        load_component(L, k, &m->pairs[i]);
}

/* ---- the graph --------------------------------------------------------------------- */

static int find_comp(const struct loader *L, const char *name, size_t len)
{
    for (size_t i = 0; i < L->ncomp; i++)
        if (strlen(L->comp[i].name) == len && strncmp(L->comp[i].name, name, len) == 0)
            return (int)i;
    return -1;
}

/*
 * Resolve every input to a (producer, output) pair in file-order indexes. prod/outi are
 * per component arrays of arrays; a failed input is left at -1.
 */
struct edge {
    int prod;
    uint32_t out;
};

static void resolve_inputs(struct loader *L, struct edge **edges, unsigned char *read)
{
    const char *readable[MAX_COMPONENTS];
    size_t nreadable = 0;
    for (size_t i = 0; i < L->ncomp; i++)
        if (L->comp[i].kind != SL_PLUGIN_SINK)
            readable[nreadable++] = L->comp[i].name;
    for (size_t ci = 0; ci < L->ncomp; ci++) {
        const struct sl_cfg_node *in = L->innode[ci];
        if (!in)
            continue;
        size_t n = in->kind == SL_CFG_SEQ ? in->n : 1;
        edges[ci] = sl_arena_alloc(L->a, n * sizeof **edges);
        if (!edges[ci]) {
            L->ps.oom = 1;
            return;
        }
        for (size_t j = 0; j < n; j++) {
            const struct sl_cfg_node *item = in->kind == SL_CFG_SEQ ? in->items[j] : in;
            struct edge *e = &edges[ci][j];
            e->prod = -1;
            e->out = 0;
            const char *text = item->str;
            for (size_t k = 0; k < j; k++)
                if (strcmp(in->items[k]->str, text) == 0) {
                    problem_at(L, item->line, item->col, "%s: \"%s\" is already listed",
                               item->keypath, text);
                    goto next;
                }
            const char *dot = strchr(text, '.');
            size_t nlen = dot ? (size_t)(dot - text) : strlen(text);
            int p = find_comp(L, text, nlen);
            if (p < 0) {
                char base[256];
                snprintf(base, sizeof base, "%.*s", (int)(nlen < 200 ? nlen : 200), text);
                const char *s = sl_suggest(base, readable, nreadable);
                if (!nreadable)
                    problem_at(L, item->line, item->col, "%s: \"%s\" names no source or transform",
                               item->keypath, base);
                else if (s)
                    problem_at(L, item->line, item->col,
                               "%s: \"%s\" names no source or transform; did you mean "
                               "\"%s\"?",
                               item->keypath, base, s);
                else
                    problem_at(L, item->line, item->col,
                               "%s: \"%s\" names no source or transform; expected one of %s",
                               item->keypath, base, join(L, readable, nreadable, ", "));
                continue;
            }
            const struct sl_component *pc = &L->comp[p];
            if (pc->kind == SL_PLUGIN_SINK) {
                problem_at(L, item->line, item->col,
                           "%s: \"%s\" is a sink; sinks have no output to read", item->keypath,
                           pc->name);
                continue;
            }
            read[p] = 1;
            if (!pc->plugin) {
                continue; /* its type was already reported; nothing more to say */
            }
            if (!dot && pc->outputs) {
                problem_at(L, item->line, item->col,
                           "%s: \"%s\" has named outputs; read one of them, like \"%s.%s\" "
                           "(outputs: %s)",
                           item->keypath, pc->name, pc->name, pc->outputs[0],
                           join(L, pc->outputs, pc->noutputs, ", "));
                continue;
            }
            if (dot && !pc->outputs) {
                problem_at(L, item->line, item->col,
                           "%s: \"%s\" has no named outputs; write \"%s\"", item->keypath, pc->name,
                           pc->name);
                continue;
            }
            if (dot) {
                size_t o = 0;
                while (o < pc->noutputs && strcmp(pc->outputs[o], dot + 1) != 0)
                    o++;
                if (o == pc->noutputs) {
                    const char *s = sl_suggest(dot + 1, pc->outputs, pc->noutputs);
                    if (s)
                        problem_at(L, item->line, item->col,
                                   "%s: \"%s\" has no output \"%s\"; did you mean \"%s\"?",
                                   item->keypath, pc->name, dot + 1, s);
                    else
                        problem_at(L, item->line, item->col,
                                   "%s: \"%s\" has no output \"%s\"; expected one of %s",
                                   item->keypath, pc->name, dot + 1,
                                   join(L, pc->outputs, pc->noutputs, ", "));
                    continue;
                }
                e->out = (uint32_t)o;
            }
            e->prod = p;
        next:;
        }
    }
}

/*
 * Walk upstream from an unplaced transform (every unplaced transform has an unplaced
 * producer) until the walk repeats itself, and report the cycle it found: its members in
 * data-flow order, starting and reported at the one written first in the file. Walks that
 * run into an earlier walk stop silently, so each cycle is reported once.
 */
static void report_cycle(struct loader *L, struct edge **edges, const unsigned char *placed,
                         unsigned char *seen, size_t start)
{
    size_t path[MAX_COMPONENTS], pos[MAX_COMPONENTS], len = 0;
    for (size_t i = 0; i < L->ncomp; i++)
        pos[i] = SIZE_MAX;
    size_t cur = start;
    while (pos[cur] == SIZE_MAX && !seen[cur]) {
        pos[cur] = len;
        path[len++] = cur;
        size_t n = L->innode[cur]->kind == SL_CFG_SEQ ? L->innode[cur]->n : 1;
        size_t nxt = SIZE_MAX;
        for (size_t j = 0; j < n && nxt == SIZE_MAX; j++) {
            int p = edges[cur][j].prod;
            if (p >= 0 && !placed[p] && L->comp[p].kind == SL_PLUGIN_TRANSFORM)
                nxt = (size_t)p;
        }
        if (nxt == SIZE_MAX)
            break; /* not expected (see above); report nothing rather than guess */
        cur = nxt;
    }
    int found = pos[cur] != SIZE_MAX && !seen[cur];
    for (size_t k = 0; k < len; k++)
        seen[path[k]] = 1;
    if (!found)
        return;
    /* path[first..len) is the cycle consumer-first; cyc[] is it producer-first. */
    size_t first = pos[cur], nc = len - first, cyc[MAX_COMPONENTS], r = 0;
    for (size_t m = 0; m < nc; m++) {
        cyc[m] = path[len - 1 - m];
        if (cyc[m] < cyc[r])
            r = m;
    }
    struct sl_buf b;
    sl_buf_init(&b, 1024);
    for (size_t m = 0; m < nc; m++)
        sl_buf_printf(&b, "%s -> ", L->comp[cyc[(r + m) % nc]].name);
    sl_buf_puts(&b, L->comp[cyc[r]].name);
    sl_buf_cstr(&b);
    size_t at = cyc[r];
    problem_at(L, L->key[at]->line, L->key[at]->col,
               "transforms.%s: inputs form a cycle: %s; a pipeline must flow one way",
               L->comp[at].name, b.data ? b.data : "?");
    sl_buf_fini(&b);
}

/*
 * Check readers and cycles, and when nothing is wrong, fill p->comp in final order:
 * sources, transforms topologically (file order among equals), sinks.
 */
static void build_graph(struct loader *L)
{
    struct edge *edges[MAX_COMPONENTS];
    unsigned char read[MAX_COMPONENTS], placed[MAX_COMPONENTS], seen[MAX_COMPONENTS];
    memset(edges, 0, sizeof(edges[0]) * L->ncomp);
    memset(read, 0, L->ncomp);
    memset(placed, 0, L->ncomp);
    memset(seen, 0, L->ncomp);
    resolve_inputs(L, edges, read);
    if (L->ps.oom)
        return;

    for (size_t i = 0; i < L->ncomp; i++)
        if (L->comp[i].kind != SL_PLUGIN_SINK && !read[i])
            problem_at(L, L->key[i]->line, L->key[i]->col,
                       "%s.%s: nothing reads from \"%s\"; add it to the inputs of a transform "
                       "or sink, or remove it",
                       L->section[i], L->comp[i].name, L->comp[i].name);

    /* Topological order of transforms: repeatedly take the first ready one. */
    size_t order[MAX_COMPONENTS], no = 0;
    for (size_t i = 0; i < L->ncomp; i++)
        if (L->comp[i].kind == SL_PLUGIN_SOURCE) {
            placed[i] = 1;
            order[no++] = i;
        }
    size_t nsources = no;
    for (int progress = 1; progress;) {
        progress = 0;
        for (size_t i = 0; i < L->ncomp; i++) {
            if (placed[i] || L->comp[i].kind != SL_PLUGIN_TRANSFORM)
                continue;
            int ready = 1;
            size_t n = !L->innode[i] ? 0 : L->innode[i]->kind == SL_CFG_SEQ ? L->innode[i]->n : 1;
            for (size_t j = 0; j < n && ready; j++) {
                int p = edges[i][j].prod;
                if (p >= 0 && !placed[p])
                    ready = 0;
            }
            if (ready) {
                placed[i] = 1;
                order[no++] = i;
                progress = 1;
                break; /* restart so file order wins among ready transforms */
            }
        }
    }
    for (size_t i = 0; i < L->ncomp; i++)
        if (!placed[i] && L->comp[i].kind == SL_PLUGIN_TRANSFORM && !seen[i])
            report_cycle(L, edges, placed, seen, i);
    if (L->ps.n || L->ps.dropped || L->ps.oom)
        return;
    for (size_t i = 0; i < L->ncomp; i++)
        if (L->comp[i].kind == SL_PLUGIN_SINK)
            order[no++] = i;

    /* Final order and resolved indexes. */
    struct sl_pipeline *p = L->p;
    size_t newidx[MAX_COMPONENTS];
    for (size_t k = 0; k < no; k++)
        newidx[order[k]] = k;
    p->comp = sl_arena_calloc(L->a, (no ? no : 1) * sizeof *p->comp);
    if (!p->comp) {
        L->ps.oom = 1;
        return;
    }
    for (size_t k = 0; k < no; k++) {
        size_t i = order[k];
        struct sl_component *c = &p->comp[k];
        *c = L->comp[i];
        const struct sl_cfg_node *in = L->innode[i];
        size_t n = !in ? 0 : in->kind == SL_CFG_SEQ ? in->n : 1;
        c->ninputs = n;
        c->inputs = n ? sl_arena_calloc(L->a, n * sizeof *c->inputs) : NULL;
        if (n && !c->inputs) {
            L->ps.oom = 1;
            return;
        }
        for (size_t j = 0; j < n; j++) {
            const struct sl_cfg_node *item = in->kind == SL_CFG_SEQ ? in->items[j] : in;
            c->inputs[j].text = item->str;
            c->inputs[j].comp = (uint32_t)newidx[edges[i][j].prod];
            c->inputs[j].output = edges[i][j].out;
        }
    }
    p->ncomp = no;
    p->nsources = nsources;
}

/* ---- top level --------------------------------------------------------------------- */

/*
 * quality: compiled by the quality module against the component names; its problems
 * ("file:line:col: message" lines) join the others so they sort and print together.
 */
static void load_quality(struct loader *L, const struct sl_cfg_node *root)
{
    const char *names[MAX_COMPONENTS];
    for (size_t i = 0; i < L->ncomp; i++)
        names[i] = L->comp[i].name;
    struct sl_error e;
    sl_error_clear(&e);
    sl_rc rc = sl_quality_compile(L->doc, sl_cfg_get(root, "quality"), names, L->ncomp,
                                  &L->p->quality, &e);
    if (rc == SL_ENOMEM) {
        L->ps.oom = 1;
        return;
    }
    if (!rc)
        return;
    size_t plen = strlen(L->doc->path);
    for (char *line = e.msg; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        unsigned ln = 1, col = 1;
        if (strncmp(line, L->doc->path, plen) == 0 &&
            sscanf(line + plen, ":%u:%u:", &ln, &col) == 2)
            sl__problems_add_text(&L->ps, ln, col, line);
        else if (*line)
            sl__problems_add_text(&L->ps, 1, 1, line);
        line = nl ? nl + 1 : NULL;
    }
}

static void load_top(struct loader *L)
{
    const struct sl_cfg_node *root = L->doc->root;
    struct sl_pipeline *p = L->p;
    if (!root) {
        problem_at(L, 1, 1,
                   "the file is empty; a pipeline needs at least \"pipeline:\", \"sources:\" "
                   "and \"sinks:\"");
        return;
    }
    if (root->kind != SL_CFG_MAP) {
        problem_at(L, root->line, root->col,
                   "expected a map of top-level keys (pipeline, sources, sinks, ...), "
                   "found %s",
                   kind_noun(root));
        return;
    }
    const char *names[32];
    size_t nnames = count_options(top_options);
    for (size_t i = 0; i < nnames; i++)
        names[i] = top_options[i].name;
    for (size_t i = 0; i < root->n; i++) {
        const struct sl_cfg_pair *pr = &root->pairs[i];
        if (find_option(top_options, pr->key))
            continue;
        const struct reserved_key *r = reserved_keys;
        while (r->name && strcmp(r->name, pr->key) != 0)
            r++;
        if (r->name)
            problem_at(L, pr->line, pr->col,
                       "\"%s\" (%s) is not supported in this version of sluice; remove it", r->name,
                       r->what);
        else
            unknown_key(L, pr, NULL, names, nnames);
    }

    /* pipeline */
    const struct sl_cfg_node *name = sl_cfg_get(root, "pipeline");
    if (!name) {
        problem_at(L, 1, 1,
                   "missing required top-level key \"pipeline\" (the pipeline's name, like "
                   "pipeline: clicks_to_warehouse)");
    } else if (name->kind != SL_CFG_SCALAR || name->is_null) {
        problem_at(L, name->line, name->col, "pipeline: expected a name, found %s",
                   kind_noun(name));
    } else if (!valid_name(name->str)) {
        problem_at(L, name->line, name->col,
                   "pipeline: \"%s\" is not a valid name; use letters, digits, _ and - (at "
                   "most 128)",
                   name->str);
    } else {
        p->name = name->str;
    }

    /* state_dir */
    struct sl_error e;
    const char *sd = NULL;
    const struct sl_cfg_node *sdn = sl_cfg_get(root, "state_dir");
    if (sdn) {
        if (sl_cfg_get_path(L->doc, root, "state_dir", NULL, &sd, &e))
            problem_err(L, sdn, &e);
    } else if (p->name) {
        char *rel = sl_arena_printf(L->a, ".sluice/%s", p->name);
        sd = rel ? sl_cfg_resolve_path(L->a, L->doc->dir, rel) : NULL;
        if (!sd)
            L->ps.oom = 1;
    }
    if (sd && sd[0] != '/') {
        char *cwd = getcwd(NULL, 0);
        if (cwd) {
            sd = sl_cfg_resolve_path(L->a, cwd, sd);
            free(cwd);
            if (!sd)
                L->ps.oom = 1;
        } else {
            problem_at(L, sdn ? sdn->line : 1, sdn ? sdn->col : 1,
                       "cannot make the state directory \"%s\" absolute: the current "
                       "directory is unreadable",
                       sd);
            sd = NULL;
        }
    }
    p->state_dir = sd;

    /* delivery */
    const struct sl_cfg_node *dl = sl_cfg_get(root, "delivery");
    p->exactly_once = 1;
    int delivery_ok = 1;
    if (dl) {
        size_t before = L->ps.n;
        check_option(L, &top_options[2], root, dl);
        delivery_ok = L->ps.n == before;
        if (delivery_ok && strcmp(dl->str, "at_least_once") == 0)
            p->exactly_once = 0;
    }

    /* batch, queue, json */
    const struct sl_cfg_node *b = sl_cfg_get(root, "batch");
    p->batch.max_records = 1024;
    p->batch.max_bytes = 1u << 20;
    if (!check_settings(L, b, batch_options) && b && b->kind == SL_CFG_MAP) {
        p->batch.max_records = (uint32_t)int_setting(L, b, "max_records", 1024, 1, 1000000);
        p->batch.max_bytes =
            (size_t)size_setting(L, b, "max_bytes", 1u << 20, 1, 1ull << 30, "1 byte to 1GiB");
    }
    const struct sl_cfg_node *q = sl_cfg_get(root, "queue");
    p->queue_max_batches = 4;
    p->queue_max_bytes = 16u << 20;
    if (!check_settings(L, q, queue_options) && q && q->kind == SL_CFG_MAP) {
        p->queue_max_batches = (uint32_t)int_setting(L, q, "max_batches", 4, 1, 1024);
        p->queue_max_bytes =
            size_setting(L, q, "max_bytes", 16u << 20, 1, 64ull << 30, "1 byte to 64GiB");
    }
    const struct sl_cfg_node *j = sl_cfg_get(root, "json");
    p->max_depth = 128;
    p->require_object = 0;
    if (!check_settings(L, j, json_options) && j && j->kind == SL_CFG_MAP) {
        p->max_depth = (uint32_t)int_setting(L, j, "max_depth", 128, 1, 1024);
        const char *dk = NULL;
        if (sl_cfg_get_str(j, "duplicate_keys", "last", &dk, &e) == SL_OK && !strcmp(dk, "reject"))
            p->json_flags |= SL_JSON_REJECT_DUPLICATES;
        sl_cfg_get_bool(j, "require_object", 0, &p->require_object, &e);
    }
    p->admin_listen = NULL;
    const struct sl_cfg_node *ad = sl_cfg_get(root, "admin");
    if (ad && !check_settings(L, ad, admin_options)) {
        const char *listen = "127.0.0.1:9464";
        if (ad->kind == SL_CFG_MAP)
            sl_cfg_get_str(ad, "listen", listen, &listen, &e);
        const char *colon = strrchr(listen, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : -1;
        if (!colon || colon == listen || !end || *end || port < 0 || port > 65535) {
            const struct sl_cfg_node *ln = ad->kind == SL_CFG_MAP ? sl_cfg_get(ad, "listen") : ad;
            problem_at(L, ln ? ln->line : ad->line, ln ? ln->col : ad->col,
                       "admin.listen: \"%s\" is not host:port (like 127.0.0.1:9464)", listen);
        } else {
            p->admin_listen = listen;
        }
    }

    /* memory_limit */
    p->memory_limit = 0;
    const struct sl_cfg_node *ml = sl_cfg_get(root, "memory_limit");
    if (ml) {
        size_t before = L->ps.n;
        check_option(L, find_option(top_options, "memory_limit"), root, ml);
        if (L->ps.n == before)
            p->memory_limit =
                size_setting(L, root, "memory_limit", 0, 0, 1ull << 40, "0 (no limit) up to 1TiB");
        if (p->memory_limit && p->memory_limit < (1u << 20)) {
            problem_at(L, ml->line, ml->col,
                       "memory_limit: %s is too small to hold one batch; use at least 1MiB",
                       ml->str);
            p->memory_limit = 0;
        }
    }

    /* dlq */
    const struct sl_cfg_node *dq = sl_cfg_get(root, "dlq");
    int dlq_on = 1;
    const char *dlq_path = NULL;
    if (!check_settings(L, dq, dlq_options) && dq && dq->kind == SL_CFG_MAP) {
        sl_cfg_get_bool(dq, "enabled", 1, &dlq_on, &e);
        if (sl_cfg_get(dq, "path") && sl_cfg_get_path(L->doc, dq, "path", NULL, &dlq_path, &e))
            problem_err(L, sl_cfg_get(dq, "path"), &e);
    }
    if (sd) {
        if (dlq_on && !dlq_path)
            dlq_path = sl_cfg_resolve_path(L->a, sd, "dlq.db");
        p->quarantine_path = sl_cfg_resolve_path(L->a, sd, "quarantine.db");
        if ((dlq_on && !dlq_path) || !p->quarantine_path)
            L->ps.oom = 1;
    }
    if (dlq_path && dlq_path[0] != '/')
        dlq_path = sl_cfg_resolve_path(L->a, sd ? sd : "/", dlq_path);
    p->dlq_path = dlq_on ? dlq_path : NULL;

    load_section(L, root, SL_PLUGIN_SOURCE, 1);
    load_section(L, root, SL_PLUGIN_TRANSFORM, 0);
    load_section(L, root, SL_PLUGIN_SINK, 1);
    if (!L->ps.oom)
        build_graph(L);
    if (!L->ps.oom)
        load_quality(L, root);

    /*
     * Exactly-once needs every source to resume where its sinks stopped. A source that
     * cannot (stdin: its bytes are gone once read) makes the promise impossible, so say so
     * now instead of duplicating or losing records after the first restart.
     */
    for (size_t i = 0; p->exactly_once && delivery_ok && i < L->ncomp; i++) {
        const struct sl_component *c = &L->comp[i];
        if (c->kind != SL_PLUGIN_SOURCE || !c->plugin || c->plugin->restore ||
            c->plugin->partitioned)
            continue;
        const struct sl_cfg_node *t = sl_cfg_get(c->node, "type");
        problem_at(L, t ? t->line : L->key[i]->line, t ? t->col : L->key[i]->col,
                   "sources.%s: a %s source cannot resume after a restart, so delivery: "
                   "exactly_once (the default) cannot be kept; set `delivery: at_least_once` "
                   "at the top of the file",
                   c->name, c->plugin->name);
    }
}

sl_rc sl_pipeline_load(const char *path, struct sl_pipeline **out, struct sl_error *err)
{
    struct sl_cfg_doc *doc = NULL;
    sl_rc rc = sl_cfg_load(path, &doc, err);
    if (rc)
        return rc;
    struct sl_pipeline *p = sl_calloc(1, sizeof *p);
    struct loader *L = sl_calloc(1, sizeof *L);
    if (!p || !L) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory while loading %s", path);
        goto fail;
    }
    p->doc = doc;
    p->path = doc->path;
    L->p = p;
    L->doc = doc;
    L->a = &doc->arena;
    sl__problems_init(&L->ps, doc->path, &doc->arena);
    load_top(L);
    if (sl__problems_any(&L->ps)) {
        rc = sl__problems_report(&L->ps, err);
        goto fail;
    }
    sl__problems_fini(&L->ps);
    sl_free(L);
    *out = p;
    return SL_OK;
fail:
    if (L)
        sl__problems_fini(&L->ps);
    sl_free(L);
    if (p)
        sl_quality_destroy(p->quality);
    sl_free(p);
    sl_cfg_destroy(doc);
    return rc;
}

void sl_pipeline_destroy(struct sl_pipeline *p)
{
    if (!p)
        return;
    sl_quality_destroy(p->quality);
    sl_cfg_destroy(p->doc);
    sl_free(p);
}

int sl_pipeline_find(const struct sl_pipeline *p, const char *name)
{
    if (!p || !name)
        return -1;
    for (size_t i = 0; i < p->ncomp; i++)
        if (strcmp(p->comp[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* ---- the generated reference ------------------------------------------------------- */

static const char *type_name(enum sl_opt_type t)
{
    switch (t) {
    case SL_OPT_STRING:
        return "string";
    case SL_OPT_INT:
        return "integer";
    case SL_OPT_BOOL:
        return "boolean";
    case SL_OPT_DURATION:
        return "duration";
    case SL_OPT_SIZE:
        return "size";
    case SL_OPT_PATH:
        return "path";
    case SL_OPT_ENUM:
        return "enum";
    case SL_OPT_EXPR:
        return "expression";
    case SL_OPT_LIST:
        return "list of strings";
    case SL_OPT_MAP:
        return "map of strings";
    case SL_OPT_EXPR_MAP:
        return "map of expressions";
    case SL_OPT_OBJECT:
        return "map";
    }
    return "?";
}

/* Text for a table cell: '|' escaped, newlines flattened. */
static sl_rc cell(struct sl_buf *b, const char *s)
{
    sl_rc rc = SL_OK;
    for (; s && *s && !rc; s++) {
        if (*s == '|')
            rc = sl_buf_puts(b, "\\|");
        else if (*s == '\n')
            rc = sl_buf_putc(b, ' ');
        else
            rc = sl_buf_putc(b, *s);
    }
    return rc;
}

/* A markdown table of opts; what names the first column ("key" or "option"). */
static sl_rc option_table(struct sl_buf *b, const struct sl_option *opts, const char *what)
{
    sl_rc rc = sl_buf_printf(b,
                             "| %s | type | default | required | description | choices |\n"
                             "|---|---|---|---|---|---|\n",
                             what);
    for (size_t i = 0; !rc && opts && opts[i].name; i++) {
        const struct sl_option *o = &opts[i];
        rc = sl_buf_printf(b, "| `%s` | %s | ", o->name, type_name(o->type));
        if (!rc && o->def)
            rc = sl_buf_puts(b, "`") || cell(b, o->def) || sl_buf_puts(b, "`");
        if (!rc)
            rc = sl_buf_printf(b, " | %s | ", o->required ? "yes" : "no");
        if (!rc)
            rc = cell(b, o->help);
        if (!rc)
            rc = sl_buf_puts(b, " | ");
        for (const char *c = o->choices; !rc && c && *c;) {
            const char *bar = strchr(c, '|');
            size_t len = bar ? (size_t)(bar - c) : strlen(c);
            rc = sl_buf_printf(b, "%s`%.*s`", c == o->choices ? "" : ", ", (int)len, c);
            c = bar ? bar + 1 : NULL;
        }
        if (!rc)
            rc = sl_buf_puts(b, " |\n");
    }
    if (!rc)
        rc = sl_buf_puts(b, "\n");
    return rc;
}

sl_rc sl_pipeline_doc_reference(struct sl_buf *b)
{
    sl_rc rc = sl_buf_puts(
        b, "# Configuration reference\n\n"
           "<!-- Generated by `sluice docs config` from the option tables in the code. Do not "
           "edit by hand. -->\n\n"
           "This is the list of every key a pipeline file accepts. How a file is put "
           "together (components, inputs, durations and sizes, environment variables, "
           "paths) is explained in [the configuration guide](configuration-guide.md).\n\n"
           "Types: a *duration* is written like `250ms`, `30s`, `5m`, `2h` or `1d` "
           "(decimals such as `1.5s` work); a *size* like `512`, `64KiB`, `256MiB`, `1GiB` "
           "(or `KB`/`MB`/`GB`, powers of 1000); a *boolean* is `true` or `false`; a *path* "
           "is relative to the configuration file unless it starts with `/`; an "
           "*expression* is written in [the expression language](expressions.md).\n\n"
           "## Top-level keys\n\n");
    if (!rc)
        rc = option_table(b, top_options, "key");
    if (!rc)
        rc =
            sl_buf_puts(b, "`quality` is a list of gates, not a map: see [quality](quality.md).\n\n"
                           "### `batch`\n\n");
    if (!rc)
        rc = option_table(b, batch_options, "key");
    if (!rc)
        rc = sl_buf_puts(b, "### `queue`\n\n");
    if (!rc)
        rc = option_table(b, queue_options, "key");
    if (!rc)
        rc = sl_buf_puts(b, "### `json`\n\n");
    if (!rc)
        rc = option_table(b, json_options, "key");
    if (!rc)
        rc = sl_buf_puts(b, "### `admin`\n\n");
    if (!rc)
        rc = option_table(b, admin_options, "key");
    if (!rc)
        rc = sl_buf_puts(b, "### `dlq`\n\n");
    if (!rc)
        rc = option_table(b, dlq_options, "key");
    if (!rc)
        rc = sl_buf_puts(b, "## Keys of every component\n\n");
    if (!rc)
        rc = option_table(b, common_options, "key");
    if (!rc)
        rc = sl_buf_puts(b, "### `retry` (sinks)\n\n");
    if (!rc)
        rc = option_table(b, retry_options, "key");
    if (!rc)
        rc = sl_buf_puts(b, "### `circuit_breaker` (sinks)\n\n");
    if (!rc)
        rc = option_table(b, breaker_options, "key");

    static const enum sl_plugin_kind kinds[] = {SL_PLUGIN_SOURCE, SL_PLUGIN_TRANSFORM,
                                                SL_PLUGIN_SINK};
    static const char *const titles[] = {"Sources", "Transforms", "Sinks"};
    const struct sl_plugin *const *all = sl_plugin_all();
    for (size_t k = 0; k < 3 && !rc; k++) {
        rc = sl_buf_printf(b, "## %s\n\n", titles[k]);
        for (size_t i = 0; !rc && all && all[i]; i++) {
            const struct sl_plugin *pl = all[i];
            if (pl->kind != kinds[k])
                continue;
            rc = sl_buf_printf(b, "### %s `%s`\n\n%s\n\n", sl_plugin_kind_name(pl->kind), pl->name,
                               pl->description ? pl->description : "");
            if (!rc && pl->outputs_option)
                rc = sl_buf_printf(b,
                                   "Named outputs: each key of `%s` is an output, plus "
                                   "`_unmatched` for records no output takes. Read one as "
                                   "`<name>.<output>` in `inputs`.\n\n",
                                   pl->outputs_option);
            if (!rc && pl->options && pl->options[0].name)
                rc = option_table(b, pl->options, "option");
            else if (!rc)
                rc = sl_buf_puts(b, "No options besides the common keys.\n\n");
        }
    }
    return rc;
}
