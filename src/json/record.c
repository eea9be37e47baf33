/*
 * record.c - reading, editing and writing records; record ids.
 *
 * A record keeps its original text and tape; transforms never rewrite it. A change is an
 * edit pushed onto r->edits (newest first): SET key=value or DEL key, always on a
 * top-level member. A nested change (set device.os) rebuilds only the containers along the
 * path, one level at a time and copy-on-write (older edits may share them), and pushes a
 * top-level SET of the rebuilt member; every sibling stays a tape reference.
 *
 * Reading a top-level key walks the edits and stops at the first (newest) one naming it;
 * without one it scans all of the tape's root members and takes the last match (duplicate
 * keys: the last occurrence wins, dups.c). No lookup allocates unless it returns an
 * escaped string (decoded into the arena).
 *
 * Output order (shared by sl_record_write and sl_record_foreach through walk_members):
 *   1. the original members in their order: untouched ones as their original byte span,
 *      replaced ones in place (original key spelling, new value), deleted ones skipped;
 *      when the original has duplicate keys, each key is emitted once, at its last
 *      occurrence (earlier ones are shadowed and skipped, edited or not);
 *   2. then keys absent from the original whose newest edit is a SET, in the order of
 *      their first SET.
 * With no edits sl_record_write copies r->text byte for byte.
 *
 * Record ids: sl_record_id_base hashes (pipeline, source, identity) once per input file
 * into 128 bits; sl_record_id mixes in the byte offset. The hash reads bytes explicitly
 * little-endian, so it is the same on every machine. Construction (all arithmetic mod 2^64):
 *   - input = for each of the three strings: its length as 8 LE bytes, then its bytes;
 *   - two lanes h0, h1 start from distinct constants; each 8-byte LE word w (the tail
 *     zero-padded) updates h0 = rotl(h0 ^ (w * K1), 31) * K2 + h1 and
 *     h1 = rotl(h1 ^ (w * K3), 29) * K4 + h0;
 *   - finally h0 ^= total length, each lane goes through the splitmix64 finalizer, and
 *     the lanes are cross-mixed once more.
 *   - id[0] = base[0] (for offsets below 2^48, i.e. any real file; above it the high bits
 *     of the offset are folded in as base[0] ^ fmix(offset >> 48)), and
 *     id[1] = the top 16 bits of base[1], then the low 48 bits of the offset.
 * So two records of one file never share an id (the offset is in it verbatim), ids from
 * different files differ in 80 hashed bits, and, what matters for sinks, the ids of one
 * file *increase* with the offset, as numbers and as the 32-digit hex text: a unique
 * index on them (SQLite, PostgreSQL) takes appends instead of random inserts, which
 * measured 730k against 79k rows/s in the sqlite sink. This is not a cryptographic hash:
 * ids are for deduplication, not secrecy.
 *
 * Values read from a record that are containers refer to &r->tape (value.h, is_tape), so a
 * record must not move while such values are in use: record arrays stop growing once a
 * batch is full, and a clone keeps its original batch (and its records) alive.
 *
 * Threading: a record belongs to the thread holding its batch. Ownership: edits, rebuilt
 * containers and copied keys live in the batch arena passed in.
 */
#include <string.h>

#include "json/json_internal.h"
#include "sluice/alloc.h"
#include "sluice/json.h"
#include "sluice/record.h"

sl_rc sl_record_parse(struct sl_record *r, struct sl_json_parser *p, uint32_t max_depth,
                      struct sl_arena *a, struct sl_json_error *err)
{
    struct sl_tape t;
    sl_rc rc = sl_json_parse(p, r->text, r->text_len, max_depth, a, &t, err);
    if (rc)
        return rc;
    r->tape = t;
    r->flags |= SL_REC_PARSED;
    return SL_OK;
}

