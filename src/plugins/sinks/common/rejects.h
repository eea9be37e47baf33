/*
 * rejects.h - handing a sink's own rejections to the dead-letter queue (internal to the
 * sinks).
 *
 * A transactional sink that rejects records itself (a constraint, a record it cannot
 * write) must make them durable in the DLQ before it commits the batch, so that no
 * commit covers a rejected record the DLQ does not hold (plugin.h, keep_rejects).
 */
#ifndef SLUICE_SINKS_REJECTS_H
#define SLUICE_SINKS_REJECTS_H

#include "sluice/batch.h"
#include "sluice/plugin.h"
#include "sluice/rc.h"

/*
 * When b holds records that sink rejected and the DLQ does not hold yet, keep them through
 * w->keep_rejects (a no-op outside the engine). SL_OK, or the DLQ's error with a message
 * saying the batch was rolled back; the caller rolls back.
 */
sl_rc sl__sink_keep_rejected(const char *sink, struct sl_batch *b, struct sl_worker *w,
                             struct sl_error *err);

#endif
