/*
 * http.c - the `http` source: durable HTTP ingest through a write-ahead log.
 *
 * How it fits: clients POST NDJSON or a JSON array to /v1/ingest/<source name>. The request
 * threads (libmicrohttpd, one thread per connection) validate every line or element with
 * our JSON parser, append the good ones to the source's write-ahead log
 * (<state_dir>/wal/<source>/, include/sluice/wal.h) and reply only once those records are
 * durable: requests that arrive together share one fsync (group commit, in wal.c). The
 * pipeline side, read() on the source's thread, reads the log like a file: position
 * "segment:offset" after the batch's last record, record ids from (segment, offset), so
 * everything downstream of the log is exactly-once like a file source. release() deletes
 * the segments every sink has committed past. lag() counts the record bytes durable after
 * a position (`sluice status`, /metrics); wal_usage() reports the log's size.
 *
 * Replies: 200 {"accepted":N,"rejected":0,"errors":[]} when every line was good; 400 with
 * the same shape and one entry per bad line ({"line":k,"error":...}, k 1-based; for a
 * JSON array body {"element":k,...}) when any was bad, the good ones accepted unless
 * all_or_nothing is set (then accepted is 0). 401 (no bearer token) / 403 (wrong token)
 * when auth_token is set; 404 for another path; 405 for a method other than POST; 413
 * over max_body_bytes (also once decompressed); 415 for a Content-Encoding other than gzip;
 * 503 with Retry-After when the log holds more than wal_max_bytes; 500 when the log cannot
 * be written (the message says why).
 *
 * `run --once` serves no HTTP: it delivers what the log holds and stops.
 *
 * Invariants:
 *   1. A 200 or 400 reply that counts a record as accepted is sent only after
 *      sl_wal_commit returned SL_OK for it.
 *   2. rpos is the position after the last record read() handed out (or restored); it is
 *      touched only on the source's thread.
 *   3. r->offset of a record is its start, seg << 40 | off (offsets stay below 1 TiB).
 *   4. With fsync: always, a request whose records are appended is suspended (its
 *      connection parked, no thread held) in the committer's list; the committer resumes
 *      it only after the sl_wal_commit covering its end returned, and its handler then
 *      sends the reply prepared before it waited (invariant 1).
 *
 * Threading: libmicrohttpd's HTTP_THREADS event-loop threads run the handlers (parse,
 * append); with fsync: always one committer thread runs the group fsyncs and resumes the
 * connections it covered. So one fsync acknowledges every request that arrived while the
 * previous one ran, and waiting costs no thread per connection. close() stops the
 * committer (it resumes everything waiting first) before the server.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <microhttpd.h>
#include <zlib.h>

#include "sluice/alloc.h"
#include "sluice/arena.h"
#include "sluice/buf.h"
#include "sluice/engine.h"
#include "sluice/json.h"
#include "sluice/log.h"
#include "sluice/plugin.h"
#include "sluice/record.h"
#include "sluice/wal.h"

#define HTTP_CONN_LIMIT 256
#define HTTP_CONN_TIMEOUT_S 30
#define HTTP_READ_WAIT_MS 100
#define HTTP_MAX_ERRORS 100 /* per reply; the count of rejected lines stays exact */
#define HTTP_THREADS 2      /* libmicrohttpd's event-loop threads */

struct http_req;

struct http_src {
    const char *name;
    const char *pipeline;
    char *route; /* "/v1/ingest/<name>" */
    char *token; /* NULL: no authentication */
    uint64_t max_body;
    uint64_t wal_max;
    int all_or_nothing;
    uint32_t max_depth;
    int once;
    const struct sl_batch_limits *limits;
    struct sl_wal *wal; /* NULL in inspect mode */
    char *dir;          /* the log's directory */
    struct MHD_Daemon *daemon;
    uint64_t id_base[2];
    struct sl_wal_pos rpos;
    /* fsync: always: requests appended and suspended until the committer's fsync */
    pthread_mutex_t cmu;
    pthread_cond_t ccv;
    struct http_req *waiting; /* under cmu */
    int closing;              /* under cmu: no more suspending; the committer drains */
    int committer_started;
    pthread_t committer;
};

/*
 * One request's body, collected across upload calls; with fsync: always, also the reply it
 * waits to send (invariant 4).
 */
struct http_req {
    char *data;
    size_t len, cap;
    int too_large;
    int gzip;  /* Content-Encoding: gzip */
    int state; /* REQ_READING, REQ_WAITING (suspended, in the committer's list), REQ_DONE */
    struct http_req *next;       /* committer's list */
    struct MHD_Connection *conn; /* to resume */
    struct sl_wal_pos end;       /* the log position that must be durable */
    unsigned status;             /* the prepared reply */
    struct sl_buf out;
    sl_rc commit_rc; /* set by the committer before it resumes the connection */
    char commit_msg[SL_ERROR_MSG_MAX];
};

