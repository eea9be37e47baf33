/*
 * test_pipeline.c - loading and validating pipeline files (src/core/pipeline.c) against
 * the built-in plugins: file/stdin sources, filter/map/route transforms, file/sqlite/stdout
 * sinks. Every error is asserted with its exact message and position.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sluice/alloc.h"
#include "sluice/buf.h"
#include "sluice/pipeline.h"
#include "test.h"

static char tmpdir[PATH_MAX];

/* Write text to p.yaml in the test directory (the cwd) and load it. */
static sl_rc load(const char *text, struct sl_pipeline **p, struct sl_error *err)
{
    FILE *f = fopen("p.yaml", "w");
    if (!f)
        return SL_EIO;
    fputs(text, f);
    /*
     * Most cases read stdin, which cannot resume, so exactly-once (the default) would add a
     * problem to every expected message. Cases that do not choose a delivery mode get
     * at_least_once on a last line of their own, which moves no line or column.
     */
    if (text[0] && text[0] != '-' && !strstr(text, "delivery:") && text[strlen(text) - 1] == '\n')
        fputs("delivery: at_least_once\n", f);
    fclose(f);
    *p = NULL;
    sl_error_clear(err);
    return sl_pipeline_load("p.yaml", p, err);
}

/* Load text expecting failure; err.msg holds the problems. */
static const char *fails(const char *text, struct sl_error *err)
{
    struct sl_pipeline *p = NULL;
    sl_rc rc = load(text, &p, err);
    if (rc != SL_ECONFIG) {
        fprintf(stderr, "expected SL_ECONFIG, got %s\n", sl_rc_name(rc));
        sl_pipeline_destroy(p);
        return "(no error)";
    }
    if (p)
        return "(pipeline returned on failure)";
    return err->msg;
}

static const char *const good =
    "pipeline: clicks_to_warehouse\n"                                          /* 1 */
    "delivery: at_least_once\n"                                                /* 2 */
    "batch: {max_records: 500, max_bytes: 64KiB}\n"                            /* 3 */
    "queue: {max_batches: 8, max_bytes: 4MiB}\n"                               /* 4 */
    "json: {max_depth: 64}\n"                                                  /* 5 */
    "sources:\n"                                                               /* 6 */
    "  clicks: {type: file, path: data/clicks.ndjson, format: ndjson}\n"       /* 7 */
    "  more: {type: stdin}\n"                                                  /* 8 */
    "transforms:\n"                                                            /* 9 */
    "  buys: {type: filter, inputs: [split.purchase], where: 'amount > 10'}\n" /* 10 */
    "  enrich:\n"                                                              /* 11 */
    "    type: map\n"                                                          /* 12 */
    "    inputs: [clicks, more]\n"                                             /* 13 */
    "    workers: 3\n"                                                         /* 14 */
    "    set: {cents: \"round(amount * 100)\"}\n"                              /* 15 */
    "    drop: referrer\n"                                                     /* 16 */
    "  split:\n"                                                               /* 17 */
    "    type: route\n"                                                        /* 18 */
    "    inputs: enrich\n"                                                     /* 19 */
    "    route: {purchase: 'event_type == \"purchase\"', view: 'event_type == \"view\"'}\n"
    "sinks:\n" /* 21 */
    "  warehouse: {type: sqlite, inputs: [enrich], path: w.db, table: clicks, key: id}\n"
    "  purchases: {type: file, inputs: [buys], path: out/p.ndjson}\n"   /* 23 */
    "  rest: {type: stdout, inputs: [split._unmatched, split.view]}\n"; /* 24 */

