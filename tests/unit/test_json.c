/*
 * test_json.c - the JSON parser, tape, string/number conversions and struct sl_value.
 *
 * Every case asserts exact results: token fields, decoded bytes, error offsets and
 * message fragments, serialized text.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "sluice/arena.h"
#include "sluice/buf.h"
#include "sluice/json.h"
#include "sluice/value.h"
#include "test.h"

static struct sl_json_parser *P;
static struct sl_arena A;

/* Parse a NUL-terminated document (length by strlen unless n is given). */
static sl_rc parse_n(const char *s, size_t n, uint32_t depth, struct sl_tape *t,
                     struct sl_json_error *e)
{
    return sl_json_parse(P, s, n, depth, &A, t, e);
}

static int parses(const char *s)
{
    struct sl_tape t;
    struct sl_json_error e;
    return parse_n(s, strlen(s), 0, &t, &e) == SL_OK;
}

/* Expect SL_EPARSE at offset off, with exactly rule want_rule and msg containing frag. */
#define CHECK_ERR_N(s, n, off, want_rule, frag)                                                    \
    do {                                                                                           \
        struct sl_tape t_;                                                                         \
        struct sl_json_error e_;                                                                   \
        memset(&e_, 0, sizeof e_);                                                                 \
        CHECK_INT(parse_n((s), (n), 0, &t_, &e_), SL_EPARSE);                                      \
        CHECK_INT(e_.offset, (off));                                                               \
        CHECK_STR(e_.rule ? e_.rule : "(null)", (want_rule));                                      \
        CHECK_STR(e_.path, "");                                                                    \
        if (!strstr(e_.msg, (frag))) {                                                             \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: message \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, e_.msg,    \
                    (frag));                                                                       \
        }                                                                                          \
    } while (0)
#define CHECK_ERR(s, off, want_rule, frag) CHECK_ERR_N((s), strlen(s), (off), (want_rule), (frag))

static void test_tape_layout(void)
{
    const char *doc = "{\"a\":[1,{\"b\":null}],\"c\":\"x\\n\"}";
    struct sl_tape t;
    struct sl_json_error e;
    REQUIRE(parse_n(doc, strlen(doc), 0, &t, &e) == SL_OK);
    CHECK(t.text == doc);
    CHECK_INT(t.len, strlen(doc));
    REQUIRE(t.ntok == 9);
    /* type, off, len, next, count, flags for every token */
    static const uint32_t want[9][6] = {
        {SL_J_OBJECT, 0, 30, 9, 2, 0}, /* {...}   */
        {SL_J_STRING, 1, 3, 2, 0, 0},  /* "a"     */
        {SL_J_ARRAY, 5, 14, 7, 2, 0},  /* [1,{..}] */
        {SL_J_NUMBER, 6, 1, 4, 0, SL_JTOK_INTEGER},
        {SL_J_OBJECT, 8, 10, 7, 1, 0}, /* {"b":null} */
        {SL_J_STRING, 9, 3, 6, 0, 0},  /* "b"     */
        {SL_J_NULL, 13, 4, 7, 0, 0},   /* null    */
        {SL_J_STRING, 20, 3, 8, 0, 0}, /* "c"     */
        {SL_J_STRING, 24, 5, 9, 0, SL_JTOK_ESCAPED},
    };
    for (uint32_t i = 0; i < 9; i++) {
        CHECK_INT(t.tok[i].type, want[i][0]);
        CHECK_INT(t.tok[i].off, want[i][1]);
        CHECK_INT(t.tok[i].len, want[i][2]);
        CHECK_INT(t.tok[i].next, want[i][3]);
        CHECK_INT(t.tok[i].count, want[i][4]);
        CHECK_INT(t.tok[i].flags, want[i][5]);
    }
}

static void test_whitespace_and_scalars(void)
{
    struct sl_tape t;
    struct sl_json_error e;
    const char *doc = " \t\r\n[ true , false,null ,\"\" , -0 , 1.5e-3 ] \n";
    REQUIRE(parse_n(doc, strlen(doc), 0, &t, &e) == SL_OK);
    REQUIRE(t.ntok == 7);
    CHECK_INT(t.tok[0].off, 4);
    CHECK_INT(t.tok[0].count, 6);
    CHECK_INT(t.tok[1].type, SL_J_TRUE);
    CHECK_INT(t.tok[2].type, SL_J_FALSE);
    CHECK_INT(t.tok[3].type, SL_J_NULL);
    CHECK_INT(t.tok[4].type, SL_J_STRING);
    CHECK_INT(t.tok[4].len, 2);
    CHECK_MEM(t.text + t.tok[5].off, t.tok[5].len, "-0");
    CHECK_INT(t.tok[5].flags, SL_JTOK_INTEGER);
    CHECK_MEM(t.text + t.tok[6].off, t.tok[6].len, "1.5e-3");
    CHECK_INT(t.tok[6].flags, 0);
    CHECK(parses("\"only a string\""));
    CHECK(parses("42"));
    CHECK(parses("{}"));
    CHECK(parses("[]"));
    CHECK(parses("[[],{},[{}]]"));
    CHECK(parses("{\"\":0}"));
    CHECK(parses("1E+2"));
    CHECK(parses("-0.0e-0"));
    CHECK(parses("\"\xf0\x9f\x98\x80 \xe2\x82\xac \xc3\xa9 \xef\xbf\xbf \xf4\x8f\xbf\xbf\""));
    /* A document is not NUL-terminated: bytes after len are never read. */
    CHECK_INT(parse_n("12345", 3, 0, &t, &e), SL_OK);
    CHECK_INT(t.tok[0].len, 3);
}

