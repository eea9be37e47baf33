/*
 * test_contract.c - contracts: loading, every keyword valid and invalid (exact paths,
 * rules, expected and actual texts), load errors, $ref, formats, Unicode lengths,
 * patterns, edited records, fields, and the compatibility table in
 * tests/data/contracts/compat/<case>/{old.json,new.json,expect}: expect holds every change
 * as "PATH: REASON [modes it breaks]" and a last line with the verdict per mode.
 * SLUICE_UPDATE_EXPECT=1 rewrites the expect files from the current output (review the
 * diff before keeping it).
 */
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "contract/contract_internal.h"
#include "sluice/alloc.h"
#include "sluice/batch.h"
#include "sluice/buf.h"
#include "sluice/contract.h"
#include "sluice/json.h"
#include "sluice/record.h"
#include "test.h"

static struct sl_json_parser *parser;
static char got[8192];

static struct sl_contract *load(const char *schema)
{
    struct sl_contract *c = NULL;
    struct sl_error err;
    sl_error_clear(&err);
    if (sl_contract_load_mem(schema, strlen(schema), "t.json", &c, &err)) {
        fprintf(stderr, "load failed: %s\n", err.msg);
        return NULL;
    }
    return c;
}

/* The load error message, or "OK". */
static const char *load_err(const char *schema)
{
    static char msg[SL_ERROR_MSG_MAX + 32];
    struct sl_contract *c = NULL;
    struct sl_error err;
    sl_error_clear(&err);
    sl_rc rc = sl_contract_load_mem(schema, strlen(schema), "t.json", &c, &err);
    if (rc == SL_OK) {
        sl_contract_destroy(c);
        return "OK";
    }
    snprintf(msg, sizeof msg, "%s %s", sl_rc_name(rc), err.msg);
    return msg;
}

/*
 * Validate record text against c: "" when valid, else the violations as
 * "PATH RULE expected=E actual=A" joined by "; ", and "+N" when more were found than
 * returned (max 8).
 */
static const char *check_rec(struct sl_contract *c, const char *json)
{
    struct sl_arena a;
    sl_arena_init(&a, 0);
    struct sl_record r;
    memset(&r, 0, sizeof r);
    r.text = r.orig = json;
    r.text_len = r.orig_len = (uint32_t)strlen(json);
    struct sl_json_error jerr;
    if (sl_record_parse(&r, parser, 0, &a, &jerr)) {
        snprintf(got, sizeof got, "bad JSON: %s", jerr.msg);
        sl_arena_fini(&a);
        return got;
    }
    struct sl_violation v[8];
    size_t n = sl_contract_validate(c, &r, &a, v, 8);
    got[0] = '\0';
    size_t w = 0;
    for (size_t i = 0; i < n && i < 8; i++)
        w += (size_t)snprintf(got + w, sizeof got - w, "%s%s %s expected=%s actual=%s",
                              i ? "; " : "", v[i].path, v[i].rule, v[i].expected, v[i].actual);
    if (n > 8)
        snprintf(got + w, sizeof got - w, " +%zu", n - 8);
    sl_arena_fini(&a);
    return got;
}

static const char *validate1(const char *schema, const char *json)
{
    struct sl_contract *c = load(schema);
    if (!c)
        return "load failed";
    check_rec(c, json);
    sl_contract_destroy(c);
    return got;
}

#define HDR "{\"$id\":\"t\",\"version\":1,"

static void test_identity(void)
{
    struct sl_contract *c = load(HDR "\"type\":\"object\"}");
    REQUIRE(c);
    CHECK_STR(sl_contract_name(c), "t");
    CHECK_STR(sl_contract_version(c), "1");
    CHECK_STR(sl_contract_label(c), "t@1");
    size_t len;
    CHECK_MEM(sl_contract_text(c, &len), len, HDR "\"type\":\"object\"}");
    sl_contract_destroy(c);
    c = load("{\"$id\":\"click_event\",\"version\":\"2.1\"}");
    REQUIRE(c);
    CHECK_STR(sl_contract_label(c), "click_event@2.1");
    sl_contract_destroy(c);
    CHECK_STR(load_err("{\"version\":1}"),
              "SL_ECONFIG t.json: #: missing $id: every contract needs \"$id\" (its name) and "
              "\"version\"");
    CHECK_STR(load_err("{\"$id\":\"a\"}"),
              "SL_ECONFIG t.json: #: missing version: every contract needs \"$id\" (its name) "
              "and \"version\" (a string or an integer)");
    CHECK_STR(load_err("{\"$id\":\"a\",\"version\":1.5}"),
              "SL_ECONFIG t.json: #/version: version must be a string or an integer, not a "
              "number");
    CHECK_STR(load_err("{\"$id\":\"a\",\n\"version\":1,}"),
              "SL_EPARSE t.json:2:13: not valid JSON: trailing comma before '}' (JSON allows no "
              "comma after the last member)");
    CHECK_STR(load_err("[1]"), "SL_ECONFIG t.json: #: a contract must be a JSON object with $id "
                               "and version, not an array");
    struct sl_error err;
    CHECK_INT(sl_contract_load("/nonexistent/c.json", &c, &err), SL_ENOENT);
    CHECK(strstr(err.msg, "cannot open contract /nonexistent/c.json") != NULL);
}

