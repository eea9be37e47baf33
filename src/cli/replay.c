/*
 * replay.c - `sluice dlq replay` and `sluice quarantine release`: kept records back
 * through the pipeline as it is configured now.
 *
 * dlq replay, step by step (include/sluice/dlq.h has the design):
 *
 *     finish unfinished replays ──> plan new ones (mark entries, one replay per stage)
 *          │                                     │
 *          └──────────> for each replay: run a replay pipeline (replay.h) --once
 *                                 │ sinks commit "_dlq_replay_<id>" positions
 *                                 v
 *                       sl_dlq_replay_finish: delete the entries still marked
 *
 * A crash anywhere leaves either marked entries (the next `dlq replay` resumes the replay
 * from its sinks' positions) or a finished replay. Entries that fail again were updated
 * in place by the DLQ (attempts + 1) and are no longer marked, so finishing never
 * deletes them.
 *
 * The pipeline's state directory is locked for the whole command, as for `run`.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/alloc.h"
#include "sluice/dlq.h"
#include "sluice/engine.h"
#include "sluice/log.h"
#include "sluice/pipeline.h"
#include "sluice/quarantine.h"
#include "sluice/replay.h"
#include "sluice/statedir.h"

#include "cli/cli.h"

static const char replay_help[] =
    "usage: sluice dlq replay PIPELINE.yaml [filters] [--from-stage STAGE]\n"
    "\n"
    "Send dead-letter entries back through the pipeline as it is configured now (after the\n"
    "contract or the config was fixed), into the stage that rejected each of them, or into\n"
    "STAGE. An entry leaves the dead-letter queue once the sinks have committed it; one that\n"
    "fails again stays, with its attempts counted up and the new reason. A replay cut short\n"
    "(kill, crash) is finished by the next `sluice dlq replay` before anything new.\n"
    "\n"
    "filters (default: every entry):\n"
    "  --stage S           entries rejected by stage S\n"
    "  --error CLASS       entries of one error class (see `sluice dlq stats`)\n"
    "  --since WHEN        entries last seen at or after WHEN (RFC 3339 time or a duration\n"
    "                      such as 30m, 2h, 7d meaning that long ago)\n"
    "  --id N              one entry\n"
    "  --limit N           at most N entries (oldest first)\n"
    "\n"
    "exit codes: 0 every replayed entry was delivered (or filtered), 1 some failed again or\n"
    "the run failed (nothing is lost: run it again), 2 usage or config error\n";

/* ---- the DLQ as a replay feed ------------------------------------------------------ */

struct dlq_feed {
    struct sl_dlq *dlq;
    int64_t replay;
    sl_replay_item_fn emit;
    void *ectx;
    int stop;
};

static int feed_entry(void *ctx, const struct sl_dlq_entry *e)
{
    struct dlq_feed *f = ctx;
    struct sl_replay_item it = {
        .key = e->id,
        .record_id = e->record_id,
        .json = e->record,
        .json_len = e->record_len,
        .raw = e->raw,
        .raw_len = e->raw_len,
        .line = e->line,
        .offset = e->offset,
        .origin = e->origin,
        .true_len = e->true_len,
    };
    f->stop = f->emit(f->ectx, &it);
    return f->stop;
}

static sl_rc dlq_feed_read(void *ctx, int64_t after, size_t limit, sl_replay_item_fn emit,
                           void *ectx, struct sl_error *err)
{
    struct dlq_feed *f = ctx;
    f->emit = emit;
    f->ectx = ectx;
    f->stop = 0;
    return sl_dlq_replay_read(f->dlq, f->replay, after, limit, feed_entry, f, err);
}

/* ---- replays ----------------------------------------------------------------------- */

struct todo {
    int64_t id;
    char *stage;
    uint64_t entries;
};

struct todo_list {
    struct todo *v;
    size_t n, cap;
    int oom;
};

static int add_todo(void *ctx, const struct sl_dlq_replay *r)
{
    struct todo_list *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        struct todo *v = sl_realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->oom = 1;
            return 1;
        }
        l->v = v;
        l->cap = cap;
    }
    char *stage = sl_strdup(r->stage ? r->stage : "");
    if (!stage) {
        l->oom = 1;
        return 1;
    }
    l->v[l->n++] = (struct todo){r->id, stage, r->entries};
    return 0;
}

static void free_todo(struct todo_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        sl_free(l->v[i].stage);
    sl_free(l->v);
}

/*
 * Run replay t through p. Prints one line of outcome. Returns 0 when every entry was
 * delivered or filtered, 1 when some failed again or the run failed.
 */