static void test_structure_errors(void)
{
    CHECK_ERR("", 0, "empty", "empty input");
    CHECK_ERR("   ", 3, "empty", "empty input");
    CHECK_ERR("[1,2", 4, "truncated", "unexpected end of input at byte 4: expected ',' or ']'");
    CHECK_ERR("{\"a\":1", 6, "truncated", "expected ',' or '}'");
    CHECK_ERR("{\"a\" 1}", 5, "expected_colon", "expected ':' after object key, found '1'");
    CHECK_ERR("{\"a\"", 4, "truncated", "expected ':'");
    CHECK_ERR("{\"a\":1 \"b\":2}", 7, "expected_comma", "expected ',' or '}' after object member");
    CHECK_ERR("[1 2]", 3, "expected_comma", "expected ',' or ']' after array element");
    CHECK_ERR("{1:2}", 1, "expected_key", "expected a string key in double quotes, found '1'");
    CHECK_ERR("{,}", 1, "expected_key", "found ','");
    CHECK_ERR("{\"a\":1,}", 7, "trailing_comma", "trailing comma before '}'");
    CHECK_ERR("{\"a\":1 , \n}", 10, "trailing_comma", "trailing comma before '}'");
    CHECK_ERR("[1,]", 3, "trailing_comma", "trailing comma before ']'");
    CHECK_ERR("[1,\t ]", 5, "trailing_comma", "trailing comma before ']'");
    CHECK_ERR("{\"a\":[1,],\"b\":2}", 8, "trailing_comma", "trailing comma");
    CHECK_ERR("{\"a\":}", 5, "expected_value", "expected a value before '}'");
    CHECK_ERR("[,1]", 1, "expected_value", "unexpected ',' where a value was expected");
    CHECK_ERR("{\"a\":1,", 7, "truncated", "expected an object key");
    CHECK_ERR("[", 1, "truncated", "unexpected end of input at byte 1: expected a value");
    CHECK_ERR("{\"a\":[1,{\"b\":", 13, "truncated", "the document is truncated");
    CHECK_ERR("]", 0, "expected_value", "expected a value before ']'");
    CHECK_ERR("1 2", 2, "trailing_garbage", "unexpected '2' after the JSON value ended at byte 1");
    CHECK_ERR("{}x", 2, "trailing_garbage", "unexpected 'x' after the JSON value");
    CHECK_ERR("{\"a\":1}}", 7, "trailing_garbage", "unexpected '}' after the JSON value");
    CHECK_ERR("\xef\xbb\xbf{}", 0, "byte_order_mark", "byte order mark");
    CHECK_ERR("\xef{}", 0, "expected_value", "invalid byte 0xEF where a value was expected");
    CHECK_ERR("\f1", 0, "expected_value", "unexpected 0x0C where a value was expected");
    CHECK_ERR("'a'", 0, "single_quote", "single-quoted string");
    CHECK_ERR("{\"k\":'a'}", 5, "single_quote", "single-quoted string");
    CHECK_ERR("{'k':1}", 1, "single_quote", "single-quoted object key");
    CHECK_ERR("tru", 3, "truncated",
              "unexpected end of input at byte 3 inside literal (expected true");
    CHECK_ERR("trux", 3, "invalid_literal", "invalid literal at byte 0 (expected true)");
    CHECK_ERR("nul", 3, "truncated", "expected null");
    CHECK_ERR("fals", 4, "truncated", "expected false");
    CHECK_ERR("[nulL]", 4, "invalid_literal", "invalid literal at byte 1 (expected null)");
    CHECK_ERR("NaN", 0, "nan_infinity", "NaN/Infinity is not a JSON value");
    CHECK_ERR("[nan]", 1, "nan_infinity", "NaN/Infinity is not a JSON value");
    CHECK_ERR("Infinity", 0, "nan_infinity", "NaN/Infinity is not a JSON value");
    CHECK_ERR("{\"x\":inf}", 5, "nan_infinity", "NaN/Infinity");
    CHECK_ERR("{\"x\":+Infinity}", 5, "nan_infinity", "NaN/Infinity");
    CHECK_ERR("[1,2]]", 5, "trailing_garbage", "after the JSON value");
    CHECK_ERR_N("[1,\0]", 5, 3, "expected_value", "unexpected 0x00 where a value was expected");
}

