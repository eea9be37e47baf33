/*
 * dlq.c - `sluice dlq list|show|stats|purge|replay PIPELINE.yaml ...`: the dead-letter
 * queue seen from the command line.
 *
 * What it does. list prints one line (or one JSON object) per entry; show prints one
 * entry whole, its original bytes as escaped text and as base64; stats counts entries per
 * (stage, error class); purge deletes entries (only with --yes; without it, says how many
 * it would delete). replay is forwarded to replay.c (sl__cli_dlq_replay).
 *
 * How it fits. The pipeline file gives the DLQ's path (p->dlq_path). The database is
 * opened without creating it: a missing file is a DLQ with no entries yet, not an error.
 * Reading never blocks the running pipeline (WAL mode: readers and the one writer do not
 * wait for each other); purge takes the write lock for one short transaction.
 *
 * Text and JSON. A message, a reason field or the original bytes may hold anything the
 * input held, invalid UTF-8 and control bytes included. Text output escapes them (\n, \t,
 * \r, \\, and \xNN for every other control byte and every byte that is not part of valid
 * UTF-8) so one entry stays one line and the terminal sees no control sequences. JSON
 * output writes valid UTF-8 as is (escaped as RFC 8259 requires) and every byte of an
 * invalid sequence as U+FFFD, so each line is valid JSON; the exact bytes are in raw_b64.
 *
 * Exit codes: 0 done; 1 the DLQ could not be read or changed, or show found no such
 * entry; 2 usage or config error, no DLQ configured, or purge without --yes.
 *
 * Threading: single-threaded. Ownership: everything is freed before returning.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/alloc.h"
#include "sluice/arena.h"
#include "sluice/buf.h"
#include "sluice/config.h"
#include "sluice/dlq.h"
#include "sluice/engine.h"
#include "sluice/json.h"
#include "sluice/pipeline.h"

#include "cli/cli.h"

#define LINE_WIDTH 160 /* a list line is cut to this many bytes (plus "...") */

static const char help[] =
    "usage: sluice dlq <command> PIPELINE.yaml [options]\n"
    "\n"
    "The dead-letter queue holds every record a stage rejected, with its original bytes\n"
    "and the reason. Commands:\n"
    "  list PIPELINE.yaml [filters] [--json]     one line per entry, oldest first\n"
    "  show PIPELINE.yaml ID [--json]            one entry with every field\n"
    "  stats PIPELINE.yaml [filters] [--json]    entries per stage and error class\n"
    "  purge PIPELINE.yaml (filters | --all) --yes\n"
    "                                            delete entries (not those being replayed)\n"
    "  replay PIPELINE.yaml ...                  send entries through the pipeline again\n"
    "                                            (see `sluice dlq replay --help`)\n"
    "\n"
    "filters:\n"
    "  --stage S           entries rejected by stage S\n"
    "  --error CLASS       entries of error class CLASS (invalid_json, contract, cast, ...)\n"
    "  --since WHEN        entries last seen at or after WHEN: an RFC 3339 time\n"
    "                      (2026-11-27T10:00:00Z) or a duration back from now (30m, 2h, 7d)\n"
    "  --id N              entry N only\n"
    "  --limit N           at most N entries, oldest first\n"
    "\n"
    "options:\n"
    "  --json              JSON output: one object per line\n"
    "  --all               purge: every entry (instead of filters)\n"
    "  --yes               purge: do it; without --yes, print how many would go and exit 2\n"
    "\n"
    "exit codes: 0 done; 1 the dead-letter queue could not be read or changed, or no such\n"
    "entry; 2 usage or config error, no dead-letter queue configured, purge without --yes\n";

enum cmd { CMD_LIST, CMD_SHOW, CMD_STATS, CMD_PURGE };

struct opts {
    enum cmd cmd;
    const char *verb; /* "dlq list", for messages */
    const char *path;
    struct sl_dlq_filter f;
    int json, all, yes, nfilters;
};

