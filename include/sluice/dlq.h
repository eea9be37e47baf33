/*
 * dlq.h - the dead-letter queue: every rejected record, kept with the reason.
 *
 * One embedded SQLite database per pipeline (by default <state_dir>/dlq.db). Each entry
 * holds the record's original bytes exactly as read (a BLOB: also when they are not valid
 * JSON or UTF-8), where it came from (source, file, line, byte offset), the stage that
 * rejected it, the structured reason (struct sl_reject_info), the record as JSON as it
 * was when rejected (NULL when it never parsed), attempts, and first/last seen times.
 *
 * Delivery (DESIGN §4). An entry is keyed by (record id, stage), so writing the same
 * rejection twice (a batch read again after a crash) keeps one entry. The engine writes a
 * stage's rejections before the batch goes on (sinks: before they commit, through
 * sl_worker.keep_rejects), so no checkpoint anywhere covers a rejected record the DLQ
 * does not hold: after a crash the record is read again, rejected again, and the upsert
 * makes that harmless. Together: each rejected record is in the DLQ exactly once.
 *
 * Replay. `sluice dlq replay` marks the chosen entries with a replay id (one per stage the
 * entries go back into), then runs the pipeline with a replay source that reads those
 * entries in id order and feeds them into that stage. The replay source's position is the
 * last entry id of a batch, and every sink commits it in its checkpoint table like any
 * source position. An entry rejected again during the replay is updated in place by
 * sl_dlq_keep (attempts + 1, new reason, no longer marked); when the run has committed,
 * sl_dlq_replay_finish deletes the entries still marked: they were delivered (or filtered)
 * and the sinks' checkpoints say so. A replay cut short resumes from the sinks' positions,
 * so no entry is delivered twice and none is lost.
 *
 * Threading: a struct sl_dlq may be used by several threads at once (one connection
 * behind a mutex, held during callbacks: a callback must not call into the same DLQ).
 *
 * docs/dlq.md describes the fields, the error classes and the database's layout.
 */
#ifndef SLUICE_DLQ_H
#define SLUICE_DLQ_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/batch.h"
#include "sluice/rc.h"

struct sl_dlq;

/*
 * Open (and with create, create) the DLQ database at path. durable: synchronous=FULL
 * (every keep survives power loss; used under exactly_once), otherwise NORMAL (survives a
 * process crash). Without create, a missing file is SL_ENOENT. SL_EDB on a database that
 * is not a DLQ or cannot be opened, with err naming the path.
 */
sl_rc sl_dlq_open(const char *path, int create, int durable, struct sl_dlq **out,
                  struct sl_error *err);

/* Close. Accepts NULL. */
void sl_dlq_close(struct sl_dlq *d);

/*
 * Make every record of b with SL_REC_BAD and without SL_REC_KEPT durable, in one
 * transaction, and set SL_REC_KEPT on each (only after the commit). source is the name of
 * b's source; replay is the running replay id (0 outside a replay, where dlq_entry is
 * ignored: a quarantine release numbers its records too). During replay, a record with
 * dlq_entry != 0 whose entry is still marked by replay updates that entry instead of
 * adding one: attempts + 1, new stage, reason and record
 * JSON, last seen now, unmarked; where the record came from (source, origin, line,
 * offset, raw, true_len, first seen) stays. If the new (record id, stage) belongs to
 * another entry, the two become one: the smaller id, attempts = the larger + 1, the
 * earlier first seen. A replayed record whose entry is gone or no longer marked is kept
 * like any other. *kept (may be NULL) gets the number of records written. SL_OK, SL_EDB
 * (err says why; nothing was marked kept), SL_ELIMIT (a record over 2 GiB), SL_ENOMEM.
 */
sl_rc sl_dlq_keep(struct sl_dlq *d, struct sl_batch *b, const char *source, uint64_t replay,
                  uint64_t *kept, struct sl_error *err);

