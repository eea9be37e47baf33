/*
 * sl_jsoncheck - run documents through the JSON parser and print what it made of them.
 *
 * Used by tests/integration/test_json_differential.sh to compare our parser with another
 * implementation document by document. For each input document it prints one line:
 *
 *     OK <json>                 the document parsed; <json> is a full re-serialization
 *                               built by walking the tape: every string (keys too) is
 *                               decoded and re-escaped, numbers are their original text
 *     ERR <offset> <message>    the parse failed at byte <offset>
 *
 * With --record the OK line carries sl_record_write's output instead, after applying the
 * given edits in order (--set PATH=JSON, --del PATH); without edits that must be the
 * input byte for byte. An edit that fails prints "EDIT <rc name> <path>" instead.
 *
 * Input: by default stdin, one document per line ('\n' separated; a final line without
 * '\n' counts). --framed reads "<decimal length>\n<bytes>" frames from stdin, so a
 * document may hold any byte. File arguments are read as one document each.
 *
 * Usage: sl_jsoncheck [--record] [--set PATH=JSON]... [--del PATH]... [--framed] [FILE...]
 * Exit status: 0 when every document was processed (whatever the verdicts), 2 on usage or
 * I/O errors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice/arena.h"
#include "sluice/buf.h"
#include "sluice/json.h"
#include "sluice/record.h"
#include "sluice/value.h"

#define MAX_EDITS 64

struct edit_arg {
    int del;
    const char *path;
    size_t plen;
    const char *json;
};

static struct edit_arg edits[MAX_EDITS];
static int nedits;
static int record_mode;

/* Append the decoded-then-re-escaped form of value token i; returns the next token. */
static uint32_t emit(const struct sl_tape *t, uint32_t i, struct sl_arena *a, struct sl_buf *b)
{
    const struct sl_jtok *k = &t->tok[i];
    const char *s;
    size_t n;
    switch (k->type) {
    case SL_J_STRING:
        if (sl_json_str(t, i, a, &s, &n) || sl_json_write_str(b, s, n))
            exit(2);
        return i + 1;
    case SL_J_ARRAY:
    case SL_J_OBJECT: {
        int obj = k->type == SL_J_OBJECT;
        uint32_t j = i + 1;
        sl_buf_putc(b, obj ? '{' : '[');
        for (uint32_t m = 0; m < k->count; m++) {
            if (m)
                sl_buf_putc(b, ',');
            if (obj) {
                j = emit(t, j, a, b);
                sl_buf_putc(b, ':');
            }
            j = emit(t, j, a, b);
        }
        if (j != k->next) {
            fprintf(stderr, "sl_jsoncheck: tape invariant broken at token %u\n", i);
            exit(3);
        }
        sl_buf_putc(b, obj ? '}' : ']');
        return j;
    }
    default:
        sl_buf_append(b, t->text + k->off, k->len);
        return i + 1;
    }
}

static void check_one(struct sl_json_parser *p, const char *doc, size_t len)
{
    struct sl_arena a;
    struct sl_buf b;
    struct sl_tape t;
    struct sl_json_error err;
    sl_arena_init(&a, 0);
    sl_buf_init(&b, 0);
    sl_rc rc = sl_json_parse(p, doc, len, 0, &a, &t, &err);
    if (rc == SL_EPARSE || rc == SL_ELIMIT) {
        printf("ERR %zu %s\n", err.offset, err.msg);
        goto out;
    }
    if (rc) {
        fprintf(stderr, "sl_jsoncheck: %s\n", sl_strerror(rc));
        exit(2);
    }
    if (t.tok[0].next != t.ntok) {
        fprintf(stderr, "sl_jsoncheck: tape invariant 1 broken\n");
        exit(3);
    }
    if (!record_mode) {
        emit(&t, 0, &a, &b);
    } else {
        struct sl_record r;
        memset(&r, 0, sizeof r);
        r.text = doc;
        r.text_len = (uint32_t)len;
        r.tape = t;
        r.flags = SL_REC_PARSED;
        for (int e = 0; e < nedits; e++) {
            struct sl_path path;
            struct sl_error perr;
            if (sl_path_parse(edits[e].path, edits[e].plen, &a, &path, NULL, &perr)) {
                fprintf(stderr, "sl_jsoncheck: %s\n", perr.msg);
                exit(2);
            }
            if (edits[e].del) {
                rc = sl_record_del(&r, &path, &a);
            } else {
                struct sl_tape vt;
                struct sl_value v;
                if (sl_json_parse(p, edits[e].json, strlen(edits[e].json), 0, &a, &vt, &err) ||
                    sl_value_from_tape(&vt, 0, &a, &v)) {
                    fprintf(stderr, "sl_jsoncheck: bad --set value: %s\n", err.msg);
                    exit(2);
                }
                /* The value's tape must outlive the record: copy it to the arena. */
                struct sl_tape *keep = sl_arena_alloc(&a, sizeof *keep);
                *keep = vt;
                if (v.is_tape)
                    v.u.tape.tape = keep;
                rc = sl_record_set(&r, &path, &v, &a);
            }
            if (rc) {
                printf("EDIT %s %.*s\n", sl_rc_name(rc), (int)edits[e].plen, edits[e].path);
                goto out;
            }
        }
        if (sl_record_write(&r, &b))
            exit(2);
    }
    fputs("OK ", stdout);
    fwrite(b.data, 1, b.len, stdout);
    fputc('\n', stdout);
out:
    sl_buf_fini(&b);
    sl_arena_fini(&a);
}

