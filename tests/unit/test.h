/*
 * test.h - typed asserts for sluice's C unit tests.
 *
 * Each test binary is one process under CTest. A failed check prints file:line, the
 * expression and both values, counts the failure and carries on; TEST_MAIN's return
 * value is non-zero when anything failed. CHECK_* return from the current test function
 * when `fatal` variants (REQUIRE_*) fail.
 */
#ifndef SLUICE_TEST_H
#define SLUICE_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures;
static int test_checks;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        test_checks++;                                                                             \
        if (!(cond)) {                                                                             \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                      \
        test_checks++;                                                                             \
        if (va_ != vb_) {                                                                          \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b,  \
                    va_, vb_);                                                                     \
        }                                                                                          \
    } while (0)

#define CHECK_DBL(a, b, eps)                                                                       \
    do {                                                                                           \
        double va_ = (double)(a), vb_ = (double)(b);                                               \
        test_checks++;                                                                             \
        if (!(va_ - vb_ <= (eps) && vb_ - va_ <= (eps))) {                                         \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: %s ~= %s failed: %.17g != %.17g\n", __FILE__, __LINE__, #a,    \
                    #b, va_, vb_);                                                                 \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *sa_ = (a), *sb_ = (b);                                                         \
        test_checks++;                                                                             \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                               \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a,  \
                    #b, sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");                               \
        }                                                                                          \
    } while (0)

/* Compare n bytes of a with the NUL-terminated string b. */
#define CHECK_MEM(a, n, b)                                                                         \
    do {                                                                                           \
        const char *sa_ = (const char *)(a), *sb_ = (b);                                           \
        size_t na_ = (size_t)(n);                                                                  \
        test_checks++;                                                                             \
        if (!sa_ || na_ != strlen(sb_) || memcmp(sa_, sb_, na_) != 0) {                            \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%.*s\" != \"%s\"\n", __FILE__, __LINE__,    \
                    #a, #b, (int)(sa_ ? na_ : 6), sa_ ? sa_ : "(null)", sb_);                      \
        }                                                                                          \
    } while (0)

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        test_checks++;                                                                             \
        if (!(cond)) {                                                                             \
            test_failures++;                                                                       \
            fprintf(stderr, "%s:%d: REQUIRE(%s) failed\n", __FILE__, __LINE__, #cond);             \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        int before_ = test_failures;                                                               \
        fn();                                                                                      \
        fprintf(stderr, "%s %s\n", test_failures == before_ ? "ok  " : "FAIL", #fn);               \
    } while (0)

#define TEST_DONE()                                                                                \
    (fprintf(stderr, "%d checks, %d failed\n", test_checks, test_failures),                        \
     test_failures == 0 && test_checks > 0 ? 0 : 1)

#endif
