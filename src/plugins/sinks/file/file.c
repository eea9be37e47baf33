/*
 * file.c - the `file` sink: NDJSON files that are committed atomically with the source
 * positions they cover, through a manifest (DESIGN.md section 4).
 *
 * What it does. `path` is a strftime-style template expanded in UTC when a batch is
 * written (out/clicks-%Y-%m-%d.ndjson). Records are appended to an in-progress file beside
 * the final one, `dir/.NAME.TAG.inprogress`, which a reader globbing `dir/NAME*` skips. A file
 * is finished (renamed to its final NAME, never to be written again) when the next batch
 * would take it past `max_bytes`, when the template expands to another name, when it has
 * been open for `roll_interval`, and at close. Within one expanded name ("the base") the
 * files are numbered out/clicks.ndjson, out/clicks.1.ndjson, ... (the number goes before
 * the extension); a new file takes the first number whose final and in-progress names are
 * both free, so a finished file is never appended to or overwritten.
 *
 * The commit (delivery: exactly_once). Every batch is appended to the in-progress file; a
 * commit makes everything appended so far durable: fsync the in-progress file, then write
 * the manifest: a temporary file, fsync, rename over the manifest, fsync of its directory.
 * The manifest (docs/internals/file-sink.md has its fields) names the in-progress file and
 * its committed length, the finished files, and per source the position after the last
 * committed batch. The rename is the commit point: before it the old manifest describes a
 * shorter file and an older position, after it the new ones. A commit happens at the first
 * batch once `commit_interval` has passed since the last one (every batch when it is 0),
 * once `commit_bytes` are uncommitted, before a file is finished, at flush and at close.
 * It names only bytes fsynced before it and the positions of exactly the batches those
 * bytes hold, so a crash loses only uncommitted appends: recovery cuts them off and the
 * sources read them again from the committed positions. committed() and commit_info()
 * report the last commit, never the appends after it.
 *
 * Recovery (init). The manifest's temporary file is removed (a torn one is just a commit
 * that did not happen); the in-progress file is cut back to the committed length (a batch
 * written but not committed); in-progress files of this sink the manifest does not name
 * are deleted; an in-progress file that is gone while its final name exists with exactly
 * the committed length was renamed just before a crash, and is recorded as finished. So
 * after a kill -9 at any instant the outputs hold exactly the records up to the committed
 * positions, which is where the sources resume (the engine asks committed()).
 *
 * Without a manifest (init). A fresh start must find no output of this sink: an in-progress
 * file with its tag, or a file its path names, means the manifest was lost, and starting
 * over would write every record again beside the old ones; init refuses and says so.
 *
 * delivery: at_least_once. No fsync and no manifest per batch; the manifest is written
 * when a file is opened or finished and at flush/close. After a crash the uncommitted tail
 * is still cut off, so the output holds no partial and no repeated record, but everything
 * since the last manifest write is read and written again, and must still be readable at
 * the source.
 *
 * Reset and rewind (`sluice reset`). reset() drops a source's entry from the manifest and
 * rewind() sets its position back; both write the manifest as a commit does and keep every
 * output file, so what the next run delivers again is appended beside the records already
 * there (the outputs then hold those records twice, which is what the user asked for).
 *
 * Failures. A batch that fails is undone (the in-progress file is cut back to its size
 * before the batch). A full disk returns SL_RETRY after that; other I/O errors are fatal.
 * A manifest that cannot be parsed, or has an unknown "format", stops the sink at init
 * with a message naming the file and `sluice reset`.
 *
 * Threading and ownership. Everything runs on the sink's single thread. The state owns
 * its buffers, the in-progress file descriptor and the manifest's contents in memory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sluice/alloc.h"
#include "sluice/log.h"
#include "sluice/plugin.h"
#include "sluice/record.h"

#include "plugins/sinks/common/id_field.h"

#define FILE_BUF_MAX ((size_t)64 << 20)      /* output buffer hard maximum */
#define FILE_MANIFEST_MAX ((size_t)16 << 20) /* manifest hard maximum */
#define FILE_MAX_ROTATIONS 1000000u          /* sanity bound on the rotation counter */
#define FILE_MAX_SOURCES 4096                /* source entries a manifest may hold */
#define FILE_KEEP_FINISHED 100               /* finished names the manifest lists */
#define FILE_MANIFEST_FORMAT 1

/* What the manifest says about one source. */
struct src_entry {
    char *name;       /* sl_malloc'd */
    char *position;   /* sl_malloc'd, or NULL: after the last batch appended */
    uint64_t records; /* records written for this source, in total */
    uint64_t commit_ns;
    /* As of the last manifest write (what committed()/commit_info() report). c_position
     * is either NULL, position itself (shared), or its own sl_malloc'd string. */
    char *c_position;
    uint64_t c_records, c_commit_ns;
};

/*
 * Invariants:
 *   1. fd >= 0 iff base[0] != '\0'; then fd is open on tmp (the in-progress file of
 *      file number index of base, whose final name is cur) and size is its length.
 *   2. committed <= size; the manifest on disk names tmp with length committed and the
 *      positions in srcs as of that write, except while `dirty` (at_least_once, or inside
 *      process between the append and the commit).
 *   3. out.len == 0 between calls to process.
 *   4. root, base, cur, tmp and the template are < PATH_MAX bytes including the NUL; base,
 *      cur and tmp lie below root (their names relative to root are what the manifest
 *      stores).
 *   5. finished holds at most FILE_KEEP_FINISHED names, oldest first.
 *   6. Every manifest write names only bytes already fsynced (with fsync on): length is
 *      size only when the appends up to size were fsynced by commit(), or size is 0.
 *   7. The c_* fields (sources and sink) equal what the manifest on disk holds.
 */
struct file_sink {
    const char *name;     /* component name (outlives the state) */
    const char *pipeline; /* pipeline name (outlives the state) */
    const char *const *source_names;
    size_t nsources;
    int exactly_once, inspect, do_fsync;
    uint64_t max_bytes;
    uint64_t roll_ns;          /* 0: no roll_interval */
    uint64_t commit_every_ns;  /* commit_interval; 0: every batch */
    int manifest_written;      /* a manifest write succeeded since process() last reported it */
    uint64_t commit_bytes;     /* 0: no commit_bytes */
    uint64_t last_commit_mono; /* CLOCK_MONOTONIC of the last manifest write */
    char id_field[SL__SINK_ID_FIELD_MAX + 1]; /* "" when switched off */
    char tag[9];                              /* 8 hex digits of (pipeline, sink) */
    char root[PATH_MAX];                      /* fixed directory part of the template */
    char *rel_tmpl;                           /* the template below root */
    char manifest[PATH_MAX], manifest_tmp[PATH_MAX];
    /* the in-progress file (invariant 1) */
    char base[PATH_MAX], cur[PATH_MAX], tmp[PATH_MAX];
    unsigned index;
    int fd;
    uint64_t size, committed, opened_ns;
    int created;     /* tmp was created since the last commit: fsync its directory */
    int dirty;       /* memory is ahead of the manifest (invariant 2) */
    int broken;      /* a rollback failed: leave the files to the next start's recovery */
    int damaged;     /* inspect mode: the manifest could not be used (damage_msg says why) */
    int no_manifest; /* init found no manifest */
    char damage_msg[SL_ERROR_MSG_MAX];
    /* the rest of the manifest */
    char *finished[FILE_KEEP_FINISHED];
    size_t nfinished;
    uint64_t finished_total;
    struct src_entry *srcs;
    size_t nsrcs;
    uint64_t records, commit_ns;
    uint64_t c_records, c_commit_ns; /* as of the last manifest write (invariant 7) */
    struct sl_buf out, mbuf;
};

