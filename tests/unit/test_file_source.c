/*
 * test_file_source.c - the file and stdin sources, driven through their plugin
 * callbacks (init, restore, read, close) over temporary files.
 *
 * Each read() result is rendered as text ("line:offset:text" per record, "BAD ..." for a
 * rejected one, "--- origin" before each batch) so expectations state every record's
 * exact bytes, line and offset, and where batches split.
 */
#include <errno.h>
#include <fcntl.h>
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
extern const struct sl_plugin sl_source_stdin;

static char dir[256];

static const char *path_of(const char *name)
{
    static char p[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static void put(const char *name, const char *data, size_t n, const char *mode)
{
    FILE *f = fopen(path_of(name), mode);
    if (!f) {
        perror(name);
        exit(2);
    }
    fwrite(data, 1, n, f);
    fclose(f);
}

static void write_file(const char *name, const char *data)
{
    put(name, data, strlen(data), "wb");
}
static void append_file(const char *name, const char *data)
{
    put(name, data, strlen(data), "ab");
}

/* One source instance. */
struct src {
    struct sl_cfg_doc *doc;
    struct sl_plugin_ctx ctx;
    struct sl_batch_limits lim;
    const struct sl_plugin *pl;
    void *state;
    struct sl_error err;
    char last_pos[8192];
    uint64_t ids[4096][2];
    size_t nids;
};

static sl_rc src_open(struct src *s, const struct sl_plugin *pl, const char *yaml,
                      uint32_t max_records, size_t max_bytes, int once)
{
    memset(s, 0, sizeof *s);
    s->pl = pl;
    sl_rc rc = sl_cfg_load_string(yaml, strlen(yaml), "p.yaml", dir, &s->doc, &s->err);
    if (rc) {
        fprintf(stderr, "config: %s\n", s->err.msg);
        return rc;
    }
    s->lim.max_records = max_records;
    s->lim.max_bytes = max_bytes;
    s->ctx.pipeline = "pipe";
    s->ctx.name = "src";
    s->ctx.doc = s->doc;
    s->ctx.node = s->doc->root;
    s->ctx.state_dir = dir;
    s->ctx.once = once;
    s->ctx.limits = &s->lim;
    s->ctx.max_depth = 64;
    return pl->init(&s->ctx, &s->state, &s->err);
}

static void src_close(struct src *s)
{
    if (s->state)
        s->pl->close(s->state);
    s->state = NULL;
    sl_cfg_destroy(s->doc);
    s->doc = NULL;
}

/*
 * Call read() once; append the batch rendering to out. Returns read's code. Records are
 * "line:offset:text\n"; rejected ones "BAD line:offset:orig_len:error\n".
 */
static sl_rc read_once(struct src *s, struct sl_buf *out)
{
    struct sl_batch *b;
    if (sl_batch_create(0, &b))
        return SL_ENOMEM;
    sl_rc rc = s->pl->read(s->state, b, &s->err);
    if (b->n || b->position) {
        const char *o = b->origin ? strrchr(b->origin, '/') : NULL;
        sl_buf_printf(out, "--- %s\n", o ? o + 1 : b->origin ? b->origin : "(none)");
    }
    for (uint32_t i = 0; i < b->n; i++) {
        struct sl_record *r = &b->recs[i];
        if (r->flags & SL_REC_BAD)
            sl_buf_printf(out, "BAD %u:%llu:%u:%s\n", r->line, (unsigned long long)r->offset,
                          r->orig_len, r->error);
        else
            sl_buf_printf(out, "%u:%llu:%.*s\n", r->line, (unsigned long long)r->offset,
                          (int)r->text_len, r->text);
        if (s->nids < 4096) {
            s->ids[s->nids][0] = r->id[0];
            s->ids[s->nids][1] = r->id[1];
            s->nids++;
        }
    }
    if (b->position)
        snprintf(s->last_pos, sizeof s->last_pos, "%s", b->position);
    sl_batch_unref(b);
    return rc;
}

/* Read until SL_EOF (or an error, or max_calls). */
static sl_rc read_all(struct src *s, struct sl_buf *out, int max_calls)
{
    sl_rc rc = SL_OK;
    for (int i = 0; i < max_calls; i++) {
        rc = read_once(s, out);
        if (rc != SL_OK && rc != SL_AGAIN)
            break;
    }
    sl_buf_cstr(out);
    return rc;
}

/* Read a whole non-follow source into a fresh string (caller frees). */
static char *slurp(const char *yaml, uint32_t max_records, size_t max_bytes)
{
    struct src s;
    struct sl_buf out;
    sl_buf_init(&out, 0);
    if (src_open(&s, &sl_source_file, yaml, max_records, max_bytes, 0)) {
        sl_buf_printf(&out, "INIT %s", s.err.msg);
    } else {
        sl_rc rc = read_all(&s, &out, 10000);
        if (rc != SL_EOF)
            sl_buf_printf(&out, "RC %s %s", sl_rc_name(rc), s.err.msg);
    }
    src_close(&s);
    sl_buf_cstr(&out);
    return out.data;
}

static void test_ndjson_exact(void)
{
    write_file("a.ndjson", "{\"a\":1}\n{\"b\":2}\r\n\n   \n\t\r\n{\"c\":3}\n{\"d\":4}");
    char *got = slurp("path: a.ndjson\n", 1024, 1 << 20);
    CHECK_STR(got, "--- a.ndjson\n"
                   "1:0:{\"a\":1}\n"
                   "2:8:{\"b\":2}\n"
                   "6:25:{\"c\":3}\n"
                   "7:33:{\"d\":4}\n");
    free(got);
    /* Invalid JSON is not this source's business: it passes through for the parse. */
    write_file("b.ndjson", "not json\n\xff\xfe\n");
    got = slurp("path: b.ndjson\nformat: ndjson\n", 1024, 1 << 20);
    CHECK_STR(got, "--- b.ndjson\n1:0:not json\n2:9:\xff\xfe\n");
    free(got);
    /* An empty file yields nothing. */
    write_file("empty.ndjson", "");
    got = slurp("path: empty.ndjson\n", 1024, 1 << 20);
    CHECK_STR(got, "");
    free(got);
}

static void test_batch_limits(void)
{
    write_file("l.ndjson", "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4}\n{\"n\":5}\n");
    char *got = slurp("path: l.ndjson\n", 2, 1 << 20);
    CHECK_STR(got, "--- l.ndjson\n1:0:{\"n\":1}\n2:8:{\"n\":2}\n"
                   "--- l.ndjson\n3:16:{\"n\":3}\n4:24:{\"n\":4}\n"
                   "--- l.ndjson\n5:32:{\"n\":5}\n");
    free(got);
    /* 20 bytes: two 8-byte lines fit, a third would not. */
    got = slurp("path: l.ndjson\n", 1000, 20);
    CHECK_STR(got, "--- l.ndjson\n1:0:{\"n\":1}\n2:8:{\"n\":2}\n"
                   "--- l.ndjson\n3:16:{\"n\":3}\n4:24:{\"n\":4}\n"
                   "--- l.ndjson\n5:32:{\"n\":5}\n");
    free(got);
    /* A single record larger than max_bytes still goes, alone. */
    got = slurp("path: l.ndjson\n", 1000, 3);
    CHECK(strstr(got, "--- l.ndjson\n1:0:{\"n\":1}\n--- l.ndjson\n2:8:") == got);
    free(got);
}

/* Lines of varied lengths crossing many refills of a 64 KiB window. */
static void test_carry_over(void)
{
    struct sl_buf data, want;
    sl_buf_init(&data, 0);
    sl_buf_init(&want, 0);
    unsigned long long off = 0;
    for (int i = 1; i <= 20000; i++) {
        char line[64];
        int n = snprintf(line, sizeof line, "{\"i\":%d,\"p\":\"%.*s\"}", i, i % 23,
                         "xxxxxxxxxxxxxxxxxxxxxxxxx");
        sl_buf_printf(&data, "%s\n", line);
        sl_buf_printf(&want, "%d:%llu:%s\n", i, off, line);
        off += (unsigned long long)n + 1;
    }
    put("big.ndjson", data.data, data.len, "wb");
    sl_buf_cstr(&want);

    struct src s;
    struct sl_buf out;
    sl_buf_init(&out, 0);
    REQUIRE(src_open(&s, &sl_source_file,
                     "path: big.ndjson\nmax_record_bytes: 64\nread_buffer: 4KiB\n", 7, 300,
                     0) == SL_OK);
    CHECK_INT(read_all(&s, &out, 100000), SL_EOF);
    /* Strip the batch separators and compare record by record. */
    struct sl_buf recs;
    sl_buf_init(&recs, 0);
    int batches = 0;
    for (char *p = out.data, *nl; p && *p; p = nl + 1) {
        nl = strchr(p, '\n');
        if (strncmp(p, "--- ", 4) == 0)
            batches++;
        else
            sl_buf_append(&recs, p, (size_t)(nl - p) + 1);
    }
    sl_buf_cstr(&recs);
    CHECK(recs.len == want.len && memcmp(recs.data, want.data, want.len) == 0);
    CHECK(batches >= 20000 / 7);
    /* Ids: all distinct. */
    int dup = 0;
    for (size_t i = 1; i < s.nids; i++)
        dup += s.ids[i][0] == s.ids[i - 1][0] && s.ids[i][1] == s.ids[i - 1][1];
    CHECK_INT(dup, 0);
    src_close(&s);
    sl_buf_fini(&out);
    sl_buf_fini(&recs);
    sl_buf_fini(&data);
    sl_buf_fini(&want);
}

static void test_overlong(void)
{
    /* max_record_bytes 16; the window is 64 KiB + 16, so the 100000-byte line runs past
     * it and is rejected before its end is seen; the 30-byte one is seen whole. */
    struct sl_buf d;
    sl_buf_init(&d, 0);
    sl_buf_puts(&d, "{\"ok\":1}\n");
    sl_buf_puts(&d, "{\"long\":\"xxxxxxxxxxxxxxxxxxx\"}\n"); /* 30 bytes */
    sl_buf_puts(&d, "{\"ok\":2}\r\n");
    for (int i = 0; i < 100000; i++)
        sl_buf_putc(&d, 'y');
    sl_buf_puts(&d, "\n{\"ok\":3}\n");
    for (int i = 0; i < 20; i++)
        sl_buf_putc(&d, 'z'); /* overlong last line without newline */
    put("long.ndjson", d.data, d.len, "wb");
    char want[2048];
    snprintf(want, sizeof want,
             "--- long.ndjson\n"
             "1:0:{\"ok\":1}\n"
             "BAD 2:9:16:line 2 of %s is 30 bytes, over max_record_bytes (16 bytes); raise "
             "max_record_bytes or fix the producer\n"
             "3:40:{\"ok\":2}\n"
             "BAD 4:50:16:line 4 of %s is 100000 bytes, over max_record_bytes (16 bytes); "
             "raise max_record_bytes or fix the producer\n"
             "5:100051:{\"ok\":3}\n"
             "BAD 6:100060:16:line 6 of %s is 20 bytes, over max_record_bytes (16 bytes); "
             "raise max_record_bytes or fix the producer\n",
             path_of("long.ndjson"), path_of("long.ndjson"), path_of("long.ndjson"));
    char *got =
        slurp("path: long.ndjson\nmax_record_bytes: 16\nread_buffer: 4KiB\n", 1024, 1 << 20);
    CHECK_STR(got, want);
    free(got);
    sl_buf_fini(&d);
}

static void test_restore(void)
{
    write_file("r.ndjson", "{\"n\":1}\n{\"n\":2}\n\n{\"n\":3}\n{\"n\":4}\n{\"n\":5}\n");
    struct src s;
    struct sl_buf out;
    sl_buf_init(&out, 0);
    REQUIRE(src_open(&s, &sl_source_file, "path: r.ndjson\n", 2, 1 << 20, 0) == SL_OK);
    CHECK_INT(read_once(&s, &out), SL_OK);
    char pos[8192];
    snprintf(pos, sizeof pos, "%s", s.last_pos);
    CHECK(strstr(pos, "\"offset\":16,\"line\":3,\"skip\":0}]}") != NULL);
    CHECK(strstr(pos, "{\"v\":2,\"follow\":0,\"total\":16,\"files\":[{\"path\":\"") == pos);
    read_all(&s, &out, 100);
    uint64_t id3[2] = {s.ids[2][0], s.ids[2][1]};
    src_close(&s);

    /* A new instance restored there reads exactly the rest, with the same ids. */
    sl_buf_clear(&out);
    REQUIRE(src_open(&s, &sl_source_file, "path: r.ndjson\n", 100, 1 << 20, 0) == SL_OK);
    CHECK_INT(sl_source_file.restore(s.state, pos, &s.err), SL_OK);
    CHECK_INT(read_all(&s, &out, 100), SL_EOF);
    sl_buf_cstr(&out);
    CHECK_STR(out.data, "--- r.ndjson\n4:17:{\"n\":3}\n5:25:{\"n\":4}\n6:33:{\"n\":5}\n");
    CHECK(s.nids > 0 && s.ids[0][0] == id3[0] && s.ids[0][1] == id3[1]);
    src_close(&s);

    /* The position at the end of the file: nothing more. */
    char endpos[8192];
    REQUIRE(src_open(&s, &sl_source_file, "path: r.ndjson\n", 100, 1 << 20, 0) == SL_OK);
    sl_buf_clear(&out);
    read_all(&s, &out, 100);
    snprintf(endpos, sizeof endpos, "%s", s.last_pos);
    src_close(&s);
    REQUIRE(src_open(&s, &sl_source_file, "path: r.ndjson\n", 100, 1 << 20, 0) == SL_OK);
    CHECK_INT(sl_source_file.restore(s.state, endpos, &s.err), SL_OK);
    sl_buf_clear(&out);
    CHECK_INT(read_all(&s, &out, 100), SL_EOF);
    sl_buf_cstr(&out);
    CHECK_STR(out.data, "");
    src_close(&s);

    /* The file was replaced: the fingerprint differs, so it is read from the start. */
    write_file("r.ndjson", "{\"m\":1}\n{\"m\":2}\n{\"m\":3}\n");
    REQUIRE(src_open(&s, &sl_source_file, "path: r.ndjson\n", 100, 1 << 20, 0) == SL_OK);
    CHECK_INT(sl_source_file.restore(s.state, pos, &s.err), SL_OK);
    sl_buf_clear(&out);
    CHECK_INT(read_all(&s, &out, 100), SL_EOF);
    sl_buf_cstr(&out);
    CHECK_STR(out.data, "--- r.ndjson\n1:0:{\"m\":1}\n2:8:{\"m\":2}\n3:16:{\"m\":3}\n");
    src_close(&s);

    /* Garbage positions are a clear error. */
    REQUIRE(src_open(&s, &sl_source_file, "path: r.ndjson\n", 100, 1 << 20, 0) == SL_OK);
    CHECK_INT(sl_source_file.restore(s.state, "{\"offset\":3}", &s.err), SL_EPARSE);
    CHECK(strstr(s.err.msg, "is not a file source position") != NULL);
    CHECK_INT(sl_source_file.restore(s.state, "{\"v\":1,\"files\":[{\"path\":\"x", &s.err),
              SL_EPARSE);
    src_close(&s);
    sl_buf_fini(&out);
}

static void test_glob(void)
{
    mkdir(path_of("g"), 0755);
    mkdir(path_of("g/sub.ndjson"), 0755); /* a directory matching the glob is ignored */
    write_file("g/b.ndjson", "{\"f\":\"b1\"}\n{\"f\":\"b2\"}\n");
    write_file("g/a.ndjson", "{\"f\":\"a1\"}\n");
    write_file("g/c.ndjson", "{\"f\":\"c1\"}");
    write_file("g/x.txt", "not matched\n");
    char *got = slurp("path: g/*.ndjson\n", 1024, 1 << 20);
    CHECK_STR(got, "--- a.ndjson\n1:0:{\"f\":\"a1\"}\n"
                   "--- b.ndjson\n1:0:{\"f\":\"b1\"}\n2:11:{\"f\":\"b2\"}\n"
                   "--- c.ndjson\n1:0:{\"f\":\"c1\"}\n");
    free(got);

    /* Restore in the middle of b: a is skipped, b resumes, c is read whole. */
    struct src s;
    struct sl_buf out;
    sl_buf_init(&out, 0);
    REQUIRE(src_open(&s, &sl_source_file, "path: g/[a-c].ndjson\n", 1, 1 << 20, 0) == SL_OK);
    read_once(&s, &out);
    read_once(&s, &out);
    char pos[8192];
    snprintf(pos, sizeof pos, "%s", s.last_pos);
    src_close(&s);
    REQUIRE(src_open(&s, &sl_source_file, "path: g/[a-c].ndjson\n", 100, 1 << 20, 0) == SL_OK);
    CHECK_INT(sl_source_file.restore(s.state, pos, &s.err), SL_OK);
    sl_buf_clear(&out);
    CHECK_INT(read_all(&s, &out, 100), SL_EOF);
    sl_buf_cstr(&out);
    CHECK_STR(out.data, "--- b.ndjson\n2:11:{\"f\":\"b2\"}\n--- c.ndjson\n1:0:{\"f\":\"c1\"}\n");
    src_close(&s);

    /* The checkpoint's file was archived away meanwhile: files before it stay done. */
    char moved[512];
    snprintf(moved, sizeof moved, "%s", path_of("g/b.done"));
    REQUIRE(rename(path_of("g/b.ndjson"), moved) == 0);
    REQUIRE(src_open(&s, &sl_source_file, "path: g/[a-c].ndjson\n", 100, 1 << 20, 0) == SL_OK);
    CHECK_INT(sl_source_file.restore(s.state, pos, &s.err), SL_OK);
    sl_buf_clear(&out);
    CHECK_INT(read_all(&s, &out, 100), SL_EOF);
    sl_buf_cstr(&out);
    CHECK_STR(out.data, "--- c.ndjson\n1:0:{\"f\":\"c1\"}\n");
    src_close(&s);
    REQUIRE(rename(moved, path_of("g/b.ndjson")) == 0);
    sl_buf_fini(&out);

    got = slurp("path: g/*.json\n", 1024, 1 << 20);
    CHECK(strstr(got, "INIT file source src: no file matches ") == got);
    CHECK(strstr(got, "g/*.json") != NULL);
    free(got);
    got = slurp("path: g/nope.ndjson\n", 1024, 1 << 20);
    CHECK(strstr(got, "INIT file source src: cannot read ") == got);
    CHECK(strstr(got, "g/nope.ndjson: No such file or directory") != NULL);
    free(got);
    got = slurp("path: g\n", 1024, 1 << 20);
    CHECK(strstr(got, "is a directory; use a pattern such as") != NULL);
    free(got);
    got = slurp("path: g/a.ndjson\nformat: xml\n", 1024, 1 << 20);
    CHECK(strstr(got, "\"xml\" is not a file format; use ndjson or csv") != NULL);
    free(got);
    got = slurp("path: g/a.ndjson\ndelimiter: ';'\n", 1024, 1 << 20);
    CHECK(strstr(got, "delimiter: only applies to format: csv") != NULL);
    free(got);
}

static void test_csv_typed(void)
{
    write_file("t.csv", "id,name,score,ok,tags\r\n"
                        "1,ann,1.5,true,\"[1,2]\"\r\n"
                        "2,\"bob \"\"b\"\"\",,no,\r\n"
                        "3,\"multi\nline\",2e2,1,{}\r\n"
                        "\r\n"
                        "4,too,few\r\n"
                        "x5,bad,1,1,1\r\n"
                        "6,\"oops\"x,1,1,1\r\n"
                        "7,last,0.25,F,null");
    const char *cfg = "path: t.csv\nformat: csv\n"
                      "types: {id: int, score: float, ok: bool, tags: json}\n";
    char want[4096];
    const char *p = path_of("t.csv");
    snprintf(
        want, sizeof want,
        "--- t.csv\n"
        "2:23:{\"id\":1,\"name\":\"ann\",\"score\":1.5,\"ok\":true,\"tags\":[1,2]}\n"
        "3:47:{\"id\":2,\"name\":\"bob \\\"b\\\"\",\"score\":null,\"ok\":false,\"tags\":null}\n"
        "4:67:{\"id\":3,\"name\":\"multi\\nline\",\"score\":2e2,\"ok\":true,\"tags\":{}}\n"
        "BAD 7:94:9:line 7 of %s: 3 fields, expected 5 (id ... tags)\n"
        "BAD 8:105:12:line 8 of %s, column id: \"x5\" is not an int\n"
        "BAD 9:119:15:line 9 of %s: malformed CSV: unexpected character after a closing "
        "quote (byte 9 of the row, column 2 \"name\"); quote the whole field and double "
        "any \" inside it\n"
        "10:136:{\"id\":7,\"name\":\"last\",\"score\":0.25,\"ok\":false,\"tags\":null}\n",
        p, p, p);
    char *got = slurp(cfg, 1024, 1 << 20);
    CHECK_STR(got, want);
    free(got);

    /* Restore after the first two records: the header is read again. */
    struct src s;
    struct sl_buf out;
    sl_buf_init(&out, 0);
    REQUIRE(src_open(&s, &sl_source_file, cfg, 2, 1 << 20, 0) == SL_OK);
    read_once(&s, &out);
    char pos[8192];
    snprintf(pos, sizeof pos, "%s", s.last_pos);
    src_close(&s);
    REQUIRE(src_open(&s, &sl_source_file, cfg, 1, 1 << 20, 0) == SL_OK);
    CHECK_INT(sl_source_file.restore(s.state, pos, &s.err), SL_OK);
    sl_buf_clear(&out);
    CHECK_INT(read_once(&s, &out), SL_OK);
    sl_buf_cstr(&out);
    CHECK_STR(out.data,
              "--- t.csv\n4:67:{\"id\":3,\"name\":\"multi\\nline\",\"score\":2e2,\"ok\":true,"
              "\"tags\":{}}\n");
    src_close(&s);
    sl_buf_fini(&out);

    /* header: false with columns; tab delimiter; orig keeps the raw row. */
    write_file("h.tsv", "a\t1\nb\t2\n");
    got = slurp("path: h.tsv\nformat: csv\nheader: false\ndelimiter: tab\ncolumns: [k, v]\n"
                "types: {v: int}\n",
                1024, 1 << 20);
    CHECK_STR(got, "--- h.tsv\n1:0:{\"k\":\"a\",\"v\":1}\n2:4:{\"k\":\"b\",\"v\":2}\n");
    free(got);

    /* A types key the header does not have is fatal, naming both. */
    write_file("u.csv", "a,b\n1,2\n");
    got = slurp("path: u.csv\nformat: csv\ntypes: {c: int}\n", 1024, 1 << 20);
    CHECK(strstr(got, "RC SL_ECONFIG types names column \"c\", but ") == got);
    free(got);
    write_file("d.csv", "a,a\n1,2\n");
    got = slurp("path: d.csv\nformat: csv\n", 1024, 1 << 20);
    CHECK(strstr(got, "names column \"a\" twice") != NULL);
    free(got);
    /* Renaming the header's columns. */
    got = slurp("path: d.csv\nformat: csv\ncolumns: [x, y]\n", 1024, 1 << 20);
    CHECK_STR(got, "--- d.csv\n2:4:{\"x\":\"1\",\"y\":\"2\"}\n");
    free(got);
}

/* Follow mode: read until some records arrive or tries run out. */
static void follow_read(struct src *s, struct sl_buf *out, int tries)
{
    size_t before = out->len;
    for (int i = 0; i < tries; i++) {
        sl_rc rc = read_once(s, out);
        if (rc != SL_OK && rc != SL_AGAIN) {
            sl_buf_printf(out, "RC %s %s\n", sl_rc_name(rc), s->err.msg);
            break;
        }
        if (rc == SL_AGAIN && out->len != before)
            break;
    }
    sl_buf_cstr(out);
}

static void test_follow_rotation_truncation(void)
{
    sl_log_set_level(SL_LOG_ERROR);
    mkdir(path_of("f"), 0755);
    write_file("f/app.log", "{\"n\":1}\n{\"n\":2}\n{\"n\":3");
    struct src s;
    struct sl_buf out;
    sl_buf_init(&out, 0);
    REQUIRE(src_open(&s, &sl_source_file, "path: f/app.log\nfollow: true\npoll_interval: 10ms\n",
                     100, 1 << 20, 0) == SL_OK);
    follow_read(&s, &out, 5);
    /* The partial third line waits for its newline. */
    CHECK_STR(out.data, "--- app.log\n1:0:{\"n\":1}\n2:8:{\"n\":2}\n");
    CHECK_INT(read_once(&s, &out), SL_AGAIN);

    sl_buf_clear(&out);
    append_file("f/app.log", "}\n{\"n\":4}\n");
    follow_read(&s, &out, 5);
    CHECK_STR(out.data, "--- app.log\n3:16:{\"n\":3}\n4:24:{\"n\":4}\n");

    /* Rotation: the old file gets a last line (without newline) and is renamed; the new
     * file appears under the path. The old file is finished first. */
    sl_buf_clear(&out);
    append_file("f/app.log", "{\"n\":5}");
    char newpath[512];
    snprintf(newpath, sizeof newpath, "%s", path_of("f/app.log.1"));
    CHECK_INT(rename(path_of("f/app.log"), newpath), 0);
    write_file("f/app.log", "{\"m\":1}\n");
    follow_read(&s, &out, 10);
    follow_read(&s, &out, 10);
    CHECK_STR(out.data, "--- app.log\n5:32:{\"n\":5}\n--- app.log\n1:0:{\"m\":1}\n");
    uint64_t m1[2] = {s.ids[s.nids - 1][0], s.ids[s.nids - 1][1]};

    /* Truncation: restart at 0 (with new ids: this is new content). */
    sl_buf_clear(&out);
    append_file("f/app.log", "{\"m\":2}\n");
    follow_read(&s, &out, 5);
    CHECK_STR(out.data, "--- app.log\n2:8:{\"m\":2}\n");
    sl_buf_clear(&out);
    write_file("f/app.log", "{\"t\":1}\n"); /* "wb" truncates: size 8 < offset 16 */
    follow_read(&s, &out, 10);
    CHECK_STR(out.data, "--- app.log\n1:0:{\"t\":1}\n");
    CHECK(!(s.ids[s.nids - 1][0] == m1[0] && s.ids[s.nids - 1][1] == m1[1]));

    /* Still nothing new: SL_AGAIN, promptly. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_INT(read_once(&s, &out), SL_AGAIN);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    CHECK(ms < 250);
    src_close(&s);
    sl_buf_fini(&out);
}

static void test_follow_glob(void)
{
    mkdir(path_of("fg"), 0755);
    struct src s;
    struct sl_buf out;
    sl_buf_init(&out, 0);
    /* Nothing matches yet: a warning and a wait, not an error. */
    REQUIRE(src_open(&s, &sl_source_file, "path: fg/*.log\nfollow: true\npoll_interval: 10ms\n",
                     100, 1 << 20, 0) == SL_OK);
    CHECK_INT(read_once(&s, &out), SL_AGAIN);
    write_file("fg/b.log", "{\"b\":1}\n");
    follow_read(&s, &out, 10);
    CHECK_STR(out.data, "--- b.log\n1:0:{\"b\":1}\n");
    sl_buf_clear(&out);
    write_file("fg/a.log", "{\"a\":1}\n");
    append_file("fg/b.log", "{\"b\":2}\n");
    follow_read(&s, &out, 10);
    follow_read(&s, &out, 10);
    /* Both files are tailed; each batch holds one file's records. */
    CHECK(strstr(out.data, "--- a.log\n1:0:{\"a\":1}\n") != NULL);
    CHECK(strstr(out.data, "--- b.log\n2:8:{\"b\":2}\n") != NULL);

    /* A follow-mode position lists every tracked file and restores each. */
    char pos[8192];
    snprintf(pos, sizeof pos, "%s", s.last_pos);
    CHECK(strstr(pos, "a.log") != NULL && strstr(pos, "b.log") != NULL);
    CHECK(strstr(pos, "{\"v\":2,\"follow\":1,\"total\":24,") == pos);
    src_close(&s);
    append_file("fg/a.log", "{\"a\":2}\n");
    append_file("fg/b.log", "{\"b\":3}\n");
    REQUIRE(src_open(&s, &sl_source_file, "path: fg/*.log\nfollow: true\npoll_interval: 10ms\n",
                     100, 1 << 20, 0) == SL_OK);
    CHECK_INT(sl_source_file.restore(s.state, pos, &s.err), SL_OK);
    sl_buf_clear(&out);
    follow_read(&s, &out, 10);
    follow_read(&s, &out, 10);
    CHECK(strstr(out.data, "--- a.log\n2:8:{\"a\":2}\n") != NULL);
    CHECK(strstr(out.data, "--- b.log\n3:16:{\"b\":3}\n") != NULL);
    CHECK(strstr(out.data, "{\"a\":1}") == NULL && strstr(out.data, "{\"b\":2}") == NULL);
    src_close(&s);

    /* Rotation to a name the pattern also matches: followed by inode, not read twice,
     * also when the rotation is noticed before the pattern's next scheduled match. */
    mkdir(path_of("fr"), 0755);
    write_file("fr/app.log", "{\"r\":1}\n");
    REQUIRE(src_open(&s, &sl_source_file, "path: fr/app.log*\nfollow: true\npoll_interval: 300ms\n",
                     100, 1 << 20, 0) == SL_OK);
    sl_buf_clear(&out);
    follow_read(&s, &out, 5);
    CHECK_STR(out.data, "--- app.log\n1:0:{\"r\":1}\n");
    append_file("fr/app.log", "{\"r\":2}\n");
    char rotated[512];
    snprintf(rotated, sizeof rotated, "%s", path_of("fr/app.log.1"));
    CHECK_INT(rename(path_of("fr/app.log"), rotated), 0);
    write_file("fr/app.log", "{\"new\":1}\n");
    sl_buf_clear(&out);
    for (int i = 0; i < 8; i++)
        follow_read(&s, &out, 3);
    CHECK(strstr(out.data, "2:8:{\"r\":2}\n") != NULL);
    CHECK(strstr(out.data, "--- app.log\n1:0:{\"new\":1}\n") != NULL);
    CHECK(strstr(out.data, "{\"r\":1}") == NULL);
    const char *r2 = strstr(out.data, "{\"r\":2}");
    CHECK(r2 && strstr(r2 + 1, "{\"r\":2}") == NULL);
    src_close(&s);

    /* A partial line in one file does not hold up the others, and its completion is
     * noticed although the window moved on to another file meanwhile. */
    mkdir(path_of("fp"), 0755);
    write_file("fp/a.log", "{\"a\":");
    write_file("fp/b.log", "");
    REQUIRE(src_open(&s, &sl_source_file, "path: fp/*.log\nfollow: true\npoll_interval: 10ms\n",
                     100, 1 << 20, 0) == SL_OK);
    sl_buf_clear(&out);
    CHECK_INT(read_once(&s, &out), SL_AGAIN);
    append_file("fp/b.log", "{\"b\":1}\n");
    follow_read(&s, &out, 5);
    CHECK_STR(out.data, "--- b.log\n1:0:{\"b\":1}\n");
    append_file("fp/a.log", "1}\n");
    sl_buf_clear(&out);
    follow_read(&s, &out, 5);
    CHECK_STR(out.data, "--- a.log\n1:0:{\"a\":1}\n");
    src_close(&s);

    /* --once: a follow source stops at the end of the complete lines. A last line without
     * its '\n' may be half written: it is not a record, and stays for the next run. */
    append_file("fg/b.log", "{\"b\":4");
    REQUIRE(src_open(&s, &sl_source_file, "path: fg/b.log\nfollow: true\n", 100, 1 << 20, 1) ==
            SL_OK);
    sl_buf_clear(&out);
    CHECK_INT(read_all(&s, &out, 100), SL_EOF);
    CHECK_STR(out.data, "--- b.log\n1:0:{\"b\":1}\n2:8:{\"b\":2}\n3:16:{\"b\":3}\n");
    /* The position has the follow shape (the option decides, not --once). */
    CHECK(strncmp(s.last_pos, "{\"v\":2,\"follow\":1,", 18) == 0);
    CHECK(strstr(s.last_pos, "\"offset\":24,\"line\":4,") != NULL);
    /* Reading again at the end changes nothing: still SL_EOF, no batch. */
    sl_buf_clear(&out);
    CHECK_INT(read_all(&s, &out, 10), SL_EOF);
    CHECK_STR(out.data, "");
    char once_pos[8192];
    snprintf(once_pos, sizeof once_pos, "%s", s.last_pos);
    src_close(&s);
    /* The line is finished; the next --once run resumes at its start: same line, offset
     * and record id as a run that saw it whole. */
    append_file("fg/b.log", "}\n");
    REQUIRE(src_open(&s, &sl_source_file, "path: fg/b.log\nfollow: true\n", 100, 1 << 20, 1) ==
            SL_OK);
    CHECK_INT(s.pl->restore(s.state, once_pos, &s.err), SL_OK);
    sl_buf_clear(&out);
    CHECK_INT(read_all(&s, &out, 100), SL_EOF);
    CHECK_STR(out.data, "--- b.log\n4:24:{\"b\":4}\n");
    CHECK(s.nids == 1);
    uint64_t id4[2] = {s.ids[0][0], s.ids[0][1]};
    char pos4[8192];
    snprintf(pos4, sizeof pos4, "%s", s.last_pos);
    CHECK(sl_source_file.position_cmp(s.state, pos4, once_pos) > 0);
    CHECK(sl_source_file.position_cmp(s.state, once_pos, pos4) < 0);
    src_close(&s);
    /* A following run (no --once) resumed from the same --once position reads the same
     * record with the same id, and its positions order with the --once ones. */
    REQUIRE(src_open(&s, &sl_source_file, "path: fg/b.log\nfollow: true\npoll_interval: 10ms\n",
                     100, 1 << 20, 0) == SL_OK);
    CHECK_INT(s.pl->restore(s.state, once_pos, &s.err), SL_OK);
    sl_buf_clear(&out);
    follow_read(&s, &out, 3);
    CHECK_STR(out.data, "--- b.log\n4:24:{\"b\":4}\n");
    CHECK(s.nids == 1 && s.ids[0][0] == id4[0] && s.ids[0][1] == id4[1]);
    CHECK_STR(s.last_pos, pos4);
    src_close(&s);
    /* --once on a followed path that does not exist yet: nothing to read, no error (as
     * when following). */
    REQUIRE(src_open(&s, &sl_source_file, "path: fg/none.log\nfollow: true\n", 100, 1 << 20, 1) ==
            SL_OK);
    sl_buf_clear(&out);
    CHECK_INT(read_all(&s, &out, 10), SL_EOF);
    CHECK_STR(out.data, "");
    src_close(&s);
    /* Without follow, an unterminated last line is a record (the file is complete). */
    write_file("fg/c.log", "{\"c\":1}\n{\"c\":2}");
    REQUIRE(src_open(&s, &sl_source_file, "path: fg/c.log\n", 100, 1 << 20, 1) == SL_OK);
    sl_buf_clear(&out);
    CHECK_INT(read_all(&s, &out, 100), SL_EOF);
    CHECK_STR(out.data, "--- c.log\n1:0:{\"c\":1}\n2:8:{\"c\":2}\n");
    CHECK(strncmp(s.last_pos, "{\"v\":2,\"follow\":0,", 18) == 0);
    src_close(&s);
    sl_buf_fini(&out);
}

static void test_stdin(void)
{
    int saved = dup(0), pfd[2];
    REQUIRE(pipe(pfd) == 0);
    dup2(pfd[0], 0);
    close(pfd[0]);
    struct src s;
    struct sl_buf out;
    sl_buf_init(&out, 0);
    REQUIRE(src_open(&s, &sl_source_stdin, "format: ndjson\n", 2, 1 << 20, 0) == SL_OK);
    /* Standard input cannot be re-read: no exactly-once callbacks (the loader refuses
     * delivery: exactly_once with it). */
    CHECK(sl_source_stdin.restore == NULL);
    CHECK(sl_source_stdin.position_cmp == NULL);
    CHECK(sl_source_stdin.covers == NULL);
    CHECK(sl_source_file.position_cmp != NULL && sl_source_file.covers != NULL &&
          sl_source_file.lag != NULL);
    /* Nothing written yet: SL_AGAIN within about 200 ms. */
    CHECK_INT(read_once(&s, &out), SL_AGAIN);
    const char *data = "{\"a\":1}\n\n{\"a\":2}\r\n{\"a\":3}\n{\"a\":4}";
    CHECK_INT(write(pfd[1], data, strlen(data)), (long)strlen(data));
    close(pfd[1]);
    CHECK_INT(read_all(&s, &out, 20), SL_EOF);
    CHECK_STR(out.data, "--- -\n1:0:{\"a\":1}\n3:9:{\"a\":2}\n"
                        "--- -\n4:18:{\"a\":3}\n5:26:{\"a\":4}\n");
    CHECK_STR(s.last_pos, "{\"offset\":33,\"line\":6}");
    src_close(&s);

    /* CSV on stdin. */
    REQUIRE(pipe(pfd) == 0);
    dup2(pfd[0], 0);
    close(pfd[0]);
    data = "x,y\n1,\"a,b\"\n";
    CHECK_INT(write(pfd[1], data, strlen(data)), (long)strlen(data));
    close(pfd[1]);
    REQUIRE(src_open(&s, &sl_source_stdin, "format: csv\ntypes: {x: int}\n", 10, 1 << 20, 0) ==
            SL_OK);
    sl_buf_clear(&out);
    CHECK_INT(read_all(&s, &out, 20), SL_EOF);
    CHECK_STR(out.data, "--- -\n2:4:{\"x\":1,\"y\":\"a,b\"}\n");
    src_close(&s);
    dup2(saved, 0);
    close(saved);
    sl_buf_fini(&out);
}

/* Fail the n-th allocation for every n: each run ends cleanly (ASan checks for leaks). */
static void test_alloc_failures(void)
{
    write_file("af.csv", "a,b\n1,\"x\ny\"\n2,z\n");
    write_file("af.ndjson", "{\"a\":1}\n{\"a\":2}\n");
    const char *cfgs[] = {"path: af.csv\nformat: csv\ntypes: {a: int}\n", "path: af.ndjson\n"};
    for (int c = 0; c < 2; c++) {
        int completed = 0;
        for (long n = 1; n < 400 && !completed; n++) {
            struct src s;
            memset(&s, 0, sizeof s);
            s.pl = &sl_source_file;
            REQUIRE(sl_cfg_load_string(cfgs[c], strlen(cfgs[c]), "p.yaml", dir, &s.doc, &s.err) ==
                    SL_OK);
            s.lim.max_records = 1;
            s.lim.max_bytes = 1 << 20;
            s.ctx = (struct sl_plugin_ctx){.pipeline = "pipe",
                                           .name = "src",
                                           .doc = s.doc,
                                           .node = s.doc->root,
                                           .limits = &s.lim};
            struct sl_buf out;
            sl_buf_init(&out, 0);
            sl_buf_reserve(&out, 1 << 16);
            sl_alloc_fail_at(n);
            sl_rc rc = s.pl->init(&s.ctx, &s.state, &s.err);
            if (rc == SL_OK) {
                rc = SL_OK;
                for (int i = 0; i < 20 && rc == SL_OK; i++)
                    rc = read_once(&s, &out);
            }
            sl_alloc_fail_at(0);
            CHECK(rc == SL_EOF || rc == SL_ENOMEM);
            completed = rc == SL_EOF;
            if (s.state)
                s.pl->close(s.state);
            sl_cfg_destroy(s.doc);
            sl_buf_fini(&out);
        }
        CHECK(completed);
    }
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sluice_file_src_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    sl_log_set_level(SL_LOG_ERROR);
    RUN(test_ndjson_exact);
    RUN(test_batch_limits);
    RUN(test_carry_over);
    RUN(test_overlong);
    RUN(test_restore);
    RUN(test_glob);
    RUN(test_csv_typed);
    RUN(test_follow_rotation_truncation);
    RUN(test_follow_glob);
    RUN(test_stdin);
    RUN(test_alloc_failures);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return TEST_DONE();
}
