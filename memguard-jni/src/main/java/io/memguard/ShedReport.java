package io.memguard;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * What the latest shedding run did ({@link MemGuard#lastShed()}).
 *
 * @param targetBytes the bytes asked for
 * @param freedBytes the bytes the shedders reported freeing
 * @param steps the shedders called, in order
 * @param elapsed time spent calling shedders
 * @param json the core's JSON form
 */
public record ShedReport(long targetBytes, long freedBytes, List<Step> steps, Duration elapsed, String json) {

    /**
     * One shedder's call.
     *
     * @param name the shedder
     * @param priority its priority
     * @param askedBytes what it was asked for
     * @param freedBytes what it reported freeing
     */
    public record Step(String name, int priority, long askedBytes, long freedBytes) {}

    static ShedReport parse(String json) {
        Map<String, Object> m = Json.object(json);
        List<Step> steps = new ArrayList<>();
        Object raw = m.get("steps");
        if (raw instanceof List) {
            for (Object o : (List<?>) raw) {
                @SuppressWarnings("unchecked")
                Map<String, Object> s = (Map<String, Object>) o;
                steps.add(new Step(Json.str(s, "name"), (int) Json.num(s, "priority"), Json.num(s, "asked_bytes"),
                        Json.num(s, "freed_bytes")));
            }
        }
        Map<String, Object> e = Json.map(m, "elapsed");
        Duration elapsed = e == null ? Duration.ZERO : Duration.ofSeconds(Json.num(e, "secs"), Json.num(e, "nanos"));
        return new ShedReport(Json.num(m, "target_bytes"), Json.num(m, "freed_bytes"),
                Collections.unmodifiableList(steps), elapsed, json);
    }
}