static const struct sl_option file_options[] = {
    {.name = "path",
     .type = SL_OPT_PATH,
     .required = 1,
     .help = "Output file; a strftime template expanded in UTC per batch "
             "(out/clicks-%Y-%m-%d.ndjson). Directories are created as needed."},
    {.name = "format",
     .type = SL_OPT_ENUM,
     .def = "ndjson",
     .choices = "ndjson",
     .help = "Output format: ndjson writes each record as one line of compact JSON."},
    {.name = "max_bytes",
     .type = SL_OPT_SIZE,
     .def = "0",
     .help = "Finish a file and start the next (name.1.ext, name.2.ext, ...) before a batch "
             "would take it past this size; 0 never does."},
    {.name = "roll_interval",
     .type = SL_OPT_DURATION,
     .def = "0",
     .help = "Finish a file once it has been open this long (checked when a batch arrives); "
             "0 never does."},
    {.name = "commit_interval",
     .type = SL_OPT_DURATION,
     .def = "250ms",
     .help = "exactly_once: commit (fsync + manifest) at the first batch after this much time "
             "since the last commit, and at every file roll, flush and close; batches in "
             "between are appended but not yet committed. 0 commits every batch. Longer "
             "means fewer fsyncs and more throughput, but output becomes committed (and a "
             "crash re-reads) up to this much later."},
    {.name = "commit_bytes",
     .type = SL_OPT_SIZE,
     .def = "0",
     .help = "exactly_once: also commit once this many bytes were appended since the last "
             "commit; 0 never does."},
    {.name = "fsync",
     .type = SL_OPT_BOOL,
     .def = "true",
     .help = "fsync the data, the manifest and their directories at every commit; false "
             "survives a crash of sluice but not a power loss."},
    {.name = "id_field",
     .type = SL_OPT_STRING,
     .def = "_sluice_id",
     .help = "Field added to every object record holding its record id (32 hex digits); "
             "\"\" switches it off."},
    {0},
};

/* ---- names ---------------------------------------------------------------------------- */

/* Conversions a template may use: fixed-width numbers and %%. Anything locale-dependent or
 * containing spaces is refused so that file names stay predictable. */
static const char template_convs[] = "YmdHMSjyGVuFTsz%";

static sl_rc check_template(const char *name, const struct sl_cfg_node *node, const char *t,
                            struct sl_error *err)
{
    if (!*t)
        return sl_cfg_error(err, node, "sinks.%s.path: is empty; name the output file", name);
    if (strlen(t) >= PATH_MAX)
        return sl_cfg_error(err, node, "sinks.%s.path: longer than %d bytes", name, PATH_MAX - 1);
    for (const char *p = t; *p; p++) {
        if (*p != '%')
            continue;
        p++;
        if (!*p || !strchr(template_convs, *p))
            return sl_cfg_error(err, node,
                                "sinks.%s.path: \"%%%.1s\" is not a supported time conversion; "
                                "use %%Y %%m %%d %%H %%M %%S %%j %%y %%G %%V %%u %%F %%T %%s %%z, "
                                "or %%%% for a literal %%",
                                name, p);
    }
    if (t[strlen(t) - 1] == '/')
        return sl_cfg_error(err, node, "sinks.%s.path: \"%s\" names a directory; name a file", name,
                            t);
    return SL_OK;
}

/* Expand the template for time now into out[PATH_MAX] (root/expansion). */
static sl_rc expand_path(const struct file_sink *s, time_t now, char *out, struct sl_error *err)
{
    struct tm tm;
    char name[PATH_MAX];
    if (!gmtime_r(&now, &tm))
        return sl_error_set(err, SL_EINVAL, "the clock is out of range");
        /* The template is the user's format string by design; check_template vetted it. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    size_t n = strftime(name, sizeof name, s->rel_tmpl, &tm);
#pragma GCC diagnostic pop
    if (n == 0)
        return sl_error_set(err, SL_ELIMIT,
                            "path template \"%s\" expands to nothing or to more than %d bytes",
                            s->rel_tmpl, PATH_MAX - 1);
    int w = snprintf(out, PATH_MAX, "%s/%s", s->root, name);
    if (w < 0 || w >= PATH_MAX)
        return sl_error_set(err, SL_ELIMIT, "output path %s/%s is too long", s->root, name);
    return SL_OK;
}

/* A path below root as the manifest stores it (invariant 4). */
static const char *rel_name(const struct file_sink *s, const char *path)
{
    size_t n = strlen(s->root);
    return strncmp(path, s->root, n) == 0 && path[n] == '/' ? path + n + 1 : path;
}

/*
 * The name of file number index of base: base itself for 0, else the number inserted
 * before the extension of the last path component.
 */
static sl_rc rotated_name(const char *base, unsigned index, char *out, struct sl_error *err)
{
    int w;
    if (index == 0) {
        w = snprintf(out, PATH_MAX, "%s", base);
    } else {
        const char *slash = strrchr(base, '/');
        const char *file = slash ? slash + 1 : base;
        const char *dot = strrchr(file, '.');
        if (!dot || dot == file) /* no extension, or a dot file like .log */
            w = snprintf(out, PATH_MAX, "%s.%u", base, index);
        else
            w = snprintf(out, PATH_MAX, "%.*s.%u%s", (int)(dot - base), base, index, dot);
    }
    if (w < 0 || w >= PATH_MAX)
        return sl_error_set(err, SL_ELIMIT, "the rotated name of %s is too long", base);
    return SL_OK;
}

/* The in-progress name of final file path: dir/.NAME.TAG.inprogress. */
static sl_rc temp_name(const struct file_sink *s, const char *path, char *out, struct sl_error *err)
{
    const char *slash = strrchr(path, '/');
    int dlen = slash ? (int)(slash - path + 1) : 0;
    int w = snprintf(out, PATH_MAX, "%.*s.%s.%s.inprogress", dlen, path, path + dlen, s->tag);
    if (w < 0 || w >= PATH_MAX)
        return sl_error_set(err, SL_ELIMIT, "the in-progress name of %s is too long", path);
    return SL_OK;
}

/* ---- file system helpers --------------------------------------------------------------- */

/* dir[PATH_MAX] = the directory part of path ("." when none). */
static void parent_of(const char *path, char *dir)
{
    snprintf(dir, PATH_MAX, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, PATH_MAX, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
}

/* mkdir -p of the directory part of path. */
static sl_rc make_parent_dirs(const char *path, struct sl_error *err)
{
    char dir[PATH_MAX];
    parent_of(path, dir);
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return SL_OK;
        return sl_error_set(err, SL_EIO, "%s exists and is not a directory", dir);
    }
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0777) != 0 && errno != EEXIST)
            return sl_error_sys(err, SL_EIO, errno, "creating directory %s", dir);
        *p = '/';
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return sl_error_sys(err, SL_EIO, errno, "creating directory %s", dir);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return sl_error_set(err, SL_EIO, "%s exists and is not a directory", dir);
    return SL_OK;
}

/* fsync the directory holding path, so an entry created or renamed there is durable. */
static sl_rc sync_parent_dir(const char *path, struct sl_error *err)
{
    char dir[PATH_MAX];
    parent_of(path, dir);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return sl_error_sys(err, SL_EIO, errno, "opening directory %s to fsync it", dir);
    int rc = fsync(dfd);
    int e = errno;
    close(dfd);
    if (rc != 0 && e != EINVAL) /* some file systems cannot sync directories */
        return sl_error_sys(err, SL_EIO, e, "fsync of directory %s", dir);
    return SL_OK;
}

static sl_rc write_fd(int fd, const char *path, const char *p, size_t n, struct sl_error *err)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            return sl_error_sys(err, (e == ENOSPC || e == EDQUOT) ? SL_RETRY : SL_EIO, e,
                                "writing %s", path);
        }
        p += w;
        n -= (size_t)w;
    }
    return SL_OK;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* For commit_interval: immune to the wall clock being set. */
static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the manifest in memory -------------------------------------------------------------- */

static struct src_entry *find_src(struct file_sink *s, const char *name)
{
    for (size_t i = 0; i < s->nsrcs; i++)
        if (strcmp(s->srcs[i].name, name) == 0)
            return &s->srcs[i];
    return NULL;
}

static struct src_entry *add_src(struct file_sink *s, const char *name, size_t n)
{
    if (s->nsrcs >= FILE_MAX_SOURCES)
        return NULL;
    char *copy = sl_strndup(name, n);
    if (!copy)
        return NULL;
    struct src_entry *e = &s->srcs[s->nsrcs++];
    memset(e, 0, sizeof *e);
    e->name = copy;
    return e;
}