static void test_number_errors(void)
{
    CHECK_ERR("01", 0, "leading_zero", "leading zero");
    CHECK_ERR("-01", 0, "leading_zero", "leading zero");
    CHECK_ERR("[00]", 1, "leading_zero", "leading zero");
    CHECK_ERR("{\"zip\":007}", 7, "leading_zero", "leading zero");
    CHECK_ERR("-", 1, "truncated", "expected a digit after '-'");
    CHECK_ERR("-a", 1, "invalid_number", "expected a digit after '-', found 'a'");
    CHECK_ERR("1.", 2, "truncated", "expected a digit after '.'");
    CHECK_ERR("1.e5", 2, "invalid_number", "expected a digit after '.', found 'e'");
    CHECK_ERR("1e", 2, "truncated", "exponent");
    CHECK_ERR("1e+", 3, "truncated", "exponent");
    CHECK_ERR("1E-x", 3, "invalid_number", "expected a digit in the exponent, found 'x'");
    CHECK_ERR("+1", 0, "invalid_number", "no '+' sign");
    CHECK_ERR(".5", 0, "invalid_number", "write 0.5, not .5");
    CHECK_ERR("-Infinity", 0, "nan_infinity", "-Infinity is not a JSON number");
    CHECK_ERR("[-inf]", 1, "nan_infinity", "-Infinity is not a JSON number");
    CHECK_ERR("1.5.2", 3, "trailing_garbage", "unexpected '.' after the JSON value");
    CHECK_ERR("0x10", 1, "trailing_garbage", "unexpected 'x'");
}

static void test_string_errors(void)
{
    CHECK_ERR("\"abc", 4, "unterminated_string",
              "the string starting at byte 0 has no closing quote");
    CHECK_ERR("[\"abcdefghijklmnop", 18, "unterminated_string", "the string starting at byte 1");
    CHECK_ERR("{\"a\":\"x}", 8, "unterminated_string", "string starting at byte 5");
    CHECK_ERR("\"a\\", 3, "unterminated_string", "input ends inside an escape");
    CHECK_ERR("\"a\\u00", 6, "unterminated_string", "ends inside the \\u escape at byte 2");
    CHECK_ERR("\"a\x01\"", 2, "control_character", "unescaped control character 0x01");
    CHECK_ERR("\"tab\there\"", 4, "control_character", "unescaped control character 0x09");
    CHECK_ERR("\"0123456789\n\"", 11, "control_character", "unescaped control character 0x0A");
    CHECK_ERR_N("\"a\0b\"", 5, 2, "control_character", "unescaped control character 0x00");
    CHECK_ERR("\"\\x\"", 2, "bad_escape", "invalid escape '\\x'");
    CHECK_ERR("\"\\U0041\"", 2, "bad_escape", "invalid escape '\\U'");
    CHECK_ERR("\"\\u12G4\"", 5, "bad_escape", "expected 4 hex digits after \\u, found 'G'");
    CHECK_ERR("\"\\u12\"", 5, "bad_escape", "invalid \\u escape at byte 1");
    CHECK_ERR("\"\\ud800\"", 1, "lone_surrogate", "lone high surrogate \\uD800");
    CHECK_ERR("\"\\ud800\\u0041\"", 1, "lone_surrogate", "lone high surrogate");
    CHECK_ERR("\"\\ud800\\ud800\"", 1, "lone_surrogate", "lone high surrogate");
    CHECK_ERR("\"ab\\udc00\"", 3, "lone_surrogate", "lone low surrogate \\uDC00");
    CHECK_ERR("\"\\udbff\"", 1, "lone_surrogate", "lone high surrogate \\uDBFF");
    CHECK_ERR("{\"k\\q\":1}", 4, "bad_escape", "invalid escape '\\q'");
}

