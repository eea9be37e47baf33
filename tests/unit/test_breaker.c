/*
 * test_breaker.c - retries with backoff and the circuit breaker (src/core/breaker.c).
 *
 * A scripted attempt function plays the dependency: it fails (SL_RETRY) or errs fatally
 * for a given number of calls, records when each call happened, and may ask for a
 * Retry-After. The tests check the state machine (closed -> open -> half-open -> closed or
 * back to open), that nothing is attempted while open, that waits honour Retry-After, that
 * the retry budget ends a batch with SL_EIO, that an abort ends it at once, and what the
 * state file says for `sluice status`.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice/engine.h"

#include "core/breaker.h"
#include "test.h"

struct script {
    int fail_first;          /* this many calls return SL_RETRY */
    sl_rc fatal_at;          /* call number (1-based) that returns SL_EINVAL, 0 = never */
    uint64_t retry_after_ms; /* asked for on every failure */
    int calls;
    uint64_t at_ms[64];      /* monotonic ms of each call */
    atomic_int *abort_after; /* set after this many calls when not NULL */
    int abort_calls;
};

static sl_rc attempt(void *ctx, uint64_t *retry_after_ms, struct sl_error *err)
{
    struct script *s = ctx;
    if (s->calls < 64)
        s->at_ms[s->calls] = sl_now_mono_ns() / 1000000ull;
    s->calls++;
    if (s->abort_after && s->calls >= s->abort_calls)
        atomic_store(s->abort_after, 1);
    if (s->fatal_at && s->calls == s->fatal_at)
        return sl_error_set(err, SL_EINVAL, "fatal on call %d", s->calls);
    if (s->calls <= s->fail_first) {
        *retry_after_ms = s->retry_after_ms;
        return sl_error_set(err, SL_RETRY, "down (call %d)", s->calls);
    }
    return SL_OK;
}

static char dir[] = "/tmp/sluice_breaker_XXXXXX";

static void test_retries_then_success(void)
{
    struct sl_retry_policy rp = {0, 0, 5, 20, 2.0};
    struct sl_breaker_policy bp = {0, 0, 1}; /* no breaker */
    struct sl__breaker b;
    REQUIRE(sl__breaker_init(&b, "s1", &rp, &bp, dir) == SL_OK);
    struct script s = {.fail_first = 4};
    struct sl_error err;
    atomic_int aborted = 0;
    CHECK_INT(sl__breaker_run(&b, attempt, &s, &aborted, &err), SL_OK);
    CHECK_INT(s.calls, 5);
    CHECK_INT((int)atomic_load(&b.retries), 4);
    CHECK_INT((int)atomic_load(&b.opens), 0);
    CHECK_INT(b.state, SL__BRK_CLOSED);
    /* Full jitter: each wait is at most the backoff of its step (5, 10, 20, 20 ms). */
    uint64_t cap[] = {5, 10, 20, 20};
    for (int i = 0; i < 4; i++)
        CHECK(s.at_ms[i + 1] - s.at_ms[i] <= cap[i] + 15);
    sl__breaker_fini(&b);
}

static void test_open_half_open_closed(void)
{
    struct sl_retry_policy rp = {0, 0, 1, 2, 2.0};
    struct sl_breaker_policy bp = {3, 150, 1};
    struct sl__breaker b;
    REQUIRE(sl__breaker_init(&b, "s2", &rp, &bp, dir) == SL_OK);
    /* 3 failures open it; the probe (call 4) fails: open again; call 5 succeeds. */
    struct script s = {.fail_first = 4};
    struct sl_error err;
    atomic_int aborted = 0;
    CHECK_INT(sl__breaker_run(&b, attempt, &s, &aborted, &err), SL_OK);
    CHECK_INT(s.calls, 5);
    CHECK_INT((int)atomic_load(&b.opens), 2);
    CHECK_INT(b.state, SL__BRK_CLOSED);
    /* Nothing was attempted while open: the gaps after calls 3 and 4 span open_for. */
    CHECK(s.at_ms[3] - s.at_ms[2] >= 150);
    CHECK(s.at_ms[4] - s.at_ms[3] >= 150);
    /* Before it opened, retries came quickly (backoff 1-2 ms). */
    CHECK(s.at_ms[2] - s.at_ms[0] < 100);
    struct sl__breaker_snapshot snap;
    CHECK_INT(sl__breaker_read(dir, "s2", &snap), SL_OK);
    CHECK_STR(snap.state, "closed");
    CHECK_INT((int)snap.opens, 2);
    CHECK_STR(snap.last_error, "down (call 4)");
    sl__breaker_fini(&b);
}

