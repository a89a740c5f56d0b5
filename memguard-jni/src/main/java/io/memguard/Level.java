package io.memguard;

import java.util.Locale;

/** The pressure level: memory reclaim cannot free, against the effective limit. */
public enum Level {
    /** Below the warning threshold (default 80% of the limit). */
    NORMAL,
    /** At or above the warning threshold: shed caches. */
    WARNING,
    /** At or above the critical threshold (default 90%): refuse non-essential work. */
    CRITICAL;

    /** The level with this ordinal (0, 1, 2); anything above 2 is {@code CRITICAL}. */
    public static Level of(int ordinal) {
        return ordinal <= 0 ? NORMAL : ordinal == 1 ? WARNING : CRITICAL;
    }

    /** The level named {@code "normal"}, {@code "warning"} or {@code "critical"} (the JSON form). */
    public static Level parse(String name) {
        return valueOf(name.toUpperCase(Locale.ROOT));
    }

    /** The lower-case name used by the JSON reports and metrics. */
    public String jsonName() {
        return name().toLowerCase(Locale.ROOT);
    }
}
