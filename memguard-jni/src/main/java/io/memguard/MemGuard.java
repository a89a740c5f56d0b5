package io.memguard;

import java.lang.ref.Cleaner;
import java.lang.ref.Reference;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * An in-process memory guard: finds the container's real memory limit, watches the kernel's
 * notifications and gives the application a pressure {@link Level}, listeners, a soft-limit
 * budget ({@link #reserve(long)}) and cache shedding ({@link #registerShedder}) — so it sheds
 * caches or refuses work before the OOM killer strikes. What the JVM's own memory API cannot:
 * it sees the whole process against the cgroup limit (direct buffers, metaspace, thread stacks,
 * native libraries), not only the heap pools; {@link #jvm()} breaks it down.
 *
 * <pre>{@code
 * try (MemGuard guard = MemGuard.builder().warn(0.8).critical(0.9).start()) {
 *     guard.addLevelListener(change -> { if (change.to() != Level.NORMAL) cache.invalidateAll(); });
 *     guard.registerShedder("cache", 0, target -> cache.evict(target));
 *     try (Reservation r = guard.reserve(64 << 20)) {   // BudgetExceededException: answer 503
 *         handle(request);
 *     }
 * }
 * }</pre>
 *
 * <p><b>Threads.</b> memguard's own threads (reactor, dispatcher, shedding) are native and never
 * attached to the JVM, except the shedding thread for the duration of one shedder call (as a
 * daemon, detached right after). Listeners run on a Java daemon thread per guard,
 * {@code memguard-listeners-N}, that blocks in the native event feed; log records on
 * {@code memguard-log}; collections after shedding on {@code memguard-gc}. The JVM exits
 * normally with a guard open. Every method may be called from any thread, also from inside a
 * listener or shedder ({@link #close()} included). After {@code close()} every method but
 * {@code close()}, {@link #isClosed()} and {@link #heapWarning()} throws
 * {@link IllegalStateException}.
 *
 * <p><b>Lifetime.</b> {@code close()} stops the native threads and releases every file
 * descriptor and registered callback; a {@link Cleaner} does the same for a guard that becomes
 * unreachable unclosed, and frees the native object once the guard is unreachable.
 */
public final class MemGuard implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger("memguard");
    private static final Cleaner CLEANER = Cleaner.create(r -> {
        Thread t = new Thread(r, "memguard-cleaner");
        t.setDaemon(true);
        return t;
    });
    private static final AtomicBoolean HEAP_WARNED = new AtomicBoolean();

    /** The Cleaner's action and the state shared with it: never references the MemGuard. */
    private static final class State implements Runnable {
        final long handle;
        final GcAfterShed gc;
        volatile boolean closed;

        State(long handle, GcAfterShed gc) {
            this.handle = handle;
            this.gc = gc;
        }

        synchronized void close() {
            if (!closed) {
                closed = true;
                gc.close();
                NativeLib.close(handle);
            }
        }

        @Override
        public void run() { // the Cleaner: the MemGuard is unreachable, no call can be in flight
            close();
            NativeLib.free(handle);
        }
    }

    private final long handle;
    private final State state;
    private final Cleaner.Cleanable cleanable;
    private final Dispatcher dispatcher = new Dispatcher();
    private final int listenerQueue;
    private final String heapWarning;

    private MemGuard(long handle, GcAfterShed gc, int listenerQueue, boolean heapCheck) {
        this.handle = handle;
        this.state = new State(handle, gc);
        this.cleanable = CLEANER.register(this, state);
        this.listenerQueue = listenerQueue;
        this.heapWarning = heapCheck ? checkHeap() : null;
    }

    /** A builder with defaults, reading {@code MEMGUARD_*} variables unless {@link Builder#fromEnv(boolean) fromEnv(false)}. */
    public static Builder builder() {
        return new Builder();
    }

    /** A guard configured from the {@code MEMGUARD_*} environment only. */
    public static MemGuard start() {
        return builder().start();
    }

    private void checkOpen() {
        if (state.closed) {
            throw new IllegalStateException("this memguard guard is closed");
        }
    }

    // ------------------------------------------------------------------ state ----

    /** The current level (one atomic load). */
    public Level level() {
        checkOpen();
        try {
            return Level.of(NativeLib.level(handle));
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /** The latest snapshot (no syscall), with the budget's counters. */
    public Snapshot snapshot() {
        checkOpen();
        try {
            return Snapshot.parse(NativeLib.snapshot(handle));
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /** The limits as last detected. */
    public Limits limits() {
        checkOpen();
        try {
            return Limits.parse(NativeLib.limits(handle));
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /** Every event source tried, armed or not, as the core's JSON array. */
    public String sourcesJson() {
        checkOpen();
        try {
            return NativeLib.sources(handle);
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /** The configuration in force as JSON (thresholds, intervals in nanoseconds, switches). */
    public String configJson() {
        checkOpen();
        try {
            return NativeLib.config(handle);
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /**
     * The predictive warning horizons in force ({@link Builder#horizon}, or the
     * {@code MEMGUARD_HORIZON_*} variables, or the defaults).
     */
    public Horizon horizon() {
        return Horizon.from(Json.object(configJson()));
    }

    /** The budget's counters. */
    public BudgetStats budget() {
        checkOpen();
        try {
            return BudgetStats.from(Json.object(NativeLib.budget(handle)));
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /** The metrics in the Prometheus text format (rendered by the core), for a {@code /metrics} endpoint. */
    public String prometheus() {
        checkOpen();
        try {
            return NativeLib.prometheus(handle);
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /** The latest shedding run, if any. */
    public Optional<ShedReport> lastShed() {
        checkOpen();
        try {
            String s = NativeLib.lastShed(handle);
            return s == null ? Optional.empty() : Optional.of(ShedReport.parse(s));
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /**
     * The {@code memguard watch} header for this guard (level, limit, every source tried), rendered
     * by the core.
     *
     * @param json the JSON line instead of text
     */
    public String renderHeader(boolean json) {
        checkOpen();
        try {
            return NativeLib.render(handle, 0, json);
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /** The latest snapshot as a {@code memguard watch --snapshot-every} line, rendered by the core. */
    public String renderSnapshot(boolean json) {
        checkOpen();
        try {
            return NativeLib.render(handle, 1, json);
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /** This JVM's memory, pool by pool, against the cgroup's working set and the effective limit. */
    public JvmMemory jvm() {
        return JvmMemory.measure(snapshot(), limits());
    }

    /**
     * The start-up check's warning, if the JVM's max heap plus what it already used outside the
     * heap exceeded the effective limit when the guard started (logged once per JVM).
     */
    public Optional<String> heapWarning() {
        return Optional.ofNullable(heapWarning);
    }

    // ------------------------------------------------------------- pull API ----

    /**
     * The next event, waiting up to {@code timeout}; empty on timeout or once closed (a waiter
     * returns at once when the guard is closed). Events are queued from the start (up to the
     * queue capacity; the oldest are dropped beyond it). Independent of the listeners.
     *
     * @throws IllegalStateException if the guard is closed when called
     */
    public Optional<Event> nextEvent(Duration timeout) {
        checkOpen();
        long nanos = saturatedNanos(timeout);
        try {
            String[] e = NativeLib.nextEvent(handle, nanos);
            return e == null ? Optional.empty() : Optional.of(Event.parse(e[0], e[1]));
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /** Events dropped from the pull queue because nobody read them. */
    public long droppedEvents() {
        checkOpen();
        try {
            return NativeLib.droppedEvents(handle);
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    // ------------------------------------------------------------ listeners ----

    /** Call {@code listener} on every level change, on this guard's listener thread. */
    public Registration addLevelListener(LevelListener listener) {
        return addLevelListener(listener, null);
    }

    /** Call {@code listener} on every level change, on {@code executor} ({@code null}: the listener thread). */
    public Registration addLevelListener(LevelListener listener, Executor executor) {
        Objects.requireNonNull(listener, "listener");
        return addListener(listener, null, executor);
    }

    /** Call {@code listener} on every event (kernel events and level changes), on the listener thread. */
    public Registration addEventListener(EventListener listener) {
        return addEventListener(listener, null);
    }

    /** Call {@code listener} on every event, on {@code executor} ({@code null}: the listener thread). */
    public Registration addEventListener(EventListener listener, Executor executor) {
        Objects.requireNonNull(listener, "listener");
        return addListener(null, listener, executor);
    }

    private Registration addListener(LevelListener level, EventListener event, Executor executor) {
        checkOpen();
        try {
            Registration r = dispatcher.add(level, event, executor);
            dispatcher.startIfNeeded(handle, listenerQueue);
            return r;
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /** Listener calls that threw (logged; the guard keeps running). */
    public long listenerErrors() {
        return dispatcher.errors();
    }

    // -------------------------------------------------------------- budget ----

    /**
     * Reserve {@code bytes} from the soft-limit budget: never blocks, no syscall. Close the
     * reservation (try-with-resources) to return them.
     *
     * @throws BudgetExceededException when refused (requested and available bytes, soft limit, level)
     * @throws IllegalArgumentException for a negative size
     */
    public Reservation reserve(long bytes) {
        checkOpen();
        try {
            return new Reservation(NativeLib.reserve(handle, bytes), bytes);
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /** Like {@link #reserve(long)}, but {@code null} instead of an exception when refused. */
    public Reservation tryReserve(long bytes) {
        checkOpen();
        try {
            long h = NativeLib.tryReserve(handle, bytes);
            return h == 0 ? null : new Reservation(h, bytes);
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /** Reserve unconditionally (essential work): always granted, counted against the others. */
    public Reservation reserveForced(long bytes) {
        checkOpen();
        try {
            return new Reservation(NativeLib.reserveForced(handle, bytes), bytes);
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    // ------------------------------------------------------------- shedding ----

    /**
     * Register a cache that can free memory. Under pressure memguard asks shedders, lowest
     * {@code priority} first, on its shedding thread, for the bytes needed to bring memory back
     * below the warning band; each returns what it freed. When a shedder freed memory the guard
     * requests one collection afterwards (see {@link Builder#gcAfterShed}).
     *
     * <p>The registration keeps {@code shedder} (and what it captures) reachable until closed
     * or the guard closes.
     */
    public Registration registerShedder(String name, int priority, Shedder shedder) {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(shedder, "shedder");
        checkOpen();
        try {
            long id = NativeLib.registerShedder(handle, name, priority, new ShedderCall(name, shedder, state.gc));
            State s = state;
            return new Registration() {
                private final AtomicBoolean done = new AtomicBoolean();

                @Override
                public void close() {
                    if (done.compareAndSet(false, true) && !s.closed) {
                        try {
                            NativeLib.unregister(s.handle, id);
                        } finally {
                            Reference.reachabilityFence(MemGuard.this);
                        }
                    }
                }
            };
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /**
     * Return freed native heap to the OS now ({@code malloc_trim(0)}, rate-limited like the trims
     * after shedding): {@code "released"}, {@code "trimmed"}, {@code "rate_limited"},
     * {@code "disabled"} or {@code "unsupported"}.
     */
    public String mallocTrim() {
        checkOpen();
        try {
            return NativeLib.mallocTrim(handle);
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /** The latest collection requested after shedding, if any. */
    public Optional<GcReport> lastGc() {
        return Optional.ofNullable(state.gc.last());
    }

    /** Collections requested after shedding so far. */
    public long gcCount() {
        return state.gc.runs();
    }

    // ---------------------------------------------------------------- close ----

    /** True once {@link #close()} was called. */
    public boolean isClosed() {
        return state.closed;
    }

    /**
     * Stop memguard's threads, release every file descriptor and drop every listener and shedder.
     * Idempotent; callable from any thread, also from inside a listener or shedder.
     */
    @Override
    public void close() {
        try {
            state.close();
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    @Override
    public String toString() {
        return "MemGuard[" + (state.closed ? "closed" : "running") + "]";
    }

    // ---------------------------------------------------------- static info ----

    /** memguard's version (the native library's). */
    public static String version() {
        return NativeLib.version();
    }

    /** Every {@code MEMGUARD_*} variable the builder reads. */
    public static List<String> envVars() {
        return List.of(NativeLib.envVars());
    }

    /** Every event kind name ({@link Event#kind()}). */
    public static List<String> eventKinds() {
        return List.of(NativeLib.eventKinds());
    }

    /**
     * The {@code memguard status} report, exactly as the Rust CLI prints it (rendered by the core),
     * configured from the {@code MEMGUARD_*} environment.
     *
     * @param format {@code "text"}, {@code "json"} or {@code "prometheus"}
     */
    public static String status(String format) {
        return NativeLib.renderStatus(format, true);
    }

    static long saturatedNanos(Duration d) {
        if (d.isNegative()) {
            return 0;
        }
        try {
            return d.toNanos();
        } catch (ArithmeticException e) {
            return Long.MAX_VALUE;
        }
    }

    // --------------------------------------------------------- heap check ----

    private String checkHeap() {
        Limits l = limits();
        if (l.limitBytes() <= 0) {
            return null;
        }
        JvmMemory j = JvmMemory.measure(null, l);
        long max = Runtime.getRuntime().maxMemory();
        long outside = j.outsideHeapBytes();
        if (max == Long.MAX_VALUE || max + outside <= l.limitBytes()) {
            return null;
        }
        String by = "override".equals(l.limitApplied()) ? "from " + l.limitOverrideSource()
                : l.limitCgroup() != null ? "set by cgroup " + l.limitCgroup() + " (" + l.cgroup() + ")"
                : "set above the visible cgroup root (" + l.cgroup() + ")";
        boolean parentOnly = "v2".equals(l.cgroup()) && "cgroup".equals(l.limitApplied()) && l.limitCgroup() != null
                && !l.limitCgroup().equals(l.cgroupPath());
        long sees = j.jvmTotalMemoryBytes();
        String msg = String.format("memguard: the JVM's max heap %s plus %s it already uses outside the heap "
                + "(metaspace, code cache, direct and mapped buffers) exceed the effective memory limit %s %s: the heap "
                + "can grow until the kernel OOM-kills the process, before any GC pressure. The JVM itself sees %s of "
                + "memory%s. Set -Xmx or -XX:MaxRAMPercentage below the limit.", JvmMemory.bytes(max),
                JvmMemory.bytes(outside), JvmMemory.bytes(l.limitBytes()), by, JvmMemory.bytes(sees),
                sees <= l.limitBytes() ? "" : parentOnly ? " (it did not find this limit: JDK 17 misses a cgroup v2 "
                        + "limit set only on a parent cgroup)" : " (it did not find this limit)");
        if (HEAP_WARNED.compareAndSet(false, true)) {
            LOG.log(System.Logger.Level.WARNING, msg);
        }
        return msg;
    }

    // -------------------------------------------------------------- builder ----

    /**
     * Configures a {@link MemGuard}. Every setting of the Rust builder, with the same ranges
     * (checked at {@link #start()}: a {@link MemGuardConfigException} names the setting and, for a
     * value from the environment, the {@code MEMGUARD_*} variable). Values set here win over the
     * environment. Defaults are those of the README's configuration table.
     */
    public static final class Builder {
        private final Map<String, String> settings = new LinkedHashMap<>();
        private boolean fromEnv = true;
        private boolean gcAfterShed = true;
        private Duration gcMinInterval = Duration.ofMillis(100);
        private int listenerQueue = 1024;
        private boolean heapCheck = true;

        Builder() {}

        private Builder set(String key, String value) {
            settings.put(key, value);
            return this;
        }

        private static String nanos(Duration d) {
            Objects.requireNonNull(d, "duration");
            if (d.isNegative()) {
                return "-" + d.abs().toNanos();
            }
            return Long.toString(saturatedNanos(d));
        }

        /** Read {@code MEMGUARD_*} variables first (default true); values set here win. */
        public Builder fromEnv(boolean on) {
            this.fromEnv = on;
            return this;
        }

        /** Warning threshold, fraction of the effective limit (default 0.80). */
        public Builder warn(double fraction) {
            return set("warn", Double.toString(fraction));
        }

        /** Critical threshold, fraction of the effective limit (default 0.90). */
        public Builder critical(double fraction) {
            return set("critical", Double.toString(fraction));
        }

        /** Hysteresis band on the way down (default 0.05). */
        public Builder hysteresis(double fraction) {
            return set("hysteresis", Double.toString(fraction));
        }

        /**
         * Predictive warning horizons: the level rises to {@link Level#WARNING} when the
         * predicted time to the limit at the current steady growth ({@link Snapshot#timeToLimit()})
         * is shorter than {@code warn}, to {@link Level#CRITICAL} when it is shorter than
         * {@code critical} (defaults 250 ms and 100 ms; {@code MEMGUARD_HORIZON_WARN},
         * {@code MEMGUARD_HORIZON_CRITICAL}). {@link Duration#ZERO} disables either. Checked at
         * {@link #start()}: {@code warn} at most 10 s, {@code critical} at most {@code warn} unless
         * the warning horizon is disabled ({@link MemGuardConfigException} naming
         * {@code horizon_warn} or {@code horizon_critical}).
         */
        public Builder horizon(Duration warn, Duration critical) {
            return set("horizon", nanos(warn) + "," + nanos(critical));
        }

        /** The budget's soft limit, fraction of the effective limit (default 0.85). */
        public Builder softLimit(double fraction) {
            return set("soft_limit", Double.toString(fraction));
        }

        /** The operator's limit in bytes (at least 1 MiB); the lower of it and the detected limit applies. */
        public Builder limitOverride(long bytes) {
            return set("limit_override", Long.toUnsignedString(bytes));
        }

        /** How long a kernel event's level floor holds (default 2 s). */
        public Builder eventHold(Duration hold) {
            return set("event_hold", nanos(hold));
        }

        /** Sampling interval bounds (default 5 ms .. 1 s). */
        public Builder sampleInterval(Duration min, Duration max) {
            return set("sample_interval", nanos(min) + "," + nanos(max));
        }

        /** The fastest allocation rate the sampler keeps up with, bytes per second (default 2 GiB/s). */
        public Builder maxAllocRate(long bytesPerSecond) {
            return set("max_alloc_rate", Long.toString(bytesPerSecond));
        }

        /** Without a cgroup limit, {@code MemTotal} minus this is the limit (default 100 MiB). */
        public Builder evictionThreshold(long bytes) {
            return set("eviction_threshold", Long.toString(bytes));
        }

        /** Arm PSI triggers (default on). */
        public Builder psi(boolean on) {
            return set("psi", Boolean.toString(on));
        }

        /** Arm cgroup notifications: {@code memory.events}, v1 eventfds (default on). */
        public Builder cgroupEvents(boolean on) {
            return set("cgroup_events", Boolean.toString(on));
        }

        /** Minimum time between two {@code high} / {@code max} events (default 100 ms). */
        public Builder debounce(Duration d) {
            return set("debounce", nanos(d));
        }

        /** Minimum time between two shedding runs under persistent pressure (default 1 s). */
        public Builder shedInterval(Duration d) {
            return set("shed_interval", nanos(d));
        }

        /** {@code malloc_trim(0)} after shedding freed memory, at most once per interval (default on, 10 ms). */
        public Builder mallocTrim(boolean on, Duration minInterval) {
            return set("malloc_trim", on + "," + nanos(minInterval));
        }

        /** How often detection re-runs (default 10 s). */
        public Builder redetectInterval(Duration d) {
            return set("redetect_interval", nanos(d));
        }

        /** Events kept for {@link MemGuard#nextEvent} (default 1024; the oldest are dropped). */
        public Builder queueCapacity(int events) {
            return set("queue_capacity", Integer.toString(events));
        }

        /** Read {@code /proc} and {@code /sys/fs/cgroup} under this prefix. */
        public Builder root(String root) {
            return set("root", Objects.requireNonNull(root, "root"));
        }

        /** Guard the cgroup of another process. */
        public Builder pid(long pid) {
            return set("pid", Long.toString(pid));
        }

        /**
         * Java only: after a Java shedder freed memory, request one collection
         * ({@code System.gc()}) so the heap and direct buffers it dropped are returned, at most
         * once per {@code minInterval} and never more than a fifth of the time (default on, 100 ms).
         */
        public Builder gcAfterShed(boolean on, Duration minInterval) {
            if (minInterval.isNegative()) {
                throw new MemGuardConfigException("invalid configuration: gc_after_shed = " + minInterval
                        + ": the interval must not be negative", "gc_after_shed", null, minInterval.toString());
            }
            this.gcAfterShed = on;
            this.gcMinInterval = minInterval;
            return this;
        }

        /** Java only: messages queued for the listener thread (default 1024; the oldest are dropped). */
        public Builder listenerQueueCapacity(int messages) {
            if (messages < 1) {
                throw new MemGuardConfigException("invalid configuration: listener_queue_capacity = " + messages
                        + ": must be at least 1", "listener_queue_capacity", null, Integer.toString(messages));
            }
            this.listenerQueue = messages;
            return this;
        }

        /** Java only: check the max heap against the limit at start and warn (default on). */
        public Builder heapCheck(boolean on) {
            this.heapCheck = on;
            return this;
        }

        /**
         * Detect the limits, arm every kernel source available and start the threads.
         *
         * @throws MemGuardConfigException for a setting out of range (naming it)
         * @throws MemGuardIOException when {@code /proc} cannot be read
         */
        public MemGuard start() {
            NativeLib.ensureLoaded();
            List<String> keys = new ArrayList<>(settings.keySet());
            List<String> values = new ArrayList<>(settings.values());
            long h = NativeLib.start(keys.toArray(new String[0]), values.toArray(new String[0]), fromEnv);
            return new MemGuard(h, new GcAfterShed(gcAfterShed, gcMinInterval), listenerQueue, heapCheck);
        }
    }
}
