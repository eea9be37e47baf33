/*
 * docs.c - `sluice docs config`: print the configuration reference generated from the
 * plugins' option tables (this is how docs/configuration.md is made, so it cannot drift).
 */
#include <stdio.h>
#include <string.h>

#include "sluice/buf.h"
#include "sluice/pipeline.h"

#include "cli/cli.h"

int sl__cli_docs(int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[1], "config") != 0) {
        fputs("usage: sluice docs config    print the configuration reference (markdown)\n",
              argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) ? stdout
                                                                                          : stderr);
        return argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)
                   ? SL_EXIT_OK
                   : SL_EXIT_USAGE;
    }
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_rc rc = sl_pipeline_doc_reference(&b);
    if (rc) {
        fprintf(stderr, "sluice docs: %s\n", sl_strerror(rc));
        sl_buf_fini(&b);
        return SL_EXIT_FAIL;
    }
    fwrite(b.data, 1, b.len, stdout);
    sl_buf_fini(&b);
    return SL_EXIT_OK;
}
