package io.memguard;

/**
 * The soft-limit budget refused a reservation ({@link MemGuard#reserve(long)}). Unchecked: answer
 * it like an overload (HTTP 503, retry later), not like a bug.
 */
public class BudgetExceededException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final long requested;
    private final long available;
    private final long softLimit;
    private final Level level;
    private final String scope;

    /**
     * @param message the full message
     * @param requested bytes asked for
     * @param available the most that could have been granted at that moment
     * @param softLimit the limit that refused
     * @param level the level ordinal at that moment
     * @param scope the sub-budget that refused, or {@code null}
     */
    public BudgetExceededException(String message, long requested, long available, long softLimit, int level,
            String scope) {
        super(message);
        this.requested = requested;
        this.available = available;
        this.softLimit = softLimit;
        this.level = Level.of(level);
        this.scope = scope;
    }

    /** Bytes asked for. */
    public long requested() {
        return requested;
    }

    /** The most that could have been granted at that moment (0 at {@code CRITICAL}). */
    public long available() {
        return available;
    }

    /** The budget's soft limit in bytes. */
    public long softLimit() {
        return softLimit;
    }

    /** The level at that moment. */
    public Level level() {
        return level;
    }

    /** The sub-budget that refused, or {@code null} for the guard's budget. */
    public String scope() {
        return scope;
    }
}
