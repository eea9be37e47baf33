/*
 * wal.c - the segmented write-ahead log (see include/sluice/wal.h, docs/internals/wal.md).
 *
 * Writing: appenders take mu, frame their records into one buffer and pwrite it at the
 * write end (wseg, woff), which then advances. Nothing is durable yet. A committer that
 * wants its end durable waits while another fsync is in flight (it may cover it); when
 * none is and its end is still above the durable mark, it becomes the syncer: it notes the
 * current write end, drops mu, fdatasyncs the current segment and raises the durable mark
 * to the noted end, waking every waiter. So requests that arrive together share one fsync
 * (group commit), and the durable mark only ever names bytes an fsync covered. A segment
 * is sealed before a new one is started: truncated to its last record, fsynced, and the
 * directory fsynced after the new file is created, so every segment below wseg is durable
 * whole. With fsync_always off the durable mark follows the write end at once (the bytes
 * are in the kernel: they survive a process crash, not a power loss) and sl_wal_tick
 * fsyncs once the interval has passed.
 *
 * Reading: one reader thread with its own descriptor (rfd for segment rseg) reads framed
 * records with pread up to a limit it took from sl_wal_durable, checking each CRC.
 *
 * Start-up: only the last segment can hold bytes no fsync covered, so only its tail can be
 * torn; sl_wal_open scans it and truncates it after the last intact record. Earlier
 * segments are scanned by sl_wal_check (`sluice wal check`).
 *
 * Invariants:
 *   1. durable <= (wseg, woff); every byte of every record at or below durable is on disk
 *      (fsync_always) or in the kernel (interval).
 *   2. The segments on disk are exactly first_seg..wseg (release deletes from the bottom).
 *   3. syncing is set exactly while one thread runs the group fsync outside mu; the
 *      current segment is not sealed while it is set.
 *   4. total is the sum of the sizes of the segment files.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sluice/alloc.h"
#include "sluice/wal.h"

static const char wal_magic[8] = {'S', 'L', 'W', 'A', 'L', '0', '0', '1'};

struct sl_wal {
    char *dir;
    struct sl_wal_opts o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fd; /* segment wseg, for writing */
    uint64_t wseg, woff;
    struct sl_wal_pos durable;
    int syncing;
    int dirty; /* interval mode: written but not fsynced */
    uint64_t last_sync_ms;
    uint64_t first_seg;
    uint64_t total;
    int rfd; /* reader's descriptor for rseg, or -1 */
    uint64_t rseg;
};

/* ---- CRC-32C ----------------------------------------------------------------------- */

/*
 * Every record is checksummed twice (appended by a request thread, read back by the
 * pipeline), so on x86-64 the SSE4.2 crc32 instruction computes it (the same reflected
 * Castagnoli polynomial, several times faster) when the processor has it; elsewhere a
 * table does, one byte at a time. Both give the same values (unit test: test_wal, also
 * run with SLUICE_WAL_CRC_TABLE set in the environment, which forces the table).
 */
static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static uint32_t (*crc_update)(uint32_t crc, const unsigned char *s, size_t n);

static uint32_t crc_update_table(uint32_t crc, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        crc = crc_table[(crc ^ s[i]) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("sse4.2"))) static uint32_t crc_update_hw(uint32_t crc,
                                                                const unsigned char *s, size_t n)
{
    uint64_t c = crc;
    for (; n >= 8; n -= 8, s += 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        c = __builtin_ia32_crc32di(c, v);
    }
    uint32_t c32 = (uint32_t)c;
    for (; n; n--, s++)
        c32 = __builtin_ia32_crc32qi(c32, *s);
    return c32;
}
#endif

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
    crc_update = crc_update_table;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2") && !getenv("SLUICE_WAL_CRC_TABLE"))
        crc_update = crc_update_hw;
#endif
}

