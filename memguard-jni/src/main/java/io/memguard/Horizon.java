package io.memguard;

import java.time.Duration;
import java.util.Map;

/**
 * The predictive warning horizons in force ({@link MemGuard#horizon()}): the level rises to
 * {@link Level#WARNING} when the predicted time to the limit ({@link Snapshot#timeToLimit()}) is
 * shorter than {@link #warn()}, to {@link Level#CRITICAL} when it is shorter than
 * {@link #critical()}. {@link Duration#ZERO} means that horizon is disabled.
 *
 * @param warn the warning horizon ({@code MEMGUARD_HORIZON_WARN}, default 250 ms)
 * @param critical the critical horizon ({@code MEMGUARD_HORIZON_CRITICAL}, default 100 ms)
 */
public record Horizon(Duration warn, Duration critical) {
    /** True when a prediction can raise the level (at least one horizon is not zero). */
    public boolean enabled() {
        return !warn.isZero() || !critical.isZero();
    }

    static Horizon from(Map<String, Object> config) {
        return new Horizon(Duration.ofNanos(Json.num(config, "horizon_warn_ns")),
                Duration.ofNanos(Json.num(config, "horizon_critical_ns")));
    }
}
