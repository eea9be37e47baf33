/*
 * record.h - records, field paths and edits.
 *
 * A record is its original bytes plus, once parsed, a tape; a transform that changes it
 * adds edits instead of rebuilding it. Reading a field consults the edits first (newest
 * first) and then the tape. Writing a record copies the original text when there are no
 * edits, and otherwise walks the top-level members, copying each untouched member as its
 * original span, writing replaced members in place and appending added members in the
 * order they were first added. Deleted members are skipped.
 *
 * A nested change (set device.os) materializes the top-level member (device) one level at
 * a time along the path and records a top-level SET of the rebuilt value; siblings stay
 * tape-backed. Everything lives in the batch arena.
 *
 * Threading: a record belongs to its batch; only the thread holding the batch touches it.
 */
#ifndef SLUICE_RECORD_H
#define SLUICE_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/arena.h"
#include "sluice/buf.h"
#include "sluice/json.h"
#include "sluice/rc.h"
#include "sluice/value.h"

/* A compiled field path such as device.os, tags[0], ["odd key"].x */
struct sl_path_seg {
    const char *key; /* NULL for an index segment */
    uint32_t klen;
    int32_t index; /* array index (>= 0) when key == NULL; negative counts from the end */
};

struct sl_path {
    uint32_t nseg;
    struct sl_path_seg *seg;
    const char *text; /* the path as written, NUL-terminated (for messages) */
};

/*
 * Parse a path: segments separated by '.', identifiers [A-Za-z_][A-Za-z0-9_]*, indexes
 * [N] or [-N], and quoted keys ["any key"] with JSON escapes. Memory from a (which must
 * outlive the path). On error returns SL_EPARSE and *err_col (0-based byte offset in s,
 * may be NULL) with err's message naming the problem.
 */
sl_rc sl_path_parse(const char *s, size_t n, struct sl_arena *a, struct sl_path *out,
                    size_t *err_col, struct sl_error *err);

enum sl_edit_op { SL_EDIT_SET = 1, SL_EDIT_DEL = 2 };

/* A top-level change. Immutable once linked; newest first. */
struct sl_edit {
    struct sl_edit *next;
    const char *key;
    uint32_t klen;
    uint8_t op; /* enum sl_edit_op */
    struct sl_value val;
};

#define SL_REC_PARSED 0x1  /* tape is valid */
#define SL_REC_DROPPED 0x2 /* removed by a filter or route: invisible downstream */
#define SL_REC_BAD 0x4     /* rejected: error says why; invisible downstream */
#define SL_REC_KEPT 0x8    /* SL_REC_BAD and already durable in the dead-letter queue */
/* Held by a quality gate: durable in the quarantine store, not sunk. Always set together
 * with SL_REC_DROPPED so every stage skips it; counted as quarantined, not as filtered. */
#define SL_REC_QUARANTINED 0x10

/*
 * Why a record was rejected, in the fields the dead-letter queue stores (DESIGN §5). The
 * one-line message stays in sl_record.error; this adds the machine-readable parts. All
 * strings are NUL-terminated and live in the batch arena (or are static); any may be
 * NULL when it does not apply.
 *
 * error_class is one of a fixed vocabulary (docs/dlq.md lists it; `sluice dlq --error`
 * filters on it): "invalid_json", "record_too_large", "not_object", "duplicate_key",
 * "csv", "contract", "cast", "expression", "sink", "encoding".
 */
struct sl_reject_info {
    const char *error_class;
    const char *rule;     /* what was broken: a contract keyword ("required"), a JSON
                             syntax rule ("leading_zero"), a CSV rule ("column_count") */
    const char *path;     /* JSON path of the offending value, "$" for the root */
    const char *expected; /* what the rule wanted, as text ("integer", "<= 100") */
    const char *actual;   /* what was there, as text (truncated to a few hundred bytes) */
    const char *contract; /* "name@version" of the contract, for contract violations */
    const char *details;  /* JSON array of every violation [{path, rule, expected, actual}] */
    uint64_t true_len;    /* record_too_large: the record's full length in bytes (orig holds
                             only its first max_record_bytes) */
};

