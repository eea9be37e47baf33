/*
 * admin.c - the admin HTTP server: /metrics, /health, /ready.
 *
 * `sluice run` starts it before the engine when the pipeline has `admin: {listen: ...}`
 * and stops it after the engine returned. It binds the listening socket itself (so a bind
 * failure names the address and the system's reason, and nothing but the given address is
 * ever listened on), then hands the socket to libmicrohttpd, which serves every request
 * from one internal thread (epoll on Linux). Requests are tiny and answered at once, so one
 * thread is plenty; the connection limit and timeout keep a misbehaving scraper from
 * holding resources.
 *
 * Routes (GET or HEAD; any other method gets 405 with Allow):
 *   /metrics  200, text/plain; version=0.0.4 (metrics.c renders it)
 *   /health   200 "ok" while the process runs (the server only runs while it does)
 *   /ready    200 "ready" while an engine runs, has started every stage and no stop was
 *             requested; 503 "not ready" otherwise (before the start, while draining after
 *             SIGTERM, after the end)
 *   anything else 404
 *
 * Threading: sl_admin_start and sl_admin_stop are called by the thread that runs the
 * pipeline; handlers run on libmicrohttpd's thread and touch only the immutable struct
 * sl_admin and the engine's thread-safe live API.
 * Ownership: struct sl_admin owns its copy of the pipeline name and, through the daemon,
 * the listening socket (libmicrohttpd closes it in MHD_stop_daemon).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "sluice/admin.h"
#include "sluice/alloc.h"
#include "sluice/engine.h"
#include "sluice/log.h"

/* A scrape of a very large pipeline stays far below this; beyond it we answer 500. */
#define ADMIN_METRICS_MAX (16u << 20)
#define ADMIN_CONN_LIMIT 64
#define ADMIN_CONN_TIMEOUT_S 10

struct sl_admin {
    struct MHD_Daemon *daemon;
    char *pipeline; /* owned copy of the pipeline's name */
    unsigned port;
};

static const char ct_metrics[] = "text/plain; version=0.0.4; charset=utf-8";
static const char ct_text[] = "text/plain; charset=utf-8";

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             const char *body, size_t len, int allow)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *text)
{
    return reply(c, status, ct_text, text, strlen(text), 0);
}

static enum MHD_Result serve_metrics(struct sl_admin *a, struct MHD_Connection *c)
{
    struct sl_buf b;
    sl_buf_init(&b, ADMIN_METRICS_MAX);
    sl_rc rc = sl_admin_metrics_render(&b, a->pipeline);
    enum MHD_Result ret;
    if (rc) {
        sl_warn("admin", "cannot render /metrics: %s", sl_strerror(rc));
        ret = reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot render metrics\n");
    } else {
        ret = reply(c, MHD_HTTP_OK, ct_metrics, b.data ? b.data : "", b.len, 0);
    }
    sl_buf_fini(&b);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct sl_admin *a = cls;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    int known =
        strcmp(url, "/metrics") == 0 || strcmp(url, "/health") == 0 || strcmp(url, "/ready") == 0;
    if (!known)
        return reply_text(c, MHD_HTTP_NOT_FOUND,
                          "not found; this server serves /metrics, /health and /ready\n");
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        static const char msg[] = "method not allowed; use GET or HEAD\n";
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, ct_text, msg, sizeof msg - 1, 1);
    }
    if (strcmp(url, "/metrics") == 0)
        return serve_metrics(a, c);
    if (strcmp(url, "/health") == 0)
        return reply_text(c, MHD_HTTP_OK, "ok\n");
    /* A stopping engine drains and then exits: it takes no new work, so it is not ready. */
    if (sl_engine_ready() && !sl_engine_stopping())
        return reply_text(c, MHD_HTTP_OK, "ready\n");
    return reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready\n");
}

__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = 0;
    sl_warn("admin", "%s", msg);
}

/* Split "host:port" / "[v6]:port" into host and port (copied into the given buffers). */
static int split_listen(const char *addr, char *host, size_t hn, char *port, size_t pn)
{
    const char *colon;
    const char *h = addr;
    size_t hl;
    if (addr[0] == '[') {
        const char *rb = strchr(addr, ']');
        if (!rb || rb[1] != ':')
            return -1;
        h = addr + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon)
            return -1;
        hl = (size_t)(colon - addr);
    }
    size_t pl = strlen(colon + 1);
    if (!hl || hl >= hn || !pl || pl >= pn || strspn(colon + 1, "0123456789") != pl ||
        strtoul(colon + 1, NULL, 10) > 65535)
        return -1;
    memcpy(host, h, hl);
    host[hl] = 0;
    memcpy(port, colon + 1, pl + 1);
    return 0;
}

/* A non-blocking listening socket on addr in *fd_out; where names the pipeline file. */
static sl_rc open_listener(const char *addr, const char *where, int *fd_out, unsigned *port_out,
                           struct sl_error *err)
{
    char host[256], port[8];
    if (split_listen(addr, host, sizeof host, port, sizeof port) != 0) {
        return sl_error_set(err, SL_EINVAL,
                            "admin.listen: \"%s\" is not host:port (like 127.0.0.1:9464 or "
                            "[::1]:9464); fix admin.listen in %s",
                            addr, where);
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g != 0) {
        return sl_error_set(err, SL_EIO,
                            "admin server: cannot resolve %s (admin.listen in %s): %s; fix the "
                            "address",
                            addr, where, gai_strerror(g));
    }
    int fd = -1, last_errno = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        int one = 1;
        /* Lets a restart bind while old connections linger in TIME_WAIT; a live listener on
           the same address still makes bind fail with EADDRINUSE. */
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
            last_errno = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        sl_error_set(err, SL_EIO,
                     "admin server: cannot listen on %s (admin.listen in %s): %s; choose a free "
                     "address or stop the process that holds it",
                     addr, where, strerror(last_errno));
        if (err)
            err->sys_errno = last_errno;
        return SL_EIO;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    *port_out = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            *port_out = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            *port_out = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    *fd_out = fd;
    return SL_OK;
}

sl_rc sl_admin_start(const char *listen, const struct sl_pipeline *p, struct sl_admin **out,
                     struct sl_error *err)
{
    struct sl_admin *a = sl_calloc(1, sizeof *a);
    if (!a || !(a->pipeline = sl_strdup(p && p->name ? p->name : ""))) {
        sl_free(a);
        return sl_error_set(err, SL_ENOMEM, "admin server: out of memory");
    }
    int fd = -1;
    sl_rc rc =
        open_listener(listen, p && p->path ? p->path : "the pipeline file", &fd, &a->port, err);
    if (rc) {
        sl_free(a->pipeline);
        sl_free(a);
        return rc;
    }
    a->daemon = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, a,
        /* the logger first, or messages about the options before it bypass it */
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)ADMIN_CONN_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)ADMIN_CONN_TIMEOUT_S, MHD_OPTION_END);
    if (!a->daemon) {
        close(fd);
        sl_free(a->pipeline);
        sl_free(a);
        return sl_error_set(err, SL_EIO,
                            "admin server: cannot start serving on %s (libmicrohttpd refused; "
                            "see the warning above)",
                            listen);
    }
    sl_info("admin", "serving /metrics, /health and /ready on %s (port %u)", listen, a->port);
    *out = a;
    return SL_OK;
}

unsigned sl_admin_port(const struct sl_admin *a)
{
    return a ? a->port : 0;
}

void sl_admin_stop(struct sl_admin *a)
{
    if (!a)
        return;
    MHD_stop_daemon(a->daemon);
    sl_free(a->pipeline);
    sl_free(a);
}
