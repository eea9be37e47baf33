/*
 * partition.c - partitions of time and the {{templates}} that name them.
 *
 * A partition is a civil day or hour in the DAG's time zone, numbered as days since
 * 1970-01-01 or hours since 1970-01-01T00 of the civil calendar (not of Unix time), so
 * that the previous and next partitions are idx - 1 and idx + 1 whatever daylight saving
 * does, and keys sort in time order. Converting between a partition and Unix time is the
 * only place the time zone matters: the zone's offsets come from its zoneinfo file, read
 * once by cron.c (sl_tz_*), so no TZ environment is touched and any thread may convert.
 *
 * Templates are the small language of DAG files: {{name}} with optional spaces inside
 * the braces, names from one table. An unknown name is an error that names the name and
 * its position, so a typo in {{ds_nodahs}} is found by `sluice dag validate`, not by a
 * job writing into a directory called "{{ds_nodahs}}".
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sluice/alloc.h"
#include "sluice/cron.h"
#include "sluice/dag.h"

#include "orchestrator/orch_int.h"

const char *const sl_dag_vars_names[] = {"ds",
                                         "ds_nodash",
                                         "ts",
                                         "ts_nodash",
                                         "prev_ds",
                                         "next_ds",
                                         "partition",
                                         "prev_partition",
                                         "next_partition",
                                         "dag",
                                         "job",
                                         "attempt",
                                         NULL};

/* ---- civil calendar ------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Unix seconds of civil time (days, seconds into the day) in zone z (NULL: UTC). An hour
 * skipped by a daylight saving change starts at the instant the skip ends at (cron.h). */
static int64_t civil_to_unix(const struct sl_tz *z, int64_t days, int64_t secs)
{
    return sl_tz_from_local(z, days * 86400 + secs);
}

/* Civil (days, seconds into the day) of Unix time t in zone z; returns the UTC offset. */
static long unix_to_civil(const struct sl_tz *z, int64_t t, int64_t *days, int64_t *secs)
{
    int32_t off = sl_tz_offset(z, t);
    int64_t local = t + off;
    *days = floor_div(local, 86400);
    *secs = local - *days * 86400;
    return off;
}

/* ---- partitions ---------------------------------------------------------------- */

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int sl_dag_part_parse(const struct sl_dag *d, const char *s, int64_t *idx)
{
    int y, m, day, h = 0, mi = 0, se = 0;
    size_t n = strlen(s);
    if (n < 10 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &m) || s[7] != '-' ||
        digits(s + 8, 2, &day))
        return -1;
    if (m < 1 || m > 12 || day < 1 || day > 31)
        return -1;
    int64_t days = days_from_civil(y, (unsigned)m, (unsigned)day);
    int64_t yy;
    unsigned mm, dd;
    civil_from_days(days, &yy, &mm, &dd);
    if ((int)mm != m || (int)dd != day)
        return -1; /* 2026-02-30 */
    const char *p = s + 10;
    if (d->partitioning == SL_DAG_DAILY) {
        if (*p)
            return -1;
        *idx = days;
        return 0;
    }
    if (*p != 'T' && *p != ' ')
        return -1;
    p++;
    if (digits(p, 2, &h) || h > 23)
        return -1;
    p += 2;
    if (*p == ':') {
        if (digits(p + 1, 2, &mi) || mi != 0)
            return -1;
        p += 3;
        if (*p == ':') {
            if (digits(p + 1, 2, &se) || se != 0)
                return -1;
            p += 3;
        }
    }
    if (*p == 'Z')
        p++;
    if (*p)
        return -1;
    *idx = days * 24 + h;
    return 0;
}

void sl_dag_part_key(const struct sl_dag *d, int64_t idx, char *out)
{
    int64_t days = d->partitioning == SL_DAG_HOURLY ? floor_div(idx, 24) : idx;
    int64_t y;
    unsigned m, day;
    civil_from_days(days, &y, &m, &day);
    if (d->partitioning == SL_DAG_HOURLY)
        snprintf(out, SL_DAG_KEY_MAX, "%04lld-%02u-%02uT%02lld", (long long)y, m, day,
                 (long long)(idx - days * 24));
    else
        snprintf(out, SL_DAG_KEY_MAX, "%04lld-%02u-%02u", (long long)y, m, day);
}

int64_t sl_dag_part_start(const struct sl_dag *d, int64_t idx)
{
    if (d->partitioning == SL_DAG_HOURLY) {
        int64_t days = floor_div(idx, 24);
        return civil_to_unix(d->tz, days, (idx - days * 24) * 3600);
    }
    return civil_to_unix(d->tz, idx, 0);
}

int64_t sl_dag_part_at(const struct sl_dag *d, int64_t t)
{
    int64_t days, secs;
    unix_to_civil(d->tz, t, &days, &secs);
    return d->partitioning == SL_DAG_HOURLY ? days * 24 + secs / 3600 : days;
}

int64_t sl_dag_part_scheduled(const struct sl_dag *d, int64_t idx)
{
    int64_t end = sl_dag_part_start(d, idx + 1);
    if (!d->cron)
        return end;
    return sl_cron_next(d->cron, end - 1);
}

/* ---- template variables ------------------------------------------------------- */

enum {
    V_DS,
    V_DS_NODASH,
    V_TS,
    V_TS_NODASH,
    V_PREV_DS,
    V_NEXT_DS,
    V_PARTITION,
    V_PREV_PARTITION,
    V_NEXT_PARTITION,
    V_DAG,
    V_JOB,
    V_ATTEMPT
};

