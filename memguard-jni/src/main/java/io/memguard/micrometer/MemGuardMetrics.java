package io.memguard.micrometer;

import io.memguard.MemGuard;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tag;
import io.micrometer.core.instrument.binder.MeterBinder;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Publishes a guard's {@code memguard_*} metrics in a Micrometer registry — the one the service
 * already exports — so they appear next to its own (with the Prometheus registry, under the same
 * names as {@link MemGuard#prometheus()}: {@code memguard_limit_bytes},
 * {@code memguard_events_total{kind=...}}, ...).
 *
 * <p>The values are the core's own metric set, read from {@link MemGuard#prometheus()} at most
 * once per {@code refreshMillis} (default 1 s) when the registry is scraped; a family that first
 * appears later (a shedder's counters after its first run) is registered at that refresh. Gauges
 * become Micrometer {@link Gauge}s named with dots ({@code memguard.limit.bytes}); counters
 * {@link FunctionCounter}s without the {@code _total} suffix ({@code memguard.events}). After the
 * guard closes the values are {@code NaN}.
 *
 * <pre>{@code new MemGuardMetrics(guard).bindTo(registry);}</pre>
 */
public final class MemGuardMetrics implements MeterBinder {
    private final MemGuard guard;
    private final long refreshNanos;
    private final Map<String, Double> values = new ConcurrentHashMap<>();
    private final Set<String> registered = ConcurrentHashMap.newKeySet();
    private final List<MeterRegistry> registries = new ArrayList<>();
    private long refreshedAt;
    private boolean refreshedOnce;

    /** Bind {@code guard}'s metrics, refreshed at most once a second. */
    public MemGuardMetrics(MemGuard guard) {
        this(guard, 1000);
    }

    /** Bind {@code guard}'s metrics, refreshed at most once per {@code refreshMillis}. */
    public MemGuardMetrics(MemGuard guard, long refreshMillis) {
        this.guard = guard;
        this.refreshNanos = Math.max(0, refreshMillis) * 1_000_000L;
    }

    @Override
    public synchronized void bindTo(MeterRegistry registry) {
        registries.add(registry);
        refresh(true);
    }

    /** One sample of the exposition format. */
    private static final class Sample {
        final String family;
        final Map<String, String> labels;
        final double value;
        final String key;

        Sample(String family, Map<String, String> labels, double value, String key) {
            this.family = family;
            this.labels = labels;
            this.value = value;
            this.key = key;
        }
    }

    private synchronized double value(String key) {
        refresh(false);
        return values.getOrDefault(key, Double.NaN);
    }

    private void refresh(boolean force) {
        long now = System.nanoTime();
        if (!force && refreshedOnce && now - refreshedAt < refreshNanos) {
            return;
        }
        refreshedAt = now;
        refreshedOnce = true;
        String text;
        try {
            text = guard.prometheus();
        } catch (IllegalStateException closed) {
            values.clear();
            return;
        }
        Map<String, String> types = new LinkedHashMap<>();
        List<Sample> samples = parse(text, types);
        values.clear();
        for (Sample s : samples) {
            values.put(s.key, s.value);
        }
        for (Sample s : samples) {
            if (registered.add(s.key)) {
                for (MeterRegistry r : registries) {
                    register(r, s, types.getOrDefault(s.family, "gauge"));
                }
            }
        }
    }

    private void register(MeterRegistry registry, Sample s, String type) {
        List<Tag> tags = new ArrayList<>();
        s.labels.forEach((k, v) -> tags.add(Tag.of(k, v)));
        String key = s.key;
        if (type.equals("counter")) {
            String name = s.family.endsWith("_total") ? s.family.substring(0, s.family.length() - 6) : s.family;
            FunctionCounter.builder(name.replace('_', '.'), this, m -> m.value(key)).tags(tags).register(registry);
        } else {
            Gauge.builder(s.family.replace('_', '.'), this, m -> m.value(key)).tags(tags).register(registry);
        }
    }

    /** Parse the Prometheus text format 0.0.4 the core renders (HELP/TYPE lines, samples). */
    private static List<Sample> parse(String text, Map<String, String> types) {
        List<Sample> out = new ArrayList<>();
        for (String line : text.split("\n")) {
            if (line.startsWith("# TYPE ")) {
                String[] f = line.substring(7).trim().split("\\s+");
                if (f.length == 2) {
                    types.put(f[0], f[1]);
                }
                continue;
            }
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            int brace = line.indexOf('{');
            int space = line.lastIndexOf(' ');
            if (space < 0) {
                continue;
            }
            String family = brace >= 0 && brace < space ? line.substring(0, brace) : line.substring(0, space);
            Map<String, String> labels = new LinkedHashMap<>();
            if (brace >= 0 && brace < space) {
                int close = line.lastIndexOf('}');
                parseLabels(line.substring(brace + 1, close), labels);
            }
            double v;
            try {
                v = Double.parseDouble(line.substring(space + 1).trim());
            } catch (NumberFormatException e) {
                continue;
            }
            String key = brace >= 0 && brace < space ? line.substring(0, line.lastIndexOf('}') + 1) : family;
            out.add(new Sample(family, labels, v, key));
        }
        return out;
    }

    private static void parseLabels(String s, Map<String, String> labels) {
        int i = 0;
        while (i < s.length()) {
            int eq = s.indexOf('=', i);
            if (eq < 0 || eq + 1 >= s.length() || s.charAt(eq + 1) != '"') {
                return;
            }
            String name = s.substring(i, eq).trim();
            StringBuilder v = new StringBuilder();
            int j = eq + 2;
            while (j < s.length() && s.charAt(j) != '"') {
                char c = s.charAt(j);
                if (c == '\\' && j + 1 < s.length()) {
                    char n = s.charAt(++j);
                    v.append(n == 'n' ? '\n' : n);
                } else {
                    v.append(c);
                }
                j++;
            }
            labels.put(name, v.toString());
            i = j + 1;
            if (i < s.length() && s.charAt(i) == ',') {
                i++;
            }
        }
    }
}
