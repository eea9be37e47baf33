/*
 * test_engine.c - the runtime with fake plugins: ordering, conservation, fan-out, routing,
 * parallel workers, backpressure, fatal errors and stop requests.
 *
 * The pipeline structs are built by hand (no YAML) so the engine is tested alone.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sluice/alloc.h"
#include "sluice/engine.h"
#include "sluice/pipeline.h"

#include "test.h"

/* ---- fake source: records {"i":k} for k in [0, total), per batch `per` records ---- */

struct gen {
    long total, per, next;
    int forever; /* ignore total: stop only on request */
    atomic_long emitted_batches;
};

static struct gen gen_cfg;

static sl_rc gen_init(const struct sl_plugin_ctx *ctx, void **state, struct sl_error *err)
{
    (void)ctx;
    (void)err;
    gen_cfg.next = 0;
    atomic_store(&gen_cfg.emitted_batches, 0);
    *state = &gen_cfg;
    return SL_OK;
}

static sl_rc gen_read(void *state, struct sl_batch *b, struct sl_error *err)
{
    struct gen *g = state;
    (void)err;
    for (long k = 0; k < g->per && (g->forever || g->next < g->total); k++) {
        struct sl_record *r = sl_batch_add(b);
        if (!r)
            return SL_ENOMEM;
        char *t = sl_arena_printf(&b->arena, "{\"i\":%ld}", g->next);
        r->text = r->orig = t;
        r->text_len = r->orig_len = (uint32_t)strlen(t);
        r->line = (uint32_t)g->next + 1;
        g->next++;
        b->bytes += r->text_len;
    }
    b->origin = "gen";
    b->position = sl_arena_printf(&b->arena, "%ld", g->next);
    atomic_fetch_add(&g->emitted_batches, 1);
    if (!g->forever && g->next >= g->total)
        return SL_EOF;
    return SL_OK;
}

/* Positions are the decimal index of the next record to read. */
static int gen_cmp(void *state, const char *a, const char *b)
{
    (void)state;
    long x = atol(a), y = atol(b);
    return x < y ? -1 : x > y;
}

static int gen_covers(void *state, const char *position, const struct sl_batch *b, uint32_t i)
{
    (void)state;
    return (long)b->recs[i].line - 1 < atol(position);
}

static sl_rc gen_restore(void *state, const char *position, struct sl_error *err)
{
    (void)err;
    ((struct gen *)state)->next = atol(position);
    return SL_OK;
}

/* release(): the positions every sink has passed, with what the sinks held at the time. */
struct released {
    long pos[256];
    int n;
    int premature; /* a release came before some sink had the records it covers */
};
static struct released rel_log;
static long sink_count(int k);

static void gen_release(void *state, const char *position)
{
    (void)state;
    long p = atol(position);
    /* sink0 takes every record, sink1 the even ones (test_release_after_every_sink). */
    if (sink_count(0) < p || sink_count(1) < p / 2)
        rel_log.premature++;
    if (rel_log.n < 256)
        rel_log.pos[rel_log.n++] = p;
}

static const struct sl_plugin fake_source_rel = {.kind = SL_PLUGIN_SOURCE,
                                                 .name = "gen",
                                                 .init = gen_init,
                                                 .read = gen_read,
                                                 .restore = gen_restore,
                                                 .position_cmp = gen_cmp,
                                                 .covers = gen_covers,
                                                 .release = gen_release};

static const struct sl_plugin fake_source = {.kind = SL_PLUGIN_SOURCE,
                                             .name = "gen",
                                             .init = gen_init,
                                             .read = gen_read,
                                             .restore = gen_restore,
                                             .position_cmp = gen_cmp,
                                             .covers = gen_covers};

/* ---- fake transform: drop odd i; jitter to scramble order across workers ---- */

static long get_i(struct sl_batch *b, struct sl_record *r)
{
    struct sl_value v;
    if (!sl_record_get_key(r, "i", 1, &b->arena, &v) || v.type != SL_V_NUMBER)
        return -1;
    return (long)v.u.num.d;
}

