package io.memguard;

import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;

/**
 * The watcher's latest view ({@link MemGuard#snapshot()}), immutable. Byte counts are {@code -1}
 * when unknown, ratios {@code NaN} (the JDK management API's convention).
 *
 * <p>A field the core adds is one component here and one line in {@link #from}.
 *
 * @param level the current level
 * @param limitBytes the effective limit the level is computed against ({@code -1}: none known)
 * @param limitSource {@code "cgroup"}, {@code "override"} or {@code "node"}
 * @param limitUnknown a cgroup limit file could not be read: the limit may not be the kernel's
 * @param usageBytes usage at the limiting cgroup, page cache included
 * @param workingSetBytes usage minus inactive page cache (what the kubelet evicts on)
 * @param unreclaimableBytes the pressure measure: usage minus clean page cache
 * @param headroomBytes {@code limit - unreclaimable}
 * @param usedFraction {@code unreclaimable / limit}
 * @param timeToLimit the predicted time until the pressure measure reaches the limit at its
 *     current <em>sustained</em> growth (the median slope of the last half second of samples,
 *     the last three rising); empty when memory does not grow steadily, or when the way left is
 *     more than four times the growth seen. Under the warning horizon (default 250 ms,
 *     {@link MemGuard.Builder#horizon}) the level is at least {@link Level#WARNING}, under the
 *     critical horizon (100 ms) {@link Level#CRITICAL}
 * @param growthRate the growth rate of the pressure measure in bytes per second (median slope of
 *     the last half second of samples; negative when it shrinks); empty with too few samples
 * @param hostAvailableBytes host {@code MemAvailable}
 * @param psiSomeAvg10 PSI memory {@code some avg10} (percent), {@code NaN} without PSI
 * @param psiFullAvg10 PSI memory {@code full avg10} (percent)
 * @param kernelCounters {@code high}, {@code max}, {@code oom}, {@code oom_kill}
 * @param eventsTotal events delivered so far, by kind
 * @param samples usage samples taken
 * @param sampleIntervalMillis the current sampling interval
 * @param monotonicNanos {@code CLOCK_MONOTONIC} of the latest sample (the clock of {@code System.nanoTime()} on Linux)
 * @param budget the budget's counters ({@code null} in the snapshot handed to level listeners)
 * @param callbackEventsDropped events not delivered to listeners because they fell behind
 * @param watcherPanics internal errors caught on memguard's threads
 * @param failed why the watcher gave up, if it did (nothing is watched any more)
 * @param json the core's JSON form of this snapshot
 */
public record Snapshot(Level level, long limitBytes, String limitSource, boolean limitUnknown, long usageBytes,
        long workingSetBytes, long unreclaimableBytes, long headroomBytes, double usedFraction, Optional<Duration> timeToLimit,
        OptionalDouble growthRate, long hostAvailableBytes,
        double psiSomeAvg10, double psiFullAvg10, Map<String, Long> kernelCounters, Map<String, Long> eventsTotal,
        long samples, double sampleIntervalMillis, long monotonicNanos, BudgetStats budget,
        long callbackEventsDropped, long watcherPanics, Optional<String> failed, String json) {

    static Snapshot parse(String json) {
        return from(Json.object(json), json);
    }

    static Snapshot from(Map<String, Object> m, String json) {
        Map<String, Object> psi = Json.map(m, "psi");
        return new Snapshot(Level.parse(Json.str(m, "level")), Json.num(m, "limit_bytes"), Json.str(m, "limit_source"),
                Json.bool(m, "limit_unknown"), Json.num(m, "usage_bytes"), Json.num(m, "working_set_bytes"),
                Json.num(m, "unreclaimable_bytes"), Json.num(m, "headroom_bytes"), Json.dbl(m, "used_fraction"),
                Json.optSeconds(m, "time_to_limit"), Json.optDbl(m, "growth_rate"),
                Json.num(m, "host_available_bytes"), psi == null ? Double.NaN : Json.dbl(psi, "some_avg10"),
                psi == null ? Double.NaN : Json.dbl(psi, "full_avg10"), Json.counts(m, "kernel_counters"),
                Json.counts(m, "events_total"), Json.num(m, "samples"), Json.dbl(m, "sample_interval_ms"),
                Json.num(m, "monotonic_ns"), BudgetStats.from(Json.map(m, "budget")),
                Json.num(m, "callback_events_dropped"), Json.num(m, "watcher_panics"),
                Optional.ofNullable(Json.str(m, "failed")), json);
    }
}
