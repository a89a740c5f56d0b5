package io.memguard;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Test cgroups under this process's own memory cgroup (v1 natively) or under
 * {@code $MEMGUARD_VM_CGROUP} (v2, inside the project's VM), named {@code memguard-test-java-*}
 * and removed after use. Without a writable memory cgroup the kernel tests are skipped locally
 * and fail in CI.
 */
final class TestCgroup implements AutoCloseable {
    enum Version { V1, V2 }

    final Version version;
    final Path dir;

    private TestCgroup(Version version, Path dir) {
        this.version = version;
        this.dir = dir;
    }

    static boolean inCi() {
        String ci = System.getenv("CI");
        return "true".equals(ci) || "1".equals(ci);
    }

    /** Where test cgroups can be made, or why not. */
    static Optional<TestCgroup> base(StringBuilder why) {
        String vm = System.getenv("MEMGUARD_VM_CGROUP");
        if (vm != null && !vm.isEmpty()) {
            Path p = Path.of(vm);
            try {
                if (Files.readString(p.resolve("cgroup.subtree_control")).contains("memory")) {
                    return Optional.of(new TestCgroup(Version.V2, p));
                }
                why.append("memory is not enabled in ").append(p).append("/cgroup.subtree_control");
            } catch (IOException e) {
                why.append(e);
            }
            return Optional.empty();
        }
        try {
            String mount = null;
            for (String line : Files.readAllLines(Path.of("/proc/self/mounts"))) {
                String[] f = line.split(" ");
                if (f.length > 3 && f[2].equals("cgroup") && List.of(f[3].split(",")).contains("memory")) {
                    mount = f[1];
                    break;
                }
            }
            if (mount == null) {
                why.append("no cgroup v1 memory controller is mounted (cgroup v2 runs in the VM suite)");
                return Optional.empty();
            }
            String own = null;
            for (String line : Files.readAllLines(Path.of("/proc/self/cgroup"))) {
                String[] f = line.split(":", 3);
                if (f.length == 3 && List.of(f[1].split(",")).contains("memory")) {
                    own = f[2];
                }
            }
            if (own == null) {
                why.append("this process has no v1 memory cgroup");
                return Optional.empty();
            }
            Path dir = Path.of(mount, own.replaceFirst("^/", ""));
            Path probe = dir.resolve("memguard-test-java-probe-" + ProcessHandle.current().pid());
            Files.createDirectory(probe);
            Files.delete(probe);
            return Optional.of(new TestCgroup(Version.V1, dir));
        } catch (IOException e) {
            why.append("cannot create a memory cgroup: ").append(e);
            return Optional.empty();
        }
    }

    /** The base, or skip (locally) / fail (in CI). */
    static TestCgroup baseOrSkip() {
        StringBuilder why = new StringBuilder();
        Optional<TestCgroup> b = base(why);
        if (b.isEmpty()) {
            if (inCi()) {
                throw new AssertionError("required kernel capability missing in CI: " + why);
            }
            org.junit.jupiter.api.Assumptions.abort("SKIPPED: " + why);
        }
        return b.get();
    }

    /** This process's own cgroup directory (of this hierarchy), to move back to. */
    Path own() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/cgroup"))) {
            String[] f = line.split(":", 3);
            if (f.length < 3) {
                continue;
            }
            if (version == Version.V2 && f[0].equals("0") && f[1].isEmpty()) {
                return Path.of("/sys/fs/cgroup", f[2].replaceFirst("^/", ""));
            }
            if (version == Version.V1 && List.of(f[1].split(",")).contains("memory")) {
                Path mount = dir;
                String rel = f[2].replaceFirst("^/", "");
                while (mount != null && !mount.endsWith(rel)) {
                    mount = mount.getParent();
                }
                return mount != null ? mount : dir;
            }
        }
        return dir;
    }

    /** A new child cgroup {@code memguard-test-java-<label>-<pid>}. */
    TestCgroup child(String label) throws IOException {
        String name = dir.getFileName().toString().startsWith("memguard-test-java") ? label
                : "memguard-test-java-" + label + "-" + ProcessHandle.current().pid();
        Path d = dir.resolve(name);
        if (version == Version.V2 && dir.getFileName().toString().startsWith("memguard-test-java")) {
            write(dir, "cgroup.subtree_control", "+memory");
        }
        Files.createDirectories(d);
        return new TestCgroup(version, d);
    }

    static void write(Path dir, String file, String value) throws IOException {
        Files.writeString(dir.resolve(file), value);
    }

    /** Set the hard limit (and no swap beyond it). */
    void setLimit(long bytes) throws IOException {
        if (version == Version.V1) {
            write(dir, "memory.limit_in_bytes", Long.toString(bytes));
            if (Files.exists(dir.resolve("memory.memsw.limit_in_bytes"))) {
                write(dir, "memory.memsw.limit_in_bytes", Long.toString(bytes));
            }
            write(dir, "memory.swappiness", "0");
        } else {
            write(dir, "memory.max", Long.toString(bytes));
            if (Files.exists(dir.resolve("memory.swap.max"))) {
                write(dir, "memory.swap.max", "0");
            }
        }
    }

    /** Current usage in bytes. */
    long usage() throws IOException {
        String file = version == Version.V1 ? "memory.usage_in_bytes" : "memory.current";
        return Long.parseLong(Files.readString(dir.resolve(file)).trim());
    }

    /** Move the process {@code pid} (all its threads) here. */
    void add(long pid) throws IOException {
        write(dir, "cgroup.procs", Long.toString(pid));
    }

    /** A command that runs {@code cmd} inside this cgroup (the shell moves itself, then execs). */
    List<String> command(List<String> cmd) {
        List<String> out = new ArrayList<>(List.of("sh", "-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\"",
                dir.toString()));
        out.addAll(cmd);
        return out;
    }

    /** {@code oom_kill} count of this cgroup. */
    long oomKills() throws IOException {
        String file = version == Version.V1 ? "memory.oom_control" : "memory.events";
        for (String line : Files.readAllLines(dir.resolve(file))) {
            if (line.startsWith("oom_kill ")) {
                return Long.parseLong(line.substring(9).trim());
            }
        }
        return 0;
    }

    /** The cgroup path as {@code /proc/self/cgroup} shows it (v1: relative to the hierarchy). */
    String procPath() throws IOException {
        return dir.toString();
    }

    /** Remove this cgroup (and its children), moving any process left to the parent. */
    @Override
    public void close() throws IOException {
        removeTree(dir);
    }

    private static void removeTree(Path d) throws IOException {
        if (!Files.isDirectory(d)) {
            return;
        }
        try (var s = Files.list(d)) {
            for (Path c : (Iterable<Path>) s::iterator) {
                if (Files.isDirectory(c)) {
                    removeTree(c);
                }
            }
        }
        Path parentProcs = d.getParent().resolve("cgroup.procs");
        for (String pid : Files.readAllLines(d.resolve("cgroup.procs"))) {
            if (!pid.isBlank()) {
                try {
                    Files.writeString(parentProcs, pid.trim());
                } catch (IOException ignored) {
                    // gone meanwhile
                }
            }
        }
        for (int i = 0; i < 50; i++) {
            try {
                Files.delete(d);
                return;
            } catch (IOException e) {
                try {
                    Thread.sleep(20);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
        }
        Files.delete(d);
    }
}