enum { REQ_READING = 0, REQ_WAITING, REQ_DONE };

/*
 * Inflate a gzip body into *out (sl_malloc'd), refusing to grow past max bytes (a small
 * body must not decompress into gigabytes). 0 done, 1 not valid gzip, 2 over max,
 * -1 out of memory.
 */
static int gunzip(const char *in, size_t n, size_t max, char **out, size_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        return -1;
    size_t cap = n * 4 + 4096, len = 0;
    if (cap > max + 1)
        cap = max + 1;
    char *buf = sl_malloc(cap);
    int rc = 0, zr = Z_OK;
    if (!buf) {
        inflateEnd(&z);
        return -1;
    }
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    while (zr == Z_OK) {
        if (len == cap) {
            if (cap > max) {
                rc = 2;
                break;
            }
            size_t nc = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *g = sl_realloc(buf, nc);
            if (!g) {
                rc = -1;
                break;
            }
            buf = g;
            cap = nc;
        }
        z.next_out = (Bytef *)buf + len;
        z.avail_out = (uInt)(cap - len);
        zr = inflate(&z, Z_NO_FLUSH);
        len = cap - z.avail_out;
        if (len > max) {
            rc = 2;
            break;
        }
        if (zr == Z_BUF_ERROR && z.avail_out)
            break; /* input ended before the stream did */
    }
    if (rc == 0 && (zr != Z_STREAM_END || z.avail_in != 0))
        rc = 1;
    inflateEnd(&z);
    if (rc) {
        sl_free(buf);
        return rc;
    }
    *out = buf;
    *outlen = len;
    return 0;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body,
                             size_t len, const char *hname, const char *hval)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (hname)
        MHD_add_response_header(r, hname, hval);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

__attribute__((format(printf, 5, 6))) static enum MHD_Result
reply_error(struct MHD_Connection *c, unsigned status, const char *hname, const char *hval,
            const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_rc rc = sl_buf_append(&b, "{\"error\":", 9);
    if (rc == SL_OK)
        rc = sl_json_write_str(&b, msg, strlen(msg));
    if (rc == SL_OK)
        rc = sl_buf_append(&b, "}\n", 2);
    enum MHD_Result ret = rc ? MHD_NO : reply(c, status, b.data, b.len, hname, hval);
    sl_buf_fini(&b);
    return ret;
}

/* Constant-time comparison of the presented token with the configured one. */
static int token_ok(const char *want, const char *got, size_t gotlen)
{
    size_t wl = strlen(want);
    unsigned char d = wl != gotlen;
    for (size_t i = 0; i < gotlen; i++)
        d |= (unsigned char)(got[i] ^ want[i % (wl ? wl : 1)]);
    return d == 0;
}

/* 1-based line of byte offset off in s. */
static uint32_t line_of(const char *s, size_t off)
{
    uint32_t line = 1;
    for (size_t i = 0; i < off; i++)
        line += s[i] == '\n';
    return line;
}

/* What one request brought: the good records (pointers into the body) and the errors. */
struct http_parsed {
    const char **rec;
    uint32_t *len;
    size_t n, cap;
    size_t nbad;
    struct sl_buf errors; /* JSON array members, comma-separated */
};

static sl_rc add_good(struct http_parsed *p, const char *s, size_t n)
{
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 64;
        const char **r = sl_realloc(p->rec, nc * sizeof *r);
        if (!r)
            return SL_ENOMEM;
        p->rec = r;
        uint32_t *l = sl_realloc(p->len, nc * sizeof *l);
        if (!l)
            return SL_ENOMEM;
        p->len = l;
        p->cap = nc;
    }
    p->rec[p->n] = s;
    p->len[p->n++] = (uint32_t)n;
    return SL_OK;
}

static sl_rc add_bad(struct http_parsed *p, const char *unit, uint32_t k, const char *msg)
{
    p->nbad++;
    if (p->nbad > HTTP_MAX_ERRORS)
        return SL_OK;
    sl_rc rc = sl_buf_printf(&p->errors, "%s{\"%s\":%" PRIu32 ",\"error\":", p->nbad > 1 ? "," : "",
                             unit, k);
    if (rc == SL_OK)
        rc = sl_json_write_str(&p->errors, msg, strlen(msg));
    return rc ? rc : sl_buf_putc(&p->errors, '}');
}