static void test_utf8_errors(void)
{
    CHECK_ERR("\"\xc3\"", 1, "invalid_utf8",
              "lead byte 0xC3 needs 1 continuation bytes, byte 2 is 0x22");
    CHECK_ERR("\"\xc3", 1, "invalid_utf8", "sequence starting with 0xC3 is cut short");
    CHECK_ERR("\"\xc0\x80\"", 1, "overlong_utf8",
              "overlong UTF-8 encoding in string: lead byte 0xC0");
    CHECK_ERR("\"\xc1\xbf\"", 1, "overlong_utf8", "lead byte 0xC1");
    CHECK_ERR("\"\xe0\x80\xaf\"", 1, "overlong_utf8", "0xE0");
    CHECK_ERR("\"\xf0\x80\x80\xaf\"", 1, "overlong_utf8", "0xF0");
    CHECK_ERR("\"\xed\xa0\x80\"", 1, "invalid_utf8", "0xED 0xA0 encode a UTF-16 surrogate");
    CHECK_ERR("\"\xf4\x90\x80\x80\"", 1, "invalid_utf8", "0xF4 starts a code point above U+10FFFF");
    CHECK_ERR("\"\xf5\x80\x80\x80\"", 1, "invalid_utf8", "0xF5 starts a code point above");
    CHECK_ERR("\"\x80\"", 1, "invalid_utf8", "continuation byte 0x80 where a character must start");
    CHECK_ERR("\"caf\xe9\"", 4, "invalid_utf8", "lead byte 0xE9 needs 2 continuation bytes");
    CHECK_ERR("\"\xff\"", 1, "invalid_utf8", "byte 0xFF never occurs in UTF-8");
    CHECK_ERR("\"abcdefgh\xe2\x82\"", 9, "invalid_utf8", "0xE2"); /* past the 8-byte fast path */
    CHECK_ERR("\"\xe2\x28\xa1\"", 1, "invalid_utf8", "byte 2 is 0x28");
    CHECK_ERR("{\"k\xfe\":1}", 3, "invalid_utf8", "0xFE"); /* in a key */

    size_t bad = 99;
    CHECK(sl_utf8_valid("plain ascii text, long enough for words", 39, &bad));
    CHECK_INT(bad, 99);
    CHECK(sl_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, NULL));
    CHECK(!sl_utf8_valid("abcdefghijk\xc3", 12, &bad));
    CHECK_INT(bad, 11);
    CHECK(!sl_utf8_valid("ab\xed\xbf\xbf", 5, &bad));
    CHECK_INT(bad, 2);
    CHECK(!sl_utf8_valid("\xc0\xaf", 2, &bad));
    CHECK_INT(bad, 0);
    CHECK(sl_utf8_valid("", 0, &bad));
}

static void test_depth(void)
{
    char doc[600];
    struct sl_tape t;
    struct sl_json_error e;
    memset(doc, '[', 128);
    memset(doc + 128, ']', 128);
    CHECK_INT(parse_n(doc, 256, 0, &t, &e), SL_OK);
    CHECK_INT(t.ntok, 128);
    CHECK_INT(t.tok[127].next, 128);
    CHECK_INT(t.tok[0].len, 256);
    memset(doc, '[', 129);
    memset(doc + 129, ']', 129);
    CHECK_ERR_N(doc, 258, 128, "depth", "nesting deeper than 128 levels");
    /* An explicit limit, and objects count too. */
    CHECK_INT(parse_n("[{\"a\":[]}]", 10, 3, &t, &e), SL_OK);
    CHECK_INT(parse_n("[{\"a\":[[]]}]", 12, 3, &t, &e), SL_EPARSE);
    CHECK_INT(e.offset, 7);
    CHECK(strstr(e.msg, "nesting deeper than 3 levels") != NULL);
    /* Depth is nesting, not the number of containers. */
    char wide[4001];
    size_t n = 0;
    n += (size_t)snprintf(wide, sizeof wide, "[");
    for (int i = 0; i < 1000; i++)
        n += (size_t)snprintf(wide + n, sizeof wide - n, "%s[]", i ? "," : "");
    n += (size_t)snprintf(wide + n, sizeof wide - n, "]");
    CHECK_INT(parse_n(wide, n, 2, &t, &e), SL_OK);
    CHECK_INT(t.ntok, 1001);
    CHECK_INT(t.tok[0].count, 1000);
}

static void test_limit(void)
{
    struct sl_tape t;
    struct sl_json_error e;
    memset(&t, 0x5A, sizeof t);
    /* The length is checked before any byte is read. */
    CHECK_INT(parse_n("1", SL_JSON_MAX_TEXT + 1, 0, &t, &e), SL_ELIMIT);
    CHECK(strstr(e.msg, "exceeds the 1 GiB limit") != NULL);
    CHECK_STR(e.rule, "too_large");
    CHECK_INT(t.ntok, 0x5A5A5A5A); /* untouched on failure */
}

static void test_many_tokens_reuse(void)
{
    /* Grows the parser's scratch well past its first size, then reuses it. */
    struct sl_buf b;
    struct sl_tape t;
    struct sl_json_error e;
    sl_buf_init(&b, 0);
    sl_buf_putc(&b, '[');
    for (int i = 0; i < 100000; i++)
        sl_buf_printf(&b, "%s%d", i ? "," : "", i);
    sl_buf_putc(&b, ']');
    REQUIRE(parse_n(b.data, b.len, 0, &t, &e) == SL_OK);
    CHECK_INT(t.ntok, 100001);
    CHECK_INT(t.tok[0].count, 100000);
    CHECK_MEM(t.text + t.tok[100000].off, t.tok[100000].len, "99999");
    REQUIRE(parse_n("[7]", 3, 0, &t, &e) == SL_OK);
    CHECK_INT(t.ntok, 2);
    CHECK_INT(t.tok[1].off, 1);
    sl_buf_fini(&b);
}

