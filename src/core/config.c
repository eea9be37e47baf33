/*
 * config.c - YAML documents as trees of positioned nodes, and typed getters over them.
 *
 * libyaml parses the text (its document API, which also resolves anchors and aliases);
 * this file copies the result into a tree of struct sl_cfg_node that remembers, for every
 * node and every map key, the file and the 1-based line and column where it was written,
 * and the dotted key path that leads to it ("sinks.warehouse.retry.max_backoff"). With
 * both, any later check can say exactly where a problem is and what the user wrote:
 *
 *     p.yaml:12:18: sinks.warehouse.retry.max_backoff: "30 seconds" is not a duration;
 *     write it like 250ms, 30s, 5m or 2h
 *
 * The copy is where the untyped YAML becomes ours:
 *   - ${NAME}, ${NAME:-default} and $$ are substituted in scalar values (never in keys),
 *     so a pipeline file can take secrets and paths from the environment;
 *   - plain null, ~ and empty values are flagged is_null, and quoted scalars are flagged
 *     quoted, so "null" and "true" in quotes stay strings;
 *   - an alias is expanded into a fresh copy of its anchor's subtree, so every node has
 *     exactly one key path. Expansion is bounded (SL_CFG_MAX_NODES, SL_CFG_MAX_DEPTH): a
 *     file of nested aliases ("billion laughs") is an error, not an exhausted machine;
 *   - a key written twice in one map is an error (YAML says so; silently keeping one
 *     of them would hide a mistake).
 *
 * Typing is done on demand by the getters (sl_cfg_get_int, _duration, _size, ...): a
 * scalar stays a string until someone asks for it as a number, and the getter's error
 * names the position, the key path, what was found and how to write it instead.
 *
 * Ownership and threading: a document owns one arena; every node, string and path lives
 * in it and dies with sl_cfg_destroy. A loaded document is immutable, so any number of
 * threads may read it at once; loading itself touches no shared state except getenv.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "sluice/alloc.h"
#include "sluice/buf.h"
#include "sluice/config.h"

/* Hard limits: a config file is small; anything beyond these is a mistake or an attack. */
#define SL_CFG_MAX_FILE (8u << 20)   /* bytes of YAML text */
#define SL_CFG_MAX_NODES 200000      /* nodes after alias expansion */
#define SL_CFG_MAX_DEPTH 128         /* nesting of maps and lists */
#define SL_CFG_MAX_SCALAR (1u << 20) /* bytes of one scalar after substitution */

/*
 * State of one conversion from libyaml's document to our tree.
 *
 * Invariants:
 *   1. onstack[i] is 1 exactly while node i+1 of ydoc is being copied; meeting such a node
 *      again means an alias refers to a node that contains it.
 *   2. nodes counts every sl_cfg_node created so far; loading fails as soon as it passes
 *      SL_CFG_MAX_NODES.
 */
struct conv {
    struct sl_cfg_doc *doc;
    yaml_document_t *ydoc;
    unsigned char *onstack;
    size_t nodes;
    struct sl_buf scratch; /* substitution output, reused for every scalar */
    struct sl_error *err;
};

static const char *kind_noun(const struct sl_cfg_node *n)
{
    if (!n)
        return "nothing";
    switch (n->kind) {
    case SL_CFG_MAP:
        return "a map";
    case SL_CFG_SEQ:
        return "a list";
    case SL_CFG_SCALAR:
        return n->is_null ? "null" : "a string";
    }
    return "something else";
}

