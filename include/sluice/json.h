/*
 * json.h - our JSON parser (RFC 8259) and the tape it produces.
 *
 * sluice keeps every record's original bytes and parses them in one validating pass into a
 * tape: a flat array of tokens holding byte offsets into the original text. Nothing is
 * copied or decoded during the parse; a string is decoded only when something reads it,
 * and on output untouched values are copied as their original byte spans. This is why the
 * JSON path is ours: Debian's JSON libraries build trees and re-serialize at 35-70 MB/s,
 * a tape runs at about 1 GB/s per core (docs/internals/json.md).
 *
 * The parser accepts exactly RFC 8259: one value surrounded by optional whitespace
 * (space, tab, CR, LF); strings must be valid UTF-8 (no overlongs, no surrogates encoded
 * in UTF-8, nothing above U+10FFFF), escapes must be the RFC's, \u escapes must pair
 * surrogates correctly; numbers follow the RFC grammar exactly (no leading zeros, no +,
 * no NaN). Nesting deeper than max_depth is rejected. Errors report a byte offset, the
 * rule that was broken (a fixed vocabulary, below) and a message. Duplicate keys are
 * accepted (the last occurrence wins) or, with SL_JSON_REJECT_DUPLICATES, rejected.
 *
 * Threading: a struct sl_json_parser is scratch space for one thread; tapes live in the
 * caller's arena and are immutable once returned, so any thread may read them.
 */
#ifndef SLUICE_JSON_H
#define SLUICE_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/arena.h"
#include "sluice/buf.h"
#include "sluice/rc.h"

#define SL_JSON_DEFAULT_MAX_DEPTH 128
#define SL_JSON_MAX_TEXT ((size_t)1 << 30) /* 1 GiB: offsets are 32-bit */

enum sl_jtype {
    SL_J_NULL = 0,
    SL_J_FALSE,
    SL_J_TRUE,
    SL_J_NUMBER,
    SL_J_STRING,
    SL_J_ARRAY,
    SL_J_OBJECT,
};

#define SL_JTOK_ESCAPED 0x1 /* string token contains at least one backslash escape */
#define SL_JTOK_INTEGER 0x2 /* number token has no fraction and no exponent */

/*
 * One token of the tape.
 *
 * Invariants (cited by asserts in src/json/):
 *   1. tok[0] is the root value and tok[0].next == ntok.
 *   2. tok[i].next is the index of the first token after i's whole subtree; for scalars
 *      and keys it is i + 1.
 *   3. The children of an object alternate key (an SL_J_STRING token) and value; the
 *      children of an array are its values; children follow their container directly.
 *   4. off/len cover the token's bytes in the text: strings include both quotes,
 *      containers span from the opening to the closing bracket inclusive.
 *   5. count is the number of members (objects) or elements (arrays); 0 for scalars.
 */
struct sl_jtok {
    uint32_t off;
    uint32_t len;
    uint32_t next;
    uint32_t count;
    uint8_t type;  /* enum sl_jtype */
    uint8_t flags; /* SL_JTOK_* */
    uint16_t reserved;
};

/* A parsed document: the text it was parsed from and its tokens (both borrowed). */
struct sl_tape {
    const char *text;
    uint32_t len;
    uint32_t ntok;
    const struct sl_jtok *tok;
};

/*
 * Where and why a parse failed. offset is the byte offset of the offending byte (the
 * input's length when the input ended too early).
 *
 * rule names the syntax rule that was broken, from this fixed vocabulary (a static
 * string; compare with strcmp). docs/internals/json.md shows an example of each.
 *   empty               the input is empty or only whitespace
 *   truncated           the input ends before the value is complete (outside a string)
 *   unterminated_string the input ends inside a string (or inside one of its escapes)
 *   trailing_garbage    something other than whitespace follows the complete value
 *   bad_escape          a backslash escape the RFC does not define, or \u without 4 hex digits
 *   lone_surrogate      a \uD800-\uDBFF escape not followed by \uDC00-\uDFFF, or a lone low one
 *   invalid_utf8        a byte sequence in a string that is not UTF-8 (stray continuation
 *                       byte, cut-short sequence, encoded surrogate, above U+10FFFF)
 *   overlong_utf8       a character encoded in more bytes than needed (C0, C1, E0 80..9F,
 *                       F0 80..8F)
 *   control_character   a raw byte below 0x20 inside a string
 *   nan_infinity        NaN, Infinity, -Infinity, inf (any case) where a value belongs
 *   leading_zero        a number such as 007 or -01
 *   invalid_number      a number with '+', a bare '.', or no digit after '-', '.' or 'e'
 *   invalid_literal     a word starting like true/false/null that is not one
 *   trailing_comma      a comma directly before ']' or '}'
 *   single_quote        a string or object key in single quotes
 *   byte_order_mark     the input starts with a UTF-8 byte order mark
 *   expected_value      some other byte where a value must start
 *   expected_key        an object key that is not a string
 *   expected_colon      an object key not followed by ':'
 *   expected_comma      a value not followed by ',' or the closing bracket
 *   depth               nesting deeper than max_depth
 *   too_large           the text is longer than SL_JSON_MAX_TEXT (then SL_ELIMIT)
 *   duplicate_key       an object names a key twice (only with SL_JSON_REJECT_DUPLICATES)
 *
 * path is the field path of the offending key for duplicate_key ("$.a.b", "$.items[2].id",
 * "$[\"odd key\"]"; at most 127 bytes, cut with "..."), and empty for every other rule.
 */
