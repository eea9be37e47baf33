/*
 * test_statedir.c - the state directory's format marker: creation (with parents), exact
 * marker bytes, reopening, refusal of other versions and of foreign files with their exact
 * messages, create = 0 never writing anything, and the lock (held by this process, refused
 * to another one with the holder's pid).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sluice/statedir.h"
#include "test.h"

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sluice-test-statedir-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(1);
    }
}

/* Whole content of path into buf (NUL-terminated); -1 when it cannot be read. */
static long slurp(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return (long)n;
}

static void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void test_create_and_reopen(void)
{
    char dir[512], file[600], text[128];
    snprintf(dir, sizeof dir, "%s/a/b/state", tmpdir);
    snprintf(file, sizeof file, "%s/FORMAT", dir);
    struct sl_error err;
    sl_error_clear(&err);
    CHECK_INT(sl_statedir_open(dir, 1, &err), SL_OK);
    CHECK_STR(err.msg, "");
    CHECK_INT(slurp(file, text, sizeof text), 15);
    CHECK_STR(text, "sluice-state 1\n");

    /* Reopening, with or without create, accepts it and changes nothing. */
    struct stat before, after;
    REQUIRE(stat(file, &before) == 0);
    CHECK_INT(sl_statedir_open(dir, 1, &err), SL_OK);
    CHECK_INT(sl_statedir_open(dir, 0, &err), SL_OK);
    REQUIRE(stat(file, &after) == 0);
    CHECK_INT(after.st_ino, before.st_ino);
    CHECK_INT(slurp(file, text, sizeof text), 15);
    CHECK_STR(text, "sluice-state 1\n");

    /* No temporary file is left behind. */
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", file, (long)getpid());
    CHECK(!exists(tmp));

    /* A marker without the final newline is still version 1. */
    spit(file, "sluice-state 1");
    CHECK_INT(sl_statedir_open(dir, 0, &err), SL_OK);
}

static void test_existing_dir_without_marker(void)
{
    char dir[512], file[600], text[128];
    snprintf(dir, sizeof dir, "%s/premarker", tmpdir);
    snprintf(file, sizeof file, "%s/FORMAT", dir);
    REQUIRE(mkdir(dir, 0755) == 0);
    struct sl_error err;
    sl_error_clear(&err);

    /* create == 0: reported as never used, and nothing is written. */
    CHECK_INT(sl_statedir_open(dir, 0, &err), SL_ENOENT);
    char want[700];
    snprintf(want, sizeof want, "state_dir %s has no FORMAT file: no run has used it yet", dir);
    CHECK_STR(err.msg, want);
    CHECK(!exists(file));

    /* create == 1: the marker is added. */
    sl_error_clear(&err);
    CHECK_INT(sl_statedir_open(dir, 1, &err), SL_OK);
    CHECK_INT(slurp(file, text, sizeof text), 15);
    CHECK_STR(text, "sluice-state 1\n");
}

static void test_unknown_version_refused(void)
{
    char dir[512], file[600], text[128];
    snprintf(dir, sizeof dir, "%s/future", tmpdir);
    snprintf(file, sizeof file, "%s/FORMAT", dir);
    REQUIRE(mkdir(dir, 0755) == 0);
    spit(file, "sluice-state 7\n");
    struct sl_error err;
    sl_error_clear(&err);
    char want[1024];
    snprintf(want, sizeof want,
             "state_dir %s is in state format 7, but this sluice reads state format 1 only. "
             "Run a sluice version that reads format 7, or point state_dir at a new directory "
             "(sinks keep their own checkpoints, so delivery resumes from them)",
             dir);
    CHECK_INT(sl_statedir_open(dir, 1, &err), SL_ESTATE);
    CHECK_STR(err.msg, want);
    sl_error_clear(&err);
    CHECK_INT(sl_statedir_open(dir, 0, &err), SL_ESTATE);
    CHECK_STR(err.msg, want);
    /* Refusing never rewrites the marker. */
    CHECK_INT(slurp(file, text, sizeof text), 15);
    CHECK_STR(text, "sluice-state 7\n");
}

static void test_garbage_refused(void)
{
    static const char *const bad[] = {
        "hello world\n",
        "sluice-state\n",
        "sluice-state \n",
        "sluice-state 0\n",
        "sluice-state 1\n\n",
        "sluice-state 1 \n",
        "sluice-state x1\n",
        "Sluice-state 1\n",
        "sluice-state 1\nmore\n",
        "sluice-state 1234567890\n",
        "",
    };
    char dir[512], file[600];
    snprintf(dir, sizeof dir, "%s/garbage", tmpdir);
    snprintf(file, sizeof file, "%s/FORMAT", dir);
    REQUIRE(mkdir(dir, 0755) == 0);
    struct sl_error err;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        spit(file, bad[i]);
        sl_error_clear(&err);
        CHECK_INT(sl_statedir_open(dir, 1, &err), SL_ESTATE);
        CHECK(strstr(err.msg, "is not a sluice state marker") != NULL);
    }

    /* The exact message, with a control byte shown as '?'. */
    spit(file, "hello\tworld\n");
    sl_error_clear(&err);
    CHECK_INT(sl_statedir_open(dir, 0, &err), SL_ESTATE);
    char want[1024];
    snprintf(want, sizeof want,
             "%s is not a sluice state marker (it starts with \"hello?world?\"; expected "
             "\"sluice-state 1\"). This directory may not belong to sluice: point state_dir at "
             "another directory, or, if it is sluice's, write \"sluice-state 1\" into that file",
             file);
    CHECK_STR(err.msg, want);

    /* A long file is refused after reading at most 65 bytes of it. */
    FILE *f = fopen(file, "w");
    REQUIRE(f != NULL);
    fputs("sluice-state 1", f);
    for (int i = 0; i < 10000; i++)
        fputc(' ', f);
    fclose(f);
    CHECK_INT(sl_statedir_open(dir, 0, &err), SL_ESTATE);
}

