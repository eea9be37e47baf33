/*
 * file.c - the `file` sink: append live records as NDJSON lines to files named from a
 * template, rotating by size.
 *
 * What it does. `path` is a strftime-style template expanded in UTC each time a batch is
 * written (out/clicks-%Y-%m-%d.ndjson), so output splits by time without any timer. Within
 * one expanded name ("the base"), `max_bytes` rotates: when the next line would take the
 * current file past the limit, the sink continues in the next file of the sequence
 *
 *     out/clicks.ndjson, out/clicks.1.ndjson, out/clicks.2.ndjson, ...
 *
 * (the number goes before the extension, which is the part of the file name from its last
 * dot; a name without one gets the number appended: out/log, out/log.1). A single line
 * longer than max_bytes gets a file of its own. When the sink starts, or the template
 * expands to a new base, it continues in the highest-numbered existing file of that base.
 *
 * How it fits. Each batch is serialized into one reusable buffer and written with one
 * write(2) per file it touches, then committed by commit_batch (fsync of the file and,
 * when a file was created, of its directory). commit_batch is the single place where a
 * later version adds the checkpoint manifest of DESIGN.md section 4 (temporary file +
 * rename); until then the file sink is at-least-once: committed() answers "nothing", and a
 * replay after a crash may repeat lines of the last batches.
 *
 * Failures. A failed batch is rolled back before process returns: files created during
 * the batch are removed and the file it started in is truncated to its size before the
 * batch, so a retried batch does not duplicate lines. A full disk (ENOSPC, EDQUOT) returns
 * SL_RETRY after the rollback; other I/O errors are fatal. A file found ending in a partial
 * line (a crash mid-write before the data was committed) is cut back to its last complete
 * line when opened, with a warning.
 *
 * Threading and ownership. process, flush and close run on the sink's single thread. The
 * state owns its buffer, the current file descriptor and the path strings.
 */
#include <errno.h>
#include <fcntl.h>
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

#define FILE_BUF_MAX ((size_t)64 << 20) /* output buffer hard maximum */
#define FILE_MAX_ROTATIONS 1000000u     /* sanity bound on the rotation counter */

/*
 * Invariants:
 *   1. fd >= 0 iff base[0] != '\0'; then fd is open on the file named by (base, index),
 *      opened O_APPEND, and size is that file's length.
 *   2. out.len == 0 between calls to process.
 *   3. Every byte written by a batch that failed has been removed again (rollback), or
 *      process returned a fatal error saying the rollback failed.
 *   4. base, cur and the template are < PATH_MAX bytes including the NUL.
 */
struct file_sink {
    const char *name;    /* component name (outlives the state) */
    char *tmpl;          /* path template, absolute or relative to dir */
    char *dir;           /* config directory for relative templates */
    int do_fsync;        /* fsync after each batch */
    uint64_t max_bytes;  /* 0: no rotation */
    char base[PATH_MAX]; /* expanded template of the current file sequence */
    char cur[PATH_MAX];  /* name of the file fd is open on */
    unsigned index;      /* rotation number of cur within base; 0 is base itself */
    int fd;
    uint64_t size;
    int created; /* a file was created since the last commit: fsync its dir */
    struct sl_buf out;
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
     .help = "Rotate to the next file (name.1.ext, name.2.ext, ...) before a file would "
             "exceed this size; 0 never rotates."},
    {.name = "fsync",
     .type = SL_OPT_BOOL,
     .def = "true",
     .help = "fsync the file (and its directory when a file was created) after every batch."},
    {0},
};

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

