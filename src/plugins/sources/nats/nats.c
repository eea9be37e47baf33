/*
 * nats.c - the `nats` source: a NATS JetStream stream read through a durable pull consumer.
 *
 * How it fits: read() fetches up to batch_size messages from the durable consumer
 * `durable` on `stream` (filtered by `subject`), waiting at most NATS_FETCH_MS; each
 * message's payload is one record (JSON text, parsed downstream). The batch's position is
 * the stream sequence of its last message, as decimal text; positions compare as numbers.
 *
 * Acknowledgement: a message is acknowledged only in release(P), i.e. after every sink fed
 * by this source has committed a position at or past P. Until then its natsMsg handle is
 * kept (the engine's queue limits bound how many batches are in flight, hence how many
 * handles). A crash before release leaves the messages unacknowledged; nothing is lost.
 *
 * Order across restarts: JetStream redelivers unacknowledged messages only after the
 * consumer's ack wait, after newer ones, which would break "positions only grow". So at
 * every start the durable is recreated to begin exactly where the sinks stand: after the
 * restored position, or (no position) after the durable's acknowledgement floor when it
 * exists, else at the start of the stream. The durable's own record of what was delivered
 * is therefore never trusted, only the sinks' checkpoints (DESIGN §4); one pipeline owns
 * one durable.
 *
 * Redeliveries within a run (a sink slower than ack_wait): a message whose sequence is at
 * or below the highest one already emitted is never emitted again; when it is still held,
 * its new handle replaces the old one; when it was already released it is acknowledged.
 *
 * Records: r->offset is the stream sequence (covers() compares it with a position); ids
 * hash (pipeline, source, stream) and the sequence, so a message read again after a crash
 * gets the same id.
 *
 * Outages: failing to set up the consumer at start backs off (SL_AGAIN). Once subscribed,
 * the connection reconnects without limit and a failed fetch only backs off, so held
 * handles stay valid for their acknowledgements; close() flushes pending acknowledgements.
 *
 * Lag (`sluice status`, /metrics): the messages of the stream that match the subject and
 * lie after a position, counted exactly by the server: lag() creates a short-lived
 * ephemeral consumer starting after the position and reads its num_pending. It has its own
 * connection (lag_nc, under lag_mu), so it never touches the one read() reconnects.
 *
 * Threading: read/restore/close on the source's thread; release from sink threads; lag from
 * any thread (status, the admin server). Invariant 1 below is guarded by mu; position_cmp,
 * covers and position_number read only their arguments.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>

#include "sluice/alloc.h"
#include "sluice/log.h"
#include "sluice/plugin.h"
#include "sluice/record.h"

#define NATS_FETCH_MS 150           /* longest wait of one fetch (read must not block > ~200 ms) */
#define NATS_ONCE_EMPTY 3           /* --once: this many empty fetches in a row end the run */
#define NATS_BATCH_MAX 100000       /* batch_size upper bound */
#define NATS_MAX_ACK_PENDING 100000 /* held at once; the engine's queues bound it lower */
#define NATS_BACKOFF_MAX_MS 10000

/* A held message: its stream sequence and handle. */
struct held {
    uint64_t seq;
    natsMsg *msg;
};

/*
 * Invariants:
 *   1. held[head..n) are the messages emitted and not yet released, in increasing seq;
 *      every seq there is > released. (mu)
 *   2. emitted is the highest sequence emitted in this run or restored from; no message
 *      with seq <= emitted is emitted again.
 *   3. sub is NULL or a pull subscription on a durable that started after start_after.
 */
