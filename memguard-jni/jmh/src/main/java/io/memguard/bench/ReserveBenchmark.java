package io.memguard.bench;

import io.memguard.MemGuard;
import io.memguard.Reservation;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

/**
 * {@code guard.reserve(n)} + {@code close()} from Java: a JNI call into the core's budget (a
 * per-thread stock for 4 KiB, the exact shared path for 128 KiB), a boxed owned reservation, and
 * the release. Beside it: a bare JNI round trip ({@code level()}) and {@code tryReserve}.
 */
@State(Scope.Benchmark)
@BenchmarkMode({Mode.AverageTime, Mode.SampleTime})
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
public class ReserveBenchmark {
    MemGuard guard;

    @Setup(Level.Trial)
    public void start() {
        guard = MemGuard.builder().heapCheck(false).start(); // MEMGUARD_*: run.sh sets a node-mode fixture
    }

    @TearDown(Level.Trial)
    public void stop() {
        guard.close();
    }

    @Benchmark
    public void reserveClose4k() {
        try (Reservation r = guard.reserve(4096)) {
            // the work the reservation admits
        }
    }

    @Benchmark
    public void reserveClose128k() {
        try (Reservation r = guard.reserve(128 << 10)) {
            // the exact path: beyond the per-thread stock
        }
    }

    @Benchmark
    public Object tryReserveClose4k() {
        Reservation r = guard.tryReserve(4096);
        if (r != null) {
            r.close();
        }
        return r;
    }

    @Benchmark
    @Threads(2)
    public void reserveClose4kTwoThreads() {
        try (Reservation r = guard.reserve(4096)) {
            // two threads at once
        }
    }

    @Benchmark
    public Object level() {
        return guard.level();
    }
}