/*
 * Invariants:
 *   1. text/text_len is the JSON text to parse; orig/orig_len the bytes exactly as read
 *      (the same pointer for NDJSON; the CSV line for CSV). Both live in the batch arena
 *      or a batch this one is backed by.
 *   2. tape is valid iff flags & SL_REC_PARSED.
 *   3. At most one of SL_REC_DROPPED and SL_REC_BAD is set; a record with either is never
 *      written by a sink.
 *   4. id is a deterministic function of (pipeline, source, file identity, offset).
 */
struct sl_record {
    const char *text;
    uint32_t text_len;
    uint32_t orig_len;
    const char *orig;
    uint32_t flags;
    uint32_t line;   /* 1-based line number in the source file, 0 if not applicable */
    uint64_t offset; /* byte offset of the record's first byte in its source file */
    uint64_t id[2];  /* 128-bit record id (invariant 4) */
    struct sl_tape tape;
    struct sl_edit *edits;
    const char *error;                /* why SL_REC_BAD, NUL-terminated, in the arena */
    const char *error_stage;          /* component that rejected it */
    const struct sl_reject_info *why; /* structured reason, or NULL (then class "unknown") */
    uint64_t dlq_entry;               /* replayed from the DLQ: the entry id; 0 otherwise */
};

/*
 * Parse r->text into r->tape (allocations in a). On a parse error returns SL_EPARSE and
 * fills err; the record is left unparsed (the caller decides to reject it).
 */
sl_rc sl_record_parse(struct sl_record *r, struct sl_json_parser *p, uint32_t max_depth,
                      struct sl_arena *a, struct sl_json_error *err);

/*
 * Read the field at path p of the record as it is now (edits applied). Returns 1 and
 * fills *out when the field exists, 0 when it does not (then *out is null). Strings are
 * decoded into a when escaped. The record must be parsed. A path through a non-container
 * or out-of-range index is "does not exist". A key named twice in an object reads as its
 * last occurrence (json.h, duplicate keys).
 */
int sl_record_get(struct sl_record *r, const struct sl_path *p, struct sl_arena *a,
                  struct sl_value *out);

/*
 * Set the field at path p to v, creating intermediate objects as needed. SL_ETYPE when a
 * path segment goes through a scalar or indexes a non-array, or when the record root is
 * not an object; SL_ENOENT for an index past the end; SL_ENOMEM. v must outlive the
 * record (arena or compiled constant).
 */
sl_rc sl_record_set(struct sl_record *r, const struct sl_path *p, const struct sl_value *v,
                    struct sl_arena *a);

/* Remove the field at path p. Removing a missing field is SL_OK. Errors as sl_record_set. */
sl_rc sl_record_del(struct sl_record *r, const struct sl_path *p, struct sl_arena *a);

/* Top-level convenience wrappers (key need not be NUL-terminated). */
int sl_record_get_key(struct sl_record *r, const char *key, size_t klen, struct sl_arena *a,
                      struct sl_value *out);
sl_rc sl_record_set_key(struct sl_record *r, const char *key, size_t klen, const struct sl_value *v,
                        struct sl_arena *a);

/*
 * Visit the top-level members of the record as it is now, in output order. fn returns 0
 * to continue, non-zero to stop (returned as-is). The root must be an object (else
 * SL_ETYPE). Used by sinks that map fields to columns. A key named twice is visited once,
 * with its last value, at the position of its last occurrence.
 */
typedef int (*sl_record_field_fn)(void *ctx, const char *key, size_t klen,
                                  const struct sl_value *v);
sl_rc sl_record_foreach(struct sl_record *r, struct sl_arena *a, sl_record_field_fn fn, void *ctx);

/*
 * Append the record as JSON (no trailing newline): r->text as-is when there are no edits
 * (byte-identical), otherwise the edited object as described at the top of this file.
 */
sl_rc sl_record_write(const struct sl_record *r, struct sl_buf *out);

/* Format a record id as 32 lowercase hex digits plus NUL into buf[33]. */
void sl_record_id_format(const uint64_t id[2], char buf[33]);

/*
 * Record ids. sl_record_id_base hashes (pipeline, source, identity) once per input file;
 * sl_record_id derives the id of the record at offset from it. Deterministic across runs
 * and machines.
 */
void sl_record_id_base(const char *pipeline, const char *source, const char *identity,
                       uint64_t base[2]);
void sl_record_id(const uint64_t base[2], uint64_t offset, uint64_t id[2]);

#endif