struct sl_json_error {
    size_t offset;
    const char *rule;
    char path[128];
    char msg[160];
};

/* Parser flags (sl_json_parser_set_flags). */
#define SL_JSON_REJECT_DUPLICATES 0x1 /* an object naming a key twice fails: duplicate_key */

struct sl_json_parser;

/* Create reusable parser scratch space (one per thread). SL_OK or SL_ENOMEM. */
sl_rc sl_json_parser_create(struct sl_json_parser **out);

/* Free it. Accepts NULL. */
void sl_json_parser_destroy(struct sl_json_parser *p);

/*
 * Set the parser's flags (SL_JSON_*; 0 is the default) for every later parse.
 *
 * Duplicate keys: RFC 8259 leaves objects that name a key twice to the implementation.
 * By default sluice accepts them and every reader sees the LAST occurrence (record.h,
 * value.h lookups; sl_record_foreach and an edited sl_record_write emit each key once,
 * at its last occurrence); a record without edits is still written byte for byte, its
 * duplicates included. With SL_JSON_REJECT_DUPLICATES a successful parse is followed by a
 * check of every object of the tape, and the first key that repeats an earlier key of
 * the same object (compared after decoding escapes) fails the parse with SL_EPARSE, rule
 * "duplicate_key", offset of the repeating key and err->path its field path. The check
 * costs nothing when the flag is off (docs/internals/json.md has the measurements).
 */
void sl_json_parser_set_flags(struct sl_json_parser *p, unsigned flags);

/*
 * Parse text[0..len) into a tape whose tokens are allocated in arena a (exactly ntok
 * tokens, no slack). On success out->text = text and out->len = len; text must outlive
 * the tape. max_depth 0 means SL_JSON_DEFAULT_MAX_DEPTH.
 *
 * Returns SL_OK; SL_EPARSE with err filled (offset, rule and a message such as
 * "expected ':' after object key, found 'x'", "nesting deeper than 128 levels ..."); SL_ELIMIT
 * when len > SL_JSON_MAX_TEXT (rule "too_large"); SL_ENOMEM. On failure *out is untouched.
 */
sl_rc sl_json_parse(struct sl_json_parser *p, const char *text, size_t len, uint32_t max_depth,
                    struct sl_arena *a, struct sl_tape *out, struct sl_json_error *err);

/*
 * Decode string token i of tape t. When the token has no escapes, *s points into the
 * tape's text (no copy); otherwise the decoded UTF-8 is written to arena a. *s is not
 * NUL-terminated. SL_OK, SL_ENOMEM, or SL_ETYPE when token i is not a string.
 */
sl_rc sl_json_str(const struct sl_tape *t, uint32_t i, struct sl_arena *a, const char **s,
                  size_t *n);

/*
 * Decode the inner bytes of a validated JSON string (without quotes) into out, which has
 * room for n bytes (decoding never grows). Returns the decoded length.
 */
size_t sl_json_unescape(const char *in, size_t n, char *out);

/* Append s[0..n) as a quoted, escaped JSON string. s must be valid UTF-8. */
sl_rc sl_json_write_str(struct sl_buf *b, const char *s, size_t n);

/*
 * Append a number: integers in [-2^53, 2^53] without a fraction, others in the shortest
 * form that reads back to the same double. NaN and infinities are written as null.
 */
sl_rc sl_json_write_double(struct sl_buf *b, double d);

/* Convert number text (RFC grammar, already validated) to a double. */
double sl_json_num_to_double(const char *s, size_t n);

/*
 * Convert integer number text to int64. Returns 1 on success, 0 when the text has a
 * fraction/exponent or does not fit in int64.
 */
int sl_json_num_to_i64(const char *s, size_t n, int64_t *out);

/*
 * Check UTF-8. Returns 1 when s[0..n) is valid UTF-8, else 0 with *bad_off set to the
 * offset of the first invalid byte (bad_off may be NULL).
 */
int sl_utf8_valid(const char *s, size_t n, size_t *bad_off);

#endif
