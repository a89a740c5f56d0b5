// A C++ program using libmemguard through the RAII wrappers of memguard.hpp: start a guard,
// watch levels with a lambda, admit work through the budget, export metrics.
#include "memguard.hpp"

#include <atomic>
#include <cstdio>
#include <vector>

int main() {
    try {
        memguard::Guard guard; // MEMGUARD_* from the environment
        std::atomic<int> changes{0};
        memguard::Subscription levels = guard.on_level(
            [&changes](memguard_level from, memguard_level to, const memguard_snapshot &snap) {
                std::printf("level %u -> %u at %llu bytes\n", from, to, (unsigned long long)snap.unreclaimable_bytes);
                changes++;
            });

        memguard_snapshot s = guard.snapshot();
        std::printf("level %u, limit %s%llu bytes, unreclaimable %llu bytes\n", guard.level(),
                    s.limit_bytes == MEMGUARD_NONE ? "none/" : "", (unsigned long long)s.limit_bytes,
                    (unsigned long long)s.unreclaimable_bytes);
        {
            memguard::Reservation r = guard.reserve(16 << 20); // returned when r goes out of scope
            std::vector<char> buffer(r.bytes(), 1);
            std::printf("reserved and allocated %zu bytes\n", buffer.size());
        }
        try {
            guard.reserve(UINT64_MAX);
        } catch (const memguard::Error &e) {
            std::printf("refused as expected: %s\n", e.code() == MEMGUARD_ERR_BUDGET_EXCEEDED ? "budget exceeded" : e.what());
        }
        std::string metrics = guard.prometheus();
        std::printf("%zu bytes of Prometheus metrics\n", metrics.size());
        return 0;
    } catch (const memguard::Error &e) {
        std::fprintf(stderr, "memguard: %s\n", e.what());
        return 1;
    }
}
