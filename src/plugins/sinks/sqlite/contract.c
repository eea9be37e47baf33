/*
 * contract.c - the sqlite sink's `contract` option: the table's columns come from a data
 * contract, and the contract is stored beside the table.
 *
 * At init, in one transaction: read the table's row of _sluice_contracts; when its text
 * differs from the configured contract, require the new one to be backward compatible
 * (sl_contract_compare) and otherwise fail listing every breaking change; create the
 * table from the contract's top-level properties, or add a column per property the table
 * lacks; store the contract. Columns are never dropped, renamed, retyped or NOT NULL
 * (docs/sinks.md says why). The row is keyed by table: columns belong to the table.
 *
 * Threading: runs once, in init, on the sink's thread.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sluice/alloc.h"
#include "sluice/json.h"
#include "sluice/log.h"
#include "sqlite_int.h"

static const char contracts_table[] =
    "CREATE TABLE IF NOT EXISTS _sluice_contracts(sink TEXT NOT NULL,"
    " tbl TEXT NOT NULL COLLATE NOCASE PRIMARY KEY, name TEXT NOT NULL, version TEXT NOT NULL,"
    " text TEXT NOT NULL, applied_ns INTEGER NOT NULL)";

/* The declared type of a column for a contract type ("" declares none: any value). */
static const char *contract_sqltype(const char *type)
{
    if (strcmp(type, "integer") == 0 || strcmp(type, "boolean") == 0)
        return " INTEGER";
    if (strcmp(type, "number") == 0)
        return " REAL";
    if (strcmp(type, "string") == 0 || strcmp(type, "object") == 0 || strcmp(type, "array") == 0)
        return " TEXT";
    return "";
}

/*
 * 1 when the contract's root object says additionalProperties: false (fields beyond its
 * properties are then rejected instead of becoming columns). The contract API does not
 * expose the keyword, so the stored text is read; it loaded, so it parses.
 */
sl_rc sl__sqlite_contract_is_closed(const struct sl_contract *c, int *closed, struct sl_error *err)
{
    static const char kw[] = "\"additionalProperties\"";
    struct sl_json_parser *p;
    struct sl_arena a;
    struct sl_tape t;
    struct sl_json_error je;
    size_t n;
    const char *text = sl_contract_text(c, &n);
    *closed = 0;
    if (sl_json_parser_create(&p) != SL_OK)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    sl_arena_init(&a, 0);
    sl_rc rc = sl_json_parse(p, text, n, 0, &a, &t, &je);
    if (rc == SL_OK && t.tok[0].type == SL_J_OBJECT) {
        uint32_t j = 1;
        for (uint32_t k = 0; k < t.tok[0].count; k++) {
            const struct sl_jtok *key = &t.tok[j], *val = &t.tok[j + 1];
            if (key->len == sizeof kw - 1 && memcmp(text + key->off, kw, key->len) == 0)
                *closed = val->type == SL_J_FALSE;
            j = val->next;
        }
    } else if (rc == SL_OK) {
        rc = SL_EPARSE;
    }
    sl_arena_fini(&a);
    sl_json_parser_destroy(p);
    if (rc)
        return sl_error_set(err, rc, "contract %s: reading its text again: %s",
                            sl_contract_label(c), rc == SL_EPARSE ? je.msg : sl_strerror(rc));
    return SL_OK;
}

/* The changes sl_contract_compare reports, as "path: reason; ..." (breaking ones apart). */
struct change_list {
    struct sl_buf breaking, other;
    sl_rc rc;
};

static int collect_change(void *ctx, const struct sl_contract_change *ch)
{
    struct change_list *l = ctx;
    struct sl_buf *o = (ch->breaks & SL_COMPAT_BACKWARD) ? &l->breaking : &l->other;
    if (l->rc == SL_OK)
        l->rc = sl_buf_printf(o, "%s%s: %s", o->len ? "; " : "", ch->path, ch->reason);
    return 0;
}

