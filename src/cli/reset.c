/*
 * reset.c - `sluice reset PIPELINE.yaml [--sink S]... [--source SRC] [--to-position P] --yes`:
 * reprocess on purpose.
 *
 * What it does. Each selected sink forgets what it committed (its reset() callback), for
 * one source or for all of them, so that the next `sluice run` delivers that input to it
 * again from the start. Sinks that keep no checkpoint have nothing to forget. Without
 * --yes nothing changes: the plan is printed (which sink forgets which position, with how
 * many records) and the exit code is 2, so a script that forgot the flag fails loudly.
 *
 * --to-position P rewinds instead: each selected sink's committed position for one source
 * is set to P (its rewind() callback), a position that source produced earlier (as `sluice
 * status --json` prints it), so the next run delivers again what lies after P. It needs
 * exactly one source (--source, or the only one the selected sinks read from), and that
 * source must be able to order positions (position_cmp); it is opened for inspection to
 * check P (with lag(), which parses it, when the source has one) and to compare P with
 * what each sink committed. Only moving back is allowed: a sink whose committed position
 * is behind P, or that has none, would skip records it never delivered, so the whole
 * command is refused (exit 2) and nothing changes. A sink already at P is left alone.
 *
 * What it does not do. It deletes no output: a sink that upserts on its key or record id
 * (sqlite) rewrites the same rows on the next run; other sinks (file) receive the records
 * again beside the ones they hold. A running pipeline would keep committing past the
 * change, so --yes takes the state directory's lock (sl_statedir_lock) and refuses while
 * a run holds it; the state is then read again under the lock, so the plan that is carried
 * out is the one checked against the checkpoints as they are (a run or another reset that
 * finished in between is seen).
 *
 * How it fits. The pipeline is loaded and the selected sinks initialised with
 * ctx.inspect = 1 through the helpers in status.c (cli.h); sources are opened (also with
 * ctx.inspect = 1) only for --to-position.
 *
 * Exit codes: 0 done (or nothing to do); 2 usage or config error, unknown --sink/--source,
 * a --to-position that is not a position of the source, is ahead of a sink, or names no
 * single source, or --yes missing; 1 a sink's or the source's state could not be read, a
 * reset or rewind failed, or the pipeline is running (the lock is held).
 *
 * Threading: single-threaded. Ownership: as in status.c; positions returned by committed()
 * are freed here.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sluice/alloc.h"
#include "sluice/pipeline.h"
#include "sluice/plugin.h"
#include "sluice/statedir.h"

#include "cli/cli.h"

#define MAX_SELECTED 64                 /* --sink options on one command line */
#define MAX_POSITION ((size_t)16 << 20) /* bytes of a --to-position */
#define MAX_LISTED 512                  /* bytes of source names listed in one message */

static const char help[] =
    "usage: sluice reset PIPELINE.yaml [--sink S]... [--source SRC] [--to-position P] --yes\n"
    "\n"
    "Makes sinks forget their committed checkpoints so that the next `sluice run` delivers\n"
    "the input to them again from the start, or with --to-position, moves them back to an\n"
    "earlier position so that it delivers again what lies after it. Output already written\n"
    "is not deleted: a sink that upserts on a key or record id (sqlite) rewrites the same\n"
    "rows; others (file) receive the records again. Refused while the pipeline runs.\n"
    "\n"
    "options:\n"
    "  --sink S            reset only sink S (repeatable; default: every sink)\n"
    "  --source SRC        only the checkpoints for source SRC (default: all)\n"
    "  --to-position P     rewind to position P of one source (as `sluice status --json`\n"
    "                      prints it) instead of to the start; never forward\n"
    "  --yes               do it; without --yes, print what would be done and exit 2\n"
    "\n"
    "exit codes: 0 done (or nothing to do); 1 a sink's state could not be read or\n"
    "changed, or the pipeline is running; 2 usage or config error, unknown sink or source,\n"
    "a position that is not the source's or is ahead of a sink, or --yes missing (nothing\n"
    "changed)\n";

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

/*
 * Take the state directory's lock for the rest of the process (a no-op when this process
 * holds it already). Returns an exit code; prints why not.
 */
static int take_lock(const struct sl_cli_inspect *in, const char *what)
{
    if (!in->state_present)
        return SL_EXIT_OK;
    struct sl_error err;
    sl_error_clear(&err);
    if (sl_statedir_lock(in->p->state_dir, &err) != SL_OK) {
        fprintf(stderr, "sluice reset: %s; nothing was %s\n", err.msg, what);
        return SL_EXIT_FAIL;
    }
    return SL_EXIT_OK;
}