static void test_state_file_while_open(void)
{
    struct sl_retry_policy rp = {4, 0, 1, 1, 1.0};
    struct sl_breaker_policy bp = {2, 60000, 1};
    struct sl__breaker b;
    REQUIRE(sl__breaker_init(&b, "s3", &rp, &bp, dir) == SL_OK);
    /* Opens after 2 failures; the abort comes during the (long) open wait. */
    atomic_int aborted = 0;
    struct script s = {.fail_first = 100, .abort_after = &aborted, .abort_calls = 2};
    struct sl_error err;
    CHECK_INT(sl__breaker_run(&b, attempt, &s, &aborted, &err), SL_ECANCELED);
    CHECK_INT(s.calls, 2);
    struct sl__breaker_snapshot snap;
    CHECK_INT(sl__breaker_read(dir, "s3", &snap), SL_OK);
    CHECK_STR(snap.state, "open");
    CHECK_INT((int)snap.consecutive, 2);
    CHECK(snap.since_ns > 0);
    sl__breaker_fini(&b);
    /* The next run starts closed and says so. */
    REQUIRE(sl__breaker_init(&b, "s3", &rp, &bp, dir) == SL_OK);
    CHECK_INT(sl__breaker_read(dir, "s3", &snap), SL_OK);
    CHECK_STR(snap.state, "closed");
    sl__breaker_fini(&b);
}

static void test_budget_and_fatal(void)
{
    struct sl_retry_policy rp = {3, 0, 1, 1, 1.0};
    struct sl_breaker_policy bp = {0, 0, 1};
    struct sl__breaker b;
    REQUIRE(sl__breaker_init(&b, "s4", &rp, &bp, NULL) == SL_OK);
    struct script s = {.fail_first = 100};
    struct sl_error err;
    atomic_int aborted = 0;
    CHECK_INT(sl__breaker_run(&b, attempt, &s, &aborted, &err), SL_EIO);
    CHECK_INT(s.calls, 3);
    CHECK(strstr(err.msg, "giving up on a batch after 3 attempts") != NULL);
    CHECK(strstr(err.msg, "down (call 3)") != NULL);

    /* max_elapsed: attempts stop once 60 ms have passed. */
    struct sl_retry_policy rp2 = {0, 60, 10, 10, 1.0};
    b.retry = &rp2;
    struct script s2 = {.fail_first = 1000};
    uint64_t t0 = sl_now_mono_ns();
    CHECK_INT(sl__breaker_run(&b, attempt, &s2, &aborted, &err), SL_EIO);
    uint64_t ms = (sl_now_mono_ns() - t0) / 1000000ull;
    CHECK(ms >= 60 && ms < 1000);

    /* A fatal code ends at once, unretried. */
    b.retry = &rp;
    struct script s3 = {.fail_first = 1, .fatal_at = 2};
    CHECK_INT(sl__breaker_run(&b, attempt, &s3, &aborted, &err), SL_EINVAL);
    CHECK_INT(s3.calls, 2);
    CHECK_STR(err.msg, "fatal on call 2");
    sl__breaker_fini(&b);
}

static void test_retry_after(void)
{
    struct sl_retry_policy rp = {0, 0, 1, 1, 1.0};
    struct sl_breaker_policy bp = {0, 0, 1};
    struct sl__breaker b;
    REQUIRE(sl__breaker_init(&b, "s5", &rp, &bp, NULL) == SL_OK);
    struct script s = {.fail_first = 2, .retry_after_ms = 120};
    struct sl_error err;
    atomic_int aborted = 0;
    CHECK_INT(sl__breaker_run(&b, attempt, &s, &aborted, &err), SL_OK);
    CHECK_INT(s.calls, 3);
    CHECK(s.at_ms[1] - s.at_ms[0] >= 120);
    CHECK(s.at_ms[2] - s.at_ms[1] >= 120);
    sl__breaker_fini(&b);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_retries_then_success);
    RUN(test_open_half_open_closed);
    RUN(test_state_file_while_open);
    RUN(test_budget_and_fatal);
    RUN(test_retry_after);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return TEST_DONE();
}
