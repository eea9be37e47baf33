/*
 * status.c - `sluice status PIPELINE.yaml [--json]`: where each sink stands, per source.
 *
 * What it shows. For every sink and every source whose records can reach it: the position
 * the sink committed (shortened for text; whole in JSON), how many records it committed
 * and when it last did (commit_info), how many input bytes lie after that position
 * (the source's lag), and the sink's delivery mode. exactly_once needs both the
 * pipeline's `delivery: exactly_once` and a sink that keeps checkpoints; anything else is
 * at_least_once and is said to allow duplicates after a crash. A value a plugin cannot
 * report (an optional callback it does not have) is shown as "unknown", never guessed.
 *
 * How it fits. Nothing here runs the pipeline. The state directory is checked without
 * creating it (sl_statedir_open with create = 0), and every source and sink is
 * initialised with ctx.inspect = 1, in which plugins open existing state read-only,
 * create and recover nothing and read no input. The inspection helpers at the top are
 * shared with reset.c (declared in cli.h).
 *
 * Exit codes: 0 shown; 2 the pipeline does not load (or bad options); 1 some state could
 * not be read (a plugin failed to initialise or to answer; what was readable is still
 * shown, and the error is printed).
 *
 * Threading: single-threaded. Ownership: sl_cli_inspect owns the pipeline and the plugin
 * states; positions returned by committed() are freed here after printing.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sluice/alloc.h"
#include "sluice/buf.h"
#include "sluice/engine.h"
#include "sluice/dlq.h"
#include "sluice/json.h"
#include "sluice/quarantine.h"
#include "sluice/pipeline.h"
#include "sluice/plugin.h"
#include "sluice/statedir.h"

#include "cli/cli.h"
#include "core/breaker.h"

#define SHORT_POSITION 72 /* characters of a position shown on one line */

/* ---- inspection, shared with reset.c --------------------------------------------------- */

int sl__cli_sink_checkpoints(const struct sl_plugin *sink)
{
    /*
     * plugin.h has no explicit flag: a sink keeps checkpoints when it reports them
     * (committed) and also either accounts for them (commit_info) or can forget them
     * (reset). A stream such as stdout answers committed() with "nothing" and has neither.
     */
    return sink->committed != NULL && (sink->commit_info != NULL || sink->reset != NULL);
}

int sl__cli_reaches(const struct sl_cli_inspect *in, size_t c, size_t s)
{
    return in->reach[c * in->p->nsources + s] != 0;
}

void sl__cli_short_position(const char *pos, char *out, size_t cap)
{
    size_t n = strlen(pos);
    size_t keep = cap - 1 < SHORT_POSITION ? cap - 1 : SHORT_POSITION;
    if (n <= keep) {
        memcpy(out, pos, n + 1);
        return;
    }
    char tail[48];
    int t = snprintf(tail, sizeof tail, "... (%zu bytes)", n);
    size_t head = keep > (size_t)t ? keep - (size_t)t : 0;
    snprintf(out, cap, "%.*s%s", (int)head, pos, tail);
}

/* reach[c][s]: a fixed point over inputs, so it holds whatever order comp[] has. */
static sl_rc compute_reach(struct sl_cli_inspect *in)
{
    const struct sl_pipeline *p = in->p;
    size_t ns = p->nsources;
    in->reach = sl_calloc(p->ncomp * (ns ? ns : 1), 1);
    if (!in->reach)
        return SL_ENOMEM;
    for (size_t c = 0; c < p->ncomp; c++)
        if (p->comp[c].kind == SL_PLUGIN_SOURCE && c < ns)
            in->reach[c * ns + c] = 1;
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t c = 0; c < p->ncomp; c++)
            for (size_t k = 0; k < p->comp[c].ninputs; k++) {
                size_t from = p->comp[c].inputs[k].comp;
                for (size_t s = 0; s < ns; s++)
                    if (in->reach[from * ns + s] && !in->reach[c * ns + s]) {
                        in->reach[c * ns + s] = 1;
                        changed = 1;
                    }
            }
    }
    return SL_OK;
}

int sl__cli_inspect_open(const char *verb, const char *path, int with_sources,
                         struct sl_cli_inspect *in)
{
    memset(in, 0, sizeof *in);
    if (sl__cli_load(path, &in->p))
        return SL_EXIT_USAGE;
    struct sl_error err;
    sl_error_clear(&err);
    sl_rc rc;
    struct sl_pipeline *p = in->p;

