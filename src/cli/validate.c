/*
 * validate.c - `sluice validate PIPELINE.yaml`: load and check a pipeline without running
 * it. Every problem is printed as file:line:col: message; exit 2 when there is any.
 */
#include <stdio.h>
#include <string.h>

#include "sluice/contract.h"
#include "sluice/pipeline.h"

#include "cli/cli.h"

static const char help[] =
    "usage: sluice validate PIPELINE.yaml\n"
    "\n"
    "Checks the pipeline file without reading any data: YAML syntax, every key against the\n"
    "plugins' option tables, value types, expressions, inputs, cycles and unused outputs,\n"
    "and loads every data contract a component names (`contract:`).\n"
    "Prints every problem as file:line:col: message. Exit 0 when valid, 2 otherwise.\n";

/*
 * Load every contract a component names (validate transforms, sqlite sinks), so that a
 * broken contract is a configuration error found now, not when the pipeline starts.
 * Prints each problem as file:line:col: message. Returns how many failed.
 */
static int check_contracts(const struct sl_pipeline *p)
{
    int failed = 0;
    for (size_t i = 0; i < p->ncomp; i++) {
        const struct sl_cfg_node *n = sl_cfg_get(p->comp[i].node, "contract");
        if (!n || n->kind != SL_CFG_SCALAR || n->is_null)
            continue;
        struct sl_error err;
        sl_error_clear(&err);
        const char *path = NULL;
        struct sl_contract *c = NULL;
        sl_rc rc = sl_cfg_get_path(p->doc, p->comp[i].node, "contract", NULL, &path, &err);
        if (rc == SL_OK)
            rc = sl_contract_load(path, &c, &err);
        if (rc) {
            fprintf(stderr, "%s:%u:%u: %s: %s\n", p->path, n->line, n->col,
                    n->keypath ? n->keypath : "contract", err.msg);
            failed++;
        }
        sl_contract_destroy(c);
    }
    return failed;
}

int sl__cli_validate(int argc, char **argv)
{
    const char *path = NULL;
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(help, stdout);
            return SL_EXIT_OK;
        }
        if (sl__cli_log_option(argc, argv, &i, &bad))
            continue;
        if (sl__cli_path_arg("validate", argv[i], &path, help))
            return SL_EXIT_USAGE;
    }
    if (bad)
        return SL_EXIT_USAGE;
    if (!path) {
        fputs(help, stderr);
        return SL_EXIT_USAGE;
    }
    struct sl_pipeline *p = NULL;
    if (sl__cli_load(path, &p))
        return SL_EXIT_USAGE;
    if (check_contracts(p)) {
        sl_pipeline_destroy(p);
        return SL_EXIT_USAGE;
    }
    size_t nt = 0, nk = 0;
    for (size_t i = 0; i < p->ncomp; i++) {
        nt += p->comp[i].kind == SL_PLUGIN_TRANSFORM;
        nk += p->comp[i].kind == SL_PLUGIN_SINK;
    }
    printf("%s: pipeline %s is valid: %zu source%s, %zu transform%s, %zu sink%s\n", path, p->name,
           p->nsources, p->nsources == 1 ? "" : "s", nt, nt == 1 ? "" : "s", nk,
           nk == 1 ? "" : "s");
    sl_pipeline_destroy(p);
    return SL_EXIT_OK;
}