/* One entry as read back. Pointers are valid only during the callback. */
struct sl_dlq_entry {
    int64_t id;
    char record_id[33];
    const char *source;
    const char *origin; /* input file, "-" for stdin, or "" */
    uint64_t line;      /* 1-based, 0 when not applicable */
    uint64_t offset;    /* byte offset in origin */
    const char *stage;
    const char *error_class;
    const char *message;
    const char *rule, *path, *expected, *actual, *contract, *details; /* "" when absent */
    const unsigned char *raw;                                         /* original bytes */
    size_t raw_len;
    uint64_t true_len;  /* full length when raw was cut at max_record_bytes, else raw_len */
    const char *record; /* record JSON as rejected, or NULL when it never parsed */
    size_t record_len;
    int64_t attempts;
    int64_t first_seen_ns, last_seen_ns; /* wall clock */
    int64_t replay;                      /* replay id while part of a replay, else 0 */
};

/* Which entries a command acts on. Zero-initialized = all. */
struct sl_dlq_filter {
    const char *stage;       /* exact stage name */
    const char *error_class; /* exact error class */
    int64_t since_ns;        /* last seen at or after (wall clock ns) */
    int64_t id;              /* this entry only */
    int64_t limit;           /* at most this many (oldest first) */
};

/* Returns 0 to continue, non-zero to stop (passed back as SL_OK). */
typedef int (*sl_dlq_entry_fn)(void *ctx, const struct sl_dlq_entry *e);

/* Call fn for each matching entry in id order. SL_OK, SL_EDB. */
sl_rc sl_dlq_scan(struct sl_dlq *d, const struct sl_dlq_filter *f, sl_dlq_entry_fn fn, void *ctx,
                  struct sl_error *err);

/* One group of `stats`. */
struct sl_dlq_group {
    const char *stage;
    const char *error_class;
    uint64_t count;
    int64_t first_seen_ns, last_seen_ns;
};
typedef int (*sl_dlq_group_fn)(void *ctx, const struct sl_dlq_group *g);

/* Counts of matching entries grouped by (stage, error class), largest first. */
sl_rc sl_dlq_stats(struct sl_dlq *d, const struct sl_dlq_filter *f, sl_dlq_group_fn fn, void *ctx,
                   struct sl_error *err);

/* Number of entries (all of them). */
sl_rc sl_dlq_count(struct sl_dlq *d, uint64_t *n, struct sl_error *err);

/* Delete the matching entries that are not part of an unfinished replay. */
sl_rc sl_dlq_purge(struct sl_dlq *d, const struct sl_dlq_filter *f, uint64_t *deleted,
                   struct sl_error *err);

/* ---- replay bookkeeping (see the top of this file) ---- */

/* A replay: the entries marked with id go back into stage. */
struct sl_dlq_replay {
    int64_t id;
    const char *stage;
    uint64_t entries; /* still marked */
};
typedef int (*sl_dlq_replay_fn)(void *ctx, const struct sl_dlq_replay *r);

/*
 * Mark the matching entries not already in a replay: one new replay per stage they go
 * back into (from_stage when not NULL, else each entry's own stage), all in one
 * transaction. Calls fn for each new replay. SL_OK (also when nothing matched), SL_EDB.
 */
sl_rc sl_dlq_replay_plan(struct sl_dlq *d, const struct sl_dlq_filter *f, const char *from_stage,
                         sl_dlq_replay_fn fn, void *ctx, struct sl_error *err);

/* Call fn for each unfinished replay (oldest first): planned, possibly partly run. */
sl_rc sl_dlq_replay_pending(struct sl_dlq *d, sl_dlq_replay_fn fn, void *ctx, struct sl_error *err);

/*
 * Call fn for up to limit entries still marked with replay id whose entry id is greater
 * than after, in id order. SL_OK, SL_EDB.
 */
sl_rc sl_dlq_replay_read(struct sl_dlq *d, int64_t replay, int64_t after, size_t limit,
                         sl_dlq_entry_fn fn, void *ctx, struct sl_error *err);

/*
 * The replay's run committed: delete the entries still marked (delivered or filtered)
 * and set the replay's finished time, in one transaction. *resolved (may be NULL) gets
 * how many were deleted. Finishing a finished replay deletes nothing and is SL_OK; an
 * unknown replay id is SL_ENOENT.
 */
sl_rc sl_dlq_replay_finish(struct sl_dlq *d, int64_t replay, uint64_t *resolved,
                           struct sl_error *err);

/* base64 (RFC 4648, padded) of in[0..n) appended to out. SL_OK or SL_ENOMEM. */
sl_rc sl_base64_encode(const void *in, size_t n, struct sl_buf *out);

#endif