/* Validate one record's text: a JSON object. Returns SL_OK, or SL_EPARSE with why set. */
static sl_rc check_record(struct sl_json_parser *jp, struct sl_arena *a, uint32_t depth,
                          const char *s, size_t n, char *why, size_t cap)
{
    struct sl_tape t;
    struct sl_json_error je;
    sl_arena_reset(a);
    sl_rc rc = sl_json_parse(jp, s, n, depth, a, &t, &je);
    if (rc == SL_ENOMEM)
        return rc;
    if (rc) {
        snprintf(why, cap, "%s", je.msg);
        return SL_EPARSE;
    }
    if (t.tok[0].type != SL_J_OBJECT) {
        snprintf(why, cap, "expected a JSON object, found %s",
                 t.tok[0].type == SL_J_ARRAY ? "an array" : "a scalar");
        return SL_EPARSE;
    }
    return SL_OK;
}

/*
 * Split body into records. A body whose first non-blank byte is '[' is one JSON array whose
 * elements are records (their line breaks, which JSON allows only between tokens, become
 * spaces so each record stays one line); otherwise every non-blank line is a record.
 */
static sl_rc parse_body(struct http_src *s, char *body, size_t len, struct http_parsed *p)
{
    struct sl_json_parser *jp = NULL;
    struct sl_arena a;
    sl_arena_init(&a, 0);
    sl_rc rc = sl_json_parser_create(&jp);
    char why[256];
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    if (rc == SL_OK && i < len && body[i] == '[') {
        struct sl_tape t;
        struct sl_json_error je;
        rc = sl_json_parse(jp, body, len, s->max_depth ? s->max_depth + 1 : 0, &a, &t, &je);
        if (rc == SL_EPARSE || rc == SL_ELIMIT) {
            snprintf(why, sizeof why, "the body is not a valid JSON array: %s (line %" PRIu32 ")",
                     je.msg, line_of(body, je.offset));
            rc = add_bad(p, "line", line_of(body, je.offset), why);
        } else if (rc == SL_OK) {
            const struct sl_jtok *tok = t.tok;
            uint32_t k = 1;
            for (uint32_t e = 1; e < tok[0].next && rc == SL_OK; e = tok[e].next, k++) {
                char *el = body + tok[e].off;
                for (uint32_t j = 0; j < tok[e].len; j++)
                    if (el[j] == '\n' || el[j] == '\r')
                        el[j] = ' ';
                if (tok[e].type != SL_J_OBJECT)
                    rc = add_bad(p, "element", k,
                                 tok[e].type == SL_J_ARRAY
                                     ? "expected a JSON object, found an array"
                                     : "expected a JSON object, found a scalar");
                else
                    rc = add_good(p, el, tok[e].len);
            }
        }
    } else {
        uint32_t line = 0;
        size_t at = 0;
        while (rc == SL_OK && at < len) {
            char *nl = memchr(body + at, '\n', len - at);
            size_t end = nl ? (size_t)(nl - body) : len;
            line++;
            size_t b0 = at, e0 = end;
            while (b0 < e0 && (body[b0] == ' ' || body[b0] == '\t'))
                b0++;
            while (e0 > b0 && (body[e0 - 1] == ' ' || body[e0 - 1] == '\t' || body[e0 - 1] == '\r'))
                e0--;
            at = end + 1;
            if (b0 == e0)
                continue;
            rc = check_record(jp, &a, s->max_depth, body + b0, e0 - b0, why, sizeof why);
            if (rc == SL_EPARSE)
                rc = add_bad(p, "line", line, why);
            else if (rc == SL_OK)
                rc = add_good(p, body + b0, e0 - b0);
        }
    }
    sl_json_parser_destroy(jp);
    sl_arena_fini(&a);
    return rc;
}

/* The 200 or 400 reply for a request whose good lines were accepted, into q. */
static sl_rc prepare_reply(struct http_req *q, size_t accepted, const struct http_parsed *p)
{
    sl_buf_init(&q->out, 0);
    q->status = p->nbad ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_OK;
    sl_rc rc = sl_buf_printf(&q->out, "{\"accepted\":%zu,\"rejected\":%zu,\"errors\":[", accepted,
                             p->nbad);
    if (rc == SL_OK && p->errors.len)
        rc = sl_buf_append(&q->out, p->errors.data, p->errors.len);
    if (rc == SL_OK)
        rc = sl_buf_append(&q->out, "]}\n", 3);
    return rc;
}

/*
 * fsync: always: hand q to the committer and suspend its connection; 1 when it waits, 0
 * when the caller must commit itself (fsync: interval, or the source is closing).
 * Suspending under cmu orders it before the committer can take q and resume it.
 */
static int wait_commit(struct http_src *s, struct MHD_Connection *c, struct http_req *q,
                       struct sl_wal_pos end)
{
    if (!s->committer_started)
        return 0;
    pthread_mutex_lock(&s->cmu);
    int wait = !s->closing;
    if (wait) {
        q->state = REQ_WAITING;
        q->conn = c;
        q->end = end;
        q->next = s->waiting;
        s->waiting = q;
        MHD_suspend_connection(c);
        pthread_cond_signal(&s->ccv);
    }
    pthread_mutex_unlock(&s->cmu);
    return wait;
}

