package io.memguard;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * Real memory pressure on the test JVM alone: the JVM moves itself into a fresh test cgroup (the
 * one it shares with the build holds other processes, whose memory swings by hundreds of MiB)
 * with a limit 1 GiB above its usage, a guard's limit override sits a little above what that
 * cgroup holds, and direct buffers (touched, so charged) push past its thresholds. Closing
 * moves the JVM back and removes the cgroup.
 */
final class Pressure implements AutoCloseable {
    private final TestCgroup base = TestCgroup.baseOrSkip();
    private final TestCgroup cgroup;
    private final java.nio.file.Path home;

    Pressure() throws java.io.IOException {
        home = base.own();
        cgroup = base.child("pressure");
        cgroup.add(ProcessHandle.current().pid());
        // A real limit far above what the tests allocate: it makes this cgroup the one memguard
        // watches (an override alone, with no limit in sight, watches the top of the tree); the
        // guards' lower override is what the levels then use.
        cgroup.setLimit(cgroup.usage() + (1L << 30));
    }

    static final long MIB = 1L << 20;
    final List<ByteBuffer> held = new ArrayList<>();
    /** Set by a shedder: an application stops growing its cache under pressure. */
    volatile boolean stopped;

    /** The current pressure measure of this JVM's cgroup, read by a throwaway guard. */
    static long measure() {
        try (MemGuard probe = MemGuard.builder().fromEnv(false).heapCheck(false).start()) {
            Snapshot s = probe.snapshot();
            while (s.samples() == 0) { // the first sample may still be on its way
                Thread.onSpinWait();
                s = probe.snapshot();
            }
            return s.unreclaimableBytes();
        }
    }

    /** A builder whose limit is {@code headroom} above what is in use now. */
    static MemGuard.Builder guardWithHeadroom(long headroom) {
        return MemGuard.builder().fromEnv(false).heapCheck(false).limitOverride(measure() + headroom)
                .shedInterval(java.time.Duration.ofMillis(10)).sampleInterval(java.time.Duration.ofMillis(1),
                        java.time.Duration.ofMillis(20));
    }

    /** Allocate and touch {@code bytes} of direct buffers in 4 MiB pieces, until {@link #stopped}. */
    void grow(long bytes) throws InterruptedException {
        ramp(bytes, 2);
    }

    /** {@link #grow}, pausing {@code pauseMillis} after each 4 MiB piece: a steady ramp. */
    void ramp(long bytes, long pauseMillis) throws InterruptedException {
        for (long done = 0; done < bytes; done += 4 * MIB) {
            if (!addPiece()) {
                return;
            }
            Thread.sleep(pauseMillis);
        }
    }

    /**
     * One touched 4 MiB piece, allocated and kept under the lock {@link #drop()} takes, and only
     * while not {@link #stopped}: a shedder that sets {@code stopped} then drops never leaves a
     * piece behind that was allocated meanwhile (it would hold 4 MiB of direct memory past the
     * collection after shedding).
     */
    private boolean addPiece() {
        synchronized (held) {
            if (stopped) {
                return false;
            }
            ByteBuffer b = ByteBuffer.allocateDirect((int) (4 * MIB));
            for (int i = 0; i < b.capacity(); i += 4096) {
                b.put(i, (byte) 1);
            }
            held.add(b);
            return true;
        }
    }

    /** Drop every buffer (freed at the next collection); returns the bytes dropped. */
    long drop() {
        synchronized (held) {
            long n = 0;
            for (ByteBuffer b : held) {
                n += b.capacity();
            }
            held.clear();
            return n;
        }
    }

    @Override
    public void close() throws java.io.IOException {
        drop();
        System.gc();
        TestCgroup.write(home, "cgroup.procs", Long.toString(ProcessHandle.current().pid()));
        cgroup.close();
    }
}
