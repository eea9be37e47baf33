/*
 * http.c - the `http` sink: POST records to an HTTP endpoint (a webhook, an ingest API),
 * at-least-once, with an idempotency key on every request.
 *
 * What it does. For each batch the live records (neither dropped nor rejected) are
 * serialized once, as NDJSON lines carrying their record id (`id_field`, default
 * `_sluice_id`), into one buffer. The batch is cut into requests of at most
 * `max_records_per_request` records and `batch_bytes` bytes (a record larger than
 * `batch_bytes` travels alone), and up to `concurrency` requests are in flight at once
 * through one curl multi handle, driven from the sink's own thread. A request's body is
 * its slice of the buffer (format ndjson: no copy) or the same records as a JSON array.
 *
 * The idempotency key. Every request carries `Idempotency-Key: <32 hex digits>`, a hash of
 * the number of records in the request and of their record ids in order (request_key). The
 * same records in the same request always carry the same key: a request re-sent after a
 * timeout, a 503 or a restart of the batch is recognisable as a repeat. Record ids are
 * deterministic (record.h invariant 4), so after a crash the records are the same; but a
 * restarted run may cut its batches at other places, and then a record can arrive a second
 * time inside a request of another composition, under another key. The dependable
 * deduplication key is therefore the record's id field; the header lets a receiver drop a
 * whole repeated request cheaply. docs/internals/http-sink.md has the details.
 *
 * Delivery. An endpoint cannot take a checkpoint, so the sink keeps none: committed()
 * answers "nothing committed" (like stdout) and the engine replays from the other sinks'
 * positions, or the whole input, after a restart. Delivery is at-least-once in both modes.
 *
 * Classification of each response (DESIGN §5):
 *
 *     2xx                              delivered
 *     408, 409, 429, 5xx, timeouts,    transient: the batch returns SL_RETRY once the
 *     refused or reset connections     requests in flight have ended; Retry-After (seconds
 *                                      or an HTTP date) becomes w->retry_after_ms
 *     400, 413, 422                    a record problem: the request is split in halves and
 *                                      each half re-sent, down to single records, which are
 *                                      rejected (class "sink", rule "http_<status>") and
 *                                      kept in the dead-letter queue
 *     401, 403, 404, other statuses    fatal: a configuration problem; the message says
 *                                      what to check
 *
 * Retries within a batch. The plan of a batch (its requests and the state of each) lives
 * in the sink's state until the batch ends, so when the engine calls process() again for
 * the same batch after SL_RETRY, the requests that were delivered are not sent again and
 * the others are sent with the same records, hence the same keys.
 *
 * Threading and ownership. Everything runs on the sink's single thread; curl is used
 * without threads of its own (CURLOPT_NOSIGNAL, no resolver threads are asked for). The
 * state owns the multi handle, one easy handle per slot (kept across batches so
 * connections are reused), the plan and its buffers. Records belong to the batch.
 */
#include <curl/curl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sluice/alloc.h"
#include "sluice/log.h"
#include "sluice/plugin.h"
#include "sluice/record.h"

#include "plugins/sinks/common/id_field.h"

#define HTTP_SER_MAX ((size_t)1 << 30)        /* serialized live records of one batch */
#define HTTP_RESP_KEEP 300                    /* bytes of a response body kept for messages */
#define HTTP_STATUS_LINE_MAX 160              /* bytes of the status line kept */
#define HTTP_CONCURRENCY_MAX 64               /* requests in flight */
#define HTTP_RETRY_AFTER_MAX_MS (3600 * 1000) /* a longer Retry-After is capped */
#define HTTP_HEADER_MAX 8192                  /* one configured header line */

/* What became of one request of the plan. */
enum item_state {
    ITEM_PENDING = 0, /* to be sent (again) */
    ITEM_FLIGHT,      /* in a slot */
    ITEM_DONE,        /* answered 2xx */
    ITEM_SPLIT,       /* answered 400/413/422 with several records: replaced by halves */
    ITEM_REJECTED,    /* a single record the endpoint refused: rejected */
    ITEM_FAILED,      /* transient failure in this attempt: pending in the next */
};

/* Records idx[lo..hi) of the plan travel together in one request. */
struct http_item {
    uint32_t lo, hi;
    uint8_t state; /* enum item_state */
};

/*
 * The plan of the batch being delivered.
 *
 * Invariants:
 *   1. active iff a batch returned SL_RETRY and has not ended since; then (batch, seq,
 *      source, n) identify it and idx, off, ser, items describe it.
 *   2. idx[0..nidx) are the live records of the batch in order; record idx[k] is
 *      ser[off[k]..off[k+1]), one NDJSON line.
 *   3. Items in state ITEM_PENDING, ITEM_FLIGHT or ITEM_FAILED cover disjoint ranges of
 *      idx; with ITEM_DONE and ITEM_REJECTED they cover [0, nidx) exactly.
 */
struct http_plan {
    int active;
    const struct sl_batch *batch;
    uint64_t seq;
    uint32_t source, n;
    uint32_t *idx;
    size_t *off;
    uint32_t nidx, capidx;
    struct sl_buf ser;
    struct http_item *items;
    uint32_t nitems, capitems;
};