/* The newest edit naming key, or NULL. */
static const struct sl_edit *edit_for(const struct sl_edit *e, const char *key, size_t klen)
{
    for (; e; e = e->next)
        if (e->klen == klen && (klen == 0 || memcmp(e->key, key, klen) == 0))
            return e;
    return NULL;
}

/* The newest edit naming the key of tape token i, or NULL. */
static const struct sl_edit *edit_for_tok(const struct sl_edit *e, const struct sl_tape *t,
                                          uint32_t i)
{
    for (; e; e = e->next)
        if (sl__json_tok_eq(t, i, e->key, e->klen))
            return e;
    return NULL;
}

static int root_is_object(const struct sl_record *r)
{
    return (r->flags & SL_REC_PARSED) && r->tape.ntok && r->tape.tok[0].type == SL_J_OBJECT;
}

/* Tape index of the last root member key equal to key[0..klen) (it wins), or 0. */
static uint32_t orig_find(const struct sl_tape *t, const char *key, size_t klen)
{
    uint32_t i = 1, n = t->tok[0].count, found = 0;
    for (uint32_t k = 0; k < n; k++) {
        if (sl__json_tok_eq(t, i, key, klen))
            found = i;
        i = t->tok[i + 1].next;
    }
    return found;
}

/* Current value of top-level key: 1 and *out when it exists. */
static int top_get(struct sl_record *r, const char *key, size_t klen, struct sl_arena *a,
                   struct sl_value *out)
{
    const struct sl_edit *e = edit_for(r->edits, key, klen);
    if (e) {
        if (e->op == SL_EDIT_DEL)
            return 0;
        *out = e->val;
        return 1;
    }
    if (!root_is_object(r))
        return 0;
    uint32_t i = orig_find(&r->tape, key, klen);
    return i && sl_value_from_tape(&r->tape, i + 1, a, out) == SL_OK;
}

/* Normalize a possibly negative index against count; -1 when out of range. */
static int64_t norm_index(int32_t idx, uint32_t count)
{
    int64_t i = idx < 0 ? (int64_t)count + idx : idx;
    return i >= 0 && i < (int64_t)count ? i : -1;
}

/* One path step from cur. 1 and *out when it exists. */
static int step(const struct sl_value *cur, const struct sl_path_seg *g, struct sl_arena *a,
                struct sl_value *out)
{
    if (g->key)
        return sl_value_member(cur, g->key, g->klen, a, out);
    if (cur->type != SL_V_ARRAY)
        return 0;
    int64_t i = norm_index(g->index, cur->len);
    return i >= 0 && sl_value_index(cur, (uint32_t)i, a, out) == SL_OK;
}

int sl_record_get(struct sl_record *r, const struct sl_path *p, struct sl_arena *a,
                  struct sl_value *out)
{
    struct sl_value cur;
    *out = sl_value_null();
    if (!(r->flags & SL_REC_PARSED) || p->nseg == 0)
        return 0;
    const struct sl_path_seg *g = &p->seg[0];
    if (g->key) {
        if (!top_get(r, g->key, g->klen, a, &cur))
            return 0;
    } else {
        /* An index on the root: only arrays have elements, and they are never edited. */
        struct sl_value root;
        if (sl_value_from_tape(&r->tape, 0, a, &root) || !step(&root, g, a, &cur))
            return 0;
    }
    for (uint32_t k = 1; k < p->nseg; k++) {
        struct sl_value next;
        if (!step(&cur, &p->seg[k], a, &next))
            return 0;
        cur = next;
    }
    *out = cur;
    return 1;
}

int sl_record_get_key(struct sl_record *r, const char *key, size_t klen, struct sl_arena *a,
                      struct sl_value *out)
{
    *out = sl_value_null();
    if (!(r->flags & SL_REC_PARSED))
        return 0;
    return top_get(r, key, klen, a, out);
}