/* Replace e->position by p (owned by the entry from now on), keeping a shared c_position. */
static void set_position(struct src_entry *e, char *p)
{
    if (e->position != e->c_position)
        sl_free(e->position);
    e->position = p;
}

static void drop_src(struct file_sink *s, size_t i)
{
    sl_free(s->srcs[i].name);
    set_position(&s->srcs[i], NULL);
    sl_free(s->srcs[i].c_position);
    s->srcs[i] = s->srcs[--s->nsrcs];
}

/* The manifest on disk now holds the state in memory: remember it as committed
 * (invariant 7). Shares the position strings, so it cannot fail. */
static void mark_committed(struct file_sink *s)
{
    for (size_t i = 0; i < s->nsrcs; i++) {
        struct src_entry *e = &s->srcs[i];
        if (e->c_position != e->position) {
            sl_free(e->c_position);
            e->c_position = e->position;
        }
        e->c_records = e->records;
        e->c_commit_ns = e->commit_ns;
    }
    s->c_records = s->records;
    s->c_commit_ns = s->commit_ns;
}

/* Remember a finished file (invariant 5: the oldest name falls off). */
static sl_rc push_finished(struct file_sink *s, const char *rel)
{
    char *copy = sl_strdup(rel);
    if (!copy)
        return SL_ENOMEM;
    if (s->nfinished == FILE_KEEP_FINISHED) {
        sl_free(s->finished[0]);
        memmove(s->finished, s->finished + 1, (FILE_KEEP_FINISHED - 1) * sizeof *s->finished);
        s->nfinished--;
    }
    s->finished[s->nfinished++] = copy;
    s->finished_total++;
    return SL_OK;
}

static void clear_manifest_state(struct file_sink *s)
{
    while (s->nsrcs)
        drop_src(s, s->nsrcs - 1);
    for (size_t i = 0; i < s->nfinished; i++)
        sl_free(s->finished[i]);
    s->nfinished = 0;
    s->finished_total = 0;
    s->records = s->commit_ns = 0;
    s->c_records = s->c_commit_ns = 0;
}

/* Serialize the state as manifest format 1 into s->mbuf. */
static sl_rc manifest_json(struct file_sink *s)
{
    struct sl_buf *m = &s->mbuf;
    sl_rc rc;
    sl_buf_clear(m);
    rc = sl_buf_printf(m, "{\"format\":%d,\"pipeline\":", FILE_MANIFEST_FORMAT);
#define PUT(expr)                                                                                  \
    do {                                                                                           \
        if (rc == SL_OK)                                                                           \
            rc = (expr);                                                                           \
    } while (0)
    PUT(sl_json_write_str(m, s->pipeline, strlen(s->pipeline)));
    PUT(sl_buf_puts(m, ",\"sink\":"));
    PUT(sl_json_write_str(m, s->name, strlen(s->name)));
    PUT(sl_buf_puts(m, ",\n\"in_progress\":"));
    if (s->base[0]) {
        const char *t = rel_name(s, s->tmp), *c = rel_name(s, s->cur), *b = rel_name(s, s->base);
        PUT(sl_buf_puts(m, "{\"temp\":"));
        PUT(sl_json_write_str(m, t, strlen(t)));
        PUT(sl_buf_puts(m, ",\"file\":"));
        PUT(sl_json_write_str(m, c, strlen(c)));
        PUT(sl_buf_puts(m, ",\"base\":"));
        PUT(sl_json_write_str(m, b, strlen(b)));
        PUT(sl_buf_printf(m, ",\"index\":%u,\"length\":%" PRIu64 ",\"opened_ns\":%" PRIu64 "}",
                          s->index, s->size, s->opened_ns));
    } else {
        PUT(sl_buf_puts(m, "null"));
    }
    PUT(sl_buf_printf(m, ",\n\"finished_total\":%" PRIu64 ",\"finished\":[", s->finished_total));
    for (size_t i = 0; i < s->nfinished; i++) {
        PUT(sl_buf_puts(m, i ? ",\n  " : "\n  "));
        PUT(sl_json_write_str(m, s->finished[i], strlen(s->finished[i])));
    }
    PUT(sl_buf_puts(m, "],\n\"sources\":{"));
    for (size_t i = 0; i < s->nsrcs; i++) {
        const struct src_entry *e = &s->srcs[i];
        PUT(sl_buf_puts(m, i ? ",\n  " : "\n  "));
        PUT(sl_json_write_str(m, e->name, strlen(e->name)));
        if (!e->position) {
            PUT(sl_buf_puts(m, ":{\"position\":null"));
        } else if (sl_utf8_valid(e->position, strlen(e->position), NULL)) {
            PUT(sl_buf_puts(m, ":{\"position\":"));
            PUT(sl_json_write_str(m, e->position, strlen(e->position)));
        } else {
            /* A JSON string holds only UTF-8; a position naming a file whose name is not
             * UTF-8 is stored as hex digits instead, so it round-trips byte for byte. */
            PUT(sl_buf_puts(m, ":{\"position_hex\":\""));
            for (const unsigned char *c = (const unsigned char *)e->position; *c; c++)
                PUT(sl_buf_printf(m, "%02x", *c));
            PUT(sl_buf_putc(m, '"'));
        }
        PUT(sl_buf_printf(m, ",\"records\":%" PRIu64 ",\"commit_ns\":%" PRIu64 "}", e->records,
                          e->commit_ns));
    }
    PUT(sl_buf_printf(m, "},\n\"records\":%" PRIu64 ",\"commit_ns\":%" PRIu64 "}\n", s->records,
                      s->commit_ns));
#undef PUT
    return rc;
}

/*
 * Write the manifest: temp file, fsync, rename over the manifest, fsync of its directory.
 * The rename is the commit point. Clears dirty and sets committed on success.
 */
static sl_rc manifest_write(struct file_sink *s, struct sl_error *err)
{
    sl_rc rc = manifest_json(s);
    if (rc)
        return sl_error_set(err, rc,
                            "the manifest of sink %s is larger than %zu MiB (too many or too "
                            "long source positions?)",
                            s->name, FILE_MANIFEST_MAX >> 20);
    if ((rc = make_parent_dirs(s->manifest, err)))
        return rc;
    int fd = open(s->manifest_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0)
        return sl_error_sys(err, SL_EIO, errno, "creating %s", s->manifest_tmp);
    rc = write_fd(fd, s->manifest_tmp, s->mbuf.data, s->mbuf.len, err);
    if (rc == SL_OK && s->do_fsync && fsync(fd) != 0)
        rc = sl_error_sys(err, SL_EIO, errno, "fsync %s", s->manifest_tmp);
    if (close(fd) != 0 && rc == SL_OK)
        rc = sl_error_sys(err, SL_EIO, errno, "closing %s", s->manifest_tmp);
    if (rc == SL_OK && rename(s->manifest_tmp, s->manifest) != 0)
        rc = sl_error_sys(err, SL_EIO, errno, "renaming %s to %s", s->manifest_tmp, s->manifest);
    if (rc) {
        unlink(s->manifest_tmp);
        return rc;
    }
    /* Committed from here on, even if the directory sync below fails (callers check dirty). */
    s->committed = s->size;
    s->dirty = 0;
    s->last_commit_mono = mono_ns();
    mark_committed(s);
    if (s->do_fsync && (rc = sync_parent_dir(s->manifest, err)))
        return rc;
    s->manifest_written = 1;
    return SL_OK;
}

/* ---- reading the manifest ------------------------------------------------------------ */

static int member(const struct sl_value *obj, const char *key, struct sl_arena *a,
                  struct sl_value *out)
{
    return obj->type == SL_V_OBJECT && sl_value_member(obj, key, strlen(key), a, out);
}

/* A non-negative integer member; 0 when absent. -1 when present but not one. */
static int member_u64(const struct sl_value *obj, const char *key, struct sl_arena *a,
                      uint64_t *out)
{
    struct sl_value v;
    int64_t i;
    *out = 0;
    if (!member(obj, key, a, &v) || v.type == SL_V_NULL)
        return 0;
    if (v.type != SL_V_NUMBER || !v.u.num.text || !sl_json_num_to_i64(v.u.num.text, v.len, &i) ||
        i < 0)
        return -1;
    *out = (uint64_t)i;
    return 0;
}

