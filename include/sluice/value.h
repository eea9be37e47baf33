/*
 * value.h - a JSON value as expressions and transforms see it.
 *
 * A value is small (24 bytes) and passed by value. Scalars are decoded: strings are UTF-8
 * bytes (not NUL-terminated), numbers carry their double and, when they came from input,
 * their original spelling so they are written back exactly as read. Containers are either
 * references into a tape (is_tape: cheap, read-only, written back as their original
 * span) or materialized in an arena (items / members), which is what a transform builds
 * when it changes something nested.
 *
 * Values never own memory: whatever they point at lives in a batch arena, a tape's text,
 * or a compiled expression, and must outlive the value.
 */
#ifndef SLUICE_VALUE_H
#define SLUICE_VALUE_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/arena.h"
#include "sluice/buf.h"
#include "sluice/json.h"
#include "sluice/rc.h"

enum sl_vtype {
    SL_V_NULL = 0,
    SL_V_BOOL,
    SL_V_NUMBER,
    SL_V_STRING,
    SL_V_ARRAY,
    SL_V_OBJECT,
};

struct sl_member;

/*
 * Invariants:
 *   1. type SL_V_STRING: u.str points at len bytes of valid UTF-8.
 *   2. type SL_V_NUMBER: u.num.d is the value; u.num.text, when not NULL, is the original
 *      spelling (len bytes, RFC grammar) and is what gets written on output.
 *   3. type SL_V_ARRAY/OBJECT with is_tape: u.tape names a container token of a tape.
 *      Without is_tape: u.items has len values, or u.members has len members.
 */
struct sl_value {
    uint8_t type; /* enum sl_vtype */
    uint8_t is_tape;
    uint8_t is_int; /* number known to be an integer (no fraction) */
    uint8_t reserved;
    uint32_t len;
    union {
        int b;
        struct {
            double d;
            const char *text;
        } num;
        const char *str;
        struct {
            const struct sl_tape *tape;
            uint32_t tok;
        } tape;
        struct sl_value *items;
        struct sl_member *members;
    } u;
};

struct sl_member {
    const char *key;
    uint32_t klen;
    struct sl_value val;
};

/* Constructors (no allocation; s must outlive the value). */
struct sl_value sl_value_null(void);
struct sl_value sl_value_bool(int b);
struct sl_value sl_value_number(double d);
struct sl_value sl_value_string(const char *s, size_t n);

/*
 * The value of token i of tape t. Strings are decoded (into a when escaped), numbers are
 * converted (text kept), containers become tape references. SL_OK or SL_ENOMEM.
 */
sl_rc sl_value_from_tape(const struct sl_tape *t, uint32_t i, struct sl_arena *a,
                         struct sl_value *out);

/*
 * Turn a tape-backed container into a materialized one (one level deep: children stay
 * tape-backed where they are containers). Scalars and materialized containers are
 * returned unchanged. SL_OK or SL_ENOMEM.
 */
sl_rc sl_value_materialize(const struct sl_value *v, struct sl_arena *a, struct sl_value *out);

/* Number of elements/members of a container (0 for scalars). */
uint32_t sl_value_count(const struct sl_value *v);

/* Element i of an array (tape-backed or not). SL_ENOENT when out of range, SL_ETYPE. */
sl_rc sl_value_index(const struct sl_value *v, uint32_t i, struct sl_arena *a,
                     struct sl_value *out);

/*
 * Member by key of an object. Returns 1 and fills *out when found, 0 when not. When the
 * object names the key more than once, the last occurrence wins (json.h).
 */
int sl_value_member(const struct sl_value *v, const char *key, size_t klen, struct sl_arena *a,
                    struct sl_value *out);

/* Append v as compact JSON (tape-backed parts copied as their original spans). */
sl_rc sl_value_write(const struct sl_value *v, struct sl_buf *b);

/*
 * Deep equality (numbers compare by value, objects ignore member order and compare with
 * duplicate keys collapsed to their last occurrence).
 */
int sl_value_equal(const struct sl_value *x, const struct sl_value *y);

/* Truthiness for filters: null/false/0/"" are false, everything else (incl. [] {}) true. */
int sl_value_truthy(const struct sl_value *v);

/* "null", "bool", "number", "string", "array", "object". */
const char *sl_value_type_name(const struct sl_value *v);

#endif
