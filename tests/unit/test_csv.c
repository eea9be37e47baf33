/*
 * test_csv.c - the CSV scanner and converter of the file and stdin sources.
 *
 * Scanner cases render a row as "STATUS|used|len|newlines|field;field;..." where a quoted
 * field is shown as <...> with its raw inner bytes, so each expectation pins every
 * boundary the scanner reports. The row readers (CSV rows and NDJSON lines, lines.c) are
 * driven over a temporary file to pin their structured reject reasons, blank-line counts
 * and the true length of overlong lines.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugins/sources/file/csv.h"
#include "plugins/sources/file/lines.h"
#include "sluice/batch.h"
#include "sluice/alloc.h"
#include "sluice/config.h"
#include "test.h"

static const struct sl__csv_dialect comma = {',', '"'};

static const char *scan(const struct sl__csv_dialect *d, const char *in, int at_eof)
{
    static char out[4096];
    struct sl__csv_field f[16];
    struct sl__csv_scan sc;
    int st = sl__csv_scan(d, in, strlen(in), at_eof, f, 16, &sc);
    if (st == SL__CSV_MORE)
        return "MORE";
    int n = snprintf(out, sizeof out, "%s|%zu|%zu|%u|", st == SL__CSV_ROW ? "ROW" : "BAD", sc.used,
                     sc.len, sc.newlines);
    for (uint32_t i = 0; i < sc.nf && i < 16; i++)
        n += snprintf(out + n, sizeof out - (size_t)n, "%s%s%.*s%s", i ? ";" : "",
                      f[i].quoted ? "<" : "", (int)f[i].len, in + f[i].off, f[i].quoted ? ">" : "");
    if (st == SL__CSV_BAD)
        snprintf(out + n, sizeof out - (size_t)n, "|%s@%zu", sc.err, sc.err_col);
    return out;
}

static void test_scan_plain(void)
{
    CHECK_STR(scan(&comma, "a,b,c\nnext", 0), "ROW|6|5|0|a;b;c");
    CHECK_STR(scan(&comma, "a,b,c\r\nnext", 0), "ROW|7|5|0|a;b;c");
    CHECK_STR(scan(&comma, ",,\n", 0), "ROW|3|2|0|;;");
    CHECK_STR(scan(&comma, "\n", 0), "ROW|1|0|0|");
    CHECK_STR(scan(&comma, "\r\n", 0), "ROW|2|0|0|");
    CHECK_STR(scan(&comma, "a,b", 0), "MORE");
    CHECK_STR(scan(&comma, "a,b", 1), "ROW|3|3|0|a;b");
    CHECK_STR(scan(&comma, "a,b,", 1), "ROW|4|4|0|a;b;");
    CHECK_STR(scan(&comma, "a,b\r", 1), "ROW|4|3|0|a;b");
    CHECK_STR(scan(&comma, " a , b \n", 0), "ROW|8|7|0| a ; b ");
    /* A quote inside an unquoted field is data. */
    CHECK_STR(scan(&comma, "ab\"c,d\n", 0), "ROW|7|6|0|ab\"c;d");
}

static void test_scan_quoted(void)
{
    CHECK_STR(scan(&comma, "\"a\",\"b\"\n", 0), "ROW|8|7|0|<a>;<b>");
    CHECK_STR(scan(&comma, "\"a,b\",c\n", 0), "ROW|8|7|0|<a,b>;c");
    CHECK_STR(scan(&comma, "\"say \"\"hi\"\"\",x\n", 0), "ROW|15|14|0|<say \"\"hi\"\">;x");
    CHECK_STR(scan(&comma, "\"\",x\n", 0), "ROW|5|4|0|<>;x");
    CHECK_STR(scan(&comma, "\"two\nlines\",x\nrest", 0), "ROW|14|13|1|<two\nlines>;x");
    CHECK_STR(scan(&comma, "\"a\"\r\n", 0), "ROW|5|3|0|<a>");
    CHECK_STR(scan(&comma, "x,\"a\"\r\n", 0), "ROW|7|5|0|x;<a>");
    CHECK_STR(scan(&comma, "\"a\"", 1), "ROW|3|3|0|<a>");
    CHECK_STR(scan(&comma, "\"a\"\r", 1), "ROW|4|3|0|<a>");
    CHECK_STR(scan(&comma, "x,\"a\"\r", 1), "ROW|6|5|0|x;<a>");
    /* Incomplete quoted data waits for more, even across a line break. */
    CHECK_STR(scan(&comma, "\"open\nstill", 0), "MORE");
    CHECK_STR(scan(&comma, "\"ends with quote\"", 0), "MORE");
    CHECK_STR(scan(&comma, "\"a\"\"", 0), "MORE");
    CHECK_STR(scan(&comma, "\"a\"\r", 0), "MORE");
}

