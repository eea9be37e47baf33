/*
 * engine.c - runs a pipeline: stages on threads, bounded queues between them.
 *
 * Shape of a run:
 *
 *     source thread ──push──> [queue] ──pop──> transform worker x N ──> [queue] ──> sink thread
 *          │                                                                          │
 *          └─ read() fills a batch                        reorder by (source, seq) ───┘
 *
 * Every component has one input queue (fan-in: several producers push into it). A stage
 * with several consumers hands the original batch to one and clones to the others
 * (batch.h). A route transform sets one bit per output per record; the engine gives each
 * consumed output a clone in which the records not routed there are marked dropped.
 *
 * Parsing: records enter as bytes. The first transform or sink that receives a batch
 * parses every record it carries on its own thread (so parsing runs in parallel with
 * reading and across workers); a record that is not valid JSON is rejected there and
 * counted against its source. When a source fans out, it parses before cloning so each
 * record is parsed and reported once.
 *
 * Ordering: transforms with several workers finish batches out of order. Each sink keeps a
 * reorder buffer per source and processes batches in seq order; when a sink is reached
 * from one source along k paths it waits for all k copies of a seq before moving on, so
 * the positions it commits never go backwards (batch.h invariant 1).
 *
 * Rejections and gates (docs/internals/engine.md): records a stage rejects are made durable
 * in the dead-letter queue before the batch leaves that stage (keep_rejects; sinks call it
 * through sl_worker before they commit), so no checkpoint covers a rejected record the DLQ
 * lacks. Quality gates judge a stage's output per batch (quarantine or fail before the
 * batch moves on) or, with --once and sinks that can stage, over the whole run, and the
 * staged sinks publish at the end (finish_gates).
 *
 * Shutdown: sl_engine_request_stop() makes sources stop reading; the end of input travels
 * down the graph as queue closes, so every batch already read is processed and committed.
 * A fatal error in any stage aborts every queue: producers drop what they hold, consumers
 * stop, and the first error is returned.
 *
 * Threading: stage stats are atomics updated once per batch; the rest of a stage's state
 * is touched only by its own threads, or before threads start / after they are joined.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sluice/alloc.h"
#include "sluice/dlq.h"
#include "sluice/engine.h"
#include "sluice/log.h"
#include "sluice/quality.h"
#include "sluice/quarantine.h"

#include "core/breaker.h"
#include "core/queue.h"

#define REJECT_LOG_LIMIT 1000 /* per stage; the count stays exact beyond it */
#define SOURCE_IDLE_NS (50 * 1000 * 1000)

static atomic_int stop_requested;

const double sl_latency_bounds[SL_LATENCY_BUCKETS] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                      0.25,  0.5,   1,    2.5,   5,    10};

/* The engine running in this process, for sl_engine_live (admin server). */
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_ullong memory_limit; /* of the running engine; 0 = none */
static struct engine *live_engine;
static atomic_int live_ready;

void sl_engine_request_stop(void)
{
    atomic_store(&stop_requested, 1);
}
int sl_engine_stopping(void)
{
    return atomic_load(&stop_requested);
}

struct stage;

/* A position a source emitted, waiting for every sink to pass it (release()). */
struct relpos {
    struct relpos *next;
    uint64_t seq;
    char pos[];
};

/* Consumers of one output of a stage. */
struct port {
    struct stage **to;
    size_t n;
};

/* Batches of one source waiting at a sink for their turn. */
struct pending {
    struct sl_batch *b;
    struct pending *next;
};

/*
 * Invariants (reorder state of a sink, per source s):
 *   1. next_seq[s] is the lowest seq not yet fully processed; have[s] < need[s] copies
 *      of it have been processed.
 *   2. wait[s] is sorted by seq and holds only seqs >= next_seq[s].
 */
struct stage {
    struct engine *eng;
    struct sl_component *comp;
    uint32_t idx;
    void *state;
    int inited;
    int has_in;
    struct sl_queue in;
    struct port *ports;
    size_t nports;
    pthread_t *threads;
    unsigned nthreads;
    atomic_uint running;
    /* stats */
    atomic_ullong batches, rec_in, rec_out, dropped, rejected, bytes_in, bytes_out;
    atomic_ullong logged;
    atomic_ullong dlq;          /* records this stage rejected that the DLQ holds */
    atomic_ullong quarantined;  /* records a gate on this stage sent to quarantine */
    atomic_ullong empty;        /* sources: empty lines skipped */
    atomic_ullong gate_warns;   /* gates on this stage that failed with action warn */
    atomic_ullong memory_waits; /* sources: 5 ms waits for memory_limit */
    /* quality gates on this stage's output: GATES_NONE, per batch, or over the run */
    int gates;
    struct sl_quality_unit *run_unit; /* GATES_RUN: the run's unit, under unit_mu */
    pthread_mutex_t unit_mu;
    int staged;             /* sinks: write-audit-publish this run (ctx.staged) */
    struct sl__breaker brk; /* sinks: retries and the circuit breaker */
    int brk_inited;
    /* sinks with defers_commit: per source, the last seq known durable */
    uint64_t *durable;
    size_t cur_source; /* sinks: the source of the batch in process() (mark_durable) */
    /* sources with release(): positions emitted and not yet released, oldest first */
    pthread_mutex_t rel_mu;
    struct relpos *rel_head, *rel_tail;
    /* sinks: held around each process() and flush() so committed_lookup never sees a
       half-done commit (a source with per-partition positions asks mid-run) */
    pthread_mutex_t call_mu;
    /* sinks: commit latency (source emit -> commit), per bucket (not cumulative) */
    atomic_ullong lat[SL_LATENCY_BUCKETS + 1];
    atomic_ullong lat_sum_us;
    atomic_ullong last_commit_ns, last_commit_ingest_ns;
    /* sinks that keep checkpoints, for /metrics: per source the committed position and
       when it was committed (under ckpt_mu); deferring sinks also remember the position
       of seq next_seq - 1 (done_pos) and of the batch in process() (cur_pos), sink
       thread only */
    pthread_mutex_t ckpt_mu;
    char **ckpt;
    uint64_t *ckpt_ns;
    char **done_pos;
    const char *cur_pos;
    /* source */
    uint64_t seq;
    int fans_out;
    atomic_ullong skipped; /* sinks: records already delivered before a restart */
    /* sink */
    char **resume; /* per source: position committed before this run, until passed */
    uint32_t *need;
    uint32_t *have;
    uint64_t *next_seq;
    struct pending **wait;
};

enum { GATES_NONE = 0, GATES_BATCH, GATES_RUN };

struct engine {
    struct sl_pipeline *p;
    struct sl_dlq *dlq;         /* NULL when the pipeline has no DLQ */
    struct sl_quarantine *quar; /* open when the pipeline has quality gates */
    unsigned char *down;        /* with gates: down[c * n + d] iff d is c or downstream of c */
    const struct sl_run_opts *opts;
    struct stage *st;
    size_t n;
    const char **source_names;
    struct lookup_handle *lookups; /* per source, for sl_plugin_ctx.committed_lookup */
    atomic_int aborted;
    pthread_mutex_t err_mu;
    struct sl_error first_err;
    sl_rc first_rc;
};

struct worker_arg {
    struct stage *st;
    unsigned index;
};

/* ---------------------------------------------------------------------------------------- */

static void engine_fail(struct engine *e, struct stage *st, sl_rc rc, const struct sl_error *err)
{
    pthread_mutex_lock(&e->err_mu);
    if (e->first_rc == SL_OK) {
        e->first_rc = rc ? rc : SL_ESTATE;
        sl_error_set(&e->first_err, e->first_rc, "%s %s: %s", sl_plugin_kind_name(st->comp->kind),
                     st->comp->name, err && err->msg[0] ? err->msg : sl_strerror(rc));
    }
    pthread_mutex_unlock(&e->err_mu);
    if (atomic_exchange(&e->aborted, 1))
        return;
    for (size_t i = 0; i < e->n; i++)
        if (e->st[i].has_in)
            sl__queue_abort(&e->st[i].in);
}

static void log_reject(struct stage *counted, struct sl_batch *b, const struct sl_record *r)
{
    unsigned long long k = atomic_fetch_add(&counted->logged, 1);
    if (k < REJECT_LOG_LIMIT) {
        sl_warn(r->error_stage ? r->error_stage : counted->comp->name, "rejected %s:%u: %s",
                b->origin ? b->origin : "?", r->line, r->error ? r->error : "(no reason)");
    } else if (k == REJECT_LOG_LIMIT) {
        sl_warn(counted->comp->name,
                "more than %d records rejected; further rejections are counted but not logged",
                REJECT_LOG_LIMIT);
    }
}

/* The stage named name (records carry their rejecting stage's name), or NULL. */
static struct stage *stage_named(struct engine *e, const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < e->n; i++)
        if (e->st[i].comp->name == name || strcmp(e->st[i].comp->name, name) == 0)
            return &e->st[i];
    return NULL;
}

/*
 * Make the rejected records of b that the DLQ does not hold yet durable there. Called
 * before a batch moves on from the stage that rejected records in it, and by sinks
 * before they commit (sl_worker.keep_rejects): so no checkpoint ever covers a rejected
 * record the DLQ lacks. SL_OK, or the DLQ's error (fatal for the run: a record that can
 * be neither delivered nor kept must stop the pipeline, not vanish).
 */
static sl_rc keep_rejects(struct engine *e, struct sl_batch *b, struct sl_error *err)
{
    if (!e->dlq)
        return SL_OK;
    uint32_t pending = 0;
    for (uint32_t i = 0; i < b->n; i++)
        pending += (b->recs[i].flags & (SL_REC_BAD | SL_REC_KEPT)) == SL_REC_BAD;
    if (!pending)
        return SL_OK;
    /* Tally by rejecting stage first: after the keep, new and old look alike. */
    uint32_t *tally = sl_calloc(e->n ? e->n : 1, sizeof *tally);
    if (!tally)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    struct stage *last = NULL;
    const char *last_name = NULL;
    for (uint32_t i = 0; i < b->n; i++) {
        const struct sl_record *r = &b->recs[i];
        if ((r->flags & (SL_REC_BAD | SL_REC_KEPT)) != SL_REC_BAD)
            continue;
        if (!last || r->error_stage != last_name) {
            last_name = r->error_stage;
            last = stage_named(e, last_name);
        }
        if (last)
            tally[last->idx]++;
    }
    const char *src = b->source < e->p->nsources ? e->source_names[b->source] : "?";
    sl_error_clear(err);
    sl_rc rc = sl_dlq_keep(e->dlq, b, src, e->opts->replay, NULL, err);
    if (rc) {
        sl_free(tally);
        return sl_error_prefix(
            err, "cannot keep %u rejected records in the dead-letter queue: ", pending);
    }
    for (size_t i = 0; i < e->n; i++)
        if (tally[i])
            atomic_fetch_add(&e->st[i].dlq, tally[i]);
    sl_free(tally);
    return SL_OK;
}

