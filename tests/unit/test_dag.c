/*
 * test_dag.c - DAG files (src/orchestrator/dag.c): loading, every kind of problem reported
 * with its position and all at once, topological order; partitions and templates
 * (src/orchestrator/partition.c): keys, arithmetic across days, months and daylight
 * saving, scheduled times, template expansion and its errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orchestrator/orch_int.h"
#include "sluice/alloc.h"
#include "sluice/buf.h"
#include "sluice/dag.h"
#include "test.h"

static char dir[256];

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

static struct sl_dag *load(const char *text, struct sl_error *err)
{
    write_file("d.yaml", text);
    char path[512];
    snprintf(path, sizeof path, "%s/d.yaml", dir);
    struct sl_dag *d = NULL;
    sl_error_clear(err);
    if (sl_dag_load(path, &d, err))
        return NULL;
    return d;
}

static int count_lines(const char *s)
{
    int n = *s ? 1 : 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_load_ok(void)
{
    struct sl_error err;
    struct sl_dag *d =
        load("dag: nightly\n"
             "schedule: \"0 2 * * *\"\n"
             "partition: hourly\n"
             "concurrency: 3\n"
             "sla: 90m\n"
             "catchup: false\n"
             "jobs:\n"
             "  report: {command: \"echo {{ds}}\", depends_on: [metrics, extract]}\n"
             "  metrics: {command: \"true\", depends_on: extract, retries: 2,\n"
             "            retry_backoff: 250ms, timeout: 1h, trigger_rule: all_done}\n"
             "  extract: {command: \"true\", env: {A: \"{{ds_nodash}}\"}}\n",
             &err);
    if (!d)
        fprintf(stderr, "%s\n", err.msg);
    REQUIRE(d);
    CHECK_STR(d->name, "nightly");
    CHECK_INT(d->partitioning, SL_DAG_HOURLY);
    CHECK_INT(d->concurrency, 3);
    CHECK_INT(d->max_active_runs, 16);
    CHECK_INT(d->sla_ms, 90 * 60 * 1000);
    CHECK_INT(d->catchup, 0);
    CHECK(d->cron != NULL);
    REQUIRE(d->njobs == 3);
    /* Kahn's order, ready jobs in file order: extract, metrics, report. */
    CHECK_STR(d->jobs[d->order[0]].name, "extract");
    CHECK_STR(d->jobs[d->order[1]].name, "metrics");
    CHECK_STR(d->jobs[d->order[2]].name, "report");
    const struct sl_dag_job *m = &d->jobs[sl_dag_find(d, "metrics")];
    CHECK_INT(m->retries, 2);
    CHECK_INT(m->retry_backoff_ms, 250);
    CHECK_INT(m->timeout_ms, 3600000);
    CHECK_INT(m->trigger, SL_DAG_ALL_DONE);
    CHECK_INT(m->ndeps, 1);
    const struct sl_dag_job *e = &d->jobs[sl_dag_find(d, "extract")];
    REQUIRE(e->nenv == 1);
    CHECK_STR(e->env[0].key, "A");
    CHECK_STR(e->env[0].value, "{{ds_nodash}}");
    /* state_dir defaults to .sluice/dag-<name> beside the DAG file. */
    char want[512];
    snprintf(want, sizeof want, "%s/.sluice/dag-nightly", d->dir);
    CHECK_STR(d->state_dir, want);
    CHECK_INT(sl_dag_find(d, "nope"), -1);
    sl_dag_destroy(d);
}