/*
 * The committer (fsync: always): takes every waiting request, makes the log durable up
 * to the furthest of their ends with one sl_wal_commit (requests that arrive meanwhile
 * wait for the next round: group commit), then resumes each connection, whose handler
 * sends the prepared reply, or 500 when the commit failed. Exits once closing is set and
 * nothing waits.
 */
static void *committer_main(void *arg)
{
    struct http_src *s = arg;
    pthread_mutex_lock(&s->cmu);
    for (;;) {
        while (!s->waiting && !s->closing)
            pthread_cond_wait(&s->ccv, &s->cmu);
        if (!s->waiting)
            break;
        struct http_req *list = s->waiting;
        s->waiting = NULL;
        pthread_mutex_unlock(&s->cmu);
        struct sl_wal_pos far = list->end;
        for (struct http_req *q = list->next; q; q = q->next)
            if (sl_wal_pos_cmp(q->end, far) > 0)
                far = q->end;
        struct sl_error err;
        sl_error_clear(&err);
        sl_rc rc = sl_wal_commit(s->wal, far, &err);
        if (rc)
            sl_error_log(s->name, "%s", err.msg);
        while (list) {
            struct http_req *q = list;
            list = q->next; /* q may be freed once its connection is resumed */
            q->commit_rc = rc;
            if (rc)
                snprintf(q->commit_msg, sizeof q->commit_msg, "%s", err.msg);
            q->state = REQ_DONE;
            MHD_resume_connection(q->conn);
        }
        pthread_mutex_lock(&s->cmu);
    }
    pthread_mutex_unlock(&s->cmu);
    return NULL;
}

static enum MHD_Result handle_body(struct http_src *s, struct MHD_Connection *c, struct http_req *q)
{
    struct http_parsed p;
    memset(&p, 0, sizeof p);
    sl_buf_init(&p.errors, 0);
    enum MHD_Result ret;
    sl_rc rc = parse_body(s, q->data ? q->data : (char *)"", q->len, &p);
    if (rc) {
        ret = reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL,
                          "cannot validate the body: %s", sl_strerror(rc));
        goto out;
    }
    size_t accepted = p.nbad && s->all_or_nothing ? 0 : p.n;
    if (accepted) {
        uint64_t held = sl_wal_bytes(s->wal);
        if (held + q->len > s->wal_max) {
            ret = reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, MHD_HTTP_HEADER_RETRY_AFTER, "1",
                              "the write-ahead log of source %s is full (%" PRIu64
                              " bytes held, wal_max_bytes %" PRIu64
                              "); nothing was accepted; retry after the pipeline catches up",
                              s->name, held, s->wal_max);
            goto out;
        }
        struct sl_error err;
        struct sl_wal_pos end;
        sl_error_clear(&err);
        rc = sl_wal_append(s->wal, p.rec, p.len, p.n, &end, &err);
        if (rc == SL_OK) {
            /* The reply is ready now; it leaves once the committer's fsync covers end. */
            rc = prepare_reply(q, accepted, &p);
            if (rc) {
                ret = MHD_NO;
                goto out;
            }
            if (wait_commit(s, c, q, end)) {
                ret = MHD_YES;
                goto out;
            }
            rc = sl_wal_commit(s->wal, end, &err);
        }
        if (rc) {
            sl_error_log(s->name, "%s", err.msg);
            ret = reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL,
                              "nothing was acknowledged: %s", err.msg);
            goto out;
        }
        ret = reply(c, q->status, q->out.data, q->out.len, NULL, NULL);
        goto out;
    }
    rc = prepare_reply(q, accepted, &p);
    ret = rc ? MHD_NO : reply(c, q->status, q->out.data, q->out.len, NULL, NULL);
out:
    sl_free(p.rec);
    sl_free(p.len);
    sl_buf_fini(&p.errors);
    return ret;
}

