package io.memguard;

/**
 * A level change, as handed to a {@link LevelListener}.
 *
 * @param from the level before
 * @param to the level now
 * @param snapshot the snapshot that decided it ({@link Snapshot#budget()} is {@code null} here)
 */
public record LevelChange(Level from, Level to, Snapshot snapshot) {
    /** True when the level went up. */
    public boolean rising() {
        return to.compareTo(from) > 0;
    }
}