static int run_one(struct sl_pipeline *p, struct sl_dlq *dlq, const struct todo *t,
                   const char *from, int quiet)
{
    /* A stage removed from the config since: --from-stage says where its entries go. */
    const char *stage = sl_pipeline_find(p, t->stage) < 0 && from ? from : t->stage;
    char name[64];
    snprintf(name, sizeof name, "_dlq_replay_%" PRId64, t->id);
    struct dlq_feed feed = {.dlq = dlq, .replay = t->id};
    struct sl_replay_feed rf = {
        .name = name,
        .stage = stage,
        .after = 0,
        .read = dlq_feed_read,
        .ctx = &feed,
        .origin = "dead-letter queue",
    };
    struct sl_error err;
    sl_error_clear(&err);
    struct sl_pipeline *rp = NULL;
    sl_rc rc = sl_replay_pipeline(p, &rf, &rp, &err);
    if (rc) {
        fprintf(stderr, "sluice dlq replay: replay %" PRId64 " (%" PRIu64 " entries into %s): %s\n",
                t->id, t->entries, t->stage, err.msg);
        return 1;
    }
    struct sl_run_opts opts = {.once = 1, .replay = (uint64_t)t->id};
    struct sl_run_report rep;
    rc = sl_engine_run(rp, &opts, &rep, &err);
    uint64_t rejected = 0, filtered = 0;
    for (size_t i = 0; i < rep.nstages; i++) {
        rejected += rep.stages[i].rejected;
        filtered += rep.stages[i].dropped;
    }
    sl_run_report_fini(&rep);
    sl_replay_pipeline_destroy(rp);
    if (rc) {
        fprintf(stderr,
                "sluice dlq replay: replay %" PRId64 " into %s stopped: %s\n"
                "  nothing is lost: the entries stay in the dead-letter queue; run `sluice dlq "
                "replay %s` again to finish it\n",
                t->id, t->stage, err.msg[0] ? err.msg : sl_strerror(rc), p->path);
        return 1;
    }
    if (sl_engine_stopping()) {
        fprintf(stderr, "sluice dlq replay: stopped; run it again to finish replay %" PRId64 "\n",
                t->id);
        return 1;
    }
    uint64_t resolved = 0;
    rc = sl_dlq_replay_finish(dlq, t->id, &resolved, &err);
    if (rc) {
        fprintf(stderr, "sluice dlq replay: %s\n", err.msg);
        return 1;
    }
    uint64_t again = t->entries > resolved ? t->entries - resolved : 0;
    if (!quiet)
        printf("replay %" PRId64 " into %s: %" PRIu64 " entries, %" PRIu64
               " delivered or filtered (%" PRIu64 " filtered), %" PRIu64
               " failed again and stay in the dead-letter queue\n",
               t->id, t->stage, t->entries, resolved, filtered, again);
    (void)rejected;
    return again ? 1 : 0;
}

