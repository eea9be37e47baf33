/*
 * quarantine.h - the quarantine store: commit units a quality gate held back.
 *
 * When a gate with `action: quarantine` fails, the unit it judged (a batch when
 * streaming, the whole run with `run --once`) goes here instead of to the sinks. One
 * embedded SQLite database per pipeline (<state_dir>/quarantine.db). A unit row says
 * which gates failed on which component (its stage) and why; each of its records keeps
 * its record id, the record as JSON as the gate saw it, and, when the engine had them,
 * the original bytes, origin, line and byte offset.
 *
 * Delivery (DESIGN §4: quarantine is a sink like any other). A record is keyed by
 * (record id, stage). When the same records are quarantined again (a unit read again
 * after a crash that came after the unit was kept but before the positions covering it
 * were committed), each record already held moves into the new unit, the units it left
 * are recounted and removed when empty: the store holds each quarantined record once.
 * sl_quarantine_keep marks the records of a batch (SL_REC_QUARANTINED | SL_REC_DROPPED)
 * only after its transaction committed, so no checkpoint can cover a record the store
 * does not hold.
 *
 * Release (`sluice quarantine release`): the caller marks the unit as releasing, reads
 * its records in record-row order in slices (sl_quarantine_release_read, resuming after
 * the last row it delivered), and when the run that delivered them has committed, deletes
 * the unit and its records in one transaction (sl_quarantine_release_finish).
 *
 * Threading: a struct sl_quarantine may be used by several threads; every call takes the
 * store's mutex. A transaction (sl_quarantine_begin .. commit/abort) holds the mutex
 * from begin to commit or abort: those calls must come from one thread, and other calls on
 * the same store wait meanwhile.
 */
#ifndef SLUICE_QUARANTINE_H
#define SLUICE_QUARANTINE_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/batch.h"
#include "sluice/rc.h"

struct sl_quarantine;
struct sl_quarantine_txn;

/*
 * Open (with create, create) the store at path. durable: synchronous=FULL (a kept unit
 * survives power loss; used under exactly_once), otherwise NORMAL (survives a process
 * crash). Without create, a missing file is SL_ENOENT. SL_EDB when the file is not a
 * quarantine store or cannot be opened (err names the path). SL_ENOMEM.
 */
sl_rc sl_quarantine_open(const char *path, int create, int durable, struct sl_quarantine **out,
                         struct sl_error *err);

/* Close. Accepts NULL. */
void sl_quarantine_close(struct sl_quarantine *q);

/* What a new unit records about itself. Every string is required (may be ""). */
struct sl_quarantine_info {
    const char *gates;  /* names of the failed gates, "a, b" */
    const char *stage;  /* the component the gates watch (`on`) */
    const char *source; /* the source of the unit's records ("" when several) */
    const char *reason; /* the failed gates' messages, one per line */
};

/*
 * Keep every live record of b (neither dropped nor rejected) as one new unit, in one
 * transaction; after COMMIT set SL_REC_QUARANTINED | SL_REC_DROPPED on each. The JSON
 * stored is sl_record_write's; raw bytes, line, offset and b->origin are kept too.
 * *unit (may be NULL) gets the new unit's id, 0 when b had no live record (then nothing
 * is written); *kept (may be NULL) the number of records kept. SL_OK; SL_EDB (nothing
 * kept, no record marked); SL_ENOMEM.
 */
sl_rc sl_quarantine_keep(struct sl_quarantine *q, struct sl_batch *b,
                         const struct sl_quarantine_info *info, int64_t *unit, uint64_t *kept,
                         struct sl_error *err);

/*
 * Keep a unit record by record (write-audit-publish: a sink hands over its staged records
 * through sl_publish_keep_fn). begin opens a transaction and creates the unit; add stores
 * one record; commit counts the unit's records, removes the units emptied by records that
 * moved (see the top), commits and frees the transaction; abort rolls back and frees it.
 * A unit that ends up with no record is not kept (commit reports unit 0). Every call
 * returns SL_OK, SL_EDB or SL_ENOMEM; after a failed add the caller must abort.
 */