static void test_scan_malformed(void)
{
    CHECK_STR(scan(&comma, "\"ab\"c,d\nnext", 0),
              "BAD|8|7|0|<ab\"c>;d|unexpected character after a closing quote@4");
    CHECK_STR(scan(&comma, "x,\"unterminated", 1),
              "BAD|15|15|0|x;<unterminated>|quoted field not closed before the end of the "
              "input@2");
    /* More fields than the caller has room for: counted, flagged. */
    struct sl__csv_field f[2];
    struct sl__csv_scan sc;
    CHECK_INT(sl__csv_scan(&comma, "a,b,c,d\n", 8, 0, f, 2, &sc), SL__CSV_BAD);
    CHECK_INT(sc.nf, 4);
    CHECK_STR(sc.err, "too many fields");
}

static void test_scan_dialects(void)
{
    const struct sl__csv_dialect tab = {'\t', '"'}, semi = {';', '\''};
    CHECK_STR(scan(&tab, "a\tb,c\t\"d\te\"\n", 0), "ROW|12|11|0|a;b,c;<d\te>");
    CHECK_STR(scan(&semi, "'it''s';\"x\"\n", 0), "ROW|12|11|0|<it''s>;\"x\"");
}

/* Convert one row with the given names/types; returns the JSON or "ERR: msg". */
static const char *conv(const char *row, const char *const *names, const uint8_t *types,
                        uint32_t ncol)
{
    static char out[4096];
    struct sl__csv_schema s;
    const char *keys[8];
    uint32_t klen[8];
    char kbuf[8][64];
    for (uint32_t i = 0; i < ncol; i++) {
        snprintf(kbuf[i], sizeof kbuf[i], "\"%s\":", names[i]);
        keys[i] = kbuf[i];
        klen[i] = (uint32_t)strlen(kbuf[i]);
    }
    s.ncol = ncol;
    s.names = (const char **)names;
    s.keys = keys;
    s.key_len = klen;
    s.types = (uint8_t *)types;
    s.quote = '"';
    struct sl__csv_field f[8];
    struct sl__csv_scan sc;
    if (sl__csv_scan(&comma, row, strlen(row), 1, f, 8, &sc) != SL__CSV_ROW)
        return "SCAN";
    struct sl_buf b, tmp;
    sl_buf_init(&b, 1 << 20);
    sl_buf_init(&tmp, 1 << 20);
    char msg[256];
    sl_rc rc = sl__csv_to_json(&s, row, f, sc.nf, &b, &tmp, msg, sizeof msg, NULL);
    if (rc == SL_OK)
        snprintf(out, sizeof out, "%.*s", (int)b.len, b.data);
    else
        snprintf(out, sizeof out, "ERR: %s", rc == SL_EPARSE ? msg : sl_rc_name(rc));
    sl_buf_fini(&b);
    sl_buf_fini(&tmp);
    return out;
}

static void test_convert_strings(void)
{
    const char *n2[] = {"a", "b"};
    const uint8_t s2[] = {SL__CSV_STRING, SL__CSV_STRING};
    CHECK_STR(conv("x,y", n2, s2, 2), "{\"a\":\"x\",\"b\":\"y\"}");
    CHECK_STR(conv(",", n2, s2, 2), "{\"a\":\"\",\"b\":\"\"}");
    CHECK_STR(conv("\"q\"\"uote\",\"back\\slash\"", n2, s2, 2),
              "{\"a\":\"q\\\"uote\",\"b\":\"back\\\\slash\"}");
    CHECK_STR(conv("\"line\nbreak\",\"tab\there\"", n2, s2, 2),
              "{\"a\":\"line\\nbreak\",\"b\":\"tab\\there\"}");
    CHECK_STR(conv("\"\x01\",caf\xc3\xa9", n2, s2, 2), "{\"a\":\"\\u0001\",\"b\":\"caf\xc3\xa9\"}");
    /* Spaces are kept in strings. */
    CHECK_STR(conv(" x , y ", n2, s2, 2), "{\"a\":\" x \",\"b\":\" y \"}");
}

