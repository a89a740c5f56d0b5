package io.memguard;

import java.util.Map;

/**
 * The soft-limit budget's counters ({@link MemGuard#budget()}, {@link Snapshot#budget()}).
 *
 * @param softLimitBytes the soft limit
 * @param usageBytes the last usage sample (the pressure measure)
 * @param outstandingBytes bytes held by live reservations
 * @param settlingBytes released bytes no sample has reflected yet (still counted)
 * @param stockedBytes bytes pre-charged in the threads' stocks (still counted)
 * @param availableBytes the largest request the budget would grant now
 * @param level the level the budget last saw
 * @param granted requests granted
 * @param refused requests refused
 * @param forced forced reservations
 */
public record BudgetStats(long softLimitBytes, long usageBytes, long outstandingBytes, long settlingBytes,
        long stockedBytes, long availableBytes, Level level, long granted, long refused, long forced) {

    static BudgetStats from(Map<String, Object> m) {
        if (m == null) {
            return null;
        }
        return new BudgetStats(Json.num(m, "soft_limit_bytes"), Json.num(m, "usage_bytes"),
                Json.num(m, "outstanding_bytes"), Json.num(m, "settling_bytes"), Json.num(m, "stocked_bytes"),
                Json.num(m, "available_bytes"), Level.parse(Json.str(m, "level")), Json.num(m, "granted"),
                Json.num(m, "refused"), Json.num(m, "forced"));
    }
}