sl_rc sl_quarantine_begin(struct sl_quarantine *q, const struct sl_quarantine_info *info,
                          struct sl_quarantine_txn **out, struct sl_error *err);

/* One record: id, JSON text, and optionally raw bytes (NULL), origin (NULL), line, offset. */
sl_rc sl_quarantine_add(struct sl_quarantine_txn *t, const uint64_t id[2], const char *json,
                        size_t len, const void *raw, size_t raw_len, const char *origin,
                        uint64_t line, uint64_t offset, struct sl_error *err);

/* sl_publish_keep_fn for write-audit-publish: ctx is the struct sl_quarantine_txn. */
sl_rc sl_quarantine_add_json(void *ctx, const uint64_t id[2], const char *json, size_t len,
                             struct sl_error *err);

sl_rc sl_quarantine_commit(struct sl_quarantine_txn *t, int64_t *unit, uint64_t *kept,
                           struct sl_error *err);

/* Roll back and free. Accepts NULL. */
void sl_quarantine_abort(struct sl_quarantine_txn *t);

/* ---- reading ------------------------------------------------------------------------- */

/* A unit as read back; strings valid only during the callback. */
struct sl_quarantine_unit {
    int64_t id;
    const char *gates, *stage, *source, *reason;
    uint64_t records;
    int64_t created_ns; /* wall clock */
    const char *state;  /* "held" or "releasing" */
};
typedef int (*sl_quarantine_unit_fn)(void *ctx, const struct sl_quarantine_unit *u);

/* A record as read back; pointers valid only during the callback. */
struct sl_quarantine_record {
    int64_t row; /* position in the store: increases with insertion */
    int64_t unit;
    char record_id[33];
    const char *stage;
    const char *json;
    size_t json_len;
    const unsigned char *raw; /* NULL when not kept */
    size_t raw_len;
    const char *origin; /* "" when unknown */
    uint64_t line, offset;
};
typedef int (*sl_quarantine_record_fn)(void *ctx, const struct sl_quarantine_record *r);

/* Call fn for every unit, oldest first (fn returns non-zero to stop). SL_OK, SL_EDB. */
sl_rc sl_quarantine_units(struct sl_quarantine *q, sl_quarantine_unit_fn fn, void *ctx,
                          struct sl_error *err);

/* Call fn for unit id, or return SL_ENOENT (err says so). SL_EDB. */
sl_rc sl_quarantine_unit_get(struct sl_quarantine *q, int64_t id, sl_quarantine_unit_fn fn,
                             void *ctx, struct sl_error *err);

/*
 * Call fn for up to limit records of unit (0 = no limit) whose row is greater than after,
 * in row order. This is both `show` and the release's reader. SL_OK, SL_EDB.
 */
sl_rc sl_quarantine_records(struct sl_quarantine *q, int64_t unit, int64_t after, size_t limit,
                            sl_quarantine_record_fn fn, void *ctx, struct sl_error *err);

/* Totals for `sluice status`. SL_OK, SL_EDB. */
sl_rc sl_quarantine_count(struct sl_quarantine *q, uint64_t *units, uint64_t *records,
                          struct sl_error *err);

/* ---- changing ------------------------------------------------------------------------ */

/* Delete unit id and its records in one transaction. SL_ENOENT when there is no such unit. */
sl_rc sl_quarantine_drop(struct sl_quarantine *q, int64_t id, uint64_t *records,
                         struct sl_error *err);

/* Mark unit id as being released (state "releasing"). SL_ENOENT, SL_EDB. */
sl_rc sl_quarantine_release_begin(struct sl_quarantine *q, int64_t id, struct sl_error *err);

/* The release committed: delete unit id and its records in one transaction. As drop. */
sl_rc sl_quarantine_release_finish(struct sl_quarantine *q, int64_t id, uint64_t *records,
                                   struct sl_error *err);

#endif
