/*
 * breaker.h - retries with backoff and a circuit breaker around a sink's attempts
 * (internal to the engine and `sluice status`).
 *
 *              failure_threshold consecutive failures
 *     CLOSED ──────────────────────────────────────────> OPEN
 *       ^                                                  │ open_for elapsed
 *       │ a probe succeeds                                 v
 *       └──────────────────────────────────────────── HALF_OPEN
 *                       every probe fails: back to OPEN ──┘
 *
 * A failed attempt (SL_RETRY) is retried after a random wait in [0, backoff] (full
 * jitter), at least the dependency's Retry-After; the backoff grows by `multiplier` up to
 * `max_backoff`. While the breaker is open no attempt is made at all: the sink thread
 * holds its batch, its queue fills, and backpressure holds the data upstream. Nothing is
 * dropped: a batch is either committed or, when the retry budget (max_attempts,
 * max_elapsed) is spent, the run fails with the batch uncommitted.
 *
 * Every transition is logged and written to <state_dir>/breakers/<sink> (text, replaced
 * atomically), which `sluice status` reads.
 *
 * Threading: one struct sl__breaker per sink, used by the sink's thread only; the
 * counters are atomics so the engine's report may read them.
 */
#ifndef SLUICE_CORE_BREAKER_H
#define SLUICE_CORE_BREAKER_H

#include <stdatomic.h>
#include <stdint.h>

#include "sluice/pipeline.h"
#include "sluice/rc.h"

enum sl__brk_state { SL__BRK_CLOSED = 0, SL__BRK_OPEN, SL__BRK_HALF_OPEN };

/*
 * Invariants:
 *   1. state == SL__BRK_OPEN iff opened_ns != 0.
 *   2. state == SL__BRK_HALF_OPEN implies 0 < probes_left <= policy->half_open_probes.
 *   3. consecutive counts failed attempts since the last success.
 */
struct sl__breaker {
    const char *sink;
    const struct sl_retry_policy *retry;
    const struct sl_breaker_policy *policy;
    char *state_file; /* <state_dir>/breakers/<sink>, or NULL when it cannot be written */
    int state;
    uint32_t consecutive;
    uint64_t opened_ns; /* monotonic */
    uint32_t probes_left;
    uint64_t rng;
    atomic_ullong retries; /* failed attempts that were retried */
    atomic_ullong opens;   /* transitions to OPEN */
    int stop_on_request;   /* also give up when a stop is requested (start-up) */
    char last_error[512];
};

/* Set up for sink (names and policies must outlive b). SL_OK or SL_ENOMEM. */
sl_rc sl__breaker_init(struct sl__breaker *b, const char *sink, const struct sl_retry_policy *retry,
                       const struct sl_breaker_policy *policy, const char *state_dir);
void sl__breaker_fini(struct sl__breaker *b);

/*
 * One attempt: SL_OK, SL_RETRY (transient; *retry_after_ms may ask for a minimum wait),
 * or another code (fatal, returned as is).
 */
typedef sl_rc (*sl__attempt_fn)(void *ctx, uint64_t *retry_after_ms, struct sl_error *err);

/*
 * Attempt until success, a fatal error, the retry budget is spent (SL_EIO, err says how
 * many attempts and the last error) or *aborted becomes non-zero (SL_ECANCELED).
 */
sl_rc sl__breaker_run(struct sl__breaker *b, sl__attempt_fn fn, void *ctx,
                      const atomic_int *aborted, struct sl_error *err);

/* "closed", "open", "half_open". */
const char *sl__breaker_state_name(int state);

/* What `sluice status` reads back. */
struct sl__breaker_snapshot {
    char state[16];
    uint64_t since_ns; /* wall clock of the last transition */
    uint64_t opens;
    uint64_t consecutive;
    char last_error[512];
};

/* Read <state_dir>/breakers/<sink>. SL_OK, SL_ENOENT (never written), SL_EIO. */
sl_rc sl__breaker_read(const char *state_dir, const char *sink, struct sl__breaker_snapshot *out);

#endif
