/*
 * log.h - structured logging to stderr, as text or JSON lines.
 *
 * Text:  2026-11-27T12:00:00.123Z WARN  [enrich] rejected record data/c.ndjson:17: ...
 * JSON:  {"ts":"2026-11-27T12:00:00.123Z","level":"warn","component":"enrich","msg":"..."}
 *
 * Thread-safe; one write(2) per line so lines from different threads never interleave.
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

enum sl_log_level { SL_LOG_DEBUG = 0, SL_LOG_INFO, SL_LOG_WARN, SL_LOG_ERROR, SL_LOG_OFF };

void sl_log_set_level(enum sl_log_level lvl);
enum sl_log_level sl_log_get_level(void);
void sl_log_set_json(int json);

/* Parse "debug|info|warn|error|off"; -1 when unknown. */
int sl_log_level_parse(const char *s);

/* component may be NULL. */
void sl_log(enum sl_log_level lvl, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define sl_debug(comp, ...) sl_log(SL_LOG_DEBUG, comp, __VA_ARGS__)
#define sl_info(comp, ...) sl_log(SL_LOG_INFO, comp, __VA_ARGS__)
#define sl_warn(comp, ...) sl_log(SL_LOG_WARN, comp, __VA_ARGS__)
#define sl_error_log(comp, ...) sl_log(SL_LOG_ERROR, comp, __VA_ARGS__)

#endif
