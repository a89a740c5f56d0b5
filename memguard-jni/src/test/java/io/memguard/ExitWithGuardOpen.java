package io.memguard;

import java.time.Duration;

/** Child JVM: starts a guard with a listener, a shedder and a waiting puller, then returns from main. */
public final class ExitWithGuardOpen {
    private ExitWithGuardOpen() {}

    public static void main(String[] args) throws Exception {
        MemGuard guard = MemGuard.builder().fromEnv(false).start();
        guard.addLevelListener(change -> {});
        guard.addEventListener(event -> {});
        guard.registerShedder("noop", 0, target -> 0);
        Thread puller = new Thread(() -> guard.nextEvent(Duration.ofDays(1)), "puller");
        puller.setDaemon(true);
        puller.start();
        Reservation r = guard.reserve(1 << 20);
        System.out.println("started " + r.bytes() + " level " + guard.level());
        // main returns with the guard open: the JVM must exit (no non-daemon or attached thread).
    }
}
