/*
 * wal.c - `sluice wal check|repair PIPELINE.yaml`: the write-ahead logs of the pipeline's
 * http sources (<state_dir>/wal/<source>/, include/sluice/wal.h).
 *
 * check reads every segment and verifies every record's CRC; it prints, per source, the
 * segments, records and bytes found and any damage, and exits 1 when there is damage.
 * repair takes the state directory's lock (so never while the pipeline runs), truncates
 * the torn tail of each log's last segment and prints exactly how many bytes it dropped
 * from where; it exits 0 unless damage outside a last segment remains (exit 1: that is
 * not a crash's torn tail, and nothing is cut). A torn tail can only hold bytes that were
 * never acknowledged, because a request is answered after the fsync that covers it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sluice/pipeline.h"
#include "sluice/statedir.h"
#include "sluice/wal.h"

#include "cli/cli.h"

static const char help[] =
    "usage: sluice wal check|repair PIPELINE.yaml\n"
    "\n"
    "The write-ahead logs of the pipeline's http sources (<state_dir>/wal/<source>/).\n"
    "  check   verify every record's CRC; print segments, records and bytes per source\n"
    "          and any damage. Exit 0 when intact, 1 when damaged.\n"
    "  repair  truncate the torn tail of each log's last segment (left by a crash: bytes\n"
    "          never acknowledged) and print exactly what was dropped. Takes the state\n"
    "          directory's lock, so stop the pipeline first. Exit 0 when the logs are\n"
    "          intact afterwards, 1 when damage outside a last segment remains.\n";

int sl__cli_wal(int argc, char **argv)
{
    const char *path = NULL, *sub = NULL;
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(help, stdout);
            return SL_EXIT_OK;
        }
        if (sl__cli_log_option(argc, argv, &i, &bad))
            continue;
        if (!sub && argv[i][0] != '-') {
            sub = argv[i];
            continue;
        }
        if (sl__cli_path_arg("wal", argv[i], &path, help))
            return SL_EXIT_USAGE;
    }
    if (bad)
        return SL_EXIT_USAGE;
    if (!sub || !path || (strcmp(sub, "check") != 0 && strcmp(sub, "repair") != 0)) {
        if (sub && strcmp(sub, "check") != 0 && strcmp(sub, "repair") != 0)
            fprintf(stderr, "sluice wal: unknown subcommand \"%s\"; use check or repair\n", sub);
        fputs(help, stderr);
        return SL_EXIT_USAGE;
    }
    int repair = strcmp(sub, "repair") == 0;
    struct sl_pipeline *p = NULL;
    if (sl__cli_load(path, &p))
        return SL_EXIT_USAGE;
    struct sl_error err;
    sl_error_clear(&err);
    int status = SL_EXIT_OK;
    if (repair && sl_statedir_open(p->state_dir, 0, &err) == SL_OK &&
        sl_statedir_lock(p->state_dir, &err) != SL_OK) {
        fprintf(stderr, "sluice wal repair: %s\n", err.msg);
        sl_pipeline_destroy(p);
        return SL_EXIT_FAIL;
    }
    size_t nhttp = 0;
    for (size_t i = 0; i < p->ncomp; i++) {
        const struct sl_component *c = &p->comp[i];
        if (c->kind != SL_PLUGIN_SOURCE || strcmp(c->plugin->name, "http") != 0)
            continue;
        nhttp++;
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/wal/%s", p->state_dir, c->name);
        struct sl_wal_report rep;
        sl_error_clear(&err);
        sl_rc rc = sl_wal_check(dir, repair, &rep, &err);
        if (rc && rc != SL_EPARSE) {
            fprintf(stderr, "sluice wal %s: source %s: %s\n", sub, c->name, err.msg);
            status = SL_EXIT_FAIL;
            continue;
        }
        printf("source %s: %" PRIu64 " segment%s, %" PRIu64 " record%s, %" PRIu64 " bytes in %s\n",
               c->name, rep.segments, rep.segments == 1 ? "" : "s", rep.records,
               rep.records == 1 ? "" : "s", rep.bytes, dir);
        if (rep.torn_bytes && repair)
            printf("source %s: repaired: dropped %" PRIu64 " torn bytes from segment %" PRIu64
                   " (%s); they were never acknowledged\n",
                   c->name, rep.torn_bytes, rep.torn_segment, rep.damage);
        else if (rep.torn_bytes)
            printf("source %s: DAMAGED: torn tail of %" PRIu64 " bytes in segment %" PRIu64
                   " (%s); run `sluice wal repair %s` (the pipeline also cuts it at start)\n",
                   c->name, rep.torn_bytes, rep.torn_segment, rep.damage, path);
        if (rep.damaged)
            printf("source %s: DAMAGED: %" PRIu64 " segment%s other than the last: %s\n", c->name,
                   rep.damaged, rep.damaged == 1 ? "" : "s", rep.damage);
        if (rc == SL_EPARSE)
            status = SL_EXIT_FAIL;
        else if (!rep.torn_bytes && !rep.damaged)
            printf("source %s: intact\n", c->name);
    }
    if (nhttp == 0)
        printf("%s: pipeline %s has no http source, so no write-ahead log\n", path, p->name);
    sl_pipeline_destroy(p);
    return status;
}