/* ---- text helpers ---------------------------------------------------------------------- */

/* "2026-11-27T13:50:02Z" (RFC 3339, UTC, seconds) of a wall-clock time in ns. */
static void rfc3339(int64_t ns, char *out, size_t cap)
{
    time_t t = (time_t)(ns / 1000000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len;
    if (s[0] < 0x80)
        len = 1;
    else if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4;
    else
        return 0;
    if (len > n)
        return 0;
    return sl_utf8_valid((const char *)s, len, NULL) ? len : 0;
}

/*
 * Append s[0..n) as one line of text: valid printable UTF-8 as is, \n \t \r \\ escaped,
 * every other control byte and every byte outside valid UTF-8 as \xNN. Stops before out
 * would exceed max bytes (0 = no limit) and then returns 1.
 */
static int put_escaped(struct sl_buf *out, const char *text, size_t n, size_t max)
{
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < n;) {
        char e[8];
        size_t elen, step;
        size_t k = utf8_seq(s + i, n - i);
        if (k > 1 || (k == 1 && s[i] >= 0x20 && s[i] != 0x7f && s[i] != '\\')) {
            memcpy(e, s + i, k);
            elen = step = k;
        } else {
            step = 1;
            if (s[i] == '\n' || s[i] == '\t' || s[i] == '\r' || s[i] == '\\') {
                e[0] = '\\';
                e[1] = s[i] == '\n' ? 'n' : s[i] == '\t' ? 't' : s[i] == '\r' ? 'r' : '\\';
                elen = 2;
            } else {
                elen = (size_t)snprintf(e, sizeof e, "\\x%02x", s[i]);
            }
        }
        if (max && out->len + elen > max)
            return 1;
        sl_buf_append(out, e, elen);
        i += step;
    }
    return 0;
}

/* Print s as escaped text followed by a newline. */
static void print_escaped(const char *s, size_t n)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    put_escaped(&b, s, n, 0);
    fwrite(b.data ? b.data : "", 1, b.len, stdout);
    putchar('\n');
    sl_buf_fini(&b);
}

/* Append s[0..n) as a JSON string; bytes outside valid UTF-8 become U+FFFD. */
static void json_str(struct sl_buf *b, const char *s, size_t n)
{
    size_t bad;
    if (sl_utf8_valid(s, n, &bad)) {
        sl_json_write_str(b, s, n);
        return;
    }
    struct sl_buf clean;
    sl_buf_init(&clean, 0);
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(u + i, n - i);
        if (k) {
            sl_buf_append(&clean, s + i, k);
            i += k;
        } else {
            sl_buf_puts(&clean, "\xef\xbf\xbd");
            i++;
        }
    }
    sl_json_write_str(b, clean.data ? clean.data : "", clean.len);
    sl_buf_fini(&clean);
}

static void json_key_str(struct sl_buf *b, const char *key, const char *v)
{
    sl_buf_printf(b, ",\"%s\":", key);
    json_str(b, v, strlen(v));
}

/* A string field that is "" when absent: null then. */
static void json_key_opt(struct sl_buf *b, const char *key, const char *v)
{
    if (v[0])
        json_key_str(b, key, v);
    else
        sl_buf_printf(b, ",\"%s\":null", key);
}

/* Embed text as JSON when it parses, else as a JSON string (never invalid output). */
static void json_embed(struct sl_buf *b, struct sl_json_parser *jp, const char *text, size_t n)
{
    struct sl_arena a;
    sl_arena_init(&a, 0);
    struct sl_tape t;
    struct sl_json_error je;
    if (jp && sl_json_parse(jp, text, n, 0, &a, &t, &je) == SL_OK)
        sl_buf_append(b, text, n);
    else
        json_str(b, text, n);
    sl_arena_fini(&a);
}

