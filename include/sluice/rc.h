/*
 * rc.h - return codes and error details.
 *
 * Every fallible function returns an sl_rc: SL_OK (0) on success, a positive code
 * otherwise. The codes, their names and their messages come from one table so they can
 * never drift apart. The table is append-only: a code's number is part of the ABI and of
 * logs users grep, so never renumber or reuse one.
 *
 * Flow codes are not failures: SL_AGAIN (a queue is full or no data is ready yet),
 * SL_RETRY (a transient failure: back off and try again) and SL_EOF (input exhausted).
 *
 * Details go in a struct sl_error owned by the caller: the message says what failed, on
 * which input (file:line, stage, field path) and what to do about it.
 */
#ifndef SLUICE_RC_H
#define SLUICE_RC_H

#include <stddef.h>

#define SL_RC_TABLE(X)                                                                             \
    X(OK, "success")                                                                               \
    X(AGAIN, "would block; try again")                                                             \
    X(RETRY, "transient failure; retry after a back-off")                                          \
    X(EOF, "end of input")                                                                         \
    X(ENOMEM, "out of memory")                                                                     \
    X(EINVAL, "invalid argument")                                                                  \
    X(EIO, "input/output error")                                                                   \
    X(ECONFIG, "configuration error")                                                              \
    X(EPARSE, "malformed input")                                                                   \
    X(ELIMIT, "limit exceeded")                                                                    \
    X(ENOENT, "not found")                                                                         \
    X(ETYPE, "wrong type")                                                                         \
    X(ESTATE, "invalid state")                                                                     \
    X(EDB, "database error")                                                                       \
    X(ECANCELED, "canceled")                                                                       \
    X(EUNSUPPORTED, "not supported")                                                               \
    X(EGATE, "a quality gate failed")

typedef int sl_rc;

enum sl_rc_code {
#define SL__RC_ENUM(name, text) SL_##name,
    SL_RC_TABLE(SL__RC_ENUM)
#undef SL__RC_ENUM
        SL__RC_COUNT
};

/* The symbolic name of rc ("SL_EPARSE"), or "SL_UNKNOWN" for a value outside the table. */
const char *sl_rc_name(sl_rc rc);

/* A one-line human description of rc. Never NULL. */
const char *sl_strerror(sl_rc rc);

/*
 * Error details, owned by the caller. msg is always NUL-terminated; it is empty when no
 * detail was set. sys_errno is the errno that caused the failure, or 0.
 */
#define SL_ERROR_MSG_MAX 2048
struct sl_error {
    sl_rc rc;
    int sys_errno;
    char msg[SL_ERROR_MSG_MAX];
};

/* Reset e to "no error". e may be NULL. */
void sl_error_clear(struct sl_error *e);

/*
 * Record rc and a printf-style message in e (which may be NULL) and return rc, so that
 * callers can write `return sl_error_set(err, SL_EIO, "...")`. Overwrites earlier detail.
 */
sl_rc sl_error_set(struct sl_error *e, sl_rc rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like sl_error_set, and appends ": <strerror(errnum)>" and stores errnum. */
sl_rc sl_error_sys(struct sl_error *e, sl_rc rc, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Prefix the existing message with a printf-style context ("stage enrich: " + old msg).
 * Keeps rc. Returns e->rc. e may be NULL (returns SL_OK then).
 */
sl_rc sl_error_prefix(struct sl_error *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
