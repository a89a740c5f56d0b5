// RAII wrappers over the C header, for this example (the library itself stays plain C).
// Each handle frees its C object exactly once; callbacks are std::function objects owned by the
// library through user_data and deleted by free_user_data when the callback is removed.
#pragma once

#include <memguard.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

namespace memguard {

// A failed call: the result code and memguard_last_error().
class Error : public std::runtime_error {
public:
    explicit Error(memguard_result code)
        : std::runtime_error(std::string(memguard_result_str(code)) + ": " + memguard_last_error()), code_(code) {}
    memguard_result code() const noexcept { return code_; }

private:
    memguard_result code_;
};

inline void check(memguard_result rc) {
    if (rc != MEMGUARD_OK) {
        throw Error(rc);
    }
}

// A string returned by the library.
inline std::string take(char *s) {
    std::unique_ptr<char, void (*)(char *)> owned(s, memguard_string_free);
    return owned ? std::string(owned.get()) : std::string();
}

class Reservation {
public:
    explicit Reservation(memguard_reservation *r) : r_(r, memguard_reservation_free) {}
    std::uint64_t bytes() const {
        std::uint64_t n = 0;
        check(memguard_reservation_bytes(r_.get(), &n));
        return n;
    }

private:
    std::unique_ptr<memguard_reservation, void (*)(memguard_reservation *)> r_;
};

// Removes its callback when destroyed (memguard_subscription_free waits for a running call).
class Subscription {
public:
    explicit Subscription(memguard_subscription *s) : s_(s, memguard_subscription_free) {}

private:
    std::unique_ptr<memguard_subscription, void (*)(memguard_subscription *)> s_;
};

class Guard {
public:
    using LevelFn = std::function<void(memguard_level from, memguard_level to, const memguard_snapshot &)>;

    // Configured from the MEMGUARD_* environment.
    Guard() : g_(nullptr, &Guard::free) {
        memguard_guard *g = nullptr;
        check(memguard_guard_new(nullptr, &g));
        g_.reset(g);
    }

    memguard_level level() const {
        memguard_level l = MEMGUARD_LEVEL_NORMAL;
        check(memguard_guard_level(g_.get(), &l));
        return l;
    }

    memguard_snapshot snapshot() const {
        memguard_snapshot s{};
        s.size = sizeof s;
        check(memguard_guard_snapshot(g_.get(), &s));
        return s;
    }

    // Throws Error (MEMGUARD_ERR_BUDGET_EXCEEDED) when the budget refuses.
    Reservation reserve(std::uint64_t bytes) const {
        memguard_reservation *r = nullptr;
        check(memguard_reserve(g_.get(), bytes, &r));
        return Reservation(r);
    }

    std::string prometheus() const {
        char *text = nullptr;
        check(memguard_prometheus(g_.get(), &text, nullptr));
        return take(text);
    }

    // `fn` runs on memguard's dispatcher thread; an exception it throws is swallowed there
    // (a callback must never unwind into the library).
    Subscription on_level(LevelFn fn) const {
        auto *owned = new LevelFn(std::move(fn));
        memguard_subscription *s = nullptr;
        memguard_result rc = memguard_on_level(g_.get(), &Guard::level_trampoline, owned, &Guard::delete_fn, &s);
        if (rc != MEMGUARD_OK) {
            delete owned; // not taken over on failure
            throw Error(rc);
        }
        return Subscription(s);
    }

private:
    static void free(memguard_guard *g) { memguard_guard_free(g); }

    static void level_trampoline(void *ud, memguard_level from, memguard_level to, const memguard_snapshot *s) {
        try {
            (*static_cast<LevelFn *>(ud))(from, to, *s);
        } catch (...) {
        }
    }

    static void delete_fn(void *ud) { delete static_cast<LevelFn *>(ud); }

    std::unique_ptr<memguard_guard, void (*)(memguard_guard *)> g_;
};

} // namespace memguard