static void test_good(void)
{
    struct sl_pipeline *p = NULL;
    struct sl_error err;
    sl_rc rc = load(good, &p, &err);
    CHECK_INT(rc, SL_OK);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    REQUIRE(p);
    CHECK_STR(p->name, "clicks_to_warehouse");
    CHECK_STR(p->path, "p.yaml");
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s/.sluice/clicks_to_warehouse", tmpdir);
    CHECK_STR(p->state_dir, want);
    CHECK_INT(p->exactly_once, 0);
    CHECK_INT(p->batch.max_records, 500);
    CHECK_INT(p->batch.max_bytes, 65536);
    CHECK_INT(p->queue_max_batches, 8);
    CHECK_INT(p->queue_max_bytes, 4u << 20);
    CHECK_INT(p->max_depth, 64);
    CHECK(p->admin_listen == NULL);
    REQUIRE(p->ncomp == 8);
    CHECK_INT(p->nsources, 2);
    /* sources, transforms in topological order (enrich, split, buys), sinks */
    static const char *const order[] = {"clicks", "more",      "enrich",    "split",
                                        "buys",   "warehouse", "purchases", "rest"};
    for (size_t i = 0; i < 8; i++) {
        CHECK_STR(p->comp[i].name, order[i]);
        CHECK_INT(sl_pipeline_find(p, order[i]), (int)i);
    }
    CHECK_INT(sl_pipeline_find(p, "nope"), -1);
    CHECK_INT(p->comp[0].kind, SL_PLUGIN_SOURCE);
    CHECK_STR(p->comp[0].plugin->name, "file");
    CHECK_INT(p->comp[0].ninputs, 0);
    CHECK_INT(p->comp[0].noutputs, 1);
    CHECK(p->comp[0].outputs == NULL);
    CHECK_INT(p->comp[0].node->line, 7);

    const struct sl_component *enrich = &p->comp[2];
    CHECK_INT(enrich->kind, SL_PLUGIN_TRANSFORM);
    CHECK_INT(enrich->workers, 3);
    REQUIRE(enrich->ninputs == 2);
    CHECK_STR(enrich->inputs[0].text, "clicks");
    CHECK_INT(enrich->inputs[0].comp, 0);
    CHECK_INT(enrich->inputs[1].comp, 1);
    CHECK_INT(enrich->inputs[1].output, 0);

    const struct sl_component *split = &p->comp[3];
    CHECK_INT(split->workers, 1);
    REQUIRE(split->noutputs == 3 && split->outputs);
    CHECK_STR(split->outputs[0], "purchase");
    CHECK_STR(split->outputs[1], "view");
    CHECK_STR(split->outputs[2], "_unmatched");
    REQUIRE(split->ninputs == 1);
    CHECK_STR(split->inputs[0].text, "enrich");
    CHECK_INT(split->inputs[0].comp, 2);

    const struct sl_component *buys = &p->comp[4];
    REQUIRE(buys->ninputs == 1);
    CHECK_STR(buys->inputs[0].text, "split.purchase");
    CHECK_INT(buys->inputs[0].comp, 3);
    CHECK_INT(buys->inputs[0].output, 0);

    const struct sl_component *rest = &p->comp[7];
    CHECK_INT(rest->kind, SL_PLUGIN_SINK);
    REQUIRE(rest->ninputs == 2);
    CHECK_INT(rest->inputs[0].comp, 3);
    CHECK_INT(rest->inputs[0].output, 2);
    CHECK_INT(rest->inputs[1].output, 1);
    CHECK_INT(p->comp[5].inputs[0].comp, 2);
    sl_pipeline_destroy(p);
}

static void test_defaults(void)
{
    struct sl_pipeline *p = NULL;
    struct sl_error err;
    CHECK_INT(load("pipeline: tiny\n"
                   "state_dir: /var/lib/sluice/tiny\n"
                   "sources: {in: {type: file, path: in.ndjson}}\n"
                   "sinks: {out: {type: stdout, inputs: in}}\n"
                   "# delivery: left at its default\n",
                   &p, &err),
              SL_OK);
    REQUIRE(p);
    CHECK_STR(p->state_dir, "/var/lib/sluice/tiny");
    CHECK_INT(p->exactly_once, 1);
    CHECK_INT(p->batch.max_records, 1024);
    CHECK_INT(p->batch.max_bytes, 1u << 20);
    CHECK_INT(p->queue_max_batches, 4);
    CHECK_INT(p->queue_max_bytes, 16u << 20);
    CHECK_INT(p->max_depth, 128);
    CHECK_INT(p->ncomp, 2);
    CHECK_INT(p->nsources, 1);
    CHECK_INT(p->comp[1].inputs[0].comp, 0);
    CHECK_INT(p->comp[1].workers, 1);
    sl_pipeline_destroy(p);

    CHECK_INT(load("pipeline: rel\nstate_dir: st\ntransforms:\n"
                   "sources: {in: {type: stdin}}\nsinks: {out: {type: stdout, inputs: in}}\n",
                   &p, &err),
              SL_OK);
    REQUIRE(p);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s/st", tmpdir);
    CHECK_STR(p->state_dir, want);
    sl_pipeline_destroy(p);
}

