/*
 * breaker.c - retries with full-jitter backoff and a circuit breaker (breaker.h).
 *
 * The engine calls sl__breaker_run once per batch of a sink. Waiting happens here, in
 * slices of at most 100 ms so that an aborted run (another stage failed) is noticed
 * quickly; a stop request (SIGTERM) does not cut retries short: the batch in hand is
 * still committed if the dependency comes back within the shutdown timeout.
 *
 * The state file is a few "key value" lines:
 *
 *     state open
 *     since_ns 1795793625845350380
 *     opens 3
 *     consecutive 7
 *     last_error connection to server at "127.0.0.1", port 5432 failed: Connection refused
 *
 * written to a temporary name and renamed over the old one (no fsync: it is a report, not
 * state anything depends on).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sluice/alloc.h"
#include "sluice/engine.h"
#include "sluice/log.h"

#include "core/breaker.h"

#define WAIT_SLICE_MS 100

const char *sl__breaker_state_name(int state)
{
    switch (state) {
    case SL__BRK_OPEN:
        return "open";
    case SL__BRK_HALF_OPEN:
        return "half_open";
    default:
        return "closed";
    }
}

static void persist(struct sl__breaker *b);

static char *state_path(const char *state_dir, const char *sink)
{
    size_t n = strlen(state_dir) + strlen(sink) + 16;
    char *p = sl_malloc(n);
    if (p)
        snprintf(p, n, "%s/breakers/%s", state_dir, sink);
    return p;
}

sl_rc sl__breaker_init(struct sl__breaker *b, const char *sink, const struct sl_retry_policy *retry,
                       const struct sl_breaker_policy *policy, const char *state_dir)
{
    memset(b, 0, sizeof *b);
    b->sink = sink;
    b->retry = retry;
    b->policy = policy;
    b->rng = sl_now_mono_ns() ^ ((uint64_t)(uintptr_t)b << 17) ^ 0x9e3779b97f4a7c15ull;
    if (state_dir) {
        b->state_file = state_path(state_dir, sink);
        if (!b->state_file)
            return SL_ENOMEM;
        /* A run that ended with the breaker open left that behind: this run starts closed. */
        if (access(b->state_file, F_OK) == 0)
            persist(b);
    }
    return SL_OK;
}

void sl__breaker_fini(struct sl__breaker *b)
{
    sl_free(b->state_file);
    b->state_file = NULL;
}

