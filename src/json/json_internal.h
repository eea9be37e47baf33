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

#endif
