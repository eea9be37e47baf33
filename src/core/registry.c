/*
 * registry.c - the table of built-in plugins.
 *
 * Each plugin defines one `const struct sl_plugin` (see plugin.h); adding a plugin means
 * adding its symbol here. Lookups are by kind and name; the table is small and read-only,
 * so a linear scan is all it needs.
 */
#include <string.h>

#include "sluice/plugin.h"

extern const struct sl_plugin sl_source_file;
extern const struct sl_plugin sl_source_stdin;
extern const struct sl_plugin sl_source_postgres;
extern const struct sl_plugin sl_source_http;
extern const struct sl_plugin sl_source_nats;
extern const struct sl_plugin sl_source_kafka;
extern const struct sl_plugin sl_transform_filter;
extern const struct sl_plugin sl_transform_map;
extern const struct sl_plugin sl_transform_route;
extern const struct sl_plugin sl_transform_validate;
extern const struct sl_plugin sl_sink_stdout;
extern const struct sl_plugin sl_sink_file;
extern const struct sl_plugin sl_sink_sqlite;
extern const struct sl_plugin sl_sink_postgres;
extern const struct sl_plugin sl_sink_http;
extern const struct sl_plugin sl_sink_nats;
extern const struct sl_plugin sl_sink_kafka;

/* One plugin per line. */
/* clang-format off */
static const struct sl_plugin *const registry[] = {
    &sl_source_file,
    &sl_source_stdin,
    &sl_source_postgres,
    &sl_source_http,
    &sl_source_nats,
    &sl_source_kafka,
    &sl_transform_filter,
    &sl_transform_map,
    &sl_transform_route,
    &sl_transform_validate,
    &sl_sink_stdout,
    &sl_sink_file,
    &sl_sink_sqlite,
    &sl_sink_postgres,
    &sl_sink_http,
    &sl_sink_nats,
    &sl_sink_kafka,
    NULL,
};
/* clang-format on */

const struct sl_plugin *const *sl_plugin_all(void)
{
    return registry;
}

const struct sl_plugin *sl_plugin_find(enum sl_plugin_kind kind, const char *name)
{
    for (const struct sl_plugin *const *p = registry; *p; p++)
        if ((*p)->kind == kind && strcmp((*p)->name, name) == 0)
            return *p;
    return NULL;
}

const char *sl_plugin_kind_name(enum sl_plugin_kind kind)
{
    switch (kind) {
    case SL_PLUGIN_SOURCE:
        return "source";
    case SL_PLUGIN_TRANSFORM:
        return "transform";
    case SL_PLUGIN_SINK:
        return "sink";
    }
    return "component";
}
