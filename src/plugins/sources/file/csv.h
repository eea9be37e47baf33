/*
 * csv.h - RFC 4180 CSV rows to JSON objects, for the file and stdin sources (internal).
 *
 * The scanner finds one row in a buffer (quoted fields may hold delimiters, doubled
 * quotes and line breaks, so a row may span lines) and reports its fields as spans. The
 * converter writes a row as a compact JSON object whose keys are the column names and
 * whose values are typed per column (string, int, float, bool, json). The row reader
 * drives both over a source's read window (lines.h) and fills a batch.
 *
 * Threading: a struct sl__csv belongs to one source thread.
 */
#ifndef SLUICE_SOURCES_CSV_H
#define SLUICE_SOURCES_CSV_H

#include <stddef.h>
#include <stdint.h>

#include "plugins/sources/file/lines.h"
#include "sluice/arena.h"
#include "sluice/batch.h"
#include "sluice/buf.h"
#include "sluice/config.h"
#include "sluice/rc.h"

#define SL__CSV_MAX_FIELDS 4096 /* hard limit on fields per row */

enum sl__csv_type { SL__CSV_STRING = 0, SL__CSV_INT, SL__CSV_FLOAT, SL__CSV_BOOL, SL__CSV_JSON };

struct sl__csv_dialect {
    char delim;
    char quote;
};

/* A field of a scanned row: bytes row[off .. off + len), inside the quotes when quoted. */
struct sl__csv_field {
    uint32_t off;
    uint32_t len;
    uint8_t quoted;  /* was quoted */
    uint8_t escaped; /* holds doubled quotes to undo */
};

enum { SL__CSV_ROW = 0, SL__CSV_MORE, SL__CSV_BAD };

struct sl__csv_scan {
    uint32_t nf;       /* fields (those beyond the maximum are counted, not stored) */
    size_t used;       /* bytes of the row including its line break */
    size_t len;        /* bytes of the row without its line break ("\n" or "\r\n") */
    uint32_t newlines; /* line breaks inside quoted fields */
    const char *err;   /* SL__CSV_BAD: what is wrong (static text) */
    size_t err_col;    /* SL__CSV_BAD: byte offset of the problem within the row */
};

/*
 * Scan the row at p[0..n). Returns SL__CSV_ROW (fields in f[0..min(nf, maxf))),
 * SL__CSV_MORE (the row does not end within n bytes and !at_eof), or SL__CSV_BAD (the
 * row is malformed; used and len still delimit it so the reader can go on after it).
 * With at_eof the row may end at n without a line break.
 */
int sl__csv_scan(const struct sl__csv_dialect *d, const char *p, size_t n, int at_eof,
                 struct sl__csv_field *f, uint32_t maxf, struct sl__csv_scan *out);

/* The columns of the rows being read. */
struct sl__csv_schema {
    uint32_t ncol;
    const char **names; /* NUL-terminated, for messages */
    const char **keys;  /* each name as a JSON key with its colon: "\"name\":" */
    uint32_t *key_len;
    uint8_t *types; /* enum sl__csv_type */
    char quote;     /* the dialect's quote (doubled inside quoted fields) */
};

/* A value that its column's type cannot take (sl__csv_to_json). */
struct sl__csv_cast_error {
    uint32_t col;   /* 0-based column index */
    char value[72]; /* the value, at most 64 bytes of it then "...", unprintables as '?' */
};

/*
 * Write the row's fields as a JSON object into out (cleared first). On a bad value
 * returns SL_EPARSE with msg naming the column and value ("column age: \"x1\" is not an
 * int") and, when ce is not NULL, the column and value in *ce; tmp is scratch for
 * unescaping quoted fields. SL_ENOMEM / SL_ELIMIT from out.
 */
sl_rc sl__csv_to_json(const struct sl__csv_schema *s, const char *row,
                      const struct sl__csv_field *f, uint32_t nf, struct sl_buf *out,
                      struct sl_buf *tmp, char *msg, size_t msgcap, struct sl__csv_cast_error *ce);

/* The column's field path for reject reasons: $.name, or $["odd name"] (JSON-escaped). */
void sl__csv_column_path(const char *name, char *buf, size_t cap);

/* Options and per-input state of a CSV-reading source. */
struct sl__csv {
    struct sl__csv_dialect d;
    int header;               /* the first row of each input names the columns */
    const char **cfg_columns; /* `columns`, or NULL */
    uint32_t ncfg_columns;
    const struct sl_cfg_node *cfg_types; /* `types` map, or NULL */
    uint8_t *cfg_type_vals;              /* type of each pair of cfg_types */
    struct sl_arena arena;               /* schema of the current input (reset per input) */
    struct sl__csv_schema schema;
    int ready;               /* schema known */
    struct sl__csv_field *f; /* SL__CSV_MAX_FIELDS */
    struct sl_buf out, tmp;
};

