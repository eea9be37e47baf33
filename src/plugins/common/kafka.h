/*
 * kafka.h - what the kafka source and the kafka sink share: librdkafka settings with
 * errors that name the component, a log callback, and map options of name: value
 * (the sink's headers, the source's properties).
 */
#ifndef SLUICE_PLUGINS_COMMON_KAFKA_H
#define SLUICE_PLUGINS_COMMON_KAFKA_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "sluice/plugin.h"

/* name: value pairs of a map option, heap strings. */
struct sl__kafka_pairs {
    char **names, **values;
    size_t n;
};

/*
 * Copy the map option `option` of the component (absent or null: no pairs). refuse, when
 * not NULL, returns why a name may not be used (NULL: it may). Errors are SL_ECONFIG at
 * the offending node, "<section>.<component>.<option>...: ..."; SL_ENOMEM. On failure the
 * pairs copied so far stay in *out for sl__kafka_pairs_fini.
 */
sl_rc sl__kafka_pairs_parse(const struct sl_plugin_ctx *ctx, const char *section,
                            const char *option, const char *(*refuse)(const char *name),
                            struct sl__kafka_pairs *out, struct sl_error *err);

void sl__kafka_pairs_fini(struct sl__kafka_pairs *p);

/* rd_kafka_conf_set, with an error naming who ("sink out") on refusal (SL_ECONFIG). */
sl_rc sl__kafka_conf_set(rd_kafka_conf_t *c, const char *k, const char *v, const char *kind,
                         const char *name, struct sl_error *err);

/*
 * A log callback for rd_kafka_conf_set_log_cb: errors and warnings at WARN, the rest at
 * DEBUG, under the component's name. The handle's opaque must point to a struct whose
 * first member is `const char *name`.
 */
void sl__kafka_on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

#endif
