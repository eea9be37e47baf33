/*
 * stdout.c - the `stdout` sink: every live record as one NDJSON line on standard output.
 *
 * What it does. For each batch the sink serializes the live records (neither dropped nor
 * rejected) with sl_record_write, one per line, into a buffer it keeps for the whole run,
 * and hands the buffer to the kernel with as few write(2) calls as the kernel allows:
 * normally one per batch, so lines from one batch reach a pipe together and the cost per
 * record is a copy, not a system call.
 *
 * How it fits. stdout is the debugging and shell-composition sink (`sluice run p.yaml |
 * jq ...`). It has no checkpoint of its own: a terminal or pipe cannot take a position
 * back, so committed() always answers "nothing committed" and the engine replays from the
 * other sinks' positions. Delivery through this sink is therefore at-least-once in both
 * delivery modes: after a crash, the lines of the batches since the lowest committed
 * position of the source's other sinks (or the whole input, when it feeds no other sink)
 * are written again. Each object line carries its record id (`id_field`, default
 * `_sluice_id`), so a reader can drop the repeats.
 *
 * Failures. A write interrupted by a signal is resumed; a short write continues where it
 * stopped. EPIPE (the reader closed the pipe) is reported as a fatal error that says so.
 * Receiving EPIPE instead of being killed by SIGPIPE requires the process to ignore
 * SIGPIPE, which is main's decision, not a plugin's.
 *
 * Threading and ownership. process and close run on the sink's single thread. The state
 * owns its output buffer; records belong to the batch and are only read.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "sluice/alloc.h"
#include "sluice/plugin.h"
#include "sluice/record.h"

#include "plugins/sinks/common/id_field.h"

/* The output buffer's hard maximum. A single record serializing to more is an error. */
#define STDOUT_BUF_MAX ((size_t)64 << 20)

/*
 * Invariants:
 *   1. out.len == 0 between calls to process: a batch is either written whole or the
 *      call failed (then what was not written is discarded; the engine stops).
 *   2. fd is the descriptor written to; the sink never closes it.
 */
struct stdout_sink {
    const char *name; /* component name, for messages (outlives the state) */
    int fd;
    struct sl_buf out;
    char id_field[SL__SINK_ID_FIELD_MAX + 1]; /* "" when switched off */
};

static const struct sl_option stdout_options[] = {
    {.name = "format",
     .type = SL_OPT_ENUM,
     .def = "ndjson",
     .choices = "ndjson",
     .help = "Output format: ndjson writes each record as one line of compact JSON."},
    {.name = "id_field",
     .type = SL_OPT_STRING,
     .def = "_sluice_id",
     .help = "Field added to every object record holding its record id (32 hex digits), "
             "for deduplication downstream; \"\" switches it off."},
    {0},
};

/* Write all of p[0..n) to fd, resuming after EINTR and short writes. */
static sl_rc write_all(struct stdout_sink *s, const char *p, size_t n, struct sl_error *err)
{
    while (n > 0) {
        ssize_t w = write(s->fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EPIPE)
                return sl_error_set(err, SL_EIO,
                                    "standard output was closed by its reader "
                                    "(EPIPE); %zu bytes of this batch were not written; keep "
                                    "the reading process running until sluice exits",
                                    n);
            return sl_error_sys(err, SL_EIO, errno, "writing to standard output");
        }
        p += w;
        n -= (size_t)w;
    }
    return SL_OK;
}

static sl_rc flush_out(struct stdout_sink *s, struct sl_error *err)
{
    sl_rc rc = write_all(s, s->out.data, s->out.len, err);
    sl_buf_clear(&s->out);
    return rc;
}

static sl_rc stdout_init(const struct sl_plugin_ctx *ctx, void **state, struct sl_error *err)
{
    const char *format;
    sl_rc rc = sl_cfg_get_str(ctx->node, "format", "ndjson", &format, err);
    if (rc)
        return rc;
    if (strcmp(format, "ndjson") != 0)
        return sl_cfg_error(err, sl_cfg_get(ctx->node, "format"),
                            "sinks.%s.format: \"%s\" is not supported; the stdout sink "
                            "writes ndjson",
                            ctx->name, format);
    char id_field[SL__SINK_ID_FIELD_MAX + 1];
    if ((rc = sl__sink_id_field(ctx, id_field, err)))
        return rc;
    struct stdout_sink *s = sl_calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    memcpy(s->id_field, id_field, sizeof id_field);
    s->name = ctx->name;
    s->fd = STDOUT_FILENO;
    sl_buf_init(&s->out, STDOUT_BUF_MAX);
    *state = s;
    return SL_OK;
}

static sl_rc stdout_process(void *state, struct sl_batch *b, struct sl_worker *w,
                            struct sl_error *err)
{
    struct stdout_sink *s = state;
    (void)w;
    sl_rc rc = SL_OK;
    for (uint32_t i = 0; i < b->n; i++) {
        struct sl_record *r = &b->recs[i];
        if (r->flags & (SL_REC_DROPPED | SL_REC_BAD))
            continue;
        rc = sl__sink_append_line(&s->out, b, r, s->id_field);
        if (rc == SL_ELIMIT && s->out.len > 0) {
            /* The batch outgrew the buffer: hand over what we have and start again. */
            rc = flush_out(s, err);
            if (rc)
                goto out;
            rc = sl__sink_append_line(&s->out, b, r, s->id_field);
        }
        if (rc == SL_ELIMIT) {
            rc = sl_error_set(err, SL_ELIMIT,
                              "record at %s:%u serializes to more than %zu MiB, the "
                              "output buffer's limit; split the record upstream",
                              b->origin ? b->origin : "(input)", r->line, STDOUT_BUF_MAX >> 20);
            goto out;
        }
        if (rc) {
            rc = sl_error_set(err, rc, "serializing record at %s:%u: %s",
                              b->origin ? b->origin : "(input)", r->line, sl_strerror(rc));
            goto out;
        }
    }
    rc = flush_out(s, err);
out:
    sl_buf_clear(&s->out);
    return rc;
}

static sl_rc stdout_committed(void *state, const char *source, char **position,
                              struct sl_error *err)
{
    (void)state;
    (void)source;
    (void)err;
    *position = NULL; /* a stream cannot hold a checkpoint: nothing is ever committed */
    return SL_OK;
}

static void stdout_close(void *state)
{
    struct stdout_sink *s = state;
    if (!s)
        return;
    sl_buf_fini(&s->out);
    sl_free(s);
}

const struct sl_plugin sl_sink_stdout = {
    .kind = SL_PLUGIN_SINK,
    .name = "stdout",
    .description = "Writes every record as one line of JSON to standard output "
                   "(at-least-once: a stream keeps no checkpoint).",
    .options = stdout_options,
    .init = stdout_init,
    .process = stdout_process,
    .committed = stdout_committed,
    .close = stdout_close,
};