static sl_rc push_edit(struct sl_record *r, const char *key, size_t klen, uint8_t op,
                       const struct sl_value *v, struct sl_arena *a)
{
    struct sl_edit *e = sl_arena_alloc(a, sizeof *e);
    char *k = sl_arena_alloc(a, klen + 1);
    if (!e || !k)
        return SL_ENOMEM;
    if (klen)
        memcpy(k, key, klen);
    e->key = k;
    e->klen = (uint32_t)klen;
    e->op = op;
    e->val = v ? *v : sl_value_null();
    e->next = r->edits;
    r->edits = e;
    return SL_OK;
}

/*
 * A fresh, writable one-level copy of container cur with room for `extra` more members or
 * items (copy-on-write: the original may be shared by older edits).
 */
static sl_rc copy_level(const struct sl_value *cur, uint32_t extra, struct sl_arena *a,
                        struct sl_value *out)
{
    struct sl_value m;
    sl_rc rc = sl_value_materialize(cur, a, &m);
    if (rc)
        return rc;
    size_t n = (size_t)m.len + extra;
    if (cur->type == SL_V_OBJECT) {
        struct sl_member *mem = sl_arena_alloc(a, (n ? n : 1) * sizeof *mem);
        if (!mem)
            return SL_ENOMEM;
        if (m.len)
            memcpy(mem, m.u.members, m.len * sizeof *mem);
        m.u.members = mem;
    } else {
        struct sl_value *it = sl_arena_alloc(a, (n ? n : 1) * sizeof *it);
        if (!it)
            return SL_ENOMEM;
        if (m.len)
            memcpy(it, m.u.items, m.len * sizeof *it);
        m.u.items = it;
    }
    m.is_tape = 0;
    *out = m;
    return SL_OK;
}

/*
 * The value cur (exists says whether it does) with the path seg[0..nseg) set to v.
 * Missing objects along the path are created; a missing array element is SL_ENOENT.
 */
static sl_rc set_in(const struct sl_value *cur, int exists, const struct sl_path_seg *seg,
                    uint32_t nseg, const struct sl_value *v, struct sl_arena *a,
                    struct sl_value *out)
{
    if (nseg == 0) {
        *out = *v;
        return SL_OK;
    }
    struct sl_value base, copy, child;
    sl_rc rc;
    if (seg->key) {
        if (!exists) {
            base = sl_value_null();
            base.type = SL_V_OBJECT;
            cur = &base;
        } else if (cur->type != SL_V_OBJECT) {
            return SL_ETYPE;
        }
        if ((rc = copy_level(cur, 1, a, &copy)))
            return rc;
        uint32_t k;
        for (k = 0; k < copy.len; k++)
            if (copy.u.members[k].klen == seg->klen &&
                (seg->klen == 0 || memcmp(copy.u.members[k].key, seg->key, seg->klen) == 0))
                break;
        int found = k < copy.len;
        if ((rc = set_in(found ? &copy.u.members[k].val : NULL, found, seg + 1, nseg - 1, v, a,
                         &child)))
            return rc;
        if (!found) {
            char *key = sl_arena_alloc(a, (size_t)seg->klen + 1);
            if (!key)
                return SL_ENOMEM;
            if (seg->klen)
                memcpy(key, seg->key, seg->klen);
            copy.u.members[k].key = key;
            copy.u.members[k].klen = seg->klen;
            copy.len++;
        }
        copy.u.members[k].val = child;
        *out = copy;
        return SL_OK;
    }
    if (!exists)
        return SL_ENOENT;
    if (cur->type != SL_V_ARRAY)
        return SL_ETYPE;
    int64_t i = norm_index(seg->index, cur->len);
    if (i < 0)
        return SL_ENOENT;
    if ((rc = copy_level(cur, 0, a, &copy)))
        return rc;
    if ((rc = set_in(&copy.u.items[i], 1, seg + 1, nseg - 1, v, a, &child)))
        return rc;
    copy.u.items[i] = child;
    *out = copy;
    return SL_OK;
}

