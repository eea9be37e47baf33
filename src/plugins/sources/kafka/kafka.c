/*
 * kafka.c - the `kafka` source: read Kafka topics as a member of a consumer group.
 *
 * How it fits: the source subscribes to `topics` in consumer group `group`; the group
 * coordinator shares the partitions among the members (sluice processes, or any other
 * client of the group). Each message's value is one record (JSON text, parsed
 * downstream). A batch holds messages of one partition only, so that its position is one
 * partition's offset: "<topic>/<partition>@<next offset>". The batch names its checkpoint
 * "<source>#<topic>/<partition>" (b->checkpoint), so every sink keeps one committed
 * position per partition, in the same transaction as the records (DESIGN §4 and §8).
 *
 * Offsets: Kafka's own committed offsets are never read. When the group assigns a
 * partition, the source asks the engine for the lowest position the sinks committed for
 * that partition (sl_plugin_ctx.committed_lookup) and starts there; with none, at the
 * start or the end of the partition (`start`). Once every sink has committed past a batch
 * (release()), its offset is also committed to the group coordinator, asynchronously and
 * for monitoring only (kafka-consumer-groups shows the lag); a lost commit there costs
 * nothing.
 *
 * Rebalances (eager or cooperative, whatever the group uses). On revocation the source
 * drops what it buffered of those partitions and waits, up to `rebalance_timeout`, until
 * every batch it emitted from them has been committed by every sink; only then does it
 * give them up, so the next owner starts exactly where this one stopped. When the wait
 * times out (a sink is down), the next owner starts at the last committed position and
 * reads again what this member had in flight; such records carry the same record ids
 * (the id hashes pipeline, source, topic and partition with the offset), so sinks that
 * upsert on the record id or a key store them once.
 *
 * Backpressure: a poller thread moves messages from librdkafka into a buffer of at most
 * `buffer_records` messages / `buffer_bytes` that read() takes batches from. When the
 * buffer is full the poller stops polling, and librdkafka's bounded prefetch queue stops
 * its fetcher. When it stays full for a second (the pipeline is held up), the poller
 * pauses every assigned partition and polls again, which keeps the member in the group
 * (rebalances are served, max.poll.interval.ms is never reached) however long the hold
 * lasts; once read() has drained the buffer to half, it resumes them (poller_main).
 *
 * Metadata: unless `metadata_field` is empty, a record that is a JSON object gets one more
 * member, last, {"<metadata_field>": {"topic", "partition", "offset", "timestamp" (ms,
 * null when the broker has none), "key" (string or null), "headers" {name: value}}}. A key
 * or header value that is not UTF-8 shows as null with its bytes base64-encoded under
 * "key_base64" / in "headers_base64". The record's original bytes (orig, what the
 * dead-letter queue keeps) are the message value unchanged. _offset is the message offset.
 *
 * --once: the source ends when every assigned partition has reached its end
 * (enable.partition.eof) and the buffer is empty.
 *
 * Threading: read(), release() (sink threads), the poller and its rebalance callback
 * share struct kafka_src under mu; the invariants below hold whenever mu is free.
 * Messages taken out of the buffer by read() are owned by that read() call.
 *
 *   1. parts[0..nparts) are every partition ever assigned in this run; a part is never
 *      freed before close, so emission records may point to it.
 *   2. A part's buffered messages (its ring) are in offset order and all >= its `emitted`.
 *   3. fifo holds one entry per emitted batch not yet released, in emission order, which
 *      is the order the engine releases them in.
 *   4. buffered/buffered_bytes are the sums over all parts' buffers.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "sluice/alloc.h"
#include "sluice/buf.h"
#include "sluice/json.h"
#include "sluice/log.h"
#include "sluice/plugin.h"
#include "sluice/record.h"

#include "plugins/common/kafka.h"

#define KAFKA_POLL_MS 100          /* one consumer poll */
#define KAFKA_READ_WAIT_MS 150     /* longest wait of read() for a message */
#define KAFKA_PAUSE_AFTER_MS 1000  /* buffer full this long: pause the partitions */
#define KAFKA_COMMIT_EVERY_MS 1000 /* offsets to the group coordinator (monitoring) */
#define KAFKA_MAX_PARTS 65536      /* partitions one member may have been assigned */
#define KAFKA_BATCH_MAX 100000     /* batch_size upper bound */
#define KAFKA_MAX_TOPICS 256
#define KAFKA_META_MAX (64u << 10) /* key + headers copied into the metadata member */

/* A partition of a topic this member was assigned at some point (invariant 1). */
struct part {
    char *topic;
    int32_t partition;
    char *ckpt;                /* "<source>#<topic>/<partition>" */
    uint64_t id_base[2];       /* record ids: (pipeline, source, "<topic>/<partition>") + offset */
    rd_kafka_message_t **ring; /* buffered messages: ring[(rhead + i) % rcap], i < n */
    size_t rhead, n, rcap;
    int assigned;
    int eof; /* --once: the fetcher reported the end, at offset eof_at */
    int64_t eof_at;
    int64_t emitted;  /* next offset after the last emitted message, -1: none yet */
    int64_t released; /* next offset after the last batch every sink committed */
    int64_t reported; /* last offset committed to the group coordinator */
};

struct emission {
    struct emission *next;
    struct part *p;
    int64_t next_offset;
};

struct kafka_src {
    const char *name; /* first: sl__kafka_on_log reads it through the opaque */
    const char *pipeline;
    char *brokers, *group, *start, *meta_field;
    size_t meta_len;
    rd_kafka_message_t **taken; /* read(): the batch_size messages of one batch */
    struct sl_buf meta;         /* read(): a record's metadata member */
    char **topics;
    size_t ntopics;
    struct sl__kafka_pairs props; /* more librdkafka settings */
    uint32_t batch_size;
    size_t batch_bytes;
    uint64_t buffer_records, buffer_bytes, rebalance_ms;
    int once;
    sl_rc (*lookup)(void *, const char *, char **, struct sl_error *);
    void *lookup_handle;

