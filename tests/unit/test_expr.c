/*
 * test_expr.c - the expression language: every operator, every function, every compile
 * error with its column, runtime errors, and concurrent evaluation of one compiled
 * expression. Results are compared as the exact JSON sl_value_write produces.
 */
#include <math.h>
#include <pthread.h>
#include <time.h>

#include "sluice/alloc.h"
#include "sluice/batch.h"
#include "sluice/buf.h"
#include "sluice/expr.h"
#include "sluice/json.h"
#include "sluice/record.h"
#include "test.h"

static struct sl_batch *batch;
static struct sl_json_parser *parser;
static struct sl_record *rec; /* the sample click event */
static char out[4096];

static const char sample[] =
    "{\"event_type\":\"purchase\",\"amount\":12.50,\"qty\":3,\"device\":{\"os\":\" iOS \","
    "\"ver\":17},\"tags\":[\"a\",\"b\",\"c\"],\"odd key\":{\"x\":1},\"n\":null,"
    "\"big\":12345678901234567890,\"esc\":\"caf\\u00e9\",\"ts\":\"2026-11-27T12:30:00.250Z\","
    "\"flag\":true,\"empty\":\"\",\"zero\":0,\"obj\":{\"a\":1,\"b\":[1,2]},\"arr\":[1,[2],{\"k\":"
    "\"v\"}],\"num_s\":\"42.5\",\"id64\":9007199254740993,\"in\":7,\"_id\":\"own\"}";

static struct sl_record *make_record(const char *json)
{
    struct sl_record *r = sl_batch_add(batch);
    size_t n = strlen(json);
    char *t = sl_arena_strndup(&batch->arena, json, n);
    struct sl_json_error jerr;
    r->text = r->orig = t;
    r->text_len = r->orig_len = (uint32_t)n;
    r->line = 17;
    r->offset = 4242;
    r->id[0] = 0x0123456789abcdefULL;
    r->id[1] = 0xfedcba9876543210ULL;
    if (sl_record_parse(r, parser, 0, &batch->arena, &jerr) != SL_OK) {
        fprintf(stderr, "bad test JSON: %s\n", jerr.msg);
        exit(2);
    }
    return r;
}

/* Compile and evaluate src against r: the JSON of the result, "ETYPE: msg" or "SL_EPARSE@col: msg".
 */
static const char *evr(const char *src, struct sl_record *r)
{
    struct sl_expr *e = NULL;
    struct sl_error err;
    size_t col = 999;
    sl_error_clear(&err);
    sl_rc rc = sl_expr_compile(src, strlen(src), &e, &col, &err);
    if (rc) {
        snprintf(out, sizeof out, "%s@%zu: %s", sl_rc_name(rc), col, err.msg);
        return out;
    }
    struct sl_value v;
    rc = sl_expr_eval(e, r, &batch->arena, &v, &err);
    if (rc) {
        snprintf(out, sizeof out, "%s: %s", sl_rc_name(rc), err.msg);
    } else {
        struct sl_buf b;
        sl_buf_init(&b, 0);
        if (sl_value_write(&v, &b) || sl_buf_cstr(&b))
            snprintf(out, sizeof out, "write failed");
        else
            snprintf(out, sizeof out, "%s", b.data);
        sl_buf_fini(&b);
    }
    sl_expr_destroy(e);
    return out;
}

static const char *ev(const char *src)
{
    return evr(src, rec);
}

static void test_literals(void)
{
    CHECK_STR(ev("null"), "null");
    CHECK_STR(ev("true"), "true");
    CHECK_STR(ev("false"), "false");
    CHECK_STR(ev("42"), "42");
    CHECK_STR(ev("1.50"), "1.50"); /* literal spelling kept */
    CHECK_STR(ev("1e3"), "1e3");
    CHECK_STR(ev("-3"), "-3");
    CHECK_STR(ev("- 2.5"), "-2.5");
    CHECK_STR(ev("\"a\\\"b\\n\""), "\"a\\\"b\\n\"");
    CHECK_STR(ev("'it\\'s'"), "\"it's\"");
    CHECK_STR(ev("'say \"hi\"'"), "\"say \\\"hi\\\"\"");
    CHECK_STR(ev("\"\\u00e9\""), "\"\xc3\xa9\"");
    CHECK_STR(ev("\"\\ud83d\\ude00\""), "\"\xf0\x9f\x98\x80\"");
    CHECK_STR(ev("[1, \"a\", null, [true]]"), "[1,\"a\",null,[true]]");
    CHECK_STR(ev("[]"), "[]");
    CHECK_STR(ev("[qty, 2]"), "[3,2]");
    CHECK_STR(ev("  ( 7 )  "), "7");
}

