/*
 * replay.c - replay pipelines: kept records back into a stage (replay.h).
 *
 * Two parts. The replay source is a source plugin that is never configured by users: its
 * state is made here from a struct sl_replay_feed and handed to the engine through
 * sl_component.preset_state. It reads batches of items from the feed, copies each item's
 * bytes into the batch arena, and stamps the batch with the key of its last item as the
 * position ("17"). Positions order numerically, and covers() answers per record from
 * the key each record carries in dlq_entry, so the engine's start-up protocol (skip what
 * a sink already has) works for replays exactly as for files.
 *
 * The pipeline builder copies the components downstream of the injection point into a
 * new struct sl_pipeline that borrows the original's document:
 *
 *     original:   src ──> parse ──> valid ──> enrich ──> warehouse
 *     replay into valid:      _dlq_replay_7 ──> valid ──> enrich ──> warehouse
 *
 * Inputs from components left out are dropped; a component fed by the injection point
 * reads from the replay source instead.
 *
 * Threading: the replay source's read runs on its source thread only.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/alloc.h"
#include "sluice/replay.h"

/* ---- the replay source ------------------------------------------------------------- */

struct replay_src {
    struct sl_replay_feed feed;
    int64_t after; /* key of the last item handed out */
    uint32_t max_records;
    int done;
    /* The source records go back into, when it decodes raw rows (plugin.h decode). */
    const struct sl_plugin *decoder;
    void *decoder_state;
};

struct fill {
    struct replay_src *rs;
    struct sl_batch *b;
    int64_t last;
    sl_rc rc;
    struct sl_error *err;
};

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* 32 hex digits -> id[2] (the format of sl_record_id_format). 0 on success. */
static int parse_id(const char *s, uint64_t id[2])
{
    if (!s || strlen(s) != 32)
        return -1;
    for (int w = 0; w < 2; w++) {
        uint64_t v = 0;
        for (int i = 0; i < 16; i++) {
            int h = hexval(s[w * 16 + i]);
            if (h < 0)
                return -1;
            v = v << 4 | (uint64_t)h;
        }
        id[w] = v;
    }
    return 0;
}

static int fill_item(void *ectx, const struct sl_replay_item *it)
{
    struct fill *f = ectx;
    struct sl_batch *b = f->b;
    struct sl_record *r = sl_batch_add(b);
    char *raw = r ? sl_arena_alloc(&b->arena, it->raw_len + 1) : NULL;
    char *json = NULL;
    if (r && it->json) {
        json = sl_arena_alloc(&b->arena, it->json_len + 1);
        if (json) {
            memcpy(json, it->json, it->json_len);
            json[it->json_len] = 0;
        }
    }
    if (!r || !raw || (it->json && !json)) {
        f->rc = SL_ENOMEM;
        return 1;
    }
    if (it->raw_len)
        memcpy(raw, it->raw, it->raw_len);
    raw[it->raw_len] = 0;
    r->orig = raw;
    r->orig_len = (uint32_t)it->raw_len;
    r->text = json ? json : raw;
    r->text_len = (uint32_t)(json ? it->json_len : it->raw_len);
    r->line = (uint32_t)it->line;
    r->offset = it->offset;
    r->dlq_entry = (uint64_t)it->key;
    if (parse_id(it->record_id, r->id) != 0) {
        /* A kept record always has an id; derive one from the key rather than fail. */
        r->id[0] = 0;
        r->id[1] = (uint64_t)it->key;
    }
    b->bytes += it->raw_len;
    f->last = it->key;
    if (it->true_len > it->raw_len) {
        /* Only the first bytes were kept: delivering them would deliver a cut record. */
        char actual[64];
        snprintf(actual, sizeof actual, "%zu of %" PRIu64 " bytes kept", it->raw_len, it->true_len);
        struct sl_reject_info why = {.error_class = "record_too_large",
                                     .rule = "max_record_bytes",
                                     .expected = "the whole record",
                                     .actual = actual,
                                     .true_len = it->true_len};
        sl_record_reject_why(b, r, f->rs->feed.stage, &why,
                             "only the first %zu of the record's %" PRIu64
                             " bytes were kept, so it cannot be replayed; raise "
                             "max_record_bytes and read it again from its source (`sluice "
                             "reset --to-position`)",
                             it->raw_len, it->true_len);
        return 0;
    }
    if (!it->json && f->rs->decoder) {
        /* A row its source rejected while reading: decode it again, as the source would. */
        const char *origin = it->origin && *it->origin ? it->origin : "";
        sl_rc rc = f->rs->decoder->decode(f->rs->decoder_state, origin, b, r, f->err);
        if (rc) {
            f->rc = rc;
            return 1;
        }
    }
    return 0;
}