/*
 * Read delimiter, quote, header, columns and types from ctx's node. Errors are
 * SL_ECONFIG with the option's position.
 */
sl_rc sl__csv_configure(struct sl__csv *c, const struct sl_cfg_doc *doc,
                        const struct sl_cfg_node *node, size_t max_record, struct sl_error *err);
void sl__csv_fini(struct sl__csv *c);

/*
 * For a source whose format is not csv: any CSV-only option in node is a mistake, not
 * something to ignore. SL_ECONFIG at the option's position, else SL_OK.
 */
sl_rc sl__csv_reject_options(const struct sl_cfg_node *node, struct sl_error *err);

/* A new input begins: its header (when header is true) is the next row read. */
void sl__csv_input_begin(struct sl__csv *c);

/*
 * Like sl__lines_ndjson for CSV rows: fill b from the window until a limit (SL_OK) or
 * until the window holds no complete row (SL_AGAIN). A header row is consumed, not
 * emitted. A bad header is fatal (SL_ECONFIG in err); bad rows become rejected records
 * with a structured reason (class csv or cast, csv.c); blank lines are counted in b->empty.
 */
sl_rc sl__csv_rows(struct sl__csv *c, struct sl__lines *l, struct sl_batch *b, struct sl__span *sp,
                   const struct sl__emit *e, int at_eof, struct sl_error *err);

/*
 * Read the header row at the start of the input open as fd (with pread, through the
 * window, which is left reset to offset 0). Used before resuming mid-file. SL_OK (also
 * when the file is empty: the schema stays unknown), SL_EIO, SL_ECONFIG.
 */
sl_rc sl__csv_read_header(struct sl__csv *c, struct sl__lines *l, int fd, const struct sl__emit *e,
                          struct sl_error *err);

/*
 * Decoding a kept row again (the file source's decode, plugin.h): a row that was rejected
 * while reading is turned into a record once more with the source's current settings.
 */

/* Whether an input's columns come from its header row (header: true without `columns`). */
int sl__csv_needs_header(const struct sl__csv *c);

/*
 * The schema reading would give the input open as fd, into s (memory from a; c's own
 * schema is left alone): from `columns` when configured (fd is not read and may be -1),
 * else from the input's header row, read through the window l (left reset). *found = 0
 * when the header is needed and the input holds no row. SL_OK, SL_EIO, SL_ECONFIG (the
 * errors reading reports for a bad header or `types` naming a column it lacks), SL_ENOMEM.
 */
sl_rc sl__csv_load_schema(struct sl__csv *c, struct sl__lines *l, int fd, const char *origin,
                          struct sl_arena *a, struct sl__csv_schema *s, int *found,
                          struct sl_error *err);

/*
 * Decode r->orig[0..orig_len) (one row as reading kept it, without its line break, line
 * breaks inside quotes included) with schema s, by the same path as sl__csv_rows: r->text
 * becomes the row's JSON object (in b's arena), or r is rejected with the reason reading
 * gives (class csv, rules quoting and column_count; class cast), naming r->line of
 * e->origin and stage e->stage. A row that the current quote and delimiter split into
 * several is rejected (class csv, rule quoting). SL_OK (also when rejected) / SL_ENOMEM.
 */
sl_rc sl__csv_decode(struct sl__csv *c, const struct sl__csv_schema *s, struct sl_batch *b,
                     struct sl_record *r, const struct sl__emit *e);

/*
 * Option-table entries the file and stdin sources share (CSV dialect and the record size
 * limit), so both validate and document them identically.
 */
#define SL__CSV_OPTIONS                                                                            \
    {"max_record_bytes",                                                                           \
     SL_OPT_SIZE,                                                                                  \
     "1MiB",                                                                                       \
     0,                                                                                            \
     "Longest line (or CSV row) accepted; longer ones are rejected and skipped.",                  \
     NULL},                                                                                        \
        {"delimiter",                                                                              \
         SL_OPT_STRING,                                                                            \
         ",",                                                                                      \
         0,                                                                                        \
         "csv: the field separator, one character (\"tab\" for a tab).",                           \
         NULL},                                                                                    \
        {"quote", SL_OPT_STRING, "\"", 0, "csv: the quote character.", NULL},                      \
        {"header", SL_OPT_BOOL, "true", 0, "csv: the first row (of each file) names the columns.", \
         NULL},                                                                                    \
        {"columns",                                                                                \
         SL_OPT_LIST,                                                                              \
         NULL,                                                                                     \
         0,                                                                                        \
         "csv: column names (required with header: false; with a header, renames its "             \
         "columns).",                                                                              \
         NULL},                                                                                    \
    {                                                                                              \
        "types", SL_OPT_MAP, NULL, 0,                                                              \
            "csv: column -> string|int|float|bool|json (default string; empty non-string -> "      \
            "null).",                                                                              \
            NULL                                                                                   \
    }

#endif