static void test_convert_types(void)
{
    const char *n[] = {"i", "f", "b", "j"};
    const uint8_t t[] = {SL__CSV_INT, SL__CSV_FLOAT, SL__CSV_BOOL, SL__CSV_JSON};
    CHECK_STR(conv("42,1.5,true,{\"x\":1}", n, t, 4),
              "{\"i\":42,\"f\":1.5,\"b\":true,\"j\":{\"x\":1}}");
    CHECK_STR(conv("-007, 2e3 ,No,\"[1,\"\"a\"\"]\"", n, t, 4),
              "{\"i\":-7,\"f\":2e3,\"b\":false,\"j\":[1,\"a\"]}");
    CHECK_STR(conv(",,,", n, t, 4), "{\"i\":null,\"f\":null,\"b\":null,\"j\":null}");
    CHECK_STR(conv("+5,.5,1,null", n, t, 4), "{\"i\":5,\"f\":0.5,\"b\":true,\"j\":null}");
    CHECK_STR(conv("0,1.,Y,0", n, t, 4), "{\"i\":0,\"f\":1,\"b\":true,\"j\":0}");
    CHECK_STR(conv("0,-0.1e-2,f,\"\"", n, t, 4), "{\"i\":0,\"f\":-0.1e-2,\"b\":false,\"j\":null}");
    CHECK_STR(conv("9223372036854775807,+0.1,0,1", n, t, 4),
              "{\"i\":9223372036854775807,\"f\":0.1,\"b\":false,\"j\":1}");
    CHECK_STR(conv("-9223372036854775808,1,1,1", n, t, 4),
              "{\"i\":-9223372036854775808,\"f\":1,\"b\":true,\"j\":1}");
    CHECK_STR(conv("9223372036854775808,1,1,1", n, t, 4),
              "ERR: column i: \"9223372036854775808\" is not an int");
    CHECK_STR(conv("12a,1,1,1", n, t, 4), "ERR: column i: \"12a\" is not an int");
    CHECK_STR(conv("1.0,1,1,1", n, t, 4), "ERR: column i: \"1.0\" is not an int");
    CHECK_STR(conv("-,1,1,1", n, t, 4), "ERR: column i: \"-\" is not an int");
    CHECK_STR(conv("1,abc,1,1", n, t, 4), "ERR: column f: \"abc\" is not a float");
    CHECK_STR(conv("1,nan,1,1", n, t, 4), "ERR: column f: \"nan\" is not a float");
    CHECK_STR(conv("1,inf,1,1", n, t, 4), "ERR: column f: \"inf\" is not a float");
    CHECK_STR(conv("1,1e999,1,1", n, t, 4), "ERR: column f: \"1e999\" is not a float");
    CHECK_STR(conv("1,0x10,1,1", n, t, 4), "ERR: column f: \"0x10\" is not a float");
    CHECK_STR(conv("1,1,maybe,1", n, t, 4), "ERR: column b: \"maybe\" is not a bool");
    CHECK_STR(conv("1,1,2,1", n, t, 4), "ERR: column b: \"2\" is not a bool");
}

static void test_convert_long_value_message(void)
{
    const char *n[] = {"i"};
    const uint8_t t[] = {SL__CSV_INT};
    char row[200];
    memset(row, 'x', 100);
    row[100] = '\0';
    CHECK_STR(conv(row, n, t, 1),
              "ERR: column i: \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\" "
              "is not an int");
}

static sl_rc configure(const char *yaml, struct sl__csv *c, struct sl_error *err)
{
    struct sl_cfg_doc *doc;
    sl_rc rc = sl_cfg_load_string(yaml, strlen(yaml), "t.yaml", "/tmp", &doc, err);
    if (rc)
        return rc;
    rc = sl__csv_configure(c, doc, doc->root, 1 << 20, err);
    if (!rc)
        sl__csv_fini(c);
    sl_cfg_destroy(doc);
    return rc;
}

static void test_configure(void)
{
    struct sl__csv c;
    struct sl_error err;
    CHECK_INT(configure("delimiter: ';'\n", &c, &err), SL_OK);
    CHECK_INT(configure("delimiter: tab\n", &c, &err), SL_OK);
    CHECK_INT(configure("delimiter: ';;'\n", &c, &err), SL_ECONFIG);
    CHECK(strstr(err.msg, "must be exactly one character") != NULL);
    CHECK_INT(configure("header: false\n", &c, &err), SL_ECONFIG);
    CHECK(strstr(err.msg, "header: false needs `columns:`") != NULL);
    CHECK_INT(configure("header: false\ncolumns: [a, b]\ntypes: {a: int}\n", &c, &err), SL_OK);
    CHECK_INT(configure("header: false\ncolumns: [a, b]\ntypes: {c: int}\n", &c, &err), SL_ECONFIG);
    CHECK(strstr(err.msg, "\"c\" is not one of the columns") != NULL);
    CHECK_INT(configure("types: {a: integer}\n", &c, &err), SL_ECONFIG);
    CHECK(strstr(err.msg, "expected string, int, float, bool or json") != NULL);
    CHECK_INT(configure("columns: [a, a]\n", &c, &err), SL_ECONFIG);
    CHECK(strstr(err.msg, "named twice") != NULL);
    CHECK_INT(configure("quote: ','\n", &c, &err), SL_ECONFIG);
}