static sl_rc replay_read(void *state, struct sl_batch *b, struct sl_error *err)
{
    struct replay_src *rs = state;
    if (rs->done)
        return SL_EOF;
    struct fill f = {.rs = rs, .b = b, .last = rs->after, .rc = SL_OK, .err = err};
    sl_rc rc = rs->feed.read(rs->feed.ctx, rs->after, rs->max_records, fill_item, &f, err);
    if (rc)
        return rc;
    if (f.rc == SL_ENOMEM)
        return sl_error_set(err, f.rc, "out of memory reading kept records");
    if (f.rc)
        return f.rc;
    b->origin = rs->feed.origin ? rs->feed.origin : "replay";
    if (b->n < rs->max_records)
        rs->done = 1;
    if (b->n) {
        char *pos = sl_arena_alloc(&b->arena, 24);
        if (!pos)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        snprintf(pos, 24, "%" PRId64, f.last);
        b->position = pos;
        rs->after = f.last;
    }
    return rs->done ? SL_EOF : SL_OK;
}

static sl_rc replay_restore(void *state, const char *position, struct sl_error *err)
{
    struct replay_src *rs = state;
    char *end = NULL;
    long long v = strtoll(position, &end, 10);
    if (!end || *end || v < 0)
        return sl_error_set(err, SL_EPARSE, "replay position \"%s\" is not an entry number",
                            position);
    rs->after = v;
    return SL_OK;
}

static int replay_cmp(void *state, const char *a, const char *b)
{
    (void)state;
    long long x = strtoll(a, NULL, 10), y = strtoll(b, NULL, 10);
    return x < y ? -1 : x > y;
}

static int replay_covers(void *state, const char *position, const struct sl_batch *b, uint32_t i)
{
    (void)state;
    return (long long)b->recs[i].dlq_entry <= strtoll(position, NULL, 10);
}

static sl_rc replay_init(const struct sl_plugin_ctx *ctx, void **state, struct sl_error *err)
{
    (void)ctx;
    (void)state;
    return sl_error_set(err, SL_ECONFIG, "the replay source cannot be configured in a file");
}

static void replay_close(void *state)
{
    struct replay_src *rs = state;
    if (rs && rs->decoder && rs->decoder->close)
        rs->decoder->close(rs->decoder_state);
    sl_free(rs);
}

static const struct sl_plugin replay_source = {
    .kind = SL_PLUGIN_SOURCE,
    .name = "replay",
    .description = "Kept records sent back into the pipeline (internal).",
    .init = replay_init,
    .restore = replay_restore,
    .read = replay_read,
    .position_cmp = replay_cmp,
    .covers = replay_covers,
    .close = replay_close,
};

/* ---- the pipeline ------------------------------------------------------------------ */

void sl_replay_pipeline_destroy(struct sl_pipeline *rp)
{
    if (!rp)
        return;
    for (size_t i = 0; i < rp->ncomp; i++) {
        sl_free(rp->comp[i].inputs);
        if (rp->comp[i].preset_state && rp->comp[i].plugin->close)
            rp->comp[i].plugin->close(rp->comp[i].preset_state);
    }
    sl_free(rp->comp);
    sl_free(rp);
}