    rd_kafka_t *rk;
    pthread_t poller;
    int poller_started;
    atomic_int stop;
    int closing;

    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled on new messages, releases and fatal errors */
    struct part **parts;
    size_t nparts, capparts;
    size_t rr;
    size_t buffered, buffered_bytes;
    int paused;
    int assigned_once;
    uint64_t started_ms, assign_ms; /* the poller's start; assign_timeout */
    struct emission *fifo_head, *fifo_tail;
    sl_rc fatal;
    char fatal_msg[SL_ERROR_MSG_MAX];
    uint64_t pauses, rebalances;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void deadline_in(struct timespec *ts, uint64_t ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Position text "<topic>/<partition>@<offset>": the offset, or -1 when malformed. */
static int64_t position_offset(const char *pos)
{
    const char *at = pos ? strrchr(pos, '@') : NULL;
    if (!at || at[1] < '0' || at[1] > '9')
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(at + 1, &end, 10);
    if (errno || *end || v < 0)
        return -1;
    return (int64_t)v;
}

/* Under mu. A fatal error ends the pipeline at the next read(). */
static void set_fatal(struct kafka_src *s, sl_rc rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_fatal(struct kafka_src *s, sl_rc rc, const char *fmt, ...)
{
    if (s->fatal)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->fatal_msg, sizeof s->fatal_msg, fmt, ap);
    va_end(ap);
    s->fatal = rc;
    pthread_cond_broadcast(&s->cv);
}

static struct part *find_part(struct kafka_src *s, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < s->nparts; i++)
        if (s->parts[i]->partition == partition && strcmp(s->parts[i]->topic, topic) == 0)
            return s->parts[i];
    return NULL;
}

/* Under mu. The part for (topic, partition), created on first sight; NULL on ENOMEM. */
static struct part *get_part(struct kafka_src *s, const char *topic, int32_t partition)
{
    struct part *p = find_part(s, topic, partition);
    if (p)
        return p;
    if (s->nparts >= KAFKA_MAX_PARTS)
        return NULL;
    if (s->nparts == s->capparts) {
        size_t cap = s->capparts ? s->capparts * 2 : 16;
        struct part **np = sl_realloc(s->parts, cap * sizeof *np);
        if (!np)
            return NULL;
        s->parts = np;
        s->capparts = cap;
    }
    p = sl_calloc(1, sizeof *p);
    if (!p)
        return NULL;
    char ident[512];
    snprintf(ident, sizeof ident, "%s/%" PRId32, topic, partition);
    size_t clen = strlen(s->name) + 1 + strlen(ident) + 1;
    p->topic = sl_strdup(topic);
    p->ckpt = sl_malloc(clen);
    if (!p->topic || !p->ckpt) {
        sl_free(p->topic);
        sl_free(p->ckpt);
        sl_free(p);
        return NULL;
    }
    snprintf(p->ckpt, clen, "%s#%s", s->name, ident);
    p->partition = partition;
    p->emitted = p->released = p->reported = -1;
    sl_record_id_base(s->pipeline, s->name, ident, p->id_base);
    s->parts[s->nparts++] = p;
    return p;
}

/* Under mu. Drop what part p buffered (revoked, or a seek). */
static void drop_buffer(struct kafka_src *s, struct part *p)
{
    for (size_t i = 0; i < p->n; i++) {
        rd_kafka_message_t *m = p->ring[(p->rhead + i) % p->rcap];
        s->buffered--;
        s->buffered_bytes -= m->len;
        rd_kafka_message_destroy(m);
    }
    p->rhead = p->n = 0;
}

/* Under mu. Append m to p's ring, growing it (amortized: no allocation per message).
   -1 on ENOMEM. */
static int ring_push(struct part *p, rd_kafka_message_t *m)
{
    if (p->n == p->rcap) {
        size_t cap = p->rcap ? p->rcap * 2 : 256;
        rd_kafka_message_t **r = sl_malloc(cap * sizeof *r);
        if (!r)
            return -1;
        for (size_t i = 0; i < p->n; i++)
            r[i] = p->ring[(p->rhead + i) % p->rcap];
        sl_free(p->ring);
        p->ring = r;
        p->rcap = cap;
        p->rhead = 0;
    }
    p->ring[(p->rhead + p->n) % p->rcap] = m;
    p->n++;
    return 0;
}

/* --------------------------------------------------------------------------------------- */
/* Rebalances (on the poller's thread, inside rd_kafka_consumer_poll, or in close).         */

static void on_assign(struct kafka_src *s, rd_kafka_topic_partition_list_t *list, int cooperative)
{
    struct sl_error err;
    char summary[512];
    size_t used = 0;
    summary[0] = '\0';
    for (int i = 0; i < list->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &list->elems[i];
        pthread_mutex_lock(&s->mu);
        struct part *p = get_part(s, tp->topic, tp->partition);
        if (!p) {
            set_fatal(s, SL_ENOMEM, "out of memory (or more than %d partitions)", KAFKA_MAX_PARTS);
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        const char *ckpt = p->ckpt;
        pthread_mutex_unlock(&s->mu);
        char *pos = NULL;
        sl_error_clear(&err);
        sl_rc rc = s->lookup ? s->lookup(s->lookup_handle, ckpt, &pos, &err) : SL_OK;
        pthread_mutex_lock(&s->mu);
        int64_t off = pos ? position_offset(pos) : -1;
        if (rc)
            set_fatal(s, rc, "partition %s/%" PRId32 " assigned, but %s", tp->topic, tp->partition,
                      err.msg);
        else if (pos && off < 0)
            set_fatal(s, SL_EINVAL,
                      "checkpoint \"%s\" of %s is not a Kafka position; was the source's type "
                      "changed? `sluice reset` the sinks to start over",
                      pos, ckpt);
        sl_free(pos);
        drop_buffer(s, p);
        p->assigned = 1;
        p->eof = 0;
        if (off >= 0) {
            tp->offset = off;
            p->emitted = p->released = off;
        } else {
            tp->offset =
                strcmp(s->start, "latest") == 0 ? RD_KAFKA_OFFSET_END : RD_KAFKA_OFFSET_BEGINNING;
            p->emitted = p->released = -1;
        }
        pthread_mutex_unlock(&s->mu);
        if (used < sizeof summary - 1) {
            char one[160];
            if (off >= 0)
                snprintf(one, sizeof one, "%s%s/%" PRId32 "@%" PRId64, i ? ", " : "", tp->topic,
                         tp->partition, off);
            else
                snprintf(one, sizeof one, "%s%s/%" PRId32 " from the %s", i ? ", " : "", tp->topic,
                         tp->partition, strcmp(s->start, "latest") == 0 ? "end" : "start");
            used += (size_t)snprintf(summary + used, sizeof summary - used, "%s", one);
        }
    }
    rd_kafka_error_t *e = NULL;
    rd_kafka_resp_err_t re = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (cooperative)
        e = rd_kafka_incremental_assign(s->rk, list);
    else
        re = rd_kafka_assign(s->rk, list);
    pthread_mutex_lock(&s->mu);
    if (e) {
        set_fatal(s, SL_EIO, "cannot take the assigned partitions: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    } else if (re) {
        set_fatal(s, SL_EIO, "cannot take the assigned partitions: %s", rd_kafka_err2str(re));
    }
    s->assigned_once = 1;
    s->rebalances++;
    if (s->paused)
        rd_kafka_pause_partitions(s->rk, list);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    sl_info(s->name, "group %s assigned %d partition%s: %s", s->group, list->cnt,
            list->cnt == 1 ? "" : "s", list->cnt ? summary : "(none)");
}

/* Under mu: 1 while a partition of list has batches emitted and not yet committed. */
static int revoked_in_flight(struct kafka_src *s, rd_kafka_topic_partition_list_t *list)
{
    for (int i = 0; i < list->cnt; i++) {
        struct part *p = find_part(s, list->elems[i].topic, list->elems[i].partition);
        if (p && p->emitted > p->released)
            return 1;
    }
    return 0;
}

static void on_revoke(struct kafka_src *s, rd_kafka_topic_partition_list_t *list, int cooperative)
{
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < list->cnt; i++) {
        struct part *p = find_part(s, list->elems[i].topic, list->elems[i].partition);
        if (p) {
            p->assigned = 0;
            drop_buffer(s, p);
        }
    }
    /* Hand over only what every sink has: wait for the batches in flight. */
    uint64_t until = now_ms() + s->rebalance_ms;
    int waited = 0;
    while (!s->closing && !s->fatal && revoked_in_flight(s, list) && now_ms() < until) {
        struct timespec ts;
        deadline_in(&ts, 100);
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        waited = 1;
    }
    int left = revoked_in_flight(s, list);
    s->rebalances++;
    pthread_mutex_unlock(&s->mu);
    if (left && !s->closing)
        sl_warn(s->name,
                "giving up %d partition%s with batches not yet committed by every sink (waited "
                "%" PRIu64 " ms, rebalance_timeout); their next owner reads them again from the "
                "last checkpoint",
                list->cnt, list->cnt == 1 ? "" : "s", s->rebalance_ms);
    else if (waited)
        sl_info(s->name, "every batch of the revoked partitions is committed; handing them over");
    if (cooperative) {
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(s->rk, list);
        if (e)
            rd_kafka_error_destroy(e);
    } else {
        rd_kafka_assign(s->rk, NULL);
    }
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t why,
                         rd_kafka_topic_partition_list_t *list, void *opaque)
{
    struct kafka_src *s = opaque;
    int cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (why == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        on_assign(s, list, cooperative);
    } else if (why == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        on_revoke(s, list, cooperative);
    } else {
        pthread_mutex_lock(&s->mu);
        set_fatal(s, SL_EIO, "group %s rebalance failed: %s", s->group, rd_kafka_err2str(why));
        pthread_mutex_unlock(&s->mu);
        rd_kafka_assign(rk, NULL);
    }
}

/* --------------------------------------------------------------------------------------- */
/* The poller thread.                                                                       */

/* Under mu: pause or resume every assigned partition. */
static void set_paused(struct kafka_src *s, int pause)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)s->nparts);
    for (size_t i = 0; i < s->nparts; i++)
        if (s->parts[i]->assigned)
            rd_kafka_topic_partition_list_add(l, s->parts[i]->topic, s->parts[i]->partition);
    if (pause)
        rd_kafka_pause_partitions(s->rk, l);
    else
        rd_kafka_resume_partitions(s->rk, l);
    s->paused = pause;
    if (pause)
        s->pauses++;
    sl_debug(s->name, "%s %d partition%s: %zu messages, %zu bytes buffered",
             pause ? "paused" : "resumed", l->cnt, l->cnt == 1 ? "" : "s", s->buffered,
             s->buffered_bytes);
    rd_kafka_topic_partition_list_destroy(l);
}