static int read_file(const char *path, struct sl_buf *b)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "sl_jsoncheck: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    char chunk[65536];
    size_t n;
    sl_buf_clear(b);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (sl_buf_append(b, chunk, n))
            break;
    int bad = ferror(f);
    fclose(f);
    return bad ? -1 : 0;
}

int main(int argc, char **argv)
{
    struct sl_json_parser *p;
    struct sl_buf in;
    int framed = 0, nfiles = 0, i;
    if (sl_json_parser_create(&p))
        return 2;
    sl_buf_init(&in, 0);
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--record")) {
            record_mode = 1;
        } else if (!strcmp(argv[i], "--framed")) {
            framed = 1;
        } else if ((!strcmp(argv[i], "--set") || !strcmp(argv[i], "--del")) && i + 1 < argc &&
                   nedits < MAX_EDITS) {
            struct edit_arg *e = &edits[nedits++];
            e->del = argv[i][2] == 'd';
            e->path = argv[++i];
            e->plen = strlen(e->path);
            if (!e->del) {
                const char *eq = strchr(e->path, '=');
                if (!eq) {
                    fprintf(stderr, "sl_jsoncheck: --set wants PATH=JSON\n");
                    return 2;
                }
                e->plen = (size_t)(eq - e->path);
                e->json = eq + 1;
            }
            record_mode = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "usage: sl_jsoncheck [--record] [--set PATH=JSON]... [--del PATH]... "
                            "[--framed] [FILE...]\n");
            return 2;
        } else {
            nfiles++;
        }
    }
    if (nfiles) {
        for (i = 1; i < argc; i++) {
            if (argv[i][0] == '-' && argv[i][1]) {
                if (!strcmp(argv[i], "--set") || !strcmp(argv[i], "--del"))
                    i++;
                continue;
            }
            if (read_file(argv[i], &in))
                return 2;
            check_one(p, in.data ? in.data : "", in.len);
        }
    } else if (framed) {
        size_t n;
        while (scanf("%zu", &n) == 1 && getchar() == '\n') {
            sl_buf_clear(&in);
            if (sl_buf_reserve(&in, n + 1) || fread(in.data, 1, n, stdin) != n) {
                fprintf(stderr, "sl_jsoncheck: short frame\n");
                return 2;
            }
            check_one(p, in.data, n);
        }
    } else {
        int c;
        int pending = 0;
        sl_buf_clear(&in);
        while ((c = getchar()) != EOF) {
            pending = 1;
            if (c == '\n') {
                check_one(p, in.data ? in.data : "", in.len);
                sl_buf_clear(&in);
                pending = 0;
            } else if (sl_buf_putc(&in, (char)c)) {
                return 2;
            }
        }
        if (pending)
            check_one(p, in.data ? in.data : "", in.len);
    }
    fflush(stdout);
    sl_buf_fini(&in);
    sl_json_parser_destroy(p);
    return 0;
}