uint32_t sl_crc32c(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&crc_once, crc_init);
    return ~crc_update(~crc, p, n);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint32_t frame_crc(const unsigned char lenbytes[4], const void *payload, uint32_t n)
{
    return sl_crc32c(sl_crc32c(0, lenbytes, 4), payload, n);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- positions --------------------------------------------------------------------- */

void sl_wal_pos_format(struct sl_wal_pos p, char buf[48])
{
    snprintf(buf, 48, "%" PRIu64 ":%" PRIu64, p.seg, p.off);
}

int sl_wal_pos_parse(const char *s, struct sl_wal_pos *p)
{
    char *e;
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long seg = strtoull(s, &e, 10);
    if (errno || *e != ':' || e[1] < '0' || e[1] > '9')
        return -1;
    unsigned long long off = strtoull(e + 1, &e, 10);
    if (errno || *e)
        return -1;
    p->seg = seg;
    p->off = off;
    return 0;
}

int sl_wal_pos_cmp(struct sl_wal_pos a, struct sl_wal_pos b)
{
    if (a.seg != b.seg)
        return a.seg < b.seg ? -1 : 1;
    return a.off < b.off ? -1 : a.off > b.off ? 1 : 0;
}

/* ---- segment files ----------------------------------------------------------------- */

static void seg_path(const char *dir, uint64_t seg, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%020" PRIu64 ".wal", dir, seg);
}

/* The segment numbers in dir, ascending, in *out (sl_malloc'd). Missing dir: none. */
static sl_rc list_segments(const char *dir, uint64_t **out, size_t *n, struct sl_error *err)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return SL_OK;
        return sl_error_sys(err, SL_EIO, errno, "write-ahead log: cannot list %s", dir);
    }
    size_t cap = 0;
    struct dirent *e;
    sl_rc rc = SL_OK;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l != 24 || strcmp(e->d_name + 20, ".wal") != 0 || strspn(e->d_name, "0123456789") != 20)
            continue;
        if (*n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            uint64_t *g = sl_realloc(*out, nc * sizeof *g);
            if (!g) {
                rc = sl_error_set(err, SL_ENOMEM, "out of memory");
                break;
            }
            *out = g;
            cap = nc;
        }
        (*out)[(*n)++] = strtoull(e->d_name, NULL, 10);
    }
    closedir(d);
    for (size_t i = 1; i < *n; i++) /* insertion sort: segment counts are small */
        for (size_t j = i; j > 0 && (*out)[j - 1] > (*out)[j]; j--) {
            uint64_t t = (*out)[j];
            (*out)[j] = (*out)[j - 1];
            (*out)[j - 1] = t;
        }
    return rc;
}

/*
 * Scan one segment file. *good: offset after the last intact record (0 when the header is
 * torn or wrong); *size: the file's size; *records counts intact records. Returns SL_OK
 * (the scan ran; *good < *size means a torn or damaged tail, described in why) or an I/O
 * error.
 */
