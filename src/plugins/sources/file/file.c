/*
 * file.c - the `file` source: NDJSON or CSV files, one path or a glob, read once or
 * followed like `tail -F`.
 *
 * How it fits: the engine calls read() on the source's own thread; each call fills one
 * batch with the records of ONE file (a batch never mixes files), sets b->origin to the
 * file's path and b->position to a checkpoint after the batch's last record. On restart
 * the engine hands the lowest committed position back through restore(), and reading
 * resumes exactly after the last committed record.
 *
 * Reading: the line splitter and window of lines.h (one copy per byte, memchr per line,
 * pread at explicit offsets so a file can be left and re-entered at any line start). CSV
 * rows go through csv.h. The window holds data of one file at a time; switching files
 * discards at most a partial line, which is read again when the file is re-entered.
 *
 * Files and order: `path` is one file or a glob(3) pattern; matches are read in strcmp
 * order of their paths. Without follow, a file is read to its end (a last line without
 * '\n' is a record) and closed, then the next one; when all are done read() returns
 * SL_EOF. With follow (and not --once) every matched file stays open and is polled:
 *
 *        +-------+  data   +---------+  limits reached  +--------+
 *   ---->| poll  |-------->| reading |----------------->| return |
 *        +-------+         +---------+                  +--------+
 *           |  ^  no data:       | end of data: check
 *           |  |  SL_AGAIN       v
 *           |  +------------ rotated? (path names another inode or is gone): finish
 *           |                the old file (its last partial line is a record), then
 *           |                open the new one from 0.  truncated? (size < offset):
 *           |                warn, restart at 0.
 *           +-- every poll_interval: re-run the glob, follow renames by inode, pick up
 *               new files.
 *
 * Identity and record ids: when a file is opened, its identity is fixed as a hash of
 * its first bytes (up to 1 KiB) plus its device and inode; record ids are derived from
 * (pipeline, source, identity, byte offset), so the same line of the same file always
 * gets the same id, also after a rename, and two files that happen to start alike never
 * share ids. The identity travels in the position so a resumed run keeps the ids.
 *
 * Positions (opaque to the engine; JSON):
 *   {"v":1,"before":B,"files":[{"path":P,"dev":D,"ino":I,"id":ID,"fp":H,"fp_len":N,
 *                              "offset":O,"line":L,"skip":S}, ...]}
 * One entry per file in progress: without follow only the current file, and B = 1 says
 * that every file sorting before it is finished; with follow every tracked file (B = 0).
 * fp/fp_len is a hash of the file's first fp_len bytes (grown up to 1 KiB as the file
 * is read) that restore() checks before trusting the offset: a file that changed under
 * the same name is read again from 0, with a warning.
 *
 * Threading: one source thread; no locks. Ownership: the state, entries, window and CSV
 * scratch are sl_malloc'd and freed by close(); everything a batch refers to is in the
 * batch arena.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "plugins/sources/file/csv.h"
#include "plugins/sources/file/lines.h"
#include "sluice/alloc.h"
#include "sluice/buf.h"
#include "sluice/log.h"
#include "sluice/plugin.h"
#include "sluice/record.h"

#define FP_MAX 1024                       /* bytes hashed for a file's fingerprint */
#define READ_BUDGET_NS (150 * 1000000ULL) /* read() returns within about this */
#define MAX_POSITION ((size_t)16 << 20)   /* hard limit on a position's size */
#define NONE SIZE_MAX                     /* file_src.cur when no file is in the window */

/*
 * One matched file.
 *
 * Invariants:
 *   1. fd >= 0 only while the file is open; an open file has dev/ino/id set.
 *   2. offset/line/skip describe where reading resumes (the start of a line, or the
 *      middle of an overlong line being skipped when skip) whenever the window does not
 *      hold this file; while it does, the window's off/line/skipping are authoritative.
 *   3. fp is the hash of the file's first fp_len bytes, fp_len <= FP_MAX.
 */
struct entry {
    char *path;
    int fd;
    uint64_t dev, ino;
    char id[96]; /* identity for record ids; "" until first opened or restored */
    uint64_t fp;
    uint32_t fp_len;
    uint64_t offset, line;
    int skip;
    int done;              /* without follow: read to the end */
    int restored;          /* offset came from a position: verify fp when opening */
    uint64_t truncated_at; /* wall clock (ns) of the last truncation seen, or 0 */
    int rescanned;         /* follow: the pattern was matched again since the path changed */
    uint64_t seen_size;    /* follow: the file's size when the window last left it */
};

static const struct sl_batch_limits default_limits = {1024, (size_t)1 << 20};