static void ds_of(const struct sl_dag *d, int64_t idx, char *out, size_t cap)
{
    int64_t days = d->partitioning == SL_DAG_HOURLY ? floor_div(idx, 24) : idx;
    int64_t y;
    unsigned m, day;
    civil_from_days(days, &y, &m, &day);
    snprintf(out, cap, "%04lld-%02u-%02u", (long long)y, m, day);
}

void sl_dag_vars_init(const struct sl_dag *d, int64_t idx, const char *job, unsigned attempt,
                      struct sl_dag_vars *v)
{
    memset(v, 0, sizeof *v);
    ds_of(d, idx, v->val[V_DS], sizeof v->val[V_DS]);
    const char *ds = v->val[V_DS];
    snprintf(v->val[V_DS_NODASH], sizeof v->val[0], "%.4s%.2s%.2s", ds, ds + 5, ds + 8);
    int hour = d->partitioning == SL_DAG_HOURLY ? (int)(idx - floor_div(idx, 24) * 24) : 0;
    /* ts carries the zone's offset at the partition's start, as ISO 8601 does. */
    int64_t start = sl_dag_part_start(d, idx);
    int64_t days, secs;
    long off = unix_to_civil(d->tz, start, &days, &secs);
    char sign = off < 0 ? '-' : '+';
    long aoff = off < 0 ? -off : off;
    unsigned hh = (unsigned)hour % 24u, oh = (unsigned)(aoff / 3600) % 100u,
             om = (unsigned)(aoff / 60 % 60);
    snprintf(v->val[V_TS], sizeof v->val[0], "%.10sT%02u:00:00%c%02u:%02u", ds, hh, sign, oh, om);
    snprintf(v->val[V_TS_NODASH], sizeof v->val[0], "%.8sT%02u0000", v->val[V_DS_NODASH], hh);
    ds_of(d, idx - 1, v->val[V_PREV_DS], sizeof v->val[0]);
    ds_of(d, idx + 1, v->val[V_NEXT_DS], sizeof v->val[0]);
    sl_dag_part_key(d, idx, v->val[V_PARTITION]);
    sl_dag_part_key(d, idx - 1, v->val[V_PREV_PARTITION]);
    sl_dag_part_key(d, idx + 1, v->val[V_NEXT_PARTITION]);
    snprintf(v->val[V_DAG], sizeof v->val[0], "%s", d->name ? d->name : "");
    snprintf(v->val[V_JOB], sizeof v->val[0], "%s", job ? job : "");
    snprintf(v->val[V_ATTEMPT], sizeof v->val[0], "%u", attempt ? attempt : 1);
}

/* ---- template expansion ------------------------------------------------------- */

sl_rc sl_dag_template(const char *text, size_t len, const struct sl_dag_vars *v, struct sl_buf *out,
                      unsigned *line, unsigned *col, struct sl_error *err)
{
    unsigned ln = 1, cl = 1;
    size_t i = 0;
    while (i < len) {
        if (text[i] == '{' && i + 1 < len && text[i + 1] == '{') {
            if (i + 3 < len && text[i + 2] == '{' && text[i + 3] == '{') {
                /* {{{{ is a literal {{ */
                if (v && sl_buf_append(out, "{{", 2))
                    return sl_error_set(err, SL_ENOMEM, "out of memory expanding a template");
                i += 4;
                cl += 4;
                continue;
            }
            size_t j = i + 2;
            while (j < len && text[j] == ' ')
                j++;
            size_t ns = j;
            while (j < len && (isalnum((unsigned char)text[j]) || text[j] == '_'))
                j++;
            size_t ne = j;
            while (j < len && text[j] == ' ')
                j++;
            if (j + 1 >= len || text[j] != '}' || text[j + 1] != '}' || ne == ns) {
                if (line)
                    *line = ln;
                if (col)
                    *col = cl;
                return sl_error_set(err, SL_ECONFIG,
                                    "%u:%u: \"{{\" opens no template: write {{name}} with a "
                                    "name like ds, ts or partition (write {{{{ for a literal {{)",
                                    ln, cl);
            }
            int k;
            for (k = 0; sl_dag_vars_names[k]; k++)
                if (strlen(sl_dag_vars_names[k]) == ne - ns &&
                    memcmp(sl_dag_vars_names[k], text + ns, ne - ns) == 0)
                    break;
            if (!sl_dag_vars_names[k]) {
                if (line)
                    *line = ln;
                if (col)
                    *col = cl;
                return sl_error_set(err, SL_ECONFIG,
                                    "%u:%u: unknown template {{%.*s}}; the names are ds, "
                                    "ds_nodash, ts, ts_nodash, prev_ds, next_ds, partition, "
                                    "prev_partition, next_partition, dag, job, attempt",
                                    ln, cl, (int)(ne - ns), text + ns);
            }
            if (v && sl_buf_puts(out, v->val[k]))
                return sl_error_set(err, SL_ENOMEM, "out of memory expanding a template");
            cl += (unsigned)(j + 2 - i);
            i = j + 2;
            continue;
        }
        if (v && sl_buf_putc(out, text[i]))
            return sl_error_set(err, SL_ENOMEM, "out of memory expanding a template");
        if (text[i] == '\n') {
            ln++;
            cl = 1;
        } else {
            cl++;
        }
        i++;
    }
    return SL_OK;
}
