/*
 * dups.c - duplicate keys: which members of an object a later member of the same name
 * shadows, and the optional reject-mode check over a whole tape.
 *
 * RFC 8259 lets an object name a key twice and leaves the meaning to the reader. sluice's
 * rule (json.h, sl_json_parser_set_flags) is "the last occurrence wins": an earlier member
 * whose key appears again later in the same object is shadowed, and every reader skips it
 * (lookups return the last match; foreach, edited writes and materialized objects leave it
 * out). The tape itself keeps every member, so a record without edits is still written
 * byte for byte.
 *
 * Finding the shadowed members is a hash-set pass over the object's keys: each key is
 * hashed over its decoded bytes (escaped keys are decoded into a scratch buffer first, so
 * "a" and "\u0061" are the same key) and probed in an open-addressing table of member
 * indexes; a slot whose hash matches is compared exactly (sl__json_tok_eq). Objects of up
 * to 128 members use tables on the stack; larger ones allocate them. The pass is linear and
 * allocation-free for ordinary objects, which is what keeps it cheap enough to run on
 * every sl_record_foreach and edited sl_record_write.
 *
 * The reject-mode check (sl__json_check_duplicates) runs the same pass over every object
 * of a freshly parsed tape, only when SL_JSON_REJECT_DUPLICATES is set, and names the first
 * repeating key by its byte offset and field path.
 *
 * Threading: pure functions of their arguments; scratch memory is local or freed before
 * returning (except the bitmap a caller frees with sl__shadow_free).
 */
#include <stdio.h>
#include <string.h>

#include "json/json_internal.h"
#include "sluice/alloc.h"
#include "sluice/json.h"

#define STACK_SLOTS 256u   /* a probe table of up to 256 slots lives on the stack */
#define STACK_MEMBERS 128u /* and so do the per-member arrays of up to 128 members */

/* A multiply mixes low bits upwards: callers take table indexes from the high half. */
static inline uint64_t mix(uint64_t h)
{
    return (h ^ (h >> 29)) * 0xBF58476D1CE4E5B9ull;
}

/*
 * Hash of key bytes s[0..n). end bounds the readable text (s + n <= end): short keys are
 * read with one 8-byte load when 8 bytes are readable, instead of a variable-length copy.
 * Every byte of the key takes part, so keys sharing a prefix and suffix do not collide
 * by construction.
 */
static inline uint64_t key_hash(const char *s, size_t n, const char *end)
{
    uint64_t a = 0, b = 0;
    if (n > 16) {
        uint64_t h = n;
        for (size_t i = 0; i + 8 < n; i += 8) {
            memcpy(&a, s + i, 8);
            h = mix(h ^ a);
        }
        memcpy(&b, s + n - 8, 8);
        return mix(h ^ b);
    }
    if (n >= 8) {
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
    } else {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if ((size_t)(end - s) >= 8) {
            memcpy(&a, s, 8);
            a &= n ? ~0ull >> (64 - 8 * n) : 0; /* keep the key's n bytes (the low ones) */
        } else
#endif
            memcpy(&a, s, n);
    }
    (void)end;
    return (a * 0x9E3779B97F4A7C15ull) ^ ((b ^ n) * 0xC2B2AE3D27D4EB4Full);
}

static void shadow_set(struct sl__shadow *sh, uint32_t k)
{
    if (sh->bits)
        sh->bits[k / 64] |= (uint64_t)1 << (k % 64);
    else
        sh->small |= (uint64_t)1 << k;
}

sl_rc sl__json_shadowed(const struct sl_tape *t, uint32_t obj, struct sl__shadow *sh)
{
    uint32_t n = t->tok[obj].count;
    memset(sh, 0, sizeof *sh);
    if (n < 2)
        return SL_OK;
    uint32_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    /* slot[h] = member index + 1 (0 is empty); ktok/khash: each member's key token, hash */
    uint32_t stack_slot[STACK_SLOTS], stack_tok[STACK_MEMBERS], *slot = stack_slot,
                                                                *ktok = stack_tok;
    uint64_t stack_hash[STACK_MEMBERS], *khash = stack_hash;
    char small_key[256];
    const char *end = t->text + t->len;
    sl_rc rc = SL_OK;
    if (cap > STACK_SLOTS && !(slot = sl_malloc((size_t)cap * sizeof *slot)))
        rc = SL_ENOMEM;
    if (n > STACK_MEMBERS && (!(ktok = sl_malloc((size_t)n * sizeof *ktok)) ||
                              !(khash = sl_malloc((size_t)n * sizeof *khash))))
        rc = SL_ENOMEM;
    if (n > 64 && !(sh->bits = sl_calloc((n + 63) / 64, sizeof *sh->bits)))
        rc = SL_ENOMEM;
    if (rc)
        goto out;
    memset(slot, 0, (size_t)cap * sizeof *slot);
    uint32_t mask = cap - 1, i = obj + 1;
    for (uint32_t k = 0; k < n; k++, i = t->tok[i + 1].next) {
        const struct sl_jtok *kt = &t->tok[i];
        const char *key = t->text + kt->off + 1;
        size_t klen = kt->len - 2;
        char *dec = NULL;
        if (kt->flags & SL_JTOK_ESCAPED) {
            dec = klen <= sizeof small_key ? small_key : sl_malloc(klen);
            if (!dec) {
                rc = SL_ENOMEM;
                goto out;
            }
            klen = sl_json_unescape(key, klen, dec);
            key = dec;
        }
        uint64_t hv = key_hash(key, klen, dec ? key + klen : end);
        uint32_t h = (uint32_t)(hv >> 40) & mask;
        while (slot[h] &&
               !(khash[slot[h] - 1] == hv && sl__json_tok_eq(t, ktok[slot[h] - 1], key, klen)))
            h = (h + 1) & mask;
        if (dec && dec != small_key)
            sl_free(dec);
        if (slot[h]) {
            shadow_set(sh, slot[h] - 1);
            sh->count++;
            if (!sh->first_dup_tok)
                sh->first_dup_tok = i;
        }
        slot[h] = k + 1;
        ktok[k] = i;
        khash[k] = hv;
    }
out:
    if (slot != stack_slot)
        sl_free(slot);
    if (ktok != stack_tok)
        sl_free(ktok);
    if (khash != stack_hash)
        sl_free(khash);
    if (rc)
        sl__shadow_free(sh);
    return rc;
}

