package io.memguard;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;

/**
 * A small reader for the JSON the native library produces (the core's {@code serde} form of
 * snapshots, limits and events): objects become {@code Map}, arrays {@code List}, integers
 * {@code Long} (saturated), other numbers {@code Double}. Plus typed getters with the JDK
 * management API's conventions: {@code -1} for an unknown count, {@code NaN} for an unknown ratio.
 */
final class Json {
    private final String s;
    private int i;

    private Json(String s) {
        this.s = s;
    }

    /** Parse one JSON value. @throws IllegalArgumentException on malformed input */
    static Object parse(String text) {
        Json p = new Json(text);
        p.ws();
        Object v = p.value();
        p.ws();
        if (p.i != p.s.length()) {
            throw p.error("trailing characters");
        }
        return v;
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> object(String text) {
        return (Map<String, Object>) parse(text);
    }

    private IllegalArgumentException error(String what) {
        return new IllegalArgumentException("memguard: malformed JSON from the native library (" + what + " at " + i + ")");
    }

    private void ws() {
        while (i < s.length() && Character.isWhitespace(s.charAt(i))) {
            i++;
        }
    }

    private Object value() {
        if (i >= s.length()) {
            throw error("end of input");
        }
        char c = s.charAt(i);
        switch (c) {
            case '{':
                return obj();
            case '[':
                return arr();
            case '"':
                return str();
            case 't':
                return lit("true", Boolean.TRUE);
            case 'f':
                return lit("false", Boolean.FALSE);
            case 'n':
                return lit("null", null);
            default:
                return num();
        }
    }

    private Object lit(String word, Object v) {
        if (!s.startsWith(word, i)) {
            throw error("unexpected literal");
        }
        i += word.length();
        return v;
    }

    private Map<String, Object> obj() {
        Map<String, Object> m = new LinkedHashMap<>();
        i++;
        ws();
        if (i < s.length() && s.charAt(i) == '}') {
            i++;
            return m;
        }
        while (true) {
            ws();
            String k = str();
            ws();
            expect(':');
            ws();
            m.put(k, value());
            ws();
            if (i < s.length() && s.charAt(i) == ',') {
                i++;
                continue;
            }
            expect('}');
            return m;
        }
    }

    private List<Object> arr() {
        List<Object> l = new ArrayList<>();
        i++;
        ws();
        if (i < s.length() && s.charAt(i) == ']') {
            i++;
            return l;
        }
        while (true) {
            ws();
            l.add(value());
            ws();
            if (i < s.length() && s.charAt(i) == ',') {
                i++;
                continue;
            }
            expect(']');
            return l;
        }
    }

    private void expect(char c) {
        if (i >= s.length() || s.charAt(i) != c) {
            throw error("expected '" + c + "'");
        }
        i++;
    }

    private String str() {
        expect('"');
        StringBuilder b = new StringBuilder();
        while (i < s.length()) {
            char c = s.charAt(i++);
            if (c == '"') {
                return b.toString();
            }
            if (c != '\\') {
                b.append(c);
                continue;
            }
            if (i >= s.length()) {
                break;
            }
            char e = s.charAt(i++);
            switch (e) {
                case 'n': b.append('\n'); break;
                case 't': b.append('\t'); break;
                case 'r': b.append('\r'); break;
                case 'b': b.append('\b'); break;
                case 'f': b.append('\f'); break;
                case 'u':
                    if (i + 4 > s.length()) {
                        throw error("bad escape");
                    }
                    b.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
                    i += 4;
                    break;
                default: b.append(e);
            }
        }
        throw error("unterminated string");
    }

    private Object num() {
        int start = i;
        boolean integral = true;
        while (i < s.length()) {
            char c = s.charAt(i);
            if (c == '.' || c == 'e' || c == 'E') {
                integral = false;
            } else if (!(c == '-' || c == '+' || (c >= '0' && c <= '9'))) {
                break;
            }
            i++;
        }
        String t = s.substring(start, i);
        if (t.isEmpty()) {
            throw error("unexpected character");
        }
        if (integral) {
            try {
                return Long.parseLong(t);
            } catch (NumberFormatException e) {
                return t.startsWith("-") ? Long.MIN_VALUE : Long.MAX_VALUE; // u64 beyond a long
            }
        }
        return Double.parseDouble(t);
    }

    // ---- typed getters ----

    /** A count in bytes (or any integer): {@code -1} when null or absent. */
    static long num(Map<String, Object> m, String key) {
        Object v = m.get(key);
        return v instanceof Number ? ((Number) v).longValue() : -1L;
    }

    /** A ratio: {@code NaN} when null or absent. */
    static double dbl(Map<String, Object> m, String key) {
        Object v = m.get(key);
        return v instanceof Number ? ((Number) v).doubleValue() : Double.NaN;
    }

    /** A number, empty when null or absent (a rate the core may not know yet). */
    static OptionalDouble optDbl(Map<String, Object> m, String key) {
        Object v = m.get(key);
        return v instanceof Number ? OptionalDouble.of(((Number) v).doubleValue()) : OptionalDouble.empty();
    }

    /** A time in seconds as a {@link Duration} (nanosecond precision, saturated), empty when null or absent. */
    static Optional<Duration> optSeconds(Map<String, Object> m, String key) {
        Object v = m.get(key);
        if (!(v instanceof Number)) {
            return Optional.empty();
        }
        double nanos = ((Number) v).doubleValue() * 1e9;
        if (Double.isNaN(nanos)) {
            return Optional.empty();
        }
        return Optional.of(Duration.ofNanos(nanos >= Long.MAX_VALUE ? Long.MAX_VALUE : Math.max(0L, Math.round(nanos))));
    }

    static boolean bool(Map<String, Object> m, String key) {
        return Boolean.TRUE.equals(m.get(key));
    }

    /** A string, or {@code null}. */
    static String str(Map<String, Object> m, String key) {
        Object v = m.get(key);
        return v == null ? null : v.toString();
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> map(Map<String, Object> m, String key) {
        Object v = m.get(key);
        return v instanceof Map ? (Map<String, Object>) v : null;
    }

    static List<String> strings(Map<String, Object> m, String key) {
        Object v = m.get(key);
        if (!(v instanceof List)) {
            return List.of();
        }
        List<String> out = new ArrayList<>();
        for (Object o : (List<?>) v) {
            out.add(String.valueOf(o));
        }
        return Collections.unmodifiableList(out);
    }

    /** An object of integers as an unmodifiable map (absent: empty). */
    static Map<String, Long> counts(Map<String, Object> m, String key) {
        Map<String, Object> inner = map(m, key);
        if (inner == null) {
            return Map.of();
        }
        Map<String, Long> out = new LinkedHashMap<>();
        inner.forEach((k, v) -> {
            if (v instanceof Number) {
                out.put(k, ((Number) v).longValue());
            }
        });
        return Collections.unmodifiableMap(out);
    }
}