static void test_decode_strings(void)
{
    const char *doc =
        "[\"plain\",\"\\\"\\\\\\/\\b\\f\\n\\r\\t\",\"\\u0041\\u00e9\\u20AC\\ud83d\\ude00"
        "x\",\"\\u0000\"]";
    struct sl_tape t;
    struct sl_json_error e;
    const char *s;
    size_t n;
    REQUIRE(parse_n(doc, strlen(doc), 0, &t, &e) == SL_OK);
    REQUIRE(t.ntok == 5);
    CHECK_INT(sl_json_str(&t, 1, &A, &s, &n), SL_OK);
    CHECK_MEM(s, n, "plain");
    CHECK(s == doc + 2); /* no copy without escapes */
    CHECK_INT(t.tok[2].flags, SL_JTOK_ESCAPED);
    CHECK_INT(sl_json_str(&t, 2, &A, &s, &n), SL_OK);
    CHECK_MEM(s, n, "\"\\/\b\f\n\r\t");
    CHECK_INT(sl_json_str(&t, 3, &A, &s, &n), SL_OK);
    CHECK_MEM(s, n, "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80x");
    CHECK_INT(sl_json_str(&t, 4, &A, &s, &n), SL_OK);
    CHECK_INT(n, 1);
    CHECK_INT(s[0], 0);
    CHECK_INT(sl_json_str(&t, 0, &A, &s, &n), SL_ETYPE);

    char out[32];
    CHECK_INT(sl_json_unescape("a\\u00e9b\\n", 10, out), 5);
    CHECK(memcmp(out,
                 "a\xc3\xa9"
                 "b\n",
                 5) == 0);
    CHECK_INT(sl_json_unescape("", 0, out), 0);
}

static void write_str(const char *s, size_t n, const char *want)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    CHECK_INT(sl_json_write_str(&b, s, n), SL_OK);
    CHECK_MEM(b.data, b.len, want);
    sl_buf_fini(&b);
}

static void test_write_str(void)
{
    write_str("", 0, "\"\"");
    write_str("plain", 5, "\"plain\"");
    write_str("a\"b\\c/d", 7, "\"a\\\"b\\\\c/d\"");
    write_str("\b\f\n\r\t", 5, "\"\\b\\f\\n\\r\\t\"");
    write_str("\x01\x1f\x7f", 3, "\"\\u0001\\u001f\x7f\"");
    write_str("\0z", 2, "\"\\u0000z\"");
    write_str("\xc3\xa9\xf0\x9f\x98\x80", 6, "\"\xc3\xa9\xf0\x9f\x98\x80\"");
    /* A hard maximum on the buffer is honoured. */
    struct sl_buf b;
    sl_buf_init(&b, 4);
    CHECK_INT(sl_json_write_str(&b, "abcdef", 6), SL_ELIMIT);
    sl_buf_fini(&b);
}

static void write_dbl(double d, const char *want)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    CHECK_INT(sl_json_write_double(&b, d), SL_OK);
    CHECK_MEM(b.data, b.len, want);
    /* Whatever is written must parse as a JSON number (or null). */
    struct sl_tape t;
    struct sl_json_error e;
    CHECK_INT(parse_n(b.data, b.len, 0, &t, &e), SL_OK);
    sl_buf_fini(&b);
}

static void test_write_double(void)
{
    write_dbl(0.0, "0");
    write_dbl(-0.0, "-0");
    write_dbl(1.0, "1");
    write_dbl(-42.0, "-42");
    write_dbl(9007199254740992.0, "9007199254740992");
    write_dbl(-9007199254740992.0, "-9007199254740992");
    write_dbl(18014398509481984.0, "18014398509481984"); /* 2^54: %.17g, no exponent */
    write_dbl(1.8014398509481984e17, "1.8014398509481984e+17");
    write_dbl(1e21, "1e+21");
    write_dbl(1.5, "1.5");
    write_dbl(0.1, "0.1");
    write_dbl(19.99, "19.99");
    write_dbl(1999.0 / 100, "19.99");
    write_dbl(0.1 + 0.2, "0.30000000000000004");
    write_dbl(1.0 / 3, "0.3333333333333333");
    write_dbl(2.0 / 3, "0.6666666666666666");
    write_dbl(1e-7, "1e-07");
    write_dbl(123456789.125, "123456789.125");
    write_dbl(5e-324, "4.94065645841247e-324");
    write_dbl(1.7976931348623157e308, "1.7976931348623157e+308");
    write_dbl(NAN, "null");
    write_dbl(INFINITY, "null");
    write_dbl(-INFINITY, "null");
}

