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
 * SL_EOF. With follow every matched file stays open and is polled:
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
 * A followed file that is still written never gives up a last line without '\n' (the
 * writer may be in the middle of it). --once does not change how a followed source
 * reads or the shape of its positions (the `follow` option alone decides both, so
 * positions of --once runs and of following runs order and cover each other exactly);
 * it only makes read() return SL_EOF once a pass over every file, after matching the
 * pattern again, found nothing new. A half-written last line then stays for the next run.
 *
 * Identity and record ids: a file's identity is its device and inode plus a hash of its
 * first line (through the '\n') or of its first 1 KiB, whichever ends first (see
 * make_identity). That prefix does not change as the file grows, so every run computes
 * the same identity for the same file, however much of it existed when it was opened.
 * Record ids derive from (pipeline, source, identity, byte offset): the same line of the
 * same file always gets the same id, also after a rename or a restart, and two files
 * that happen to start alike never share ids. The identity travels in the position and
 * a resumed file keeps it.
 *
 * Positions (opaque to the engine; JSON):
 *   {"v":2,"follow":F,"total":T,"files":[{"path":P,"dev":D,"ino":I,"id":ID,"fp":H,
 *        "fp_len":N,"offset":O,"line":L,"skip":S[,"done":1]}, ...]}
 * Without follow (F = 0) the one entry is the current file, and every file sorting
 * before it is finished. With follow every tracked file is listed, then the last
 * DONE_MAX files finished (rotated away or removed; "done":1). T counts the input bytes
 * consumed over the source's whole history. fp/fp_len is a hash of the file's first
 * fp_len bytes (grown up to 1 KiB as the file is read) that restore() checks before
 * trusting the offset: a file whose first bytes changed is read again from 0, with a
 * warning. The first format ({"v":1,"before":B,...}, no total) is still read.
 *
 * Exactly-once (plugin.h): position_cmp orders positions by how far along they are
 * (file_position_cmp has the rule); covers tells whether a record lies at or before a
 * position, by the record's file identity and offset; lag reports the bytes after a
 * position. restore() finds each listed file by device and inode first (so renamed and
 * rotated files resume where they were; in follow mode a file rotated to a name the
 * pattern does not match is looked up by inode in its directory and read to its end
 * first), then by path.
 *
 * Limits of the order with follow: files are read side by side, so a position is a
 * vector of offsets. Two sinks that committed different positions, then a restart that
 * interleaves the files differently, can meet positions each ahead of the other in some
 * file. position_cmp then calls both "above" (see file_position_cmp), so the engine
 * filters with covers() and a sink never misses a record, but may receive again records
 * of the files involved after it forgot its old position. One file (with its
 * rotations), or one sink, or sinks at the same position, are exact.
 *
 * Decoding kept rows again (decode, for `sluice dlq replay`): a row this source rejected
 * while reading is kept with its bytes and the path it came from. decode turns those bytes
 * into the record's text again with the current settings: an NDJSON line is its own
 * text; a CSV row is converted by csv.c exactly as reading converts it, with the columns
 * the file has now (its header row is read again, once per file, cached in dec[]). Decode
 * runs on a source opened for inspection (it reads no data otherwise and opens files only
 * read-only, for their header).
 *
 * Threading: read, restore, decode and close run on the source thread and touch the state
 * without locks. covers() runs on sink threads, several at once: it keeps its decision
 * per batch in a thread-local memo and shares parsed positions through pcache under
 * lock. position_cmp and lag read only the pattern and their arguments. Ownership: the
 * state, entries, window, CSV scratch and parsed positions are sl_malloc'd and freed by
 * close(); everything a batch refers to is in the batch arena.
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <dirent.h>
#include <glob.h>
#include <pthread.h>
#include <stdatomic.h>
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

/* A file as a position lists it (parsed). */
struct pfile {
    char *path; /* sl_malloc'd */
    char id[96];
    uint64_t fp;
    uint64_t dev, ino, fp_len, offset, line, skip;
    uint64_t done; /* follow: read to its end and let go (offset is its end) */
};

/*
 * A parsed position (restore, position_cmp, covers, lag).
 *
 * Invariants:
 *   1. Without follow, n <= 1: f[0] is the file the batch came from, and every file whose
 *      path sorts before f[0].path had been read to its end.
 *   2. With follow, f lists every file tracked then (at most one entry per identity),
 *      then up to DONE_MAX files finished most recently (done = 1).
 *   3. total counts every input byte consumed up to this position since the first run
 *      (have_total = 0 for positions of the first format, which lack it; then it is the
 *      sum of the listed offsets).
 */
struct ppos {
    int follow;
    int have_total;
    uint64_t total;
    int64_t cur;      /* follow: index in f of the batch's file; -1 when not given */
    uint64_t dropped; /* follow: finished files no longer named */
    struct pfile *f;
    size_t n;
};

#define PCACHE_SLOTS 4 /* parsed positions a source keeps for covers() */
#define DONE_MAX 16    /* follow: finished files a position still names */
#define PATH_SCRATCH 4096
#define DECODE_SCHEMAS 8 /* files whose CSV schema decode keeps at once */

/*
 * decode: the CSV schema of one file as it is now (see sl__csv_load_schema).
 *
 * Invariants:
 *   1. origin == NULL: the slot is free (its arena is empty or reset).
 *   2. state DEC_READY: schema holds the file's columns (memory in arena); DEC_GONE or
 *      DEC_EMPTY: its header was needed but the file no longer exists, or holds no row.
 */
enum { DEC_READY = 1, DEC_GONE, DEC_EMPTY };

struct decode_schema {
    char *origin; /* the file's path (sl_malloc'd), or NULL */
    int state;
    struct sl_arena arena;
    struct sl__csv_schema schema;
};

/*
 * Follow mode: a file read to its end and let go (rotated away or removed). Positions
 * keep naming the last DONE_MAX of them, so that covers() knows a sink that committed
 * such a position has all of the file, when a run restored from an older position
 * reads the file's rest again.
 */
struct done_file {
    char id[96];
    char path[PATH_SCRATCH];
    uint64_t dev, ino, offset;
};

