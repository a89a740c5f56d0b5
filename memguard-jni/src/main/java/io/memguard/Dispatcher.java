package io.memguard;

import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executor;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Runs a guard's listeners on a Java-owned daemon thread ({@code memguard-listeners-N}) that
 * blocks in the native listener feed: no native thread is ever attached to the JVM for
 * listeners, the JVM exits with a guard open, and listeners run with the class loader and
 * context of the thread that started the guard. Holds no reference to the {@code MemGuard}.
 *
 * <p>A listener that throws is logged and counted; the others and the guard keep running. A
 * listener given an {@link Executor} is handed to it instead of running on this thread.
 */
final class Dispatcher {
    private static final System.Logger LOG = System.getLogger("memguard.listeners");
    private static final AtomicLong THREADS = new AtomicLong();
    private static final long WAIT_NANOS = 1_000_000_000L;
    /** How an event message begins (listen.rs writes {@code {"event": ...}}); level messages do not. */
    private static final String EVENT_PREFIX = "{\"event\":";

    /** One registered listener. Its monitor is held while it runs on the dispatcher thread. */
    private static final class Entry implements Registration {
        final LevelListener level;
        final EventListener event;
        final Executor executor;
        final Dispatcher owner;
        volatile boolean active = true;

        Entry(Dispatcher owner, LevelListener level, EventListener event, Executor executor) {
            this.owner = owner;
            this.level = level;
            this.event = event;
            this.executor = executor;
        }

        @Override
        public void close() {
            active = false;
            owner.entries.remove(this);
            if (Thread.currentThread() != owner.thread) {
                synchronized (this) {
                    // waits for a running call on the dispatcher thread to return
                }
            }
        }
    }

    private final CopyOnWriteArrayList<Entry> entries = new CopyOnWriteArrayList<>();
    private final AtomicLong errors = new AtomicLong();
    private volatile Thread thread;
    private volatile long feed;

    /** Start the thread on the guard's feed (called once, with the guard open). */
    synchronized void startIfNeeded(long guard, int capacity) {
        if (thread != null) {
            return;
        }
        feed = NativeLib.listenerFeed(guard, capacity);
        Thread t = new Thread(this::run, "memguard-listeners-" + THREADS.incrementAndGet());
        t.setDaemon(true);
        thread = t;
        t.start();
    }

    Registration add(LevelListener level, EventListener event, Executor executor) {
        Entry e = new Entry(this, level, event, executor);
        entries.add(e);
        return e;
    }

    long errors() {
        return errors.get();
    }

    long dropped() {
        long f = feed;
        Thread t = thread;
        return f == 0 || t == null || !t.isAlive() ? 0 : NativeLib.listenerDropped(f);
    }

    Thread thread() {
        return thread;
    }

    private void run() {
        long f = feed;
        try {
            while (true) {
                String msg = NativeLib.nextListenerMessage(f, WAIT_NANOS);
                if (msg == null) {
                    return; // the guard closed
                }
                if (!msg.isEmpty()) {
                    deliver(msg);
                }
            }
        } finally {
            entries.clear();
            NativeLib.freeFeed(f);
        }
    }

    private void deliver(String msg) {
        // The feed carries both kinds; a message no registered listener wants is not decoded
        // (a level change's snapshot is the largest JSON the thread would parse).
        boolean isEvent = msg.startsWith(EVENT_PREFIX);
        if (entries.stream().noneMatch(e -> isEvent ? e.event != null : e.level != null)) {
            return;
        }
        Map<String, Object> m = Json.object(msg);
        String ev = Json.str(m, "event");
        if (ev != null) {
            Event event = Event.parse(ev, Json.str(m, "text"));
            for (Entry e : entries) {
                if (e.event != null) {
                    call(e, () -> e.event.onEvent(event));
                }
            }
        } else {
            String snap = Json.str(m, "snapshot");
            LevelChange change = new LevelChange(Level.parse(Json.str(m, "from")), Level.parse(Json.str(m, "to")),
                    Snapshot.parse(snap));
            for (Entry e : entries) {
                if (e.level != null) {
                    call(e, () -> e.level.onLevelChange(change));
                }
            }
        }
    }

    private void call(Entry e, Runnable r) {
        if (!e.active) {
            return;
        }
        if (e.executor != null) {
            try {
                e.executor.execute(() -> {
                    if (e.active) {
                        guardedRun(r);
                    }
                });
            } catch (RuntimeException rejected) {
                errors.incrementAndGet();
                LOG.log(System.Logger.Level.WARNING, "memguard: a listener's executor rejected a call", rejected);
            }
            return;
        }
        synchronized (e) {
            if (e.active) {
                guardedRun(r);
            }
        }
    }

    private void guardedRun(Runnable r) {
        try {
            r.run();
        } catch (Throwable t) { // NOPMD: a listener's bug must not stop the others or the guard
            errors.incrementAndGet();
            LOG.log(System.Logger.Level.WARNING, "memguard: a listener threw (the guard keeps running)", t);
        }
    }
}