/* "origin:line", or "origin@offset" without a line; the source's name when no origin. */
static void position(const struct sl_dlq_entry *e, char *out, size_t cap)
{
    const char *where = e->origin[0] ? e->origin : e->source;
    if (e->line)
        snprintf(out, cap, "%s:%" PRIu64, where, e->line);
    else
        snprintf(out, cap, "%s@%" PRIu64, where, e->offset);
}

/* ---- list and show ----------------------------------------------------------------------- */

struct print_ctx {
    struct sl_buf out;
    struct sl_json_parser *jp;
    uint64_t n;
};

static void entry_json(struct sl_buf *b, struct sl_json_parser *jp, const struct sl_dlq_entry *e)
{
    char when[40], pos[4096];
    sl_buf_printf(b, "{\"id\":%" PRId64, e->id);
    json_key_str(b, "record_id", e->record_id);
    json_key_str(b, "stage", e->stage);
    json_key_str(b, "error", e->error_class);
    json_key_str(b, "message", e->message);
    json_key_opt(b, "rule", e->rule);
    json_key_opt(b, "path", e->path);
    json_key_opt(b, "expected", e->expected);
    json_key_opt(b, "actual", e->actual);
    json_key_opt(b, "contract", e->contract);
    sl_buf_puts(b, ",\"details\":");
    if (e->details[0])
        json_embed(b, jp, e->details, strlen(e->details));
    else
        sl_buf_puts(b, "null");
    json_key_str(b, "source", e->source);
    json_key_str(b, "origin", e->origin);
    sl_buf_printf(b, ",\"line\":%" PRIu64 ",\"offset\":%" PRIu64, e->line, e->offset);
    position(e, pos, sizeof pos);
    json_key_str(b, "position", pos);
    sl_buf_printf(b, ",\"attempts\":%" PRId64, e->attempts);
    rfc3339(e->first_seen_ns, when, sizeof when);
    sl_buf_printf(b, ",\"first_seen\":\"%s\",\"first_seen_ns\":%" PRId64, when, e->first_seen_ns);
    rfc3339(e->last_seen_ns, when, sizeof when);
    sl_buf_printf(b, ",\"last_seen\":\"%s\",\"last_seen_ns\":%" PRId64, when, e->last_seen_ns);
    if (e->replay)
        sl_buf_printf(b, ",\"replay\":%" PRId64, e->replay);
    else
        sl_buf_puts(b, ",\"replay\":null");
    sl_buf_printf(b, ",\"true_len\":%" PRIu64 ",\"raw_len\":%zu,\"raw_b64\":\"", e->true_len,
                  e->raw_len);
    sl_base64_encode(e->raw, e->raw_len, b);
    sl_buf_puts(b, "\",\"record\":");
    if (e->record)
        json_embed(b, jp, e->record, e->record_len);
    else
        sl_buf_puts(b, "null");
    sl_buf_puts(b, "}\n");
}

static int list_one(void *ctx, const struct sl_dlq_entry *e)
{
    struct print_ctx *pc = ctx;
    struct sl_buf *b = &pc->out;
    pc->n++;
    sl_buf_clear(b);
    if (pc->jp) {
        entry_json(b, pc->jp, e);
    } else {
        char when[40];
        rfc3339(e->last_seen_ns, when, sizeof when);
        sl_buf_printf(b, "%-6" PRId64 " %s  %-14s %-16s ", e->id, when, e->stage, e->error_class);
        if (e->line)
            sl_buf_printf(b, "%s:%" PRIu64 "  ", e->source, e->line);
        else
            sl_buf_printf(b, "%s  ", e->source);
        if (put_escaped(b, e->message, strlen(e->message), LINE_WIDTH - 3))
            sl_buf_puts(b, "...");
        sl_buf_putc(b, '\n');
    }
    fwrite(b->data, 1, b->len, stdout);
    return 0;
}

static void show_field(const char *name, const char *v)
{
    printf("%-13s", name);
    if (v[0])
        print_escaped(v, strlen(v));
    else
        puts("-");
}

