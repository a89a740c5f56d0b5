/* cache_worker — a C service whose malloc'd response cache grows with every request: the
 * classic way a service walks into its container's memory limit.
 *
 *   cache_worker [--guard none|shedder|on_level] [--total MiB] [--rate MiB/s] [--entry MiB] [--warm MiB]
 *
 * The first --warm MiB are cached without pause (a cache already warm when the service starts
 * growing); --rate applies after them.
 *
 * Without a guard it caches every response until the OOM killer ends it (SIGKILL, exit 137).
 * With one it runs libmemguard:
 *   shedder   the cache is registered as a shedder: under pressure memguard asks it, on its
 *             shedding thread, for the bytes needed to get back under the warning threshold,
 *             and it frees its oldest entries;
 *   on_level  an on_level callback drops half the cache whenever the level rises;
 * and every request first reserves its response size from the soft-limit budget: a refusal
 * (at Critical, or with the budget spent) rejects the request instead of allocating.
 *
 * It prints one JSON line when done. Run it in a limited cgroup (cgroup v2):
 *   mkdir /sys/fs/cgroup/demo && echo 256M > /sys/fs/cgroup/demo/memory.max
 *   sh -c 'echo $$ > /sys/fs/cgroup/demo/cgroup.procs; exec ./cache_worker'                  # killed
 *   sh -c 'echo $$ > /sys/fs/cgroup/demo/cgroup.procs; exec ./cache_worker --guard shedder'  # survives
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <memguard.h>

#define MIB (1024ULL * 1024ULL)

/* An insertion-ordered cache: a ring of malloc'd entries, oldest evicted first. */
struct cache {
    pthread_mutex_t lock;
    unsigned char **ring;
    size_t cap, head, len;
    size_t entry;
    uint64_t bytes, evicted, shed_calls;
};

static void cache_insert(struct cache *c, unsigned char *value) {
    pthread_mutex_lock(&c->lock);
    if (c->len == c->cap) { /* full ring: drop the oldest to make room (never happens here) */
        free(c->ring[c->head]);
        c->head = (c->head + 1) % c->cap;
        c->len--;
        c->bytes -= c->entry;
    }
    c->ring[(c->head + c->len) % c->cap] = value;
    c->len++;
    c->bytes += c->entry;
    pthread_mutex_unlock(&c->lock);
}

/* Free the oldest entries until `target` bytes are freed (or the cache is empty). */
static uint64_t cache_evict(struct cache *c, uint64_t target) {
    uint64_t freed = 0;
    pthread_mutex_lock(&c->lock);
    while (freed < target && c->len > 0) {
        free(c->ring[c->head]);
        c->ring[c->head] = NULL;
        c->head = (c->head + 1) % c->cap;
        c->len--;
        freed += c->entry;
    }
    c->bytes -= freed;
    c->evicted += freed;
    pthread_mutex_unlock(&c->lock);
    return freed;
}

/* memguard's shedding thread asks for `target` bytes. */
static uint64_t shed(void *user_data, uint64_t target) {
    struct cache *c = user_data;
    pthread_mutex_lock(&c->lock);
    c->shed_calls++;
    pthread_mutex_unlock(&c->lock);
    return cache_evict(c, target);
}

/* memguard's dispatcher thread reports a level change: drop half the cache when it rises. */
static void level_changed(void *user_data, memguard_level from, memguard_level to, const memguard_snapshot *snap) {
    struct cache *c = user_data;
    (void)snap;
    if (to > from) {
        uint64_t half;
        pthread_mutex_lock(&c->lock);
        half = c->bytes / 2 + c->entry;
        pthread_mutex_unlock(&c->lock);
        cache_evict(c, half);
    }
}

/* Keep to `rate` bytes per second once `done_bytes` are past the `warm` ones; `start` becomes the
 * time the warm part ended. */