static sl_rc noop_init(const struct sl_plugin_ctx *ctx, void **state, struct sl_error *err)
{
    (void)ctx;
    (void)err;
    *state = NULL;
    return SL_OK;
}

static sl_rc odd_process(void *state, struct sl_batch *b, struct sl_worker *w, struct sl_error *err)
{
    (void)state;
    (void)err;
    (void)w;
    if (rand() % 3 == 0) {
        struct timespec ts = {0, (rand() % 200) * 1000};
        nanosleep(&ts, NULL);
    }
    for (uint32_t i = 0; i < b->n; i++) {
        struct sl_record *r = &b->recs[i];
        if (r->flags & (SL_REC_DROPPED | SL_REC_BAD))
            continue;
        long v = get_i(b, r);
        if (v % 2)
            r->flags |= SL_REC_DROPPED;
    }
    return SL_OK;
}

static const struct sl_plugin fake_odd = {
    .kind = SL_PLUGIN_TRANSFORM, .name = "odd", .init = noop_init, .process = odd_process};

/* ---- fake route: output 0 when i % 3 == 0, output 1 when i % 3 == 1, else unmatched ---- */

static sl_rc route_process(void *state, struct sl_batch *b, struct sl_worker *w,
                           struct sl_error *err)
{
    (void)state;
    (void)err;
    (void)w;
    for (uint32_t i = 0; i < b->n; i++) {
        struct sl_record *r = &b->recs[i];
        if (r->flags & (SL_REC_DROPPED | SL_REC_BAD))
            continue;
        long v = get_i(b, r);
        b->outmask[i] = (uint64_t)1 << (v % 3 == 0 ? 0 : v % 3 == 1 ? 1 : 2);
    }
    return SL_OK;
}

static const struct sl_plugin fake_route = {.kind = SL_PLUGIN_TRANSFORM,
                                            .name = "route3",
                                            .init = noop_init,
                                            .process = route_process,
                                            .outputs_option = "route"};

/* ---- fake sink: collects i values in order; checks per-source seq order ---- */

#define MAX_SEEN 400000
struct collect {
    long seen[MAX_SEEN];
    long n;
    uint64_t last_seq;
    int seq_errors;
    int slow_us;
    int fail_at_batch; /* 0: never */
    long batches;
    long max_lag; /* most batches the source was ahead of this sink */
};

static struct collect sinks[3];

static sl_rc collect_init(const struct sl_plugin_ctx *ctx, void **state, struct sl_error *err)
{
    (void)err;
    int k = ctx->name[strlen(ctx->name) - 1] - '0';
    *state = &sinks[k];
    return SL_OK;
}

static sl_rc collect_process(void *state, struct sl_batch *b, struct sl_worker *w,
                             struct sl_error *err)
{
    struct collect *c = state;
    (void)w;
    c->batches++;
    if (c->fail_at_batch && c->batches == c->fail_at_batch)
        return sl_error_set(err, SL_EIO, "disk on fire at batch %ld", c->batches);
    if (b->seq < c->last_seq)
        c->seq_errors++;
    c->last_seq = b->seq;
    long lag = atomic_load(&gen_cfg.emitted_batches) - (long)b->seq;
    if (lag > c->max_lag)
        c->max_lag = lag;
    for (uint32_t i = 0; i < b->n; i++) {
        struct sl_record *r = &b->recs[i];
        if (r->flags & (SL_REC_DROPPED | SL_REC_BAD))
            continue;
        if (c->n < MAX_SEEN)
            c->seen[c->n++] = get_i(b, r);
    }
    if (c->slow_us) {
        struct timespec ts = {0, c->slow_us * 1000L};
        nanosleep(&ts, NULL);
    }
    return SL_OK;
}

static const char *committed_pos[3]; /* what each fake sink reports at start */

static sl_rc collect_committed(void *state, const char *source, char **position,
                               struct sl_error *err)
{
    (void)source;
    (void)err;
    const char *p = committed_pos[(struct collect *)state - sinks];
    *position = p ? sl_strdup(p) : NULL;
    return p && !*position ? SL_ENOMEM : SL_OK;
}