/* CREATE TABLE with the id column and one column per contract property. */
static sl_rc contract_create_table(struct sqlite_sink *s, const struct sl_contract_field *f,
                                   size_t nf, struct sl_error *err)
{
    struct sl_buf *q = &s->sql;
    sl_rc rc;
    int first = 1;
    sl_buf_clear(q);
    if ((rc = sl_buf_puts(q, "CREATE TABLE ")) ||
        (rc = sl__sqlite_put_ident(q, s->table, strlen(s->table))) || (rc = sl_buf_putc(q, '(')))
        goto nomem;
    if (s->id_column) {
        if ((rc = sl__sqlite_put_ident(q, s->id_column, strlen(s->id_column))) ||
            (rc = sl_buf_puts(q, s->key ? " TEXT" : " TEXT UNIQUE")))
            goto nomem;
        first = 0;
    }
    for (size_t i = 0; i < nf; i++) {
        size_t n = strlen(f[i].name);
        int is_key = s->key && sl__sqlite_name_eq(f[i].name, n, s->key, strlen(s->key));
        if ((rc = sl_buf_puts(q, first ? "" : ", ")) ||
            (rc = sl__sqlite_put_ident(q, f[i].name, n)) ||
            (rc = sl_buf_puts(q, contract_sqltype(f[i].type))) ||
            (rc = sl_buf_puts(q, is_key ? " PRIMARY KEY" : "")))
            goto nomem;
        first = 0;
    }
    if ((rc = sl_buf_putc(q, ')')))
        goto nomem;
    return sl__sqlite_exec_sql(s, q->data, q->len, "creating the table from the contract", err);
nomem:
    return sl_error_set(err, rc, "building SQL: %s", sl_strerror(rc));
}

/* ALTER TABLE ADD COLUMN for every property that is not a column yet; *added counts them. */
static sl_rc contract_add_columns(struct sqlite_sink *s, const struct sl_contract_field *f,
                                  size_t nf, int *added, struct sl_error *err)
{
    struct sl_buf *q = &s->sql;
    sl_rc rc;
    for (size_t i = 0; i < nf; i++) {
        size_t n = strlen(f[i].name);
        if (sl__sqlite_find_col(s, f[i].name, n) >= 0)
            continue;
        sl_buf_clear(q);
        if ((rc = sl_buf_puts(q, "ALTER TABLE ")) ||
            (rc = sl__sqlite_put_ident(q, s->table, strlen(s->table))) ||
            (rc = sl_buf_puts(q, " ADD COLUMN ")) || (rc = sl__sqlite_put_ident(q, f[i].name, n)) ||
            (rc = sl_buf_puts(q, contract_sqltype(f[i].type))))
            return sl_error_set(err, rc, "building SQL: %s", sl_strerror(rc));
        if ((rc = sl__sqlite_exec_sql(s, q->data, q->len, "adding a column for the contract", err)))
            return rc;
        sl_info(s->name, "added column %s%s to %s for contract %s", f[i].name,
                contract_sqltype(f[i].type), s->table, sl_contract_label(s->contract));
        (*added)++;
    }
    return SL_OK;
}

/* Store (or replace) the contract row of the table. */
static sl_rc contract_store(struct sqlite_sink *s, struct sl_error *err)
{
    static const char q[] =
        "INSERT INTO _sluice_contracts(sink, tbl, name, version, text, applied_ns)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(tbl) DO UPDATE SET sink = excluded.sink,"
        " name = excluded.name, version = excluded.version, text = excluded.text,"
        " applied_ns = excluded.applied_ns";
    struct timespec now;
    size_t n;
    const char *text = sl_contract_text(s->contract, &n);
    sqlite3_stmt *st;
    sl_rc rc = sl__sqlite_prepare(s, q, sizeof q - 1, &st, err);
    if (rc)
        return rc;
    clock_gettime(CLOCK_REALTIME, &now);
    sqlite3_bind_text(st, 1, s->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, s->table, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, sl_contract_name(s->contract), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, sl_contract_version(s->contract), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, text, (int)n, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)now.tv_sec * 1000000000 + now.tv_nsec);
    int src = sqlite3_step(st);
    rc = src == SQLITE_DONE ? SL_OK : sl__sqlite_db_error(s, src, err, "storing the contract");
    sqlite3_finalize(st);
    return rc;
}

/*
 * Compare the stored contract (old) with the configured one: SL_OK when backward
 * compatible (the changes are logged), SL_ECONFIG listing the breaking changes otherwise.
 */
