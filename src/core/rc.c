/*
 * rc.c - names and messages for return codes, and the error-detail helpers.
 *
 * Both tables are generated from SL_RC_TABLE in rc.h so a code, its name and its message
 * cannot drift apart.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sluice/rc.h"

static const char *const rc_names[] = {
#define SL__RC_NAME(name, text) "SL_" #name,
    SL_RC_TABLE(SL__RC_NAME)
#undef SL__RC_NAME
};

static const char *const rc_texts[] = {
#define SL__RC_TEXT(name, text) text,
    SL_RC_TABLE(SL__RC_TEXT)
#undef SL__RC_TEXT
};

const char *sl_rc_name(sl_rc rc)
{
    if (rc < 0 || rc >= SL__RC_COUNT)
        return "SL_UNKNOWN";
    return rc_names[rc];
}

const char *sl_strerror(sl_rc rc)
{
    if (rc < 0 || rc >= SL__RC_COUNT)
        return "unknown error";
    return rc_texts[rc];
}

void sl_error_clear(struct sl_error *e)
{
    if (!e)
        return;
    e->rc = SL_OK;
    e->sys_errno = 0;
    e->msg[0] = '\0';
}

sl_rc sl_error_set(struct sl_error *e, sl_rc rc, const char *fmt, ...)
{
    if (!e)
        return rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->rc = rc;
    e->sys_errno = 0;
    return rc;
}

sl_rc sl_error_sys(struct sl_error *e, sl_rc rc, int errnum, const char *fmt, ...)
{
    if (!e)
        return rc;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof e->msg)
        snprintf(e->msg + n, sizeof e->msg - (size_t)n, ": %s", strerror(errnum));
    e->rc = rc;
    e->sys_errno = errnum;
    return rc;
}

sl_rc sl_error_prefix(struct sl_error *e, const char *fmt, ...)
{
    if (!e)
        return SL_OK;
    char prefix[512];
    char old[SL_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    size_t pl = strnlen(prefix, sizeof prefix);
    size_t ol = strnlen(old, sizeof old);
    if (pl >= sizeof e->msg)
        pl = sizeof e->msg - 1;
    if (ol > sizeof e->msg - 1 - pl)
        ol = sizeof e->msg - 1 - pl;
    memcpy(e->msg, prefix, pl);
    memcpy(e->msg + pl, old, ol);
    e->msg[pl + ol] = '\0';
    return e->rc;
}
