package io.memguard;

/**
 * A configuration value does not parse or is out of range. Names the setting (the builder
 * method's Rust name: {@code warn}, {@code redetect_interval}, ...), the {@code MEMGUARD_*}
 * variable it came from (or {@code null} when set in code) and the offending value.
 */
public class MemGuardConfigException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;
    private final String setting;
    private final String envVar;
    private final String value;

    /**
     * @param message the full message
     * @param setting the setting
     * @param envVar the environment variable, or {@code null}
     * @param value the offending value
     */
    public MemGuardConfigException(String message, String setting, String envVar, String value) {
        super(message);
        this.setting = setting;
        this.envVar = envVar;
        this.value = value;
    }

    /** The setting ({@code warn}, {@code shed_interval}, ...). */
    public String setting() {
        return setting;
    }

    /** The {@code MEMGUARD_*} variable the value came from, or {@code null} when set in code. */
    public String envVar() {
        return envVar;
    }

    /** The offending value (the variable's text, or the value set in code). */
    public String value() {
        return value;
    }
}
