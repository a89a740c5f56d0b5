package io.memguard;

import java.lang.System.Logger.Level;

/**
 * What the native shedding thread calls ({@code shed(J)J}, looked up in {@code JNI_OnLoad}): the
 * user's shedder, with every exception caught and logged, then the collection request when it
 * freed memory. Holds no reference to the {@code MemGuard}.
 */
final class ShedderCall {
    private static final System.Logger LOG = System.getLogger("memguard.shed");
    private final String name;
    private final Shedder shedder;
    private final GcAfterShed gc;

    ShedderCall(String name, Shedder shedder, GcAfterShed gc) {
        this.name = name;
        this.shedder = shedder;
        this.gc = gc;
    }

    /** Called from native code on memguard's shedding thread. */
    long shed(long target) {
        long freed;
        try {
            freed = Math.max(0L, shedder.shed(target));
        } catch (Throwable t) { // NOPMD: nothing may escape into the native caller
            LOG.log(Level.WARNING, "memguard: shedder \"" + name + "\" threw (counted as 0 bytes freed)", t);
            return 0L;
        }
        if (freed > 0) {
            gc.shedFreed(freed);
        }
        return freed;
    }
}