/* One request in flight. */
struct http_slot {
    CURL *easy;
    int busy;
    uint32_t item;
    struct curl_slist *hdrs; /* this request's headers (the base list plus its key) */
    struct sl_buf body;      /* json_array bodies */
    char resp[HTTP_RESP_KEEP + 1];
    size_t resp_len;
    char status_line[HTTP_STATUS_LINE_MAX + 1];
    int64_t retry_after_ms; /* -1: none */
    char errbuf[CURL_ERROR_SIZE];
};

struct http_sink {
    const char *name; /* component name (outlives the state) */
    char *url;
    int json_array;
    char **headers; /* "Name: value" lines, n_headers of them */
    size_t n_headers;
    char *user, *password; /* basic auth, or NULL */
    uint64_t batch_bytes;
    uint32_t max_records; /* 0: no limit */
    uint32_t concurrency;
    long timeout_ms, connect_timeout_ms;
    char id_field[SL__SINK_ID_FIELD_MAX + 1];
    CURLM *multi;
    struct http_slot *slots;
    struct http_plan plan;
};

static const struct sl_option http_options[] = {
    {.name = "url",
     .type = SL_OPT_STRING,
     .required = 1,
     .help = "Address every request is POSTed to (http:// or https://)."},
    {.name = "format",
     .type = SL_OPT_ENUM,
     .def = "ndjson",
     .choices = "ndjson|json_array",
     .help = "Request body: ndjson (one record per line) or json_array (one JSON array)."},
    {.name = "headers",
     .type = SL_OPT_MAP,
     .help = "Extra request headers, name: value (values may use ${ENV})."},
    {.name = "auth",
     .type = SL_OPT_OBJECT,
     .help = "Credentials: {bearer: TOKEN} or {basic: {user: U, password: P}}; values may "
             "use ${ENV}."},
    {.name = "batch_bytes",
     .type = SL_OPT_SIZE,
     .def = "1MiB",
     .help = "Largest request body; a batch is split into several requests to stay below "
             "it (a single larger record is sent alone)."},
    {.name = "max_records_per_request",
     .type = SL_OPT_INT,
     .def = "0",
     .help = "Most records in one request (0: no limit besides batch_bytes)."},
    {.name = "concurrency",
     .type = SL_OPT_INT,
     .def = "4",
     .help = "Requests in flight at once (1 to 64)."},
    {.name = "timeout",
     .type = SL_OPT_DURATION,
     .def = "30s",
     .help = "Longest a request may take, connection included; longer is a transient "
             "failure."},
    {.name = "connect_timeout",
     .type = SL_OPT_DURATION,
     .def = "10s",
     .help = "Longest the connection may take to open."},
    {.name = "id_field",
     .type = SL_OPT_STRING,
     .def = "_sluice_id",
     .help = "Field added to every object record holding its record id (32 hex digits), "
             "for deduplication by the receiver; \"\" switches it off."},
    {0},
};