static void worker_durable(struct sl_worker *w, int with_current);

/* sl_worker.keep_rejects: the hook sinks call before they commit. */
static sl_rc worker_keep_rejects(struct sl_worker *w, struct sl_batch *b, struct sl_error *err)
{
    return keep_rejects(w->engine, b, err);
}

/* Reject r, which failed to parse, with the parser's rule as the structured reason. */
static void reject_unparsable(struct sl_batch *b, struct sl_record *r, const char *stage, sl_rc rc,
                              const struct sl_json_error *jerr)
{
    const char *rule = jerr->rule ? jerr->rule : "syntax";
    const char *cls = "invalid_json";
    if (rc == SL_ELIMIT || !strcmp(rule, "too_large"))
        cls = "record_too_large";
    else if (!strcmp(rule, "invalid_utf8") || !strcmp(rule, "overlong_utf8") ||
             !strcmp(rule, "byte_order_mark"))
        cls = "encoding";
    else if (!strcmp(rule, "duplicate_key"))
        cls = "duplicate_key";
    char at[32];
    snprintf(at, sizeof at, "byte %zu", jerr->offset);
    struct sl_reject_info why = {.error_class = cls,
                                 .rule = rule,
                                 .path = jerr->path[0] ? jerr->path : NULL,
                                 .expected = "RFC 8259 JSON",
                                 .actual = at};
    if (rc == SL_ELIMIT)
        sl_record_reject_why(b, r, stage, &why, "record too large to parse (%u bytes)",
                             r->text_len);
    else
        sl_record_reject_why(b, r, stage, &why, "invalid JSON at byte %zu: %s", jerr->offset,
                             jerr->msg);
}

/*
 * Parse every record of b that is not parsed yet. Failures are rejected and counted
 * against the batch's source stage. SL_OK or SL_ENOMEM.
 */
static sl_rc parse_batch(struct engine *e, struct sl_batch *b, struct sl_worker *w)
{
    struct stage *src = &e->st[b->source];
    const char *stage = src->comp->reject_as ? src->comp->reject_as : src->comp->name;
    uint64_t bad = 0;
    for (uint32_t i = 0; i < b->n; i++) {
        struct sl_record *r = &b->recs[i];
        if (r->flags & (SL_REC_PARSED | SL_REC_BAD | SL_REC_DROPPED))
            continue;
        struct sl_json_error jerr;
        sl_rc rc = sl_record_parse(r, w->parser, w->max_depth, &b->arena, &jerr);
        if (rc == SL_ENOMEM)
            return rc;
        if (rc) {
            reject_unparsable(b, r, stage, rc, &jerr);
            bad++;
            log_reject(src, b, r);
        } else if (e->p->require_object && r->tape.tok[0].type != SL_J_OBJECT) {
            static const char *const names[] = {"null",   "false", "true",  "number",
                                                "string", "array", "object"};
            struct sl_reject_info why = {.error_class = "not_object",
                                         .rule = "require_object",
                                         .path = "$",
                                         .expected = "object",
                                         .actual = names[r->tape.tok[0].type]};
            sl_record_reject_why(b, r, stage, &why,
                                 "the record is a JSON %s, not an object (json.require_object)",
                                 names[r->tape.tok[0].type]);
            r->flags &= ~(uint32_t)SL_REC_PARSED;
            bad++;
            log_reject(src, b, r);
        }
    }
    if (bad)
        atomic_fetch_add(&src->rejected, bad);
    return SL_OK;
}

/* Live, dropped and rejected records of b; quarantined ones count as none of them. */
static void count_flags(const struct sl_batch *b, uint64_t *live, uint64_t *dropped, uint64_t *bad)
{
    uint64_t l = 0, d = 0, x = 0;
    for (uint32_t i = 0; i < b->n; i++) {
        uint32_t f = b->recs[i].flags;
        if (f & SL_REC_BAD)
            x++;
        else if (f & SL_REC_QUARANTINED)
            continue;
        else if (f & SL_REC_DROPPED)
            d++;
        else
            l++;
    }
    *live = l;
    *dropped = d;
    *bad = x;
}

/* ---- quality gates ------------------------------------------------------------------ */

struct gate_log {
    struct stage *st;
    const struct sl_batch *b; /* NULL for the run's unit */
    struct sl_buf why;        /* failed gates' messages, for errors and the quarantine */
    struct sl_buf names;      /* failed gates' names, "a, b" */
};

static void gate_result(void *ctx, const struct sl_gate_result *r)
{
    struct gate_log *g = ctx;
    if (r->passed)
        return;
    char where[96] = "over the whole run";
    if (g->b)
        snprintf(where, sizeof where, "on batch %llu of source %s", (unsigned long long)g->b->seq,
                 g->b->source < g->st->eng->p->nsources ? g->st->eng->source_names[g->b->source]
                                                        : "?");
    sl_warn(g->st->comp->name, "quality gate %s failed %s (action %s): %s", r->gate, where,
            sl_gate_action_name(r->action), r->message);
    if (r->action == SL_GATE_WARN)
        atomic_fetch_add(&g->st->gate_warns, 1);
    if (g->why.len)
        sl_buf_puts(&g->why, "; ");
    sl_buf_printf(&g->why, "%s: %s", r->gate, r->message);
    if (r->action >= SL_GATE_QUARANTINE) {
        if (g->names.len)
            sl_buf_puts(&g->names, ", ");
        sl_buf_puts(&g->names, r->gate);
    }
}

/* NUL-terminate b's text without counting the NUL; "" when that fails. */
static const char *buf_text(struct sl_buf *b)
{
    if (sl_buf_putc(b, 0) != SL_OK)
        return "";
    b->len--;
    return b->data;
}

/*
 * Move the live records of b into the quarantine store as one unit (durable before b goes
 * on, like the DLQ), marking them SL_REC_QUARANTINED | SL_REC_DROPPED.
 */
static sl_rc quarantine_batch(struct stage *st, struct sl_batch *b, const char *gates,
                              const char *reason, struct sl_error *err)
{
    struct engine *e = st->eng;
    struct sl_quarantine_info info = {
        .gates = gates,
        .stage = st->comp->name,
        .source = b->source < e->p->nsources ? e->source_names[b->source] : "",
        .reason = reason,
    };
    int64_t unit = 0;
    uint64_t kept = 0;
    sl_error_clear(err);
    sl_rc rc = sl_quarantine_keep(e->quar, b, &info, &unit, &kept, err);
    if (rc)
        return sl_error_prefix(err, "cannot quarantine a batch of source %s: ", info.source);
    atomic_fetch_add(&st->quarantined, kept);
    sl_warn(st->comp->name,
            "quarantined %llu records as unit %lld (`sluice quarantine show %s %lld`)",
            (unsigned long long)kept, (long long)unit, e->p->path, (long long)unit);
    return SL_OK;
}

/*
 * Judge b by the gates on st's output (per-batch units), or add it to the run's unit.
 * Quarantine moves b's live records into the quarantine store before b goes on; fail
 * returns SL_EGATE so the batch goes nowhere and the run stops.
 */
static sl_rc judge_batch(struct stage *st, struct sl_batch *b, struct sl_error *err)
{
    struct engine *e = st->eng;
    sl_rc rc;
    if (st->gates == GATES_NONE)
        return SL_OK;
    if (st->gates == GATES_RUN) {
        pthread_mutex_lock(&st->unit_mu);
        rc = sl_quality_unit_add(st->run_unit, b);
        pthread_mutex_unlock(&st->unit_mu);
        return rc ? sl_error_set(err, rc, "quality gates: %s", sl_strerror(rc)) : SL_OK;
    }
    if (sl_batch_live(b) == 0)
        return SL_OK; /* an empty batch is no unit to judge */
    struct sl_quality_unit *u = NULL;
    rc = sl_quality_unit_create(e->p->quality, st->idx, &u);
    if (!rc)
        rc = sl_quality_unit_add(u, b);
    if (rc) {
        sl_quality_unit_destroy(u);
        return sl_error_set(err, rc, "quality gates: %s", sl_strerror(rc));
    }
    struct gate_log g = {.st = st, .b = b};
    sl_buf_init(&g.why, 8192);
    sl_buf_init(&g.names, 1024);
    enum sl_gate_action a = sl_quality_unit_judge(u, sl_now_real_ns(), gate_result, &g);
    sl_quality_unit_destroy(u);
    if (a == SL_GATE_QUARANTINE)
        rc = quarantine_batch(st, b, buf_text(&g.names), buf_text(&g.why), err);
    else if (a == SL_GATE_FAIL)
        rc = sl_error_set(err, SL_EGATE,
                          "quality gate failed on batch %llu of source %s: %s; nothing of this "
                          "batch was committed",
                          (unsigned long long)b->seq, e->source_names[b->source], buf_text(&g.why));
    sl_buf_fini(&g.why);
    sl_buf_fini(&g.names);
    return rc;
}

/* Hand b (our reference) to the consumers of port. SL_OK or SL_ECANCELED / SL_ENOMEM. */
static sl_rc push_port(const struct port *port, struct sl_batch *b)
{
    if (port->n == 0) {
        sl_batch_unref(b);
        return SL_OK;
    }
    for (size_t i = 1; i < port->n; i++) {
        struct sl_batch *c;
        sl_rc rc = sl_batch_clone(b, &c);
        if (rc) {
            sl_batch_unref(b);
            return rc;
        }
        rc = sl__queue_push(&port->to[i]->in, c);
        if (rc) {
            sl_batch_unref(b);
            return rc;
        }
    }
    return sl__queue_push(&port->to[0]->in, b);
}