static sl_rc scan_segment(const char *path, uint64_t seg, uint64_t *good, uint64_t *size,
                          uint64_t *records, char *why, size_t whycap, struct sl_error *err)
{
    *good = 0;
    *records = 0;
    why[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sl_error_sys(err, SL_EIO, errno, "write-ahead log: cannot open %s", path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return sl_error_sys(err, SL_EIO, errno, "write-ahead log: cannot stat %s", path);
    }
    *size = (uint64_t)st.st_size;
    unsigned char h[SL_WAL_HEADER];
    if (*size < SL_WAL_HEADER || pread(fd, h, sizeof h, 0) != (ssize_t)sizeof h) {
        snprintf(why, whycap, "%s: header torn (%" PRIu64 " of %u bytes)", path, *size,
                 SL_WAL_HEADER);
        close(fd);
        return SL_OK;
    }
    if (memcmp(h, wal_magic, 8) != 0 || get64(h + 8) != seg) {
        snprintf(why, whycap, "%s: not a segment %" PRIu64 " of a sluice write-ahead log", path,
                 seg);
        close(fd);
        return SL_OK;
    }
    uint64_t off = SL_WAL_HEADER;
    char *buf = NULL;
    size_t cap = 0;
    sl_rc rc = SL_OK;
    while (off < *size) {
        unsigned char f[SL_WAL_FRAME];
        if (*size - off < SL_WAL_FRAME || pread(fd, f, sizeof f, (off_t)off) != (ssize_t)sizeof f) {
            snprintf(why, whycap, "%s: partial record frame at offset %" PRIu64, path, off);
            break;
        }
        uint32_t len = get32(f);
        if (len > SL_WAL_MAX_RECORD || len > *size - off - SL_WAL_FRAME) {
            snprintf(why, whycap,
                     "%s: record at offset %" PRIu64 " claims %" PRIu32
                     " bytes but the file ends first (partial record)",
                     path, off, len);
            break;
        }
        if (len > cap) {
            char *g = sl_realloc(buf, len);
            if (!g) {
                rc = sl_error_set(err, SL_ENOMEM, "out of memory");
                break;
            }
            buf = g;
            cap = len;
        }
        if (len && pread(fd, buf, len, (off_t)(off + SL_WAL_FRAME)) != (ssize_t)len) {
            rc = sl_error_sys(err, SL_EIO, errno, "write-ahead log: cannot read %s", path);
            break;
        }
        if (frame_crc(f, buf, len) != get32(f + 4)) {
            snprintf(why, whycap, "%s: CRC mismatch in the record at offset %" PRIu64, path, off);
            break;
        }
        off += SL_WAL_FRAME + len;
        (*records)++;
    }
    sl_free(buf);
    close(fd);
    *good = off < *size && !why[0] ? *size : off;
    return rc;
}

static sl_rc fsync_dir(const char *dir, struct sl_error *err)
{
    int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d < 0 || fsync(d) != 0) {
        int e = errno;
        if (d >= 0)
            close(d);
        return sl_error_sys(err, SL_EIO, e, "write-ahead log: cannot fsync directory %s", dir);
    }
    close(d);
    return SL_OK;
}

/* Create segment seg (header written and fsynced), open for writing in *fd. */
static sl_rc create_segment(const char *dir, uint64_t seg, int *fd, struct sl_error *err)
{
    char path[4096];
    seg_path(dir, seg, path, sizeof path);
    int f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f < 0)
        return sl_error_sys(err, SL_EIO, errno, "write-ahead log: cannot create %s", path);
    unsigned char h[SL_WAL_HEADER];
    memcpy(h, wal_magic, 8);
    put64(h + 8, seg);
    if (pwrite(f, h, sizeof h, 0) != (ssize_t)sizeof h || fdatasync(f) != 0) {
        int e = errno;
        close(f);
        return sl_error_sys(err, SL_EIO, e, "write-ahead log: cannot write %s", path);
    }
    sl_rc rc = fsync_dir(dir, err);
    if (rc) {
        close(f);
        return rc;
    }
    *fd = f;
    return SL_OK;
}

static sl_rc mkdirs(const char *dir, struct sl_error *err)
{
    char p[4096];
    size_t n = strlen(dir);
    if (n >= sizeof p)
        return sl_error_set(err, SL_EINVAL, "write-ahead log: path too long: %s", dir);
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != 0)
            continue;
        char c = p[i];
        p[i] = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return sl_error_sys(err, SL_EIO, errno, "write-ahead log: cannot create %s", p);
        p[i] = c;
    }
    return SL_OK;
}

/* ---- check and repair -------------------------------------------------------------- */