    sl_error_clear(&err);
    rc = sl_statedir_open(p->state_dir, 0, &err);
    if (rc && rc != SL_ENOENT) {
        fprintf(stderr, "sluice %s: %s\n", verb, err.msg);
        return SL_EXIT_FAIL;
    }
    in->state_present = rc == SL_OK;

    size_t n = p->ncomp ? p->ncomp : 1;
    in->state = sl_calloc(n, sizeof *in->state);
    in->init_err = sl_calloc(n, sizeof *in->init_err);
    in->source_names = sl_calloc(p->nsources ? p->nsources : 1, sizeof *in->source_names);
    if (!in->state || !in->init_err || !in->source_names || compute_reach(in) != SL_OK) {
        fprintf(stderr, "sluice %s: out of memory\n", verb);
        return SL_EXIT_FAIL;
    }
    for (size_t s = 0; s < p->nsources; s++)
        in->source_names[s] = p->comp[s].name;

    uint32_t source_index = 0;
    for (size_t c = 0; c < p->ncomp; c++) {
        const struct sl_component *comp = &p->comp[c];
        if (comp->kind == SL_PLUGIN_TRANSFORM)
            continue;
        uint32_t index = comp->kind == SL_PLUGIN_SOURCE ? source_index++ : 0;
        if (comp->kind == SL_PLUGIN_SOURCE && !with_sources)
            continue;
        struct sl_plugin_ctx ctx = {
            .pipeline = p->name,
            .name = comp->name,
            .doc = p->doc,
            .node = comp->node,
            .state_dir = p->state_dir,
            .once = 1,
            .exactly_once = p->exactly_once,
            .index = index,
            .limits = &p->batch,
            .max_depth = p->max_depth,
            .source_names = in->source_names,
            .nsources = p->nsources,
            .inspect = 1,
        };
        sl_error_clear(&err);
        void *state = NULL;
        rc = comp->plugin->init(&ctx, &state, &err);
        if (rc) {
            in->init_err[c] = sl_strdup(err.msg[0] ? err.msg : sl_strerror(rc));
            if (!in->init_err[c]) {
                fprintf(stderr, "sluice %s: out of memory\n", verb);
                return SL_EXIT_FAIL;
            }
            continue;
        }
        /* Invariant 1: a plugin may succeed with a NULL state; close() is then not needed. */
        in->state[c] = state;
    }
    return SL_EXIT_OK;
}

void sl__cli_inspect_close(struct sl_cli_inspect *in)
{
    if (!in->p)
        return;
    for (size_t c = 0; c < in->p->ncomp; c++) {
        if (in->state && in->state[c] && in->p->comp[c].plugin->close)
            in->p->comp[c].plugin->close(in->state[c]);
        if (in->init_err)
            sl_free(in->init_err[c]);
    }
    sl_free(in->state);
    sl_free(in->init_err);
    sl_free(in->reach);
    sl_free(in->source_names);
    sl_pipeline_destroy(in->p);
    memset(in, 0, sizeof *in);
}

/* ---- status ------------------------------------------------------------------------------ */

static const char help[] =
    "usage: sluice status PIPELINE.yaml [--json]\n"
    "\n"
    "Shows, for every sink and every source it reads from: the committed position, the\n"
    "records committed, the last commit time (UTC, and how long ago), the input bytes after\n"
    "the committed position (behind), and the delivery mode (exactly_once, or at_least_once:\n"
    "duplicates possible after a crash). Reads state only: creates, recovers and changes\n"
    "nothing, and can run while the pipeline runs.\n"
    "\n"
    "options:\n"
    "  --json              print one JSON object instead of text\n"
    "\n"
    "exit codes: 0 shown; 1 some state could not be read (the error is printed); 2 usage or\n"
    "config error\n";

/* What one (sink, source) pair reports. Strings are owned by the caller of query(). */
struct pair {
    char *position;                   /* committed, or NULL */
    int has_info;                     /* commit_info answered */
    uint64_t records;                 /* with has_info */
    uint64_t commit_ns;               /* with has_info; 0 unknown */
    int has_lag;                      /* lag answered */
    uint64_t behind;                  /* with has_lag */
    char err[SL_ERROR_MSG_MAX + 256]; /* first failure, or "" */
};

