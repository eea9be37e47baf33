/*
 * fuzz_cron.c - fuzz target for cron expressions and the time zone file reader.
 *
 * Three kinds of input:
 *
 *     TZif...                 a zone file: written to a scratch directory that TZDIR then
 *                             points to, and loaded for a few fixed expressions
 *     TZ=<name>\n<expr>       an expression in a zone of the system's zoneinfo
 *     <expr>                  an expression in UTC
 *
 * Parsing must succeed or fail with SL_ECONFIG (or SL_ENOMEM) and a message, leaving the
 * output NULL. A compiled expression is then asked for next() and prev() at a few times
 * (fixed ones and ones derived from the input), and the answers must be consistent:
 * next(t) > t, prev(t) <= t, next(prev(t)) > t, prev(next(t)) == next(t) and
 * prev(next(t) - 1) <= t. Built with libFuzzer when SLUICE_FUZZ is on, otherwise with
 * tests/fuzz/driver.c replaying tests/fuzz/corpus/cron/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice/cron.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_times(const struct sl_cron *c, const uint8_t *data, size_t size)
{
    int64_t times[8] = {0,
                        1795780800 /* 2026-11-27 12:00Z */,
                        1774747800,
                        1793323800,
                        -86400 * 365 * 50LL,
                        4102444800LL /* 2100 */,
                        0,
                        0};
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 1099511628211ULL;
    times[6] = (int64_t)(h % 4102444800ULL);
    times[7] = 1795780800 + (int64_t)(h % (86400 * 400));
    for (int i = 0; i < 8; i++) {
        int64_t t = times[i];
        int64_t n = sl_cron_next(c, t), p = sl_cron_prev(c, t);
        if (n != -1) {
            if (n <= t)
                abort();
            if (sl_cron_prev(c, n) != n)
                abort();
            int64_t pn = sl_cron_prev(c, n - 1);
            if (pn > t)
                abort();
        }
        if (p != -1) {
            if (p > t)
                abort();
            int64_t np = sl_cron_next(c, p);
            if (np != -1 && np <= t)
                abort();
        }
    }
}

static void one(const char *expr, const char *tz, const uint8_t *data, size_t size)
{
    struct sl_cron *c = (struct sl_cron *)&c;
    struct sl_error err;
    sl_error_clear(&err);
    sl_rc rc = sl_cron_parse(expr, tz, &c, &err);
    if (rc) {
        if ((rc != SL_ECONFIG && rc != SL_ENOMEM) || c != NULL || err.msg[0] == '\0')
            abort();
        return;
    }
    if (!c)
        abort();
    check_times(c, data, size);
    sl_cron_free(c);
}

static char scratch[256];

static void scratch_remove(void)
{
    rmdir(scratch);
}

/* A scratch directory of our own for zone files, made once, removed at exit. */
static const char *zone_dir(void)
{
    if (!scratch[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(scratch, sizeof scratch, "%s/sluice-fuzz-cron-%ld", tmp && *tmp ? tmp : "/tmp",
                 (long)getpid());
        mkdir(scratch, 0700);
        atexit(scratch_remove);
    }
    return scratch;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 4 && memcmp(data, "TZif", 4) == 0) {
        char path[512];
        snprintf(path, sizeof path, "%s/z", zone_dir());
        FILE *f = fopen(path, "wb");
        if (!f)
            return 0;
        size_t w = fwrite(data, 1, size, f);
        fclose(f);
        if (w != size)
            return 0;
        const char *old = getenv("TZDIR");
        char *saved = old ? strdup(old) : NULL;
        setenv("TZDIR", zone_dir(), 1);
        one("*/7 * * * *", "z", data, size);
        one("30 2 * * *", "z", data, size);
        one("0 0 29 2 *", "z", data, size);
        if (saved) {
            setenv("TZDIR", saved, 1);
            free(saved);
        } else {
            unsetenv("TZDIR");
        }
        unlink(path);
        return 0;
    }
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    const char *tz = NULL, *expr = text;
    if (size >= 3 && memcmp(text, "TZ=", 3) == 0) {
        char *nl = strchr(text, '\n');
        if (nl) {
            *nl = '\0';
            tz = text + 3;
            expr = nl + 1;
        }
    }
    one(expr, tz, data, size);
    free(text);
    return 0;
}
