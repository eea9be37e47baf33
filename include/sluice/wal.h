/*
 * wal.h - a segmented write-ahead log of opaque records (the `http` source's durable queue).
 *
 * A log is a directory of segment files named %020llu.wal by a segment number that grows
 * by one. Each segment starts with a 16-byte header (magic "SLWAL001" and the segment
 * number, little-endian); then records, each framed as
 *
 *     u32 length (LE) | u32 CRC-32C over the 4 length bytes and the payload (LE) | payload
 *
 * docs/internals/wal.md has the byte-offset table and the crash analysis.
 *
 * Writers (any thread) call sl_wal_append, then sl_wal_commit to wait until their records
 * are durable; concurrent committers share one fsync (group commit). A reader (one thread)
 * sees only records at or below the durable mark (sl_wal_durable). Positions are
 * (segment, offset) pairs: the offset of the first byte after a record.
 */
#ifndef SLUICE_WAL_H
#define SLUICE_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/rc.h"

#define SL_WAL_HEADER 16u
#define SL_WAL_FRAME 8u
#define SL_WAL_MAX_RECORD ((uint32_t)64 << 20)

struct sl_wal;

struct sl_wal_pos {
    uint64_t seg;
    uint64_t off;
};

struct sl_wal_opts {
    uint64_t segment_bytes; /* a segment is sealed once it holds at least this many bytes */
    int fsync_always;       /* 1: commit fsyncs; 0: commit only writes (fsync by interval) */
    uint64_t fsync_interval_ms;
};

/* What a scan found (sl_wal_open, sl_wal_check). */
struct sl_wal_report {
    uint64_t segments, records, bytes; /* intact */
    uint64_t torn_bytes;               /* bytes after the last intact record of the last segment */
    uint64_t torn_segment;             /* the segment holding them */
    uint64_t damaged;                  /* segments other than the last that fail to scan */
    char damage[512];                  /* the first problem, as a sentence */
};

/* CRC-32C (Castagnoli) of p[0..n), continuing from crc (0 to start). */
uint32_t sl_crc32c(uint32_t crc, const void *p, size_t n);

/*
 * Open (creating dir when absent) the log in dir for appending. The last segment's torn
 * tail (a partial record or a CRC mismatch after the last intact record) is truncated;
 * *rep (may be NULL) says what was kept and dropped. A damaged earlier segment is an
 * error (SL_EPARSE) naming it.
 */
sl_rc sl_wal_open(const char *dir, const struct sl_wal_opts *o, struct sl_wal **out,
                  struct sl_wal_report *rep, struct sl_error *err);
void sl_wal_close(struct sl_wal *w);

/* Append n records (not yet durable). *end: the position after the last. Thread-safe. */
sl_rc sl_wal_append(struct sl_wal *w, const char *const *rec, const uint32_t *len, size_t n,
                    struct sl_wal_pos *end, struct sl_error *err);

/* Wait until everything up to end is durable (sharing fsyncs between callers). */
sl_rc sl_wal_commit(struct sl_wal *w, struct sl_wal_pos end, struct sl_error *err);

/* fsync when the interval has passed and something is unsynced (fsync: interval). */
sl_rc sl_wal_tick(struct sl_wal *w, struct sl_error *err);

/* The durable mark; waits up to wait_ms for it to pass after (0: no wait). */
struct sl_wal_pos sl_wal_durable(struct sl_wal *w, struct sl_wal_pos after, unsigned wait_ms);

/* The oldest position still stored (first record of the lowest segment). */
struct sl_wal_pos sl_wal_first(struct sl_wal *w);

/* Bytes stored in all segments. */
uint64_t sl_wal_bytes(struct sl_wal *w);

/* Segment files on disk. */
uint64_t sl_wal_segments(struct sl_wal *w);

/*
 * Bytes of records (frames included, segment headers not) that are durable and lie after
 * *after (NULL: from the start of the log): what a reader at *after has still to read.
 * Thread-safe.
 */
uint64_t sl_wal_lag(struct sl_wal *w, const struct sl_wal_pos *after);

/*
 * Offline (the log need not be open; a running writer may be appending): the same count
 * for the log in dir, over every byte its segment files hold. A missing dir is an empty
 * log. SL_OK or SL_EIO.
 */
sl_rc sl_wal_dir_lag(const char *dir, const struct sl_wal_pos *after, uint64_t *bytes,
                     struct sl_error *err);

/* Delete every segment whose number is below seg (never the one being written). */
void sl_wal_release(struct sl_wal *w, uint64_t seg);

/*
 * Read the record at *pos (which must not pass limit) into *out (sl_malloc'd; caller frees)
 * and advance *pos past it, moving to the next segment at a segment's end. SL_EOF when
 * *pos has reached limit.
 */
sl_rc sl_wal_read(struct sl_wal *w, struct sl_wal_pos *pos, struct sl_wal_pos limit, char **out,
                  uint32_t *len, struct sl_error *err);

/*
 * Offline: scan every segment of dir and verify every CRC; with repair, truncate the torn
 * tail of the last segment (a last segment whose header is torn is removed). SL_OK when the
 * log is intact after the call, SL_EPARSE when damage remains (rep says where), other codes
 * for I/O errors. A missing dir is an empty log.
 */
sl_rc sl_wal_check(const char *dir, int repair, struct sl_wal_report *rep, struct sl_error *err);

/* "seg:off" into buf; parse it back (-1 when malformed). */
void sl_wal_pos_format(struct sl_wal_pos p, char buf[48]);
int sl_wal_pos_parse(const char *s, struct sl_wal_pos *p);
int sl_wal_pos_cmp(struct sl_wal_pos a, struct sl_wal_pos b);

#endif
