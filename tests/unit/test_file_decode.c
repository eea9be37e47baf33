/*
 * test_file_decode.c - the file source's decode callback (plugin.h): rows it rejected
 * while reading, decoded again from their kept bytes with the source's current settings,
 * as `sluice dlq replay` does.
 *
 * Each case reads a file with one source instance, as a run does, and keeps every
 * record's original bytes, line and file (what the dead-letter queue holds); then it
 * decodes those bytes with another instance opened for inspection, as a replay does. A
 * record is rendered as its exact text, or as "BAD stage|class|rule|path|expected|actual|
 * message", so expectations pin the JSON and every part of a reason, and where reading
 * and decoding must agree their renderings are compared whole.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice/alloc.h"
#include "sluice/batch.h"
#include "sluice/config.h"
#include "sluice/log.h"
#include "sluice/plugin.h"
#include "sluice/record.h"
#include "test.h"

extern const struct sl_plugin sl_source_file;

static char dir[256];

static const char *path_of(const char *name)
{
    static char p[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static void write_file(const char *name, const char *data)
{
    FILE *f = fopen(path_of(name), "wb");
    if (!f) {
        perror(name);
        exit(2);
    }
    fwrite(data, 1, strlen(data), f);
    fclose(f);
}

/* What the dead-letter queue keeps of a record, and how reading rendered it. */
struct kept {
    char raw[512];
    uint32_t len;
    uint32_t line;
    char origin[512];
    char got[1024];
};

static const char *or_dash(const char *s)
{
    return s ? s : "-";
}

static void render(const struct sl_record *r, char *out, size_t cap)
{
    if (!(r->flags & SL_REC_BAD)) {
        snprintf(out, cap, "%.*s", (int)r->text_len, r->text);
        return;
    }
    const struct sl_reject_info *w = r->why;
    snprintf(out, cap, "BAD %s|%s|%s|%s|%s|%s|%s", or_dash(r->error_stage),
             w ? or_dash(w->error_class) : "-", w ? or_dash(w->rule) : "-",
             w ? or_dash(w->path) : "-", w ? or_dash(w->expected) : "-",
             w ? or_dash(w->actual) : "-", or_dash(r->error));
}

/* A source instance: inspect = 1 opens it as replay does. */
struct src {
    struct sl_cfg_doc *doc;
    struct sl_plugin_ctx ctx;
    void *state;
    struct sl_error err;
};

static sl_rc src_open(struct src *s, const char *yaml, int inspect)
{
    memset(s, 0, sizeof *s);
    sl_rc rc = sl_cfg_load_string(yaml, strlen(yaml), "p.yaml", dir, &s->doc, &s->err);
    if (rc) {
        if (rc != SL_ENOMEM)
            fprintf(stderr, "config: %s\n", s->err.msg);
        return rc;
    }
    s->ctx.pipeline = "pipe";
    s->ctx.name = "src";
    s->ctx.doc = s->doc;
    s->ctx.node = s->doc->root;
    s->ctx.state_dir = dir;
    s->ctx.once = 1;
    s->ctx.max_depth = 64;
    s->ctx.inspect = inspect;
    return sl_source_file.init(&s->ctx, &s->state, &s->err);
}

static void src_close(struct src *s)
{
    sl_source_file.close(s->state);
    s->state = NULL;
    sl_cfg_destroy(s->doc);
    s->doc = NULL;
}

/* Read the source configured by yaml to its end; keep up to max records. The count. */
static int read_all(const char *yaml, struct kept *k, int max)
{
    struct src s;
    if (src_open(&s, yaml, 0) != SL_OK) {
        fprintf(stderr, "init: %s\n", s.err.msg);
        sl_cfg_destroy(s.doc);
        return -1;
    }
    int n = 0;
    for (int calls = 0; calls < 100; calls++) {
        struct sl_batch *b;
        if (sl_batch_create(0, &b))
            break;
        sl_rc rc = sl_source_file.read(s.state, b, &s.err);
        for (uint32_t i = 0; i < b->n && n < max; i++, n++) {
            const struct sl_record *r = &b->recs[i];
            memset(&k[n], 0, sizeof k[n]);
            k[n].len = r->orig_len < sizeof k[n].raw ? r->orig_len : (uint32_t)sizeof k[n].raw;
            memcpy(k[n].raw, r->orig, k[n].len);
            k[n].line = r->line;
            snprintf(k[n].origin, sizeof k[n].origin, "%s", b->origin ? b->origin : "");
            render(r, k[n].got, sizeof k[n].got);
        }
        sl_batch_unref(b);
        if (rc != SL_OK)
            break;
    }
    src_close(&s);
    return n;
}