static void test_problems(void)
{
    struct sl_error err;
    /* Every problem at once, each with its position, sorted by position. */
    struct sl_dag *d = load("dag: bad\n"                                      /* 1 */
                            "concurency: 3\n"                                 /* 2 */
                            "partition: weekly\n"                             /* 3 */
                            "jobs:\n"                                         /* 4 */
                            "  a: {command: \"x {{ds_nodahs}}\"}\n"           /* 5 */
                            "  b: {command: x, depends_on: [extrct]}\n"       /* 6 */
                            "  c: {command: x, pipeline: p.yaml}\n"           /* 7 */
                            "  d: {trigger_rule: one_faild, command: x}\n"    /* 8 */
                            "  e: {retries: -1, command: x, timeout: soon}\n" /* 9 */
                            "  f: {}\n",                                      /* 10 */
                            &err);
    CHECK(d == NULL);
    CHECK_INT(err.rc, SL_ECONFIG);
    fprintf(stderr, "--- problems:\n%s\n---\n", err.msg);
    CHECK(strstr(err.msg, "d.yaml:2:1: unknown key \"concurency\"; did you mean \"concurrency\"?"));
    CHECK(strstr(err.msg, "d.yaml:3:12: partition: \"weekly\" is not daily or hourly"));
    CHECK(strstr(err.msg, "d.yaml:5:19: jobs.a.command: unknown template {{ds_nodahs}}"));
    CHECK(strstr(err.msg, "jobs.b.depends_on: unknown job \"extrct\""));
    CHECK(strstr(err.msg, "has both `command` and `pipeline`"));
    CHECK(strstr(err.msg, "\"one_faild\" is not one of all_success, all_done, one_failed; did "
                          "you mean \"one_failed\"?"));
    CHECK(strstr(err.msg, "jobs.e.retries: -1 is out of range"));
    CHECK(strstr(err.msg, "jobs.e.timeout"));
    CHECK(strstr(err.msg, "jobs.f: needs `command`"));
    CHECK_INT(count_lines(err.msg), 9);
    /* Sorted by position: line 2 comes before line 3. */
    CHECK(strstr(err.msg, ":2:1:") < strstr(err.msg, ":3:12:"));

    /* A cycle is reported with the jobs that form it, in the direction work flows. */
    d = load("dag: cyc\n"
             "jobs:\n"
             "  start: {command: x}\n"
             "  a: {command: x, depends_on: [start, c]}\n"
             "  b: {command: x, depends_on: a}\n"
             "  c: {command: x, depends_on: b}\n",
             &err);
    CHECK(d == NULL);
    CHECK(strstr(err.msg, "dependency cycle a -> b -> c -> a") ||
          strstr(err.msg, "dependency cycle b -> c -> a -> b") ||
          strstr(err.msg, "dependency cycle c -> a -> b -> c"));
    if (!strstr(err.msg, "dependency cycle"))
        fprintf(stderr, "%s\n", err.msg);
    d = load("dag: self\njobs:\n  a: {command: x, depends_on: a}\n", &err);
    CHECK(d == NULL);
    CHECK(strstr(err.msg, "a job cannot depend on itself"));

    /* A pipeline file's templates are checked, with positions inside that file. */
    write_file("p.yaml",
               "pipeline: p\nsources:\n  in: {type: file, path: \"x/{{ ds }}/{{dz}}\"}\n");
    d = load("dag: pl\njobs:\n  load: {pipeline: p.yaml}\n  missing: {pipeline: nothere.yaml}\n",
             &err);
    CHECK(d == NULL);
    fprintf(stderr, "--- problems:\n%s\n---\n", err.msg);
    CHECK(strstr(err.msg, "p.yaml:3:38: unknown template {{dz}}"));
    CHECK(strstr(err.msg, "nothere.yaml"));

    /* Schedules and zones are checked too. */
    d = load("dag: s\nschedule: \"61 * * * *\"\ntimezone: Mars/Olympus\njobs: {a: {command: x}}\n",
             &err);
    CHECK(d == NULL);
    CHECK(strstr(err.msg, "d.yaml:2:11: schedule:"));
    CHECK(strstr(err.msg, "Mars/Olympus"));
    d = load("jobs: {}\n", &err);
    CHECK(d == NULL);
    CHECK(strstr(err.msg, "missing required key \"dag\""));
    CHECK(strstr(err.msg, "jobs: expected a map of at least one job"));
}

