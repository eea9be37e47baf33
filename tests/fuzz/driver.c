/*
 * driver.c - a stand-in for libFuzzer so that every build runs every fuzz target.
 *
 * Linked with a tests/fuzz/fuzz_<name>.c target when SLUICE_FUZZ is off. Usage:
 *
 *     fuzz_<name> [CORPUS_DIR]
 *
 * It feeds LLVMFuzzerTestOneInput each file of CORPUS_DIR (sorted by name; when the
 * directory is missing or empty, a few built-in seeds of a few bytes), then a fixed,
 * deterministic series of mutants of those inputs: bit flips, interesting bytes, byte
 * insertions and deletions, chunk duplication, truncations and splices of two inputs.
 * The generator has a fixed seed, so a failure reproduces exactly; the run number is
 * printed before each mutant when SLUICE_FUZZ_VERBOSE is set.
 *
 * Every input is copied into a heap buffer of exactly its size, so AddressSanitizer
 * reports a read one byte past the end. The default budget is 20000 mutants or 15 seconds,
 * whichever comes first (SLUICE_FUZZ_RUNS overrides the count). Exit status 0 means no
 * crash: a target signals failure by crashing or aborting, as under libFuzzer.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUTS 2048
#define MAX_INPUT_SIZE (1u << 20) /* corpus files larger than this are skipped */
#define MAX_MUTANT_SIZE (64u << 10)
#define DEFAULT_RUNS 20000
#define TIME_BUDGET_S 15.0

struct input {
    uint8_t *data;
    size_t size;
};

static struct input inputs[MAX_INPUTS];
static size_t ninputs;

static uint64_t rng_state = 0x5EED5EED12345678ull;

/* xorshift64*: small, fast and the same everywhere. */
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static size_t rng_below(size_t n)
{
    return n ? (size_t)(rng() % n) : 0;
}