static sl_rc pos_error(struct sl_error *err, const char *file, unsigned line, unsigned col,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static sl_rc pos_error(struct sl_error *err, const char *file, unsigned line, unsigned col,
                       const char *fmt, ...)
{
    char msg[SL_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sl_error_set(err, SL_ECONFIG, "%s:%u:%u: %s", file, line, col, msg);
}

sl_rc sl_cfg_error(struct sl_error *err, const struct sl_cfg_node *node, const char *fmt, ...)
{
    char msg[SL_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!node)
        return sl_error_set(err, SL_ECONFIG, "%s", msg);
    return sl_error_set(err, SL_ECONFIG, "%s:%u:%u: %s", node->file ? node->file : "<config>",
                        node->line, node->col, msg);
}

/* ---- environment substitution ----------------------------------------------------- */

static int env_name_char(char c, int first)
{
    return c == '_' || isalpha((unsigned char)c) || (!first && isdigit((unsigned char)c));
}

/*
 * Substitute ${NAME}, ${NAME:-default} and $$ in s[0..len) into c->scratch (NUL-terminated).
 * A '$' followed by anything else is kept as written, so "price in $" needs no escaping.
 */
static sl_rc substitute(struct conv *c, const char *s, size_t len, unsigned line, unsigned col,
                        const char *keypath)
{
    struct sl_buf *b = &c->scratch;
    const char *file = c->doc->path;
    sl_buf_clear(b);
    for (size_t i = 0; i < len;) {
        sl_rc rc;
        if (s[i] != '$' || i + 1 >= len || (s[i + 1] != '$' && s[i + 1] != '{')) {
            rc = sl_buf_putc(b, s[i++]);
        } else if (s[i + 1] == '$') {
            rc = sl_buf_putc(b, '$');
            i += 2;
        } else {
            size_t start = i + 2, j = start;
            while (j < len && env_name_char(s[j], j == start))
                j++;
            const char *close = memchr(s + j, '}', len - j);
            if (!close)
                return pos_error(c->err, file, line, col,
                                 "%s: unterminated \"${\" (write $$ for a literal $)", keypath);
            if (j == start || (s[j] != '}' && !(j + 1 < len && s[j] == ':' && s[j + 1] == '-')))
                return pos_error(c->err, file, line, col,
                                 "%s: \"%.*s\" is not a valid variable reference; write "
                                 "${NAME} or ${NAME:-default} (write $$ for a literal $)",
                                 keypath, (int)(close - s - i + 1), s + i);
            char name[256];
            size_t nlen = j - start;
            if (nlen >= sizeof name)
                return pos_error(c->err, file, line, col, "%s: variable name too long", keypath);
            memcpy(name, s + start, nlen);
            name[nlen] = '\0';
            const char *val = getenv(name);
            if (s[j] == ':') {
                if (!val || !*val) {
                    val = s + j + 2;
                    rc = sl_buf_append(b, val, (size_t)(close - val));
                } else {
                    rc = sl_buf_puts(b, val);
                }
            } else if (!val) {
                return pos_error(c->err, file, line, col,
                                 "%s: environment variable %s is not set; set it or write "
                                 "${%s:-default}",
                                 keypath, name, name);
            } else {
                rc = sl_buf_puts(b, val);
            }
            i = (size_t)(close - s) + 1;
        }
        if (rc == SL_ELIMIT)
            return pos_error(c->err, file, line, col,
                             "%s: value longer than %u bytes after substitution", keypath,
                             SL_CFG_MAX_SCALAR);
        if (rc)
            return sl_error_set(c->err, rc, "out of memory while loading %s", file);
    }
    if (sl_buf_cstr(b))
        return sl_error_set(c->err, SL_ENOMEM, "out of memory while loading %s", file);
    return SL_OK;
}

/* ---- conversion from libyaml's tree ---------------------------------------------- */

static const char *child_path(struct sl_arena *a, const char *parent, const char *key)
{
    if (!*parent)
        return sl_arena_strdup(a, key);
    return sl_arena_printf(a, "%s.%s", parent, key);
}

static int is_null_text(const char *s)
{
    return !*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

static sl_rc nomem(struct conv *c)
{
    return sl_error_set(c->err, SL_ENOMEM, "out of memory while loading %s", c->doc->path);
}

struct key_ref {
    const char *key;
    size_t idx;
};

static int key_ref_cmp(const void *a, const void *b)
{
    const struct key_ref *x = a, *y = b;
    int d = strcmp(x->key, y->key);
    if (d)
        return d;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* A key written twice in one map: report the second at its position. */
static sl_rc check_duplicates(struct conv *c, const struct sl_cfg_node *m)
{
    size_t first = 0, second = 0;
    int found = 0;
    if (m->n <= 16) {
        for (size_t i = 1; i < m->n && !found; i++)
            for (size_t j = 0; j < i; j++)
                if (strcmp(m->pairs[i].key, m->pairs[j].key) == 0) {
                    first = j, second = i, found = 1;
                    break;
                }
    } else {
        struct key_ref *refs = sl_malloc(m->n * sizeof *refs);
        if (!refs)
            return nomem(c);
        for (size_t i = 0; i < m->n; i++)
            refs[i] = (struct key_ref){m->pairs[i].key, i};
        qsort(refs, m->n, sizeof *refs, key_ref_cmp);
        for (size_t i = 1; i < m->n; i++)
            if (strcmp(refs[i].key, refs[i - 1].key) == 0 && (!found || refs[i].idx < second)) {
                first = refs[i - 1].idx, second = refs[i].idx, found = 1;
            }
        sl_free(refs);
    }
    if (!found)
        return SL_OK;
    const struct sl_cfg_pair *p = &m->pairs[second], *q = &m->pairs[first];
    return pos_error(c->err, c->doc->path, p->line, p->col,
                     "duplicate key \"%s\"%s%s (first written at line %u); remove one of them",
                     p->key, *m->keypath ? " in " : "", m->keypath, q->line);
}

static sl_rc convert(struct conv *c, int id, const char *keypath, unsigned depth,
                     struct sl_cfg_node **out)
{
    yaml_node_t *y = yaml_document_get_node(c->ydoc, id);
    if (!y)
        return sl_error_set(c->err, SL_ECONFIG, "%s: malformed document", c->doc->path);
    unsigned line = (unsigned)y->start_mark.line + 1, col = (unsigned)y->start_mark.column + 1;
    const char *file = c->doc->path;
    if (depth > SL_CFG_MAX_DEPTH)
        return pos_error(c->err, file, line, col, "nested more than %d levels deep",
                         SL_CFG_MAX_DEPTH);
    if (++c->nodes > SL_CFG_MAX_NODES)
        return pos_error(c->err, file, line, col,
                         "more than %d values (after expanding aliases); a configuration "
                         "this large is not supported",
                         SL_CFG_MAX_NODES);
    if (c->onstack[id - 1])
        return pos_error(c->err, file, line, col, "%s: an alias refers to a node that contains it",
                         keypath);

    /* Messages name the key path; the root has none, so it is called by what it is. */
    const char *where = *keypath ? keypath : "the document";
    struct sl_arena *a = &c->doc->arena;
    struct sl_cfg_node *n = sl_arena_calloc(a, sizeof *n);
    if (!n)
        return nomem(c);
    n->file = file;
    n->line = line;
    n->col = col;
    n->keypath = keypath;
    sl_rc rc = SL_OK;
    c->onstack[id - 1] = 1;

    switch (y->type) {
    case YAML_SCALAR_NODE: {
        const char *v = (const char *)y->data.scalar.value;
        size_t len = y->data.scalar.length;
        n->kind = SL_CFG_SCALAR;
        if (memchr(v, '\0', len)) {
            rc = pos_error(c->err, file, line, col, "%s: value contains a NUL character", where);
            break;
        }
        n->quoted = y->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        n->is_null = !n->quoted && is_null_text(v);
        if (!memchr(v, '$', len)) {
            n->str = sl_arena_strndup(a, v, len);
        } else {
            rc = substitute(c, v, len, line, col, where);
            if (rc)
                break;
            n->str = sl_arena_strndup(a, c->scratch.data, c->scratch.len);
        }
        if (!n->str)
            rc = nomem(c);
        break;
    }
    case YAML_SEQUENCE_NODE: {
        yaml_node_item_t *it = y->data.sequence.items.start;
        size_t cnt = (size_t)(y->data.sequence.items.top - it);
        n->kind = SL_CFG_SEQ;
        n->items = sl_arena_calloc(a, (cnt ? cnt : 1) * sizeof *n->items);
        if (!n->items) {
            rc = nomem(c);
            break;
        }
        for (size_t i = 0; i < cnt && !rc; i++) {
            const char *cp = sl_arena_printf(a, "%s[%zu]", keypath, i);
            if (!cp)
                rc = nomem(c);
            else
                rc = convert(c, it[i], cp, depth + 1, &n->items[i]);
            if (!rc)
                n->n++;
        }
        break;
    }
    case YAML_MAPPING_NODE: {
        yaml_node_pair_t *pr = y->data.mapping.pairs.start;
        size_t cnt = (size_t)(y->data.mapping.pairs.top - pr);
        n->kind = SL_CFG_MAP;
        n->pairs = sl_arena_calloc(a, (cnt ? cnt : 1) * sizeof *n->pairs);
        if (!n->pairs) {
            rc = nomem(c);
            break;
        }
        for (size_t i = 0; i < cnt && !rc; i++) {
            yaml_node_t *k = yaml_document_get_node(c->ydoc, pr[i].key);
            if (!k) {
                rc = sl_error_set(c->err, SL_ECONFIG, "%s: malformed document", file);
                break;
            }
            struct sl_cfg_pair *p = &n->pairs[i];
            p->line = (unsigned)k->start_mark.line + 1;
            p->col = (unsigned)k->start_mark.column + 1;
            if (k->type != YAML_SCALAR_NODE) {
                rc = pos_error(
                    c->err, file, p->line, p->col, "%s%skeys must be plain names, not %s", keypath,
                    *keypath ? ": " : "", k->type == YAML_MAPPING_NODE ? "maps" : "lists");
                break;
            }
            const char *kv = (const char *)k->data.scalar.value;
            if (memchr(kv, '\0', k->data.scalar.length)) {
                rc = pos_error(c->err, file, p->line, p->col, "key contains a NUL character");
                break;
            }
            p->key = sl_arena_strndup(a, kv, k->data.scalar.length);
            const char *cp = p->key ? child_path(a, keypath, p->key) : NULL;
            if (!cp) {
                rc = nomem(c);
                break;
            }
            rc = convert(c, pr[i].value, cp, depth + 1, &p->val);
            if (!rc)
                n->n++;
        }
        if (!rc)
            rc = check_duplicates(c, n);
        break;
    }
    default:
        rc = pos_error(c->err, file, line, col, "empty node");
        break;
    }
    c->onstack[id - 1] = 0;
    if (!rc)
        *out = n;
    return rc;
}

/* ---- loading ----------------------------------------------------------------------- */

static sl_rc yaml_error(struct sl_error *err, const char *file, const yaml_parser_t *p)
{
    const yaml_mark_t *m = &p->problem_mark;
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (p->error == YAML_MEMORY_ERROR)
        return sl_error_set(err, SL_ENOMEM, "out of memory while parsing %s", file);
    if (p->context)
        return sl_error_set(err, SL_ECONFIG, "%s:%u:%u: %s %s (at line %u)", file,
                            (unsigned)m->line + 1, (unsigned)m->column + 1, problem, p->context,
                            (unsigned)p->context_mark.line + 1);
    return sl_error_set(err, SL_ECONFIG, "%s:%u:%u: %s", file, (unsigned)m->line + 1,
                        (unsigned)m->column + 1, problem);
}

void sl_cfg_destroy(struct sl_cfg_doc *doc)
{
    if (!doc)
        return;
    sl_arena_fini(&doc->arena);
    sl_free(doc);
}

/* The document for text, with path/dir already decided; does not take ownership of text. */
static sl_rc load_text(const char *text, size_t len, const char *name, const char *dir,
                       struct sl_cfg_doc **out, struct sl_error *err)
{
    sl_rc rc = SL_OK;
    yaml_parser_t parser;
    yaml_document_t ydoc;
    int have_parser = 0, have_doc = 0;
    struct conv c = {0};
    struct sl_cfg_doc *doc = sl_calloc(1, sizeof *doc);
    if (!doc)
        return sl_error_set(err, SL_ENOMEM, "out of memory while loading %s", name);
    sl_arena_init(&doc->arena, 16 * 1024);
    doc->path = sl_arena_strdup(&doc->arena, name);
    doc->dir = sl_arena_strdup(&doc->arena, dir);
    if (!doc->path || !doc->dir) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory while loading %s", name);
        goto out;
    }
    if (len > SL_CFG_MAX_FILE) {
        rc = sl_error_set(err, SL_ECONFIG, "%s: file is larger than %u MiB; not a configuration",
                          name, SL_CFG_MAX_FILE >> 20);
        goto out;
    }
    if (!yaml_parser_initialize(&parser)) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory while parsing %s", name);
        goto out;
    }
    have_parser = 1;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &ydoc)) {
        rc = yaml_error(err, name, &parser);
        goto out;
    }
    have_doc = 1;
    size_t ynodes = (size_t)(ydoc.nodes.top - ydoc.nodes.start);
    if (ynodes) {
        c.doc = doc;
        c.ydoc = &ydoc;
        c.err = err;
        sl_buf_init(&c.scratch, SL_CFG_MAX_SCALAR);
        c.onstack = sl_calloc(ynodes, 1);
        if (!c.onstack) {
            rc = sl_error_set(err, SL_ENOMEM, "out of memory while loading %s", name);
            goto out;
        }
        rc = convert(&c, 1, "", 0, &doc->root);
        sl_free(c.onstack);
        sl_buf_fini(&c.scratch);
        if (rc)
            goto out;
    }
    *out = doc;
    doc = NULL;
out:
    if (have_doc)
        yaml_document_delete(&ydoc);
    if (have_parser)
        yaml_parser_delete(&parser);
    sl_cfg_destroy(doc);
    return rc;
}

