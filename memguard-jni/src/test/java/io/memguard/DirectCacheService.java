package io.memguard;

import java.lang.management.ManagementFactory;
import java.lang.management.MemoryNotificationInfo;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.nio.ByteBuffer;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import javax.management.NotificationEmitter;

/**
 * A service whose cache lives in direct {@code ByteBuffer}s (off the heap), growing toward its
 * cgroup's limit: each request caches 4 MiB. Three ways to guard it:
 *
 * <ul>
 *   <li>{@code unguarded}: nothing;</li>
 *   <li>{@code mxbean}: the JVM's own API — a usage threshold at 80% on every heap pool that
 *       supports one, whose notification clears the cache (prints {@code MXBEAN_FIRED});</li>
 *   <li>{@code memguard}: a shedder evicting the oldest buffers, and the budget: each request
 *       reserves its 4 MiB first and is refused (a 503) when the budget says no;</li>
 *   <li>{@code memguard-level}: a level listener that evicts the oldest half of the cache when the
 *       level rises, and while the level is Warning or above the cache replaces entries instead
 *       of growing (the {@code on_level} style of the other languages' workers).</li>
 * </ul>
 *
 * <p>Arguments: {@code MODE REQUESTS [MIB_PER_SECOND [WARM_MIB]]} (no rate, or 0: 1 ms between
 * requests; the first {@code WARM_MIB} are cached without pause, a cache already warm when the
 * service starts growing, and the rate applies after them).
 * Prints {@code SURVIVED ...} when every request was served or refused.
 */
public final class DirectCacheService {
    static final int CHUNK = 4 << 20;

    private final ArrayDeque<ByteBuffer> cache = new ArrayDeque<>();
    private final AtomicLong evicted = new AtomicLong();

    private DirectCacheService() {}

    long evict(long target) {
        long freed = 0;
        synchronized (cache) {
            while (freed < target && !cache.isEmpty()) {
                freed += cache.removeFirst().capacity();
            }
        }
        evicted.addAndGet(freed);
        return freed;
    }

    long clear() {
        return evict(Long.MAX_VALUE);
    }

    void put() {
        put(null);
    }

    /** Caches a new entry, in {@code reuse} when given (an evicted entry's buffer). */
    void put(ByteBuffer reuse) {
        ByteBuffer b = reuse != null ? reuse : ByteBuffer.allocateDirect(CHUNK);
        for (int i = 0; i < CHUNK; i += 4096) {
            b.put(i, (byte) 1); // touch: the kernel charges the page now
        }
        synchronized (cache) {
            cache.addLast(b);
        }
    }

    public static void main(String[] args) throws Exception {
        String mode = args[0];
        int requests = Integer.parseInt(args[1]);
        double rate = args.length > 2 ? Double.parseDouble(args[2]) : 0;
        double warm = args.length > 3 ? Double.parseDouble(args[3]) : 0;
        long pacedFrom = System.nanoTime(); // then when the warm part ended
        DirectCacheService svc = new DirectCacheService();
        AtomicBoolean fired = new AtomicBoolean();
        MemGuard guard = null;
        if (mode.equals("mxbean")) {
            List<String> armed = new ArrayList<>();
            for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) {
                if (p.getType() == MemoryType.HEAP && p.isUsageThresholdSupported()) {
                    long max = p.getUsage().getMax() > 0 ? p.getUsage().getMax() : p.getUsage().getCommitted();
                    p.setUsageThreshold(Math.max(1, (long) (max * 0.8)));
                    armed.add(p.getName() + "@" + p.getUsageThreshold());
                }
            }
            ((NotificationEmitter) ManagementFactory.getMemoryMXBean()).addNotificationListener((n, h) -> {
                if (n.getType().equals(MemoryNotificationInfo.MEMORY_THRESHOLD_EXCEEDED)) {
                    fired.set(true);
                    System.out.println("MXBEAN_FIRED " + n.getMessage());
                    System.out.flush();
                    svc.clear();
                }
            }, null, null);
            System.out.println("MXBEAN_ARMED " + armed);
        } else if (mode.equals("memguard")) {
            guard = MemGuard.builder().start(); // MEMGUARD_* from the environment
            System.out.println("HEAP_WARNING " + guard.heapWarning().orElse("none"));
            System.out.print(guard.jvm().report());
            guard.registerShedder("direct-cache", 0, svc::evict);
            guard.addLevelListener(c -> System.out.println("LEVEL " + c.from() + " -> " + c.to()));
        } else if (mode.equals("memguard-level")) {
            guard = MemGuard.builder().start();
            guard.addLevelListener(c -> {
                if (c.rising()) {
                    long cached;
                    synchronized (svc.cache) {
                        cached = (long) svc.cache.size() * CHUNK;
                    }
                    svc.evict(Math.max(cached / 2, CHUNK));
                    // A direct buffer's memory returns when the GC collects the buffer: without
                    // this, the evicted half stays charged (the shedder path does it for you).
                    System.gc();
                }
            });
        }
        boolean levelStyle = mode.equals("memguard-level");
        System.out.println("STARTED " + mode);
        System.out.flush();
        long served = 0;
        long refused = 0;
        for (int i = 0; i < requests; i++) {
            if (levelStyle) {
                ByteBuffer reuse = null;
                if (guard.level().compareTo(Level.WARNING) >= 0) {
                    // Under pressure the cache replaces entries instead of growing: the oldest
                    // entry's buffer is reused (dropped, it would stay charged until a GC).
                    synchronized (svc.cache) {
                        reuse = svc.cache.pollFirst();
                    }
                }
                svc.put(reuse);
                served++;
            } else if (guard != null) {
                try (Reservation r = guard.reserve(CHUNK)) {
                    svc.put();
                    served++;
                } catch (BudgetExceededException e) {
                    refused++; // a 503: the client retries later
                    Thread.sleep(2);
                }
            } else {
                svc.put();
                served++;
            }
            double done = (i + 1) * (CHUNK / (double) (1 << 20)) - warm;
            if (rate > 0 && done <= 0) {
                pacedFrom = System.nanoTime(); // still warming: no pause
            } else if (rate > 0) {
                long due = pacedFrom + (long) (done / rate * 1e9);
                long wait = due - System.nanoTime();
                if (wait > 0) {
                    Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
                }
            } else {
                Thread.sleep(1);
            }
        }
        String gc = "";
        if (guard != null) {
            gc = " shed_runs=" + guard.snapshot().json().replaceAll(".*\"shed\":\\{\"runs\":(\\d+).*", "$1") + " gcs="
                    + guard.gcCount() + " last_gc=" + guard.lastGc().map(Object::toString).orElse("none");
            System.out.print(guard.jvm().report());
            guard.close();
        }
        System.out.println("SURVIVED served=" + served + " refused=" + refused + " evicted=" + svc.evicted.get()
                + " mxbean_fired=" + fired.get() + gc);
    }
}
