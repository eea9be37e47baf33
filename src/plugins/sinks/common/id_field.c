/*
 * id_field.c - the record id as a field of every NDJSON line the file and stdout sinks write.
 *
 * Why: a stream or file downstream of sluice has no upsert. Carrying the record id (a
 * deterministic function of pipeline, source, input file and offset; record.h invariant 4)
 * in each line lets a reader deduplicate whatever an at-least-once path repeated, and lets
 * anyone check that an exactly-once path did not repeat anything.
 *
 * How, without slowing the common case: an unedited record is written as its original
 * bytes by sl_record_write; the id is then spliced in front of the object's closing brace
 * (`...,"_sluice_id":"<hex>"}`), a copy of 48 bytes and no re-serialization. Only a record
 * that already has a member of that name takes the slow path (a SET edit, then a rewrite),
 * so the line never holds the key twice. Records that are not objects cannot carry a field
 * and are written unchanged.
 *
 * Threading: called on the sink's thread with the batch it is writing; allocates only in
 * the batch arena (the slow path) and in out.
 */
#include <string.h>

#include "sluice/record.h"

#include "plugins/sinks/common/id_field.h"

sl_rc sl__sink_id_field(const struct sl_plugin_ctx *ctx, char *out, struct sl_error *err)
{
    const char *v;
    sl_rc rc = sl_cfg_get_str(ctx->node, "id_field", SL__SINK_ID_FIELD_DEFAULT, &v, err);
    if (rc)
        return rc;
    size_t n = strlen(v);
    if (n > SL__SINK_ID_FIELD_MAX)
        return sl_cfg_error(err, sl_cfg_get(ctx->node, "id_field"),
                            "sinks.%s.id_field: longer than %d bytes", ctx->name,
                            SL__SINK_ID_FIELD_MAX);
    if (!sl_utf8_valid(v, n, NULL))
        return sl_cfg_error(err, sl_cfg_get(ctx->node, "id_field"),
                            "sinks.%s.id_field: is not valid UTF-8", ctx->name);
    memcpy(out, v, n + 1);
    return SL_OK;
}

static int json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Splice ,"key":"hex" before the closing brace of the object written at out[mark..len). */
static sl_rc splice_id(struct sl_buf *out, size_t mark, const char *key, const char *hex)
{
    size_t end = out->len;
    while (end > mark && json_ws(out->data[end - 1]))
        end--;
    if (end == mark || out->data[end - 1] != '}')
        return SL_OK; /* not an object after all: leave the line as written */
    size_t before = end - 1;
    while (before > mark && json_ws(out->data[before - 1]))
        before--;
    /* A '{' right before the root's closing brace can only be the root's opening one. */
    int empty = before > mark && out->data[before - 1] == '{';
    out->len = end - 1;
    sl_rc rc = SL_OK;
    if (!empty)
        rc = sl_buf_putc(out, ',');
    if (rc == SL_OK)
        rc = sl_json_write_str(out, key, strlen(key));
    if (rc == SL_OK)
        rc = sl_buf_putc(out, ':');
    if (rc == SL_OK)
        rc = sl_json_write_str(out, hex, 32);
    if (rc == SL_OK)
        rc = sl_buf_putc(out, '}');
    return rc;
}

sl_rc sl__sink_append_line(struct sl_buf *out, struct sl_batch *b, struct sl_record *r,
                           const char *id_field)
{
    size_t mark = out->len;
    int add_id = id_field && *id_field && (r->flags & SL_REC_PARSED) && r->tape.ntok > 0 &&
                 r->tape.tok[0].type == SL_J_OBJECT;
    char hex[33];
    sl_rc rc = SL_OK;
    if (add_id) {
        sl_record_id_format(r->id, hex);
        struct sl_value old;
        if (sl_record_get_key(r, id_field, strlen(id_field), &b->arena, &old)) {
            /* The record has the member already: replace its value in place. */
            char *copy = sl_arena_strndup(&b->arena, hex, 32);
            if (!copy)
                return SL_ENOMEM;
            struct sl_value v = sl_value_string(copy, 32);
            rc = sl_record_set_key(r, id_field, strlen(id_field), &v, &b->arena);
            if (rc)
                return rc;
            add_id = 0;
        }
    }
    rc = sl_record_write(r, out);
    if (rc == SL_OK && add_id)
        rc = splice_id(out, mark, id_field, hex);
    if (rc == SL_OK)
        rc = sl_buf_putc(out, '\n');
    if (rc)
        out->len = mark;
    return rc;
}