static int show_one(void *ctx, const struct sl_dlq_entry *e)
{
    struct print_ctx *pc = ctx;
    pc->n++;
    if (pc->jp) {
        sl_buf_clear(&pc->out);
        entry_json(&pc->out, pc->jp, e);
        fwrite(pc->out.data, 1, pc->out.len, stdout);
        return 1;
    }
    char first[40], last[40], pos[4096];
    rfc3339(e->first_seen_ns, first, sizeof first);
    rfc3339(e->last_seen_ns, last, sizeof last);
    position(e, pos, sizeof pos);
    printf("%-13s%" PRId64 "\n", "id", e->id);
    printf("%-13s%s\n", "record_id", e->record_id);
    show_field("stage", e->stage);
    show_field("error", e->error_class);
    show_field("message", e->message);
    show_field("rule", e->rule);
    show_field("path", e->path);
    show_field("expected", e->expected);
    show_field("actual", e->actual);
    show_field("contract", e->contract);
    show_field("details", e->details);
    show_field("source", e->source);
    show_field("origin", e->origin);
    printf("%-13s%" PRIu64 "\n", "line", e->line);
    printf("%-13s%" PRIu64 "\n", "offset", e->offset);
    show_field("position", pos);
    printf("%-13s%" PRId64 "\n", "attempts", e->attempts);
    printf("%-13s%s\n", "first_seen", first);
    printf("%-13s%s\n", "last_seen", last);
    if (e->replay)
        printf("%-13s%" PRId64 " (being replayed)\n", "replay", e->replay);
    else
        printf("%-13s-\n", "replay");
    printf("%-13s%zu bytes%s\n", "raw_len", e->raw_len,
           e->true_len > e->raw_len ? " (cut: the record was longer)" : "");
    printf("%-13s%" PRIu64 "\n", "true_len", e->true_len);
    printf("%-13s", "raw");
    print_escaped((const char *)e->raw, e->raw_len);
    sl_buf_clear(&pc->out);
    sl_base64_encode(e->raw, e->raw_len, &pc->out);
    printf("%-13s%.*s\n", "raw_b64", (int)pc->out.len, pc->out.data ? pc->out.data : "");
    printf("%-13s", "record");
    if (e->record)
        print_escaped(e->record, e->record_len);
    else
        puts("- (never parsed)");
    return 1;
}

/* ---- stats ------------------------------------------------------------------------------- */

static int stats_one(void *ctx, const struct sl_dlq_group *g)
{
    struct print_ctx *pc = ctx;
    char first[40], last[40];
    rfc3339(g->first_seen_ns, first, sizeof first);
    rfc3339(g->last_seen_ns, last, sizeof last);
    struct sl_buf *b = &pc->out;
    sl_buf_clear(b);
    if (pc->jp) {
        sl_buf_puts(b, "{\"stage\":");
        json_str(b, g->stage, strlen(g->stage));
        json_key_str(b, "error", g->error_class);
        sl_buf_printf(b, ",\"count\":%" PRIu64 ",\"first_seen\":\"%s\",\"last_seen\":\"%s\"}\n",
                      g->count, first, last);
    } else {
        if (pc->n == 0)
            sl_buf_printf(b, "%-20s %-18s %8s  %-20s  %s\n", "stage", "error", "count",
                          "first seen", "last seen");
        size_t start = b->len;
        put_escaped(b, g->stage, strlen(g->stage), start + 64);
        sl_buf_printf(b, "%*s", (int)(b->len - start < 20 ? 20 - (b->len - start) : 0), "");
        sl_buf_putc(b, ' ');
        start = b->len;
        put_escaped(b, g->error_class, strlen(g->error_class), start + 64);
        sl_buf_printf(b, "%*s", (int)(b->len - start < 18 ? 18 - (b->len - start) : 0), "");
        sl_buf_printf(b, " %8" PRIu64 "  %-20s  %s\n", g->count, first, last);
    }
    pc->n += g->count;
    fwrite(b->data, 1, b->len, stdout);
    return 0;
}