static void test_stdin_needs_at_least_once(void)
{
    struct sl_error err;
    CHECK_STR(fails("pipeline: x\n"
                    "sources: {in: {type: stdin}}\n"
                    "sinks: {out: {type: stdout, inputs: in}}\n"
                    "delivery: exactly_once\n",
                    &err),
              "p.yaml:2:22: sources.in: a stdin source cannot resume after a restart, so "
              "delivery: exactly_once (the default) cannot be kept; set `delivery: "
              "at_least_once` at the top of the file");
    struct sl_pipeline *p = NULL;
    CHECK_INT(load("pipeline: x\n"
                   "sources: {in: {type: stdin}}\n"
                   "sinks: {out: {type: stdout, inputs: in}}\n"
                   "delivery: at_least_once\n",
                   &p, &err),
              SL_OK);
    REQUIRE(p);
    CHECK_INT(p->exactly_once, 0);
    sl_pipeline_destroy(p);
}

static void test_top_level(void)
{
    struct sl_error err;
    CHECK_STR(fails("pipeline: x\n"
                    "sorces: {in: {type: stdin}}\n"
                    "admin: {listen: 127.0.0.1:9464}\n" /* valid */
                    "quality: []\n"
                    "frobnicate: 1\n"
                    "sinks: {out: {type: stdout, inputs: in}}\n",
                    &err),
              "p.yaml:1:1: missing required top-level key \"sources\" (where records come from)\n"
              "p.yaml:2:1: unknown top-level key \"sorces\"; did you mean \"sources\"?\n"
              "p.yaml:5:1: unknown top-level key \"frobnicate\"; expected one of pipeline, "
              "state_dir, delivery, sources, transforms, sinks, batch, queue, json, "
              "memory_limit, dlq, admin, quality\n"
              "p.yaml:6:37: sinks.out.inputs: \"in\" names no source or transform");
    CHECK_STR(fails("", &err), "p.yaml:1:1: the file is empty; a pipeline needs at least "
                               "\"pipeline:\", \"sources:\" and \"sinks:\"");
    CHECK_STR(fails("- a\n- b\n", &err),
              "p.yaml:1:1: expected a map of top-level keys (pipeline, sources, sinks, ...), "
              "found a list");
    CHECK_STR(
        fails("sources: {in: {type: stdin}}\nsinks: {out: {type: stdout, inputs: in}}\n", &err),
        "p.yaml:1:1: missing required top-level key \"pipeline\" (the pipeline's name, "
        "like pipeline: clicks_to_warehouse)");
    CHECK_STR(fails("pipeline: my pipe\ndelivery: exactly_onse\nbatch: {max_records: 0, "
                    "max_byte: 1}\nqueue: {max_batches: lots, max_bytes: 1TiB}\n"
                    "json: [1]\nsources: {in: {type: stdin}}\n"
                    "sinks: {out: {type: stdout, inputs: in}}\n",
                    &err),
              "p.yaml:1:11: pipeline: \"my pipe\" is not a valid name; use letters, digits, _ "
              "and - (at most 128)\n"
              "p.yaml:2:11: delivery: \"exactly_onse\" is not one of exactly_once, "
              "at_least_once; did you mean \"exactly_once\"?\n"
              "p.yaml:3:25: unknown key \"max_byte\" in batch; did you mean \"max_bytes\"?\n"
              "p.yaml:4:22: queue.max_batches: \"lots\" is not an integer; write it like 10 "
              "or -3\n"
              "p.yaml:5:7: json: expected a map, found a list");
    CHECK_STR(fails("pipeline: x\nbatch: {max_records: 0}\nqueue: {max_bytes: 1TiB}\n"
                    "sources: {in: {type: stdin}}\nsinks: {out: {type: stdout, inputs: in}}\n",
                    &err),
              "p.yaml:2:22: batch.max_records: 0 is out of range; use 1 to 1000000\n"
              "p.yaml:3:20: queue.max_bytes: 1TiB is out of range; use 1 byte to 64GiB");
    CHECK_STR(fails("pipeline: x\nsources:\nsinks: []\n", &err),
              "p.yaml:2:1: sources: at least one source is needed\n"
              "p.yaml:3:8: sinks: expected a map of component names to components, found a "
              "list");
}

