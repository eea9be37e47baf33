/*
 * id_field.h - shared by the file and stdout sinks: serialize a record as one NDJSON line
 * carrying its record id in a field (`id_field`, default `_sluice_id`).
 */
#ifndef SLUICE_SINKS_ID_FIELD_H
#define SLUICE_SINKS_ID_FIELD_H

#include "sluice/batch.h"
#include "sluice/buf.h"
#include "sluice/plugin.h"

#define SL__SINK_ID_FIELD_DEFAULT "_sluice_id"
#define SL__SINK_ID_FIELD_MAX 256 /* bytes of the field name */

/*
 * Read and check the `id_field` option of node into out[SL__SINK_ID_FIELD_MAX + 1] ("" when
 * switched off). SL_OK or SL_ECONFIG with err naming the option.
 */
sl_rc sl__sink_id_field(const struct sl_plugin_ctx *ctx, char *out, struct sl_error *err);

/*
 * Append record r of b and a newline to out. When id_field is not "" and r is a parsed JSON
 * object, the line carries id_field = the record id (32 hex digits) as its last member, or
 * in place of a member of that name the record already has. Other records are written as
 * they are. SL_ELIMIT (buffer limit) and SL_ENOMEM leave out->len unchanged.
 */
sl_rc sl__sink_append_line(struct sl_buf *out, struct sl_batch *b, struct sl_record *r,
                           const char *id_field);

#endif