sl_rc sl_cfg_load_string(const char *text, size_t len, const char *name, const char *dir,
                         struct sl_cfg_doc **out, struct sl_error *err)
{
    return load_text(text, len, name ? name : "<string>", dir ? dir : ".", out, err);
}

/* The absolute directory holding path (the process's directory when path has no '/'). */
static char *abs_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash)
        dir = sl_strdup(".");
    else if (slash == path)
        dir = sl_strdup("/");
    else
        dir = sl_strndup(path, (size_t)(slash - path));
    if (!dir)
        return NULL;
    char *real = realpath(dir, NULL);
    if (real) {
        char *copy = sl_strdup(real);
        free(real);
        sl_free(dir);
        return copy;
    }
    return dir; /* the file was readable, so this is rare; keep what we were given */
}

sl_rc sl_cfg_load(const char *path, struct sl_cfg_doc **out, struct sl_error *err)
{
    sl_rc rc = SL_OK;
    struct sl_buf text;
    char *dir = NULL;
    sl_buf_init(&text, SL_CFG_MAX_FILE + 1);
    FILE *f = fopen(path, "rb");
    if (!f)
        return sl_error_sys(err, errno == ENOENT ? SL_ENOENT : SL_EIO, errno, "cannot open %s",
                            path);
    for (;;) {
        if (text.cap - text.len < 4096) {
            rc = sl_buf_reserve(&text, 4096);
            if (rc == SL_ELIMIT) {
                rc = sl_error_set(err, SL_ECONFIG,
                                  "%s: file is larger than %u MiB; not a configuration", path,
                                  SL_CFG_MAX_FILE >> 20);
                goto out;
            }
            if (rc) {
                rc = sl_error_set(err, SL_ENOMEM, "out of memory reading %s", path);
                goto out;
            }
        }
        size_t got = fread(text.data + text.len, 1, text.cap - text.len, f);
        text.len += got;
        if (got == 0) {
            if (ferror(f)) {
                rc = sl_error_sys(err, SL_EIO, errno, "cannot read %s", path);
                goto out;
            }
            break;
        }
    }
    dir = abs_dir_of(path);
    if (!dir) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory reading %s", path);
        goto out;
    }
    rc = load_text(text.data ? text.data : "", text.len, path, dir, out, err);