/*
 * --to-position without --source: the one source the selected sinks that keep checkpoints
 * read from, or -1 (with a message) when there are none or several.
 */
static int implied_source(const struct sl_cli_inspect *in, const unsigned char *selected)
{
    const struct sl_pipeline *p = in->p;
    char names[MAX_LISTED];
    size_t n = 0, len = 0;
    int found = -1;
    names[0] = '\0';
    for (size_t s = 0; s < p->nsources; s++) {
        int reached = 0;
        for (size_t k = 0; k < p->ncomp && !reached; k++)
            reached = selected[k] && sl__cli_sink_checkpoints(p->comp[k].plugin) &&
                      sl__cli_reaches(in, k, s);
        if (!reached)
            continue;
        found = (int)s;
        int w =
            snprintf(names + len, sizeof names - len, "%s%s", n ? ", " : "", in->source_names[s]);
        if (w > 0 && (size_t)w < sizeof names - len)
            len += (size_t)w;
        n++;
    }
    if (n == 1)
        return found;
    if (n == 0)
        fprintf(stderr, "sluice reset: no selected sink keeps checkpoints, so there is nothing "
                        "to rewind\n");
    else
        fprintf(stderr,
                "sluice reset: --to-position is a position of one source, but the selected "
                "sinks read from %zu (%s); name it with --source\n",
                n, names);
    return -1;
}

/*
 * Whether pos can be a position of source s: the source must order positions, and when it
 * reports lag, lag() must parse pos. Returns an exit code; prints why not.
 */
static int check_position(const struct sl_cli_inspect *in, size_t s, const char *pos)
{
    const struct sl_component *c = &in->p->comp[s];
    if (!c->plugin->position_cmp) {
        fprintf(stderr,
                "sluice reset: source %s (%s) cannot order its positions, so no sink can be "
                "moved back to one; reset to the start instead (without --to-position)\n",
                c->name, c->plugin->name);
        return SL_EXIT_USAGE;
    }
    if (in->init_err[s]) {
        fprintf(stderr,
                "sluice reset: source %s: %s; --to-position cannot be checked without it, "
                "nothing was changed\n",
                c->name, in->init_err[s]);
        return SL_EXIT_FAIL;
    }
    if (!c->plugin->lag)
        return SL_EXIT_OK;
    struct sl_error err;
    sl_error_clear(&err);
    uint64_t behind = 0;
    sl_rc rc = c->plugin->lag(in->state[s], pos, &behind, &err);
    if (rc == SL_EPARSE || rc == SL_EINVAL) {
        fprintf(stderr,
                "sluice reset: --to-position is not a position of source %s: %s; copy one "
                "from `sluice status --json` (sinks[].sources[].position)\n",
                c->name, err.msg[0] ? err.msg : sl_strerror(rc));
        return SL_EXIT_USAGE;
    }
    if (rc) {
        fprintf(stderr, "sluice reset: source %s: checking --to-position: %s\n", c->name,
                err.msg[0] ? err.msg : sl_strerror(rc));
        return SL_EXIT_FAIL;
    }
    return SL_EXIT_OK;
}

/*
 * --to-position: print the plan (sink, source, from, to), refuse when pos is ahead of any
 * selected sink, and with yes call rewind() on each sink that is ahead of pos.
 */
