package io.memguard;

import java.lang.System.Logger;
import java.lang.System.Logger.Level;

/**
 * Forwards the native library's log records ({@code tracing} events of the core) to
 * {@link System.Logger}: a daemon thread, {@code memguard-log}, blocks in the native queue and
 * logs each record under the Rust module path with dots ({@code memguard.watch.reactor}, ...).
 * java.util.logging by default, so SLF4J and Log4j bridges see the records. Levels: DEBUG
 * records are forwarded only while {@code System.getLogger("memguard")} is loggable at DEBUG
 * (checked every second). Records reach the logger in batches, 10 ms after the first of a batch
 * arrived, so that logging never competes with the listeners of the event being logged.
 */
final class LogBridge {
    /** How long records wait after the first of a batch arrives before they are logged. */
    static final long DEFER_MILLIS = 10;
    private static boolean started;

    private LogBridge() {}

    static synchronized void start() {
        if (started) {
            return;
        }
        started = true;
        Thread t = new Thread(LogBridge::run, "memguard-log");
        t.setDaemon(true);
        t.start();
    }

    private static int nativeLevel() {
        Logger root = System.getLogger("memguard");
        if (root.isLoggable(Level.TRACE)) {
            return 4;
        }
        if (root.isLoggable(Level.DEBUG)) {
            return 3;
        }
        return root.isLoggable(Level.INFO) ? 2 : root.isLoggable(Level.WARNING) ? 1 : 0;
    }

    private static void run() {
        int level = -1;
        while (true) {
            try {
                int now = nativeLevel();
                if (now != level) {
                    NativeLib.setLogLevel(now);
                    level = now;
                }
                String[] r;
                while ((r = NativeLib.nextLog(1_000_000_000L)) != null) {
                    // A record is not urgent, the event it is about is: the core logs a level
                    // change just before dispatching it, and formatting and writing the record
                    // right then competes with the listeners for the CPU. Hand the batch over a
                    // little later instead.
                    Thread.sleep(DEFER_MILLIS);
                    do {
                        System.getLogger(r[1]).log(Level.valueOf(r[0]), "{0} [{1}]", r[2], r[3]);
                    } while ((r = NativeLib.nextLog(0)) != null);
                }
            } catch (Throwable t) { // NOPMD: the log thread must not die of a handler's bug
                try {
                    Thread.sleep(1000);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }
    }

    /** {forwarded, dropped} record counts. */
    static long[] stats() {
        return NativeLib.logStats();
    }
}
