/*
 * test_config.c - YAML loading with positions, env substitution, typed getters, parsers
 * and suggestions (src/core/config.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice/alloc.h"
#include "sluice/buf.h"
#include "sluice/config.h"
#include "test.h"

static struct sl_cfg_doc *load(const char *text, struct sl_error *err)
{
    struct sl_cfg_doc *doc = NULL;
    sl_error_clear(err);
    sl_rc rc = sl_cfg_load_string(text, strlen(text), "p.yaml", "/etc/sl", &doc, err);
    if (rc)
        return NULL;
    return doc;
}

static void test_positions(void)
{
    struct sl_error err;
    struct sl_cfg_doc *doc = load("pipeline: clicks\n"
                                  "sinks:\n"
                                  "  warehouse:\n"
                                  "    type: sqlite\n"
                                  "    inputs: [a, \"b\"]\n"
                                  "    retry: {max_backoff: 30 seconds}\n",
                                  &err);
    REQUIRE(doc);
    const struct sl_cfg_node *r = doc->root;
    REQUIRE(r && r->kind == SL_CFG_MAP);
    CHECK_INT(r->n, 2);
    CHECK_INT(r->line, 1);
    CHECK_INT(r->col, 1);
    CHECK_STR(r->keypath, "");
    CHECK_STR(doc->path, "p.yaml");
    CHECK_STR(doc->dir, "/etc/sl");
    const struct sl_cfg_pair *p = sl_cfg_pair(r, "sinks");
    REQUIRE(p);
    CHECK_INT(p->line, 2);
    CHECK_INT(p->col, 1);
    const struct sl_cfg_node *w = sl_cfg_get(sl_cfg_get(r, "sinks"), "warehouse");
    REQUIRE(w && w->kind == SL_CFG_MAP);
    CHECK_INT(w->line, 4);
    CHECK_INT(w->col, 5);
    CHECK_STR(w->keypath, "sinks.warehouse");
    const struct sl_cfg_node *in = sl_cfg_get(w, "inputs");
    REQUIRE(in && in->kind == SL_CFG_SEQ && in->n == 2);
    CHECK_INT(in->line, 5);
    CHECK_INT(in->col, 13);
    CHECK_STR(in->items[0]->str, "a");
    CHECK_INT(in->items[0]->quoted, 0);
    CHECK_INT(in->items[1]->col, 17);
    CHECK_INT(in->items[1]->quoted, 1);
    CHECK_STR(in->items[1]->keypath, "sinks.warehouse.inputs[1]");
    CHECK_STR(in->items[1]->file, "p.yaml");

    uint64_t ms = 7;
    const struct sl_cfg_node *retry = sl_cfg_get(w, "retry");
    CHECK_INT(sl_cfg_get_duration(retry, "max_backoff", 1000, &ms, &err), SL_ECONFIG);
    CHECK_STR(err.msg, "p.yaml:6:26: sinks.warehouse.retry.max_backoff: \"30 seconds\" is not "
                       "a duration; write it like 250ms, 30s, 5m or 2h");
    CHECK_INT(ms, 7);
    CHECK(sl_cfg_get(r, "nope") == NULL);
    CHECK(sl_cfg_get(NULL, "x") == NULL);
    CHECK(sl_cfg_get(in, "x") == NULL);
    CHECK(sl_cfg_pair(r, "nope") == NULL);
    sl_cfg_destroy(doc);
}

static void test_nulls_and_quotes(void)
{
    struct sl_error err;
    struct sl_cfg_doc *doc = load("a:\nb: ~\nc: null\nd: \"null\"\ne: 'true'\nf: |\n  x\n  y\n"
                                  "g: NULL\nh: nul\n",
                                  &err);
    REQUIRE(doc);
    const struct sl_cfg_node *r = doc->root;
    CHECK_INT(sl_cfg_get(r, "a")->is_null, 1);
    CHECK_STR(sl_cfg_get(r, "a")->str, "");
    CHECK_INT(sl_cfg_get(r, "b")->is_null, 1);
    CHECK_INT(sl_cfg_get(r, "c")->is_null, 1);
    CHECK_INT(sl_cfg_get(r, "d")->is_null, 0);
    CHECK_INT(sl_cfg_get(r, "d")->quoted, 1);
    CHECK_STR(sl_cfg_get(r, "d")->str, "null");
    CHECK_INT(sl_cfg_get(r, "e")->quoted, 1);
    CHECK_STR(sl_cfg_get(r, "f")->str, "x\ny\n");
    CHECK_INT(sl_cfg_get(r, "f")->quoted, 1);
    CHECK_INT(sl_cfg_get(r, "g")->is_null, 1);
    CHECK_INT(sl_cfg_get(r, "h")->is_null, 0);

    const char *s = "unchanged";
    CHECK_INT(sl_cfg_get_str(r, "a", "def", &s, &err), SL_ECONFIG);
    CHECK_STR(err.msg, "p.yaml:1:3: a: expected a string, found null");
    CHECK_STR(s, "unchanged");
    CHECK_INT(sl_cfg_get_str(r, "d", "def", &s, &err), SL_OK);
    CHECK_STR(s, "null");
    CHECK_INT(sl_cfg_get_str(r, "zz", "def", &s, &err), SL_OK);
    CHECK_STR(s, "def");
    sl_cfg_destroy(doc);
}

static void test_env(void)
{
    struct sl_error err;
    setenv("SLT_HOST", "db.local", 1);
    setenv("SLT_EMPTY", "", 1);
    unsetenv("SLT_UNSET");
    struct sl_cfg_doc *doc = load("a: ${SLT_HOST}:5432\n"
                                  "b: \"${SLT_UNSET:-fallback} and ${SLT_EMPTY:-e}\"\n"
                                  "c: price $$5 and $ alone $x\n"
                                  "${SLT_HOST}: keys stay\n"
                                  "d: ${SLT_EMPTY}|${SLT_UNSET:-}|\n",
                                  &err);
    REQUIRE(doc);
    const struct sl_cfg_node *r = doc->root;
    CHECK_STR(sl_cfg_get(r, "a")->str, "db.local:5432");
    CHECK_STR(sl_cfg_get(r, "b")->str, "fallback and e");
    CHECK_STR(sl_cfg_get(r, "c")->str, "price $5 and $ alone $x");
    CHECK_STR(sl_cfg_get(r, "${SLT_HOST}")->str, "keys stay");
    CHECK_STR(sl_cfg_get(r, "d")->str, "||");
    CHECK_INT(sl_cfg_get(r, "d")->is_null, 0);
    sl_cfg_destroy(doc);

    CHECK(load("x: 1\nsinks:\n  o: {path: \"/d/${SLT_UNSET}.db\"}\n", &err) == NULL);
    CHECK_INT(err.rc, SL_ECONFIG);
    CHECK_STR(err.msg, "p.yaml:3:13: sinks.o.path: environment variable SLT_UNSET is not set; "
                       "set it or write ${SLT_UNSET:-default}");
    CHECK(load("x: ab${SLT_HOST\n", &err) == NULL);
    CHECK_STR(err.msg, "p.yaml:1:4: x: unterminated \"${\" (write $$ for a literal $)");
    CHECK(load("x: ${1A}\n", &err) == NULL);
    CHECK_STR(err.msg, "p.yaml:1:4: x: \"${1A}\" is not a valid variable reference; write "
                       "${NAME} or ${NAME:-default} (write $$ for a literal $)");
    CHECK(load("${SLT_UNSET}\n", &err) == NULL);
    CHECK_STR(err.msg, "p.yaml:1:1: the document: environment variable SLT_UNSET is not set; "
                       "set it or write ${SLT_UNSET:-default}");
    CHECK(load("x: ${A:x}\n", &err) == NULL);
    CHECK_INT(err.rc, SL_ECONFIG);
}

static void test_anchors(void)
{
    struct sl_error err;
    struct sl_cfg_doc *doc = load("base: &r {max_attempts: 3, initial_backoff: 100ms}\n"
                                  "sinks:\n"
                                  "  a: {retry: *r}\n"
                                  "  b: {retry: *r}\n",
                                  &err);
    REQUIRE(doc);
    const struct sl_cfg_node *ra =
        sl_cfg_get(sl_cfg_get(sl_cfg_get(doc->root, "sinks"), "a"), "retry");
    const struct sl_cfg_node *rb =
        sl_cfg_get(sl_cfg_get(sl_cfg_get(doc->root, "sinks"), "b"), "retry");
    REQUIRE(ra && rb && ra != rb);
    CHECK_STR(ra->keypath, "sinks.a.retry");
    CHECK_STR(rb->keypath, "sinks.b.retry");
    int64_t n = 0;
    CHECK_INT(sl_cfg_get_int(rb, "max_attempts", 1, &n, &err), SL_OK);
    CHECK_INT(n, 3);
    /* The anchor's position: where the values were written. */
    CHECK_INT(ra->line, 1);
    sl_cfg_destroy(doc);

    /* Exponential alias expansion is refused. */
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_buf_puts(&b, "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for (int i = 1; i < 12; i++)
        sl_buf_printf(&b, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i,
                      i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
    struct sl_cfg_doc *d2 = NULL;
    CHECK_INT(sl_cfg_load_string(b.data, b.len, "bomb.yaml", ".", &d2, &err), SL_ECONFIG);
    CHECK(strstr(err.msg, "more than 200000 values (after expanding aliases)") != NULL);
    CHECK(d2 == NULL);
    sl_buf_fini(&b);

    CHECK(load("a: &x [1, *x]\n", &err) == NULL);
    CHECK_INT(err.rc, SL_ECONFIG);
    CHECK(load("a: *nothing\n", &err) == NULL);
    CHECK_INT(err.rc, SL_ECONFIG);
}

static void test_syntax_errors(void)
{
    struct sl_error err;
    CHECK(load("a: 1\nb: [1, 2\n", &err) == NULL);
    CHECK_INT(err.rc, SL_ECONFIG);
    CHECK(strncmp(err.msg, "p.yaml:3:1: ", 12) == 0);
    CHECK(load("a: 1\n  b: 2\n", &err) == NULL);
    CHECK_STR(err.msg, "p.yaml:2:4: mapping values are not allowed in this context");
    CHECK(load("a: 1\nb: 2\na: 3\n", &err) == NULL);
    CHECK_STR(err.msg,
              "p.yaml:3:1: duplicate key \"a\" (first written at line 1); remove one of them");
    CHECK(load("s:\n  x: 1\n  y: 2\n  x: 3\n", &err) == NULL);
    CHECK_STR(err.msg, "p.yaml:4:3: duplicate key \"x\" in s (first written at line 2); "
                       "remove one of them");
    CHECK(load("? [a]\n: 1\n", &err) == NULL);
    CHECK_STR(err.msg, "p.yaml:1:3: keys must be plain names, not lists");
    CHECK(load("a: \"x\\0y\"\n", &err) == NULL);
    CHECK_STR(err.msg, "p.yaml:1:4: a: value contains a NUL character");

    /* A big map with a duplicate far apart (the sorted path). */
    struct sl_buf b;
    sl_buf_init(&b, 0);
    for (int i = 0; i < 100; i++)
        sl_buf_printf(&b, "k%d: %d\n", i, i);
    sl_buf_puts(&b, "k7: again\n");
    struct sl_cfg_doc *d = NULL;
    CHECK_INT(sl_cfg_load_string(b.data, b.len, "big.yaml", ".", &d, &err), SL_ECONFIG);
    CHECK_STR(err.msg,
              "big.yaml:101:1: duplicate key \"k7\" (first written at line 8); remove one of "
              "them");
    sl_buf_fini(&b);

    /* Deep nesting is refused. */
    sl_buf_init(&b, 0);
    for (int i = 0; i < 200; i++)
        sl_buf_putc(&b, '[');
    for (int i = 0; i < 200; i++)
        sl_buf_putc(&b, ']');
    CHECK_INT(sl_cfg_load_string(b.data, b.len, "deep.yaml", ".", &d, &err), SL_ECONFIG);
    CHECK(strstr(err.msg, "nested more than 128 levels deep") != NULL);
    sl_buf_fini(&b);

    /* Empty documents load with no root. */
    struct sl_cfg_doc *e = load("", &err);
    REQUIRE(e);
    CHECK(e->root == NULL);
    sl_cfg_destroy(e);
    e = load("# only a comment\n", &err);
    REQUIRE(e);
    CHECK(e->root == NULL);
    sl_cfg_destroy(e);
}

static void test_parsers(void)
{
    uint64_t v = 0;
    CHECK_INT(sl_parse_duration("250ms", &v), 0);
    CHECK_INT(v, 250);
    CHECK_INT(sl_parse_duration("30s", &v), 0);
    CHECK_INT(v, 30000);
    CHECK_INT(sl_parse_duration("5m", &v), 0);
    CHECK_INT(v, 300000);
    CHECK_INT(sl_parse_duration("2h", &v), 0);
    CHECK_INT(v, 7200000);
    CHECK_INT(sl_parse_duration("1d", &v), 0);
    CHECK_INT(v, 86400000);
    CHECK_INT(sl_parse_duration("1.5s", &v), 0);
    CHECK_INT(v, 1500);
    CHECK_INT(sl_parse_duration(".25h", &v), 0);
    CHECK_INT(v, 900000);
    CHECK_INT(sl_parse_duration("0", &v), 0);
    CHECK_INT(v, 0);
    CHECK_INT(sl_parse_duration("10 s", &v), 0);
    CHECK_INT(v, 10000);
    v = 42;
    CHECK_INT(sl_parse_duration("30", &v), -1);
    CHECK_INT(sl_parse_duration("30 seconds", &v), -1);
    CHECK_INT(sl_parse_duration("-1s", &v), -1);
    CHECK_INT(sl_parse_duration("1.s", &v), -1);
    CHECK_INT(sl_parse_duration("s", &v), -1);
    CHECK_INT(sl_parse_duration("", &v), -1);
    CHECK_INT(sl_parse_duration("99999999999999999999s", &v), -1);
    CHECK_INT(sl_parse_duration("999999999999999d", &v), -1);
    CHECK_INT(v, 42);

    CHECK_INT(sl_parse_size("512", &v), 0);
    CHECK_INT(v, 512);
    CHECK_INT(sl_parse_size("512B", &v), 0);
    CHECK_INT(v, 512);
    CHECK_INT(sl_parse_size("64KiB", &v), 0);
    CHECK_INT(v, 65536);
    CHECK_INT(sl_parse_size("256MiB", &v), 0);
    CHECK_INT(v, 256ull << 20);
    CHECK_INT(sl_parse_size("1GiB", &v), 0);
    CHECK_INT(v, 1ull << 30);
    CHECK_INT(sl_parse_size("2KB", &v), 0);
    CHECK_INT(v, 2000);
    CHECK_INT(sl_parse_size("3MB", &v), 0);
    CHECK_INT(v, 3000000);
    CHECK_INT(sl_parse_size("1GB", &v), 0);
    CHECK_INT(v, 1000000000);
    CHECK_INT(sl_parse_size("1.5KiB", &v), 0);
    CHECK_INT(v, 1536);
    CHECK_INT(sl_parse_size("1.5", &v), -1);
    CHECK_INT(sl_parse_size("big", &v), -1);
    CHECK_INT(sl_parse_size("10 parsecs", &v), -1);
    CHECK_INT(sl_parse_size("99999999999GiB", &v), -1);

    int b = 7;
    CHECK_INT(sl_parse_bool("true", &b), 0);
    CHECK_INT(b, 1);
    CHECK_INT(sl_parse_bool("Off", &b), 0);
    CHECK_INT(b, 0);
    CHECK_INT(sl_parse_bool("yes", &b), 0);
    CHECK_INT(b, 1);
    CHECK_INT(sl_parse_bool("no", &b), 0);
    CHECK_INT(b, 0);
    CHECK_INT(sl_parse_bool("maybe", &b), -1);
    CHECK_INT(sl_parse_bool("1", &b), -1);
}

static void test_getters(void)
{
    struct sl_error err;
    struct sl_cfg_doc *doc = load("n: 42\nneg: -3\nbad: 4x\nhuge: 99999999999999999999\n"
                                  "t: yes\nbf: perhaps\nsz: 64KiB\nbsz: lots\nd: 250ms\n"
                                  "m: {a: 1}\nl: [1]\np: data/x.ndjson\nabs: /var/x\nq: \"7\"\n"
                                  "dot: ./y\nempty: \"\"\n",
                                  &err);
    REQUIRE(doc);
    const struct sl_cfg_node *r = doc->root;
    int64_t i = 0;
    CHECK_INT(sl_cfg_get_int(r, "n", 0, &i, &err), SL_OK);
    CHECK_INT(i, 42);
    CHECK_INT(sl_cfg_get_int(r, "neg", 0, &i, &err), SL_OK);
    CHECK_INT(i, -3);
    CHECK_INT(sl_cfg_get_int(r, "q", 0, &i, &err), SL_OK);
    CHECK_INT(i, 7);
    CHECK_INT(sl_cfg_get_int(r, "absent", 9, &i, &err), SL_OK);
    CHECK_INT(i, 9);
    CHECK_INT(sl_cfg_get_int(r, "bad", 0, &i, &err), SL_ECONFIG);
    CHECK_STR(err.msg, "p.yaml:3:6: bad: \"4x\" is not an integer; write it like 10 or -3");
    CHECK_INT(sl_cfg_get_int(r, "huge", 0, &i, &err), SL_ECONFIG);
    CHECK_INT(sl_cfg_get_int(r, "m", 0, &i, &err), SL_ECONFIG);
    CHECK_STR(err.msg, "p.yaml:10:4: m: expected an integer, found a map");
    CHECK_INT(sl_cfg_get_int(r, "l", 0, &i, &err), SL_ECONFIG);
    CHECK_STR(err.msg, "p.yaml:11:4: l: expected an integer, found a list");

    int b = 0;
    CHECK_INT(sl_cfg_get_bool(r, "t", 0, &b, &err), SL_OK);
    CHECK_INT(b, 1);
    CHECK_INT(sl_cfg_get_bool(r, "absent", 1, &b, &err), SL_OK);
    CHECK_INT(b, 1);
    CHECK_INT(sl_cfg_get_bool(r, "bf", 0, &b, &err), SL_ECONFIG);
    CHECK_STR(err.msg, "p.yaml:6:5: bf: \"perhaps\" is not a boolean; write true or false");

    uint64_t u = 0;
    CHECK_INT(sl_cfg_get_size(r, "sz", 0, &u, &err), SL_OK);
    CHECK_INT(u, 65536);
    CHECK_INT(sl_cfg_get_size(r, "absent", 5, &u, &err), SL_OK);
    CHECK_INT(u, 5);
    CHECK_INT(sl_cfg_get_size(r, "bsz", 0, &u, &err), SL_ECONFIG);
    CHECK_STR(err.msg,
              "p.yaml:8:6: bsz: \"lots\" is not a size; write it like 512, 64KiB, 256MiB or 1GiB");
    CHECK_INT(sl_cfg_get_duration(r, "d", 0, &u, &err), SL_OK);
    CHECK_INT(u, 250);

    const char *p = NULL;
    CHECK_INT(sl_cfg_get_path(doc, r, "p", NULL, &p, &err), SL_OK);
    CHECK_STR(p, "/etc/sl/data/x.ndjson");
    CHECK_INT(sl_cfg_get_path(doc, r, "abs", NULL, &p, &err), SL_OK);
    CHECK_STR(p, "/var/x");
    CHECK_INT(sl_cfg_get_path(doc, r, "dot", NULL, &p, &err), SL_OK);
    CHECK_STR(p, "/etc/sl/y");
    CHECK_INT(sl_cfg_get_path(doc, r, "absent", "out/z", &p, &err), SL_OK);
    CHECK_STR(p, "/etc/sl/out/z");
    CHECK_INT(sl_cfg_get_path(doc, r, "absent", NULL, &p, &err), SL_OK);
    CHECK(p == NULL);
    CHECK_INT(sl_cfg_get_path(doc, r, "empty", NULL, &p, &err), SL_ECONFIG);
    CHECK_STR(err.msg, "p.yaml:16:8: empty: the path is empty");

    CHECK_INT(sl_cfg_error(&err, sl_cfg_get(r, "m"), "bad %s", "thing"), SL_ECONFIG);
    CHECK_STR(err.msg, "p.yaml:10:4: bad thing");
    CHECK_INT(err.rc, SL_ECONFIG);
    sl_cfg_destroy(doc);

    struct sl_arena a;
    sl_arena_init(&a, 0);
    CHECK_STR(sl_cfg_resolve_path(&a, "/a/b/", "c"), "/a/b/c");
    CHECK_STR(sl_cfg_resolve_path(&a, "/a", "/c"), "/c");
    CHECK_STR(sl_cfg_resolve_path(&a, ".", "c"), "c");
    CHECK_STR(sl_cfg_resolve_path(&a, "/a", "./"), "/a");
    sl_arena_fini(&a);
}

static void test_suggest(void)
{
    static const char *const keys[] = {"path", "format", "follow", "type", "inputs"};
    CHECK_STR(sl_suggest("pth", keys, 5), "path");
    CHECK_STR(sl_suggest("paht", keys, 5), "path");
    CHECK_STR(sl_suggest("Path", keys, 5), "path");
    CHECK_STR(sl_suggest("fromat", keys, 5), "format");
    CHECK_STR(sl_suggest("input", keys, 5), "inputs");
    CHECK_STR(sl_suggest("folow", keys, 5), "follow");
    CHECK(sl_suggest("table", keys, 5) == NULL);
    CHECK(sl_suggest("x", keys, 5) == NULL);
    CHECK(sl_suggest("completely_different", keys, 5) == NULL);
    CHECK(sl_suggest("pth", keys, 0) == NULL);
    CHECK(sl_suggest(NULL, keys, 5) == NULL);
}

static void test_file_load(void)
{
    struct sl_error err;
    struct sl_cfg_doc *doc = NULL;
    CHECK_INT(sl_cfg_load("/nonexistent/dir/p.yaml", &doc, &err), SL_ENOENT);
    CHECK(strstr(err.msg, "cannot open /nonexistent/dir/p.yaml") != NULL);
    CHECK(doc == NULL);

    char dir[] = "/tmp/sl_cfg_XXXXXX";
    REQUIRE(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/p.yaml", dir);
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    fputs("pipeline: x\nsinks: {o: {path: out.ndjson}}\n", f);
    fclose(f);
    CHECK_INT(sl_cfg_load(path, &doc, &err), SL_OK);
    REQUIRE(doc);
    CHECK_STR(doc->path, path);
    CHECK_STR(doc->dir, dir);
    const char *p = NULL;
    CHECK_INT(sl_cfg_get_path(doc, sl_cfg_get(sl_cfg_get(doc->root, "sinks"), "o"), "path", NULL,
                              &p, &err),
              SL_OK);
    char want[300];
    snprintf(want, sizeof want, "%s/out.ndjson", dir);
    CHECK_STR(p, want);
    sl_cfg_destroy(doc);
    unlink(path);
    rmdir(dir);
}

static void test_alloc_failures(void)
{
    /* Every allocation failure is reported as SL_ENOMEM, never a crash or a leak. */
    const char *text = "pipeline: x\nsources:\n  a: {type: file, path: \"${HOME:-h}/x\"}\n"
                       "b: &q [1, 2, {c: d}]\nc: *q\n";
    int saw_ok = 0;
    for (long n = 1; n < 400 && !saw_ok; n++) {
        struct sl_error err;
        struct sl_cfg_doc *doc = NULL;
        sl_alloc_fail_at(n);
        sl_rc rc = sl_cfg_load_string(text, strlen(text), "f.yaml", ".", &doc, &err);
        sl_alloc_fail_at(0);
        if (rc == SL_OK) {
            saw_ok = 1;
            CHECK(doc && doc->root);
        } else {
            CHECK_INT(rc, SL_ENOMEM);
            CHECK(doc == NULL);
        }
        sl_cfg_destroy(doc);
    }
    CHECK(saw_ok);
}

int main(void)
{
    RUN(test_positions);
    RUN(test_nulls_and_quotes);
    RUN(test_env);
    RUN(test_anchors);
    RUN(test_syntax_errors);
    RUN(test_parsers);
    RUN(test_getters);
    RUN(test_suggest);
    RUN(test_file_load);
    RUN(test_alloc_failures);
    return TEST_DONE();
}
