/*
 * rejects.c - a sink's own rejections into the dead-letter queue before its commit
 * (rejects.h). Called on the sink's thread.
 */
#include <string.h>

#include "plugins/sinks/common/rejects.h"

sl_rc sl__sink_keep_rejected(const char *sink, struct sl_batch *b, struct sl_worker *w,
                             struct sl_error *err)
{
    if (!w || !w->keep_rejects)
        return SL_OK;
    uint32_t i;
    for (i = 0; i < b->n; i++) {
        const struct sl_record *r = &b->recs[i];
        if ((r->flags & (SL_REC_BAD | SL_REC_KEPT)) == SL_REC_BAD && r->error_stage &&
            strcmp(r->error_stage, sink) == 0)
            break;
    }
    if (i == b->n)
        return SL_OK;
    sl_rc rc = w->keep_rejects(w, b, err);
    if (rc)
        sl_error_prefix(err,
                        "sink %s: the batch was rolled back because the records it rejected "
                        "could not be put in the dead-letter queue: ",
                        sink);
    return rc;
}
