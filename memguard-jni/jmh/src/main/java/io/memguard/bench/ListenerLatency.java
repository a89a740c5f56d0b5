package io.memguard.bench;

import io.memguard.Event;
import io.memguard.MemGuard;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * Event-to-listener latency: from the moment memguard's watcher woke for an event
 * ({@code Event.monotonicNanos()}, {@code CLOCK_MONOTONIC}) to the first line of a Java
 * {@code EventListener} ({@code System.nanoTime()}, the same clock on Linux) — through the
 * core's dispatcher, the listener feed, the Java listener thread and the JSON decoding.
 *
 * <p>Real level changes: the JVM moves itself into a test cgroup (v1: under its own memory
 * cgroup; v2: under {@code $MEMGUARD_VM_CGROUP}) with a 1 GiB limit and a guard whose override
 * is 128 MiB; it then writes 120 MiB to a tmpfs file (shared memory: unreclaimable) and
 * truncates it, {@code W + N} times: each write raises the level, each truncation lowers it. The
 * first {@code W} rounds (default 50) warm the JVM up (the listener path interpreted, then JIT
 * compiled while compiler threads compete for the CPU): reported apart, as "cold". Needs root.
 * {@code java -cp benchmarks.jar io.memguard.bench.ListenerLatency [N [W]]}.
 */
public final class ListenerLatency {
    private ListenerLatency() {}

    public static void main(String[] args) throws Exception {
        int n = args.length > 0 ? Integer.parseInt(args[0]) : 200;
        int warmup = args.length > 1 ? Integer.parseInt(args[1]) : 50;
        Path cg = enterTestCgroup();
        try {
            run(warmup, n);
        } finally {
            leave(cg);
        }
    }

    static void run(int warmup, int measured) throws Exception {
        int rounds = warmup + measured;
        BlockingQueue<Long> latencies = new ArrayBlockingQueue<>(4 * rounds + 16);
        List<Long> cold = new ArrayList<>();
        Path file = Files.createTempFile(Path.of("/dev/shm"), "memguard-latency", ".bin");
        try (MemGuard guard = MemGuard.builder().fromEnv(false).heapCheck(false).limitOverride(128L << 20)
                .psi(false).start();
                RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw");
                FileChannel ch = raf.getChannel()) {
            guard.addEventListener((Event e) -> {
                long now = System.nanoTime();
                if (e.kind().equals("level_changed")) {
                    latencies.offer(now - e.monotonicNanos());
                }
            });
            ByteBuffer chunk = ByteBuffer.allocateDirect(4 << 20);
            for (int i = 0; i < rounds; i++) {
                if (i == warmup) {
                    latencies.drainTo(cold);
                }
                ch.position(0);
                for (int w = 0; w < 30; w++) { // 120 MiB: above the critical threshold
                    chunk.clear();
                    ch.write(chunk);
                }
                waitLevel(guard, io.memguard.Level.NORMAL, false);
                ch.truncate(0);
                waitLevel(guard, io.memguard.Level.NORMAL, true);
            }
            Thread.sleep(200);
        } finally {
            Files.deleteIfExists(file);
        }
        report("cold (first " + warmup + " rounds)", cold);
        report("warm", new ArrayList<>(latencies));
    }

    static void report(String what, List<Long> l) {
        Collections.sort(l);
        if (l.isEmpty()) {
            System.out.println(what + ": no level change observed");
            return;
        }
        System.out.printf("java listener, %s: event-to-listener latency over %d level changes: p50 %.1f us, "
                + "p90 %.1f us, p99 %.1f us, max %.1f us%n", what, l.size(), pct(l, 0.50), pct(l, 0.90), pct(l, 0.99),
                l.get(l.size() - 1) / 1e3);
    }

    static double pct(List<Long> sorted, double p) {
        int i = (int) Math.min(sorted.size() - 1, Math.round(p * (sorted.size() - 1)));
        return sorted.get(i) / 1e3;
    }

    static void waitLevel(MemGuard g, io.memguard.Level level, boolean equal) throws InterruptedException {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while ((g.level() == level) != equal && System.nanoTime() < end) {
            Thread.sleep(1);
        }
    }

    private static Path home;

    static Path enterTestCgroup() throws IOException {
        String pid = Long.toString(ProcessHandle.current().pid());
        String vm = System.getenv("MEMGUARD_VM_CGROUP");
        Path base;
        if (vm != null && !vm.isEmpty()) {
            base = Path.of(vm);
            home = Path.of("/sys/fs/cgroup", own("0::").replaceFirst("^/", ""));
        } else {
            base = Path.of("/sys/fs/cgroup/memory", own("memory").replaceFirst("^/", ""));
            home = base;
        }
        Path cg = base.resolve("memguard-bench-latency-" + pid);
        Files.createDirectories(cg);
        boolean v2 = vm != null && !vm.isEmpty();
        Files.writeString(cg.resolve(v2 ? "memory.max" : "memory.limit_in_bytes"), Long.toString(1L << 30));
        Files.writeString(cg.resolve("cgroup.procs"), pid);
        return cg;
    }

    static String own(String controller) throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/cgroup"))) {
            String[] f = line.split(":", 3);
            if (controller.equals("0::") ? f[0].equals("0") && f[1].isEmpty() : List.of(f[1].split(",")).contains(controller)) {
                return f[2];
            }
        }
        throw new IOException("no " + controller + " cgroup");
    }

    static void leave(Path cg) throws IOException, InterruptedException {
        Files.writeString(home.resolve("cgroup.procs"), Long.toString(ProcessHandle.current().pid()));
        for (int i = 0; i < 50; i++) {
            try {
                Files.delete(cg);
                return;
            } catch (IOException e) {
                Thread.sleep(20);
            }
        }
    }
}