static void test_unsupported(void)
{
    CHECK_STR(load_err(HDR "\"properties\":{\"user\":{\"oneOf\":[{\"type\":\"string\"}]}}}"),
              "SL_ECONFIG t.json: #/properties/user/oneOf: keyword \"oneOf\" is not supported "
              "by sluice contracts; supported: type, properties, required, "
              "additionalProperties, enum, const, minimum, maximum, exclusiveMinimum, "
              "exclusiveMaximum, minLength, maxLength, pattern, format, items, minItems, "
              "maxItems, $ref, $defs, and the annotations $schema, $id, title, description, "
              "$comment, default, examples");
    const char *e = load_err(HDR "\"propertys\":{}}");
    CHECK(strncmp(e, "SL_ECONFIG t.json: #/propertys: unknown keyword \"propertys\"", 57) == 0);
    e = load_err(HDR "\"items\":{\"uniqueItems\":true}}");
    CHECK(strstr(e, "SL_ECONFIG t.json: #/items/uniqueItems: keyword \"uniqueItems\" is not "
                    "supported by sluice contracts") == e);
    /* A key with / and ~ is escaped in the pointer. */
    e = load_err(HDR "\"properties\":{\"a/b~c\":{\"x\":1}}}");
    CHECK(strncmp(e, "SL_ECONFIG t.json: #/properties/a~1b~0c/x: unknown keyword", 58) == 0);
    /* Wrong value types. */
    CHECK_STR(load_err(HDR "\"type\":\"text\"}"),
              "SL_ECONFIG t.json: #/type: unknown type \"text\"; the types are null, boolean, "
              "integer, number, string, array and object");
    CHECK_STR(load_err(HDR "\"type\":[\"string\",\"string\"]}"),
              "SL_ECONFIG t.json: #/type/1: type \"string\" is listed twice");
    CHECK_STR(load_err(HDR "\"minLength\":-1}"),
              "SL_ECONFIG t.json: #/minLength: minLength must be a non-negative integer, not -1");
    CHECK_STR(load_err(HDR "\"maxItems\":1.5}"),
              "SL_ECONFIG t.json: #/maxItems: maxItems must be a non-negative integer, not 1.5");
    CHECK_STR(load_err(HDR "\"minItems\":2.0}"), "OK");
    CHECK_STR(load_err(HDR "\"minimum\":\"0\"}"),
              "SL_ECONFIG t.json: #/minimum: minimum must be a number, not a string");
    CHECK_STR(load_err(HDR "\"required\":[\"a\",1]}"),
              "SL_ECONFIG t.json: #/required/1: required names must be strings, not a number");
    CHECK_STR(load_err(HDR "\"required\":\"a\"}"),
              "SL_ECONFIG t.json: #/required: required must be an array of property names, not "
              "a string");
    CHECK_STR(load_err(HDR "\"enum\":[]}"),
              "SL_ECONFIG t.json: #/enum: enum must be a non-empty array of values, not an "
              "empty array");
    CHECK_STR(load_err(HDR "\"properties\":[]}"),
              "SL_ECONFIG t.json: #/properties: properties must be an object of schemas, not an "
              "array");
    CHECK_STR(load_err(HDR "\"properties\":{\"a\":3}}"),
              "SL_ECONFIG t.json: #/properties/a: a schema must be an object or a boolean, not a "
              "number");
    CHECK_STR(load_err(HDR "\"format\":\"hostname\"}"),
              "SL_ECONFIG t.json: #/format: format \"hostname\" is not supported; the formats "
              "are date-time, date, email, uuid, ipv4 and uri");
    CHECK_STR(load_err(HDR "\"items\":[{}]}"),
              "SL_ECONFIG t.json: #/items: items must be one schema (the array form is the older "
              "tuple syntax, prefixItems in 2020-12, which is not supported)");
    CHECK_STR(load_err(HDR "\"exclusiveMinimum\":true}"),
              "SL_ECONFIG t.json: #/exclusiveMinimum: exclusiveMinimum must be a number (the "
              "boolean form is draft-04 syntax; write exclusiveMinimum: N instead of minimum: N)");
    CHECK_STR(load_err(HDR "\"title\":5}"),
              "SL_ECONFIG t.json: #/title: title must be a string, not a number");
    CHECK_STR(load_err(HDR "\"type\":\"object\",\"type\":\"string\"}"),
              "SL_ECONFIG t.json: #/type: keyword \"type\" appears twice");
    CHECK_STR(load_err(HDR "\"properties\":{\"a\":{\"$id\":\"x\"}}}"),
              "SL_ECONFIG t.json: #/properties/a/$id: $id is allowed only at the root of the "
              "contract");
    CHECK_STR(load_err(HDR "\"properties\":{\"a\":{\"version\":2}}}"),
              "SL_ECONFIG t.json: #/properties/a/version: version is allowed only at the root of "
              "the contract");
    /* Annotations are accepted. */
    CHECK_STR(load_err(HDR "\"$schema\":\"https://json-schema.org/draft/2020-12/schema\","
                           "\"title\":\"T\",\"description\":\"d\",\"$comment\":\"c\","
                           "\"default\":{},\"examples\":[{}]}"),
              "OK");
}

static void test_type(void)
{
    const char *s = HDR "\"type\":\"object\",\"properties\":{"
                        "\"n\":{\"type\":\"number\"},\"i\":{\"type\":\"integer\"},"
                        "\"s\":{\"type\":\"string\"},\"b\":{\"type\":\"boolean\"},"
                        "\"z\":{\"type\":\"null\"},\"a\":{\"type\":\"array\"},"
                        "\"o\":{\"type\":\"object\"},\"sn\":{\"type\":[\"string\",\"null\"]}}}";
    struct sl_contract *c = load(s);
    REQUIRE(c);
    CHECK_STR(check_rec(c, "{\"n\":1.5,\"i\":3,\"s\":\"x\",\"b\":false,\"z\":null,\"a\":[],"
                           "\"o\":{},\"sn\":null}"),
              "");
    CHECK_STR(check_rec(c, "{\"i\":1.0,\"sn\":\"x\"}"), ""); /* 1.0 is an integer */
    CHECK_STR(check_rec(c, "{\"i\":1e2,\"n\":7}"), "");
    CHECK_STR(check_rec(c, "{\"n\":\"12a\"}"), "$.n type expected=number actual=string \"12a\"");
    CHECK_STR(check_rec(c, "{\"i\":1.5}"), "$.i type expected=integer actual=number 1.5");
    CHECK_STR(check_rec(c, "{\"s\":5,\"b\":\"true\",\"z\":0,\"a\":{},\"o\":[1],\"sn\":1}"),
              "$.s type expected=string actual=number 5; $.b type expected=boolean actual=string "
              "\"true\"; $.z type expected=null actual=number 0; $.a type expected=array "
              "actual=object {}; $.o type expected=object actual=array [1]; $.sn type "
              "expected=string or null actual=number 1");
    CHECK_STR(check_rec(c, "[1]"), "$ type expected=object actual=array [1]");
    sl_contract_destroy(c);
}

