/*
 * kafka.c - the `kafka` sink: produce records to a Kafka topic.
 *
 * How it fits: process() produces every live record of the batch as one message on
 * `topic`: the value is the record as JSON, the key is the `key` expression evaluated on
 * the record (none when the option is absent or the result is null), and the headers are
 * `sluice-record-id: <record id, 32 hex digits>` followed by the configured `headers`.
 * It then serves delivery reports until every message of the batch has one (at most
 * `message_timeout` plus a second), and only then returns.
 *
 * Outcome of a batch:
 *   - every message delivered: SL_OK;
 *   - a message failed with an error that is not the record's fault (broker down, leader
 *     moving, timeout, a report that never came): SL_RETRY, and the engine produces the
 *     whole batch again; messages that did arrive the first time arrive again, with the
 *     same sluice-record-id;
 *   - a message failed because of the record itself (too large for the producer or the
 *     broker, refused as an invalid record): that record is rejected (class "sink", rule
 *     "kafka_<error name>"), kept in the dead-letter queue, and the rest counts as
 *     delivered: SL_OK. A record whose key expression fails is rejected (class
 *     "expression") before anything is produced.
 *
 * Delivery: at-least-once. The producer runs with enable.idempotence=true, so its own
 * internal retries within a session never store a message twice; a batch the engine
 * retries, or records replayed after a restart, are stored again. The sink keeps no
 * checkpoint (committed() answers "nothing"), like the http sink: after a restart the
 * engine replays from the other sinks' positions or from the start of the input.
 * Consumers deduplicate on the sluice-record-id header. Kafka transactions are not used.
 *
 * Producer: created in the first process() (never in inspection mode) and kept; a fatal
 * producer error (the idempotent producer lost its guarantees) destroys it, the batch is
 * retried, and the next attempt starts a new producer.
 *
 * Threading: everything runs on the sink's thread. Delivery reports are served by
 * rd_kafka_poll/rd_kafka_flush on that thread, so the per-batch bookkeeping needs no
 * locks. librdkafka's own log lines come from its threads and go to sl_log.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "sluice/alloc.h"
#include "sluice/buf.h"
#include "sluice/expr.h"
#include "sluice/log.h"
#include "sluice/plugin.h"
#include "sluice/record.h"

#include "plugins/common/kafka.h"

#define KAFKA_ID_HEADER "sluice-record-id"

/* Per-message outcome within the current batch. */
enum { KMSG_NONE = 0, KMSG_PENDING, KMSG_OK, KMSG_FAILED };

/*
 * Invariants:
 *   1. status/errs have cap entries; during a batch, status[i] describes record i of it.
 *   2. A message's opaque carries (gen << 32 | record index); reports whose gen is not the
 *      current batch's are from an abandoned attempt and are ignored.
 *   3. pending counts messages of the current gen with status KMSG_PENDING.
 *   4. hdrs holds the configured headers (heap strings).
 */
struct kafka_sink {
    const char *name; /* first: sl__kafka_on_log reads it through the opaque */
    char *brokers, *topic, *acks;
    struct sl_expr *key;         /* NULL: no key */
    struct sl__kafka_pairs hdrs; /* configured headers */
    uint64_t linger_ms, batch_bytes, timeout_ms;
    rd_kafka_t *rk;
    uint32_t gen;
    uint8_t *status;
    rd_kafka_resp_err_t *errs;
    uint32_t cap, pending;
    struct sl_buf out, keybuf;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct kafka_sink *s = opaque;
    uint64_t tag = (uint64_t)(uintptr_t)m->_private;
    uint32_t gen = (uint32_t)(tag >> 32), i = (uint32_t)tag;
    if (gen != s->gen || i >= s->cap || s->status[i] != KMSG_PENDING)
        return;
    s->status[i] = m->err ? KMSG_FAILED : KMSG_OK;
    s->errs[i] = m->err;
    s->pending--;
}

