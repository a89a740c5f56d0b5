package io.memguard;

/** Told of every event: kernel events and level changes ({@link MemGuard#addEventListener}). */
@FunctionalInterface
public interface EventListener {
    /** @param event what happened */
    void onEvent(Event event);
}