static const struct sl_plugin fake_sink = {.kind = SL_PLUGIN_SINK,
                                           .name = "collect",
                                           .init = collect_init,
                                           .process = collect_process,
                                           .committed = collect_committed};

/* ---- pipeline construction ---- */

struct graph {
    struct sl_pipeline p;
    struct sl_component comp[8];
    struct sl_input in[8][2];
};

static void add(struct graph *g, const char *name, const struct sl_plugin *pl, unsigned workers,
                int nin, const uint32_t *from, const uint32_t *out)
{
    struct sl_component *c = &g->comp[g->p.ncomp];
    memset(c, 0, sizeof *c);
    c->name = name;
    c->kind = pl->kind;
    c->plugin = pl;
    c->workers = workers;
    c->noutputs = 1;
    for (int k = 0; k < nin; k++) {
        g->in[g->p.ncomp][k].comp = from[k];
        g->in[g->p.ncomp][k].output = out ? out[k] : 0;
        g->in[g->p.ncomp][k].text = "x";
    }
    c->inputs = nin ? g->in[g->p.ncomp] : NULL;
    c->ninputs = (size_t)nin;
    if (pl->kind == SL_PLUGIN_SOURCE)
        g->p.nsources++;
    g->p.ncomp++;
}

static void graph_init(struct graph *g)
{
    memset(g, 0, sizeof *g);
    g->p.name = "t";
    g->p.state_dir = "/tmp";
    g->p.batch.max_records = 100;
    g->p.batch.max_bytes = 1 << 20;
    g->p.queue_max_batches = 2;
    g->p.queue_max_bytes = 1 << 20;
    g->p.max_depth = 128;
    g->p.comp = g->comp;
    memset(sinks, 0, sizeof sinks);
    memset(committed_pos, 0, sizeof committed_pos);
}

static const struct sl_stage_stats *stat_of(const struct sl_run_report *rep, const char *name)
{
    for (size_t i = 0; i < rep->nstages; i++)
        if (strcmp(rep->stages[i].name, name) == 0)
            return &rep->stages[i];
    return NULL;
}

static long sink_count(int k)
{
    return sinks[k].n;
}

/* ---- tests ---- */

/*
 * A source with release() hears about a position only once both sinks (at different
 * speeds, one behind a filter) have it, in increasing order, ending with the last one.
 */
static void test_release_after_every_sink(void)
{
    struct graph g;
    graph_init(&g);
    memset(&rel_log, 0, sizeof rel_log);
    gen_cfg = (struct gen){.total = 5000, .per = 64};
    add(&g, "src", &fake_source_rel, 1, 0, NULL, NULL);
    add(&g, "odd", &fake_odd, 2, 1, (uint32_t[]){0}, NULL);
    add(&g, "sink0", &fake_sink, 1, 1, (uint32_t[]){0}, NULL);
    add(&g, "sink1", &fake_sink, 1, 1, (uint32_t[]){1}, NULL);
    sinks[1].slow_us = 100;
    struct sl_run_report rep;
    struct sl_error err;
    CHECK_INT(sl_engine_run(&g.p, &(struct sl_run_opts){.once = 1}, &rep, &err), SL_OK);
    REQUIRE(rel_log.n > 0);
    CHECK_INT(rel_log.premature, 0);
    int increasing = 1;
    for (int i = 1; i < rel_log.n; i++)
        increasing &= rel_log.pos[i] > rel_log.pos[i - 1];
    CHECK(increasing);
    CHECK_INT(rel_log.pos[rel_log.n - 1], 5000);
    sl_run_report_fini(&rep);
}

