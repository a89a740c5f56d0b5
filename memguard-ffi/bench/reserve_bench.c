/* memguard_reserve + memguard_reservation_free from C: nanoseconds per pair, one thread, for a
 * stocked request (4 KiB, served from the thread's 64 KiB stock) and an exact-path request
 * (128 KiB, the shared counter). Prints the median of 7 rounds; memguard-ffi/bench/run.sh runs it
 * beside the Rust reference (benches/reserve.rs).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <memguard.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double round_ns(const memguard_guard *g, uint64_t bytes, long iters) {
    double t0 = now_ns();
    for (long i = 0; i < iters; i++) {
        memguard_reservation *r = NULL;
        if (memguard_reserve(g, bytes, &r) != MEMGUARD_OK) {
            fprintf(stderr, "refused: %s\n", memguard_last_error());
            exit(1);
        }
        memguard_reservation_free(r);
    }
    return (now_ns() - t0) / (double)iters;
}

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 2000000;
    const char *label = argc > 2 ? argv[2] : "c";
    memguard_guard *g = NULL;
    if (memguard_guard_new(NULL, &g) != MEMGUARD_OK) {
        fprintf(stderr, "memguard_guard_new: %s\n", memguard_last_error());
        return 1;
    }
    const uint64_t sizes[2] = {4096, 128 * 1024};
    const char *names[2] = {"4KiB-stocked", "128KiB-exact"};
    for (int s = 0; s < 2; s++) {
        double rounds[7];
        round_ns(g, sizes[s], iters / 10); /* warm-up */
        for (int k = 0; k < 7; k++) {
            rounds[k] = round_ns(g, sizes[s], iters);
        }
        qsort(rounds, 7, sizeof rounds[0], cmp);
        printf("%-22s %-13s %6.1f ns/op (min %.1f, max %.1f; %ld iterations x 7)\n", label, names[s], rounds[3],
               rounds[0], rounds[6], iters);
    }
    memguard_guard_free(g);
    return 0;
}