/* Errors caused by the record itself: producing it again cannot succeed. */
static int permanent(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE || e == RD_KAFKA_RESP_ERR_INVALID_RECORD;
}

static void destroy_producer(struct kafka_sink *s)
{
    if (!s->rk)
        return;
    rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    s->gen++; /* whatever reports the purge produces belong to no batch */
    rd_kafka_flush(s->rk, 1000);
    rd_kafka_destroy(s->rk);
    s->rk = NULL;
}

static sl_rc conf_set(struct kafka_sink *s, rd_kafka_conf_t *c, const char *k, const char *v,
                      struct sl_error *err)
{
    return sl__kafka_conf_set(c, k, v, "sink", s->name, err);
}

static sl_rc make_producer(struct kafka_sink *s, struct sl_error *err)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char num[32], why[512];
    sl_rc rc;
    int idem = strcmp(s->acks, "all") == 0;
    if ((rc = conf_set(s, c, "bootstrap.servers", s->brokers, err)) ||
        (rc = conf_set(s, c, "enable.idempotence", idem ? "true" : "false", err)) ||
        (rc = conf_set(s, c, "acks", s->acks, err)))
        goto fail;
    snprintf(num, sizeof num, "%" PRIu64, s->linger_ms);
    if ((rc = conf_set(s, c, "linger.ms", num, err)))
        goto fail;
    snprintf(num, sizeof num, "%" PRIu64, s->batch_bytes);
    if ((rc = conf_set(s, c, "batch.size", num, err)))
        goto fail;
    snprintf(num, sizeof num, "%" PRIu64, s->timeout_ms);
    if ((rc = conf_set(s, c, "message.timeout.ms", num, err)))
        goto fail;
    rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
    rd_kafka_conf_set_log_cb(c, sl__kafka_on_log); /* name is s's first member */
    rd_kafka_conf_set_opaque(c, s);
    s->rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, why, sizeof why);
    if (!s->rk) {
        rd_kafka_conf_destroy(c);
        return sl_error_set(err, SL_ECONFIG, "sink %s: cannot create a Kafka producer for %s: %s",
                            s->name, s->brokers, why);
    }
    return SL_OK;
fail:
    rd_kafka_conf_destroy(c);
    return rc;
}

static sl_rc grow(struct kafka_sink *s, uint32_t n, struct sl_error *err)
{
    if (n <= s->cap)
        return SL_OK;
    uint8_t *st = sl_realloc(s->status, n);
    if (!st)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    s->status = st;
    rd_kafka_resp_err_t *e = sl_realloc(s->errs, n * sizeof *e);
    if (!e)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    s->errs = e;
    s->cap = n;
    return SL_OK;
}

static void reject_kafka(struct kafka_sink *s, struct sl_batch *b, uint32_t i,
                         rd_kafka_resp_err_t e)
{
    char rule[96];
    snprintf(rule, sizeof rule, "kafka_%s", rd_kafka_err2name(e));
    struct sl_reject_info why = {.error_class = "sink", .rule = rule, .path = "$"};
    sl_record_reject_why(b, &b->recs[i], s->name, &why,
                         "topic %s on %s refused the record: %s (%s); it cannot be produced as it "
                         "is (e.g. shrink it below the broker's message.max.bytes)",
                         s->topic, s->brokers, rd_kafka_err2str(e), rd_kafka_err2name(e));
}

/*
 * The key of record i into s->keybuf (*has_key 0 when there is none). A failing
 * expression rejects the record and sets *rejected.
 */
