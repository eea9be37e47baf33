/*
 * json_internal.h - helpers shared by the files of src/json/ and nobody else.
 *
 * The parser's string scanner is reused by the path parser (quoted keys), and the
 * key comparison that never allocates is shared by value lookups and record edits.
 */
#ifndef SLUICE_JSON_INTERNAL_H
#define SLUICE_JSON_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <string.h>

#include "sluice/json.h"

/*
 * Validate the JSON string starting at s[pos] == '"'. On success returns the offset just
 * past the closing quote and ORs SL_JTOK_ESCAPED into *flags when the string holds a
 * backslash escape. On failure returns SIZE_MAX with err filled (offset + message).
 */
size_t sl__json_scan_string(const uint8_t *s, size_t len, size_t pos, uint8_t *flags,
                            struct sl_json_error *err);

/*
 * Compare the raw inner bytes of a validated JSON string (escapes allowed) with the
 * decoded key[0..klen). Decodes escapes on the fly: never allocates.
 */
int sl__json_raw_eq(const char *raw, size_t rawlen, const char *key, size_t klen);

/* Is string token i of tape t (a key) equal to key[0..klen) once decoded? */
static inline int sl__json_tok_eq(const struct sl_tape *t, uint32_t i, const char *key, size_t klen)
{
    const struct sl_jtok *k = &t->tok[i];
    const char *raw = t->text + k->off + 1;
    size_t rawlen = k->len - 2;
    if (!(k->flags & SL_JTOK_ESCAPED))
        return rawlen == klen && (klen == 0 || memcmp(raw, key, klen) == 0);
    return sl__json_raw_eq(raw, rawlen, key, klen);
}

/*
 * The members of an object that a later member with the same key shadows (dups.c): every
 * reader skips them, so the last occurrence of a key wins.
 *
 * Invariants:
 *   1. count is the number of shadowed members; when it is 0 nothing was allocated.
 *   2. Member k (0-based, in tape order) is shadowed iff bit k is set: in small when the
 *      object has at most 64 members, else in bits (allocated; sl__shadow_free frees it).
 *   3. first_dup_tok is the tape index of the first key, in document order, that repeats
 *      an earlier key of the object, or 0 when there is none.
 */
struct sl__shadow {
    uint32_t count;
    uint32_t first_dup_tok;
    uint64_t small;
    uint64_t *bits;
};

/* Compute the shadowed members of object token obj of tape t. SL_OK or SL_ENOMEM. */
sl_rc sl__json_shadowed(const struct sl_tape *t, uint32_t obj, struct sl__shadow *sh);

static inline int sl__shadow_is(const struct sl__shadow *sh, uint32_t k)
{
    if (!sh->count)
        return 0;
    const uint64_t *w = sh->bits ? &sh->bits[k / 64] : &sh->small;
    return (int)((*w >> (k % 64)) & 1);
}

/* Free what sl__json_shadowed allocated. Idempotent. */
void sl__shadow_free(struct sl__shadow *sh);

/*
 * The reject-mode check: SL_EPARSE with err filled (rule duplicate_key, offset of the
 * repeating key, its path) when any object of t names a key twice; else SL_OK.
 */
sl_rc sl__json_check_duplicates(const struct sl_tape *t, struct sl_json_error *err);

#endif