struct nats_src {
    const char *name;
    const char *pipeline;
    char *url, *stream, *subject, *durable;
    uint32_t batch_size;
    int64_t ack_wait_ms;
    int once;
    int empty_runs;
    uint64_t id_base[2];
    uint64_t emitted;
    int restored;
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *sub;
    uint64_t retry_at, backoff_ms;
    pthread_mutex_t mu;
    struct held *held;
    size_t head, n, cap;
    uint64_t released;
    pthread_mutex_t lag_mu; /* lag_nc, lag_js */
    natsConnection *lag_nc;
    jsCtx *lag_js;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int parse_seq(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static void disconnect(struct nats_src *s)
{
    if (s->sub)
        natsSubscription_Destroy(s->sub); /* keeps the durable */
    s->sub = NULL;
    if (s->js)
        jsCtx_Destroy(s->js);
    s->js = NULL;
    if (s->nc)
        natsConnection_Destroy(s->nc);
    s->nc = NULL;
}

/* A failure to set up the consumer (nothing is held yet): log, back off, SL_AGAIN. */
static sl_rc down(struct nats_src *s, const char *what, natsStatus st)
{
    disconnect(s);
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : 100;
    if (s->backoff_ms > NATS_BACKOFF_MAX_MS)
        s->backoff_ms = NATS_BACKOFF_MAX_MS;
    s->retry_at = now_ms() + s->backoff_ms;
    sl_warn(s->name, "NATS %s: %s (%s); retrying in %" PRIu64 " ms", s->url, what,
            natsStatus_GetText(st), s->backoff_ms);
    return SL_AGAIN;
}

static sl_rc connect_now(struct nats_src *s, struct sl_error *err)
{
    natsOptions *o = NULL;
    natsStatus st = natsOptions_Create(&o);
    if (st == NATS_OK)
        st = natsOptions_SetURL(o, s->url);
    if (st == NATS_OK)
        st = natsOptions_SetTimeout(o, 2000);
    if (st == NATS_OK)
        st = natsOptions_SetMaxReconnect(o, -1); /* the connection never gives up (read()) */
    if (st == NATS_OK)
        st = natsConnection_Connect(&s->nc, o);
    natsOptions_Destroy(o);
    if (st != NATS_OK)
        return down(s, "cannot connect", st);
    jsErrCode jerr = 0;
    if ((st = natsConnection_JetStream(&s->js, s->nc, NULL)) != NATS_OK)
        return down(s, "cannot open a JetStream context", st);
    /* Where to start: after the position, else after the durable's ack floor. */
    uint64_t after = s->emitted;
    if (!s->restored) {
        jsConsumerInfo *ci = NULL;
        st = js_GetConsumerInfo(&ci, s->js, s->stream, s->durable, NULL, &jerr);
        if (st == NATS_OK) {
            /* A durable that acknowledged nothing yet starts at its start sequence. */
            after = ci->AckFloor.Stream;
            if (ci->Config && ci->Config->DeliverPolicy == js_DeliverByStartSequence &&
                ci->Config->OptStartSeq > after + 1)
                after = ci->Config->OptStartSeq - 1;
            jsConsumerInfo_Destroy(ci);
        } else if (jerr == JSStreamNotFoundErr) {
            disconnect(s);
            return sl_error_set(err, SL_ENOENT,
                                "source %s: stream %s does not exist on %s; create it (for "
                                "example with a nats sink) or fix the stream option",
                                s->name, s->stream, s->url);
        } else if (jerr != JSConsumerNotFoundErr && st != NATS_NOT_FOUND) {
            return down(s, "cannot read the consumer's state", st);
        }
        s->emitted = after;
        s->restored = 1;
    }
    jerr = 0;
    st = js_DeleteConsumer(s->js, s->stream, s->durable, NULL, &jerr);
    if (st != NATS_OK && jerr == JSStreamNotFoundErr) {
        disconnect(s);
        return sl_error_set(err, SL_ENOENT,
                            "source %s: stream %s does not exist on %s; create it (for example "
                            "with a nats sink) or fix the stream option",
                            s->name, s->stream, s->url);
    }
    if (st != NATS_OK && jerr != JSConsumerNotFoundErr && st != NATS_NOT_FOUND)
        return down(s, "cannot reset the durable consumer", st);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = s->stream;
    so.Config.Durable = s->durable;
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.AckWait = s->ack_wait_ms * 1000000; /* nanoseconds */
    so.Config.MaxAckPending = NATS_MAX_ACK_PENDING;
    so.Config.FilterSubject = s->subject;
    if (after > 0) {
        so.Config.DeliverPolicy = js_DeliverByStartSequence;
        so.Config.OptStartSeq = after + 1;
    } else {
        so.Config.DeliverPolicy = js_DeliverAll;
    }
    jerr = 0;
    st = js_PullSubscribe(&s->sub, s->js, s->subject, s->durable, NULL, &so, &jerr);
    if (st != NATS_OK) {
        const char *why = nats_GetLastError(NULL);
        if (jerr != 0) {
            sl_rc rc = sl_error_set(err, SL_EINVAL,
                                    "source %s: JetStream refused the durable consumer %s on "
                                    "stream %s (subject %s): %s (error %d); check the stream "
                                    "and subject options",
                                    s->name, s->durable, s->stream, s->subject,
                                    why ? why : natsStatus_GetText(st), (int)jerr);
            disconnect(s);
            return rc;
        }
        return down(s, "cannot create the pull consumer", st);
    }
    s->backoff_ms = 0;
    sl_info(s->name, "reading stream %s from sequence %" PRIu64 " (durable %s)", s->stream,
            after + 1, s->durable);
    return SL_OK;
}

/* Store msg (seq > emitted) among the held ones. SL_ENOMEM. (mu held) */
static sl_rc hold(struct nats_src *s, uint64_t seq, natsMsg *msg)
{
    if (s->n == s->cap) {
        if (s->head > 0) {
            memmove(s->held, s->held + s->head, (s->n - s->head) * sizeof *s->held);
            s->n -= s->head;
            s->head = 0;
        }
        if (s->n == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 1024;
            struct held *h = sl_realloc(s->held, cap * sizeof *h);
            if (!h)
                return SL_ENOMEM;
            s->held = h;
            s->cap = cap;
        }
    }
    s->held[s->n++] = (struct held){seq, msg};
    return SL_OK;
}

/* The stream sequence of a JetStream delivery (from its reply subject), 0 if none. */
static uint64_t msg_seq(natsMsg *m)
{
    jsMsgMetaData *md = NULL;
    if (natsMsg_GetMetaData(&md, m) != NATS_OK)
        return 0;
    uint64_t seq = md->Sequence.Stream;
    jsMsgMetaData_Destroy(md);
    return seq;
}

/* A message already emitted came again: keep the newer handle, or ack it. (mu held) */
static void redelivered(struct nats_src *s, uint64_t seq, natsMsg *msg)
{
    if (seq <= s->released) {
        natsMsg_Ack(msg, NULL);
        natsMsg_Destroy(msg);
        return;
    }
    size_t lo = s->head, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->held[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < s->n && s->held[lo].seq == seq) {
        natsMsg_Destroy(s->held[lo].msg);
        s->held[lo].msg = msg;
    } else {
        natsMsg_Destroy(msg); /* not held (skipped at start): the next start skips it too */
    }
}

static sl_rc nats_read(void *state, struct sl_batch *b, struct sl_error *err)
{
    struct nats_src *s = state;
    if (s->retry_at && now_ms() < s->retry_at)
        return SL_AGAIN;
    if (!s->sub) {
        sl_rc rc = connect_now(s, err);
        if (rc)
            return rc;
    }
    uint32_t want = s->batch_size;
    natsMsgList list = {0};
    jsErrCode jerr = 0;
    natsStatus st = natsSubscription_Fetch(&list, s->sub, (int)want, NATS_FETCH_MS, &jerr);
    if (st == NATS_TIMEOUT || (st == NATS_OK && list.Count == 0)) {
        natsMsgList_Destroy(&list);
        if (s->once && ++s->empty_runs >= NATS_ONCE_EMPTY)
            return SL_EOF;
        return SL_AGAIN;
    }
    if (st != NATS_OK) {
        /*
         * Keep the subscription: the library reconnects by itself (no reconnect limit), the
         * durable survives, and held messages stay acknowledgeable through it.
         */
        natsMsgList_Destroy(&list);
        s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : 100;
        if (s->backoff_ms > NATS_BACKOFF_MAX_MS)
            s->backoff_ms = NATS_BACKOFF_MAX_MS;
        s->retry_at = now_ms() + s->backoff_ms;
        sl_warn(s->name, "NATS %s: fetch from stream %s failed (%s); retrying in %" PRIu64 " ms",
                s->url, s->stream, natsStatus_GetText(st), s->backoff_ms);
        return SL_AGAIN;
    }
    s->backoff_ms = 0;
    s->empty_runs = 0;
    sl_rc rc = SL_OK;
    uint64_t last = 0;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < list.Count; i++) {
        natsMsg *m = list.Msgs[i];
        list.Msgs[i] = NULL;
        if (rc) {
            natsMsg_Destroy(m);
            continue;
        }
        uint64_t seq = msg_seq(m);
        if (seq == 0) {
            natsMsg_Destroy(m); /* not a JetStream delivery (a status message): nothing */
            continue;
        }
        if (seq <= s->emitted) {
            redelivered(s, seq, m);
            continue;
        }
        const char *data = natsMsg_GetData(m);
        int len = natsMsg_GetDataLength(m);
        struct sl_record *r = sl_batch_add(b);
        char *text = r ? sl_arena_alloc(&b->arena, (size_t)len + 1) : NULL;
        if (!text || hold(s, seq, m) != SL_OK) {
            natsMsg_Destroy(m);
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
            continue;
        }
        if (len > 0)
            memcpy(text, data, (size_t)len);
        text[len] = '\0';
        r->text = r->orig = text;
        r->text_len = r->orig_len = (uint32_t)len;
        r->offset = seq;
        sl_record_id(s->id_base, seq, r->id);
        b->bytes += (size_t)len;
        s->emitted = seq;
        last = seq;
    }
    pthread_mutex_unlock(&s->mu);
    natsMsgList_Destroy(&list);
    if (rc)
        return rc;
    if (last == 0)
        return SL_AGAIN; /* only redeliveries */
    char pos[24];
    snprintf(pos, sizeof pos, "%" PRIu64, last);
    b->position = sl_arena_strdup(&b->arena, pos);
    b->origin = sl_arena_strdup(&b->arena, s->name);
    if (!b->position || !b->origin)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    return SL_OK;
}

static void nats_release(void *state, const char *position)
{
    struct nats_src *s = state;
    uint64_t upto;
    if (parse_seq(position, &upto))
        return;
    pthread_mutex_lock(&s->mu);
    while (s->head < s->n && s->held[s->head].seq <= upto) {
        natsMsg_Ack(s->held[s->head].msg, NULL);
        natsMsg_Destroy(s->held[s->head].msg);
        s->head++;
    }
    if (s->head == s->n)
        s->head = s->n = 0;
    if (upto > s->released)
        s->released = upto;
    pthread_mutex_unlock(&s->mu);
}

static sl_rc nats_restore(void *state, const char *position, struct sl_error *err)
{
    struct nats_src *s = state;
    uint64_t seq;
    if (parse_seq(position, &seq))
        return sl_error_set(err, SL_EINVAL,
                            "source %s: checkpoint position \"%s\" is not a stream sequence; "
                            "was the source's type changed? `sluice reset` the sinks to start "
                            "over",
                            s->name, position);
    s->emitted = seq;
    s->released = seq;
    s->restored = 1;
    return SL_OK;
}

static int nats_position_cmp(void *state, const char *a, const char *b)
{
    (void)state;
    uint64_t x = 0, y = 0;
    parse_seq(a, &x);
    parse_seq(b, &y);
    return x < y ? -1 : x > y ? 1 : 0;
}

static int nats_covers(void *state, const char *position, const struct sl_batch *b, uint32_t i)
{
    (void)state;
    uint64_t p;
    if (parse_seq(position, &p))
        return 0;
    return b->recs[i].offset <= p;
}

#define NATS_LAG_TIMEOUT_MS 1000

static void lag_disconnect(struct nats_src *s)
{
    if (s->lag_js)
        jsCtx_Destroy(s->lag_js);
    s->lag_js = NULL;
    if (s->lag_nc)
        natsConnection_Destroy(s->lag_nc);
    s->lag_nc = NULL;
}

/*
 * Messages matching subject after position (NULL: all of them): an ephemeral consumer
 * that starts there tells how many it would deliver (num_pending); it is deleted at once
 * (and would expire by itself after its inactivity threshold).
 */
static sl_rc nats_lag(void *state, const char *position, uint64_t *count, struct sl_error *err)
{
    struct nats_src *s = state;
    uint64_t after = 0;
    if (position && parse_seq(position, &after))
        return sl_error_set(err, SL_EPARSE,
                            "source %s: the checkpoint \"%.200s\" is not a stream sequence",
                            s->name, position);
    pthread_mutex_lock(&s->lag_mu);
    natsStatus st = NATS_OK;
    const char *what = "cannot connect";
    if (!s->lag_nc) {
        natsOptions *o = NULL;
        st = natsOptions_Create(&o);
        if (st == NATS_OK)
            st = natsOptions_SetURL(o, s->url);
        if (st == NATS_OK)
            st = natsOptions_SetTimeout(o, NATS_LAG_TIMEOUT_MS);
        if (st == NATS_OK)
            st = natsOptions_SetAllowReconnect(o, false);
        if (st == NATS_OK)
            st = natsConnection_Connect(&s->lag_nc, o);
        natsOptions_Destroy(o);
        if (st == NATS_OK) {
            jsOptions jo;
            jsOptions_Init(&jo);
            jo.Wait = NATS_LAG_TIMEOUT_MS;
            what = "cannot open a JetStream context";
            st = natsConnection_JetStream(&s->lag_js, s->lag_nc, &jo);
        }
    }
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    if (st == NATS_OK) {
        jsConsumerConfig cc;
        jsConsumerConfig_Init(&cc);
        cc.AckPolicy = js_AckNone;
        cc.FilterSubject = s->subject;
        cc.InactiveThreshold = (int64_t)10 * 1000000000; /* nanoseconds */
        cc.MemoryStorage = true;
        if (after > 0) {
            cc.DeliverPolicy = js_DeliverByStartSequence;
            cc.OptStartSeq = after + 1;
        } else {
            cc.DeliverPolicy = js_DeliverAll;
        }
        what = "cannot count the pending messages";
        st = js_AddConsumer(&ci, s->lag_js, s->stream, &cc, NULL, &jerr);
    }
    sl_rc rc = SL_OK;
    if (st == NATS_OK) {
        *count = ci->NumPending;
        js_DeleteConsumer(s->lag_js, s->stream, ci->Name, NULL, NULL);
        jsConsumerInfo_Destroy(ci);
    } else {
        const char *why = nats_GetLastError(NULL);
        rc = sl_error_set(err, SL_EIO, "source %s: NATS %s, stream %s: %s (%s)", s->name, s->url,
                          s->stream, what, why && *why ? why : natsStatus_GetText(st));
        lag_disconnect(s); /* connect again next time */
    }
    pthread_mutex_unlock(&s->lag_mu);
    return rc;
}

static int nats_position_number(void *state, const char *position, uint64_t *number,
                                uint64_t *segment)
{
    (void)state;
    (void)segment;
    return parse_seq(position, number) == 0;
}

static void nats_close(void *state)
{
    struct nats_src *s = state;
    if (!s)
        return;
    for (size_t i = s->head; i < s->n; i++)
        natsMsg_Destroy(s->held[i].msg); /* unacknowledged: redelivered to the next run */
    sl_free(s->held);
    if (s->nc) /* acknowledgements are buffered: send them before closing */
        natsConnection_FlushTimeout(s->nc, 2000);
    disconnect(s);
    lag_disconnect(s);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->lag_mu);
    sl_free(s->url);
    sl_free(s->stream);
    sl_free(s->subject);
    sl_free(s->durable);
    sl_free(s);
}