/* ---- configuration ---------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_global_rc = CURLE_OK;

static void curl_global(void)
{
    curl_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

static int header_name_ok(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s)))
            return 0;
    return 1;
}

static sl_rc add_header(struct http_sink *s, const char *name, const char *value,
                        struct sl_error *err)
{
    char **nh = sl_realloc(s->headers, (s->n_headers + 1) * sizeof *nh);
    if (!nh)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    s->headers = nh;
    size_t len = strlen(name) + strlen(value) + 3;
    char *line = sl_malloc(len);
    if (!line)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    snprintf(line, len, "%s: %s", name, value);
    s->headers[s->n_headers++] = line;
    return SL_OK;
}

static sl_rc parse_headers(const struct sl_plugin_ctx *ctx, struct http_sink *s, int *has_ctype,
                           int *has_authz, struct sl_error *err)
{
    const struct sl_cfg_node *h = sl_cfg_get(ctx->node, "headers");
    if (!h || h->is_null)
        return SL_OK;
    if (h->kind != SL_CFG_MAP)
        return sl_cfg_error(err, h, "sinks.%s.headers: expected a map of header name: value",
                            ctx->name);
    for (size_t i = 0; i < h->n; i++) {
        const struct sl_cfg_pair *p = &h->pairs[i];
        if (!header_name_ok(p->key))
            return sl_cfg_error(err, p->val,
                                "sinks.%s.headers: \"%s\" is not a valid header name (letters, "
                                "digits and !#$%%&'*+-.^_`|~ only)",
                                ctx->name, p->key);
        if (p->val->kind != SL_CFG_SCALAR || p->val->is_null)
            return sl_cfg_error(err, p->val, "sinks.%s.headers.%s: expected a string value",
                                ctx->name, p->key);
        if (has_crlf(p->val->str) || strlen(p->key) + strlen(p->val->str) > HTTP_HEADER_MAX)
            return sl_cfg_error(err, p->val,
                                "sinks.%s.headers.%s: the value holds a line break or is "
                                "longer than %d bytes",
                                ctx->name, p->key, HTTP_HEADER_MAX);
        if (!strcasecmp(p->key, "Idempotency-Key") || !strcasecmp(p->key, "Content-Length") ||
            !strcasecmp(p->key, "Transfer-Encoding") || !strcasecmp(p->key, "Host"))
            return sl_cfg_error(err, p->val,
                                "sinks.%s.headers.%s: set by the sink itself; remove it", ctx->name,
                                p->key);
        if (!strcasecmp(p->key, "Content-Type"))
            *has_ctype = 1;
        if (!strcasecmp(p->key, "Authorization"))
            *has_authz = 1;
        sl_rc rc = add_header(s, p->key, p->val->str, err);
        if (rc)
            return rc;
    }
    return SL_OK;
}

static sl_rc auth_string(const struct sl_plugin_ctx *ctx, const struct sl_cfg_node *map,
                         const char *key, const char *where, char **out, struct sl_error *err)
{
    const struct sl_cfg_node *v = sl_cfg_get(map, key);
    if (!v || v->kind != SL_CFG_SCALAR || v->is_null || !v->str[0])
        return sl_cfg_error(err, v ? v : map, "sinks.%s.auth.%s%s: expected a non-empty string",
                            ctx->name, where, key);
    if (has_crlf(v->str) || strlen(v->str) > HTTP_HEADER_MAX)
        return sl_cfg_error(err, v,
                            "sinks.%s.auth.%s%s: holds a line break or is longer than %d bytes",
                            ctx->name, where, key, HTTP_HEADER_MAX);
    if (!(*out = sl_strdup(v->str)))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    return SL_OK;
}

static sl_rc parse_auth(const struct sl_plugin_ctx *ctx, struct http_sink *s, int has_authz,
                        struct sl_error *err)
{
    const struct sl_cfg_node *a = sl_cfg_get(ctx->node, "auth");
    if (!a || a->is_null)
        return SL_OK;
    const char *usage = "write auth: {bearer: TOKEN} or auth: {basic: {user: U, password: P}}";
    if (a->kind != SL_CFG_MAP || a->n != 1)
        return sl_cfg_error(err, a, "sinks.%s.auth: expected exactly one method; %s", ctx->name,
                            usage);
    if (has_authz)
        return sl_cfg_error(
            err, a, "sinks.%s: both auth and an Authorization header are set; keep one", ctx->name);
    const struct sl_cfg_pair *p = &a->pairs[0];
    sl_rc rc;
    if (!strcmp(p->key, "bearer")) {
        char *tok = NULL;
        if ((rc = auth_string(ctx, a, "bearer", "", &tok, err)))
            return rc;
        size_t len = strlen(tok) + 8;
        char *v = sl_malloc(len);
        if (!v) {
            sl_free(tok);
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        }
        snprintf(v, len, "Bearer %s", tok);
        rc = add_header(s, "Authorization", v, err);
        sl_free(v);
        sl_free(tok);
        return rc;
    }
    if (!strcmp(p->key, "basic")) {
        const struct sl_cfg_node *m = p->val;
        if (m->kind != SL_CFG_MAP)
            return sl_cfg_error(err, m, "sinks.%s.auth.basic: expected {user: U, password: P}",
                                ctx->name);
        for (size_t i = 0; i < m->n; i++)
            if (strcmp(m->pairs[i].key, "user") && strcmp(m->pairs[i].key, "password"))
                return sl_cfg_error(err, m->pairs[i].val,
                                    "sinks.%s.auth.basic.%s: unknown key; expected user and "
                                    "password",
                                    ctx->name, m->pairs[i].key);
        if ((rc = auth_string(ctx, m, "user", "basic.", &s->user, err)))
            return rc;
        if (strchr(s->user, ':'))
            return sl_cfg_error(err, sl_cfg_get(m, "user"),
                                "sinks.%s.auth.basic.user: may not contain ':'", ctx->name);
        return auth_string(ctx, m, "password", "basic.", &s->password, err);
    }
    return sl_cfg_error(err, p->val, "sinks.%s.auth.%s: unknown method; %s", ctx->name, p->key,
                        usage);
}

static sl_rc check_url(const struct sl_plugin_ctx *ctx, const char *url, struct sl_error *err)
{
    const struct sl_cfg_node *n = sl_cfg_get(ctx->node, "url");
    if (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8))
        return sl_cfg_error(err, n, "sinks.%s.url: \"%s\" is not an http:// or https:// address",
                            ctx->name, url);
    CURLU *u = curl_url();
    if (!u)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    curl_url_cleanup(u);
    if (uc != CURLUE_OK)
        return sl_cfg_error(err, n, "sinks.%s.url: \"%s\" is not a valid address (%s)", ctx->name,
                            url, curl_url_strerror(uc));
    return SL_OK;
}

static void plan_reset(struct http_plan *p)
{
    p->active = 0;
    p->batch = NULL;
    p->nidx = 0;
    p->nitems = 0;
    sl_buf_clear(&p->ser);
}

static void http_close(void *state)
{
    struct http_sink *s = state;
    if (!s)
        return;
    if (s->slots) {
        for (uint32_t i = 0; i < s->concurrency; i++) {
            struct http_slot *sl = &s->slots[i];
            if (sl->easy) {
                if (sl->busy && s->multi)
                    curl_multi_remove_handle(s->multi, sl->easy);
                curl_easy_cleanup(sl->easy);
            }
            curl_slist_free_all(sl->hdrs);
            sl_buf_fini(&sl->body);
        }
        sl_free(s->slots);
    }
    if (s->multi)
        curl_multi_cleanup(s->multi);
    for (size_t i = 0; i < s->n_headers; i++)
        sl_free(s->headers[i]);
    sl_free(s->headers);
    sl_free(s->url);
    sl_free(s->user);
    sl_free(s->password);
    sl_free(s->plan.idx);
    sl_free(s->plan.off);
    sl_free(s->plan.items);
    sl_buf_fini(&s->plan.ser);
    sl_free(s);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct http_slot *sl = ud;
    size_t n = size * nmemb;
    size_t room = HTTP_RESP_KEEP - sl->resp_len;
    size_t take = n < room ? n : room;
    memcpy(sl->resp + sl->resp_len, ptr, take);
    sl->resp_len += take;
    sl->resp[sl->resp_len] = '\0';
    return n; /* the rest is read and dropped */
}