static void test_numbers(void)
{
    CHECK(sl_json_num_to_double("0", 1) == 0.0);
    CHECK(signbit(sl_json_num_to_double("-0", 2)));
    CHECK(sl_json_num_to_double("19.99", 5) == 19.99);
    CHECK(sl_json_num_to_double("1.0e-5", 6) == 1e-5);
    CHECK(sl_json_num_to_double("1E+2", 4) == 100.0);
    CHECK(sl_json_num_to_double("-12.5e1", 7) == -125.0);
    CHECK(sl_json_num_to_double("0.30000000000000004", 19) == 0.1 + 0.2);
    CHECK(sl_json_num_to_double("123456789012345678901234567890", 30) == 1.2345678901234568e29);
    CHECK(sl_json_num_to_double("9007199254740993", 16) == 9007199254740992.0);
    CHECK(isinf(sl_json_num_to_double("1e400", 5)));
    CHECK(sl_json_num_to_double("1e-400", 6) == 0.0);
    CHECK(sl_json_num_to_double("2.2250738585072011e-308", 23) == 2.2250738585072011e-308);
    /* Not NUL-terminated: the digits after n must not be read. */
    CHECK(sl_json_num_to_double("12345678", 3) == 123.0);
    CHECK(sl_json_num_to_double("1.000000000000000000000000000000000000000000000000000000000"
                                "00000000000000000000000000000000000000000000000000000000000"
                                "000000000000000000001",
                                139) == 1.0);

    /* Long texts (>= 128 bytes) take the no-copy path: compare with strtod bit for bit. */
    static const char *const longs[] = {
        "1000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000000",
        "0.00000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000000012345e-3",
        "-123456789012345678901234567890123456789012345678901234567890123456789012345678901"
        "234567890123456789012345678901234567890123456789012345678901234567890.5e-100",
        "0.0000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "1e0000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "00000000000000000000000000000000000000000000000000000000000000000000000000000000003",
        "-0.0000000000000000000000000000000000000000000000000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000000000000000000000000001"
        "e99999999999999999999",
    };
    for (size_t i = 0; i < sizeof longs / sizeof longs[0]; i++) {
        double want = strtod(longs[i], NULL),
               got = sl_json_num_to_double(longs[i], strlen(longs[i]));
        CHECK(memcmp(&want, &got, sizeof got) == 0);
    }
    /* 1 + 2^-53 is exactly halfway between 1 and the next double: as is it rounds to even
     * (1), with a non-zero digit 1000 places later (far past the 780 kept) it must round
     * up. */
    {
        static char big[1200];
        const char *half = "1.00000000000000011102230246251565404236316680908203125";
        size_t o = strlen(half);
        memcpy(big, half, o);
        memset(big + o, '0', 1000);
        o += 1000;
        CHECK(sl_json_num_to_double(big, o) == 1.0);
        big[o++] = '1';
        CHECK(sl_json_num_to_double(big, o) == 0x1.0000000000001p0);
        CHECK(strtod(big, NULL) == 0x1.0000000000001p0);
    }

    int64_t v = 7;
    CHECK_INT(sl_json_num_to_i64("0", 1, &v), 1);
    CHECK_INT(v, 0);
    CHECK_INT(sl_json_num_to_i64("-0", 2, &v), 1);
    CHECK_INT(v, 0);
    CHECK_INT(sl_json_num_to_i64("48213", 5, &v), 1);
    CHECK_INT(v, 48213);
    CHECK_INT(sl_json_num_to_i64("9223372036854775807", 19, &v), 1);
    CHECK_INT(v, INT64_MAX);
    CHECK_INT(sl_json_num_to_i64("-9223372036854775808", 20, &v), 1);
    CHECK_INT(v, INT64_MIN);
    v = 7;
    CHECK_INT(sl_json_num_to_i64("9223372036854775808", 19, &v), 0);
    CHECK_INT(sl_json_num_to_i64("-9223372036854775809", 20, &v), 0);
    CHECK_INT(sl_json_num_to_i64("99999999999999999999999", 23, &v), 0);
    CHECK_INT(sl_json_num_to_i64("1.0", 3, &v), 0);
    CHECK_INT(sl_json_num_to_i64("1e2", 3, &v), 0);
    CHECK_INT(sl_json_num_to_i64("-", 1, &v), 0);
    CHECK_INT(v, 7);
}