sl_rc sl_record_set(struct sl_record *r, const struct sl_path *p, const struct sl_value *v,
                    struct sl_arena *a)
{
    if (!(r->flags & SL_REC_PARSED))
        return SL_ESTATE;
    if (!root_is_object(r) || p->nseg == 0 || !p->seg[0].key)
        return SL_ETYPE;
    const struct sl_path_seg *g = &p->seg[0];
    if (p->nseg == 1)
        return push_edit(r, g->key, g->klen, SL_EDIT_SET, v, a);
    struct sl_value cur, nv;
    int exists = top_get(r, g->key, g->klen, a, &cur);
    sl_rc rc = set_in(exists ? &cur : NULL, exists, g + 1, p->nseg - 1, v, a, &nv);
    if (rc)
        return rc;
    return push_edit(r, g->key, g->klen, SL_EDIT_SET, &nv, a);
}

sl_rc sl_record_set_key(struct sl_record *r, const char *key, size_t klen, const struct sl_value *v,
                        struct sl_arena *a)
{
    if (!(r->flags & SL_REC_PARSED))
        return SL_ESTATE;
    if (!root_is_object(r))
        return SL_ETYPE;
    return push_edit(r, key, klen, SL_EDIT_SET, v, a);
}

/* cur with seg[0..nseg) removed; *changed = 0 (and *out untouched) when nothing was there. */
static sl_rc del_in(const struct sl_value *cur, const struct sl_path_seg *seg, uint32_t nseg,
                    struct sl_arena *a, struct sl_value *out, int *changed)
{
    struct sl_value copy, child, nchild;
    sl_rc rc;
    *changed = 0;
    if (seg->key) {
        if (cur->type != SL_V_OBJECT)
            return SL_ETYPE;
        if (!sl_value_member(cur, seg->key, seg->klen, a, &child))
            return SL_OK;
    } else {
        if (cur->type != SL_V_ARRAY)
            return SL_ETYPE;
        if (norm_index(seg->index, cur->len) < 0)
            return SL_OK;
    }
    if ((rc = copy_level(cur, 0, a, &copy)))
        return rc;
    uint32_t k;
    if (seg->key) {
        for (k = 0; k < copy.len; k++)
            if (copy.u.members[k].klen == seg->klen &&
                (seg->klen == 0 || memcmp(copy.u.members[k].key, seg->key, seg->klen) == 0))
                break;
    } else {
        k = (uint32_t)norm_index(seg->index, cur->len);
    }
    if (nseg == 1) {
        if (seg->key)
            memmove(&copy.u.members[k], &copy.u.members[k + 1],
                    (copy.len - k - 1) * sizeof *copy.u.members);
        else
            memmove(&copy.u.items[k], &copy.u.items[k + 1],
                    (copy.len - k - 1) * sizeof *copy.u.items);
        copy.len--;
        *out = copy;
        *changed = 1;
        return SL_OK;
    }
    struct sl_value *slot = seg->key ? &copy.u.members[k].val : &copy.u.items[k];
    int ch;
    if ((rc = del_in(slot, seg + 1, nseg - 1, a, &nchild, &ch)) || !ch)
        return rc;
    *slot = nchild;
    *out = copy;
    *changed = 1;
    return SL_OK;
}

sl_rc sl_record_del(struct sl_record *r, const struct sl_path *p, struct sl_arena *a)
{
    if (!(r->flags & SL_REC_PARSED))
        return SL_ESTATE;
    if (!root_is_object(r) || p->nseg == 0 || !p->seg[0].key)
        return SL_ETYPE;
    const struct sl_path_seg *g = &p->seg[0];
    struct sl_value cur, nv;
    if (!top_get(r, g->key, g->klen, a, &cur))
        return SL_OK; /* removing a missing field changes nothing (and keeps output exact) */
    if (p->nseg == 1)
        return push_edit(r, g->key, g->klen, SL_EDIT_DEL, NULL, a);
    int changed;
    sl_rc rc = del_in(&cur, g + 1, p->nseg - 1, a, &nv, &changed);
    if (rc || !changed)
        return rc;
    return push_edit(r, g->key, g->klen, SL_EDIT_SET, &nv, a);
}