struct file_src {
    const char *pipeline, *name;
    int follow; /* follow and not --once */
    int csv;
    uint64_t poll_ms;
    const char *pattern;
    int is_glob;
    struct entry *files; /* sorted by path */
    size_t nfiles, cap;
    size_t cur; /* index of the file the window holds, or NONE */
    struct sl__lines win;
    struct sl__csv csvr;
    struct sl__emit emit;
    struct sl_buf pos; /* position scratch */
    uint64_t last_scan_ns;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* FNV-1a, 64-bit: a content fingerprint, not a security property. */
static uint64_t fnv(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Hash of the first n bytes of fd; -1 when the file is shorter or unreadable. */
static int hash_prefix(int fd, uint32_t n, uint64_t *h)
{
    char buf[FP_MAX];
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    *h = fnv(buf, n);
    return 0;
}

static int has_glob_chars(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->path, ((const struct entry *)b)->path);
}

static struct entry *find_path(struct file_src *s, const char *path)
{
    for (size_t i = 0; i < s->nfiles; i++)
        if (strcmp(s->files[i].path, path) == 0)
            return &s->files[i];
    return NULL;
}

static sl_rc add_entry(struct file_src *s, const char *path)
{
    if (s->nfiles == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        struct entry *f = sl_realloc(s->files, cap * sizeof *f);
        if (!f)
            return SL_ENOMEM;
        s->files = f;
        s->cap = cap;
    }
    struct entry *e = &s->files[s->nfiles];
    memset(e, 0, sizeof *e);
    e->path = sl_strdup(path);
    if (!e->path)
        return SL_ENOMEM;
    e->fd = -1;
    e->line = 1;
    s->nfiles++;
    return SL_OK;
}

static void close_entry(struct entry *e)
{
    if (e->fd >= 0)
        close(e->fd);
    e->fd = -1;
}

static void remove_entry(struct file_src *s, size_t i)
{
    int none = s->cur >= s->nfiles || s->cur == i;
    close_entry(&s->files[i]);
    sl_free(s->files[i].path);
    memmove(&s->files[i], &s->files[i + 1], (s->nfiles - i - 1) * sizeof *s->files);
    s->nfiles--;
    if (none)
        s->cur = NONE;
    else if (s->cur > i)
        s->cur--;
}

/* Sort the entries, keeping cur on the same file. */
static void sort_entries(struct file_src *s)
{
    const char *cur = s->cur < s->nfiles ? s->files[s->cur].path : NULL;
    if (s->nfiles > 1)
        qsort(s->files, s->nfiles, sizeof *s->files, entry_cmp);
    s->cur = NONE;
    for (size_t i = 0; cur && i < s->nfiles; i++)
        if (s->files[i].path == cur)
            s->cur = i;
}

/*
 * Run the glob (or check the plain path) and add files not seen before. In follow mode
 * a new path naming a file already tracked (same device and inode) is a rename: the
 * entry follows it instead of reading the file twice.
 */
static sl_rc scan_paths(struct file_src *s, struct sl_error *err)
{
    glob_t g;
    char *one[2] = {(char *)s->pattern, NULL};
    memset(&g, 0, sizeof g);
    sl_rc rc = SL_OK;
    if (s->is_glob) {
        int r = glob(s->pattern, GLOB_NOSORT, NULL, &g);
        if (r == GLOB_NOSPACE)
            return SL_ENOMEM;
        if (r != 0 && r != GLOB_NOMATCH)
            return sl_error_set(err, SL_EIO, "%s: cannot read the directories of the pattern",
                                s->pattern);
    } else {
        g.gl_pathc = 1;
        g.gl_pathv = one;
    }
    for (int pass = 0; pass < 2 && !rc; pass++) {
        for (size_t i = 0; i < g.gl_pathc && !rc; i++) {
            const char *p = g.gl_pathv[i];
            if (find_path(s, p))
                continue;
            struct stat st;
            if (stat(p, &st) != 0 || S_ISDIR(st.st_mode))
                continue;
            if (pass == 0) {
                /* Renames first: an open entry whose inode now lives at p. */
                for (size_t k = 0; k < s->nfiles; k++) {
                    struct entry *e = &s->files[k];
                    struct stat old;
                    if (e->fd < 0 || e->dev != (uint64_t)st.st_dev || e->ino != (uint64_t)st.st_ino)
                        continue;
                    if (stat(e->path, &old) == 0 && old.st_dev == st.st_dev &&
                        old.st_ino == st.st_ino)
                        continue; /* a hard link; the entry's own path still names it */
                    char *np = sl_strdup(p);
                    if (!np) {
                        rc = SL_ENOMEM;
                        break;
                    }
                    sl_info(s->name, "%s was renamed to %s; following it", e->path, p);
                    sl_free(e->path);
                    e->path = np;
                    break;
                }
            } else {
                rc = add_entry(s, p);
            }
        }
        sort_entries(s);
    }
    if (s->is_glob)
        globfree(&g);
    s->last_scan_ns = now_ns();
    return rc;
}

/*
 * The identity behind a file's record ids. After a truncation the file is new content
 * under an old inode, so the time of the truncation joins the identity.
 */
static void make_identity(struct entry *e)
{
    snprintf(e->id, sizeof e->id, "%016" PRIx64 ":%" PRIu32 ":%" PRIu64 ":%" PRIu64, e->fp,
             e->fp_len, e->dev, e->ino);
    if (e->truncated_at) {
        size_t n = strlen(e->id);
        snprintf(e->id + n, sizeof e->id - n, ":t%" PRIu64, e->truncated_at);
    }
}

/*
 * Open entry i, check a restored position against the file's content, and load the
 * window (and the CSV header) so reading continues at the entry's offset.
 * SL_OK; SL_ENOENT when the file vanished (follow mode copes); SL_EIO otherwise.
 */
static sl_rc open_entry(struct file_src *s, size_t i, struct sl_error *err)
{
    struct entry *e = &s->files[i];
    if (e->fd < 0) {
        int fd = open(e->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            int en = errno;
            return sl_error_sys(err, en == ENOENT ? SL_ENOENT : SL_EIO, en,
                                "file source %s: cannot open %s", s->name, e->path);
        }
        struct stat st;
        if (fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
            close(fd);
            return sl_error_set(err, SL_EIO, "file source %s: %s is not a readable file", s->name,
                                e->path);
        }
        uint64_t size = (uint64_t)st.st_size;
        if (e->restored) {
            uint64_t h;
            int same = hash_prefix(fd, e->fp_len, &h) == 0 && h == e->fp && e->offset <= size;
            if (!same) {
                sl_warn(s->name,
                        "%s is not the file the checkpoint describes (its first %u bytes "
                        "or its size changed); reading it from the start",
                        e->path, e->fp_len);
                e->offset = 0;
                e->line = 1;
                e->skip = 0;
                e->id[0] = '\0';
            }
            e->restored = 0;
        }
        e->fd = fd;
        if (!e->id[0]) {
            e->dev = (uint64_t)st.st_dev;
            e->ino = (uint64_t)st.st_ino;
            e->fp_len = (uint32_t)(size < FP_MAX ? size : FP_MAX);
            if (hash_prefix(fd, e->fp_len, &e->fp) != 0)
                e->fp_len = 0, e->fp = fnv("", 0);
            make_identity(e);
        } else {
            /* Restored identity: keep its ids. dev/ino now describe the open file. */
            e->dev = (uint64_t)st.st_dev;
            e->ino = (uint64_t)st.st_ino;
        }
    }
    s->emit.origin = e->path;
    sl_record_id_base(s->pipeline, s->name, e->id, s->emit.id_base);
    if (s->csv) {
        sl__csv_input_begin(&s->csvr);
        if (e->offset > 0) {
            sl_rc rc = sl__csv_read_header(&s->csvr, &s->win, e->fd, &s->emit, err);
            if (rc)
                return rc;
        }
    }
    sl__lines_reset(&s->win, e->offset, e->line, e->skip);
    s->cur = i;
    return SL_OK;
}

/* Save the window's place into the current entry (invariant 2) and let go of it. */
static void leave_current(struct file_src *s)
{
    if (s->cur >= s->nfiles)
        return;
    struct entry *e = &s->files[s->cur];
    e->offset = s->win.off;
    e->line = s->win.line;
    e->skip = s->win.skipping;
    /* A partial line the window read is not news until the file grows past it. (Counting
     * what was read, not the size now, so data appended meanwhile is not overlooked.) */
    e->seen_size = s->win.off + (s->win.end - s->win.start);
    s->cur = NONE;
}

/* Grow the content check of e up to FP_MAX bytes once that much has been read. */
static void grow_fp(struct entry *e, uint64_t off)
{
    if (e->fp_len >= FP_MAX || off <= e->fp_len || e->fd < 0)
        return;
    uint32_t n = (uint32_t)(off < FP_MAX ? off : FP_MAX);
    uint64_t h;
    if (hash_prefix(e->fd, n, &h) == 0) {
        e->fp = h;
        e->fp_len = n;
    }
}

static sl_rc put_json_str(struct sl_buf *b, const char *s)
{
    sl_rc rc = sl_buf_putc(b, '"');
    for (; !rc && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            rc = sl_buf_putc(b, '\\') ? SL_ENOMEM : sl_buf_putc(b, (char)c);
        else if (c < 0x20)
            rc = sl_buf_printf(b, "\\u%04x", c);
        else
            rc = sl_buf_putc(b, (char)c);
    }
    return rc ? rc : sl_buf_putc(b, '"');
}

static sl_rc put_entry(struct sl_buf *b, const struct entry *e, uint64_t off, uint64_t line,
                       int skip)
{
    sl_rc rc = sl_buf_puts(b, "{\"path\":");
    if (!rc)
        rc = put_json_str(b, e->path);
    if (!rc)
        rc = sl_buf_printf(b,
                           ",\"dev\":%" PRIu64 ",\"ino\":%" PRIu64
                           ",\"id\":\"%s\",\"fp\":\"%016" PRIx64 "\",\"fp_len\":%" PRIu32
                           ",\"offset\":%" PRIu64 ",\"line\":%" PRIu64 ",\"skip\":%d}",
                           e->dev, e->ino, e->id, e->fp, e->fp_len, off, line, skip);
    return rc;
}

/* Set b->origin and b->position for a batch of the current file. */
static sl_rc finish_batch(struct file_src *s, struct sl_batch *b)
{
    struct entry *cur = &s->files[s->cur];
    grow_fp(cur, s->win.off);
    struct sl_buf *p = &s->pos;
    sl_buf_clear(p);
    sl_rc rc = sl_buf_printf(p, "{\"v\":1,\"before\":%d,\"files\":[", s->follow ? 0 : 1);
    int first = 1;
    for (size_t i = 0; i < s->nfiles && !rc; i++) {
        const struct entry *e = &s->files[i];
        if (i != s->cur && (!s->follow || !e->id[0]))
            continue;
        if (!first)
            rc = sl_buf_putc(p, ',');
        first = 0;
        if (!rc && i == s->cur)
            rc = put_entry(p, e, s->win.off, s->win.line, s->win.skipping);
        else if (!rc)
            rc = put_entry(p, e, e->offset, e->line, e->skip);
    }
    if (!rc)
        rc = sl_buf_puts(p, "]}");
    if (rc)
        return rc == SL_ELIMIT ? SL_ENOMEM : rc;
    char *pos = sl_arena_strndup(&b->arena, p->data, p->len);
    char *origin = sl_arena_strdup(&b->arena, cur->path);
    if (!pos || !origin)
        return SL_ENOMEM;
    b->position = pos;
    b->origin = origin;
    return SL_OK;
}

static sl_rc produce(struct file_src *s, struct sl_batch *b, struct sl__span *sp, int at_eof,
                     struct sl_error *err)
{
    if (s->csv)
        return sl__csv_rows(&s->csvr, &s->win, b, sp, &s->emit, at_eof, err);
    return sl__lines_ndjson(&s->win, b, sp, &s->emit, at_eof);
}

/*
 * Read the current file into b until a batch limit (SL_OK), the end of the data now
 * available (SL_EOF; with final, a last partial line is taken), or the time budget
 * (SL_AGAIN). The span is flushed on return.
 */
static sl_rc read_current(struct file_src *s, struct sl_batch *b, struct sl__span *sp, int final,
                          uint64_t deadline, struct sl_error *err)
{
    struct entry *e = &s->files[s->cur];
    for (;;) {
        sl_rc rc = produce(s, b, sp, 0, err);
        if (rc == SL_OK)
            return sl__lines_flush(&s->win, b, sp, s->win.start);
        if (rc != SL_AGAIN)
            return rc;
        if ((rc = sl__lines_flush(&s->win, b, sp, s->win.start)))
            return rc;
        if (now_ns() > deadline)
            return SL_AGAIN;
        ssize_t got = sl__lines_fill(&s->win, sp, e->fd, 1);
        if (got < 0)
            return sl_error_sys(err, SL_EIO, (int)-got, "file source %s: cannot read %s", s->name,
                                e->path);
        if (got > 0)
            continue;
        if (final) {
            rc = produce(s, b, sp, 1, err);
            if (rc != SL_OK && rc != SL_AGAIN)
                return rc;
            sl_rc frc = sl__lines_flush(&s->win, b, sp, s->win.start);
            if (frc)
                return frc;
            if (rc == SL_OK)
                return SL_OK; /* full at the very end: the rest comes next call */
        }
        return SL_EOF;
    }
}

/* Without follow: the files one after another, each to its end. */
static sl_rc read_once(struct file_src *s, struct sl_batch *b, struct sl_error *err)
{
    uint64_t deadline = now_ns() + READ_BUDGET_NS;
    for (;;) {
        if (s->cur >= s->nfiles) {
            size_t i = 0;
            while (i < s->nfiles && s->files[i].done)
                i++;
            if (i == s->nfiles)
                return SL_EOF;
            sl_rc rc = open_entry(s, i, err);
            if (rc == SL_ENOENT && s->is_glob) {
                /* Matched at start, removed since: nothing of it can be read any more. */
                sl_warn(s->name, "%s was removed before it could be read; skipping it",
                        s->files[i].path);
                s->files[i].done = 1;
                continue;
            }
            if (rc)
                return rc == SL_ENOENT ? SL_EIO : rc;
        }
        struct sl__span sp;
        sl__lines_span_begin(&s->win, &sp, b);
        uint64_t before = s->win.off;
        sl_rc rc = read_current(s, b, &sp, 1, deadline, err);
        if (rc == SL_OK || (rc == SL_AGAIN && (b->n || s->win.off != before)))
            return finish_batch(s, b);
        if (rc == SL_AGAIN)
            return SL_AGAIN; /* the time budget went on opening files; call again */
        if (rc != SL_EOF)
            return rc;
        struct entry *e = &s->files[s->cur];
        e->done = 1;
        if (b->n || s->win.off != before) {
            rc = finish_batch(s, b);
            leave_current(s);
            close_entry(e);
            return rc;
        }
        leave_current(s);
        close_entry(e);
    }
}

/*
 * The file at entry i has no more data now: has it been truncated, rotated or removed?
 * Returns 1 when the entry changed state (so reading it again makes sense), 0 when it
 * simply has nothing new, -1 when it was removed from the list, 2 when the pattern was
 * matched again (entries may have moved).
 */
static int check_file(struct file_src *s, size_t i, struct sl_batch *b, struct sl__span *sp,
                      sl_rc *rcp, struct sl_error *err)
{
    struct entry *e = &s->files[i];
    struct stat fst, pst;
    *rcp = SL_OK;
    if (fstat(e->fd, &fst) == 0 && (uint64_t)fst.st_size < s->win.off) {
        sl_warn(s->name,
                "%s was truncated (size %lld, read up to %" PRIu64 "); reading it "
                "again from the start",
                e->path, (long long)fst.st_size, s->win.off);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        e->truncated_at = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
        e->offset = 0;
        e->line = 1;
        e->skip = 0;
        e->id[0] = '\0';
        close_entry(e);
        s->cur = NONE;
        return 1;
    }
    int gone = stat(e->path, &pst) != 0;
    if (!gone && (uint64_t)pst.st_dev == e->dev && (uint64_t)pst.st_ino == e->ino) {
        e->rescanned = 0;
        return 0;
    }
    if (s->is_glob && !e->rescanned) {
        /* Renamed to a name the pattern matches? Then the entry follows it (scan_paths)
         * rather than finishing it and reading it again as a new file. */
        e->rescanned = 1;
        leave_current(s);
        *rcp = scan_paths(s, err);
        return 2;
    }
    e->rescanned = 0;
    /* Rotated or removed: the old file is complete. Its last line may lack a '\n'. */
    *rcp = read_current(s, b, sp, 1, now_ns() + READ_BUDGET_NS, err);
    if (*rcp != SL_EOF)
        return 1; /* records (or an error): come back after this batch */
    *rcp = SL_OK;
    if (b->n)
        return 1;
    sl_info(s->name, "%s %s; finished reading the old file", e->path,
            gone ? "was removed" : "now names a new file");
    close_entry(e);
    s->cur = NONE;
    if (gone) {
        remove_entry(s, i);
        return -1;
    }
    e->offset = 0;
    e->line = 1;
    e->skip = 0;
    e->id[0] = '\0';
    e->truncated_at = 0;
    return 1;
}

/*
 * Whether a file the window does not hold may have something to do: new data, a size
 * below the offset (truncation), or a path that names another file now (rotation). Lets
 * the poll skip idle files without loading them into the window.
 */
static int has_news(const struct file_src *s, const struct entry *e)
{
    struct stat fst, pst;
    (void)s;
    if (e->fd < 0 || fstat(e->fd, &fst) != 0 || (uint64_t)fst.st_size != e->seen_size ||
        (uint64_t)fst.st_size < e->offset)
        return 1;
    if (stat(e->path, &pst) != 0)
        return 1;
    return (uint64_t)pst.st_dev != e->dev || (uint64_t)pst.st_ino != e->ino;
}

/* Follow mode: poll every tracked file, rescan the glob every poll_interval. */
static sl_rc read_follow(struct file_src *s, struct sl_batch *b, struct sl_error *err)
{
    uint64_t t0 = now_ns(), deadline = t0 + READ_BUDGET_NS;
    sl_rc rc;
    if (t0 - s->last_scan_ns >= s->poll_ms * 1000000ULL || !s->nfiles) {
        if ((rc = scan_paths(s, err)))
            return rc;
    }
    size_t n = s->nfiles, start = s->cur < s->nfiles ? s->cur : 0;
    for (size_t k = 0; k < n && s->nfiles; k++) {
        size_t i = (start + k) % s->nfiles;
        if (s->cur != i && !has_news(s, &s->files[i]))
            continue;
        if (s->cur != i) {
            leave_current(s);
            rc = open_entry(s, i, err);
            if (rc == SL_ENOENT) {
                remove_entry(s, i);
                continue;
            }
            if (rc)
                return rc;
        }
        for (int again = 0; again < 3; again++) {
            struct sl__span sp;
            sl__lines_span_begin(&s->win, &sp, b);
            uint64_t before = s->win.off;
            rc = read_current(s, b, &sp, 0, deadline, err);
            if (rc != SL_OK && rc != SL_EOF && rc != SL_AGAIN)
                return rc;
            if (b->n || s->win.off != before)
                return finish_batch(s, b);
            if (rc == SL_AGAIN)
                break;
            int st = check_file(s, i, b, &sp, &rc, err);
            if (rc && rc != SL_OK)
                return rc;
            if (st < 0)
                break;
            if (st == 2) /* entries re-sorted: indexes moved; the next call goes on */
                return SL_AGAIN;
            if (b->n)
                return finish_batch(s, b);
            if (st == 0)
                break;
            if (s->cur != i) {
                rc = open_entry(s, i, err);
                if (rc == SL_ENOENT)
                    break;
                if (rc)
                    return rc;
            }
        }
        if (s->nfiles < n) /* an entry was removed: indexes moved */
            break;
    }
    /* Nothing new anywhere: wait a little here so callers need not spin. */
    uint64_t spent = now_ns() - t0, wait = s->poll_ms * 1000000ULL;
    if (wait > 200000000ULL)
        wait = 200000000ULL;
    if (spent < wait) {
        struct timespec ts = {(time_t)((wait - spent) / 1000000000ULL),
                              (long)((wait - spent) % 1000000000ULL)};
        nanosleep(&ts, NULL);
    }
    return SL_AGAIN;
}

static sl_rc file_read(void *state, struct sl_batch *b, struct sl_error *err)
{
    struct file_src *s = state;
    return s->follow ? read_follow(s, b, err) : read_once(s, b, err);
}

/* ---- position parsing ---------------------------------------------------------------- */

struct pp {
    const char *p;
    int bad;
};

static void ws(struct pp *x)
{
    while (*x->p == ' ' || *x->p == '\n' || *x->p == '\t' || *x->p == '\r')
        x->p++;
}

static int lit(struct pp *x, char c)
{
    ws(x);
    if (*x->p != c)
        return 0;
    x->p++;
    return 1;
}

/* A JSON string (the escapes put_json_str writes) into out[0..cap). */
static int pstr(struct pp *x, char *out, size_t cap)
{
    size_t n = 0;
    if (!lit(x, '"'))
        return 0;
    for (;;) {
        char c = *x->p++;
        if (c == '\0')
            return 0;
        if (c == '"')
            break;
        if (c == '\\') {
            c = *x->p++;
            if (c == 'u') {
                unsigned v = 0;
                for (int k = 0; k < 4; k++) {
                    char h = *x->p++;
                    v = v * 16 + (unsigned)(h >= '0' && h <= '9'   ? h - '0'
                                            : h >= 'a' && h <= 'f' ? h - 'a' + 10
                                            : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                                                   : 99);
                    if (v > 0xff)
                        return 0;
                }
                c = (char)v;
            } else if (c == 'n') {
                c = '\n';
            } else if (c == 't') {
                c = '\t';
            } else if (c != '"' && c != '\\' && c != '/') {
                return 0;
            }
        }
        if (n + 1 >= cap)
            return 0;
        out[n++] = c;
    }
    out[n] = '\0';
    return 1;
}

static int pnum(struct pp *x, uint64_t *v)
{
    ws(x);
    if (*x->p < '0' || *x->p > '9')
        return 0;
    char *end;
    errno = 0;
    unsigned long long u = strtoull(x->p, &end, 10);
    if (errno)
        return 0;
    x->p = end;
    *v = u;
    return 1;
}

struct pos_entry {
    char path[4096];
    char id[96];
    char fp[24];
    uint64_t dev, ino, fp_len, offset, line, skip;
};

static int pentry(struct pp *x, struct pos_entry *pe)
{
    memset(pe, 0, sizeof *pe);
    if (!lit(x, '{'))
        return 0;
    int have_path = 0;
    do {
        char key[16];
        if (!pstr(x, key, sizeof key) || !lit(x, ':'))
            return 0;
        int ok;
        if (strcmp(key, "path") == 0)
            ok = have_path = pstr(x, pe->path, sizeof pe->path);
        else if (strcmp(key, "id") == 0)
            ok = pstr(x, pe->id, sizeof pe->id);
        else if (strcmp(key, "fp") == 0)
            ok = pstr(x, pe->fp, sizeof pe->fp);
        else if (strcmp(key, "dev") == 0)
            ok = pnum(x, &pe->dev);
        else if (strcmp(key, "ino") == 0)
            ok = pnum(x, &pe->ino);
        else if (strcmp(key, "fp_len") == 0)
            ok = pnum(x, &pe->fp_len);
        else if (strcmp(key, "offset") == 0)
            ok = pnum(x, &pe->offset);
        else if (strcmp(key, "line") == 0)
            ok = pnum(x, &pe->line);
        else if (strcmp(key, "skip") == 0)
            ok = pnum(x, &pe->skip);
        else
            ok = 0;
        if (!ok)
            return 0;
    } while (lit(x, ','));
    return lit(x, '}') && have_path && pe->id[0] && pe->fp_len <= FP_MAX && pe->line > 0;
}

static sl_rc apply_entry(struct file_src *s, const struct pos_entry *pe, struct sl_error *err)
{
    struct entry *e = find_path(s, pe->path);
    if (!e && s->follow) {
        struct stat st;
        if (stat(pe->path, &st) != 0) {
            sl_warn(s->name,
                    "the checkpoint names %s, which no longer exists; its unread "
                    "rest (after byte %" PRIu64 ") cannot be read",
                    pe->path, pe->offset);
            return SL_OK;
        }
        sl_rc rc = add_entry(s, pe->path);
        if (rc)
            return rc;
        sort_entries(s);
        e = find_path(s, pe->path);
    }
    if (!e) {
        sl_warn(s->name, "the checkpoint names %s, which %s no longer matches; ignoring it",
                pe->path, s->pattern);
        return SL_OK;
    }
    (void)err;
    e->offset = pe->offset;
    e->line = pe->line;
    e->skip = pe->skip != 0;
    e->fp = strtoull(pe->fp, NULL, 16);
    e->fp_len = (uint32_t)pe->fp_len;
    e->dev = pe->dev;
    e->ino = pe->ino;
    snprintf(e->id, sizeof e->id, "%s", pe->id);
    e->restored = 1;
    return SL_OK;
}

static sl_rc file_restore(void *state, const char *position, struct sl_error *err)
{
    struct file_src *s = state;
    struct pp x = {position, 0};
    uint64_t v = 0, before = 0;
    struct pos_entry *pe = sl_malloc(sizeof *pe);
    if (!pe)
        return SL_ENOMEM;
    sl_rc rc = SL_OK;
    char *first_path = NULL; /* the position's first file, matched now or not */
    char key[16];
    if (!lit(&x, '{'))
        goto bad;
    do {
        if (!pstr(&x, key, sizeof key) || !lit(&x, ':'))
            goto bad;
        if (strcmp(key, "v") == 0) {
            if (!pnum(&x, &v) || v != 1)
                goto bad;
        } else if (strcmp(key, "before") == 0) {
            if (!pnum(&x, &before))
                goto bad;
        } else if (strcmp(key, "files") == 0) {
            if (!lit(&x, '['))
                goto bad;
            ws(&x);
            if (*x.p != ']') {
                do {
                    if (!pentry(&x, pe))
                        goto bad;
                    if ((rc = apply_entry(s, pe, err)))
                        goto out;
                    if (!first_path && !(first_path = sl_strdup(pe->path))) {
                        rc = SL_ENOMEM;
                        goto out;
                    }
                } while (lit(&x, ','));
            }
            if (!lit(&x, ']'))
                goto bad;
        } else {
            goto bad;
        }
    } while (lit(&x, ','));
    if (!lit(&x, '}') || v != 1)
        goto bad;
    ws(&x);
    if (*x.p)
        goto bad;
    /* Without follow, the files sorting before the checkpoint's file are finished. */
    if (before && first_path)
        for (size_t i = 0; i < s->nfiles && strcmp(s->files[i].path, first_path) < 0; i++)
            s->files[i].done = !s->follow;
    goto out;
bad:
    rc = sl_error_set(err, SL_EPARSE,
                      "file source %s: the checkpoint \"%.200s\" is not a file source position "
                      "(was the source's type changed?); remove the checkpoint to start over",
                      s->name, position);
out:
    sl_free(first_path);
    sl_free(pe);
    return rc;
}

/* ---- init / close ------------------------------------------------------------------- */

static void file_close(void *state)
{
    struct file_src *s = state;
    if (!s)
        return;
    for (size_t i = 0; i < s->nfiles; i++) {
        close_entry(&s->files[i]);
        sl_free(s->files[i].path);
    }
    sl_free(s->files);
    sl__lines_fini(&s->win);
    if (s->csv)
        sl__csv_fini(&s->csvr);
    sl_buf_fini(&s->pos);
    sl_free(s);
}

static sl_rc file_init(const struct sl_plugin_ctx *ctx, void **state, struct sl_error *err)
{
    struct file_src *s = sl_calloc(1, sizeof *s);
    if (!s)
        return SL_ENOMEM;
    sl_rc rc;
    const char *format;
    int follow;
    uint64_t max_record, window;
    s->pipeline = ctx->pipeline;
    s->name = ctx->name;
    s->cur = NONE;
    sl_buf_init(&s->pos, MAX_POSITION);
    if ((rc = sl_cfg_get_path(ctx->doc, ctx->node, "path", NULL, &s->pattern, err)))
        goto fail;
    if (!s->pattern || !s->pattern[0]) {
        rc = sl_cfg_error(err, ctx->node, "file source %s: `path` is required", ctx->name);
        goto fail;
    }
    if ((rc = sl_cfg_get_str(ctx->node, "format", "ndjson", &format, err)))
        goto fail;
    if (strcmp(format, "csv") == 0) {
        s->csv = 1;
    } else if (strcmp(format, "ndjson") != 0) {
        rc = sl_cfg_error(err, sl_cfg_get(ctx->node, "format"),
                          "format: \"%s\" is not a file format; use ndjson or csv", format);
        goto fail;
    }
    if ((rc = sl_cfg_get_bool(ctx->node, "follow", 0, &follow, err)) ||
        (rc = sl_cfg_get_duration(ctx->node, "poll_interval", 250, &s->poll_ms, err)) ||
        (rc = sl_cfg_get_size(ctx->node, "max_record_bytes", 1 << 20, &max_record, err)) ||
        (rc = sl_cfg_get_size(ctx->node, "read_buffer", 1 << 20, &window, err)))
        goto fail;
    if (max_record < 16 || max_record > ((uint64_t)256 << 20)) {
        rc = sl_cfg_error(err, sl_cfg_get(ctx->node, "max_record_bytes"),
                          "max_record_bytes: must be between 16 bytes and 256MiB");
        goto fail;
    }
    if (window < 4096 || window > ((uint64_t)1 << 30)) {
        rc = sl_cfg_error(err, sl_cfg_get(ctx->node, "read_buffer"),
                          "read_buffer: must be between 4KiB and 1GiB");
        goto fail;
    }
    if (s->poll_ms == 0)
        s->poll_ms = 1;
    s->follow = follow && !ctx->once;
    if (s->csv && (rc = sl__csv_configure(&s->csvr, ctx->doc, ctx->node, max_record, err))) {
        s->csv = 0;
        goto fail;
    }
    if (!s->csv) {
        static const char *const csv_only[] = {"delimiter", "quote", "header", "columns", "types"};
        for (size_t i = 0; i < 5; i++)
            if (sl_cfg_get(ctx->node, csv_only[i])) {
                rc = sl_cfg_error(err, sl_cfg_get(ctx->node, csv_only[i]),
                                  "%s: only applies to format: csv", csv_only[i]);
                goto fail;
            }
    }
    if ((rc = sl__lines_init(&s->win, window, max_record)))
        goto fail;
    s->emit.limits = ctx->limits ? ctx->limits : &default_limits;
    s->emit.stage = ctx->name;
    s->is_glob = has_glob_chars(s->pattern);
    if (!s->is_glob && !s->follow) {
        struct stat st;
        if (stat(s->pattern, &st) != 0) {
            rc = sl_error_sys(err, SL_ENOENT, errno, "file source %s: cannot read %s", ctx->name,
                              s->pattern);
            goto fail;
        }
        if (S_ISDIR(st.st_mode)) {
            rc = sl_error_set(err, SL_ECONFIG,
                              "file source %s: %s is a directory; use a pattern such as "
                              "%s/*.ndjson",
                              ctx->name, s->pattern, s->pattern);
            goto fail;
        }
        if (access(s->pattern, R_OK) != 0) {
            rc = sl_error_sys(err, SL_EIO, errno, "file source %s: cannot read %s", ctx->name,
                              s->pattern);
            goto fail;
        }
    }
    if ((rc = scan_paths(s, err)))
        goto fail;
    if (!s->nfiles) {
        if (!s->follow) {
            rc = sl_error_set(err, SL_ENOENT,
                              "file source %s: no file matches %s; check the pattern (it is "
                              "relative to the pipeline file's directory)",
                              ctx->name, s->pattern);
            goto fail;
        }
        sl_warn(ctx->name, "no file matches %s yet; waiting for one to appear", s->pattern);
    }
    s->cur = NONE;
    *state = s;
    return SL_OK;
fail:
    file_close(s);
    return rc;
}

static const struct sl_option file_options[] = {
    {"path", SL_OPT_PATH, NULL, 1,
     "File to read, or a glob pattern (* ? [...]) whose matches are read in sorted order.", NULL},
    {"format", SL_OPT_ENUM, "ndjson", 0, "ndjson: one JSON value per line; csv: RFC 4180 rows.",
     "ndjson|csv"},
    {"follow", SL_OPT_BOOL, "false", 0,
     "Keep reading appended data like tail -F, across rotation and truncation.", NULL},
    {"poll_interval", SL_OPT_DURATION, "250ms", 0,
     "follow: how often to look for new data and new files.", NULL},
    {"max_record_bytes", SL_OPT_SIZE, "1MiB", 0,
     "Longest line (or CSV row) accepted; longer ones are rejected and skipped.", NULL},
    {"read_buffer", SL_OPT_SIZE, "1MiB", 0,
     "Bytes read per read(2) call (at least "
     "max_record_bytes + 64KiB is used).",
     NULL},
    {"delimiter", SL_OPT_STRING, ",", 0,
     "csv: the field separator, one character (\"tab\" "
     "for a tab).",
     NULL},
    {"quote", SL_OPT_STRING, "\"", 0, "csv: the quote character.", NULL},
    {"header", SL_OPT_BOOL, "true", 0, "csv: the first row of each file names the columns.", NULL},
    {"columns", SL_OPT_LIST, NULL, 0,
     "csv: column names (required with header: false; with a header, renames its columns).", NULL},
    {"types", SL_OPT_MAP, NULL, 0,
     "csv: column -> string|int|float|bool|json (default string; empty non-string -> null).", NULL},
    {NULL, 0, NULL, 0, NULL, NULL},
};

const struct sl_plugin sl_source_file = {
    .kind = SL_PLUGIN_SOURCE,
    .name = "file",
    .description = "Read NDJSON or CSV files (a path or a glob), once or following appends.",
    .options = file_options,
    .init = file_init,
    .restore = file_restore,
    .read = file_read,
    .close = file_close,
};