/*
 * Pass b (our reference) downstream. For stages with named outputs, split by outmask.
 * Counts records_out (and, for routes, records that go to no consumed output as dropped).
 */
static sl_rc emit(struct stage *st, struct sl_batch *b)
{
    if (st->nports == 1) {
        uint64_t live, dropped, bad;
        count_flags(b, &live, &dropped, &bad);
        atomic_fetch_add(&st->rec_out, live);
        return push_port(&st->ports[0], b);
    }
    /* Named outputs: records whose bits name no consumed output are dropped here. */
    uint64_t nowhere = 0, out = 0;
    uint64_t consumed = 0;
    for (size_t o = 0; o < st->nports && o < 64; o++)
        if (st->ports[o].n)
            consumed |= (uint64_t)1 << o;
    for (uint32_t i = 0; i < b->n; i++) {
        const struct sl_record *r = &b->recs[i];
        if (r->flags & (SL_REC_BAD | SL_REC_DROPPED))
            continue;
        uint64_t m = b->outmask ? b->outmask[i] : 0;
        if (!(m & consumed))
            nowhere++;
        out += (uint64_t)__builtin_popcountll(m & consumed);
    }
    atomic_fetch_add(&st->dropped, nowhere);
    atomic_fetch_add(&st->rec_out, out);
    sl_rc rc = SL_OK;
    for (size_t o = 0; o < st->nports && rc == SL_OK; o++) {
        if (!st->ports[o].n)
            continue;
        struct sl_batch *c;
        rc = sl_batch_clone(b, &c);
        if (rc)
            break;
        for (uint32_t i = 0; i < c->n; i++) {
            struct sl_record *r = &c->recs[i];
            if (r->flags & (SL_REC_BAD | SL_REC_DROPPED))
                continue;
            if (!b->outmask || !(b->outmask[i] & ((uint64_t)1 << o)))
                r->flags |= SL_REC_DROPPED;
        }
        rc = push_port(&st->ports[o], c);
    }
    sl_batch_unref(b);
    return rc;
}

static void close_outputs(struct stage *st)
{
    for (size_t o = 0; o < st->nports; o++)
        for (size_t i = 0; i < st->ports[o].n; i++)
            sl__queue_close(&st->ports[o].to[i]->in);
}

static sl_rc worker_init(struct stage *st, unsigned index, struct sl_worker *w)
{
    memset(w, 0, sizeof *w);
    w->stage = st->comp->name;
    w->index = index;
    w->max_depth = st->eng->p->max_depth;
    w->keep_rejects = worker_keep_rejects;
    w->durable = worker_durable;
    w->engine = st->eng;
    sl_rc rc = sl_json_parser_create(&w->parser);
    if (rc == SL_OK)
        sl_json_parser_set_flags(w->parser, st->eng->p->json_flags);
    return rc;
}

/*
 * Prologue of a transform or sink thread: the worker context and the reject bookkeeping.
 * On failure the engine is failed here; the thread still drains its queue (dropping
 * batches) so that producers never block on it.
 */
static sl_rc worker_begin(struct stage *st, unsigned index, struct sl_worker *w,
                          struct sl_error *err)
{
    sl_error_clear(err);
    sl_rc rc = worker_init(st, index, w);
    if (rc) {
        sl_error_set(err, rc, "cannot create a JSON parser: %s", sl_strerror(rc));
        engine_fail(st->eng, st, rc, err);
    }
    return rc;
}

/* Log and count records that process() rejected (flags differ from prev). */
static void note_new_rejects(struct stage *st, struct sl_batch *b, const uint8_t *prev_bad)
{
    for (uint32_t i = 0; i < b->n; i++)
        if ((b->recs[i].flags & SL_REC_BAD) && !prev_bad[i])
            log_reject(st, b, &b->recs[i]);
}

/*
 * Checkpoint positions for /metrics (sl_engine_checkpoints): sink st committed position
 * pos of source s at wall clock ns. Positions only move forward (a batch skipped as already
 * delivered orders before the committed position and changes nothing); a copy that cannot
 * be allocated leaves the previous one, as this is for display only.
 */
static void note_commit(struct engine *e, struct stage *st, size_t s, const char *pos, uint64_t ns)
{
    if (!pos || !st->ckpt || !st->comp->plugin->committed || st->staged)
        return;
    struct stage *src = &e->st[s];
    const struct sl_plugin *pl = src->comp->plugin;
    if (pl->partitioned) /* one position per partition: not one per source */
        return;
    pthread_mutex_lock(&st->ckpt_mu);
    const char *cur = st->ckpt[s];
    if (!cur || !pl->position_cmp || pl->position_cmp(src->state, pos, cur) > 0) {
        char *copy = sl_strdup(pos);
        if (copy) {
            sl_free(st->ckpt[s]);
            st->ckpt[s] = copy;
            st->ckpt_ns[s] = ns;
        }
    } else if (strcmp(pos, cur) == 0) {
        st->ckpt_ns[s] = ns;
    }
    pthread_mutex_unlock(&st->ckpt_mu);
}

/* A deferring sink finished the last copy of a batch of source s at pos (mark_durable). */
static void note_done(struct stage *st, size_t s, const char *pos)
{
    if (!st->comp->plugin->defers_commit || !st->done_pos || !pos || st->have[s] + 1 < st->need[s])
        return;
    char *copy = sl_strdup(pos);
    if (copy) {
        sl_free(st->done_pos[s]);
        st->done_pos[s] = copy;
    }
}

/* One attempt of a sink at a batch, for the retry loop and breaker (breaker.h). */
struct attempt {
    struct stage *st;
    struct sl_batch *b;
    struct sl_worker *w;
};

static sl_rc sink_attempt(void *ctx, uint64_t *retry_after_ms, struct sl_error *err)
{
    struct attempt *a = ctx;
    a->w->retry_after_ms = 0;
    pthread_mutex_lock(&a->st->call_mu);
    sl_rc rc = a->st->comp->plugin->process(a->st->state, a->b, a->w, err);
    pthread_mutex_unlock(&a->st->call_mu);
    *retry_after_ms = a->w->retry_after_ms;
    return rc;
}