out:
    fclose(f);
    sl_free(dir);
    sl_buf_fini(&text);
    return rc;
}

/* ---- lookups ----------------------------------------------------------------------- */

const struct sl_cfg_pair *sl_cfg_pair(const struct sl_cfg_node *map, const char *key)
{
    if (!map || map->kind != SL_CFG_MAP || !key)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->pairs[i].key, key) == 0)
            return &map->pairs[i];
    return NULL;
}

const struct sl_cfg_node *sl_cfg_get(const struct sl_cfg_node *map, const char *key)
{
    const struct sl_cfg_pair *p = sl_cfg_pair(map, key);
    return p ? p->val : NULL;
}

/* ---- parsing scalars --------------------------------------------------------------- */

/*
 * A non-negative decimal number "12", "1.5", ".5" at s; *whole and the fraction as
 * frac/10^fdig (at most 9 fraction digits). Returns the end, or NULL when there is none.
 */
static const char *parse_decimal(const char *s, uint64_t *whole, uint64_t *frac, unsigned *fdig)
{
    const char *p = s;
    uint64_t w = 0, f = 0;
    unsigned fd = 0;
    int digits = 0;
    while (isdigit((unsigned char)*p)) {
        unsigned d = (unsigned)(*p - '0');
        if (w > (UINT64_MAX - d) / 10)
            return NULL;
        w = w * 10 + d;
        p++, digits++;
    }
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p)) {
            if (fd >= 9)
                return NULL;
            f = f * 10 + (uint64_t)(*p - '0');
            fd++, p++, digits++;
        }
        if (fd == 0)
            return NULL;
    }
    if (!digits)
        return NULL;
    *whole = w;
    *frac = f;
    *fdig = fd;
    return p;
}