/*
 * Called per output member: keytok is the tape index of an original member's key (then
 * e is its replacing edit or NULL), or 0 for an appended member (then e is its newest SET).
 */
typedef sl_rc (*emit_fn)(void *ctx, const struct sl_record *r, uint32_t keytok,
                         const struct sl_edit *e);

/* Visit the record's current top-level members in output order (see the top of file). */
static sl_rc walk_members(const struct sl_record *r, emit_fn emit, void *ctx)
{
    const struct sl_tape *t = &r->tape;
    uint32_t i = 1, n = t->tok[0].count;
    struct sl__shadow sh;
    sl_rc rc = sl__json_shadowed(t, 0, &sh);
    if (rc)
        return rc;
    for (uint32_t k = 0; k < n; k++) {
        if (!sl__shadow_is(&sh, k)) { /* a shadowed member has a later duplicate: skip it */
            const struct sl_edit *e = r->edits ? edit_for_tok(r->edits, t, i) : NULL;
            if ((!e || e->op == SL_EDIT_SET) && (rc = emit(ctx, r, i, e)))
                break;
        }
        i = t->tok[i + 1].next;
    }
    sl__shadow_free(&sh);
    if (rc || !r->edits)
        return rc;
    /* Appended members, oldest first: the list is newest first, so index it backwards. */
    const struct sl_edit *small[32], **all = small;
    size_t ne = 0;
    for (const struct sl_edit *e = r->edits; e; e = e->next)
        ne++;
    if (ne > 32 && !(all = sl_malloc(ne * sizeof *all)))
        return SL_ENOMEM;
    size_t j = ne;
    for (const struct sl_edit *e = r->edits; e; e = e->next)
        all[--j] = e;
    for (j = 0; j < ne; j++) {
        const struct sl_edit *e = all[j], *o;
        if (e->op != SL_EDIT_SET || orig_find(t, e->key, e->klen))
            continue;
        for (o = e->next; o; o = o->next) /* an older SET of the same key came first */
            if (o->op == SL_EDIT_SET && o->klen == e->klen &&
                (e->klen == 0 || memcmp(o->key, e->key, e->klen) == 0))
                break;
        if (o)
            continue;
        const struct sl_edit *newest = edit_for(r->edits, e->key, e->klen);
        if (newest->op == SL_EDIT_SET && (rc = emit(ctx, r, 0, newest)))
            break;
    }
    if (all != small)
        sl_free(all);
    return rc;
}

struct foreach_ctx {
    struct sl_arena *a;
    sl_record_field_fn fn;
    void *ctx;
};

static sl_rc foreach_emit(void *vctx, const struct sl_record *r, uint32_t keytok,
                          const struct sl_edit *e)
{
    struct foreach_ctx *c = vctx;
    const char *key;
    size_t klen;
    struct sl_value v;
    sl_rc rc;
    if (keytok) {
        if ((rc = sl_json_str(&r->tape, keytok, c->a, &key, &klen)))
            return rc;
        if (e)
            v = e->val;
        else if ((rc = sl_value_from_tape(&r->tape, keytok + 1, c->a, &v)))
            return rc;
    } else {
        key = e->key;
        klen = e->klen;
        v = e->val;
    }
    return c->fn(c->ctx, key, klen, &v); /* non-zero stops the walk, returned as-is */
}

sl_rc sl_record_foreach(struct sl_record *r, struct sl_arena *a, sl_record_field_fn fn, void *ctx)
{
    if (!root_is_object(r))
        return SL_ETYPE;
    struct foreach_ctx c = {a, fn, ctx};
    return walk_members(r, foreach_emit, &c);
}

struct write_ctx {
    struct sl_buf *b;
    int first;
};