static void test_required_additional(void)
{
    const char *s = HDR "\"type\":\"object\",\"required\":[\"id\",\"ts\",\"extra\"],"
                        "\"properties\":{\"id\":{\"type\":\"string\"},\"ts\":{}},"
                        "\"additionalProperties\":false}";
    struct sl_contract *c = load(s);
    REQUIRE(c);
    /* Required but not declared, with additionalProperties false: unsatisfiable, and said. */
    CHECK_STR(check_rec(c, "{\"id\":\"a\",\"ts\":1}"),
              "$.extra required expected=present actual=missing");
    CHECK_STR(check_rec(c, "{\"id\":\"a\",\"ts\":1,\"extra\":2}"),
              "$.extra additionalProperties expected=no undeclared property actual=number 2");
    sl_contract_destroy(c);
    s = HDR "\"type\":\"object\",\"required\":[\"id\",\"ts\"],"
            "\"properties\":{\"id\":{\"type\":\"string\"},\"ts\":{}},"
            "\"additionalProperties\":false}";
    c = load(s);
    REQUIRE(c);
    CHECK_STR(check_rec(c, "{\"id\":\"a\",\"ts\":1}"), "");
    CHECK_STR(check_rec(c, "{\"ts\":1,\"x\":[1,2],\"odd key\":true}"),
              "$.x additionalProperties expected=no undeclared property actual=array [1,2]; "
              "$[\"odd key\"] additionalProperties expected=no undeclared property "
              "actual=boolean true; $.id required expected=present actual=missing");
    sl_contract_destroy(c);
    /* additionalProperties as a schema */
    c = load(HDR "\"properties\":{\"a\":{}},\"additionalProperties\":{\"type\":\"integer\"}}");
    REQUIRE(c);
    CHECK_STR(check_rec(c, "{\"a\":\"x\",\"b\":1,\"c\":\"2\"}"),
              "$.c type expected=integer actual=string \"2\"");
    sl_contract_destroy(c);
}

static void test_required_escaped_key(void)
{
    struct sl_contract *c = load(HDR "\"required\":[\"é\"],\"properties\":{\"é\":"
                                     "{\"type\":\"integer\"}}}");
    REQUIRE(c);
    CHECK_STR(check_rec(c, "{\"\\u00e9\":1}"), "");
    CHECK_STR(check_rec(c, "{\"\\u00e9\":\"1\"}"),
              "$[\"é\"] type expected=integer actual=string \"1\"");
    CHECK_STR(check_rec(c, "{}"), "$[\"é\"] required expected=present actual=missing");
    sl_contract_destroy(c);
}

static void test_numbers(void)
{
    struct sl_contract *c = load(HDR "\"properties\":{\"a\":{\"minimum\":0,\"maximum\":10},"
                                     "\"b\":{\"exclusiveMinimum\":0,\"exclusiveMaximum\":1.5}}}");
    REQUIRE(c);
    CHECK_STR(check_rec(c, "{\"a\":0,\"b\":1}"), "");
    CHECK_STR(check_rec(c, "{\"a\":10,\"b\":0.1}"), "");
    CHECK_STR(check_rec(c, "{\"a\":-5,\"b\":0}"),
              "$.a minimum expected=>= 0 actual=number -5; $.b exclusiveMinimum expected=> 0 "
              "actual=number 0");
    CHECK_STR(check_rec(c, "{\"a\":10.5,\"b\":1.5}"),
              "$.a maximum expected=<= 10 actual=number 10.5; $.b exclusiveMaximum expected=< "
              "1.5 actual=number 1.5");
    CHECK_STR(check_rec(c, "{\"a\":\"x\",\"b\":null}"), ""); /* only numbers are bounded */
    sl_contract_destroy(c);
}

static void test_strings(void)
{
    struct sl_contract *c = load(HDR "\"properties\":{\"s\":{\"minLength\":2,\"maxLength\":3}}}");
    REQUIRE(c);
    CHECK_STR(check_rec(c, "{\"s\":\"ab\"}"), "");
    CHECK_STR(check_rec(c, "{\"s\":\"héé\"}"), ""); /* 3 code points, 5 bytes */
    CHECK_STR(check_rec(c, "{\"s\":\"\\u00e9\\u00e9\\u00e9\"}"), "");
    CHECK_STR(check_rec(c, "{\"s\":\"😀😀\"}"), ""); /* 2 code points, 8 bytes */
    CHECK_STR(check_rec(c, "{\"s\":\"\\ud83d\\ude00\"}"),
              "$.s minLength expected=at least 2 characters actual=string \"\\ud83d\\ude00\"");
    CHECK_STR(check_rec(c, "{\"s\":\"abcd\"}"),
              "$.s maxLength expected=at most 3 characters actual=string \"abcd\"");
    sl_contract_destroy(c);
}

static void test_enum_const(void)
{
    struct sl_contract *c =
        load(HDR "\"properties\":{\"e\":{\"enum\":[\"a\",1,null,{\"k\":[1,2]}]},"
                 "\"c\":{\"const\":{\"x\":1,\"y\":\"z\"}}}}");
    REQUIRE(c);
    CHECK_STR(check_rec(c, "{\"e\":\"a\",\"c\":{\"y\":\"z\",\"x\":1.0}}"), "");
    CHECK_STR(check_rec(c, "{\"e\":1.0}"), "");
    CHECK_STR(check_rec(c, "{\"e\":{\"k\":[1,2]}}"), "");
    CHECK_STR(check_rec(c, "{\"e\":\"\\u0061\"}"), "");
    CHECK_STR(check_rec(c, "{\"e\":\"b\",\"c\":{\"x\":1}}"),
              "$.e enum expected=one of [\"a\", 1, null, {\"k\":[1,2]}] actual=string \"b\"; $.c "
              "const expected={\"x\":1,\"y\":\"z\"} actual=object {\"x\":1}");
    CHECK_STR(check_rec(c, "{\"e\":{\"k\":[2,1]}}"),
              "$.e enum expected=one of [\"a\", 1, null, {\"k\":[1,2]}] actual=object "
              "{\"k\":[2,1]}");
    sl_contract_destroy(c);
}