/* Send the released offsets to the group coordinator (monitoring only). */
static void report_offsets(struct kafka_src *s, int async)
{
    pthread_mutex_lock(&s->mu);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
    for (size_t i = 0; i < s->nparts; i++) {
        struct part *p = s->parts[i];
        if (p->assigned && p->released > p->reported) {
            rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = p->released;
            p->reported = p->released;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (l->cnt)
        rd_kafka_commit(s->rk, l, async);
    rd_kafka_topic_partition_list_destroy(l);
}

static void take_message(struct kafka_src *s, rd_kafka_message_t *m)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    pthread_mutex_lock(&s->mu);
    struct part *p = find_part(s, topic, m->partition);
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (p) {
            p->eof = 1;
            p->eof_at = m->offset;
        }
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        rd_kafka_message_destroy(m);
        return;
    }
    if (m->err) {
        pthread_mutex_unlock(&s->mu);
        char fatal[256];
        if (m->err == RD_KAFKA_RESP_ERR__FATAL &&
            rd_kafka_fatal_error(s->rk, fatal, sizeof fatal)) {
            pthread_mutex_lock(&s->mu);
            set_fatal(s, SL_EIO, "Kafka consumer failed: %s", fatal);
            pthread_mutex_unlock(&s->mu);
        } else {
            sl_warn(s->name, "Kafka %s: %s", s->brokers, rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
        return;
    }
    /* Invariant 2: a message of a part not assigned now, or behind it, is stale. */
    int stale = !p || !p->assigned || (p->emitted >= 0 && m->offset < p->emitted) ||
                (p->n && m->offset <= p->ring[(p->rhead + p->n - 1) % p->rcap]->offset);
    if (stale || ring_push(p, m) != 0) {
        if (!stale)
            set_fatal(s, SL_ENOMEM, "out of memory buffering a message");
        pthread_mutex_unlock(&s->mu);
        rd_kafka_message_destroy(m);
        return;
    }
    p->eof = 0;
    s->buffered++;
    s->buffered_bytes += m->len;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Under mu. */
static int buffer_full(const struct kafka_src *s)
{
    return s->buffered >= s->buffer_records || s->buffered_bytes >= s->buffer_bytes;
}

/*
 * The poller. While the buffer has room it polls, which moves messages from librdkafka's
 * prefetch queue into the buffer. When the buffer is full it stops polling and waits for
 * read() to take from it: librdkafka's own queue (queued.max.messages.kbytes) then fills
 * and its fetcher stops by itself, the cheapest backpressure there is. Only when the
 * buffer stays full for KAFKA_PAUSE_AFTER_MS (the pipeline is held up, not just slower)
 * does it pause the partitions and poll again: a member that does not poll serves no
 * rebalance and is dropped from the group after max.poll.interval.ms. Pausing discards
 * what the fetcher had queued (fetched again on resume), so it is kept for that case.
 */
static void *poller_main(void *arg)
{
    struct kafka_src *s = arg;
    uint64_t last_report = now_ms(), full_since = 0;
    while (!atomic_load(&s->stop)) {
        pthread_mutex_lock(&s->mu);
        int hold = 0;
        if (!buffer_full(s)) {
            full_since = 0;
            if (s->paused && s->buffered <= s->buffer_records / 2 &&
                s->buffered_bytes <= s->buffer_bytes / 2)
                set_paused(s, 0);
        } else if (!s->paused) {
            if (!full_since)
                full_since = now_ms();
            if (now_ms() - full_since >= KAFKA_PAUSE_AFTER_MS)
                set_paused(s, 1);
            else
                hold = 1;
        }
        if (hold) {
            struct timespec ts;
            deadline_in(&ts, 10);
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        }
        pthread_mutex_unlock(&s->mu);
        if (!hold) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(s->rk, KAFKA_POLL_MS);
            if (m)
                take_message(s, m);
        }
        if (now_ms() - last_report >= KAFKA_COMMIT_EVERY_MS) {
            report_offsets(s, 1);
            last_report = now_ms();
        }
    }
    return NULL;
}

static sl_rc start_consumer(struct kafka_src *s, struct sl_error *err)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)s->ntopics);
    for (size_t i = 0; i < s->ntopics; i++)
        rd_kafka_topic_partition_list_add(l, s->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(s->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        return sl_error_set(err, SL_EIO, "source %s: cannot subscribe to the topics: %s", s->name,
                            rd_kafka_err2str(e));
    if (pthread_create(&s->poller, NULL, poller_main, s) != 0)
        return sl_error_set(err, SL_ENOMEM, "source %s: cannot start the poller thread", s->name);
    s->poller_started = 1;
    s->started_ms = now_ms();
    sl_info(s->name, "joined consumer group %s on %s", s->group, s->brokers);
    return SL_OK;
}

/* --------------------------------------------------------------------------------------- */
/* Records.                                                                                  */

static void put_base64(struct sl_buf *b, const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    sl_buf_append(b, "\"", 1);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        char q[4] = {tab[(v >> 18) & 63], tab[(v >> 12) & 63], i + 1 < n ? tab[(v >> 6) & 63] : '=',
                     i + 2 < n ? tab[v & 63] : '='};
        sl_buf_append(b, q, 4);
    }
    sl_buf_append(b, "\"", 1);
}

