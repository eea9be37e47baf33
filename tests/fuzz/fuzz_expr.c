/*
 * fuzz_expr.c - fuzz target for the expression compiler and evaluator.
 *
 * The input is an expression's source text. Whatever it is, compiling must either succeed
 * or fail with SL_EPARSE and a column inside the text; a compiled expression is then
 * evaluated against a fixed click event (and an empty object, and a non-object root) and
 * must return SL_OK or SL_ETYPE, never crash, leak or read out of bounds. Built with
 * libFuzzer when SLUICE_FUZZ is on, otherwise with tests/fuzz/driver.c replaying
 * tests/fuzz/corpus/expr/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/arena.h"
#include "sluice/expr.h"
#include "sluice/json.h"
#include "sluice/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const docs[] = {
    "{\"event_type\":\"purchase\",\"amount\":12.50,\"qty\":3,\"device\":{\"os\":\"iOS\"},"
    "\"tags\":[\"a\",\"b\"],\"odd key\":{\"x\":1},\"n\":null,\"s\":\"caf\\u00e9\","
    "\"ts\":\"2026-11-27T12:00:00Z\",\"big\":1e308}",
    "{}",
    "[1,\"x\",null]",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sl_expr *e = NULL;
    struct sl_error err;
    size_t col = 0;
    sl_rc rc = sl_expr_compile((const char *)data, size, &e, &col, &err);
    if (rc) {
        if (rc != SL_EPARSE && rc != SL_ENOMEM)
            abort();
        if (rc == SL_EPARSE && col > size)
            abort(); /* the column must point into the text (or just past it) */
        return 0;
    }
    if (strlen(sl_expr_text(e)) != size)
        abort();
    struct sl_json_parser *p;
    if (sl_json_parser_create(&p)) {
        sl_expr_destroy(e);
        return 0;
    }
    struct sl_arena a;
    sl_arena_init(&a, 0);
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        struct sl_record r;
        struct sl_json_error jerr;
        memset(&r, 0, sizeof r);
        r.text = r.orig = docs[i];
        r.text_len = r.orig_len = (uint32_t)strlen(docs[i]);
        if (sl_record_parse(&r, p, 0, &a, &jerr))
            abort();
        struct sl_value v;
        rc = sl_expr_eval(e, &r, &a, &v, &err);
        if (rc != SL_OK && rc != SL_ETYPE && rc != SL_ENOMEM)
            abort();
        if (rc == SL_OK) {
            struct sl_buf b;
            sl_buf_init(&b, 1 << 24);
            (void)sl_value_write(&v, &b);
            sl_buf_fini(&b);
        }
        int truth;
        rc = sl_expr_test(e, &r, &a, &truth, &err);
        if (rc != SL_OK && rc != SL_ETYPE && rc != SL_ENOMEM)
            abort();
    }
    sl_arena_fini(&a);
    sl_json_parser_destroy(p);
    sl_expr_destroy(e);
    return 0;
}
