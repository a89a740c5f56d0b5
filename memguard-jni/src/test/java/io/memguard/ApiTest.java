package io.memguard;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

class ApiTest {
    static MemGuard plain() {
        return MemGuard.builder().fromEnv(false).heapCheck(false).start();
    }

    @Test
    void startsAndReports() {
        try (MemGuard g = plain()) {
            assertNotNull(g.level());
            Snapshot s = g.snapshot();
            assertNotNull(s.level());
            assertTrue(s.samples() >= 0);
            assertNotNull(s.budget(), "snapshot() carries the budget");
            assertTrue(s.json().startsWith("{"));
            Limits l = g.limits();
            assertTrue(List.of("v1", "v2", "none").contains(l.cgroup()), l.cgroup());
            assertTrue(l.hostTotalBytes() > 0);
            String prom = g.prometheus();
            assertTrue(prom.contains("memguard_level "), prom);
            assertTrue(prom.contains("memguard_build_info{version=\"" + MemGuard.version() + "\"}"), prom);
            Map<String, Object> cfg = Json.object(g.configJson());
            assertEquals(0.8, (Double) cfg.get("warn"), 1e-9);
            assertTrue(g.sourcesJson().contains("sampler"));
            assertTrue(g.renderHeader(false).startsWith("memguard watch: level"), g.renderHeader(false));
            assertTrue(g.renderSnapshot(true).contains("\"kind\":\"snapshot\""));
            assertTrue(g.budget().softLimitBytes() > 0);
            assertFalse(g.lastShed().isPresent());
            assertTrue(List.of("released", "trimmed", "rate_limited", "disabled", "unsupported").contains(g.mallocTrim()));
        }
    }

    @Test
    void everyBuilderSettingIsAccepted() {
        try (MemGuard g = MemGuard.builder().fromEnv(false).heapCheck(false).warn(0.7).critical(0.95).hysteresis(0.02)
                .softLimit(0.6).limitOverride(64L << 30).eventHold(Duration.ofMillis(1500))
                .sampleInterval(Duration.ofMillis(2), Duration.ofMinutes(5)).horizon(Duration.ofSeconds(1), Duration.ZERO)
                .maxAllocRate(1L << 30)
                .evictionThreshold(200L << 20).psi(false).cgroupEvents(false).debounce(Duration.ofMillis(250))
                .shedInterval(Duration.ofSeconds(2)).mallocTrim(false, Duration.ofHours(1))
                .redetectInterval(Duration.ofSeconds(30)).queueCapacity(64).gcAfterShed(true, Duration.ofSeconds(5))
                .listenerQueueCapacity(16).start()) {
            Map<String, Object> c = Json.object(g.configJson());
            assertEquals(0.7, (Double) c.get("warn"), 1e-9);
            assertEquals(0.95, (Double) c.get("critical"), 1e-9);
            assertEquals(64L << 30, c.get("limit_override"));
            assertEquals("builder", c.get("limit_override_source"));
            assertEquals(300_000_000_000L, c.get("sample_interval_max_ns"));
            assertEquals(1_000_000_000L, c.get("horizon_warn_ns"));
            assertEquals(0L, c.get("horizon_critical_ns"));
            assertEquals(Boolean.FALSE, c.get("psi"));
            assertEquals(Boolean.FALSE, c.get("malloc_trim"));
            assertEquals(64L, c.get("queue_capacity"));
        }
    }

    @Test
    void horizonRoundTripsAndIsChecked() throws Exception {
        try (MemGuard g = plain()) {
            assertEquals(new Horizon(Duration.ofMillis(250), Duration.ofMillis(100)), g.horizon(), "the defaults");
            assertTrue(g.horizon().enabled());
        }
        try (MemGuard g = MemGuard.builder().fromEnv(false).heapCheck(false)
                .horizon(Duration.ofMillis(1500), Duration.ofMillis(400)).start()) {
            assertEquals(new Horizon(Duration.ofMillis(1500), Duration.ofMillis(400)), g.horizon());
            Map<String, Object> c = Json.object(g.configJson());
            assertEquals(1_500_000_000L, c.get("horizon_warn_ns"));
            assertEquals(400_000_000L, c.get("horizon_critical_ns"));
        }
        try (MemGuard g = MemGuard.builder().fromEnv(false).heapCheck(false).horizon(Duration.ZERO, Duration.ZERO)
                .start()) {
            assertFalse(g.horizon().enabled(), "zero disables both");
        }
        try (MemGuard g = MemGuard.builder().fromEnv(false).heapCheck(false)
                .horizon(Duration.ZERO, Duration.ofSeconds(2)).start()) {
            assertEquals(Duration.ofSeconds(2), g.horizon().critical(), "critical alone, the warning horizon disabled");
        }
        MemGuardConfigException e = assertThrows(MemGuardConfigException.class, () -> MemGuard.builder().fromEnv(false)
                .horizon(Duration.ofMillis(100), Duration.ofMillis(200)).start());
        assertEquals("horizon_critical", e.setting());
        e = assertThrows(MemGuardConfigException.class, () -> MemGuard.builder().fromEnv(false)
                .horizon(Duration.ofSeconds(11), Duration.ZERO).start());
        assertEquals("horizon_warn", e.setting());
        e = assertThrows(MemGuardConfigException.class, () -> MemGuard.builder().fromEnv(false)
                .horizon(Duration.ofMillis(-1), Duration.ZERO).start());
        assertEquals("horizon_warn", e.setting());
        Jvm.Result bad = Jvm.run(Jvm.command(List.of(), Main.class, "status"),
                Map.of("MEMGUARD_HORIZON_WARN", "11s"), 60);
        assertEquals(2, bad.exit(), bad.err());
        assertTrue(bad.err().contains("MEMGUARD_HORIZON_WARN"), bad.err());
    }