/*
 * Decode k's bytes with s (opened for inspection) as replay does: a record whose text is
 * its raw bytes, in a new batch. Renders the result into out; returns decode's code.
 */
static sl_rc decode(struct src *s, const struct kept *k, char *out, size_t cap)
{
    struct sl_batch *b;
    if (sl_batch_create(0, &b))
        return SL_ENOMEM;
    struct sl_record *r = sl_batch_add(b);
    char *raw = r ? sl_arena_dup(&b->arena, k->raw, k->len) : NULL;
    if (!raw) {
        sl_batch_unref(b);
        return SL_ENOMEM;
    }
    r->orig = r->text = raw;
    r->orig_len = r->text_len = k->len;
    r->line = k->line;
    sl_rc rc = sl_source_file.decode(s->state, k->origin, b, r, &s->err);
    snprintf(out, cap, "RC %s", sl_rc_name(rc));
    if (rc == SL_OK)
        render(r, out, cap);
    sl_batch_unref(b);
    return rc;
}

/* Open an inspecting instance with yaml, decode k once, close. */
static const char *decode_with(const char *yaml, const struct kept *k)
{
    static char out[4][4096];
    static int slot;
    slot = (slot + 1) % 4;
    struct src s;
    if (src_open(&s, yaml, 1) != SL_OK) {
        snprintf(out[slot], sizeof out[slot], "INIT %s", s.err.msg);
        sl_cfg_destroy(s.doc);
        return out[slot];
    }
    if (decode(&s, k, out[slot], sizeof out[slot]) != SL_OK)
        snprintf(out[slot] + strlen(out[slot]), sizeof out[slot] - strlen(out[slot]), " %s",
                 s.err.msg);
    src_close(&s);
    return out[slot];
}

static void test_good_rows(void)
{
    write_file("a.csv", "id,name,age\n1,ann,30\n2,\"bo, \"\"b\"\"\",\n");
    const char *cfg = "path: a.csv\nformat: csv\ntypes: {id: int, age: int}\n";
    struct kept k[4];
    REQUIRE(read_all(cfg, k, 4) == 2);
    CHECK_STR(k[0].got, "{\"id\":1,\"name\":\"ann\",\"age\":30}");
    CHECK_STR(k[1].got, "{\"id\":2,\"name\":\"bo, \\\"b\\\"\",\"age\":null}");
    CHECK_STR(k[0].origin, path_of("a.csv"));
    for (int i = 0; i < 2; i++)
        CHECK_STR(decode_with(cfg, &k[i]), k[i].got);
}

static void test_types_changed(void)
{
    write_file("t.csv", "id,score\n1,2\n2,3.5\n3,abc\n");
    const char *old_cfg = "path: t.csv\nformat: csv\ntypes: {id: int, score: int}\n";
    const char *new_cfg = "path: t.csv\nformat: csv\ntypes: {id: int, score: float}\n";
    const char *p = path_of("t.csv");
    char want[1024];
    struct kept k[4];
    REQUIRE(read_all(old_cfg, k, 4) == 3);
    CHECK_STR(k[0].got, "{\"id\":1,\"score\":2}");
    snprintf(want, sizeof want,
             "BAD src|cast|int|$.score|int|3.5|line 3 of %s, column score: \"3.5\" is not an int",
             p);
    CHECK_STR(k[1].got, want);
    /* Decoding with the settings it was read with gives the same reason. */
    CHECK_STR(decode_with(old_cfg, &k[1]), k[1].got);
    CHECK_STR(decode_with(old_cfg, &k[2]), k[2].got);
    /* score is a float now: the row decodes; "abc" is still no number. */
    CHECK_STR(decode_with(new_cfg, &k[1]), "{\"id\":2,\"score\":3.5}");
    snprintf(want, sizeof want,
             "BAD src|cast|float|$.score|float|abc|line 4 of %s, column score: \"abc\" is not a "
             "float",
             p);
    CHECK_STR(decode_with(new_cfg, &k[2]), want);
}