/* Checks made before the body is read; MHD_YES with *done = 0 when the request may go on. */
static enum MHD_Result precheck(struct http_src *s, struct MHD_Connection *c, const char *url,
                                const char *method, int *done)
{
    *done = 1;
    if (strcmp(url, s->route) != 0)
        return reply_error(c, MHD_HTTP_NOT_FOUND, NULL, NULL,
                           "no such endpoint %s; this source ingests at POST %s", url, s->route);
    if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
        return reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, MHD_HTTP_HEADER_ALLOW, "POST",
                           "method %s is not allowed on %s; use POST", method, s->route);
    if (s->token) {
        const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        if (!h || strncasecmp(h, "Bearer ", 7) != 0)
            return reply_error(c, MHD_HTTP_UNAUTHORIZED, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer",
                               "missing \"Authorization: Bearer <token>\" header");
        if (!token_ok(s->token, h + 7, strlen(h + 7)))
            return reply_error(c, MHD_HTTP_FORBIDDEN, NULL, NULL, "the bearer token is wrong");
    }
    const char *enc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Encoding");
    if (enc && strcasecmp(enc, "identity") != 0 && strcasecmp(enc, "gzip") != 0)
        return reply_error(c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, NULL, NULL,
                           "Content-Encoding %s is not supported; send the body uncompressed "
                           "or gzip-compressed",
                           enc);
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl && strtoull(cl, NULL, 10) > s->max_body)
        return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, NULL, NULL,
                           "the body of %s bytes exceeds max_body_bytes %" PRIu64
                           "; send smaller requests",
                           cl, s->max_body);
    uint64_t held = sl_wal_bytes(s->wal);
    if (held > s->wal_max)
        return reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, MHD_HTTP_HEADER_RETRY_AFTER, "1",
                           "the write-ahead log of source %s is full (%" PRIu64
                           " bytes held, wal_max_bytes %" PRIu64
                           "); retry after the pipeline catches up",
                           s->name, held, s->wal_max);
    if (sl_engine_memory_full())
        return reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, MHD_HTTP_HEADER_RETRY_AFTER, "1",
                           "the pipeline is at its memory_limit; retry after it catches up");
    *done = 0;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **con_cls)
{
    struct http_src *s = cls;
    struct http_req *q = *con_cls;
    (void)version;
    if (q && q->state == REQ_DONE) { /* resumed by the committer */
        if (q->commit_rc)
            return reply_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, NULL,
                               "nothing was acknowledged: %s", q->commit_msg);
        return reply(c, q->status, q->out.data, q->out.len, NULL, NULL);
    }
    if (q && q->state == REQ_WAITING)
        return MHD_YES; /* cannot happen: a suspended connection is not called */
    if (!q) {
        int done;
        enum MHD_Result r = precheck(s, c, url, method, &done);
        if (done)
            return r;
        if (!(q = sl_calloc(1, sizeof *q)))
            return MHD_NO;
        const char *enc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Encoding");
        q->gzip = enc && strcasecmp(enc, "gzip") == 0;
        *con_cls = q;
        return MHD_YES;
    }
    if (*size) {
        if (!q->too_large && q->len + *size > s->max_body) {
            q->too_large = 1;
            sl_free(q->data);
            q->data = NULL;
            q->len = q->cap = 0;
        }
        if (!q->too_large) {
            if (q->len + *size > q->cap) {
                size_t nc = q->cap ? q->cap : 4096;
                while (nc < q->len + *size)
                    nc *= 2;
                char *g = sl_realloc(q->data, nc);
                if (!g)
                    return MHD_NO;
                q->data = g;
                q->cap = nc;
            }
            memcpy(q->data + q->len, data, *size);
            q->len += *size;
        }
        *size = 0;
        return MHD_YES;
    }
    if (q->too_large)
        return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, NULL, NULL,
                           "the body exceeds max_body_bytes %" PRIu64 "; send smaller requests",
                           s->max_body);
    if (q->gzip) {
        char *plain = NULL;
        size_t plen = 0;
        int g = gunzip(q->data ? q->data : "", q->len, s->max_body, &plain, &plen);
        if (g == 1)
            return reply_error(c, MHD_HTTP_BAD_REQUEST, NULL, NULL,
                               "the body is not valid gzip (Content-Encoding: gzip); nothing "
                               "was accepted");
        if (g == 2)
            return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, NULL, NULL,
                               "the body decompresses to more than max_body_bytes %" PRIu64
                               "; send smaller requests",
                               s->max_body);
        if (g < 0)
            return MHD_NO;
        sl_free(q->data);
        q->data = plain;
        q->len = q->cap = plen;
        q->gzip = 0;
    }
    return handle_body(s, c, q);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_req *q = *con_cls;
    (void)cls, (void)c, (void)toe;
    if (q) {
        sl_free(q->data);
        sl_buf_fini(&q->out);
        sl_free(q);
        *con_cls = NULL;
    }
}

__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct http_src *s = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = 0;
    sl_warn(s->name, "%s", msg);
}

/* ---- the pipeline side ------------------------------------------------------------- */

