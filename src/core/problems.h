/*
 * problems.h - the problems one load of a YAML file found, reported all at once.
 *
 * The pipeline and DAG loaders do not stop at the first problem: each is collected with
 * its position ("file:line:col: message"), and the load ends with every one of them,
 * sorted by position (discovery order among equals), in one error message. Texts live in
 * the document's arena; the list itself is allocated on the first problem.
 *
 * Invariants:
 *   1. n <= SL__PROBLEMS_MAX; dropped counts the problems found beyond that.
 *   2. oom is set once any allocation failed; report() then says out of memory.
 */
#ifndef SLUICE_CORE_PROBLEMS_H
#define SLUICE_CORE_PROBLEMS_H

#include <stddef.h>

#include "sluice/arena.h"
#include "sluice/config.h"
#include "sluice/rc.h"

#define SL__PROBLEMS_MAX 1000

struct sl__problem {
    unsigned line, col;
    size_t seq;
    char *text;
};

struct sl__problems {
    const char *path;   /* the file, for the "path:line:col: " prefix */
    struct sl_arena *a; /* texts */
    struct sl__problem *list;
    size_t n, dropped, seq;
    int oom;
};

/* Start an empty list for file path, texts in a. No allocation. */
void sl__problems_init(struct sl__problems *ps, const char *path, struct sl_arena *a);

/* Free the list (the texts go with the arena). */
void sl__problems_fini(struct sl__problems *ps);

/* Add a finished text at (line, col). */
void sl__problems_add_text(struct sl__problems *ps, unsigned line, unsigned col, const char *text);

/* Add "path:line:col: <fmt...>" at (line, col). */
void sl__problems_addf(struct sl__problems *ps, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Add a problem a config getter reported (e->msg already holds "file:line:col: ..."), at
 * node n (NULL: 1:1). SL_ENOMEM only sets oom. */
void sl__problems_add_err(struct sl__problems *ps, const struct sl_cfg_node *n,
                          const struct sl_error *e);

/* 1 when anything was found (or memory ran out). */
int sl__problems_any(const struct sl__problems *ps);

/*
 * Every problem into err->msg, one per line, sorted by position, cut with "... and N more
 * problems" when they do not fit. Returns SL_ECONFIG, or SL_ENOMEM after an allocation
 * failure.
 */
sl_rc sl__problems_report(struct sl__problems *ps, struct sl_error *err);

#endif
