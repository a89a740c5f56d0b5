package io.memguard;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.memguard.micrometer.MemGuardMetrics;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.junit.jupiter.api.Test;

class MicrometerTest {
    @Test
    void memguardMetricsAppearInTheRegistry() {
        SimpleMeterRegistry registry = new SimpleMeterRegistry();
        try (MemGuard g = MemGuard.builder().fromEnv(false).heapCheck(false).limitOverride(16L << 30).start()) {
            new MemGuardMetrics(g, 0).bindTo(registry);
            Gauge level = registry.find("memguard.level").gauge();
            assertNotNull(level, registry.getMetersAsString());
            assertTrue(level.value() >= 0 && level.value() <= 2);
            assertEquals(16L << 30, (long) registry.find("memguard.limit.bytes").gauge().value());
            assertNotNull(registry.find("memguard.level.info").tag("level", "critical").gauge());
            g.reserve(4096).close();
            FunctionCounter granted = registry.find("memguard.reservations").tag("result", "granted").functionCounter();
            assertNotNull(granted, registry.getMetersAsString());
            assertTrue(granted.count() >= 1, registry.getMetersAsString());
            g.close();
            assertTrue(Double.isNaN(level.value()), "NaN once the guard is closed");
        }
    }
}