/* A key or header value: a JSON string when it is UTF-8 (1), else null (0). */
static int put_text_or_null(struct sl_buf *b, const void *p, size_t n)
{
    size_t bad;
    if (!p) {
        sl_buf_append(b, "null", 4);
        return 1;
    }
    if (n > KAFKA_META_MAX || !sl_utf8_valid(p, n, &bad)) {
        sl_buf_append(b, "null", 4);
        return 0;
    }
    sl_json_write_str(b, p, n);
    return 1;
}

/* The metadata member's value for m into b (appended). */
/*
 * An upper bound of what put_meta appends for m (JSON escapes are at most 6 bytes per
 * byte, base64 4 per 3), reserved up front so that no append in it can fail.
 */
static size_t meta_bound(const rd_kafka_message_t *m)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    size_t n =
        256 + 6 * strlen(topic) + 8 * (m->key_len < KAFKA_META_MAX ? m->key_len : KAFKA_META_MAX);
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h) {
        const char *name;
        const void *val;
        size_t len;
        for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &val, &len) == 0; i++)
            n += 16 + 12 * strlen(name) + 8 * (len < KAFKA_META_MAX ? len : KAFKA_META_MAX);
    }
    return n;
}

static void put_meta(struct sl_buf *b, const rd_kafka_message_t *m)
{
    char num[96];
    const char *topic = rd_kafka_topic_name(m->rkt);
    sl_buf_append(b, "{\"topic\":", 9);
    sl_json_write_str(b, topic, strlen(topic));
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    int n = snprintf(num, sizeof num, ",\"partition\":%" PRId32 ",\"offset\":%" PRId64,
                     m->partition, m->offset);
    sl_buf_append(b, num, (size_t)n);
    if (ts >= 0)
        n = snprintf(num, sizeof num, ",\"timestamp\":%" PRId64, ts);
    else
        n = snprintf(num, sizeof num, ",\"timestamp\":null");
    sl_buf_append(b, num, (size_t)n);
    sl_buf_append(b, ",\"key\":", 7);
    if (!put_text_or_null(b, m->key, m->key_len)) {
        sl_buf_append(b, ",\"key_base64\":", 14);
        put_base64(b, m->key, m->key_len > KAFKA_META_MAX ? KAFKA_META_MAX : m->key_len);
    }
    rd_kafka_headers_t *h = NULL;
    sl_buf_append(b, ",\"headers\":{", 12);
    size_t nb = 0;
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h) {
        const char *name;
        const void *val;
        size_t len;
        for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &val, &len) == 0; i++) {
            size_t bad;
            if (i)
                sl_buf_append(b, ",", 1);
            sl_json_write_str(b, name, sl_utf8_valid(name, strlen(name), &bad) ? strlen(name) : 0);
            sl_buf_append(b, ":", 1);
            if (!put_text_or_null(b, val, len))
                nb++;
        }
        sl_buf_append(b, "}", 1);
        if (nb) {
            sl_buf_append(b, ",\"headers_base64\":{", 19);
            size_t k = 0;
            for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &val, &len) == 0; i++) {
                size_t bad;
                if (!val || (len <= KAFKA_META_MAX && sl_utf8_valid(val, len, &bad)))
                    continue;
                if (k++)
                    sl_buf_append(b, ",", 1);
                sl_json_write_str(b, name,
                                  sl_utf8_valid(name, strlen(name), &bad) ? strlen(name) : 0);
                sl_buf_append(b, ":", 1);
                put_base64(b, val, len > KAFKA_META_MAX ? KAFKA_META_MAX : len);
            }
            sl_buf_append(b, "}", 1);
        }
    } else {
        sl_buf_append(b, "}", 1);
    }
    sl_buf_append(b, "}", 1);
}