static void test_fields(void)
{
    CHECK_STR(ev("event_type"), "\"purchase\"");
    CHECK_STR(ev("amount"), "12.50"); /* original text */
    CHECK_STR(ev("big"), "12345678901234567890");
    CHECK_STR(ev("device.os"), "\" iOS \"");
    CHECK_STR(ev("device"), "{\"os\":\" iOS \",\"ver\":17}");
    CHECK_STR(ev("tags[0]"), "\"a\"");
    CHECK_STR(ev("tags[-1]"), "\"c\"");
    CHECK_STR(ev("tags[3]"), "null");
    CHECK_STR(ev("arr[2].k"), "\"v\"");
    CHECK_STR(ev("[\"odd key\"].x"), "1");
    CHECK_STR(ev(".[\"odd key\"]"), "{\"x\":1}");
    CHECK_STR(ev(".in"), "7");
    CHECK_STR(ev(".[\"_id\"]"), "\"own\"");
    CHECK_STR(ev("esc"), "\"caf\xc3\xa9\"");
    CHECK_STR(ev("missing"), "null");
    CHECK_STR(ev("missing.deeper[2]"), "null");
    CHECK_STR(ev("device.os.x"), "null"); /* through a scalar: missing */
    CHECK_STR(ev("n"), "null");
    CHECK_STR(ev("_id"), "\"0123456789abcdeffedcba9876543210\"");
    CHECK_STR(ev("_line"), "17");
    CHECK_STR(ev("_offset"), "4242");
}

static void test_compare(void)
{
    CHECK_STR(ev("event_type == \"purchase\""), "true");
    CHECK_STR(ev("event_type != \"purchase\""), "false");
    CHECK_STR(ev("amount == 12.5"), "true"); /* numerically */
    CHECK_STR(ev("qty < 4"), "true");
    CHECK_STR(ev("qty <= 3"), "true");
    CHECK_STR(ev("qty > 3"), "false");
    CHECK_STR(ev("qty >= 3.5"), "false");
    CHECK_STR(ev("\"abc\" < \"abd\""), "true");
    CHECK_STR(ev("\"ab\" < \"abc\""), "true");
    CHECK_STR(ev("\"b\" > \"abc\""), "true");
    CHECK_STR(ev("\"\xc3\xa9\" > \"z\""), "true"); /* bytewise */
    CHECK_STR(ev("tags == [\"a\", \"b\", \"c\"]"), "true");
    CHECK_STR(ev("tags == [\"a\", \"b\"]"), "false");
    CHECK_STR(ev("obj == {\"b\": 1}"), "SL_EPARSE@7: unexpected '{': there are no object literals");
    CHECK_STR(ev("qty == \"3\""), "false"); /* mixed types */
    CHECK_STR(ev("qty != \"3\""), "true");
    CHECK_STR(ev("n == null"), "true");
    CHECK_STR(ev("missing == null"), "true");
    CHECK_STR(ev("missing != null"), "false");
    CHECK_STR(ev("flag == true"), "true");
    CHECK_STR(ev("qty < \"4\""),
              "SL_ETYPE: operator < cannot compare number with string (column 4 of expression "
              "`qty < \"4\"`)");
    CHECK_STR(ev("missing > 1"),
              "SL_ETYPE: operator > cannot compare null with number (column 8 of expression "
              "`missing > 1`)");
    CHECK_STR(ev("flag >= false"),
              "SL_ETYPE: operator >= cannot compare bool with bool (column 5 of expression "
              "`flag >= false`)");
}

static void test_logic(void)
{
    CHECK_STR(ev("true && false"), "false");
    CHECK_STR(ev("true || false"), "true");
    CHECK_STR(ev("!true"), "false");
    CHECK_STR(ev("!!qty"), "true");
    CHECK_STR(ev("!zero"), "true");
    CHECK_STR(ev("!empty"), "true");
    CHECK_STR(ev("!n"), "true");
    CHECK_STR(ev("![]"), "false");
    CHECK_STR(ev("!obj"), "false");
    CHECK_STR(ev("qty && \"x\""), "true"); /* && yields a bool */
    /* Short circuit: the right side would be a type error. */
    CHECK_STR(ev("false && qty < \"a\""), "false");
    CHECK_STR(ev("true || qty < \"a\""), "true");
    CHECK_STR(ev("missing != null && missing > 1"), "false");
    CHECK_STR(ev("true && qty < \"a\""),
              "SL_ETYPE: operator < cannot compare number with string (column 12 of expression "
              "`true && qty < \"a\"`)");
    /* Precedence: || below &&, && below ==, == below <, < below +, + below *. */
    CHECK_STR(ev("true || false && false"), "true");
    CHECK_STR(ev("1 + 2 * 3 == 7"), "true");
    CHECK_STR(ev("(1 + 2) * 3"), "9");
    CHECK_STR(ev("qty > 1 == true"), "true");
    CHECK_STR(ev("!false == true"), "true");
    CHECK_STR(ev("-qty * 2"), "-6");
    CHECK_STR(ev("10 - 2 - 3"), "5"); /* left associative */
    CHECK_STR(ev("24 / 4 / 2"), "3");
}