static void test_parallel_workers_keep_order(void)
{
    struct graph g;
    graph_init(&g);
    gen_cfg = (struct gen){.total = 20000, .per = 37};
    add(&g, "src", &fake_source, 1, 0, NULL, NULL);
    add(&g, "odd", &fake_odd, 3, 1, (uint32_t[]){0}, NULL);
    add(&g, "sink0", &fake_sink, 1, 1, (uint32_t[]){1}, NULL);
    struct sl_run_report rep;
    struct sl_error err;
    sl_rc rc = sl_engine_run(&g.p, &(struct sl_run_opts){.once = 1}, &rep, &err);
    CHECK_INT(rc, SL_OK);
    CHECK_INT(sinks[0].seq_errors, 0);
    REQUIRE(sinks[0].n == 10000);
    int in_order = 1;
    for (long k = 0; k < 10000; k++)
        if (sinks[0].seen[k] != 2 * k)
            in_order = 0;
    CHECK(in_order);
    const struct sl_stage_stats *s = stat_of(&rep, "src"), *t = stat_of(&rep, "odd"),
                                *k = stat_of(&rep, "sink0");
    REQUIRE(s && t && k);
    CHECK_INT(s->records_in, 20000);
    CHECK_INT(t->records_in, 20000);
    CHECK_INT(t->dropped, 10000);
    CHECK_INT(t->records_out, 10000);
    CHECK_INT(k->records_out, 10000);
    /* Conservation: in = out + filtered + rejected. */
    CHECK_INT(s->records_in, k->records_out + t->dropped + s->rejected + t->rejected);
    sl_run_report_fini(&rep);
}

static void test_fan_out_both_sinks_get_everything(void)
{
    struct graph g;
    graph_init(&g);
    gen_cfg = (struct gen){.total = 5000, .per = 64};
    add(&g, "src", &fake_source, 1, 0, NULL, NULL);
    add(&g, "odd", &fake_odd, 2, 1, (uint32_t[]){0}, NULL);
    add(&g, "sink0", &fake_sink, 1, 1, (uint32_t[]){0}, NULL); /* raw source */
    add(&g, "sink1", &fake_sink, 1, 1, (uint32_t[]){1}, NULL); /* filtered */
    sinks[0].slow_us = 50;                                     /* different speeds */
    struct sl_run_report rep;
    struct sl_error err;
    sl_rc rc = sl_engine_run(&g.p, &(struct sl_run_opts){.once = 1}, &rep, &err);
    CHECK_INT(rc, SL_OK);
    REQUIRE(sinks[0].n == 5000);
    REQUIRE(sinks[1].n == 2500);
    int ok0 = 1, ok1 = 1;
    for (long k = 0; k < 5000; k++)
        ok0 &= sinks[0].seen[k] == k;
    for (long k = 0; k < 2500; k++)
        ok1 &= sinks[1].seen[k] == 2 * k;
    CHECK(ok0);
    CHECK(ok1);
    CHECK_INT(sinks[0].seq_errors + sinks[1].seq_errors, 0);
    sl_run_report_fini(&rep);
}

static void test_route_split_and_unmatched_dropped(void)
{
    struct graph g;
    graph_init(&g);
    gen_cfg = (struct gen){.total = 3000, .per = 50};
    add(&g, "src", &fake_source, 1, 0, NULL, NULL);
    add(&g, "r", &fake_route, 2, 1, (uint32_t[]){0}, NULL);
    g.comp[1].noutputs = 3; /* a, b, _unmatched */
    add(&g, "sink0", &fake_sink, 1, 1, (uint32_t[]){1}, (uint32_t[]){0});
    /* sink1 reads both a and _unmatched: two paths from the source */
    add(&g, "sink1", &fake_sink, 1, 2, (uint32_t[]){1, 1}, (uint32_t[]){0, 2});
    struct sl_run_report rep;
    struct sl_error err;
    sl_rc rc = sl_engine_run(&g.p, &(struct sl_run_opts){.once = 1}, &rep, &err);
    CHECK_INT(rc, SL_OK);
    CHECK_INT(sinks[0].n, 1000);
    CHECK_INT(sinks[1].n, 2000);
    int ok = 1;
    for (long k = 0; k < sinks[0].n; k++)
        ok &= sinks[0].seen[k] % 3 == 0;
    CHECK(ok);
    long c0 = 0, c2 = 0;
    for (long k = 0; k < sinks[1].n; k++) {
        c0 += sinks[1].seen[k] % 3 == 0;
        c2 += sinks[1].seen[k] % 3 == 2;
    }
    CHECK_INT(c0, 1000);
    CHECK_INT(c2, 1000);
    const struct sl_stage_stats *r = stat_of(&rep, "r");
    REQUIRE(r);
    CHECK_INT(r->dropped, 1000);     /* output b is read by nobody */
    CHECK_INT(r->records_out, 2000); /* once per consumed output (a, _unmatched) */
    CHECK_INT(sinks[0].seq_errors + sinks[1].seq_errors, 0);
    sl_run_report_fini(&rep);
}

