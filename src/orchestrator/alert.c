/*
 * alert.c - raise an alert: a log line and an optional webhook POST (see alert.h).
 *
 * What it does. The orchestrator calls sl_alert_raise() when a partition misses its SLA or
 * a job runs out of retries. The alert is logged first (WARN, component "alert"), so it is
 * on record even when no webhook is configured or the webhook is down. With a URL, the
 * alert is serialized once as a JSON object (sl_alert_to_json, through the project's JSON
 * string writer, so any text is escaped correctly) and POSTed with libcurl's easy
 * interface:
 *
 *     attempt 1 ... SL_ALERT_ATTEMPTS, each bounded by timeout_ms
 *       2xx                                 delivered: SL_OK
 *       408, 429, 5xx, connection refused,  transient: sleep 100 ms << (attempt - 1), retry;
 *       reset, timeout, DNS failure         after the last attempt SL_RETRY
 *       other statuses (400, 401, 404 ...)  permanent: SL_EIO at once (a configuration
 *       malformed or non-HTTP(S) URL        problem a retry cannot fix)
 *
 * Every attempt carries `Idempotency-Key: <alert id>`: a receiver that saw the first
 * attempt succeed but whose answer was lost recognises the retry. Delivery is therefore
 * at-least-once, deduplicated by the receiver (DESIGN §4: such sinks never claim more).
 *
 * Secrets. Webhook URLs often carry a token in their path (Slack, Teams); messages and log
 * lines show only the scheme, host and port of the URL.
 *
 * Threading. sl_alert_raise blocks its caller for at most about
 * SL_ALERT_ATTEMPTS * timeout_ms plus 0.7 s of back-off; callers that must not block run
 * it on a thread of their own. No state is shared between calls except libcurl's global
 * initialization, done once (pthread_once). CURLOPT_NOSIGNAL keeps libcurl away from
 * signals so that it is safe in a multi-threaded process.
 */
#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sluice/alert.h"
#include "sluice/buf.h"
#include "sluice/json.h"
#include "sluice/log.h"

#define ALERT_BODY_MAX (256 << 10)
#define ALERT_DEFAULT_TIMEOUT_MS 5000L
#define ALERT_BACKOFF_MS 100L

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_global_rc = CURLE_OK;

static void curl_global(void)
{
    curl_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* "2026-11-27T00:00:00Z" for Unix seconds t. */
static void iso_utc(int64_t t, char out[64])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm)) {
        snprintf(out, 64, "%" PRId64, t);
        return;
    }
    snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The URL without its path, query or user info: "https://hooks.example.com:8443". */
static void url_public(const char *url, char *out, size_t cap)
{
    const char *p = strstr(url, "://");
    const char *host = p ? p + 3 : url;
    size_t n = strcspn(host, "/?#");
    const char *at = memchr(host, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - host);
        host = at + 1;
    }
    int scheme_n = p ? (int)(p - url) : 0;
    snprintf(out, cap, "%.*s%s%.*s", scheme_n > 16 ? 16 : scheme_n, url, p ? "://" : "",
             (int)(n > 200 ? 200 : n), host);
}

static int text_ok(const char *s)
{
    return sl_utf8_valid(s, strlen(s), NULL);
}

/* The id travels in a header: printable ASCII only. */
static int id_ok(const char *s)
{
    if (!*s || strlen(s) > 512)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
            return 0;
    return 1;
}

static sl_rc alert_check(const struct sl_alert *a)
{
    if (!a || !a->kind || !*a->kind || !a->dag || !a->message || !a->id || !id_ok(a->id))
        return SL_EINVAL;
    if (!text_ok(a->kind) || !text_ok(a->dag) || !text_ok(a->message) ||
        (a->partition && !text_ok(a->partition)) || (a->job && !text_ok(a->job)))
        return SL_EINVAL;
    return SL_OK;
}

static sl_rc put_member(struct sl_buf *b, const char *key, const char *val)
{
    sl_rc rc = sl_buf_printf(b, ",\"%s\":", key);
    if (rc)
        return rc;
    return val ? sl_json_write_str(b, val, strlen(val)) : sl_buf_puts(b, "null");
}

