/*
 * metrics.c - the Prometheus text exposition (format 0.0.4) that /metrics serves.
 *
 * A scrape takes one snapshot of every stage through sl_engine_live (which holds the
 * engine's live lock only while it copies counters), then writes the families one after
 * the other: each family's HELP and TYPE lines exactly once, followed by one sample per
 * stage it applies to. The format requires a family's samples to be contiguous, which is
 * why the snapshot is taken first and the text written second.
 *
 * Every per-stage series carries the labels pipeline, stage, kind (source, transform,
 * sink) and plugin. Label values are escaped as the format says (backslash, double quote
 * and newline); HELP text escapes backslash and newline. Floating-point values are written
 * in the shortest form that reads back to the same double, +Inf as "+Inf".
 *
 * Families that only mean something for sinks (retries, breaker, commit latency, lag)
 * have samples for sinks only; queue gauges only for stages with an input queue
 * (transforms and sinks); write-ahead log gauges only for sources that have one. A family
 * without samples still has its HELP and TYPE lines, so the set of families does not
 * depend on the shape of the pipeline.
 *
 * Checkpoints are per (sink, source) pair, labelled pipeline, sink and source, from a
 * second snapshot (sl_engine_checkpoints): the committed position as a label of an info
 * series, as a number where the source has one, when it was committed, and how much input
 * lies after it (the source's lag(), in bytes or messages: one family per unit).
 *
 * Threading: called from the admin server's thread; reads only the snapshot it takes.
 * Memory: the snapshot is allocated per scrape and freed before returning.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice/admin.h"
#include "sluice/alloc.h"
#include "sluice/engine.h"
#include "sluice/plugin.h"

/* One stage as seen by one scrape. name and plugin are cleared: labels holds them. */
struct snap {
    struct sl_stage_stats s;
    struct sl_stage_live l;
    char *labels; /* pipeline="..",stage="..",kind="..",plugin=".." (escaped) */
};

struct scrape {
    const char *pipeline;
    struct snap *st;
    size_t n, cap;
    sl_rc rc; /* first failure while collecting */
};

/* One (sink, source) checkpoint as seen by one scrape. */
struct ckpt {
    struct sl_checkpoint_live c; /* strings cleared: labels and position hold them */
    char *labels;                /* pipeline="..",sink="..",source=".." (escaped) */
    char *position;              /* escaped label value (cut at CKPT_POSITION_MAX), or NULL */
};

struct ckpt_scrape {
    const char *pipeline;
    struct ckpt *c;
    size_t n, cap;
    sl_rc rc;
};

/* Longer positions (a file source following many files) are cut, ending in "...". */
#define CKPT_POSITION_MAX 4096

/* Append v as a label value: \ -> \\, " -> \", newline -> \n. */
static sl_rc put_label_value(struct sl_buf *b, const char *v)
{
    sl_rc rc = SL_OK;
    for (const char *c = v ? v : ""; *c && !rc; c++) {
        if (*c == '\\')
            rc = sl_buf_puts(b, "\\\\");
        else if (*c == '"')
            rc = sl_buf_puts(b, "\\\"");
        else if (*c == '\n')
            rc = sl_buf_puts(b, "\\n");
        else
            rc = sl_buf_putc(b, *c);
    }
    return rc;
}

static sl_rc put_label(struct sl_buf *b, const char *name, const char *value, int first)
{
    sl_rc rc = first ? SL_OK : sl_buf_putc(b, ',');
    if (!rc)
        rc = sl_buf_printf(b, "%s=\"", name);
    if (!rc)
        rc = put_label_value(b, value);
    if (!rc)
        rc = sl_buf_putc(b, '"');
    return rc;
}

