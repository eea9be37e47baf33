/*
 * statedir.c - create and check the pipeline's state directory (`state_dir`).
 *
 * What it does. The state directory is where sluice keeps what belongs to sluice rather
 * than to the user's outputs. Before anything reads or writes there, sl_statedir_open
 * makes sure the directory speaks the layout this binary knows: the file FORMAT in its
 * root holds exactly "sluice-state <version>\n". A missing marker is written (when the
 * caller may create); a marker with another version, or a file that is no marker at all,
 * is refused with a message that says what was found and what to do. Refusing is the
 * point: code that misreads a newer layout could silently lose or repeat records, which
 * is worse than not starting.
 *
 * How it fits. `sluice run` opens with create = 1 before the engine initialises any
 * plugin; `sluice status` and `sluice reset` open with create = 0 and never write. The
 * checkpoints of exactly-once sinks do not live here: DESIGN.md section 4 puts each one
 * beside the output it covers (docs/state.md has the whole layout).
 *
 * Crash safety. FORMAT is written to a temporary name, fsynced, renamed into place and the
 * directory fsynced, so after a crash it is either absent (and written again by the next
 * run) or complete. Two processes creating it at once both rename identical content.
 *
 * Locking. sl_statedir_lock takes an exclusive flock(2) on <state_dir>/LOCK and keeps the
 * descriptor open until the process exits, so the kernel drops the lock however the
 * process ends (kill -9 included) and a lock is never stale. `sluice run` and
 * `sluice reset --yes` take it; `sluice status` does not (it only reads). The file holds
 * the owner's pid, for the message another process prints.
 *
 * Threading: none; called from the main thread before the engine starts (the lock's
 * descriptor and path are process-wide statics). Ownership: nothing else outlives a call.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice/statedir.h"

#define FORMAT_MAX 64 /* bytes read from FORMAT; a valid marker is far shorter */

/* mkdir -p: create path and every missing parent. */
static sl_rc make_dirs(const char *path, struct sl_error *err)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    memcpy(tmp, path, n + 1); /* the caller checked n < PATH_MAX */
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return sl_error_sys(err, SL_EIO, errno, "cannot create directory %s for state_dir %s",
                                tmp, path);
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return sl_error_sys(err, SL_EIO, errno, "cannot create state_dir %s", path);
    return SL_OK;
}

/*
 * Parse a marker: "sluice-state" ' ' digits, then an optional '\n', then nothing. Returns
 * the version (>= 1), or -1 when text is not a marker.
 */
static long parse_marker(const char *text, size_t n)
{
    size_t m = sizeof SL_STATEDIR_MAGIC - 1;
    if (n < m + 2 || memcmp(text, SL_STATEDIR_MAGIC, m) != 0 || text[m] != ' ')
        return -1;
    size_t i = m + 1;
    long v = 0;
    size_t digits = 0;
    while (i < n && text[i] >= '0' && text[i] <= '9') {
        if (++digits > 9)
            return -1;
        v = v * 10 + (text[i] - '0');
        i++;
    }
    if (digits == 0 || v < 1)
        return -1;
    if (i < n && text[i] == '\n')
        i++;
    return i == n ? v : -1;
}

/* Make text printable for a message: control bytes and non-ASCII become '?'. */
static void printable(const char *text, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++) {
        unsigned char c = (unsigned char)text[i];
        out[k++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[k] = '\0';
}

/*
 * Read and check FORMAT in dir. SL_ENOENT when it does not exist (err set), SL_OK when it
 * names SL_STATEDIR_VERSION.
 */
static sl_rc check_marker(const char *dir, const char *file, struct sl_error *err)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return sl_error_set(err, SL_ENOENT,
                                "state_dir %s has no " SL_STATEDIR_FORMAT_FILE
                                " file: no run has used it yet",
                                dir);
        return sl_error_sys(err, SL_EIO, errno, "cannot open %s", file);
    }
    char text[FORMAT_MAX + 1];
    size_t n = 0;
    sl_rc rc = SL_OK;
    for (;;) {
        ssize_t r = read(fd, text + n, sizeof text - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = sl_error_sys(err, SL_EIO, errno, "cannot read %s", file);
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n == sizeof text)
            break; /* longer than any marker: refused below */
    }
    long v = n <= FORMAT_MAX ? parse_marker(text, n) : -1;
    if (v < 0) {
        char shown[41];
        printable(text, n < 40 ? n : 40, shown, sizeof shown);
        rc = sl_error_set(
            err, SL_ESTATE,
            "%s is not a sluice state marker (it starts with \"%s\"; expected \"" SL_STATEDIR_MAGIC
            " %d\"). This directory may not belong to sluice: point state_dir at "
            "another directory, or, if it is sluice's, write \"" SL_STATEDIR_MAGIC
            " %d\" into that file",
            file, shown, SL_STATEDIR_VERSION, SL_STATEDIR_VERSION);
        goto out;
    }
    if (v != SL_STATEDIR_VERSION) {
        rc = sl_error_set(err, SL_ESTATE,
                          "state_dir %s is in state format %ld, but this sluice reads state format "
                          "%d only. Run a sluice version that reads format %ld, or point state_dir "
                          "at a new directory (sinks keep their own checkpoints, so delivery "
                          "resumes from them)",
                          dir, v, SL_STATEDIR_VERSION, v);
        goto out;
    }