/* Seconds ("120") or an HTTP date; -1 when neither. */
static int64_t parse_retry_after(const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    if (*v >= '0' && *v <= '9') {
        int64_t secs = 0;
        for (; *v >= '0' && *v <= '9'; v++)
            if ((secs = secs * 10 + (*v - '0')) > HTTP_RETRY_AFTER_MAX_MS / 1000)
                return HTTP_RETRY_AFTER_MAX_MS;
        while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
            v++;
        return *v ? -1 : secs * 1000;
    }
    time_t t = curl_getdate(v, NULL);
    if (t < 0)
        return -1;
    int64_t ms = ((int64_t)t - (int64_t)time(NULL)) * 1000;
    if (ms < 0)
        ms = 0;
    return ms > HTTP_RETRY_AFTER_MAX_MS ? HTTP_RETRY_AFTER_MAX_MS : ms;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct http_slot *sl = ud;
    size_t n = size * nmemb;
    if (n >= 5 && !strncmp(ptr, "HTTP/", 5)) {
        /* A new response (after an interim 1xx, the final one replaces it). */
        size_t k = n < HTTP_STATUS_LINE_MAX ? n : HTTP_STATUS_LINE_MAX;
        while (k > 0 && (ptr[k - 1] == '\r' || ptr[k - 1] == '\n'))
            k--;
        memcpy(sl->status_line, ptr, k);
        sl->status_line[k] = '\0';
        sl->retry_after_ms = -1;
    } else if (n > 12 && !strncasecmp(ptr, "Retry-After:", 12)) {
        char v[128];
        size_t k = n - 12 < sizeof v - 1 ? n - 12 : sizeof v - 1;
        memcpy(v, ptr + 12, k);
        v[k] = '\0';
        sl->retry_after_ms = parse_retry_after(v);
    }
    return n;
}

