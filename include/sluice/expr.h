/*
 * expr.h - the expression language of filters, maps and routes.
 *
 *     event_type == "purchase" && amount > 10
 *     round(amount * 100)
 *     lower(trim(device.os)) in ["ios", "android"]
 *
 * Expressions are compiled once when the pipeline loads and evaluated per record. The
 * grammar and every function are documented in docs/expressions.md. Evaluation allocates
 * only from the arena passed in (the batch's), never from the heap, and never modifies
 * the record. A compiled expression is immutable, so several worker threads may evaluate
 * it at once.
 *
 * Missing fields read as null. Runtime type errors (e.g. "abc" * 2) are SL_ETYPE with a
 * message naming the operator, the types and the expression text; the caller decides
 * whether that rejects the record.
 */
#ifndef SLUICE_EXPR_H
#define SLUICE_EXPR_H

#include <stddef.h>

#include "sluice/arena.h"
#include "sluice/rc.h"
#include "sluice/record.h"
#include "sluice/value.h"

struct sl_expr;

/*
 * Compile src[0..len). On a syntax or semantic error (unknown function, wrong number of
 * arguments, bad regex, bad literal) returns SL_EPARSE with *err_col set to the 0-based
 * byte offset of the problem in src and err's message describing it (without position;
 * the config layer adds file:line:col). SL_ENOMEM.
 */
sl_rc sl_expr_compile(const char *src, size_t len, struct sl_expr **out, size_t *err_col,
                      struct sl_error *err);

void sl_expr_destroy(struct sl_expr *e);

/* The source text the expression was compiled from (NUL-terminated). */
const char *sl_expr_text(const struct sl_expr *e);

/*
 * Whether e reads a field by name (a path starting with a key, such as amount or
 * device.os; not [0] or the meta fields). Only a record whose root is an object has such
 * fields, so the filter and route transforms reject other records as "not_object" rather
 * than evaluating every such field as null. Constant for a compiled expression.
 */
int sl_expr_reads_keys(const struct sl_expr *e);

/*
 * Evaluate e against record r (which must be parsed). Results point into r's text,
 * the compiled expression, or arena a. SL_OK, SL_ETYPE (runtime type error), SL_ENOMEM.
 */
sl_rc sl_expr_eval(const struct sl_expr *e, struct sl_record *r, struct sl_arena *a,
                   struct sl_value *out, struct sl_error *err);

/*
 * Evaluate as a condition: *truth = sl_value_truthy(result). Same return codes.
 */
sl_rc sl_expr_test(const struct sl_expr *e, struct sl_record *r, struct sl_arena *a, int *truth,
                   struct sl_error *err);

#endif
