/*
 * config.h - YAML configuration documents with positions.
 *
 * libyaml hands every scalar over as an untyped string; this module keeps the document as
 * a tree of nodes that remember file, line and column, substitutes ${ENV} references in
 * scalars, and offers typed getters whose errors point at the offending node:
 *
 *     clicks.yaml:12:18: sinks.warehouse.retry.max_backoff: "30 seconds" is not a
 *     duration; write it like 250ms, 30s, 5m or 2h
 *
 * Env substitution: ${NAME} is replaced by the variable's value; ${NAME:-default} by the
 * default when NAME is unset or empty; $$ is a literal $. An unset variable without a
 * default is an error naming it. Substitution applies to scalar values, not keys.
 *
 * Every node lives in the document's arena and dies with sl_cfg_destroy.
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/arena.h"
#include "sluice/rc.h"

enum sl_cfg_kind { SL_CFG_SCALAR = 1, SL_CFG_SEQ, SL_CFG_MAP };

struct sl_cfg_node;

struct sl_cfg_pair {
    const char *key;
    unsigned line, col; /* position of the key, 1-based */
    struct sl_cfg_node *val;
};

struct sl_cfg_node {
    enum sl_cfg_kind kind;
    const char *file;   /* path as given to sl_cfg_load */
    unsigned line, col; /* 1-based position of the node's first character */
    const char *str;    /* SCALAR: value after substitution, NUL-terminated */
    int quoted;         /* SCALAR: written in quotes (so "null"/"true" are strings) */
    int is_null;        /* SCALAR: an unquoted null, ~ or empty value */
    size_t n;           /* SEQ: items; MAP: pairs */
    struct sl_cfg_node **items;
    struct sl_cfg_pair *pairs;
    const char *keypath; /* where the node sits: "sinks.out.retry", "sinks.out.inputs[0]";
                            "" for the root. Used in messages. */
};

struct sl_cfg_doc {
    struct sl_arena arena;
    const char *path; /* as given */
    const char *dir;  /* directory of path, for resolving relative paths */
    struct sl_cfg_node *root;
};

/*
 * Load and parse a YAML file (the first document; anchors and aliases are resolved).
 * SL_ENOENT/SL_EIO when it cannot be read, SL_ECONFIG with "file:line:col: message" on a
 * syntax or substitution error, SL_ENOMEM.
 */
sl_rc sl_cfg_load(const char *path, struct sl_cfg_doc **out, struct sl_error *err);

/* The same from a string; name is used in messages and dir for relative paths. */
sl_rc sl_cfg_load_string(const char *text, size_t len, const char *name, const char *dir,
                         struct sl_cfg_doc **out, struct sl_error *err);

void sl_cfg_destroy(struct sl_cfg_doc *doc);

/* Child of a map by key, or NULL when absent (or when map is NULL or not a map). */
const struct sl_cfg_node *sl_cfg_get(const struct sl_cfg_node *map, const char *key);

/* Position of the key of the pair holding key in map (for "unknown key" messages). */
const struct sl_cfg_pair *sl_cfg_pair(const struct sl_cfg_node *map, const char *key);

/*
 * Set err to "file:line:col: <message>" for node (SL_ECONFIG) and return SL_ECONFIG.
 */
sl_rc sl_cfg_error(struct sl_error *err, const struct sl_cfg_node *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Typed getters. Each looks up key in map; when absent it stores def and returns SL_OK;
 * when present but of the wrong type it returns SL_ECONFIG with a message naming the
 * position, the key, what was found and what is expected.
 */
sl_rc sl_cfg_get_str(const struct sl_cfg_node *map, const char *key, const char *def,
                     const char **out, struct sl_error *err);
sl_rc sl_cfg_get_int(const struct sl_cfg_node *map, const char *key, int64_t def, int64_t *out,
                     struct sl_error *err);
sl_rc sl_cfg_get_bool(const struct sl_cfg_node *map, const char *key, int def, int *out,
                      struct sl_error *err);
/* Durations: 250ms, 30s, 5m, 2h, 1d (also 1.5s); stored in milliseconds. */
sl_rc sl_cfg_get_duration(const struct sl_cfg_node *map, const char *key, uint64_t def_ms,
                          uint64_t *out_ms, struct sl_error *err);
/* Sizes: 512, 64KiB, 256MiB, 1GiB, also KB/MB/GB (powers of 1000) and B. */
sl_rc sl_cfg_get_size(const struct sl_cfg_node *map, const char *key, uint64_t def, uint64_t *out,
                      struct sl_error *err);
/* A path resolved against doc->dir when relative; allocated in doc's arena. */
sl_rc sl_cfg_get_path(const struct sl_cfg_doc *doc, const struct sl_cfg_node *map, const char *key,
                      const char *def, const char **out, struct sl_error *err);

/* Parse helpers used by the getters (and the CLI). 0 on success, -1 when malformed. */
int sl_parse_duration(const char *s, uint64_t *ms);
int sl_parse_size(const char *s, uint64_t *bytes);
int sl_parse_bool(const char *s, int *b); /* true/false/yes/no/on/off */

/* Resolve path against dir (if relative) into arena a. */
const char *sl_cfg_resolve_path(struct sl_arena *a, const char *dir, const char *path);

/*
 * The closest of choices[0..n) to word by edit distance, or NULL when none is close
 * enough to be a plausible typo (distance > max(2, strlen(word)/3)).
 */
const char *sl_suggest(const char *word, const char *const *choices, size_t n);

#endif
