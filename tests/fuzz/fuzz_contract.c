/*
 * fuzz_contract.c - fuzz target for contracts: loading (src/contract/load.c, the pattern
 * translator in pattern.c), validation (validate.c) and comparison (compare.c).
 *
 * Input: a contract, optionally followed by a second contract and records, each after a
 * NUL byte:
 *
 *     CONTRACT \0 [CONTRACT2 \0] RECORD \0 RECORD ...
 *
 * (the second part is a contract when it loads as one, else a record; without it a fixed
 * small contract plays its part). Any contract must either load or fail with a message;
 * never crash, leak or loop. A contract that loads is checked against every record that
 * parses (with room for 4 violations and for none) and a few built-in ones, and compared
 * with itself and with the other contract in every mode. Properties that must hold:
 *   - comparing a contract with itself finds no change that breaks any mode;
 *   - soundness: when the comparison calls NEW backward compatible with OLD, no record
 *     valid under OLD is invalid under NEW (and the mirror image for forward);
 *   - the violation count does not depend on how many are asked for;
 *   - every violation written has a path starting with "$", a rule, expected and actual.
 * The first part is also tried as a pattern: when it is simple enough for fastre.c, the
 * regexec-free matcher must agree with regexec on every other part and built-in string.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "contract/contract_internal.h"
#include "sluice/arena.h"
#include "sluice/contract.h"
#include "sluice/json.h"
#include "sluice/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char other[] =
    "{\"$id\":\"o\",\"version\":1,\"type\":\"object\",\"required\":[\"a\"],\"properties\":{"
    "\"a\":{\"type\":\"string\",\"pattern\":\"^x\"},\"b\":{\"type\":[\"number\",\"null\"],"
    "\"minimum\":0},\"c\":{\"items\":{\"enum\":[1,\"z\"]}}},\"additionalProperties\":false}";

static const char *const builtin[] = {
    "{}",
    "[]",
    "null",
    "0",
    "\"s\"",
    "{\"a\":\"x\",\"b\":1.5,\"c\":[1,\"z\",[]]}",
    "{\"a\":{\"b\":{\"c\":[1,2,{\"d\":null}]}},\"\\u00e9\":\"\\ud83d\\ude00\"}",
};

static int count_changes(void *ctx, const struct sl_contract_change *ch)
{
    if (!ch->path || ch->path[0] != '$' || !ch->reason)
        __builtin_trap();
    (*(int *)ctx)++;
    return 0;
}

/* Number of violations of the record, or -1 when it does not parse. */
static long check(const struct sl_contract *c, struct sl_json_parser *p, const char *text, size_t n)
{
    long result = -1;
    struct sl_arena a;
    sl_arena_init(&a, 4096);
    struct sl_record r;
    memset(&r, 0, sizeof r);
    r.text = text;
    r.text_len = (uint32_t)n;
    struct sl_json_error jerr;
    if (n < (1u << 20) && sl_record_parse(&r, p, 0, &a, &jerr) == SL_OK) {
        struct sl_violation v[4];
        size_t k = sl_contract_validate(c, &r, &a, v, 4);
        size_t k0 = sl_contract_validate(c, &r, &a, NULL, 0);
        if (k != k0)
            __builtin_trap();
        result = (long)k;
        for (size_t i = 0; i < k && i < 4; i++)
            if (!v[i].path || v[i].path[0] != '$' || !v[i].rule || !v[i].expected || !v[i].actual)
                __builtin_trap();
    }
    sl_arena_fini(&a);
    return result;
}

/* compat[m][d]: d = 0 compares (c -> o), d = 1 (o -> c); 1 when compatible in mode m. */
struct verdicts {
    int compat[4][2];
};

/* Soundness on one record: compatible comparisons must agree with validation. */
static void sound(const struct verdicts *vd, long vc, long vo)
{
    if (vc < 0 || vo < 0)
        return;
    /* c -> o backward: valid under c implies valid under o; forward: the converse. */
    if (vd->compat[SL_COMPAT_BACKWARD][0] && vc == 0 && vo > 0)
        __builtin_trap();
    if (vd->compat[SL_COMPAT_FORWARD][0] && vo == 0 && vc > 0)
        __builtin_trap();
    if (vd->compat[SL_COMPAT_BACKWARD][1] && vo == 0 && vc > 0)
        __builtin_trap();
    if (vd->compat[SL_COMPAT_FORWARD][1] && vc == 0 && vo > 0)
        __builtin_trap();
}

