package io.memguard;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LoaderTest {
    @Test
    void loadsTheBundledLibraryByExtraction() {
        NativeLib.ensureLoaded();
        assertTrue(NativeLoader.loadedFrom().startsWith("extracted from the jar"), NativeLoader.loadedFrom());
        assertTrue(NativeLoader.resourcePath().endsWith("/linux-x86_64/libmemguard_jni.so"));
    }

    @Test
    void anExplicitPathHasNoFallback() throws Exception {
        Jvm.Result r = Jvm.run(Jvm.command(List.of("-Dmemguard.native.path=/nonexistent/libx.so"), Main.class, "version"),
                Map.of(), 60);
        assertNotEquals(0, r.exit());
        assertTrue(r.err().contains("UnsatisfiedLinkError") && r.err().contains("-Dmemguard.native.path")
                && r.err().contains("no fallback"), r.err());
    }

    @Test
    void extractsToTheConfiguredDirectoryAndLeavesNothing(@TempDir Path dir) throws Exception {
        Jvm.Result r = Jvm.run(Jvm.command(List.of("-Dmemguard.native.tmpdir=" + dir), Main.class, "version"), Map.of(), 60);
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().startsWith("memguard "), r.out());
        try (Stream<Path> left = Files.list(dir)) {
            assertEquals(0, left.count(), "the extracted copy was deleted after loading");
        }
    }

    @Test
    void anUnusableDirectoryIsExplained(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("a-file");
        Files.writeString(file, "not a directory");
        Jvm.Result r = Jvm.run(Jvm.command(List.of("-Dmemguard.native.tmpdir=" + file), Main.class, "version"),
                Map.of(), 60);
        assertNotEquals(0, r.exit());
        assertTrue(r.err().contains("Tried:") && r.err().contains("memguard.native.tmpdir"), r.err());
    }

    @Test
    void explicitPathLoads() throws Exception {
        Path lib = Path.of(System.getProperty("user.dir"), "..", "target", "release", "libmemguard_jni.so");
        if (!Files.exists(lib)) {
            return;
        }
        Jvm.Result r = Jvm.run(Jvm.command(List.of("-Dmemguard.native.path=" + lib), Main.class, "version"), Map.of(), 60);
        assertEquals(0, r.exit(), r.err());
    }
}
