package io.memguard;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.ref.WeakReference;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.logging.Handler;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

class CallbacksTest {
    static final long MIB = 1L << 20;

    static boolean await(CountDownLatch l, long seconds) throws InterruptedException {
        return l.await(seconds, TimeUnit.SECONDS);
    }

    static void eventually(String what, java.util.function.BooleanSupplier ok) throws InterruptedException {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!ok.getAsBoolean()) {
            if (System.nanoTime() > end) {
                throw new AssertionError("timed out waiting for: " + what);
            }
            Thread.sleep(10);
        }
    }

    /** Native threads of this process named like memguard's (the kernel keeps 15 characters). */
    static long nativeThreads(String prefix) throws Exception {
        try (Stream<Path> tasks = Files.list(Path.of("/proc/self/task"))) {
            return tasks.filter(t -> {
                try {
                    return Files.readString(t.resolve("comm")).trim().startsWith(prefix);
                } catch (Exception e) {
                    return false;
                }
            }).count();
        }
    }

    @Test
    void listenersShedderGcAndLoggingUnderRealPressure() throws Exception {
        List<String> logs = new CopyOnWriteArrayList<>();
        Handler handler = new Handler() {
            @Override
            public void publish(LogRecord r) {
                logs.add(r.getLoggerName() + ": " + java.text.MessageFormat.format(r.getMessage(),
                        r.getParameters() == null ? new Object[0] : r.getParameters()));
            }

            @Override
            public void flush() {}

            @Override
            public void close() {}
        };
        Logger root = Logger.getLogger("memguard");
        root.addHandler(handler);
        try (Pressure p = new Pressure(); MemGuard g = Pressure.guardWithHeadroom(48 * MIB)
                .gcAfterShed(true, Duration.ZERO).start()) {
            List<LevelChange> changes = new CopyOnWriteArrayList<>();
            List<String> kinds = new CopyOnWriteArrayList<>();
            CountDownLatch raised = new CountDownLatch(1);
            CountDownLatch shed = new CountDownLatch(1);
            AtomicReference<String> shedderThread = new AtomicReference<>();
            AtomicBoolean shedderDaemon = new AtomicBoolean();
            AtomicReference<String> listenerThread = new AtomicReference<>();
            g.addLevelListener(c -> {
                changes.add(c);
                listenerThread.set(Thread.currentThread().getName());
                if (c.rising()) {
                    raised.countDown();
                }
            });
            g.addLevelListener(c -> {
                throw new IllegalStateException("a listener's bug");
            });
            g.addEventListener(e -> kinds.add(e.kind()));
            g.registerShedder("cache", 0, target -> {
                shedderThread.set(Thread.currentThread().getName());
                shedderDaemon.set(Thread.currentThread().isDaemon());
                p.stopped = true;
                shed.countDown();
                return p.drop();
            });
            String atStart = g.level() + " " + g.snapshot().json();
            p.grow(64 * MIB);
            assertTrue(await(raised, 10), "a rising level change reached the listener: " + changes + "\nat start: "
                    + atStart + "\nnow: " + g.snapshot().json() + "\n" + g.limits().json());
            assertTrue(await(shed, 10), "the shedder ran");
            LevelChange first = changes.get(0);
            assertNotEquals(Level.NORMAL, first.to());
            assertNotNull(first.snapshot());
            assertTrue(listenerThread.get().startsWith("memguard-listeners-"), listenerThread.get());
            assertTrue(shedderDaemon.get(), "the shedding thread is attached as a daemon: " + shedderThread.get());
            eventually("no native thread stays attached", () -> NativeLib.attachedThreads() == 0);
            eventually("the throwing listener was counted", () -> g.listenerErrors() >= 1);
            eventually("level_changed events reached the event listener", () -> kinds.contains("level_changed"));
            eventually("a shedding report", () -> g.lastShed().isPresent());
            ShedReport r = g.lastShed().orElseThrow();
            assertEquals("cache", r.steps().get(0).name());
            eventually("a collection after shedding", () -> g.lastGc().isPresent());
            GcReport gc = g.lastGc().orElseThrow();
            assertTrue(gc.shedBytes() > 0, gc.toString());
            eventually("the dropped direct buffers were freed after the collection: " + gc,
                    () -> GcAfterShed.direct() < 4 * MIB);
            eventually("the core's level-change record reached System.Logger",
                    () -> logs.stream().anyMatch(l -> l.startsWith("memguard.watch") && l.contains("level changed")));
            assertTrue(g.level() != null); // the guard still works after a listener threw
        } finally {
            root.removeHandler(handler);
        }
    }

    @Test
    void closeFromInsideAListenerDoesNotDeadlock() throws Exception {
        try (Pressure p = new Pressure()) {
            MemGuard g = Pressure.guardWithHeadroom(48 * MIB).start();
            CountDownLatch closed = new CountDownLatch(1);
            g.addLevelListener(c -> {
                g.close();
                closed.countDown();
            });
            Thread listenerThread = null;
            p.grow(64 * MIB);
            assertTrue(await(closed, 10), "close() from the listener returned: " + (g.isClosed() ? "closed" : g.snapshot().json()));
            assertTrue(g.isClosed());
            assertThrows(IllegalStateException.class, g::level);
            eventually("the listener thread ended", () -> {
                try {
                    return nativeThreads("memguard-listen") == 0 && !anyThread("memguard-listeners-");
                } catch (Exception e) {
                    return false;
                }
            });
            assertNull(listenerThread);
        }
    }

    static boolean anyThread(String prefix) {
        return Thread.getAllStackTraces().keySet().stream().anyMatch(t -> t.getName().startsWith(prefix) && t.isAlive());
    }

    @Test
    void executorListenersAndRemoval() throws Exception {
        ExecutorService exec = Executors.newSingleThreadExecutor(r -> new Thread(r, "app-executor"));
        try (Pressure p = new Pressure(); MemGuard g = Pressure.guardWithHeadroom(48 * MIB).start()) {
            AtomicReference<String> on = new AtomicReference<>();
            CountDownLatch called = new CountDownLatch(1);
            AtomicInteger removedCalls = new AtomicInteger();
            g.addLevelListener(c -> {
                on.set(Thread.currentThread().getName());
                called.countDown();
            }, exec);
            Registration removed = g.addEventListener(e -> removedCalls.incrementAndGet());
            removed.close();
            removed.close();
            p.grow(64 * MIB);
            assertTrue(await(called, 10), g.snapshot().json());
            assertEquals("app-executor", on.get());
            assertEquals(0, removedCalls.get(), "a removed listener is not called");
        } finally {
            exec.shutdownNow();
        }
    }

    @Test
    void aGuardNobodyClosedIsCleaned() throws Exception {
        long before = nativeThreads("memguard-reacto");
        startAndForget(before);
        eventually("the Cleaner closed the forgotten guard", () -> {
            System.gc();
            try {
                return nativeThreads("memguard-reacto") == before && !anyThread("memguard-listeners-");
            } catch (Exception e) {
                return false;
            }
        });
    }

    private static void startAndForget(long before) throws Exception {
        MemGuard g = MemGuard.builder().fromEnv(false).heapCheck(false).start();
        g.addLevelListener(c -> {});
        g.registerShedder("forgotten", 0, t -> 0);
        assertEquals(before + 1, nativeThreads("memguard-reacto"));
        java.lang.ref.Reference.reachabilityFence(g);
    }

    @Test
    void unregisteringAShedderDropsItsGlobalReference() throws Exception {
        try (MemGuard g = ApiTest.plain()) {
            Shedder s = new Shedder() { // a new object (a non-capturing lambda would be a cached singleton)
                @Override
                public long shed(long target) {
                    return 0;
                }
            };
            WeakReference<Shedder> weak = new WeakReference<>(s);
            Registration r = g.registerShedder("weak", 0, s);
            s = null;
            r.close();
            eventually("the shedder was collected (no global reference left)", () -> {
                System.gc();
                return weak.get() == null;
            });
        }
    }

    /** Many calls of every kind under -Xcheck:jni: a local-reference leak would warn, a descriptor or thread leak shows. */
    @Test
    void noLeaksInALongLoop() throws Exception {
        loop(2); // warm up: classes, JIT, the log bridge
        long fds = fdCount();
        String before = fds();
        long threads = coreThreads();
        loop(50);
        eventually("listener threads ended", () -> !anyThread("memguard-listeners-"));
        assertTrue(coreThreads() <= threads, "memguard's native threads are gone: " + coreThreads() + " > " + threads);
        assertTrue(fdCount() <= fds + 2, "file descriptors before:\n" + before + "after:\n" + fds());
        assertFalse(NativeLib.attachedThreads() > 0);
    }

    private static void loop(int rounds) {
        for (int round = 0; round < rounds; round++) {
            try (MemGuard g = ApiTest.plain()) {
                Registration l = g.addEventListener(e -> {});
                for (int i = 0; i < 2_000; i++) {
                    g.reserveForced(4096).close();
                    Reservation t = g.tryReserve(1 << 20);
                    if (t != null) {
                        t.close();
                    }
                }
                for (int i = 0; i < 20; i++) {
                    g.snapshot();
                    g.limits();
                    g.prometheus();
                    g.nextEvent(Duration.ZERO);
                    g.registerShedder("s" + i, i, t -> 0).close();
                }
                l.close();
            }
        }
    }

    /** The core's own threads: reactor, dispatcher, shedding. */
    static long coreThreads() throws Exception {
        return nativeThreads("memguard-reacto") + nativeThreads("memguard-dispat") + nativeThreads("memguard-shed");
    }

    static long fdCount() throws Exception {
        try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
            return s.count();
        }
    }

    static String fds() throws Exception {
        StringBuilder b = new StringBuilder();
        try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
            s.forEach(p -> {
                try {
                    b.append(p.getFileName()).append("->").append(Files.readSymbolicLink(p)).append('\n');
                } catch (Exception e) {
                    b.append(p.getFileName()).append("->?\n");
                }
            });
        }
        return b.toString();
    }
}
