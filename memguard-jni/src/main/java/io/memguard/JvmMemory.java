package io.memguard;

import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.lang.management.MemoryUsage;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Where this JVM's memory is ({@link MemGuard#jvm()}): the heap, the non-heap pools (metaspace,
 * code cache), direct and mapped buffers and the thread count, against the cgroup's working set
 * and the effective limit — the rest of the working set is native memory outside every JVM pool
 * (thread stacks, malloc arenas, JIT and GC structures, native libraries), which no
 * {@code MemoryPoolMXBean} reports. Byte counts are {@code -1} when unknown.
 *
 * @param heapUsed heap in use
 * @param heapCommitted heap committed
 * @param heapMax the maximum heap ({@code -Xmx} or what the JVM sized it to)
 * @param nonHeapPools committed bytes of each non-heap pool (Metaspace, CodeHeap ..., Compressed Class Space)
 * @param nonHeapCommitted their sum
 * @param directBytes direct {@code ByteBuffer} memory
 * @param directCount direct buffers
 * @param mappedBytes mapped buffer memory
 * @param threadCount live Java threads (each with its own stack, outside the heap)
 * @param processRssBytes resident set size of this process
 * @param workingSetBytes working set of the cgroup that sets the limit (other processes of it included)
 * @param limitBytes the effective limit
 * @param limitCgroup the cgroup that sets it ({@code null}: none, or an override)
 * @param outsidePoolsBytes working set minus heap committed, non-heap committed, direct and mapped buffers
 * @param jvmTotalMemoryBytes the memory the JVM itself believes it has ({@code OperatingSystemMXBean.getTotalMemorySize()}: container-aware, when the JVM found the limit)
 */
public record JvmMemory(long heapUsed, long heapCommitted, long heapMax, Map<String, Long> nonHeapPools,
        long nonHeapCommitted, long directBytes, long directCount, long mappedBytes, int threadCount,
        long processRssBytes, long workingSetBytes, long limitBytes, String limitCgroup, long outsidePoolsBytes,
        long jvmTotalMemoryBytes) {

    static JvmMemory measure(Snapshot snap, Limits limits) {
        MemoryUsage heap = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage();
        Map<String, Long> pools = new LinkedHashMap<>();
        long nonHeap = 0;
        for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) {
            if (p.getType() == MemoryType.NON_HEAP && p.isValid()) {
                long c = p.getUsage().getCommitted();
                pools.put(p.getName(), c);
                nonHeap += c;
            }
        }
        long direct = -1;
        long directCount = -1;
        long mapped = -1;
        for (BufferPoolMXBean b : ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class)) {
            if (b.getName().equals("direct")) {
                direct = b.getMemoryUsed();
                directCount = b.getCount();
            } else if (b.getName().equals("mapped")) {
                mapped = b.getMemoryUsed();
            }
        }
        int threads = ManagementFactory.getThreadMXBean().getThreadCount();
        long ws = snap == null ? -1 : snap.workingSetBytes();
        long limit = limits == null ? -1 : limits.limitBytes();
        String cgroup = limits == null ? null : limits.limitCgroup();
        long accounted = heap.getCommitted() + nonHeap + Math.max(direct, 0) + Math.max(mapped, 0);
        long outside = ws < 0 ? -1 : Math.max(0, ws - accounted);
        return new JvmMemory(heap.getUsed(), heap.getCommitted(), heap.getMax(), Collections.unmodifiableMap(pools),
                nonHeap, direct, directCount, mapped, threads, GcAfterShed.rss(), ws, limit, cgroup, outside,
                jvmTotalMemory());
    }

    static long jvmTotalMemory() {
        try {
            java.lang.management.OperatingSystemMXBean os = ManagementFactory.getOperatingSystemMXBean();
            if (os instanceof com.sun.management.OperatingSystemMXBean) {
                return ((com.sun.management.OperatingSystemMXBean) os).getTotalMemorySize();
            }
        } catch (LinkageError | RuntimeException e) { // NOPMD: jdk.management absent
            // fall through
        }
        return -1;
    }

    /** What the JVM uses outside the heap that it can account for: non-heap pools, direct and mapped buffers. */
    public long outsideHeapBytes() {
        return nonHeapCommitted + Math.max(directBytes, 0) + Math.max(mappedBytes, 0);
    }

    /** A human-readable breakdown, one item per line. */
    public String report() {
        StringBuilder b = new StringBuilder();
        b.append(String.format("JVM memory (pid %d)%n", ProcessHandle.current().pid()));
        row(b, "heap", bytes(heapUsed) + " used, " + bytes(heapCommitted) + " committed, max " + bytes(heapMax));
        StringBuilder p = new StringBuilder(bytes(nonHeapCommitted) + " committed");
        nonHeapPools.forEach((k, v) -> p.append(", ").append(k).append(' ').append(bytes(v)));
        row(b, "non-heap", p.toString());
        row(b, "direct buffers", bytes(directBytes) + " in " + directCount + " buffer(s)");
        row(b, "mapped buffers", bytes(mappedBytes));
        row(b, "threads", threadCount + " (stacks outside the heap)");
        row(b, "process RSS", bytes(processRssBytes));
        row(b, "cgroup working set", bytes(workingSetBytes) + (limitBytes > 0 ? " of the limit " + bytes(limitBytes)
                + (limitCgroup != null ? " set by " + limitCgroup : "") : " (no limit)"));
        row(b, "outside JVM pools", bytes(outsidePoolsBytes)
                + " (working set minus heap committed, non-heap, direct and mapped buffers: native memory)");
        row(b, "JVM sees", bytes(jvmTotalMemoryBytes) + " of total memory");
        return b.toString();
    }

    private static void row(StringBuilder b, String k, String v) {
        b.append(String.format("  %-20s%s%n", k, v));
    }

    /** Bytes with a binary unit ({@code 512.0 MiB}); {@code unknown} for a negative count. */
    static String bytes(long n) {
        if (n < 0) {
            return "unknown";
        }
        String[] units = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
        double v = n;
        int u = 0;
        while (v >= 1024 && u < units.length - 1) {
            v /= 1024;
            u++;
        }
        return u == 0 ? n + " B" : String.format(Locale.ROOT, "%.1f %s", v, units[u]);
    }
}