/* ---- purge ------------------------------------------------------------------------------- */

/* What purge would delete: the first limit unmarked matches (all without a limit). */
struct purge_count {
    uint64_t n, marked;
    int64_t limit;
};

static int purge_count_one(void *ctx, const struct sl_dlq_entry *e)
{
    struct purge_count *c = ctx;
    if (e->replay)
        c->marked++;
    else if (c->limit == 0 || c->n < (uint64_t)c->limit)
        c->n++;
    return 0;
}

/* ---- options ----------------------------------------------------------------------------- */

/* WHEN of --since (declared in cli.h; replay.c uses it too). */
int sl__cli_parse_since(const char *s, int64_t now, int64_t *out)
{
    uint64_t ms;
    if (sl_parse_duration(s, &ms) == 0) {
        int64_t back = ms > (uint64_t)(INT64_MAX / 1000000) ? INT64_MAX : (int64_t)ms * 1000000;
        *out = back >= now ? 1 : now - back;
        return 0;
    }
    /* RFC 3339: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM); 't', 'z' and ' ' accepted. */
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int y, mo, d, h, mi, sec, used = 0;
    if (sscanf(s, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6 ||
        used != 19)
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1970)
        return -1;
    const char *p = s + used;
    int64_t frac = 0;
    if (*p == '.') {
        int64_t scale = 100000000;
        p++;
        if (*p < '0' || *p > '9')
            return -1;
        for (; *p >= '0' && *p <= '9'; p++) {
            frac += (*p - '0') * scale;
            scale /= 10;
        }
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om, n2 = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &n2) != 2 || n2 != 5 || oh > 23 || om > 59)
            return -1;
        off = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -1;
    }
    if (*p)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *out = ((int64_t)t - off) * 1000000000 + frac;
    return 0;
}

static int parse_count(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v <= 0)
        return -1;
    *out = v;
    return 0;
}

/* The value of option argv[*i], or NULL (message printed) when it is missing. */
static const char *value(struct opts *o, int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "sluice %s: %s needs a value\n", o->verb, argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

/* Parse the arguments after the command word. Returns an exit code; -1 to go on. */
static int parse_opts(struct opts *o, int argc, char **argv, const char **id_arg)
{
    int bad = 0;
    int64_t now = (int64_t)sl_now_real_ns();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(help, stdout);
            return SL_EXIT_OK;
        } else if (strcmp(a, "--json") == 0 && o->cmd != CMD_PURGE) {
            o->json = 1;
        } else if (strcmp(a, "--all") == 0 && o->cmd == CMD_PURGE) {
            o->all = 1;
        } else if ((strcmp(a, "--yes") == 0 || strcmp(a, "-y") == 0) && o->cmd == CMD_PURGE) {
            o->yes = 1;
        } else if (o->cmd != CMD_SHOW && strcmp(a, "--stage") == 0) {
            if (!(o->f.stage = value(o, argc, argv, &i)))
                return SL_EXIT_USAGE;
            o->nfilters++;
        } else if (o->cmd != CMD_SHOW && strcmp(a, "--error") == 0) {
            if (!(o->f.error_class = value(o, argc, argv, &i)))
                return SL_EXIT_USAGE;
            o->nfilters++;
        } else if (o->cmd != CMD_SHOW && strcmp(a, "--since") == 0) {
            if (!(v = value(o, argc, argv, &i)))
                return SL_EXIT_USAGE;
            if (sl__cli_parse_since(v, now, &o->f.since_ns)) {
                fprintf(stderr,
                        "sluice %s: --since \"%s\" is neither an RFC 3339 time "
                        "(2026-11-27T10:00:00Z) nor a duration (30m, 2h, 7d)\n",
                        o->verb, v);
                return SL_EXIT_USAGE;
            }
            o->nfilters++;
        } else if (o->cmd != CMD_SHOW && (strcmp(a, "--limit") == 0 || strcmp(a, "--id") == 0)) {
            int is_id = a[2] == 'i';
            if (!(v = value(o, argc, argv, &i)))
                return SL_EXIT_USAGE;
            if (parse_count(v, is_id ? &o->f.id : &o->f.limit)) {
                fprintf(stderr, "sluice %s: %s wants a positive whole number, not \"%s\"\n",
                        o->verb, a, v);
                return SL_EXIT_USAGE;
            }
            o->nfilters++;
        } else if (sl__cli_log_option(argc, argv, &i, &bad)) {
            continue;
        } else if (o->cmd == CMD_SHOW && o->path && !*id_arg && !(a[0] == '-' && a[1])) {
            *id_arg = a;
        } else if (sl__cli_path_arg(o->verb, a, &o->path, help)) {
            return SL_EXIT_USAGE;
        }
    }
    if (bad)
        return SL_EXIT_USAGE;
    if (!o->path) {
        fprintf(stderr, "sluice %s: which pipeline? give PIPELINE.yaml\n\n%s", o->verb, help);
        return SL_EXIT_USAGE;
    }
    return -1;
}

