/*
 * test_alert.c - alerts: the log line, the JSON body (every field, escaping), and webhook
 * delivery against a local receiver (tests/tools/flaky_http.py, started per scenario):
 * delivered once; a 503 then a 200 gives two requests with the same Idempotency-Key and
 * body and SL_OK; a timeout then a 200; a 404 is permanent (one request, SL_EIO); 500s
 * until the attempts run out give SL_RETRY; no receiver at all gives SL_RETRY with a clear
 * message that does not leak the URL's path or credentials.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sluice/alert.h"
#include "sluice/arena.h"
#include "sluice/buf.h"
#include "sluice/json.h"
#include "sluice/log.h"
#include "test.h"

static char dir[64];
static int nlog; /* receiver log files made so far */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct sl_buf b;
    sl_buf_init(&b, 0);
    char tmp[4096];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        if (sl_buf_append(&b, tmp, n))
            break;
    fclose(f);
    if (sl_buf_cstr(&b)) {
        sl_buf_fini(&b);
        return NULL;
    }
    return b.data;
}

/* ---- a tiny JSON reader over the project's tape --------------------------------------- */

/*
 * The member `key` of the top-level object in json: its decoded text for a string, its
 * raw text otherwise ("null", "1764201600"). "" with type -1 when absent or not an object.
 */
static int json_get(const char *json, const char *key, char *out, size_t cap)
{
    struct sl_json_parser *p;
    struct sl_arena a;
    struct sl_tape t;
    struct sl_json_error jerr;
    int type = -1;
    out[0] = '\0';
    if (sl_json_parser_create(&p))
        return -1;
    sl_arena_init(&a, 0);
    if (sl_json_parse(p, json, strlen(json), 0, &a, &t, &jerr) == SL_OK &&
        t.tok[0].type == SL_J_OBJECT) {
        uint32_t i = 1;
        for (uint32_t m = 0; m < t.tok[0].count; m++) {
            const char *k;
            size_t kn;
            if (sl_json_str(&t, i, &a, &k, &kn))
                break;
            uint32_t v = i + 1;
            if (kn == strlen(key) && memcmp(k, key, kn) == 0) {
                type = t.tok[v].type;
                if (type == SL_J_STRING) {
                    const char *s;
                    size_t sn;
                    if (sl_json_str(&t, v, &a, &s, &sn) == SL_OK)
                        snprintf(out, cap, "%.*s", (int)sn, s);
                } else {
                    snprintf(out, cap, "%.*s", (int)t.tok[v].len, json + t.tok[v].off);
                }
            }
            i = t.tok[v].next;
        }
    }
    sl_arena_fini(&a);
    sl_json_parser_destroy(p);
    return type;
}

/* The receiver's log: one JSON line per request. */
struct req {
    char key[256];
    char body[4096];
    char status[16];
    char ctype[128];
};

static int read_requests(const char *log, struct req *r, int max)
{
    char *text = slurp(log);
    if (!text)
        return 0;
    int n = 0;
    for (char *line = strtok(text, "\n"); line && n < max; line = strtok(NULL, "\n"), n++) {
        json_get(line, "idempotency_key", r[n].key, sizeof r[n].key);
        json_get(line, "body", r[n].body, sizeof r[n].body);
        json_get(line, "status", r[n].status, sizeof r[n].status);
        char headers[2048];
        r[n].ctype[0] = '\0';
        if (json_get(line, "headers", headers, sizeof headers) == SL_J_OBJECT)
            json_get(headers, "content-type", r[n].ctype, sizeof r[n].ctype);
    }
    free(text);
    return n;
}

/* ---- the receiver ---------------------------------------------------------------------- */

struct receiver {
    pid_t pid;
    int port;
    char log[128];
};

