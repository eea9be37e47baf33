/*
 * fuzz_config.c - fuzz target for the YAML configuration loader (src/core/config.c).
 *
 * Any byte string must either load or fail with a positioned message; never crash, leak
 * or run away on alias expansion. After a successful load every node is walked and every
 * typed getter is tried on every map key, so the parsers of durations, sizes, booleans
 * and integers see whatever the fuzzer invents.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sluice/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const struct sl_cfg_doc *doc, const struct sl_cfg_node *n, unsigned depth)
{
    struct sl_error err;
    if (!n || depth > 200)
        return;
    if (n->kind == SL_CFG_SEQ) {
        for (size_t i = 0; i < n->n; i++)
            walk(doc, n->items[i], depth + 1);
        return;
    }
    if (n->kind != SL_CFG_MAP)
        return;
    const char *keys[8];
    size_t nk = 0;
    for (size_t i = 0; i < n->n; i++) {
        const char *k = n->pairs[i].key;
        const char *s;
        int64_t iv;
        int b;
        uint64_t u;
        (void)sl_cfg_get_str(n, k, NULL, &s, &err);
        (void)sl_cfg_get_int(n, k, 0, &iv, &err);
        (void)sl_cfg_get_bool(n, k, 0, &b, &err);
        (void)sl_cfg_get_duration(n, k, 0, &u, &err);
        (void)sl_cfg_get_size(n, k, 0, &u, &err);
        (void)sl_cfg_get_path(doc, n, k, NULL, &s, &err);
        if (nk < 8)
            keys[nk++] = k;
        walk(doc, n->pairs[i].val, depth + 1);
    }
    if (n->n)
        (void)sl_suggest(n->pairs[0].key, keys, nk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sl_cfg_doc *doc = NULL;
    struct sl_error err;
    if (sl_cfg_load_string((const char *)data, size, "fuzz.yaml", "/fuzz", &doc, &err) == SL_OK) {
        walk(doc, doc->root, 0);
        sl_cfg_destroy(doc);
    } else if (err.msg[0] == '\0') {
        __builtin_trap(); /* every failure must say why */
    }
    return 0;
}
