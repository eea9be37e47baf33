/*
 * test_wal.c - the write-ahead log (src/store/wal.c): CRC-32C against its check value,
 * append / commit / read with exact bytes and positions, segment roll and release deleting
 * exactly the segments below a position, a torn tail (partial record, CRC mismatch) found
 * by check, cut by repair and by open with the exact byte counts, damage in an earlier
 * segment refused, and concurrent committers (group commit) losing and repeating nothing.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice/alloc.h"
#include "sluice/wal.h"
#include "test.h"

static char root[256];
static int ndir;

static void fresh_dir(char *out, size_t cap)
{
    snprintf(out, cap, "%s/w%d", root, ndir++);
}

static void seg_file(const char *dir, uint64_t seg, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%020llu.wal", dir, (unsigned long long)seg);
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void append_bytes(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    if (fd < 0 || write(fd, p, n) != (ssize_t)n)
        perror(path);
    if (fd >= 0)
        close(fd);
}

/* Append the records and commit them; returns the end position. */
static struct sl_wal_pos put(struct sl_wal *w, const char *const *rec, size_t n)
{
    uint32_t len[16];
    for (size_t i = 0; i < n; i++)
        len[i] = (uint32_t)strlen(rec[i]);
    struct sl_wal_pos end = {0, 0};
    struct sl_error err;
    CHECK_INT(sl_wal_append(w, rec, len, n, &end, &err), SL_OK);
    CHECK_INT(sl_wal_commit(w, end, &err), SL_OK);
    return end;
}

