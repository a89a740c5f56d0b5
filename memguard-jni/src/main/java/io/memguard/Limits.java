package io.memguard;

import java.util.List;
import java.util.Map;

/**
 * What detection found ({@link MemGuard#limits()}), immutable. Byte counts are {@code -1} when
 * none is known; read {@link #limitMaybeHidden()} and {@link #limitUnknown()} before concluding
 * "unlimited". Field meanings are those of {@code memguard status --json} (README).
 *
 * @param cgroup {@code "v1"}, {@code "v2"} or {@code "none"}
 * @param cgroupPath the process's memory cgroup, or {@code null}
 * @param cgroupDir its directory on this host, or {@code null}
 * @param limitBytes the effective hard limit (lowest of the detected limit and the override)
 * @param limitApplied {@code "cgroup"}, {@code "override"} or {@code "none"}
 * @param detectedLimitBytes the lowest cgroup limit up the hierarchy
 * @param limitCgroup the cgroup that sets the detected limit, or {@code null}
 * @param limitDir its directory, or {@code null}
 * @param limitMaybeHidden a tighter limit may be hidden above the cgroup namespace root
 * @param limitUnknown a limit file could not be read: the limit is unknown
 * @param limitUnknownFiles those files
 * @param limitOverrideBytes the operator's override ({@code MEMGUARD_LIMIT} or the builder's)
 * @param limitOverrideSource {@code "MEMGUARD_LIMIT"}, {@code "builder"} or {@code null}
 * @param highBytes v2 {@code memory.high} / v1 soft limit
 * @param highCgroup the cgroup that sets it
 * @param swapLimitBytes swap the cgroup may use on top of memory
 * @param hostTotalBytes host {@code MemTotal}
 * @param oomScoreAdj the process's {@code oom_score_adj} ({@code Integer.MIN_VALUE}: unknown)
 * @param qosClass the Kubernetes QoS class it implies, or {@code null}
 * @param notes fallbacks taken and oddities seen, one sentence each
 * @param json the core's JSON form
 */
public record Limits(String cgroup, String cgroupPath, String cgroupDir, long limitBytes, String limitApplied,
        long detectedLimitBytes, String limitCgroup, String limitDir, boolean limitMaybeHidden, boolean limitUnknown,
        List<String> limitUnknownFiles, long limitOverrideBytes, String limitOverrideSource, long highBytes,
        String highCgroup, long swapLimitBytes, long hostTotalBytes, int oomScoreAdj, String qosClass,
        List<String> notes, String json) {

    static Limits parse(String json) {
        Map<String, Object> m = Json.object(json);
        Object adj = m.get("oom_score_adj");
        return new Limits(Json.str(m, "cgroup"), Json.str(m, "cgroup_path"), Json.str(m, "cgroup_dir"),
                Json.num(m, "limit_bytes"), Json.str(m, "limit_applied"), Json.num(m, "detected_limit_bytes"),
                Json.str(m, "limit_cgroup"), Json.str(m, "limit_dir"), Json.bool(m, "limit_maybe_hidden"),
                Json.bool(m, "limit_unknown"), Json.strings(m, "limit_unknown_files"),
                Json.num(m, "limit_override_bytes"), Json.str(m, "limit_override_source"), Json.num(m, "high_bytes"),
                Json.str(m, "high_cgroup"), Json.num(m, "swap_limit_bytes"), Json.num(m, "host_total_bytes"),
                adj instanceof Number ? ((Number) adj).intValue() : Integer.MIN_VALUE, Json.str(m, "qos_class"),
                Json.strings(m, "notes"), json);
    }
}