static void test_arrays(void)
{
    struct sl_contract *c = load(HDR "\"properties\":{\"t\":{\"type\":\"array\",\"minItems\":1,"
                                     "\"maxItems\":3,\"items\":{\"type\":\"string\","
                                     "\"maxLength\":2}}}}");
    REQUIRE(c);
    CHECK_STR(check_rec(c, "{\"t\":[\"a\",\"bb\"]}"), "");
    CHECK_STR(check_rec(c, "{\"t\":[]}"), "$.t minItems expected=at least 1 item actual=0 items");
    CHECK_STR(check_rec(c, "{\"t\":[\"a\",1,\"ccc\",\"d\"]}"),
              "$.t maxItems expected=at most 3 items actual=4 items; $.t[1] type "
              "expected=string actual=number 1; $.t[2] maxLength expected=at most 2 characters "
              "actual=string \"ccc\"");
    sl_contract_destroy(c);
}

static void test_nested(void)
{
    struct sl_contract *c =
        load(HDR "\"type\":\"object\",\"properties\":{\"user\":{\"type\":\"object\","
                 "\"required\":[\"id\"],\"properties\":{\"id\":{\"type\":\"integer\"},"
                 "\"tags\":{\"items\":{\"type\":\"object\",\"properties\":{\"k\":"
                 "{\"enum\":[\"x\"]}}}}}}}}");
    REQUIRE(c);
    CHECK_STR(check_rec(c, "{\"user\":{\"id\":1,\"tags\":[{\"k\":\"x\"}]}}"), "");
    CHECK_STR(check_rec(c, "{\"user\":{\"tags\":[{\"k\":\"x\"},{\"k\":\"y\"},3]}}"),
              "$.user.tags[1].k enum expected=one of [\"x\"] actual=string \"y\"; "
              "$.user.tags[2] type expected=object actual=number 3; $.user.id required "
              "expected=present actual=missing");
    sl_contract_destroy(c);
}

static void test_ref(void)
{
    const char *s = HDR "\"$defs\":{\"id\":{\"type\":\"string\",\"minLength\":3},"
                        "\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"$ref\":"
                        "\"#/$defs/id\"},\"kids\":{\"items\":{\"$ref\":\"#/$defs/node\"}}}},"
                        "\"a/b\":{\"const\":1}},"
                        "\"properties\":{\"root\":{\"$ref\":\"#/$defs/node\"},"
                        "\"x\":{\"$ref\":\"#/$defs/a~1b\"}}}";
    struct sl_contract *c = load(s);
    REQUIRE(c);
    CHECK_STR(check_rec(c, "{\"root\":{\"v\":\"abc\",\"kids\":[{\"v\":\"def\",\"kids\":[]}]},"
                           "\"x\":1}"),
              "");
    CHECK_STR(check_rec(c, "{\"root\":{\"v\":\"abc\",\"kids\":[{\"v\":\"d\",\"kids\":[{\"v\":"
                           "5}]}]},\"x\":2}"),
              "$.root.kids[0].v minLength expected=at least 3 characters actual=string \"d\"; "
              "$.root.kids[0].kids[0].v type expected=string actual=number 5; $.x const "
              "expected=1 actual=number 2");
    sl_contract_destroy(c);
    CHECK_STR(load_err(HDR "\"$ref\":\"#/$defs/nope\"}"),
              "SL_ECONFIG t.json: #/$ref: $ref \"#/$defs/nope\": there is no $defs entry \"nope\"");
    CHECK_STR(load_err(HDR "\"$ref\":\"other.json#/x\"}"),
              "SL_ECONFIG t.json: #/$ref: $ref \"other.json#/x\" is not supported: only local "
              "references \"#\" and \"#/$defs/NAME\" are");
    CHECK_STR(load_err(HDR "\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},\"b\":{\"$ref\":"
                           "\"#/$defs/a\"}}}"),
              "SL_ECONFIG t.json: #/$defs/a: $ref \"#/$defs/b\" leads back to itself through "
              "references alone; such a schema would be applied to the same value forever");
    CHECK_STR(load_err(HDR "\"$ref\":\"#\"}"),
              "SL_ECONFIG t.json: #: $ref \"#\" leads back to itself through references alone; "
              "such a schema would be applied to the same value forever");
    CHECK_STR(load_err(HDR "\"items\":{\"$ref\":\"#\"}}"), "OK"); /* consumes input */
    CHECK_STR(load_err(HDR "\"properties\":{\"a\":{\"$defs\":{}}}}"),
              "SL_ECONFIG t.json: #/properties/a/$defs: $defs is supported only at the root of "
              "the contract (where \"#/$defs/NAME\" refers)");
}

