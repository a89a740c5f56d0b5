package io.memguard;

/** Told of every level change ({@link MemGuard#addLevelListener}). */
@FunctionalInterface
public interface LevelListener {
    /** @param change the levels before and after, and the snapshot that decided it */
    void onLevelChange(LevelChange change);
}
