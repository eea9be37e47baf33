/*
 * quarantine.c - `sluice quarantine list|show|drop|release PIPELINE.yaml [...]`: the units
 * quality gates held back (include/sluice/quarantine.h, docs/quality.md).
 *
 *     list P.yaml [--json]                     every unit: id, state, time, stage, source,
 *                                              records, failed gates and their messages
 *     show P.yaml UNIT [--json] [--limit N]    a unit's records (default the first 100;
 *                                              --limit 0 for all)
 *     drop P.yaml UNIT --yes                   delete a unit and its records for good
 *     release P.yaml UNIT                      send a unit's records on (replay.c)
 *
 * How it fits. The pipeline file is loaded only to find the store: p->quarantine_path
 * (<state_dir>/quarantine.db unless the pipeline says otherwise). The store is opened
 * without creating it; a missing file means no unit was ever quarantined. Nothing here
 * runs the pipeline; list and show can run while it runs (SQLite WAL readers).
 *
 * Exit codes: 0 done; 1 the store could not be read or changed, or the unit does not
 * exist; 2 usage or config error (drop without --yes included).
 *
 * Threading: single-threaded. Ownership: the pipeline and the store are opened and closed
 * here; record and unit strings are printed inside the store's callbacks.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/alloc.h"
#include "sluice/buf.h"
#include "sluice/json.h"
#include "sluice/pipeline.h"
#include "sluice/quarantine.h"

#include "cli/cli.h"

#define DEFAULT_SHOW_LIMIT 100

static const char help[] =
    "usage: sluice quarantine list PIPELINE.yaml [--json]\n"
    "       sluice quarantine show PIPELINE.yaml UNIT [--json] [--limit N]\n"
    "       sluice quarantine drop PIPELINE.yaml UNIT --yes\n"
    "       sluice quarantine release PIPELINE.yaml UNIT\n"
    "\n"
    "Units that quality gates with `action: quarantine` held back instead of sinking them\n"
    "(a batch when streaming, the whole run with `run --once`), kept in the pipeline's\n"
    "quarantine store (<state_dir>/quarantine.db).\n"
    "\n"
    "  list      every unit: id, state, when, stage (where it was held: the gate's `on`, or\n"
    "            the sink for a whole run), source, records, the gates that failed and why\n"
    "  show      a unit's records as JSON, in the order they were kept\n"
    "  drop      delete a unit and its records (needs --yes; cannot be undone)\n"
    "  release   send a unit's records on to the stages after the gate's component\n"
    "\n"
    "options:\n"
    "  --json      list: one JSON object; show: one JSON object per record (NDJSON)\n"
    "  --limit N   show: at most N records (default 100; 0 = all)\n"
    "  --yes       drop: really delete\n"
    "\n"
    "exit codes: 0 done; 1 the store could not be read or changed, or no such unit; 2 usage\n"
    "or config error\n";

static void format_time(int64_t ns, int iso, char *out, size_t cap)
{
    time_t t = (time_t)(ns / 1000000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, iso ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static void json_str(struct sl_buf *b, const char *key, const char *v)
{
    sl_buf_printf(b, ",\"%s\":", key);
    sl_json_write_str(b, v ? v : "", v ? strlen(v) : 0);
}

/* ---- list ------------------------------------------------------------------------------ */

struct list_ctx {
    int json;
    unsigned n;
    struct sl_buf *b;
};

static void unit_json(struct sl_buf *b, const struct sl_quarantine_unit *u)
{
    char when[40];
    format_time(u->created_ns, 1, when, sizeof when);
    sl_buf_printf(b, "{\"id\":%" PRId64, u->id);
    json_str(b, "state", u->state);
    json_str(b, "created", when);
    sl_buf_printf(b, ",\"created_ns\":%" PRId64, u->created_ns);
    json_str(b, "stage", u->stage);
    json_str(b, "source", u->source);
    sl_buf_printf(b, ",\"records\":%" PRIu64, u->records);
    json_str(b, "gates", u->gates);
    json_str(b, "reason", u->reason);
    sl_buf_putc(b, '}');
}

static void unit_text(const struct sl_quarantine_unit *u)
{
    char when[40];
    format_time(u->created_ns, 0, when, sizeof when);
    printf("unit %" PRId64 " (%s)  %s  stage %s  source %s  %" PRIu64 " record%s\n", u->id,
           u->state, when, u->stage, u->source[0] ? u->source : "-", u->records,
           u->records == 1 ? "" : "s");
    printf("  gates   %s\n", u->gates);
    const char *r = u->reason;
    const char *label = "  reason  ";
    while (*r) {
        const char *nl = strchr(r, '\n');
        int len = nl ? (int)(nl - r) : (int)strlen(r);
        printf("%s%.*s\n", label, len, r);
        label = "          ";
        r += len + (nl ? 1 : 0);
    }
}

