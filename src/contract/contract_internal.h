/*
 * contract_internal.h - the compiled form of a contract, shared by the files of
 * src/contract/ and nobody else.
 *
 * load.c turns the schema document into a tree of struct sl_cnode (one per schema object
 * or boolean schema), validate.c walks that tree beside a record, compare.c walks two
 * trees side by side. Every node, string and constant lives in the contract's arena and
 * is immutable after sl_contract_load returns, which is what makes a contract safe to
 * share between threads.
 */
#ifndef SLUICE_CONTRACT_INTERNAL_H
#define SLUICE_CONTRACT_INTERNAL_H

#include <regex.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/arena.h"
#include "sluice/buf.h"
#include "sluice/contract.h"
#include "sluice/json.h"
#include "sluice/value.h"

/* Type bits. T_NUMBER accepts every number; T_INTEGER only those without a fraction. */
enum {
    T_NULL = 1 << 0,
    T_BOOLEAN = 1 << 1,
    T_INTEGER = 1 << 2,
    T_NUMBER = 1 << 3,
    T_STRING = 1 << 4,
    T_ARRAY = 1 << 5,
    T_OBJECT = 1 << 6,
    T_ALL = (1 << 7) - 1,
};

/* Which keywords a node carries (bits of struct sl_cnode.has). */
enum {
    K_TYPE = 1 << 0,
    K_MINIMUM = 1 << 1,
    K_MAXIMUM = 1 << 2,
    K_XMINIMUM = 1 << 3,
    K_XMAXIMUM = 1 << 4,
    K_MINLENGTH = 1 << 5,
    K_MAXLENGTH = 1 << 6,
    K_PATTERN = 1 << 7,
    K_FORMAT = 1 << 8,
    K_ENUM = 1 << 9,
    K_CONST = 1 << 10,
    K_MINITEMS = 1 << 11,
    K_MAXITEMS = 1 << 12,
    K_ITEMS = 1 << 13,
    K_PROPERTIES = 1 << 14,
    K_REQUIRED = 1 << 15,
    K_ADDITIONAL = 1 << 16,
    K_REF = 1 << 17,
};

enum sl_cformat { F_NONE = 0, F_DATE_TIME, F_DATE, F_EMAIL, F_UUID, F_IPV4, F_URI };

struct sl_cnode;
struct sl_fastre;

struct sl_cprop {
    const char *name; /* decoded, NUL-terminated */
    uint32_t len;
    struct sl_cnode *schema;
    int32_t req; /* index in the node's required[], or -1 */
};

/*
 * One compiled schema.
 *
 * Invariants:
 *   1. A boolean schema has is_bool set and accepts everything (bool_value 1) or nothing
 *      (0); it has no keywords (has == 0).
 *   2. A keyword's fields are meaningful only when its K_ bit is in has.
 *   3. ref, when K_REF is set, points at a node of the same contract (a $defs entry or
 *      the root); following ref links alone never returns to a node already visited
 *      (load.c rejects such cycles: they would never consume input).
 *   4. props[] is in document order; required[] names may or may not appear in props.
 *   5. additional is NULL when additionalProperties is absent (accepts anything).
 */
struct sl_cnode {
    uint32_t has;
    uint8_t is_bool;
    uint8_t bool_value;
    uint8_t format;         /* enum sl_cformat */
    uint32_t types;         /* T_ bits (K_TYPE) */
    const char *types_text; /* "number", "string or null" */
    double minimum, maximum, xminimum, xmaximum;
    uint64_t min_length, max_length, min_items, max_items;
    const char *pattern;    /* as written in the contract */
    regex_t *re;            /* compiled translation (pattern.c) */
    uint8_t re_chars;       /* re needs the UTF-8 locale */
    struct sl_fastre *fast; /* the same pattern without regexec, when simple (fastre.c) */
    struct sl_value *enumv; /* K_ENUM values; also K_CONST (constv) */
    uint32_t nenum;
    struct sl_value constv;
    const char *enum_text; /* `one of ["a", "b"]` for messages */
    const char *const_text;
    struct sl_cprop *props;
    uint32_t nprops;
    const char **required;
    uint32_t *required_len;
    uint32_t nrequired;
    uint8_t req_outside; /* some required name is not in props */
    struct sl_cnode *additional;
    struct sl_cnode *items;
    struct sl_cnode *ref;
    const char *ref_text;
    const char *spath; /* JSON pointer of this schema in the contract, "#/properties/a" */
};

/* A whole loaded contract. Everything hangs off arena; regexes are freed one by one. */
struct sl_contract {
    struct sl_arena arena;
    char *text; /* the document, NUL-terminated (sl_malloc) */
    size_t text_len;
    struct sl_tape tape;
    const char *file; /* name for messages */
    const char *id;
    const char *version;
    const char *label;
    struct sl_cnode *root;
    regex_t **regexes;
    size_t nregex, capregex;
    struct sl_contract_field *fields;
    size_t nfields;
};

/*
 * Translate a JSON Schema (ECMA-262) pattern into a POSIX ERE with the same meaning, or
 * fail with a message in msg (cap bytes) saying which construct is not supported and
 * why. The result is allocated in a. pattern.c.
 */
int sl__contract_pattern_translate(const char *pat, size_t n, struct sl_arena *a, char **out,
                                   int *chars, char *msg, size_t cap);

/*
 * Compile a translated pattern: in C.UTF-8 when *chars said it needs character semantics,
 * else in the C locale. 0 or a regcomp error code.
 */
int sl__contract_regcomp(regex_t *re, const char *ere, int chars);

/* Unanchored search of s[0..n) (valid UTF-8). 1 when it matches. */
int sl__contract_regsearch(const regex_t *re, int chars, const char *s, size_t n);

/*
 * fastre.c: compile pattern p[0..n) (JSON Schema syntax) for the regexec-free matcher:
 * 1 done, 0 not a simple pattern (use regexec), -1 ENOMEM. Match: 1/0, or -1 when s is
 * longer than FASTRE_MAX_LEN (use regexec).
 */
#define FASTRE_MAX_LEN 1024
int sl__contract_fastre_compile(const char *p, size_t n, struct sl_arena *a,
                                struct sl_fastre **out);
int sl__contract_fastre_match(const struct sl_fastre *f, const char *s, size_t n);

/* Check s[0..n) against format f. 1 when it conforms. format.c. */
int sl__contract_format_ok(int f, const char *s, size_t n);

/* The name of format f ("date-time"). */
const char *sl__contract_format_name(int f);

/* Append a path step for member k: ".name" for identifiers, else ["any key"]. validate.c. */
sl_rc sl__contract_put_key(struct sl_buf *b, const char *k, size_t n);

/* Follow ref links from n while n carries nothing but $ref (invariant 3 bounds it). */
const struct sl_cnode *sl__contract_deref(const struct sl_cnode *n);

/*
 * The set of JSON types the node can accept: its type keyword, narrowed by a referenced
 * schema's and by enum/const values. T_ALL when unconstrained; 0 for a false schema.
 */
uint32_t sl__contract_effective_types(const struct sl_cnode *n);

#endif
