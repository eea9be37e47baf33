/*
 * fuzz_dag.c - fuzz target for DAG files and their {{templates}}.
 *
 * Input: any bytes. They are checked as a template text (names only, then expanded for a
 * fixed daily partition, with and without a time zone): both must agree, succeed or fail
 * with SL_ECONFIG and a position inside the text. Then the same bytes are loaded as a DAG
 * file (written to a scratch file, as sl_dag_load reads a path): the load must succeed or
 * fail with a message, and a loaded daily DAG must answer its partition arithmetic
 * consistently (part_at(part_start(i)) == i). Built with libFuzzer when SLUICE_FUZZ is on,
 * otherwise with tests/fuzz/driver.c replaying tests/fuzz/corpus/dag/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice/buf.h"
#include "sluice/dag.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char scratch[256];

static void cleanup(void)
{
    static const char *const files[] = {"utc.yaml", "berlin.yaml", "in.yaml"};
    char path[300];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", scratch, files[i]);
        unlink(path);
    }
    rmdir(scratch);
}

static struct sl_dag *fixed(const char *name, const char *text)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s.yaml", scratch, name);
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    fputs(text, f);
    fclose(f);
    struct sl_error err;
    struct sl_dag *d = NULL;
    if (sl_dag_load(path, &d, &err) != 0)
        abort();
    return d;
}

static void check_template(const struct sl_dag *d, const char *t, size_t n)
{
    struct sl_error err;
    unsigned l1 = 0, c1 = 0, l2 = 0, c2 = 0;
    sl_rc only = sl_dag_template(t, n, NULL, NULL, &l1, &c1, &err);
    if (only != SL_OK && only != SL_ECONFIG && only != SL_ENOMEM)
        abort();
    int64_t idx;
    if (sl_dag_part_parse(d, d->partitioning == SL_DAG_HOURLY ? "2026-03-29T02" : "2026-03-29",
                          &idx) != 0)
        abort();
    struct sl_dag_vars v;
    sl_dag_vars_init(d, idx, "job", 1, &v);
    struct sl_buf b;
    sl_buf_init(&b, 1 << 20);
    sl_rc full = sl_dag_template(t, n, &v, &b, &l2, &c2, &err);
    sl_buf_fini(&b);
    if (full == SL_ENOMEM || full == SL_ELIMIT || only == SL_ENOMEM)
        return;
    if (full != only)
        abort(); /* checking and expanding must agree */
    if (only == SL_ECONFIG && (l1 != l2 || c1 != c2 || l1 == 0 || c1 == 0 || !err.msg[0]))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sl_dag *utc, *berlin;
    if (!scratch[0]) {
        snprintf(scratch, sizeof scratch, "/tmp/sluice-fuzz-dag.%d", (int)getpid());
        if (mkdir(scratch, 0700) != 0 && access(scratch, W_OK) != 0)
            abort();
        atexit(cleanup);
        utc = fixed("utc", "dag: f\njobs: {a: {command: x}}\n");
        berlin = fixed("berlin", "dag: g\ntimezone: Europe/Berlin\npartition: hourly\n"
                                 "jobs: {a: {command: x}}\n");
    }
    check_template(utc, (const char *)data, size);
    check_template(berlin, (const char *)data, size);

    char path[300];
    snprintf(path, sizeof path, "%s/in.yaml", scratch);
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    fwrite(data, 1, size, f);
    fclose(f);
    struct sl_error err;
    struct sl_dag *d = NULL;
    sl_rc rc = sl_dag_load(path, &d, &err);
    if (rc != SL_OK) {
        if (d || !err.msg[0])
            abort();
        return 0;
    }
    /* Days: a day's start lies in that day, whatever the zone does (an hour skipped at
       midnight moves the start, not the day). Hours skipped by a change have no start of
       their own, so hours are not checked this way. */
    if (d->partitioning == SL_DAG_DAILY)
        for (int64_t i = 20000; i < 20003; i++)
            if (sl_dag_part_at(d, sl_dag_part_start(d, i)) != i)
                abort();
    sl_dag_destroy(d);
    return 0;
}