/* Fill record r of b from m. */
static sl_rc fill_record(struct kafka_src *s, struct part *p, struct sl_batch *b,
                         const rd_kafka_message_t *m, struct sl_buf *meta, struct sl_error *err)
{
    struct sl_record *r = sl_batch_add(b);
    size_t len = m->len;
    char *orig = r ? sl_arena_alloc(&b->arena, len + 1) : NULL;
    if (!orig)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    if (len)
        memcpy(orig, m->payload, len);
    orig[len] = '\0';
    r->orig = r->text = orig;
    r->orig_len = r->text_len = (uint32_t)len;
    r->offset = (uint64_t)m->offset;
    sl_record_id(p->id_base, (uint64_t)m->offset, r->id);
    b->bytes += len;
    /*
     * The metadata member goes last, before the object's closing brace, so that an error in
     * a malformed value points at the same byte as in the value itself. A value that does
     * not end in '}' after '{' (not an object, or cut short) is left alone.
     */
    size_t i = 0, e = len;
    while (i < len && (orig[i] == ' ' || orig[i] == '\t' || orig[i] == '\r' || orig[i] == '\n'))
        i++;
    while (e > i && (orig[e - 1] == ' ' || orig[e - 1] == '\t' || orig[e - 1] == '\r' ||
                     orig[e - 1] == '\n'))
        e--;
    if (!*s->meta_field || e - i < 2 || orig[i] != '{' || orig[e - 1] != '}')
        return SL_OK;
    size_t j = e - 1; /* the closing brace; is the object empty? */
    while (j > i + 1 && (orig[j - 1] == ' ' || orig[j - 1] == '\t' || orig[j - 1] == '\r' ||
                         orig[j - 1] == '\n'))
        j--;
    int empty = j == i + 1;
    sl_buf_clear(meta);
    if (sl_buf_reserve(meta, meta_bound(m) + s->meta_len * 6 + 8))
        return sl_error_set(err, SL_ENOMEM, "out of memory (metadata of offset %" PRId64 ")",
                            m->offset);
    sl_buf_append(meta, empty ? "" : ",", empty ? 0 : 1);
    sl_json_write_str(meta, s->meta_field, s->meta_len);
    sl_buf_append(meta, ":", 1);
    put_meta(meta, m);
    if ((uint64_t)len + meta->len > UINT32_MAX - 1)
        return SL_OK; /* cannot grow: leave the record as it is */
    size_t tlen = len + meta->len;
    char *text = sl_arena_alloc(&b->arena, tlen + 1);
    if (!text)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    memcpy(text, orig, e - 1);
    memcpy(text + e - 1, meta->data, meta->len);
    memcpy(text + e - 1 + meta->len, orig + e - 1, len - (e - 1));
    text[tlen] = '\0';
    r->text = text;
    r->text_len = (uint32_t)tlen;
    return SL_OK;
}

/* Under mu: a part with buffered messages, round-robin; NULL when none. */
static struct part *next_part(struct kafka_src *s)
{
    for (size_t k = 0; k < s->nparts; k++) {
        struct part *p = s->parts[(s->rr + k) % s->nparts];
        if (p->n) {
            s->rr = (s->rr + k + 1) % s->nparts;
            return p;
        }
    }
    return NULL;
}

/*
 * Under mu: --once and everything assigned has been read to its end. An end-of-partition
 * event alone is not enough: pausing drops what the fetcher had queued (it fetches again
 * from the last message consumed on resume), so an event may report an end the source
 * has not emitted yet. A partition is done when it emitted up to the offset the event
 * named, or when it has nothing (the event's offset is the partition's first).
 */
