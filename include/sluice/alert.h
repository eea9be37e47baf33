/*
 * alert.h - raise an alert: one structured log line and an optional webhook POST.
 *
 * The orchestrator raises alerts when a partition misses its SLA or a job's retries are
 * exhausted. An alert is always written to the log (level WARN, component "alert", every
 * field as key=value); when a webhook URL is given it is also POSTed there as one JSON
 * object:
 *
 *     {"source":"sluice","id":"...","kind":"sla_miss","dag":"nightly",
 *      "partition":"2026-11-26","job":null,"message":"...","at":1764201600,
 *      "at_iso":"2026-11-27T00:00:00Z"}
 *
 * with the headers `Content-Type: application/json` and `Idempotency-Key: <id>`. Delivery
 * is at-least-once: a retry after a lost answer may deliver the same alert twice, with the
 * same id and key, so receivers deduplicate on it.
 *
 * Thread-safe: no shared state besides libcurl's global init, done once.
 */
#ifndef SLUICE_ALERT_H
#define SLUICE_ALERT_H

#include <stdint.h>

#include "sluice/buf.h"
#include "sluice/rc.h"

/*
 * One alert. Strings are borrowed for the duration of the call and must be valid UTF-8.
 * kind, dag, message and id are required; partition and job may be NULL (written as JSON
 * null). id is unique per alert and stable across retries of the same alert (e.g.
 * "sla_miss/nightly/2026-11-26"): receivers deduplicate on it.
 */
struct sl_alert {
    const char *kind;      /* "sla_miss", "job_failed", ... */
    const char *dag;       /* the DAG's name */
    const char *partition; /* "2026-11-26", or NULL */
    const char *job;       /* the job's name, or NULL for the whole partition */
    const char *message;   /* one human sentence */
    int64_t at;            /* when the condition was detected, Unix seconds */
    const char *id;        /* unique, the Idempotency-Key */
};

/* Attempts made for one webhook delivery (the first try plus retries). */
#define SL_ALERT_ATTEMPTS 4

/*
 * Log a and, when webhook_url is not NULL, POST it as JSON to webhook_url. Each attempt
 * is bounded by timeout_ms (<= 0 means 5000). Connection errors, timeouts, 429 and 5xx
 * answers are retried up to SL_ALERT_ATTEMPTS attempts in all, with backoff (100 ms,
 * 200 ms, 400 ms ...).
 *
 * Returns SL_OK when the log line was written and the webhook (if any) answered 2xx;
 * SL_RETRY when every attempt failed transiently (the caller may try again later with the
 * same id); SL_EIO for a permanent refusal (another 4xx) or a URL libcurl rejects;
 * SL_EINVAL when a required field is missing; SL_ENOMEM. err says what happened, with the
 * URL and the last HTTP status or libcurl error. The log line is written even when
 * delivery fails.
 */
sl_rc sl_alert_raise(const struct sl_alert *a, const char *webhook_url, long timeout_ms,
                     struct sl_error *err);

/*
 * Serialize a as the JSON body described above into b (appended). For callers that store
 * or print alerts themselves. SL_EINVAL when a required field is missing; SL_ENOMEM or
 * SL_ELIMIT from the buffer.
 */
sl_rc sl_alert_to_json(const struct sl_alert *a, struct sl_buf *b);

#endif