static void query(const struct sl_cli_inspect *in, size_t k, size_t s, struct pair *q)
{
    const struct sl_plugin *sink = in->p->comp[k].plugin;
    const struct sl_plugin *src = in->p->comp[s].plugin;
    const char *sname = in->source_names[s];
    struct sl_error err;
    memset(q, 0, sizeof *q);
    if (sink->committed) {
        sl_error_clear(&err);
        sl_rc rc = sink->committed(in->state[k], sname, &q->position, &err);
        if (rc) {
            q->position = NULL;
            snprintf(q->err, sizeof q->err, "committed position: %s",
                     err.msg[0] ? err.msg : sl_strerror(rc));
            return;
        }
    }
    if (sink->commit_info && (q->position || sl__cli_sink_checkpoints(sink))) {
        sl_error_clear(&err);
        sl_rc rc = sink->commit_info(in->state[k], sname, &q->records, &q->commit_ns, &err);
        if (rc)
            snprintf(q->err, sizeof q->err, "commit info: %s",
                     err.msg[0] ? err.msg : sl_strerror(rc));
        else
            q->has_info = 1;
    }
    if (src->lag && !in->init_err[s]) {
        sl_error_clear(&err);
        sl_rc rc = src->lag(in->state[s], q->position, &q->behind, &err);
        if (rc && !q->err[0])
            snprintf(q->err, sizeof q->err, "bytes behind (source %.128s): %s", sname,
                     err.msg[0] ? err.msg : sl_strerror(rc));
        q->has_lag = rc == SL_OK;
    }
}