    @Test
    void aSnapshotWithoutGrowthHasNoPrediction() throws Exception {
        // A quiet JVM against a limit 1 GiB above what it uses: growth over the last half second
        // is nowhere near a tenth of the limit, so the core predicts nothing.
        try (MemGuard g = MemGuard.builder().fromEnv(false).heapCheck(false)
                .limitOverride(Pressure.measure() + (1L << 30)).sampleInterval(Duration.ofMillis(5),
                        Duration.ofMillis(20)).start()) {
            Thread.sleep(200);
            Snapshot s = g.snapshot();
            assertTrue(s.samples() > 3, s.json());
            assertTrue(s.timeToLimit().isEmpty(), s.json());
            assertTrue(s.json().contains("\"time_to_limit\":null"), s.json());
            s.growthRate().ifPresent(r -> assertTrue(Double.isFinite(r), s.json()));
            assertEquals(Level.NORMAL, s.level());
        }
    }

    @Test
    void configErrorsNameTheSetting() {
        MemGuardConfigException e = assertThrows(MemGuardConfigException.class,
                () -> MemGuard.builder().fromEnv(false).warn(1.5).start());
        assertEquals("warn", e.setting());
        assertNull(e.envVar());
        assertEquals("1.5", e.value());
        assertTrue(e instanceof IllegalArgumentException);
        e = assertThrows(MemGuardConfigException.class,
                () -> MemGuard.builder().fromEnv(false).redetectInterval(Duration.ZERO).start());
        assertEquals("redetect_interval", e.setting());
        e = assertThrows(MemGuardConfigException.class,
                () -> MemGuard.builder().fromEnv(false).shedInterval(Duration.ofMillis(-5)).start());
        assertEquals("shed_interval", e.setting());
        e = assertThrows(MemGuardConfigException.class,
                () -> MemGuard.builder().fromEnv(false).limitOverride(1000).start());
        assertEquals("limit_override", e.setting());
    }

    @Test
    void environmentVariablesAreReadAndNamed() throws Exception {
        Jvm.Result bad = Jvm.run(Jvm.command(List.of(), Main.class, "status"), Map.of("MEMGUARD_WARN", "lots"), 60);
        assertEquals(2, bad.exit(), bad.err());
        assertTrue(bad.err().contains("MEMGUARD_WARN=\"lots\""), bad.err());
        Jvm.Result ok = Jvm.run(Jvm.command(List.of(), Main.class, "status", "--json"),
                Map.of("MEMGUARD_LIMIT", "384Mi"), 60);
        assertEquals(0, ok.exit(), ok.err());
        Map<String, Object> status = Json.object(ok.out());
        assertEquals(384L << 20, status.get("limit_override_bytes"));
        assertTrue(MemGuard.envVars().contains("MEMGUARD_LIMIT"));
        assertTrue(MemGuard.eventKinds().contains("oom_kill"));
    }

    @Test
    void reservationsReleaseExactlyOnce() {
        try (MemGuard g = plain()) {
            long before = g.budget().outstandingBytes();
            Reservation r = g.reserve(1 << 20);
            assertEquals(1 << 20, r.bytes());
            assertTrue(g.budget().outstandingBytes() >= before + (1 << 20) - (64 << 10));
            r.close();
            r.close();
            assertTrue(r.isReleased());
            Reservation t = g.tryReserve(4096);
            assertNotNull(t);
            t.close();
            assertNull(g.tryReserve(Long.MAX_VALUE), "an impossible request is refused");
            BudgetExceededException e = assertThrows(BudgetExceededException.class, () -> g.reserve(Long.MAX_VALUE));
            assertEquals(Long.MAX_VALUE, e.requested());
            assertTrue(e.available() < Long.MAX_VALUE);
            assertTrue(e.softLimit() > 0);
            assertNotNull(e.level());
            assertThrows(IllegalArgumentException.class, () -> g.reserve(-1));
            try (Reservation forced = g.reserveForced(1 << 20)) {
                assertEquals(1 << 20, forced.bytes());
            }
        }
    }