static void test_components(void)
{
    struct sl_error err;
    CHECK_STR(fails("pipeline: x\n"                                            /* 1 */
                    "sources:\n"                                               /* 2 */
                    "  in: {type: fil, path: a}\n"                             /* 3 */
                    "  in2: {type: filter, inputs: [in]}\n"                    /* 4 */
                    "  in3: {path: a}\n"                                       /* 5 */
                    "  in4: {type: file, pth: a, format: nd, follow: maybe}\n" /* 6 */
                    "  in5: [1]\n"                                             /* 7 */
                    "transforms:\n"                                            /* 8 */
                    "  t: {type: filter, workers: 65}\n"                       /* 9 */
                    "sinks:\n"                                                 /* 10 */
                    "  out: {type: sqlite, inputs: in, path: '', workers: 2}\n",
                    &err),
              "p.yaml:3:14: sources.in.type: unknown source type \"fil\"; did you mean "
              "\"file\"?\n"
              "p.yaml:4:3: sources.in2: nothing reads from \"in2\"; add it to the inputs of a "
              "transform or sink, or remove it\n"
              "p.yaml:4:15: sources.in2.type: \"filter\" is a transform type, not a source "
              "type; move it under transforms: or use one of file, stdin, postgres, http, nats, "
              "kafka\n"
              "p.yaml:4:31: sources.in2.inputs: a source does not take inputs; remove it\n"
              "p.yaml:5:3: sources.in3: missing required key \"type\" (source types: file, "
              "stdin, postgres, http, nats, kafka)\n"
              "p.yaml:5:3: sources.in3: nothing reads from \"in3\"; add it to the inputs of a "
              "transform or sink, or remove it\n"
              "p.yaml:6:3: sources.in4: missing required key \"path\" for source type "
              "\"file\"\n"
              "p.yaml:6:3: sources.in4: nothing reads from \"in4\"; add it to the inputs of a "
              "transform or sink, or remove it\n"
              "p.yaml:6:21: unknown key \"pth\" in sources.in4; did you mean \"path\"?\n"
              "p.yaml:6:37: sources.in4.format: \"nd\" is not one of ndjson, csv\n"
              "p.yaml:6:49: sources.in4.follow: \"maybe\" is not a boolean; write true or "
              "false\n"
              "p.yaml:7:8: sources.in5: expected a map with a \"type\" key, found a list\n"
              "p.yaml:9:3: transforms.t: missing required key \"inputs\" (the names of the "
              "components it reads from)\n"
              "p.yaml:9:3: transforms.t: missing required key \"where\" for transform type "
              "\"filter\"\n"
              "p.yaml:9:3: transforms.t: nothing reads from \"t\"; add it to the inputs of a "
              "transform or sink, or remove it\n"
              "p.yaml:9:30: transforms.t.workers: 65 is out of range; use 1 to 64\n"
              "p.yaml:11:3: sinks.out: missing required key \"table\" for sink type "
              "\"sqlite\"\n"
              "p.yaml:11:41: sinks.out.path: the path is empty\n"
              "p.yaml:11:54: sinks.out.workers: only transforms take workers; remove it");
}

