/*
 * test_file_sink_commit.c - the file sink's commit protocol: manifest round trips, recovery
 * from every crash point we can produce (a real kill -9 of a child process at random
 * instants, plus the intermediate states of the commit sequence laid out by hand), the
 * record id field, reset, rewind, inspection and at_least_once; the commit cadence
 * (commit_interval, commit_bytes: fsyncs and manifest writes counted, committed() lagging
 * the appends, kill -9 between commits) and the refusal to start when the manifest is gone
 * but the sink's output is not.
 *
 * `test_file_sink_commit bench DIR [batches]` instead measures the sink's throughput with
 * fsync per batch in DIR (1024 records of ~230 bytes per batch) and prints it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sluice/alloc.h"
#include "sluice/batch.h"
#include "sluice/config.h"
#include "sluice/plugin.h"
#include "sluice/record.h"
#include "test.h"
#include "sink_fixture.h"

extern const struct sl_plugin sl_sink_file;

static int opt_exactly_once = 1, opt_inspect; /* what sink_open passes to init */

/* ---- counting the sink's fsyncs and manifest renames ------------------------------------ */

/*
 * The library is linked statically into this program, so these definitions take the place
 * of libc's for the sink's calls: they count, then do the real thing (the system call, or
 * renameat, which the sink does not use). The cadence tests read the counters.
 */
static long n_fsync, n_manifest_rename;

int fsync(int fd)
{
    n_fsync++;
    return (int)syscall(SYS_fsync, fd);
}

int rename(const char *from, const char *to)
{
    size_t n = strlen(to), m = strlen(".manifest");
    if (n >= m && strcmp(to + n - m, ".manifest") == 0)
        n_manifest_rename++;
    return renameat(AT_FDCWD, from, AT_FDCWD, to);
}

/* ---- helpers -------------------------------------------------------------------------- */

/*
 * A batch from NDJSON lines: record i gets line i + 1, offset 100 * i and id {seed, i}.
 * Every record is parsed. Lines that do not parse are left unparsed and rejected.
 */

/* Open with the delivery mode and inspect flag the test chose; commit every batch by default. */
static sl_rc sink_open(struct sink *k, const struct sl_plugin *p, const char *yaml)
{
    return fixture_open(k, p, yaml, opt_exactly_once, opt_inspect, 1);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* The manifest of sink "out" of pipeline "clicks_to_db" in directory rel. */
static const char *manifest_of(const char *rel)
{
    static char found[1024];
    found[0] = '\0';
    DIR *d = opendir(tpath(rel));
    if (!d)
        return found;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, ".sluice.out.", 12) == 0 &&
            strcmp(de->d_name + strlen(de->d_name) - 9, ".manifest") == 0)
            snprintf(found, sizeof found, "%s/%s", tpath(rel), de->d_name);
    closedir(d);
    return found;
}

static void append_file(const char *path, const char *content)
{
    FILE *f = fopen(path, "ab");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(content, f);
    fclose(f);
}

static char *committed_pos(struct sink *k, const char *source)
{
    static char buf[256];
    char *pos = NULL;
    if (k->p->committed(k->state, source, &pos, &k->err) != SL_OK)
        return strcpy(buf, "(error)");
    snprintf(buf, sizeof buf, "%s", pos ? pos : "(none)");
    sl_free(pos);
    return buf;
}

static const char *const B1[] = {"{\"n\":1}", "{\"n\":2}"};
static const char *const B2[] = {"{\"n\":3}"};

/*
 * Run in a child: open the sink with yaml, write B1 (position "p1") and B2 ("p2"), and
 * kill -9 itself before close, leaving the files as a crash would.
 */
static void crash_child(const char *yaml)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct sink k;
        if (sink_open(&k, &sl_sink_file, yaml) != SL_OK ||
            write_lines(&k, B1, N(B1), 0, "p1", 1) != SL_OK ||
            write_lines(&k, B2, N(B2), 0, "p2", 2) != SL_OK)
            _exit(3);
        kill(getpid(), SIGKILL);
        _exit(4);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL) {
        fprintf(stderr, "crash child ended with status %d\n", st);
        exit(1);
    }
}

/* ---- tests ------------------------------------------------------------------------------ */

static void t_positions_round_trip(void)
{
    struct sink k;
    const char *yaml = "path: c1/x.ndjson\nid_field: \"\"\n";
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK_STR(committed_pos(&k, "clicks"), "(none)");
    CHECK_INT(write_lines(&k, B1, N(B1), 0, "clicks.ndjson:100", 1), SL_OK);
    CHECK_INT(write_lines(&k, B2, N(B2), 1, "orders@7", 2), SL_OK);
    CHECK_INT(write_lines(&k, B2, N(B2), 0, "clicks.ndjson:\"quoted\"\\200", 3), SL_OK);
    CHECK_STR(committed_pos(&k, "clicks"), "clicks.ndjson:\"quoted\"\\200");
    sink_close(&k);
    const char *m = slurp(manifest_of("c1"));
    REQUIRE(m != NULL);
    static const char want[] =
        "{\"format\":1,\"pipeline\":\"clicks_to_db\",\"sink\":\"out\",\n"
        "\"in_progress\":null,\n\"finished_total\":1,\"finished\":[\n  \"x.ndjson\"],\n"
        "\"sources\":{\n  \"clicks\":{\"position\":\"clicks.ndjson:\\\"quoted\\\"\\\\200\","
        "\"records\":3,\"commit_ns\":";
    CHECK(strncmp(m, want, sizeof want - 1) == 0);
    if (strncmp(m, "{\"format\":1", 11) != 0)
        fprintf(stderr, "manifest: %s\n", m);
    CHECK(strstr(m, "\"orders\":{\"position\":\"orders@7\",\"records\":1,") != NULL);
    CHECK(strstr(m, "\"records\":4,\"commit_ns\":") != NULL);

    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK_STR(committed_pos(&k, "clicks"), "clicks.ndjson:\"quoted\"\\200");
    CHECK_STR(committed_pos(&k, "orders"), "orders@7");
    CHECK_STR(committed_pos(&k, "nobody"), "(none)");
    uint64_t recs = 9, ns = 9;
    CHECK_INT(k.p->commit_info(k.state, "clicks", &recs, &ns, &k.err), SL_OK);
    CHECK_INT(recs, 3);
    CHECK(ns > 1700000000ull * 1000000000ull);
    CHECK_INT(k.p->commit_info(k.state, "nobody", &recs, &ns, &k.err), SL_OK);
    CHECK_INT(recs, 0);
    CHECK_INT(ns, 0);
    sink_close(&k);
    CHECK_STR(slurp(tpath("c1/x.ndjson")), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":3}\n");

    /* A position that is not UTF-8 (a file name can be any bytes) round-trips as hex. */
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK_INT(write_lines(&k, B2, N(B2), 1, "in/caf\xe9.ndjson:9", 4), SL_OK);
    sink_close(&k);
    m = slurp(manifest_of("c1"));
    CHECK(m && strstr(m, "\"orders\":{\"position_hex\":\"696e2f636166e92e6e646a736f6e3a39\","));
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK_STR(committed_pos(&k, "orders"), "in/caf\xe9.ndjson:9");
    sink_close(&k);
}

