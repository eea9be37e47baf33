/*
 * lines.h - the read window and line splitter shared by the file and stdin sources
 * (internal).
 *
 * A source reads its input in large chunks into a window it owns (one sl_malloc'd
 * buffer, reused for the whole run), splits complete lines out of it with memchr, and
 * turns each line into a record of the batch being filled. Records first point into the
 * window; before the window is refilled, and when the batch is handed over, the bytes the
 * batch consumed are copied into the batch arena in one memcpy and the records' pointers
 * are moved there ("flushing the span"). So a batch never points into memory the source
 * will reuse, and there is one copy per input byte, no syscall and no allocation per line.
 *
 * Threading: a window belongs to one source thread.
 */
#ifndef SLUICE_SOURCES_LINES_H
#define SLUICE_SOURCES_LINES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sluice/batch.h"
#include "sluice/rc.h"

/*
 * The window.
 *
 * Invariants:
 *   1. start <= end <= cap; buf[start..end) is input not yet consumed, and it is the
 *      input bytes at offsets off .. off + (end - start).
 *   2. line is the 1-based number of the line that starts at buf[start] (or, when
 *      skipping, of the overlong line being skipped).
 *   3. cap > max_record: a line that does not fit in the window is always over
 *      max_record, so a full window never stalls.
 *   4. scan <= end - start: buf[start..start + scan) is known to hold no '\n' (so a
 *      partial line is not searched again after each refill).
 *   5. skipping: the bytes from buf[start] on belong to an overlong line already emitted
 *      as a rejected record; they are discarded up to and including the next '\n'.
 *   6. ovl_batch, when not NULL, is the batch being filled and ovl_rec the index in it of
 *      the rejected record of the overlong line being skipped; ovl_len counts the bytes
 *      of that line seen so far (ovl_cr: the last of them was '\r'). When the line's end
 *      is found while the batch is still being filled, the record's true_len and message
 *      are made exact; a batch handed on earlier keeps the lower bound ("at least").
 */
struct sl__lines {
    char *buf;
    size_t cap;
    size_t start, end;
    size_t scan;
    uint64_t off;
    uint64_t line;
    size_t max_record;
    int skipping;
    struct sl_batch *ovl_batch; /* invariant 6 */
    const char *ovl_origin;     /* the input's name for the message (sl__emit.origin) */
    uint32_t ovl_rec;
    int ovl_cr;
    uint64_t ovl_len;
};

/* What the batch being filled has consumed since the last flush. */
struct sl__span {
    size_t from;    /* window index where the batch's uncopied bytes begin */
    uint32_t first; /* first record whose pointers may still point into the window */
    size_t bytes;   /* bytes this batch consumed so far (checked against max_bytes) */
};

/* How records are made (constant while one input file is read). */
struct sl__emit {
    const struct sl_batch_limits *limits;
    const char *stage;  /* component name, for sl_record_reject */
    const char *origin; /* input name used in messages ("data/x.ndjson", "stdin") */
    uint64_t id_base[2];
};

/* Allocate a window of at least window bytes for records up to max_record bytes. */
sl_rc sl__lines_init(struct sl__lines *l, size_t window, size_t max_record);
void sl__lines_fini(struct sl__lines *l);

/* Forget buffered input and continue at input offset off, line number line. */
void sl__lines_reset(struct sl__lines *l, uint64_t off, uint64_t line, int skipping);

/* Begin a batch (or continue filling b): an empty span at the window's current start. */
void sl__lines_span_begin(struct sl__lines *l, struct sl__span *sp, const struct sl_batch *b);

/*
 * Copy the consumed bytes buf[sp->from .. upto) into b's arena and move the pointers of
 * records sp->first .. b->n-1 there; adds the bytes to b->bytes. SL_OK / SL_ENOMEM.
 */
sl_rc sl__lines_flush(struct sl__lines *l, struct sl_batch *b, struct sl__span *sp, size_t upto);

/*
 * Read once into the window's free space (compacting it first). sp, when not NULL, must
 * be flushed; it is moved along with the compaction. With use_pread the input is read
 * at offset off + buffered bytes (files); otherwise with read(2) (pipes). Returns the
 * byte count, 0 at end of input, -errno.
 */
ssize_t sl__lines_fill(struct sl__lines *l, struct sl__span *sp, int fd, int use_pread);

/*
 * Split complete lines into NDJSON records of b until a batch limit is reached
 * (returns SL_OK: the batch is full) or no complete line is left (SL_AGAIN: refill).
 * With at_eof, a final line without '\n' is a record too. SL_ENOMEM on failure.
 *
 * Lines: a trailing "\r" is stripped; blank lines (empty or only spaces/tabs) are
 * skipped, counted in line numbers and in b->empty; a line over max_record bytes becomes
 * one rejected record (class record_too_large, rule max_record_bytes, why->true_len its
 * full length) holding its first max_record bytes, and the rest is skipped.
 */
sl_rc sl__lines_ndjson(struct sl__lines *l, struct sl_batch *b, struct sl__span *sp,
                       const struct sl__emit *e, int at_eof);

/*
 * Make r a record of the bytes p[0..n) (in the window) starting at input offset off on
 * line line: text = orig = p, the id from e. Shared with the CSV reader.
 */
void sl__lines_set_record(struct sl_record *r, const struct sl__emit *e, const char *p, size_t n,
                          uint64_t off, uint64_t line);

/*
 * Emit the overlong line starting at buf[start] (the window holds at least max_record
 * bytes of it) as a rejected record of its first max_record bytes: error class
 * "record_too_large", rule "max_record_bytes", expected "<= max_record bytes", actual and
 * true_len its full length. total is that length when known (0 when the line runs past
 * the window: then it is completed by sl__lines_skip, invariant 6). Flushes the span,
 * drops `consume` bytes (the whole line when known, else everything buffered) and enters
 * skipping mode when the line's end has not been seen. SL_OK / SL_ENOMEM.
 */
sl_rc sl__lines_overlong(struct sl__lines *l, struct sl_batch *b, struct sl__span *sp,
                         const struct sl__emit *e, size_t total, size_t consume, int line_done);

/*
 * Discard the rest of an overlong line. Returns 1 when its end was found, 0 otherwise.
 * b is the batch being filled; when the line ends (at a '\n', or at the end of the input
 * with at_eof) its record in b gets its exact length (invariant 6).
 */
int sl__lines_skip(struct sl__lines *l, struct sl_batch *b, struct sl__span *sp, int at_eof);

/* "1 MiB", "64 KiB", "1000 bytes": n in the largest binary unit that divides it. */
const char *sl__lines_size_text(uint64_t n, char buf[32]);

#endif
