/*
 * admin.h - the admin HTTP server of a running pipeline.
 *
 * `admin: {listen: host:port}` in a pipeline makes `sluice run` serve, while it runs:
 *
 *   GET /metrics   Prometheus text exposition (format 0.0.4) of the engine's live counters,
 *                  queues, sink latency histograms, breaker states and process memory
 *   GET /health    200 "ok" while the process runs
 *   GET /ready     200 "ready" once every stage has started; 503 before that and once a
 *                  stop was requested or the engine finished
 *
 * The server answers from its own thread (libmicrohttpd's internal polling thread) and
 * reads the engine only through sl_engine_live and sl_engine_ready, so it never slows the
 * pipeline beyond the short lock sl_engine_live takes. See docs/observability.md.
 */
#ifndef SLUICE_ADMIN_H
#define SLUICE_ADMIN_H

#include "sluice/buf.h"
#include "sluice/pipeline.h"
#include "sluice/rc.h"

struct sl_admin;

/*
 * Listen on listen ("host:port", "[v6addr]:port"; host may be a name, its first address
 * that binds is used; port 0 picks a free one) and serve until sl_admin_stop. p names the
 * pipeline in every series (its name is copied; p may be destroyed after the stop only).
 * SL_OK and *out set; SL_EINVAL when listen is not host:port, SL_EIO when the address
 * cannot be resolved or bound (err names the address and the reason), SL_ENOMEM.
 */
sl_rc sl_admin_start(const char *listen, const struct sl_pipeline *p, struct sl_admin **out,
                     struct sl_error *err);

/* The port the server listens on (useful with port 0). */
unsigned sl_admin_port(const struct sl_admin *a);

/* Stop serving (in-flight requests finish first) and free a. Accepts NULL. */
void sl_admin_stop(struct sl_admin *a);

/*
 * Render the exposition /metrics serves into b (appended): the live engine's stages when
 * one runs, and the process-wide series (sluice_up, memory) always. SL_OK, SL_ENOMEM or
 * SL_ELIMIT (b's maximum).
 */
sl_rc sl_admin_metrics_render(struct sl_buf *b, const char *pipeline);

#endif