static int all_done(struct kafka_src *s)
{
    if (!s->assigned_once || s->buffered)
        return 0;
    for (size_t i = 0; i < s->nparts; i++) {
        struct part *p = s->parts[i];
        if (!p->assigned)
            continue;
        if (!p->eof)
            return 0;
        if (p->emitted >= p->eof_at)
            continue;
        int64_t lo = -1, hi = -1;
        if (p->emitted < 0 &&
            rd_kafka_get_watermark_offsets(s->rk, p->topic, p->partition, &lo, &hi) ==
                RD_KAFKA_RESP_ERR_NO_ERROR &&
            lo >= 0 && lo >= p->eof_at)
            continue;
        return 0;
    }
    return 1;
}

static sl_rc kafka_read(void *state, struct sl_batch *b, struct sl_error *err)
{
    struct kafka_src *s = state;
    sl_rc rc;
    if (!s->poller_started && (rc = start_consumer(s, err)))
        return rc;
    pthread_mutex_lock(&s->mu);
    struct part *p = next_part(s);
    if (!p && !s->fatal && !(s->once && all_done(s))) {
        struct timespec ts;
        deadline_in(&ts, KAFKA_READ_WAIT_MS);
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        p = next_part(s);
    }
    if (s->fatal) {
        rc = sl_error_set(err, s->fatal, "source %s: %s", s->name, s->fatal_msg);
        pthread_mutex_unlock(&s->mu);
        return rc;
    }
    if (!p) {
        int done = s->once && all_done(s);
        int unassigned = !s->assigned_once;
        pthread_mutex_unlock(&s->mu);
        if (unassigned && now_ms() - s->started_ms >= s->assign_ms) {
            /* A wrong address or a dead cluster must not hang a --once run (or a follow
               run, silently): librdkafka keeps trying, the log says why. */
            if (s->once)
                return sl_error_set(err, SL_EIO,
                                    "source %s: group %s got no partitions within %llu ms; are "
                                    "the brokers (%s) reachable and do the topics exist?",
                                    s->name, s->group, (unsigned long long)s->assign_ms,
                                    s->brokers);
            sl_warn(s->name,
                    "group %s has no partitions yet after %llu ms; are the brokers (%s) "
                    "reachable and do the topics exist? still trying",
                    s->group, (unsigned long long)s->assign_ms, s->brokers);
            s->started_ms = now_ms();
        }
        return done ? SL_EOF : SL_AGAIN;
    }
    struct emission *em = sl_malloc(sizeof *em);
    if (!em) {
        pthread_mutex_unlock(&s->mu);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    /* Take up to batch_size messages / batch_bytes of this partition. */
    size_t n = 0, bytes = 0;
    while (n < p->n && n < s->batch_size) {
        rd_kafka_message_t *m = p->ring[(p->rhead + n) % p->rcap];
        if (n && bytes + m->len > s->batch_bytes)
            break;
        s->taken[n++] = m;
        bytes += m->len;
    }
    p->rhead = (p->rhead + n) % p->rcap;
    p->n -= n;
    s->buffered -= n;
    s->buffered_bytes -= bytes;
    p->emitted = s->taken[n - 1]->offset + 1;
    em->next = NULL;
    em->p = p;
    em->next_offset = p->emitted;
    if (s->fifo_tail)
        s->fifo_tail->next = em;
    else
        s->fifo_head = em;
    s->fifo_tail = em;
    int64_t next_offset = p->emitted;
    pthread_mutex_unlock(&s->mu);

    /* The messages taken are this call's now. */
    rc = SL_OK;
    for (size_t i = 0; i < n; i++) {
        if (rc == SL_OK)
            rc = fill_record(s, p, b, s->taken[i], &s->meta, err);
        rd_kafka_message_destroy(s->taken[i]);
    }
    if (rc)
        return rc;
    char pos[600];
    snprintf(pos, sizeof pos, "%s/%" PRId32 "@%" PRId64, p->topic, p->partition, next_offset);
    b->position = sl_arena_strdup(&b->arena, pos);
    b->checkpoint = sl_arena_strdup(&b->arena, p->ckpt);
    b->origin = b->checkpoint;
    if (!b->position || !b->checkpoint)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    return SL_OK;
}

/* Every sink committed up to the batch whose position is `position` (invariant 3). */
static void kafka_release(void *state, const char *position)
{
    struct kafka_src *s = state;
    int64_t off = position_offset(position);
    pthread_mutex_lock(&s->mu);
    while (s->fifo_head) {
        struct emission *em = s->fifo_head;
        s->fifo_head = em->next;
        if (!s->fifo_head)
            s->fifo_tail = NULL;
        if (em->next_offset > em->p->released)
            em->p->released = em->next_offset;
        size_t tl = strlen(em->p->topic);
        int mine = off == em->next_offset && strncmp(position, em->p->topic, tl) == 0 &&
                   position[tl] == '/' && atoi(position + tl + 1) == em->p->partition;
        sl_free(em);
        if (mine)
            break;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static int kafka_position_cmp(void *state, const char *a, const char *b)
{
    (void)state;
    int64_t x = position_offset(a), y = position_offset(b);
    return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * Record i of b lies before position: the same partition (the engine asks with the
 * position a sink committed under b->checkpoint, which names b's partition) and an offset
 * below the position's next offset.
 */
static int kafka_covers(void *state, const char *position, const struct sl_batch *b, uint32_t i)
{
    (void)state;
    int64_t off = position_offset(position);
    const char *at = position ? strrchr(position, '@') : NULL;
    const char *hash = b->checkpoint ? strrchr(b->checkpoint, '#') : NULL;
    if (off < 0 || !at || !hash || strlen(hash + 1) != (size_t)(at - position) ||
        strncmp(hash + 1, position, (size_t)(at - position)) != 0)
        return 0;
    return b->recs[i].offset < (uint64_t)off;
}

static void kafka_close(void *state)
{
    struct kafka_src *s = state;
    if (!s)
        return;
    if (s->poller_started) {
        atomic_store(&s->stop, 1);
        pthread_join(s->poller, NULL);
    }
    if (s->rk) {
        pthread_mutex_lock(&s->mu);
        s->closing = 1; /* the last revocation must not wait: no sink runs any more */
        pthread_mutex_unlock(&s->mu);
        if (s->poller_started) {
            report_offsets(s, 0);
            rd_kafka_consumer_close(s->rk);
        }
        rd_kafka_destroy(s->rk);
    }
    for (size_t i = 0; i < s->nparts; i++) {
        drop_buffer(s, s->parts[i]);
        sl_free(s->parts[i]->ring);
        sl_free(s->parts[i]->topic);
        sl_free(s->parts[i]->ckpt);
        sl_free(s->parts[i]);
    }
    sl_free(s->parts);
    while (s->fifo_head) {
        struct emission *em = s->fifo_head;
        s->fifo_head = em->next;
        sl_free(em);
    }
    for (size_t i = 0; i < s->ntopics; i++)
        sl_free(s->topics[i]);
    sl_free(s->topics);
    sl__kafka_pairs_fini(&s->props);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    sl_free(s->brokers);
    sl_free(s->group);
    sl_free(s->start);
    sl_free(s->meta_field);
    sl_free(s->taken);
    sl_buf_fini(&s->meta);
    sl_free(s);
}

/* --------------------------------------------------------------------------------------- */
/* Set-up.                                                                                   */

/* librdkafka settings the source owns: a `properties` entry may not change them. */
static const char *const owned_props[] = {
    "bootstrap.servers",        "metadata.broker.list", "group.id",          "enable.auto.commit",
    "enable.auto.offset.store", "enable.partition.eof", "auto.offset.reset", NULL,
};

static sl_rc parse_topics(const struct sl_plugin_ctx *ctx, struct kafka_src *s,
                          struct sl_error *err)
{
    const struct sl_cfg_node *t = sl_cfg_get(ctx->node, "topics");
    if (!t || t->is_null)
        return sl_cfg_error(err, ctx->node, "sources.%s: missing required option topics",
                            ctx->name);
    size_t n = t->kind == SL_CFG_SEQ ? t->n : 1;
    if (n == 0 || n > KAFKA_MAX_TOPICS)
        return sl_cfg_error(err, t, "sources.%s.topics: expected 1 to %d topic names", ctx->name,
                            KAFKA_MAX_TOPICS);
    s->topics = sl_calloc(n, sizeof *s->topics);
    if (!s->topics)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const struct sl_cfg_node *v = t->kind == SL_CFG_SEQ ? t->items[i] : t;
        if (v->kind != SL_CFG_SCALAR || v->is_null || !*v->str)
            return sl_cfg_error(err, v, "sources.%s.topics: expected topic names", ctx->name);
        if (strpbrk(v->str, "/#@"))
            return sl_cfg_error(err, v,
                                "sources.%s.topics: \"%s\": a topic name may not contain '/', "
                                "'#' or '@' here (they separate the parts of a checkpoint name)",
                                ctx->name, v->str);
        if (!(s->topics[i] = sl_strdup(v->str)))
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        s->ntopics++;
    }
    return SL_OK;
}

static const char *refuse_prop(const char *name)
{
    for (const char *const *o = owned_props; *o; o++)
        if (strcmp(name, *o) == 0)
            return "set by the source itself (see its options: brokers, group, start); remove it";
    return NULL;
}

static sl_rc conf_set(struct kafka_src *s, rd_kafka_conf_t *c, const char *k, const char *v,
                      struct sl_error *err)
{
    return sl__kafka_conf_set(c, k, v, "source", s->name, err);
}

static sl_rc make_consumer(struct kafka_src *s, struct sl_error *err)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char why[512];
    sl_rc rc;
    if ((rc = conf_set(s, c, "bootstrap.servers", s->brokers, err)) ||
        (rc = conf_set(s, c, "group.id", s->group, err)) ||
        (rc = conf_set(s, c, "enable.auto.commit", "false", err)) ||
        (rc = conf_set(s, c, "enable.auto.offset.store", "false", err)) ||
        (rc = conf_set(s, c, "enable.partition.eof", s->once ? "true" : "false", err)) ||
        (rc = conf_set(s, c, "auto.offset.reset",
                       strcmp(s->start, "latest") == 0 ? "latest" : "earliest", err)))
        goto fail;
    for (size_t i = 0; i < s->props.n; i++)
        if ((rc = conf_set(s, c, s->props.names[i], s->props.values[i], err)))
            goto fail;
    rd_kafka_conf_set_rebalance_cb(c, on_rebalance);
    rd_kafka_conf_set_log_cb(c, sl__kafka_on_log); /* name is s's first member */
    rd_kafka_conf_set_opaque(c, s);
    s->rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, why, sizeof why);
    if (!s->rk) {
        rd_kafka_conf_destroy(c);
        return sl_error_set(err, SL_ECONFIG, "source %s: cannot create a Kafka consumer for %s: %s",
                            s->name, s->brokers, why);
    }
    rd_kafka_poll_set_consumer(s->rk);
    return SL_OK;
fail:
    rd_kafka_conf_destroy(c);
    return rc;
}

static sl_rc kafka_init(const struct sl_plugin_ctx *ctx, void **state, struct sl_error *err)
{
    const struct sl_cfg_node *node = ctx->node;
    const char *brokers, *group, *start, *meta;
    int64_t batch;
    uint64_t buf_records, buf_bytes, rebalance, assign;
    sl_rc rc;
    if ((rc = sl_cfg_get_str(node, "brokers", NULL, &brokers, err)) ||
        (rc = sl_cfg_get_str(node, "group", NULL, &group, err)) ||
        (rc = sl_cfg_get_str(node, "start", "earliest", &start, err)) ||
        (rc = sl_cfg_get_str(node, "metadata_field", "_kafka", &meta, err)) ||
        (rc = sl_cfg_get_int(node, "batch_size", 1000, &batch, err)) ||
        (rc = sl_cfg_get_size(node, "buffer_bytes", 16u << 20, &buf_bytes, err)) ||
        (rc = sl_cfg_get_duration(node, "rebalance_timeout", 30000, &rebalance, err)) ||
        (rc = sl_cfg_get_duration(node, "assign_timeout", 60000, &assign, err)))
        return rc;
    int64_t br;
    if ((rc = sl_cfg_get_int(node, "buffer_records", 10000, &br, err)))
        return rc;
    if (!brokers || !*brokers)
        return sl_cfg_error(err, node, "sources.%s: missing required option brokers", ctx->name);
    if (!group || !*group)
        group = ctx->pipeline && *ctx->pipeline ? ctx->pipeline : ctx->name;
    if (strcmp(start, "earliest") != 0 && strcmp(start, "latest") != 0)
        return sl_cfg_error(err, sl_cfg_get(node, "start"),
                            "sources.%s.start: \"%s\" is not earliest or latest", ctx->name, start);
    if (batch < 1 || batch > KAFKA_BATCH_MAX)
        return sl_cfg_error(err, sl_cfg_get(node, "batch_size"),
                            "sources.%s.batch_size: %lld is outside 1..%d", ctx->name,
                            (long long)batch, KAFKA_BATCH_MAX);
    if (br < 1 || br > 10000000)
        return sl_cfg_error(err, sl_cfg_get(node, "buffer_records"),
                            "sources.%s.buffer_records: %lld is outside 1..10000000", ctx->name,
                            (long long)br);
    buf_records = (uint64_t)br;
    if (buf_bytes < 1024)
        return sl_cfg_error(err, sl_cfg_get(node, "buffer_bytes"),
                            "sources.%s.buffer_bytes: must be at least 1KiB", ctx->name);
    struct kafka_src *s = sl_calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    s->name = ctx->name;
    s->pipeline = ctx->pipeline ? ctx->pipeline : "";
    s->batch_size = (uint32_t)batch;
    if (ctx->limits && ctx->limits->max_records && s->batch_size > ctx->limits->max_records)
        s->batch_size = ctx->limits->max_records;
    s->batch_bytes = ctx->limits && ctx->limits->max_bytes ? ctx->limits->max_bytes : 1u << 20;
    s->buffer_records = buf_records;
    s->buffer_bytes = buf_bytes;
    s->rebalance_ms = rebalance;
    s->assign_ms = assign ? assign : 1;
    s->once = ctx->once;
    s->lookup = ctx->committed_lookup;
    s->lookup_handle = ctx->lookup_handle;
    s->brokers = sl_strdup(brokers);
    s->group = sl_strdup(group);
    s->start = sl_strdup(start);
    s->meta_field = sl_strdup(meta);
    s->taken = sl_calloc(s->batch_size, sizeof *s->taken);
    sl_buf_init(&s->meta, 0);
    if (!s->brokers || !s->group || !s->start || !s->meta_field || !s->taken) {
        kafka_close(s);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    s->meta_len = strlen(s->meta_field);
    if ((rc = parse_topics(ctx, s, err)) ||
        (rc = sl__kafka_pairs_parse(ctx, "sources", "properties", refuse_prop, &s->props, err))) {
        kafka_close(s);
        return rc;
    }
    if (!ctx->inspect && (rc = make_consumer(s, err))) {
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
    {.name = "topics",
     .type = SL_OPT_LIST,
     .required = 1,
     .help = "Topics to read (a list, or one name)."},
    {.name = "group",
     .type = SL_OPT_STRING,
     .help = "Consumer group id (default: the pipeline's name). Every member of the group "
             "reads a share of the partitions."},
    {.name = "start",
     .type = SL_OPT_ENUM,
     .choices = "earliest|latest",
     .def = "earliest",
     .help = "Where a partition no sink has a checkpoint for is read from."},
    {.name = "batch_size",
     .type = SL_OPT_INT,
     .def = "1000",
     .help = "Messages per batch at most (a batch holds one partition's messages)."},
    {.name = "buffer_records",
     .type = SL_OPT_INT,
     .def = "10000",
     .help = "Messages buffered ahead of the pipeline; when full, every assigned partition "
             "is paused until half of it is read."},
    {.name = "buffer_bytes",
     .type = SL_OPT_SIZE,
     .def = "16MiB",
     .help = "Bytes of message values buffered ahead of the pipeline (pauses like "
             "buffer_records)."},
    {.name = "rebalance_timeout",
     .type = SL_OPT_DURATION,
     .def = "30s",
     .help = "How long a revoked partition waits for its batches in flight to be committed "
             "by every sink before it is handed over."},
    {.name = "assign_timeout",
     .type = SL_OPT_DURATION,
     .def = "60s",
     .help = "With --once, fail when the group has given no partition by then (brokers "
             "unreachable, topic missing); otherwise warn and keep trying."},
    {.name = "metadata_field",
     .type = SL_OPT_STRING,
     .def = "_kafka",
     .help = "Member added first to every object record with topic, partition, offset, "
             "timestamp, key and headers; empty: none."},
    {.name = "properties",
     .type = SL_OPT_MAP,
     .help = "Further librdkafka consumer settings (e.g. session.timeout.ms, "
             "security.protocol)."},
    {0},
};

const struct sl_plugin sl_source_kafka = {
    .kind = SL_PLUGIN_SOURCE,
    .name = "kafka",
    .description = "Read Kafka topics as a member of a consumer group; each sink keeps one "
                   "checkpoint per partition, committed with its records, and a partition "
                   "assigned to this member starts at the sinks' checkpoint.",
    .options = kafka_options,
    .partitioned = 1,
    .init = kafka_init,
    .read = kafka_read,
    .position_cmp = kafka_position_cmp,
    .covers = kafka_covers,
    .release = kafka_release,
    .close = kafka_close,
};