static void test_formats(void)
{
    struct {
        const char *fmt, *ok, *bad;
    } cases[] = {
        {"date-time", "2026-11-27T10:00:00.123Z", "2026-11-27 10:00:00Z"},
        {"date-time", "2024-02-29T23:59:60+01:00", "2023-02-29T10:00:00Z"},
        {"date-time", "2026-01-01t00:00:00z", "2026-01-01T24:00:00Z"},
        {"date-time", "2026-01-01T00:00:00-23:59", "2026-01-01T00:00:00"},
        {"date", "2000-02-29", "1900-02-29"},
        {"date", "2026-12-31", "2026-13-01"},
        {"email", "a.b+c@example.co.uk", "user@localhost"},
        {"email", "x@e.org", "a..b@example.com"},
        {"email", "\u00e9@b\u00fccher.de", "a b@example.com"},
        {"email", "q@a-b.c", "a@-ab.com"},
        {"uuid", "123e4567-E89b-12d3-a456-426614174000", "123e4567e89b12d3a456426614174000"},
        {"ipv4", "192.168.0.255", "192.168.0.256"},
        {"ipv4", "0.0.0.0", "01.2.3.4"},
        {"ipv4", "1.2.3.4", "1.2.3"},
        {"uri", "https://example.com/a?b=c#d", "/relative/path"},
        {"uri", "urn:isbn:0451450523", "http://exa mple.com"},
        {"uri", "mailto:a@b.c", "http://x/%zz"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char schema[256], rec[256], want[512];
        snprintf(schema, sizeof schema, HDR "\"properties\":{\"f\":{\"format\":\"%s\"}}}",
                 cases[i].fmt);
        struct sl_contract *c = load(schema);
        REQUIRE(c);
        snprintf(rec, sizeof rec, "{\"f\":\"%s\"}", cases[i].ok);
        if (strcmp(check_rec(c, rec), "") != 0) {
            fprintf(stderr, "format %s rejected %s: %s\n", cases[i].fmt, cases[i].ok, got);
            CHECK(0);
        }
        snprintf(rec, sizeof rec, "{\"f\":\"%s\"}", cases[i].bad);
        snprintf(want, sizeof want, "$.f format expected=%s actual=string \"%s\"", cases[i].fmt,
                 cases[i].bad);
        CHECK_STR(check_rec(c, rec), want);
        CHECK_STR(check_rec(c, "{\"f\":5}"), ""); /* formats apply to strings only */
        sl_contract_destroy(c);
    }
}

static void test_patterns(void)
{
    struct {
        const char *pattern, *ok, *bad;
    } cases[] = {
        {"^[a-z]+$", "abc", "abC"},
        {"b", "abc", "xyz"},                         /* unanchored search */
        {"^\\\\d{3}-\\\\d{2}$", "123-45", "12a-45"}, /* \d */
        {"^\\\\w+$", "a_Z9", "a-b"},
        {"^a\\\\sb$", "a\\u3000b", "a_b"}, /* ECMA white space includes U+3000 */
        {"^\\\\S+$", "ab", "a b"},
        {"^(?:ab)+$", "abab", "aba"},
        {"^a+?$", "aaa", ""},
        {"^.{3}$", "h\\u00e9\\u00e9", "he"}, /* . is one character, not one byte */
        {"^a.b$", "axb", "a\\nb"},           /* . does not match a line terminator */
        {"^[\\\\d.]+$", "1.5", "1,5"},
        {"^[^\\\\]x]$", "a", "]"},
        {"^[\\\\^]$", "^", "a"},
        {"^[a\\\\-z]$", "-", "b"},
        {"^\\\\$\\\\.$", "$.", "a."},
        {"^caf\\u00e9$", "caf\\u00e9", "cafe"},
        {"^\\\\u00e9*$", "\\u00e9\\u00e9", "e"},
        {"^[\\u00e9\\u00e8]$", "\\u00e8", "e"},
        {"^a{2}$", "aa", "a"},
        {"x{", "x{", "x"},
        {"^[^x]$", "\\u00e9", "x"},            /* a negated class takes a whole character */
        {"^\\\\D{2}$", "\\u00e9a", "\\u00e9"}, /* counts characters, not bytes */
        {"^[a-z]{2}$", "ab", "\\u00e9"},       /* ASCII-only: run on bytes, same answer */
        {"^(a|)$", "", "b"},
        {"^a{,3}$", "a{,3}", "aaa"}, /* not a quantifier: literal, as in ECMA-262 */
        {"^(?:)x$", "x", "ax"},
        {"^[-a]$", "-", "b"},
        {"^[.]$", ".", "a"},
        {"^[a[.]+$", "a[.", "a[b"},
        {"^[a[^]$", "^", "-"},
        {"^[\\\\^\\\\^]$", "^", "-"},
        {"^[\\\\^-]{2}$", "-^", "a-"},
        {"^[\\\\]]$", "]", "a"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char schema[256], rec[256];
        snprintf(schema, sizeof schema, HDR "\"properties\":{\"p\":{\"pattern\":\"%s\"}}}",
                 cases[i].pattern);
        struct sl_contract *c = load(schema);
        if (!c) {
            fprintf(stderr, "pattern %s failed to load\n", cases[i].pattern);
            CHECK(0);
            continue;
        }
        snprintf(rec, sizeof rec, "{\"p\":\"%s\"}", cases[i].ok);
        if (strcmp(check_rec(c, rec), "") != 0) {
            fprintf(stderr, "pattern %s rejected %s: %s\n", cases[i].pattern, cases[i].ok, got);
            CHECK(0);
        }
        snprintf(rec, sizeof rec, "{\"p\":\"%s\"}", cases[i].bad);
        if (strstr(check_rec(c, rec), " pattern expected=match /") == NULL) {
            fprintf(stderr, "pattern %s accepted %s: %s\n", cases[i].pattern, cases[i].bad, got);
            CHECK(0);
        }
        sl_contract_destroy(c);
    }
    CHECK_STR(validate1(HDR "\"pattern\":\"^[a-z]+$\"}", "\"AB\""),
              "$ pattern expected=match /^[a-z]+$/ actual=string \"AB\"");
    const char *rejected[][2] = {
        {"\\\\bword", "\\b: word boundaries have no POSIX ERE equivalent"},
        {"a(?=b)", "lookahead, lookbehind and named groups ((?= (?! (?<= (?<! (?<name>) have no "
                   "POSIX ERE equivalent"},
        {"a(?!b)", "lookahead, lookbehind and named groups ((?= (?! (?<= (?<! (?<name>) have no "
                   "POSIX ERE equivalent"},
        {"(a)\\\\1", "backreferences (\\1 ...) and \\0 are not supported"},
        {"[[:alpha:]]", "POSIX bracket syntax [: [. [= means something else in JSON Schema "
                        "patterns; write the characters out (e.g. [A-Za-z] for [[:alpha:]])"},
        {"[\\u00e0-\\u00ff]", "ranges of non-ASCII characters are not supported; list the "
                              "characters"},
        {"\\\\p{L}", "\\p: unknown or unsupported escape"},
        {"[\\\\D]", "negated class escapes (\\D \\W \\S) inside [...] have no POSIX equivalent"},
        {"*a", "a quantifier (* + ? {n}) must follow something to repeat"},
        {"[ab", "[ab: unterminated ["},
    };
    for (size_t i = 0; i < sizeof rejected / sizeof rejected[0]; i++) {
        char schema[256], want[1024];
        snprintf(schema, sizeof schema, HDR "\"pattern\":\"%s\"}", rejected[i][0]);
        const char *e = load_err(schema);
        snprintf(want, sizeof want, "SL_ECONFIG t.json: #/pattern: pattern \"");
        CHECK(strncmp(e, want, strlen(want)) == 0);
        if (!strstr(e, rejected[i][1])) {
            fprintf(stderr, "pattern %s: got %s\n", rejected[i][0], e);
            CHECK(0);
        }
    }
}

/*
 * The regexec-free matcher (fastre.c) against regexec on the same pattern, for every
 * string of up to 5 characters over a small alphabet.
 */
static void test_fastre_differential(void)
{
    static const char *const pats[] = {
        "^e-[0-9]{8}$",  "^[A-Z]{3}$",   "a",        "^a*$",     "a+b",   "^a?b?$",     "[ab]{2,3}",
        "^\\d+-\\w*$",   "b$",           "^",        "$",        "",      "^$",         "a{0}",
        "^[a-b0]{1,}0$", "\\x61\\u0062", "[\\-a]+-", "^a{2,}?$", "0*?1?", "[\\d][\\w]", "[ab]{2}-",
        "^ab",           "0-$"};
    static const char alphabet[] = "ab0-AB1_\xC3";
    struct sl_arena a;
    sl_arena_init(&a, 0);
    size_t npat = sizeof pats / sizeof pats[0], compared = 0;
    for (size_t k = 0; k < npat; k++) {
        char *ere, msg[256];
        int chars;
        REQUIRE(sl__contract_pattern_translate(pats[k], strlen(pats[k]), &a, &ere, &chars, msg,
                                               sizeof msg) == 0);
        CHECK_INT(chars, 0);
        struct sl_fastre *f;
        REQUIRE(sl__contract_fastre_compile(pats[k], strlen(pats[k]), &a, &f) == 1);
        regex_t re;
        REQUIRE(sl__contract_regcomp(&re, ere, 0) == 0);
        char s[8];
        size_t na = sizeof alphabet - 1;
        for (size_t len = 0; len <= 5; len++) {
            size_t total = 1;
            for (size_t i = 0; i < len; i++)
                total *= na;
            for (size_t code = 0; code < total; code++) {
                size_t c = code;
                for (size_t i = 0; i < len; i++, c /= na)
                    s[i] = alphabet[c % na];
                s[len] = '\0';
                int want = sl__contract_regsearch(&re, 0, s, len);
                int fast = sl__contract_fastre_match(f, s, len);
                compared++;
                if (want != fast) {
                    fprintf(stderr, "pattern %s on \"%s\": regexec %d, fastre %d\n", pats[k], s,
                            want, fast);
                    CHECK(0);
                    code = total;
                    len = 6;
                }
            }
        }
        regfree(&re);
    }
    CHECK(compared > 1000000);
    /* Not simple: left to regexec. */
    static const char *const not_simple[] = {".",   "a|b", "(a)",   "[^a]", "\\s",
                                             "\\D", "é",   "a{,2}", "\\b"};
    for (size_t k = 0; k < sizeof not_simple / sizeof not_simple[0]; k++) {
        struct sl_fastre *f;
        CHECK_INT(sl__contract_fastre_compile(not_simple[k], strlen(not_simple[k]), &a, &f), 0);
    }
    /* Longer than the stack arrays: the caller falls back, except for fixed counts. */
    char big[FASTRE_MAX_LEN + 2];
    memset(big, 'a', sizeof big);
    struct sl_fastre *f;
    REQUIRE(sl__contract_fastre_compile("a+", 2, &a, &f) == 1);
    CHECK_INT(sl__contract_fastre_match(f, big, FASTRE_MAX_LEN), 1);
    CHECK_INT(sl__contract_fastre_match(f, big, FASTRE_MAX_LEN + 1), -1);
    REQUIRE(sl__contract_fastre_compile("ab", 2, &a, &f) == 1);
    big[FASTRE_MAX_LEN + 1] = 'b';
    CHECK_INT(sl__contract_fastre_match(f, big, FASTRE_MAX_LEN + 2), 1);
    CHECK_INT(sl__contract_fastre_match(f, big, FASTRE_MAX_LEN + 1), 0);
    sl_arena_fini(&a);
}

static void test_bool_schemas(void)
{
    CHECK_STR(validate1(HDR "\"properties\":{\"a\":false,\"b\":true}}", "{\"b\":[1],\"a\":1}"),
              "$.a false expected=nothing (the schema is false) actual=number 1");
    CHECK_STR(validate1(HDR "\"items\":false}", "[]"), "");
}

static void test_many_violations(void)
{
    struct sl_contract *c = load(HDR "\"items\":{\"type\":\"string\"}}");
    REQUIRE(c);
    CHECK_STR(check_rec(c, "[1,2,3,4,5,6,7,8,9,10]"),
              "$[0] type expected=string actual=number 1; $[1] type expected=string "
              "actual=number 2; $[2] type expected=string actual=number 3; $[3] type "
              "expected=string actual=number 4; $[4] type expected=string actual=number 5; $[5] "
              "type expected=string actual=number 6; $[6] type expected=string actual=number 7; "
              "$[7] type expected=string actual=number 8 +2");
    /* max 0: only counts */
    struct sl_arena a;
    sl_arena_init(&a, 0);
    struct sl_record r;
    memset(&r, 0, sizeof r);
    r.text = "[1,\"a\",2]";
    r.text_len = 9;
    struct sl_json_error jerr;
    REQUIRE(sl_record_parse(&r, parser, 0, &a, &jerr) == SL_OK);
    CHECK_INT(sl_contract_validate(c, &r, &a, NULL, 0), 2);
    sl_arena_fini(&a);
    /* A long value is shortened in actual. */
    char rec[400];
    memset(rec, 'x', sizeof rec);
    rec[0] = '[';
    rec[1] = '"';
    memcpy(rec + 300, "\"]", 3);
    check_rec(c, "[\"a\"]");
    CHECK_STR(got, "");
    sl_contract_destroy(c);
    c = load(HDR "\"items\":{\"type\":\"number\"}}");
    REQUIRE(c);
    check_rec(c, rec);
    CHECK(strlen(got) < 200);
    CHECK(strstr(got, "$[0] type expected=number actual=string \"xxxx") == got);
    CHECK(strcmp(got + strlen(got) - 3, "...") == 0);
    sl_contract_destroy(c);
}

static void test_edited_record(void)
{
    struct sl_contract *c =
        load(HDR "\"type\":\"object\",\"required\":[\"a\",\"b\"],\"properties\":{\"a\":"
                 "{\"type\":\"integer\"},\"b\":{\"type\":\"string\"},\"d\":{\"type\":\"object\","
                 "\"properties\":{\"os\":{\"enum\":[\"ios\"]}}}},\"additionalProperties\":false}");
    REQUIRE(c);
    struct sl_arena a;
    sl_arena_init(&a, 0);
    struct sl_record r;
    memset(&r, 0, sizeof r);
    r.text = "{\"a\":\"1\",\"x\":1,\"d\":{\"os\":\"android\"}}";
    r.text_len = (uint32_t)strlen(r.text);
    struct sl_json_error jerr;
    REQUIRE(sl_record_parse(&r, parser, 0, &a, &jerr) == SL_OK);
    struct sl_violation v[8];
    CHECK_INT(sl_contract_validate(c, &r, &a, v, 8), 4);
    struct sl_value one = sl_value_number(1), str = sl_value_string("s", 1),
                    ios = sl_value_string("ios", 3);
    REQUIRE(sl_record_set_key(&r, "a", 1, &one, &a) == SL_OK);
    REQUIRE(sl_record_set_key(&r, "b", 1, &str, &a) == SL_OK);
    struct sl_path p;
    struct sl_error err;
    REQUIRE(sl_path_parse("x", 1, &a, &p, NULL, &err) == SL_OK);
    REQUIRE(sl_record_del(&r, &p, &a) == SL_OK);
    CHECK_INT(sl_contract_validate(c, &r, &a, v, 8), 1);
    CHECK_STR(v[0].path, "$.d.os");
    CHECK_STR(v[0].rule, "enum");
    CHECK_STR(v[0].actual, "string \"android\"");
    REQUIRE(sl_path_parse("d.os", 4, &a, &p, NULL, &err) == SL_OK);
    REQUIRE(sl_record_set(&r, &p, &ios, &a) == SL_OK);
    CHECK_INT(sl_contract_validate(c, &r, &a, v, 8), 0);
    struct sl_value s2 = sl_value_string("2", 1);
    REQUIRE(sl_record_set_key(&r, "a", 1, &s2, &a) == SL_OK);
    CHECK_INT(sl_contract_validate(c, &r, &a, v, 8), 1);
    CHECK_STR(v[0].path, "$.a");
    CHECK_STR(v[0].actual, "string \"2\"");
    sl_arena_fini(&a);
    sl_contract_destroy(c);
}

static void test_fields(void)
{
    struct sl_contract *c =
        load(HDR "\"$defs\":{\"money\":{\"type\":[\"number\",\"null\"]}},"
                 "\"required\":[\"id\"],\"properties\":{\"id\":{\"type\":\"integer\"},"
                 "\"amount\":{\"$ref\":\"#/$defs/money\"},\"name\":{\"type\":\"string\"},"
                 "\"ok\":{\"type\":\"boolean\"},\"tags\":{\"type\":\"array\"},"
                 "\"dev\":{\"type\":\"object\"},\"kind\":{\"enum\":[\"a\",\"b\",null]},"
                 "\"mixed\":{\"type\":[\"string\",\"integer\"]},\"free\":{}}}");
    REQUIRE(c);
    const struct sl_contract_field *f;
    size_t n = sl_contract_fields(c, &f);
    REQUIRE(n == 9);
    const char *want[][4] = {
        {"id", "integer", "1", "0"},  {"amount", "number", "0", "1"}, {"name", "string", "0", "0"},
        {"ok", "boolean", "0", "0"},  {"tags", "array", "0", "0"},    {"dev", "object", "0", "0"},
        {"kind", "string", "0", "1"}, {"mixed", "any", "0", "0"},     {"free", "any", "0", "1"}};
    for (size_t i = 0; i < n; i++) {
        CHECK_STR(f[i].name, want[i][0]);
        CHECK_STR(f[i].type, want[i][1]);
        CHECK_INT(f[i].required, want[i][2][0] - '0');
        CHECK_INT(f[i].nullable, want[i][3][0] - '0');
    }
    sl_contract_destroy(c);
    c = load(HDR "\"type\":\"array\"}");
    REQUIRE(c);
    CHECK_INT(sl_contract_fields(c, &f), 0);
    sl_contract_destroy(c);
}

/* ---- compatibility table ------------------------------------------------------------------ */

struct collect {
    struct sl_buf b;
};

static int on_change(void *ctx, const struct sl_contract_change *ch)
{
    struct collect *c = ctx;
    const char *br = ch->breaks == 3   ? "backward,forward"
                     : ch->breaks == 1 ? "backward"
                     : ch->breaks == 2 ? "forward"
                                       : "none";
    return sl_buf_printf(&c->b, "%s: %s [%s]\n", ch->path, ch->reason, br) != SL_OK;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strdup(buf);
}

static void test_compat_table(void)
{
    const char *src = getenv("SLUICE_SRC");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/data/contracts/compat", src ? src : ".");
    DIR *d = opendir(dir);
    REQUIRE(d);
    struct dirent *e;
    int cases = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char po[4400], pn[4400], pe[4400];
        snprintf(po, sizeof po, "%s/%s/old.json", dir, e->d_name);
        snprintf(pn, sizeof pn, "%s/%s/new.json", dir, e->d_name);
        snprintf(pe, sizeof pe, "%s/%s/expect", dir, e->d_name);
        struct sl_contract *o = NULL, *n = NULL;
        struct sl_error err;
        char *expect = slurp(pe);
        if (!expect || sl_contract_load(po, &o, &err) || sl_contract_load(pn, &n, &err)) {
            fprintf(stderr, "compat case %s: cannot load: %s\n", e->d_name, err.msg);
            CHECK(0);
            free(expect);
            sl_contract_destroy(o);
            continue;
        }
        struct collect c;
        sl_buf_init(&c.b, 0);
        int inc[4] = {0, 0, 0, 0};
        for (int mode = 1; mode <= 3; mode++) {
            sl_buf_clear(&c.b);
            CHECK_INT(sl_contract_compare(o, n, (enum sl_compat_mode)mode, on_change, &c,
                                          &inc[mode], &err),
                      SL_OK);
        }
        sl_buf_printf(&c.b, "backward=%s forward=%s full=%s\n", inc[1] ? "no" : "yes",
                      inc[2] ? "no" : "yes", inc[3] ? "no" : "yes");
        sl_buf_cstr(&c.b);
        if (getenv("SLUICE_UPDATE_EXPECT")) { /* regenerate the golden files */
            FILE *f = fopen(pe, "w");
            if (f) {
                fputs(c.b.data, f);
                fclose(f);
            }
        } else if (strcmp(c.b.data, expect) != 0) {
            fprintf(stderr, "compat case %s:\n--- expected\n%s--- got\n%s", e->d_name, expect,
                    c.b.data);
            CHECK(0);
        } else {
            CHECK(1);
        }
        cases++;
        sl_buf_fini(&c.b);
        free(expect);
        sl_contract_destroy(o);
        sl_contract_destroy(n);
    }
    closedir(d);
    CHECK(cases >= 10);
}

static int stop_at_first(void *ctx, const struct sl_contract_change *ch)
{
    (void)ch;
    (*(int *)ctx)++;
    return 1;
}

static void test_compare_stop(void)
{
    struct sl_contract *o = load(HDR "\"required\":[\"a\",\"b\"]}");
    struct sl_contract *n = load(HDR "\"required\":[]}");
    REQUIRE(o && n);
    struct sl_error err;
    int inc = 0;
    CHECK_INT(sl_contract_compare(o, n, SL_COMPAT_BACKWARD, NULL, NULL, &inc, &err), SL_OK);
    CHECK_INT(inc, 0);
    CHECK_INT(sl_contract_compare(o, n, SL_COMPAT_FORWARD, NULL, NULL, &inc, &err), SL_OK);
    CHECK_INT(inc, 1);
    /* A callback that returns non-zero stops the comparison after the first change. */
    int calls = 0;
    CHECK_INT(sl_contract_compare(o, n, SL_COMPAT_FULL, stop_at_first, &calls, &inc, &err),
              SL_ECANCELED);
    CHECK_INT(calls, 1);
    sl_contract_destroy(o);
    sl_contract_destroy(n);
}

/* Each of 40 definitions uses the next twice: 2^40 paths, each pair compared once. */
static struct sl_contract *dag(const char *leaf_type)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_buf_puts(&b, HDR "\"$ref\":\"#/$defs/d0\",\"$defs\":{");
    for (int i = 0; i < 40; i++)
        sl_buf_printf(&b,
                      "\"d%d\":{\"type\":\"object\",\"properties\":{\"l\":{\"$ref\":"
                      "\"#/$defs/d%d\"},\"r\":{\"$ref\":\"#/$defs/d%d\"}}},",
                      i, i + 1, i + 1);
    sl_buf_printf(&b, "\"d40\":{\"type\":\"%s\"}}}", leaf_type);
    sl_buf_cstr(&b);
    struct sl_contract *c = load(b.data);
    sl_buf_fini(&b);
    return c;
}