static void test_arith(void)
{
    CHECK_STR(ev("qty + 1"), "4");
    CHECK_STR(ev("amount * 100"), "1250");
    CHECK_STR(ev("7 / 2"), "3.5");
    CHECK_STR(ev("7 % 3"), "1");
    CHECK_STR(ev("-7 % 3"), "-1");
    CHECK_STR(ev("0.1 + 0.2"), "0.30000000000000004");
    CHECK_STR(ev("\"ab\" + \"cd\""), "\"abcd\"");
    CHECK_STR(ev("event_type + \"!\""), "\"purchase!\"");
    CHECK_STR(ev("-amount"), "-12.5");
    CHECK_STR(ev("qty / zero"), "SL_ETYPE: division by zero (column 4 of expression "
                                "`qty / zero`)");
    CHECK_STR(ev("qty % zero"), "SL_ETYPE: remainder of division by zero (column 4 of "
                                "expression `qty % zero`)");
    CHECK_STR(ev("event_type * 2"),
              "SL_ETYPE: operator * needs two numbers, got string and number (column 11 of "
              "expression `event_type * 2`)");
    CHECK_STR(ev("qty + \"1\""),
              "SL_ETYPE: operator + needs two numbers or two strings, got number and string "
              "(column 4 of expression `qty + \"1\"`)");
    CHECK_STR(ev("-event_type"), "SL_ETYPE: unary - needs a number, got string (column 0 of "
                                 "expression `-event_type`)");
    CHECK_STR(ev("missing + 1"), "SL_ETYPE: operator + needs two numbers or two strings, got "
                                 "null and number (column 8 of expression `missing + 1`)");
    CHECK_STR(ev("big * big * big * big * big * big * big * big * big * big * big * big * big"
                 " * big * big * big * big"),
              "SL_ETYPE: operator * overflowed (result is not a finite number) (column 94 of "
              "expression `big * big * big * big * big * big * big * big * big * big * big * "
              "big * big * big * big * big * big`)");
}

static void test_in(void)
{
    CHECK_STR(ev("event_type in [\"view\", \"purchase\"]"), "true");
    CHECK_STR(ev("event_type in [\"view\"]"), "false");
    CHECK_STR(ev("\"b\" in tags"), "true");
    CHECK_STR(ev("\"z\" in tags"), "false");
    CHECK_STR(ev("[2] in arr"), "true");
    CHECK_STR(ev("3 in [1, 2, qty]"), "true");
    CHECK_STR(ev("3 in [\"3\"]"), "false");
    CHECK_STR(ev("1 in missing"), "false");
    CHECK_STR(ev("lower(trim(device.os)) in [\"ios\", \"android\"]"), "true");
    CHECK_STR(ev("1 + 2 in [3]"), "true"); /* + binds tighter than in */
    CHECK_STR(ev("\"a\" in event_type"), "SL_ETYPE: operator in needs an array on its right, "
                                         "got string (column 4 of expression `\"a\" in "
                                         "event_type`)");
}

