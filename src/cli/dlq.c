/*
 * dlq.c - `sluice dlq` (being written).
 */
#include <stdio.h>

#include "cli/cli.h"

int sl__cli_dlq(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "sluice dlq: not available in this build yet\n");
    return SL_EXIT_USAGE;
}
