/*
 * nats.c - the `nats` sink: publish records to a NATS JetStream stream.
 *
 * How it fits: process() publishes every live record of the batch as one message on
 * `subject` with JetStream asynchronous publish, each carrying the header
 * `Nats-Msg-Id: <record id, 32 hex digits>`, then waits until the server acknowledged
 * every one (js_PublishAsyncComplete, at most `timeout`) before returning SL_OK. Any
 * message not acknowledged (timeout, no server, an error answer) makes the whole batch
 * SL_RETRY: the engine publishes the batch again, and messages the stream already stored
 * are dropped by it as duplicates.
 *
 * Delivery: the stream deduplicates messages by Nats-Msg-Id within its duplicate window
 * (`duplicate_window`, applied when this sink creates the stream). A record published
 * again within the window of its first publication is stored once; the sink keeps no
 * checkpoint of its own (committed() answers "nothing"), so after a crash the engine
 * replays from the other sinks' positions or from the start of the input. Exactly-once
 * into the stream therefore holds when every replay happens within the duplicate window
 * of the first publication; past it, a replayed record is stored again (at-least-once).
 *
 * Stream: at connection, the stream is looked up; when it does not exist it is created
 * with `subject` as its subject and the duplicate window. An existing stream is used as it
 * is, with its own window (the server gives every stream one; 2 minutes by default).
 *
 * Connection: made in process() when there is none; failing to connect is SL_RETRY, so an
 * outage is ridden out under the sink's retry policy.
 *
 * Threading: init, process and close on the sink's thread; the error handler runs on a
 * library thread and only bumps an atomic counter.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <nats/nats.h>

#include "sluice/alloc.h"
#include "sluice/buf.h"
#include "sluice/log.h"
#include "sluice/plugin.h"
#include "sluice/record.h"

/*
 * Invariants:
 *   1. js is set only with nc, and then the stream exists.
 *   2. failed counts messages of the current batch the server did not store; it is zeroed
 *      before each batch.
 */
struct nats_sink {
    const char *name;
    char *url, *subject, *stream;
    int64_t window_ms, timeout_ms;
    natsConnection *nc;
    jsCtx *js;
    atomic_uint failed;
    char first_error[256];
    atomic_int have_error;
    struct sl_buf out;
};

static void on_pub_error(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    (void)js;
    struct nats_sink *s = closure;
    atomic_fetch_add(&s->failed, 1);
    int expect = 0;
    if (atomic_compare_exchange_strong(&s->have_error, &expect, 1))
        snprintf(s->first_error, sizeof s->first_error, "%s (error %d)",
                 pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err), (int)pae->ErrCode);
}

static void disconnect(struct nats_sink *s)
{
    if (s->js)
        jsCtx_Destroy(s->js);
    s->js = NULL;
    if (s->nc)
        natsConnection_Destroy(s->nc);
    s->nc = NULL;
}