static void test_crc(void)
{
    CHECK_INT(sl_crc32c(0, "123456789", 9), 0xE3069283u);
    CHECK_INT(sl_crc32c(sl_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
    CHECK_INT(sl_crc32c(0, "", 0), 0);
}

static void test_positions(void)
{
    struct sl_wal_pos p;
    char buf[48];
    CHECK_INT(sl_wal_pos_parse("3:1048", &p), 0);
    CHECK_INT(p.seg, 3);
    CHECK_INT(p.off, 1048);
    sl_wal_pos_format(p, buf);
    CHECK_STR(buf, "3:1048");
    CHECK_INT(sl_wal_pos_parse("3:", &p), -1);
    CHECK_INT(sl_wal_pos_parse("x:1", &p), -1);
    CHECK_INT(sl_wal_pos_parse("1:2:3", &p), -1);
    struct sl_wal_pos a = {2, 900}, b = {3, 16}, c = {3, 40};
    CHECK(sl_wal_pos_cmp(a, b) < 0);
    CHECK(sl_wal_pos_cmp(c, b) > 0);
    CHECK_INT(sl_wal_pos_cmp(b, b), 0);
}

static void test_append_read(void)
{
    char dir[300];
    fresh_dir(dir, sizeof dir);
    struct sl_wal_opts o = {.segment_bytes = 1 << 20, .fsync_always = 1};
    struct sl_wal *w = NULL;
    struct sl_error err;
    struct sl_wal_report rep;
    REQUIRE(sl_wal_open(dir, &o, &w, &rep, &err) == SL_OK);
    CHECK_INT(rep.torn_bytes, 0);
    const char *r1[] = {"{\"a\":1}", "{\"b\":\"two\"}"};
    const char *r2[] = {"{}"};
    struct sl_wal_pos e1 = put(w, r1, 2);
    CHECK_INT(e1.seg, 1);
    CHECK_INT(e1.off, 16 + 8 + 7 + 8 + 11);
    struct sl_wal_pos e2 = put(w, r2, 1);
    CHECK_INT(e2.off, e1.off + 8 + 2);
    struct sl_wal_pos d = sl_wal_durable(w, e1, 0);
    CHECK_INT(sl_wal_pos_cmp(d, e2), 0);
    CHECK_INT(sl_wal_bytes(w), e2.off);

    struct sl_wal_pos pos = sl_wal_first(w);
    CHECK_INT(pos.seg, 1);
    CHECK_INT(pos.off, 16);
    const char *want[] = {"{\"a\":1}", "{\"b\":\"two\"}", "{}"};
    for (int i = 0; i < 3; i++) {
        char *t = NULL;
        uint32_t n = 0;
        REQUIRE(sl_wal_read(w, &pos, d, &t, &n, &err) == SL_OK);
        CHECK_MEM(t, n, want[i]);
        sl_free(t);
        if (i == 1)
            CHECK_INT(sl_wal_pos_cmp(pos, e1), 0);
    }
    char *t = NULL;
    uint32_t n;
    CHECK_INT(sl_wal_read(w, &pos, d, &t, &n, &err), SL_EOF);
    /* a reader stopping at an earlier limit sees nothing past it */
    struct sl_wal_pos p2 = sl_wal_first(w);
    int got = 0;
    while (sl_wal_read(w, &p2, e1, &t, &n, &err) == SL_OK) {
        sl_free(t);
        got++;
    }
    CHECK_INT(got, 2);
    sl_wal_close(w);
    /* reopened: everything is still there, appends continue after it */
    REQUIRE(sl_wal_open(dir, &o, &w, &rep, &err) == SL_OK);
    CHECK_INT(rep.records, 3);
    CHECK_INT(rep.torn_bytes, 0);
    struct sl_wal_pos e3 = put(w, r2, 1);
    CHECK_INT(e3.off, e2.off + 10);
    sl_wal_close(w);
}

static void test_roll_and_release(void)
{
    char dir[300], path[400];
    fresh_dir(dir, sizeof dir);
    struct sl_wal_opts o = {.segment_bytes = 4096, .fsync_always = 1};
    struct sl_wal *w = NULL;
    struct sl_error err;
    REQUIRE(sl_wal_open(dir, &o, &w, NULL, &err) == SL_OK);
    char rec[1001];
    memset(rec, 'x', 1000);
    rec[0] = '{', rec[999] = '}', rec[1000] = 0;
    const char *one[] = {rec};
    struct sl_wal_pos ends[20];
    for (int i = 0; i < 20; i++)
        ends[i] = put(w, one, 1);
    /* 4 records (4032 bytes + header) reach 4096 only with the 5th: 5 per segment */
    CHECK_INT(ends[4].seg, 1);
    CHECK_INT(ends[5].seg, 2);
    CHECK_INT(ends[19].seg, 4);
    for (uint64_t s = 1; s <= 4; s++) {
        seg_file(dir, s, path, sizeof path);
        CHECK_INT(file_size(path), 16 + 5 * 1008);
    }
    /* read everything across the segment boundaries */
    struct sl_wal_pos pos = sl_wal_first(w), lim = sl_wal_durable(w, pos, 0);
    int got = 0;
    char *t;
    uint32_t n;
    while (sl_wal_read(w, &pos, lim, &t, &n, &err) == SL_OK) {
        CHECK_MEM(t, n, rec);
        sl_free(t);
        got++;
    }
    CHECK_INT(got, 20);
    uint64_t before = sl_wal_bytes(w);
    CHECK_INT(before, 4 * (16 + 5 * 1008));
    /* releasing a position in segment 3 deletes segments 1 and 2, and nothing else */
    sl_wal_release(w, ends[11].seg);
    seg_file(dir, 1, path, sizeof path);
    CHECK_INT(file_size(path), -1);
    seg_file(dir, 2, path, sizeof path);
    CHECK_INT(file_size(path), -1);
    seg_file(dir, 3, path, sizeof path);
    CHECK_INT(file_size(path), 16 + 5 * 1008);
    CHECK_INT(sl_wal_bytes(w), before - 2 * (16 + 5 * 1008));
    CHECK_INT(sl_wal_first(w).seg, 3);
    /* the segment being written is never deleted */
    sl_wal_release(w, 99);
    seg_file(dir, 4, path, sizeof path);
    CHECK_INT(file_size(path), 16 + 5 * 1008);
    CHECK_INT(sl_wal_first(w).seg, 4);
    sl_wal_close(w);
    /* a reopened log starts at its lowest remaining segment */
    struct sl_wal_report rep;
    REQUIRE(sl_wal_open(dir, &o, &w, &rep, &err) == SL_OK);
    CHECK_INT(sl_wal_first(w).seg, 4);
    CHECK_INT(rep.segments, 1);
    sl_wal_close(w);
}

static void test_torn_tail(void)
{
    char dir[300], path[400];
    fresh_dir(dir, sizeof dir);
    struct sl_wal_opts o = {.segment_bytes = 1 << 20, .fsync_always = 1};
    struct sl_wal *w = NULL;
    struct sl_error err;
    REQUIRE(sl_wal_open(dir, &o, &w, NULL, &err) == SL_OK);
    const char *r[] = {"{\"n\":1}", "{\"n\":2}"};
    struct sl_wal_pos end = put(w, r, 2);
    sl_wal_close(w);
    seg_file(dir, 1, path, sizeof path);
    CHECK_INT(file_size(path), (long)end.off);

    /* a partial record: a frame claiming 200 bytes, 5 of them present */
    append_bytes(path, "\xc8\0\0\0\1\2\3\4abcde", 13);
    struct sl_wal_report rep;
    CHECK_INT(sl_wal_check(dir, 0, &rep, &err), SL_EPARSE);
    CHECK_INT(rep.torn_bytes, 13);
    CHECK_INT(rep.torn_segment, 1);
    CHECK_INT(rep.records, 2);
    CHECK(strstr(rep.damage, "partial record") != NULL);
    CHECK_INT(file_size(path), (long)end.off + 13); /* check changes nothing */
    CHECK_INT(sl_wal_check(dir, 1, &rep, &err), SL_OK);
    CHECK_INT(rep.torn_bytes, 13);
    CHECK_INT(file_size(path), (long)end.off);
    CHECK_INT(sl_wal_check(dir, 0, &rep, &err), SL_OK);
    CHECK_INT(rep.torn_bytes, 0);
    CHECK_INT(rep.records, 2);

    /* a CRC mismatch in the last record: open cuts exactly that record (8 + 7 bytes) */
    int fd = open(path, O_WRONLY);
    REQUIRE(fd >= 0);
    CHECK_INT(pwrite(fd, "9", 1, (off_t)end.off - 2), 1);
    close(fd);
    REQUIRE(sl_wal_open(dir, &o, &w, &rep, &err) == SL_OK);
    CHECK_INT(rep.torn_bytes, 15);
    CHECK(strstr(rep.damage, "CRC mismatch in the record at offset 31") != NULL);
    CHECK_INT(file_size(path), (long)end.off - 15);
    struct sl_wal_pos pos = sl_wal_first(w), lim = sl_wal_durable(w, pos, 0);
    char *t;
    uint32_t n;
    REQUIRE(sl_wal_read(w, &pos, lim, &t, &n, &err) == SL_OK);
    CHECK_MEM(t, n, "{\"n\":1}");
    sl_free(t);
    CHECK_INT(sl_wal_read(w, &pos, lim, &t, &n, &err), SL_EOF);
    sl_wal_close(w);

    /* a last segment whose header is torn is removed by repair */
    char p2[400];
    seg_file(dir, 2, p2, sizeof p2);
    int f2 = open(p2, O_WRONLY | O_CREAT, 0644);
    CHECK_INT(write(f2, "SLWAL", 5), 5);
    close(f2);
    CHECK_INT(sl_wal_check(dir, 1, &rep, &err), SL_OK);
    CHECK_INT(rep.torn_bytes, 5);
    CHECK_INT(rep.torn_segment, 2);
    CHECK_INT(file_size(p2), -1);
    CHECK_INT(rep.records, 1);
}

static void test_damage_before_last(void)
{
    char dir[300], path[400];
    fresh_dir(dir, sizeof dir);
    struct sl_wal_opts o = {.segment_bytes = 4096, .fsync_always = 1};
    struct sl_wal *w = NULL;
    struct sl_error err;
    REQUIRE(sl_wal_open(dir, &o, &w, NULL, &err) == SL_OK);
    char rec[3001];
    memset(rec, 'y', 3000);
    rec[0] = '{', rec[2999] = '}', rec[3000] = 0;
    const char *one[] = {rec};
    for (int i = 0; i < 4; i++)
        put(w, one, 1);
    sl_wal_close(w);
    seg_file(dir, 1, path, sizeof path);
    int fd = open(path, O_WRONLY);
    REQUIRE(fd >= 0);
    CHECK_INT(pwrite(fd, "z", 1, 100), 1);
    close(fd);
    long size = file_size(path);
    struct sl_wal_report rep;
    CHECK_INT(sl_wal_check(dir, 1, &rep, &err), SL_EPARSE);
    CHECK_INT(rep.damaged, 1);
    CHECK_INT(rep.torn_bytes, 0);
    CHECK(strstr(err.msg, "not the last segment") != NULL);
    CHECK_INT(file_size(path), size); /* repair never cuts an earlier segment */
}

/* fsync: interval: written records are readable at once (durable mark = write end). */
static void test_interval_mode(void)
{
    char dir[300];
    fresh_dir(dir, sizeof dir);
    struct sl_wal_opts o = {.segment_bytes = 1 << 20, .fsync_always = 0, .fsync_interval_ms = 0};
    struct sl_wal *w = NULL;
    struct sl_error err;
    REQUIRE(sl_wal_open(dir, &o, &w, NULL, &err) == SL_OK);
    const char *r[] = {"{\"k\":1}"};
    uint32_t len[] = {7};
    struct sl_wal_pos end, start = sl_wal_first(w);
    CHECK_INT(sl_wal_append(w, r, len, 1, &end, &err), SL_OK);
    CHECK_INT(sl_wal_pos_cmp(sl_wal_durable(w, start, 0), end), 0);
    CHECK_INT(sl_wal_commit(w, end, &err), SL_OK);
    CHECK_INT(sl_wal_tick(w, &err), SL_OK);
    char *t;
    uint32_t n;
    REQUIRE(sl_wal_read(w, &start, end, &t, &n, &err) == SL_OK);
    CHECK_MEM(t, n, "{\"k\":1}");
    sl_free(t);
    sl_wal_close(w);
}

struct gc_arg {
    struct sl_wal *w;
    int id;
};

static void *gc_writer(void *p)
{
    struct gc_arg *a = p;
    for (int i = 0; i < 100; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "{\"t\":%d,\"i\":%d}", a->id, i);
        const char *r[] = {buf};
        uint32_t len[] = {(uint32_t)strlen(buf)};
        struct sl_wal_pos end;
        struct sl_error err;
        if (sl_wal_append(a->w, r, len, 1, &end, &err) != SL_OK ||
            sl_wal_commit(a->w, end, &err) != SL_OK ||
            sl_wal_pos_cmp(sl_wal_durable(a->w, end, 0), end) < 0)
            return (void *)1;
    }
    return NULL;
}

static void test_group_commit(void)
{
    char dir[300];
    fresh_dir(dir, sizeof dir);
    struct sl_wal_opts o = {.segment_bytes = 8192, .fsync_always = 1};
    struct sl_wal *w = NULL;
    struct sl_error err;
    REQUIRE(sl_wal_open(dir, &o, &w, NULL, &err) == SL_OK);
    pthread_t th[4];
    struct gc_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (struct gc_arg){w, i};
        pthread_create(&th[i], NULL, gc_writer, &a[i]);
    }
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        CHECK(r == NULL);
    }
    int seen[4][100] = {{0}};
    struct sl_wal_pos pos = sl_wal_first(w), lim = sl_wal_durable(w, pos, 0);
    char *t;
    uint32_t n;
    int total = 0;
    while (sl_wal_read(w, &pos, lim, &t, &n, &err) == SL_OK) {
        int tt = -1, ii = -1;
        CHECK_INT(sscanf(t, "{\"t\":%d,\"i\":%d}", &tt, &ii), 2);
        if (tt >= 0 && tt < 4 && ii >= 0 && ii < 100)
            seen[tt][ii]++;
        sl_free(t);
        total++;
    }
    CHECK_INT(total, 400);
    int once = 0;
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 100; k++)
            once += seen[i][k] == 1;
    CHECK_INT(once, 400);
    CHECK(pos.seg > 1); /* the records spanned several segments */
    sl_wal_close(w);
    struct sl_wal_report rep;
    CHECK_INT(sl_wal_check(dir, 0, &rep, &err), SL_OK);
    CHECK_INT(rep.records, 400);
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/sluice-test-wal-XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_crc);
    RUN(test_positions);
    RUN(test_append_read);
    RUN(test_roll_and_release);
    RUN(test_torn_tail);
    RUN(test_damage_before_last);
    RUN(test_interval_mode);
    RUN(test_group_commit);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return TEST_DONE();
}