static void test_missing_dir_no_create(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/never/made", tmpdir);
    struct sl_error err;
    sl_error_clear(&err);
    CHECK_INT(sl_statedir_open(dir, 0, &err), SL_ENOENT);
    char want[700];
    snprintf(want, sizeof want, "state_dir %s does not exist: the pipeline has not run yet", dir);
    CHECK_STR(err.msg, want);
    char parent[512];
    snprintf(parent, sizeof parent, "%s/never", tmpdir);
    CHECK(!exists(parent));
}

static void test_not_a_directory(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/plainfile", tmpdir);
    spit(path, "x");
    struct sl_error err;
    sl_error_clear(&err);
    CHECK_INT(sl_statedir_open(path, 1, &err), SL_EIO);
    char want[900];
    snprintf(want, sizeof want,
             "state_dir %s exists and is not a directory: point state_dir at a directory (it is "
             "created when missing)",
             path);
    CHECK_STR(err.msg, want);
    sl_error_clear(&err);
    CHECK_INT(sl_statedir_open("", 1, &err), SL_EINVAL);
    CHECK_STR(err.msg, "state_dir is empty");
}

static void test_unwritable_parent(void)
{
    if (geteuid() == 0)
        return; /* root ignores permissions: nothing to observe */
    char ro[512], dir[600];
    snprintf(ro, sizeof ro, "%s/readonly", tmpdir);
    snprintf(dir, sizeof dir, "%s/state", ro);
    REQUIRE(mkdir(ro, 0555) == 0);
    struct sl_error err;
    sl_error_clear(&err);
    CHECK_INT(sl_statedir_open(dir, 1, &err), SL_EIO);
    CHECK(strstr(err.msg, "cannot create state_dir") != NULL);
    chmod(ro, 0755);
}

static void test_lock(void)
{
    char a[512], b[512], lock[600], text[64];
    snprintf(a, sizeof a, "%s/locked", tmpdir);
    snprintf(b, sizeof b, "%s/other", tmpdir);
    snprintf(lock, sizeof lock, "%s/LOCK", a);
    struct sl_error err;
    sl_error_clear(&err);
    REQUIRE(sl_statedir_open(a, 1, &err) == SL_OK);
    REQUIRE(sl_statedir_open(b, 1, &err) == SL_OK);
    CHECK_INT(sl_statedir_lock(a, &err), SL_OK);
    CHECK_INT(sl_statedir_lock(a, &err), SL_OK); /* again: a no-op */
    char want_pid[32];
    snprintf(want_pid, sizeof want_pid, "%ld\n", (long)getpid());
    CHECK(slurp(lock, text, sizeof text) > 0);
    CHECK_STR(text, want_pid);
    CHECK_INT(sl_statedir_lock(b, &err), SL_ELIMIT);

    /* Another process is refused, and told who holds it. */
    int pipefd[2];
    REQUIRE(pipe(pipefd) == 0);
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        struct sl_error cerr;
        sl_error_clear(&cerr);
        sl_rc rc = sl_statedir_lock(a, &cerr);
        if (write(pipefd[1], cerr.msg, strlen(cerr.msg) + 1) < 0)
            _exit(99);
        _exit(rc);
    }
    close(pipefd[1]);
    char msg[1024] = "";
    ssize_t got = read(pipefd[0], msg, sizeof msg - 1);
    close(pipefd[0]);
    CHECK(got > 0);
    int status = 0;
    REQUIRE(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    CHECK_INT(WEXITSTATUS(status), SL_ESTATE);
    char want[1024];
    snprintf(want, sizeof want,
             "state_dir %s is in use by another sluice process (pid %ld): the pipeline is "
             "running. Stop it first, or give this pipeline another state_dir",
             a, (long)getpid());
    CHECK_STR(msg, want);

    /* A free directory can be locked by another process. */
    child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        struct sl_error cerr;
        _exit(sl_statedir_lock(b, &cerr));
    }
    REQUIRE(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    CHECK_INT(WEXITSTATUS(status), SL_OK);
}

int main(void)
{
    make_tmpdir();
    RUN(test_create_and_reopen);
    RUN(test_existing_dir_without_marker);
    RUN(test_unknown_version_refused);
    RUN(test_garbage_refused);
    RUN(test_missing_dir_no_create);
    RUN(test_not_a_directory);
    RUN(test_unwritable_parent);
    RUN(test_lock);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return TEST_DONE();
}
