/*
 * kafka_mock.c - a Kafka cluster for tests, and a reader that dumps a topic.
 *
 *   kafka_mock serve [TOPIC:PARTITIONS ...]
 *       Start librdkafka's mock cluster with 3 brokers on 127.0.0.1, create each TOPIC
 *       with PARTITIONS partitions (replication factor 3), print the bootstrap address
 *       (host:port,host:port,host:port) as one line on stdout and keep serving until
 *       SIGTERM or SIGINT.
 *
 *   kafka_mock produce BOOTSTRAP TOPIC PARTITIONS
 *       Read lines from stdin and produce line i (0-based) as one message to partition
 *       i % PARTITIONS with key "k<i>" and header n=<i>, idempotently; wait for every
 *       delivery report. Exit status 0 when all were delivered, else 1.
 *
 *   kafka_mock dump BOOTSTRAP TOPIC
 *       Read every message of TOPIC from the start to the high watermark of each
 *       partition and print one JSON line per message, partitions in order, offsets in
 *       order within them:
 *         {"partition":P,"offset":O,"key":K,"headers":{...},"value":V}
 *       K is the key as a JSON string (null when absent), header values are JSON strings
 *       (null when absent; a repeated name appears repeatedly), V is the value as it is
 *       when it parses as one JSON text with no surrounding bytes to spare, else a JSON
 *       string of it. Exit status 0, or 1 with a message on stderr.
 *
 * Test tool: it trusts its arguments and treats any failure as fatal.
 */
#include <ctype.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "kafka_mock: %s: %s\n", what, why);
    exit(1);
}

static void set(rd_kafka_conf_t *c, const char *k, const char *v)
{
    char why[256];
    if (rd_kafka_conf_set(c, k, v, why, sizeof why) != RD_KAFKA_CONF_OK)
        die(k, why);
}

static int serve(int argc, char **argv)
{
    char why[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    set(c, "log_level", "3");
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, why, sizeof why);
    if (!rk)
        die("rd_kafka_new", why);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, 3);
    if (!mc)
        die("rd_kafka_mock_cluster_new", "failed");
    for (int i = 0; i < argc; i++) {
        char *colon = strrchr(argv[i], ':');
        int parts = colon ? atoi(colon + 1) : 0;
        if (!colon || parts < 1)
            die(argv[i], "expected TOPIC:PARTITIONS");
        *colon = '\0';
        rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, argv[i], parts, 3);
        if (e)
            die(argv[i], rd_kafka_err2str(e));
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    while (!stop)
        usleep(100000);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}

static void put_string(const char *p, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

/* Crude check that v is one JSON object or array (what the sinks under test write). */
static int looks_like_json(const char *p, size_t n)
{
    while (n && isspace((unsigned char)p[n - 1]))
        n--;
    return n >= 2 && ((p[0] == '{' && p[n - 1] == '}') || (p[0] == '[' && p[n - 1] == ']'));
}

static void print_message(const rd_kafka_message_t *m)
{
    printf("{\"partition\":%" PRId32 ",\"offset\":%" PRId64 ",\"key\":", m->partition, m->offset);
    if (m->key)
        put_string(m->key, m->key_len);
    else
        fputs("null", stdout);
    fputs(",\"headers\":{", stdout);
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char *name;
        const void *val;
        size_t vlen;
        for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &val, &vlen) == 0; i++) {
            if (i)
                putchar(',');
            put_string(name, strlen(name));
            putchar(':');
            if (val)
                put_string(val, vlen);
            else
                fputs("null", stdout);
        }
    }
    fputs("},\"value\":", stdout);
    if (!m->payload)
        fputs("null", stdout);
    else if (looks_like_json(m->payload, m->len))
        fwrite(m->payload, 1, m->len, stdout);
    else
        put_string(m->payload, m->len);
    fputs("}\n", stdout);
}