/* "2026-11-27 13:50:02 UTC" (text) or "2026-11-27T13:50:02Z" (iso). */
static void format_time(uint64_t ns, int iso, char *out, size_t cap)
{
    time_t t = (time_t)(ns / 1000000000u);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, iso ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* An age as "42 s", "5 min 3 s", "2 h 4 min", "3 d 1 h". */
static void format_age(uint64_t s, char *out, size_t cap)
{
    if (s < 60)
        snprintf(out, cap, "%" PRIu64 " s", s);
    else if (s < 3600)
        snprintf(out, cap, "%" PRIu64 " min %" PRIu64 " s", s / 60, s % 60);
    else if (s < 86400)
        snprintf(out, cap, "%" PRIu64 " h %" PRIu64 " min", s / 3600, s % 3600 / 60);
    else
        snprintf(out, cap, "%" PRIu64 " d %" PRIu64 " h", s / 86400, s % 86400 / 3600);
}

static uint64_t age_s(uint64_t commit_ns, uint64_t now_ns)
{
    return now_ns > commit_ns ? (now_ns - commit_ns) / 1000000000u : 0;
}

static int sink_exactly_once(const struct sl_pipeline *p, const struct sl_plugin *sink)
{
    return p->exactly_once && sl__cli_sink_checkpoints(sink);
}

static void print_text_pair(const struct sl_cli_inspect *in, size_t k, size_t s,
                            const struct pair *q, uint64_t now_ns)
{
    const struct sl_plugin *sink = in->p->comp[k].plugin;
    const struct sl_plugin *src = in->p->comp[s].plugin;
    int keeps = sl__cli_sink_checkpoints(sink);
    printf("  source %s (%s)\n", in->source_names[s], src->name);
    if (q->position) {
        char shortp[SHORT_POSITION + 1];
        sl__cli_short_position(q->position, shortp, sizeof shortp);
        printf("    position     %s\n", shortp);
    } else if (!keeps) {
        printf("    position     no checkpoint (at-least-once sink)\n");
    } else if (src->partitioned) {
        printf("    position     one per partition, named %s#<topic>/<partition> in the sink's "
               "checkpoints\n",
               in->source_names[s]);
    } else {
        printf("    position     no checkpoint yet: the next run delivers from the start\n");
    }
    if (q->has_info) {
        printf("    records      %" PRIu64 " committed\n", q->records);
        if (q->commit_ns) {
            char when[64], age[64];
            format_time(q->commit_ns, 0, when, sizeof when);
            format_age(age_s(q->commit_ns, now_ns), age, sizeof age);
            printf("    last commit  %s (%s ago)\n", when, age);
        } else {
            printf("    last commit  %s\n", q->position ? "unknown" : "never");
        }
    } else if (keeps || q->position) {
        printf("    records      unknown (the %s sink does not report it)\n", sink->name);
        printf("    last commit  unknown\n");
    }
    if (in->init_err[s])
        printf("    behind       unknown (source could not be opened)\n");
    else if (!src->lag)
        printf("    behind       unknown (the %s source does not report it)\n", src->name);
    else if (q->has_lag)
        printf("    behind       %" PRIu64 " %s%s\n", q->behind,
               src->lag_unit ? src->lag_unit : "bytes",
               q->position ? (q->behind ? "" : " (caught up)") : " (the whole input)");
    else
        printf("    behind       unknown\n");
    if (q->err[0])
        printf("    error        %s\n", q->err);
}

/* ---- the dead-letter queue: counts by stage and error class ------------------------ */

struct dlq_sum {
    struct sl_buf *json; /* NULL: print text */
    int n;
};

static int dlq_group(void *ctx, const struct sl_dlq_group *g)
{
    struct dlq_sum *d = ctx;
    if (d->json) {
        sl_buf_puts(d->json, d->n ? ",{\"stage\":" : "{\"stage\":");
        sl_json_write_str(d->json, g->stage, strlen(g->stage));
        sl_buf_puts(d->json, ",\"error\":");
        sl_json_write_str(d->json, g->error_class, strlen(g->error_class));
        sl_buf_printf(d->json, ",\"entries\":%" PRIu64 "}", g->count);
    } else {
        printf("  %-20s %-18s %" PRIu64 "\n", g->stage, g->error_class, g->count);
    }
    d->n++;
    return 0;
}

/*
 * The DLQ part of status: entries in total and by (stage, error class). A DLQ that does
 * not exist yet is empty. Returns an exit code.
 */
static int dlq_status(const struct sl_pipeline *p, struct sl_buf *json)
{
    if (!p->dlq_path) {
        if (json)
            sl_buf_puts(json, ",\"dead_letter_queue\":null");
        else
            printf("dlq          disabled (rejected records are only logged)\n");
        return SL_EXIT_OK;
    }
    struct sl_error err;
    sl_error_clear(&err);
    struct sl_dlq *d = NULL;
    uint64_t total = 0;
    sl_rc rc = sl_dlq_open(p->dlq_path, 0, 0, &d, &err);
    if (rc == SL_OK)
        rc = sl_dlq_count(d, &total, &err);
    if (rc && rc != SL_ENOENT) {
        fprintf(stderr, "sluice status: dead-letter queue %s: %s\n", p->dlq_path, err.msg);
        sl_dlq_close(d);
        return SL_EXIT_FAIL;
    }
    if (json) {
        sl_buf_puts(json, ",\"dead_letter_queue\":{\"path\":");
        sl_json_write_str(json, p->dlq_path, strlen(p->dlq_path));
        sl_buf_printf(json, ",\"entries\":%" PRIu64 ",\"groups\":[", total);
    } else {
        printf("dlq          %" PRIu64 " entr%s (%s)%s\n", total, total == 1 ? "y" : "ies",
               p->dlq_path, total ? "; `sluice dlq list` shows them" : "");
    }
    struct dlq_sum sum = {json, 0};
    if (d && total)
        sl_dlq_stats(d, NULL, dlq_group, &sum, &err);
    if (json)
        sl_buf_puts(json, "]}");
    sl_dlq_close(d);
    return SL_EXIT_OK;
}

/* The quarantine store: units and records held. A store not created yet holds none. */
static int quarantine_status(const struct sl_pipeline *p, struct sl_buf *json)
{
    struct sl_error err;
    sl_error_clear(&err);
    struct sl_quarantine *q = NULL;
    uint64_t units = 0, records = 0;
    sl_rc rc =
        p->quarantine_path ? sl_quarantine_open(p->quarantine_path, 0, 0, &q, &err) : SL_ENOENT;
    if (rc == SL_OK)
        rc = sl_quarantine_count(q, &units, &records, &err);
    sl_quarantine_close(q);
    if (rc && rc != SL_ENOENT) {
        fprintf(stderr, "sluice status: quarantine %s: %s\n", p->quarantine_path, err.msg);
        return SL_EXIT_FAIL;
    }
    if (json)
        sl_buf_printf(json, ",\"quarantine\":{\"units\":%" PRIu64 ",\"records\":%" PRIu64 "}",
                      units, records);
    else
        printf("quarantine   %" PRIu64 " unit%s, %" PRIu64 " records%s\n", units,
               units == 1 ? "" : "s", records,
               units ? "; `sluice quarantine list` shows them" : "");
    return SL_EXIT_OK;
}

/*
 * The sink's circuit breaker as the last run left it (<state_dir>/breakers/<sink>);
 * nothing when it never changed state.
 */
static void breaker_status(const struct sl_pipeline *p, const char *sink, struct sl_buf *json,
                           uint64_t now_ns)
{
    struct sl__breaker_snapshot snap;
    if (sl__breaker_read(p->state_dir, sink, &snap) != SL_OK) {
        if (json)
            sl_buf_puts(json, ",\"breaker\":null");
        return;
    }
    char when[40] = "?", age[48] = "?";
    if (snap.since_ns) {
        time_t t = (time_t)(snap.since_ns / 1000000000ull);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        uint64_t secs = now_ns > snap.since_ns ? (now_ns - snap.since_ns) / 1000000000ull : 0;
        snprintf(age, sizeof age, "%" PRIu64 " s ago", secs);
    }
    if (json) {
        sl_buf_puts(json, ",\"breaker\":{\"state\":");
        sl_json_write_str(json, snap.state, strlen(snap.state));
        sl_buf_printf(json,
                      ",\"since\":\"%s\",\"opens\":%" PRIu64 ",\"consecutive_failures\":%" PRIu64,
                      when, snap.opens, snap.consecutive);
        sl_buf_puts(json, ",\"last_error\":");
        if (snap.last_error[0])
            sl_json_write_str(json, snap.last_error,
                              strnlen(snap.last_error, sizeof snap.last_error));
        else
            sl_buf_puts(json, "null");
        sl_buf_putc(json, '}');
        return;
    }
    printf("  breaker      %s since %s (%s); opened %" PRIu64 " time%s in the last run%s%s\n",
           snap.state, when, age, snap.opens, snap.opens == 1 ? "" : "s",
           snap.last_error[0] ? "; last error: " : "", snap.last_error);
}

static void json_u64_or_null(struct sl_buf *b, const char *key, int have, uint64_t v)
{
    sl_buf_printf(b, ",\"%s\":", key);
    if (have)
        sl_buf_printf(b, "%" PRIu64, v);
    else
        sl_buf_puts(b, "null");
}

static void json_str_or_null(struct sl_buf *b, const char *key, const char *v)
{
    sl_buf_printf(b, ",\"%s\":", key);
    if (v)
        sl_json_write_str(b, v, strlen(v));
    else
        sl_buf_puts(b, "null");
}

static void json_pair(struct sl_buf *b, const struct sl_cli_inspect *in, size_t s,
                      const struct pair *q, uint64_t now_ns)
{
    sl_buf_puts(b, "{\"source\":");
    sl_json_write_str(b, in->source_names[s], strlen(in->source_names[s]));
    json_str_or_null(b, "plugin", in->p->comp[s].plugin->name);
    json_str_or_null(b, "position", q->position);
    json_u64_or_null(b, "records", q->has_info, q->records);
    char when[64];
    if (q->has_info && q->commit_ns)
        format_time(q->commit_ns, 1, when, sizeof when);
    json_str_or_null(b, "last_commit", q->has_info && q->commit_ns ? when : NULL);
    json_u64_or_null(b, "last_commit_ns", q->has_info && q->commit_ns, q->commit_ns);
    json_u64_or_null(b, "last_commit_age_s", q->has_info && q->commit_ns,
                     age_s(q->commit_ns, now_ns));
    const char *unit = in->p->comp[s].plugin->lag_unit;
    json_u64_or_null(b, "bytes_behind", q->has_lag && !unit, q->behind);
    if (unit && strcmp(unit, "messages") == 0)
        json_u64_or_null(b, "messages_behind", q->has_lag, q->behind);
    json_str_or_null(b, "error", q->err[0] ? q->err : NULL);
    sl_buf_putc(b, '}');
}

int sl__cli_status(int argc, char **argv)
{
    const char *path = NULL;
    int json = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(help, stdout);
            return SL_EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (sl__cli_log_option(argc, argv, &i, &bad)) {
            continue;
        } else if (sl__cli_path_arg("status", a, &path, help)) {
            return SL_EXIT_USAGE;
        }
    }
    if (bad)
        return SL_EXIT_USAGE;
    if (!path) {
        fputs(help, stderr);
        return SL_EXIT_USAGE;
    }

    struct sl_cli_inspect in;
    int code = sl__cli_inspect_open("status", path, 1, &in);
    if (code != SL_EXIT_OK) {
        sl__cli_inspect_close(&in);
        return code;
    }
    const struct sl_pipeline *p = in.p;
    uint64_t now_ns = sl_now_real_ns();
    const char *mode = p->exactly_once ? "exactly_once" : "at_least_once";

    struct sl_buf b;
    sl_buf_init(&b, 0);
    if (json) {
        sl_buf_puts(&b, "{\"pipeline\":");
        sl_json_write_str(&b, p->name, strlen(p->name));
        json_str_or_null(&b, "config", p->path);
        json_str_or_null(&b, "state_dir", p->state_dir);
        json_u64_or_null(&b, "state_format", in.state_present, SL_STATEDIR_VERSION);
        sl_buf_printf(&b, ",\"delivery\":\"%s\"", mode);
        if (dlq_status(p, &b) || quarantine_status(p, &b))
            code = SL_EXIT_FAIL;
        sl_buf_puts(&b, ",\"sinks\":[");
    } else {
        printf("pipeline     %s (%s)\n", p->name, p->path);
        if (in.state_present)
            printf("state_dir    %s (" SL_STATEDIR_MAGIC " %d)\n", p->state_dir,
                   SL_STATEDIR_VERSION);
        else if (access(p->state_dir, F_OK) != 0)
            printf("state_dir    %s (not created yet: the pipeline has not run)\n", p->state_dir);
        else
            printf("state_dir    %s (no FORMAT marker yet: the next run writes it)\n",
                   p->state_dir);
        printf("delivery     %s\n", mode);
        if (dlq_status(p, NULL) || quarantine_status(p, NULL))
            code = SL_EXIT_FAIL;
    }

    /* Sources that could not be opened: reported once, up front. */
    for (size_t s = 0; s < p->nsources; s++)
        if (in.init_err[s]) {
            fprintf(stderr, "sluice status: source %s: %s\n", p->comp[s].name, in.init_err[s]);
            code = SL_EXIT_FAIL;
        }

    int first_sink = 1;
    for (size_t k = 0; k < p->ncomp; k++) {
        const struct sl_component *c = &p->comp[k];
        if (c->kind != SL_PLUGIN_SINK)
            continue;
        int eo = sink_exactly_once(p, c->plugin);
        int keeps = sl__cli_sink_checkpoints(c->plugin);
        const char *smode = eo ? "exactly_once" : "at_least_once";
        if (json) {
            sl_buf_puts(&b, first_sink ? "{\"name\":" : ",{\"name\":");
            first_sink = 0;
            sl_json_write_str(&b, c->name, strlen(c->name));
            json_str_or_null(&b, "plugin", c->plugin->name);
            sl_buf_printf(&b,
                          ",\"delivery\":\"%s\",\"checkpoints\":%s,"
                          "\"duplicates_possible\":%s",
                          smode, keeps ? "true" : "false", eo ? "false" : "true");
            json_str_or_null(&b, "error", in.init_err[k]);
            breaker_status(p, c->name, &b, now_ns);
            sl_buf_puts(&b, ",\"sources\":[");
        } else {
            printf("\nsink %s (%s): %s%s\n", c->name, c->plugin->name, smode,
                   eo ? "" : ", duplicates possible after a crash");
            breaker_status(p, c->name, NULL, now_ns);
        }
        if (in.init_err[k]) {
            fprintf(stderr, "sluice status: sink %s: %s\n", c->name, in.init_err[k]);
            if (!json)
                printf("  error: cannot open its state: %s\n", in.init_err[k]);
            code = SL_EXIT_FAIL;
        }
        int first_pair = 1;
        for (size_t s = 0; s < p->nsources && !in.init_err[k]; s++) {
            if (!sl__cli_reaches(&in, k, s))
                continue;
            struct pair q;
            query(&in, k, s, &q);
            if (q.err[0]) {
                fprintf(stderr, "sluice status: sink %s, source %s: %s\n", c->name,
                        in.source_names[s], q.err);
                code = SL_EXIT_FAIL;
            }
            if (json) {
                if (!first_pair)
                    sl_buf_putc(&b, ',');
                json_pair(&b, &in, s, &q, now_ns);
            } else {
                print_text_pair(&in, k, s, &q, now_ns);
            }
            first_pair = 0;
            sl_free(q.position);
        }
        if (json)
            sl_buf_puts(&b, "]}");
    }
    if (json) {
        sl_buf_puts(&b, "]}\n");
        fwrite(b.data, 1, b.len, stdout);
    }
    sl_buf_fini(&b);
    if (fflush(stdout) != 0)
        code = SL_EXIT_FAIL;
    sl__cli_inspect_close(&in);
    return code;
}
