/*
 * contract.c - `sluice contract check|show`: data contracts from the command line.
 *
 *     sluice contract check OLD.json NEW.json [--mode backward|forward|full] [--json]
 *     sluice contract show FILE.json [--json]
 *
 * check loads both versions (each must load: a contract that does not is reported with
 * its file and the place inside it, exit 2) and lists every difference the comparison
 * finds (sl_contract_compare; the rules are in docs/contracts.md), each with its path,
 * its reason and the modes it breaks, then a verdict for the chosen mode (default
 * backward). show prints a contract's name, version and top-level fields (the columns a
 * SQLite sink would make from it).
 *
 * Exit codes: check: 0 compatible in the mode, 1 incompatible, 2 usage or load error;
 * show: 0, or 2 when the contract does not load.
 *
 * Threading: single-threaded. Ownership: contracts are destroyed before returning.
 */
#include <stdio.h>
#include <string.h>

#include "sluice/buf.h"
#include "sluice/contract.h"
#include "sluice/json.h"

#include "cli/cli.h"

static const char help[] =
    "usage: sluice contract <command> [options]\n"
    "\n"
    "Data contracts are JSON Schema documents (the subset docs/contracts.md lists) with\n"
    "\"$id\" and \"version\". Commands:\n"
    "  check OLD.json NEW.json [--mode backward|forward|full] [--json]\n"
    "                       list the differences between two versions and say whether\n"
    "                       NEW is compatible with OLD in the mode (default backward):\n"
    "                         backward  every record valid under OLD is valid under NEW\n"
    "                         forward   every record valid under NEW is valid under OLD\n"
    "                         full      both\n"
    "  show FILE.json [--json]\n"
    "                       the contract's name, version and top-level fields\n"
    "\n"
    "options:\n"
    "  --mode MODE          check: backward (default), forward or full\n"
    "  --json               one JSON object on stdout instead of text\n"
    "\n"
    "exit codes: check: 0 compatible, 1 incompatible, 2 usage error or a contract that does\n"
    "not load; show: 0, or 2 when the contract does not load\n";

static const char *mode_name(int m)
{
    return m == SL_COMPAT_BACKWARD ? "backward" : m == SL_COMPAT_FORWARD ? "forward" : "full";
}

static const char *breaks_text(int breaks)
{
    switch (breaks) {
    case SL_COMPAT_BACKWARD:
        return "breaks backward";
    case SL_COMPAT_FORWARD:
        return "breaks forward";
    case SL_COMPAT_FULL:
        return "breaks backward and forward";
    default:
        return "compatible";
    }
}

struct report {
    int json;
    int mode;
    size_t changes;
    size_t breaking; /* changes that break the chosen mode */
    struct sl_buf out;
    int oom;
};

static int on_change(void *ctx, const struct sl_contract_change *ch)
{
    struct report *r = ctx;
    sl_rc rc;
    r->changes++;
    r->breaking += (ch->breaks & r->mode) != 0;
    if (!r->json) {
        rc = sl_buf_printf(&r->out, "  %s: %s (%s)\n", ch->path, ch->reason,
                           breaks_text(ch->breaks));
    } else {
        rc = sl_buf_puts(&r->out, r->changes > 1 ? ",{\"path\":" : "{\"path\":");
        if (!rc)
            rc = sl_json_write_str(&r->out, ch->path, strlen(ch->path));
        if (!rc)
            rc = sl_buf_puts(&r->out, ",\"reason\":");
        if (!rc)
            rc = sl_json_write_str(&r->out, ch->reason, strlen(ch->reason));
        if (!rc)
            rc = sl_buf_printf(&r->out, ",\"breaks\":[%s%s%s]}",
                               (ch->breaks & SL_COMPAT_BACKWARD) ? "\"backward\"" : "",
                               ch->breaks == SL_COMPAT_FULL ? "," : "",
                               (ch->breaks & SL_COMPAT_FORWARD) ? "\"forward\"" : "");
    }
    if (rc)
        r->oom = 1;
    return rc != SL_OK;
}

static int load(const char *verb, const char *path, struct sl_contract **c)
{
    struct sl_error err;
    sl_error_clear(&err);
    sl_rc rc = sl_contract_load(path, c, &err);
    if (rc) {
        fprintf(stderr, "sluice contract %s: %s\n", verb, err.msg[0] ? err.msg : sl_strerror(rc));
        *c = NULL;
        return SL_EXIT_USAGE;
    }
    return SL_EXIT_OK;
}

static void put_json_str(const char *s)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    if (sl_json_write_str(&b, s, strlen(s)) == SL_OK)
        fwrite(b.data, 1, b.len, stdout);
    sl_buf_fini(&b);
}

