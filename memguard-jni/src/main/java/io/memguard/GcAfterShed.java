package io.memguard;

import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryUsage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The JVM's counterpart of {@code malloc_trim}: memory a Java shedder drops comes back only after
 * a collection (the heap shrinks by GC policy; direct buffers are freed by their cleaners once a
 * collection found them unreachable). After a shedder reported freed bytes, one
 * {@code System.gc()} is requested on the {@code memguard-gc} daemon thread, 20 ms later (so a
 * whole shedding run is collected once), at most once per minimum interval and never more than
 * a fifth of the time (the next one waits at least four times as long as the previous took); a
 * request within that window is served when it ends.
 * Measured and reported in {@link GcReport} and the log. Without effect under
 * {@code -XX:+DisableExplicitGC}.
 */
final class GcAfterShed {
    private static final System.Logger LOG = System.getLogger("memguard.gc");
    private static final ScheduledExecutorService EXEC = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "memguard-gc");
        t.setDaemon(true);
        return t;
    });
    private static final long COALESCE_MILLIS = 20;

    private final boolean enabled;
    private final long minIntervalNanos;
    private final AtomicBoolean pending = new AtomicBoolean();
    private final AtomicLong shedSince = new AtomicLong();
    private final AtomicLong runs = new AtomicLong();
    private final AtomicLong skipped = new AtomicLong();
    private volatile boolean closed;
    private long lastEnd;
    private long lastDuration;
    private boolean ranOnce;
    private volatile GcReport last;

    GcAfterShed(boolean enabled, Duration minInterval) {
        this.enabled = enabled;
        this.minIntervalNanos = minInterval.toNanos();
    }

    boolean enabled() {
        return enabled;
    }

    Duration minInterval() {
        return Duration.ofNanos(minIntervalNanos);
    }

    void close() {
        closed = true;
    }

    /** A Java shedder freed {@code bytes}: request a collection (coalesced, rate-limited). */
    void shedFreed(long bytes) {
        if (!enabled || closed) {
            return;
        }
        shedSince.addAndGet(bytes);
        if (pending.compareAndSet(false, true)) {
            EXEC.schedule(this::collect, COALESCE_MILLIS, TimeUnit.MILLISECONDS);
        }
    }

    GcReport last() {
        return last;
    }

    long runs() {
        return runs.get();
    }

    long skipped() {
        return skipped.get();
    }

    private synchronized void collect() {
        if (closed) {
            pending.set(false);
            return;
        }
        long now = System.nanoTime();
        long wait = Math.max(minIntervalNanos, 4 * lastDuration);
        if (ranOnce && now - lastEnd < wait) {
            // Too soon: collect when the interval is over (still pending, so not scheduled twice).
            skipped.incrementAndGet();
            EXEC.schedule(this::collect, lastEnd + wait - now, TimeUnit.NANOSECONDS);
            return;
        }
        pending.set(false);
        long shed = shedSince.getAndSet(0);
        MemoryUsage heapBefore = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage();
        long directBefore = direct();
        long rssBefore = rss();
        long start = System.nanoTime();
        System.gc();
        // Direct buffers are freed by their cleaners once the collection found them unreachable:
        // give the cleaner thread up to 100 ms to start, then until the figure stops moving.
        long directAfter = direct();
        long deadline = System.nanoTime() + 100_000_000L;
        while (directAfter >= directBefore && directBefore > 0 && System.nanoTime() < deadline) {
            sleep(2);
            directAfter = direct();
        }
        for (long prev = -2; directAfter != prev && System.nanoTime() < deadline; ) {
            prev = directAfter;
            sleep(5);
            directAfter = direct();
        }
        long end = System.nanoTime();
        MemoryUsage heapAfter = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage();
        GcReport r = new GcReport(start, Duration.ofNanos(end - start), shed, heapBefore.getUsed(),
                heapAfter.getUsed(), heapBefore.getCommitted(), heapAfter.getCommitted(), directBefore, directAfter,
                rssBefore, rss());
        last = r;
        runs.incrementAndGet();
        ranOnce = true;
        lastEnd = end;
        lastDuration = end - start;
        LOG.log(System.Logger.Level.INFO, () -> String.format(
                "memguard: collection after shedding %s: heap %s -> %s, direct buffers %s -> %s, RSS %s -> %s, in %.1f ms",
                JvmMemory.bytes(shed), JvmMemory.bytes(r.heapUsedBefore()), JvmMemory.bytes(r.heapUsedAfter()),
                JvmMemory.bytes(r.directBefore()), JvmMemory.bytes(r.directAfter()), JvmMemory.bytes(r.rssBefore()),
                JvmMemory.bytes(r.rssAfter()), r.duration().toNanos() / 1e6));
    }

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    static long direct() {
        for (BufferPoolMXBean b : ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class)) {
            if (b.getName().equals("direct")) {
                return b.getMemoryUsed();
            }
        }
        return -1;
    }

    /** Resident set size of this process, from {@code /proc/self/statm} ({@code -1} if unreadable). */
    static long rss() {
        try {
            String[] f = Files.readString(Path.of("/proc/self/statm")).trim().split("\\s+");
            return Long.parseLong(f[1]) * 4096L;
        } catch (Exception e) { // NOPMD: not Linux, or /proc unreadable
            return -1;
        }
    }
}
