/*
 * dag.c - load a DAG file and check every part of it before anything runs.
 *
 * The file is read with the configuration machinery (config.h), so every node knows its
 * file:line:col and ${ENV} references are substituted as in pipeline files. Checks do not
 * stop at the first problem: each is collected with its position and sl_dag_load reports
 * them all, sorted by position, one per line, as "file:line:col: message".
 *
 * What is checked:
 *   1. top-level keys (unknown ones with a "did you mean"), their types and ranges;
 *   2. `schedule` compiles (cron.h) in `timezone`, and the zone exists;
 *   3. each job: exactly one of `command` and `pipeline`, the pipeline file readable,
 *      `depends_on` naming other jobs of the DAG, `trigger_rule` one of the three, the
 *      durations, and every {{template}} in commands, env values and pipeline files;
 *   4. the graph has no cycle; a cycle is reported with the jobs that form it, in order
 *      ("a -> b -> c -> a").
 *
 * The topological order (sl_dag.order) is Kahn's algorithm taking ready jobs in file
 * order, so the order is stable and readable ("graph" prints it).
 *
 * Ownership: the DAG owns its cfg document; every string and array lives in the
 * document's arena except the compiled cron schedule (freed in sl_dag_destroy).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sluice/alloc.h"
#include "sluice/config.h"
#include "sluice/cron.h"
#include "sluice/dag.h"

#include "core/problems.h"

#define MAX_JOBS 4096
#define MAX_PIPELINE_FILE (4u << 20)

static const char *const top_keys[] = {"dag",         "description", "schedule",  "timezone",
                                       "partition",   "start",       "catchup",   "max_active_runs",
                                       "concurrency", "sla",         "state_dir", "kill_grace",
                                       "alerts",      "env",         "jobs"};

static const char *const job_keys[] = {"command",      "pipeline",      "depends_on",
                                       "retries",      "retry_backoff", "timeout",
                                       "trigger_rule", "env",           "description"};

static const char *const alert_keys[] = {"webhook", "timeout"};

/*
 * One load.
 *
 * Invariants:
 *   1. nprob <= MAX_PROBLEMS; dropped counts the rest.
 *   2. d->order is filled only when no problem was found.
 */
struct loader {
    struct sl_dag *d;
    struct sl_cfg_doc *doc;
    struct sl_arena *a;
    struct sl__problems ps;
};