static void add_input(const uint8_t *d, size_t n)
{
    if (ninputs >= MAX_INPUTS)
        return;
    uint8_t *copy = malloc(n ? n : 1);
    if (!copy)
        return;
    if (n)
        memcpy(copy, d, n);
    inputs[ninputs].data = copy;
    inputs[ninputs].size = n;
    ninputs++;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_corpus(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    char *names[MAX_INPUTS];
    size_t nn = 0;
    struct dirent *e;
    while ((e = readdir(d)) && nn < MAX_INPUTS)
        if (e->d_name[0] != '.' && (names[nn] = strdup(e->d_name)) != NULL)
            nn++;
    closedir(d);
    qsort(names, nn, sizeof names[0], cmp_names);
    for (size_t i = 0; i < nn; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        free(names[i]);
        if (stat(path, &st) || !S_ISREG(st.st_mode) || st.st_size > MAX_INPUT_SIZE)
            continue;
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        uint8_t *buf = malloc((size_t)st.st_size + 1);
        size_t n = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
        fclose(f);
        if (buf)
            add_input(buf, n);
        free(buf);
    }
}

/* Run one input from an exactly-sized heap copy. */
static void run(const uint8_t *d, size_t n)
{
    uint8_t *copy = malloc(n ? n : 1);
    if (!copy) {
        fprintf(stderr, "fuzz driver: out of memory\n");
        exit(1);
    }
    if (n)
        memcpy(copy, d, n);
    LLVMFuzzerTestOneInput(copy, n);
    free(copy);
}

static const uint8_t interesting[] = {0x00, 0x01, 0x1F, 0x20, 0x22, 0x27, 0x2C, 0x2D, 0x2E,
                                      0x30, 0x3A, 0x5B, 0x5C, 0x5D, 0x7B, 0x7D, 0x7F, 0x80,
                                      0xBF, 0xC0, 0xC3, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xFF,
                                      '\n', '\r', '\t', 'e',  'u',  '$',  '#',  '=',  '.'};

/* Apply one random mutation to buf[0..*n) (capacity MAX_MUTANT_SIZE). */
static void mutate(uint8_t *buf, size_t *n)
{
    size_t len = *n;
    switch (rng_below(8)) {
    case 0: /* bit flip */
        if (len)
            buf[rng_below(len)] ^= (uint8_t)(1u << rng_below(8));
        break;
    case 1: /* interesting byte */
        if (len)
            buf[rng_below(len)] = interesting[rng_below(sizeof interesting)];
        break;
    case 2: /* insert a byte */
        if (len < MAX_MUTANT_SIZE) {
            size_t at = rng_below(len + 1);
            memmove(buf + at + 1, buf + at, len - at);
            buf[at] = rng_below(2) ? interesting[rng_below(sizeof interesting)] : (uint8_t)rng();
            len++;
        }
        break;
    case 3: /* delete a run */
        if (len) {
            size_t at = rng_below(len), k = 1 + rng_below(len - at < 8 ? len - at : 8);
            memmove(buf + at, buf + at + k, len - at - k);
            len -= k;
        }
        break;
    case 4: /* truncate */
        len = rng_below(len + 1);
        break;
    case 5: { /* duplicate a chunk in place */
        if (!len)
            break;
        size_t at = rng_below(len), k = 1 + rng_below(len - at < 32 ? len - at : 32);
        if (len + k > MAX_MUTANT_SIZE)
            break;
        memmove(buf + at + k, buf + at, len - at);
        len += k;
        break;
    }
    case 6: { /* splice: our prefix + another input's suffix */
        const struct input *o = &inputs[rng_below(ninputs)];
        size_t cut = rng_below(len + 1), from = rng_below(o->size + 1);
        size_t k = o->size - from;
        if (cut + k > MAX_MUTANT_SIZE)
            k = MAX_MUTANT_SIZE - cut;
        memcpy(buf + cut, o->data + from, k);
        len = cut + k;
        break;
    }
    default: /* overwrite a byte with a random one */
        if (len)
            buf[rng_below(len)] = (uint8_t)rng();
        break;
    }
    *n = len;
}

int main(int argc, char **argv)
{
    static const char *const seeds[] = {
        "",    "0",   "{}",     "[1]",         "\"a\"", "{\"a\":[1,{\"b\":null}]}",
        "a.b", "x=1", "-1.5e3", "[true,false]"};
    if (argc > 1)
        load_corpus(argv[1]);
    if (ninputs == 0)
        for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
            add_input((const uint8_t *)seeds[i], strlen(seeds[i]));
    size_t corpus = ninputs;
    for (size_t i = 0; i < corpus; i++)
        run(inputs[i].data, inputs[i].size);

    long runs = DEFAULT_RUNS;
    const char *env = getenv("SLUICE_FUZZ_RUNS");
    if (env && atol(env) >= 0)
        runs = atol(env);
    int verbose = getenv("SLUICE_FUZZ_VERBOSE") != NULL;
    uint8_t *buf = malloc(MAX_MUTANT_SIZE);
    if (!buf)
        return 1;
    clock_t start = clock();
    long done = 0;
    for (; done < runs; done++) {
        if ((done & 255) == 0 && (double)(clock() - start) / CLOCKS_PER_SEC > TIME_BUDGET_S)
            break;
        const struct input *in = &inputs[rng_below(ninputs)];
        size_t n = in->size < MAX_MUTANT_SIZE ? in->size : MAX_MUTANT_SIZE;
        memcpy(buf, in->data, n);
        int k = rng_below(4) ? 1 : 2 + (int)rng_below(3); /* mostly one: keeps inputs valid */
        while (k--)
            mutate(buf, &n);
        if (verbose)
            fprintf(stderr, "run %ld (%zu bytes)\n", done, n);
        run(buf, n);
        /* Keep some mutants as material for later splices and mutations. */
        if (ninputs < MAX_INPUTS && rng_below(64) == 0)
            add_input(buf, n);
    }
    fprintf(stderr, "fuzz driver: %zu corpus inputs, %ld mutants, no crash\n", corpus, done);
    free(buf);
    for (size_t i = 0; i < ninputs; i++)
        free(inputs[i].data);
    return 0;
}