static int receiver_start(struct receiver *rv, const char *mode, int count)
{
    const char *src = getenv("SLUICE_SRC");
    char script[1024], portfile[128], counts[16];
    snprintf(script, sizeof script, "%s/tests/tools/flaky_http.py", src ? src : ".");
    nlog++;
    snprintf(rv->log, sizeof rv->log, "%s/requests%d.log", dir, nlog);
    snprintf(portfile, sizeof portfile, "%s/port%d", dir, nlog);
    snprintf(counts, sizeof counts, "%d", count);
    rv->port = 0;
    rv->pid = fork();
    if (rv->pid < 0)
        return -1;
    if (rv->pid == 0) {
        execl("/usr/bin/python3", "python3", script, "--log", rv->log, "--port-file", portfile,
              "--mode", mode, "--count", counts, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) { /* up to 10 s */
        char *p = slurp(portfile);
        if (p) {
            rv->port = atoi(p);
            free(p);
            if (rv->port > 0)
                return 0;
        }
        int st;
        if (waitpid(rv->pid, &st, WNOHANG) == rv->pid) {
            rv->pid = 0;
            return -1;
        }
        usleep(50000);
    }
    return -1;
}

static void receiver_stop(struct receiver *rv)
{
    if (rv->pid > 0) {
        kill(rv->pid, SIGTERM);
        waitpid(rv->pid, NULL, 0);
        rv->pid = 0;
    }
}

/* A port nothing listens on (bound, then closed). */
static int closed_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = 0;
    if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(s, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (s >= 0)
        close(s);
    return port;
}

/* ---- tests ------------------------------------------------------------------------------ */

static const struct sl_alert sample = {
    .kind = "sla_miss",
    .dag = "nightly \"metrics\"",
    .partition = "2026-11-26",
    .job = NULL,
    .message = "partition 2026-11-26 not done by 02:30 (sla 30m)\nline two \\ caf\xc3\xa9 \x01",
    .at = 1795746600, /* 2026-11-27T02:30:00Z */
    .id = "sla_miss/nightly/2026-11-26",
};

static void check_body(const char *body, const struct sl_alert *a)
{
    char v[1024];
    CHECK_INT(json_get(body, "source", v, sizeof v), SL_J_STRING);
    CHECK_STR(v, "sluice");
    CHECK_INT(json_get(body, "id", v, sizeof v), SL_J_STRING);
    CHECK_STR(v, a->id);
    CHECK_INT(json_get(body, "kind", v, sizeof v), SL_J_STRING);
    CHECK_STR(v, a->kind);
    CHECK_INT(json_get(body, "dag", v, sizeof v), SL_J_STRING);
    CHECK_STR(v, a->dag);
    if (a->partition) {
        CHECK_INT(json_get(body, "partition", v, sizeof v), SL_J_STRING);
        CHECK_STR(v, a->partition);
    } else {
        CHECK_INT(json_get(body, "partition", v, sizeof v), SL_J_NULL);
    }
    if (a->job) {
        CHECK_INT(json_get(body, "job", v, sizeof v), SL_J_STRING);
        CHECK_STR(v, a->job);
    } else {
        CHECK_INT(json_get(body, "job", v, sizeof v), SL_J_NULL);
    }
    CHECK_INT(json_get(body, "message", v, sizeof v), SL_J_STRING);
    CHECK_STR(v, a->message);
    CHECK_INT(json_get(body, "at", v, sizeof v), SL_J_NUMBER);
    CHECK_INT(strtoll(v, NULL, 10), a->at);
}

static void test_json_body(void)
{
    struct sl_buf b;
    sl_buf_init(&b, 0);
    struct sl_alert a = sample;
    a.message = "late";
    a.dag = "nightly";
    REQUIRE(sl_alert_to_json(&a, &b) == SL_OK);
    CHECK_MEM(b.data, b.len,
              "{\"source\":\"sluice\",\"id\":\"sla_miss/nightly/2026-11-26\",\"kind\":\"sla_miss\","
              "\"dag\":\"nightly\",\"partition\":\"2026-11-26\",\"job\":null,\"message\":\"late\","
              "\"at\":1795746600,\"at_iso\":\"2026-11-27T02:30:00Z\"}");
    /* Escaping: the round trip through our parser gives the strings back. */
    sl_buf_clear(&b);
    REQUIRE(sl_alert_to_json(&sample, &b) == SL_OK);
    REQUIRE(sl_buf_cstr(&b) == SL_OK);
    check_body(b.data, &sample);
    /* Invalid alerts leave the buffer as it was. */
    size_t len = b.len;
    a.id = NULL;
    CHECK_INT(sl_alert_to_json(&a, &b), SL_EINVAL);
    a.id = "two\r\nlines";
    CHECK_INT(sl_alert_to_json(&a, &b), SL_EINVAL);
    a.id = "x";
    a.message = "bad \xff utf-8";
    CHECK_INT(sl_alert_to_json(&a, &b), SL_EINVAL);
    CHECK_INT(b.len, len);
    sl_buf_fini(&b);
}

/* Run sl_alert_raise with stderr captured into *logged (caller frees). */
static sl_rc raise_capture(const struct sl_alert *a, const char *url, long timeout_ms,
                           struct sl_error *err, char **logged)
{
    char path[128];
    snprintf(path, sizeof path, "%s/stderr", dir);
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
    sl_rc rc = sl_alert_raise(a, url, timeout_ms, err);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    *logged = slurp(path);
    return rc;
}

static void test_log_only(void)
{
    struct sl_error err;
    sl_error_clear(&err);
    char *logged = NULL;
    CHECK_INT(raise_capture(&sample, NULL, 0, &err, &logged), SL_OK);
    REQUIRE(logged);
    CHECK(strstr(logged, "WARN  [alert] sla_miss dag=nightly \"metrics\" partition=2026-11-26 "
                         "job=- at=2026-11-27T02:30:00Z id=sla_miss/nightly/2026-11-26: "
                         "partition 2026-11-26 not done") != NULL);
    /* One line, whatever the message holds. */
    CHECK_INT(strchr(logged, '\n') - logged + 1, strlen(logged));
    CHECK(strstr(logged, "(sla 30m)\\nline two \\ caf\xc3\xa9 \\x01\n") != NULL);
    free(logged);
    /* As a JSON log line, the message is one escaped string. */
    sl_log_set_json(1);
    struct sl_alert a = sample;
    a.job = "load";
    CHECK_INT(raise_capture(&a, NULL, 0, &err, &logged), SL_OK);
    sl_log_set_json(0);
    REQUIRE(logged);
    char v[2048];
    CHECK_INT(json_get(logged, "component", v, sizeof v), SL_J_STRING);
    CHECK_STR(v, "alert");
    CHECK_INT(json_get(logged, "level", v, sizeof v), SL_J_STRING);
    CHECK_STR(v, "warn");
    CHECK_INT(json_get(logged, "msg", v, sizeof v), SL_J_STRING);
    CHECK(strstr(v, "job=load") && strstr(v, "\\nline two"));
    free(logged);
    /* Required fields. */
    a.kind = NULL;
    CHECK_INT(sl_alert_raise(&a, NULL, 0, &err), SL_EINVAL);
    CHECK(strstr(err.msg, "required") != NULL);
    CHECK_INT(sl_alert_raise(NULL, NULL, 0, &err), SL_EINVAL);
}

static void test_delivered(void)
{
    struct receiver rv;
    REQUIRE(receiver_start(&rv, "ok", 0) == 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hooks/alerts", rv.port);
    struct sl_error err;
    sl_error_clear(&err);
    char *logged = NULL;
    CHECK_INT(raise_capture(&sample, url, 2000, &err, &logged), SL_OK);
    free(logged);
    struct sl_alert b = sample;
    b.kind = "job_failed";
    b.job = "transform";
    b.id = "job_failed/nightly/2026-11-26/transform";
    CHECK_INT(sl_alert_raise(&b, url, 2000, &err), SL_OK);
    receiver_stop(&rv);
    struct req r[8];
    int n = read_requests(rv.log, r, 8);
    CHECK_INT(n, 2);
    if (n >= 2) {
        CHECK_STR(r[0].status, "200");
        CHECK_STR(r[0].key, sample.id);
        CHECK_STR(r[0].ctype, "application/json");
        check_body(r[0].body, &sample);
        CHECK_STR(r[1].key, b.id);
        check_body(r[1].body, &b);
    }
}

static void test_503_then_ok(void)
{
    struct receiver rv;
    REQUIRE(receiver_start(&rv, "fail_503_retry_after=0", 1) == 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", rv.port);
    struct sl_error err;
    sl_error_clear(&err);
    CHECK_INT(sl_alert_raise(&sample, url, 2000, &err), SL_OK);
    receiver_stop(&rv);
    struct req r[8];
    int n = read_requests(rv.log, r, 8);
    CHECK_INT(n, 2);
    if (n == 2) {
        CHECK_STR(r[0].status, "503");
        CHECK_STR(r[1].status, "200");
        CHECK_STR(r[0].key, sample.id);
        CHECK_STR(r[1].key, sample.id);
        CHECK_STR(r[0].body, r[1].body);
        check_body(r[1].body, &sample);
    }
}

static void test_timeout_then_ok(void)
{
    struct receiver rv;
    REQUIRE(receiver_start(&rv, "timeout=3", 1) == 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", rv.port);
    struct sl_error err;
    sl_error_clear(&err);
    double t0 = now_s();
    CHECK_INT(sl_alert_raise(&sample, url, 300, &err), SL_OK);
    double dt = now_s() - t0;
    CHECK(dt >= 0.3 && dt < 2.5);
    receiver_stop(&rv);
    struct req r[8];
    int n = read_requests(rv.log, r, 8);
    CHECK_INT(n, 2);
    if (n == 2)
        CHECK_STR(r[0].key, r[1].key);
}

static void test_permanent_404(void)
{
    struct receiver rv;
    REQUIRE(receiver_start(&rv, "status=404", 0) == 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/wrong/path", rv.port);
    struct sl_error err;
    sl_error_clear(&err);
    CHECK_INT(sl_alert_raise(&sample, url, 2000, &err), SL_EIO);
    CHECK(strstr(err.msg, "HTTP 404") != NULL);
    CHECK(strstr(err.msg, "wrong/path") == NULL);
    receiver_stop(&rv);
    struct req r[8];
    CHECK_INT(read_requests(rv.log, r, 8), 1);
}

static void test_5xx_exhausted(void)
{
    struct receiver rv;
    REQUIRE(receiver_start(&rv, "fail_500", 0) == 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", rv.port);
    struct sl_error err;
    sl_error_clear(&err);
    CHECK_INT(sl_alert_raise(&sample, url, 2000, &err), SL_RETRY);
    CHECK(strstr(err.msg, "HTTP 500") != NULL);
    receiver_stop(&rv);
    struct req r[8];
    int n = read_requests(rv.log, r, 8);
    CHECK_INT(n, SL_ALERT_ATTEMPTS);
    for (int i = 1; i < n; i++)
        CHECK_STR(r[i].key, r[0].key);
}

static void test_no_receiver(void)
{
    int port = closed_port();
    REQUIRE(port > 0);
    char url[160], host[64];
    snprintf(url, sizeof url, "http://user:s3cret@127.0.0.1:%d/T000/B000/token?x=1", port);
    snprintf(host, sizeof host, "http://127.0.0.1:%d", port);
    struct sl_error err;
    sl_error_clear(&err);
    double t0 = now_s();
    CHECK_INT(sl_alert_raise(&sample, url, 1000, &err), SL_RETRY);
    double dt = now_s() - t0;
    fprintf(stderr, "  no receiver: %.2f s, \"%s\"\n", dt, err.msg);
    CHECK(strstr(err.msg, host) != NULL);
    CHECK(strstr(err.msg, "after 4 attempts") != NULL);
    CHECK(strstr(err.msg, "s3cret") == NULL && strstr(err.msg, "token") == NULL);
    CHECK(dt >= 0.65 && dt < 5.0); /* 100 + 200 + 400 ms of back-off */
    /* A URL that is not HTTP is permanent, at once. */
    CHECK_INT(sl_alert_raise(&sample, "ftp://127.0.0.1/x", 1000, &err), SL_EIO);
    CHECK_INT(sl_alert_raise(&sample, "not a url", 1000, &err), SL_EIO);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sluice-alert-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_json_body);
    RUN(test_log_only);
    RUN(test_delivered);
    RUN(test_503_then_ok);
    RUN(test_timeout_then_ok);
    RUN(test_permanent_404);
    RUN(test_5xx_exhausted);
    RUN(test_no_receiver);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return TEST_DONE();
}