/* The first part as a pattern: fastre and regexec must agree on every other part. */
static void pattern_differential(const char *text, size_t clen, size_t size)
{
    struct sl_arena a;
    sl_arena_init(&a, 4096);
    char *ere, msg[256];
    int chars = 1;
    struct sl_fastre *f = NULL;
    regex_t re;
    if (clen > 256 ||
        sl__contract_pattern_translate(text, clen, &a, &ere, &chars, msg, sizeof msg) != 0 ||
        chars || sl__contract_fastre_compile(text, clen, &a, &f) != 1 ||
        sl__contract_regcomp(&re, ere, 0) != 0) {
        sl_arena_fini(&a);
        return;
    }
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
        if (sl__contract_regsearch(&re, 0, builtin[i], strlen(builtin[i])) !=
            sl__contract_fastre_match(f, builtin[i], strlen(builtin[i])))
            __builtin_trap();
    size_t at = clen;
    while (at < size) {
        const char *s = text + at + 1;
        const char *next = memchr(s, '\0', size - at - 1);
        size_t n = next ? (size_t)(next - s) : size - at - 1;
        char *z = sl_arena_strndup(&a, s, n); /* regexec's interceptors read up to a NUL */
        int fast = sl__contract_fastre_match(f, z, n);
        if (z && fast >= 0 && sl__contract_regsearch(&re, 0, z, n) != fast)
            __builtin_trap();
        at += 1 + n;
    }
    regfree(&re);
    sl_arena_fini(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *end = memchr(text, '\0', size);
    size_t clen = end ? (size_t)(end - text) : size;
    pattern_differential(text, clen, size);
    struct sl_contract *c = NULL, *o = NULL;
    struct sl_error err;
    err.msg[0] = '\0';
    if (sl_contract_load_mem(text, clen, "fuzz.json", &c, &err) != SL_OK) {
        if (err.msg[0] == '\0')
            __builtin_trap(); /* every failure must say why */
        return 0;
    }
    struct sl_json_parser *p;
    if (sl_json_parser_create(&p)) {
        sl_contract_destroy(c);
        return 0;
    }
    size_t at = clen;
    /* A second contract? */
    if (at < size) {
        const char *rec = text + at + 1;
        const char *next = memchr(rec, '\0', size - at - 1);
        size_t rlen = next ? (size_t)(next - rec) : size - at - 1;
        if (sl_contract_load_mem(rec, rlen, "other.json", &o, &err) == SL_OK)
            at += 1 + rlen;
        else
            o = NULL;
    }
    if (!o && sl_contract_load_mem(other, strlen(other), "other.json", &o, &err) != SL_OK)
        o = NULL;
    int changes = 0, inc = 0;
    if (sl_contract_compare(c, c, SL_COMPAT_FULL, count_changes, &changes, &inc, &err) == SL_OK &&
        inc)
        __builtin_trap(); /* a contract is always compatible with itself */
    struct verdicts vd;
    memset(&vd, 0, sizeof vd);
    if (o)
        for (int m = SL_COMPAT_BACKWARD; m <= SL_COMPAT_FULL; m++) {
            if (sl_contract_compare(c, o, (enum sl_compat_mode)m, count_changes, &changes, &inc,
                                    &err) == SL_OK)
                vd.compat[m][0] = !inc;
            if (sl_contract_compare(o, c, (enum sl_compat_mode)m, count_changes, &changes, &inc,
                                    &err) == SL_OK)
                vd.compat[m][1] = !inc;
        }
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++) {
        long vc = check(c, p, builtin[i], strlen(builtin[i]));
        if (o)
            sound(&vd, vc, check(o, p, builtin[i], strlen(builtin[i])));
    }
    while (at < size) {
        const char *rec = text + at + 1;
        const char *next = memchr(rec, '\0', size - at - 1);
        size_t rlen = next ? (size_t)(next - rec) : size - at - 1;
        long vc = check(c, p, rec, rlen);
        if (o)
            sound(&vd, vc, check(o, p, rec, rlen));
        at += 1 + rlen;
    }
    sl_contract_destroy(o);
    const struct sl_contract_field *f;
    size_t nf = sl_contract_fields(c, &f);
    for (size_t i = 0; i < nf; i++)
        if (!f[i].name || !f[i].type)
            __builtin_trap();
    sl_json_parser_destroy(p);
    sl_contract_destroy(c);
    return 0;
}