static sl_rc eval_key(struct kafka_sink *s, struct sl_batch *b, uint32_t i, int *has_key,
                      int *rejected, struct sl_error *err)
{
    *has_key = 0;
    *rejected = 0;
    if (!s->key)
        return SL_OK;
    struct sl_record *r = &b->recs[i];
    struct sl_value v;
    struct sl_error eerr = {0};
    sl_rc rc = sl_expr_eval(s->key, r, &b->arena, &v, &eerr);
    if (rc == SL_ENOMEM)
        return sl_error_set(err, rc, "out of memory");
    if (rc) {
        struct sl_reject_info why = {
            .error_class = "expression", .rule = "key", .path = "$", .actual = eerr.msg};
        sl_record_reject_why(b, r, s->name, &why, "sinks.%s.key (%s): %s", s->name,
                             sl_expr_text(s->key), eerr.msg);
        *rejected = 1;
        return SL_OK;
    }
    sl_buf_clear(&s->keybuf);
    if (v.type == SL_V_NULL)
        return SL_OK;
    if (v.type == SL_V_STRING)
        rc = sl_buf_append(&s->keybuf, v.u.str, v.len);
    else
        rc = sl_value_write(&v, &s->keybuf);
    if (rc)
        return sl_error_set(err, rc, "sink %s: cannot write the key of record %u", s->name, i);
    *has_key = 1;
    return SL_OK;
}

static rd_kafka_headers_t *make_headers(struct kafka_sink *s, const uint64_t id[2])
{
    char hex[33];
    sl_record_id_format(id, hex);
    rd_kafka_headers_t *h = rd_kafka_headers_new(s->hdrs.n + 1);
    rd_kafka_header_add(h, KAFKA_ID_HEADER, -1, hex, 32);
    for (size_t k = 0; k < s->hdrs.n; k++)
        rd_kafka_header_add(h, s->hdrs.names[k], -1, s->hdrs.values[k], -1);
    return h;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Produce record i; SL_OK (queued, rejected or failed into status[i]) or fatal. */
static sl_rc produce_one(struct kafka_sink *s, struct sl_batch *b, uint32_t i, uint64_t deadline,
                         struct sl_error *err)
{
    struct sl_record *r = &b->recs[i];
    int has_key, rejected;
    sl_rc rc = eval_key(s, b, i, &has_key, &rejected, err);
    if (rc || rejected)
        return rc;
    sl_buf_clear(&s->out);
    if ((rc = sl_record_write(r, &s->out)))
        return sl_error_set(err, rc, "sink %s: cannot serialize record %u of batch %" PRIu64,
                            s->name, i, b->seq);
    for (;;) {
        rd_kafka_headers_t *h = make_headers(s, r->id);
        uint64_t tag = (uint64_t)s->gen << 32 | i;
        rd_kafka_resp_err_t e = rd_kafka_producev(
            s->rk, RD_KAFKA_V_TOPIC(s->topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_VALUE(s->out.data, s->out.len),
            RD_KAFKA_V_KEY(has_key ? s->keybuf.data : NULL, has_key ? s->keybuf.len : 0),
            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)tag), RD_KAFKA_V_END);
        if (!e) {
            s->status[i] = KMSG_PENDING;
            s->pending++;
            return SL_OK;
        }
        rd_kafka_headers_destroy(h); /* still ours when producev failed */
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && now_ms() < deadline) {
            rd_kafka_poll(s->rk, 50);
            continue;
        }
        if (permanent(e)) {
            reject_kafka(s, b, i, e);
            return SL_OK;
        }
        s->status[i] = KMSG_FAILED;
        s->errs[i] = e;
        return SL_OK;
    }
}