static sl_rc http_init(const struct sl_plugin_ctx *ctx, void **state, struct sl_error *err)
{
    pthread_once(&curl_once, curl_global);
    if (curl_global_rc != CURLE_OK)
        return sl_error_set(err, SL_EIO, "sinks.%s: libcurl failed to initialize: %s", ctx->name,
                            curl_easy_strerror(curl_global_rc));
    const char *url, *format;
    int64_t conc, maxrec;
    uint64_t bytes, timeout, ctimeout;
    char id_field[SL__SINK_ID_FIELD_MAX + 1];
    sl_rc rc;
    if ((rc = sl_cfg_get_str(ctx->node, "url", NULL, &url, err)) ||
        (rc = sl_cfg_get_str(ctx->node, "format", "ndjson", &format, err)) ||
        (rc = sl_cfg_get_int(ctx->node, "concurrency", 4, &conc, err)) ||
        (rc = sl_cfg_get_int(ctx->node, "max_records_per_request", 0, &maxrec, err)) ||
        (rc = sl_cfg_get_size(ctx->node, "batch_bytes", (uint64_t)1 << 20, &bytes, err)) ||
        (rc = sl_cfg_get_duration(ctx->node, "timeout", 30000, &timeout, err)) ||
        (rc = sl_cfg_get_duration(ctx->node, "connect_timeout", 10000, &ctimeout, err)) ||
        (rc = sl__sink_id_field(ctx, id_field, err)))
        return rc;
    if (!url)
        return sl_cfg_error(err, ctx->node,
                            "sinks.%s: missing required option url (where to POST records)",
                            ctx->name);
    if ((rc = check_url(ctx, url, err)))
        return rc;
    if (strcmp(format, "ndjson") && strcmp(format, "json_array"))
        return sl_cfg_error(err, sl_cfg_get(ctx->node, "format"),
                            "sinks.%s.format: \"%s\" is not supported; use ndjson or json_array",
                            ctx->name, format);
    if (conc < 1 || conc > HTTP_CONCURRENCY_MAX)
        return sl_cfg_error(err, sl_cfg_get(ctx->node, "concurrency"),
                            "sinks.%s.concurrency: %" PRId64 " is out of range; use 1 to %d",
                            ctx->name, conc, HTTP_CONCURRENCY_MAX);
    if (maxrec < 0 || maxrec > UINT32_MAX)
        return sl_cfg_error(err, sl_cfg_get(ctx->node, "max_records_per_request"),
                            "sinks.%s.max_records_per_request: %" PRId64
                            " is out of range; use 0 (no limit) or a positive count",
                            ctx->name, maxrec);
    if (bytes < 1024)
        return sl_cfg_error(err, sl_cfg_get(ctx->node, "batch_bytes"),
                            "sinks.%s.batch_bytes: below 1KiB; requests would hold one record "
                            "each",
                            ctx->name);
    if (timeout == 0 || ctimeout == 0)
        return sl_cfg_error(err, ctx->node, "sinks.%s: timeout and connect_timeout must be above 0",
                            ctx->name);

    struct http_sink *s = sl_calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    s->name = ctx->name;
    s->json_array = !strcmp(format, "json_array");
    s->concurrency = (uint32_t)conc;
    s->max_records = (uint32_t)maxrec;
    s->batch_bytes = bytes;
    s->timeout_ms = timeout > LONG_MAX ? LONG_MAX : (long)timeout;
    s->connect_timeout_ms = ctimeout > LONG_MAX ? LONG_MAX : (long)ctimeout;
    memcpy(s->id_field, id_field, sizeof id_field);
    sl_buf_init(&s->plan.ser, HTTP_SER_MAX);
    int has_ctype = 0, has_authz = 0;
    if (!(s->url = sl_strdup(url))) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = parse_headers(ctx, s, &has_ctype, &has_authz, err)) ||
        (rc = parse_auth(ctx, s, has_authz, err)))
        goto fail;
    if (!has_ctype &&
        (rc = add_header(s, "Content-Type",
                         s->json_array ? "application/json" : "application/x-ndjson", err)))
        goto fail;
    /* No "Expect: 100-continue" round trip before larger bodies. */
    if ((rc = add_header(s, "Expect", "", err)))
        goto fail;
    s->headers[s->n_headers - 1][7] = '\0'; /* "Expect:" with no value removes the header */

    s->multi = curl_multi_init();
    s->slots = sl_calloc(s->concurrency, sizeof *s->slots);
    if (!s->multi || !s->slots) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    curl_multi_setopt(s->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)s->concurrency);
    for (uint32_t i = 0; i < s->concurrency; i++) {
        struct http_slot *sl = &s->slots[i];
        sl_buf_init(&sl->body, HTTP_SER_MAX);
        if (!(sl->easy = curl_easy_init())) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
            goto fail;
        }
        CURL *e = sl->easy;
        curl_easy_setopt(e, CURLOPT_URL, s->url);
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, s->timeout_ms);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, sl);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, sl);
        curl_easy_setopt(e, CURLOPT_PRIVATE, sl);
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, sl->errbuf);
        curl_easy_setopt(e, CURLOPT_USERAGENT, "sluice/" SLUICE_VERSION);
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        if (s->user) {
            curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
            curl_easy_setopt(e, CURLOPT_USERNAME, s->user);
            curl_easy_setopt(e, CURLOPT_PASSWORD, s->password);
        }
    }
    *state = s;
    return SL_OK;
fail:
    http_close(s);
    return rc;
}

/* ---- the plan ----------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 31;
    return x;
}

/*
 * The idempotency key of the records idx[lo..hi): 128 bits over their count and their ids
 * in order, as 32 lowercase hex digits. Deterministic across runs and machines.
 */
static void request_key(const struct sl_batch *b, const uint32_t *idx, uint32_t lo, uint32_t hi,
                        char out[33])
{
    uint64_t h0 = 0x736C756963652D68ull, h1 = 0x7474702D6B657931ull; /* "sluice-h" "ttp-key1" */
    uint64_t n = hi - lo;
    h0 = mix64(h0 ^ n);
    h1 = mix64(h1 + n);
    for (uint32_t k = lo; k < hi; k++) {
        const uint64_t *id = b->recs[idx[k]].id;
        h0 = mix64(h0 ^ id[0]) + id[1];
        h1 = mix64(h1 ^ id[1]) + (id[0] << 23 | id[0] >> 41);
    }
    uint64_t f0 = mix64(h0 ^ (h1 << 17 | h1 >> 47));
    uint64_t f1 = mix64(h1 + f0);
    snprintf(out, 33, "%016" PRIx64 "%016" PRIx64, f0, f1);
}

static sl_rc add_item(struct http_plan *p, uint32_t lo, uint32_t hi)
{
    if (p->nitems == p->capitems) {
        uint32_t cap = p->capitems ? p->capitems * 2 : 16;
        struct http_item *ni = sl_realloc(p->items, cap * sizeof *ni);
        if (!ni)
            return SL_ENOMEM;
        p->items = ni;
        p->capitems = cap;
    }
    p->items[p->nitems++] = (struct http_item){lo, hi, ITEM_PENDING};
    return SL_OK;
}