void sl__shadow_free(struct sl__shadow *sh)
{
    sl_free(sh->bits);
    sh->bits = NULL;
}

/* Is s[0..n) an identifier that a path may write bare (a.b rather than ["a"].b)? */
static int bare_key(const char *s, size_t n)
{
    if (n == 0 || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* Append s[0..n) to buf (cap bytes, NUL-terminated, *len used), as much as fits; sets *cut
 * when something did not fit. */
static void path_put(char *buf, size_t cap, size_t *len, int *cut, const char *s, size_t n)
{
    size_t room = cap - 1 - *len; /* *len < cap always */
    if (n > room) {
        *cut = 1;
        n = room;
    }
    memcpy(buf + *len, s, n);
    *len += n;
    buf[*len] = 0;
}

/*
 * The field path of token target (a key or a value) of tape t, as $.a[2]["odd key"],
 * written into buf[cap]. Keys are shown as written in the input (escapes undecoded).
 */
static void tok_path(const struct sl_tape *t, uint32_t target, char *buf, size_t cap)
{
    size_t len = 0;
    int cut = 0;
    char num[24];
    buf[0] = 0;
    path_put(buf, cap, &len, &cut, "$", 1);
    uint32_t c = 0;
    while (!cut && c != target && (t->tok[c].type == SL_J_OBJECT || t->tok[c].type == SL_J_ARRAY)) {
        int obj = t->tok[c].type == SL_J_OBJECT;
        uint32_t i = c + 1, n = t->tok[c].count, k;
        for (k = 0; k < n; k++) {
            uint32_t v = obj ? i + 1 : i, end = t->tok[v].next;
            if (target >= i && target < end)
                break;
            i = end;
        }
        if (k == n)
            break;
        if (obj) {
            const char *key = t->text + t->tok[i].off + 1;
            size_t klen = t->tok[i].len - 2;
            if (bare_key(key, klen)) {
                path_put(buf, cap, &len, &cut, ".", 1);
                path_put(buf, cap, &len, &cut, key, klen);
            } else {
                path_put(buf, cap, &len, &cut, "[", 1);
                path_put(buf, cap, &len, &cut, key - 1, klen + 2);
                path_put(buf, cap, &len, &cut, "]", 1);
            }
            if (target == i)
                break; /* the key itself */
            c = i + 1;
        } else {
            int m = snprintf(num, sizeof num, "[%u]", k);
            path_put(buf, cap, &len, &cut, num, (size_t)m);
            c = i;
        }
    }
    if (cut)
        memcpy(buf + cap - 4, "...", 4); /* len == cap - 1 */
}

sl_rc sl__json_check_duplicates(const struct sl_tape *t, struct sl_json_error *err)
{
    uint32_t dup = 0; /* the repeating key that comes first in the text */
    for (uint32_t o = 0; o < t->ntok; o++) {
        if (t->tok[o].type != SL_J_OBJECT || t->tok[o].count < 2)
            continue;
        struct sl__shadow sh;
        sl_rc rc = sl__json_shadowed(t, o, &sh);
        if (rc)
            return rc;
        if (sh.first_dup_tok && (!dup || t->tok[sh.first_dup_tok].off < t->tok[dup].off))
            dup = sh.first_dup_tok;
        sl__shadow_free(&sh);
    }
    if (!dup)
        return SL_OK;
    if (err) {
        const struct sl_jtok *k = &t->tok[dup];
        err->offset = k->off;
        err->rule = "duplicate_key";
        tok_path(t, dup, err->path, sizeof err->path);
        int kl = k->len > 64 ? 64 : (int)k->len;
        int m = snprintf(err->msg, sizeof err->msg,
                         "duplicate key %.*s%s at %s (json.duplicate_keys is reject: an "
                         "object may name a key only once)",
                         kl, t->text + k->off, (int)k->len > kl ? "..." : "", err->path);
        if (m >= (int)sizeof err->msg) /* cut: the path is in err->path in full */
            memcpy(err->msg + sizeof err->msg - 4, "...", 4);
    }
    return SL_EPARSE;
}