static int list_one(void *ctx, const struct sl_quarantine_unit *u)
{
    struct list_ctx *c = ctx;
    if (c->json) {
        if (c->n)
            sl_buf_putc(c->b, ',');
        unit_json(c->b, u);
    } else {
        if (c->n)
            putchar('\n');
        unit_text(u);
    }
    c->n++;
    return 0;
}

/* ---- show ------------------------------------------------------------------------------ */

struct show_ctx {
    int json;
    uint64_t shown;
    struct sl_buf *b;
};

static int show_one(void *ctx, const struct sl_quarantine_record *r)
{
    struct show_ctx *c = ctx;
    c->shown++;
    if (c->json) {
        struct sl_buf *b = c->b;
        sl_buf_clear(b);
        sl_buf_printf(b, "{\"unit\":%" PRId64 ",\"row\":%" PRId64, r->unit, r->row);
        json_str(b, "record_id", r->record_id);
        json_str(b, "stage", r->stage);
        json_str(b, "origin", r->origin);
        sl_buf_printf(b, ",\"line\":%" PRIu64 ",\"offset\":%" PRIu64 ",\"record\":", r->line,
                      r->offset);
        sl_buf_append(b, r->json, r->json_len);
        /* The bytes as read, when they differ from the record (a CSV line, or edits). */
        if (r->raw && (r->raw_len != r->json_len || memcmp(r->raw, r->json, r->raw_len) != 0) &&
            sl_utf8_valid((const char *)r->raw, r->raw_len, NULL)) {
            sl_buf_puts(b, ",\"raw\":");
            sl_json_write_str(b, (const char *)r->raw, r->raw_len);
        }
        sl_buf_puts(b, "}\n");
        fwrite(b->data, 1, b->len, stdout);
        return 0;
    }
    printf("row %" PRId64 "  record %s", r->row, r->record_id);
    if (r->origin[0] && r->line)
        printf("  %s:%" PRIu64 " (byte %" PRIu64 ")", r->origin, r->line, r->offset);
    else if (r->origin[0])
        printf("  %s (byte %" PRIu64 ")", r->origin, r->offset);
    printf("\n  %.*s\n", (int)r->json_len, r->json);
    return 0;
}

static int unit_hold(void *ctx, const struct sl_quarantine_unit *u)
{
    uint64_t *records = ctx;
    *records = u->records;
    return 0;
}

static int unit_print(void *ctx, const struct sl_quarantine_unit *u)
{
    uint64_t *records = ctx;
    *records = u->records;
    unit_text(u);
    putchar('\n');
    return 0;
}

/* ---- the verb ------------------------------------------------------------------------- */

static int parse_unit(const char *s, int64_t *id)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v <= 0)
        return -1;
    *id = (int64_t)v;
    return 0;
}

static int fail_store(const char *sub, const struct sl_error *err, sl_rc rc)
{
    fprintf(stderr, "sluice quarantine %s: %s\n", sub, err->msg[0] ? err->msg : sl_strerror(rc));
    return SL_EXIT_FAIL;
}