out:
    close(fd);
    return rc;
}

/* Write FORMAT in dir: temporary file, fsync, rename, fsync of the directory. */
static sl_rc write_marker(const char *dir, const char *file, struct sl_error *err)
{
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", file, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp)
        return sl_error_set(err, SL_EINVAL, "state_dir path too long: %s", dir);
    char text[FORMAT_MAX];
    int len = snprintf(text, sizeof text, SL_STATEDIR_MAGIC " %d\n", SL_STATEDIR_VERSION);
    sl_rc rc = SL_OK;
    int dfd = -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return sl_error_sys(err, SL_EIO, errno, "cannot create %s", tmp);
    if (write(fd, text, (size_t)len) != len) {
        rc = sl_error_sys(err, SL_EIO, errno, "cannot write %s", tmp);
        goto fail;
    }
    if (fsync(fd) != 0) {
        rc = sl_error_sys(err, SL_EIO, errno, "cannot fsync %s", tmp);
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = sl_error_sys(err, SL_EIO, errno, "cannot write %s", tmp);
        goto fail;
    }
    fd = -1;
    if (rename(tmp, file) != 0) {
        rc = sl_error_sys(err, SL_EIO, errno, "cannot rename %s to %s", tmp, file);
        goto fail;
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0)
        rc = sl_error_sys(err, SL_EIO, errno, "cannot fsync state_dir %s", dir);
    if (dfd >= 0)
        close(dfd);
    return rc;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return rc;
}

sl_rc sl_statedir_open(const char *path, int create, struct sl_error *err)
{
    size_t n = path ? strlen(path) : 0;
    if (n == 0)
        return sl_error_set(err, SL_EINVAL, "state_dir is empty");
    if (n >= PATH_MAX - sizeof "/" SL_STATEDIR_FORMAT_FILE ".tmp.4294967295")
        return sl_error_set(err, SL_EINVAL, "state_dir path too long (%zu bytes): %.100s...", n,
                            path);
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno != ENOENT)
            return sl_error_sys(err, SL_EIO, errno, "cannot inspect state_dir %s", path);
        if (!create)
            return sl_error_set(err, SL_ENOENT,
                                "state_dir %s does not exist: the pipeline has not run yet", path);
        sl_rc rc = make_dirs(path, err);
        if (rc)
            return rc;
    } else if (!S_ISDIR(st.st_mode)) {
        return sl_error_set(err, SL_EIO,
                            "state_dir %s exists and is not a directory: point state_dir at a "
                            "directory (it is created when missing)",
                            path);
    }
    char file[PATH_MAX];
    snprintf(file, sizeof file, "%s/" SL_STATEDIR_FORMAT_FILE, path);
    sl_rc rc = check_marker(path, file, err);
    if (rc != SL_ENOENT || !create)
        return rc;
    sl_error_clear(err);
    return write_marker(path, file, err);
}

/* The lock held by this process (see the file comment). */
static int lock_fd = -1;
static pid_t lock_pid; /* a child after fork(2) does not own its parent's lock */
static char lock_file[PATH_MAX];

sl_rc sl_statedir_lock(const char *path, struct sl_error *err)
{
    char file[PATH_MAX];
    int n = snprintf(file, sizeof file, "%s/LOCK", path ? path : "");
    if (!path || !path[0] || n < 0 || (size_t)n >= sizeof file)
        return sl_error_set(err, SL_EINVAL, "state_dir path empty or too long");
    if (lock_fd >= 0 && lock_pid == getpid()) {
        if (strcmp(lock_file, file) == 0)
            return SL_OK;
        return sl_error_set(err, SL_ELIMIT, "this process already holds the lock %s", lock_file);
    }
    int fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return sl_error_sys(err, SL_EIO, errno, "cannot open the lock file %s", file);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e != EWOULDBLOCK) {
            close(fd);
            return sl_error_sys(err, SL_EIO, e, "cannot lock %s", file);
        }
        char pid[24];
        ssize_t r = pread(fd, pid, sizeof pid - 1, 0);
        size_t len = r > 0 ? (size_t)r : 0;
        while (len > 0 && (pid[len - 1] < '0' || pid[len - 1] > '9'))
            len--;
        pid[len] = '\0';
        for (size_t i = 0; i < len; i++)
            if (pid[i] < '0' || pid[i] > '9')
                pid[i] = '?';
        close(fd);
        return sl_error_set(err, SL_ESTATE,
                            "state_dir %s is in use by another sluice process (pid %s): the "
                            "pipeline is running. Stop it first, or give this pipeline another "
                            "state_dir",
                            path, len ? pid : "unknown");
    }
    /* Best effort: the pid is only for messages; the lock itself is what counts. */
    char text[24];
    int tl = snprintf(text, sizeof text, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)tl, 0) != tl) {
        /* The lock holds all the same. */
    }
    lock_fd = fd;
    lock_pid = getpid();
    memcpy(lock_file, file, (size_t)n + 1);
    return SL_OK;
}