static void test_string_functions(void)
{
    CHECK_STR(ev("lower(\"HeLLo \xc3\x89\")"), "\"hello \xc3\x89\""); /* ASCII only */
    CHECK_STR(ev("upper(event_type)"), "\"PURCHASE\"");
    CHECK_STR(ev("lower(event_type)"), "\"purchase\"");
    CHECK_STR(ev("lower(missing)"), "null");
    CHECK_STR(ev("lower(qty)"), "SL_ETYPE: lower() argument 1 must be a string, got number "
                                "(column 0 of expression `lower(qty)`)");
    CHECK_STR(ev("trim(device.os)"), "\"iOS\"");
    CHECK_STR(ev("trim(\"\\t a b \\n\")"), "\"a b\"");
    CHECK_STR(ev("trim(\"   \")"), "\"\"");
    CHECK_STR(ev("starts_with(event_type, \"pur\")"), "true");
    CHECK_STR(ev("starts_with(event_type, \"\")"), "true");
    CHECK_STR(ev("starts_with(\"ab\", \"abc\")"), "false");
    CHECK_STR(ev("ends_with(event_type, \"chase\")"), "true");
    CHECK_STR(ev("ends_with(event_type, \"x\")"), "false");
    CHECK_STR(ev("ends_with(event_type, 1)"),
              "SL_ETYPE: ends_with() argument 2 must be a string, got number (column 0 of "
              "expression `ends_with(event_type, 1)`)");
    CHECK_STR(ev("contains(event_type, \"cha\")"), "true");
    CHECK_STR(ev("contains(event_type, \"xyz\")"), "false");
    CHECK_STR(ev("contains(tags, \"b\")"), "true");
    CHECK_STR(ev("contains(arr, {\"k\": \"v\"})"),
              "SL_EPARSE@14: unexpected '{': there are no object literals");
    CHECK_STR(ev("contains(arr, arr[2])"), "true"); /* deep equality */
    CHECK_STR(ev("contains(qty, 1)"), "SL_ETYPE: contains() argument 1 must be a string or an "
                                      "array, got number (column 0 of expression `contains(qty, "
                                      "1)`)");
    CHECK_STR(ev("matches(event_type, \"^pur(chase)?$\")"), "true");
    CHECK_STR(ev("matches(event_type, \"^PUR\")"), "false");
    CHECK_STR(ev("matches(ts, \"^[0-9]{4}-[0-9]{2}\")"), "true");
    CHECK_STR(ev("matches(missing, \"x\")"), "null");
    CHECK_STR(ev("split(\"a,b,,c\", \",\")"), "[\"a\",\"b\",\"\",\"c\"]");
    CHECK_STR(ev("split(\"abc\", \",\")"), "[\"abc\"]");
    CHECK_STR(ev("split(\"\", \",\")"), "[\"\"]");
    CHECK_STR(ev("split(\"a::b::\", \"::\")"), "[\"a\",\"b\",\"\"]");
    CHECK_STR(ev("split(event_type, \"\")"), "SL_ETYPE: split() separator must not be empty "
                                             "(column 0 of expression `split(event_type, "
                                             "\"\")`)");
    CHECK_STR(ev("concat(event_type, \"-\", qty, \"-\", amount, flag, missing, 0.5 + 1)"),
              "\"purchase-3-12.50true1.5\"");
    CHECK_STR(ev("concat(\"x\")"), "\"x\"");
    CHECK_STR(ev("concat(1 / 3)"), "\"0.3333333333333333\"");
    CHECK_STR(ev("concat(1e21 * 10)"), "\"1e+22\"");
    CHECK_STR(ev("concat(\"a\", tags)"), "SL_ETYPE: concat() cannot turn an array into a string "
                                         "(column 0 of expression `concat(\"a\", tags)`)");
    CHECK_STR(ev("len(esc)"), "4"); /* characters, not bytes */
    CHECK_STR(ev("len(tags)"), "3");
    CHECK_STR(ev("len(obj)"), "2");
    CHECK_STR(ev("len(\"\")"), "0");
    CHECK_STR(ev("len(missing)"), "null");
    CHECK_STR(ev("len(qty)"), "SL_ETYPE: len() needs a string, an array or an object, got "
                              "number (column 0 of expression `len(qty)`)");
}

static void test_number_functions(void)
{
    CHECK_STR(ev("round(amount)"), "13"); /* half away from zero */
    CHECK_STR(ev("round(-2.5)"), "-3");
    CHECK_STR(ev("round(amount * 100)"), "1250");
    CHECK_STR(ev("round(3.14159, 2)"), "3.14");
    CHECK_STR(ev("round(1234.5, -2)"), "1200");
    CHECK_STR(ev("round(qty, 1.5)"),
              "SL_ETYPE: round() digits must be an integer from -15 to 15, got 1.5 (column 0 "
              "of expression `round(qty, 1.5)`)");
    CHECK_STR(ev("floor(-1.5)"), "-2");
    CHECK_STR(ev("floor(amount)"), "12");
    CHECK_STR(ev("ceil(amount)"), "13");
    CHECK_STR(ev("abs(-qty)"), "3");
    CHECK_STR(ev("abs(missing)"), "null");
    CHECK_STR(ev("floor(event_type)"), "SL_ETYPE: floor() argument 1 must be a number, got "
                                       "string (column 0 of expression `floor(event_type)`)");
    CHECK_STR(ev("to_number(num_s)"), "42.5");
    CHECK_STR(ev("to_number(\" -1e2 \")"), "-100");
    CHECK_STR(ev("to_number(amount)"), "12.50");
    CHECK_STR(ev("to_number(true)"), "1");
    CHECK_STR(ev("to_number(missing)"), "null");
    CHECK_STR(ev("to_number(esc)"), "SL_ETYPE: to_number(): \"caf\xc3\xa9\" is not a number "
                                    "(column 0 of expression `to_number(esc)`)");
    CHECK_STR(ev("to_number(\"0x10\")"), "SL_EPARSE@0: to_number(): \"0x10\" is not a number");
    CHECK_STR(ev("to_number(tags)"), "SL_ETYPE: to_number() cannot convert an array to a number "
                                     "(column 0 of expression `to_number(tags)`)");
    CHECK_STR(ev("to_int(num_s)"), "42");
    CHECK_STR(ev("to_int(-amount)"), "-12");
    CHECK_STR(ev("to_int(id64)"), "9007199254740993"); /* integral: spelling kept */
    CHECK_STR(ev("to_int(big)"), "SL_ETYPE: to_int(): 1.23457e+19 does not fit in a 64-bit "
                                 "integer (column 0 of expression `to_int(big)`)");
    CHECK_STR(ev("to_int(\"9.3e18\")"), "SL_EPARSE@0: to_int(): 9.3e+18 does not fit in a 64-bit "
                                        "integer");
    CHECK_STR(ev("to_int(false)"), "0");
    CHECK_STR(ev("to_string(qty)"), "\"3\"");
    CHECK_STR(ev("to_string(amount)"), "\"12.50\"");
    CHECK_STR(ev("to_string(flag)"), "\"true\"");
    CHECK_STR(ev("to_string(event_type)"), "\"purchase\"");
    CHECK_STR(ev("to_string(missing)"), "null");
    CHECK_STR(ev("to_string(obj)"), "SL_ETYPE: to_string() cannot turn an object into a string "
                                    "(column 0 of expression `to_string(obj)`)");
    CHECK_STR(ev("coalesce(missing, n, qty, 1)"), "3");
    CHECK_STR(ev("coalesce(missing, n)"), "null");
    CHECK_STR(ev("coalesce(qty, qty < \"a\")"), "3"); /* lazy */
    CHECK_STR(ev("is_null(missing)"), "true");
    CHECK_STR(ev("is_null(n)"), "true");
    CHECK_STR(ev("is_null(zero)"), "false");
}