static void test_partitions(void)
{
    struct sl_error err;
    struct sl_dag *d = load("dag: p\nschedule: \"0 2 * * *\"\njobs: {a: {command: x}}\n", &err);
    REQUIRE(d);
    int64_t idx;
    char key[SL_DAG_KEY_MAX];
    CHECK_INT(sl_dag_part_parse(d, "2026-11-26", &idx), 0);
    sl_dag_part_key(d, idx, key);
    CHECK_STR(key, "2026-11-26");
    CHECK_INT(sl_dag_part_start(d, idx), 1795651200); /* 2026-11-26T00:00:00Z */
    CHECK_INT(sl_dag_part_at(d, 1795651200 + 86399), idx);
    CHECK_INT(sl_dag_part_at(d, 1795651200 + 86400), idx + 1);
    /* Due at the first firing after the day ends: 2026-11-27T02:00:00Z. */
    CHECK_INT(sl_dag_part_scheduled(d, idx), 1795651200 + 86400 + 7200);
    CHECK_INT(sl_dag_part_parse(d, "2026-02-29", &idx), -1);
    CHECK_INT(sl_dag_part_parse(d, "2024-02-29", &idx), 0);
    CHECK_INT(sl_dag_part_parse(d, "2026-11-26T03", &idx), -1); /* daily takes days */
    CHECK_INT(sl_dag_part_parse(d, "2026-1-26", &idx), -1);
    CHECK_INT(sl_dag_part_parse(d, "", &idx), -1);

    struct sl_dag_vars v;
    sl_dag_part_parse(d, "2026-03-01", &idx);
    sl_dag_vars_init(d, idx, "load", 2, &v);
    CHECK_STR(v.val[0], "2026-03-01");                /* ds */
    CHECK_STR(v.val[1], "20260301");                  /* ds_nodash */
    CHECK_STR(v.val[2], "2026-03-01T00:00:00+00:00"); /* ts */
    CHECK_STR(v.val[3], "20260301T000000");           /* ts_nodash */
    CHECK_STR(v.val[4], "2026-02-28");                /* prev_ds */
    CHECK_STR(v.val[5], "2026-03-02");                /* next_ds */
    CHECK_STR(v.val[6], "2026-03-01");                /* partition */
    CHECK_STR(v.val[9], "p");                         /* dag */
    CHECK_STR(v.val[10], "load");                     /* job */
    CHECK_STR(v.val[11], "2");                        /* attempt */
    sl_dag_destroy(d);

    /* Hourly: prev/next step by an hour, across midnight and the year's end. */
    d = load("dag: h\npartition: hourly\njobs: {a: {command: x}}\n", &err);
    REQUIRE(d);
    CHECK_INT(sl_dag_part_parse(d, "2026-12-31T23", &idx), 0);
    int64_t same;
    CHECK_INT(sl_dag_part_parse(d, "2026-12-31T23:00:00Z", &same), 0);
    CHECK_INT(same, idx);
    CHECK_INT(sl_dag_part_parse(d, "2026-12-31 23:00", &same), 0);
    CHECK_INT(same, idx);
    CHECK_INT(sl_dag_part_parse(d, "2026-12-31T24", &same), -1);
    CHECK_INT(sl_dag_part_parse(d, "2026-12-31T23:30", &same), -1);
    sl_dag_vars_init(d, idx, NULL, 1, &v);
    CHECK_STR(v.val[0], "2026-12-31");
    CHECK_STR(v.val[2], "2026-12-31T23:00:00+00:00");
    CHECK_STR(v.val[3], "20261231T230000");
    CHECK_STR(v.val[4], "2026-12-31"); /* the previous hour is the same day */
    CHECK_STR(v.val[5], "2027-01-01"); /* the next hour is next year */
    CHECK_STR(v.val[6], "2026-12-31T23");
    CHECK_STR(v.val[7], "2026-12-31T22");
    CHECK_STR(v.val[8], "2027-01-01T00");
    CHECK_INT(sl_dag_part_start(d, idx), 1798758000); /* 2026-12-31T23:00:00Z */
    sl_dag_destroy(d);
    /* Hourly with a schedule at minute 5: hour 23 is due at 00:05 the next day. */
    d = load("dag: h5\npartition: hourly\nschedule: \"5 * * * *\"\njobs: {a: {command: x}}\n",
             &err);
    REQUIRE(d);
    CHECK_INT(sl_dag_part_parse(d, "2026-12-31T23", &idx), 0);
    CHECK_INT(sl_dag_part_scheduled(d, idx), 1798758000 + 3600 + 300);
    sl_dag_destroy(d);

    /* A zone: partitions are local days; ts carries the offset of the day's start. */
    d = load("dag: z\ntimezone: Europe/Berlin\nschedule: \"0 2 * * *\"\n"
             "jobs: {a: {command: x}}\n",
             &err);
    REQUIRE(d);
    sl_dag_part_parse(d, "2026-11-26", &idx);
    CHECK_INT(sl_dag_part_start(d, idx), 1795651200 - 3600);
    /* Due at 02:00 Berlin the next day: 01:00Z. */
    CHECK_INT(sl_dag_part_scheduled(d, idx), 1795651200 + 86400 + 3600);
    CHECK_INT(sl_dag_part_at(d, 1795651200 + 86400 + 3600) - 1, idx);
    sl_dag_vars_init(d, idx, NULL, 1, &v);
    CHECK_STR(v.val[2], "2026-11-26T00:00:00+01:00");
    sl_dag_part_parse(d, "2026-07-01", &idx);
    sl_dag_vars_init(d, idx, NULL, 1, &v);
    CHECK_STR(v.val[2], "2026-07-01T00:00:00+02:00");
    /* The day of the spring change has 23 hours. */
    sl_dag_part_parse(d, "2026-03-29", &idx);
    CHECK_INT(sl_dag_part_start(d, idx + 1) - sl_dag_part_start(d, idx), 23 * 3600);
    CHECK_INT(sl_dag_part_at(d, sl_dag_part_start(d, idx) + 23 * 3600 - 1), idx);
    /* The fall change: a 25-hour day, and the repeated hour belongs to it. */
    sl_dag_part_parse(d, "2026-10-25", &idx);
    CHECK_INT(sl_dag_part_start(d, idx + 1) - sl_dag_part_start(d, idx), 25 * 3600);
    CHECK_INT(sl_dag_part_at(d, sl_dag_part_start(d, idx) + 25 * 3600 - 1), idx);
    /* No environment is touched by the conversions. */
    CHECK(getenv("TZ") == NULL || strcmp(getenv("TZ"), "Europe/Berlin") != 0);
    sl_dag_destroy(d);
}