static sl_rc connect_now(struct nats_sink *s, struct sl_error *err)
{
    natsOptions *o = NULL;
    natsStatus st = natsOptions_Create(&o);
    if (st == NATS_OK)
        st = natsOptions_SetURL(o, s->url);
    if (st == NATS_OK)
        st = natsOptions_SetTimeout(o, 2000);
    if (st == NATS_OK)
        st = natsConnection_Connect(&s->nc, o);
    natsOptions_Destroy(o);
    if (st != NATS_OK) {
        disconnect(s);
        return sl_error_set(err, SL_RETRY, "sink %s: cannot connect to NATS at %s: %s", s->name,
                            s->url, natsStatus_GetText(st));
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.ErrHandler = on_pub_error;
    jo.PublishAsync.ErrHandlerClosure = s;
    jo.PublishAsync.MaxPending = 4096;
    if ((st = natsConnection_JetStream(&s->js, s->nc, &jo)) != NATS_OK) {
        disconnect(s);
        return sl_error_set(err, SL_RETRY, "sink %s: cannot open a JetStream context on %s: %s",
                            s->name, s->url, natsStatus_GetText(st));
    }
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    st = js_GetStreamInfo(&si, s->js, s->stream, NULL, &jerr);
    if (st == NATS_OK) {
        int64_t dup = si->Config ? si->Config->Duplicates : 0;
        jsStreamInfo_Destroy(si);
        sl_info(s->name, "publishing to stream %s (duplicate window %" PRId64 " ms)", s->stream,
                dup / 1000000);
        return SL_OK;
    }
    if (jerr != JSStreamNotFoundErr && st != NATS_NOT_FOUND) {
        disconnect(s);
        return sl_error_set(err, SL_RETRY, "sink %s: cannot look up stream %s on %s: %s", s->name,
                            s->stream, s->url, natsStatus_GetText(st));
    }
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subjects[1] = {s->subject};
    sc.Name = s->stream;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Duplicates = s->window_ms * 1000000; /* nanoseconds */
    jerr = 0;
    st = js_AddStream(&si, s->js, &sc, NULL, &jerr);
    if (st != NATS_OK) {
        const char *why = nats_GetLastError(NULL);
        sl_rc rc = jerr ? SL_ECONFIG : SL_RETRY;
        sl_error_set(err, rc,
                     "sink %s: cannot create stream %s (subject %s) on %s: %s; check that "
                     "no other stream takes that subject",
                     s->name, s->stream, s->subject, s->url, why ? why : natsStatus_GetText(st));
        disconnect(s);
        return rc;
    }
    jsStreamInfo_Destroy(si);
    sl_info(s->name, "created stream %s (subject %s, duplicate window %" PRId64 " ms)", s->stream,
            s->subject, s->window_ms);
    return SL_OK;
}

/* Drop whatever is still waiting for an acknowledgement (a retry publishes it again). */
static void drop_pending(struct nats_sink *s)
{
    natsMsgList pending = {0};
    if (js_PublishAsyncGetPendingList(&pending, s->js) == NATS_OK)
        natsMsgList_Destroy(&pending);
}

static sl_rc nats_process(void *state, struct sl_batch *b, struct sl_worker *w,
                          struct sl_error *err)
{
    (void)w;
    struct nats_sink *s = state;
    sl_rc rc;
    if (!s->js && (rc = connect_now(s, err)))
        return rc;
    atomic_store(&s->failed, 0);
    atomic_store(&s->have_error, 0);
    natsStatus st = NATS_OK;
    uint32_t sent = 0;
    for (uint32_t i = 0; i < b->n && st == NATS_OK; i++) {
        struct sl_record *r = &b->recs[i];
        if (r->flags & (SL_REC_DROPPED | SL_REC_BAD))
            continue;
        sl_buf_clear(&s->out);
        if ((rc = sl_record_write(r, &s->out)))
            return sl_error_set(err, rc, "sink %s: cannot serialize record %u of batch %" PRIu64,
                                s->name, i, b->seq);
        char id[33];
        sl_record_id_format(r->id, id);
        natsMsg *m = NULL;
        st = natsMsg_Create(&m, s->subject, NULL, s->out.data, (int)s->out.len);
        if (st == NATS_OK)
            st = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
        if (st == NATS_OK)
            st = js_PublishMsgAsync(s->js, &m, NULL);
        natsMsg_Destroy(m); /* NULL once the library took it */
        sent += st == NATS_OK;
    }
    if (st == NATS_OK) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = s->timeout_ms;
        st = js_PublishAsyncComplete(s->js, &po);
    }
    if (st != NATS_OK) {
        drop_pending(s);
        sl_error_set(err, SL_RETRY,
                     "sink %s: publishing to stream %s on %s: %s after %u message(s); the "
                     "batch is published again (the stream drops duplicates)",
                     s->name, s->stream, s->url, natsStatus_GetText(st), sent);
        if (st != NATS_TIMEOUT)
            disconnect(s);
        return SL_RETRY;
    }
    unsigned failed = atomic_load(&s->failed);
    if (failed)
        return sl_error_set(err, SL_RETRY,
                            "sink %s: stream %s did not store %u of %u message(s), first: %s; "
                            "the batch is published again (the stream drops duplicates)",
                            s->name, s->stream, failed, sent, s->first_error);
    return SL_OK;
}