static int dump(const char *bootstrap, const char *topic)
{
    char why[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    set(c, "bootstrap.servers", bootstrap);
    set(c, "group.id", "kafka_mock_dump");
    set(c, "enable.auto.commit", "false");
    set(c, "log_level", "3");
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, why, sizeof why);
    if (!rk)
        die("rd_kafka_new", why);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    if (e)
        die("metadata", rd_kafka_err2str(e));
    if (md->topic_cnt != 1 || md->topics[0].err)
        die(topic, md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "no such topic");
    int np = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);

    int64_t *high = calloc((size_t)np, sizeof *high);
    int64_t *next = calloc((size_t)np, sizeof *next);
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(np);
    int remaining = 0;
    for (int p = 0; p < np; p++) {
        int64_t lo, hi;
        if ((e = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000)))
            die("watermarks", rd_kafka_err2str(e));
        high[p] = hi;
        next[p] = lo;
        remaining += lo < hi;
        rd_kafka_topic_partition_list_add(tp, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    if ((e = rd_kafka_assign(rk, tp)))
        die("assign", rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(tp);

    /* Collect per partition, then print in partition order. */
    size_t cap = 1024, n = 0;
    rd_kafka_message_t **msgs = malloc(cap * sizeof *msgs);
    int idle = 0;
    while (remaining > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) {
            if (++idle > 150)
                die(topic, "timed out before reaching the end of every partition");
            continue;
        }
        idle = 0;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                die("consume", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        int p = m->partition;
        if (m->offset >= next[p]) {
            next[p] = m->offset + 1;
            if (next[p] >= high[p])
                remaining--;
        }
        if (n == cap)
            msgs = realloc(msgs, (cap *= 2) * sizeof *msgs);
        msgs[n++] = m;
    }
    for (int p = 0; p < np; p++)
        for (size_t i = 0; i < n; i++)
            if (msgs[i]->partition == p && msgs[i]->offset < high[p])
                print_message(msgs[i]);
    for (size_t i = 0; i < n; i++)
        rd_kafka_message_destroy(msgs[i]);
    free(msgs);
    free(high);
    free(next);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int delivered_ok, delivered_bad;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err) {
        fprintf(stderr, "kafka_mock: delivery failed: %s\n", rd_kafka_err2str(m->err));
        delivered_bad++;
    } else {
        delivered_ok++;
    }
}

static int produce(const char *bootstrap, const char *topic, int parts)
{
    char why[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    set(c, "bootstrap.servers", bootstrap);
    set(c, "enable.idempotence", "true");
    set(c, "linger.ms", "5");
    set(c, "log_level", "3");
    rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, why, sizeof why);
    if (!rk)
        die("rd_kafka_new", why);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long i = 0;
    while ((len = getline(&line, &cap, stdin)) > 0) {
        if (line[len - 1] == '\n')
            len--;
        char key[32], num[32];
        snprintf(key, sizeof key, "k%ld", i);
        snprintf(num, sizeof num, "%ld", i);
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(
                    rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION((int32_t)(i % parts)),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_VALUE(line, (size_t)len),
                    RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_HEADER("n", num, -1),
                    RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 50);
        if (e)
            die("produce", rd_kafka_err2str(e));
        rd_kafka_poll(rk, 0);
        i++;
    }
    free(line);
    rd_kafka_flush(rk, 60000);
    rd_kafka_destroy(rk);
    if (delivered_ok != i || delivered_bad) {
        fprintf(stderr, "kafka_mock: %d of %ld messages delivered\n", delivered_ok, i);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "produce") == 0)
        return produce(argv[2], argv[3], atoi(argv[4]) > 0 ? atoi(argv[4]) : 1);
    if (argc >= 2 && strcmp(argv[1], "serve") == 0)
        return serve(argc - 2, argv + 2);
    if (argc == 4 && strcmp(argv[1], "dump") == 0)
        return dump(argv[2], argv[3]);
    fprintf(stderr, "usage: kafka_mock serve [TOPIC:PARTITIONS ...]\n"
                    "       kafka_mock produce BOOTSTRAP TOPIC PARTITIONS\n"
                    "       kafka_mock dump BOOTSTRAP TOPIC\n");
    return 2;
}
