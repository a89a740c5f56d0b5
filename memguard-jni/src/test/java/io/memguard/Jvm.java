package io.memguard;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/** Child JVMs for tests: the JDK under test, this classpath, and the same JNI checks. */
final class Jvm {
    private Jvm() {}

    /** The java executable of the JDK under test. */
    static String java() {
        return System.getProperty("memguard.test.java", Path.of(System.getProperty("java.home"), "bin", "java").toString());
    }

    static String jdk() {
        return System.getProperty("memguard.test.jdk", Integer.toString(Runtime.version().feature()));
    }

    /** The directory the child JVMs' VM output goes to (grepped for JNI warnings by the build). */
    static Path outputDir() throws IOException {
        Path dir = Path.of(System.getProperty("user.dir"), "target", "jvm-output");
        Files.createDirectories(dir);
        return dir;
    }

    /** A command line running {@code main} in a child JVM with the JNI checks on. */
    static List<String> command(List<String> jvmArgs, Class<?> main, String... args) throws IOException {
        List<String> cmd = new ArrayList<>();
        cmd.add(java());
        cmd.add("-Xcheck:jni");
        cmd.add("-XX:+UnlockDiagnosticVMOptions");
        cmd.add("-XX:+LogVMOutput");
        cmd.add("-XX:-DisplayVMOutput");
        cmd.add("-XX:LogFile=" + outputDir().resolve("child-jdk" + jdk() + "-%p.log"));
        cmd.add("--enable-native-access=ALL-UNNAMED");
        cmd.addAll(jvmArgs);
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(main.getName());
        cmd.addAll(List.of(args));
        return cmd;
    }

    /** What a finished child printed. */
    record Result(int exit, String out, String err) {}

    static Result run(List<String> cmd, Map<String, String> env, long timeoutSeconds) throws Exception {
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().putAll(env);
        File out = File.createTempFile("memguard-child", ".out");
        File err = File.createTempFile("memguard-child", ".err");
        try {
            pb.redirectOutput(out).redirectError(err);
            Process p = pb.start();
            if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
                p.destroyForcibly().waitFor();
                throw new AssertionError("child JVM did not exit within " + timeoutSeconds + " s: " + cmd + "\nstdout:\n"
                        + Files.readString(out.toPath()) + "\nstderr:\n" + Files.readString(err.toPath()));
            }
            return new Result(p.exitValue(), Files.readString(out.toPath(), StandardCharsets.UTF_8),
                    Files.readString(err.toPath(), StandardCharsets.UTF_8));
        } finally {
            out.delete();
            err.delete();
        }
    }
}