static sl_rc check_dir(const char *dir, int repair, int only_last, struct sl_wal_report *rep,
                       uint64_t **segs_out, size_t *nseg_out, struct sl_error *err)
{
    memset(rep, 0, sizeof *rep);
    uint64_t *segs;
    size_t n;
    sl_rc rc = list_segments(dir, &segs, &n, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        int last = i + 1 == n;
        char path[4096], why[400];
        seg_path(dir, segs[i], path, sizeof path);
        struct stat st;
        if (only_last && !last) {
            if (stat(path, &st) != 0) {
                rc = sl_error_sys(err, SL_EIO, errno, "write-ahead log: cannot stat %s", path);
                break;
            }
            rep->segments++;
            rep->bytes += (uint64_t)st.st_size;
            continue;
        }
        if (i > 0 && segs[i] != segs[i - 1] + 1) {
            if (!rep->damage[0])
                snprintf(rep->damage, sizeof rep->damage,
                         "%s: segments %" PRIu64 "..%" PRIu64 " are missing", dir, segs[i - 1] + 1,
                         segs[i] - 1);
            rep->damaged++;
        }
        uint64_t good, size, recs;
        rc = scan_segment(path, segs[i], &good, &size, &recs, why, sizeof why, err);
        if (rc)
            break;
        if (good == size) {
            rep->segments++;
            rep->records += recs;
            rep->bytes += size;
            continue;
        }
        if (!last) {
            rep->damaged++;
            if (!rep->damage[0])
                snprintf(rep->damage, sizeof rep->damage,
                         "%s; it is not the last segment, so acknowledged records may be lost: "
                         "copy the directory aside before anything else",
                         why);
            rep->segments++;
            rep->records += recs;
            rep->bytes += good;
            continue;
        }
        rep->torn_segment = segs[i];
        rep->torn_bytes = size - good;
        snprintf(rep->damage, sizeof rep->damage, "%s", why);
        if (good >= SL_WAL_HEADER) {
            rep->segments++;
            rep->records += recs;
            rep->bytes += good;
        }
        if (!repair)
            continue;
        if (good < SL_WAL_HEADER) { /* header torn: the segment never held a record */
            if (unlink(path) != 0)
                rc = sl_error_sys(err, SL_EIO, errno, "write-ahead log: cannot remove %s", path);
            else
                rc = fsync_dir(dir, err);
            n--;
            continue;
        }
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || ftruncate(fd, (off_t)good) != 0 || fdatasync(fd) != 0) {
            rc = sl_error_sys(err, SL_EIO, errno, "write-ahead log: cannot truncate %s", path);
        }
        if (fd >= 0)
            close(fd);
    }
    if (rc == SL_OK && segs_out) {
        *segs_out = segs;
        *nseg_out = n;
    } else {
        sl_free(segs);
    }
    return rc;
}

sl_rc sl_wal_check(const char *dir, int repair, struct sl_wal_report *rep, struct sl_error *err)
{
    sl_rc rc = check_dir(dir, repair, 0, rep, NULL, NULL, err);
    if (rc)
        return rc;
    if (rep->damaged || (rep->torn_bytes && !repair))
        return sl_error_set(err, SL_EPARSE, "write-ahead log %s is damaged: %s", dir, rep->damage);
    return SL_OK;
}

/* ---- open and close ---------------------------------------------------------------- */