/* Expand the template for time now into out[PATH_MAX], resolved against dir. */
static sl_rc expand_path(const struct file_sink *s, time_t now, char *out, struct sl_error *err)
{
    struct tm tm;
    char name[PATH_MAX];
    if (!gmtime_r(&now, &tm))
        return sl_error_set(err, SL_EINVAL, "the clock is out of range");
        /* The template is the user's format string by design; check_template vetted it. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    size_t n = strftime(name, sizeof name, s->tmpl, &tm);
#pragma GCC diagnostic pop
    if (n == 0)
        return sl_error_set(err, SL_ELIMIT,
                            "path template \"%s\" expands to nothing or to more than "
                            "%d bytes",
                            s->tmpl, PATH_MAX - 1);
    int w;
    if (name[0] == '/' || !s->dir || !*s->dir)
        w = snprintf(out, PATH_MAX, "%s", name);
    else
        w = snprintf(out, PATH_MAX, "%s/%s", s->dir, name);
    if (w < 0 || w >= PATH_MAX)
        return sl_error_set(err, SL_ELIMIT, "output path %s/%s is too long", s->dir, name);
    return SL_OK;
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

/* mkdir -p of the directory part of path. */
static sl_rc make_parent_dirs(const char *path, struct sl_error *err)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return SL_OK;
    *slash = '\0';
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
    return SL_OK;
}

/* fsync the directory holding path, so a newly created entry survives a power loss. */
static sl_rc sync_parent_dir(const char *path, struct sl_error *err)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
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

/*
 * A file that does not end in '\n' holds the start of a line whose batch never committed
 * (a crash mid-write). Cut it back to the last complete line so new lines do not join it.
 */
static sl_rc trim_partial_line(struct file_sink *s, struct sl_error *err)
{
    char chunk[4096];
    uint64_t end = s->size;
    while (end > 0) {
        size_t n = end < sizeof chunk ? (size_t)end : sizeof chunk;
        ssize_t r = pread(s->fd, chunk, n, (off_t)(end - n));
        if (r < 0 && errno == EINTR)
            continue;
        if (r != (ssize_t)n)
            return sl_error_sys(err, SL_EIO, r < 0 ? errno : EIO, "reading %s", s->cur);
        size_t i = n;
        while (i > 0 && chunk[i - 1] != '\n')
            i--;
        if (i > 0) {
            end = end - n + i;
            break;
        }
        end -= n;
    }
    if (end == s->size)
        return SL_OK;
    sl_warn(s->name,
            "%s ended in an incomplete line (%llu bytes) left by an interrupted write; "
            "removed it",
            s->cur, (unsigned long long)(s->size - end));
    if (ftruncate(s->fd, (off_t)end) != 0)
        return sl_error_sys(err, SL_EIO, errno, "truncating %s", s->cur);
    s->size = end;
    return SL_OK;
}

/* Open file number index of the current base for appending. */
static sl_rc open_index(struct file_sink *s, unsigned index, struct sl_error *err)
{
    sl_rc rc = rotated_name(s->base, index, s->cur, err);
    if (rc)
        return rc;
    /* Read access too: trim_partial_line looks at the end of an existing file. */
    int fd = open(s->cur, O_RDWR | O_APPEND | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        fd = open(s->cur, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
        s->created = 1;
    }
    if (fd < 0)
        return sl_error_sys(err, SL_EIO, errno,
                            "opening %s for appending; check that its directory is "
                            "writable",
                            s->cur);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = sl_error_sys(err, SL_EIO, errno, "fstat %s", s->cur);
        close(fd);
        return rc;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return sl_error_set(err, SL_EIO, "%s is not a regular file", s->cur);
    }
    s->fd = fd;
    s->index = index;
    s->size = (uint64_t)st.st_size;
    return trim_partial_line(s, err);
}