/* Run process() on b with accounting. Keeps b's reference. */
static sl_rc process_batch(struct stage *st, struct sl_batch *b, struct sl_worker *w,
                           uint8_t **prev, size_t *prevcap, struct sl_error *err)
{
    struct engine *e = st->eng;
    sl_rc rc = parse_batch(e, b, w);
    if (rc)
        return sl_error_set(err, rc, "out of memory while parsing a batch");
    /* What the source rejected or failed to parse is kept before anything else happens. */
    if ((rc = keep_rejects(e, b, err)))
        return rc;
    if (*prevcap < b->n) {
        uint8_t *np = sl_realloc(*prev, b->n);
        if (!np)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        *prev = np;
        *prevcap = b->n;
    }
    uint64_t live0 = 0, bad0 = 0, held0 = 0;
    for (uint32_t i = 0; i < b->n; i++) {
        uint32_t f = b->recs[i].flags;
        (*prev)[i] = (f & SL_REC_BAD) != 0;
        bad0 += (f & SL_REC_BAD) != 0;
        live0 += !(f & (SL_REC_BAD | SL_REC_DROPPED));
        held0 += (f & (SL_REC_BAD | SL_REC_QUARANTINED)) == SL_REC_QUARANTINED;
    }
    uint64_t dropped0 = b->n - live0 - bad0 - held0;
    atomic_fetch_add(&st->batches, 1);
    atomic_fetch_add(&st->rec_in, live0);
    atomic_fetch_add(&st->bytes_in, b->bytes);
    if (st->nports > 1) {
        b->outmask = sl_arena_calloc(&b->arena, (size_t)(b->n ? b->n : 1) * sizeof(uint64_t));
        if (!b->outmask)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    if (st->comp->kind == SL_PLUGIN_SINK && st->gates) {
        /* Gates on a sink judge what it is about to write. */
        if ((rc = judge_batch(st, b, err)))
            return rc;
    }
    if (st->comp->kind == SL_PLUGIN_SINK) {
        st->cur_source = b->source;
        st->cur_pos = b->position;
        struct attempt a = {st, b, w};
        rc = sl__breaker_run(&st->brk, sink_attempt, &a, &e->aborted, err);
    } else {
        rc = st->comp->plugin->process(st->state, b, w, err);
    }
    if (rc)
        return rc;
    /*
     * Records this stage rejected are kept before the batch moves on. A sink should have
     * kept its own before committing (keep_rejects hook); this catches one that did not.
     */
    if ((rc = keep_rejects(e, b, err)))
        return rc;
    if (st->comp->kind == SL_PLUGIN_TRANSFORM && (rc = judge_batch(st, b, err)))
        return rc;
    uint64_t live1, dropped1, bad1;
    count_flags(b, &live1, &dropped1, &bad1);
    if (bad1 > bad0) {
        atomic_fetch_add(&st->rejected, bad1 - bad0);
        note_new_rejects(st, b, *prev);
    }
    if (dropped1 > dropped0)
        atomic_fetch_add(&st->dropped, dropped1 - dropped0);
    if (st->comp->kind == SL_PLUGIN_SINK) {
        atomic_fetch_add(&st->rec_out, live1);
        uint64_t now = sl_now_real_ns();
        uint64_t lat_ns = b->ingest_ns && now > b->ingest_ns ? now - b->ingest_ns : 0;
        double lat_s = (double)lat_ns / 1e9;
        size_t k = 0;
        while (k < SL_LATENCY_BUCKETS && lat_s > sl_latency_bounds[k])
            k++;
        atomic_fetch_add(&st->lat[k], 1);
        atomic_fetch_add(&st->lat_sum_us, lat_ns / 1000);
        atomic_store(&st->last_commit_ns, now);
        atomic_store(&st->last_commit_ingest_ns, b->ingest_ns);
        if (!st->comp->plugin->defers_commit)
            note_commit(e, st, b->source, b->position, now);
    }
    return SL_OK;
}

static void *transform_main(void *arg)
{
    struct worker_arg *wa = arg;
    struct stage *st = wa->st;
    struct engine *e = st->eng;
    struct sl_worker w;
    struct sl_error err;
    uint8_t *prev = NULL;
    size_t prevcap = 0;
    sl_rc rc = worker_begin(st, wa->index, &w, &err);
    struct sl_batch *b;
    while ((b = sl__queue_pop(&st->in)) != NULL) {
        if (rc || atomic_load(&e->aborted)) {
            sl_batch_unref(b);
            continue;
        }
        rc = process_batch(st, b, &w, &prev, &prevcap, &err);
        if (rc) {
            sl_batch_unref(b);
            engine_fail(e, st, rc, &err);
            continue;
        }
        rc = emit(st, b);
        if (rc == SL_ECANCELED)
            rc = SL_OK; /* someone else failed; keep draining */
        else if (rc) {
            sl_error_set(&err, rc, "cannot pass a batch on: %s", sl_strerror(rc));
            engine_fail(e, st, rc, &err);
        }
    }
    sl_free(prev);
    sl_json_parser_destroy(w.parser);
    if (atomic_fetch_sub(&st->running, 1) == 1)
        close_outputs(st);
    return NULL;
}

/*
 * Start-up protocol (DESIGN §4). Every sink reports the position it committed for each
 * source it reads from; each source resumes from the lowest of them. A sink that is ahead
 * of the resumed source keeps its own position in resume[s] and skips what it already
 * has (skip_committed) until the source passes that position.
 */
static sl_rc resume_sources(struct engine *e, struct sl_error *err)
{
    struct sl_pipeline *p = e->p;
    size_t ns = p->nsources;
    for (size_t i = 0; i < e->n; i++) {
        struct stage *st = &e->st[i];
        if (st->comp->kind != SL_PLUGIN_SINK)
            continue;
        st->resume = sl_calloc(ns ? ns : 1, sizeof *st->resume);
        if (!st->resume)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        if (!st->comp->plugin->committed)
            continue;
        for (size_t s = 0; s < ns; s++) {
            if (!st->need[s])
                continue;
            sl_error_clear(err);
            sl_rc rc =
                st->comp->plugin->committed(st->state, e->source_names[s], &st->resume[s], err);
            if (rc)
                return sl_error_prefix(
                    err, "sink %s: cannot read its committed position: ", st->comp->name);
            /* For /metrics: where the sink stands before this run's first commit. */
            uint64_t records, commit_ns = 0;
            struct sl_error ierr;
            if (st->resume[s] && st->comp->plugin->commit_info &&
                st->comp->plugin->commit_info(st->state, e->source_names[s], &records, &commit_ns,
                                              &ierr) != SL_OK)
                commit_ns = 0;
            note_commit(e, st, s, st->resume[s], commit_ns);
        }
    }
    for (size_t s = 0; s < ns; s++) {
        struct stage *src = &e->st[s];
        const struct sl_plugin *pl = src->comp->plugin;
        const char *lowest = NULL, *missing = NULL;
        int comparable = 1;
        for (size_t i = 0; i < e->n; i++) {
            struct stage *st = &e->st[i];
            if (st->comp->kind != SL_PLUGIN_SINK || !st->need[s])
                continue;
            const char *pos = st->resume[s];
            if (!pos) {
                missing = st->comp->name;
                continue;
            }
            if (!lowest)
                lowest = pos;
            else if (pl->position_cmp)
                lowest = pl->position_cmp(src->state, pos, lowest) < 0 ? pos : lowest;
            else if (strcmp(pos, lowest) != 0)
                comparable = 0;
        }
        if (!lowest)
            continue;
        if (missing || !comparable || !pl->restore) {
            sl_info(src->comp->name,
                    "reading from the start: %s; sinks with a checkpoint skip what they have",
                    missing        ? "a sink has no checkpoint yet"
                    : !pl->restore ? "this source cannot resume"
                                   : "its sinks' positions cannot be ordered");
            continue;
        }
        char *from = sl_strdup(lowest); /* sinks' strings may be freed below */
        if (!from)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        sl_error_clear(err);
        sl_rc rc = pl->restore(src->state, from, err);
        if (rc) {
            sl_free(from);
            return sl_error_prefix(
                err, "source %s: cannot resume from its committed position: ", src->comp->name);
        }
        sl_info(src->comp->name, "resuming after the last committed batch");
        /* Sinks exactly at the resumed position have nothing to skip. */
        for (size_t i = 0; i < e->n; i++) {
            struct stage *st = &e->st[i];
            if (st->comp->kind != SL_PLUGIN_SINK || !st->resume[s])
                continue;
            int same = pl->position_cmp ? pl->position_cmp(src->state, st->resume[s], from) == 0
                                        : strcmp(st->resume[s], from) == 0;
            if (same) {
                sl_free(st->resume[s]);
                st->resume[s] = NULL;
            }
        }
        sl_free(from);
    }
    return SL_OK;
}

/*
 * A sink that committed position P before this run must not receive again what P covers.
 * Returns 1 when the whole batch is already delivered (do not process it), 0 when it is to
 * be processed (with the covered records marked dropped and counted as skipped).
 */
static int skip_partitioned(struct engine *e, struct stage *st, struct sl_batch *b);

static int skip_committed(struct engine *e, struct stage *st, struct sl_batch *b)
{
    uint32_t s = b->source;
    if (b->checkpoint && e->st[s].comp->plugin->partitioned)
        return skip_partitioned(e, st, b);
    const char *P = st->resume ? st->resume[s] : NULL;
    if (!P)
        return 0;
    struct stage *src = &e->st[s];
    const struct sl_plugin *pl = src->comp->plugin;
    int ahead = b->position && pl->position_cmp && pl->position_cmp(src->state, b->position, P) > 0;
    uint64_t skipped = 0;
    if (!ahead && b->position && pl->position_cmp) {
        /*
         * Not past P: the sink has all of it. Where the source can tell per record, make
         * sure: an ordering mistake must cost a duplicate at worst, never a lost record.
         */
        int all = 1;
        for (uint32_t i = 0; i < b->n; i++) {
            if (b->recs[i].flags & (SL_REC_BAD | SL_REC_DROPPED))
                continue;
            skipped++;
            if (pl->covers && !pl->covers(src->state, P, b, i))
                all = 0;
        }
        if (all) {
            atomic_fetch_add(&st->skipped, skipped);
            atomic_fetch_add(&st->rec_in, skipped); /* received, and already delivered */
            return 1;
        }
        sl_warn(st->comp->name,
                "batch %llu of source %s orders at or before this sink's checkpoint but holds "
                "records the checkpoint does not cover; delivering those",
                (unsigned long long)b->seq, src->comp->name);
        skipped = 0;
    }
    if (pl->covers) {
        for (uint32_t i = 0; i < b->n; i++) {
            struct sl_record *r = &b->recs[i];
            if (r->flags & (SL_REC_BAD | SL_REC_DROPPED))
                continue;
            if (pl->covers(src->state, P, b, i)) {
                r->flags |= SL_REC_DROPPED;
                skipped++;
            }
        }
        atomic_fetch_add(&st->skipped, skipped);
        atomic_fetch_add(&st->rec_in, skipped); /* process_batch counts only the rest */
    }
    /* Past P now: forget it once every copy of this seq (one per path) has been seen. */
    if (ahead && st->have[s] + 1 >= st->need[s]) {
        sl_free(st->resume[s]);
        st->resume[s] = NULL;
    }
    return 0;
}

/*
 * The same for a source with a position per partition (plugin `partitioned`): the
 * partition this batch comes from may have been read before, in an earlier run or by
 * another member of a consumer group, and this sink may be ahead of the position the
 * source started it at (the lowest over its sinks). So ask the sink itself what it
 * committed for the batch's checkpoint name, every batch: a committed position only
 * grows, and it is read between two of the sink's commits (call_mu), so what it covers
 * is delivered. A failing query delivers the batch (a duplicate at worst, never a loss).
 */
static int skip_partitioned(struct engine *e, struct stage *st, struct sl_batch *b)
{
    struct stage *src = &e->st[b->source];
    const struct sl_plugin *pl = src->comp->plugin;
    if (!st->comp->plugin->committed || !pl->covers)
        return 0;
    char *P = NULL;
    struct sl_error err;
    sl_error_clear(&err);
    pthread_mutex_lock(&st->call_mu);
    sl_rc rc = st->comp->plugin->committed(st->state, b->checkpoint, &P, &err);
    pthread_mutex_unlock(&st->call_mu);
    if (rc || !P) {
        if (rc)
            sl_warn(st->comp->name, "cannot read the committed position of %s (%s); delivering",
                    b->checkpoint, err.msg);
        sl_free(P);
        return 0;
    }
    /*
     * At or before P: the sink has all of it, and processing it would set the sink's
     * position back to this batch's. Skip it whole (after checking each record).
     */
    int behind =
        b->position && pl->position_cmp && pl->position_cmp(src->state, b->position, P) <= 0;
    uint64_t skipped = 0, live = 0;
    for (uint32_t i = 0; i < b->n; i++) {
        struct sl_record *r = &b->recs[i];
        if (r->flags & (SL_REC_BAD | SL_REC_DROPPED))
            continue;
        live++;
        if (pl->covers(src->state, P, b, i))
            skipped++;
    }
    if (behind && skipped == live) {
        sl_free(P);
        atomic_fetch_add(&st->skipped, skipped);
        atomic_fetch_add(&st->rec_in, skipped);
        return 1;
    }
    if (behind)
        sl_warn(st->comp->name,
                "a batch of %s orders at or before this sink's checkpoint %s but holds records "
                "it does not cover; delivering those",
                b->checkpoint, P);
    for (uint32_t i = 0; i < b->n; i++) {
        struct sl_record *r = &b->recs[i];
        if (!(r->flags & (SL_REC_BAD | SL_REC_DROPPED)) && pl->covers(src->state, P, b, i))
            r->flags |= SL_REC_DROPPED;
    }
    sl_free(P);
    atomic_fetch_add(&st->skipped, skipped);
    atomic_fetch_add(&st->rec_in, skipped); /* process_batch counts only the rest */
    return 0;
}

/* Insert into the sorted wait list of source s. */
static void reorder_insert(struct stage *st, struct sl_batch *b, struct pending *node)
{
    node->b = b;
    struct pending **pp = &st->wait[b->source];
    while (*pp && (*pp)->b->seq <= b->seq)
        pp = &(*pp)->next;
    node->next = *pp;
    *pp = node;
}

/*
 * When every sink fed by source s is past a position s emitted, tell the source (plugin
 * release()). A sink is past what it processed (next_seq - 1), or, when its commits lag
 * (defers_commit), past what it last reported durable. The source's rel_mu serializes the
 * bookkeeping and the calls; sinks update next_seq and durable under it.
 */
static void release_passed(struct engine *e, uint32_t s)
{
    struct stage *src = &e->st[s];
    pthread_mutex_lock(&src->rel_mu);
    uint64_t done = UINT64_MAX;
    for (size_t i = 0; i < e->n; i++) {
        struct stage *k = &e->st[i];
        if (k->comp->kind != SL_PLUGIN_SINK || !k->need || !k->need[s])
            continue;
        uint64_t d = k->comp->plugin->defers_commit ? k->durable[s] : k->next_seq[s] - 1;
        if (d < done)
            done = d;
    }
    struct relpos *last = NULL;
    while (src->rel_head && src->rel_head->seq <= done) {
        struct relpos *r = src->rel_head;
        src->rel_head = r->next;
        if (!src->rel_head)
            src->rel_tail = NULL;
        sl_free(last);
        last = r;
    }
    if (last)
        src->comp->plugin->release(src->state, last->pos);
    sl_free(last);
    pthread_mutex_unlock(&src->rel_mu);
}

/* Advance sink st past the current seq of source s. */
static void advance(struct engine *e, struct stage *st, uint32_t s)
{
    struct stage *src = &e->st[s];
    if (!src->comp->plugin->release) {
        st->next_seq[s]++;
        return;
    }
    pthread_mutex_lock(&src->rel_mu);
    st->next_seq[s]++;
    pthread_mutex_unlock(&src->rel_mu);
    release_passed(e, s);
}

/*
 * A deferring sink committed: every batch it finished before the current one is durable,
 * and the current one (source cur_source) with with_current, when this is its last copy.
 * Recompute the release point of every source it reads.
 */
static void mark_durable(struct engine *e, struct stage *st, int with_current)
{
    for (size_t s = 0; s < e->p->nsources; s++) {
        if (!st->need[s])
            continue;
        struct stage *src = &e->st[s];
        pthread_mutex_lock(&src->rel_mu);
        st->durable[s] = st->next_seq[s] - 1;
        const char *pos = st->done_pos[s];
        if (with_current && st->cur_source == s && st->have[s] + 1 >= st->need[s]) {
            st->durable[s] = st->next_seq[s];
            pos = st->cur_pos;
        }
        pthread_mutex_unlock(&src->rel_mu);
        note_commit(e, st, s, pos, sl_now_real_ns());
        if (src->comp->plugin->release)
            release_passed(e, (uint32_t)s);
    }
}

static void worker_durable(struct sl_worker *w, int with_current)
{
    struct engine *e = w->engine;
    for (size_t i = 0; i < e->n; i++)
        if (e->st[i].comp->name == w->stage) {
            mark_durable(e, &e->st[i], with_current);
            return;
        }
}

static void *sink_main(void *arg)
{
    struct worker_arg *wa = arg;
    struct stage *st = wa->st;
    struct engine *e = st->eng;
    struct sl_worker w;
    struct sl_error err;
    uint8_t *prev = NULL;
    size_t prevcap = 0;
    sl_rc rc = worker_begin(st, 0, &w, &err);
    struct sl_batch *b;
    while ((b = sl__queue_pop(&st->in)) != NULL) {
        if (rc || atomic_load(&e->aborted)) {
            sl_batch_unref(b);
            continue;
        }
        struct pending *node = sl_malloc(sizeof *node);
        if (!node) {
            sl_batch_unref(b);
            rc = sl_error_set(&err, SL_ENOMEM, "out of memory in the reorder buffer");
            engine_fail(e, st, rc, &err);
            continue;
        }
        uint32_t s = b->source;
        reorder_insert(st, b, node);
        while (rc == SL_OK && st->wait[s] && st->wait[s]->b->seq == st->next_seq[s]) {
            struct pending *head = st->wait[s];
            st->wait[s] = head->next;
            struct sl_batch *ready = head->b;
            sl_free(head);
            if (skip_committed(e, st, ready)) {
                note_done(st, s, ready->position);
                sl_batch_unref(ready);
                if (++st->have[s] >= st->need[s]) {
                    st->have[s] = 0;
                    advance(e, st, s);
                }
                continue;
            }
            rc = process_batch(st, ready, &w, &prev, &prevcap, &err);
            st->cur_pos = NULL;
            if (rc == SL_OK)
                note_done(st, s, ready->position);
            sl_batch_unref(ready);
            if (rc) {
                engine_fail(e, st, rc, &err);
                break;
            }
            if (++st->have[s] >= st->need[s]) {
                st->have[s] = 0;
                advance(e, st, s);
            }
        }
    }
    if (rc == SL_OK && !atomic_load(&e->aborted) && st->comp->plugin->flush) {
        pthread_mutex_lock(&st->call_mu);
        rc = st->comp->plugin->flush(st->state, &err);
        pthread_mutex_unlock(&st->call_mu);
        if (rc)
            engine_fail(e, st, rc, &err);
        else if (st->comp->plugin->defers_commit)
            mark_durable(e, st, 0); /* flush made everything durable */
    }
    for (size_t s = 0; s < e->p->nsources; s++) {
        int leftover = 0;
        while (st->wait[s]) {
            struct pending *head = st->wait[s];
            st->wait[s] = head->next;
            sl_batch_unref(head->b);
            sl_free(head);
            leftover++;
        }
        if (leftover && !atomic_load(&e->aborted))
            sl_error_log(st->comp->name,
                         "%d batches of source %s never became processable (missing seq %llu); "
                         "this is a bug in sluice",
                         leftover, e->source_names[s], (unsigned long long)st->next_seq[s]);
    }
    sl_free(prev);
    sl_json_parser_destroy(w.parser);
    return NULL;
}

static void idle_sleep(void)
{
    struct timespec ts = {0, SOURCE_IDLE_NS};
    nanosleep(&ts, NULL);
}

static void *source_main(void *arg)
{
    struct worker_arg *wa = arg;
    struct stage *st = wa->st;
    struct engine *e = st->eng;
    const struct sl_plugin *pl = st->comp->plugin;
    struct sl_error err;
    struct sl_worker w;
    int have_worker = 0;
    sl_error_clear(&err);
    if (st->fans_out || st->gates) {
        sl_rc rc = worker_init(st, 0, &w);
        if (rc) {
            sl_error_set(&err, rc, "cannot create a JSON parser");
            engine_fail(e, st, rc, &err);
        } else {
            have_worker = 1;
        }
    }
    while (!atomic_load(&e->aborted) && !sl_engine_stopping()) {
        /*
         * memory_limit: while the records in flight hold more than the limit, read
         * nothing; the batches already out drain through the graph and free it.
         */
        if (sl_engine_memory_full()) {
            atomic_fetch_add(&st->memory_waits, 1);
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        struct sl_batch *b;
        sl_rc rc = sl_batch_create(0, &b);
        if (rc) {
            sl_error_set(&err, rc, "out of memory creating a batch");
            engine_fail(e, st, rc, &err);
            break;
        }
        b->source = st->idx;
        rc = pl->read(st->state, b, &err);
        if (rc == SL_AGAIN) {
            sl_batch_unref(b);
            idle_sleep();
            continue;
        }
        if (rc != SL_OK && rc != SL_EOF) {
            sl_batch_unref(b);
            engine_fail(e, st, rc, &err);
            break;
        }
        int eof = rc == SL_EOF;
        if (b->n == 0 && !b->position) {
            sl_batch_unref(b);
            if (eof)
                break;
            continue;
        }
        b->seq = ++st->seq;
        if (pl->release && b->position) {
            size_t len = strlen(b->position);
            struct relpos *r = sl_malloc(sizeof *r + len + 1);
            if (!r) {
                sl_batch_unref(b);
                sl_error_set(&err, SL_ENOMEM, "out of memory");
                engine_fail(e, st, SL_ENOMEM, &err);
                break;
            }
            r->next = NULL;
            r->seq = b->seq;
            memcpy(r->pos, b->position, len + 1);
            pthread_mutex_lock(&st->rel_mu);
            if (st->rel_tail)
                st->rel_tail->next = r;
            else
                st->rel_head = r;
            st->rel_tail = r;
            pthread_mutex_unlock(&st->rel_mu);
        }
        b->ingest_ns = sl_now_real_ns();
        uint64_t bad = 0;
        for (uint32_t i = 0; i < b->n; i++)
            if (b->recs[i].flags & SL_REC_BAD) {
                bad++;
                log_reject(st, b, &b->recs[i]);
            }
        atomic_fetch_add(&st->batches, 1);
        atomic_fetch_add(&st->rec_in, b->n);
        atomic_fetch_add(&st->bytes_in, b->bytes);
        atomic_fetch_add(&st->rejected, bad);
        atomic_fetch_add(&st->empty, b->empty);
        if (have_worker) {
            rc = parse_batch(e, b, &w);
            if (rc)
                sl_error_set(&err, rc, "out of memory while parsing");
            else
                rc = keep_rejects(e, b, &err);
            if (rc == SL_OK)
                rc = judge_batch(st, b, &err);
            if (rc) {
                sl_batch_unref(b);
                engine_fail(e, st, rc, &err);
                break;
            }
        }
        rc = push_port(&st->ports[0], b);
        if (rc && rc != SL_ECANCELED) {
            sl_error_set(&err, rc, "cannot pass a batch on: %s", sl_strerror(rc));
            engine_fail(e, st, rc, &err);
        }
        if (rc || eof)
            break;
    }
    if (have_worker)
        sl_json_parser_destroy(w.parser);
    close_outputs(st);
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */

static sl_rc build_graph(struct engine *e, struct sl_error *err)
{
    struct sl_pipeline *p = e->p;
    for (size_t i = 0; i < p->ncomp; i++) {
        struct stage *st = &e->st[i];
        st->eng = e;
        pthread_mutex_init(&st->unit_mu, NULL);
        pthread_mutex_init(&st->rel_mu, NULL);
        pthread_mutex_init(&st->ckpt_mu, NULL);
        pthread_mutex_init(&st->call_mu, NULL);
        st->comp = &p->comp[i];
        st->idx = (uint32_t)i;
        st->nports = st->comp->noutputs ? st->comp->noutputs : 1;
        st->ports = sl_calloc(st->nports, sizeof *st->ports);
        if (!st->ports)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        if (st->comp->kind != SL_PLUGIN_SOURCE) {
            sl_rc rc = sl__queue_init(&st->in, p->queue_max_batches, p->queue_max_bytes);
            if (rc)
                return sl_error_set(err, rc, "out of memory");
            st->has_in = 1;
        }
    }
    /* Ports: each input edge (producer, output) -> consumer registers one producer. */
    for (size_t i = 0; i < p->ncomp; i++) {
        struct stage *c = &e->st[i];
        for (size_t k = 0; k < c->comp->ninputs; k++) {
            const struct sl_input *in = &c->comp->inputs[k];
            struct stage *prod = &e->st[in->comp];
            struct port *port = &prod->ports[in->output < prod->nports ? in->output : 0];
            struct stage **to = sl_realloc(port->to, (port->n + 1) * sizeof *to);
            if (!to)
                return sl_error_set(err, SL_ENOMEM, "out of memory");
            port->to = to;
            port->to[port->n++] = c;
            sl__queue_add_producer(&c->in);
        }
    }
    /* Sources that feed more than one consumer parse before cloning. */
    for (size_t i = 0; i < p->nsources; i++)
        e->st[i].fans_out = e->st[i].ports[0].n > 1;
    /*
     * Paths from each source to each component, in topological order (comp[] is sorted):
     * paths[c][s] = sum over c's input edges (q, o) of paths[q][s].
     */
    size_t ns = p->nsources;
    uint32_t *paths = sl_calloc(p->ncomp * (ns ? ns : 1), sizeof *paths);
    if (!paths)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < p->ncomp; i++) {
        if (i < ns)
            paths[i * ns + i] = 1;
        const struct sl_component *c = &p->comp[i];
        for (size_t k = 0; k < c->ninputs; k++)
            for (size_t s = 0; s < ns; s++)
                paths[i * ns + s] += paths[c->inputs[k].comp * ns + s];
    }
    for (size_t i = 0; i < p->ncomp; i++) {
        struct stage *st = &e->st[i];
        if (st->comp->kind != SL_PLUGIN_SINK)
            continue;
        st->need = sl_calloc(ns, sizeof *st->need);
        st->have = sl_calloc(ns, sizeof *st->have);
        st->next_seq = sl_calloc(ns, sizeof *st->next_seq);
        st->durable = sl_calloc(ns ? ns : 1, sizeof *st->durable);
        st->wait = sl_calloc(ns, sizeof *st->wait);
        st->ckpt = sl_calloc(ns ? ns : 1, sizeof *st->ckpt);
        st->ckpt_ns = sl_calloc(ns ? ns : 1, sizeof *st->ckpt_ns);
        st->done_pos = sl_calloc(ns ? ns : 1, sizeof *st->done_pos);
        if (!st->need || !st->have || !st->next_seq || !st->wait || !st->durable || !st->ckpt ||
            !st->ckpt_ns || !st->done_pos) {
            sl_free(paths);
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        }
        for (size_t s = 0; s < ns; s++) {
            st->need[s] = paths[i * ns + s];
            st->next_seq[s] = 1;
        }
        if (sl__breaker_init(&st->brk, st->comp->name, &st->comp->retry, &st->comp->breaker,
                             p->state_dir) != SL_OK) {
            sl_free(paths);
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        }
        st->brk_inited = 1;
    }
    sl_free(paths);
    return SL_OK;
}

/*
 * Decide how each component's quality gates judge (DESIGN §5): per batch when streaming;
 * with --once over the whole run, when every sink downstream can stage the run and
 * publish it at the end (write-audit-publish). Those sinks are told to stage at init.
 */
static sl_rc plan_gates(struct engine *e, struct sl_error *err)
{
    struct sl_pipeline *p = e->p;
    /*
     * A sink that replaces a partition (`partition:`) stages the whole --once run too, and
     * publishes it at the end in one transaction (DAG backfills).
     */
    for (size_t d = 0; e->opts->once && d < e->n; d++)
        if (p->comp[d].kind == SL_PLUGIN_SINK && p->comp[d].plugin->publish &&
            sl_cfg_get(p->comp[d].node, "partition"))
            e->st[d].staged = 1;
    if (!p->quality || sl_quality_count(p->quality) == 0)
        return SL_OK;
    size_t n = e->n;
    /* down[c * n + d]: d is c or downstream of c (comp[] is in topological order). */
    unsigned char *down = sl_calloc(n ? n * n : 1, 1);
    if (!down)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t d = 0; d < n; d++) {
        down[d * n + d] = 1;
        const struct sl_component *c = &p->comp[d];
        for (size_t k = 0; k < c->ninputs; k++)
            for (size_t u = 0; u < n; u++)
                if (down[u * n + c->inputs[k].comp])
                    down[u * n + d] = 1;
    }
    sl_rc rc = SL_OK;
    for (size_t c = 0; c < n && !rc; c++) {
        struct stage *st = &e->st[c];
        if (sl_quality_count_on(p->quality, (uint32_t)c) == 0)
            continue;
        st->gates = GATES_BATCH;
        if (!e->opts->once)
            continue;
        const char *cannot = NULL;
        for (size_t d = 0; d < n; d++)
            if (down[c * n + d] && p->comp[d].kind == SL_PLUGIN_SINK && !p->comp[d].plugin->publish)
                cannot = p->comp[d].name;
        if (cannot) {
            sl_info(st->comp->name,
                    "quality gates on %s judge each batch, not the whole run: sink %s cannot "
                    "stage a run and publish it at the end (write-audit-publish)",
                    st->comp->name, cannot);
            continue;
        }
        st->gates = GATES_RUN;
        rc = sl_quality_unit_create(p->quality, (uint32_t)c, &st->run_unit);
        if (rc) {
            rc = sl_error_set(err, rc, "quality gates: %s", sl_strerror(rc));
            break;
        }
        for (size_t d = 0; d < n; d++)
            if (down[c * n + d] && p->comp[d].kind == SL_PLUGIN_SINK)
                e->st[d].staged = 1;
    }
    e->down = down;
    return rc;
}

struct publish_ctx {
    struct engine *e;
    struct stage *sink;
    struct sl_quarantine_info info;
    struct sl_quarantine_txn *txn; /* the unit being filled, from the first record */
    int64_t unit;
    uint64_t kept;
};

static int any_staged(const struct engine *e)
{
    for (size_t d = 0; d < e->n; d++)
        if (e->st[d].staged)
            return 1;
    return 0;
}

/* The source of a unit: its name when the pipeline has one source, else "". */
static const char *single_source(const struct engine *e)
{
    return e->p->nsources == 1 ? e->source_names[0] : "";
}

/*
 * sl_publish_keep_fn for a run-level quarantine: one staged record into the unit; json ==
 * NULL ends the unit and commits it (plugin.h), before the sink commits its positions.
 */
static sl_rc publish_keep(void *ctx, const uint64_t id[2], const char *json, size_t len,
                          struct sl_error *err)
{
    struct publish_ctx *pc = ctx;
    sl_rc rc;
    if (!json) {
        if (!pc->txn)
            return SL_OK;
        rc = sl_quarantine_commit(pc->txn, &pc->unit, &pc->kept, err);
        pc->txn = NULL;
        return rc;
    }
    if (!pc->txn && (rc = sl_quarantine_begin(pc->e->quar, &pc->info, &pc->txn, err)))
        return rc;
    rc = sl_quarantine_add_json(pc->txn, id, json, len, err);
    if (rc) {
        sl_quarantine_abort(pc->txn);
        pc->txn = NULL;
    }
    return rc;
}

/*
 * After a --once run that staged: judge each run-level unit, then publish every staged
 * sink with the strongest verdict among the gates upstream of it. Returns SL_EGATE when
 * a gate with action fail failed (nothing staged was published), or a sink's error.
 */
static sl_rc finish_gates(struct engine *e, struct sl_error *err)
{
    size_t n = e->n;
    int any = 0;
    for (size_t d = 0; d < n; d++)
        any |= e->st[d].staged;
    if (!any)
        return SL_OK;
    enum sl_gate_action *verdict = sl_calloc(n, sizeof *verdict);
    struct sl_buf why, names;
    sl_buf_init(&why, 16384);
    sl_buf_init(&names, 4096);
    if (!verdict)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t c = 0; c < n; c++) {
        struct stage *st = &e->st[c];
        if (st->gates != GATES_RUN)
            continue;
        struct gate_log g = {.st = st, .b = NULL};
        sl_buf_init(&g.why, 8192);
        sl_buf_init(&g.names, 1024);
        verdict[c] = sl_quality_unit_judge(st->run_unit, sl_now_real_ns(), gate_result, &g);
        if (verdict[c] >= SL_GATE_QUARANTINE && g.why.len) {
            if (why.len)
                sl_buf_puts(&why, "; ");
            sl_buf_append(&why, g.why.data, g.why.len);
            if (names.len)
                sl_buf_puts(&names, ", ");
            sl_buf_append(&names, g.names.data, g.names.len);
        }
        sl_buf_fini(&g.why);
        sl_buf_fini(&g.names);
    }
    const char *why_text = buf_text(&why), *names_text = buf_text(&names);
    sl_rc rc = SL_OK;
    int failed = 0;
    for (size_t d = 0; d < n; d++) {
        struct stage *sk = &e->st[d];
        if (!sk->staged)
            continue;
        enum sl_gate_action worst = SL_GATE_PASS;
        for (size_t c = 0; c < n; c++) {
            if (e->st[c].gates != GATES_RUN || verdict[c] <= worst)
                continue;
            /* Is the sink downstream of c? Walk its inputs back. */
            if (e->down[c * n + d])
                worst = verdict[c];
        }
        int how = worst == SL_GATE_FAIL         ? SL_PUBLISH_DISCARD
                  : worst == SL_GATE_QUARANTINE ? SL_PUBLISH_QUARANTINE
                                                : SL_PUBLISH_ACCEPT;
        failed |= worst == SL_GATE_FAIL;
        struct publish_ctx pc = {.e = e, .sink = sk};
        pc.info = (struct sl_quarantine_info){.gates = names_text,
                                              .stage = sk->comp->name,
                                              .source = single_source(e),
                                              .reason = why_text};
        struct sl_error perr;
        sl_error_clear(&perr);
        sl_rc prc = sk->comp->plugin->publish(sk->state, how, publish_keep, &pc, &perr);
        sl_quarantine_abort(pc.txn); /* only when the sink stopped before the end */
        if (prc == SL_OK && how == SL_PUBLISH_QUARANTINE) {
            /* Counted as written while staged; they went to the quarantine instead. */
            uint64_t out = atomic_load(&sk->rec_out);
            atomic_store(&sk->rec_out, out >= pc.kept ? out - pc.kept : 0);
            atomic_fetch_add(&sk->quarantined, pc.kept);
            sl_warn(sk->comp->name, "quarantined the run's %llu records as unit %lld",
                    (unsigned long long)pc.kept, (long long)pc.unit);
        }
        if (prc && !rc) {
            rc = prc;
            *err = perr;
            sl_error_prefix(err, "sink %s: cannot publish the run: ", sk->comp->name);
        }
        sl_info(
            sk->comp->name, "%s",
            how == SL_PUBLISH_ACCEPT ? "the staged run is published (no quality gate failed)"
            : how == SL_PUBLISH_DISCARD
                ? "a quality gate failed: nothing of this run was published"
                : "a quality gate quarantined the run: its records are in the quarantine store");
    }
    if (!rc && failed) {
        rc = sl_error_set(err, SL_EGATE,
                          "quality gate failed over the whole run: %s; nothing of the run was "
                          "published",
                          why_text);
    }
    sl_buf_fini(&why);
    sl_buf_fini(&names);
    sl_free(verdict);
    return rc;
}