static void test_values(void)
{
    const char *doc = "{\"n\":19.99,\"i\":-3,\"s\":\"h\\u00e9\",\"a\\u0062\":[1,\"two\",{}],"
                      "\"o\":{\"x\":null,\"y\":true},\"f\":false,\"big\":1e400}";
    struct sl_tape t;
    struct sl_json_error e;
    struct sl_value root, v, w;
    REQUIRE(parse_n(doc, strlen(doc), 0, &t, &e) == SL_OK);
    REQUIRE(sl_value_from_tape(&t, 0, &A, &root) == SL_OK);
    CHECK_INT(root.type, SL_V_OBJECT);
    CHECK_INT(root.is_tape, 1);
    CHECK_INT(sl_value_count(&root), 7);
    CHECK_STR(sl_value_type_name(&root), "object");

    REQUIRE(sl_value_member(&root, "n", 1, &A, &v));
    CHECK_INT(v.type, SL_V_NUMBER);
    CHECK(v.u.num.d == 19.99);
    CHECK_MEM(v.u.num.text, v.len, "19.99");
    CHECK_INT(v.is_int, 0);
    REQUIRE(sl_value_member(&root, "i", 1, &A, &v));
    CHECK(v.u.num.d == -3.0);
    CHECK_INT(v.is_int, 1);
    REQUIRE(sl_value_member(&root, "s", 1, &A, &v));
    CHECK_MEM(v.u.str, v.len, "h\xc3\xa9");
    /* The key was written with an escape; lookups compare decoded keys. */
    REQUIRE(sl_value_member(&root, "ab", 2, &A, &v));
    CHECK_INT(v.type, SL_V_ARRAY);
    CHECK_INT(sl_value_count(&v), 3);
    CHECK(!sl_value_member(&root, "a", 1, &A, &w));
    CHECK(!sl_value_member(&root, "abc", 3, &A, &w));
    CHECK(!sl_value_member(&v, "x", 1, &A, &w)); /* not an object */
    CHECK_INT(sl_value_index(&v, 1, &A, &w), SL_OK);
    CHECK_MEM(w.u.str, w.len, "two");
    CHECK_INT(sl_value_index(&v, 3, &A, &w), SL_ENOENT);
    CHECK_INT(sl_value_index(&root, 0, &A, &w), SL_ETYPE);
    REQUIRE(sl_value_member(&root, "big", 3, &A, &v));
    CHECK(isinf(v.u.num.d));
    CHECK_INT(v.is_int, 0);

    /* Materialize one level: children stay tape-backed. */
    REQUIRE(sl_value_member(&root, "o", 1, &A, &v));
    struct sl_value m;
    REQUIRE(sl_value_materialize(&v, &A, &m) == SL_OK);
    CHECK_INT(m.is_tape, 0);
    CHECK_INT(m.len, 2);
    CHECK_MEM(m.u.members[0].key, m.u.members[0].klen, "x");
    CHECK_INT(m.u.members[0].val.type, SL_V_NULL);
    CHECK_MEM(m.u.members[1].key, m.u.members[1].klen, "y");
    CHECK_INT(m.u.members[1].val.type, SL_V_BOOL);
    CHECK(sl_value_equal(&v, &m));
    struct sl_value root_m;
    REQUIRE(sl_value_materialize(&root, &A, &root_m) == SL_OK);
    CHECK_MEM(root_m.u.members[3].key, root_m.u.members[3].klen, "ab");
    CHECK_INT(root_m.u.members[3].val.is_tape, 1);
    CHECK(sl_value_equal(&root, &root_m));

    /* Writing: tape parts as spans, materialized parts serialized. */
    struct sl_buf b;
    sl_buf_init(&b, 0);
    CHECK_INT(sl_value_write(&root_m, &b), SL_OK);
    /* Materialized keys and strings are decoded, so they come back re-escaped minimally. */
    CHECK_MEM(b.data, b.len,
              "{\"n\":19.99,\"i\":-3,\"s\":\"h\xc3\xa9\",\"ab\":[1,\"two\",{}],"
              "\"o\":{\"x\":null,\"y\":true},\"f\":false,\"big\":1e400}");
    sl_buf_clear(&b);
    root_m.u.members[2].val = sl_value_string("tab\there", 8);
    root_m.u.members[0].val = sl_value_number(0.5);
    root_m.len = 3;
    CHECK_INT(sl_value_write(&root_m, &b), SL_OK);
    CHECK_MEM(b.data, b.len, "{\"n\":0.5,\"i\":-3,\"s\":\"tab\\there\"}");
    sl_buf_fini(&b);
}

static void test_equal_truthy(void)
{
    struct sl_tape t1, t2;
    struct sl_json_error e;
    struct sl_value x, y;
    const char *d1 = "{\"a\":[1,2.0,\"x\"],\"b\":{\"c\":null}}";
    const char *d2 = "{\"b\":{\"c\":null},\"a\":[1.0,2,\"\\u0078\"]}";
    const char *d3 = "{\"b\":{\"c\":null},\"a\":[1.0,2,\"y\"]}";
    REQUIRE(parse_n(d1, strlen(d1), 0, &t1, &e) == SL_OK);
    REQUIRE(parse_n(d2, strlen(d2), 0, &t2, &e) == SL_OK);
    REQUIRE(sl_value_from_tape(&t1, 0, &A, &x) == SL_OK);
    REQUIRE(sl_value_from_tape(&t2, 0, &A, &y) == SL_OK);
    CHECK(sl_value_equal(&x, &y));
    struct sl_tape t3;
    REQUIRE(parse_n(d3, strlen(d3), 0, &t3, &e) == SL_OK);
    REQUIRE(sl_value_from_tape(&t3, 0, &A, &y) == SL_OK);
    CHECK(!sl_value_equal(&x, &y));
    struct sl_value a = sl_value_number(1), b = sl_value_string("1", 1);
    CHECK(!sl_value_equal(&a, &b));
    struct sl_value n0 = sl_value_number(0.0), nm0 = sl_value_number(-0.0);
    CHECK(sl_value_equal(&n0, &nm0));

    struct sl_value v = sl_value_null();
    CHECK(!sl_value_truthy(&v));
    v = sl_value_bool(0);
    CHECK(!sl_value_truthy(&v));
    v = sl_value_bool(5);
    CHECK(sl_value_truthy(&v));
    CHECK_INT(v.u.b, 1);
    v = sl_value_number(0);
    CHECK(!sl_value_truthy(&v));
    v = sl_value_number(NAN);
    CHECK(!sl_value_truthy(&v));
    v = sl_value_number(-0.5);
    CHECK(sl_value_truthy(&v));
    v = sl_value_string("", 0);
    CHECK(!sl_value_truthy(&v));
    v = sl_value_string("0", 1);
    CHECK(sl_value_truthy(&v));
    CHECK(parses("[]"));
    REQUIRE(parse_n("[]", 2, 0, &t1, &e) == SL_OK);
    REQUIRE(sl_value_from_tape(&t1, 0, &A, &v) == SL_OK);
    CHECK(sl_value_truthy(&v));
    CHECK_STR(sl_value_type_name(&v), "array");
}