static void test_components2(void)
{
    struct sl_error err;
    /* One problem per kind of mistake in component options. */
    CHECK_STR(fails("pipeline: x\n"
                    "sources:\n"
                    "  in: {type: file, pth: a, format: nd, follow: maybe, poll_interval: 5 "
                    "minutes}\n"
                    "sinks:\n"
                    "  out: {type: file, inputs: [in], path: o, fsync: 1}\n",
                    &err),
              "p.yaml:3:3: sources.in: missing required key \"path\" for source type \"file\"\n"
              "p.yaml:3:20: unknown key \"pth\" in sources.in; did you mean \"path\"?\n"
              "p.yaml:3:36: sources.in.format: \"nd\" is not one of ndjson, csv\n"
              "p.yaml:3:48: sources.in.follow: \"maybe\" is not a boolean; write true or "
              "false\n"
              "p.yaml:3:70: sources.in.poll_interval: \"5 minutes\" is not a duration; write "
              "it like 250ms, 30s, 5m or 2h\n"
              "p.yaml:5:51: sinks.out.fsync: \"1\" is not a boolean; write true or false");
    CHECK_STR(fails("pipeline: x\n"
                    "sources:\n"
                    "  in: {type: file, path: a, columns: {a: 1}, types: [int]}\n"
                    "  in2: [1]\n"
                    "  in3: {type: file, path: ~, max_record_bytes: huge}\n"
                    "transforms:\n"
                    "  t: {type: map, inputs: [in, in3], workers: 65, drop: [a, {b: 1}], "
                    "rename: {a: [b]}, bogus: 1}\n"
                    "  u: {type: filter, workers: 0}\n"
                    "sinks:\n"
                    "  out: {type: sqlite, inputs: [t], path: '', table: t, workers: 2}\n",
                    &err),
              "p.yaml:3:38: sources.in.columns: expected a list of strings, found a map\n"
              "p.yaml:3:53: sources.in.types: expected a map of names to strings, found a "
              "list\n"
              "p.yaml:4:8: sources.in2: expected a map with a \"type\" key, found a list\n"
              "p.yaml:5:27: sources.in3.path: expected a string, found null\n"
              "p.yaml:5:48: sources.in3.max_record_bytes: \"huge\" is not a size; write it "
              "like 512, 64KiB, 256MiB or 1GiB\n"
              "p.yaml:7:46: transforms.t.workers: 65 is out of range; use 1 to 64\n"
              "p.yaml:7:60: transforms.t.drop[1]: expected a string, found a map\n"
              "p.yaml:7:81: transforms.t.rename.a: expected a string, found a list\n"
              "p.yaml:7:87: unknown key \"bogus\" in transforms.t; expected one of type, "
              "inputs, workers, default, cast, set, rename, drop\n"
              "p.yaml:8:3: transforms.u: missing required key \"inputs\" (the names of the "
              "components it reads from)\n"
              "p.yaml:8:3: transforms.u: missing required key \"where\" for transform type "
              "\"filter\"\n"
              "p.yaml:8:3: transforms.u: nothing reads from \"u\"; add it to the inputs of a "
              "transform or sink, or remove it\n"
              "p.yaml:8:30: transforms.u.workers: 0 is out of range; use 1 to 64\n"
              "p.yaml:10:42: sinks.out.path: the path is empty\n"
              "p.yaml:10:65: sinks.out.workers: only transforms take workers; remove it");
}