int sl__cli_quarantine(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(help, argc < 2 ? stderr : stdout);
        return argc < 2 ? SL_EXIT_USAGE : SL_EXIT_OK;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "release") == 0)
        return sl__cli_quarantine_release(argc - 1, argv + 1);
    static const char *const subs[] = {"list", "show", "drop", "release"};
    int is_list = strcmp(sub, "list") == 0, is_show = strcmp(sub, "show") == 0,
        is_drop = strcmp(sub, "drop") == 0;
    if (!is_list && !is_show && !is_drop) {
        const char *s = sl_suggest(sub, subs, 4);
        fprintf(stderr, "sluice quarantine: unknown subcommand \"%s\"%s%s%s\n%s", sub,
                s ? "; did you mean \"" : "", s ? s : "", s ? "\"?" : "", help);
        return SL_EXIT_USAGE;
    }

    const char *path = NULL, *unit_arg = NULL;
    int json = 0, yes = 0, bad = 0;
    long long limit = DEFAULT_SHOW_LIMIT;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(help, stdout);
            return SL_EXIT_OK;
        } else if (strcmp(a, "--json") == 0 && !is_drop) {
            json = 1;
        } else if (strcmp(a, "--yes") == 0 && is_drop) {
            yes = 1;
        } else if ((strcmp(a, "--limit") == 0 || strncmp(a, "--limit=", 8) == 0) && is_show) {
            const char *v = a[7] == '=' ? a + 8 : (i + 1 < argc ? argv[++i] : NULL);
            char *end = NULL;
            if (v)
                limit = strtoll(v, &end, 10);
            if (!v || !*v || *end || limit < 0) {
                fprintf(stderr, "sluice quarantine show: --limit needs a number >= 0 (0 = all)\n");
                return SL_EXIT_USAGE;
            }
        } else if (sl__cli_log_option(argc, argv, &i, &bad)) {
            continue;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "sluice quarantine %s: unknown option %s\n%s", sub, a, help);
            return SL_EXIT_USAGE;
        } else if (!path) {
            path = a;
        } else if (!unit_arg && !is_list) {
            unit_arg = a;
        } else {
            fprintf(stderr, "sluice quarantine %s: unexpected argument \"%s\"\n%s", sub, a, help);
            return SL_EXIT_USAGE;
        }
    }
    if (bad)
        return SL_EXIT_USAGE;
    int64_t unit = 0;
    if (!path || (!is_list && !unit_arg)) {
        fprintf(stderr, "sluice quarantine %s: needs %s\n%s", sub,
                is_list ? "a pipeline file" : "a pipeline file and a unit id", help);
        return SL_EXIT_USAGE;
    }
    if (unit_arg && parse_unit(unit_arg, &unit)) {
        fprintf(stderr,
                "sluice quarantine %s: \"%s\" is not a unit id; `sluice quarantine list` shows "
                "them\n",
                sub, unit_arg);
        return SL_EXIT_USAGE;
    }

    struct sl_pipeline *p = NULL;
    if (sl__cli_load(path, &p))
        return SL_EXIT_USAGE;
    char fallback[4096];
    const char *store = p->quarantine_path;
    if (!store) {
        snprintf(fallback, sizeof fallback, "%s/quarantine.db", p->state_dir);
        store = fallback;
    }

    struct sl_error err;
    sl_error_clear(&err);
    struct sl_quarantine *q = NULL;
    sl_rc rc = sl_quarantine_open(store, 0, 0, &q, &err);
    int code = SL_EXIT_OK;
    struct sl_buf b;
    sl_buf_init(&b, 0);
    if (rc == SL_ENOENT) {
        /* Never quarantined anything. */
        if (is_list && json) {
            sl_buf_puts(&b, "{\"pipeline\":");
            sl_json_write_str(&b, p->name, strlen(p->name));
            json_str(&b, "store", store);
            sl_buf_puts(&b, ",\"units\":[]}\n");
            fwrite(b.data, 1, b.len, stdout);
        } else if (is_list) {
            printf("no quarantined units (%s does not exist yet)\n", store);
        } else {
            fprintf(stderr,
                    "sluice quarantine %s: no unit %" PRId64
                    ": nothing was ever quarantined (%s does not exist)\n",
                    sub, unit, store);
            code = SL_EXIT_FAIL;
        }
        goto out;
    }
    if (rc) {
        code = fail_store(sub, &err, rc);
        goto out;
    }

    if (is_list) {
        struct list_ctx c = {json, 0, &b};
        if (json) {
            sl_buf_puts(&b, "{\"pipeline\":");
            sl_json_write_str(&b, p->name, strlen(p->name));
            json_str(&b, "store", store);
            sl_buf_puts(&b, ",\"units\":[");
        }
        rc = sl_quarantine_units(q, list_one, &c, &err);
        if (rc) {
            code = fail_store(sub, &err, rc);
            goto out;
        }
        if (json) {
            sl_buf_puts(&b, "]}\n");
            fwrite(b.data, 1, b.len, stdout);
        } else if (!c.n) {
            printf("no quarantined units (%s)\n", store);
        }
    } else if (is_show) {
        uint64_t records = 0;
        rc = sl_quarantine_unit_get(q, unit, json ? unit_hold : unit_print, &records, &err);
        struct show_ctx c = {json, 0, &b};
        if (!rc)
            rc = sl_quarantine_records(q, unit, 0, (size_t)limit, show_one, &c, &err);
        if (rc) {
            code = fail_store(sub, &err, rc);
            goto out;
        }
        if (!json && c.shown < records)
            printf("... %" PRIu64 " more record%s; --limit 0 shows all\n", records - c.shown,
                   records - c.shown == 1 ? "" : "s");
    } else {
        uint64_t records = 0;
        rc = sl_quarantine_unit_get(q, unit, unit_hold, &records, &err);
        if (rc) {
            code = fail_store(sub, &err, rc);
            goto out;
        }
        if (!yes) {
            fprintf(stderr,
                    "sluice quarantine drop: this deletes unit %" PRId64 " and its %" PRIu64
                    " record%s for good; add --yes to do it\n",
                    unit, records, records == 1 ? "" : "s");
            code = SL_EXIT_USAGE;
            goto out;
        }
        uint64_t deleted = 0;
        rc = sl_quarantine_drop(q, unit, &deleted, &err);
        if (rc) {
            code = fail_store(sub, &err, rc);
            goto out;
        }
        printf("dropped unit %" PRId64 " (%" PRIu64 " record%s)\n", unit, deleted,
               deleted == 1 ? "" : "s");
    }
out:
    sl_buf_fini(&b);
    sl_quarantine_close(q);
    sl_pipeline_destroy(p);
    if (fflush(stdout) != 0 && code == SL_EXIT_OK)
        code = SL_EXIT_FAIL;
    return code;
}