/* whole.frac * mult, truncated; -1 on overflow. */
static int scale(uint64_t whole, uint64_t frac, unsigned fdig, uint64_t mult, uint64_t *out)
{
    if (mult && whole > UINT64_MAX / mult)
        return -1;
    uint64_t v = whole * mult, div = 1;
    for (unsigned i = 0; i < fdig; i++)
        div *= 10;
    /* frac < 10^9 and mult <= 2^40 (TiB) or 86400000 (d): the product fits easily. */
    uint64_t part = (uint64_t)(((unsigned __int128)frac * mult) / div);
    if (v > UINT64_MAX - part)
        return -1;
    *out = v + part;
    return 0;
}

struct unit {
    const char *name;
    uint64_t mult;
};

static int parse_with_units(const char *s, const struct unit *units, int unitless_ok, uint64_t *out)
{
    uint64_t whole, frac, v;
    unsigned fdig;
    if (!s)
        return -1;
    while (*s == ' ')
        s++;
    const char *p = parse_decimal(s, &whole, &frac, &fdig);
    if (!p)
        return -1;
    while (*p == ' ')
        p++;
    size_t ulen = strlen(p);
    while (ulen && p[ulen - 1] == ' ')
        ulen--;
    if (ulen == 0) {
        if (!unitless_ok && (whole != 0 || frac != 0))
            return -1;
        if (fdig && unitless_ok)
            return -1; /* fractional bytes */
        *out = whole;
        return 0;
    }
    for (const struct unit *u = units; u->name; u++)
        if (strlen(u->name) == ulen && strncasecmp(p, u->name, ulen) == 0) {
            if (scale(whole, frac, fdig, u->mult, &v))
                return -1;
            *out = v;
            return 0;
        }
    return -1;
}