    @Test
    void reservationOutlivesItsGuard() {
        MemGuard g = plain();
        Reservation r = g.reserve(4096);
        g.close();
        assertDoesNotThrow(r::close);
    }

    @Test
    void everyCallAfterCloseThrowsIllegalState() {
        MemGuard g = plain();
        g.close();
        g.close();
        assertTrue(g.isClosed());
        List<Runnable> calls = List.of(g::level, g::snapshot, g::limits, g::prometheus, g::budget, g::lastShed,
                g::configJson, g::sourcesJson, g::jvm, g::mallocTrim, g::droppedEvents, () -> g.reserve(1),
                () -> g.tryReserve(1), () -> g.reserveForced(1), () -> g.nextEvent(Duration.ofMillis(1)),
                () -> g.addLevelListener(c -> {}), () -> g.addEventListener(e -> {}),
                () -> g.registerShedder("x", 0, t -> 0), () -> g.renderHeader(false));
        for (Runnable c : calls) {
            assertThrows(IllegalStateException.class, c::run);
        }
    }

    @Test
    void nativeChecksAndPanicsBecomeExceptions() {
        NativeLib.ensureLoaded();
        assertThrows(IllegalStateException.class, () -> NativeLib.level(0));
        assertThrows(IllegalStateException.class, () -> NativeLib.snapshot(3)); // misaligned
        assertThrows(IllegalStateException.class, () -> NativeLib.release(0));
        MemGuardException e = assertThrows(MemGuardException.class, NativeLib::panicForTest);
        assertTrue(e.getMessage().contains("deliberate panic"), e.getMessage());
        // The library still works after a caught panic.
        try (MemGuard g = plain()) {
            assertNotNull(g.level());
        }
    }

    @Test
    void nextEventReturnsPromptlyWhenClosedFromAnotherThread() throws Exception {
        MemGuard g = plain();
        assertEquals(Optional.empty(), g.nextEvent(Duration.ZERO));
        CountDownLatch done = new CountDownLatch(1);
        AtomicReference<Object> got = new AtomicReference<>();
        Thread t = new Thread(() -> {
            try {
                got.set(g.nextEvent(Duration.ofDays(365)));
            } catch (RuntimeException e) {
                got.set(e);
            }
            done.countDown();
        });
        t.start();
        Thread.sleep(100);
        long start = System.nanoTime();
        g.close();
        assertTrue(done.await(5, TimeUnit.SECONDS), "the waiter returned");
        assertTrue(System.nanoTime() - start < 2_000_000_000L);
        assertEquals(Optional.empty(), got.get());
    }

    @Test
    void statusIsTheCoresReport() {
        String text = MemGuard.status("text");
        assertTrue(text.startsWith("memguard " + MemGuard.version() + " — memory of this process"), text);
        assertTrue(text.contains("  limit  "), text);
        Map<String, Object> json = Json.object(MemGuard.status("json"));
        assertTrue(json.containsKey("limit_bytes") && json.containsKey("sources"), json.toString());
        assertTrue(MemGuard.status("prometheus").contains("memguard_cgroup_info"));
        assertThrows(IllegalArgumentException.class, () -> MemGuard.status("yaml"));
        assertEquals(0, Main.run(new String[] {"version"}));
        assertEquals(64, Main.run(new String[] {"bogus"}));
    }

    @Test
    void jvmBreakdownAndHeapCheck() {
        try (MemGuard g = plain()) {
            JvmMemory j = g.jvm();
            assertTrue(j.heapMax() > 0 && j.heapCommitted() > 0);
            assertTrue(j.nonHeapPools().containsKey("Metaspace"), j.nonHeapPools().toString());
            assertTrue(j.threadCount() > 0);
            assertTrue(j.directBytes() >= 0);
            assertTrue(j.report().contains("outside JVM pools"), j.report());
        }
        // A limit far below the default max heap (a quarter of host memory): the warning names both.
        try (MemGuard g = MemGuard.builder().fromEnv(false).limitOverride(64L << 20).start()) {
            String w = g.heapWarning().orElseThrow();
            assertTrue(w.contains("64.0 MiB") && w.contains("max heap"), w);
        }
    }

    @Test
    void jvmExitsWithAGuardOpen() throws Exception {
        Jvm.Result r = Jvm.run(Jvm.command(List.of(), ExitWithGuardOpen.class), Map.of(), 60);
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("started 1048576"), r.out());
    }
}