static int rewind_sinks(const struct sl_cli_inspect *in, const unsigned char *selected, size_t s,
                        const char *pos, int yes)
{
    const struct sl_pipeline *p = in->p;
    const struct sl_plugin *src = p->comp[s].plugin;
    const char *sname = in->source_names[s];
    char shortpos[80], shortfrom[80];
    sl__cli_short_position(pos, shortpos, sizeof shortpos);
    unsigned char *todo = sl_calloc(p->ncomp ? p->ncomp : 1, 1);
    if (!todo) {
        fprintf(stderr, "sluice reset: out of memory\n");
        return SL_EXIT_FAIL;
    }
    int code = SL_EXIT_OK;
    size_t ntodo = 0, ahead = 0;
    printf("%s checkpoints of pipeline %s for source %s:\n", yes ? "rewinding" : "would rewind",
           p->name, sname);
    for (size_t k = 0; k < p->ncomp; k++) {
        if (!selected[k])
            continue;
        const struct sl_component *c = &p->comp[k];
        if (in->init_err[k]) {
            printf("  sink %s (%s): cannot open its state: %s\n", c->name, c->plugin->name,
                   in->init_err[k]);
            code = SL_EXIT_FAIL;
            continue;
        }
        if (!sl__cli_sink_checkpoints(c->plugin)) {
            printf("  sink %s (%s): keeps no checkpoint; nothing to rewind\n", c->name,
                   c->plugin->name);
            continue;
        }
        if (!c->plugin->rewind) {
            printf("  sink %s (%s): cannot be moved back in this version; left as it is\n", c->name,
                   c->plugin->name);
            continue;
        }
        struct sl_error err;
        sl_error_clear(&err);
        char *from = NULL;
        sl_rc rc = c->plugin->committed(in->state[k], sname, &from, &err);
        if (rc) {
            printf("  sink %s (%s): cannot read its checkpoint: %s\n", c->name, c->plugin->name,
                   err.msg[0] ? err.msg : sl_strerror(rc));
            code = SL_EXIT_FAIL;
            continue;
        }
        printf("  sink %s (%s)\n", c->name, c->plugin->name);
        if (!from) {
            printf("    from  no checkpoint: the next run delivers everything to it\n"
                   "    to    %s\n"
                   "    REFUSED: it would skip the records up to there, which it never "
                   "received\n",
                   shortpos);
            ahead++;
            continue;
        }
        sl__cli_short_position(from, shortfrom, sizeof shortfrom);
        uint64_t records = 0, ns = 0;
        if (c->plugin->commit_info &&
            c->plugin->commit_info(in->state[k], sname, &records, &ns, &err) == SL_OK)
            printf("    from  %s (%" PRIu64 " records committed)\n", shortfrom, records);
        else
            printf("    from  %s\n", shortfrom);
        int cmp = src->position_cmp(in->state[s], pos, from);
        if (cmp > 0) {
            printf("    to    %s\n"
                   "    REFUSED: that is ahead of its checkpoint; moving forward would skip "
                   "records it has not received\n",
                   shortpos);
            ahead++;
        } else if (cmp == 0) {
            printf("    to    the same position: nothing to do\n");
        } else {
            printf("    to    %s\n", shortpos);
            todo[k] = 1;
            ntodo++;
        }
        sl_free(from);
    }
    if (code != SL_EXIT_OK) {
        fprintf(stderr, "sluice reset: nothing was changed\n");
        goto out;
    }
    if (ahead) {
        fprintf(stderr,
                "sluice reset: --to-position is ahead of what %zu sink%s committed for source "
                "%s; only rewinding is allowed, since moving a sink forward skips records it "
                "never received. Nothing was changed\n",
                ahead, ahead == 1 ? "" : "s", sname);
        code = SL_EXIT_USAGE;
        goto out;
    }
    if (ntodo == 0) {
        printf("nothing to rewind\n");
        goto out;
    }
    if (!yes) {
        printf("the next run would deliver again what source %s produced after that position "
               "to %s; what %s already hold%s stays (upserted again by key or record id, or "
               "held twice)\n",
               sname, ntodo == 1 ? "that sink" : "those sinks", ntodo == 1 ? "it" : "they",
               ntodo == 1 ? "s" : "");
        fprintf(stderr, "sluice reset: nothing changed; add --yes to confirm\n");
        code = SL_EXIT_USAGE;
        goto out;
    }
    size_t done = 0;
    for (size_t k = 0; k < p->ncomp; k++) {
        if (!todo[k])
            continue;
        const struct sl_component *c = &p->comp[k];
        struct sl_error err;
        sl_error_clear(&err);
        sl_rc rc = c->plugin->rewind(in->state[k], sname, pos, &err);
        if (rc) {
            fprintf(stderr, "sluice reset: sink %s: %s (%zu sink%s rewound before it)\n", c->name,
                    err.msg[0] ? err.msg : sl_strerror(rc), done, done == 1 ? " was" : "s were");
            code = SL_EXIT_FAIL;
            goto out;
        }
        printf("  rewound sink %s\n", c->name);
        done++;
    }
    printf("done: the next `sluice run` delivers again what source %s produced after that "
           "position to %zu sink%s\n",
           sname, done, done == 1 ? "" : "s");
out:
    sl_free(todo);
    return code;
}