int sl_parse_duration(const char *s, uint64_t *ms)
{
    static const struct unit units[] = {
        {"ms", 1},          {"s", 1000},          {"m", 60 * 1000},
        {"h", 3600 * 1000}, {"d", 86400 * 1000u}, {NULL, 0},
    };
    uint64_t v;
    if (parse_with_units(s, units, 0, &v))
        return -1;
    *ms = v;
    return 0;
}

int sl_parse_size(const char *s, uint64_t *bytes)
{
    static const struct unit units[] = {
        {"B", 1},
        {"KiB", 1ull << 10},
        {"MiB", 1ull << 20},
        {"GiB", 1ull << 30},
        {"TiB", 1ull << 40},
        {"KB", 1000ull},
        {"MB", 1000ull * 1000},
        {"GB", 1000ull * 1000 * 1000},
        {"TB", 1000ull * 1000 * 1000 * 1000},
        {NULL, 0},
    };
    uint64_t v;
    if (parse_with_units(s, units, 1, &v))
        return -1;
    *bytes = v;
    return 0;
}

int sl_parse_bool(const char *s, int *b)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    if (!s)
        return -1;
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *b = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *b = 0;
            return 0;
        }
    }
    return -1;
}

static int parse_int(const char *s, int64_t *out)
{
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE || *end)
        return -1;
    *out = v;
    return 0;
}

