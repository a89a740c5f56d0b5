package io.memguard;

/**
 * The natives of {@code libmemguard_jni.so} (see {@code memguard-jni/src/main/rust}). Handles are
 * addresses of Rust objects: each is owned by one Java object that frees it exactly once.
 */
final class NativeLib {
    static {
        NativeLoader.load();
        LogBridge.start();
    }

    private NativeLib() {}

    /** Loads the library (and starts the log bridge) if not done yet. */
    static void ensureLoaded() {}

    // guard (guard.rs)
    static native long start(String[] keys, String[] values, boolean fromEnv);
    static native void close(long guard);
    static native void free(long guard);
    static native boolean isClosed(long guard);
    static native int level(long guard);
    static native String snapshot(long guard);
    static native String limits(long guard);
    static native String sources(long guard);
    static native String config(long guard);
    static native String prometheus(long guard);
    static native String budget(long guard);
    static native String lastShed(long guard);
    static native String[] nextEvent(long guard, long timeoutNanos);
    static native long droppedEvents(long guard);
    static native String mallocTrim(long guard);
    static native String render(long guard, int what, boolean json);

    // reservations (reservation.rs)
    static native long reserve(long guard, long bytes);
    static native long tryReserve(long guard, long bytes);
    static native long reserveForced(long guard, long bytes);
    static native void release(long reservation);

    // listeners (listen.rs)
    static native long listenerFeed(long guard, int capacity);
    static native String nextListenerMessage(long feed, long timeoutNanos);
    static native long listenerDropped(long feed);
    static native void freeFeed(long feed);

    // shedders (shedder.rs)
    static native long registerShedder(long guard, String name, int priority, ShedderCall call);
    static native boolean unregister(long guard, long id);
    static native long attachedThreads();
    static native long benchAttach(int n, boolean daemon);

    // process-wide (status.rs, logbridge.rs)
    static native String renderStatus(String format, boolean fromEnv);
    static native String version();
    static native String[] envVars();
    static native String[] eventKinds();
    static native long monotonicNanos();
    static native void panicForTest();
    static native String[] nextLog(long timeoutNanos);
    static native void setLogLevel(int level);
    static native long[] logStats();
}