static void test_backpressure_bounds_lag(void)
{
    struct graph g;
    graph_init(&g);
    gen_cfg = (struct gen){.total = 20000, .per = 10};
    add(&g, "src", &fake_source, 1, 0, NULL, NULL);
    add(&g, "odd", &fake_odd, 1, 1, (uint32_t[]){0}, NULL);
    add(&g, "sink0", &fake_sink, 1, 1, (uint32_t[]){1}, NULL);
    sinks[0].slow_us = 200;
    struct sl_run_report rep;
    struct sl_error err;
    sl_rc rc = sl_engine_run(&g.p, &(struct sl_run_opts){.once = 1}, &rep, &err);
    CHECK_INT(rc, SL_OK);
    CHECK_INT(sinks[0].n, 10000);
    /*
     * With 2-batch queues the source can be ahead of the sink by at most: 2 queued before
     * the transform, 1 in the transform, 2 queued before the sink, 1 being pushed, plus
     * the one the sink holds. Without backpressure it would be ~2000 ahead.
     */
    CHECK(sinks[0].max_lag <= 8);
    fprintf(stderr, "  max lag %ld batches\n", sinks[0].max_lag);
    sl_run_report_fini(&rep);
}

static void test_sink_failure_stops_everything(void)
{
    struct graph g;
    graph_init(&g);
    gen_cfg = (struct gen){.total = 100000, .per = 10};
    add(&g, "src", &fake_source, 1, 0, NULL, NULL);
    add(&g, "odd", &fake_odd, 2, 1, (uint32_t[]){0}, NULL);
    add(&g, "sink0", &fake_sink, 1, 1, (uint32_t[]){1}, NULL);
    sinks[0].fail_at_batch = 7;
    struct sl_run_report rep;
    struct sl_error err;
    sl_error_clear(&err);
    sl_rc rc = sl_engine_run(&g.p, &(struct sl_run_opts){.once = 1}, &rep, &err);
    CHECK_INT(rc, SL_EIO);
    CHECK(strstr(err.msg, "sink sink0: disk on fire at batch 7") != NULL);
    CHECK_INT(sinks[0].n, 6 * 5); /* 6 good batches of 5 even records */
    CHECK(gen_cfg.next < 100000); /* the source stopped early */
    sl_run_report_fini(&rep);
}

static int seen_range(const struct collect *c, long from, long to)
{
    if (c->n != to - from)
        return 0;
    for (long k = 0; k < c->n; k++)
        if (c->seen[k] != from + k)
            return 0;
    return 1;
}

static void test_resume_from_lowest_and_skip(void)
{
    struct graph g;
    graph_init(&g);
    gen_cfg = (struct gen){.total = 1000, .per = 64}; /* boundaries differ from 300 and 700 */
    add(&g, "src", &fake_source, 1, 0, NULL, NULL);
    add(&g, "sink0", &fake_sink, 1, 1, (uint32_t[]){0}, NULL);
    add(&g, "sink1", &fake_sink, 1, 1, (uint32_t[]){0}, NULL);
    committed_pos[0] = "300";
    committed_pos[1] = "700";
    struct sl_run_report rep;
    struct sl_error err;
    sl_rc rc = sl_engine_run(&g.p, &(struct sl_run_opts){.once = 1}, &rep, &err);
    CHECK_INT(rc, SL_OK);
    /* The source resumed at the lowest position; each sink got exactly what it lacked. */
    CHECK_INT(stat_of(&rep, "src")->records_in, 700);
    CHECK(seen_range(&sinks[0], 300, 1000));
    CHECK(seen_range(&sinks[1], 700, 1000));
    CHECK_INT(stat_of(&rep, "sink0")->skipped, 0);
    CHECK_INT(stat_of(&rep, "sink1")->skipped, 400);
    CHECK_INT(stat_of(&rep, "sink1")->records_out, 300);
    sl_run_report_fini(&rep);
}