/* ---- typed getters ----------------------------------------------------------------- */

static const char *kp(const struct sl_cfg_node *n)
{
    return n->keypath ? n->keypath : "";
}

/* SL_OK when v is a non-null scalar; otherwise SL_ECONFIG naming what was expected. */
static sl_rc scalar_at(const struct sl_cfg_node *v, const char *expected, struct sl_error *err)
{
    if (v->kind == SL_CFG_SCALAR && !v->is_null)
        return SL_OK;
    return sl_cfg_error(err, v, "%s: expected %s, found %s", kp(v), expected, kind_noun(v));
}

sl_rc sl_cfg_get_str(const struct sl_cfg_node *map, const char *key, const char *def,
                     const char **out, struct sl_error *err)
{
    const struct sl_cfg_node *v = sl_cfg_get(map, key);
    if (!v) {
        *out = def;
        return SL_OK;
    }
    sl_rc rc = scalar_at(v, "a string", err);
    if (rc)
        return rc;
    *out = v->str;
    return SL_OK;
}

sl_rc sl_cfg_get_int(const struct sl_cfg_node *map, const char *key, int64_t def, int64_t *out,
                     struct sl_error *err)
{
    const struct sl_cfg_node *v = sl_cfg_get(map, key);
    int64_t x;
    if (!v) {
        *out = def;
        return SL_OK;
    }
    sl_rc rc = scalar_at(v, "an integer", err);
    if (rc)
        return rc;
    if (parse_int(v->str, &x))
        return sl_cfg_error(err, v, "%s: \"%s\" is not an integer; write it like 10 or -3", kp(v),
                            v->str);
    *out = x;
    return SL_OK;
}

sl_rc sl_cfg_get_bool(const struct sl_cfg_node *map, const char *key, int def, int *out,
                      struct sl_error *err)
{
    const struct sl_cfg_node *v = sl_cfg_get(map, key);
    int x;
    if (!v) {
        *out = def;
        return SL_OK;
    }
    sl_rc rc = scalar_at(v, "true or false", err);
    if (rc)
        return rc;
    if (sl_parse_bool(v->str, &x))
        return sl_cfg_error(err, v, "%s: \"%s\" is not a boolean; write true or false", kp(v),
                            v->str);
    *out = x;
    return SL_OK;
}