static void test_expressions(void)
{
    struct sl_error err;
    /* The position is the scalar's column plus the compiler's offset (+1 for a quote). */
    const char *msg = fails("pipeline: x\n"
                            "sources: {in: {type: stdin}}\n"
                            "transforms:\n"
                            "  a: {type: filter, inputs: [in], where: 'amount > '}\n"
                            "  b: {type: filter, inputs: [a], where: amount >}\n"
                            "  c: {type: map, inputs: [b], set: {x: \"1 +\", y: ok(}}\n"
                            "  d: {type: filter, inputs: [c], where: {a: 1}}\n"
                            "sinks: {out: {type: stdout, inputs: d}}\n",
                            &err);
    /*
     * The texts after the key path come from the expression compiler; here the positions
     * matter: the scalar's column plus the compiler's offset, plus one for a quote.
     *   line 4: quote at 42, offset 9 (the end)    -> 52
     *   line 5: plain at 41, offset 8 (the end)    -> 49
     *   line 6: "1 +" quote at 40, offset 3 -> 44; ok( plain at 47, offset 0..3
     */
    CHECK(strncmp(msg, "p.yaml:4:52: transforms.a.where: ", 33) == 0);
    CHECK(strstr(msg, "\np.yaml:5:49: transforms.b.where: ") != NULL);
    CHECK(strstr(msg, "\np.yaml:6:44: transforms.c.set.x: ") != NULL);
    CHECK(strstr(msg, "\np.yaml:6:4") != NULL && strstr(msg, ": transforms.c.set.y: ") != NULL);
    CHECK(strstr(msg, "\np.yaml:7:41: transforms.d.where: expected an expression, found a "
                      "map") != NULL);
    /* Each line starts with the file name: one problem per line. */
    size_t lines = 1;
    for (const char *s = msg; *s; s++)
        lines += *s == '\n';
    CHECK_INT(lines, 5);
    for (const char *s = msg; s; s = strchr(s, '\n') ? strchr(s, '\n') + 1 : NULL)
        CHECK(strncmp(s, "p.yaml:", 7) == 0);

    /* An unknown function is reported on its first letter (the quote is at 53). */
    msg = fails("pipeline: x\nsources: {in: {type: stdin}}\n"
                "transforms: {a: {type: filter, inputs: [in], where: 'x && nosuchfn(1)'}}\n"
                "sinks: {out: {type: stdout, inputs: a}}\n",
                &err);
    CHECK(strncmp(msg, "p.yaml:3:59: transforms.a.where: ", 33) == 0);
    CHECK(strstr(msg, "nosuchfn") != NULL);
    CHECK(strchr(msg, '\n') == NULL);
}

static void test_graph(void)
{
    struct sl_error err;
    CHECK_STR(fails("pipeline: x\n"                                            /* 1 */
                    "sources:\n"                                               /* 2 */
                    "  in: {type: stdin}\n"                                    /* 3 */
                    "  idle: {type: stdin}\n"                                  /* 4 */
                    "transforms:\n"                                            /* 5 */
                    "  a: {type: filter, inputs: [in, c], where: 'true'}\n"    /* 6 */
                    "  b: {type: filter, inputs: [a], where: 'true'}\n"        /* 7 */
                    "  c: {type: filter, inputs: [b], where: 'true'}\n"        /* 8 */
                    "  r: {type: route, inputs: [in], route: {big: 'true'}}\n" /* 9 */
                    "  lonely: {type: filter, inputs: [in], where: 'true'}\n"  /* 10 */
                    "sinks:\n"                                                 /* 11 */
                    "  out: {type: stdout, inputs: [kep, out, r.bgi, a.x, r, in, in]}\n"
                    "  o2: {type: stdout, inputs: [c, r.nothing_like_it]}\n"
                    "  in: {type: stdout, inputs: [in]}\n",
                    &err),
              "p.yaml:4:3: sources.idle: nothing reads from \"idle\"; add it to the inputs of "
              "a transform or sink, or remove it\n"
              "p.yaml:6:3: transforms.a: inputs form a cycle: a -> b -> c -> a; a pipeline "
              "must flow one way\n"
              "p.yaml:10:3: transforms.lonely: nothing reads from \"lonely\"; add it to the "
              "inputs of a transform or sink, or remove it\n"
              "p.yaml:12:32: sinks.out.inputs[0]: \"kep\" names no source or transform; "
              "expected one of in, idle, a, b, c, r, lonely\n"
              "p.yaml:12:37: sinks.out.inputs[1]: \"out\" is a sink; sinks have no output to "
              "read\n"
              "p.yaml:12:42: sinks.out.inputs[2]: \"r\" has no output \"bgi\"; did you mean "
              "\"big\"?\n"
              "p.yaml:12:49: sinks.out.inputs[3]: \"a\" has no named outputs; write \"a\"\n"
              "p.yaml:12:54: sinks.out.inputs[4]: \"r\" has named outputs; read one of them, "
              "like \"r.big\" (outputs: big, _unmatched)\n"
              "p.yaml:12:61: sinks.out.inputs[6]: \"in\" is already listed\n"
              "p.yaml:13:34: sinks.o2.inputs[1]: \"r\" has no output \"nothing_like_it\"; "
              "expected one of big, _unmatched\n"
              "p.yaml:14:3: sinks.in: the name \"in\" is already used by sources.in (line 3); "
              "component names must be unique");
}