int sl__cli_dlq_replay(int argc, char **argv)
{
    const char *path = NULL, *from = NULL;
    struct sl_dlq_filter f;
    memset(&f, 0, sizeof f);
    int quiet = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(replay_help, stdout);
            return SL_EXIT_OK;
        }
        if (sl__cli_log_option(argc, argv, &i, &bad)) {
            if (bad)
                return SL_EXIT_USAGE;
            continue;
        }
        if (!strcmp(a, "--quiet")) {
            quiet = 1;
            continue;
        }
        int takes = !strcmp(a, "--stage") || !strcmp(a, "--error") || !strcmp(a, "--since") ||
                    !strcmp(a, "--id") || !strcmp(a, "--limit") || !strcmp(a, "--from-stage");
        if (takes && !v) {
            fprintf(stderr, "sluice dlq replay: %s needs a value\n%s", a, replay_help);
            return SL_EXIT_USAGE;
        }
        if (takes)
            i++;
        if (!strcmp(a, "--stage")) {
            f.stage = v;
        } else if (!strcmp(a, "--error")) {
            f.error_class = v;
        } else if (!strcmp(a, "--from-stage")) {
            from = v;
        } else if (!strcmp(a, "--since")) {
            if (sl__cli_parse_since(v, (int64_t)sl_now_real_ns(), &f.since_ns)) {
                fprintf(stderr,
                        "sluice dlq replay: --since \"%s\" is neither an RFC 3339 time "
                        "(2026-11-27T10:00:00Z) nor a duration (30m, 2h, 7d)\n",
                        v);
                return SL_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--id") || !strcmp(a, "--limit")) {
            char *end = NULL;
            long long n = strtoll(v, &end, 10);
            if (!end || *end || n <= 0) {
                fprintf(stderr, "sluice dlq replay: %s needs a positive whole number, not \"%s\"\n",
                        a, v);
                return SL_EXIT_USAGE;
            }
            if (!strcmp(a, "--id"))
                f.id = n;
            else
                f.limit = n;
        } else if (sl__cli_path_arg("dlq replay", a, &path, replay_help)) {
            return SL_EXIT_USAGE;
        }
    }
    if (!path) {
        fprintf(stderr, "sluice dlq replay: which pipeline?\n%s", replay_help);
        return SL_EXIT_USAGE;
    }
    struct sl_pipeline *p = NULL;
    if (sl__cli_load(path, &p))
        return SL_EXIT_USAGE;
    if (!p->dlq_path) {
        fprintf(stderr, "sluice dlq replay: %s has no dead-letter queue (dlq: {enabled: false})\n",
                path);
        sl_pipeline_destroy(p);
        return SL_EXIT_USAGE;
    }
    if (from && sl_pipeline_find(p, from) < 0) {
        fprintf(stderr, "sluice dlq replay: --from-stage %s: no component of that name in %s\n",
                from, path);
        sl_pipeline_destroy(p);
        return SL_EXIT_USAGE;
    }
    struct sl_error err;
    sl_error_clear(&err);
    int code = SL_EXIT_OK;
    struct sl_dlq *dlq = NULL;
    struct todo_list todo = {0};
    sl_rc rc = sl_statedir_open(p->state_dir, 1, &err);
    if (rc == SL_OK)
        rc = sl_statedir_lock(p->state_dir, &err);
    if (rc == SL_OK)
        rc = sl_dlq_open(p->dlq_path, 0, p->exactly_once, &dlq, &err);
    if (rc == SL_ENOENT) {
        if (!quiet)
            printf("the dead-letter queue of %s is empty: nothing to replay\n", p->name);
        goto out;
    }
    if (rc == SL_OK)
        rc = sl_dlq_replay_pending(dlq, add_todo, &todo, &err);
    size_t unfinished = todo.n;
    if (rc == SL_OK)
        rc = sl_dlq_replay_plan(dlq, &f, from, add_todo, &todo, &err);
    if (rc == SL_OK && todo.oom)
        rc = sl_error_set(&err, SL_ENOMEM, "out of memory");
    if (rc) {
        fprintf(stderr, "sluice dlq replay: %s\n", err.msg[0] ? err.msg : sl_strerror(rc));
        code = SL_EXIT_FAIL;
        goto out;
    }
    if (unfinished && !quiet)
        printf("finishing %zu replay%s cut short earlier\n", unfinished,
               unfinished == 1 ? "" : "s");
    if (todo.n == 0 && !quiet)
        printf("no dead-letter entries match: nothing to replay\n");
    for (size_t i = 0; i < todo.n && !sl_engine_stopping(); i++)
        if (run_one(p, dlq, &todo.v[i], from, quiet))
            code = SL_EXIT_FAIL;
out:
    free_todo(&todo);
    sl_dlq_close(dlq);
    sl_pipeline_destroy(p);
    return code;
}

/* ---- quarantine release ------------------------------------------------------------ */

static const char release_help[] =
    "usage: sluice quarantine release PIPELINE.yaml UNIT\n"
    "\n"
    "Deliver a quarantined unit after all: its records go to what follows the stage its\n"
    "gates watch (into the sink itself when the gates watch a sink, as with a --once run's\n"
    "write-audit-publish), through the pipeline as it is configured now; quality gates do\n"
    "not judge them again. The unit leaves the store once the sinks have committed it; a\n"
    "release cut short is resumed by running the same command again.\n";

struct quar_feed {
    struct sl_quarantine *q;
    int64_t unit;
    sl_replay_item_fn emit;
    void *ectx;
};

static int feed_record(void *ctx, const struct sl_quarantine_record *r)
{
    struct quar_feed *f = ctx;
    struct sl_replay_item it = {
        .key = r->row,
        .record_id = r->record_id,
        .json = r->json,
        .json_len = r->json_len,
        .raw = r->raw ? (const void *)r->raw : (const void *)r->json,
        .raw_len = r->raw ? r->raw_len : r->json_len,
        .line = r->line,
        .offset = r->offset,
        .origin = r->origin,
    };
    return f->emit(f->ectx, &it);
}

static sl_rc quar_feed_read(void *ctx, int64_t after, size_t limit, sl_replay_item_fn emit,
                            void *ectx, struct sl_error *err)
{
    struct quar_feed *f = ctx;
    f->emit = emit;
    f->ectx = ectx;
    return sl_quarantine_records(f->q, f->unit, after, limit, feed_record, f, err);
}

struct unit_copy {
    char stage[256];
    uint64_t records;
    int found;
};