static sl_rc kafka_process(void *state, struct sl_batch *b, struct sl_worker *w,
                           struct sl_error *err)
{
    struct kafka_sink *s = state;
    sl_rc rc;
    char fatal[256];
    if (!s->rk && (rc = make_producer(s, err)))
        return rc;
    if ((rc = grow(s, b->n, err)))
        return rc;
    s->gen++;
    s->pending = 0;
    if (b->n)
        memset(s->status, KMSG_NONE, b->n);
    uint64_t deadline = now_ms() + s->timeout_ms + 1000;
    for (uint32_t i = 0; i < b->n; i++) {
        if (b->recs[i].flags & (SL_REC_DROPPED | SL_REC_BAD))
            continue;
        if ((rc = produce_one(s, b, i, deadline, err)))
            return rc;
    }
    while (s->pending && now_ms() < deadline)
        rd_kafka_flush(s->rk, 100);
    if (rd_kafka_fatal_error(s->rk, fatal, sizeof fatal)) {
        destroy_producer(s);
        return sl_error_set(err, SL_RETRY,
                            "sink %s: the Kafka producer for %s hit a fatal error (%s); the batch "
                            "is produced again by a new producer",
                            s->name, s->brokers, fatal);
    }
    uint32_t failed = 0, rejected = 0, first = UINT32_MAX;
    for (uint32_t i = 0; i < b->n; i++) {
        if (s->status[i] == KMSG_FAILED && permanent(s->errs[i])) {
            reject_kafka(s, b, i, s->errs[i]);
            rejected++;
        } else if (s->status[i] == KMSG_FAILED || s->status[i] == KMSG_PENDING) {
            if (first == UINT32_MAX)
                first = i;
            failed++;
        }
    }
    if (failed) {
        const char *why = s->status[first] == KMSG_PENDING
                              ? "no delivery report within message_timeout"
                              : rd_kafka_err2str(s->errs[first]);
        s->gen++; /* late reports of this attempt are ignored */
        return sl_error_set(err, SL_RETRY,
                            "sink %s: %u of the batch's message(s) to topic %s on %s were not "
                            "delivered, first: %s; the batch is produced again (consumers "
                            "deduplicate on the %s header)",
                            s->name, failed, s->topic, s->brokers, why, KAFKA_ID_HEADER);
    }
    if (rejected && w && w->keep_rejects && (rc = w->keep_rejects(w, b, err))) {
        sl_error_prefix(err,
                        "sink %s: records Kafka refused could not be put in the dead-letter "
                        "queue: ",
                        s->name);
        return rc;
    }
    return SL_OK;
}

static sl_rc kafka_committed(void *state, const char *source, char **position, struct sl_error *err)
{
    (void)state;
    (void)source;
    (void)err;
    *position = NULL; /* a topic holds no checkpoint of ours: nothing is ever committed */
    return SL_OK;
}

static void kafka_close(void *state)
{
    struct kafka_sink *s = state;
    if (!s)
        return;
    destroy_producer(s);
    sl_expr_destroy(s->key);
    sl__kafka_pairs_fini(&s->hdrs);
    sl_free(s->status);
    sl_free(s->errs);
    sl_buf_fini(&s->out);
    sl_buf_fini(&s->keybuf);
    sl_free(s->brokers);
    sl_free(s->topic);
    sl_free(s->acks);
    sl_free(s);
}

static const char *refuse_header(const char *name)
{
    return strcasecmp(name, KAFKA_ID_HEADER) == 0
               ? "cannot be used as a header name (" KAFKA_ID_HEADER
                 " is set by the sink itself); rename it"
               : NULL;
}

