/*
 * reset.c - `sluice reset PIPELINE.yaml [--sink S]... [--source SRC] --yes`: reprocess on
 * purpose.
 *
 * What it does. Each selected sink forgets what it committed (its reset() callback), for
 * one source or for all of them, so that the next `sluice run` delivers that input to it
 * again from the start. Sinks that keep no checkpoint have nothing to forget. Without
 * --yes nothing changes: the plan is printed (which sink forgets which position, with how
 * many records) and the exit code is 2, so a script that forgot the flag fails loudly.
 *
 * What it does not do. It deletes no output: a sink that upserts on a key (sqlite with
 * `key`) rewrites the same rows on the next run; other sinks receive the records again
 * beside the ones they hold. Resetting to a chosen position (--to-position) is not
 * supported in this version. A running pipeline would keep committing past the reset, so
 * --yes takes the state directory's lock (sl_statedir_lock) and refuses while a run holds
 * it.
 *
 * How it fits. The pipeline is loaded and the selected sinks initialised with
 * ctx.inspect = 1 through the helpers in status.c (cli.h); sources are not opened.
 *
 * Exit codes: 0 reset done (or nothing to reset); 2 usage or config error, unknown
 * --sink/--source, or --yes missing; 1 a sink's state could not be read, its reset failed,
 * or the pipeline is running (the lock is held).
 *
 * Threading: single-threaded. Ownership: as in status.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sluice/alloc.h"
#include "sluice/pipeline.h"
#include "sluice/plugin.h"
#include "sluice/statedir.h"

#include "cli/cli.h"

#define MAX_SELECTED 64 /* --sink options on one command line */

static const char help[] =
    "usage: sluice reset PIPELINE.yaml [--sink S]... [--source SRC] --yes\n"
    "\n"
    "Makes sinks forget their committed checkpoints so that the next `sluice run` delivers\n"
    "the input to them again from the start. Output already written is not deleted: a\n"
    "sink that upserts on a key (sqlite with `key`) rewrites the same rows; others receive\n"
    "the records again. Refused while the pipeline runs.\n"
    "\n"
    "options:\n"
    "  --sink S            reset only sink S (repeatable; default: every sink)\n"
    "  --source SRC        forget only the checkpoints for source SRC (default: all)\n"
    "  --yes               do it; without --yes, print what would be reset and exit 2\n"
    "  --to-position P     not supported in this version (resets always go to the start)\n"
    "\n"
    "exit codes: 0 reset (or nothing to reset); 1 a sink's state could not be read or\n"
    "reset, or the pipeline is running; 2 usage or config error, unknown sink or source,\n"
    "or --yes missing (nothing changed)\n";

/* The index of a component called name of the given kind, or -1 (with a message). */
static int find_named(const struct sl_pipeline *p, const char *name, enum sl_plugin_kind kind)
{
    int i = sl_pipeline_find(p, name);
    if (i >= 0 && p->comp[i].kind == kind)
        return i;
    const char *what = sl_plugin_kind_name(kind);
    if (i >= 0) {
        fprintf(stderr, "sluice reset: %s is a %s, not a %s\n", name,
                sl_plugin_kind_name(p->comp[i].kind), what);
        return -1;
    }
    const char *names[256];
    size_t n = 0;
    for (size_t c = 0; c < p->ncomp && n < sizeof names / sizeof names[0]; c++)
        if (p->comp[c].kind == kind)
            names[n++] = p->comp[c].name;
    const char *s = sl_suggest(name, names, n);
    fprintf(stderr, "sluice reset: pipeline %s has no %s named \"%s\"%s%s%s\n", p->name, what, name,
            s ? "; did you mean \"" : "", s ? s : "", s ? "\"?" : "");
    return -1;
}