sl_rc sl_wal_open(const char *dir, const struct sl_wal_opts *o, struct sl_wal **out,
                  struct sl_wal_report *rep_out, struct sl_error *err)
{
    struct sl_wal_report rep_local, *rep = rep_out ? rep_out : &rep_local;
    sl_rc rc = mkdirs(dir, err);
    if (rc)
        return rc;
    uint64_t *segs = NULL;
    size_t n = 0;
    if ((rc = check_dir(dir, 1, 1, rep, &segs, &n, err)))
        return rc;
    struct sl_wal *w = sl_calloc(1, sizeof *w);
    if (!w || !(w->dir = sl_strdup(dir))) {
        sl_free(w);
        sl_free(segs);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    w->o = *o;
    if (!w->o.segment_bytes)
        w->o.segment_bytes = (uint64_t)64 << 20;
    w->fd = w->rfd = -1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->total = rep->bytes;
    if (n == 0) {
        w->first_seg = w->wseg = 1;
        w->woff = SL_WAL_HEADER;
        rc = create_segment(dir, 1, &w->fd, err);
        w->total = SL_WAL_HEADER;
    } else {
        w->first_seg = segs[0];
        w->wseg = segs[n - 1];
        char path[4096];
        seg_path(dir, w->wseg, path, sizeof path);
        w->fd = open(path, O_WRONLY | O_CLOEXEC);
        struct stat st;
        if (w->fd < 0 || fstat(w->fd, &st) != 0)
            rc = sl_error_sys(err, SL_EIO, errno, "write-ahead log: cannot open %s", path);
        else
            w->woff = (uint64_t)st.st_size;
    }
    sl_free(segs);
    if (rc) {
        sl_wal_close(w);
        return rc;
    }
    w->durable.seg = w->wseg;
    w->durable.off = w->woff;
    w->last_sync_ms = mono_ms();
    *out = w;
    return SL_OK;
}

void sl_wal_close(struct sl_wal *w)
{
    if (!w)
        return;
    if (w->fd >= 0) {
        if (w->dirty)
            (void)fdatasync(w->fd);
        close(w->fd);
    }
    if (w->rfd >= 0)
        close(w->rfd);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    sl_free(w->dir);
    sl_free(w);
}

/* ---- writing ----------------------------------------------------------------------- */

/* Seal the current segment and start the next one. mu held, syncing clear. */
static sl_rc roll(struct sl_wal *w, struct sl_error *err)
{
    if (ftruncate(w->fd, (off_t)w->woff) != 0 || fdatasync(w->fd) != 0)
        return sl_error_sys(err, SL_EIO, errno,
                            "write-ahead log: cannot seal segment %" PRIu64 " in %s", w->wseg,
                            w->dir);
    int fd;
    sl_rc rc = create_segment(w->dir, w->wseg + 1, &fd, err);
    if (rc)
        return rc;
    close(w->fd);
    w->fd = fd;
    w->durable.seg = w->wseg; /* everything written so far is now durable */
    w->durable.off = w->woff;
    w->wseg++;
    w->woff = SL_WAL_HEADER;
    w->total += SL_WAL_HEADER;
    w->dirty = 0;
    pthread_cond_broadcast(&w->cv);
    return SL_OK;
}

sl_rc sl_wal_append(struct sl_wal *w, const char *const *rec, const uint32_t *len, size_t n,
                    struct sl_wal_pos *end, struct sl_error *err)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (len[i] > SL_WAL_MAX_RECORD)
            return sl_error_set(err, SL_ELIMIT,
                                "write-ahead log: a record of %" PRIu32
                                " bytes exceeds the %" PRIu32 "-byte limit",
                                len[i], SL_WAL_MAX_RECORD);
        total += SL_WAL_FRAME + len[i];
    }
    unsigned char *buf = sl_malloc(total ? total : 1);
    if (!buf)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        put32(buf + at, len[i]);
        put32(buf + at + 4, frame_crc(buf + at, rec[i], len[i]));
        memcpy(buf + at + SL_WAL_FRAME, rec[i], len[i]);
        at += SL_WAL_FRAME + len[i];
    }
    sl_rc rc = SL_OK;
    pthread_mutex_lock(&w->mu);
    if (w->woff >= w->o.segment_bytes) {
        while (w->syncing)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->woff >= w->o.segment_bytes)
            rc = roll(w, err);
    }
    if (rc == SL_OK) {
        ssize_t wr = pwrite(w->fd, buf, total, (off_t)w->woff);
        if (wr != (ssize_t)total) {
            rc = sl_error_sys(err, SL_EIO, wr < 0 ? errno : ENOSPC,
                              "write-ahead log: cannot append to segment %" PRIu64 " in %s",
                              w->wseg, w->dir);
        } else {
            w->woff += total;
            w->total += total;
            end->seg = w->wseg;
            end->off = w->woff;
            if (!w->o.fsync_always) {
                w->durable = *end;
                w->dirty = 1;
                pthread_cond_broadcast(&w->cv);
            }
        }
    }
    pthread_mutex_unlock(&w->mu);
    sl_free(buf);
    return rc;
}