sl_rc sl_replay_pipeline(const struct sl_pipeline *p, const struct sl_replay_feed *feed,
                         struct sl_pipeline **out, struct sl_error *err)
{
    int t = sl_pipeline_find(p, feed->stage);
    if (t < 0)
        return sl_error_set(err, SL_ENOENT,
                            "stage \"%s\" is not in %s any more; choose where the records go "
                            "back in with --from-stage",
                            feed->stage, p->path);
    const struct sl_component *target = &p->comp[t];
    int after = feed->after || target->kind == SL_PLUGIN_SOURCE;
    if (after && target->kind == SL_PLUGIN_SINK)
        return sl_error_set(err, SL_ECONFIG, "nothing lies after sink %s; records go back into it",
                            target->name);
    if (after && target->noutputs > 1)
        return sl_error_set(err, SL_ECONFIG,
                            "%s has named outputs; records cannot go back into all of them at "
                            "once: send them into %s itself (--from-stage %s)",
                            target->name, target->name, target->name);
    size_t n = p->ncomp;
    unsigned char *incl = sl_calloc(n ? n : 1, 1);
    uint32_t *map = sl_calloc(n ? n : 1, sizeof *map);
    struct sl_pipeline *rp = sl_calloc(1, sizeof *rp);
    struct replay_src *rs = sl_calloc(1, sizeof *rs);
    sl_rc rc = SL_OK;
    if (!incl || !map || !rp || !rs) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    /* comp[] is topologically ordered: one pass decides who is downstream. */
    size_t count = 1, sinks = 0;
    for (size_t c = 0; c < n; c++) {
        const struct sl_component *k = &p->comp[c];
        int in = (size_t)t == c && !after;
        for (size_t i = 0; !in && i < k->ninputs; i++)
            in = k->inputs[i].comp == (uint32_t)t || incl[k->inputs[i].comp];
        if ((size_t)t == c && after)
            in = 0;
        incl[c] = (unsigned char)in;
        if (in) {
            map[c] = (uint32_t)count++;
            sinks += k->kind == SL_PLUGIN_SINK;
        }
    }
    if (!sinks) {
        rc = sl_error_set(err, SL_ECONFIG, "no sink lies downstream of %s", target->name);
        goto fail;
    }
    rp->comp = sl_calloc(count, sizeof *rp->comp);
    if (!rp->comp) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    rs->feed = *feed;
    rs->max_records = p->batch.max_records ? p->batch.max_records : 1024;
    if (target->kind == SL_PLUGIN_SOURCE && target->plugin->decode) {
        /* The source decodes raw rows again; opened for inspection: it reads nothing. */
        uint32_t index = 0;
        for (int c = 0; c < t; c++)
            index += p->comp[c].kind == SL_PLUGIN_SOURCE;
        const char *names[1] = {target->name};
        struct sl_plugin_ctx ctx = {
            .pipeline = p->name,
            .name = target->name,
            .doc = p->doc,
            .node = target->node,
            .state_dir = p->state_dir,
            .once = 1,
            .exactly_once = p->exactly_once,
            .index = index,
            .limits = &p->batch,
            .max_depth = p->max_depth,
            .source_names = names,
            .nsources = 1,
            .inspect = 1,
        };
        sl_error_clear(err);
        rc = target->plugin->init(&ctx, &rs->decoder_state, err);
        if (rc) {
            sl_error_prefix(err,
                            "source %s: cannot open it to decode its rows again: ", target->name);
            goto fail;
        }
        rs->decoder = target->plugin;
    }
    struct sl_component *src = &rp->comp[0];
    src->name = feed->name;
    src->kind = SL_PLUGIN_SOURCE;
    src->plugin = &replay_source;
    src->workers = 1;
    src->noutputs = 1;
    src->preset_state = rs;
    src->reject_as = feed->stage;
    rs = NULL;
    rp->ncomp = 1;
    for (size_t c = 0; c < n; c++) {
        if (!incl[c])
            continue;
        const struct sl_component *k = &p->comp[c];
        struct sl_component *d = &rp->comp[rp->ncomp++];
        *d = *k;
        d->preset_state = NULL;
        d->inputs = sl_calloc(k->ninputs ? k->ninputs : 1, sizeof *d->inputs);
        d->ninputs = 0;
        if (!d->inputs) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
            goto fail;
        }
        if ((size_t)t == c) {
            d->inputs[d->ninputs++] = (struct sl_input){feed->name, 0, 0};
            continue;
        }
        int fed = 0;
        for (size_t i = 0; i < k->ninputs; i++) {
            const struct sl_input *in = &k->inputs[i];
            if (in->comp == (uint32_t)t && after) {
                if (!fed++)
                    d->inputs[d->ninputs++] = (struct sl_input){feed->name, 0, 0};
            } else if (incl[in->comp]) {
                d->inputs[d->ninputs++] = (struct sl_input){in->text, map[in->comp], in->output};
            }
        }
    }
    rp->doc = p->doc;
    rp->path = p->path;
    rp->name = p->name;
    rp->state_dir = p->state_dir;
    rp->exactly_once = p->exactly_once;
    rp->batch = p->batch;
    rp->queue_max_batches = p->queue_max_batches;
    rp->queue_max_bytes = p->queue_max_bytes;
    rp->max_depth = p->max_depth;
    rp->json_flags = p->json_flags;
    rp->require_object = p->require_object;
    rp->dlq_path = p->dlq_path;
    rp->quarantine_path = p->quarantine_path;
    rp->quality = NULL;
    rp->nsources = 1;
    sl_free(incl);
    sl_free(map);
    *out = rp;
    return SL_OK;
fail:
    sl_free(incl);
    sl_free(map);
    replay_close(rs);
    sl_replay_pipeline_destroy(rp);
    return rc;
}
