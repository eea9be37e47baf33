/*
 * validate.c - `sluice validate PIPELINE.yaml`: load and check a pipeline without running
 * it. Every problem is printed as file:line:col: message; exit 2 when there is any.
 */
#include <stdio.h>
#include <string.h>

#include "sluice/pipeline.h"

#include "cli/cli.h"

static const char help[] =
    "usage: sluice validate PIPELINE.yaml\n"
    "\n"
    "Checks the pipeline file without reading any data: YAML syntax, every key against the\n"
    "plugins' option tables, value types, expressions, inputs, cycles and unused outputs.\n"
    "Prints every problem as file:line:col: message. Exit 0 when valid, 2 otherwise.\n";

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