/*
 * sl_plugin_ctx.committed_lookup: the lowest position the sinks fed by source `src`
 * committed under checkpoint name key (a source's per-partition name), NULL when one of
 * them has none. Each sink is asked under its call_mu, between two of its commits.
 */
struct lookup_handle {
    struct engine *e;
    uint32_t source;
};

static sl_rc committed_lookup(void *handle, const char *key, char **position, struct sl_error *err)
{
    struct lookup_handle *h = handle;
    struct engine *e = h->e;
    struct stage *src = &e->st[h->source];
    const struct sl_plugin *pl = src->comp->plugin;
    char *lowest = NULL;
    int missing = 0;
    *position = NULL;
    for (size_t i = 0; i < e->n; i++) {
        struct stage *st = &e->st[i];
        if (st->comp->kind != SL_PLUGIN_SINK || !st->need || !st->need[h->source])
            continue;
        char *pos = NULL;
        sl_rc rc = SL_OK;
        if (st->comp->plugin->committed) {
            pthread_mutex_lock(&st->call_mu);
            rc = st->comp->plugin->committed(st->state, key, &pos, err);
            pthread_mutex_unlock(&st->call_mu);
        }
        if (rc) {
            sl_free(lowest);
            return sl_error_prefix(
                err, "sink %s: cannot read its committed position for %s: ", st->comp->name, key);
        }
        if (!pos) {
            missing = 1;
            continue;
        }
        if (!lowest || (pl->position_cmp && pl->position_cmp(src->state, pos, lowest) < 0)) {
            sl_free(lowest);
            lowest = pos;
        } else {
            sl_free(pos);
        }
    }
    if (missing) {
        sl_free(lowest);
        lowest = NULL;
    }
    *position = lowest;
    return SL_OK;
}