/* Crash point: the next batch was appended (even fsynced) but the manifest not renamed. */
static void t_recover_tail_truncated(void)
{
    const char *yaml = "path: c2/x.ndjson\nid_field: \"\"\n";
    crash_child(yaml);
    CHECK(!exists(tpath("c2/x.ndjson")));
    char temp[1024];
    snprintf(temp, sizeof temp, "%s", temp_of("c2/x.ndjson"));
    CHECK_STR(slurp(temp), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
    append_file(temp, "{\"n\":4}\n{\"n\"");
    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK_STR(committed_pos(&k, "clicks"), "p2");
    CHECK_STR(slurp(temp), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
    /* The replayed batch continues the same file. */
    static const char *const b3[] = {"{\"n\":4}"};
    CHECK_INT(write_lines(&k, b3, 1, 0, "p3", 3), SL_OK);
    sink_close(&k);
    CHECK_STR(slurp(tpath("c2/x.ndjson")), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4}\n");
    CHECK_STR(temp_of("c2/x.ndjson"), "");
}

/* Crash point: an in-progress file exists that the manifest does not name. */
static void t_recover_unknown_temp_deleted(void)
{
    const char *yaml = "path: c3/x.ndjson\nid_field: \"\"\n";
    crash_child(yaml);
    char temp[1024], stray[1200], foreign[1200];
    snprintf(temp, sizeof temp, "%s", temp_of("c3/x.ndjson"));
    /* Same sink (same tag), another name: never committed. */
    const char *tag = temp + strlen(temp) - 19; /* XXXXXXXX.inprogress */
    snprintf(stray, sizeof stray, "%s/.x.7.ndjson.%s", tpath("c3"), tag);
    put_file(stray, "{\"n\":99}\n");
    /* Another sink's in-progress file (another tag) is not ours to delete. */
    snprintf(foreign, sizeof foreign, "%s/.y.ndjson.0badc0de.inprogress", tpath("c3"));
    put_file(foreign, "{\"n\":98}\n");
    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK(!exists(stray));
    CHECK(exists(foreign));
    CHECK_STR(slurp(temp), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
    sink_close(&k);
    CHECK_STR(slurp(tpath("c3/x.ndjson")), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
    CHECK(!exists(tpath("c3/x.7.ndjson")));
}

/* Crash point: the in-progress file was renamed to its final name, the manifest not yet. */
static void t_recover_rename_rolled_forward(void)
{
    const char *yaml = "path: c4/x.ndjson\nid_field: \"\"\n";
    crash_child(yaml);
    REQUIRE(rename(temp_of("c4/x.ndjson"), tpath("c4/x.ndjson")) == 0);
    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK_STR(committed_pos(&k, "clicks"), "p2");
    const char *m = slurp(manifest_of("c4"));
    CHECK(m &&
          strstr(m, "\"in_progress\":null,\n\"finished_total\":1,\"finished\":[\n  \"x.ndjson\"]"));
    static const char *const b3[] = {"{\"n\":4}"};
    CHECK_INT(write_lines(&k, b3, 1, 0, "p3", 3), SL_OK);
    sink_close(&k);
    CHECK_STR(slurp(tpath("c4/x.ndjson")), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
    CHECK_STR(slurp(tpath("c4/x.1.ndjson")), "{\"n\":4}\n");

    /* The same state with a final file of another length is not ours: refused. */
    crash_child("path: c4b/x.ndjson\nid_field: \"\"\n");
    REQUIRE(unlink(temp_of("c4b/x.ndjson")) == 0);
    put_file(tpath("c4b/x.ndjson"), "{\"n\":1}\n");
    CHECK_INT(sink_open(&k, &sl_sink_file, "path: c4b/x.ndjson\nid_field: \"\"\n"), SL_ESTATE);
    CHECK(strstr(k.err.msg, "holds 24 committed bytes, but it is gone and its final name has "
                            "another length; restore it, or run `sluice reset`") != NULL);
    sink_close(&k);
}

/* Crash point: the manifest's temporary file was being written (torn). */
static void t_recover_torn_manifest_temp(void)
{
    const char *yaml = "path: c5/x.ndjson\nid_field: \"\"\n";
    crash_child(yaml);
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", manifest_of("c5"));
    put_file(tmp, "{\"format\":1,\"in_progr");
    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK(!exists(tmp));
    CHECK_STR(committed_pos(&k, "clicks"), "p2");
    sink_close(&k);
    CHECK_STR(slurp(tpath("c5/x.ndjson")), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
}

/* A damaged manifest stops the sink; `sluice reset` (inspect + reset) sets it aside. */
static void t_garbled_manifest_refused(void)
{
    const char *yaml = "path: c6/x.ndjson\nid_field: \"\"\n";
    crash_child(yaml);
    char man[1024];
    snprintf(man, sizeof man, "%s", manifest_of("c6"));
    put_file(man, "{\"format\":1,\"sources\":{\"clicks\":{\"posi");
    struct sink k;
    CHECK_INT(sink_open(&k, &sl_sink_file, yaml), SL_EPARSE);
    CHECK(strstr(k.err.msg, "sink out: the manifest ") != NULL);
    CHECK(strstr(k.err.msg, " is not valid JSON (byte ") != NULL);
    CHECK(strstr(k.err.msg, "run `sluice reset` on this pipeline to set it aside and deliver "
                            "everything again (outputs are kept)") != NULL);
    sink_close(&k);
    put_file(man, "[1,2]");
    CHECK_INT(sink_open(&k, &sl_sink_file, yaml), SL_EPARSE);
    CHECK(strstr(k.err.msg, "has no \"format\" number") != NULL);
    sink_close(&k);

    opt_inspect = 1;
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK_STR(committed_pos(&k, "clicks"), "(error)");
    CHECK_INT(k.p->reset(k.state, NULL, &k.err), SL_OK);
    CHECK_STR(committed_pos(&k, "clicks"), "(none)");
    sink_close(&k);
    opt_inspect = 0;
    CHECK(!exists(man));
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK_STR(committed_pos(&k, "clicks"), "(none)");
    sink_close(&k);
}

static void t_unknown_format_refused(void)
{
    const char *yaml = "path: c7/x.ndjson\n";
    REQUIRE(mkdir(tpath("c7"), 0755) == 0);
    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK_INT(write_lines(&k, B1, N(B1), 0, "p1", 1), SL_OK);
    sink_close(&k);
    put_file(manifest_of("c7"), "{\"format\":2,\"whatever\":true}\n");
    CHECK_INT(sink_open(&k, &sl_sink_file, yaml), SL_EUNSUPPORTED);
    CHECK(strstr(k.err.msg, "has format 2, which this version of sluice does not know (it reads "
                            "and writes format 1); run the version that wrote it") != NULL);
    sink_close(&k);
}

static void t_id_field(void)
{
    struct sink k;
    static const char *const lines[] = {
        "{\"a\":1}",
        "{}",
        " { \"a\" : [1, {\"b\":{}}] } ",
        "{\"_sluice_id\":\"stale\",\"a\":2}",
        "[\"array\"]",
        "\"text\"",
    };
    REQUIRE(sink_open(&k, &sl_sink_file, "path: c8/x.ndjson\n") == SL_OK);
    struct sl_batch *b = make_batch(lines, N(lines), 0, "p", 0x0123456789abcdefull);
    REQUIRE(b);
    b->recs[1].id[1] = 0xfedcba9876543210ull;
    CHECK_INT(sink_write(&k, b), SL_OK);
    char want[1024];
    snprintf(want, sizeof want,
             "{\"a\":1,\"_sluice_id\":\"0123456789abcdef0000000000000000\"}\n"
             "{\"_sluice_id\":\"0123456789abcdeffedcba9876543210\"}\n"
             " { \"a\" : [1, {\"b\":{}}] ,\"_sluice_id\":\"0123456789abcdef0000000000000002\"}\n"
             "{\"_sluice_id\":\"0123456789abcdef0000000000000003\",\"a\":2}\n"
             "[\"array\"]\n"
             "\"text\"\n");
    sl_batch_unref(b);
    sink_close(&k);
    CHECK_STR(slurp(tpath("c8/x.ndjson")), want);
    /* Each id equals sl_record_id_format of the record's id. */
    char hex[33];
    uint64_t id[2] = {0x0123456789abcdefull, 0xfedcba9876543210ull};
    sl_record_id_format(id, hex);
    CHECK(strstr(want, hex) != NULL);

    /* Another name; edited records get it too. */
    REQUIRE(sink_open(&k, &sl_sink_file, "path: c8/y.ndjson\nid_field: rid\n") == SL_OK);
    b = make_batch(lines, 1, 0, "p", 7);
    REQUIRE(b);
    struct sl_value v = sl_value_number(5);
    REQUIRE(sl_record_set_key(&b->recs[0], "z", 1, &v, &b->arena) == SL_OK);
    CHECK_INT(sink_write(&k, b), SL_OK);
    sl_batch_unref(b);
    sink_close(&k);
    CHECK_STR(slurp(tpath("c8/y.ndjson")),
              "{\"a\":1,\"z\":5,\"rid\":\"00000000000000070000000000000000\"}\n");
}

static void t_reset(void)
{
    struct sink k;
    const char *yaml = "path: c9/x.ndjson\nid_field: \"\"\n";
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK_INT(write_lines(&k, B1, N(B1), 0, "c@2", 1), SL_OK);
    CHECK_INT(write_lines(&k, B2, N(B2), 1, "o@1", 2), SL_OK);
    sink_close(&k);

    opt_inspect = 1;
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK_INT(k.p->reset(k.state, "clicks", &k.err), SL_OK);
    CHECK_STR(committed_pos(&k, "clicks"), "(none)");
    CHECK_STR(committed_pos(&k, "orders"), "o@1");
    sink_close(&k);
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK_STR(committed_pos(&k, "clicks"), "(none)");
    CHECK_STR(committed_pos(&k, "orders"), "o@1");
    uint64_t recs, ns;
    CHECK_INT(k.p->commit_info(k.state, "orders", &recs, &ns, &k.err), SL_OK);
    CHECK_INT(recs, 1);
    CHECK_INT(k.p->reset(k.state, NULL, &k.err), SL_OK);
    CHECK_STR(committed_pos(&k, "orders"), "(none)");
    sink_close(&k);
    opt_inspect = 0;
    /* Outputs are kept. */
    CHECK_STR(slurp(tpath("c9/x.ndjson")), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK_STR(committed_pos(&k, "orders"), "(none)");
    sink_close(&k);
}

/*
 * rewind (`sluice reset --to-position`): one source's position is set back in the manifest
 * (records count kept), outputs are kept, and what is delivered again goes to a new file.
 */
static void t_rewind(void)
{
    struct sink k;
    const char *yaml = "path: rw1/x.ndjson\nid_field: \"\"\n";
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK_INT(write_lines(&k, B1, N(B1), 0, "c@1", 1), SL_OK);
    CHECK_INT(write_lines(&k, B2, N(B2), 0, "c@2", 2), SL_OK);
    CHECK_INT(write_lines(&k, B2, N(B2), 1, "o@1", 3), SL_OK);
    sink_close(&k);
    char man[1024], before[4096];
    snprintf(man, sizeof man, "%s", manifest_of("rw1"));
    snprintf(before, sizeof before, "%s", slurp(man));

    /* Through an inspection (what `sluice reset` opens). */
    opt_inspect = 1;
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK_INT(k.p->rewind(k.state, "clicks", "c@1", &k.err), SL_OK);
    CHECK_STR(committed_pos(&k, "clicks"), "c@1");
    CHECK_STR(committed_pos(&k, "orders"), "o@1");
    CHECK_INT(k.p->rewind(k.state, NULL, "c@1", &k.err), SL_EINVAL);
    sink_close(&k);
    char tmpname[1100];
    snprintf(tmpname, sizeof tmpname, "%s.tmp", man);
    CHECK(!exists(tmpname));
    /* Only the clicks entry changed: its position and commit time; records stay 3. */
    const char *m = slurp(man);
    REQUIRE(m != NULL);
    CHECK(strstr(m, "\"clicks\":{\"position\":\"c@1\",\"records\":3,\"commit_ns\":") != NULL);
    CHECK(strstr(m, "\"orders\":{\"position\":\"o@1\",\"records\":1,") != NULL);
    CHECK(strstr(m, "\n\"records\":4,\"commit_ns\":") != NULL);
    CHECK(strstr(m, "\"finished_total\":1,\"finished\":[\n  \"x.ndjson\"]") != NULL);
    CHECK(strcmp(m, before) != 0);
    opt_inspect = 0;

    /* The next run: committed() says c@1, the replay of c@2 lands in a new file. */
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK_STR(committed_pos(&k, "clicks"), "c@1");
    uint64_t recs = 0, ns = 0;
    CHECK_INT(k.p->commit_info(k.state, "clicks", &recs, &ns, &k.err), SL_OK);
    CHECK_INT(recs, 3);
    CHECK_INT(write_lines(&k, B2, N(B2), 0, "c@2", 2), SL_OK);
    CHECK_STR(committed_pos(&k, "clicks"), "c@2");
    sink_close(&k);
    CHECK_STR(slurp(tpath("rw1/x.ndjson")), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":3}\n");
    CHECK_STR(slurp(tpath("rw1/x.1.ndjson")), "{\"n\":3}\n");

    /* A source the manifest does not name yet gets an entry; a non-UTF-8 one as hex. */
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK_INT(k.p->rewind(k.state, "views", "v/caf\xe9:1", &k.err), SL_OK);
    sink_close(&k);
    m = slurp(man);
    CHECK(m && strstr(m, "\"views\":{\"position_hex\":\"762f636166e93a31\",\"records\":0,"));
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK_STR(committed_pos(&k, "views"), "v/caf\xe9:1");
    CHECK_STR(committed_pos(&k, "clicks"), "c@2");

    /* The manifest cannot be written: an error, and disk and memory keep the old position. */
    snprintf(before, sizeof before, "%s", slurp(man));
    REQUIRE(mkdir(tmpname, 0755) == 0); /* the temporary manifest cannot be created */
    CHECK_INT(k.p->rewind(k.state, "clicks", "c@0", &k.err), SL_EIO);
    CHECK(strstr(k.err.msg, "creating ") != NULL);
    CHECK_INT(k.p->rewind(k.state, "other", "x@0", &k.err), SL_EIO);
    CHECK_STR(committed_pos(&k, "clicks"), "c@2");
    CHECK_STR(committed_pos(&k, "other"), "(none)");
    CHECK_STR(slurp(man), before);
    REQUIRE(rmdir(tmpname) == 0);
    sink_close(&k);
    CHECK_STR(slurp(man), before);

    /* A damaged manifest cannot be rewound (only set aside by a reset to the start). */
    put_file(man, "{\"format\":1,\"sources\":{");
    opt_inspect = 1;
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK_INT(k.p->rewind(k.state, "clicks", "c@1", &k.err), SL_ESTATE);
    CHECK(strstr(k.err.msg, "a damaged manifest cannot be rewound") != NULL);
    sink_close(&k);
    opt_inspect = 0;
    CHECK_STR(slurp(man), "{\"format\":1,\"sources\":{");
}

/* at_least_once: a running sink first commits what it holds, then rewinds. */
static void t_rewind_at_least_once(void)
{
    struct sink k;
    const char *yaml = "path: rw2/x.ndjson\nid_field: \"\"\n";
    opt_exactly_once = 0;
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK_INT(write_lines(&k, B1, N(B1), 0, "p1", 1), SL_OK);
    CHECK_INT(write_lines(&k, B2, N(B2), 0, "p2", 2), SL_OK);
    CHECK_INT(k.p->rewind(k.state, "clicks", "p1", &k.err), SL_OK);
    /* Seen from outside before close: both batches committed, the position set back. */
    opt_inspect = 1;
    struct sink q;
    REQUIRE(sink_open(&q, &sl_sink_file, yaml) == SL_OK);
    CHECK_STR(committed_pos(&q, "clicks"), "p1");
    uint64_t recs = 0, ns = 0;
    CHECK_INT(q.p->commit_info(q.state, "clicks", &recs, &ns, &q.err), SL_OK);
    CHECK_INT(recs, 3);
    sink_close(&q);
    opt_inspect = 0;
    CHECK_STR(slurp(temp_of("rw2/x.ndjson")), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
    sink_close(&k);
    opt_exactly_once = 1;
    CHECK_STR(slurp(tpath("rw2/x.ndjson")), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
}

static void t_inspect_creates_nothing(void)
{
    struct sink k;
    opt_inspect = 1;
    REQUIRE(sink_open(&k, &sl_sink_file, "path: \"i1/deep/%Y/x.ndjson\"\n") == SL_OK);
    CHECK_STR(committed_pos(&k, "clicks"), "(none)");
    uint64_t recs = 1, ns = 1;
    CHECK_INT(k.p->commit_info(k.state, "clicks", &recs, &ns, &k.err), SL_OK);
    CHECK_INT(recs, 0);
    CHECK_INT(ns, 0);
    CHECK_INT(k.p->reset(k.state, NULL, &k.err), SL_OK);
    sink_close(&k);
    CHECK(!exists(tpath("i1")));
    opt_inspect = 0;

    /* After a crash: inspection neither cuts the tail nor finishes the file. */
    crash_child("path: i2/x.ndjson\nid_field: \"\"\n");
    char temp[1024];
    snprintf(temp, sizeof temp, "%s", temp_of("i2/x.ndjson"));
    append_file(temp, "{\"n\":4}\n");
    opt_inspect = 1;
    REQUIRE(sink_open(&k, &sl_sink_file, "path: i2/x.ndjson\nid_field: \"\"\n") == SL_OK);
    CHECK_STR(committed_pos(&k, "clicks"), "p2");
    sink_close(&k);
    opt_inspect = 0;
    CHECK_STR(slurp(temp), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4}\n");
    CHECK(!exists(tpath("i2/x.ndjson")));
}

/* roll_interval finishes a file that has been open long enough when the next batch comes. */
static void t_roll_interval(void)
{
    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_file,
                      "path: r1/x.ndjson\nroll_interval: 500ms\nfsync: false\nid_field: \"\"\n") ==
            SL_OK);
    CHECK_INT(write_lines(&k, B1, N(B1), 0, "p1", 1), SL_OK);
    CHECK_INT(write_lines(&k, B2, N(B2), 0, "p2", 2), SL_OK); /* well within 500 ms */
    struct timespec ts = {0, 700 * 1000000L};
    nanosleep(&ts, NULL);
    CHECK(!exists(tpath("r1/x.ndjson")));
    CHECK_INT(write_lines(&k, B2, N(B2), 0, "p3", 3), SL_OK);
    CHECK_STR(slurp(tpath("r1/x.ndjson")), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
    CHECK_STR(slurp(temp_of("r1/x.1.ndjson")), "{\"n\":3}\n");
    sink_close(&k);
    CHECK_STR(slurp(tpath("r1/x.1.ndjson")), "{\"n\":3}\n");
}

/* at_least_once: the manifest moves at flush/close only; a crash still cuts to it. */
static void t_at_least_once(void)
{
    struct sink k, q;
    const char *yaml = "path: a1/x.ndjson\nid_field: \"\"\n";
    opt_exactly_once = 0;
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK_INT(write_lines(&k, B1, N(B1), 0, "p1", 1), SL_OK);
    CHECK_INT(write_lines(&k, B2, N(B2), 0, "p2", 2), SL_OK);
    opt_inspect = 1;
    REQUIRE(sink_open(&q, &sl_sink_file, yaml) == SL_OK);
    CHECK_STR(committed_pos(&q, "clicks"), "(none)"); /* only the file's creation so far */
    sink_close(&q);
    CHECK_INT(k.p->flush(k.state, &k.err), SL_OK);
    REQUIRE(sink_open(&q, &sl_sink_file, yaml) == SL_OK);
    CHECK_STR(committed_pos(&q, "clicks"), "p2");
    sink_close(&q);
    opt_inspect = 0;
    sink_close(&k);

    /* kill -9 after two batches: neither is in the manifest, so both are cut off. */
    crash_child("path: a2/x.ndjson\nid_field: \"\"\n");
    opt_exactly_once = 1;
    REQUIRE(sink_open(&k, &sl_sink_file, "path: a2/x.ndjson\nid_field: \"\"\n") == SL_OK);
    CHECK_STR(committed_pos(&k, "clicks"), "(none)");
    CHECK_STR(slurp(temp_of("a2/x.ndjson")), "");
    sink_close(&k);
    CHECK(!exists(tpath("a2/x.ndjson")) || strcmp(slurp(tpath("a2/x.ndjson")), "") == 0);
}

/*
 * The real thing: a child writes 300 batches of 10 records (position = batch number) with
 * small max_bytes so files roll often, and is killed with SIGKILL at a random instant. A
 * restarted sink resumes after its committed position; at the end the files hold records
 * 0..2999 exactly once, in order.
 */
static void kill9_round(int round, int exactly_once, const char *extra, int max_ms)
{
    char yaml[256], dir[32];
    snprintf(dir, sizeof dir, "k%d", round);
    snprintf(yaml, sizeof yaml, "path: %s/x.ndjson\nfsync: false\nid_field: \"\"\n%s", dir, extra);
    enum { BATCHES = 300, PER = 10 };
    static char lines[PER][32];
    const char *ptrs[PER];
    opt_exactly_once = exactly_once;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct sink k;
        if (sink_open(&k, &sl_sink_file, yaml) != SL_OK)
            _exit(3);
        for (int bn = 1; bn <= BATCHES; bn++) {
            for (int i = 0; i < PER; i++) {
                snprintf(lines[i], sizeof lines[i], "{\"n\":%d}", (bn - 1) * PER + i);
                ptrs[i] = lines[i];
            }
            char pos[16];
            snprintf(pos, sizeof pos, "%d", bn);
            if (write_lines(&k, ptrs, PER, 0, pos, (uint64_t)bn) != SL_OK)
                _exit(4);
        }
        sink_close(&k);
        _exit(0);
    }
    struct timespec ts = {0, (long)(rand() % max_ms) * 1000000L};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) == 0));

    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    const char *p = committed_pos(&k, "clicks");
    int from = strcmp(p, "(none)") == 0 ? 1 : atoi(p) + 1;
    for (int bn = from; bn <= BATCHES; bn++) {
        for (int i = 0; i < PER; i++) {
            snprintf(lines[i], sizeof lines[i], "{\"n\":%d}", (bn - 1) * PER + i);
            ptrs[i] = lines[i];
        }
        char pos[16];
        snprintf(pos, sizeof pos, "%d", bn);
        REQUIRE(write_lines(&k, ptrs, PER, 0, pos, (uint64_t)bn) == SL_OK);
    }
    sink_close(&k);
    opt_exactly_once = 1;
    /* Read x.ndjson, x.1.ndjson, ... and check every record once, in order. */
    int next = 0, bad = 0;
    for (unsigned idx = 0; idx < 10000; idx++) {
        char rel[64];
        if (idx == 0)
            snprintf(rel, sizeof rel, "%s/x.ndjson", dir);
        else
            snprintf(rel, sizeof rel, "%s/x.%u.ndjson", dir, idx);
        const char *c = slurp(tpath(rel));
        if (!c)
            break;
        for (const char *q = c; *q;) {
            int n;
            if (sscanf(q, "{\"n\":%d}\n", &n) != 1 || n != next)
                bad++;
            next++;
            q = strchr(q, '\n');
            if (!q)
                break;
            q++;
        }
    }
    CHECK_INT(bad, 0);
    CHECK_INT(next, BATCHES * PER);
    char rel[64];
    snprintf(rel, sizeof rel, "%s/x.ndjson", dir);
    CHECK_STR(temp_of(rel), "");
    fprintf(stderr,
            "  round %d (%s, %s): committed at batch %d of %d; %d records checked, %d wrong\n",
            round, exactly_once ? "exactly_once" : "at_least_once",
            strstr(extra, "commit_interval: 0") ? "every batch" : "interval", from - 1, BATCHES,
            next, bad);
}

static void t_kill9_random(void)
{
    srand((unsigned)time(NULL));
    for (int round = 0; round < 12; round++)
        kill9_round(round, round % 3 != 2, /* every third round at_least_once */
                    "max_bytes: 2KiB\ncommit_interval: 0\n", 120);
    /* With a commit interval the kill mostly lands between commits: the appends after the
     * last one are cut off, and the restart resumes right after the committed batch. */
    for (int round = 12; round < 20; round++)
        kill9_round(round, 1,
                    round % 2 ? "max_bytes: 2KiB\ncommit_interval: 15ms\n"
                              : "commit_interval: 10ms\n",
                    40); /* without a fsync per batch the child is done sooner */
}

/* ---- commit cadence ------------------------------------------------------------------------ */

static uint64_t committed_records(struct sink *k, const char *source)
{
    uint64_t recs = 0, ns = 0;
    if (k->p->commit_info(k->state, source, &recs, &ns, &k->err) != SL_OK)
        return UINT64_MAX;
    return recs;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/*
 * commit_interval 0: every batch is fsynced and committed. Per batch: data fsync, manifest
 * temp fsync, rename, directory fsync; the first batch also fsyncs the directory of the
 * new in-progress file, and opening it writes the manifest once more (2 fsyncs, 1 rename).
 */
static void t_cadence_every_batch(void)
{
    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_file,
                      "path: cv0/x.ndjson\ncommit_interval: 0\nid_field: \"\"\n") == SL_OK);
    n_fsync = n_manifest_rename = 0;
    char pos[8];
    for (int i = 1; i <= 5; i++) {
        snprintf(pos, sizeof pos, "p%d", i);
        CHECK_INT(write_lines(&k, B2, N(B2), 0, pos, (uint64_t)i), SL_OK);
        CHECK_STR(committed_pos(&k, "clicks"), pos);
        CHECK_INT(committed_records(&k, "clicks"), i);
    }
    CHECK_INT(n_manifest_rename, 1 + 5);
    CHECK_INT(n_fsync, 2 + 1 + 5 * 3);
    sink_close(&k);
}

/*
 * A long commit_interval: batches are appended, nothing is fsynced or committed after the
 * file's creation, committed() and commit_info() stay at the last commit, and flush commits
 * all of it with one data fsync and one manifest write.
 */
static void t_cadence_long_interval(void)
{
    struct sink k, q;
    const char *yaml = "path: cv1/x.ndjson\ncommit_interval: 1h\nid_field: \"\"\n";
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    n_fsync = n_manifest_rename = 0;
    char pos[8];
    for (int i = 1; i <= 5; i++) {
        snprintf(pos, sizeof pos, "p%d", i);
        CHECK_INT(write_lines(&k, B2, N(B2), 0, pos, (uint64_t)i), SL_OK);
        CHECK_STR(committed_pos(&k, "clicks"), "(none)");
        CHECK_INT(committed_records(&k, "clicks"), 0);
        CHECK_INT(committed_records(&k, NULL), 0);
    }
    CHECK_INT(n_manifest_rename, 1); /* the in-progress file was named, with length 0 */
    CHECK_INT(n_fsync, 2);
    CHECK_STR(slurp(temp_of("cv1/x.ndjson")),
              "{\"n\":3}\n{\"n\":3}\n{\"n\":3}\n{\"n\":3}\n{\"n\":3}\n");
    const char *m = slurp(manifest_of("cv1"));
    CHECK(m && strstr(m, "\"length\":0,") && strstr(m, "\"sources\":{}"));
    /* What another process sees meanwhile (`sluice status`): the last commit. */
    opt_inspect = 1;
    REQUIRE(sink_open(&q, &sl_sink_file, yaml) == SL_OK);
    CHECK_STR(committed_pos(&q, "clicks"), "(none)");
    sink_close(&q);
    opt_inspect = 0;

    CHECK_INT(k.p->flush(k.state, &k.err), SL_OK);
    CHECK_INT(n_manifest_rename, 2);
    CHECK_INT(n_fsync, 2 + 4); /* data, its new directory entry, manifest temp, directory */
    CHECK_STR(committed_pos(&k, "clicks"), "p5");
    CHECK_INT(committed_records(&k, "clicks"), 5);
    CHECK_INT(committed_records(&k, NULL), 5);
    m = slurp(manifest_of("cv1"));
    CHECK(m && strstr(m, "\"length\":40,") && strstr(m, "\"position\":\"p5\",\"records\":5,"));
    /* flush with nothing new does nothing */
    CHECK_INT(k.p->flush(k.state, &k.err), SL_OK);
    CHECK_INT(n_manifest_rename, 2);
    CHECK_INT(n_fsync, 6);
    /* Appended after the flush, committed by close (which finishes the file). */
    CHECK_INT(write_lines(&k, B1, N(B1), 1, "o1", 6), SL_OK);
    CHECK_STR(committed_pos(&k, "orders"), "(none)");
    sink_close(&k);
    CHECK_STR(slurp(tpath("cv1/x.ndjson")),
              "{\"n\":3}\n{\"n\":3}\n{\"n\":3}\n{\"n\":3}\n{\"n\":3}\n{\"n\":1}\n{\"n\":2}\n");
    m = slurp(manifest_of("cv1"));
    CHECK(m && strstr(m, "\"orders\":{\"position\":\"o1\",\"records\":2,"));
}

/* committed() lags the appends until the interval has passed; then the next batch commits
 * everything appended so far. */
static void t_cadence_interval_passes(void)
{
    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_file,
                      "path: cv2/x.ndjson\ncommit_interval: 600ms\nid_field: \"\"\n") == SL_OK);
    CHECK_INT(write_lines(&k, B1, N(B1), 0, "p1", 1), SL_OK);
    CHECK_STR(committed_pos(&k, "clicks"), "(none)");
    CHECK_INT(write_lines(&k, B2, N(B2), 0, "p2", 2), SL_OK);
    CHECK_STR(committed_pos(&k, "clicks"), "(none)");
    CHECK_INT(committed_records(&k, "clicks"), 0);
    sleep_ms(700);
    n_manifest_rename = 0;
    CHECK_INT(write_lines(&k, B2, N(B2), 0, "p3", 3), SL_OK);
    CHECK_INT(n_manifest_rename, 1);
    CHECK_STR(committed_pos(&k, "clicks"), "p3");
    CHECK_INT(committed_records(&k, "clicks"), 4);
    const char *m = slurp(manifest_of("cv2"));
    CHECK(m && strstr(m, "\"length\":32,") && strstr(m, "\"position\":\"p3\",\"records\":4,"));
    /* The interval starts again at that commit. */
    CHECK_INT(write_lines(&k, B2, N(B2), 0, "p4", 4), SL_OK);
    CHECK_STR(committed_pos(&k, "clicks"), "p3");
    sink_close(&k);
}

/* commit_bytes commits once that much is waiting; a roll commits before finishing. */
static void t_cadence_bytes_and_roll(void)
{
    struct sink k;
    REQUIRE(sink_open(&k, &sl_sink_file,
                      "path: cv3/x.ndjson\ncommit_interval: 1h\ncommit_bytes: 20\n"
                      "id_field: \"\"\n") == SL_OK);
    CHECK_INT(write_lines(&k, B1, N(B1), 0, "p1", 1), SL_OK); /* 16 bytes */
    CHECK_STR(committed_pos(&k, "clicks"), "(none)");
    CHECK_INT(write_lines(&k, B2, N(B2), 0, "p2", 2), SL_OK); /* 24 bytes */
    CHECK_STR(committed_pos(&k, "clicks"), "p2");
    CHECK_INT(write_lines(&k, B2, N(B2), 0, "p3", 3), SL_OK); /* 8 waiting */
    CHECK_STR(committed_pos(&k, "clicks"), "p2");
    sink_close(&k);
    CHECK_STR(slurp(tpath("cv3/x.ndjson")), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":3}\n");

    REQUIRE(sink_open(&k, &sl_sink_file,
                      "path: cv4/x.ndjson\ncommit_interval: 1h\nmax_bytes: 20\n"
                      "id_field: \"\"\n") == SL_OK);
    CHECK_INT(write_lines(&k, B1, N(B1), 0, "p1", 1), SL_OK); /* 16 bytes */
    CHECK_STR(committed_pos(&k, "clicks"), "(none)");
    CHECK_INT(write_lines(&k, B2, N(B2), 0, "p2", 2), SL_OK); /* would pass 20: roll */
    CHECK_STR(committed_pos(&k, "clicks"), "p1");
    CHECK_STR(slurp(tpath("cv4/x.ndjson")), "{\"n\":1}\n{\"n\":2}\n");
    CHECK_STR(slurp(temp_of("cv4/x.1.ndjson")), "{\"n\":3}\n");
    sink_close(&k);
    CHECK_STR(slurp(tpath("cv4/x.1.ndjson")), "{\"n\":3}\n");
}

/*
 * kill -9 between commits: the appends after the last commit are cut off at the restart
 * and committed() names the last committed batch, so the source resumes right after it.
 */
static void t_cadence_kill9(void)
{
    struct sink k;
    /* Nothing committed: both batches are cut off. */
    crash_child("path: cv5/x.ndjson\ncommit_interval: 1h\nid_field: \"\"\n");
    CHECK_STR(slurp(temp_of("cv5/x.ndjson")), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
    REQUIRE(sink_open(&k, &sl_sink_file,
                      "path: cv5/x.ndjson\ncommit_interval: 1h\nid_field: \"\"\n") == SL_OK);
    CHECK_STR(committed_pos(&k, "clicks"), "(none)");
    CHECK_STR(slurp(temp_of("cv5/x.ndjson")), "");
    CHECK_INT(write_lines(&k, B1, N(B1), 0, "p1", 1), SL_OK);
    CHECK_INT(write_lines(&k, B2, N(B2), 0, "p2", 2), SL_OK);
    sink_close(&k);
    CHECK_STR(slurp(tpath("cv5/x.ndjson")), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");

    /* B1 committed (16 bytes reach commit_bytes), B2 not: only B2 is cut off. */
    const char *yaml =
        "path: cv6/x.ndjson\ncommit_interval: 1h\ncommit_bytes: 16\nid_field: \"\"\n";
    crash_child(yaml);
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK_STR(committed_pos(&k, "clicks"), "p1");
    CHECK_INT(committed_records(&k, "clicks"), 2);
    CHECK_STR(slurp(temp_of("cv6/x.ndjson")), "{\"n\":1}\n{\"n\":2}\n");
    CHECK_INT(write_lines(&k, B2, N(B2), 0, "p2", 2), SL_OK);
    sink_close(&k);
    CHECK_STR(slurp(tpath("cv6/x.ndjson")), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
}

/* ---- the manifest guard ------------------------------------------------------------------- */

static void t_guard_lost_manifest(void)
{
    struct sink k;
    const char *yaml = "path: g1/x.ndjson\nid_field: \"\"\n";
    char saved[1024];
    /* Finished output, manifest deleted: refused, naming both; nothing is touched. */
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK_INT(write_lines(&k, B1, N(B1), 0, "p1", 1), SL_OK);
    sink_close(&k);
    snprintf(saved, sizeof saved, "%s", manifest_of("g1"));
    REQUIRE(saved[0] && rename(saved, tpath("g1.manifest")) == 0);
    CHECK_INT(sink_open(&k, &sl_sink_file, yaml), SL_ESTATE);
    CHECK(strstr(k.err.msg, "there is no manifest ") && strstr(k.err.msg, saved));
    CHECK(strstr(k.err.msg, "g1/x.ndjson exists"));
    CHECK(strstr(k.err.msg, "Restore the manifest, or remove or move the old output files"));
    CHECK(strstr(k.err.msg, "`sluice reset` does not help"));
    sink_close(&k);
    CHECK_STR(slurp(tpath("g1/x.ndjson")), "{\"n\":1}\n{\"n\":2}\n");
    CHECK(!exists(saved));
    /* Restored: runs on where it was. */
    REQUIRE(rename(tpath("g1.manifest"), saved) == 0);
    REQUIRE(sink_open(&k, &sl_sink_file, yaml) == SL_OK);
    CHECK_STR(committed_pos(&k, "clicks"), "p1");
    sink_close(&k);

    /* A numbered file alone is output of this sink too. */
    REQUIRE(mkdir(tpath("g2"), 0755) == 0);
    put_file(tpath("g2/x.12.ndjson"), "{\"n\":1}\n");
    CHECK_INT(sink_open(&k, &sl_sink_file, "path: g2/x.ndjson\nid_field: \"\"\n"), SL_ESTATE);
    CHECK(strstr(k.err.msg, "g2/x.12.ndjson exists"));
    sink_close(&k);

    /* An in-progress file with this sink's tag (a crash, then the manifest deleted). */
    crash_child("path: g3/x.ndjson\nid_field: \"\"\n");
    snprintf(saved, sizeof saved, "%s", temp_of("g3/x.ndjson"));
    REQUIRE(saved[0]);
    REQUIRE(unlink(manifest_of("g3")) == 0);
    CHECK_INT(sink_open(&k, &sl_sink_file, "path: g3/x.ndjson\nid_field: \"\"\n"), SL_ESTATE);
    CHECK(strstr(k.err.msg, saved) != NULL);
    sink_close(&k);
    CHECK_STR(slurp(saved), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");

    /* Not output of this sink: other names, another sink's in-progress file, a file in
     * another directory. A fresh start goes ahead and leaves them alone. */
    REQUIRE(mkdir(tpath("g4"), 0755) == 0);
    put_file(tpath("g4/x.ndjson.bak"), "a\n");
    put_file(tpath("g4/x.01.ndjson"), "b\n");
    put_file(tpath("g4/x.1.json"), "c\n");
    put_file(tpath("g4/y.ndjson"), "d\n");
    put_file(tpath("g4/.x.ndjson.00000000.inprogress"), "e\n");
    REQUIRE(sink_open(&k, &sl_sink_file, "path: g4/x.ndjson\nid_field: \"\"\n") == SL_OK);
    CHECK_INT(write_lines(&k, B2, N(B2), 0, "p1", 1), SL_OK);
    sink_close(&k);
    CHECK_STR(slurp(tpath("g4/x.ndjson")), "{\"n\":3}\n");
    CHECK_STR(slurp(tpath("g4/.x.ndjson.00000000.inprogress")), "e\n");
    CHECK_STR(slurp(tpath("g4/x.01.ndjson")), "b\n");

    /* After `sluice reset` set a damaged manifest aside, delivering again is what was asked. */
    REQUIRE(sink_open(&k, &sl_sink_file, "path: g5/x.ndjson\nid_field: \"\"\n") == SL_OK);
    CHECK_INT(write_lines(&k, B2, N(B2), 0, "p1", 1), SL_OK);
    sink_close(&k);
    snprintf(saved, sizeof saved, "%s", manifest_of("g5"));
    put_file(saved, "{not json");
    opt_inspect = 1;
    REQUIRE(sink_open(&k, &sl_sink_file, "path: g5/x.ndjson\nid_field: \"\"\n") == SL_OK);
    CHECK_INT(k.p->reset(k.state, NULL, &k.err), SL_OK);
    sink_close(&k);
    opt_inspect = 0;
    CHECK(!exists(saved));
    REQUIRE(sink_open(&k, &sl_sink_file, "path: g5/x.ndjson\nid_field: \"\"\n") == SL_OK);
    CHECK_INT(write_lines(&k, B2, N(B2), 0, "p1", 1), SL_OK);
    sink_close(&k);
    CHECK_STR(slurp(tpath("g5/x.1.ndjson")), "{\"n\":3}\n");
}

/* ---- bench ------------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench(const char *dir, long batches, int exactly_once, int fsync_on)
{
    char yaml[600];
    snprintf(yaml, sizeof yaml, "path: %s/bench-%d%d/x.ndjson\nfsync: %s\n", dir, exactly_once,
             fsync_on, fsync_on ? "true" : "false");
    opt_exactly_once = exactly_once;
    struct sink k;
    if (sink_open(&k, &sl_sink_file, yaml) != SL_OK) {
        fprintf(stderr, "%s\n", k.err.msg);
        return 1;
    }
    static char lines[1024][256];
    const char *ptrs[1024];
    double total = 0;
    size_t bytes = 0;
    for (long bn = 0; bn < batches; bn++) {
        for (int i = 0; i < 1024; i++) {
            long n = bn * 1024 + i;
            snprintf(lines[i], sizeof lines[i],
                     "{\"event_id\":\"ev-%ld\",\"user\":\"user-%ld\",\"n\":%ld,\"amount\":%ld.25,"
                     "\"kind\":\"purchase\",\"ok\":true,\"country\":\"DE\",\"page\":\"/p/%ld\","
                     "\"ts\":\"2026-11-27T12:00:00Z\",\"qty\":%ld}",
                     n, n % 1000, n, n % 977, n % 50, n % 7);
            ptrs[i] = lines[i];
            bytes += strlen(lines[i]) + 1 + 48;
        }
        char pos[48];
        snprintf(pos, sizeof pos, "clicks.ndjson:%ld", bn);
        struct sl_batch *b = make_batch(ptrs, 1024, 0, pos, (uint64_t)bn);
        double t0 = now_s();
        sl_rc rc = sink_write(&k, b);
        total += now_s() - t0;
        sl_batch_unref(b);
        if (rc)
            return 1;
    }
    double t0 = now_s();
    sink_close(&k);
    total += now_s() - t0;
    printf("file sink in %s, %s, fsync %s: %ld batches of 1024 records, %.3f s: %.0f records/s, "
           "%.1f MB/s, %.0f batches/s\n",
           dir, exactly_once ? "exactly_once" : "at_least_once", fsync_on ? "on" : "off", batches,
           total, (double)batches * 1024 / total, (double)bytes / total / 1e6,
           (double)batches / total);
    return 0;
}

int main(int argc, char **argv)
{
    make_tmpdir();
    if (sl_json_parser_create(&parser) != SL_OK)
        return 1;
    if (argc > 2 && strcmp(argv[1], "bench") == 0) {
        long batches = argc > 3 ? atol(argv[3]) : 200;
        int rc = bench(argv[2], batches, 1, 1) | bench(argv[2], batches, 1, 0) |
                 bench(argv[2], batches, 0, 1);
        remove_tmpdir();
        sl_json_parser_destroy(parser);
        return rc;
    }
    RUN(t_positions_round_trip);
    RUN(t_recover_tail_truncated);
    RUN(t_recover_unknown_temp_deleted);
    RUN(t_recover_rename_rolled_forward);
    RUN(t_recover_torn_manifest_temp);
    RUN(t_garbled_manifest_refused);
    RUN(t_unknown_format_refused);
    RUN(t_id_field);
    RUN(t_reset);
    RUN(t_rewind);
    RUN(t_rewind_at_least_once);
    RUN(t_inspect_creates_nothing);
    RUN(t_roll_interval);
    RUN(t_at_least_once);
    RUN(t_cadence_every_batch);
    RUN(t_cadence_long_interval);
    RUN(t_cadence_interval_passes);
    RUN(t_cadence_bytes_and_roll);
    RUN(t_cadence_kill9);
    RUN(t_guard_lost_manifest);
    RUN(t_kill9_random);
    sl_json_parser_destroy(parser);
    int rc = TEST_DONE();
    if (rc == 0)
        remove_tmpdir();
    else
        fprintf(stderr, "scratch files kept in %s\n", tmpdir);
    return rc;
}
