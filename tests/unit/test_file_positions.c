/*
 * test_file_positions.c - the file source's exactly-once callbacks: position_cmp,
 * covers, lag, and restore from every batch boundary.
 *
 * Every position here is one the source produced by real reads of temporary files; the
 * expectations are exact: which record a position covers, which records a restored run
 * reads and with which ids, how many bytes lag reports.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sluice/alloc.h"
#include "sluice/batch.h"
#include "sluice/buf.h"
#include "sluice/config.h"
#include "sluice/log.h"
#include "sluice/plugin.h"
#include "sluice/record.h"
#include "test.h"

extern const struct sl_plugin sl_source_file;
static const struct sl_plugin *const F = &sl_source_file;

static char dir[256];
static int open_once; /* src_open: run as with --once */

static const char *path_of(const char *name)
{
    static char p[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static void put(const char *name, const char *data, const char *mode)
{
    FILE *f = fopen(path_of(name), mode);
    if (!f) {
        perror(name);
        exit(2);
    }
    fwrite(data, 1, strlen(data), f);
    fclose(f);
}

/* One source instance and every batch it produced (kept alive for covers). */
struct src {
    struct sl_cfg_doc *doc;
    struct sl_plugin_ctx ctx;
    struct sl_batch_limits lim;
    void *state;
    struct sl_error err;
    struct sl_batch *b[512];
    size_t nb;
    uint64_t seq;
};

static sl_rc src_open(struct src *s, const char *yaml, uint32_t max_records, int inspect)
{
    memset(s, 0, sizeof *s);
    sl_rc rc = sl_cfg_load_string(yaml, strlen(yaml), "p.yaml", dir, &s->doc, &s->err);
    if (rc)
        return rc;
    s->lim.max_records = max_records;
    s->lim.max_bytes = 1 << 20;
    s->ctx.pipeline = "pipe";
    s->ctx.name = "src";
    s->ctx.doc = s->doc;
    s->ctx.node = s->doc->root;
    s->ctx.state_dir = dir;
    s->ctx.limits = &s->lim;
    s->ctx.max_depth = 64;
    s->ctx.exactly_once = 1;
    s->ctx.inspect = inspect;
    s->ctx.once = open_once;
    return F->init(&s->ctx, &s->state, &s->err);
}

static void src_close(struct src *s)
{
    for (size_t i = 0; i < s->nb; i++)
        sl_batch_unref(s->b[i]);
    s->nb = 0;
    if (s->state)
        F->close(s->state);
    s->state = NULL;
    sl_cfg_destroy(s->doc);
    s->doc = NULL;
}

/* Read to SL_EOF (or `max` batches), keeping every batch that has a position. */
static sl_rc src_read(struct src *s, size_t max)
{
    for (int calls = 0; calls < 10000 && s->nb < max; calls++) {
        struct sl_batch *b;
        if (sl_batch_create(0, &b))
            return SL_ENOMEM;
        sl_rc rc = F->read(s->state, b, &s->err);
        if (b->position && s->nb < 512) {
            b->seq = ++s->seq;
            s->b[s->nb++] = b;
        } else {
            sl_batch_unref(b);
        }
        if (rc != SL_OK && rc != SL_AGAIN)
            return rc;
    }
    return SL_OK;
}

/* Records of batches from..nb as "file:line:offset:text:id" lines (caller frees). */
static char *render(const struct src *s, size_t from)
{
    struct sl_buf out;
    sl_buf_init(&out, 0);
    for (size_t k = from; k < s->nb; k++) {
        const struct sl_batch *b = s->b[k];
        const char *o = strrchr(b->origin, '/');
        for (uint32_t i = 0; i < b->n; i++) {
            const struct sl_record *r = &b->recs[i];
            char id[33];
            sl_record_id_format(r->id, id);
            sl_buf_printf(&out, "%s:%u:%llu:%.*s:%s\n", o ? o + 1 : b->origin, r->line,
                          (unsigned long long)r->offset, (int)r->text_len, r->text, id);
        }
    }
    sl_buf_cstr(&out);
    return out.data;
}

/* The records of a whole rendering after its first `skip` lines. */
static const char *after_lines(const char *all, size_t skip)
{
    while (skip-- && all && *all) {
        const char *nl = strchr(all, '\n');
        all = nl ? nl + 1 : all + strlen(all);
    }
    return all;
}

static size_t records_before(const struct src *s, size_t k)
{
    size_t n = 0;
    for (size_t i = 0; i < k; i++)
        n += s->b[i]->n;
    return n;
}

static void write_glob(void)
{
    mkdir(path_of("g"), 0755);
    put("g/a.ndjson", "{\"a\":1}\n{\"a\":2}\n\n{\"a\":3}\n", "wb");
    put("g/b.ndjson", "{\"b\":1}\n", "wb");
    put("g/c.ndjson", "{\"c\":1}\n{\"c\":2}\n{\"c\":3}\n{\"c\":4}\n{\"c\":5}", "wb");
}

/* position_cmp agrees with batch order, for every pair of positions a read produced. */
static void test_cmp_monotonic(void)
{
    write_glob();
    for (uint32_t per = 1; per <= 3; per++) {
        struct src s;
        REQUIRE(src_open(&s, "path: g/*.ndjson\n", per, 0) == SL_OK);
        CHECK_INT(src_read(&s, 512), SL_EOF);
        CHECK_INT(s.nb, per == 1 ? 9 : per == 2 ? 6 : 4);
        int bad = 0;
        for (size_t i = 0; i < s.nb; i++) {
            for (size_t j = 0; j < s.nb; j++) {
                int c = F->position_cmp(s.state, s.b[i]->position, s.b[j]->position);
                bad += c != (i > j) - (i < j);
            }
            bad += F->position_cmp(s.state, NULL, s.b[i]->position) != -1;
            bad += F->position_cmp(s.state, s.b[i]->position, NULL) != 1;
        }
        CHECK_INT(bad, 0);
        src_close(&s);
    }
    /* Positions of a run with other batch boundaries interleave by input order. */
    struct src one, three;
    REQUIRE(src_open(&one, "path: g/*.ndjson\n", 1, 0) == SL_OK);
    REQUIRE(src_open(&three, "path: g/*.ndjson\n", 3, 0) == SL_OK);
    src_read(&one, 512);
    src_read(&three, 512);
    /* three: [a1 a2 a3] [b1] [c1 c2 c3] [c4 c5]; one: 9 batches of one record. */
    CHECK_INT(F->position_cmp(one.state, one.b[2]->position, three.b[0]->position), 0);
    CHECK(F->position_cmp(one.state, one.b[1]->position, three.b[0]->position) < 0);
    CHECK(F->position_cmp(one.state, one.b[3]->position, three.b[0]->position) > 0);
    CHECK_INT(F->position_cmp(one.state, one.b[6]->position, three.b[2]->position), 0);
    CHECK(F->position_cmp(one.state, three.b[3]->position, one.b[7]->position) > 0);
    src_close(&one);
    src_close(&three);
}

/*
 * covers: with positions and batches of two runs with different batch sizes, record r
 * is covered by a position exactly when r was consumed before it.
 */
static void test_covers_exact(void)
{
    write_glob();
    struct src p, b;
    REQUIRE(src_open(&p, "path: g/*.ndjson\n", 2, 0) == SL_OK);
    REQUIRE(src_open(&b, "path: g/*.ndjson\n", 1, 0) == SL_OK);
    src_read(&p, 512);
    src_read(&b, 512);
    REQUIRE(b.nb == 9 && p.nb == 6);
    int bad = 0;
    for (size_t k = 0; k < p.nb; k++) {
        size_t consumed = records_before(&p, k + 1);
        for (size_t j = 0; j < b.nb; j++)
            bad += F->covers(b.state, p.b[k]->position, b.b[j], 0) != (j < consumed);
    }
    CHECK_INT(bad, 0);
    /* The boundaries spelled out: p.b[0] ends after a2 (offset 16). */
    CHECK(strstr(p.b[0]->position, "\"offset\":16,") != NULL);
    CHECK_INT(b.b[1]->recs[0].offset, 8);  /* below: covered */
    CHECK_INT(b.b[2]->recs[0].offset, 17); /* a3, after the blank line: above */
    CHECK_INT(F->covers(b.state, p.b[0]->position, b.b[1], 0), 1);
    CHECK_INT(F->covers(b.state, p.b[0]->position, b.b[2], 0), 0);
    /* Equal: a position resuming exactly at a record's offset does not cover it. */
    CHECK(strstr(p.b[3]->position, "c.ndjson") && strstr(p.b[3]->position, "\"offset\":16,"));
    CHECK_INT(b.b[5]->recs[0].offset, 8);
    CHECK_INT(b.b[6]->recs[0].offset, 16);
    CHECK_INT(F->covers(b.state, p.b[3]->position, b.b[5], 0), 1);
    CHECK_INT(F->covers(b.state, p.b[3]->position, b.b[6], 0), 0);
    /* Finished files: every record of a and b is covered by a position in c. */
    CHECK_INT(F->covers(b.state, p.b[3]->position, b.b[0], 0), 1);
    CHECK_INT(F->covers(b.state, p.b[3]->position, b.b[3], 0), 1);
    /* Later files: nothing of c is covered by a position in a. */
    CHECK_INT(F->covers(b.state, p.b[0]->position, b.b[4], 0), 0);
    /* Out of range, NULL: not covered. */
    CHECK_INT(F->covers(b.state, p.b[3]->position, b.b[0], 1), 0);
    CHECK_INT(F->covers(b.state, NULL, b.b[0], 0), 0);
    /* Per record within one batch (several records against a mid-batch offset). */
    struct src big;
    REQUIRE(src_open(&big, "path: g/c.ndjson\n", 100, 0) == SL_OK);
    src_read(&big, 512);
    REQUIRE(big.nb == 1 && big.b[0]->n == 5);
    for (uint32_t i = 0; i < 5; i++)
        CHECK_INT(F->covers(big.state, p.b[3]->position, big.b[0], i), i < 2);
    src_close(&big);
    src_close(&p);
    src_close(&b);

    /* A file replaced under the same path: its records are not covered. */
    mkdir(path_of("rp"), 0755);
    put("rp/x.ndjson", "{\"x\":1}\n{\"x\":2}\n", "wb");
    REQUIRE(src_open(&p, "path: rp/x.ndjson\n", 100, 0) == SL_OK);
    src_read(&p, 512);
    put("rp/x.ndjson", "{\"y\":1}\n{\"y\":2}\n{\"y\":3}\n", "wb");
    REQUIRE(src_open(&b, "path: rp/x.ndjson\n", 100, 0) == SL_OK);
    src_read(&b, 512);
    REQUIRE(p.nb == 1 && b.nb == 1);
    for (uint32_t i = 0; i < 3; i++)
        CHECK_INT(F->covers(b.state, p.b[0]->position, b.b[0], i), 0);
    src_close(&p);
    src_close(&b);
}

/* Restoring from every batch boundary reads exactly the rest, with the same ids. */
static void restore_every_boundary(const char *cfg, uint32_t per, size_t want_records)
{
    struct src ref;
    REQUIRE(src_open(&ref, cfg, per, 0) == SL_OK);
    CHECK_INT(src_read(&ref, 512), SL_EOF);
    char *all = render(&ref, 0);
    size_t total = records_before(&ref, ref.nb);
    CHECK_INT(total, want_records);
    for (size_t k = 0; k < ref.nb; k++) {
        struct src r;
        REQUIRE(src_open(&r, cfg, 3, 0) == SL_OK);
        CHECK_INT(F->restore(r.state, ref.b[k]->position, &r.err), SL_OK);
        CHECK_INT(src_read(&r, 512), SL_EOF);
        char *rest = render(&r, 0);
        CHECK_STR(rest, after_lines(all, records_before(&ref, k + 1)));
        /* Every position of the resumed run sorts after the one it resumed from. */
        for (size_t j = 0; j < r.nb; j++)
            CHECK(F->position_cmp(r.state, r.b[j]->position, ref.b[k]->position) > 0);
        free(rest);
        src_close(&r);
    }
    free(all);
    src_close(&ref);
}

static void test_restore_every_boundary(void)
{
    write_glob();
    restore_every_boundary("path: g/*.ndjson\n", 1, 9);
    restore_every_boundary("path: g/*.ndjson\n", 2, 9);
    /* CSV: each resumed file still knows its header (types apply). */
    mkdir(path_of("cs"), 0755);
    put("cs/1.csv", "id,name,ok\n1,ann,true\n2,\"b,ob\",no\n", "wb");
    put("cs/2.csv", "id,name,ok\n3,\"multi\nline\",1\n4,dan,0\n5,eve,\n", "wb");
    restore_every_boundary("path: cs/*.csv\nformat: csv\ntypes: {id: int, ok: bool}\n", 1, 5);
    struct src r;
    REQUIRE(src_open(&r, "path: cs/*.csv\nformat: csv\ntypes: {id: int, ok: bool}\n", 1, 0) ==
            SL_OK);
    src_read(&r, 4);
    REQUIRE(r.nb == 4);
    struct src r2;
    REQUIRE(src_open(&r2, "path: cs/*.csv\nformat: csv\ntypes: {id: int, ok: bool}\n", 10, 0) ==
            SL_OK);
    CHECK_INT(F->restore(r2.state, r.b[3]->position, &r2.err), SL_OK);
    CHECK_INT(src_read(&r2, 512), SL_EOF);
    char *got = render(&r2, 0);
    char want[256];
    char id[33];
    REQUIRE(r2.nb == 1);
    sl_record_id_format(r2.b[0]->recs[0].id, id);
    snprintf(want, sizeof want, "2.csv:5:36:{\"id\":5,\"name\":\"eve\",\"ok\":null}:%s\n", id);
    CHECK_STR(got, want);
    free(got);
    src_close(&r2);
    src_close(&r);
}

/* A small file that grows between runs keeps its identity and ids. */
static void test_growing_small_file(void)
{
    mkdir(path_of("gr"), 0755);
    put("gr/a.ndjson", "{\"first\":true}\n", "wb");
    struct sl_buf d;
    sl_buf_init(&d, 0);
    for (int i = 0; d.len < 300 - 20; i++)
        sl_buf_printf(&d, "{\"i\":%d,\"pad\":\"xx\"}\n", i);
    sl_buf_cstr(&d);
    put("gr/f.ndjson", d.data, "wb");
    size_t small = d.len;

    /* Run 1 reads both files whole. */
    struct src r1;
    REQUIRE(src_open(&r1, "path: gr/*.ndjson\n", 4, 0) == SL_OK);
    CHECK_INT(src_read(&r1, 512), SL_EOF);
    char *run1 = render(&r1, 0);

    /* The file grows to over 5 KB. */
    struct sl_buf more;
    sl_buf_init(&more, 0);
    for (int i = 1000; more.len < 5000; i++)
        sl_buf_printf(&more, "{\"i\":%d,\"pad\":\"yyyyyyyyyyyyyyyyyyyyyyyy\"}\n", i);
    sl_buf_cstr(&more);
    put("gr/f.ndjson", more.data, "ab");

    /* Run 2 from nothing: the old lines get exactly run 1's ids. */
    struct src r2;
    REQUIRE(src_open(&r2, "path: gr/*.ndjson\n", 4, 0) == SL_OK);
    CHECK_INT(src_read(&r2, 512), SL_EOF);
    char *run2 = render(&r2, 0);
    CHECK(strlen(run2) > strlen(run1));
    CHECK(strncmp(run2, run1, strlen(run1)) == 0);

    /* Run 3 from run 1's last position (end of the small file): only the new lines, with
     * run 2's ids. */
    struct src r3;
    REQUIRE(src_open(&r3, "path: gr/*.ndjson\n", 4, 0) == SL_OK);
    CHECK(strstr(r1.b[r1.nb - 1]->position, "f.ndjson") != NULL);
    CHECK_INT(F->restore(r3.state, r1.b[r1.nb - 1]->position, &r3.err), SL_OK);
    CHECK_INT(src_read(&r3, 512), SL_EOF);
    char *run3 = render(&r3, 0);
    CHECK_STR(run3, run2 + strlen(run1));
    CHECK_INT(r3.b[0]->recs[0].offset, small);

    /* Run 4 from run 1's position in a.ndjson (f not in it): f from 0, run 2's ids; and a
     * sink that committed run 1's end skips exactly the old lines (covers). */
    struct src r4;
    REQUIRE(src_open(&r4, "path: gr/*.ndjson\n", 4, 0) == SL_OK);
    CHECK_INT(F->restore(r4.state, r1.b[0]->position, &r4.err), SL_OK);
    CHECK_INT(src_read(&r4, 512), SL_EOF);
    char *run4 = render(&r4, 0);
    CHECK_STR(run4, after_lines(run2, 1));
    int bad = 0, covered = 0;
    for (size_t k = 0; k < r4.nb; k++)
        for (uint32_t i = 0; i < r4.b[k]->n; i++) {
            int c = F->covers(r4.state, r1.b[r1.nb - 1]->position, r4.b[k], i);
            covered += c;
            bad += c != (r4.b[k]->recs[i].offset < small);
        }
    CHECK_INT(bad, 0);
    CHECK_INT(covered, records_before(&r1, r1.nb) - 1);
    free(run1);
    free(run2);
    free(run3);
    free(run4);
    src_close(&r1);
    src_close(&r2);
    src_close(&r3);
    src_close(&r4);
    sl_buf_fini(&d);
    sl_buf_fini(&more);
}

/* A file whose first bytes changed is a new file: read from 0 with new ids. */
static void test_replaced_file(void)
{
    mkdir(path_of("rf"), 0755);
    put("rf/x.ndjson", "{\"v\":1}\n{\"v\":2}\n{\"v\":3}\n", "wb");
    struct src a;
    REQUIRE(src_open(&a, "path: rf/x.ndjson\n", 2, 0) == SL_OK);
    src_read(&a, 512);
    REQUIRE(a.nb == 2);
    /* Same length, same inode, different first line. */
    int fd = open(path_of("rf/x.ndjson"), O_WRONLY);
    REQUIRE(fd >= 0);
    CHECK_INT(pwrite(fd, "{\"w\":1}", 7, 0), 7);
    close(fd);
    struct src b;
    REQUIRE(src_open(&b, "path: rf/x.ndjson\n", 10, 0) == SL_OK);
    CHECK_INT(F->restore(b.state, a.b[0]->position, &b.err), SL_OK);
    CHECK_INT(src_read(&b, 512), SL_EOF);
    char *got = render(&b, 0);
    CHECK(strstr(got, "x.ndjson:1:0:{\"w\":1}:") == got);
    CHECK(strstr(got, "x.ndjson:3:16:{\"v\":3}:") != NULL);
    CHECK(b.b[0]->recs[2].id[0] != a.b[1]->recs[0].id[0] ||
          b.b[0]->recs[2].id[1] != a.b[1]->recs[0].id[1]);
    CHECK_INT(F->covers(b.state, a.b[0]->position, b.b[0], 0), 0);
    free(got);
    src_close(&a);
    src_close(&b);
}

/* lag: bytes after a position, exact; inspect mode tolerates missing input. */
static void test_lag(void)
{
    write_glob();
    struct src s;
    REQUIRE(src_open(&s, "path: g/*.ndjson\n", 2, 0) == SL_OK);
    src_read(&s, 512);
    /* a: 25 bytes, b: 8, c: 39. */
    uint64_t bytes = 1;
    CHECK_INT(F->lag(s.state, NULL, &bytes, &s.err), SL_OK);
    CHECK_INT(bytes, 72);
    CHECK_INT(F->lag(s.state, s.b[0]->position, &bytes, &s.err), SL_OK); /* a at 16 */
    CHECK_INT(bytes, 72 - 16);
    CHECK_INT(F->lag(s.state, s.b[2]->position, &bytes, &s.err), SL_OK); /* b at its end */
    CHECK_INT(bytes, 39);
    CHECK_INT(F->lag(s.state, s.b[3]->position, &bytes, &s.err), SL_OK); /* c at 16 */
    CHECK_INT(bytes, 39 - 16);
    CHECK_INT(F->lag(s.state, s.b[s.nb - 1]->position, &bytes, &s.err), SL_OK);
    CHECK_INT(bytes, 0);
    put("g/c.ndjson", "\n{\"c\":6}\n", "ab");
    put("g/d.ndjson", "{\"d\":1}\n", "wb");
    CHECK_INT(F->lag(s.state, s.b[s.nb - 1]->position, &bytes, &s.err), SL_OK);
    CHECK_INT(bytes, 9 + 8);
    CHECK_INT(F->lag(s.state, "{\"nope\":1}", &bytes, &s.err), SL_EPARSE);
    src_close(&s);
    unlink(path_of("g/d.ndjson"));
    write_glob();

    /* Inspect: a missing file or an empty pattern is no error; lag counts what exists. */
    struct src i;
    REQUIRE(src_open(&i, "path: nothing/here.ndjson\n", 2, 1) == SL_OK);
    CHECK_INT(F->lag(i.state, NULL, &bytes, &i.err), SL_OK);
    CHECK_INT(bytes, 0);
    src_close(&i);
    REQUIRE(src_open(&i, "path: g/*.ndjson\nfollow: true\n", 2, 1) == SL_OK);
    CHECK_INT(F->lag(i.state, NULL, &bytes, &i.err), SL_OK);
    CHECK_INT(bytes, 72);
    src_close(&i);
}

/* Follow mode: order, covers and restore across a rotation. */
static void test_follow_rotation(void)
{
    mkdir(path_of("fo"), 0755);
    put("fo/app.log", "{\"n\":1}\n{\"n\":2}\n", "wb");
    const char *cfg = "path: fo/app.log\nfollow: true\npoll_interval: 10ms\n";
    struct src s;
    REQUIRE(src_open(&s, cfg, 1, 0) == SL_OK);
    src_read(&s, 2);
    REQUIRE(s.nb == 2);
    /* Rotate: the rest of the old file, then a new file under the path. */
    put("fo/app.log", "{\"n\":3}\n", "ab");
    char rotated[512];
    snprintf(rotated, sizeof rotated, "%s", path_of("fo/app.log.1"));
    REQUIRE(rename(path_of("fo/app.log"), rotated) == 0);
    put("fo/app.log", "{\"m\":1}\n{\"m\":2}\n", "wb");
    for (int i = 0; i < 40 && s.nb < 5; i++)
        src_read(&s, s.nb + 1);
    REQUIRE(s.nb == 5);
    char *all = render(&s, 0);
    CHECK(strstr(all, "app.log:3:16:{\"n\":3}:") != NULL);
    CHECK(strstr(all, "app.log:2:8:{\"m\":2}:") != NULL);
    int bad = 0;
    for (size_t i = 0; i < s.nb; i++)
        for (size_t j = 0; j < s.nb; j++)
            bad +=
                F->position_cmp(s.state, s.b[i]->position, s.b[j]->position) != (i > j) - (i < j);
    CHECK_INT(bad, 0);
    if (bad)
        for (size_t i = 0; i < s.nb; i++)
            fprintf(stderr, "%zu %s\n", i, s.b[i]->position);
    bad = 0;
    for (size_t k = 0; k < s.nb; k++)
        for (size_t j = 0; j < s.nb; j++)
            bad += F->covers(s.state, s.b[k]->position, s.b[j], 0) != (j <= k);
    CHECK_INT(bad, 0);

    /* Restore from the position before the rotation: the rotated file's rest is found
     * by its inode next to the path, then the new file is read from its start. */
    for (size_t k = 0; k < 2; k++) {
        struct src r;
        REQUIRE(src_open(&r, cfg, 1, 0) == SL_OK);
        CHECK_INT(F->restore(r.state, s.b[k]->position, &r.err), SL_OK);
        for (int i = 0; i < 40 && r.nb < 4 - k; i++)
            src_read(&r, r.nb + 1);
        char *rest = render(&r, 0);
        /* Same records, same ids; the old file is now read under its new name. */
        for (char *q; (q = strstr(rest, "app.log.1:")) != NULL;)
            memmove(q + 7, q + 9, strlen(q + 9) + 1);
        CHECK_STR(rest, after_lines(all, k + 1));
        /* A sink that committed the last position skips all of them (the old file is
         * named there as finished); one that committed the position before the rotation
         * skips exactly the old file's records up to it. */
        bad = 0;
        for (size_t j = 0; j < r.nb; j++) {
            bad += F->covers(s.state, s.b[4]->position, r.b[j], 0) != 1;
            bad += F->covers(s.state, s.b[1]->position, r.b[j], 0) != (k == 0 && j == 0);
        }
        CHECK_INT(bad, 0);
        CHECK_INT(r.nb, 4 - k);
        free(rest);
        src_close(&r);
    }
    /* With a pattern that matches the rotated name, it is followed by inode. */
    struct src r;
    REQUIRE(src_open(&r, "path: fo/app.log*\nfollow: true\npoll_interval: 10ms\n", 1, 0) == SL_OK);
    CHECK_INT(F->restore(r.state, s.b[0]->position, &r.err), SL_OK);
    for (int i = 0; i < 40 && r.nb < 4; i++)
        src_read(&r, r.nb + 1);
    char *rest = render(&r, 0);
    CHECK(strstr(rest, "app.log.1:2:8:{\"n\":2}:") != NULL);
    CHECK(strstr(rest, "app.log.1:3:16:{\"n\":3}:") != NULL);
    CHECK(strstr(rest, "app.log:1:0:{\"m\":1}:") != NULL);
    CHECK(strstr(rest, "{\"n\":1}") == NULL);
    CHECK_INT(r.nb, 4);
    free(rest);
    src_close(&r);
    free(all);
    src_close(&s);
}

/*
 * Follow, two files, two runs that read them in different orders: positions neither of
 * which is ahead in every file compare above each other, so the engine filters with
 * covers instead of skipping a batch that holds records the sink does not have.
 */
static void test_follow_interleaving(void)
{
    mkdir(path_of("il"), 0755);
    put("il/a.log", "{\"a\":1}\n", "wb");
    put("il/b.log", "", "wb");
    const char *cfg = "path: il/*.log\nfollow: true\npoll_interval: 10ms\n";
    struct src x, y;
    REQUIRE(src_open(&x, cfg, 10, 0) == SL_OK);
    src_read(&x, 1); /* X1: a at 8 */
    put("il/b.log", "{\"b\":1}\n{\"b\":2}\n", "ab");
    src_read(&x, 2); /* X2: a at 8, b at 16 (a sink committed this) */
    REQUIRE(x.nb == 2);
    CHECK(strstr(x.b[1]->origin, "b.log") != NULL);
    put("il/a.log", "{\"a\":2}\n", "ab");
    REQUIRE(src_open(&y, cfg, 10, 0) == SL_OK);
    CHECK_INT(F->restore(y.state, x.b[0]->position, &y.err), SL_OK); /* from X1 */
    src_read(&y, 2); /* Y1: a at 16 (b not read yet); Y2: b at 16 */
    REQUIRE(y.nb == 2);
    CHECK(strstr(y.b[0]->origin, "a.log") != NULL);
    CHECK(strstr(y.b[1]->origin, "b.log") != NULL);
    const char *x2 = x.b[1]->position, *y1 = y.b[0]->position;
    CHECK_INT(F->position_cmp(y.state, y1, x2), 1);
    CHECK_INT(F->position_cmp(y.state, x2, y1), 1);
    CHECK_INT(F->covers(y.state, x2, y.b[0], 0), 0); /* {"a":2}: new to the X2 sink */
    CHECK_INT(y.b[1]->n, 2);
    CHECK_INT(F->covers(y.state, x2, y.b[1], 0), 1); /* b's lines: it has them */
    CHECK_INT(F->covers(y.state, x2, y.b[1], 1), 1);
    /* Along one run the order still follows the batches. */
    CHECK(F->position_cmp(y.state, y.b[1]->position, y1) > 0);
    CHECK(F->position_cmp(y.state, y1, y.b[1]->position) < 0);
    CHECK(F->position_cmp(x.state, x.b[0]->position, x2) < 0);
    src_close(&x);
    src_close(&y);
}

/* A position of the first format still restores. */
static void test_v1_position(void)
{
    mkdir(path_of("v1"), 0755);
    put("v1/x.ndjson", "{\"v\":1}\n{\"v\":2}\n", "wb");
    struct src s;
    REQUIRE(src_open(&s, "path: v1/x.ndjson\n", 1, 0) == SL_OK);
    src_read(&s, 1);
    REQUIRE(s.nb == 1);
    /* The same position in the first format: "before" instead of "follow" and "total". */
    char v1[8192];
    const char *files = strstr(s.b[0]->position, "\"files\"");
    REQUIRE(files != NULL);
    snprintf(v1, sizeof v1, "{\"v\":1,\"before\":1,%s", files);
    struct src r;
    REQUIRE(src_open(&r, "path: v1/x.ndjson\n", 10, 0) == SL_OK);
    CHECK_INT(F->restore(r.state, v1, &r.err), SL_OK);
    CHECK_INT(src_read(&r, 512), SL_EOF);
    REQUIRE(r.nb == 1 && r.b[0]->n == 1);
    CHECK_INT(r.b[0]->recs[0].offset, 8);
    CHECK_INT(F->position_cmp(r.state, v1, s.b[0]->position), -1); /* same place: by text */
    CHECK_INT(F->covers(r.state, v1, r.b[0], 0), 0);
    src_close(&r);
    src_close(&s);
}

/*
 * A followed file read by --once runs and following runs in turn: every position has the
 * follow shape, the positions of all runs order like the batches that produced them, each
 * run resumes exactly where the previous one stopped, and covers agrees with the order.
 * Positions without follow (a changed option, an older checkpoint) order by their offset
 * in the file, not by their shape.
 */
static void test_mode_switch(void)
{
    mkdir(path_of("ms"), 0755);
    put("ms/x.ndjson", "{\"m\":1}\n{\"m\":2}\n{\"m\":3}\n{\"m\":4}\n", "wb");
    const char *yaml = "path: ms/x.ndjson\nfollow: true\npoll_interval: 5ms\n";
    struct src r[3];
    const char *pos[16];
    const struct sl_batch *bat[16];
    size_t np = 0;
    /* Run 0: --once, reads the four lines in two batches, stops. */
    open_once = 1;
    REQUIRE(src_open(&r[0], yaml, 2, 0) == SL_OK);
    CHECK_INT(src_read(&r[0], 512), SL_EOF);
    REQUIRE(r[0].nb == 2);
    /* Run 1: following, resumed from run 0; reads the two lines appended since. */
    put("ms/x.ndjson", "{\"m\":5}\n{\"m\":6}\n", "ab");
    open_once = 0;
    REQUIRE(src_open(&r[1], yaml, 2, 0) == SL_OK);
    CHECK_INT(F->restore(r[1].state, r[0].b[1]->position, &r[1].err), SL_OK);
    src_read(&r[1], 1);
    REQUIRE(r[1].nb == 1);
    /* Run 2: --once again, from run 1; a half-written line stays for later. */
    put("ms/x.ndjson", "{\"m\":7}\n{\"m\":", "ab");
    open_once = 1;
    REQUIRE(src_open(&r[2], yaml, 2, 0) == SL_OK);
    CHECK_INT(F->restore(r[2].state, r[1].b[0]->position, &r[2].err), SL_OK);
    CHECK_INT(src_read(&r[2], 512), SL_EOF);
    REQUIRE(r[2].nb == 1);
    open_once = 0;
    char *t0 = render(&r[0], 0), *t1 = render(&r[1], 0), *t2 = render(&r[2], 0);
    CHECK(strstr(t0, "x.ndjson:1:0:{\"m\":1}:") == t0);
    CHECK(strstr(t0, "x.ndjson:4:24:{\"m\":4}:") != NULL);
    CHECK(strstr(t1, "x.ndjson:5:32:{\"m\":5}:") == t1);
    CHECK(strstr(t1, "x.ndjson:6:40:{\"m\":6}:") != NULL);
    CHECK(strstr(t2, "x.ndjson:7:48:{\"m\":7}:") == t2);
    CHECK(strchr(t2, '\n') == t2 + strlen(t2) - 1); /* one record: the partial one waits */
    free(t0);
    free(t1);
    free(t2);
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < r[k].nb; i++) {
            CHECK(strncmp(r[k].b[i]->position, "{\"v\":2,\"follow\":1,", 18) == 0);
            bat[np] = r[k].b[i];
            pos[np++] = r[k].b[i]->position;
        }
    REQUIRE(np == 4);
    for (size_t i = 0; i < np; i++)
        for (size_t j = 0; j < np; j++) {
            int want = (i > j) - (i < j);
            CHECK_INT(F->position_cmp(r[0].state, pos[i], pos[j]), want);
            /* Batch j's records are covered by position i exactly when j <= i. */
            for (uint32_t x = 0; x < bat[j]->n; x++)
                CHECK_INT(F->covers(r[2].state, pos[i], bat[j], x), j <= i);
        }
    /* Positions without follow: the same file read without the option, one record per
     * batch; each is compared by its offset against the follow positions. */
    struct src n;
    REQUIRE(src_open(&n, "path: ms/x.ndjson\n", 1, 0) == SL_OK);
    CHECK_INT(src_read(&n, 512), SL_EOF);
    REQUIRE(n.nb == 8); /* seven lines and the unterminated last one */
    static const int after[8] = {8, 16, 24, 32, 40, 48, 56, 61};
    static const int follow_at[4] = {16, 32, 48, 56};
    for (size_t i = 0; i < n.nb; i++)
        for (size_t j = 0; j < np; j++) {
            int want = (after[i] > follow_at[j]) - (after[i] < follow_at[j]);
            int got = F->position_cmp(n.state, n.b[i]->position, pos[j]);
            if (want)
                CHECK_INT(got, want);
            CHECK_INT(F->position_cmp(n.state, pos[j], n.b[i]->position), -got);
        }
    src_close(&n);
    for (int k = 0; k < 3; k++)
        src_close(&r[k]);
}

struct cover_job {
    struct src *p, *b;
    int bad;
    long calls;
};

static void *cover_thread(void *arg)
{
    struct cover_job *j = arg;
    for (int round = 0; round < 200; round++)
        for (size_t k = 0; k < j->p->nb; k++) {
            size_t consumed = records_before(j->p, k + 1), before = 0;
            for (size_t m = 0; m < j->b->nb; m++) {
                const struct sl_batch *b = j->b->b[m];
                for (uint32_t i = 0; i < b->n; i++, j->calls++)
                    j->bad += F->covers(j->b->state, j->p->b[k]->position, b, i) !=
                              (before + i < consumed);
                before += b->n;
            }
        }
    return NULL;
}

/* covers from two sink threads at once, against the same source state. */
static void test_covers_threads(void)
{
    write_glob();
    struct src p, b;
    REQUIRE(src_open(&p, "path: g/*.ndjson\n", 2, 0) == SL_OK);
    REQUIRE(src_open(&b, "path: g/*.ndjson\n", 3, 0) == SL_OK);
    src_read(&p, 512);
    src_read(&b, 512);
    struct cover_job j[2] = {{&p, &b, 0, 0}, {&p, &b, 0, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        REQUIRE(pthread_create(&t[i], NULL, cover_thread, &j[i]) == 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    CHECK_INT(j[0].bad + j[1].bad, 0);
    CHECK_INT(j[0].calls, 200L * 6 * 9);
    src_close(&p);
    src_close(&b);
}

/* The cost of covers per record (printed; the assertion is only a sanity bound). */
static void test_covers_cost(void)
{
    mkdir(path_of("cc"), 0755);
    struct sl_buf d;
    sl_buf_init(&d, 0);
    for (int i = 0; i < 2048; i++)
        sl_buf_printf(&d, "{\"i\":%d}\n", i);
    sl_buf_cstr(&d);
    put("cc/x.ndjson", d.data, "wb");
    sl_buf_fini(&d);
    struct src s;
    REQUIRE(src_open(&s, "path: cc/x.ndjson\n", 1024, 0) == SL_OK);
    src_read(&s, 512);
    REQUIRE(s.nb == 2 && s.b[1]->n == 1024);
    const char *pos = s.b[0]->position;
    struct timespec t0, t1;
    long n = 0, covered = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int round = 0; round < 500; round++)
        for (size_t k = 0; k < 2; k++)
            for (uint32_t i = 0; i < s.b[k]->n; i++, n++)
                covered += F->covers(s.state, pos, s.b[k], i);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / n;
    CHECK_INT(covered, 500L * 1024);
    /* A new batch per call: the per-batch decision (parse of the batch's position). */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long m = 0;
    for (int round = 0; round < 2000; round++, m++) {
        s.b[round % 2]->seq += 2; /* looks like another batch: no memo hit */
        covered += F->covers(s.state, pos, s.b[round % 2], 0);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double per_batch =
        ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / m;
    printf("covers: %.1f ns per record (memo hit), %.0f ns per new batch\n", ns, per_batch);
    CHECK(ns < 1000);
    src_close(&s);
}

/* Fail the n-th allocation for every n in restore, covers, lag and position_cmp. */
static void test_alloc_failures(void)
{
    write_glob();
    struct src p, b;
    REQUIRE(src_open(&p, "path: g/*.ndjson\n", 2, 0) == SL_OK);
    src_read(&p, 512);
    REQUIRE(src_open(&b, "path: g/*.ndjson\n", 1, 0) == SL_OK);
    src_read(&b, 512);
    const char *pos = p.b[3]->position;
    int completed = 0, bad = 0;
    for (long n = 1; n < 100 && !completed; n++) {
        struct src r;
        REQUIRE(src_open(&r, "path: g/*.ndjson\n", 1, 0) == SL_OK);
        sl_alloc_fail_at(n);
        sl_rc rc = F->restore(r.state, pos, &r.err);
        uint64_t bytes = 0;
        sl_rc lrc = F->lag(r.state, pos, &bytes, &r.err);
        /* covers on a fresh batch key: the decision allocates; failure means "not covered" */
        b.b[0]->seq += 100;
        int c = F->covers(r.state, pos, b.b[0], 0);
        int cmp = F->position_cmp(r.state, pos, p.b[0]->position);
        sl_alloc_fail_at(0);
        bad += rc != SL_OK && rc != SL_ENOMEM;
        bad += lrc != SL_OK && lrc != SL_ENOMEM;
        bad += lrc == SL_OK && bytes != 23;
        completed = rc == SL_OK && lrc == SL_OK && c == 1 && cmp == 1;
        if (rc == SL_OK) { /* what was restored reads the rest exactly */
            CHECK_INT(src_read(&r, 512), SL_EOF);
            char *rest = render(&r, 0);
            CHECK(strstr(rest, "c.ndjson:3:16:{\"c\":3}:") == rest);
            free(rest);
        }
        src_close(&r);
    }
    CHECK(completed);
    CHECK_INT(bad, 0);
    src_close(&p);
    src_close(&b);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sluice_file_pos_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    sl_log_set_level(SL_LOG_ERROR);
    RUN(test_cmp_monotonic);
    RUN(test_covers_exact);
    RUN(test_restore_every_boundary);
    RUN(test_growing_small_file);
    RUN(test_replaced_file);
    RUN(test_lag);
    RUN(test_follow_rotation);
    RUN(test_follow_interleaving);
    RUN(test_v1_position);
    RUN(test_mode_switch);
    RUN(test_covers_threads);
    RUN(test_covers_cost);
    RUN(test_alloc_failures);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return TEST_DONE();
}