struct init_attempt {
    const struct sl_plugin *pl;
    const struct sl_plugin_ctx *ctx;
    void **state;
};

static sl_rc sink_init_attempt(void *c, uint64_t *retry_after_ms, struct sl_error *err)
{
    struct init_attempt *a = c;
    *retry_after_ms = 0;
    return a->pl->init(a->ctx, a->state, err);
}

static sl_rc init_plugins(struct engine *e, struct sl_error *err)
{
    struct sl_pipeline *p = e->p;
    uint32_t source_index = 0;
    for (size_t i = 0; i < p->ncomp; i++) {
        struct stage *st = &e->st[i];
        struct sl_plugin_ctx ctx = {
            .pipeline = p->name,
            .name = st->comp->name,
            .doc = p->doc,
            .node = st->comp->node,
            .state_dir = p->state_dir,
            .once = e->opts->once,
            .exactly_once = p->exactly_once,
            .index = st->comp->kind == SL_PLUGIN_SOURCE ? source_index++ : 0,
            .limits = &p->batch,
            .max_depth = p->max_depth,
            .source_names = e->source_names,
            .nsources = p->nsources,
            .staged = st->staged,
            .committed_lookup = committed_lookup,
            .lookup_handle =
                st->comp->kind == SL_PLUGIN_SOURCE ? &e->lookups[source_index - 1] : NULL,
        };
        if (st->comp->kind == SL_PLUGIN_SOURCE) {
            e->lookups[source_index - 1].e = e;
            e->lookups[source_index - 1].source = source_index - 1;
        }
        if (st->comp->preset_state) {
            st->state = st->comp->preset_state;
            st->comp->preset_state = NULL; /* the stage owns it now */
            st->inited = 1;
            continue;
        }
        sl_error_clear(err);
        sl_rc rc;
        if (st->comp->kind == SL_PLUGIN_SINK && st->brk_inited) {
            /*
             * A sink whose dependency is down at start-up (SL_RETRY from init) is waited
             * for under its retry policy and breaker, like a failing batch; a stop request
             * ends the wait.
             */
            struct init_attempt ia = {st->comp->plugin, &ctx, &st->state};
            st->brk.stop_on_request = 1;
            rc = sl__breaker_run(&st->brk, sink_init_attempt, &ia, &e->aborted, err);
            st->brk.stop_on_request = 0;
        } else {
            rc = st->comp->plugin->init(&ctx, &st->state, err);
        }
        if (rc) {
            if (!err->msg[0])
                sl_error_set(err, rc, "%s", sl_strerror(rc));
            return sl_error_prefix(err, "%s %s: ", sl_plugin_kind_name(st->comp->kind),
                                   st->comp->name);
        }
        st->inited = 1;
    }
    return SL_OK;
}