struct pcache_slot {
    char *text; /* the position parsed (sl_malloc'd copy), NULL when the slot is empty */
    struct ppos p;
};

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
    int id_final;          /* id will not change: see make_identity */
    int orphan;            /* follow: found by inode on restore under a name the pattern does
                              not match: read to its end, then dropped */
};

static const struct sl_batch_limits default_limits = {1024, (size_t)1 << 20};

/*
 * The source.
 *
 * Invariants:
 *   1. files is sorted by path; cur indexes the entry the window holds, or is NONE.
 *   2. Without follow, an entry with done set is never opened again.
 *   3. orphans is the number of entries with orphan set.
 *   4. base_bytes + the offsets of all entries (the window's for cur) is the input
 *      consumed over the source's history, the "total" of the next position; bytes of
 *      content an entry lets go (rotation, truncation, removal) move into base_bytes.
 *   5. pcache is touched only under lock; everything else only by the source thread.
 *   6. follow is the configured option, whatever --once says: a followed source reads
 *      the same way and writes positions of the same shape in every run, so positions
 *      committed by --once runs and by following runs order and cover each other
 *      exactly. --once only ends reading at the first pass that finds nothing new.
 */
struct file_src {
    const char *pipeline, *name;
    int follow; /* the `follow` option: reading and the shape of positions (invariant 6) */
    int once;   /* --once: with follow, stop (SL_EOF) when a pass finds nothing new */
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
    uint64_t base_bytes;   /* input consumed from content no longer listed (invariant 4) */
    int inspect;           /* status/reset/replay: nothing is read; only lag(), decode() and
                              close() */
    size_t max_record;     /* max_record_bytes */
    struct sl__lines hwin; /* decode: the window CSV headers are read through (lazy) */
    struct decode_schema dec[DECODE_SCHEMAS];
    unsigned dec_next;    /* the slot decode fills next when every slot is taken */
    uint64_t gen;         /* unique per instance: keys the covers() memo */
    pthread_mutex_t lock; /* guards pcache (covers() runs on sink threads) */
    struct pcache_slot pcache[PCACHE_SLOTS];
    unsigned pcache_next;
    struct done_file done[DONE_MAX]; /* follow: ring of finished files */
    unsigned ndone, done_next;
    uint64_t done_dropped; /* finished files no longer named (the ring overflowed) */
    size_t orphans;        /* entries with orphan set: read before the others */
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

/* Where entry i resumes (invariant 2 of struct entry). */
static uint64_t entry_offset(const struct file_src *s, size_t i)
{
    return s->cur == i ? s->win.off : s->files[i].offset;
}

static void remove_entry(struct file_src *s, size_t i)
{
    int none = s->cur >= s->nfiles || s->cur == i;
    s->base_bytes += entry_offset(s, i); /* its bytes stay consumed */
    if (s->files[i].orphan)
        s->orphans--;
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
                    if (e->orphan)
                        s->orphans--;
                    e->orphan = 0;
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

/* Follow: remember a finished file (its id, place and final offset) for positions. */
static void push_done(struct file_src *s, const char *id, const char *path, uint64_t dev,
                      uint64_t ino, uint64_t offset)
{
    if (!id[0])
        return;
    if (s->ndone == DONE_MAX) /* about to overwrite the oldest */
        s->done_dropped++;
    struct done_file *d = &s->done[s->done_next++ % DONE_MAX];
    snprintf(d->id, sizeof d->id, "%s", id);
    snprintf(d->path, sizeof d->path, "%s", path);
    d->dev = dev;
    d->ino = ino;
    d->offset = offset;
    if (s->ndone < DONE_MAX)
        s->ndone++;
}

/*
 * The identity behind a file's record ids: its device and inode and a hash of its first
 * line (through the '\n') or of its first FP_MAX bytes, whichever ends first. Unlike a
 * hash of whatever the file held when it was opened, that prefix does not change as the
 * file grows, so every run computes the same identity, and the same ids, for the same
 * file however much of it existed when it was opened (a 300-byte file that grows to 5 KB
 * between two runs keeps its ids). Only while the first line is still incomplete is the
 * prefix provisional (id_final = 0): it is taken again before anything of the file is
 * consumed. After a truncation the file is new content under an old inode, so the time
 * of the truncation joins the identity.
 */
static void make_identity(struct entry *e, uint64_t size)
{
    char buf[FP_MAX];
    size_t want = size < FP_MAX ? (size_t)size : FP_MAX, got = 0;
    while (got < want) {
        ssize_t r = pread(e->fd, buf + got, want - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    const char *nl = got ? memchr(buf, '\n', got) : NULL;
    size_t k = nl ? (size_t)(nl - buf) + 1 : got;
    e->id_final = nl != NULL || k == FP_MAX;
    snprintf(e->id, sizeof e->id, "%016" PRIx64 ":%zu:%" PRIu64 ":%" PRIu64, fnv(buf, k), k, e->dev,
             e->ino);
    if (e->truncated_at) {
        size_t n = strlen(e->id);
        snprintf(e->id + n, sizeof e->id - n, ":t%" PRIu64, e->truncated_at);
    }
}

/*
 * Take a provisional identity again (see make_identity) while nothing of the file has
 * been consumed, so the first record gets the identity every later run computes too.
 */
static void refresh_identity(struct file_src *s, struct entry *e, uint64_t consumed)
{
    struct stat st;
    if (e->id_final || consumed != 0 || e->fd < 0 || fstat(e->fd, &st) != 0)
        return;
    make_identity(e, (uint64_t)st.st_size);
    if (s->cur < s->nfiles && &s->files[s->cur] == e)
        sl_record_id_base(s->pipeline, s->name, e->id, s->emit.id_base);
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
                /* What was read of the old content stays consumed, and finished. */
                push_done(s, e->id, e->path, e->dev, e->ino, e->offset);
                s->base_bytes += e->offset;
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
            make_identity(e, size);
        } else {
            /* Restored identity: keep its ids. dev/ino now describe the open file. */
            e->dev = (uint64_t)st.st_dev;
            e->ino = (uint64_t)st.st_ino;
        }
    }
    refresh_identity(s, e, e->offset);
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

static sl_rc put_done(struct sl_buf *b, const struct done_file *d)
{
    sl_rc rc = sl_buf_puts(b, ",{\"path\":");
    if (!rc)
        rc = put_json_str(b, d->path);
    if (!rc)
        rc = sl_buf_printf(b,
                           ",\"dev\":%" PRIu64 ",\"ino\":%" PRIu64 ",\"id\":\"%s\",\"fp\":\"0\","
                           "\"fp_len\":0,\"offset\":%" PRIu64 ",\"line\":1,\"skip\":0,\"done\":1}",
                           d->dev, d->ino, d->id, d->offset);
    return rc;
}

/* Set b->origin and b->position for a batch of the current file. */
static sl_rc finish_batch(struct file_src *s, struct sl_batch *b)
{
    struct entry *cur = &s->files[s->cur];
    grow_fp(cur, s->win.off);
    struct sl_buf *p = &s->pos;
    uint64_t total = s->base_bytes;
    size_t curk = 0; /* the batch's file among those listed */
    for (size_t i = 0; i < s->nfiles; i++) {
        total += entry_offset(s, i);
        curk += i < s->cur && s->files[i].id[0];
    }
    sl_buf_clear(p);
    sl_rc rc;
    if (s->follow)
        rc = sl_buf_printf(p,
                           "{\"v\":2,\"follow\":1,\"total\":%" PRIu64
                           ",\"cur\":%zu,\"dropped\":%" PRIu64 ",\"files\":[",
                           total, curk, s->done_dropped);
    else
        rc = sl_buf_printf(p, "{\"v\":2,\"follow\":0,\"total\":%" PRIu64 ",\"files\":[", total);
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
    /* Oldest first; the current file is always listed, so "," can lead. */
    for (unsigned k = 0; s->follow && k < s->ndone && !rc; k++)
        rc = put_done(p, &s->done[(s->done_next - s->ndone + k) % DONE_MAX]);
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
        /* After each fill: the identity pread sees at least what the window holds. */
        refresh_identity(s, e, s->win.off);
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
            refresh_identity(s, e, s->win.off);
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
        leave_current(s);
        push_done(s, e->id, e->path, e->dev, e->ino, e->offset); /* old content: finished */
        s->base_bytes += e->offset;
        e->offset = 0;
        e->line = 1;
        e->skip = 0;
        e->id[0] = '\0';
        close_entry(e);
        return 1;
    }
    int gone = stat(e->path, &pst) != 0;
    if (!gone && !e->orphan && (uint64_t)pst.st_dev == e->dev && (uint64_t)pst.st_ino == e->ino) {
        e->rescanned = 0;
        return 0;
    }
    if (s->is_glob && !e->rescanned && !e->orphan) {
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
    if (e->orphan)
        sl_info(s->name, "finished reading %s (rotated away before the restart)", e->path);
    else
        sl_info(s->name, "%s %s; finished reading the old file", e->path,
                gone ? "was removed" : "now names a new file");
    leave_current(s);
    close_entry(e);
    push_done(s, e->id, e->path, e->dev, e->ino, e->offset);
    if (gone || e->orphan) {
        remove_entry(s, i);
        return -1;
    }
    s->base_bytes += e->offset;
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
    if (e->orphan)
        return 1;
    if (e->fd < 0 || fstat(e->fd, &fst) != 0 || (uint64_t)fst.st_size != e->seen_size ||
        (uint64_t)fst.st_size < e->offset)
        return 1;
    if (stat(e->path, &pst) != 0)
        return 1;
    return (uint64_t)pst.st_dev != e->dev || (uint64_t)pst.st_ino != e->ino;
}

/*
 * Follow mode: poll every tracked file, rescan the glob every poll_interval. A line
 * without its '\n' at the end of a file is never taken here (the writer may be in the
 * middle of it); only a file rotated away or removed gives up its last partial line.
 *
 * With --once (s->once) reading is the same, so positions keep their shape; read()
 * returns SL_EOF instead of waiting once a pass over every file, right after a fresh
 * match of the pattern, found nothing new: a partial last line then stays for the next
 * run. The confirming pass follows the quiet one at once (no sleep in between), so a
 * --once run catches up with a file that is being appended to and ends.
 */
static sl_rc read_follow(struct file_src *s, struct sl_batch *b, struct sl_error *err)
{
    uint64_t t0 = now_ns(), deadline = t0 + READ_BUDGET_NS;
    int rescan = 0; /* once: match the pattern again before the confirming pass */
    sl_rc rc;
again:;
    int busy = 0;    /* the pass stopped early or something changed: not "nothing new" */
    int scanned = 0; /* this pass began with a fresh match of the pattern */
    if (now_ns() - s->last_scan_ns >= s->poll_ms * 1000000ULL || !s->nfiles || rescan) {
        size_t before = s->nfiles;
        if ((rc = scan_paths(s, err)))
            return rc;
        busy = s->nfiles != before;
        scanned = 1;
    }
    size_t n = s->nfiles, start = s->cur < s->nfiles ? s->cur : 0;
    /* The rest of a file rotated away before a restart is older than anything else. */
    for (size_t i = 0; s->orphans && i < s->nfiles; i++)
        if (s->files[i].orphan) {
            start = i;
            break;
        }
    for (size_t k = 0; k < n && s->nfiles; k++) {
        size_t i = (start + k) % s->nfiles;
        if (s->cur != i && !has_news(s, &s->files[i]))
            continue;
        if (s->cur != i) {
            leave_current(s);
            rc = open_entry(s, i, err);
            if (rc == SL_ENOENT) {
                remove_entry(s, i);
                busy = 1;
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
            if (rc == SL_AGAIN) {
                busy = 1;
                break;
            }
            int st = check_file(s, i, b, &sp, &rc, err);
            if (rc && rc != SL_OK)
                return rc;
            if (st == 0)
                break;
            busy = 1;
            if (st < 0)
                break;
            if (st == 2) /* entries re-sorted: indexes moved; the next call goes on */
                return SL_AGAIN;
            if (b->n)
                return finish_batch(s, b);
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
    if (s->once) {
        if (busy)
            return SL_AGAIN;
        if (scanned)
            return SL_EOF; /* nothing new anywhere, new files included */
        rescan = 1;
        goto again;
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

/* Free what pos_parse allocated. Accepts a zeroed struct. */
static void pos_free(struct ppos *pp)
{
    for (size_t i = 0; i < pp->n; i++)
        sl_free(pp->f[i].path);
    sl_free(pp->f);
    memset(pp, 0, sizeof *pp);
}

/* One file of a position into pf (path into scratch[PATH_SCRATCH], then copied). */
static int pentry(struct pp *x, struct pfile *pf, char *scratch)
{
    memset(pf, 0, sizeof *pf);
    if (!lit(x, '{'))
        return 0;
    int have_path = 0;
    char fp[24] = "";
    do {
        char key[16];
        if (!pstr(x, key, sizeof key) || !lit(x, ':'))
            return 0;
        int ok;
        if (strcmp(key, "path") == 0)
            ok = have_path = pstr(x, scratch, PATH_SCRATCH);
        else if (strcmp(key, "id") == 0)
            ok = pstr(x, pf->id, sizeof pf->id);
        else if (strcmp(key, "fp") == 0)
            ok = pstr(x, fp, sizeof fp);
        else if (strcmp(key, "dev") == 0)
            ok = pnum(x, &pf->dev);
        else if (strcmp(key, "ino") == 0)
            ok = pnum(x, &pf->ino);
        else if (strcmp(key, "fp_len") == 0)
            ok = pnum(x, &pf->fp_len);
        else if (strcmp(key, "offset") == 0)
            ok = pnum(x, &pf->offset);
        else if (strcmp(key, "line") == 0)
            ok = pnum(x, &pf->line);
        else if (strcmp(key, "skip") == 0)
            ok = pnum(x, &pf->skip);
        else if (strcmp(key, "done") == 0)
            ok = pnum(x, &pf->done);
        else
            ok = 0;
        if (!ok)
            return 0;
    } while (lit(x, ','));
    pf->fp = strtoull(fp, NULL, 16);
    return lit(x, '}') && have_path && pf->id[0] && pf->fp_len <= FP_MAX && pf->line > 0;
}

/*
 * Parse a position this source wrote (either format: {"v":1,"before":B,...} or
 * {"v":2,"follow":F,"total":T,...}). SL_OK, SL_EPARSE (not a file source position),
 * SL_ENOMEM. On failure *out is left empty.
 */
static sl_rc pos_parse(const char *text, struct ppos *out)
{
    struct pp x = {text, 0};
    uint64_t v = 0, num = 0;
    sl_rc rc = SL_EPARSE;
    char key[16];
    char scratch[PATH_SCRATCH];
    size_t cap = 0;
    memset(out, 0, sizeof *out);
    out->cur = -1;
    if (!text || !lit(&x, '{'))
        goto fail;
    do {
        if (!pstr(&x, key, sizeof key) || !lit(&x, ':'))
            goto fail;
        if (strcmp(key, "v") == 0) {
            if (!pnum(&x, &v) || (v != 1 && v != 2))
                goto fail;
        } else if (strcmp(key, "before") == 0 || strcmp(key, "follow") == 0) {
            if (!pnum(&x, &num) || num > 1)
                goto fail;
            out->follow = key[0] == 'b' ? !num : (int)num;
        } else if (strcmp(key, "total") == 0) {
            if (!pnum(&x, &out->total))
                goto fail;
            out->have_total = 1;
        } else if (strcmp(key, "cur") == 0) {
            if (!pnum(&x, &num) || num > INT64_MAX)
                goto fail;
            out->cur = (int64_t)num;
        } else if (strcmp(key, "dropped") == 0) {
            if (!pnum(&x, &out->dropped))
                goto fail;
        } else if (strcmp(key, "files") == 0) {
            if (!lit(&x, '['))
                goto fail;
            ws(&x);
            if (*x.p != ']') {
                do {
                    if (out->n == cap) {
                        size_t nc = cap ? cap * 2 : 4;
                        struct pfile *nf = sl_realloc(out->f, nc * sizeof *nf);
                        if (!nf) {
                            rc = SL_ENOMEM;
                            goto fail;
                        }
                        out->f = nf;
                        cap = nc;
                    }
                    struct pfile *pf = &out->f[out->n];
                    if (!pentry(&x, pf, scratch))
                        goto fail;
                    if (!(pf->path = sl_strdup(scratch))) {
                        rc = SL_ENOMEM;
                        goto fail;
                    }
                    out->n++;
                } while (lit(&x, ','));
            }
            if (!lit(&x, ']'))
                goto fail;
        } else {
            goto fail;
        }
    } while (lit(&x, ','));
    if (!lit(&x, '}') || v == 0)
        goto fail;
    ws(&x);
    if (*x.p || (!out->follow && out->n > 1) || (out->cur >= 0 && (size_t)out->cur >= out->n))
        goto fail;
    if (!out->have_total)
        for (size_t i = 0; i < out->n; i++)
            out->total += out->f[i].done ? 0 : out->f[i].offset;
    return SL_OK;
fail:
    pos_free(out);
    return rc;
}

/* ---- restore ----------------------------------------------------------------------- */

/*
 * Follow mode: the file of pf was rotated to a name the pattern does not match. Look for
 * its inode in the directory of its old path (where log rotation leaves it, as
 * app.log.1), so its unread rest is read before it is let go. NULL when not found.
 */
static char *find_rotated(const struct pfile *pf)
{
    char dir[PATH_SCRATCH];
    snprintf(dir, sizeof dir, "%s", pf->path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    char *found = NULL;
    struct dirent *de;
    while (!found && (de = readdir(d)) != NULL) {
        if ((uint64_t)de->d_ino != pf->ino)
            continue;
        size_t n = strlen(dir) + strlen(de->d_name) + 2;
        char *p = sl_malloc(n);
        if (!p)
            break;
        snprintf(p, n, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_dev == pf->dev &&
            (uint64_t)st.st_ino == pf->ino)
            found = p;
        else
            sl_free(p);
    }
    closedir(d);
    return found;
}

/*
 * The entry a position's file continues in: the matched file with its device and inode
 * (wherever it is now: renamed files are found), else the one at its path (a copy, or a
 * replacement the fingerprint check will catch when it is opened). In follow mode a file
 * rotated away to a name the pattern does not match is added to be finished. NULL when
 * the file is gone. ids[] holds the (dev, ino) of the first nids entries, taken once.
 */
static sl_rc match_entry(struct file_src *s, const struct pfile *pf, const uint64_t *ids,
                         size_t nids, struct entry **out)
{
    *out = NULL;
    for (size_t i = 0; i < nids; i++)
        if (!s->files[i].restored && ids[2 * i] == pf->dev && ids[2 * i + 1] == pf->ino) {
            *out = &s->files[i];
            return SL_OK;
        }
    struct entry *e = find_path(s, pf->path);
    if (e && !e->restored) {
        if (s->follow) {
            char *rot = find_rotated(pf);
            if (rot) {
                sl_info(s->name, "%s was rotated to %s since the checkpoint; reading its rest",
                        pf->path, rot);
                sl_rc rc = add_entry(s, rot);
                sl_free(rot);
                if (rc)
                    return rc;
                struct entry *o = &s->files[s->nfiles - 1];
                o->orphan = 1;
                s->orphans++;
                *out = o;
                return SL_OK;
            }
        }
        *out = e;
        return SL_OK;
    }
    if (!e && s->follow) {
        struct stat st;
        if (stat(pf->path, &st) == 0 && S_ISREG(st.st_mode)) {
            sl_rc rc = add_entry(s, pf->path);
            if (rc)
                return rc;
            *out = &s->files[s->nfiles - 1];
            return SL_OK;
        }
        char *rot = find_rotated(pf);
        if (rot) {
            sl_rc rc = add_entry(s, rot);
            sl_free(rot);
            if (rc)
                return rc;
            s->files[s->nfiles - 1].orphan = 1;
            s->orphans++;
            *out = &s->files[s->nfiles - 1];
            return SL_OK;
        }
    }
    return SL_OK;
}

static void apply_entry(struct entry *e, const struct pfile *pf)
{
    e->offset = pf->offset;
    e->line = pf->line;
    e->skip = pf->skip != 0;
    e->fp = pf->fp;
    e->fp_len = (uint32_t)pf->fp_len;
    e->dev = pf->dev;
    e->ino = pf->ino;
    snprintf(e->id, sizeof e->id, "%s", pf->id);
    e->id_final = 1; /* ids come from the identity the position carries */
    e->restored = 1;
}

static sl_rc file_restore(void *state, const char *position, struct sl_error *err)
{
    struct file_src *s = state;
    struct ppos pp;
    uint64_t *ids = NULL;
    sl_rc rc = pos_parse(position, &pp);
    if (rc == SL_EPARSE)
        return sl_error_set(err, SL_EPARSE,
                            "file source %s: the checkpoint \"%.200s\" is not a file source "
                            "position (was the source's type changed?); remove the checkpoint "
                            "to start over",
                            s->name, position ? position : "");
    if (rc)
        return rc;
    if (s->nfiles && !(ids = sl_calloc(s->nfiles, 2 * sizeof *ids))) {
        rc = SL_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < s->nfiles; i++) {
        struct stat st;
        if (stat(s->files[i].path, &st) == 0)
            ids[2 * i] = (uint64_t)st.st_dev, ids[2 * i + 1] = (uint64_t)st.st_ino;
    }
    size_t nids = s->nfiles; /* entries added below come after these */
    uint64_t listed = 0;
    for (size_t k = 0; k < pp.n; k++) {
        const struct pfile *pf = &pp.f[k];
        struct entry *e;
        if (pf->done) { /* finished: only remembered, for later positions */
            push_done(s, pf->id, pf->path, pf->dev, pf->ino, pf->offset);
            continue;
        }
        if ((rc = match_entry(s, pf, ids, nids, &e)))
            goto out;
        if (!e) {
            sl_warn(s->name,
                    "the checkpoint names %s, which %s no longer matches or which no longer "
                    "exists; its unread rest (after byte %" PRIu64 ") cannot be read",
                    pf->path, s->pattern, pf->offset);
            continue;
        }
        apply_entry(e, pf);
        listed += pf->offset;
    }
    sort_entries(s);
    /* Without follow, the files sorting before the checkpoint's file are finished. */
    if (!pp.follow && pp.n)
        for (size_t i = 0; i < s->nfiles && strcmp(s->files[i].path, pp.f[0].path) < 0; i++)
            s->files[i].done = !s->follow;
    s->base_bytes = pp.total > listed ? pp.total - listed : 0;
    s->done_dropped += pp.dropped;
out:
    sl_free(ids);
    pos_free(&pp);
    return rc;
}

/* ---- comparing positions (position_cmp, covers) -------------------------------------- */

static int cmp_u64(uint64_t a, uint64_t b)
{
    return (a > b) - (a < b);
}

/*
 * The order of positions: how far along the input they are.
 *   - Both without follow: the files are read one after another in strcmp order of their
 *     paths, so a position is (current file, offset): compare the paths (strcmp, the
 *     reading order), then the offsets. The end of file a lies below any place in a
 *     file b that sorts after a.
 *   - Both with follow: the files are read side by side and a position is a vector of
 *     offsets, one per tracked file. A position names the file its batch read ("cur"):
 *     a is above b when a's batch read past b's offset in that file (or a file b does
 *     not know), below when b's did so relative to a, and otherwise ordered by total,
 *     the input bytes consumed over the source's whole history (it grows with every
 *     batch; bytes of rotated, truncated or removed files stay counted in base_bytes).
 *     Along the positions of one run (and of runs resumed from them) this is a total
 *     order that follows the batches. Two runs that interleaved the files differently
 *     can produce positions each ahead of the other in some file; both then compare
 *     above the other. That is deliberate: the engine skips a batch whole when its
 *     position is not above a sink's committed one, and treating "ahead somewhere" as
 *     above makes it filter such a batch record by record with covers() instead, so a
 *     record is at worst delivered twice, never skipped.
 *   - One of each (the `follow` option was changed between runs, or a checkpoint from a
 *     version that wrote --once positions without follow): judged by the file the
 *     position without follow is in (mixed_cmp). The shape never decides by itself:
 *     a flag compared before the offsets would put a position that is far behind above
 *     one that is ahead, and a restore from the "lowest" would then skip records.
 *   - Ties, and text that is not a position of this source, fall back to strcmp, so the
 *     order is total and 0 means the same text. NULL (no position) is lowest.
 */
/*
 * Follow: whether the batch that produced x read something y does not have, i.e. its
 * file lies beyond y's offset for it. A file y does not name is beyond it unless y let
 * go of names of finished files (dropped > 0); then total decides.
 */
static int ahead_in_cur(const struct ppos *x, const struct ppos *y)
{
    if (x->cur < 0)
        return 0;
    const struct pfile *xf = &x->f[x->cur];
    for (size_t k = 0; k < y->n; k++)
        if (strcmp(y->f[k].id, xf->id) == 0)
            return !y->f[k].done && xf->offset > y->f[k].offset;
    return xf->offset > 0 && (y->dropped == 0 || x->total > y->total);
}

static int follow_cmp(const struct ppos *a, const struct ppos *b)
{
    int xa = ahead_in_cur(a, b), ya = ahead_in_cur(b, a);
    if (xa)
        return 1; /* also when both are: neither is behind (see above) */
    if (ya)
        return -1;
    return cmp_u64(a->total, b->total);
}

/*
 * A position without follow (n: one file, and every file sorting before it finished)
 * against one with follow (w). n is ahead when its file lies beyond w's offset for that
 * file (by identity; a file w does not know counts from 0); w is ahead when it read past
 * n's offset in that file or read a file sorting after it. "Ahead" wins as in
 * follow_cmp; when neither is, total decides.
 */
static int mixed_cmp(const struct ppos *n, const struct ppos *w)
{
    if (!n->n)
        return w->n ? -1 : cmp_u64(n->total, w->total);
    const struct pfile *nf = &n->f[0];
    uint64_t woff = 0;
    int w_ahead = 0;
    for (size_t k = 0; k < w->n; k++) {
        const struct pfile *wf = &w->f[k];
        if (strcmp(wf->id, nf->id) == 0)
            woff = wf->offset;
        else if (strcmp(wf->path, nf->path) > 0 && wf->offset > 0)
            w_ahead = 1;
    }
    if (nf->offset > woff)
        return 1;
    if (w_ahead || woff > nf->offset)
        return -1;
    return cmp_u64(n->total, w->total);
}

static int file_position_cmp(void *state, const char *a, const char *b)
{
    (void)state;
    if (!a || !b)
        return (a != NULL) - (b != NULL);
    struct ppos pa, pb;
    sl_rc ra = pos_parse(a, &pa), rb = pos_parse(b, &pb);
    int c = 0;
    if (ra || rb)
        c = (ra == SL_OK) - (rb == SL_OK);
    else if (pa.follow != pb.follow)
        c = pa.follow ? -mixed_cmp(&pb, &pa) : mixed_cmp(&pa, &pb);
    else if (pa.follow)
        c = follow_cmp(&pa, &pb);
    else if (pa.n != pb.n)
        c = pa.n < pb.n ? -1 : 1;
    else if (pa.n && !(c = strcmp(pa.f[0].path, pb.f[0].path)))
        c = cmp_u64(pa.f[0].offset, pb.f[0].offset);
    if (!c)
        c = strcmp(a, b);
    pos_free(&pa);
    pos_free(&pb);
    return (c > 0) - (c < 0);
}

enum { COVER_NONE = 0, COVER_ALL, COVER_BELOW };

/*
 * What covers() decided for one (source instance, committed position, batch): none of
 * the batch's records, all of them, or those below an offset. One memo per sink thread
 * (thread-local, no lock on the per-record path); the key identifies a batch by its
 * position text, record array and sequence number, which no two live batches of one
 * source share (clones have their own record array and get their own memo).
 */
struct cover_memo {
    uint64_t gen; /* file_src.gen; 0 = empty slot */
    const char *pos;
    const char *bpos;
    const struct sl_record *recs;
    uint64_t seq;
    uint32_t n;
    int kind;
    uint64_t below;
};

#define MEMO_SLOTS 4 /* per thread: a sink may hold positions of several sources */

static _Thread_local struct cover_memo memo[MEMO_SLOTS];
static _Thread_local unsigned memo_next;
static atomic_uint_fast64_t next_gen = 1;

/* The parsed form of position from the source's cache (parsing it when new); s->lock held. */
static const struct ppos *pcache_get(struct file_src *s, const char *position)
{
    for (unsigned k = 0; k < PCACHE_SLOTS; k++)
        if (s->pcache[k].text && strcmp(s->pcache[k].text, position) == 0)
            return &s->pcache[k].p;
    struct pcache_slot *sl = &s->pcache[s->pcache_next++ % PCACHE_SLOTS];
    sl_free(sl->text);
    pos_free(&sl->p);
    sl->text = NULL;
    if (pos_parse(position, &sl->p) != SL_OK)
        return NULL;
    if (!(sl->text = sl_strdup(position))) {
        pos_free(&sl->p);
        return NULL;
    }
    return &sl->p;
}

/*
 * Decide for batch b against committed position P (see file_covers). Returns 0 when the
 * decision could not be made (unparsable text or no memory): the caller then reports
 * "not covered", which may deliver a record twice but never loses one.
 */
static int cover_decide(struct file_src *s, const char *position, const struct sl_batch *b,
                        int *kind, uint64_t *below)
{
    struct ppos bp;
    if (!b->position || pos_parse(b->position, &bp) != SL_OK)
        return 0;
    const struct pfile *bf = NULL;
    if (bp.n == 1 && (!bp.follow || !b->origin))
        bf = &bp.f[0];
    for (size_t k = 0; !bf && b->origin && k < bp.n; k++)
        if (strcmp(bp.f[k].path, b->origin) == 0)
            bf = &bp.f[k];
    int ok = 0;
    pthread_mutex_lock(&s->lock);
    const struct ppos *P = bf ? pcache_get(s, position) : NULL;
    if (P) {
        ok = 1;
        *kind = COVER_NONE;
        if (!P->follow && !bp.follow) {
            /* One file after the other: earlier files are finished, later ones untouched. */
            int c = P->n ? strcmp(bf->path, P->f[0].path) : 1;
            if (c < 0)
                *kind = COVER_ALL;
            else if (c == 0 && strcmp(bf->id, P->f[0].id) == 0)
                *kind = COVER_BELOW, *below = P->f[0].offset;
        } else {
            /* Side by side: find the batch's file by identity among P's files. */
            for (size_t k = 0; k < P->n; k++)
                if (strcmp(P->f[k].id, bf->id) == 0) {
                    *kind = P->f[k].done ? COVER_ALL : COVER_BELOW;
                    *below = P->f[k].offset;
                    break;
                }
            if (*kind == COVER_NONE && !P->follow && P->n && strcmp(bf->path, P->f[0].path) < 0)
                *kind = COVER_ALL;
        }
    }
    pthread_mutex_unlock(&s->lock);
    pos_free(&bp);
    return ok;
}

/*
 * covers(): record i of b lies at or before position. The batch's file is the one its
 * own position lists under b->origin; it is found in position by identity (device,
 * inode and first-line fingerprint, the "id" both carry). Covered when position has
 * finished that file (without follow: it sorts before position's file) or when the
 * record starts below the offset position resumes at. Records of files position does
 * not know are not covered.
 *
 * Cost: the first call for a (position, batch) pair parses the batch's position and
 * looks up the parsed committed position in the source's cache (under s->lock); every
 * other call is a thread-local memo hit and one comparison.
 */
static int file_covers(void *state, const char *position, const struct sl_batch *b, uint32_t i)
{
    struct file_src *s = state;
    if (!s || !position || !b || i >= b->n)
        return 0;
    struct cover_memo *m = NULL;
    for (unsigned k = 0; k < MEMO_SLOTS; k++) {
        struct cover_memo *x = &memo[k];
        if (x->gen == s->gen && x->pos == position && x->bpos == b->position &&
            x->recs == b->recs && x->seq == b->seq && x->n == b->n) {
            m = x;
            break;
        }
    }
    if (!m) {
        int kind;
        uint64_t below = 0;
        if (!cover_decide(s, position, b, &kind, &below))
            return 0;
        m = &memo[memo_next++ % MEMO_SLOTS];
        *m = (struct cover_memo){s->gen, position, b->position, b->recs, b->seq, b->n, kind, below};
    }
    return m->kind == COVER_ALL || (m->kind == COVER_BELOW && b->recs[i].offset < m->below);
}

/* ---- lag -------------------------------------------------------------------------------- */

/* Whether the file open as fd is the one pf describes (fingerprint and size). */
static int same_content(int fd, const struct pfile *pf, uint64_t size)
{
    uint64_t h;
    return pf->offset <= size && hash_prefix(fd, (uint32_t)pf->fp_len, &h) == 0 && h == pf->fp;
}

/*
 * lag(): input bytes after position now, over the files the pattern matches: a file
 * position has finished counts nothing, the file position is in counts its size minus
 * the offset (when it is still the same file), others count whole. In follow mode a file
 * rotated away under a name the pattern does not match still counts its unread rest.
 * Reads no data beyond fingerprints and opens nothing for writing (inspect mode).
 */
static sl_rc file_lag(void *state, const char *position, uint64_t *bytes, struct sl_error *err)
{
    struct file_src *s = state;
    struct ppos pp;
    memset(&pp, 0, sizeof pp);
    *bytes = 0;
    if (position) {
        sl_rc rc = pos_parse(position, &pp);
        if (rc == SL_EPARSE)
            return sl_error_set(err, SL_EPARSE,
                                "file source %s: the checkpoint \"%.200s\" is not a file source "
                                "position",
                                s->name, position);
        if (rc)
            return rc;
    }
    glob_t g;
    char *one[2] = {(char *)s->pattern, NULL};
    memset(&g, 0, sizeof g);
    if (s->is_glob) {
        int r = glob(s->pattern, 0, NULL, &g);
        if (r == GLOB_NOSPACE) {
            pos_free(&pp);
            return SL_ENOMEM;
        }
        if (r != 0 && r != GLOB_NOMATCH) {
            pos_free(&pp);
            return sl_error_set(err, SL_EIO, "%s: cannot read the directories of the pattern",
                                s->pattern);
        }
    } else {
        g.gl_pathc = 1;
        g.gl_pathv = one;
    }
    uint8_t *seen = pp.n ? sl_calloc(pp.n, 1) : NULL;
    if (pp.n && !seen) {
        if (s->is_glob)
            globfree(&g);
        pos_free(&pp);
        return SL_ENOMEM;
    }
    uint64_t total = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *path = g.gl_pathv[i];
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        uint64_t size = (uint64_t)st.st_size, done = 0;
        const struct pfile *pf = NULL;
        if (!pp.follow && pp.n) {
            int c = strcmp(path, pp.f[0].path);
            if (c < 0)
                done = size;
            else if (c == 0)
                pf = &pp.f[0];
        }
        for (size_t k = 0; !pf && pp.follow && k < pp.n; k++)
            if (!seen[k] && !pp.f[k].done && pp.f[k].dev == (uint64_t)st.st_dev &&
                pp.f[k].ino == (uint64_t)st.st_ino)
                pf = &pp.f[k];
        if (pf) {
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd >= 0 && same_content(fd, pf, size)) {
                done = pf->offset;
                seen[pf - pp.f] = 1;
            }
            if (fd >= 0)
                close(fd);
        }
        total += size - done;
    }
    /* Follow: files rotated away (not matched any more) still have their rest to read. */
    for (size_t k = 0; pp.follow && k < pp.n; k++) {
        if (seen[k] || pp.f[k].done)
            continue;
        char *rot = find_rotated(&pp.f[k]);
        struct stat st;
        if (rot && stat(rot, &st) == 0 && (uint64_t)st.st_size > pp.f[k].offset &&
            fnmatch(s->pattern, rot, FNM_PATHNAME) != 0)
            total += (uint64_t)st.st_size - pp.f[k].offset;
        sl_free(rot);
    }
    sl_free(seen);
    if (s->is_glob)
        globfree(&g);
    pos_free(&pp);
    *bytes = total;
    return SL_OK;
}

/* ---- decode ------------------------------------------------------------------------ */

/*
 * The schema of origin for decode: from dec[] when known, else loaded now into a free
 * slot (or the oldest one). An origin that names no file (named = 0) is as gone. SL_OK with
 * *out set; SL_EIO, SL_ECONFIG, SL_ENOMEM.
 */
static sl_rc decode_schema_get(struct file_src *s, const char *origin, int named,
                               struct decode_schema **out, struct sl_error *err)
{
    for (unsigned k = 0; k < DECODE_SCHEMAS; k++)
        if (s->dec[k].origin && strcmp(s->dec[k].origin, origin) == 0) {
            *out = &s->dec[k];
            return SL_OK;
        }
    unsigned k = 0;
    while (k < DECODE_SCHEMAS && s->dec[k].origin)
        k++;
    if (k == DECODE_SCHEMAS) {
        k = s->dec_next;
        s->dec_next = (s->dec_next + 1) % DECODE_SCHEMAS;
    }
    struct decode_schema *d = &s->dec[k];
    sl_free(d->origin);
    d->origin = NULL;
    sl_arena_reset(&d->arena);
    sl_rc rc = SL_OK;
    int fd = -1, found = 0;
    if (sl__csv_needs_header(&s->csvr)) {
        if (!s->hwin.buf && (rc = sl__lines_init(&s->hwin, 0, s->max_record)))
            return rc;
        fd = named ? open(origin, O_RDONLY | O_CLOEXEC) : -1;
        if (fd < 0 && named && errno != ENOENT && errno != ENOTDIR)
            return sl_error_sys(err, SL_EIO, errno,
                                "file source %s: cannot open %s to read its CSV header and "
                                "decode its kept rows again",
                                s->name, origin);
    }
    if (fd < 0 && sl__csv_needs_header(&s->csvr)) {
        d->state = DEC_GONE;
    } else {
        rc =
            sl__csv_load_schema(&s->csvr, &s->hwin, fd, origin, &d->arena, &d->schema, &found, err);
        d->state = found ? DEC_READY : DEC_EMPTY;
    }
    if (fd >= 0)
        close(fd);
    if (rc)
        return rc;
    d->origin = sl_malloc(strlen(origin) + 1);
    if (!d->origin)
        return SL_ENOMEM;
    memcpy(d->origin, origin, strlen(origin) + 1);
    *out = d;
    return SL_OK;
}

static sl_rc file_decode(void *state, const char *origin, struct sl_batch *b, struct sl_record *r,
                         struct sl_error *err)
{
    struct file_src *s = state;
    if (!s->csv) { /* an NDJSON line is its own text */
        r->text = r->orig;
        r->text_len = r->orig_len;
        return SL_OK;
    }
    int named = origin && origin[0];
    if (!named)
        origin = "(no file recorded)";
    struct decode_schema *d;
    sl_rc rc = decode_schema_get(s, origin, named, &d, err);
    if (rc)
        return rc;
    struct sl__emit e = {.limits = &default_limits, .stage = s->name, .origin = origin};
    if (d->state == DEC_READY)
        return sl__csv_decode(&s->csvr, &d->schema, b, r, &e);
    /* Its columns are named only by the header, which is not there to read. */
    r->text = r->orig;
    r->text_len = r->orig_len;
    struct sl_reject_info why = {.error_class = "csv",
                                 .rule = "header",
                                 .expected = "the file's header row",
                                 .actual = d->state == DEC_GONE ? "no such file" : "an empty file"};
    sl_record_reject_why(b, r, s->name, &why,
                         "line %llu of %s: the file %s, so its CSV header cannot be read to "
                         "decode this row again; put the file back, or name its columns "
                         "with `columns:` in the source's config, then replay again",
                         (unsigned long long)r->line, origin,
                         d->state == DEC_GONE ? "no longer exists" : "is empty now");
    return SL_OK;
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
    sl__lines_fini(&s->hwin);
    for (unsigned k = 0; k < DECODE_SCHEMAS; k++) {
        sl_free(s->dec[k].origin);
        sl_arena_fini(&s->dec[k].arena);
    }
    for (unsigned k = 0; k < PCACHE_SLOTS; k++) {
        sl_free(s->pcache[k].text);
        pos_free(&s->pcache[k].p);
    }
    pthread_mutex_destroy(&s->lock);
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
    pthread_mutex_init(&s->lock, NULL);
    s->gen = atomic_fetch_add(&next_gen, 1);
    s->pipeline = ctx->pipeline;
    s->name = ctx->name;
    s->inspect = ctx->inspect;
    s->cur = NONE;
    sl_buf_init(&s->pos, MAX_POSITION);
    for (unsigned k = 0; k < DECODE_SCHEMAS; k++)
        sl_arena_init(&s->dec[k].arena, 4096);
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
    s->follow = follow;
    s->once = ctx->once;
    s->max_record = (size_t)max_record;
    if (s->csv && (rc = sl__csv_configure(&s->csvr, ctx->doc, ctx->node, max_record, err))) {
        s->csv = 0;
        goto fail;
    }
    if (!s->csv && (rc = sl__csv_reject_options(ctx->node, err)))
        goto fail;
    s->is_glob = has_glob_chars(s->pattern);
    if (s->inspect) {
        /* Status and reset: no window, no input checks (the files may be gone); lag()
         * matches the pattern itself. */
        *state = s;
        return SL_OK;
    }
    if ((rc = sl__lines_init(&s->win, window, max_record)))
        goto fail;
    s->emit.limits = ctx->limits ? ctx->limits : &default_limits;
    s->emit.stage = ctx->name;
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
    SL__CSV_OPTIONS,
    {"read_buffer", SL_OPT_SIZE, "1MiB", 0,
     "Bytes read per read(2) call (at least "
     "max_record_bytes + 64KiB is used).",
     NULL},
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
    .position_cmp = file_position_cmp,
    .covers = file_covers,
    .lag = file_lag,
    .decode = file_decode,
    .close = file_close,
};