static void pace(struct timespec *start, uint64_t done_bytes, uint64_t warm, uint64_t rate) {
    struct timespec now, wait;
    if (done_bytes <= warm) {
        clock_gettime(CLOCK_MONOTONIC, start);
        return;
    }
    double due = (double)(done_bytes - warm) / (double)rate, elapsed;
    clock_gettime(CLOCK_MONOTONIC, &now);
    elapsed = (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
    if (due > elapsed) {
        double s = due - elapsed;
        wait.tv_sec = (time_t)s;
        wait.tv_nsec = (long)((s - (double)wait.tv_sec) * 1e9);
        while (nanosleep(&wait, &wait) == -1 && errno == EINTR) {
        }
    }
}

static int fail(const char *what, memguard_result rc) {
    fprintf(stderr, "cache_worker: %s: %s: %s\n", what, memguard_result_str(rc), memguard_last_error());
    return 1;
}

int main(int argc, char **argv) {
    const char *mode = "none";
    uint64_t total = 768 * MIB, rate = 256 * MIB, entry = 1 * MIB, warm = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--guard") == 0 && i + 1 < argc) {
            mode = argv[++i];
        } else if (strcmp(argv[i], "--total") == 0 && i + 1 < argc) {
            total = strtoull(argv[++i], NULL, 10) * MIB;
        } else if (strcmp(argv[i], "--rate") == 0 && i + 1 < argc) {
            rate = strtoull(argv[++i], NULL, 10) * MIB;
        } else if (strcmp(argv[i], "--entry") == 0 && i + 1 < argc) {
            entry = strtoull(argv[++i], NULL, 10) * MIB;
        } else if (strcmp(argv[i], "--warm") == 0 && i + 1 < argc) {
            warm = strtoull(argv[++i], NULL, 10) * MIB;
        } else {
            fprintf(stderr, "usage: cache_worker [--guard none|shedder|on_level] [--total MiB] [--rate MiB/s] [--entry MiB] [--warm MiB]\n");
            return 2;
        }
    }
    if (strcmp(mode, "none") != 0 && strcmp(mode, "shedder") != 0 && strcmp(mode, "on_level") != 0) {
        fprintf(stderr, "cache_worker: --guard is none, shedder or on_level\n");
        return 2;
    }
    if (entry == 0 || rate == 0) {
        return 2;
    }
    uint64_t requests = total / entry;
    struct cache cache = {.cap = (size_t)requests + 1, .entry = (size_t)entry};
    pthread_mutex_init(&cache.lock, NULL);
    cache.ring = calloc(cache.cap, sizeof *cache.ring);
    if (!cache.ring) {
        return 1;
    }

    memguard_guard *guard = NULL;
    memguard_subscription *sub = NULL;
    memguard_result rc;
    if (strcmp(mode, "none") != 0) {
        /* Configured from MEMGUARD_* (NULL config): thresholds, soft limit, ... */
        if ((rc = memguard_guard_new(NULL, &guard)) != MEMGUARD_OK) {
            return fail("memguard_guard_new", rc);
        }
        rc = strcmp(mode, "shedder") == 0
                 ? memguard_register_shedder(guard, "response-cache", 0, shed, &cache, NULL, &sub)
                 : memguard_on_level(guard, level_changed, &cache, NULL, &sub);
        if (rc != MEMGUARD_OK) {
            return fail("registering the cache", rc);
        }
    }

    uint64_t served = 0, rejected = 0;
    struct timespec start, end, paced_from;
    clock_gettime(CLOCK_MONOTONIC, &start);
    paced_from = start;
    for (uint64_t key = 0; key < requests; key++) {
        memguard_reservation *reservation = NULL;
        if (guard && memguard_reserve(guard, entry, &reservation) != MEMGUARD_OK) {
            rejected++; /* admission control: 503 instead of allocating */
            pace(&paced_from, (key + 1) * entry, warm, rate);
            continue;
        }
        unsigned char *response = malloc((size_t)entry);
        if (!response) {
            memguard_reservation_free(reservation);
            rejected++;
            continue;
        }
        memset(response, (int)(key % 251) + 1, (size_t)entry); /* touches every page */
        cache_insert(&cache, response);
        memguard_reservation_free(reservation); /* the bytes are now in the cache, hence measured */
        served++;
        pace(&paced_from, (key + 1) * entry, warm, rate);
    }
    clock_gettime(CLOCK_MONOTONIC, &end);

    memguard_level level = MEMGUARD_LEVEL_NORMAL;
    if (guard) {
        memguard_guard_level(guard, &level);
    }
    /* Unregister before the cache goes away, then stop memguard. */
    memguard_subscription_free(sub);
    if (guard && (rc = memguard_guard_free(guard)) != MEMGUARD_OK) {
        return fail("memguard_guard_free", rc);
    }
    pthread_mutex_lock(&cache.lock);
    printf("{\"mode\":\"%s\",\"served\":%llu,\"rejected\":%llu,\"cached_bytes\":%llu,\"evicted_bytes\":%llu,"
           "\"shed_calls\":%llu,\"level\":%u,\"seconds\":%.3f}\n",
           mode, (unsigned long long)served, (unsigned long long)rejected, (unsigned long long)cache.bytes,
           (unsigned long long)cache.evicted, (unsigned long long)cache.shed_calls, (unsigned)level,
           (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9);
    pthread_mutex_unlock(&cache.lock);
    cache_evict(&cache, UINT64_MAX);
    free(cache.ring);
    return 0;
}