static void problem(struct loader *L, const struct sl_cfg_node *n, unsigned line, unsigned col,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void problem(struct loader *L, const struct sl_cfg_node *n, unsigned line, unsigned col,
                    const char *fmt, ...)
{
    char msg[SL_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n) {
        line = n->line;
        col = n->col;
    }
    sl__problems_addf(&L->ps, line, col, "%s", msg);
}

static void problem_err(struct loader *L, const struct sl_cfg_node *n, const struct sl_error *e)
{
    sl__problems_add_err(&L->ps, n, e);
}

static const char *kind_noun(const struct sl_cfg_node *n)
{
    if (n->kind == SL_CFG_MAP)
        return "a map";
    if (n->kind == SL_CFG_SEQ)
        return "a list";
    return n->is_null ? "null" : "a string";
}

static void check_keys(struct loader *L, const struct sl_cfg_node *map, const char *const *keys,
                       size_t nkeys, const char *where)
{
    for (size_t i = 0; i < map->n; i++) {
        const struct sl_cfg_pair *p = &map->pairs[i];
        size_t k;
        for (k = 0; k < nkeys; k++)
            if (strcmp(p->key, keys[k]) == 0)
                break;
        if (k < nkeys)
            continue;
        const char *s = sl_suggest(p->key, keys, nkeys);
        if (s)
            problem(L, NULL, p->line, p->col, "unknown key \"%s\"%s; did you mean \"%s\"?", p->key,
                    where, s);
        else
            problem(L, NULL, p->line, p->col, "unknown key \"%s\"%s", p->key, where);
    }
}

static int valid_name(const char *s)
{
    if (!*s || strlen(s) > 64)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
            return 0;
    return 1;
}

/*
 * Check the templates of a scalar node's text and report a problem at the template itself
 * (on the node's line when the scalar is written on one line, else on the line within it).
 */
static void check_template(struct loader *L, const struct sl_cfg_node *n, const char *what)
{
    struct sl_error e;
    unsigned ln = 0, cl = 0;
    sl_error_clear(&e);
    if (!sl_dag_template(n->str, strlen(n->str), NULL, NULL, &ln, &cl, &e))
        return;
    const char *msg = strstr(e.msg, ": ");
    msg = msg ? msg + 2 : e.msg;
    if (ln <= 1)
        problem(L, NULL, n->line, n->col + (n->quoted ? 1u : 0u) + cl - 1, "%s: %s", what, msg);
    else
        problem(L, NULL, n->line + ln - 1, cl, "%s: %s", what, msg);
}

static sl_rc read_file(const char *path, char **out, struct sl_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return sl_error_sys(err, errno == ENOENT ? SL_ENOENT : SL_EIO, errno, "cannot open %s",
                            path);
    struct sl_buf b;
    sl_buf_init(&b, MAX_PIPELINE_FILE);
    char chunk[8192];
    size_t n;
    sl_rc rc = SL_OK;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if ((rc = sl_buf_append(&b, chunk, n)))
            break;
    if (!rc && ferror(f))
        rc = sl_error_sys(err, SL_EIO, errno, "cannot read %s", path);
    else if (rc == SL_ELIMIT)
        sl_error_set(err, rc, "%s is larger than %u bytes", path, MAX_PIPELINE_FILE);
    fclose(f);
    if (!rc && (rc = sl_buf_cstr(&b)) == SL_OK) {
        *out = b.data ? b.data : sl_strdup("");
        return *out ? SL_OK : SL_ENOMEM;
    }
    sl_buf_fini(&b);
    return rc;
}

/* env: a map of scalars; values' templates checked. */
static void load_env(struct loader *L, const struct sl_cfg_node *n, struct sl_dag_env **out,
                     size_t *nout)
{
    *out = NULL;
    *nout = 0;
    if (!n)
        return;
    if (n->kind != SL_CFG_MAP) {
        problem(L, n, 0, 0, "%s: expected a map of NAME: value, found %s", n->keypath,
                kind_noun(n));
        return;
    }
    struct sl_dag_env *e = sl_arena_calloc(L->a, (n->n ? n->n : 1) * sizeof *e);
    if (!e) {
        L->ps.oom = 1;
        return;
    }
    for (size_t i = 0; i < n->n; i++) {
        const struct sl_cfg_pair *p = &n->pairs[i];
        const char *k = p->key;
        int ok = *k && !isdigit((unsigned char)*k);
        for (const char *c = k; *c; c++)
            ok = ok && (isalnum((unsigned char)*c) || *c == '_');
        if (!ok)
            problem(L, NULL, p->line, p->col,
                    "%s: \"%s\" is not a variable name (letters, digits and _)", n->keypath, k);
        if (p->val->kind != SL_CFG_SCALAR) {
            problem(L, p->val, 0, 0, "%s.%s: expected a string, found %s", n->keypath, k,
                    kind_noun(p->val));
            continue;
        }
        check_template(L, p->val, p->val->keypath);
        e[*nout].key = k;
        e[*nout].value = p->val->is_null ? "" : p->val->str;
        (*nout)++;
    }
    *out = e;
}

static void load_job(struct loader *L, struct sl_dag_job *j, const struct sl_cfg_pair *jp)
{
    struct sl_error e;
    const struct sl_cfg_node *n = jp->val;
    j->name = jp->key;
    j->trigger = SL_DAG_ALL_SUCCESS;
    if (!valid_name(j->name))
        problem(L, NULL, jp->line, jp->col,
                "jobs: \"%s\" is not a valid job name (letters, digits, _ and -, at most 64)",
                j->name);
    if (n->kind != SL_CFG_MAP) {
        problem(L, n, 0, 0, "jobs.%s: expected a map with command or pipeline, found %s", j->name,
                kind_noun(n));
        return;
    }
    char where[128];
    snprintf(where, sizeof where, " in job %s", j->name);
    check_keys(L, n, job_keys, sizeof job_keys / sizeof job_keys[0], where);

    const struct sl_cfg_node *cmd = sl_cfg_get(n, "command");
    const struct sl_cfg_node *pl = sl_cfg_get(n, "pipeline");
    if (!cmd && !pl)
        problem(L, n, 0, 0,
                "jobs.%s: needs `command` (a shell command) or `pipeline` (a "
                "pipeline file)",
                j->name);
    if (cmd && pl)
        problem(L, pl, 0, 0, "jobs.%s: has both `command` and `pipeline`; a job runs one of them",
                j->name);
    if (cmd) {
        if (cmd->kind != SL_CFG_SCALAR || cmd->is_null || !*cmd->str) {
            problem(L, cmd, 0, 0, "%s: expected a non-empty string, found %s", cmd->keypath,
                    kind_noun(cmd));
        } else {
            j->command = cmd->str;
            check_template(L, cmd, cmd->keypath);
        }
    }
    if (pl && !cmd) {
        const char *path = NULL;
        sl_error_clear(&e);
        if (pl->kind != SL_CFG_SCALAR || pl->is_null || !*pl->str) {
            problem(L, pl, 0, 0, "%s: expected a file name, found %s", pl->keypath, kind_noun(pl));
        } else if (sl_cfg_get_path(L->doc, n, "pipeline", NULL, &path, &e)) {
            problem_err(L, pl, &e);
        } else {
            char *text = NULL;
            sl_rc rc = read_file(path, &text, &e);
            if (rc == SL_ENOMEM) {
                L->ps.oom = 1;
            } else if (rc) {
                problem(L, pl, 0, 0, "%s: %s", pl->keypath, e.msg);
            } else {
                j->pipeline = path;
                j->pipeline_text = sl_arena_strdup(L->a, text);
                if (!j->pipeline_text)
                    L->ps.oom = 1;
                unsigned ln = 0, cl = 0;
                sl_error_clear(&e);
                if (sl_dag_template(text, strlen(text), NULL, NULL, &ln, &cl, &e)) {
                    const char *msg = strchr(e.msg, ' ');
                    problem(L, pl, 0, 0, "%s: in %s:%u:%u:%s", pl->keypath, path, ln, cl,
                            msg ? msg : e.msg);
                }
                sl_free(text);
            }
        }
    }

    int64_t retries = 0;
    sl_error_clear(&e);
    if (sl_cfg_get_int(n, "retries", 0, &retries, &e))
        problem_err(L, sl_cfg_get(n, "retries"), &e);
    else if (retries < 0 || retries > 100)
        problem(L, sl_cfg_get(n, "retries"), 0, 0, "jobs.%s.retries: %lld is out of range 0..100",
                j->name, (long long)retries);
    else
        j->retries = (unsigned)retries;
    sl_error_clear(&e);
    if (sl_cfg_get_duration(n, "retry_backoff", 10000, &j->retry_backoff_ms, &e))
        problem_err(L, sl_cfg_get(n, "retry_backoff"), &e);
    sl_error_clear(&e);
    if (sl_cfg_get_duration(n, "timeout", 0, &j->timeout_ms, &e))
        problem_err(L, sl_cfg_get(n, "timeout"), &e);

    const char *tr = NULL;
    sl_error_clear(&e);
    if (sl_cfg_get_str(n, "trigger_rule", "all_success", &tr, &e)) {
        problem_err(L, sl_cfg_get(n, "trigger_rule"), &e);
    } else if (strcmp(tr, "all_success") == 0) {
        j->trigger = SL_DAG_ALL_SUCCESS;
    } else if (strcmp(tr, "all_done") == 0) {
        j->trigger = SL_DAG_ALL_DONE;
    } else if (strcmp(tr, "one_failed") == 0) {
        j->trigger = SL_DAG_ONE_FAILED;
    } else {
        static const char *const rules[] = {"all_success", "all_done", "one_failed"};
        const char *s = sl_suggest(tr, rules, 3);
        problem(L, sl_cfg_get(n, "trigger_rule"), 0, 0,
                "jobs.%s.trigger_rule: \"%s\" is not one of all_success, all_done, "
                "one_failed%s%s%s",
                j->name, tr, s ? "; did you mean \"" : "", s ? s : "", s ? "\"?" : "");
    }
    load_env(L, sl_cfg_get(n, "env"), &j->env, &j->nenv);
}

/* depends_on of job i, after every job's name is known. */
static void load_deps(struct loader *L, size_t i, const struct sl_cfg_node *n)
{
    struct sl_dag *d = L->d;
    struct sl_dag_job *j = &d->jobs[i];
    const struct sl_cfg_node *dn = n->kind == SL_CFG_MAP ? sl_cfg_get(n, "depends_on") : NULL;
    if (!dn || (dn->kind == SL_CFG_SCALAR && dn->is_null))
        return;
    const struct sl_cfg_node *one[1] = {dn};
    const struct sl_cfg_node *const *items = one;
    size_t count = 1;
    if (dn->kind == SL_CFG_SEQ) {
        items = (const struct sl_cfg_node *const *)dn->items;
        count = dn->n;
    } else if (dn->kind != SL_CFG_SCALAR) {
        problem(L, dn, 0, 0, "%s: expected a job name or a list of them, found %s", dn->keypath,
                kind_noun(dn));
        return;
    }
    j->deps = sl_arena_calloc(L->a, (count ? count : 1) * sizeof *j->deps);
    if (!j->deps) {
        L->ps.oom = 1;
        return;
    }
    for (size_t k = 0; k < count; k++) {
        const struct sl_cfg_node *it = items[k];
        if (it->kind != SL_CFG_SCALAR || it->is_null) {
            problem(L, it, 0, 0, "%s: expected a job name, found %s", it->keypath, kind_noun(it));
            continue;
        }
        int idx = sl_dag_find(d, it->str);
        if (idx < 0) {
            const char **names = sl_calloc(d->njobs ? d->njobs : 1, sizeof *names);
            const char *s = NULL;
            if (names) {
                for (size_t m = 0; m < d->njobs; m++)
                    names[m] = d->jobs[m].name;
                s = sl_suggest(it->str, names, d->njobs);
            }
            problem(L, it, 0, 0, "jobs.%s.depends_on: unknown job \"%s\"%s%s%s", j->name, it->str,
                    s ? "; did you mean \"" : "", s ? s : "", s ? "\"?" : "");
            sl_free(names);
            continue;
        }
        if ((size_t)idx == i) {
            problem(L, it, 0, 0, "jobs.%s.depends_on: a job cannot depend on itself", j->name);
            continue;
        }
        int dup = 0;
        for (size_t m = 0; m < j->ndeps; m++)
            dup |= j->deps[m] == (size_t)idx;
        if (dup) {
            problem(L, it, 0, 0, "jobs.%s.depends_on: \"%s\" is listed twice", j->name, it->str);
            continue;
        }
        j->deps[j->ndeps++] = (size_t)idx;
    }
}

/*
 * Order the jobs (Kahn, ready jobs in file order). On a cycle, find one by walking
 * dependencies from a job left over until a job repeats, and report it.
 */
static void order_jobs(struct loader *L, const struct sl_cfg_node *jobs)
{
    struct sl_dag *d = L->d;
    size_t n = d->njobs;
    size_t *indeg = sl_calloc(n ? n : 1, sizeof *indeg);
    unsigned char *done = sl_calloc(n ? n : 1, 1);
    d->order = sl_arena_calloc(L->a, (n ? n : 1) * sizeof *d->order);
    if (!indeg || !done || !d->order) {
        L->ps.oom = 1;
        goto out;
    }
    size_t placed = 0;
    while (placed < n) {
        size_t pick = n;
        for (size_t i = 0; i < n && pick == n; i++) {
            if (done[i])
                continue;
            int ready = 1;
            for (size_t k = 0; k < d->jobs[i].ndeps; k++)
                ready &= done[d->jobs[i].deps[k]];
            if (ready)
                pick = i;
        }
        if (pick == n)
            break;
        done[pick] = 1;
        d->order[placed++] = pick;
    }
    if (placed < n) {
        /* Walk from any job left: each has an unplaced dependency, so the walk repeats. */
        size_t start = 0;
        while (done[start])
            start++;
        size_t *seen = indeg; /* reused: position+1 of a job on the walk, 0 = not on it */
        memset(seen, 0, n * sizeof *seen);
        size_t *walk = sl_calloc(n + 1, sizeof *walk);
        if (!walk) {
            L->ps.oom = 1;
            goto out;
        }
        size_t len = 0, cur = start;
        while (!seen[cur]) {
            seen[cur] = ++len;
            walk[len - 1] = cur;
            size_t next = cur;
            for (size_t k = 0; k < d->jobs[cur].ndeps; k++)
                if (!done[d->jobs[cur].deps[k]]) {
                    next = d->jobs[cur].deps[k];
                    break;
                }
            cur = next;
        }
        /* The cycle is walk[seen[cur]-1 .. len), dependencies point backwards in time:
         * print it in the direction work flows (dependency -> dependent). */
        char msg[1024];
        size_t ml = 0;
        size_t from = seen[cur] - 1;
        for (size_t k = len; k-- > from;)
            ml += (size_t)snprintf(msg + ml, ml < sizeof msg ? sizeof msg - ml : 0, "%s -> ",
                                   d->jobs[walk[k]].name);
        if (ml < sizeof msg)
            snprintf(msg + ml, sizeof msg - ml, "%s", d->jobs[walk[len - 1]].name);
        const struct sl_cfg_pair *p = sl_cfg_pair(jobs, d->jobs[cur].name);
        problem(L, NULL, p ? p->line : jobs->line, p ? p->col : jobs->col,
                "jobs: dependency cycle %s; a DAG cannot have one", msg);
        sl_free(walk);
    }
out:
    sl_free(indeg);
    sl_free(done);
}

static int zone_exists(const char *tz)
{
    if (!tz || strcmp(tz, "UTC") == 0)
        return 1;
    if (tz[0] == '/' || strstr(tz, ".."))
        return 0;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", tz);
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static void load_top(struct loader *L)
{
    struct sl_dag *d = L->d;
    const struct sl_cfg_node *root = L->doc->root;
    struct sl_error e;
    if (!root || root->kind != SL_CFG_MAP) {
        problem(L, root, 1, 1, "a DAG file is a map with keys dag, jobs, ...; found %s",
                root ? kind_noun(root) : "nothing");
        return;
    }
    check_keys(L, root, top_keys, sizeof top_keys / sizeof top_keys[0], "");

    sl_error_clear(&e);
    const struct sl_cfg_node *nn = sl_cfg_get(root, "dag");
    if (!nn)
        problem(L, root, 0, 0, "missing required key \"dag\" (the DAG's name)");
    else if (sl_cfg_get_str(root, "dag", NULL, &d->name, &e))
        problem_err(L, nn, &e);
    else if (!valid_name(d->name))
        problem(L, nn, 0, 0, "dag: \"%s\" is not a valid name (letters, digits, _ and -)", d->name);

    sl_error_clear(&e);
    if (sl_cfg_get_str(root, "timezone", NULL, &d->timezone, &e))
        problem_err(L, sl_cfg_get(root, "timezone"), &e);
    else if (d->timezone && !zone_exists(d->timezone))
        problem(L, sl_cfg_get(root, "timezone"), 0, 0,
                "timezone: \"%s\" is not a time zone of this system (an IANA name such as "
                "Europe/Berlin, from /usr/share/zoneinfo)",
                d->timezone);
    if (d->timezone && strcmp(d->timezone, "UTC") == 0)
        d->timezone = NULL;
    sl_error_clear(&e);
    if (d->timezone && zone_exists(d->timezone) && sl_tz_open(d->timezone, &d->tz, &e)) {
        if (e.rc == SL_ENOMEM)
            L->ps.oom = 1;
        else
            problem(L, sl_cfg_get(root, "timezone"), 0, 0, "timezone: %s", e.msg);
    }

    sl_error_clear(&e);
    if (sl_cfg_get_str(root, "schedule", NULL, &d->schedule, &e)) {
        problem_err(L, sl_cfg_get(root, "schedule"), &e);
    } else if (d->schedule) {
        sl_error_clear(&e);
        if (sl_cron_parse(d->schedule, d->timezone, &d->cron, &e)) {
            if (e.rc == SL_ENOMEM)
                L->ps.oom = 1;
            else
                problem(L, sl_cfg_get(root, "schedule"), 0, 0, "schedule: %s", e.msg);
            d->cron = NULL;
        }
    }

    const char *part = NULL;
    sl_error_clear(&e);
    d->partitioning = SL_DAG_DAILY;
    if (sl_cfg_get_str(root, "partition", "daily", &part, &e))
        problem_err(L, sl_cfg_get(root, "partition"), &e);
    else if (strcmp(part, "hourly") == 0)
        d->partitioning = SL_DAG_HOURLY;
    else if (strcmp(part, "daily") != 0)
        problem(L, sl_cfg_get(root, "partition"), 0, 0, "partition: \"%s\" is not daily or hourly",
                part);

    d->start = INT64_MIN;
    const char *start = NULL;
    sl_error_clear(&e);
    if (sl_cfg_get_str(root, "start", NULL, &start, &e))
        problem_err(L, sl_cfg_get(root, "start"), &e);
    else if (start && sl_dag_part_parse(d, start, &d->start))
        problem(L, sl_cfg_get(root, "start"), 0, 0,
                "start: \"%s\" is not a partition; write it like %s", start,
                d->partitioning == SL_DAG_HOURLY ? "2026-11-26T03" : "2026-11-26");

    sl_error_clear(&e);
    if (sl_cfg_get_bool(root, "catchup", 1, &d->catchup, &e))
        problem_err(L, sl_cfg_get(root, "catchup"), &e);

    int64_t v = 0;
    sl_error_clear(&e);
    if (sl_cfg_get_int(root, "max_active_runs", 16, &v, &e))
        problem_err(L, sl_cfg_get(root, "max_active_runs"), &e);
    else if (v < 1 || v > 10000)
        problem(L, sl_cfg_get(root, "max_active_runs"), 0, 0,
                "max_active_runs: %lld is out of range 1..10000", (long long)v);
    else
        d->max_active_runs = (unsigned)v;
    sl_error_clear(&e);
    if (sl_cfg_get_int(root, "concurrency", 4, &v, &e))
        problem_err(L, sl_cfg_get(root, "concurrency"), &e);
    else if (v < 1 || v > 1024)
        problem(L, sl_cfg_get(root, "concurrency"), 0, 0,
                "concurrency: %lld is out of range 1..1024", (long long)v);
    else
        d->concurrency = (unsigned)v;

    sl_error_clear(&e);
    if (sl_cfg_get_duration(root, "sla", 0, &d->sla_ms, &e))
        problem_err(L, sl_cfg_get(root, "sla"), &e);
    sl_error_clear(&e);
    if (sl_cfg_get_duration(root, "kill_grace", 10000, &d->kill_grace_ms, &e))
        problem_err(L, sl_cfg_get(root, "kill_grace"), &e);

    sl_error_clear(&e);
    const char *defsd = sl_arena_printf(L->a, ".sluice/dag-%s", d->name ? d->name : "dag");
    if (!defsd)
        L->ps.oom = 1;
    else if (sl_cfg_get_path(L->doc, root, "state_dir", defsd, &d->state_dir, &e))
        problem_err(L, sl_cfg_get(root, "state_dir"), &e);

    const struct sl_cfg_node *al = sl_cfg_get(root, "alerts");
    d->webhook_timeout_ms = 5000;
    if (al && al->kind != SL_CFG_MAP) {
        problem(L, al, 0, 0, "alerts: expected a map with webhook, found %s", kind_noun(al));
    } else if (al) {
        check_keys(L, al, alert_keys, 2, " in alerts");
        sl_error_clear(&e);
        if (sl_cfg_get_str(al, "webhook", NULL, &d->webhook, &e))
            problem_err(L, sl_cfg_get(al, "webhook"), &e);
        else if (d->webhook && strncmp(d->webhook, "http://", 7) != 0 &&
                 strncmp(d->webhook, "https://", 8) != 0)
            problem(L, sl_cfg_get(al, "webhook"), 0, 0,
                    "alerts.webhook: \"%s\" is not an http:// or https:// URL", d->webhook);
        sl_error_clear(&e);
        if (sl_cfg_get_duration(al, "timeout", 5000, &d->webhook_timeout_ms, &e))
            problem_err(L, sl_cfg_get(al, "timeout"), &e);
    }

    load_env(L, sl_cfg_get(root, "env"), &d->env, &d->nenv);

    const struct sl_cfg_node *jobs = sl_cfg_get(root, "jobs");
    if (!jobs) {
        problem(L, root, 0, 0, "missing required key \"jobs\" (a map of job name to job)");
        return;
    }
    if (jobs->kind != SL_CFG_MAP || jobs->n == 0) {
        problem(L, jobs, 0, 0, "jobs: expected a map of at least one job, found %s",
                jobs->kind == SL_CFG_MAP ? "an empty map" : kind_noun(jobs));
        return;
    }
    if (jobs->n > MAX_JOBS) {
        problem(L, jobs, 0, 0, "jobs: %zu jobs; at most %d", jobs->n, MAX_JOBS);
        return;
    }
    d->jobs = sl_arena_calloc(L->a, jobs->n * sizeof *d->jobs);
    if (!d->jobs) {
        L->ps.oom = 1;
        return;
    }
    d->njobs = jobs->n;
    for (size_t i = 0; i < jobs->n; i++)
        load_job(L, &d->jobs[i], &jobs->pairs[i]);
    for (size_t i = 0; i < jobs->n; i++)
        load_deps(L, i, jobs->pairs[i].val);
    if (!L->ps.n && !L->ps.oom)
        order_jobs(L, jobs);
}

sl_rc sl_dag_load(const char *path, struct sl_dag **out, struct sl_error *err)
{
    struct sl_cfg_doc *doc = NULL;
    *out = NULL;
    sl_rc rc = sl_cfg_load(path, &doc, err);
    if (rc)
        return rc;
    struct sl_dag *d = sl_calloc(1, sizeof *d);
    struct loader *L = sl_calloc(1, sizeof *L);
    if (!d || !L) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory while loading %s", path);
        goto fail;
    }
    d->doc = doc;
    d->path = doc->path;
    d->dir = doc->dir;
    L->d = d;
    L->doc = doc;
    L->a = &doc->arena;
    sl__problems_init(&L->ps, doc->path, &doc->arena);
    load_top(L);
    if (sl__problems_any(&L->ps)) {
        rc = sl__problems_report(&L->ps, err);
        goto fail;
    }
    sl__problems_fini(&L->ps);
    sl_free(L);
    *out = d;
    return SL_OK;
fail:
    if (L)
        sl__problems_fini(&L->ps);
    sl_free(L);
    if (d) {
        sl_cron_free(d->cron);
        sl_tz_close(d->tz);
    }
    sl_free(d);
    sl_cfg_destroy(doc);
    return rc;
}

void sl_dag_destroy(struct sl_dag *d)
{
    if (!d)
        return;
    sl_cron_free(d->cron);
    sl_tz_close(d->tz);
    sl_cfg_destroy(d->doc);
    sl_free(d);
}

int sl_dag_find(const struct sl_dag *d, const char *name)
{
    for (size_t i = 0; i < d->njobs; i++)
        if (d->jobs[i].name && strcmp(d->jobs[i].name, name) == 0)
            return (int)i;
    return -1;
}
