/*
 * kafka.c - helpers the kafka source and sink share (kafka.h). No state of their own;
 * the log callback runs on librdkafka's threads and only reads the component's name.
 */
#include <string.h>

#include "sluice/alloc.h"
#include "sluice/config.h"
#include "sluice/log.h"

#include "plugins/common/kafka.h"

sl_rc sl__kafka_pairs_parse(const struct sl_plugin_ctx *ctx, const char *section,
                            const char *option, const char *(*refuse)(const char *name),
                            struct sl__kafka_pairs *out, struct sl_error *err)
{
    const struct sl_cfg_node *h = sl_cfg_get(ctx->node, option);
    memset(out, 0, sizeof *out);
    if (!h || h->is_null)
        return SL_OK;
    if (h->kind != SL_CFG_MAP)
        return sl_cfg_error(err, h, "%s.%s.%s: expected a map of name: value", section, ctx->name,
                            option);
    out->names = sl_calloc(h->n ? h->n : 1, sizeof *out->names);
    out->values = sl_calloc(h->n ? h->n : 1, sizeof *out->values);
    if (!out->names || !out->values)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < h->n; i++) {
        const struct sl_cfg_pair *p = &h->pairs[i];
        const char *why = !*p->key ? "is not a name" : refuse ? refuse(p->key) : NULL;
        if (why)
            return sl_cfg_error(err, p->val, "%s.%s.%s.%s: %s", section, ctx->name, option, p->key,
                                why);
        if (p->val->kind != SL_CFG_SCALAR || p->val->is_null)
            return sl_cfg_error(err, p->val, "%s.%s.%s.%s: expected a string value", section,
                                ctx->name, option, p->key);
        out->names[out->n] = sl_strdup(p->key);
        out->values[out->n] = sl_strdup(p->val->str);
        out->n++;
        if (!out->names[out->n - 1] || !out->values[out->n - 1])
            return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    return SL_OK;
}

void sl__kafka_pairs_fini(struct sl__kafka_pairs *p)
{
    for (size_t i = 0; i < p->n; i++) {
        sl_free(p->names[i]);
        sl_free(p->values[i]);
    }
    sl_free(p->names);
    sl_free(p->values);
    memset(p, 0, sizeof *p);
}

sl_rc sl__kafka_conf_set(rd_kafka_conf_t *c, const char *k, const char *v, const char *kind,
                         const char *name, struct sl_error *err)
{
    char why[256];
    if (rd_kafka_conf_set(c, k, v, why, sizeof why) == RD_KAFKA_CONF_OK)
        return SL_OK;
    return sl_error_set(err, SL_ECONFIG, "%s %s: librdkafka refused %s=%s: %s", kind, name, k, v,
                        why);
}

void sl__kafka_on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    const char *const *name = rd_kafka_opaque(rk);
    if (level <= 4)
        sl_warn(*name, "librdkafka %s: %s", fac, buf);
    else
        sl_debug(*name, "librdkafka %s: %s", fac, buf);
}