sl_rc sl_cfg_get_duration(const struct sl_cfg_node *map, const char *key, uint64_t def_ms,
                          uint64_t *out_ms, struct sl_error *err)
{
    const struct sl_cfg_node *v = sl_cfg_get(map, key);
    uint64_t x;
    if (!v) {
        *out_ms = def_ms;
        return SL_OK;
    }
    sl_rc rc = scalar_at(v, "a duration", err);
    if (rc)
        return rc;
    if (sl_parse_duration(v->str, &x))
        return sl_cfg_error(err, v,
                            "%s: \"%s\" is not a duration; write it like 250ms, 30s, 5m or 2h",
                            kp(v), v->str);
    *out_ms = x;
    return SL_OK;
}

sl_rc sl_cfg_get_size(const struct sl_cfg_node *map, const char *key, uint64_t def, uint64_t *out,
                      struct sl_error *err)
{
    const struct sl_cfg_node *v = sl_cfg_get(map, key);
    uint64_t x;
    if (!v) {
        *out = def;
        return SL_OK;
    }
    sl_rc rc = scalar_at(v, "a size", err);
    if (rc)
        return rc;
    if (sl_parse_size(v->str, &x))
        return sl_cfg_error(err, v,
                            "%s: \"%s\" is not a size; write it like 512, 64KiB, 256MiB or 1GiB",
                            kp(v), v->str);
    *out = x;
    return SL_OK;
}

const char *sl_cfg_resolve_path(struct sl_arena *a, const char *dir, const char *path)
{
    if (!path)
        return NULL;
    if (path[0] == '/' || !dir || !*dir || strcmp(dir, ".") == 0)
        return sl_arena_strdup(a, path);
    while (path[0] == '.' && path[1] == '/')
        path += 2;
    if (strcmp(path, ".") == 0 || !*path)
        return sl_arena_strdup(a, dir);
    size_t dl = strlen(dir);
    return sl_arena_printf(a, "%s%s%s", dir, dir[dl - 1] == '/' ? "" : "/", path);
}

sl_rc sl_cfg_get_path(const struct sl_cfg_doc *doc, const struct sl_cfg_node *map, const char *key,
                      const char *def, const char **out, struct sl_error *err)
{
    const char *s;
    sl_rc rc = sl_cfg_get_str(map, key, def, &s, err);
    if (rc)
        return rc;
    if (!s) {
        *out = NULL;
        return SL_OK;
    }
    if (!*s) {
        const struct sl_cfg_node *v = sl_cfg_get(map, key);
        return sl_cfg_error(err, v, "%s: the path is empty", v ? kp(v) : key);
    }
    /* The arena is the document's; resolving a path adds to it but changes no node. */
    const char *r = sl_cfg_resolve_path((struct sl_arena *)&doc->arena, doc->dir, s);
    if (!r)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    *out = r;
    return SL_OK;
}

/* ---- suggestions ------------------------------------------------------------------- */

/* Edit distance with adjacent transpositions ("paht""path" is 1), case-insensitive. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    size_t d[65][65];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int same = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]);
            size_t best = d[i - 1][j - 1] + !same;
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 &&
                tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == tolower((unsigned char)b[j - 1]) &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

const char *sl_suggest(const char *word, const char *const *choices, size_t n)
{
    if (!word || !choices)
        return NULL;
    size_t wl = strlen(word);
    size_t limit = wl / 3 > 2 ? wl / 3 : 2;
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        if (!choices[i])
            continue;
        size_t d = edit_distance(word, choices[i]);
        /* A "suggestion" that shares nothing with the word helps nobody. */
        if (d > limit || d >= strlen(choices[i]) || d >= wl)
            continue;
        if (d < best_d) {
            best_d = d;
            best = choices[i];
        }
    }
    return best;
}
