package io.memguard;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Loads {@code libmemguard_jni.so}, once per class loader, thread-safe.
 *
 * <p>Order:
 * <ol>
 *   <li>the system property {@value #PATH_PROPERTY}, naming a file: loaded with
 *       {@code System.load}, and no fallback if that fails;</li>
 *   <li>{@code System.loadLibrary("memguard_jni")} (the {@code java.library.path});</li>
 *   <li>the library bundled in the jar under {@code io/memguard/native/<os>-<arch>/}, extracted to
 *       a unique temporary file (never a fixed name: concurrent JVMs would race) in the directory
 *       named by {@value #TMPDIR_PROPERTY}, else {@code java.io.tmpdir} — set it to an
 *       exec-mounted directory on hosts whose {@code /tmp} is {@code noexec} — then
 *       {@code System.load}ed and deleted (the mapping stays).</li>
 * </ol>
 * A failure throws an {@link UnsatisfiedLinkError} saying what was tried and how to override it;
 * later calls throw the same error again.
 */
public final class NativeLoader {
    /** System property naming the library file to load (no fallback). */
    public static final String PATH_PROPERTY = "memguard.native.path";
    /** System property naming the directory the bundled library is extracted to. */
    public static final String TMPDIR_PROPERTY = "memguard.native.tmpdir";
    /** The library name for {@code System.loadLibrary}. */
    public static final String LIBRARY = "memguard_jni";

    private static boolean loaded;
    private static UnsatisfiedLinkError failure;
    private static String how;

    private NativeLoader() {}

    /** Load the library if not done yet. @throws UnsatisfiedLinkError if it cannot be loaded */
    public static synchronized void load() {
        if (loaded) {
            return;
        }
        if (failure != null) {
            throw failure;
        }
        try {
            how = doLoad();
            loaded = true;
        } catch (UnsatisfiedLinkError e) {
            failure = e;
            throw e;
        }
    }

    /** How the library was loaded ({@code null} before), for diagnostics. */
    public static synchronized String loadedFrom() {
        return how;
    }

    /** The resource path of the bundled library for this platform. */
    static String resourcePath() {
        return "/io/memguard/native/" + platform() + "/" + System.mapLibraryName(LIBRARY);
    }

    static String platform() {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        if (os.startsWith("linux")) {
            os = "linux";
        }
        if (arch.equals("amd64") || arch.equals("x86_64")) {
            arch = "x86_64";
        } else if (arch.equals("arm64")) {
            arch = "aarch64";
        }
        return os + "-" + arch;
    }

    private static String doLoad() {
        String explicit = System.getProperty(PATH_PROPERTY);
        if (explicit != null && !explicit.isEmpty()) {
            Path p = Paths.get(explicit).toAbsolutePath();
            try {
                System.load(p.toString());
                return "-D" + PATH_PROPERTY + "=" + p;
            } catch (UnsatisfiedLinkError e) {
                UnsatisfiedLinkError err = new UnsatisfiedLinkError("memguard: cannot load the native library named by -D"
                        + PATH_PROPERTY + "=" + explicit + " (no fallback when this property is set): " + e.getMessage());
                err.initCause(e);
                throw err;
            }
        }
        List<String> tried = new ArrayList<>();
        try {
            System.loadLibrary(LIBRARY);
            return "System.loadLibrary(\"" + LIBRARY + "\")";
        } catch (UnsatisfiedLinkError e) {
            tried.add("System.loadLibrary(\"" + LIBRARY + "\") with java.library.path="
                    + System.getProperty("java.library.path") + ": " + e.getMessage());
        }
        String resource = resourcePath();
        try (InputStream in = NativeLoader.class.getResourceAsStream(resource)) {
            if (in == null) {
                tried.add("the jar has no library for " + platform() + " (" + resource + ")");
            } else {
                String dirName = System.getProperty(TMPDIR_PROPERTY, System.getProperty("java.io.tmpdir"));
                Path dir = Paths.get(dirName);
                Path file = null;
                try {
                    Files.createDirectories(dir);
                    file = Files.createTempFile(dir, "libmemguard_jni-", ".so");
                    Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
                    System.load(file.toAbsolutePath().toString());
                    return "extracted from the jar to " + file;
                } catch (IOException | UnsatisfiedLinkError e) {
                    tried.add("extracting " + resource + " to " + (file != null ? file : dir) + " and System.load: " + e
                            + (e instanceof UnsatisfiedLinkError
                                    ? " (a noexec temporary directory? set -D" + TMPDIR_PROPERTY + "=<an exec-mounted directory>)"
                                    : ""));
                } finally {
                    if (file != null) {
                        try {
                            Files.deleteIfExists(file); // the loaded mapping stays valid
                        } catch (IOException ignored) {
                            file.toFile().deleteOnExit();
                        }
                    }
                }
            }
        } catch (IOException e) {
            tried.add("reading " + resource + ": " + e);
        }
        StringBuilder msg = new StringBuilder("memguard: cannot load its native library (libmemguard_jni). Tried:");
        for (int i = 0; i < tried.size(); i++) {
            msg.append("\n  ").append(i + 1).append(") ").append(tried.get(i));
        }
        msg.append("\nOverride with -D").append(PATH_PROPERTY).append("=/path/to/libmemguard_jni.so, put it on ")
                .append("-Djava.library.path, or set -D").append(TMPDIR_PROPERTY)
                .append("=<directory> when the temporary directory is mounted noexec.");
        throw new UnsatisfiedLinkError(msg.toString());
    }
}