/* Serialize b's live records and cut them into requests (invariants 2 and 3). */
static sl_rc plan_build(struct http_sink *s, struct sl_batch *b, struct sl_error *err)
{
    struct http_plan *p = &s->plan;
    plan_reset(p);
    if (b->n + 1 > p->capidx) {
        uint32_t cap = b->n + 1;
        uint32_t *ni = sl_realloc(p->idx, cap * sizeof *ni);
        if (ni)
            p->idx = ni;
        size_t *no = ni ? sl_realloc(p->off, cap * sizeof *no) : NULL;
        if (!no)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        p->off = no;
        p->capidx = cap;
    }
    for (uint32_t i = 0; i < b->n; i++) {
        struct sl_record *r = &b->recs[i];
        if (r->flags & (SL_REC_DROPPED | SL_REC_BAD))
            continue;
        p->off[p->nidx] = p->ser.len;
        sl_rc rc = sl__sink_append_line(&p->ser, b, r, s->id_field);
        if (rc == SL_ELIMIT)
            return sl_error_set(err, SL_ELIMIT,
                                "sink %s: the batch serializes to more than %zu MiB; lower "
                                "batch.max_bytes",
                                s->name, HTTP_SER_MAX >> 20);
        if (rc)
            return sl_error_set(err, rc, "sink %s: serializing record at %s:%u: %s", s->name,
                                b->origin ? b->origin : "(input)", r->line, sl_strerror(rc));
        p->idx[p->nidx++] = i;
    }
    p->off[p->nidx] = p->ser.len;
    uint32_t lo = 0;
    for (uint32_t k = 0; k < p->nidx; k++) {
        int full = (s->max_records && k - lo >= s->max_records) ||
                   (k > lo && p->off[k + 1] - p->off[lo] > s->batch_bytes);
        if (full) {
            if (add_item(p, lo, k))
                return sl_error_set(err, SL_ENOMEM, "out of memory");
            lo = k;
        }
    }
    if (lo < p->nidx && add_item(p, lo, p->nidx))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    p->batch = b;
    p->seq = b->seq;
    p->source = b->source;
    p->n = b->n;
    p->active = 1;
    return SL_OK;
}

static int plan_is(const struct http_plan *p, const struct sl_batch *b)
{
    return p->active && p->batch == b && p->seq == b->seq && p->source == b->source && p->n == b->n;
}

/* ---- requests ----------------------------------------------------------------------- */