static sl_rc http_restore(void *state, const char *position, struct sl_error *err)
{
    struct http_src *s = state;
    struct sl_wal_pos p;
    if (sl_wal_pos_parse(position, &p) != 0)
        return sl_error_set(err, SL_EINVAL,
                            "source %s: checkpoint position \"%s\" is not segment:offset; it "
                            "was not written by an http source (see `sluice reset`)",
                            s->name, position);
    if (s->wal) {
        struct sl_wal_pos first = sl_wal_first(s->wal), end = sl_wal_durable(s->wal, p, 0);
        if (sl_wal_pos_cmp(p, end) > 0)
            return sl_error_set(err, SL_ESTATE,
                                "source %s: the sinks committed position %s, beyond the end "
                                "(%" PRIu64 ":%" PRIu64 ") of the write-ahead log in "
                                "<state_dir>/wal/%s: the log was removed or replaced, and new "
                                "records would be skipped; run `sluice reset` for this source",
                                s->name, position, end.seg, end.off, s->name);
        if (sl_wal_pos_cmp(p, first) < 0)
            p = first;
    }
    s->rpos = p;
    return SL_OK;
}

static sl_rc http_read(void *state, struct sl_batch *b, struct sl_error *err)
{
    struct http_src *s = state;
    sl_rc rc = sl_wal_tick(s->wal, err);
    if (rc)
        return rc;
    struct sl_wal_pos limit = sl_wal_durable(s->wal, s->rpos, s->once ? 0 : HTTP_READ_WAIT_MS);
    uint32_t maxr = s->limits && s->limits->max_records ? s->limits->max_records : 1024;
    size_t maxb = s->limits && s->limits->max_bytes ? s->limits->max_bytes : (size_t)1 << 20;
    while (b->n < maxr && b->bytes < maxb) {
        char *text;
        uint32_t len;
        rc = sl_wal_read(s->wal, &s->rpos, limit, &text, &len, err);
        if (rc == SL_EOF)
            break;
        if (rc)
            return sl_error_prefix(err, "source %s", s->name);
        struct sl_wal_pos at = {s->rpos.seg, s->rpos.off - SL_WAL_FRAME - len};
        struct sl_record *r = sl_batch_add(b);
        char *t = r ? sl_arena_dup(&b->arena, text, (size_t)len + 1) : NULL;
        sl_free(text);
        if (!t)
            return sl_error_set(err, SL_ENOMEM, "source %s: out of memory", s->name);
        r->text = r->orig = t;
        r->text_len = r->orig_len = len;
        r->offset = at.seg << 40 | at.off;
        sl_record_id(s->id_base, r->offset, r->id);
        b->bytes += len;
    }
    if (b->n == 0)
        return s->once ? SL_EOF : SL_AGAIN;
    char pos[48];
    sl_wal_pos_format(s->rpos, pos);
    b->position = sl_arena_strdup(&b->arena, pos);
    b->origin = sl_arena_strdup(&b->arena, s->name);
    if (!b->position || !b->origin)
        return sl_error_set(err, SL_ENOMEM, "source %s: out of memory", s->name);
    return SL_OK;
}

static int http_position_cmp(void *state, const char *a, const char *b)
{
    struct sl_wal_pos pa = {0, 0}, pb = {0, 0};
    (void)state;
    sl_wal_pos_parse(a, &pa);
    sl_wal_pos_parse(b, &pb);
    return sl_wal_pos_cmp(pa, pb);
}

static int http_covers(void *state, const char *position, const struct sl_batch *b, uint32_t i)
{
    struct sl_wal_pos p, at = {b->recs[i].offset >> 40, b->recs[i].offset & ((1ull << 40) - 1)};
    (void)state;
    if (sl_wal_pos_parse(position, &p) != 0)
        return 0;
    return sl_wal_pos_cmp(at, p) < 0;
}

static void http_release(void *state, const char *position)
{
    struct http_src *s = state;
    struct sl_wal_pos p;
    if (s->wal && sl_wal_pos_parse(position, &p) == 0)
        sl_wal_release(s->wal, p.seg);
}

/*
 * Bytes behind: the record bytes (frames included) of the log after position, up to what
 * is durable. Inspection (`sluice status`, the log not open here) counts what the segment
 * files hold. Thread-safe: wal.c locks.
 */
static sl_rc http_lag(void *state, const char *position, uint64_t *bytes, struct sl_error *err)
{
    struct http_src *s = state;
    struct sl_wal_pos p;
    if (position && sl_wal_pos_parse(position, &p) != 0)
        return sl_error_set(err, SL_EPARSE,
                            "source %s: the checkpoint \"%.200s\" is not segment:offset (not "
                            "an http source position)",
                            s->name, position);
    if (s->wal) {
        *bytes = sl_wal_lag(s->wal, position ? &p : NULL);
        return SL_OK;
    }
    return sl_wal_dir_lag(s->dir, position ? &p : NULL, bytes, err);
}