static void test_sink_without_checkpoint_restarts_source(void)
{
    struct graph g;
    graph_init(&g);
    gen_cfg = (struct gen){.total = 500, .per = 33};
    add(&g, "src", &fake_source, 1, 0, NULL, NULL);
    add(&g, "odd", &fake_odd, 2, 1, (uint32_t[]){0}, NULL);
    add(&g, "sink0", &fake_sink, 1, 1, (uint32_t[]){1}, NULL);
    add(&g, "sink1", &fake_sink, 1, 1, (uint32_t[]){0}, NULL);
    committed_pos[0] = "250"; /* sink1 is new: no checkpoint */
    struct sl_run_report rep;
    struct sl_error err;
    sl_rc rc = sl_engine_run(&g.p, &(struct sl_run_opts){.once = 1}, &rep, &err);
    CHECK_INT(rc, SL_OK);
    CHECK_INT(stat_of(&rep, "src")->records_in, 500);
    CHECK(seen_range(&sinks[1], 0, 500));
    REQUIRE(sinks[0].n == 125); /* even records from 250 on */
    int ok = 1;
    for (long k = 0; k < 125; k++)
        ok &= sinks[0].seen[k] == 250 + 2 * k;
    CHECK(ok);
    CHECK_INT(stat_of(&rep, "sink0")->skipped, 125); /* the even ones below 250 */
    sl_run_report_fini(&rep);
}

static void *stopper(void *arg)
{
    (void)arg;
    while (atomic_load(&gen_cfg.emitted_batches) < 200) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    sl_engine_request_stop();
    return NULL;
}

/* Must run last: the stop request is process-wide and sticky. */
static void test_stop_request_drains(void)
{
    struct graph g;
    graph_init(&g);
    gen_cfg = (struct gen){.per = 10, .forever = 1};
    add(&g, "src", &fake_source, 1, 0, NULL, NULL);
    add(&g, "odd", &fake_odd, 2, 1, (uint32_t[]){0}, NULL);
    add(&g, "sink0", &fake_sink, 1, 1, (uint32_t[]){1}, NULL);
    pthread_t t;
    pthread_create(&t, NULL, stopper, NULL);
    struct sl_run_report rep;
    struct sl_error err;
    sl_rc rc = sl_engine_run(&g.p, &(struct sl_run_opts){0}, &rep, &err);
    pthread_join(t, NULL);
    CHECK_INT(rc, SL_OK);
    CHECK(rep.stopped_by_signal);
    /* Everything read was delivered: nothing in flight was lost. */
    CHECK_INT(sinks[0].n, gen_cfg.next / 2);
    CHECK(gen_cfg.next >= 2000);
    int ok = 1;
    for (long k = 0; k < sinks[0].n; k++)
        ok &= sinks[0].seen[k] == 2 * k;
    CHECK(ok);
    sl_run_report_fini(&rep);
}

int main(void)
{
    srand(1);
    RUN(test_parallel_workers_keep_order);
    RUN(test_fan_out_both_sinks_get_everything);
    RUN(test_route_split_and_unmatched_dropped);
    RUN(test_backpressure_bounds_lag);
    RUN(test_sink_failure_stops_everything);
    RUN(test_resume_from_lowest_and_skip);
    RUN(test_sink_without_checkpoint_restarts_source);
    RUN(test_release_after_every_sink);
    RUN(test_stop_request_drains); /* last: the stop request stays set */
    return TEST_DONE();
}
