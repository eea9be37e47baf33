/*
 * quarantine.c - `sluice quarantine` (being written).
 */
#include <stdio.h>

#include "cli/cli.h"

int sl__cli_quarantine(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "sluice quarantine: not available in this build yet\n");
    return SL_EXIT_USAGE;
}