static void test_templates(void)
{
    struct sl_error err;
    struct sl_dag *d = load("dag: t\njobs: {a: {command: x}}\n", &err);
    REQUIRE(d);
    int64_t idx;
    sl_dag_part_parse(d, "2026-11-26", &idx);
    struct sl_dag_vars v;
    sl_dag_vars_init(d, idx, "a", 1, &v);
    struct sl_buf b;
    sl_buf_init(&b, 0);
    const char *t = "in/{{ds}}/x_{{ ds_nodash }}.{{dag}}.{{job}} {{{{ds}} {single}";
    CHECK_INT(sl_dag_template(t, strlen(t), &v, &b, NULL, NULL, &err), SL_OK);
    sl_buf_cstr(&b);
    CHECK_STR(b.data, "in/2026-11-26/x_20261126.t.a {{ds}} {single}");
    unsigned line = 0, col = 0;
    t = "ok {{ds}}\n  {{nope}}";
    sl_buf_clear(&b);
    CHECK_INT(sl_dag_template(t, strlen(t), &v, &b, &line, &col, &err), SL_ECONFIG);
    CHECK_INT(line, 2);
    CHECK_INT(col, 3);
    CHECK(strstr(err.msg, "unknown template {{nope}}"));
    t = "x {{ds";
    CHECK_INT(sl_dag_template(t, strlen(t), NULL, NULL, &line, &col, &err), SL_ECONFIG);
    CHECK_INT(col, 3);
    CHECK(strstr(err.msg, "opens no template"));
    sl_buf_fini(&b);
    sl_dag_destroy(d);
}

/*
 * Properties over many partitions: a key parses back to its partition; the variables of
 * a partition name its neighbours as the neighbours name themselves; start times grow by
 * a day (an hour) in UTC; and random text never crashes the template expander.
 */