static sl_rc nats_committed(void *state, const char *source, char **position, struct sl_error *err)
{
    (void)state;
    (void)source;
    (void)err;
    *position = NULL; /* the stream's duplicate window, not a checkpoint, prevents doubles */
    return SL_OK;
}

static void nats_close(void *state)
{
    struct nats_sink *s = state;
    if (!s)
        return;
    if (s->js)
        drop_pending(s);
    disconnect(s);
    sl_buf_fini(&s->out);
    sl_free(s->url);
    sl_free(s->subject);
    sl_free(s->stream);
    sl_free(s);
}

static sl_rc nats_init(const struct sl_plugin_ctx *ctx, void **state, struct sl_error *err)
{
    const struct sl_cfg_node *node = ctx->node;
    const char *url, *subject, *stream;
    uint64_t window, timeout;
    sl_rc rc;
    if ((rc = sl_cfg_get_str(node, "url", "nats://127.0.0.1:4222", &url, err)) ||
        (rc = sl_cfg_get_str(node, "subject", NULL, &subject, err)) ||
        (rc = sl_cfg_get_str(node, "stream", NULL, &stream, err)) ||
        (rc = sl_cfg_get_duration(node, "duplicate_window", 120000, &window, err)) ||
        (rc = sl_cfg_get_duration(node, "timeout", 5000, &timeout, err)))
        return rc;
    if (!subject || !*subject || strpbrk(subject, "*> \t"))
        return sl_cfg_error(err, subject ? sl_cfg_get(node, "subject") : node,
                            "sinks.%s.subject: a fixed subject (no wildcards, no blanks) is "
                            "required, e.g. events.clicks",
                            ctx->name);
    if (!stream || !*stream)
        return sl_cfg_error(err, node, "sinks.%s: missing required option stream", ctx->name);
    if (window < 1000)
        return sl_cfg_error(err, sl_cfg_get(node, "duplicate_window"),
                            "sinks.%s.duplicate_window: must be at least 1s", ctx->name);
    if (timeout < 100)
        return sl_cfg_error(err, sl_cfg_get(node, "timeout"),
                            "sinks.%s.timeout: must be at least 100ms", ctx->name);
    struct nats_sink *s = sl_calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    s->name = ctx->name;
    s->window_ms = (int64_t)window;
    s->timeout_ms = (int64_t)timeout;
    sl_buf_init(&s->out, (size_t)64 << 20);
    s->url = sl_strdup(url);
    s->subject = sl_strdup(subject);
    s->stream = sl_strdup(stream);
    if (!s->url || !s->subject || !s->stream) {
        nats_close(s);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    *state = s;
    return SL_OK;
}

static const struct sl_option nats_options[] = {
    {.name = "url",
     .type = SL_OPT_STRING,
     .def = "nats://127.0.0.1:4222",
     .help = "NATS server URL (a comma-separated list for a cluster)."},
    {.name = "subject",
     .type = SL_OPT_STRING,
     .required = 1,
     .help = "Subject every record is published on (fixed, no wildcards)."},
    {.name = "stream",
     .type = SL_OPT_STRING,
     .required = 1,
     .help = "JetStream stream that stores the subject; created with subject and "
             "duplicate_window when it does not exist."},
    {.name = "duplicate_window",
     .type = SL_OPT_DURATION,
     .def = "2m",
     .help = "Duplicate window of a stream this sink creates: a record published again "
             "within it is stored once."},
    {.name = "timeout",
     .type = SL_OPT_DURATION,
     .def = "5s",
     .help = "How long to wait for the stream to acknowledge a batch before retrying it."},
    {0},
};

const struct sl_plugin sl_sink_nats = {
    .kind = SL_PLUGIN_SINK,
    .name = "nats",
    .description = "Publish records to a NATS JetStream stream with Nats-Msg-Id = record id "
                   "(exactly-once into the stream within its duplicate window).",
    .options = nats_options,
    .init = nats_init,
    .process = nats_process,
    .committed = nats_committed,
    .close = nats_close,
};
