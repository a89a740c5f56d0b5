package io.memguard;

/**
 * A level change, as handed to a {@link LevelListener}.
 *
 * @param from the level before
 * @param to the level now
 * @param snapshot the snapshot that decided it ({@link Snapshot#budget()} is {@code null} here)
 */
public record LevelChange(Level from, Level to, Snapshot snapshot) {
    /**
     * The predicted time to the limit at the current steady growth when the change was decided
     * ({@link Snapshot#timeToLimit()} of {@link #snapshot()}); present when the prediction, not
     * only the measure, may have raised the level.
     */
    public java.util.Optional<java.time.Duration> timeToLimit() {
        return snapshot.timeToLimit();
    }

    /** True when the level went up. */
    public boolean rising() {
        return to.compareTo(from) > 0;
    }
}