static void test_time_functions(void)
{
    CHECK_STR(ev("parse_timestamp(ts)"), "1795782600.25");
    CHECK_STR(ev("parse_timestamp(\"1970-01-01T00:00:00Z\")"), "0");
    CHECK_STR(ev("parse_timestamp(\"1970-01-01T01:00:00+01:00\")"), "0");
    CHECK_STR(ev("parse_timestamp(\"1969-12-31t19:00:00.5-05:00\")"), "0.5");
    CHECK_STR(ev("parse_timestamp(\"2000-02-29 12:00:00z\")"), "951825600");
    CHECK_STR(ev("parse_timestamp(\"2024-03-01\")"), "1709251200");
    CHECK_STR(ev("parse_timestamp(\"2023-02-29T00:00:00Z\")"),
              "SL_EPARSE@0: parse_timestamp(): \"2023-02-29T00:00:00Z\" is not an RFC 3339 "
              "timestamp (like 2026-11-27T12:00:00Z)");
    CHECK_STR(ev("parse_timestamp(event_type)"),
              "SL_ETYPE: parse_timestamp(): \"purchase\" is not an RFC 3339 timestamp (like "
              "2026-11-27T12:00:00Z) (column 0 of expression `parse_timestamp(event_type)`)");
    CHECK_STR(ev("parse_timestamp(\"2026-11-27T12:00:00\")"),
              "SL_EPARSE@0: parse_timestamp(): \"2026-11-27T12:00:00\" is not an RFC 3339 "
              "timestamp (like 2026-11-27T12:00:00Z)");
    CHECK_STR(ev("parse_timestamp(\"27/11/2026 13:05\", \"%d/%m/%Y %H:%M\")"), "1795784700");
    CHECK_STR(ev("parse_timestamp(\"27/11/2026 13:05 +0100\", \"%d/%m/%Y %H:%M %z\")"),
              "1795781100");
    CHECK_STR(ev("parse_timestamp(\"13:05\", \"%H:%M\")"), "47100");
    CHECK_STR(ev("parse_timestamp(\"27/11/2026x\", \"%d/%m/%Y\")"),
              "SL_EPARSE@0: parse_timestamp(): \"27/11/2026x\" does not match format \"%d/%m/%Y\"");
    CHECK_STR(ev("format_timestamp(0)"), "\"1970-01-01T00:00:00.000Z\"");
    CHECK_STR(ev("format_timestamp(parse_timestamp(ts))"), "\"2026-11-27T12:30:00.250Z\"");
    CHECK_STR(ev("format_timestamp(1.9996)"), "\"1970-01-01T00:00:02.000Z\"");
    CHECK_STR(ev("format_timestamp(-0.5)"), "\"1969-12-31T23:59:59.500Z\"");
    CHECK_STR(ev("format_timestamp(1795782600, \"%Y/%m/%d %H\")"), "\"2026/11/27 12\"");
    CHECK_STR(ev("format_timestamp(1e300)"),
              "SL_EPARSE@0: format_timestamp(): 1e+300 is outside the years 1 to 9999");
    CHECK_STR(ev("format_timestamp(missing)"), "null");
    /* now() is not folded: two records see the clock, within a second of ours. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double t = strtod(ev("now()"), NULL);
    CHECK(fabs(t - (double)ts.tv_sec) < 2);
    CHECK_STR(ev("now() > 1700000000"), "true");
}

static void test_compile_errors(void)
{
    CHECK_STR(ev(""), "SL_EPARSE@0: empty expression");
    CHECK_STR(ev("   "), "SL_EPARSE@0: empty expression");
    CHECK_STR(ev("lowr(x)"), "SL_EPARSE@0: unknown function 'lowr' (did you mean 'lower'?)");
    CHECK_STR(ev("x == strts_with(a, b)"),
              "SL_EPARSE@5: unknown function 'strts_with' (did you mean 'starts_with'?)");
    CHECK_STR(ev("frobnicate(x)"),
              "SL_EPARSE@0: unknown function 'frobnicate'; see docs/expressions.md for the list");
    CHECK_STR(ev("lower(x, y)"), "SL_EPARSE@0: lower() takes 1 argument, got 2");
    CHECK_STR(ev("a && starts_with(x)"), "SL_EPARSE@5: starts_with() takes 2 arguments, got 1");
    CHECK_STR(ev("round()"), "SL_EPARSE@0: round() takes 1 to 2 arguments, got 0");
    CHECK_STR(ev("now(1)"), "SL_EPARSE@0: now() takes 0 arguments, got 1");
    CHECK_STR(ev("concat()"), "SL_EPARSE@0: concat() takes at least 1 argument, got 0");
    CHECK_STR(ev("a == \"abc"), "SL_EPARSE@5: unterminated string: add the closing \"");
    CHECK_STR(ev("'abc"), "SL_EPARSE@0: unterminated string: add the closing '");
    CHECK_STR(ev("matches(x, \"a(\")"), "SL_EPARSE@11: bad regular expression: Unmatched ( or \\(");
    /* Patterns whose repetitions would make regcomp allocate without bound (fuzzing found
       one that took gigabytes) are refused before regcomp. */
    CHECK_STR(ev("matches(x, \"^pu(chas++++e)?$\")"),
              "SL_EPARSE@11: bad regular expression: a quantifier cannot follow another "
              "quantifier (at byte 9)");
    CHECK_STR(ev("matches(x, \"((a{100}){100}){100}\")"),
              "SL_EPARSE@11: bad regular expression: its repetitions expand to more than 100000 "
              "pattern nodes; use smaller counts");
    CHECK_STR(ev("matches(x, \"^[0-9]{1,3}(\\\\.[0-9]{1,3}){3}$|a{2,}|[]{]x{2}\")"), "null");
    CHECK_STR(ev("matches(x, \"a{1\")"), "SL_EPARSE@11: bad regular expression: Unmatched \\{");
    CHECK_STR(ev("matches(x, y)"), "SL_EPARSE@11: matches() needs its pattern as a string "
                                   "literal");
    CHECK_STR(ev("a = 1"), "SL_EPARSE@2: unexpected '=': write == to compare");
    CHECK_STR(ev("a & b"), "SL_EPARSE@2: unexpected '&': write && for a logical and");
    CHECK_STR(ev("a | b"), "SL_EPARSE@2: unexpected '|': write || for a logical or");
    CHECK_STR(ev("a =="), "SL_EPARSE@4: unexpected end of expression; expected a value, a "
                          "field or a function call");
    CHECK_STR(ev("(a == 1"),
              "SL_EPARSE@7: unexpected end of expression; expected ')' to close the '(' at "
              "column 0");
    CHECK_STR(ev("a b"), "SL_EPARSE@2: unexpected 'b' after a complete expression; missing an "
                         "operator?");
    CHECK_STR(ev("lower(a b)"), "SL_EPARSE@8: unexpected 'b'; expected ',' or ')' in the "
                                "argument list");
    CHECK_STR(ev("[1, 2"), "SL_EPARSE@5: unexpected end of expression; expected ',' or ']' in "
                           "the array");
    CHECK_STR(ev("[1,]"), "SL_EPARSE@3: unexpected ']'; expected an array element after ','");
    CHECK_STR(ev("1 / 0"), "SL_EPARSE@2: division by zero");
    CHECK_STR(ev("\"a\" < 1"), "SL_EPARSE@4: operator < cannot compare string with number");
    CHECK_STR(ev("01"), "SL_EPARSE@0: number with a leading zero");
    CHECK_STR(ev("1."), "SL_EPARSE@2: expected a digit after the decimal point");
    CHECK_STR(ev("1e"), "SL_EPARSE@2: expected a digit in the exponent");
    CHECK_STR(ev("12abc"), "SL_EPARSE@2: unexpected 'a' in a number");
    CHECK_STR(ev("1e999"), "SL_EPARSE@0: number out of range");
    CHECK_STR(ev("\"a\\qb\""), "SL_EPARSE@2: unknown escape '\\q' in a string");
    CHECK_STR(ev("\"\\u12\""), "SL_EPARSE@1: bad \\u escape: expected 4 hex digits");
    CHECK_STR(ev("\"\\ud800\""), "SL_EPARSE@1: high surrogate not followed by a low surrogate");
    CHECK_STR(ev("\"\\udc00\""), "SL_EPARSE@1: lone low surrogate in \\u escape");
    CHECK_STR(ev("\"a\tb\""), "SL_EPARSE@2: control character 0x09 in a string: escape it");
    CHECK_STR(ev("\"\xff\""), "SL_EPARSE@1: string literal is not valid UTF-8");
    CHECK_STR(ev("a # b"), "SL_EPARSE@2: unexpected '#'");
    CHECK_STR(ev("a \x01"), "SL_EPARSE@2: unexpected byte 0x01");
    CHECK_STR(ev(". a"), "SL_EPARSE@0: unexpected '.': a field path starts with a name or "
                         "[\"key\"]");
    CHECK_STR(ev("qty )"), "SL_EPARSE@4: unexpected ')' after a complete expression; missing "
                           "an operator?");
    /* Nesting limits keep parse and eval recursion bounded. */
    char deep[600];
    memset(deep, '(', 300);
    deep[300] = '1';
    memset(deep + 301, ')', 298);
    deep[599] = '\0';
    CHECK_STR(ev(deep), "SL_EPARSE@128: expression nested deeper than 128 levels");
    static char chain[8192];
    size_t o = 0;
    for (int i = 0; i < 1200; i++)
        o += (size_t)snprintf(chain + o, sizeof chain - o, i ? "+qty" : "qty");
    CHECK_STR(ev(chain), "SL_EPARSE@3999: expression too large: more than 1000 operators deep; "
                         "split it");
    struct sl_expr *e = NULL;
    struct sl_error err;
    size_t col = 7;
    CHECK_INT(sl_expr_compile("a\0b", 3, &e, &col, &err), SL_EPARSE);
    CHECK_INT(col, 1);
    CHECK(e == NULL);
}