/* "seg:off": the byte offset in the segment, and the segment. */
static int http_position_number(void *state, const char *position, uint64_t *number,
                                uint64_t *segment)
{
    struct sl_wal_pos p;
    (void)state;
    if (sl_wal_pos_parse(position, &p) != 0)
        return 0;
    *number = p.off;
    *segment = p.seg;
    return 1;
}

static void http_wal_usage(void *state, uint64_t *bytes, uint64_t *segments)
{
    struct http_src *s = state;
    *bytes = s->wal ? sl_wal_bytes(s->wal) : 0;
    *segments = s->wal ? sl_wal_segments(s->wal) : 0;
}

static void http_close(void *state)
{
    struct http_src *s = state;
    if (!s)
        return;
    if (s->committer_started) { /* resumes every waiting connection before the stop */
        pthread_mutex_lock(&s->cmu);
        s->closing = 1;
        pthread_cond_broadcast(&s->ccv);
        pthread_mutex_unlock(&s->cmu);
        pthread_join(s->committer, NULL);
    }
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    pthread_mutex_destroy(&s->cmu);
    pthread_cond_destroy(&s->ccv);
    sl_wal_close(s->wal);
    sl_free(s->dir);
    sl_free(s->route);
    sl_free(s->token);
    sl_free(s);
}