sl_rc sl_alert_to_json(const struct sl_alert *a, struct sl_buf *b)
{
    sl_rc rc = alert_check(a);
    if (rc)
        return rc;
    size_t len0 = b->len;
    char iso[64];
    iso_utc(a->at, iso);
    if ((rc = sl_buf_puts(b, "{\"source\":\"sluice\"")) || (rc = put_member(b, "id", a->id)) ||
        (rc = put_member(b, "kind", a->kind)) || (rc = put_member(b, "dag", a->dag)) ||
        (rc = put_member(b, "partition", a->partition)) || (rc = put_member(b, "job", a->job)) ||
        (rc = put_member(b, "message", a->message)) ||
        (rc = sl_buf_printf(b, ",\"at\":%" PRId64 ",\"at_iso\":\"%s\"}", a->at, iso))) {
        b->len = len0;
        return rc;
    }
    return SL_OK;
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

enum attempt_result { DELIVERED, TRANSIENT, PERMANENT };

static enum attempt_result post_once(CURL *h, long *status, CURLcode *cc)
{
    *status = 0;
    *cc = curl_easy_perform(h);
    if (*cc != CURLE_OK) {
        switch (*cc) {
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
        case CURLE_NOT_BUILT_IN:
        case CURLE_BAD_FUNCTION_ARGUMENT:
        case CURLE_OUT_OF_MEMORY:
            return PERMANENT;
        default:
            return TRANSIENT; /* refused, reset, timed out, DNS, TLS handshake ... */
        }
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    if (*status >= 200 && *status < 300)
        return DELIVERED;
    if (*status == 408 || *status == 429 || *status >= 500)
        return TRANSIENT;
    return PERMANENT;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static sl_rc webhook_post(const struct sl_alert *a, const char *url, const struct sl_buf *body,
                          long timeout_ms, struct sl_error *err)
{
    char where[256];
    url_public(url, where, sizeof where);
    pthread_once(&curl_once, curl_global);
    if (curl_global_rc != CURLE_OK)
        return sl_error_set(err, SL_EIO, "alert %s: webhook %s: libcurl did not initialize: %s",
                            a->id, where, curl_easy_strerror(curl_global_rc));
    CURL *h = curl_easy_init();
    if (!h)
        return sl_error_set(err, SL_ENOMEM, "alert %s: webhook %s: out of memory", a->id, where);
    sl_rc rc = SL_OK;
    struct curl_slist *hdrs = NULL, *tmp;
    char key[600];
    snprintf(key, sizeof key, "Idempotency-Key: %s", a->id);
    static const char *const fixed[] = {"Content-Type: application/json",
                                        "Expect:", "User-Agent: sluice/" SLUICE_VERSION};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0] + 1; i++) {
        tmp = curl_slist_append(hdrs, i < sizeof fixed / sizeof fixed[0] ? fixed[i] : key);
        if (!tmp) {
            rc = sl_error_set(err, SL_ENOMEM, "alert %s: webhook %s: out of memory", a->id, where);
            goto out;
        }
        hdrs = tmp;
    }
    char errbuf[CURL_ERROR_SIZE];
    errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->data);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);

    long status = 0, backoff = ALERT_BACKOFF_MS;
    CURLcode cc = CURLE_OK;
    int attempt;
    for (attempt = 1;; attempt++) {
        errbuf[0] = '\0';
        enum attempt_result r = post_once(h, &status, &cc);
        if (r == DELIVERED) {
            if (attempt > 1)
                sl_info("alert", "alert %s delivered to %s on attempt %d", a->id, where, attempt);
            goto out;
        }
        const char *what = cc != CURLE_OK ? (errbuf[0] ? errbuf : curl_easy_strerror(cc)) : NULL;
        if (r == PERMANENT) {
            if (what)
                rc = sl_error_set(err, SL_EIO,
                                  "alert %s: webhook %s: %s; check the webhook URL (http or "
                                  "https)",
                                  a->id, where, what);
            else
                rc = sl_error_set(err, SL_EIO,
                                  "alert %s: webhook %s answered HTTP %ld, which a retry cannot "
                                  "fix; check the URL and the receiver's configuration",
                                  a->id, where, status);
            goto out;
        }
        if (attempt >= SL_ALERT_ATTEMPTS) {
            if (what)
                rc = sl_error_set(err, SL_RETRY,
                                  "alert %s: webhook %s not reached after %d attempts: %s; is "
                                  "the receiver running?",
                                  a->id, where, attempt, what);
            else
                rc = sl_error_set(err, SL_RETRY,
                                  "alert %s: webhook %s still answered HTTP %ld after %d "
                                  "attempts; try again later",
                                  a->id, where, status, attempt);
            goto out;
        }
        if (what)
            sl_debug("alert", "alert %s: webhook %s attempt %d: %s; retrying in %ld ms", a->id,
                     where, attempt, what, backoff);
        else
            sl_debug("alert", "alert %s: webhook %s attempt %d: HTTP %ld; retrying in %ld ms",
                     a->id, where, attempt, status, backoff);
        sleep_ms(backoff);
        backoff *= 2;
    }
out:
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return rc;
}

/* msg with control characters written as escapes, so that the log line stays one line. */
static void one_line(const char *msg, char *out, size_t cap)
{
    size_t n = 0;
    for (; *msg && n + 5 < cap; msg++) {
        unsigned char c = (unsigned char)*msg;
        if (c == '\n' || c == '\r' || c == '\t') {
            out[n++] = '\\';
            out[n++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
        } else if (c < 0x20 || c == 0x7f) {
            n += (size_t)snprintf(out + n, cap - n, "\\x%02x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    out[n] = '\0';
}

sl_rc sl_alert_raise(const struct sl_alert *a, const char *webhook_url, long timeout_ms,
                     struct sl_error *err)
{
    if (alert_check(a) != SL_OK)
        return sl_error_set(err, SL_EINVAL,
                            "alert: kind, dag, message and id are required (valid UTF-8; the id "
                            "printable ASCII without spaces)");
    char iso[64], msg[2048];
    iso_utc(a->at, iso);
    one_line(a->message, msg, sizeof msg);
    sl_warn("alert", "%s dag=%s partition=%s job=%s at=%s id=%s: %s", a->kind, a->dag,
            a->partition ? a->partition : "-", a->job ? a->job : "-", iso, a->id, msg);
    if (!webhook_url)
        return SL_OK;
    if (timeout_ms <= 0)
        timeout_ms = ALERT_DEFAULT_TIMEOUT_MS;
    struct sl_buf body;
    sl_buf_init(&body, ALERT_BODY_MAX);
    sl_rc rc = sl_alert_to_json(a, &body);
    if (rc == SL_OK)
        rc = sl_buf_cstr(&body);
    if (rc) {
        sl_buf_fini(&body);
        return sl_error_set(err, rc, "alert %s: cannot build the webhook body: %s", a->id,
                            sl_strerror(rc));
    }
    rc = webhook_post(a, webhook_url, &body, timeout_ms, err);
    sl_buf_fini(&body);
    return rc;
}