static void test_properties(void)
{
    struct sl_error err;
    const char *files[] = {"dag: pd\njobs: {a: {command: x}}\n",
                           "dag: ph\npartition: hourly\njobs: {a: {command: x}}\n"};
    unsigned seed = 12345;
    for (int f = 0; f < 2; f++) {
        struct sl_dag *d = load(files[f], &err);
        REQUIRE(d);
        int64_t unit = f ? 3600 : 86400;
        for (int i = 0; i < 20000; i++) {
            seed = seed * 1103515245u + 12345u;
            /* 1900 .. 2400, either way of the epoch */
            int64_t idx = (int64_t)(seed % 182621u) * (f ? 24 : 1) - 25567 * (f ? 24 : 1);
            if (f)
                idx += (seed >> 20) % 24; /* any hour of the day */
            char key[SL_DAG_KEY_MAX], prev[SL_DAG_KEY_MAX], next[SL_DAG_KEY_MAX];
            sl_dag_part_key(d, idx, key);
            sl_dag_part_key(d, idx - 1, prev);
            sl_dag_part_key(d, idx + 1, next);
            int64_t back = 0;
            if (sl_dag_part_parse(d, key, &back) != 0 || back != idx) {
                CHECK_STR(key, "parses back");
                break;
            }
            CHECK(strcmp(prev, key) < 0 && strcmp(key, next) < 0);
            struct sl_dag_vars v;
            sl_dag_vars_init(d, idx, "a", 1, &v);
            if (strcmp(v.val[7], prev) != 0 || strcmp(v.val[8], next) != 0 ||
                strncmp(v.val[0], key, 10) != 0) {
                CHECK_STR(v.val[7], prev);
                CHECK_STR(v.val[8], next);
                break;
            }
            int64_t t = sl_dag_part_start(d, idx);
            if (t != idx * unit || sl_dag_part_at(d, t + unit - 1) != idx) {
                CHECK_INT(t, idx * unit);
                break;
            }
        }
        sl_dag_destroy(d);
    }
    /* Random text: either expands or is refused with a position; never crashes. */
    struct sl_dag_vars v;
    memset(&v, 0, sizeof v);
    struct sl_buf b;
    sl_buf_init(&b, 0);
    const char alphabet[] = "{} dsa_\n{{}}tpx";
    int ok = 0, refused = 0;
    for (int i = 0; i < 20000; i++) {
        char text[32];
        seed = seed * 1103515245u + 12345u;
        size_t n = seed % sizeof text;
        for (size_t k = 0; k < n; k++) {
            seed = seed * 1103515245u + 12345u;
            text[k] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
        }
        sl_buf_clear(&b);
        unsigned line = 0, col = 0;
        sl_rc rc = sl_dag_template(text, n, &v, &b, &line, &col, &err);
        if (rc == SL_OK) {
            ok++;
        } else {
            refused++;
            CHECK(rc == SL_ECONFIG && line >= 1 && col >= 1);
        }
    }
    CHECK(ok > 0 && refused > 0);
    sl_buf_fini(&b);
}

/* Every allocation failure while loading is reported as SL_ENOMEM, never a crash. */
static void test_alloc_failures(void)
{
    write_file("p.yaml", "pipeline: p\n");
    const char *text = "dag: a\nschedule: \"*/5 * * * *\"\nenv: {X: y}\njobs:\n"
                       "  a: {command: \"echo {{ds}}\"}\n"
                       "  b: {pipeline: p.yaml, depends_on: [a]}\n";
    write_file("d.yaml", text);
    char path[512];
    snprintf(path, sizeof path, "%s/d.yaml", dir);
    int saw_ok = 0;
    for (long n = 1; n < 2000 && !saw_ok; n++) {
        struct sl_error err;
        sl_error_clear(&err);
        struct sl_dag *d = NULL;
        sl_alloc_fail_at(n);
        sl_rc rc = sl_dag_load(path, &d, &err);
        sl_alloc_fail_at(0);
        if (rc == SL_OK) {
            saw_ok = 1;
            CHECK_INT(d->njobs, 2);
        } else if (rc != SL_ENOMEM) {
            fprintf(stderr, "allocation %ld: rc %d: %s\n", n, rc, err.msg);
            CHECK_INT(rc, SL_ENOMEM);
        }
        sl_dag_destroy(d);
    }
    CHECK(saw_ok);
}

int main(void)
{
    unsetenv("TZ"); /* the zone tests below expect it unset */
    snprintf(dir, sizeof dir, "/tmp/sluice-test-dag.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_load_ok);
    RUN(test_problems);
    RUN(test_partitions);
    RUN(test_templates);
    RUN(test_properties);
    RUN(test_alloc_failures);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return TEST_DONE();
}
