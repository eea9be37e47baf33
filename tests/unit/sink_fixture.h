/*
 * sink_fixture.h - scaffolding shared by the sink unit tests (test_sinks.c,
 * test_file_sink_commit.c): a scratch directory, file helpers, hand-built batches, and a
 * sink opened through its plugin callbacks. Header-only; every helper is static and may go
 * unused in one of the tests.
 */
#ifndef SLUICE_SINK_FIXTURE_H
#define SLUICE_SINK_FIXTURE_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice/alloc.h"
#include "sluice/batch.h"
#include "sluice/config.h"
#include "sluice/plugin.h"
#include "sluice/record.h"
#include "test.h"

#define FIXTURE __attribute__((unused)) static

static char tmpdir[256];
static struct sl_json_parser *parser;
static const char *const source_names[] = {"clicks", "orders"};

FIXTURE void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sluice-test-sinks-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(1);
    }
}

FIXTURE void remove_tmpdir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
}

/* A path inside the scratch directory (static buffer rotated over 8 slots). */
FIXTURE const char *tpath(const char *rel)
{
    static char bufs[8][512];
    static int k;
    char *b = bufs[k++ % 8];
    snprintf(b, 512, "%s/%s", tmpdir, rel);
    return b;
}

/* The whole content of a file in a static buffer, or NULL when it cannot be read. */
FIXTURE const char *slurp(const char *path)
{
    static char buf[1 << 16];
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

FIXTURE int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

FIXTURE void put_file(const char *path, const char *content)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(content, f);
    fclose(f);
}

FIXTURE struct sl_batch *make_batch(const char *const *lines, size_t n, uint32_t source,
                                    const char *position, uint64_t seed)
{
    struct sl_batch *b;
    if (sl_batch_create(0, &b) != SL_OK)
        return NULL;
    b->source = source;
    b->origin = "data/in.ndjson";
    b->position = position ? sl_arena_strdup(&b->arena, position) : NULL;
    for (size_t i = 0; i < n; i++) {
        struct sl_record *r = sl_batch_add(b);
        size_t len = strlen(lines[i]);
        char *text = sl_arena_strndup(&b->arena, lines[i], len);
        r->text = r->orig = text;
        r->text_len = r->orig_len = (uint32_t)len;
        r->line = (uint32_t)i + 1;
        r->offset = 100 * i;
        r->id[0] = seed;
        r->id[1] = i;
        struct sl_json_error je;
        if (sl_record_parse(r, parser, 0, &b->arena, &je) == SL_OK)
            r->flags |= SL_REC_PARSED;
        else
            sl_record_reject(b, r, "test", "parse error: %s", je.msg);
    }
    return b;
}

struct sink {
    const struct sl_plugin *p;
    struct sl_cfg_doc *doc;
    struct sl_plugin_ctx ctx;
    void *state;
    struct sl_worker w;
    struct sl_error err;
};

FIXTURE void sink_close(struct sink *k)
{
    if (k->p && k->p->close)
        k->p->close(k->state);
    k->state = NULL;
    sl_cfg_destroy(k->doc);
    k->doc = NULL;
}

FIXTURE sl_rc sink_write(struct sink *k, struct sl_batch *b)
{
    sl_error_clear(&k->err);
    sl_rc rc = k->p->process(k->state, b, &k->w, &k->err);
    if (rc)
        fprintf(stderr, "  (process: %s: %s)\n", sl_rc_name(rc), k->err.msg);
    return rc;
}

/* Write lines as one batch and release it. */
FIXTURE sl_rc write_lines(struct sink *k, const char *const *lines, size_t n, uint32_t source,
                          const char *position, uint64_t seed)
{
    struct sl_batch *b = make_batch(lines, n, source, position, seed);
    if (!b)
        return SL_ENOMEM;
    sl_rc rc = sink_write(k, b);
    sl_batch_unref(b);
    return rc;
}

/* The in-progress file of final name rel ("" when there is none), as a path. */
FIXTURE const char *temp_of(const char *rel)
{
    static char found[1024];
    char dir[512];
    snprintf(dir, sizeof dir, "%s", tpath(rel));
    char *slash = strrchr(dir, '/');
    *slash = '\0';
    const char *base = slash + 1;
    found[0] = '\0';
    DIR *d = opendir(dir);
    if (!d)
        return found;
    struct dirent *de;
    size_t bl = strlen(base);
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        size_t nl = strlen(n);
        /* .BASE.XXXXXXXX.inprogress */
        if (nl == 1 + bl + 1 + 8 + 11 && n[0] == '.' && strncmp(n + 1, base, bl) == 0 &&
            strcmp(n + nl - 11, ".inprogress") == 0)
            snprintf(found, sizeof found, "%s/%s", dir, n);
    }
    closedir(d);
    return found;
}

/*
 * Load yaml as the sink's own map and run init with the given delivery mode and inspect
 * flag. every_batch: a file sink commits every batch (commit_interval: 0) unless yaml says
 * otherwise, which is what protocol tests expect. Returns init's code.
 */
FIXTURE sl_rc fixture_open(struct sink *k, const struct sl_plugin *p, const char *yaml,
                           int exactly_once, int inspect, int every_batch)
{
    static char with_interval[4096];
    memset(k, 0, sizeof *k);
    k->p = p;
    if (every_batch && !strstr(yaml, "commit_interval")) {
        snprintf(with_interval, sizeof with_interval, "commit_interval: 0\n%s", yaml);
        yaml = with_interval;
    }
    sl_rc rc = sl_cfg_load_string(yaml, strlen(yaml), "sink.yaml", tmpdir, &k->doc, &k->err);
    if (rc) {
        fprintf(stderr, "config: %s\n", k->err.msg);
        return rc;
    }
    k->ctx.pipeline = "clicks_to_db";
    k->ctx.name = "out";
    k->ctx.doc = k->doc;
    k->ctx.node = k->doc->root;
    k->ctx.state_dir = tmpdir;
    k->ctx.max_depth = 128;
    k->ctx.exactly_once = exactly_once;
    k->ctx.inspect = inspect;
    k->ctx.source_names = source_names;
    k->ctx.nsources = 2;
    k->w.parser = parser;
    k->w.stage = "out";
    k->w.max_depth = 128;
    rc = p->init(&k->ctx, &k->state, &k->err);
    if (rc)
        k->state = NULL;
    return rc;
}

#endif