static int count_calls(void *ctx, const struct sl_contract_change *ch)
{
    (*(int *)ctx)++;
    CHECK(strncmp(ch->path, "$.l.l.l.l.l", 11) == 0);
    CHECK_STR(ch->reason, "type widened from integer to number");
    return 0;
}

static void test_compare_shared_definitions(void)
{
    struct sl_contract *o = dag("integer"), *n = dag("number");
    REQUIRE(o && n);
    struct sl_error err;
    int inc = 0, calls = 0;
    CHECK_INT(sl_contract_compare(o, n, SL_COMPAT_BACKWARD, count_calls, &calls, &inc, &err),
              SL_OK);
    CHECK_INT(inc, 0);
    CHECK_INT(calls, 1);
    CHECK_INT(sl_contract_compare(o, n, SL_COMPAT_FORWARD, NULL, NULL, &inc, &err), SL_OK);
    CHECK_INT(inc, 1);
    sl_contract_destroy(o);
    sl_contract_destroy(n);
}

static void test_alloc_failures(void)
{
    /* Every allocation of a load may fail; each failure is reported, nothing leaks. */
    const char *s = HDR "\"$defs\":{\"d\":{\"type\":\"string\",\"pattern\":\"^a\"}},"
                        "\"properties\":{\"a\":{\"$ref\":\"#/$defs/d\"},\"b\":{\"enum\":[1,2]}},"
                        "\"required\":[\"a\"]}";
    int failed = 0;
    for (long k = 1; k < 400; k++) {
        struct sl_contract *c = NULL;
        struct sl_error err;
        sl_error_clear(&err);
        sl_alloc_fail_at(k);
        sl_rc rc = sl_contract_load_mem(s, strlen(s), "t.json", &c, &err);
        sl_alloc_fail_at(0);
        if (rc == SL_OK) {
            sl_contract_destroy(c);
            break;
        }
        failed++;
        CHECK_INT(rc, SL_ENOMEM);
    }
    CHECK(failed > 3);
    /* Validation whose arena cannot grow says so with (size_t)-1. */
    struct sl_contract *c = load(HDR "\"items\":{\"type\":\"string\"}}");
    REQUIRE(c);
    struct sl_arena a;
    sl_arena_init(&a, 64);
    struct sl_record r;
    memset(&r, 0, sizeof r);
    r.text = "[1,2,3]";
    r.text_len = 7;
    struct sl_json_error jerr;
    REQUIRE(sl_record_parse(&r, parser, 0, &a, &jerr) == SL_OK);
    struct sl_violation v[4];
    sl_alloc_fail_at(1);
    size_t n = sl_contract_validate(c, &r, &a, v, 4);
    sl_alloc_fail_at(0);
    CHECK(n == (size_t)-1);
    CHECK_INT(sl_contract_validate(c, &r, &a, v, 4), 3);
    sl_arena_fini(&a);
    sl_contract_destroy(c);
}

int main(void)
{
    if (sl_json_parser_create(&parser))
        return 2;
    RUN(test_identity);
    RUN(test_unsupported);
    RUN(test_type);
    RUN(test_required_additional);
    RUN(test_required_escaped_key);
    RUN(test_numbers);
    RUN(test_strings);
    RUN(test_enum_const);
    RUN(test_arrays);
    RUN(test_nested);
    RUN(test_ref);
    RUN(test_formats);
    RUN(test_patterns);
    RUN(test_fastre_differential);
    RUN(test_bool_schemas);
    RUN(test_many_violations);
    RUN(test_edited_record);
    RUN(test_fields);
    RUN(test_compat_table);
    RUN(test_compare_stop);
    RUN(test_compare_shared_definitions);
    RUN(test_alloc_failures);
    sl_json_parser_destroy(parser);
    return TEST_DONE();
}