/* REQUIRE for helpers that return a value: a failed setup ends the test program. */
#define MUST(c)                                                                                    \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: setup failed: %s\n", __FILE__, __LINE__, #c);                  \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* Write data to a temporary file and return its fd (unlinked). */
static int temp_input(const char *data, size_t n)
{
    char path[] = "/tmp/sluice_test_csv_XXXXXX";
    int fd = mkstemp(path);
    MUST(fd >= 0);
    unlink(path);
    MUST(write(fd, data, n) == (ssize_t)n);
    return fd;
}

/*
 * Read all of data through a window of max_record bytes into one batch, as the file
 * source does: split, flush, refill, and a last pass at the end of the input. csv NULL
 * reads NDJSON.
 */
static struct sl_batch *read_all(const char *data, size_t n, size_t max_record, struct sl__csv *csv)
{
    static const struct sl_batch_limits lim = {100000, (size_t)1 << 30};
    struct sl__emit e = {&lim, "src", "t.in", {1, 2}};
    struct sl__lines l;
    struct sl_batch *b;
    struct sl_error err;
    MUST(sl__lines_init(&l, 0, max_record) == SL_OK);
    MUST(sl_batch_create(0, &b) == SL_OK);
    int fd = temp_input(data, n), at_eof = 0;
    struct sl__span sp;
    sl__lines_span_begin(&l, &sp, b);
    for (;;) {
        sl_rc rc = csv ? sl__csv_rows(csv, &l, b, &sp, &e, at_eof, &err)
                       : sl__lines_ndjson(&l, b, &sp, &e, at_eof);
        MUST(rc == SL_AGAIN);
        MUST(sl__lines_flush(&l, b, &sp, l.start) == SL_OK);
        if (at_eof)
            break;
        ssize_t got = sl__lines_fill(&l, &sp, fd, 1);
        MUST(got >= 0);
        at_eof = got == 0;
    }
    close(fd);
    sl__lines_fini(&l);
    return b;
}

/* The reject reason of record i as "class|rule|path|expected|actual" or "live:<text>". */
static const char *why_of(const struct sl_batch *b, uint32_t i)
{
    static char out[1024];
    const struct sl_record *r = &b->recs[i];
    if (!(r->flags & SL_REC_BAD)) {
        snprintf(out, sizeof out, "live:%.*s", (int)r->text_len, r->text);
        return out;
    }
    const struct sl_reject_info *w = r->why;
    if (!w)
        return "no why";
    snprintf(out, sizeof out, "%s|%s|%s|%s|%s", w->error_class ? w->error_class : "-",
             w->rule ? w->rule : "-", w->path ? w->path : "-", w->expected ? w->expected : "-",
             w->actual ? w->actual : "-");
    return out;
}

static void test_csv_rejects(void)
{
    struct sl__csv c;
    struct sl_error err;
    struct sl_cfg_doc *doc;
    const char *yaml = "types: {id: int, \"odd col\": float, ok: bool}\n";
    REQUIRE(sl_cfg_load_string(yaml, strlen(yaml), "t.yaml", "/tmp", &doc, &err) == SL_OK);
    REQUIRE(sl__csv_configure(&c, doc, doc->root, 1 << 20, &err) == SL_OK);
    sl__csv_input_begin(&c);
    const char *in = "id,odd col,ok,name\n"
                     "1,2.5,yes,ann\n"
                     "\n"
                     "2,3,no\n"
                     "   \t \n"
                     "3,4,y,bob,extra\n"
                     "abc,1,t,x\n"
                     "4,1e999,t,x\n"
                     "5,1,maybe,x\n"
                     "6,1,t,\"a\"b\n"
                     "7,1,t,\"never closed\n";
    struct sl_batch *b = read_all(in, strlen(in), 1 << 20, &c);
    REQUIRE(b->n == 8);
    CHECK_STR(why_of(b, 0), "live:{\"id\":1,\"odd col\":2.5,\"ok\":true,\"name\":\"ann\"}");
    CHECK_STR(why_of(b, 1), "csv|column_count|-|4 fields|3 fields");
    CHECK(strstr(b->recs[1].error, "line 4 of t.in: 3 fields, expected 4 (id ... name)") != NULL);
    CHECK_STR(why_of(b, 2), "csv|column_count|-|4 fields|5 fields");
    CHECK_STR(why_of(b, 3), "cast|int|$.id|int|abc");
    CHECK_STR(b->recs[3].error, "line 7 of t.in, column id: \"abc\" is not an int");
    CHECK_STR(why_of(b, 4), "cast|float|$[\"odd col\"]|float|1e999");
    CHECK_STR(why_of(b, 5), "cast|bool|$.ok|bool|maybe");
    CHECK_STR(why_of(b, 6), "csv|quoting|$.name|',' or a line break after the closing \"|'b'");
    CHECK(strstr(b->recs[6].error,
                 "line 10 of t.in: malformed CSV: unexpected character after a "
                 "closing quote (byte 10 of the row, column 4 \"name\")") != NULL);
    CHECK_STR(why_of(b, 7), "csv|quoting|$.name|a closing \"|end of input");
    CHECK(strstr(b->recs[7].error, "quoted field not closed") != NULL);
    CHECK_INT(b->recs[7].line, 11);
    CHECK_INT(b->empty, 2); /* the empty line and the blank one */
    /* The raw row is kept as read. */
    CHECK_INT(b->recs[6].orig_len, 10);
    CHECK(memcmp(b->recs[6].orig, "6,1,t,\"a\"b", 10) == 0);
    sl_batch_unref(b);
    sl__csv_fini(&c);
    sl_cfg_destroy(doc);
}