/* Print what sink k holds for source s (or every reachable source when s < 0). */
static int describe(const struct sl_cli_inspect *in, size_t k, int only)
{
    const struct sl_pipeline *p = in->p;
    const struct sl_plugin *sink = p->comp[k].plugin;
    int failed = 0;
    for (size_t s = 0; s < p->nsources; s++) {
        if ((only >= 0 && s != (size_t)only) || !sl__cli_reaches(in, k, s))
            continue;
        const char *src = in->source_names[s];
        struct sl_error err;
        sl_error_clear(&err);
        char *pos = NULL;
        sl_rc rc = sink->committed(in->state[k], src, &pos, &err);
        if (rc) {
            printf("    source %s: cannot read the checkpoint: %s\n", src,
                   err.msg[0] ? err.msg : sl_strerror(rc));
            failed = 1;
            continue;
        }
        if (!pos) {
            printf("    source %s: no checkpoint (nothing to forget)\n", src);
            continue;
        }
        char shortp[80];
        sl__cli_short_position(pos, shortp, sizeof shortp);
        uint64_t records = 0, ns = 0;
        if (sink->commit_info && sink->commit_info(in->state[k], src, &records, &ns, &err) == SL_OK)
            printf("    source %s: position %s, %" PRIu64 " records committed\n", src, shortp,
                   records);
        else
            printf("    source %s: position %s\n", src, shortp);
        sl_free(pos);
    }
    return failed;
}

