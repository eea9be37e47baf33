/*
 * replay.c - `sluice dlq replay` and `sluice quarantine release` (being written).
 */
#include <stdio.h>

#include "cli/cli.h"

int sl__cli_dlq_replay(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "sluice dlq replay: not available in this build yet\n");
    return SL_EXIT_USAGE;
}

int sl__cli_quarantine_release(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "sluice quarantine release: not available in this build yet\n");
    return SL_EXIT_USAGE;
}