/* A string member into out[PATH_MAX] below root; -1 when absent, not a string or too long. */
static int member_path(const struct file_sink *s, const struct sl_value *obj, const char *key,
                       struct sl_arena *a, char *out)
{
    struct sl_value v;
    if (!member(obj, key, a, &v) || v.type != SL_V_STRING || v.len == 0 ||
        memchr(v.u.str, '\0', v.len))
        return -1;
    int w = snprintf(out, PATH_MAX, "%s/%.*s", s->root, (int)v.len, v.u.str);
    return w < 0 || w >= PATH_MAX ? -1 : 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decode n lowercase hex digits into a new NUL-terminated string. SL_EPARSE, SL_ENOMEM. */
static sl_rc unhex(const char *h, size_t n, char **out)
{
    if (n % 2)
        return SL_EPARSE;
    char *p = sl_malloc(n / 2 + 1);
    if (!p)
        return SL_ENOMEM;
    for (size_t i = 0; i < n; i += 2) {
        int hi = hexval(h[i]), lo = hexval(h[i + 1]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            sl_free(p);
            return SL_EPARSE;
        }
        p[i / 2] = (char)(hi * 16 + lo);
    }
    p[n / 2] = '\0';
    *out = p;
    return SL_OK;
}

/*
 * Load the manifest into the state. SL_OK (also when there is none), SL_EPARSE for a damaged
 * one and SL_EUNSUPPORTED for an unknown format (err says which and what to do), SL_EIO,
 * SL_ENOMEM. The in-progress file is only named here (base/cur/tmp/size), not opened.
 */
static sl_rc manifest_read(struct file_sink *s, struct sl_error *err)
{
    struct sl_arena a;
    struct sl_json_parser *p = NULL;
    char *text = NULL;
    sl_rc rc = SL_OK;
    sl_arena_init(&a, 0);
    int fd = open(s->manifest, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
            s->no_manifest = 1;
            return SL_OK; /* nothing committed yet (the first write reports a bad directory) */
        }
        return sl_error_sys(err, SL_EIO, errno, "opening %s", s->manifest);
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = sl_error_sys(err, SL_EIO, errno, "fstat %s", s->manifest);
        goto out;
    }
    if ((uint64_t)st.st_size > FILE_MANIFEST_MAX) {
        rc = sl_error_set(err, SL_EPARSE, "is larger than %zu MiB", FILE_MANIFEST_MAX >> 20);
        goto out;
    }
    size_t n = (size_t)st.st_size;
    text = sl_malloc(n + 1);
    if (!text) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto out;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, text + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = sl_error_sys(err, SL_EIO, r < 0 ? errno : EIO, "reading %s", s->manifest);
            goto out;
        }
        got += (size_t)r;
    }
    if ((rc = sl_json_parser_create(&p))) {
        rc = sl_error_set(err, rc, "out of memory");
        goto out;
    }
    struct sl_tape tape;
    struct sl_json_error je;
    struct sl_value root, v, ip;
    rc = sl_json_parse(p, text, n, 16, &a, &tape, &je);
    if (rc == SL_EPARSE) {
        rc = sl_error_set(err, SL_EPARSE, "is not valid JSON (byte %zu: %s)", je.offset, je.msg);
        goto out;
    }
    if (rc || (rc = sl_value_from_tape(&tape, 0, &a, &root))) {
        rc = sl_error_set(err, rc, "reading it: %s", sl_strerror(rc));
        goto out;
    }
    uint64_t format;
    if (root.type != SL_V_OBJECT || member_u64(&root, "format", &a, &format) != 0 || format == 0) {
        rc = sl_error_set(err, SL_EPARSE, "has no \"format\" number");
        goto out;
    }
    if (format != FILE_MANIFEST_FORMAT) {
        rc = sl_error_set(err, SL_EUNSUPPORTED,
                          "has format %" PRIu64 ", which this version of sluice does not know "
                          "(it reads and writes format %d); run the version that wrote it",
                          format, FILE_MANIFEST_FORMAT);
        goto out;
    }
    if (member(&root, "in_progress", &a, &ip) && ip.type == SL_V_OBJECT) {
        uint64_t index;
        if (member_path(s, &ip, "temp", &a, s->tmp) || member_path(s, &ip, "file", &a, s->cur) ||
            member_path(s, &ip, "base", &a, s->base) || member_u64(&ip, "index", &a, &index) ||
            index >= FILE_MAX_ROTATIONS || member_u64(&ip, "length", &a, &s->size) ||
            member_u64(&ip, "opened_ns", &a, &s->opened_ns)) {
            s->base[0] = '\0';
            rc = sl_error_set(err, SL_EPARSE, "has a malformed \"in_progress\" entry");
            goto out;
        }
        s->index = (unsigned)index;
        s->committed = s->size;
    } else if (member(&root, "in_progress", &a, &ip) && ip.type != SL_V_NULL) {
        rc = sl_error_set(err, SL_EPARSE, "has a malformed \"in_progress\" entry");
        goto out;
    }
    if (member_u64(&root, "finished_total", &a, &s->finished_total) ||
        member_u64(&root, "records", &a, &s->records) ||
        member_u64(&root, "commit_ns", &a, &s->commit_ns)) {
        rc = sl_error_set(err, SL_EPARSE, "has a malformed count or time");
        goto out;
    }
    if (member(&root, "finished", &a, &v) && v.type == SL_V_ARRAY) {
        uint32_t cnt = sl_value_count(&v);
        uint64_t total = s->finished_total;
        for (uint32_t i = cnt > FILE_KEEP_FINISHED ? cnt - FILE_KEEP_FINISHED : 0; i < cnt; i++) {
            struct sl_value f;
            char *copy;
            if (sl_value_index(&v, i, &a, &f) != SL_OK || f.type != SL_V_STRING) {
                rc = sl_error_set(err, SL_EPARSE, "has a malformed \"finished\" list");
                goto out;
            }
            if (!(copy = sl_strndup(f.u.str, f.len))) {
                rc = sl_error_set(err, SL_ENOMEM, "out of memory");
                goto out;
            }
            s->finished[s->nfinished++] = copy;
        }
        s->finished_total = total;
    }
    if (member(&root, "sources", &a, &v) && v.type == SL_V_OBJECT) {
        struct sl_value obj;
        if ((rc = sl_value_materialize(&v, &a, &obj))) {
            rc = sl_error_set(err, rc, "out of memory");
            goto out;
        }
        for (uint32_t i = 0; i < obj.len; i++) {
            const struct sl_member *mb = &obj.u.members[i];
            struct sl_value pos;
            struct src_entry *e = add_src(s, mb->key, mb->klen);
            if (!e) {
                rc = sl_error_set(err, s->nsrcs >= FILE_MAX_SOURCES ? SL_EPARSE : SL_ENOMEM,
                                  "holds too many sources, or memory ran out");
                goto out;
            }
            if (mb->val.type != SL_V_OBJECT || member_u64(&mb->val, "records", &a, &e->records) ||
                member_u64(&mb->val, "commit_ns", &a, &e->commit_ns)) {
                rc = sl_error_set(err, SL_EPARSE, "has a malformed entry for source \"%s\"",
                                  e->name);
                goto out;
            }
            if (member(&mb->val, "position", &a, &pos) && pos.type == SL_V_STRING) {
                if (!(e->position = sl_strndup(pos.u.str, pos.len))) {
                    rc = sl_error_set(err, SL_ENOMEM, "out of memory");
                    goto out;
                }
            } else if (member(&mb->val, "position_hex", &a, &pos) && pos.type == SL_V_STRING) {
                if ((rc = unhex(pos.u.str, pos.len, &e->position))) {
                    rc = sl_error_set(err, rc, "has a malformed position for source \"%s\"",
                                      e->name);
                    goto out;
                }
            }
        }
    }
out:
    if (fd >= 0)
        close(fd);
    sl_json_parser_destroy(p);
    sl_free(text);
    sl_arena_fini(&a);
    return rc;
}

/* ---- recovery ------------------------------------------------------------------------------ */

/*
 * Whether the directory of path holds output of this sink: an in-progress file with its
 * tag, or (base != NULL) a file named like base or one of its numbered names. found gets
 * the first such path. A directory that cannot be listed holds nothing.
 */