static void test_still_bad(void)
{
    write_file("b.csv", "id,name,age\n1,ann\n2,\"x\"y,3\n3,bob,4,5\n4,\"open\nmore");
    const char *cfg = "path: b.csv\nformat: csv\n";
    const char *p = path_of("b.csv");
    char want[4][1024];
    struct kept k[8];
    REQUIRE(read_all(cfg, k, 8) == 4);
    snprintf(want[0], sizeof want[0],
             "BAD src|csv|column_count|-|3 fields|2 fields|line 2 of %s: 2 fields, expected 3 "
             "(id ... age)",
             p);
    snprintf(want[1], sizeof want[1],
             "BAD src|csv|quoting|$.name|',' or a line break after the closing \"|'y'|line 3 of "
             "%s: malformed CSV: unexpected character after a closing quote (byte 6 of the row, "
             "column 2 \"name\"); quote the whole field and double any \" inside it",
             p);
    snprintf(want[2], sizeof want[2],
             "BAD src|csv|column_count|-|3 fields|4 fields|line 4 of %s: 4 fields, expected 3 "
             "(id ... age)",
             p);
    snprintf(want[3], sizeof want[3],
             "BAD src|csv|quoting|$.name|a closing \"|end of input|line 5 of %s: malformed CSV: "
             "quoted field not closed before the end of the input (byte 3 of the row, column 2 "
             "\"name\"); quote the whole field and double any \" inside it",
             p);
    for (int i = 0; i < 4; i++) {
        CHECK_STR(k[i].got, want[i]);
        CHECK_STR(decode_with(cfg, &k[i]), want[i]);
    }
    CHECK_INT(k[3].len, 12); /* the unclosed row runs to the end, its line break included */
}

static void test_multiline_rows(void)
{
    write_file("m.csv", "id,note\n1,\"two\nlines\"\n2,\"say \"\"hi\"\"\r\nok\"\r\n3,x\n");
    const char *cfg = "path: m.csv\nformat: csv\ntypes: {id: int}\n";
    struct kept k[4];
    REQUIRE(read_all(cfg, k, 4) == 3);
    CHECK_STR(k[0].got, "{\"id\":1,\"note\":\"two\\nlines\"}");
    CHECK_STR(k[1].got, "{\"id\":2,\"note\":\"say \\\"hi\\\"\\r\\nok\"}");
    CHECK_INT(k[1].line, 4);
    CHECK_INT(k[2].line, 6);
    for (int i = 0; i < 3; i++)
        CHECK_STR(decode_with(cfg, &k[i]), k[i].got);

    /* A last field ending in "\r" before the row's "\r\n" (or the final "\r") keeps it. */
    write_file("c.csv", "k,v\na,b\r\r\nc,d\r\r");
    cfg = "path: c.csv\nformat: csv\n";
    REQUIRE(read_all(cfg, k, 4) == 2);
    CHECK_STR(k[0].got, "{\"k\":\"a\",\"v\":\"b\\r\"}");
    CHECK_STR(k[1].got, "{\"k\":\"c\",\"v\":\"d\\r\"}");
    CHECK_INT(k[0].len, 4);
    for (int i = 0; i < 2; i++)
        CHECK_STR(decode_with(cfg, &k[i]), k[i].got);

    /* A quote setting under which the kept row is several rows: rejected, not split. */
    char want[1024];
    snprintf(want, sizeof want,
             "BAD src|csv|quoting|-|one row|a line break outside quotes at byte 7|line 2 of %s: "
             "with the current `quote` and `delimiter` this row ends at a line break at byte 7 "
             "and more rows follow it; set them back to what the file uses, or read the file "
             "again",
             path_of("m.csv"));
    REQUIRE(read_all("path: m.csv\nformat: csv\n", k, 4) == 3);
    CHECK_STR(decode_with("path: m.csv\nformat: csv\nquote: \"'\"\n", &k[0]), want);
}

static void test_ndjson(void)
{
    struct src s;
    REQUIRE(src_open(&s, "path: gone.ndjson\n", 1) == SL_OK);
    struct sl_batch *b;
    REQUIRE(sl_batch_create(0, &b) == SL_OK);
    struct sl_record *r = sl_batch_add(b);
    REQUIRE(r != NULL);
    r->orig = sl_arena_strdup(&b->arena, "{\"a\":1,");
    r->orig_len = 7;
    r->line = 3;
    CHECK_INT(sl_source_file.decode(s.state, path_of("gone.ndjson"), b, r, &s.err), SL_OK);
    CHECK(r->text == r->orig);
    CHECK_INT(r->text_len, 7);
    CHECK_INT(r->flags & SL_REC_BAD, 0);
    sl_batch_unref(b);
    src_close(&s);
}