static sl_rc contract_check_evolution(struct sqlite_sink *s, const char *old_text, size_t old_n,
                                      const char *old_label, struct sl_error *err)
{
    struct sl_contract *old = NULL;
    struct change_list l = {.rc = SL_OK};
    int incompatible = 0;
    const char *label = sl_contract_label(s->contract);
    char what[160];
    snprintf(what, sizeof what, "the contract of table %s stored in %s", s->table, s->path);
    sl_rc rc = sl_contract_load_mem(old_text, old_n, what, &old, err);
    if (rc) {
        sl_error_prefix(err,
                        "sink %s: cannot read %s back (%s): delete its row from "
                        "_sluice_contracts to adopt %s: ",
                        s->name, what, old_label, label);
        return rc == SL_ENOMEM ? rc : SL_ECONFIG;
    }
    sl_buf_init(&l.breaking, 1 << 16);
    sl_buf_init(&l.other, 1 << 16);
    rc = sl_contract_compare(old, s->contract, SL_COMPAT_BACKWARD, collect_change, &l,
                             &incompatible, err);
    if (rc == SL_OK && l.rc == SL_ELIMIT)
        l.rc = SL_OK; /* the lists are for people; 64 KiB of them is plenty */
    if (rc == SL_OK && (rc = l.rc))
        sl_error_set(err, rc, "out of memory");
    if (rc == SL_OK && ((rc = sl_buf_cstr(&l.breaking)) || (rc = sl_buf_cstr(&l.other))))
        sl_error_set(err, rc, "out of memory");
    if (rc == SL_OK && incompatible) {
        rc = sl_error_set(
            err, SL_ECONFIG,
            "sinks.%s.contract: %s (%s) is not backward compatible with %s, the contract table "
            "%s in %s was built for: %s. Nothing was changed. Either write to a new table "
            "(table: %s_v2), or migrate table %s yourself and then run \"DELETE FROM "
            "_sluice_contracts WHERE tbl = '%s'\" in %s so that the next start adopts %s "
            "(adding the columns the table lacks)",
            s->name, label, s->contract_path, old_label, s->table, s->path, l.breaking.data,
            s->table, s->table, s->table, s->path, label);
    } else if (rc == SL_OK) {
        sl_info(s->name, "table %s: contract %s -> %s (backward compatible)%s%s", s->table,
                old_label, label, l.other.len ? ": " : "", l.other.len ? l.other.data : "");
    }
    sl_buf_fini(&l.breaking);
    sl_buf_fini(&l.other);
    sl_contract_destroy(old);
    return rc;
}

/*
 * Start with a contract (not inspect): in one transaction, read the table's stored
 * contract; when it differs, check that the configured one is backward compatible; create
 * the table from the contract or add the columns of new properties; store the contract.
 */
sl_rc sl__sqlite_contract_apply(struct sqlite_sink *s, struct sl_error *err)
{
    static const char get[] =
        "SELECT name || '@' || version, text FROM _sluice_contracts WHERE tbl = ?1";
    const struct sl_contract_field *f;
    size_t nf = sl_contract_fields(s->contract, &f), n;
    const char *text = sl_contract_text(s->contract, &n);
    sqlite3_stmt *st = NULL;
    int added = 0, same = 0, stored = 0;
    sl_rc rc;
    if (s->key && s->ncols == 0) {
        size_t i;
        for (i = 0;
             i < nf && !sl__sqlite_name_eq(f[i].name, strlen(f[i].name), s->key, strlen(s->key));
             i++)
            ;
        if (i == nf)
            return sl_error_set(err, SL_ECONFIG,
                                "sinks.%s.key: \"%s\" is not a property of contract %s (%s); "
                                "add it to the contract's properties or choose another key",
                                s->name, s->key, sl_contract_label(s->contract), s->contract_path);
    }
    if ((rc = sl__sqlite_step_done(s, s->begin, "starting the contract transaction", err)))
        return rc;
    if ((rc = sl__sqlite_exec_sql(s, contracts_table, sizeof contracts_table - 1,
                                  "creating _sluice_contracts", err)) ||
        (rc = sl__sqlite_prepare(s, get, sizeof get - 1, &st, err)))
        goto fail;
    sqlite3_bind_text(st, 1, s->table, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        const char *old = (const char *)sqlite3_column_text(st, 1);
        size_t on = (size_t)sqlite3_column_bytes(st, 1);
        stored = 1;
        same = old && on == n && memcmp(old, text, n) == 0;
        if (!same && (rc = contract_check_evolution(s, old ? old : "", on,
                                                    (const char *)sqlite3_column_text(st, 0), err)))
            goto fail;
    } else if (src != SQLITE_DONE) {
        rc = sl__sqlite_db_error(s, src, err, "reading _sluice_contracts");
        goto fail;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (s->ncols == 0) {
        if ((rc = contract_create_table(s, f, nf, err)))
            goto fail;
        sl_info(s->name, "created table %s in %s from contract %s", s->table, s->path,
                sl_contract_label(s->contract));
    } else if ((rc = contract_add_columns(s, f, nf, &added, err))) {
        goto fail;
    }
    if ((!same || !stored || added) && (rc = contract_store(s, err)))
        goto fail;
    if ((rc = sl__sqlite_step_done(s, s->commit, "committing the contract transaction", err)))
        goto fail;
    return sl__sqlite_load_columns(s, err);
fail:
    sqlite3_finalize(st);
    return sl__sqlite_abort_batch(s, rc);
}
