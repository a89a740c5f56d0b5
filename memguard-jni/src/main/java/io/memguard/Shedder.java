package io.memguard;

/**
 * A cache that can free memory under pressure ({@link MemGuard#registerShedder}). Called on
 * memguard's shedding thread, which is attached to the JVM (as a daemon) for the duration of the
 * call only; never concurrently with another shedder of the same guard.
 */
@FunctionalInterface
public interface Shedder {
    /**
     * Free up to {@code targetBytes} (more is fine) and return the bytes actually freed. An
     * exception is logged and counts as 0 bytes.
     *
     * @param targetBytes what memguard asks for
     * @return the bytes freed
     */
    long shed(long targetBytes);
}