static void test_lines_blank_and_overlong(void)
{
    /* Lines 2 and 6 over 16 bytes: one whose end is in the window, one far longer than the
     * window (its length is counted while it is skipped), and one at the end of the input
     * without a newline. */
    size_t big = 200 * 1024;
    char *in = malloc(big + 256);
    REQUIRE(in);
    size_t n = 0;
    n += (size_t)sprintf(in + n, "{\"a\":1}\n{\"long\":\"abcdefghijkl\"}\r\n\n  \t\r\n{\"a\":2}\n");
    size_t long_at = n;
    memset(in + n, 'x', big);
    n += big;
    n += (size_t)sprintf(in + n, "\r\n{\"a\":3}\n\t\n%s", "{\"tail\":\"0123456789\"}");
    struct sl_batch *b = read_all(in, n, 16, NULL);
    REQUIRE(b->n == 6);
    CHECK_STR(why_of(b, 0), "live:{\"a\":1}");
    CHECK_STR(why_of(b, 1), "record_too_large|max_record_bytes|-|<= 16 bytes|23 bytes");
    CHECK_INT(b->recs[1].why->true_len, 23);
    CHECK_INT(b->recs[1].orig_len, 16);
    CHECK(memcmp(b->recs[1].orig, "{\"long\":\"abcdefg", 16) == 0);
    CHECK_STR(b->recs[1].error, "line 2 of t.in is 23 bytes, over max_record_bytes (16 bytes); "
                                "raise max_record_bytes or fix the producer");
    CHECK_STR(why_of(b, 2), "live:{\"a\":2}");
    char want[128];
    snprintf(want, sizeof want, "record_too_large|max_record_bytes|-|<= 16 bytes|%zu bytes", big);
    CHECK_STR(why_of(b, 3), want);
    CHECK_INT(b->recs[3].why->true_len, big);
    CHECK_INT(b->recs[3].offset, long_at);
    CHECK_INT(b->recs[3].line, 6);
    CHECK(memcmp(b->recs[3].orig, "xxxxxxxxxxxxxxxx", 16) == 0);
    snprintf(want, sizeof want,
             "line 6 of t.in is %zu bytes, over max_record_bytes (16 bytes); raise "
             "max_record_bytes or fix the producer",
             big);
    CHECK_STR(b->recs[3].error, want);
    CHECK_STR(why_of(b, 4), "live:{\"a\":3}");
    CHECK_INT(b->recs[4].line, 7);
    CHECK_STR(why_of(b, 5), "record_too_large|max_record_bytes|-|<= 16 bytes|21 bytes");
    CHECK_INT(b->recs[5].line, 9);
    CHECK_INT(b->empty, 3);
    sl_batch_unref(b);
    free(in);
}

int main(void)
{
    RUN(test_scan_plain);
    RUN(test_scan_quoted);
    RUN(test_scan_malformed);
    RUN(test_scan_dialects);
    RUN(test_convert_strings);
    RUN(test_convert_types);
    RUN(test_convert_long_value_message);
    RUN(test_configure);
    RUN(test_csv_rejects);
    RUN(test_lines_blank_and_overlong);
    return TEST_DONE();
}
