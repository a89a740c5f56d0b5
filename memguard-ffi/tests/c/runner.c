#define _POSIX_C_SOURCE 200809L
#include "runner.h"

#include <time.h>

int test_failed;

static int listed(const char *list, const char *name) {
    size_t n = strlen(name);
    const char *p = list;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) {
            return 1;
        }
        p = end ? end + 1 : NULL;
    }
    return 0;
}

int run_tests(const struct test_case *tests, size_t n, int argc, char **argv) {
    int passed = 0, failed = 0, skipped = 0;
    const char *skip = getenv("MEMGUARD_TEST_SKIP");
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < n; i++) {
            printf("%s\n", tests[i].name);
        }
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        int wanted = argc <= 1;
        for (int a = 1; a < argc; a++) {
            wanted |= strcmp(argv[a], tests[i].name) == 0;
        }
        if (!wanted) {
            continue;
        }
        if (skip && listed(skip, tests[i].name)) {
            printf("skip %s\n", tests[i].name);
            skipped++;
            continue;
        }
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        test_failed = 0;
        tests[i].fn();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        printf("%s %s (%.0f ms)\n", test_failed ? "FAIL" : "ok  ", tests[i].name, ms);
        fflush(stdout);
        if (test_failed) {
            failed++;
        } else {
            passed++;
        }
    }
    printf("c-tests: %d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