static void collect(void *ctx, const struct sl_stage_stats *s, const struct sl_stage_live *l)
{
    struct scrape *sc = ctx;
    if (sc->rc)
        return;
    if (sc->n == sc->cap) {
        size_t cap = sc->cap ? sc->cap * 2 : 16;
        struct snap *st = sl_malloc(cap * sizeof *st);
        if (!st) {
            sc->rc = SL_ENOMEM;
            return;
        }
        if (sc->n)
            memcpy(st, sc->st, sc->n * sizeof *st);
        sl_free(sc->st);
        sc->st = st;
        sc->cap = cap;
    }
    struct sl_buf lb;
    sl_buf_init(&lb, 4096);
    sl_rc rc = put_label(&lb, "pipeline", sc->pipeline, 1);
    if (!rc)
        rc = put_label(&lb, "stage", s->name, 0);
    if (!rc)
        rc = put_label(&lb, "kind", sl_plugin_kind_name(s->kind), 0);
    if (!rc)
        rc = put_label(&lb, "plugin", s->plugin, 0);
    if (!rc)
        rc = sl_buf_cstr(&lb);
    if (rc) {
        sl_buf_fini(&lb);
        sc->rc = rc;
        return;
    }
    struct snap *sn = &sc->st[sc->n++];
    sn->s = *s;
    sn->s.name = NULL;
    sn->s.plugin = NULL;
    sn->s.breaker = NULL;
    sn->l = *l;
    sn->labels = lb.data; /* taken: freed by scrape_fini */
}

static void collect_ckpt(void *ctx, const struct sl_checkpoint_live *c)
{
    struct ckpt_scrape *cs = ctx;
    if (cs->rc)
        return;
    if (cs->n == cs->cap) {
        size_t cap = cs->cap ? cs->cap * 2 : 8;
        struct ckpt *g = sl_malloc(cap * sizeof *g);
        if (!g) {
            cs->rc = SL_ENOMEM;
            return;
        }
        if (cs->n)
            memcpy(g, cs->c, cs->n * sizeof *g);
        sl_free(cs->c);
        cs->c = g;
        cs->cap = cap;
    }
    struct sl_buf lb, pb;
    sl_buf_init(&lb, 4096);
    sl_buf_init(&pb, 4 * CKPT_POSITION_MAX);
    sl_rc rc = put_label(&lb, "pipeline", cs->pipeline, 1);
    if (!rc)
        rc = put_label(&lb, "sink", c->sink, 0);
    if (!rc)
        rc = put_label(&lb, "source", c->source, 0);
    if (!rc)
        rc = sl_buf_cstr(&lb);
    if (!rc && c->position) {
        size_t len = strlen(c->position);
        if (len > CKPT_POSITION_MAX) {
            char *cut = sl_malloc(CKPT_POSITION_MAX + 4);
            if (!cut) {
                rc = SL_ENOMEM;
            } else {
                memcpy(cut, c->position, CKPT_POSITION_MAX);
                memcpy(cut + CKPT_POSITION_MAX, "...", 4);
                rc = put_label_value(&pb, cut);
                sl_free(cut);
            }
        } else {
            rc = put_label_value(&pb, c->position);
        }
        if (!rc)
            rc = sl_buf_cstr(&pb);
    }
    if (rc) {
        sl_buf_fini(&lb);
        sl_buf_fini(&pb);
        cs->rc = rc;
        return;
    }
    struct ckpt *k = &cs->c[cs->n++];
    k->c = *c;
    k->c.sink = k->c.sink_plugin = k->c.source = k->c.source_plugin = NULL;
    k->c.position = NULL;
    k->c.lag_unit = strcmp(c->lag_unit, "messages") == 0 ? "messages" : "bytes";
    k->labels = lb.data;                        /* taken: freed by ckpt_fini */
    k->position = c->position ? pb.data : NULL; /* taken */
    if (!c->position)
        sl_buf_fini(&pb);
}

static void ckpt_fini(struct ckpt_scrape *cs)
{
    for (size_t i = 0; i < cs->n; i++) {
        sl_free(cs->c[i].labels);
        sl_free(cs->c[i].position);
    }
    sl_free(cs->c);
}

static void scrape_fini(struct scrape *sc)
{
    for (size_t i = 0; i < sc->n; i++)
        sl_free(sc->st[i].labels);
    sl_free(sc->st);
}