static sl_rc slot_start(struct http_sink *s, struct http_slot *sl, uint32_t item,
                        const struct sl_batch *b, struct sl_error *err)
{
    struct http_plan *p = &s->plan;
    struct http_item *it = &p->items[item];
    const char *body = p->ser.data + p->off[it->lo];
    size_t len = p->off[it->hi] - p->off[it->lo];
    if (s->json_array) {
        sl_buf_clear(&sl->body);
        sl_rc rc = sl_buf_putc(&sl->body, '[');
        for (uint32_t k = it->lo; rc == SL_OK && k < it->hi; k++) {
            if (k > it->lo)
                rc = sl_buf_putc(&sl->body, ',');
            if (rc == SL_OK) /* the line without its newline */
                rc = sl_buf_append(&sl->body, p->ser.data + p->off[k],
                                   p->off[k + 1] - p->off[k] - 1);
        }
        if (rc == SL_OK)
            rc = sl_buf_putc(&sl->body, ']');
        if (rc)
            return sl_error_set(err, rc, "sink %s: building a request body: %s", s->name,
                                sl_strerror(rc));
        body = sl->body.data;
        len = sl->body.len;
    }
    char key[33], line[64];
    request_key(b, p->idx, it->lo, it->hi, key);
    snprintf(line, sizeof line, "Idempotency-Key: %s", key);
    struct curl_slist *h = NULL;
    for (size_t i = 0; i < s->n_headers; i++) {
        struct curl_slist *nh = curl_slist_append(h, s->headers[i]);
        if (!nh)
            goto oom;
        h = nh;
    }
    struct curl_slist *nh = curl_slist_append(h, line);
    if (!nh)
        goto oom;
    h = nh;
    curl_slist_free_all(sl->hdrs);
    sl->hdrs = h;
    sl->resp_len = 0;
    sl->resp[0] = '\0';
    sl->status_line[0] = '\0';
    sl->errbuf[0] = '\0';
    sl->retry_after_ms = -1;
    curl_easy_setopt(sl->easy, CURLOPT_HTTPHEADER, sl->hdrs);
    curl_easy_setopt(sl->easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(sl->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    CURLMcode mc = curl_multi_add_handle(s->multi, sl->easy);
    if (mc != CURLM_OK)
        return sl_error_set(err, SL_EIO, "sink %s: starting a request: %s", s->name,
                            curl_multi_strerror(mc));
    sl->busy = 1;
    sl->item = item;
    it->state = ITEM_FLIGHT;
    return SL_OK;
oom:
    curl_slist_free_all(h);
    return sl_error_set(err, SL_ENOMEM, "out of memory");
}

/* The response body's start, on one line, for messages. */
static const char *body_excerpt(struct http_slot *sl)
{
    for (size_t i = 0; i < sl->resp_len; i++)
        if (sl->resp[i] == '\r' || sl->resp[i] == '\n' || sl->resp[i] == '\t')
            sl->resp[i] = ' ';
    return sl->resp_len ? sl->resp : "(empty body)";
}

static int curl_transient(CURLcode c)
{
    switch (c) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_LOGIN_DENIED:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_TOO_MANY_REDIRECTS:
        return 0;
    default:
        return 1; /* refused, reset, timed out, resolver trouble, empty reply, ... */
    }
}

/* How one batch attempt went. */
struct attempt {
    uint32_t sent, delivered, failed, rejected, split;
    int64_t retry_after_ms;
    int fatal;
    char first_failure[512];
};

static void reject_record(struct http_sink *s, struct sl_batch *b, uint32_t rec, long status,
                          struct http_slot *sl)
{
    char rule[32];
    snprintf(rule, sizeof rule, "http_%ld", status);
    const char *excerpt = body_excerpt(sl);
    struct sl_reject_info why = {
        .error_class = "sink", .rule = rule, .path = "$", .actual = excerpt};
    sl_record_reject_why(b, &b->recs[rec], s->name, &why, "POST %s answered \"%s\": %s", s->url,
                         sl->status_line[0] ? sl->status_line : rule, excerpt);
}

/* Classify the finished request of slot sl. SL_OK, or a fatal error in err. */
static sl_rc slot_done(struct http_sink *s, struct http_slot *sl, CURLcode res, struct sl_batch *b,
                       struct attempt *at, struct sl_error *err)
{
    struct http_plan *p = &s->plan;
    curl_multi_remove_handle(s->multi, sl->easy);
    sl->busy = 0;
    struct http_item *it = &p->items[sl->item];
    uint32_t nrec = it->hi - it->lo;
    if (res != CURLE_OK) {
        const char *why = sl->errbuf[0] ? sl->errbuf : curl_easy_strerror(res);
        if (!curl_transient(res)) {
            at->fatal = 1;
            return sl_error_set(err, SL_EIO,
                                "sink %s: POST %s failed: %s; check sinks.%s.url "
                                "and the endpoint's TLS setup",
                                s->name, s->url, why, s->name);
        }
        it->state = ITEM_FAILED;
        if (at->failed++ == 0)
            snprintf(at->first_failure, sizeof at->first_failure, "%s", why);
        return SL_OK;
    }
    long status = 0;
    curl_easy_getinfo(sl->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
        it->state = ITEM_DONE;
        at->delivered++;
        return SL_OK;
    }
    const char *line = sl->status_line[0] ? sl->status_line : "(no status line)";
    if (status == 408 || status == 409 || status == 429 || (status >= 500 && status < 600)) {
        it->state = ITEM_FAILED;
        if (sl->retry_after_ms > at->retry_after_ms)
            at->retry_after_ms = sl->retry_after_ms;
        if (at->failed++ == 0) {
            if (sl->retry_after_ms >= 0)
                snprintf(at->first_failure, sizeof at->first_failure,
                         "\"%s\" (Retry-After %" PRId64 " ms): %.200s", line, sl->retry_after_ms,
                         body_excerpt(sl));
            else
                snprintf(at->first_failure, sizeof at->first_failure, "\"%s\": %.200s", line,
                         body_excerpt(sl));
        }
        return SL_OK;
    }
    if (status == 400 || status == 413 || status == 422) {
        if (nrec == 1) {
            it->state = ITEM_REJECTED;
            reject_record(s, b, p->idx[it->lo], status, sl);
            at->rejected++;
            return SL_OK;
        }
        /* Some records of the request are refused: find them by halving it. */
        uint32_t lo = it->lo, hi = it->hi, mid = lo + nrec / 2;
        it->state = ITEM_SPLIT;
        at->split++;
        if (add_item(p, lo, mid) || add_item(p, mid, hi))
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        return SL_OK;
    }
    at->fatal = 1;
    const char *what, *opt = "url", *tail = "";
    switch (status) {
    case 401:
        what = "the endpoint wants other credentials: check";
        opt = "auth";
        tail = " (the token, user or password, and the environment variables they come from)";
        break;
    case 403:
        what = "the credentials are not allowed to POST there: check the permissions behind";
        opt = "auth";
        tail = " and the path in the url";
        break;
    case 404:
        what = "nothing receives records at that address: check the path in";
        break;
    default:
        if (status >= 300 && status < 400) {
            what = "the endpoint redirects elsewhere: put the final address in";
        } else {
            what = "this status is neither success, nor transient, nor a problem with "
                   "particular records: check";
            tail = " and the receiver's logs";
        }
        break;
    }
    return sl_error_set(err, SL_EIO, "sink %s: POST %s answered \"%s\": %.200s; %s sinks.%s.%s%s",
                        s->name, s->url, line, body_excerpt(sl), what, s->name, opt, tail);
}

static void abort_flight(struct http_sink *s)
{
    for (uint32_t i = 0; i < s->concurrency; i++) {
        struct http_slot *sl = &s->slots[i];
        if (sl->busy) {
            curl_multi_remove_handle(s->multi, sl->easy);
            sl->busy = 0;
        }
    }
}

/*
 * Send every pending request of the plan, up to concurrency at a time. After the first
 * transient failure nothing new is started; the requests in flight are let finish.
 */
static sl_rc run_plan(struct http_sink *s, struct sl_batch *b, struct attempt *at,
                      struct sl_error *err)
{
    struct http_plan *p = &s->plan;
    uint32_t next = 0;
    for (;;) {
        for (uint32_t i = 0; i < s->concurrency && !at->failed; i++) {
            struct http_slot *sl = &s->slots[i];
            if (sl->busy)
                continue;
            while (next < p->nitems && p->items[next].state != ITEM_PENDING)
                next++;
            if (next == p->nitems)
                break;
            sl_rc rc = slot_start(s, sl, next, b, err);
            if (rc)
                return rc;
            at->sent++;
        }
        int busy = 0;
        for (uint32_t i = 0; i < s->concurrency; i++)
            busy += s->slots[i].busy;
        if (!busy)
            return SL_OK;
        int running = 0;
        CURLMcode mc = curl_multi_perform(s->multi, &running);
        if (mc != CURLM_OK)
            return sl_error_set(err, SL_EIO, "sink %s: curl: %s", s->name, curl_multi_strerror(mc));
        CURLMsg *m;
        int left;
        int finished = 0;
        while ((m = curl_multi_info_read(s->multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE)
                continue;
            struct http_slot *sl = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&sl);
            CURLcode res = m->data.result;
            sl_rc rc = slot_done(s, sl, res, b, at, err);
            if (rc)
                return rc;
            finished++;
            /* Halves appended by a split come after next: the scan finds them. */
        }
        if (!finished && running > 0) {
            mc = curl_multi_poll(s->multi, NULL, 0, 1000, NULL);
            if (mc != CURLM_OK)
                return sl_error_set(err, SL_EIO, "sink %s: curl: %s", s->name,
                                    curl_multi_strerror(mc));
        }
    }
}

static sl_rc keep_rejected(struct http_sink *s, struct sl_batch *b, struct sl_worker *w,
                           struct sl_error *err)
{
    if (!w || !w->keep_rejects)
        return SL_OK;
    sl_rc rc = w->keep_rejects(w, b, err);
    if (rc)
        sl_error_prefix(err,
                        "sink %s: records the endpoint refused could not be put in the "
                        "dead-letter queue: ",
                        s->name);
    return rc;
}

static sl_rc http_process(void *state, struct sl_batch *b, struct sl_worker *w,
                          struct sl_error *err)
{
    struct http_sink *s = state;
    struct http_plan *p = &s->plan;
    sl_rc rc;
    if (!plan_is(p, b) && (rc = plan_build(s, b, err))) {
        plan_reset(p);
        return rc;
    }
    uint32_t done_before = 0;
    for (uint32_t i = 0; i < p->nitems; i++) {
        if (p->items[i].state == ITEM_FAILED)
            p->items[i].state = ITEM_PENDING;
        done_before += p->items[i].state == ITEM_DONE;
    }
    struct attempt at = {.retry_after_ms = -1};
    rc = run_plan(s, b, &at, err);
    if (rc) {
        abort_flight(s);
        plan_reset(p);
        return rc;
    }
    if (at.failed) {
        if (w && at.retry_after_ms > 0)
            w->retry_after_ms = (uint64_t)at.retry_after_ms;
        sl_error_set(err, SL_RETRY,
                     "sink %s: POST %s: %u of %u requests failed, first: %s; %u request(s) "
                     "already delivered will not be sent again",
                     s->name, s->url, at.failed, at.sent, at.first_failure,
                     at.delivered + done_before);
        return SL_RETRY; /* the plan stays for the next attempt */
    }
    if (at.split)
        sl_info(s->name, "the endpoint refused records: %u request%s split, %u record%s rejected",
                at.split, at.split == 1 ? "" : "s", at.rejected, at.rejected == 1 ? "" : "s");
    int any_rejected = 0;
    for (uint32_t i = 0; i < p->nitems; i++)
        any_rejected |= p->items[i].state == ITEM_REJECTED;
    rc = any_rejected ? keep_rejected(s, b, w, err) : SL_OK;
    if (rc)
        return rc; /* the plan stays: a retry of the batch sends nothing again */
    plan_reset(p);
    return SL_OK;
}

static sl_rc http_committed(void *state, const char *source, char **position, struct sl_error *err)
{
    (void)state;
    (void)source;
    (void)err;
    *position = NULL; /* an endpoint holds no checkpoint: nothing is ever committed */
    return SL_OK;
}

const struct sl_plugin sl_sink_http = {
    .kind = SL_PLUGIN_SINK,
    .name = "http",
    .description = "POSTs records to an HTTP endpoint as NDJSON or a JSON array, with an "
                   "idempotency key per request (at-least-once: an endpoint keeps no "
                   "checkpoint).",
    .options = http_options,
    .init = http_init,
    .process = http_process,
    .committed = http_committed,
    .close = http_close,
};