/* ---- the verb ---------------------------------------------------------------------------- */

int sl__cli_dlq(int argc, char **argv)
{
    static const char *const names[] = {"list", "show", "stats", "purge"};
    static const char *const verbs[] = {"dlq list", "dlq show", "dlq stats", "dlq purge"};
    if (argc < 2) {
        fputs(help, stderr);
        return SL_EXIT_USAGE;
    }
    const char *c = argv[1];
    if (strcmp(c, "-h") == 0 || strcmp(c, "--help") == 0 || strcmp(c, "help") == 0) {
        fputs(help, stdout);
        return SL_EXIT_OK;
    }
    if (strcmp(c, "replay") == 0)
        return sl__cli_dlq_replay(argc - 1, argv + 1);
    struct opts o;
    memset(&o, 0, sizeof o);
    size_t k = 0;
    while (k < 4 && strcmp(c, names[k]) != 0)
        k++;
    if (k == 4) {
        const char *all[] = {"list", "show", "stats", "purge", "replay"};
        const char *s = sl_suggest(c, all, 5);
        fprintf(stderr, "sluice dlq: unknown command \"%s\"%s%s%s; see `sluice dlq --help`\n", c,
                s ? "; did you mean \"" : "", s ? s : "", s ? "\"?" : "");
        return SL_EXIT_USAGE;
    }
    o.cmd = (enum cmd)k;
    o.verb = verbs[k];
    const char *id_arg = NULL;
    int code = parse_opts(&o, argc - 1, argv + 1, &id_arg);
    if (code >= 0)
        return code;
    if (o.cmd == CMD_SHOW) {
        if (!id_arg || parse_count(id_arg, &o.f.id)) {
            fprintf(stderr, "sluice dlq show: give the entry's id (a positive number%s%s%s)\n",
                    id_arg ? ", not \"" : "", id_arg ? id_arg : "", id_arg ? "\"" : "");
            return SL_EXIT_USAGE;
        }
    }
    if (o.cmd == CMD_PURGE && !o.all && o.nfilters == 0) {
        fprintf(stderr, "sluice dlq purge: say which entries: --all, or at least one of --stage, "
                        "--error, --since, --id, --limit\n");
        return SL_EXIT_USAGE;
    }
    if (o.cmd == CMD_PURGE && o.all && o.nfilters) {
        fprintf(stderr, "sluice dlq purge: --all cannot be combined with filters\n");
        return SL_EXIT_USAGE;
    }

    struct sl_pipeline *p = NULL;
    if (sl__cli_load(o.path, &p))
        return SL_EXIT_USAGE;
    struct sl_dlq *d = NULL;
    struct print_ctx pc;
    memset(&pc, 0, sizeof pc);
    sl_buf_init(&pc.out, 0);
    struct sl_error err;
    sl_error_clear(&err);
    sl_rc rc = SL_OK;
    code = SL_EXIT_OK;
    if (!p->dlq_path) {
        fprintf(stderr,
                "sluice %s: this pipeline has no dead-letter queue (dlq: {enabled: false})\n",
                o.verb);
        code = SL_EXIT_USAGE;
        goto out;
    }
    rc = sl_dlq_open(p->dlq_path, 0, 0, &d, &err);
    if (rc && rc != SL_ENOENT) {
        fprintf(stderr, "sluice %s: %s\n", o.verb, err.msg[0] ? err.msg : sl_strerror(rc));
        code = SL_EXIT_FAIL;
        goto out;
    }
    rc = SL_OK; /* a missing DLQ has no entries */
    if (o.json && sl_json_parser_create(&pc.jp) != SL_OK) {
        fprintf(stderr, "sluice %s: out of memory\n", o.verb);
        code = SL_EXIT_FAIL;
        goto out;
    }
    sl_error_clear(&err);
    switch (o.cmd) {
    case CMD_LIST:
        if (d)
            rc = sl_dlq_scan(d, &o.f, list_one, &pc, &err);
        if (!o.json && rc == SL_OK && pc.n == 0)
            fprintf(stderr, "sluice dlq list: no entries%s\n",
                    o.nfilters ? " match" : " (nothing has been rejected)");
        break;
    case CMD_SHOW:
        if (d)
            rc = sl_dlq_scan(d, &o.f, show_one, &pc, &err);
        if (rc == SL_OK && pc.n == 0) {
            fprintf(stderr, "sluice dlq show: the dead-letter queue %s has no entry %" PRId64 "\n",
                    p->dlq_path, o.f.id);
            code = SL_EXIT_FAIL;
        }
        break;
    case CMD_STATS:
        if (d)
            rc = sl_dlq_stats(d, &o.f, stats_one, &pc, &err);
        if (!o.json && rc == SL_OK)
            printf("total %" PRIu64 " entr%s\n", pc.n, pc.n == 1 ? "y" : "ies");
        break;
    case CMD_PURGE: {
        struct purge_count cnt = {0, 0, o.f.limit};
        struct sl_dlq_filter unlimited = o.f;
        unlimited.limit = 0;
        if (d)
            rc = sl_dlq_scan(d, &unlimited, purge_count_one, &cnt, &err);
        if (rc)
            break;
        char also[96] = "";
        if (cnt.marked)
            snprintf(also, sizeof also, " (%" PRIu64 " more match but are being replayed: kept)",
                     cnt.marked);
        if (!o.yes) {
            printf("would delete %" PRIu64 " entr%s%s\n", cnt.n, cnt.n == 1 ? "y" : "ies", also);
            fprintf(stderr, "sluice dlq purge: nothing deleted; add --yes to confirm\n");
            code = SL_EXIT_USAGE;
            break;
        }
        uint64_t deleted = 0;
        if (d)
            rc = sl_dlq_purge(d, &o.f, &deleted, &err);
        if (rc == SL_OK)
            printf("deleted %" PRIu64 " entr%s%s\n", deleted, deleted == 1 ? "y" : "ies", also);
        break;
    }
    }
    if (rc) {
        fprintf(stderr, "sluice %s: %s\n", o.verb, err.msg[0] ? err.msg : sl_strerror(rc));
        code = SL_EXIT_FAIL;
    }
    if (fflush(stdout) != 0 && code == SL_EXIT_OK)
        code = SL_EXIT_FAIL;
out:
    sl_json_parser_destroy(pc.jp);
    sl_buf_fini(&pc.out);
    sl_dlq_close(d);
    sl_pipeline_destroy(p);
    return code;
}