static int check(const char *old_path, const char *new_path, int mode, int json)
{
    struct sl_contract *o = NULL, *n = NULL;
    if (load("check", old_path, &o) || load("check", new_path, &n)) {
        sl_contract_destroy(o);
        return SL_EXIT_USAGE;
    }
    struct report r = {.json = json, .mode = mode};
    sl_buf_init(&r.out, 0);
    struct sl_error err;
    sl_error_clear(&err);
    int incompatible = 0;
    sl_rc rc =
        sl_contract_compare(o, n, (enum sl_compat_mode)mode, on_change, &r, &incompatible, &err);
    int code;
    if (rc || r.oom) {
        fprintf(stderr, "sluice contract check: %s\n", err.msg[0] ? err.msg : "out of memory");
        code = SL_EXIT_FAIL;
    } else if (json) {
        fputs("{\"old\":", stdout);
        put_json_str(sl_contract_label(o));
        fputs(",\"new\":", stdout);
        put_json_str(sl_contract_label(n));
        printf(",\"mode\":\"%s\",\"compatible\":%s,\"changes\":[", mode_name(mode),
               incompatible ? "false" : "true");
        fwrite(r.out.data ? r.out.data : "", 1, r.out.len, stdout);
        fputs("]}\n", stdout);
        code = incompatible ? SL_EXIT_FAIL : SL_EXIT_OK;
    } else {
        printf("%s -> %s: %zu change%s\n", sl_contract_label(o), sl_contract_label(n), r.changes,
               r.changes == 1 ? "" : "s");
        fwrite(r.out.data ? r.out.data : "", 1, r.out.len, stdout);
        if (incompatible)
            printf("NOT compatible in mode %s: %zu of the changes break%s it\n", mode_name(mode),
                   r.breaking, r.breaking == 1 ? "s" : "");
        else
            printf("compatible in mode %s\n", mode_name(mode));
        code = incompatible ? SL_EXIT_FAIL : SL_EXIT_OK;
    }
    sl_buf_fini(&r.out);
    sl_contract_destroy(o);
    sl_contract_destroy(n);
    return code;
}

static int show(const char *path, int json)
{
    struct sl_contract *c;
    if (load("show", path, &c))
        return SL_EXIT_USAGE;
    const struct sl_contract_field *f;
    size_t n = sl_contract_fields(c, &f);
    if (json) {
        fputs("{\"name\":", stdout);
        put_json_str(sl_contract_name(c));
        fputs(",\"version\":", stdout);
        put_json_str(sl_contract_version(c));
        fputs(",\"fields\":[", stdout);
        for (size_t i = 0; i < n; i++) {
            fputs(i ? ",{\"name\":" : "{\"name\":", stdout);
            put_json_str(f[i].name);
            printf(",\"type\":\"%s\",\"required\":%s,\"nullable\":%s}", f[i].type,
                   f[i].required ? "true" : "false", f[i].nullable ? "true" : "false");
        }
        fputs("]}\n", stdout);
    } else {
        printf("contract %s, version %s (%s)\n", sl_contract_name(c), sl_contract_version(c), path);
        if (n == 0)
            printf("no top-level properties\n");
        size_t w = 4;
        for (size_t i = 0; i < n; i++)
            if (strlen(f[i].name) > w)
                w = strlen(f[i].name);
        for (size_t i = 0; i < n; i++) {
            int flags = f[i].required || f[i].nullable;
            printf("  %-*s  %-*s%s%s\n", (int)w, f[i].name, flags ? 8 : 0, f[i].type,
                   f[i].required ? "  required" : "", f[i].nullable ? "  nullable" : "");
        }
    }
    sl_contract_destroy(c);
    return SL_EXIT_OK;
}

int sl__cli_contract(int argc, char **argv)
{
    if (argc < 2) {
        fputs(help, stderr);
        return SL_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        fputs(help, stdout);
        return SL_EXIT_OK;
    }
    if (strcmp(cmd, "check") != 0 && strcmp(cmd, "show") != 0) {
        fprintf(stderr,
                "sluice contract: unknown command \"%s\"; the commands are check and "
                "show\n%s",
                cmd, help);
        return SL_EXIT_USAGE;
    }
    int is_check = cmd[0] == 'c';
    const char *files[2] = {NULL, NULL};
    size_t nfiles = 0;
    int mode = SL_COMPAT_BACKWARD, json = 0, bad = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        if (sl__cli_log_option(argc, argv, &i, &bad))
            continue;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(help, stdout);
            return SL_EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (is_check && (strcmp(a, "--mode") == 0 || strncmp(a, "--mode=", 7) == 0)) {
            if (a[6] == '=') {
                val = a + 7;
            } else if (i + 1 < argc) {
                val = argv[++i];
            } else {
                fprintf(stderr, "sluice contract check: --mode needs a value (backward, "
                                "forward or full)\n");
                return SL_EXIT_USAGE;
            }
            if (strcmp(val, "backward") == 0) {
                mode = SL_COMPAT_BACKWARD;
            } else if (strcmp(val, "forward") == 0) {
                mode = SL_COMPAT_FORWARD;
            } else if (strcmp(val, "full") == 0) {
                mode = SL_COMPAT_FULL;
            } else {
                fprintf(stderr,
                        "sluice contract check: --mode must be backward, forward or full, not "
                        "\"%s\"\n",
                        val);
                return SL_EXIT_USAGE;
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "sluice contract %s: unknown option %s\n%s", cmd, a, help);
            return SL_EXIT_USAGE;
        } else if (nfiles < 2) {
            files[nfiles++] = a;
        } else {
            nfiles++;
        }
    }
    if (bad)
        return SL_EXIT_USAGE;
    size_t want = is_check ? 2 : 1;
    if (nfiles != want) {
        fprintf(stderr, "sluice contract %s: expected %s, got %zu file%s\n%s", cmd,
                is_check ? "two contract files (OLD NEW)" : "one contract file", nfiles,
                nfiles == 1 ? "" : "s", help);
        return SL_EXIT_USAGE;
    }
    return is_check ? check(files[0], files[1], mode, json) : show(files[0], json);
}