static void test_folding(void)
{
    /* Constant sub-trees are evaluated once; the result is what evaluation would give. */
    CHECK_STR(ev("round(2.5) + len(\"abc\") * 2"), "9");
    CHECK_STR(ev("upper(\"x\") + lower(\"Y\")"), "\"Xy\"");
    CHECK_STR(ev("[1 + 1, \"a\"]"), "[2,\"a\"]");
    CHECK_STR(ev("-(-3)"), "3");
    struct sl_expr *e;
    struct sl_error err;
    size_t col;
    REQUIRE(sl_expr_compile("  qty > 1 ", 10, &e, &col, &err) == SL_OK);
    CHECK_STR(sl_expr_text(e), "  qty > 1 ");
    int truth = -1;
    CHECK_INT(sl_expr_test(e, rec, &batch->arena, &truth, &err), SL_OK);
    CHECK_INT(truth, 1);
    sl_expr_destroy(e);
    sl_expr_destroy(NULL);
}

struct thread_arg {
    const struct sl_expr *e;
    struct sl_record *recs[2];
    int ok;
};

static void *thread_main(void *p)
{
    struct thread_arg *ta = p;
    struct sl_arena a;
    struct sl_error err;
    sl_arena_init(&a, 0);
    ta->ok = 1;
    for (int i = 0; i < 20000; i++) {
        struct sl_value v;
        struct sl_record *r = ta->recs[i & 1];
        if (sl_expr_eval(ta->e, r, &a, &v, &err) != SL_OK || v.type != SL_V_STRING) {
            ta->ok = 0;
            break;
        }
        const char *want = (i & 1) ? "view:iostrue" : "purchase:iostrue";
        if (v.len != strlen(want) || memcmp(v.u.str, want, v.len) != 0) {
            ta->ok = 0;
            break;
        }
        if (i % 1000 == 999)
            sl_arena_reset(&a);
    }
    sl_arena_fini(&a);
    return NULL;
}