/* "host:port" (IPv4 dotted quad or localhost) into sa. */
static int parse_listen(const char *addr, struct sockaddr_in *sa)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || !colon[1] ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1))
        return -1;
    unsigned long port = strtoul(colon + 1, NULL, 10);
    char host[64];
    size_t hl = (size_t)(colon - addr);
    if (port > 65535 || hl >= sizeof host)
        return -1;
    memcpy(host, addr, hl);
    host[hl] = 0;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static sl_rc http_init(const struct sl_plugin_ctx *ctx, void **state, struct sl_error *err)
{
    const struct sl_cfg_node *node = ctx->node;
    const char *listen, *token, *fsync_mode;
    uint64_t max_body, wal_max, seg_bytes, interval;
    int aon;
    sl_rc rc;
    if ((rc = sl_cfg_get_str(node, "listen", "127.0.0.1:8080", &listen, err)) ||
        (rc = sl_cfg_get_str(node, "auth_token", NULL, &token, err)) ||
        (rc = sl_cfg_get_str(node, "fsync", "always", &fsync_mode, err)) ||
        (rc = sl_cfg_get_duration(node, "fsync_interval", 100, &interval, err)) ||
        (rc = sl_cfg_get_size(node, "max_body_bytes", (uint64_t)8 << 20, &max_body, err)) ||
        (rc = sl_cfg_get_size(node, "wal_max_bytes", (uint64_t)1 << 30, &wal_max, err)) ||
        (rc = sl_cfg_get_size(node, "segment_bytes", (uint64_t)64 << 20, &seg_bytes, err)) ||
        (rc = sl_cfg_get_bool(node, "all_or_nothing", 0, &aon, err)))
        return rc;
    struct sockaddr_in sa;
    if (parse_listen(listen, &sa) != 0)
        return sl_cfg_error(err, sl_cfg_get(node, "listen"),
                            "sources.%s.listen: \"%s\" is not IPv4-address:port (like "
                            "127.0.0.1:8080)",
                            ctx->name, listen);
    if (max_body < 1 || max_body > SL_WAL_MAX_RECORD)
        return sl_cfg_error(err, sl_cfg_get(node, "max_body_bytes"),
                            "sources.%s.max_body_bytes: must be between 1 byte and 64MiB",
                            ctx->name);
    if (seg_bytes < 4096)
        return sl_cfg_error(err, sl_cfg_get(node, "segment_bytes"),
                            "sources.%s.segment_bytes: must be at least 4KiB", ctx->name);
    if (wal_max < 2 * seg_bytes)
        return sl_cfg_error(err, sl_cfg_get(node, "wal_max_bytes"),
                            "sources.%s.wal_max_bytes: %" PRIu64 " is less than twice "
                            "segment_bytes (%" PRIu64 "); the segment being written counts "
                            "until it is full, so raise wal_max_bytes or lower segment_bytes",
                            ctx->name, wal_max, seg_bytes);
    if (token && !*token)
        token = NULL;
    struct http_src *s = sl_calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    pthread_mutex_init(&s->cmu, NULL);
    pthread_cond_init(&s->ccv, NULL);
    s->name = ctx->name;
    s->pipeline = ctx->pipeline ? ctx->pipeline : "";
    s->max_body = max_body;
    s->wal_max = wal_max;
    s->all_or_nothing = aon;
    s->max_depth = ctx->max_depth;
    s->once = ctx->once;
    s->limits = ctx->limits;
    size_t rl = strlen(ctx->name) + 12;
    s->route = sl_malloc(rl);
    s->token = token ? sl_strdup(token) : NULL;
    if (!s->route || (token && !s->token)) {
        http_close(s);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    snprintf(s->route, rl, "/v1/ingest/%s", ctx->name);
    sl_record_id_base(s->pipeline, s->name, "wal", s->id_base);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/wal/%s", ctx->state_dir, ctx->name);
    if (!(s->dir = sl_strdup(dir))) {
        http_close(s);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    if (ctx->inspect) {
        *state = s;
        return SL_OK;
    }
    struct sl_wal_opts o = {.segment_bytes = seg_bytes,
                            .fsync_always = strcmp(fsync_mode, "interval") != 0,
                            .fsync_interval_ms = interval};
    struct sl_wal_report rep;
    if ((rc = sl_wal_open(dir, &o, &s->wal, &rep, err))) {
        http_close(s);
        return sl_error_prefix(err, "source %s", ctx->name);
    }
    if (rep.torn_bytes)
        sl_warn(ctx->name,
                "write-ahead log: truncated a torn tail of %" PRIu64 " bytes in segment %" PRIu64
                " (%s); they were never acknowledged",
                rep.torn_bytes, rep.torn_segment, rep.damage);
    s->rpos = sl_wal_first(s->wal);
    if (!s->once && o.fsync_always) {
        int perr = pthread_create(&s->committer, NULL, committer_main, s);
        if (perr) {
            http_close(s);
            return sl_error_sys(err, SL_ENOMEM, perr, "source %s: cannot start a thread",
                                ctx->name);
        }
        s->committer_started = 1;
    }
    if (!s->once) {
        /*
         * fsync: always: requests wait for the group fsync suspended, not on a thread, so a
         * few event-loop threads serve every connection (see the committer). interval:
         * nothing waits, and the same threads answer at once.
         */
        s->daemon = MHD_start_daemon(
            MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL,
            NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)HTTP_THREADS, MHD_OPTION_SOCK_ADDR,
            (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONN_LIMIT,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_CONN_TIMEOUT_S,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
            MHD_OPTION_END);
        if (!s->daemon) {
            http_close(s);
            return sl_error_set(err, SL_EIO,
                                "source %s: cannot listen on %s (in use, or not an address of "
                                "this machine; see the warning above); fix sources.%s.listen",
                                ctx->name, listen, ctx->name);
        }
        sl_info(ctx->name, "ingesting at POST http://%s/v1/ingest/%s (write-ahead log %s)", listen,
                ctx->name, dir);
    }
    *state = s;
    return SL_OK;
}

static const struct sl_option http_options[] = {
    {.name = "listen",
     .type = SL_OPT_STRING,
     .def = "127.0.0.1:8080",
     .help = "IPv4 address and port to serve POST /v1/ingest/<source name> on."},
    {.name = "max_body_bytes",
     .type = SL_OPT_SIZE,
     .def = "8MiB",
     .help = "Largest request body; larger requests get 413."},
    {.name = "auth_token",
     .type = SL_OPT_STRING,
     .help = "When set, requests must carry `Authorization: Bearer <token>` (401 when missing, "
             "403 when wrong)."},
    {.name = "fsync",
     .type = SL_OPT_ENUM,
     .def = "always",
     .choices = "always|interval",
     .help = "always: reply only after an fsync covered the records; interval: reply once they "
             "are written and fsync every fsync_interval (a power loss can lose acknowledged "
             "records, a process crash cannot)."},
    {.name = "fsync_interval",
     .type = SL_OPT_DURATION,
     .def = "100ms",
     .help = "With fsync: interval, the longest time written records wait for an fsync."},
    {.name = "wal_max_bytes",
     .type = SL_OPT_SIZE,
     .def = "1GiB",
     .help = "When the write-ahead log holds more than this, requests get 503 with "
             "Retry-After until the pipeline catches up."},
    {.name = "segment_bytes",
     .type = SL_OPT_SIZE,
     .def = "64MiB",
     .help = "Write-ahead log segment size; a segment is deleted once every sink committed "
             "past it."},
    {.name = "all_or_nothing",
     .type = SL_OPT_BOOL,
     .def = "false",
     .help = "When a request has a bad line, accept none of its lines (400 lists the errors)."},
    {0},
};

const struct sl_plugin sl_source_http = {
    .kind = SL_PLUGIN_SOURCE,
    .name = "http",
    .description = "Receive records by HTTP POST (NDJSON or a JSON array), acknowledged once "
                   "durable in a write-ahead log the pipeline reads exactly-once.",
    .options = http_options,
    .init = http_init,
    .restore = http_restore,
    .read = http_read,
    .position_cmp = http_position_cmp,
    .covers = http_covers,
    .release = http_release,
    .lag = http_lag,
    .position_number = http_position_number,
    .wal_usage = http_wal_usage,
    .close = http_close,
};
