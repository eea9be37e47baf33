/*
 * contract.c - `sluice contract` (being written).
 */
#include <stdio.h>

#include "cli/cli.h"

int sl__cli_contract(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "sluice contract: not available in this build yet\n");
    return SL_EXIT_USAGE;
}