static sl_rc kafka_init(const struct sl_plugin_ctx *ctx, void **state, struct sl_error *err)
{
    const struct sl_cfg_node *node = ctx->node;
    const char *brokers, *topic, *acks;
    uint64_t linger, batch_bytes, timeout;
    sl_rc rc;
    if ((rc = sl_cfg_get_str(node, "brokers", NULL, &brokers, err)) ||
        (rc = sl_cfg_get_str(node, "topic", NULL, &topic, err)) ||
        (rc = sl_cfg_get_str(node, "acks", "all", &acks, err)) ||
        (rc = sl_cfg_get_duration(node, "linger", 5, &linger, err)) ||
        (rc = sl_cfg_get_size(node, "batch_bytes", 1 << 20, &batch_bytes, err)) ||
        (rc = sl_cfg_get_duration(node, "message_timeout", 30000, &timeout, err)))
        return rc;
    if (!brokers || !*brokers)
        return sl_cfg_error(err, node,
                            "sinks.%s: missing required option brokers (host:port[,host:port])",
                            ctx->name);
    if (!topic || !*topic)
        return sl_cfg_error(err, node, "sinks.%s: missing required option topic", ctx->name);
    if (timeout < 100)
        return sl_cfg_error(err, sl_cfg_get(node, "message_timeout"),
                            "sinks.%s.message_timeout: must be at least 100ms", ctx->name);
    if (linger > 900000)
        return sl_cfg_error(err, sl_cfg_get(node, "linger"), "sinks.%s.linger: must be at most 15m",
                            ctx->name);
    if (batch_bytes < 1 || batch_bytes > 2147483647)
        return sl_cfg_error(err, sl_cfg_get(node, "batch_bytes"),
                            "sinks.%s.batch_bytes: must be between 1 byte and 2GiB", ctx->name);
    struct kafka_sink *s = sl_calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    s->name = ctx->name;
    s->linger_ms = linger;
    s->batch_bytes = batch_bytes;
    s->timeout_ms = timeout;
    sl_buf_init(&s->out, (size_t)64 << 20);
    sl_buf_init(&s->keybuf, (size_t)1 << 20);
    s->brokers = sl_strdup(brokers);
    s->topic = sl_strdup(topic);
    s->acks = sl_strdup(acks);
    if (!s->brokers || !s->topic || !s->acks) {
        kafka_close(s);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    const struct sl_cfg_node *k = sl_cfg_get(node, "key");
    if (k && !k->is_null) {
        size_t col = 0;
        struct sl_error cerr = {0};
        if (k->kind != SL_CFG_SCALAR ||
            sl_expr_compile(k->str, strlen(k->str), &s->key, &col, &cerr)) {
            kafka_close(s);
            return sl_cfg_error(err, k, "sinks.%s.key: not a valid expression: %s", ctx->name,
                                k->kind == SL_CFG_SCALAR ? cerr.msg : "expected a string");
        }
    }
    if ((rc = sl__kafka_pairs_parse(ctx, "sinks", "headers", refuse_header, &s->hdrs, err))) {
        kafka_close(s);
        return rc;
    }
    *state = s;
    return SL_OK;
}

static const struct sl_option kafka_options[] = {
    {.name = "brokers",
     .type = SL_OPT_STRING,
     .required = 1,
     .help = "Bootstrap servers, host:port[,host:port...]."},
    {.name = "topic", .type = SL_OPT_STRING, .required = 1, .help = "Topic every record goes to."},
    {.name = "key",
     .type = SL_OPT_EXPR,
     .help = "Expression giving each message's key (a string as its bytes, other values as "
             "JSON text, null or absent: no key)."},
    {.name = "headers",
     .type = SL_OPT_MAP,
     .help = "Extra headers on every message, name: value (sluice-record-id is always set)."},
    {.name = "acks",
     .type = SL_OPT_ENUM,
     .def = "all",
     .choices = "all|1",
     .help = "Acknowledgement the producer waits for: all (with the idempotent producer) or 1 "
             "(leader only; turns idempotence off)."},
    {.name = "linger",
     .type = SL_OPT_DURATION,
     .def = "5ms",
     .help = "How long the producer waits to fill a request (linger.ms)."},
    {.name = "batch_bytes",
     .type = SL_OPT_SIZE,
     .def = "1MiB",
     .help = "Most bytes in one request to a partition (batch.size)."},
    {.name = "message_timeout",
     .type = SL_OPT_DURATION,
     .def = "30s",
     .help = "How long a message may take to be delivered before the batch is retried "
             "(message.timeout.ms)."},
    {0},
};

const struct sl_plugin sl_sink_kafka = {
    .kind = SL_PLUGIN_SINK,
    .name = "kafka",
    .description = "Produce records to a Kafka topic with an idempotent producer and a "
                   "sluice-record-id header (at-least-once; consumers deduplicate on the "
                   "header).",
    .options = kafka_options,
    .init = kafka_init,
    .process = kafka_process,
    .committed = kafka_committed,
    .close = kafka_close,
};
