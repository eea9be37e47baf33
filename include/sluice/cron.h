/*
 * cron.h - 5-field cron expressions and when they fire.
 *
 *     minute hour day-of-month month day-of-week
 *
 * Each field takes `*`, numbers, ranges `a-b`, steps `*\/n` and `a-b/n`, lists `a,b-c`;
 * months and weekdays also take names (jan..dec, sun..sat, any case). Day-of-week 0 and 7
 * are Sunday. When both day-of-month and day-of-week are restricted (neither starts with
 * `*`), a day matches when either matches (the classic cron rule); otherwise both must
 * match, so "0 0 *\/2 * mon" is odd days that are Mondays. `a/n` means `a-max/n`. Ranges do
 * not wrap around ("fri-sun" and "5-7" are fine). Macros @yearly, @annually, @monthly,
 * @weekly, @daily, @midnight and @hourly are accepted. docs/cron.md has the details.
 *
 * Times are Unix seconds. A schedule is read in a time zone: NULL or "UTC" means UTC,
 * otherwise an IANA name from the system's zoneinfo ("Europe/Berlin"). Across a daylight
 * saving change, a wall-clock time that does not exist is skipped and one that exists
 * twice fires once (at its first occurrence).
 *
 * A compiled expression is immutable: any number of threads may call next/prev on it.
 */
#ifndef SLUICE_CRON_H
#define SLUICE_CRON_H

#include <stdint.h>

#include "sluice/rc.h"

struct sl_cron;

/*
 * Compile expr for time zone tz (NULL = UTC). On error returns SL_ECONFIG with a message
 * naming the field and the offending text; *out is NULL.
 */
sl_rc sl_cron_parse(const char *expr, const char *tz, struct sl_cron **out, struct sl_error *err);

/* The first firing time strictly after `after` (Unix seconds), or -1 when there is none
 * within the next 400 years (e.g. "0 0 30 2 *"; in UTC that means it never fires, since the
 * calendar repeats every 400 years) or `after` lies outside years 1..9999. */
int64_t sl_cron_next(const struct sl_cron *c, int64_t after);

/* The last firing time at or before `at`, or -1 when there is none within the 400 years
 * before it (or `at` lies outside years 1..9999). */
int64_t sl_cron_prev(const struct sl_cron *c, int64_t at);

void sl_cron_free(struct sl_cron *c);

/*
 * Time zones, read from the same zoneinfo files as schedules (no TZ environment, so any
 * thread may use a zone). A NULL zone is UTC.
 */
struct sl_tz;

/* Open zone name (NULL or "UTC": *out = NULL, i.e. UTC). SL_ECONFIG naming the zone when it
 * does not exist or its file is not a zone file; SL_ENOMEM. */
sl_rc sl_tz_open(const char *name, struct sl_tz **out, struct sl_error *err);

/* Seconds east of UTC at instant t (Unix seconds). */
int32_t sl_tz_offset(const struct sl_tz *z, int64_t t);

/* The first instant whose wall-clock time is local (civil seconds since 1970-01-01T00:00
 * of the zone's calendar). A wall time that does not exist (skipped by a daylight saving
 * change) is read with the offset in force before the change, as mktime does: 02:30 of a
 * skipped 02:00-03:00 hour is 03:30 after it, and 02:00 is the instant the skip ends. */
int64_t sl_tz_from_local(const struct sl_tz *z, int64_t local);

void sl_tz_close(struct sl_tz *z);

#endif