static void test_file_deleted(void)
{
    /* header: false with columns: the columns are all there is to know. */
    write_file("g.csv", "5,eve\n");
    const char *cfg = "path: g.csv\nformat: csv\nheader: false\ncolumns: [a, b]\ntypes: {a: int}\n";
    struct kept k[2];
    REQUIRE(read_all(cfg, k, 2) == 1);
    CHECK_STR(k[0].got, "{\"a\":5,\"b\":\"eve\"}");
    REQUIRE(unlink(path_of("g.csv")) == 0);
    CHECK_STR(decode_with(cfg, &k[0]), "{\"a\":5,\"b\":\"eve\"}");

    /* header: true: the columns were the header's, which is gone with the file. */
    write_file("h.csv", "id,name\n1,ann\n");
    cfg = "path: h.csv\nformat: csv\n";
    REQUIRE(read_all(cfg, k, 2) == 1);
    REQUIRE(unlink(path_of("h.csv")) == 0);
    char want[1024];
    snprintf(want, sizeof want,
             "BAD src|csv|header|-|the file's header row|no such file|line 2 of %s: the file no "
             "longer exists, so its CSV header cannot be read to decode this row again; put the "
             "file back, or name its columns with `columns:` in the source's config, then replay "
             "again",
             path_of("h.csv"));
    CHECK_STR(decode_with(cfg, &k[0]), want);
    /* With `columns:` the header row is skipped, not used: decoding needs no file. */
    CHECK_STR(decode_with("path: h.csv\nformat: csv\ncolumns: [x, y]\n", &k[0]),
              "{\"x\":\"1\",\"y\":\"ann\"}");
    /* A file that is empty now has no header either. */
    write_file("h.csv", "");
    snprintf(want, sizeof want,
             "BAD src|csv|header|-|the file's header row|an empty file|line 2 of %s: the file "
             "is empty now, so its CSV header cannot be read to decode this row again; put the "
             "file back, or name its columns with `columns:` in the source's config, then replay "
             "again",
             path_of("h.csv"));
    CHECK_STR(decode_with(cfg, &k[0]), want);
}

static void test_header_per_file(void)
{
    write_file("p1.csv", "a,b\n1,2\n");
    write_file("p2.csv", "\nb,a\n3,4\n");
    const char *cfg = "path: p*.csv\nformat: csv\ntypes: {a: int}\n";
    struct kept k[4];
    REQUIRE(read_all(cfg, k, 4) == 2);
    CHECK_STR(k[0].got, "{\"a\":1,\"b\":\"2\"}");
    CHECK_STR(k[1].got, "{\"b\":\"3\",\"a\":4}");
    struct src s;
    REQUIRE(src_open(&s, cfg, 1) == SL_OK);
    char out[1024];
    CHECK_INT(decode(&s, &k[0], out, sizeof out), SL_OK);
    CHECK_STR(out, k[0].got);
    CHECK_INT(decode(&s, &k[1], out, sizeof out), SL_OK);
    CHECK_STR(out, k[1].got);
    /* Each file's header is read once per instance: a file removed since decodes still. */
    REQUIRE(unlink(path_of("p1.csv")) == 0);
    CHECK_INT(decode(&s, &k[0], out, sizeof out), SL_OK);
    CHECK_STR(out, k[0].got);
    src_close(&s);

    /* A new instance reads the header as the file has it now. */
    write_file("p2.csv", "a,b\n3,4\n");
    CHECK_STR(decode_with(cfg, &k[1]), "{\"a\":3,\"b\":\"4\"}");
    /* A header that no longer has a column `types` names is fatal, as in reading. */
    write_file("p2.csv", "x,y\n3,4\n");
    char want[1024];
    snprintf(want, sizeof want,
             "RC SL_ECONFIG types names column \"a\", but %s has no such column; its columns "
             "are: x, ...",
             path_of("p2.csv"));
    CHECK_STR(decode_with(cfg, &k[1]), want);
}

/*
 * Property: for any input, every record reading makes (good or rejected) decodes from its
 * kept bytes, with the same settings, to exactly what reading made. Random bodies over an
 * alphabet heavy in quotes, delimiters and line breaks, under a fixed header.
 */
