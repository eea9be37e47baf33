/*
 * log.c - text or JSON-lines logging to stderr (see log.h).
 *
 * Each line is formatted into a stack buffer and written with one write(2), which POSIX
 * makes atomic for pipes up to PIPE_BUF and which in practice keeps lines whole on files
 * and terminals; no lock is needed.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "sluice/log.h"

static atomic_int log_level = SL_LOG_INFO;
static atomic_int log_json;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void sl_log_set_level(enum sl_log_level lvl)
{
    atomic_store(&log_level, (int)lvl);
}
enum sl_log_level sl_log_get_level(void)
{
    return (enum sl_log_level)atomic_load(&log_level);
}
void sl_log_set_json(int json)
{
    atomic_store(&log_json, json ? 1 : 0);
}

int sl_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    if (strcasecmp(s, "off") == 0)
        return SL_LOG_OFF;
    return -1;
}

/* Append s to out[*n..cap) as the inside of a JSON string. */
static void json_escape(char *out, size_t cap, size_t *n, const char *s)
{
    for (; *s && *n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[(*n)++] = '\\';
            out[(*n)++] = (char)c;
        } else if (c == '\n') {
            out[(*n)++] = '\\';
            out[(*n)++] = 'n';
        } else if (c < 0x20) {
            *n += (size_t)snprintf(out + *n, cap - *n, "\\u%04x", c);
        } else {
            out[(*n)++] = (char)c;
        }
    }
}

void sl_log(enum sl_log_level lvl, const char *component, const char *fmt, ...)
{
    if ((int)lvl < atomic_load(&log_level) || lvl >= SL_LOG_OFF)
        return;
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[96];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ts.tv_nsec / 1000000));

    char line[8192];
    size_t n = 0;
    if (atomic_load(&log_json)) {
        n = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\"", when,
                             level_names[lvl]);
        if (component) {
            n += (size_t)snprintf(line + n, sizeof line - n, ",\"component\":\"");
            json_escape(line, sizeof line - 4, &n, component);
            line[n++] = '"';
        }
        n += (size_t)snprintf(line + n, sizeof line - n, ",\"msg\":\"");
        json_escape(line, sizeof line - 4, &n, msg);
        line[n++] = '"';
        line[n++] = '}';
        line[n++] = '\n';
    } else {
        static const char *const tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
        int k =
            snprintf(line, sizeof line - 1, "%s %s %s%s%s%s\n", when, tags[lvl],
                     component ? "[" : "", component ? component : "", component ? "] " : "", msg);
        n = k < 0 ? 0 : (size_t)k >= sizeof line - 1 ? sizeof line - 1 : (size_t)k;
        line[n - 1] = '\n';
    }
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}