int sl__cli_reset(int argc, char **argv)
{
    const char *path = NULL, *source = NULL, *to_pos = NULL;
    const char *sinks[MAX_SELECTED];
    size_t nsinks = 0;
    int yes = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        int is_pos = 0;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(help, stdout);
            return SL_EXIT_OK;
        } else if (strcmp(a, "--yes") == 0 || strcmp(a, "-y") == 0) {
            yes = 1;
        } else if (strcmp(a, "--sink") == 0 || strcmp(a, "--source") == 0 ||
                   strcmp(a, "--to-position") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "sluice reset: %s needs %s\n", a,
                        a[2] == 't' ? "a position (as `sluice status --json` prints it)"
                                    : "a component name");
                return SL_EXIT_USAGE;
            }
            val = argv[++i];
            is_pos = a[2] == 't';
        } else if (strncmp(a, "--sink=", 7) == 0) {
            val = a + 7;
        } else if (strncmp(a, "--source=", 9) == 0) {
            val = a + 9;
        } else if (strncmp(a, "--to-position=", 14) == 0) {
            val = a + 14;
            is_pos = 1;
        } else if (sl__cli_log_option(argc, argv, &i, &bad)) {
            continue;
        } else if (sl__cli_path_arg("reset", a, &path, help)) {
            return SL_EXIT_USAGE;
        }
        if (!val)
            continue;
        if (is_pos) {
            if (!*val) {
                fprintf(stderr, "sluice reset: --to-position is empty; give a position as "
                                "`sluice status --json` prints it, or leave the option out to "
                                "reset to the start\n");
                return SL_EXIT_USAGE;
            }
            if (strlen(val) > MAX_POSITION) {
                fprintf(stderr, "sluice reset: --to-position is longer than %zu MiB\n",
                        MAX_POSITION >> 20);
                return SL_EXIT_USAGE;
            }
            if (to_pos && strcmp(to_pos, val) != 0) {
                fprintf(stderr, "sluice reset: one --to-position at a time\n");
                return SL_EXIT_USAGE;
            }
            to_pos = val;
        } else if (a[3] == 'o') { /* --source */
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

    const char *done_what = to_pos ? "changed" : "reset";
    struct sl_cli_inspect in;
    unsigned char *selected = NULL;
    int code = sl__cli_inspect_open("reset", path, to_pos != NULL, &in);
    if (code == SL_EXIT_OK && yes && in.state_present) {
        /*
         * Lock first, then read every checkpoint again: what was read before the lock may
         * be stale (a run or another reset may have finished in between), and the plan
         * must be checked against what is there while nothing else can change it.
         */
        if ((code = take_lock(&in, done_what)) != SL_EXIT_OK)
            goto out;
        sl__cli_inspect_close(&in);
        code = sl__cli_inspect_open("reset", path, to_pos != NULL, &in);
    }
    if (code != SL_EXIT_OK)
        goto out;
    const struct sl_pipeline *p = in.p;

    /* Resolve the selection before touching anything. */
    selected = sl_calloc(p->ncomp ? p->ncomp : 1, 1);
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
        } else if (!to_pos && !p->comp[k].plugin->reset) {
            fprintf(stderr,
                    "sluice reset: sink %s: the %s sink cannot forget its checkpoints in this "
                    "version\n",
                    sinks[j], p->comp[k].plugin->name);
            code = SL_EXIT_USAGE;
        } else if (to_pos && !p->comp[k].plugin->rewind) {
            fprintf(stderr,
                    "sluice reset: sink %s: the %s sink cannot be moved back to a position in "
                    "this version; reset it to the start instead (without --to-position)\n",
                    sinks[j], p->comp[k].plugin->name);
            code = SL_EXIT_USAGE;
        } else {
            selected[k] = 1;
        }
    }
    if (nsinks == 0)
        for (size_t k = 0; k < p->ncomp; k++)
            selected[k] = p->comp[k].kind == SL_PLUGIN_SINK;
    if (code == SL_EXIT_OK && to_pos && only < 0) {
        if ((only = implied_source(&in, selected)) < 0)
            code = SL_EXIT_USAGE;
        else
            source = in.source_names[only];
    }
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
    if (code != SL_EXIT_OK)
        goto out;

    if (to_pos) {
        if ((code = check_position(&in, (size_t)only, to_pos)) == SL_EXIT_OK &&
            (!yes || (code = take_lock(&in, done_what)) == SL_EXIT_OK))
            code = rewind_sinks(&in, selected, (size_t)only, to_pos, yes);
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
        goto out;
    }
    if (todo == 0) {
        printf("no selected sink keeps checkpoints: nothing to reset\n");
        goto out;
    }
    if (!yes) {
        printf("the next run would deliver %s again from the start to %s\n",
               source ? "that source" : "every source", todo == 1 ? "that sink" : "those sinks");
        fprintf(stderr, "sluice reset: nothing changed; add --yes to confirm\n");
        code = SL_EXIT_USAGE;
        goto out;
    }

    /* Not while the pipeline runs: it would keep committing past the reset. */
    if ((code = take_lock(&in, done_what)) != SL_EXIT_OK)
        goto out;
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
out:
    sl_free(selected);
    sl__cli_inspect_close(&in);
    return code;
}