static void test_decode_matches_reading(void)
{
    static const char alphabet[] = "a1x ,,,\"\"\"\n\n\r\r0t";
    static const char *const cfgs[] = {
        "path: r.csv\nformat: csv\ntypes: {a: int, b: bool}\n",
        "path: r.csv\nformat: csv\nheader: false\ncolumns: [a, b, c]\ntypes: {c: float}\n",
    };
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    int records = 0, mismatches = 0, good = 0, quoting = 0, count = 0, cast = 0;
    for (int iter = 0; iter < 400; iter++) {
        char body[256];
        size_t n = 0;
        if (iter % 2 == 0)
            n = (size_t)snprintf(body, sizeof body, "a,b,c\n");
        size_t len = 8 + (size_t)(iter % 48);
        while (n < len) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            body[n++] = alphabet[(seed >> 33) % (sizeof alphabet - 1)];
        }
        body[n] = '\0';
        write_file("r.csv", body);
        const char *cfg = cfgs[iter % 2];
        struct kept k[64];
        int nk = read_all(cfg, k, 64);
        if (nk < 0)
            continue;
        struct src s;
        REQUIRE(src_open(&s, cfg, 1) == SL_OK);
        for (int i = 0; i < nk; i++) {
            char out[1024];
            CHECK_INT(decode(&s, &k[i], out, sizeof out), SL_OK);
            records++;
            good += k[i].got[0] == '{';
            quoting += strstr(k[i].got, "|csv|quoting|") != NULL;
            count += strstr(k[i].got, "|csv|column_count|") != NULL;
            cast += strstr(k[i].got, "|cast|") != NULL;
            if (strcmp(out, k[i].got) != 0 && mismatches++ < 5)
                fprintf(stderr, "input %d record %d: read %s, decoded %s\n", iter, i, k[i].got,
                        out);
        }
        src_close(&s);
    }
    CHECK_INT(mismatches, 0);
    /* Every kind of outcome was met, not only one. */
    CHECK(good > 20 && quoting > 20 && count > 20 && cast > 20);
    fprintf(stderr, "  %d records: %d good, %d quoting, %d column_count, %d cast\n", records, good,
            quoting, count, cast);
}

static int count_entries(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void test_inspect_reads_and_creates_nothing(void)
{
    /* The configured path need not exist; decoding opens origins read-only. */
    write_file("i.csv", "id,v\n1,2\n");
    struct kept k[2];
    REQUIRE(read_all("path: i.csv\nformat: csv\n", k, 2) == 1);
    int before = count_entries(dir);
    struct src s;
    REQUIRE(src_open(&s, "path: nothing/here*.csv\nformat: csv\nfollow: true\n", 1) == SL_OK);
    char out[1024];
    CHECK_INT(decode(&s, &k[0], out, sizeof out), SL_OK);
    CHECK_STR(out, "{\"id\":\"1\",\"v\":\"2\"}");
    src_close(&s);
    CHECK_INT(count_entries(dir), before);
}

/* Every allocation decode makes may fail: each call then returns SL_ENOMEM, leaks nothing. */
static void test_alloc_failures(void)
{
    write_file("af.csv", "id,v\n1,\"x\ny\"\n2,3\n");
    const char *cfg = "path: af.csv\nformat: csv\ntypes: {id: int}\n";
    struct kept k[4];
    REQUIRE(read_all("path: af.csv\nformat: csv\n", k, 4) == 2);
    write_file("af.csv", "v,id\n"); /* the columns swapped since */
    char want[2][1024];
    snprintf(want[0], sizeof want[0],
             "BAD src|cast|int|$.id|int|x?y|line 2 of %s, column id: \"x?y\" is not an int",
             path_of("af.csv"));
    snprintf(want[1], sizeof want[1], "{\"v\":\"2\",\"id\":3}");
    int completed = 0;
    for (long n = 1; n < 400 && !completed; n++) {
        struct src s;
        sl_alloc_fail_at(n);
        sl_rc rc = src_open(&s, cfg, 1);
        char out[2][1024] = {"", ""};
        for (int i = 0; i < 2 && rc == SL_OK; i++)
            rc = decode(&s, &k[i], out[i], sizeof out[i]);
        sl_alloc_fail_at(0);
        CHECK(rc == SL_OK || rc == SL_ENOMEM);
        completed = rc == SL_OK && strcmp(out[0], want[0]) == 0 && strcmp(out[1], want[1]) == 0;
        src_close(&s);
    }
    CHECK(completed);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sluice_file_decode_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    sl_log_set_level(SL_LOG_ERROR);
    RUN(test_good_rows);
    RUN(test_types_changed);
    RUN(test_still_bad);
    RUN(test_multiline_rows);
    RUN(test_ndjson);
    RUN(test_file_deleted);
    RUN(test_header_per_file);
    RUN(test_decode_matches_reading);
    RUN(test_inspect_reads_and_creates_nothing);
    RUN(test_alloc_failures);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return TEST_DONE();
}
