/*
 * stdin.c - the `stdin` source: NDJSON or CSV records from standard input.
 *
 * How it fits: like the file source (same window and line splitter, lines.h; same CSV
 * reader, csv.h), but the input is a pipe or terminal that cannot be re-read. read()
 * waits for input with poll() for at most ~200 ms, so a stop request is noticed, and
 * returns SL_AGAIN when nothing came; end of input is SL_EOF. A last line without '\n'
 * at end of input is a record.
 *
 * Positions: {"offset":N,"line":L} after the batch's last record, for status and
 * messages. Standard input cannot be rewound, so there is no restore, and no
 * position_cmp or covers either: a restarted pipeline reads whatever standard input then
 * delivers, and the pipeline loader refuses `delivery: exactly_once` for a pipeline with
 * this source. Record ids are derived from the
 * byte offset and an identity that includes the time the source started, so two runs
 * over different input never share ids.
 *
 * Threading: one source thread. Ownership: window and CSV scratch are the state's; a
 * batch's records live in its arena.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "plugins/sources/file/csv.h"
#include "plugins/sources/file/lines.h"
#include "sluice/alloc.h"
#include "sluice/plugin.h"
#include "sluice/record.h"

#define WAIT_MS 200

static const struct sl_batch_limits default_limits = {1024, (size_t)1 << 20};

struct stdin_src {
    const char *name;
    int fd;
    int csv;
    int eof; /* read(2) returned 0 */
    struct sl__lines win;
    struct sl__csv csvr;
    struct sl__emit emit;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static sl_rc produce(struct stdin_src *s, struct sl_batch *b, struct sl__span *sp,
                     struct sl_error *err)
{
    if (s->csv)
        return sl__csv_rows(&s->csvr, &s->win, b, sp, &s->emit, s->eof, err);
    return sl__lines_ndjson(&s->win, b, sp, &s->emit, s->eof);
}

static sl_rc finish(struct stdin_src *s, struct sl_batch *b)
{
    b->origin = "-";
    b->position = sl_arena_printf(&b->arena, "{\"offset\":%" PRIu64 ",\"line\":%" PRIu64 "}",
                                  s->win.off, s->win.line);
    return b->position ? SL_OK : SL_ENOMEM;
}

static sl_rc stdin_read(void *state, struct sl_batch *b, struct sl_error *err)
{
    struct stdin_src *s = state;
    uint64_t deadline = now_ms() + WAIT_MS;
    struct sl__span sp;
    sl__lines_span_begin(&s->win, &sp, b);
    uint64_t before = s->win.off;
    for (;;) {
        sl_rc rc = produce(s, b, &sp, err);
        if (rc != SL_OK && rc != SL_AGAIN)
            return rc;
        sl_rc frc = sl__lines_flush(&s->win, b, &sp, s->win.start);
        if (frc)
            return frc;
        int progress = b->n || s->win.off != before;
        if (rc == SL_OK)
            return finish(s, b);
        if (s->eof)
            return progress ? finish(s, b) : SL_EOF;
        uint64_t now = now_ms();
        if (now >= deadline)
            return progress ? finish(s, b) : SL_AGAIN;
        struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
        int pr = poll(&pfd, 1, (int)(deadline - now));
        if (pr < 0 && errno != EINTR)
            return sl_error_sys(err, SL_EIO, errno, "stdin source %s: poll", s->name);
        if (pr <= 0)
            continue;
        ssize_t got = sl__lines_fill(&s->win, &sp, s->fd, 0);
        if (got == -EAGAIN || got == -EINTR)
            continue;
        if (got < 0)
            return sl_error_sys(err, SL_EIO, (int)-got,
                                "stdin source %s: cannot read standard input", s->name);
        if (got == 0)
            s->eof = 1;
    }
}

static void stdin_close(void *state)
{
    struct stdin_src *s = state;
    if (!s)
        return;
    sl__lines_fini(&s->win);
    if (s->csv)
        sl__csv_fini(&s->csvr);
    sl_free(s);
}

static sl_rc stdin_init(const struct sl_plugin_ctx *ctx, void **state, struct sl_error *err)
{
    struct stdin_src *s = sl_calloc(1, sizeof *s);
    if (!s)
        return SL_ENOMEM;
    sl_rc rc;
    const char *format;
    uint64_t max_record;
    s->name = ctx->name;
    s->fd = STDIN_FILENO;
    if ((rc = sl_cfg_get_str(ctx->node, "format", "ndjson", &format, err)))
        goto fail;
    if (strcmp(format, "csv") == 0) {
        s->csv = 1;
    } else if (strcmp(format, "ndjson") != 0) {
        rc = sl_cfg_error(err, sl_cfg_get(ctx->node, "format"),
                          "format: \"%s\" is not a stdin format; use ndjson or csv", format);
        goto fail;
    }
    if ((rc = sl_cfg_get_size(ctx->node, "max_record_bytes", 1 << 20, &max_record, err)))
        goto fail;
    if (max_record < 16 || max_record > ((uint64_t)256 << 20)) {
        rc = sl_cfg_error(err, sl_cfg_get(ctx->node, "max_record_bytes"),
                          "max_record_bytes: must be between 16 bytes and 256MiB");
        goto fail;
    }
    if (s->csv && (rc = sl__csv_configure(&s->csvr, ctx->doc, ctx->node, max_record, err))) {
        s->csv = 0;
        goto fail;
    }
    if (!s->csv && (rc = sl__csv_reject_options(ctx->node, err)))
        goto fail;
    if (s->csv)
        sl__csv_input_begin(&s->csvr);
    if ((rc = sl__lines_init(&s->win, 1 << 20, max_record)))
        goto fail;
    s->emit.limits = ctx->limits ? ctx->limits : &default_limits;
    s->emit.stage = ctx->name;
    s->emit.origin = "stdin";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char identity[64];
    snprintf(identity, sizeof identity, "stdin@%lld.%09ld", (long long)ts.tv_sec, ts.tv_nsec);
    sl_record_id_base(ctx->pipeline, ctx->name, identity, s->emit.id_base);
    *state = s;
    return SL_OK;
fail:
    stdin_close(s);
    return rc;
}

static const struct sl_option stdin_options[] = {
    {"format", SL_OPT_ENUM, "ndjson", 0, "ndjson: one JSON value per line; csv: RFC 4180 rows.",
     "ndjson|csv"},
    SL__CSV_OPTIONS,
    {NULL, 0, NULL, 0, NULL, NULL},
};

const struct sl_plugin sl_source_stdin = {
    .kind = SL_PLUGIN_SOURCE,
    .name = "stdin",
    .description = "Read NDJSON or CSV records from standard input.",
    .options = stdin_options,
    .init = stdin_init,
    .read = stdin_read,
    .close = stdin_close,
};