int sl__cli_reset(int argc, char **argv)
{
    const char *path = NULL, *source = NULL;
    const char *sinks[MAX_SELECTED];
    size_t nsinks = 0;
    int yes = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(help, stdout);
            return SL_EXIT_OK;
        } else if (strcmp(a, "--yes") == 0 || strcmp(a, "-y") == 0) {
            yes = 1;
        } else if (strcmp(a, "--sink") == 0 || strcmp(a, "--source") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "sluice reset: %s needs a component name\n", a);
                return SL_EXIT_USAGE;
            }
            val = argv[++i];
        } else if (strncmp(a, "--sink=", 7) == 0) {
            val = a + 7;
        } else if (strncmp(a, "--source=", 9) == 0) {
            val = a + 9;
        } else if (strcmp(a, "--to-position") == 0 || strncmp(a, "--to-position=", 14) == 0) {
            fprintf(stderr, "sluice reset: --to-position is not supported in this version; "
                            "a reset always starts the selected sinks over from the beginning\n");
            return SL_EXIT_USAGE;
        } else if (sl__cli_log_option(argc, argv, &i, &bad)) {
            continue;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "sluice reset: unknown option %s\n%s", a, help);
            return SL_EXIT_USAGE;
        } else if (path) {
            fprintf(stderr, "sluice reset: one pipeline file at a time\n");
            return SL_EXIT_USAGE;
        } else {
            path = a;
        }
        if (!val)
            continue;
        if (a[3] == 'o') { /* --source */
            if (source && strcmp(source, val) != 0) {
                fprintf(stderr, "sluice reset: one --source at a time\n");
                return SL_EXIT_USAGE;
            }
            source = val;
        } else if (nsinks == MAX_SELECTED) {
            fprintf(stderr, "sluice reset: at most %d --sink options\n", MAX_SELECTED);
            return SL_EXIT_USAGE;
        } else {
            sinks[nsinks++] = val;
        }
    }
    if (bad)
        return SL_EXIT_USAGE;
    if (!path) {
        fputs(help, stderr);
        return SL_EXIT_USAGE;
    }

    struct sl_cli_inspect in;
    int code = sl__cli_inspect_open("reset", path, 0, &in);
    if (code != SL_EXIT_OK)
        goto out;
    const struct sl_pipeline *p = in.p;

    /* Resolve the selection before touching anything. */
    unsigned char *selected = sl_calloc(p->ncomp ? p->ncomp : 1, 1);
    if (!selected) {
        fprintf(stderr, "sluice reset: out of memory\n");
        code = SL_EXIT_FAIL;
        goto out;
    }
    int only = -1;
    if (source && (only = find_named(p, source, SL_PLUGIN_SOURCE)) < 0)
        code = SL_EXIT_USAGE;
    for (size_t j = 0; j < nsinks && code == SL_EXIT_OK; j++) {
        int k = find_named(p, sinks[j], SL_PLUGIN_SINK);
        if (k < 0) {
            code = SL_EXIT_USAGE;
        } else if (!sl__cli_sink_checkpoints(p->comp[k].plugin)) {
            fprintf(stderr,
                    "sluice reset: sink %s (%s) keeps no checkpoint, so there is nothing to "
                    "reset: every run delivers the whole input to it\n",
                    sinks[j], p->comp[k].plugin->name);
            code = SL_EXIT_USAGE;
        } else if (!p->comp[k].plugin->reset) {
            fprintf(stderr,
                    "sluice reset: sink %s: the %s sink cannot forget its checkpoints in this "
                    "version\n",
                    sinks[j], p->comp[k].plugin->name);
            code = SL_EXIT_USAGE;
        } else {
            selected[k] = 1;
        }
    }
    if (nsinks == 0)
        for (size_t k = 0; k < p->ncomp; k++)
            selected[k] = p->comp[k].kind == SL_PLUGIN_SINK;
    if (code == SL_EXIT_OK && only >= 0) {
        int any = 0;
        for (size_t k = 0; k < p->ncomp; k++) {
            if (selected[k] && !sl__cli_reaches(&in, k, (size_t)only) && nsinks > 0) {
                fprintf(stderr, "sluice reset: sink %s does not read from source %s\n",
                        p->comp[k].name, source);
                code = SL_EXIT_USAGE;
            }
            if (selected[k] && !sl__cli_reaches(&in, k, (size_t)only))
                selected[k] = 0;
            any |= selected[k];
        }
        if (!any && code == SL_EXIT_OK) {
            fprintf(stderr, "sluice reset: no sink reads from source %s\n", source);
            code = SL_EXIT_USAGE;
        }
    }
    if (code != SL_EXIT_OK) {
        sl_free(selected);
        goto out;
    }

    /* The plan; also the report of what is done when --yes is given. */
    printf("%s checkpoints of pipeline %s%s%s:\n", yes ? "resetting" : "would reset", p->name,
           source ? " for source " : "", source ? source : "");
    size_t todo = 0;
    for (size_t k = 0; k < p->ncomp; k++) {
        if (!selected[k])
            continue;
        const struct sl_component *c = &p->comp[k];
        if (in.init_err[k]) {
            printf("  sink %s (%s): cannot open its state: %s\n", c->name, c->plugin->name,
                   in.init_err[k]);
            code = SL_EXIT_FAIL;
            continue;
        }
        if (!sl__cli_sink_checkpoints(c->plugin)) {
            printf("  sink %s (%s): keeps no checkpoint; nothing to reset\n", c->name,
                   c->plugin->name);
            continue;
        }
        if (!c->plugin->reset) {
            printf("  sink %s (%s): cannot forget its checkpoints in this version; left as "
                   "it is\n",
                   c->name, c->plugin->name);
            continue;
        }
        printf("  sink %s (%s)\n", c->name, c->plugin->name);
        if (describe(&in, k, only))
            code = SL_EXIT_FAIL;
        todo++;
    }
    if (code != SL_EXIT_OK) {
        fprintf(stderr, "sluice reset: nothing was reset\n");
        sl_free(selected);
        goto out;
    }
    if (todo == 0) {
        printf("no selected sink keeps checkpoints: nothing to reset\n");
        sl_free(selected);
        goto out;
    }
    if (!yes) {
        printf("the next run would deliver %s again from the start to %s\n",
               source ? "that source" : "every source", todo == 1 ? "that sink" : "those sinks");
        fprintf(stderr, "sluice reset: nothing changed; add --yes to confirm\n");
        code = SL_EXIT_USAGE;
        sl_free(selected);
        goto out;
    }

    /* Not while the pipeline runs: it would keep committing past the reset. */
    if (in.state_present) {
        struct sl_error err;
        sl_error_clear(&err);
        if (sl_statedir_lock(p->state_dir, &err) != SL_OK) {
            fprintf(stderr, "sluice reset: %s; nothing was reset\n", err.msg);
            code = SL_EXIT_FAIL;
            sl_free(selected);
            goto out;
        }
    }
    size_t done = 0;
    for (size_t k = 0; k < p->ncomp; k++) {
        const struct sl_component *c = &p->comp[k];
        if (!selected[k] || !sl__cli_sink_checkpoints(c->plugin) || !c->plugin->reset)
            continue;
        struct sl_error err;
        sl_error_clear(&err);
        sl_rc rc = c->plugin->reset(in.state[k], source, &err);
        if (rc) {
            fprintf(stderr, "sluice reset: sink %s: %s (%zu sink%s reset before it)\n", c->name,
                    err.msg[0] ? err.msg : sl_strerror(rc), done, done == 1 ? " was" : "s were");
            code = SL_EXIT_FAIL;
            break;
        }
        printf("  reset sink %s\n", c->name);
        done++;
    }
    if (code == SL_EXIT_OK)
        printf("done: the next `sluice run` delivers %s again from the start to %zu sink%s\n",
               source ? source : "every source", done, done == 1 ? "" : "s");
    sl_free(selected);
out:
    sl__cli_inspect_close(&in);
    return code;
}