static sl_rc nats_init(const struct sl_plugin_ctx *ctx, void **state, struct sl_error *err)
{
    const struct sl_cfg_node *node = ctx->node;
    const char *url, *stream, *subject, *durable;
    int64_t batch;
    uint64_t ack_wait;
    sl_rc rc;
    if ((rc = sl_cfg_get_str(node, "url", "nats://127.0.0.1:4222", &url, err)) ||
        (rc = sl_cfg_get_str(node, "stream", NULL, &stream, err)) ||
        (rc = sl_cfg_get_str(node, "subject", NULL, &subject, err)) ||
        (rc = sl_cfg_get_str(node, "durable", NULL, &durable, err)) ||
        (rc = sl_cfg_get_int(node, "batch_size", 500, &batch, err)) ||
        (rc = sl_cfg_get_duration(node, "ack_wait", 30000, &ack_wait, err)))
        return rc;
    if (!stream || !*stream)
        return sl_cfg_error(err, node, "sources.%s: missing required option stream", ctx->name);
    if (!subject || !*subject)
        return sl_cfg_error(err, node,
                            "sources.%s: missing required option subject (the filter subject "
                            "of the consumer, e.g. events.>)",
                            ctx->name);
    if (!durable || !*durable)
        durable = ctx->name;
    if (batch < 1 || batch > NATS_BATCH_MAX)
        return sl_cfg_error(err, sl_cfg_get(node, "batch_size"),
                            "sources.%s.batch_size: %lld is outside 1..%d", ctx->name,
                            (long long)batch, NATS_BATCH_MAX);
    if (ack_wait < 1000)
        return sl_cfg_error(err, sl_cfg_get(node, "ack_wait"),
                            "sources.%s.ack_wait: must be at least 1s", ctx->name);
    struct nats_src *s = sl_calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->lag_mu, NULL);
    s->name = ctx->name;
    s->pipeline = ctx->pipeline ? ctx->pipeline : "";
    s->batch_size = (uint32_t)batch;
    if (ctx->limits && ctx->limits->max_records && s->batch_size > ctx->limits->max_records)
        s->batch_size = ctx->limits->max_records;
    s->ack_wait_ms = (int64_t)ack_wait;
    s->once = ctx->once;
    s->url = sl_strdup(url);
    s->stream = sl_strdup(stream);
    s->subject = sl_strdup(subject);
    s->durable = sl_strdup(durable);
    if (!s->url || !s->stream || !s->subject || !s->durable) {
        nats_close(s);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    sl_record_id_base(s->pipeline, s->name, s->stream, s->id_base);
    *state = s;
    return SL_OK;
}

