package io.memguard;

/**
 * A registered listener or shedder. {@link #close()} removes it (idempotent): from another thread
 * it waits for a running call of it to return; from inside that call it does not wait.
 */
public interface Registration extends AutoCloseable {
    /** Remove the listener or shedder. */
    @Override
    void close();
}