static uint64_t next_rand(struct sl__breaker *b)
{
    /* xorshift64*: jitter only needs to be spread out, not unpredictable. */
    uint64_t x = b->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    b->rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

static void persist(struct sl__breaker *b)
{
    if (!b->state_file)
        return;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", b->state_file);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = 0;
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            return;
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", b->state_file);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    /* One line for the error: newlines would split the record. */
    char err[sizeof b->last_error];
    snprintf(err, sizeof err, "%s", b->last_error);
    for (char *c = err; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    fprintf(f, "state %s\nsince_ns %" PRIu64 "\nopens %llu\nconsecutive %u\nlast_error %s\n",
            sl__breaker_state_name(b->state), sl_now_real_ns(),
            (unsigned long long)atomic_load(&b->opens), b->consecutive, err);
    if (fclose(f) != 0 || rename(tmp, b->state_file) != 0)
        unlink(tmp);
}

static void transition(struct sl__breaker *b, int to)
{
    int from = b->state;
    b->state = to;
    if (to == SL__BRK_OPEN) {
        b->opened_ns = sl_now_mono_ns();
        atomic_fetch_add(&b->opens, 1);
        sl_warn(b->sink,
                "circuit breaker open after %u consecutive failures: no attempt for %llu ms "
                "(last error: %s)",
                b->consecutive, (unsigned long long)b->policy->open_for_ms, b->last_error);
    } else if (to == SL__BRK_HALF_OPEN) {
        b->opened_ns = 0;
        b->probes_left = b->policy->half_open_probes ? b->policy->half_open_probes : 1;
        sl_info(b->sink, "circuit breaker half-open: probing with up to %u attempt%s",
                b->probes_left, b->probes_left == 1 ? "" : "s");
    } else {
        b->opened_ns = 0;
        if (from != SL__BRK_CLOSED)
            sl_info(b->sink, "circuit breaker closed: the dependency answers again");
    }
    persist(b);
}

/* Sleep ms in slices, returning early (1) when the run is aborted (or, with stop, stopped). */
static int wait_ms(uint64_t ms, const atomic_int *aborted, int stop)
{
    uint64_t end = sl_now_mono_ns() + ms * 1000000ull;
    for (;;) {
        if ((aborted && atomic_load(aborted)) || (stop && sl_engine_stopping()))
            return 1;
        uint64_t now = sl_now_mono_ns();
        if (now >= end)
            return 0;
        uint64_t left = (end - now) / 1000000ull;
        uint64_t slice = left < WAIT_SLICE_MS ? left : WAIT_SLICE_MS;
        if (slice == 0)
            slice = 1;
        struct timespec ts = {(time_t)(slice / 1000), (long)(slice % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

sl_rc sl__breaker_run(struct sl__breaker *b, sl__attempt_fn fn, void *ctx,
                      const atomic_int *aborted, struct sl_error *err)
{
    const struct sl_retry_policy *rp = b->retry;
    const struct sl_breaker_policy *bp = b->policy;
    uint64_t t0 = sl_now_mono_ns();
    uint64_t backoff = rp->initial_ms ? rp->initial_ms : 1;
    for (uint64_t attempt = 1;; attempt++) {
        if (b->state == SL__BRK_OPEN) {
            uint64_t since = (sl_now_mono_ns() - b->opened_ns) / 1000000ull;
            if (since < bp->open_for_ms &&
                wait_ms(bp->open_for_ms - since, aborted, b->stop_on_request))
                return sl_error_set(err, SL_ECANCELED, "stopped while the breaker was open");
            transition(b, SL__BRK_HALF_OPEN);
        }
        uint64_t retry_after = 0;
        sl_error_clear(err);
        sl_rc rc = fn(ctx, &retry_after, err);
        if (rc == SL_OK) {
            b->consecutive = 0;
            if (b->state != SL__BRK_CLOSED)
                transition(b, SL__BRK_CLOSED);
            return SL_OK;
        }
        if (rc != SL_RETRY)
            return rc;
        b->consecutive++;
        const char *m = err->msg[0] ? err->msg : "?";
        size_t ml = strnlen(m, sizeof b->last_error - 1);
        memcpy(b->last_error, m, ml);
        b->last_error[ml] = 0;
        if (b->state == SL__BRK_HALF_OPEN) {
            if (--b->probes_left == 0)
                transition(b, SL__BRK_OPEN);
        } else if (bp->failure_threshold && b->consecutive >= bp->failure_threshold) {
            transition(b, SL__BRK_OPEN);
        }
        uint64_t elapsed = (sl_now_mono_ns() - t0) / 1000000ull;
        if ((rp->max_attempts && attempt >= rp->max_attempts) ||
            (rp->max_elapsed_ms && elapsed >= rp->max_elapsed_ms)) {
            sl_error_prefix(err,
                            "giving up on a batch after %" PRIu64
                            " attempts in %.1f s (retry.max_attempts %u, retry.max_elapsed "
                            "%" PRIu64 " ms); nothing of it was committed, so a restart "
                            "delivers it: ",
                            attempt, (double)elapsed / 1000.0, rp->max_attempts,
                            rp->max_elapsed_ms);
            return SL_EIO;
        }
        if ((aborted && atomic_load(aborted)) || (b->stop_on_request && sl_engine_stopping())) {
            sl_error_prefix(err, "stopped while retrying: ");
            err->rc = SL_ECANCELED;
            return SL_ECANCELED;
        }
        atomic_fetch_add(&b->retries, 1);
        if (b->state == SL__BRK_OPEN)
            continue; /* the wait is the breaker's open_for */
        uint64_t wait = backoff ? next_rand(b) % (backoff + 1) : 0;
        if (retry_after > wait)
            wait = retry_after;
        sl_warn(b->sink,
                "transient failure (attempt %" PRIu64 "), retrying in %" PRIu64 " ms%s: %s",
                attempt, wait, retry_after ? " (as the server asked)" : "", err->msg);
        if (wait_ms(wait, aborted, b->stop_on_request))
            return sl_error_set(err, SL_ECANCELED, "stopped: another stage failed");
        double next = (double)backoff * rp->multiplier;
        backoff = next > (double)rp->max_ms ? rp->max_ms : (uint64_t)next;
    }
}

sl_rc sl__breaker_read(const char *state_dir, const char *sink, struct sl__breaker_snapshot *out)
{
    memset(out, 0, sizeof *out);
    char *path = state_path(state_dir, sink);
    if (!path)
        return SL_ENOMEM;
    FILE *f = fopen(path, "r");
    sl_free(path);
    if (!f)
        return errno == ENOENT ? SL_ENOENT : SL_EIO;
    char line[700];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (!strncmp(line, "state ", 6))
            snprintf(out->state, sizeof out->state, "%s", line + 6);
        else if (!strncmp(line, "since_ns ", 9))
            sscanf(line + 9, "%" SCNu64, &out->since_ns);
        else if (!strncmp(line, "opens ", 6))
            sscanf(line + 6, "%" SCNu64, &out->opens);
        else if (!strncmp(line, "consecutive ", 12))
            sscanf(line + 12, "%" SCNu64, &out->consecutive);
        else if (!strncmp(line, "last_error ", 11))
            snprintf(out->last_error, sizeof out->last_error, "%s", line + 11);
    }
    fclose(f);
    return out->state[0] ? SL_OK : SL_EIO;
}
