package io.memguard;

/** A memguard failure that is neither a configuration nor an I/O error (malformed kernel file, internal error). */
public class MemGuardException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** @param message what went wrong */
    public MemGuardException(String message) {
        super(message);
    }
}
