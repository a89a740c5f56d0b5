import io.memguard.Event;
import io.memguard.Level;
import io.memguard.MemGuard;
import io.memguard.Reservation;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.StringJoiner;

/**
 * The Java probe of {@code cargo xtask compare}'s per-language cost table: the same scenario as
 * {@code benches/src/bin/cost-probe.rs} (read it for the details), through the Java package.
 * {@code java -cp memguard.jar:DIR CostProbe SHM_FILE ROUNDS}. Prints one JSON line of raw
 * figures; xtask summarises them. The event listener runs on the guard's listener thread: the
 * core's dispatcher hands each event (as JSON) to the listener feed, the Java listener thread
 * decodes it into an {@code Event}. Times are {@code System.nanoTime()}, {@code CLOCK_MONOTONIC}
 * on Linux HotSpot (the clock of {@code Event.monotonicNanos()}); the probe checks it against a
 * snapshot's {@code monotonicNanos()} ({@code clock_skew_ns}: a sample's age, never negative).
 */
public final class CostProbe {
    private static final int PAIRS_PER_ROUND = 5000; // 20 MiB of churn a round: within the soft limit's room
    private static final int RESERVE_ROUNDS = 8; // the first 3 warm up, the last 5 are kept

    private CostProbe() {}

    public static void main(String[] args) throws Exception {
        Path path = Path.of(args[0]);
        int rounds = Integer.parseInt(args[1]);
        long rssBefore = rssBytes();
        int threadsBefore = threads();
        List<long[]> events = new ArrayList<>();
        List<Long> triggers = new ArrayList<>(rounds * 121);
        double[] reserveNs = new double[RESERVE_ROUNDS - 3];
        long rssAfter;
        int threadsAfter;
        long clockSkew;
        try (MemGuard guard = MemGuard.builder().fromEnv(false).heapCheck(false).limitOverride(128L << 20)
                .psi(false).start()) {
            guard.addEventListener((Event e) -> {
                long now = System.nanoTime();
                if (e.kind().equals("level_changed")) {
                    synchronized (events) {
                        events.add(new long[] {e.monotonicNanos(), now});
                    }
                }
            });
            Thread.sleep(200);
            rssAfter = rssBytes();
            threadsAfter = threads();
            clockSkew = System.nanoTime() - guard.snapshot().monotonicNanos();

            for (int r = 0; r < RESERVE_ROUNDS; r++) {
                Thread.sleep(100); // the previous round's bytes settle
                long start = System.nanoTime();
                for (int i = 0; i < PAIRS_PER_ROUND; i++) {
                    Reservation res = guard.tryReserve(4096);
                    if (res == null) {
                        throw new IllegalStateException("tryReserve refused");
                    }
                    res.close();
                }
                if (r >= 3) {
                    reserveNs[r - 3] = (double) (System.nanoTime() - start) / PAIRS_PER_ROUND;
                }
            }

            ByteBuffer chunk = ByteBuffer.allocateDirect(1 << 20);
            try (RandomAccessFile raf = new RandomAccessFile(path.toFile(), "rw"); FileChannel ch = raf.getChannel()) {
                for (int r = 0; r < rounds; r++) {
                    ch.position(0);
                    for (int w = 0; w < 120; w++) {
                        triggers.add(System.nanoTime());
                        chunk.clear();
                        while (chunk.hasRemaining()) {
                            ch.write(chunk);
                        }
                    }
                    waitLevel(guard, false);
                    triggers.add(System.nanoTime());
                    ch.truncate(0);
                    waitLevel(guard, true);
                }
            }
            Thread.sleep(200);
        } finally {
            Files.deleteIfExists(path);
        }
        StringJoiner ev = new StringJoiner(",", "[", "]");
        synchronized (events) {
            for (long[] e : events) {
                ev.add("[" + e[0] + "," + e[1] + "]");
            }
        }
        StringJoiner tr = new StringJoiner(",", "[", "]");
        triggers.forEach(t -> tr.add(Long.toString(t)));
        StringJoiner rs = new StringJoiner(",", "[", "]");
        for (double ns : reserveNs) {
            rs.add(Double.toString(ns));
        }
        System.out.println("{\"events\":" + ev + ",\"triggers\":" + tr + ",\"reserve_ns\":" + rs + ",\"rss_before\":"
                + rssBefore + ",\"rss_after\":" + rssAfter + ",\"threads_before\":" + threadsBefore
                + ",\"threads_after\":" + threadsAfter + ",\"clock_skew_ns\":" + clockSkew + "}");
    }

    static long rssBytes() throws IOException {
        // VmRSS: statm's resident pages in kB (Java cannot ask for the page size).
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        }
        return 0;
    }

    static int threads() throws IOException {
        try (var s = Files.list(Path.of("/proc/self/task"))) {
            return (int) s.count();
        }
    }

    static void waitLevel(MemGuard g, boolean normal) throws InterruptedException {
        long end = System.nanoTime() + 5_000_000_000L;
        while ((g.level() == Level.NORMAL) != normal && System.nanoTime() < end) {
            Thread.sleep(1);
        }
    }
}