static const struct sl_option nats_options[] = {
    {.name = "url",
     .type = SL_OPT_STRING,
     .def = "nats://127.0.0.1:4222",
     .help = "NATS server URL (a comma-separated list for a cluster)."},
    {.name = "stream",
     .type = SL_OPT_STRING,
     .required = 1,
     .help = "JetStream stream to read; it must exist."},
    {.name = "subject",
     .type = SL_OPT_STRING,
     .required = 1,
     .help = "Filter subject of the consumer (wildcards allowed, e.g. events.>)."},
    {.name = "durable",
     .type = SL_OPT_STRING,
     .help = "Name of the durable pull consumer (default: the source's name); one pipeline "
             "owns it."},
    {.name = "batch_size",
     .type = SL_OPT_INT,
     .def = "500",
     .help = "Messages fetched at most per read and per batch."},
    {.name = "ack_wait",
     .type = SL_OPT_DURATION,
     .def = "30s",
     .help = "How long the server waits for an acknowledgement before redelivering; messages "
             "are acknowledged once every sink committed them."},
    {0},
};

const struct sl_plugin sl_source_nats = {
    .kind = SL_PLUGIN_SOURCE,
    .name = "nats",
    .description = "Read a NATS JetStream stream through a durable pull consumer; messages are "
                   "acknowledged after every sink committed them, and a restart resumes after "
                   "the sinks' checkpoints.",
    .options = nats_options,
    .init = nats_init,
    .restore = nats_restore,
    .read = nats_read,
    .position_cmp = nats_position_cmp,
    .covers = nats_covers,
    .release = nats_release,
    .lag = nats_lag,
    .lag_unit = "messages",
    .position_number = nats_position_number,
    .close = nats_close,
};