static int copy_unit(void *ctx, const struct sl_quarantine_unit *u)
{
    struct unit_copy *c = ctx;
    snprintf(c->stage, sizeof c->stage, "%s", u->stage);
    c->records = u->records;
    c->found = 1;
    return 0;
}

int sl__cli_quarantine_release(int argc, char **argv)
{
    const char *path = NULL, *unit_arg = NULL;
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(release_help, stdout);
            return SL_EXIT_OK;
        }
        if (sl__cli_log_option(argc, argv, &i, &bad)) {
            if (bad)
                return SL_EXIT_USAGE;
            continue;
        }
        if (path && !unit_arg && a[0] != '-') {
            unit_arg = a;
            continue;
        }
        if (sl__cli_path_arg("quarantine release", a, &path, release_help))
            return SL_EXIT_USAGE;
    }
    char *end = NULL;
    long long unit = unit_arg ? strtoll(unit_arg, &end, 10) : 0;
    if (!path || !unit_arg || !end || *end || unit <= 0) {
        fprintf(stderr, "sluice quarantine release: needs a pipeline file and a unit number\n%s",
                release_help);
        return SL_EXIT_USAGE;
    }
    struct sl_pipeline *p = NULL;
    if (sl__cli_load(path, &p))
        return SL_EXIT_USAGE;
    struct sl_error err;
    sl_error_clear(&err);
    int code = SL_EXIT_OK;
    struct sl_quarantine *q = NULL;
    struct sl_pipeline *rp = NULL;
    struct unit_copy uc = {{0}, 0, 0};
    sl_rc rc = sl_statedir_open(p->state_dir, 1, &err);
    if (rc == SL_OK)
        rc = sl_statedir_lock(p->state_dir, &err);
    if (rc == SL_OK)
        rc = sl_quarantine_open(p->quarantine_path, 0, p->exactly_once, &q, &err);
    if (rc == SL_OK)
        rc = sl_quarantine_unit_get(q, unit, copy_unit, &uc, &err);
    if (rc == SL_ENOENT) {
        fprintf(stderr,
                "sluice quarantine release: %s has no quarantined unit %lld (`sluice "
                "quarantine list %s`)\n",
                p->name, unit, path);
        code = SL_EXIT_USAGE;
        goto out;
    }
    if (rc == SL_OK)
        rc = sl_quarantine_release_begin(q, unit, &err);
    int ui = rc == SL_OK ? sl_pipeline_find(p, uc.stage) : 0;
    char name[64];
    snprintf(name, sizeof name, "_quarantine_release_%lld", unit);
    struct quar_feed feed = {.q = q, .unit = unit};
    struct sl_replay_feed rf = {
        .name = name,
        .stage = uc.stage,
        .after = ui >= 0 && p->comp[ui].kind != SL_PLUGIN_SINK,
        .read = quar_feed_read,
        .ctx = &feed,
        .origin = "quarantine",
    };
    if (rc == SL_OK)
        rc = sl_replay_pipeline(p, &rf, &rp, &err);
    if (rc) {
        fprintf(stderr, "sluice quarantine release: %s\n", err.msg[0] ? err.msg : sl_strerror(rc));
        code = SL_EXIT_FAIL;
        goto out;
    }
    struct sl_run_opts opts = {.once = 1};
    struct sl_run_report rep;
    rc = sl_engine_run(rp, &opts, &rep, &err);
    uint64_t written = 0, rejected = 0;
    for (size_t i = 0; i < rep.nstages; i++) {
        if (rep.stages[i].kind == SL_PLUGIN_SINK)
            written += rep.stages[i].records_out;
        rejected += rep.stages[i].rejected;
    }
    sl_run_report_fini(&rep);
    if (rc == SL_OK && sl_engine_stopping())
        rc = sl_error_set(&err, SL_ECANCELED, "stopped by a signal");
    if (rc) {
        fprintf(stderr,
                "sluice quarantine release: unit %lld: %s\n  nothing is lost: the unit stays "
                "in the store; run the release again to finish it\n",
                unit, err.msg[0] ? err.msg : sl_strerror(rc));
        code = SL_EXIT_FAIL;
        goto out;
    }
    uint64_t gone = 0;
    rc = sl_quarantine_release_finish(q, unit, &gone, &err);
    if (rc) {
        fprintf(stderr, "sluice quarantine release: %s\n", err.msg);
        code = SL_EXIT_FAIL;
        goto out;
    }
    printf("released unit %lld: %" PRIu64 " records through %s (%" PRIu64
           " writes to sinks, %" PRIu64 " rejected into the dead-letter queue)\n",
           unit, gone, uc.stage, written, rejected);
out:
    sl_replay_pipeline_destroy(rp);
    sl_quarantine_close(q);
    sl_pipeline_destroy(p);
    return code;
}