static void close_current(struct file_sink *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

/*
 * Make base the current sequence: continue in its highest-numbered existing file
 * (rotated files are numbered without gaps), or create the base file.
 */
static sl_rc switch_base(struct file_sink *s, const char *base, struct sl_error *err)
{
    close_current(s);
    s->base[0] = '\0';
    sl_rc rc = make_parent_dirs(base, err);
    if (rc)
        return rc;
    snprintf(s->base, sizeof s->base, "%s", base);
    unsigned last = 0;
    char name[PATH_MAX];
    for (unsigned i = 1; i < FILE_MAX_ROTATIONS; i++) {
        rc = rotated_name(base, i, name, err);
        if (rc)
            goto fail;
        if (access(name, F_OK) != 0)
            break;
        last = i;
    }
    rc = open_index(s, last, err);
    if (rc)
        goto fail;
    return SL_OK;
fail:
    s->base[0] = '\0';
    return rc;
}

static sl_rc write_all(struct file_sink *s, const char *p, size_t n, struct sl_error *err)
{
    while (n > 0) {
        ssize_t w = write(s->fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            return sl_error_sys(err, (e == ENOSPC || e == EDQUOT) ? SL_RETRY : SL_EIO, e,
                                "writing %s", s->cur);
        }
        p += w;
        n -= (size_t)w;
        s->size += (uint64_t)w;
    }
    return SL_OK;
}

static sl_rc sync_current(struct file_sink *s, struct sl_error *err)
{
    if (!s->do_fsync)
        return SL_OK;
    if (fsync(s->fd) != 0)
        return sl_error_sys(err, SL_EIO, errno,
                            "fsync %s failed; the data of the last batch may not be "
                            "on disk, check the device",
                            s->cur);
    return SL_OK;
}

/* Write out[0..n) to the current file, then move to the next file of the sequence. */
static sl_rc rotate(struct file_sink *s, size_t n, struct sl_error *err)
{
    sl_rc rc = write_all(s, s->out.data, n, err);
    if (rc == SL_OK)
        rc = sync_current(s, err);
    if (rc)
        return rc;
    if (s->index + 1 >= FILE_MAX_ROTATIONS)
        return sl_error_set(err, SL_ELIMIT,
                            "%s reached %u rotated files; raise max_bytes or put a "
                            "time in the path template",
                            s->base, FILE_MAX_ROTATIONS);
    close_current(s);
    rc = open_index(s, s->index + 1, err);
    if (rc)
        return rc;
    memmove(s->out.data, s->out.data + n, s->out.len - n);
    s->out.len -= n;
    return SL_OK;
}

/*
 * The commit point of a batch: everything the batch wrote becomes durable here. A
 * checkpoint manifest (temp + fsync + rename) belongs here too.
 */
static sl_rc commit_batch(struct file_sink *s, struct sl_error *err)
{
    sl_rc rc = sync_current(s, err);
    if (rc == SL_OK && s->created && s->do_fsync)
        rc = sync_parent_dir(s->cur, err);
    if (rc == SL_OK)
        s->created = 0;
    return rc;
}

/*
 * Undo a failed batch: remove the files it created after start_index and cut the file it
 * started in back to start_size. Returns SL_OK when the output is as before the batch.
 */
static sl_rc rollback(struct file_sink *s, unsigned start_index, uint64_t start_size)
{
    struct sl_error e;
    char name[PATH_MAX];
    if (!s->base[0])
        return SL_ESTATE;
    unsigned last = s->index;
    close_current(s);
    for (unsigned i = last; i > start_index; i--) {
        if (rotated_name(s->base, i, name, &e) != SL_OK)
            return SL_EIO;
        if (unlink(name) != 0 && errno != ENOENT)
            return SL_EIO;
    }
    if (open_index(s, start_index, &e) != SL_OK)
        return SL_EIO;
    if (s->size > start_size) {
        if (ftruncate(s->fd, (off_t)start_size) != 0)
            return SL_EIO;
        s->size = start_size;
    }
    return SL_OK;
}

static sl_rc file_init(const struct sl_plugin_ctx *ctx, void **state, struct sl_error *err)
{
    const char *tmpl, *format;
    uint64_t max_bytes;
    int do_fsync;
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
        (rc = sl_cfg_get_bool(ctx->node, "fsync", 1, &do_fsync, err)))
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
    s->fd = -1;
    s->do_fsync = do_fsync;
    s->max_bytes = max_bytes;
    sl_buf_init(&s->out, FILE_BUF_MAX);
    s->tmpl = sl_strdup(tmpl);
    s->dir = sl_strdup(ctx->doc && ctx->doc->dir ? ctx->doc->dir : "");
    if (!s->tmpl || !s->dir) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        goto fail;
    }
    /* Expanding once now turns a template that can never work into a config error. */
    char probe[PATH_MAX];
    rc = expand_path(s, time(NULL), probe, err);
    if (rc)
        goto fail;
    *state = s;
    return SL_OK;
