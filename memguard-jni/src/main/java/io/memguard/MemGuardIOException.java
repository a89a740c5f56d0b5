package io.memguard;

import java.io.IOException;
import java.io.UncheckedIOException;

/** A kernel file could not be read ({@code /proc} unavailable, a cgroup file missing). */
public class MemGuardIOException extends UncheckedIOException {
    private static final long serialVersionUID = 1L;
    private final String path;
    private final int errno;
    private final boolean procUnavailable;

    /**
     * @param message the full message
     * @param path the file
     * @param errno the OS error number, 0 if none
     * @param procUnavailable {@code /proc} itself cannot be read
     */
    public MemGuardIOException(String message, String path, int errno, boolean procUnavailable) {
        super(message, new IOException(message));
        this.path = path;
        this.errno = errno;
        this.procUnavailable = procUnavailable;
    }

    /** The file that could not be read. */
    public String path() {
        return path;
    }

    /** The OS error number ({@code errno}), 0 if none. */
    public int errno() {
        return errno;
    }

    /** True when {@code /proc} itself cannot be read. */
    public boolean procUnavailable() {
        return procUnavailable;
    }
}