static void test_topo_and_suggest_input(void)
{
    struct sl_error err;
    struct sl_pipeline *p = NULL;
    /* Transforms written downstream-first still run upstream-first. */
    CHECK_INT(load("pipeline: x\n"
                   "sources: {in: {type: stdin}}\n"
                   "transforms:\n"
                   "  c: {type: filter, inputs: [b], where: 'true'}\n"
                   "  b: {type: filter, inputs: [a], where: 'true'}\n"
                   "  a: {type: filter, inputs: [in], where: 'true'}\n"
                   "  z: {type: filter, inputs: [in], where: 'true'}\n"
                   "sinks: {out: {type: stdout, inputs: [c, z]}}\n",
                   &p, &err),
              SL_OK);
    REQUIRE(p);
    CHECK_STR(p->comp[1].name, "a");
    CHECK_STR(p->comp[2].name, "b");
    CHECK_STR(p->comp[3].name, "c");
    CHECK_STR(p->comp[4].name, "z");
    CHECK_INT(p->comp[3].inputs[0].comp, 2);
    CHECK_INT(p->comp[5].inputs[0].comp, 3);
    CHECK_INT(p->comp[5].inputs[1].comp, 4);
    sl_pipeline_destroy(p);

    CHECK_STR(fails("pipeline: x\nsources: {clicks: {type: stdin}}\n"
                    "transforms: {t: {type: filter, inputs: [t], where: 'true'}}\n"
                    "sinks: {out: {type: stdout, inputs: [clicsk]}}\n",
                    &err),
              "p.yaml:2:11: sources.clicks: nothing reads from \"clicks\"; add it to the "
              "inputs of a transform or sink, or remove it\n"
              "p.yaml:3:14: transforms.t: inputs form a cycle: t -> t; a pipeline must flow "
              "one way\n"
              "p.yaml:4:38: sinks.out.inputs[0]: \"clicsk\" names no source or transform; did "
              "you mean \"clicks\"?");
}

static void test_yaml_errors(void)
{
    struct sl_error err;
    struct sl_pipeline *p = NULL;
    CHECK_INT(load("pipeline: x\nsources: {in: {type: stdin}\n", &p, &err), SL_ECONFIG);
    CHECK(strncmp(err.msg, "p.yaml:3:1: ", 12) == 0);
    CHECK(p == NULL);
    unsetenv("SLT_NOT_SET");
    CHECK_INT(load("pipeline: ${SLT_NOT_SET}\n", &p, &err), SL_ECONFIG);
    CHECK_STR(err.msg, "p.yaml:1:11: pipeline: environment variable SLT_NOT_SET is not set; set "
                       "it or write ${SLT_NOT_SET:-default}");
    CHECK_INT(sl_pipeline_load("does-not-exist.yaml", &p, &err), SL_ENOENT);
    CHECK(strstr(err.msg, "does-not-exist.yaml") != NULL);
    CHECK(p == NULL);
}

static void test_truncation(void)
{
    struct sl_error err;
    struct sl_buf b;
    sl_buf_init(&b, 0);
    sl_buf_puts(&b, "pipeline: x\nsources: {in: {type: stdin}}\nsinks:\n");
    for (int i = 0; i < 200; i++)
        sl_buf_printf(&b, "  s%03d: {type: stdout, inputs: [nothing_at_all_%d]}\n", i, i);
    sl_buf_cstr(&b);
    const char *msg = fails(b.data, &err);
    sl_buf_fini(&b);
    CHECK(strlen(msg) < SL_ERROR_MSG_MAX);
    const char *tail = strstr(msg, "\n... and ");
    REQUIRE(tail);
    CHECK(strstr(tail, " more problems") != NULL);
    /* Every line before the tail is a whole problem. */
    int whole = 0;
    for (const char *s = msg; s < tail; s = strchr(s, '\n') + 1) {
        CHECK(strncmp(s, "p.yaml:", 7) == 0);
        whole++;
    }
    int more = atoi(tail + 9);
    CHECK_INT(whole + more, 201); /* 200 bad inputs + the unread source */

    /* A first problem longer than the whole message is cut short, never hidden. */
    sl_buf_init(&b, 0);
    sl_buf_puts(&b, "pipeline: x\ndelivery: ");
    for (int i = 0; i < 3000; i++)
        sl_buf_putc(&b, 'k');
    sl_buf_puts(&b, "\nsources: {in: {type: stdin}}\nsinks: {out: {type: stdout, inputs: "
                    "[in]}}\nbogus: 1\n");
    sl_buf_cstr(&b);
    msg = fails(b.data, &err);
    sl_buf_fini(&b);
    CHECK(strncmp(msg, "p.yaml:2:11: delivery: \"kkkk", 28) == 0);
    CHECK(strlen(msg) > 2000 && strlen(msg) < SL_ERROR_MSG_MAX);
    tail = strstr(msg, "\n... and 1 more problem");
    CHECK(tail != NULL && strlen(tail) == strlen("\n... and 1 more problem"));
}

