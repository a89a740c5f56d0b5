import com.sun.management.HotSpotDiagnosticMXBean;
import com.sun.management.OperatingSystemMXBean;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import jdk.internal.platform.Container;
import jdk.internal.platform.Metrics;

/**
 * The JDK's side of the truth table's "moved process" layout (`cargo xtask compare`): what a
 * running JVM believes its memory limit is, printed once at start and again after each line read
 * on stdin (the harness moves the process to another cgroup in between). One JSON line each:
 * {@code limit} is what {@code -XshowSettings:system} prints as "Memory Limit" (the JDK's
 * container metrics, -1 for none), {@code total} the container-aware
 * {@code OperatingSystemMXBean.getTotalMemorySize()}, {@code max_heap} the {@code MaxHeapSize}
 * sized at start. Needs {@code --add-exports java.base/jdk.internal.platform=ALL-UNNAMED}.
 */
public final class TruthProbe {
    private TruthProbe() {}

    static String line() {
        Metrics m = Container.metrics();
        long limit = m == null ? -1 : m.getMemoryLimit();
        OperatingSystemMXBean os = (OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        HotSpotDiagnosticMXBean hs = ManagementFactory.getPlatformMXBean(HotSpotDiagnosticMXBean.class);
        String heap = hs.getVMOption("MaxHeapSize").getValue();
        return "{\"limit\":" + limit + ",\"total\":" + os.getTotalMemorySize() + ",\"max_heap\":" + heap + "}";
    }

    public static void main(String[] args) throws Exception {
        System.out.println(line());
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        while (in.readLine() != null) {
            System.out.println(line());
        }
    }
}
