/*
 * cli.h - the verbs of the sluice command line (internal to src/cli/).
 *
 * main.c parses global options and dispatches to one function per verb. Each verb
 * returns the process exit code: 0 success, 1 run failure, 2 usage or config error.
 */
#ifndef SLUICE_CLI_H
#define SLUICE_CLI_H

#define SL_EXIT_OK 0
#define SL_EXIT_FAIL 1
#define SL_EXIT_USAGE 2

int sl__cli_run(int argc, char **argv);
int sl__cli_validate(int argc, char **argv);
int sl__cli_docs(int argc, char **argv);

/* Shared option handling: returns 1 if argv[*i] was a logging option (and consumed). */
int sl__cli_log_option(int argc, char **argv, int *i, int *bad);

#endif
