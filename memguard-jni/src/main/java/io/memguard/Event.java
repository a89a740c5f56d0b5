package io.memguard;

import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * What the watcher reported ({@link MemGuard#nextEvent}, {@link EventListener}), immutable.
 *
 * <p>{@link #kind()} is the core's stable name ({@code "oom_kill"}, {@code "level_changed"},
 * {@code "psi"}, ... see {@link MemGuard#eventKinds()}); {@link #details()} holds the kind's own
 * fields as the JSON names them ({@code count}, {@code delta}, {@code stall}, {@code from},
 * {@code to}, {@code time_to_limit}, ...).
 *
 * @param kind the event kind
 * @param level the level after this event
 * @param monotonicNanos {@code CLOCK_MONOTONIC} when the watcher woke for it (comparable with {@code System.nanoTime()} on Linux)
 * @param workingSetBytes working set at the limiting cgroup, {@code -1} if unknown
 * @param unreclaimableBytes the pressure measure, {@code -1} if unknown
 * @param limitBytes the effective limit, {@code -1} if none
 * @param details the kind's own fields
 * @param text the {@code memguard watch} line for it (rendered by the core)
 * @param json the core's JSON form
 */
public record Event(String kind, Level level, long monotonicNanos, long workingSetBytes, long unreclaimableBytes,
        long limitBytes, Map<String, Object> details, String text, String json) {

    private static final Set<String> COMMON =
            Set.of("kind", "level", "monotonic_ns", "working_set_bytes", "unreclaimable_bytes", "limit_bytes");

    static Event parse(String json, String text) {
        return from(Json.object(json), json, text);
    }

    static Event from(Map<String, Object> m, String json, String text) {
        Map<String, Object> details = new LinkedHashMap<>();
        m.forEach((k, v) -> {
            if (!COMMON.contains(k)) {
                details.put(k, v);
            }
        });
        return new Event(Json.str(m, "kind"), Level.parse(Json.str(m, "level")), Json.num(m, "monotonic_ns"),
                Json.num(m, "working_set_bytes"), Json.num(m, "unreclaimable_bytes"), Json.num(m, "limit_bytes"),
                java.util.Collections.unmodifiableMap(details), text, json);
    }

    /**
     * For a {@code level_changed} event: the predicted time to the limit at the current steady
     * growth when the change was decided (see {@link Snapshot#timeToLimit()}); empty when memory
     * was not growing steadily, and for every other kind.
     */
    public Optional<Duration> timeToLimit() {
        return Json.optSeconds(details, "time_to_limit");
    }

    /** An integer detail ({@code count}, {@code delta}, {@code threshold_bytes}, ...), {@code -1} if absent. */
    public long longDetail(String name) {
        Object v = details.get(name);
        return v instanceof Number ? ((Number) v).longValue() : -1L;
    }

    /** A text detail ({@code stall}, {@code scope}, {@code from}, {@code cgroup}, ...), or {@code null}. */
    public String stringDetail(String name) {
        Object v = details.get(name);
        return v == null ? null : v.toString();
    }
}
