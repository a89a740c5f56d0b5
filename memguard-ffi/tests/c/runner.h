/* A minimal test runner for the C suite: tests register in a table, run in order in one
 * process (so that sanitizers and valgrind see everything), and the run ends with the line
 * "c-tests: N passed, N failed, N skipped".
 *
 *   test_memguard [--list] [NAME...]     run every test, or only those named
 *   MEMGUARD_TEST_SKIP=a,b               skip tests by name (reported as skipped)
 *   MEMGUARD_TEST_SLOW=N                 multiply every wait by N (valgrind)
 */
#ifndef MEMGUARD_TEST_RUNNER_H
#define MEMGUARD_TEST_RUNNER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*test_fn)(void);

struct test_case {
    const char *name;
    test_fn fn;
};

/* Set by CHECK on failure; each test returns at its first failed check. */
extern int test_failed;

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "  FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond);            \
            test_failed = 1;                                                               \
            return;                                                                        \
        }                                                                                  \
    } while (0)

/* A memguard call that must return `want`; prints the last error otherwise. */
#define CHECK_RC(expr, want)                                                               \
    do {                                                                                   \
        memguard_result rc_ = (expr);                                                      \
        if (rc_ != (want)) {                                                               \
            fprintf(stderr, "  FAILED %s:%d: %s returned %s, expected %s (%s)\n", __FILE__, \
                    __LINE__, #expr, memguard_result_str(rc_), memguard_result_str(want),   \
                    memguard_last_error());                                                \
            test_failed = 1;                                                               \
            return;                                                                        \
        }                                                                                  \
    } while (0)

#define CHECK_OK(expr) CHECK_RC(expr, MEMGUARD_OK)

int run_tests(const struct test_case *tests, size_t n, int argc, char **argv);

#endif