/* A stage's counters as they are now. */
static void stage_stats(struct stage *st, struct sl_stage_stats *s)
{
    memset(s, 0, sizeof *s);
    s->name = st->comp->name;
    s->kind = st->comp->kind;
    s->plugin = st->comp->plugin->name;
    s->batches = atomic_load(&st->batches);
    s->records_in = atomic_load(&st->rec_in);
    s->records_out = atomic_load(&st->rec_out);
    s->dropped = atomic_load(&st->dropped);
    s->rejected = atomic_load(&st->rejected);
    s->bytes_in = atomic_load(&st->bytes_in);
    s->bytes_out = atomic_load(&st->bytes_out);
    s->skipped = atomic_load(&st->skipped);
    s->dlq = atomic_load(&st->dlq);
    s->quarantined = atomic_load(&st->quarantined);
    s->empty = atomic_load(&st->empty);
    s->gate_warns = atomic_load(&st->gate_warns);
    if (st->brk_inited) {
        s->retries = atomic_load(&st->brk.retries);
        s->breaker_opens = atomic_load(&st->brk.opens);
        s->breaker = sl__breaker_state_name(st->brk.state);
    }
    if (st->comp->kind == SL_PLUGIN_SOURCE) {
        uint64_t gone = s->rejected + s->quarantined;
        s->records_out = s->records_in >= gone ? s->records_in - gone : 0;
    }
}

sl_rc sl_engine_live(sl_engine_live_fn fn, void *ctx)
{
    pthread_mutex_lock(&live_mu);
    struct engine *e = live_engine;
    if (!e) {
        pthread_mutex_unlock(&live_mu);
        return SL_ENOENT;
    }
    for (size_t i = 0; i < e->n; i++) {
        struct stage *st = &e->st[i];
        struct sl_stage_stats s;
        struct sl_stage_live l;
        memset(&l, 0, sizeof l);
        stage_stats(st, &s);
        if (st->has_in) {
            pthread_mutex_lock(&st->in.mu);
            l.queue_batches = st->in.count;
            l.queue_bytes = st->in.bytes;
            l.queue_capacity = st->in.cap;
            l.queue_max_bytes = st->in.max_bytes;
            pthread_mutex_unlock(&st->in.mu);
        }
        uint64_t cum = 0;
        for (size_t k = 0; k <= SL_LATENCY_BUCKETS; k++) {
            cum += atomic_load(&st->lat[k]);
            l.latency_buckets[k] = cum;
        }
        l.latency_sum_s = (double)atomic_load(&st->lat_sum_us) / 1e6;
        l.last_commit_ns = atomic_load(&st->last_commit_ns);
        l.last_commit_ingest_ns = atomic_load(&st->last_commit_ingest_ns);
        l.breaker_state = st->brk_inited ? st->brk.state : 0;
        if (st->comp->kind == SL_PLUGIN_SOURCE && st->comp->plugin->wal_usage) {
            l.has_wal = 1;
            st->comp->plugin->wal_usage(st->state, &l.wal_bytes, &l.wal_segments);
        }
        fn(ctx, &s, &l);
    }
    pthread_mutex_unlock(&live_mu);
    return SL_OK;
}