static sl_rc write_emit(void *vctx, const struct sl_record *r, uint32_t keytok,
                        const struct sl_edit *e)
{
    struct write_ctx *c = vctx;
    const struct sl_tape *t = &r->tape;
    sl_rc rc;
    if (!c->first && (rc = sl_buf_putc(c->b, ',')))
        return rc;
    c->first = 0;
    if (keytok && !e) {
        const struct sl_jtok *k = &t->tok[keytok], *v = &t->tok[keytok + 1];
        return sl_buf_append(c->b, t->text + k->off, v->off + v->len - k->off);
    }
    if (keytok)
        rc = sl_buf_append(c->b, t->text + t->tok[keytok].off, t->tok[keytok].len);
    else
        rc = sl_json_write_str(c->b, e->key, e->klen);
    if (rc || (rc = sl_buf_putc(c->b, ':')))
        return rc;
    return sl_value_write(&e->val, c->b);
}

sl_rc sl_record_write(const struct sl_record *r, struct sl_buf *out)
{
    if (!r->edits || !root_is_object(r))
        return sl_buf_append(out, r->text, r->text_len);
    size_t mark = out->len;
    struct write_ctx c = {out, 1};
    sl_rc rc = sl_buf_putc(out, '{');
    if (!rc)
        rc = walk_members(r, write_emit, &c);
    if (!rc)
        rc = sl_buf_putc(out, '}');
    if (rc)
        out->len = mark; /* a failed write appends nothing */
    return rc;
}

void sl_record_id_format(const uint64_t id[2], char buf[33])
{
    static const char hex[] = "0123456789abcdef";
    for (int w = 0; w < 2; w++)
        for (int k = 0; k < 16; k++)
            buf[w * 16 + k] = hex[(id[w] >> (60 - 4 * k)) & 0xF];
    buf[32] = 0;
}

#define K1 0x9E3779B97F4A7C15ull
#define K2 0xC2B2AE3D27D4EB4Full
#define K3 0x165667B19E3779F9ull
#define K4 0xD6E8FEB86659FD93ull
#define K5 0x94D049BB133111EBull

static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

/* The splitmix64 finalizer: a bijection with full avalanche. */
static inline uint64_t fmix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 31;
    return x;
}

struct idhash {
    uint64_t h0, h1, total;
};

static void idhash_word(struct idhash *h, uint64_t w)
{
    h->h0 = rotl64(h->h0 ^ (w * K1), 31) * K2 + h->h1;
    h->h1 = rotl64(h->h1 ^ (w * K3), 29) * K4 + h->h0;
}

static void idhash_str(struct idhash *h, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    idhash_word(h, (uint64_t)n);
    for (size_t i = 0; i < n; i += 8) {
        uint64_t w = 0;
        for (size_t b = 0; b < 8 && i + b < n; b++)
            w |= (uint64_t)(uint8_t)s[i + b] << (8 * b);
        idhash_word(h, w);
    }
    h->total += n + 8;
}

void sl_record_id_base(const char *pipeline, const char *source, const char *identity,
                       uint64_t base[2])
{
    struct idhash h = {0x736C756963652D30ull, 0x7265636F72642D69ull, 0}; /* "sluice-0" "record-i" */
    idhash_str(&h, pipeline);
    idhash_str(&h, source);
    idhash_str(&h, identity);
    h.h0 ^= h.total;
    h.h0 = fmix(h.h0);
    h.h1 = fmix(h.h1 + h.h0);
    h.h0 = fmix(h.h0 ^ rotl64(h.h1, 17));
    base[0] = h.h0;
    base[1] = h.h1;
}

void sl_record_id(const uint64_t base[2], uint64_t offset, uint64_t id[2])
{
    const uint64_t low48 = ((uint64_t)1 << 48) - 1;
    id[0] = offset > low48 ? base[0] ^ fmix(offset >> 48) : base[0];
    id[1] = (base[1] & ~low48) | (offset & low48);
}