/* Parse doc with SL_JSON_REJECT_DUPLICATES; expect a duplicate_key failure at off/path. */
static void check_dup(const char *doc, size_t off, const char *want_path, const char *frag)
{
    struct sl_tape t;
    struct sl_json_error e;
    memset(&e, 0, sizeof e);
    sl_json_parser_set_flags(P, SL_JSON_REJECT_DUPLICATES);
    CHECK_INT(parse_n(doc, strlen(doc), 0, &t, &e), SL_EPARSE);
    sl_json_parser_set_flags(P, 0);
    CHECK_INT(e.offset, off);
    CHECK_STR(e.rule, "duplicate_key");
    CHECK_STR(e.path, want_path);
    if (!strstr(e.msg, frag)) {
        test_failures++;
        fprintf(stderr, "%s:%d: message \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, e.msg, frag);
    }
    /* Without the flag the same document parses. */
    CHECK_INT(parse_n(doc, strlen(doc), 0, &t, &e), SL_OK);
}

static void test_duplicate_keys(void)
{
    check_dup("{\"a\":1,\"b\":2,\"a\":3}", 13, "$.a", "duplicate key \"a\" at $.a");
    check_dup("{\"x\":{\"os\":1,\"os\":2}}", 13, "$.x.os", "duplicate key \"os\" at $.x.os");
    check_dup("[0,{\"k\":[{\"q\":1},{\"z\":1,\"z\":2}]}]", 24, "$[1].k[1].z", "at $[1].k[1].z");
    check_dup("{\"odd key\":{\"a b\":1,\"a b\":2}}", 20, "$[\"odd key\"][\"a b\"]", "\"a b\"");
    check_dup("{\"a\":1,\"\\u0061\":2}", 7, "$[\"\\u0061\"]", "duplicate key \"\\u0061\"");
    check_dup("{\"\":1,\"\":2}", 6, "$[\"\"]", "duplicate key \"\"");
    /* The first repetition in document order is reported. */
    check_dup("{\"a\":{\"b\":1,\"b\":2},\"a\":0}", 12, "$.a.b", "$.a.b");

    /* Many members (a table off the stack) and a long path that must be cut. */
    char big[8192];
    size_t n = (size_t)snprintf(big, sizeof big, "{");
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "\"k%d\":%d,", i, i);
    size_t off = n;
    snprintf(big + n, sizeof big - n, "\"k299\":0}");
    check_dup(big, off, "$.k299", "duplicate key \"k299\"");
    char deep[600];
    n = 0;
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"level_%02d_key\":", i);
    off = n + 7;
    n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"k\":1,\"k\":2}");
    for (int i = 0; i < 20; i++)
        deep[n++] = '}';
    deep[n] = 0;
    struct sl_tape t;
    struct sl_json_error e;
    sl_json_parser_set_flags(P, SL_JSON_REJECT_DUPLICATES);
    CHECK_INT(parse_n(deep, n, 0, &t, &e), SL_EPARSE);
    CHECK_INT(e.offset, off);
    CHECK_INT(strlen(e.path), 127);
    CHECK(strncmp(e.path, "$.level_00_key.level_01_key.", 28) == 0);
    CHECK(strcmp(e.path + 124, "...") == 0);

    /* Accepted with the flag: same key in different objects, keys differing by escapes. */
    CHECK(parses("{\"a\":{\"a\":1},\"b\":[{\"a\":1},{\"a\":2}],\"c\\n\":1,\"c\":2}"));
    CHECK(parses("[1,2,1]"));
    sl_json_parser_set_flags(P, 0);
}

int main(void)
{
    sl_arena_init(&A, 0);
    if (sl_json_parser_create(&P))
        return 1;
    RUN(test_tape_layout);
    RUN(test_whitespace_and_scalars);
    RUN(test_structure_errors);
    RUN(test_number_errors);
    RUN(test_string_errors);
    RUN(test_utf8_errors);
    RUN(test_depth);
    RUN(test_limit);
    RUN(test_many_tokens_reuse);
    RUN(test_decode_strings);
    RUN(test_write_str);
    RUN(test_write_double);
    RUN(test_numbers);
    RUN(test_values);
    RUN(test_equal_truthy);
    RUN(test_duplicate_keys);
    sl_json_parser_destroy(P);
    sl_arena_fini(&A);
    return TEST_DONE();
}