static void test_reference(void)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    CHECK_INT(sl_pipeline_doc_reference(&b), SL_OK);
    sl_buf_cstr(&b);
    REQUIRE(b.data);
    CHECK(strncmp(b.data, "# Configuration reference\n", 26) == 0);
    CHECK(
        strstr(
            b.data,
            "## Top-level keys\n\n| key | type | default | required | description | choices |\n") !=
        NULL);
    CHECK(strstr(b.data, "### source `file`\n\n") != NULL);
    CHECK(strstr(b.data, "| `delivery` | enum | `exactly_once` | no | ") != NULL);
    CHECK(strstr(b.data, "| `exactly_once`, `at_least_once` |\n") != NULL);
    CHECK(strstr(b.data, "| `max_records` | integer | `1024` | no | ") != NULL);
    CHECK(strstr(b.data, "## Keys of every component") != NULL);
    CHECK(strstr(b.data, "### source `file`") != NULL);
    CHECK(strstr(b.data, "### transform `route`") != NULL);
    CHECK(strstr(b.data, "Named outputs: each key of `route` is an output") != NULL);
    CHECK(strstr(b.data, "### sink `sqlite`") != NULL);
    CHECK(strstr(b.data, "| `where` | expression |  | yes | ") != NULL);
    CHECK(strstr(b.data, "| `table` | string |  | yes | ") != NULL);
    /* Sections in kind order. */
    const char *s = strstr(b.data, "## Sources"), *t = strstr(b.data, "## Transforms"),
               *k = strstr(b.data, "## Sinks");
    CHECK(s && t && k && s < t && t < k);
    sl_buf_fini(&b);
}

static void test_alloc_failures(void)
{
    int saw_ok = 0;
    FILE *f = fopen("p.yaml", "w");
    REQUIRE(f);
    fputs(good, f);
    fclose(f);
    for (long n = 1; n < 2000 && !saw_ok; n++) {
        struct sl_error err;
        struct sl_pipeline *p = NULL;
        sl_alloc_fail_at(n);
        sl_rc rc = sl_pipeline_load("p.yaml", &p, &err);
        sl_alloc_fail_at(0);
        if (rc == SL_OK) {
            saw_ok = 1;
            CHECK(p && p->ncomp == 8);
        } else {
            CHECK_INT(rc, SL_ENOMEM);
            CHECK(p == NULL);
        }
        sl_pipeline_destroy(p);
    }
    CHECK(saw_ok);
}

int main(void)
{
    char tmpl[] = "/tmp/sl_pipeline_XXXXXX";
    if (!mkdtemp(tmpl) || chdir(tmpl) != 0 || !realpath(".", tmpdir)) {
        perror("test directory");
        return 1;
    }
    RUN(test_good);
    RUN(test_defaults);
    RUN(test_stdin_needs_at_least_once);
    RUN(test_top_level);
    RUN(test_components);
    RUN(test_components2);
    RUN(test_expressions);
    RUN(test_graph);
    RUN(test_topo_and_suggest_input);
    RUN(test_yaml_errors);
    RUN(test_truncation);
    RUN(test_reference);
    RUN(test_alloc_failures);
    unlink("p.yaml");
    if (chdir("/") == 0)
        rmdir(tmpl);
    return TEST_DONE();
}