#define FOUND_MAX (PATH_MAX + 256) /* a directory and a name in it */

static int find_output(const struct file_sink *s, const char *path, const char *base, char *found)
{
    char dir[PATH_MAX], suffix[32];
    parent_of(path, dir);
    snprintf(suffix, sizeof suffix, ".%s.inprogress", s->tag);
    size_t sl = strlen(suffix);
    /* base's last component split around the number rotated_name inserts. */
    const char *bname = NULL, *ext = "";
    size_t stem = 0;
    if (base) {
        const char *slash = strrchr(base, '/');
        bname = slash ? slash + 1 : base;
        const char *dot = strrchr(bname, '.');
        if (dot && dot != bname)
            ext = dot;
        stem = (size_t)((*ext ? ext : bname + strlen(bname)) - bname);
    }
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    int hit = 0;
    while (!hit && (de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        size_t len = strlen(n);
        if (n[0] == '.' && len > sl + 1 && strcmp(n + len - sl, suffix) == 0) {
            hit = 1;
        } else if (bname && strcmp(n, bname) == 0) {
            hit = 1;
        } else if (bname && strncmp(n, bname, stem) == 0 && n[stem] == '.') {
            /* stem.N.ext (stem.N without an extension), N a number from 1 */
            const char *q = n + stem + 1;
            size_t digits = strspn(q, "0123456789");
            hit = digits > 0 && q[0] != '0' && strcmp(q + digits, ext) == 0;
        }
        if (hit)
            snprintf(found, FOUND_MAX, "%s/%s", dir, n);
    }
    closedir(d);
    return hit;
}

/* Whether `sluice reset` set a damaged manifest aside here (MANIFEST.damaged-NS). */
static int manifest_set_aside(const struct file_sink *s)
{
    const char *slash = strrchr(s->manifest, '/');
    const char *mname = slash ? slash + 1 : s->manifest;
    char prefix[PATH_MAX + 16];
    snprintf(prefix, sizeof prefix, "%s.damaged-", mname);
    DIR *d = opendir(s->root[0] ? s->root : "/");
    if (!d)
        return 0;
    struct dirent *de;
    int hit = 0;
    while (!hit && (de = readdir(d)) != NULL)
        hit = strncmp(de->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return hit;
}

/*
 * No manifest: refuse to start when output of this sink is already there. The manifest
 * is what says which records those files hold; without it the sources would be read from
 * the start and every record written again beside the old ones. A fresh start (nothing
 * found) and a start after `sluice reset` set a damaged manifest aside go ahead.
 */
static sl_rc guard_lost_manifest(struct file_sink *s, struct sl_error *err)
{
    char now_base[PATH_MAX], found[FOUND_MAX];
    sl_rc rc;
    if ((rc = expand_path(s, time(NULL), now_base, err)))
        return rc;
    char root_probe[PATH_MAX + 4];
    snprintf(root_probe, sizeof root_probe, "%s/x", s->root);
    if (!find_output(s, now_base, now_base, found) && !find_output(s, root_probe, NULL, found))
        return SL_OK;
    if (manifest_set_aside(s)) {
        sl_warn(s->name,
                "no manifest %s but %s exists; a damaged manifest was set aside by `sluice "
                "reset`, so delivering everything again as asked",
                s->manifest, found);
        return SL_OK;
    }
    return sl_error_set(err, SL_ESTATE,
                        "sink %s: there is no manifest %s, but %s exists: output of an earlier "
                        "run whose manifest was deleted or moved. Without the manifest the sink "
                        "cannot tell which records that output holds, and starting over would "
                        "write all of them again. Restore the manifest, or remove or move the "
                        "old output files of this sink (its in-progress .*.%s.inprogress files "
                        "and the files its path names) before running again; `sluice reset` "
                        "does not help, there is no manifest to reset",
                        s->name, s->manifest, found, s->tag);
}

/* Delete this sink's in-progress files in the directory of path other than s->tmp. */
static sl_rc delete_unknown_temps(struct file_sink *s, const char *path, struct sl_error *err)
{
    char dir[PATH_MAX], suffix[32], victim[PATH_MAX];
    parent_of(path, dir);
    snprintf(suffix, sizeof suffix, ".%s.inprogress", s->tag);
    size_t sl = strlen(suffix);
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT || errno == ENOTDIR
                   ? SL_OK
                   : sl_error_sys(err, SL_EIO, errno, "listing %s", dir);
    struct dirent *de;
    sl_rc rc = SL_OK;
    while (rc == SL_OK && (de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (de->d_name[0] != '.' || n <= sl + 1 || strcmp(de->d_name + n - sl, suffix) != 0)
            continue;
        int w = snprintf(victim, sizeof victim, "%s/%s", dir, de->d_name);
        if (w < 0 || w >= (int)sizeof victim || (s->base[0] && strcmp(victim, s->tmp) == 0))
            continue;
        sl_warn(s->name,
                "removing %s: an in-progress file the manifest does not know (written "
                "before a crash, never committed)",
                victim);
        if (unlink(victim) != 0 && errno != ENOENT)
            rc = sl_error_sys(err, SL_EIO, errno, "removing %s", victim);
    }
    closedir(d);
    return rc;
}

/* Bring the files in line with the manifest just read (see the top of this file). */
static sl_rc recover(struct file_sink *s, struct sl_error *err)
{
    sl_rc rc;
    if (unlink(s->manifest_tmp) == 0)
        sl_info(s->name, "removed %s, a manifest write cut short by a crash", s->manifest_tmp);
    if (s->base[0]) {
        int fd = open(s->tmp, O_RDWR | O_APPEND | O_CLOEXEC);
        struct stat st;
        if (fd < 0 && errno != ENOENT)
            return sl_error_sys(err, SL_EIO, errno, "opening %s", s->tmp);
        if (fd < 0) {
            uint64_t len = s->size;
            int fin = stat(s->cur, &st) == 0 && S_ISREG(st.st_mode);
            if (fin && (uint64_t)st.st_size == len) {
                /* Renamed, then the crash came before the manifest said so. */
                sl_info(s->name, "%s was finished just before a crash; recording it", s->cur);
                if ((rc = push_finished(s, rel_name(s, s->cur))))
                    return sl_error_set(err, rc, "out of memory");
            } else if (len > 0) {
                return sl_error_set(err, SL_ESTATE,
                                    "the manifest %s says %s holds %" PRIu64 " committed bytes, "
                                    "but it is gone%s; restore it, or run `sluice reset` to "
                                    "deliver everything again",
                                    s->manifest, s->tmp, len,
                                    fin ? " and its final name has another length" : "");
            }
            s->base[0] = '\0';
            s->size = s->committed = 0;
            if ((rc = manifest_write(s, err)))
                return rc;
        } else {
            if (fstat(fd, &st) != 0) {
                rc = sl_error_sys(err, SL_EIO, errno, "fstat %s", s->tmp);
                close(fd);
                return rc;
            }
            if ((uint64_t)st.st_size < s->size) {
                close(fd);
                return sl_error_set(err, SL_ESTATE,
                                    "%s is %lld bytes long but the manifest %s committed %" PRIu64
                                    " (a power loss with fsync: false?); committed output is "
                                    "lost: run `sluice reset` to deliver everything again",
                                    s->tmp, (long long)st.st_size, s->manifest, s->size);
            }
            if ((uint64_t)st.st_size > s->size) {
                sl_warn(s->name,
                        "cutting %s back to its committed %" PRIu64 " bytes (%llu bytes of "
                        "batches that were written but never committed)",
                        s->tmp, s->size, (unsigned long long)((uint64_t)st.st_size - s->size));
                if (ftruncate(fd, (off_t)s->size) != 0 || (s->do_fsync && fsync(fd) != 0)) {
                    rc = sl_error_sys(err, SL_EIO, errno, "truncating %s", s->tmp);
                    close(fd);
                    return rc;
                }
            }
            s->fd = fd;
        }
    }
    if (s->base[0] && (rc = delete_unknown_temps(s, s->tmp, err)))
        return rc;
    char now_base[PATH_MAX];
    if ((rc = expand_path(s, time(NULL), now_base, err)))
        return rc;
    return delete_unknown_temps(s, now_base, err);
}

/* ---- the in-progress file ------------------------------------------------------------------ */

static void close_current(struct file_sink *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    s->base[0] = '\0';
    s->size = s->committed = 0;
}

/* Commit what was appended (fsync, then the manifest). Part of every batch in exactly_once. */
static sl_rc commit(struct file_sink *s, struct sl_error *err)
{
    sl_rc rc;
    if (s->fd >= 0 && s->do_fsync && fsync(s->fd) != 0)
        return sl_error_sys(err, SL_EIO, errno,
                            "fsync %s failed; the data of the last batch may not be on disk, "
                            "check the device",
                            s->tmp);
    if (s->fd >= 0 && s->created && s->do_fsync && (rc = sync_parent_dir(s->tmp, err)))
        return rc;
    s->created = 0;
    return manifest_write(s, err);
}

/*
 * Finish the in-progress file: make sure the manifest has its exact length, rename it to
 * its final name (never over an existing file), and record it as finished.
 */
static sl_rc finish_current(struct file_sink *s, struct sl_error *err)
{
    sl_rc rc;
    if (s->fd < 0)
        return SL_OK;
    if ((s->dirty || s->committed != s->size) && (rc = commit(s, err)))
        return rc;
    if (renameat2(AT_FDCWD, s->tmp, AT_FDCWD, s->cur, RENAME_NOREPLACE) != 0) {
        if (errno == EEXIST)
            return sl_error_set(err, SL_ESTATE,
                                "cannot finish %s: %s was created by someone else meanwhile; "
                                "move it away and run again",
                                s->tmp, s->cur);
        return sl_error_sys(err, SL_EIO, errno, "renaming %s to %s", s->tmp, s->cur);
    }
    if (s->do_fsync && (rc = sync_parent_dir(s->cur, err)))
        return rc;
    if ((rc = push_finished(s, rel_name(s, s->cur))))
        return sl_error_set(err, rc, "out of memory");
    close_current(s);
    return manifest_write(s, err);
}

/*
 * Start a new in-progress file in base, numbered from `from` on: the first number whose
 * final and in-progress names are both free. The manifest names it before it exists, so a
 * crash can never leave a file of this sink the manifest does not know about.
 */
static sl_rc open_new(struct file_sink *s, const char *base, unsigned from, struct sl_error *err)
{
    char cur[PATH_MAX], tmp[PATH_MAX];
    sl_rc rc;
    unsigned i;
    if ((rc = make_parent_dirs(base, err)))
        return rc;
    for (i = from; i < FILE_MAX_ROTATIONS; i++) {
        if ((rc = rotated_name(base, i, cur, err)) || (rc = temp_name(s, cur, tmp, err)))
            return rc;
        if (access(cur, F_OK) != 0 && access(tmp, F_OK) != 0)
            break;
    }
    if (i == FILE_MAX_ROTATIONS)
        return sl_error_set(err, SL_ELIMIT,
                            "%s reached %u numbered files; raise max_bytes or put a time in "
                            "the path template",
                            base, FILE_MAX_ROTATIONS);
    snprintf(s->base, sizeof s->base, "%s", base);
    memcpy(s->cur, cur, sizeof cur);
    memcpy(s->tmp, tmp, sizeof tmp);
    s->index = i;
    s->size = 0;
    s->opened_ns = now_ns();
    if ((rc = manifest_write(s, err)))
        goto fail;
    int fd = open(s->tmp, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) {
        rc = sl_error_sys(err, SL_EIO, errno, "creating %s; check that its directory is writable",
                          s->tmp);
        goto fail;
    }
    s->fd = fd;
    s->created = 1;
    return SL_OK;
fail:
    /* The manifest may name the file; with length 0 a missing file is harmless. */
    s->base[0] = '\0';
    return rc;
}

/*
 * Make the in-progress file the right one for a batch of n bytes in base: finish the
 * current file first when base changed, when it is too old, or when the batch would take
 * it past max_bytes (only at batch boundaries, so a finished file holds only committed
 * batches).
 */
static sl_rc ensure_file(struct file_sink *s, const char *base, uint64_t n, struct sl_error *err)
{
    sl_rc rc;
    unsigned from = 0;
    if (s->fd >= 0) {
        int same = strcmp(base, s->base) == 0;
        int old = s->roll_ns && now_ns() - s->opened_ns >= s->roll_ns;
        int full = s->max_bytes && s->size > 0 && s->size + n > s->max_bytes;
        if (same && !old && !full)
            return SL_OK;
        if (same)
            from = s->index + 1;
        if ((rc = finish_current(s, err)))
            return rc;
    }
    return open_new(s, base, from, err);
}

/* ---- plugin callbacks ------------------------------------------------------------------ */

static void file_close(void *state);

/* root = the directory part of the template before its first conversion, resolved. */
static sl_rc split_template(struct file_sink *s, const char *tmpl, const char *dir,
                            struct sl_error *err)
{
    const char *pct = strchr(tmpl, '%');
    size_t fixed = pct ? (size_t)(pct - tmpl) : strlen(tmpl);
    const char *slash = NULL;
    for (size_t i = 0; i < fixed; i++)
        if (tmpl[i] == '/')
            slash = tmpl + i;
    int w;
    const char *rest = slash ? slash + 1 : tmpl;
    int dlen = slash ? (int)(slash - tmpl) : 0;
    if (tmpl[0] == '/')
        w = snprintf(s->root, sizeof s->root, "%.*s", dlen ? dlen : 1, tmpl);
    else if (dir && *dir)
        w = snprintf(s->root, sizeof s->root, "%s%s%.*s", dir, dlen ? "/" : "", dlen, tmpl);
    else
        w = snprintf(s->root, sizeof s->root, "%.*s", dlen ? dlen : 1, dlen ? tmpl : ".");
    if (w < 0 || w >= (int)sizeof s->root)
        return sl_error_set(err, SL_ELIMIT, "output directory of %s is too long", tmpl);
    if (strcmp(s->root, "/") == 0)
        s->root[0] = '\0'; /* paths become "/name" */
    s->rel_tmpl = sl_strdup(rest);
    if (!s->rel_tmpl)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    /* 8 hex digits of (pipeline, sink): in-progress and manifest names of this sink only. */
    uint32_t h = 2166136261u;
    for (const char *p = s->pipeline; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    h = (h ^ 0xffu) * 16777619u;
    for (const char *p = s->name; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    snprintf(s->tag, sizeof s->tag, "%08x", h);
    w = snprintf(s->manifest, sizeof s->manifest, "%s/.sluice.%s.%s.manifest", s->root, s->name,
                 s->tag);
    if (w < 0 || w >= (int)sizeof s->manifest ||
        snprintf(s->manifest_tmp, sizeof s->manifest_tmp, "%s.tmp", s->manifest) >=
            (int)sizeof s->manifest_tmp)
        return sl_error_set(err, SL_ELIMIT, "the manifest path in %s is too long", s->root);
    return SL_OK;
}

static sl_rc file_init(const struct sl_plugin_ctx *ctx, void **state, struct sl_error *err)
{
    const char *tmpl, *format;
    uint64_t max_bytes, roll_ms, commit_ms, commit_bytes;
    int do_fsync;
    char id_field[SL__SINK_ID_FIELD_MAX + 1];
    sl_rc rc = sl_cfg_get_str(ctx->node, "path", NULL, &tmpl, err);
    if (rc)
        return rc;
    if (!tmpl)
        return sl_cfg_error(err, ctx->node, "sinks.%s: missing required option path", ctx->name);
    rc = check_template(ctx->name, sl_cfg_get(ctx->node, "path"), tmpl, err);
    if (rc)
        return rc;
    if ((rc = sl_cfg_get_str(ctx->node, "format", "ndjson", &format, err)) ||
        (rc = sl_cfg_get_size(ctx->node, "max_bytes", 0, &max_bytes, err)) ||
        (rc = sl_cfg_get_duration(ctx->node, "roll_interval", 0, &roll_ms, err)) ||
        (rc = sl_cfg_get_duration(ctx->node, "commit_interval", 250, &commit_ms, err)) ||
        (rc = sl_cfg_get_size(ctx->node, "commit_bytes", 0, &commit_bytes, err)) ||
        (rc = sl_cfg_get_bool(ctx->node, "fsync", 1, &do_fsync, err)) ||
        (rc = sl__sink_id_field(ctx, id_field, err)))
        return rc;
    if (strcmp(format, "ndjson") != 0)
        return sl_cfg_error(err, sl_cfg_get(ctx->node, "format"),
                            "sinks.%s.format: \"%s\" is not supported; the file sink writes "
                            "ndjson",
                            ctx->name, format);

    struct file_sink *s = sl_calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    s->name = ctx->name;
    s->pipeline = ctx->pipeline ? ctx->pipeline : "";
    s->source_names = ctx->source_names;
    s->nsources = ctx->nsources;
    s->exactly_once = ctx->exactly_once;
    s->inspect = ctx->inspect;
    s->fd = -1;
    s->do_fsync = do_fsync;
    s->max_bytes = max_bytes;
    s->roll_ns = roll_ms * 1000000u;
    s->commit_every_ns = commit_ms * 1000000u;
    s->commit_bytes = commit_bytes;
    memcpy(s->id_field, id_field, sizeof id_field);
    sl_buf_init(&s->out, FILE_BUF_MAX);
    sl_buf_init(&s->mbuf, FILE_MANIFEST_MAX);
    s->srcs = sl_calloc(FILE_MAX_SOURCES, sizeof *s->srcs);
    if (!s->srcs) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = split_template(s, tmpl, ctx->doc ? ctx->doc->dir : NULL, err)))
        goto fail;
    /* Expanding once now turns a template that can never work into a config error. */
    char probe[PATH_MAX];
    if ((rc = expand_path(s, time(NULL), probe, err)))
        goto fail;
    rc = manifest_read(s, err);
    if (rc == SL_EPARSE || rc == SL_EUNSUPPORTED) {
        char why[SL_ERROR_MSG_MAX];
        snprintf(why, sizeof why, "%s", err->msg);
        clear_manifest_state(s);
        s->base[0] = '\0';
        sl_error_set(err, rc,
                     "sink %s: the manifest %s %s; it says which output is committed, so the "
                     "sink cannot start without it: run `sluice reset` on this pipeline to set it "
                     "aside and deliver everything again (outputs are kept)",
                     s->name, s->manifest, why);
        if (!s->inspect)
            goto fail;
        /* Inspection still opens, so that `sluice reset` can set the manifest aside. */
        s->damaged = 1;
        snprintf(s->damage_msg, sizeof s->damage_msg, "%s", err->msg);
        rc = SL_OK;
    }
    if (rc)
        goto fail;
    mark_committed(s);
    if (!s->inspect && s->no_manifest && (rc = guard_lost_manifest(s, err)))
        goto fail;
    if (!s->inspect && (rc = recover(s, err)))
        goto fail;
    s->last_commit_mono = mono_ns();
    *state = s;
    return SL_OK;
fail:
    file_close(s);
    return rc;
}

/* Record a batch's records and position for its source (in memory). */
static sl_rc note_batch(struct file_sink *s, const struct sl_batch *b, uint32_t written,
                        uint64_t when, struct sl_error *err)
{
    if (!s->source_names || b->source >= s->nsources || !s->source_names[b->source]) {
        if (b->position)
            return sl_error_set(err, SL_ESTATE, "batch from unknown source #%u", b->source);
        return SL_OK;
    }
    const char *src = b->checkpoint ? b->checkpoint : s->source_names[b->source];
    struct src_entry *e = find_src(s, src);
    if (!e && !(e = add_src(s, src, strlen(src))))
        return sl_error_set(err, SL_ENOMEM, "out of memory (or more than %d sources)",
                            FILE_MAX_SOURCES);
    if (b->position) {
        char *p = sl_strdup(b->position);
        if (!p)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        set_position(e, p);
    }
    e->records += written;
    e->commit_ns = when;
    s->records += written;
    s->commit_ns = when;
    s->dirty = 1;
    return SL_OK;
}

/*
 * Whether the batch just appended must be committed now (exactly_once): always with
 * commit_interval 0, else once the interval has passed since the last manifest write or
 * commit_bytes are waiting. The appends in between stay uncommitted (dirty): recovery cuts
 * them off after a crash, and finish_current, flush and close commit them.
 */
static int commit_due(const struct file_sink *s)
{
    if (s->commit_every_ns == 0)
        return 1;
    if (s->commit_bytes && s->size - s->committed >= s->commit_bytes)
        return 1;
    return mono_ns() - s->last_commit_mono >= s->commit_every_ns;
}

/* Undo a failed batch: cut the in-progress file back to start_size. */
static sl_rc rollback(struct file_sink *s, uint64_t start_size)
{
    if (s->fd < 0)
        return SL_OK;
    /* Unconditionally: a write that failed half way has not been counted in size. */
    if (ftruncate(s->fd, (off_t)start_size) != 0)
        return SL_EIO;
    s->size = start_size;
    return SL_OK;
}

static sl_rc file_process(void *state, struct sl_batch *b, struct sl_worker *w,
                          struct sl_error *err)
{
    struct file_sink *s = state;
    if (s->inspect || s->broken)
        return sl_error_set(err, SL_ESTATE, "sink %s cannot write (%s)", s->name,
                            s->inspect ? "opened for inspection" : "an earlier rollback failed");
    const char *origin = b->origin ? b->origin : "(input)";
    uint32_t written = 0;
    uint64_t start_size = s->size;
    int have_file = 0;
    char base[PATH_MAX];
    sl_rc rc = SL_OK;
    /* Saved so that a failed batch leaves the in-memory manifest as it was. */
    struct src_entry saved = {0};
    struct src_entry *e = NULL;
    uint64_t saved_records = s->records, saved_ns = s->commit_ns;
    int saved_dirty = s->dirty;
    size_t saved_nsrcs = s->nsrcs;

    if (sl_batch_live(b) > 0) {
        if ((rc = expand_path(s, time(NULL), base, err)))
            return rc;
        for (uint32_t i = 0; i < b->n; i++) {
            struct sl_record *r = &b->recs[i];
            if (r->flags & (SL_REC_DROPPED | SL_REC_BAD))
                continue;
            size_t mark = s->out.len;
            rc = sl__sink_append_line(&s->out, b, r, s->id_field);
            if (rc == SL_ELIMIT && mark > 0) {
                /* The buffer is full: write what it holds and go on. */
                if ((!have_file && (rc = ensure_file(s, base, mark, err))) ||
                    (rc = write_fd(s->fd, s->tmp, s->out.data, mark, err)))
                    goto fail;
                if (!have_file)
                    start_size = s->size;
                have_file = 1;
                s->size += mark;
                sl_buf_clear(&s->out);
                rc = sl__sink_append_line(&s->out, b, r, s->id_field);
            }
            if (rc == SL_ELIMIT) {
                rc = sl_error_set(err, SL_ELIMIT,
                                  "record at %s:%u serializes to more than %zu MiB, the "
                                  "output buffer's limit; split the record upstream",
                                  origin, r->line, FILE_BUF_MAX >> 20);
                goto fail;
            }
            if (rc) {
                rc = sl_error_set(err, rc, "serializing record at %s:%u: %s", origin, r->line,
                                  sl_strerror(rc));
                goto fail;
            }
            written++;
        }
        if (!have_file) {
            if ((rc = ensure_file(s, base, s->out.len, err)))
                goto fail;
            start_size = s->size;
            have_file = 1;
        }
        if ((rc = write_fd(s->fd, s->tmp, s->out.data, s->out.len, err)))
            goto fail;
        s->size += s->out.len;
        sl_buf_clear(&s->out);
    }
    if (b->source < s->nsources && s->source_names && s->source_names[b->source] &&
        (e = find_src(s, b->checkpoint ? b->checkpoint : s->source_names[b->source])) != NULL) {
        saved = *e;
        if (saved.position && !(saved.position = sl_strdup(saved.position))) {
            e = NULL; /* nothing changed in it yet */
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
            goto fail;
        }
    }
    if ((rc = note_batch(s, b, written, now_ns(), err)))
        goto fail;
    int committed_now = s->exactly_once && commit_due(s);
    if (committed_now && (rc = commit(s, err))) {
        if (!s->dirty) {
            /* The manifest was renamed into place: the batch is committed, only a later
             * sync failed. Undoing it now would leave the manifest ahead of the file. */
            if (e)
                sl_free(saved.position);
            return rc == SL_RETRY ? SL_EIO : rc;
        }
        goto fail;
    }
    if (e)
        sl_free(saved.position);
    /*
     * A manifest write in this call made every earlier batch durable (plugin.h
     * defers_commit): the engine may now let sources release their data.
     */
    if (s->manifest_written) {
        s->manifest_written = 0;
        if (w && w->durable)
            w->durable(w, committed_now);
    }
    return SL_OK;

fail:
    sl_buf_clear(&s->out);
    if (s->nsrcs > saved_nsrcs)
        drop_src(s, s->nsrcs - 1); /* the entry note_batch added */
    if (e) {
        /* e still points at the entry: note_batch never moves existing entries. The c_*
         * fields are left alone: no manifest write succeeded on this path. */
        set_position(e, saved.position);
        e->records = saved.records;
        e->commit_ns = saved.commit_ns;
    }
    s->records = saved_records;
    s->commit_ns = saved_ns;
    s->dirty = saved_dirty;
    if (have_file && rollback(s, start_size) != SL_OK) {
        s->broken = 1;
        sl_error_prefix(err,
                        "the failed batch could not be removed from %s; the next start cuts it "
                        "off: ",
                        s->tmp);
        return rc == SL_RETRY ? SL_EIO : rc;
    }
    return rc;
}

static sl_rc file_committed(void *state, const char *source, char **position, struct sl_error *err)
{
    struct file_sink *s = state;
    *position = NULL;
    if (s->damaged)
        return sl_error_set(err, SL_ESTATE, "%s", s->damage_msg);
    struct src_entry *e = source ? find_src(s, source) : NULL;
    if (e && e->c_position && !(*position = sl_strdup(e->c_position)))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    return SL_OK;
}

static sl_rc file_commit_info(void *state, const char *source, uint64_t *records,
                              uint64_t *commit_ns, struct sl_error *err)
{
    struct file_sink *s = state;
    *records = *commit_ns = 0;
    if (s->damaged)
        return sl_error_set(err, SL_ESTATE, "%s", s->damage_msg);
    struct src_entry *e = source ? find_src(s, source) : NULL;
    if (e) {
        *records = e->c_records;
        *commit_ns = e->c_commit_ns;
    } else if (!source) { /* all sources together */
        *records = s->c_records;
        *commit_ns = s->c_commit_ns;
    }
    return SL_OK;
}

/*
 * Forget the positions (and counts) of source, or of every source. Output files, finished
 * or in progress, are kept: the next run delivers those records again.
 */
static sl_rc file_reset(void *state, const char *source, struct sl_error *err)
{
    struct file_sink *s = state;
    if (s->damaged) {
        char aside[PATH_MAX + 32];
        snprintf(aside, sizeof aside, "%s.damaged-%" PRIu64, s->manifest, now_ns());
        if (rename(s->manifest, aside) != 0 && errno != ENOENT)
            return sl_error_sys(err, SL_EIO, errno, "moving %s aside", s->manifest);
        sl_warn(s->name, "moved the damaged manifest to %s", aside);
        s->damaged = 0;
        return SL_OK;
    }
    if (access(s->manifest, F_OK) != 0)
        return SL_OK; /* nothing was ever committed */
    for (size_t i = s->nsrcs; i-- > 0;) {
        if (source && strcmp(s->srcs[i].name, source) != 0)
            continue;
        s->records -= s->srcs[i].records < s->records ? s->srcs[i].records : s->records;
        drop_src(s, i);
    }
    s->size = s->committed; /* the manifest keeps the committed length of a file in progress */
    return manifest_write(s, err);
}

/*
 * Set the committed position of source to position (`sluice reset --to-position`): the
 * manifest is written again (temp, fsync, rename, directory fsync, as every commit) with
 * only that entry changed; its records count is kept and its commit time becomes now.
 * Output files are kept as they are: the records after position are delivered again and
 * appended (to a new file once the current one is finished), so the outputs then hold
 * them twice. On failure the manifest on disk and the state in memory are both unchanged.
 * Whether position lies behind the old one is the caller's question (the source orders
 * positions; the sink cannot).
 */
static sl_rc file_rewind(void *state, const char *source, const char *position,
                         struct sl_error *err)
{
    struct file_sink *s = state;
    sl_rc rc;
    if (!source || !position)
        return sl_error_set(err, SL_EINVAL, "sink %s: rewind needs a source and a position",
                            s->name);
    if (s->damaged)
        return sl_error_set(err, SL_ESTATE,
                            "%s; a damaged manifest cannot be rewound, only set aside by a reset "
                            "to the start",
                            s->damage_msg);
    if (s->broken)
        return sl_error_set(err, SL_ESTATE,
                            "sink %s: a failed batch could not be undone; restart the pipeline "
                            "so that recovery cuts it off, then rewind",
                            s->name);
    /* A running sink first commits what it holds, so the manifest names all of it. */
    if (!s->inspect && s->dirty && (rc = commit(s, err)))
        return rc;
    char *copy = sl_strdup(position);
    if (!copy)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    struct src_entry *e = find_src(s, source);
    int added = 0;
    if (!e) {
        if (!(e = add_src(s, source, strlen(source)))) {
            sl_free(copy);
            return sl_error_set(err, s->nsrcs >= FILE_MAX_SOURCES ? SL_ELIMIT : SL_ENOMEM,
                                "sink %s: cannot add source %s to the manifest (at most %d "
                                "sources, or out of memory)",
                                s->name, source, FILE_MAX_SOURCES);
        }
        added = 1;
    }
    char *old = e->position;
    int shared = old == e->c_position; /* then c_position owns old */
    uint64_t old_ns = e->commit_ns;
    e->position = copy;
    e->commit_ns = now_ns();
    s->dirty = 1; /* invariant 2: memory is ahead until manifest_write renames */
    rc = manifest_write(s, err);
    if (rc && s->dirty) {
        /* Not renamed into place: the manifest on disk still has the old entry. */
        if (added) {
            drop_src(s, (size_t)(e - s->srcs)); /* the last entry: nothing moves */
        } else {
            sl_free(e->position);
            e->position = old;
            e->commit_ns = old_ns;
            old = NULL;
        }
        s->dirty = 0;
    }
    if (!shared)
        sl_free(old); /* else mark_committed freed it, or it is e->position again */
    return rc;
}

static sl_rc file_flush(void *state, struct sl_error *err)
{
    struct file_sink *s = state;
    if (s->inspect || s->broken || !s->dirty)
        return SL_OK;
    return commit(s, err);
}

static void file_close(void *state)
{
    struct file_sink *s = state;
    if (!s)
        return;
    if (!s->inspect && !s->broken && s->fd >= 0) {
        struct sl_error err;
        sl_error_clear(&err);
        if (finish_current(s, &err) != SL_OK)
            sl_error_log(s->name, "finishing %s at close: %s; the next start recovers it", s->tmp,
                         err.msg);
    } else if (!s->inspect && !s->broken && s->dirty) {
        struct sl_error err;
        sl_error_clear(&err);
        if (manifest_write(s, &err) != SL_OK)
            sl_error_log(s->name, "writing the manifest at close: %s", err.msg);
    }
    if (s->fd >= 0)
        close(s->fd);
    if (s->srcs)
        clear_manifest_state(s);
    sl_free(s->srcs);
    sl_buf_fini(&s->out);
    sl_buf_fini(&s->mbuf);
    sl_free(s->rel_tmpl);
    sl_free(s);
}

const struct sl_plugin sl_sink_file = {
    .kind = SL_PLUGIN_SINK,
    .name = "file",
    .defers_commit = 1,
    .description = "Writes records as NDJSON lines to files named by a UTC time template, "
                   "committing each batch and its source positions through a manifest "
                   "(exactly-once).",
    .options = file_options,
    .init = file_init,
    .process = file_process,
    .committed = file_committed,
    .commit_info = file_commit_info,
    .reset = file_reset,
    .rewind = file_rewind,
    .flush = file_flush,
    .close = file_close,
};