sl_rc sl_wal_commit(struct sl_wal *w, struct sl_wal_pos end, struct sl_error *err)
{
    sl_rc rc = SL_OK;
    pthread_mutex_lock(&w->mu);
    while (sl_wal_pos_cmp(w->durable, end) < 0) {
        if (w->syncing) {
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        struct sl_wal_pos target = {w->wseg, w->woff};
        int fd = w->fd;
        w->syncing = 1;
        pthread_mutex_unlock(&w->mu);
        int r = fdatasync(fd);
        int e = errno;
        pthread_mutex_lock(&w->mu);
        w->syncing = 0;
        if (r == 0 && sl_wal_pos_cmp(w->durable, target) < 0)
            w->durable = target;
        w->last_sync_ms = mono_ms();
        pthread_cond_broadcast(&w->cv);
        if (r != 0) {
            rc = sl_error_sys(err, SL_EIO, e,
                              "write-ahead log: fsync of segment %" PRIu64 " in %s failed",
                              target.seg, w->dir);
            break;
        }
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

sl_rc sl_wal_tick(struct sl_wal *w, struct sl_error *err)
{
    pthread_mutex_lock(&w->mu);
    sl_rc rc = SL_OK;
    if (w->dirty && !w->syncing && mono_ms() - w->last_sync_ms >= w->o.fsync_interval_ms) {
        if (fdatasync(w->fd) != 0)
            rc = sl_error_sys(err, SL_EIO, errno,
                              "write-ahead log: fsync of segment %" PRIu64 " in %s failed", w->wseg,
                              w->dir);
        else
            w->dirty = 0;
        w->last_sync_ms = mono_ms();
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

struct sl_wal_pos sl_wal_durable(struct sl_wal *w, struct sl_wal_pos after, unsigned wait_ms)
{
    pthread_mutex_lock(&w->mu);
    if (wait_ms && sl_wal_pos_cmp(w->durable, after) <= 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (sl_wal_pos_cmp(w->durable, after) <= 0)
            if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) != 0)
                break;
    }
    struct sl_wal_pos d = w->durable;
    pthread_mutex_unlock(&w->mu);
    return d;
}

struct sl_wal_pos sl_wal_first(struct sl_wal *w)
{
    pthread_mutex_lock(&w->mu);
    struct sl_wal_pos p = {w->first_seg, SL_WAL_HEADER};
    pthread_mutex_unlock(&w->mu);
    return p;
}

uint64_t sl_wal_bytes(struct sl_wal *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t t = w->total;
    pthread_mutex_unlock(&w->mu);
    return t;
}

uint64_t sl_wal_segments(struct sl_wal *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t n = w->wseg - w->first_seg + 1;
    pthread_mutex_unlock(&w->mu);
    return n;
}

/* The record bytes of segment seg between after (when in it) and its end. */
static uint64_t seg_lag(uint64_t seg, uint64_t end, const struct sl_wal_pos *after)
{
    uint64_t from = SL_WAL_HEADER;
    if (after && after->seg == seg && after->off > from)
        from = after->off;
    return end > from ? end - from : 0;
}

/* The size of segment seg in dir; 0 when it is gone (released meanwhile). */
static sl_rc seg_size(const char *dir, uint64_t seg, uint64_t *size, struct sl_error *err)
{
    char path[4096];
    struct stat st;
    seg_path(dir, seg, path, sizeof path);
    *size = 0;
    if (stat(path, &st) == 0)
        *size = (uint64_t)st.st_size;
    else if (errno != ENOENT)
        return sl_error_sys(err, SL_EIO, errno, "write-ahead log: cannot stat %s", path);
    return SL_OK;
}

uint64_t sl_wal_lag(struct sl_wal *w, const struct sl_wal_pos *after)
{
    pthread_mutex_lock(&w->mu);
    struct sl_wal_pos d = w->durable;
    uint64_t first = w->first_seg;
    pthread_mutex_unlock(&w->mu);
    if (after && sl_wal_pos_cmp(*after, d) >= 0)
        return 0;
    uint64_t from = after && after->seg > first ? after->seg : first, total = 0;
    for (uint64_t seg = from; seg <= d.seg; seg++) {
        uint64_t end = d.off;
        /* Segments below the durable one are sealed: durable whole, at their file's size. */
        if (seg < d.seg && seg_size(w->dir, seg, &end, NULL) != SL_OK)
            end = 0;
        total += seg_lag(seg, end, after);
    }
    return total;
}

sl_rc sl_wal_dir_lag(const char *dir, const struct sl_wal_pos *after, uint64_t *bytes,
                     struct sl_error *err)
{
    uint64_t *segs;
    size_t n;
    *bytes = 0;
    sl_rc rc = list_segments(dir, &segs, &n, err);
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        uint64_t size;
        if (after && segs[i] < after->seg)
            continue;
        if ((rc = seg_size(dir, segs[i], &size, err)) == SL_OK)
            *bytes += seg_lag(segs[i], size, after);
    }
    sl_free(segs);
    return rc;
}

void sl_wal_release(struct sl_wal *w, uint64_t seg)
{
    pthread_mutex_lock(&w->mu);
    int removed = 0;
    while (w->first_seg < seg && w->first_seg < w->wseg) {
        char path[4096];
        seg_path(w->dir, w->first_seg, path, sizeof path);
        struct stat st;
        if (stat(path, &st) == 0 && unlink(path) == 0) {
            w->total -= (uint64_t)st.st_size;
            removed = 1;
        }
        w->first_seg++;
    }
    pthread_mutex_unlock(&w->mu);
    if (removed)
        (void)fsync_dir(w->dir, NULL);
}

/* ---- reading ----------------------------------------------------------------------- */

sl_rc sl_wal_read(struct sl_wal *w, struct sl_wal_pos *pos, struct sl_wal_pos limit, char **out,
                  uint32_t *len, struct sl_error *err)
{
    for (;;) {
        if (sl_wal_pos_cmp(*pos, limit) >= 0)
            return SL_EOF;
        if (pos->off < SL_WAL_HEADER)
            pos->off = SL_WAL_HEADER;
        if (w->rfd < 0 || w->rseg != pos->seg) {
            if (w->rfd >= 0)
                close(w->rfd);
            char path[4096];
            seg_path(w->dir, pos->seg, path, sizeof path);
            w->rfd = open(path, O_RDONLY | O_CLOEXEC);
            w->rseg = pos->seg;
            if (w->rfd < 0) {
                if (errno == ENOENT && pos->seg < limit.seg) { /* released: go on */
                    pos->seg++;
                    pos->off = SL_WAL_HEADER;
                    continue;
                }
                return sl_error_sys(err, SL_EIO, errno, "write-ahead log: cannot open %s", path);
            }
        }
        if (pos->seg < limit.seg) { /* sealed: ends at the file's end */
            struct stat st;
            if (fstat(w->rfd, &st) != 0)
                return sl_error_sys(err, SL_EIO, errno,
                                    "write-ahead log: cannot stat segment "
                                    "%" PRIu64 " in %s",
                                    pos->seg, w->dir);
            if (pos->off >= (uint64_t)st.st_size) {
                pos->seg++;
                pos->off = SL_WAL_HEADER;
                continue;
            }
        }
        unsigned char f[SL_WAL_FRAME];
        if (pread(w->rfd, f, sizeof f, (off_t)pos->off) != (ssize_t)sizeof f)
            return sl_error_set(err, SL_EPARSE,
                                "write-ahead log %s: segment %" PRIu64
                                " ends inside the record frame at offset %" PRIu64
                                "; run `sluice wal check`",
                                w->dir, pos->seg, pos->off);
        uint32_t n = get32(f);
        char *buf = n <= SL_WAL_MAX_RECORD ? sl_malloc((size_t)n + 1) : NULL;
        if (!buf)
            return sl_error_set(err, n <= SL_WAL_MAX_RECORD ? SL_ENOMEM : SL_EPARSE,
                                "write-ahead log %s: cannot read the record at %" PRIu64 ":%" PRIu64
                                " (length %" PRIu32 "); run `sluice wal check`",
                                w->dir, pos->seg, pos->off, n);
        if ((n && pread(w->rfd, buf, n, (off_t)(pos->off + SL_WAL_FRAME)) != (ssize_t)n) ||
            frame_crc(f, buf, n) != get32(f + 4)) {
            sl_free(buf);
            return sl_error_set(err, SL_EPARSE,
                                "write-ahead log %s: the record at %" PRIu64 ":%" PRIu64
                                " is short or fails its CRC; run `sluice wal check`",
                                w->dir, pos->seg, pos->off);
        }
        buf[n] = 0;
        pos->off += SL_WAL_FRAME + n;
        *out = buf;
        *len = n;
        return SL_OK;
    }
}
