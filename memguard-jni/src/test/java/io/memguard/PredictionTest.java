package io.memguard;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;

/** The predictive warning (#15) as the Java API shows it, under real pressure. */
class PredictionTest {
    static final long MIB = 1L << 20;

    /**
     * A steady ramp of direct buffers toward a limit 256 MiB above what the JVM uses, stopping at
     * 160 MiB: the fraction thresholds (0.98 / 0.99) and kernel sources (off) cannot raise the
     * level, so the only way up is the prediction (a 10 s warning horizon). The level-change
     * event and the level listener's snapshot then carry the predicted time.
     */
    @Test
    void aRampRaisesTheLevelByPredictionAndTheChangeCarriesTheTime() throws Exception {
        try (Pressure p = new Pressure(); MemGuard g = Pressure.guardWithHeadroom(256 * MIB).warn(0.98)
                .critical(0.99).psi(false).cgroupEvents(false).horizon(Duration.ofSeconds(10), Duration.ZERO)
                .sampleInterval(Duration.ofMillis(10), Duration.ofMillis(20)).start()) {
            List<Event> events = new CopyOnWriteArrayList<>();
            List<LevelChange> changes = new CopyOnWriteArrayList<>();
            List<Snapshot> during = new CopyOnWriteArrayList<>();
            g.addEventListener(e -> {
                if (e.kind().equals("level_changed")) {
                    events.add(e);
                }
            });
            g.addLevelListener(changes::add);
            Thread sampler = new Thread(() -> {
                while (!Thread.currentThread().isInterrupted() && !g.isClosed()) {
                    during.add(g.snapshot());
                    try {
                        Thread.sleep(25);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            });
            sampler.start();
            try {
                p.ramp(160 * MIB, 8);
            } finally {
                sampler.interrupt();
                sampler.join();
            }
            CallbacksTest.eventually("a level_changed event reached the event listener: " + g.snapshot().json(),
                    () -> events.stream().anyMatch(e -> e.level() == Level.WARNING));
            Event up = events.stream().filter(e -> e.level() == Level.WARNING).findFirst().orElseThrow();
            assertEquals("normal", up.stringDetail("from"), up.json());
            assertTrue(up.timeToLimit().isPresent(), "the prediction raised it: " + up.json());
            assertTrue(up.timeToLimit().get().compareTo(Duration.ofSeconds(10)) < 0, up.json());
            assertTrue(up.text().contains("ms to the limit at the current growth"), up.text());
            CallbacksTest.eventually("the level listener saw it", () -> changes.stream().anyMatch(LevelChange::rising));
            LevelChange rising = changes.stream().filter(LevelChange::rising).findFirst().orElseThrow();
            assertTrue(rising.timeToLimit().isPresent(), rising.snapshot().json());
            assertTrue(rising.snapshot().growthRate().orElse(0) > 0, rising.snapshot().json());
            assertTrue(during.stream().anyMatch(s -> s.timeToLimit().isPresent() && s.growthRate().orElse(0) > 0),
                    "a snapshot taken during the ramp shows the prediction");
        }
    }
}
