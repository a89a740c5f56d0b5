/* The C probe of `cargo xtask compare`'s per-language cost table: the same scenario as
 * benches/src/bin/cost-probe.rs (read it for the details), through the C library.
 *
 *     probe SHM_FILE ROUNDS
 *
 * Prints one JSON line of raw figures; xtask summarises them. The on_event callback runs on
 * memguard's dispatcher thread, as Rust's does.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <memguard.h>

#define PAIRS_PER_ROUND 5000 /* 20 MiB of churn a round: within the soft limit's room */
#define RESERVE_ROUNDS 8     /* the first 3 warm up, the last 5 are kept */
#define MAX_EVENTS 4096
#define CHUNK (1 << 20)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t events[MAX_EVENTS][2];
static size_t n_events;

static void on_event(void *user_data, const memguard_event *e) {
    uint64_t now = memguard_monotonic_ns();
    (void)user_data;
    if (e->kind != MEMGUARD_EVENT_LEVEL_CHANGED) {
        return;
    }
    pthread_mutex_lock(&lock);
    if (n_events < MAX_EVENTS) {
        events[n_events][0] = e->monotonic_ns;
        events[n_events][1] = now;
        n_events++;
    }
    pthread_mutex_unlock(&lock);
}

static long rss_bytes(void) {
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &resident) != 2) {
            resident = 0;
        }
        fclose(f);
    }
    return resident * sysconf(_SC_PAGESIZE);
}

static int threads(void) {
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *ent;
    while (d && (ent = readdir(d)) != NULL) {
        n += ent->d_name[0] != '.';
    }
    if (d) {
        closedir(d);
    }
    return n;
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static void wait_level(const memguard_guard *g, int normal) {
    uint64_t end = memguard_monotonic_ns() + 5000000000ULL;
    memguard_level level = MEMGUARD_LEVEL_NORMAL;
    while (memguard_guard_level(g, &level) == MEMGUARD_OK && (level == MEMGUARD_LEVEL_NORMAL) != normal &&
           memguard_monotonic_ns() < end) {
        sleep_ms(1);
    }
}

static int fail(const char *what) {
    fprintf(stderr, "%s: %s\n", what, memguard_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: probe SHM_FILE ROUNDS\n");
        return 2;
    }
    const char *path = argv[1];
    int rounds = atoi(argv[2]);
    long rss_before = rss_bytes();
    int threads_before = threads();
    memguard_config *cfg = NULL;
    memguard_guard *g = NULL;
    memguard_subscription *sub = NULL;
    if (memguard_config_new(&cfg) != MEMGUARD_OK || memguard_config_set_limit_override(cfg, 128u << 20) != MEMGUARD_OK ||
        memguard_config_set_psi(cfg, false) != MEMGUARD_OK) {
        return fail("config");
    }
    if (memguard_guard_new(cfg, &g) != MEMGUARD_OK) {
        return fail("memguard_guard_new");
    }
    memguard_config_free(cfg);
    if (memguard_on_event(g, on_event, NULL, NULL, &sub) != MEMGUARD_OK) {
        return fail("memguard_on_event");
    }
    sleep_ms(200);
    long rss_after = rss_bytes();
    int threads_after = threads();

    double reserve_ns[RESERVE_ROUNDS];
    for (int r = 0; r < RESERVE_ROUNDS; r++) {
        sleep_ms(100); /* the previous round's bytes settle */
        uint64_t start = memguard_monotonic_ns();
        for (int i = 0; i < PAIRS_PER_ROUND; i++) {
            memguard_reservation *res = NULL;
            if (memguard_reserve(g, 4096, &res) != MEMGUARD_OK) {
                return fail("memguard_reserve refused");
            }
            memguard_reservation_free(res);
        }
        reserve_ns[r] = (double)(memguard_monotonic_ns() - start) / PAIRS_PER_ROUND;
    }

    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    char *chunk = malloc(CHUNK);
    uint64_t *triggers = malloc(sizeof *triggers * (size_t)rounds * 121);
    size_t n_triggers = 0;
    if (!chunk || !triggers) {
        return 1;
    }
    memset(chunk, 1, CHUNK);
    for (int r = 0; r < rounds; r++) {
        lseek(fd, 0, SEEK_SET);
        for (int w = 0; w < 120; w++) {
            triggers[n_triggers++] = memguard_monotonic_ns();
            if (write(fd, chunk, CHUNK) != CHUNK) {
                perror("write");
                return 1;
            }
        }
        wait_level(g, 0);
        triggers[n_triggers++] = memguard_monotonic_ns();
        if (ftruncate(fd, 0) != 0) {
            perror("ftruncate");
            return 1;
        }
        wait_level(g, 1);
    }
    sleep_ms(200);
    memguard_subscription_free(sub);
    memguard_guard_close(g);
    memguard_guard_free(g);
    close(fd);
    unlink(path);

    printf("{\"events\":[");
    for (size_t i = 0; i < n_events; i++) {
        printf("%s[%llu,%llu]", i ? "," : "", (unsigned long long)events[i][0], (unsigned long long)events[i][1]);
    }
    printf("],\"triggers\":[");
    for (size_t i = 0; i < n_triggers; i++) {
        printf("%s%llu", i ? "," : "", (unsigned long long)triggers[i]);
    }
    printf("],\"reserve_ns\":[");
    for (int r = 3; r < RESERVE_ROUNDS; r++) {
        printf("%s%.1f", r > 3 ? "," : "", reserve_ns[r]);
    }
    printf("],\"rss_before\":%ld,\"rss_after\":%ld,\"threads_before\":%d,\"threads_after\":%d}\n", rss_before,
           rss_after, threads_before, threads_after);
    free(chunk);
    free(triggers);
    return 0;
}
