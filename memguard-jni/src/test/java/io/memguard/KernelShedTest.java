package io.memguard;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Real kernel (v1 natively, v2 in the VM): a service whose cache lives in direct ByteBuffers grows
 * toward a 256 MiB limit set on a parent cgroup only (a pod's). The unguarded twin and the twin
 * guarded by heap-pool usage thresholds are OOM-killed; the memguard twin sheds and survives.
 */
@Tag("kernel")
class KernelShedTest {
    static final long LIMIT = 256L << 20;
    static final int REQUESTS = 192; // 768 MiB of cache asked for: three times the limit

    record Outcome(String mode, int exit, long oomKills, String out) {}

    Outcome run(TestCgroup base, String mode) throws Exception {
        try (TestCgroup pod = base.child("pod-" + mode)) {
            pod.setLimit(LIMIT);
            TestCgroup app = pod.child("app");
            // Direct memory allowed beyond the limit, as Netty-style services configure it: the cgroup
            // limit is what bites, not the JVM's own direct-memory cap.
            List<String> cmd = app.command(Jvm.command(List.of("-XX:MaxDirectMemorySize=1g"), DirectCacheService.class, mode,
                    Integer.toString(REQUESTS)));
            Jvm.Result r = Jvm.run(cmd, Map.of("MEMGUARD_SHED_INTERVAL", "50ms"), 600);
            // v1 counts a kill in the victim's cgroup, v2 in every ancestor's memory.events.
            long kills = base.version == TestCgroup.Version.V1 ? app.oomKills() + pod.oomKills() : pod.oomKills();
            return new Outcome(mode, r.exit(), kills, r.out() + r.err());
        }
    }

    @Test
    void directBufferCacheTwins() throws Exception {
        TestCgroup base = TestCgroup.baseOrSkip();
        List<String> notes = new ArrayList<>();
        String where = (base.version == TestCgroup.Version.V1 ? "v1 native" : "v2 VM") + ", JDK " + Jvm.jdk();
        Outcome unguarded = run(base, "unguarded");
        Outcome mxbean = run(base, "mxbean");
        Outcome guarded = run(base, "memguard");
        for (Outcome o : List.of(unguarded, mxbean, guarded)) {
            String last = o.out().lines().filter(l -> l.startsWith("SURVIVED") || l.startsWith("MXBEAN")
                    || l.startsWith("HEAP_WARNING") || l.startsWith("  JVM sees") || l.startsWith("  heap"))
                    .reduce("", (a, b) -> a + "\n    " + b);
            notes.add(where + ": " + o.mode() + " exit " + o.exit() + ", oom_kill " + o.oomKills() + last);
        }
        String report = String.join("\n", notes);
        System.out.println(report);
        String out = System.getenv().getOrDefault("MEMGUARD_VM_OUT", "target");
        Files.writeString(Path.of(out, "java-kernel-" + (base.version == TestCgroup.Version.V1 ? "v1" : "v2") + "-jdk"
                + Jvm.jdk() + ".txt"), report + "\n\n" + guarded.out());

        assertEquals(137, unguarded.exit(), "the unguarded twin is OOM-killed:\n" + report);
        assertTrue(unguarded.oomKills() >= 1, report);
        assertEquals(137, mxbean.exit(), "heap-pool thresholds do not see direct buffers:\n" + report);
        assertEquals(0, guarded.exit(), "the memguard twin survives:\n" + report + "\n" + guarded.out());
        assertEquals(0, guarded.oomKills(), report);
        assertTrue(guarded.out().contains("SURVIVED"), guarded.out());
        if (base.version == TestCgroup.Version.V2 && Jvm.jdk().equals("17")) {
            // JDK 17 misses a limit set only on a parent cgroup (v2): it sizes the heap from the
            // VM's memory, and memguard says so at start.
            assertTrue(guarded.out().contains("HEAP_WARNING memguard: the JVM's max heap"), guarded.out());
        }
    }
}
