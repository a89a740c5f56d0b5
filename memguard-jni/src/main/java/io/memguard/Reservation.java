package io.memguard;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * Bytes reserved from a guard's soft-limit budget ({@link MemGuard#reserve(long)}). {@link #close()}
 * returns them exactly once (idempotent, any thread); use try-with-resources. It may outlive the
 * guard. A reservation that is never closed keeps its bytes counted until the JVM exits.
 */
public final class Reservation implements AutoCloseable {
    private static final VarHandle HANDLE;

    static {
        try {
            HANDLE = MethodHandles.lookup().findVarHandle(Reservation.class, "handle", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    @SuppressWarnings("unused") // accessed through HANDLE
    private volatile long handle;
    private final long bytes;

    Reservation(long handle, long bytes) {
        this.handle = handle;
        this.bytes = bytes;
    }

    /** The bytes held (until closed). */
    public long bytes() {
        return bytes;
    }

    /** True once closed. */
    public boolean isReleased() {
        return handle == 0L;
    }

    /** Return the bytes to the budget. Idempotent: only the first call releases. */
    @Override
    public void close() {
        long h = (long) HANDLE.getAndSet(this, 0L);
        if (h != 0L) {
            NativeLib.release(h);
        }
    }

    @Override
    public String toString() {
        return "Reservation[" + bytes + " bytes" + (isReleased() ? ", released]" : "]");
    }
}