fail:
    sl_free(s->tmpl);
    sl_free(s->dir);
    sl_buf_fini(&s->out);
    sl_free(s);
    return rc;
}

/* Serialize record r and its newline at the end of out; SL_ELIMIT leaves out unchanged. */
static sl_rc append_record(struct sl_buf *out, const struct sl_record *r)
{
    size_t mark = out->len;
    sl_rc rc = sl_record_write(r, out);
    if (rc == SL_OK)
        rc = sl_buf_putc(out, '\n');
    if (rc)
        out->len = mark;
    return rc;
}

static sl_rc file_process(void *state, struct sl_batch *b, struct sl_worker *w,
                          struct sl_error *err)
{
    struct file_sink *s = state;
    (void)w;
    if (sl_batch_live(b) == 0)
        return SL_OK; /* nothing to write: do not create empty files */

    char base[PATH_MAX];
    sl_rc rc = expand_path(s, time(NULL), base, err);
    if (rc)
        return rc;
    if (s->fd < 0 || strcmp(base, s->base) != 0) {
        rc = switch_base(s, base, err);
        if (rc)
            return rc;
    }
    unsigned start_index = s->index;
    uint64_t start_size = s->size;
    const char *origin = b->origin ? b->origin : "(input)";

    for (uint32_t i = 0; i < b->n; i++) {
        const struct sl_record *r = &b->recs[i];
        if (r->flags & (SL_REC_DROPPED | SL_REC_BAD))
            continue;
        size_t mark = s->out.len;
        rc = append_record(&s->out, r);
        if (rc == SL_ELIMIT && mark > 0) {
            /* The buffer is full: write what it holds to the current file and go on. */
            rc = write_all(s, s->out.data, mark, err);
            if (rc)
                goto fail;
            sl_buf_clear(&s->out);
            mark = 0;
            rc = append_record(&s->out, r);
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
        size_t line = s->out.len - mark;
        if (s->max_bytes && s->size + mark + line > s->max_bytes && s->size + mark > 0) {
            rc = rotate(s, mark, err);
            if (rc)
                goto fail;
        }
    }
    rc = write_all(s, s->out.data, s->out.len, err);
    if (rc)
        goto fail;
    sl_buf_clear(&s->out);
    rc = commit_batch(s, err);
    if (rc)
        goto fail;
    return SL_OK;

fail:
    sl_buf_clear(&s->out);
    if (rollback(s, start_index, start_size) != SL_OK) {
        close_current(s);
        s->base[0] = '\0';
        sl_error_prefix(err,
                        "the failed batch could not be removed from %s (the file "
                        "may end with part of it); ",
                        base);
        return rc == SL_RETRY ? SL_EIO : rc;
    }
    return rc;
}

static sl_rc file_committed(void *state, const char *source, char **position, struct sl_error *err)
{
    (void)state;
    (void)source;
    (void)err;
    *position = NULL; /* no manifest yet: replay from the other sinks' positions */
    return SL_OK;
}

static sl_rc file_flush(void *state, struct sl_error *err)
{
    struct file_sink *s = state;
    if (s->fd < 0)
        return SL_OK;
    return commit_batch(s, err);
}

static void file_close(void *state)
{
    struct file_sink *s = state;
    if (!s)
        return;
    close_current(s);
    sl_buf_fini(&s->out);
    sl_free(s->tmpl);
    sl_free(s->dir);
    sl_free(s);
}

const struct sl_plugin sl_sink_file = {
    .kind = SL_PLUGIN_SINK,
    .name = "file",
    .description = "Appends records as NDJSON lines to files named by a UTC time template, "
                   "rotating by size.",
    .options = file_options,
    .init = file_init,
    .process = file_process,
    .committed = file_committed,
    .flush = file_flush,
    .close = file_close,
};