static void test_threads(void)
{
    struct sl_expr *e;
    struct sl_error err;
    size_t col;
    const char *src = "matches(event_type, \"^(purchase|view)$\") ? 1 : 0";
    /* No ternary operator: the compile error says where. */
    CHECK_INT(sl_expr_compile(src, strlen(src), &e, &col, &err), SL_EPARSE);
    CHECK_INT(col, 41);
    src = "concat(event_type, \":\", lower(trim(coalesce(device.os, \"x\"))), "
          "to_string(is_null(missing) && matches(event_type, \"^(purchase|view)$\")))";
    REQUIRE(sl_expr_compile(src, strlen(src), &e, &col, &err) == SL_OK);
    struct sl_record *other =
        make_record("{\"event_type\":\"view\",\"device\":{\"os\":\"IOS\"},\"tags\":[]}");
    struct thread_arg ta[2] = {{e, {rec, other}, 0}, {e, {rec, other}, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        REQUIRE(pthread_create(&th[i], NULL, thread_main, &ta[i]) == 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    CHECK_INT(ta[0].ok, 1);
    CHECK_INT(ta[1].ok, 1);
    sl_expr_destroy(e);
}

static void test_no_heap_per_eval(void)
{
    struct sl_expr *e;
    struct sl_error err;
    size_t col;
    const char *src = "event_type == \"purchase\" && lower(trim(device.os)) in [\"ios\"] && "
                      "round(amount * 100) > 0 && matches(event_type, \"^p\")";
    REQUIRE(sl_expr_compile(src, strlen(src), &e, &col, &err) == SL_OK);
    struct sl_arena a;
    sl_arena_init(&a, 1 << 20);
    int truth;
    CHECK_INT(sl_expr_test(e, rec, &a, &truth, &err), SL_OK); /* first block */
    long before = sl_alloc_count();
    for (int i = 0; i < 1000; i++)
        CHECK_INT(sl_expr_test(e, rec, &a, &truth, &err), SL_OK);
    CHECK_INT(sl_alloc_count() - before, 0);
    CHECK_INT(truth, 1);
    sl_arena_fini(&a);
    sl_expr_destroy(e);
}

static void test_compile_out_of_memory(void)
{
    /* Fail each allocation of a compile in turn: SL_ENOMEM, nothing leaked (ASan). */
    const char *src =
        "matches(event_type, \"^p\") && lower(trim(device.os)) in [\"ios\", \"x\"] && "
        "concat(\"a\", \"b\") == \"ab\" && tags[0] == \"a\"";
    int saw_enomem = 0, ok_at = 0;
    for (long n = 1; n < 200 && !ok_at; n++) {
        struct sl_expr *e = NULL;
        struct sl_error err;
        size_t col;
        sl_alloc_fail_at(n);
        sl_rc rc = sl_expr_compile(src, strlen(src), &e, &col, &err);
        sl_alloc_fail_at(0);
        if (rc == SL_OK) {
            ok_at = (int)n;
            int truth;
            CHECK_INT(sl_expr_test(e, rec, &batch->arena, &truth, &err), SL_OK);
            CHECK_INT(truth, 1);
            sl_expr_destroy(e);
        } else {
            CHECK_INT(rc, SL_ENOMEM);
            CHECK_STR(err.msg, "out of memory compiling expression");
            saw_enomem++;
        }
    }
    CHECK(saw_enomem >= 1);
    CHECK(ok_at > 1);
}

static void test_speed(void)
{
    struct sl_expr *e;
    struct sl_error err;
    size_t col;
    const char *src = "event_type == \"purchase\"";
    REQUIRE(sl_expr_compile(src, strlen(src), &e, &col, &err) == SL_OK);
    struct sl_record *r = make_record(
        "{\"event_id\":\"e-000001\",\"user_id\":12345,\"event_type\":\"purchase\",\"ts\":"
        "\"2026-11-27T12:00:00Z\",\"amount\":12.5,\"currency\":\"EUR\",\"device\":{\"os\":"
        "\"ios\",\"ver\":\"17.1\"},\"tags\":[\"a\",\"b\"],\"referrer\":\"https://x.example/\"}");
    struct sl_arena a;
    sl_arena_init(&a, 0);
    int truth = 0, n = 2000000;
    long hits = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++) {
        sl_expr_test(e, r, &a, &truth, &err);
        hits += truth;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / n;
    fprintf(stderr, "speed: `%s` on a parsed click event: %.1f ns per record\n", src, ns);
    CHECK_INT(hits, n);
    sl_arena_fini(&a);
    sl_expr_destroy(e);
}

int main(void)
{
    if (sl_batch_create(0, &batch) || sl_json_parser_create(&parser))
        return 2;
    rec = make_record(sample);
    RUN(test_literals);
    RUN(test_fields);
    RUN(test_compare);
    RUN(test_logic);
    RUN(test_arith);
    RUN(test_in);
    RUN(test_string_functions);
    RUN(test_number_functions);
    RUN(test_time_functions);
    RUN(test_compile_errors);
    RUN(test_folding);
    RUN(test_threads);
    RUN(test_no_heap_per_eval);
    RUN(test_compile_out_of_memory);
    RUN(test_speed);
    sl_json_parser_destroy(parser);
    sl_batch_unref(batch);
    return TEST_DONE();
}