sl_rc sl_engine_checkpoints(sl_engine_checkpoint_fn fn, void *ctx)
{
    pthread_mutex_lock(&live_mu);
    struct engine *e = live_engine;
    if (!e) {
        pthread_mutex_unlock(&live_mu);
        return SL_ENOENT;
    }
    sl_rc rc = SL_OK;
    for (size_t i = 0; i < e->n && rc == SL_OK; i++) {
        struct stage *st = &e->st[i];
        if (st->comp->kind != SL_PLUGIN_SINK || !st->ckpt || !st->comp->plugin->committed)
            continue;
        for (size_t s = 0; s < e->p->nsources && rc == SL_OK; s++) {
            struct stage *src = &e->st[s];
            const struct sl_plugin *pl = src->comp->plugin;
            if (!st->need[s] || pl->partitioned)
                continue;
            struct sl_checkpoint_live c;
            memset(&c, 0, sizeof c);
            c.sink = st->comp->name;
            c.sink_plugin = st->comp->plugin->name;
            c.source = src->comp->name;
            c.source_plugin = pl->name;
            c.lag_unit = pl->lag_unit ? pl->lag_unit : "bytes";
            char *pos = NULL;
            pthread_mutex_lock(&st->ckpt_mu);
            if (st->ckpt[s] && !(pos = sl_strdup(st->ckpt[s])))
                rc = SL_ENOMEM;
            c.commit_ns = st->ckpt_ns[s];
            pthread_mutex_unlock(&st->ckpt_mu);
            if (rc)
                break;
            c.position = pos;
            c.segment = UINT64_MAX; /* left alone by sources without segments */
            if (pos && pl->position_number)
                c.has_number = pl->position_number(src->state, pos, &c.number, &c.segment);
            c.has_segment = c.has_number && c.segment != UINT64_MAX;
            if (!c.has_segment)
                c.segment = 0;
            if (pl->lag) {
                struct sl_error lerr;
                sl_error_clear(&lerr);
                c.has_lag = pl->lag(src->state, pos, &c.lag, &lerr) == SL_OK;
            }
            fn(ctx, &c);
            sl_free(pos);
        }
    }
    pthread_mutex_unlock(&live_mu);
    return rc;
}

int sl_engine_memory_full(void)
{
    uint64_t limit = atomic_load(&memory_limit);
    return limit && sl_arena_live_bytes() > limit && sl_batches_in_flight() > 0;
}

int sl_engine_ready(void)
{
    return atomic_load(&live_ready);
}

static void fill_report(struct engine *e, struct sl_run_report *rep, double elapsed)
{
    rep->nstages = e->n;
    rep->stages = sl_calloc(e->n ? e->n : 1, sizeof *rep->stages);
    rep->elapsed_s = elapsed;
    rep->input_bytes = 0;
    rep->stopped_by_signal = sl_engine_stopping();
    if (!rep->stages) {
        rep->nstages = 0;
        return;
    }
    for (size_t i = 0; i < e->n; i++) {
        stage_stats(&e->st[i], &rep->stages[i]);
        if (rep->stages[i].kind == SL_PLUGIN_SOURCE)
            rep->input_bytes += rep->stages[i].bytes_in;
    }
}

void sl_run_report_fini(struct sl_run_report *rep)
{
    if (!rep)
        return;
    sl_free(rep->stages);
    rep->stages = NULL;
    rep->nstages = 0;
}

static void engine_fini(struct engine *e)
{
    for (size_t i = 0; i < e->n; i++) {
        struct stage *st = &e->st[i];
        if (st->inited && st->comp->plugin->close)
            st->comp->plugin->close(st->state);
        if (st->has_in)
            sl__queue_fini(&st->in);
        for (size_t o = 0; o < st->nports; o++)
            sl_free(st->ports ? st->ports[o].to : NULL);
        sl_free(st->ports);
        sl_free(st->threads);
        for (size_t k = 0; st->resume && k < e->p->nsources; k++)
            sl_free(st->resume[k]);
        sl_free(st->resume);
        sl_free(st->need);
        sl_free(st->have);
        sl_free(st->next_seq);
        sl_free(st->durable);
        sl_free(st->wait);
        for (size_t k = 0; st->ckpt && k < e->p->nsources; k++)
            sl_free(st->ckpt[k]);
        for (size_t k = 0; st->done_pos && k < e->p->nsources; k++)
            sl_free(st->done_pos[k]);
        sl_free(st->ckpt);
        sl_free(st->ckpt_ns);
        sl_free(st->done_pos);
        sl_quality_unit_destroy(st->run_unit);
        if (st->brk_inited)
            sl__breaker_fini(&st->brk);
        while (st->rel_head) {
            struct relpos *r = st->rel_head;
            st->rel_head = r->next;
            sl_free(r);
        }
        if (st->eng) {
            pthread_mutex_destroy(&st->unit_mu);
            pthread_mutex_destroy(&st->rel_mu);
            pthread_mutex_destroy(&st->ckpt_mu);
            pthread_mutex_destroy(&st->call_mu);
        }
    }
    sl_free(e->st);
    sl_free(e->source_names);
    sl_free(e->lookups);
    sl_free(e->down);
    sl_dlq_close(e->dlq);
    sl_quarantine_close(e->quar);
    pthread_mutex_destroy(&e->err_mu);
}

sl_rc sl_engine_run(struct sl_pipeline *p, const struct sl_run_opts *o, struct sl_run_report *rep,
                    struct sl_error *err)
{
    struct sl_run_opts defaults = {0};
    struct engine e;
    memset(&e, 0, sizeof e);
    e.p = p;
    e.opts = o ? o : &defaults;
    e.n = p->ncomp;
    pthread_mutex_init(&e.err_mu, NULL);
    sl_error_clear(&e.first_err);
    if (rep)
        memset(rep, 0, sizeof *rep);

    sl_rc rc = SL_OK;
    struct worker_arg *args = NULL;
    size_t nargs = 0;
    e.st = sl_calloc(e.n ? e.n : 1, sizeof *e.st);
    e.source_names = sl_calloc(p->nsources ? p->nsources : 1, sizeof *e.source_names);
    e.lookups = sl_calloc(p->nsources ? p->nsources : 1, sizeof *e.lookups);
    if (!e.st || !e.source_names || !e.lookups) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < p->nsources; i++)
        e.source_names[i] = p->comp[i].name;
    rc = build_graph(&e, err);
    if (rc)
        goto out;
    if (p->dlq_path) {
        rc = sl_dlq_open(p->dlq_path, 1, p->exactly_once, &e.dlq, err);
        if (rc) {
            sl_error_prefix(err, "cannot open the dead-letter queue: ");
            goto out;
        }
    }
    if (p->quality && sl_quality_count(p->quality) && p->quarantine_path) {
        rc = sl_quarantine_open(p->quarantine_path, 1, p->exactly_once, &e.quar, err);
        if (rc) {
            sl_error_prefix(err, "cannot open the quarantine store: ");
            goto out;
        }
    }
    rc = plan_gates(&e, err);
    if (rc)
        goto out;
    rc = init_plugins(&e, err);
    if (rc)
        goto out;
    rc = resume_sources(&e, err);
    if (rc)
        goto out;

    size_t total = 0;
    for (size_t i = 0; i < e.n; i++) {
        struct stage *st = &e.st[i];
        st->nthreads =
            st->comp->kind == SL_PLUGIN_TRANSFORM && st->comp->workers > 1 ? st->comp->workers : 1;
        total += st->nthreads;
    }
    args = sl_calloc(total ? total : 1, sizeof *args);
    if (!args) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }

    uint64_t t0 = sl_now_mono_ns();
    /* Start consumers before producers (sinks last in comp[], so walk backwards). */
    for (size_t ri = e.n; ri-- > 0;) {
        struct stage *st = &e.st[ri];
        st->threads = sl_calloc(st->nthreads, sizeof *st->threads);
        if (!st->threads) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
            engine_fail(&e, st, rc, err);
            st->nthreads = 0;
            close_outputs(st);
            continue;
        }
        atomic_store(&st->running, st->nthreads);
        void *(*fn)(void *) = st->comp->kind == SL_PLUGIN_SOURCE ? source_main
                              : st->comp->kind == SL_PLUGIN_SINK ? sink_main
                                                                 : transform_main;
        for (unsigned k = 0; k < st->nthreads; k++) {
            struct worker_arg *wa = &args[nargs++];
            wa->st = st;
            wa->index = k;
            int perr = pthread_create(&st->threads[k], NULL, fn, wa);
            if (perr) {
                sl_error_sys(err, SL_ENOMEM, perr, "cannot start a thread for %s", st->comp->name);
                engine_fail(&e, st, SL_ENOMEM, err);
                /* Workers k.. never started: account for them as finished. */
                unsigned missing = st->nthreads - k;
                st->nthreads = k;
                if (st->comp->kind == SL_PLUGIN_TRANSFORM) {
                    if (atomic_fetch_sub(&st->running, missing) == missing)
                        close_outputs(st);
                } else if (st->comp->kind == SL_PLUGIN_SOURCE) {
                    close_outputs(st);
                }
                break;
            }
        }
    }
    pthread_mutex_lock(&live_mu);
    live_engine = &e;
    pthread_mutex_unlock(&live_mu);
    atomic_store(&memory_limit, p->memory_limit);
    atomic_store(&live_ready, 1);
    for (size_t i = 0; i < e.n; i++)
        for (unsigned k = 0; k < e.st[i].nthreads; k++)
            pthread_join(e.st[i].threads[k], NULL);
    if (e.first_rc) {
        rc = e.first_rc;
        if (err)
            *err = e.first_err;
    } else if (sl_engine_stopping() && any_staged(&e)) {
        for (size_t i = 0; i < e.n; i++)
            if (e.st[i].staged)
                sl_warn(e.st[i].comp->name,
                        "the run was stopped before its end: the staged records are not "
                        "published; the next run starts this unit over");
    } else if (any_staged(&e)) {
        rc = finish_gates(&e, err);
    }
    double elapsed = (double)(sl_now_mono_ns() - t0) / 1e9;
    if (rep) {
        fill_report(&e, rep, elapsed);
        rep->gates_failed = rc == SL_EGATE;
    }

out:
    atomic_store(&live_ready, 0);
    atomic_store(&memory_limit, 0);
    pthread_mutex_lock(&live_mu);
    if (live_engine == &e)
        live_engine = NULL;
    pthread_mutex_unlock(&live_mu);
    sl_free(args);
    engine_fini(&e);
    return rc;
}
