package io.memguard.example;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import com.github.benmanes.caffeine.cache.Policy;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.memguard.BudgetExceededException;
import io.memguard.Level;
import io.memguard.MemGuard;
import io.memguard.Reservation;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;

/**
 * An HTTP service whose Caffeine cache of rendered items (1 MiB each by default) is guarded by
 * memguard:
 *
 * <ul>
 *   <li>{@code GET /item/<key>[?size=bytes]}: the item, from the cache or built on a miss. A miss
 *       reserves its size from memguard's budget first; when the budget refuses, the answer is
 *       {@code 503 Service Unavailable} with {@code Retry-After} (the OOM killer never gets a
 *       chance);</li>
 *   <li>the cache is emptied when memguard's level reaches Warning (a level listener), and a
 *       shedder evicts the coldest entries when memguard asks for a number of bytes;</li>
 *   <li>{@code GET /metrics}: memguard's Prometheus metrics; {@code GET /status}: the latest
 *       snapshot line and the JVM memory breakdown.</li>
 * </ul>
 *
 * {@code --selftest N} starts on a free port, sends N requests for distinct keys to itself and
 * prints how many were served (200) and refused (503), then exits.
 */
public final class CacheService {
    private final MemGuard guard;
    private final Cache<String, byte[]> cache;
    private final AtomicLong served = new AtomicLong();
    private final AtomicLong refused = new AtomicLong();
    private final AtomicLong shed = new AtomicLong();

    CacheService(MemGuard guard) {
        this.guard = guard;
        this.cache = Caffeine.newBuilder().weigher((String k, byte[] v) -> v.length)
                .maximumWeight(Long.MAX_VALUE / 2) // bounded by memguard, not by a guess
                .build();
        guard.addLevelListener(change -> {
            if (change.to().compareTo(Level.WARNING) >= 0) {
                long n = cache.estimatedSize();
                cache.invalidateAll();
                shed.addAndGet(n);
                System.out.println("memguard level " + change.to() + ": cache of " + n + " items dropped");
            }
        });
        guard.registerShedder("caffeine", 0, this::evictColdest);
    }

    /** Evict the coldest entries until {@code target} bytes are gone; returns the bytes evicted. */
    long evictColdest(long target) {
        long freed = 0;
        Policy.Eviction<String, byte[]> eviction = cache.policy().eviction().orElseThrow();
        for (Map.Entry<String, byte[]> e : eviction.coldest(64).entrySet()) {
            if (freed >= target) {
                break;
            }
            cache.invalidate(e.getKey());
            freed += e.getValue().length;
            shed.incrementAndGet();
        }
        return freed;
    }

    void item(HttpExchange ex) throws IOException {
        String key = ex.getRequestURI().getPath().substring("/item/".length());
        String q = ex.getRequestURI().getQuery();
        int size = q != null && q.startsWith("size=") ? Integer.parseInt(q.substring(5)) : 1 << 20;
        byte[] hit = cache.getIfPresent(key);
        if (hit != null) {
            served.incrementAndGet();
            send(ex, 200, hit.length + " bytes (cached)\n");
            return;
        }
        try (Reservation r = guard.reserve(size)) {
            byte[] item = new byte[size];
            for (int i = 0; i < size; i += 4096) {
                item[i] = (byte) key.hashCode(); // "render" it: the pages are really used
            }
            cache.put(key, item);
            served.incrementAndGet();
            send(ex, 200, size + " bytes (built)\n");
        } catch (BudgetExceededException e) {
            refused.incrementAndGet();
            ex.getResponseHeaders().add("Retry-After", "1");
            send(ex, 503, "memory budget exhausted: " + e.available() + " of " + e.requested()
                    + " bytes available, level " + e.level() + "\n");
        } catch (OutOfMemoryError e) {
            // The heap, not the container, ran out (a -Xmx below the limit): answer, never leave
            // the client waiting on a dead handler.
            send(ex, 500, "out of heap\n");
        }
    }

    static void send(HttpExchange ex, int code, String body) throws IOException {
        byte[] b = body.getBytes(StandardCharsets.UTF_8);
        ex.sendResponseHeaders(code, b.length);
        try (OutputStream o = ex.getResponseBody()) {
            o.write(b);
        }
    }

    HttpServer serve(int port) throws IOException {
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 64);
        server.createContext("/item/", this::item);
        server.createContext("/metrics", ex -> send(ex, 200, guard.prometheus()));
        server.createContext("/status", ex -> send(ex, 200, guard.renderSnapshot(false) + "\n"
                + "cache: " + cache.estimatedSize() + " items, served " + served + ", refused " + refused
                + ", shed " + shed + "\n" + guard.jvm().report()));
        server.setExecutor(Executors.newFixedThreadPool(4, r -> {
            Thread t = new Thread(r, "http");
            t.setDaemon(true);
            return t;
        }));
        server.start();
        return server;
    }

    public static void main(String[] args) throws Exception {
        try (MemGuard guard = MemGuard.builder().start()) { // MEMGUARD_* from the environment
            guard.heapWarning().ifPresent(System.out::println);
            CacheService svc = new CacheService(guard);
            if (args.length >= 1 && args[0].equals("--selftest")) {
                int n = args.length > 1 ? Integer.parseInt(args[1]) : 400;
                HttpServer server = svc.serve(0);
                int port = server.getAddress().getPort();
                HttpClient client = HttpClient.newHttpClient();
                int ok = 0;
                int busy = 0;
                for (int i = 0; i < n; i++) {
                    HttpResponse<String> r = client.send(HttpRequest.newBuilder(
                            URI.create("http://127.0.0.1:" + port + "/item/k" + i))
                            .timeout(java.time.Duration.ofSeconds(30)).build(),
                            HttpResponse.BodyHandlers.ofString());
                    if (r.statusCode() == 200) {
                        ok++;
                    } else if (r.statusCode() == 503) {
                        busy++;
                    }
                }
                server.stop(0);
                System.out.println("selftest: " + ok + " served, " + busy + " refused (503), " + svc.shed
                        + " items shed, level " + guard.level());
                System.out.print(guard.jvm().report());
                return;
            }
            int port = args.length >= 1 ? Integer.parseInt(args[0]) : 8080;
            svc.serve(port);
            System.out.println("listening on http://127.0.0.1:" + port + "/item/<key>  (/metrics, /status)");
            Thread.currentThread().join();
        }
    }
}