/* The shortest decimal that reads back as v; "+Inf", "-Inf", "NaN" as the format spells. */
static void fmt_double(char *out, size_t n, double v)
{
    if (isnan(v)) {
        snprintf(out, n, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, n, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    /* Whole numbers in plain digits ("10", not "1e+01"), as scrapers and readers expect. */
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(out, n, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, n, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

static sl_rc family(struct sl_buf *b, const char *name, const char *type, const char *help)
{
    /* HELP text escapes backslash and newline; ours have neither, so it is written as is. */
    return sl_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static sl_rc sample_u64(struct sl_buf *b, const char *name, const char *labels, uint64_t v)
{
    return sl_buf_printf(b, "%s{%s} %llu\n", name, labels, (unsigned long long)v);
}

static sl_rc sample_f(struct sl_buf *b, const char *name, const char *labels, double v)
{
    char num[64];
    fmt_double(num, sizeof num, v);
    return sl_buf_printf(b, "%s{%s} %s\n", name, labels, num);
}

/* Which stages a family has samples for. */
enum applies { ALL, SOURCES, QUEUED, SINKS };

static int applies_to(enum applies a, enum sl_plugin_kind k)
{
    switch (a) {
    case ALL:
        return 1;
    case SOURCES:
        return k == SL_PLUGIN_SOURCE;
    case QUEUED:
        return k != SL_PLUGIN_SOURCE;
    case SINKS:
        return k == SL_PLUGIN_SINK;
    }
    return 0;
}

/* The counters of struct sl_stage_stats, one family each. */
static const struct counter_family {
    const char *name;
    size_t off;
    enum applies applies;
    const char *help;
} counters[] = {
    {"sluice_records_in_total", offsetof(struct sl_stage_stats, records_in), ALL,
     "Records the stage received (sources: records read)."},
    {"sluice_records_out_total", offsetof(struct sl_stage_stats, records_out), ALL,
     "Records the stage passed on (sinks: records written and committed)."},
    {"sluice_bytes_in_total", offsetof(struct sl_stage_stats, bytes_in), ALL,
     "Bytes the stage received (sources: input bytes read)."},
    {"sluice_bytes_out_total", offsetof(struct sl_stage_stats, bytes_out), ALL,
     "Bytes the stage passed on or wrote."},
    {"sluice_records_dropped_total", offsetof(struct sl_stage_stats, dropped), ALL,
     "Records the stage filtered out on purpose."},
    {"sluice_records_rejected_total", offsetof(struct sl_stage_stats, rejected), ALL,
     "Records the stage rejected as bad (parse errors, type errors, failed validation)."},
    {"sluice_records_dlq_total", offsetof(struct sl_stage_stats, dlq), ALL,
     "Rejected records the dead-letter queue holds."},
    {"sluice_records_quarantined_total", offsetof(struct sl_stage_stats, quarantined), ALL,
     "Records a quality gate on the stage held in quarantine."},
    {"sluice_records_skipped_total", offsetof(struct sl_stage_stats, skipped), SINKS,
     "Records delivered before a restart and therefore not written again."},
    {"sluice_empty_lines_total", offsetof(struct sl_stage_stats, empty), SOURCES,
     "Empty input lines skipped (not records)."},
    {"sluice_gate_warnings_total", offsetof(struct sl_stage_stats, gate_warns), ALL,
     "Quality gates on the stage that failed with action warn."},
    {"sluice_batches_total", offsetof(struct sl_stage_stats, batches), ALL,
     "Batches the stage processed (sinks: batches committed)."},
    {"sluice_sink_retries_total", offsetof(struct sl_stage_stats, retries), SINKS,
     "Failed sink attempts that were retried."},
    {"sluice_sink_breaker_opens_total", offsetof(struct sl_stage_stats, breaker_opens), SINKS,
     "Times the sink's circuit breaker opened."},
};

static uint64_t stat_field(const struct sl_stage_stats *s, size_t off)
{
    uint64_t v;
    memcpy(&v, (const char *)s + off, sizeof v);
    return v;
}

static const char *const breaker_states[] = {"closed", "open", "half_open"};

static sl_rc render_stages(struct sl_buf *b, const struct scrape *sc, double now_s)
{
    sl_rc rc = SL_OK;
    for (size_t f = 0; f < sizeof counters / sizeof counters[0] && !rc; f++) {
        const struct counter_family *cf = &counters[f];
        rc = family(b, cf->name, "counter", cf->help);
        for (size_t i = 0; i < sc->n && !rc; i++)
            if (applies_to(cf->applies, sc->st[i].s.kind))
                rc = sample_u64(b, cf->name, sc->st[i].labels, stat_field(&sc->st[i].s, cf->off));
    }

    /* Queues in front of transforms and sinks. */
    if (!rc)
        rc = family(b, "sluice_queue_batches", "gauge",
                    "Batches waiting in the stage's input queue.");
    for (size_t i = 0; i < sc->n && !rc; i++)
        if (applies_to(QUEUED, sc->st[i].s.kind))
            rc = sample_u64(b, "sluice_queue_batches", sc->st[i].labels, sc->st[i].l.queue_batches);
    if (!rc)
        rc = family(b, "sluice_queue_bytes", "gauge",
                    "Input bytes of the batches waiting in the stage's input queue.");
    for (size_t i = 0; i < sc->n && !rc; i++)
        if (applies_to(QUEUED, sc->st[i].s.kind))
            rc = sample_u64(b, "sluice_queue_bytes", sc->st[i].labels, sc->st[i].l.queue_bytes);
    if (!rc)
        rc = family(b, "sluice_queue_capacity_batches", "gauge",
                    "The input queue's limit in batches (queue.max_batches).");
    for (size_t i = 0; i < sc->n && !rc; i++)
        if (applies_to(QUEUED, sc->st[i].s.kind))
            rc = sample_u64(b, "sluice_queue_capacity_batches", sc->st[i].labels,
                            sc->st[i].l.queue_capacity);
    if (!rc)
        rc = family(b, "sluice_queue_capacity_bytes", "gauge",
                    "The input queue's limit in bytes (queue.max_bytes).");
    for (size_t i = 0; i < sc->n && !rc; i++)
        if (applies_to(QUEUED, sc->st[i].s.kind))
            rc = sample_u64(b, "sluice_queue_capacity_bytes", sc->st[i].labels,
                            sc->st[i].l.queue_max_bytes);

    /* Circuit breakers: a number for graphs and one series per state for alerts. */
    if (!rc)
        rc = family(b, "sluice_sink_breaker_state", "gauge",
                    "The sink's circuit breaker: 0 closed, 1 open, 2 half-open.");
    for (size_t i = 0; i < sc->n && !rc; i++)
        if (applies_to(SINKS, sc->st[i].s.kind))
            rc = sample_u64(b, "sluice_sink_breaker_state", sc->st[i].labels,
                            (uint64_t)sc->st[i].l.breaker_state);
    if (!rc)
        rc = family(b, "sluice_sink_breaker", "gauge",
                    "1 for the state the sink's circuit breaker is in, 0 for the others.");
    for (size_t i = 0; i < sc->n && !rc; i++) {
        if (!applies_to(SINKS, sc->st[i].s.kind))
            continue;
        for (int k = 0; k < 3 && !rc; k++)
            rc = sl_buf_printf(b, "sluice_sink_breaker{%s,state=\"%s\"} %d\n", sc->st[i].labels,
                               breaker_states[k], sc->st[i].l.breaker_state == k);
    }

    /* Freshness: only sinks that committed something have these samples. */
    if (!rc)
        rc = family(b, "sluice_sink_last_commit_timestamp_seconds", "gauge",
                    "Unix time of the sink's last commit (absent before the first).");
    for (size_t i = 0; i < sc->n && !rc; i++)
        if (applies_to(SINKS, sc->st[i].s.kind) && sc->st[i].l.last_commit_ns)
            rc = sample_f(b, "sluice_sink_last_commit_timestamp_seconds", sc->st[i].labels,
                          (double)sc->st[i].l.last_commit_ns / 1e9);
    if (!rc)
        rc = family(b, "sluice_sink_seconds_since_last_commit", "gauge",
                    "Seconds since the sink's last commit (absent before the first).");
    for (size_t i = 0; i < sc->n && !rc; i++) {
        const struct snap *sn = &sc->st[i];
        if (applies_to(SINKS, sn->s.kind) && sn->l.last_commit_ns) {
            double age = now_s - (double)sn->l.last_commit_ns / 1e9;
            rc =
                sample_f(b, "sluice_sink_seconds_since_last_commit", sn->labels, age > 0 ? age : 0);
        }
    }
    if (!rc)
        rc = family(b, "sluice_sink_end_to_end_lag_seconds", "gauge",
                    "Seconds from when the sink's last committed batch left its source until "
                    "now (absent before the first commit).");
    for (size_t i = 0; i < sc->n && !rc; i++) {
        const struct snap *sn = &sc->st[i];
        if (applies_to(SINKS, sn->s.kind) && sn->l.last_commit_ns && sn->l.last_commit_ingest_ns) {
            double lag = now_s - (double)sn->l.last_commit_ingest_ns / 1e9;
            rc = sample_f(b, "sluice_sink_end_to_end_lag_seconds", sn->labels, lag > 0 ? lag : 0);
        }
    }

    /* Commit latency: from a batch leaving its source until the sink committed it. */
    if (!rc)
        rc = family(b, "sluice_batch_commit_latency_seconds", "histogram",
                    "Seconds from a batch leaving its source until the sink committed it.");
    for (size_t i = 0; i < sc->n && !rc; i++) {
        const struct snap *sn = &sc->st[i];
        if (!applies_to(SINKS, sn->s.kind))
            continue;
        char le[64];
        for (size_t k = 0; k <= SL_LATENCY_BUCKETS && !rc; k++) {
            fmt_double(le, sizeof le, k < SL_LATENCY_BUCKETS ? sl_latency_bounds[k] : INFINITY);
            rc = sl_buf_printf(b, "sluice_batch_commit_latency_seconds_bucket{%s,le=\"%s\"} %llu\n",
                               sn->labels, le, (unsigned long long)sn->l.latency_buckets[k]);
        }
        if (!rc)
            rc = sample_f(b, "sluice_batch_commit_latency_seconds_sum", sn->labels,
                          sn->l.latency_sum_s);
        if (!rc)
            rc = sample_u64(b, "sluice_batch_commit_latency_seconds_count", sn->labels,
                            sn->l.latency_buckets[SL_LATENCY_BUCKETS]);
    }
    return rc;
}

/* Write-ahead logs of sources (the http source): their size on disk. */
static sl_rc render_wal(struct sl_buf *b, const struct scrape *sc)
{
    sl_rc rc = family(b, "sluice_wal_bytes", "gauge",
                      "Bytes the source's write-ahead log segment files hold.");
    for (size_t i = 0; i < sc->n && !rc; i++)
        if (sc->st[i].l.has_wal)
            rc = sample_u64(b, "sluice_wal_bytes", sc->st[i].labels, sc->st[i].l.wal_bytes);
    if (!rc)
        rc = family(b, "sluice_wal_segments", "gauge",
                    "Segment files of the source's write-ahead log.");
    for (size_t i = 0; i < sc->n && !rc; i++)
        if (sc->st[i].l.has_wal)
            rc = sample_u64(b, "sluice_wal_segments", sc->st[i].labels, sc->st[i].l.wal_segments);
    return rc;
}

/* Per (sink, source): the committed position, its time and the input after it. */
static sl_rc render_checkpoints(struct sl_buf *b, const struct ckpt_scrape *cs)
{
    sl_rc rc = family(b, "sluice_checkpoint_info", "gauge",
                      "Always 1; the position the sink committed for the source as a label "
                      "(absent before its first checkpoint).");
    for (size_t i = 0; i < cs->n && !rc; i++)
        if (cs->c[i].position)
            rc = sl_buf_printf(b, "sluice_checkpoint_info{%s,position=\"%s\"} 1\n", cs->c[i].labels,
                               cs->c[i].position);
    if (!rc)
        rc = family(b, "sluice_checkpoint_position", "gauge",
                    "The committed position as a number where the source has one: NATS stream "
                    "sequence; http source: byte offset in the write-ahead log segment "
                    "sluice_checkpoint_segment.");
    for (size_t i = 0; i < cs->n && !rc; i++)
        if (cs->c[i].c.has_number)
            rc = sample_u64(b, "sluice_checkpoint_position", cs->c[i].labels, cs->c[i].c.number);
    if (!rc)
        rc = family(b, "sluice_checkpoint_segment", "gauge",
                    "The write-ahead log segment of the committed position (http source).");
    for (size_t i = 0; i < cs->n && !rc; i++)
        if (cs->c[i].c.has_segment)
            rc = sample_u64(b, "sluice_checkpoint_segment", cs->c[i].labels, cs->c[i].c.segment);
    if (!rc)
        rc = family(b, "sluice_checkpoint_last_commit_timestamp_seconds", "gauge",
                    "Unix time the sink committed its position for the source (absent when "
                    "unknown).");
    for (size_t i = 0; i < cs->n && !rc; i++)
        if (cs->c[i].position && cs->c[i].c.commit_ns)
            rc = sample_f(b, "sluice_checkpoint_last_commit_timestamp_seconds", cs->c[i].labels,
                          (double)cs->c[i].c.commit_ns / 1e9);
    static const struct {
        const char *name, *unit, *help;
    } lags[] = {
        {"sluice_checkpoint_lag_bytes", "bytes",
         "Input bytes after the sink's committed position (the whole input before its first "
         "checkpoint): file and http sources."},
        {"sluice_checkpoint_lag_messages", "messages",
         "Messages after the sink's committed position (all of them before its first "
         "checkpoint): NATS source."},
    };
    for (size_t f = 0; f < sizeof lags / sizeof lags[0] && !rc; f++) {
        rc = family(b, lags[f].name, "gauge", lags[f].help);
        for (size_t i = 0; i < cs->n && !rc; i++)
            if (cs->c[i].c.has_lag && strcmp(cs->c[i].c.lag_unit, lags[f].unit) == 0)
                rc = sample_u64(b, lags[f].name, cs->c[i].labels, cs->c[i].c.lag);
    }
    return rc;
}

/* Resident and virtual size from /proc/self/statm (pages); 0 when unreadable. */
static void process_memory(uint64_t *rss, uint64_t *vsz)
{
    *rss = *vsz = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f)
        return;
    unsigned long long size = 0, resident = 0;
    if (fscanf(f, "%llu %llu", &size, &resident) == 2) {
        long page = sysconf(_SC_PAGESIZE);
        uint64_t ps = page > 0 ? (uint64_t)page : 4096;
        *rss = resident * ps;
        *vsz = size * ps;
    }
    fclose(f);
}

sl_rc sl_admin_metrics_render(struct sl_buf *b, const char *pipeline)
{
    struct scrape sc = {.pipeline = pipeline};
    sl_rc live = sl_engine_live(collect, &sc);
    sl_rc rc = live == SL_OK ? sc.rc : SL_OK;
    double now_s = (double)sl_now_real_ns() / 1e9;

    struct sl_buf pl;
    sl_buf_init(&pl, 4096);
    if (!rc)
        rc = put_label(&pl, "pipeline", pipeline, 1);
    if (!rc)
        rc = sl_buf_cstr(&pl);

    if (!rc)
        rc = family(b, "sluice_up", "gauge", "1 while the sluice process serves this endpoint.");
    if (!rc)
        rc = sample_u64(b, "sluice_up", pl.data, 1);
    if (!rc)
        rc = family(b, "sluice_ready", "gauge",
                    "1 once every stage has started and no stop was requested (as /ready).");
    if (!rc)
        rc = sample_u64(b, "sluice_ready", pl.data,
                        live == SL_OK && sl_engine_ready() && !sl_engine_stopping());
    if (!rc)
        rc = family(b, "sluice_build_info", "gauge", "Always 1; the version of sluice as a label.");
    if (!rc)
        rc = sl_buf_printf(b, "sluice_build_info{%s,version=\"%s\"} 1\n", pl.data, SLUICE_VERSION);
    uint64_t rss, vsz;
    process_memory(&rss, &vsz);
    if (!rc)
        rc = family(b, "sluice_process_resident_memory_bytes", "gauge",
                    "Resident memory of the sluice process in bytes (/proc/self/statm).");
    if (!rc)
        rc = sample_u64(b, "sluice_process_resident_memory_bytes", pl.data, rss);
    if (!rc)
        rc = family(b, "sluice_process_virtual_memory_bytes", "gauge",
                    "Virtual memory size of the sluice process in bytes (/proc/self/statm).");
    if (!rc)
        rc = sample_u64(b, "sluice_process_virtual_memory_bytes", pl.data, vsz);
    if (!rc)
        rc = render_stages(b, &sc, now_s);
    if (!rc)
        rc = render_wal(b, &sc);
    /* A second snapshot: lag() may take a round trip, which the stages' lock must not. */
    struct ckpt_scrape cs = {.pipeline = pipeline};
    if (!rc && sl_engine_checkpoints(collect_ckpt, &cs) == SL_OK)
        rc = cs.rc;
    if (!rc)
        rc = render_checkpoints(b, &cs);
    ckpt_fini(&cs);
    sl_buf_fini(&pl);
    scrape_fini(&sc);
    return rc;
}
