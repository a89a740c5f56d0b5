package io.memguard;

import java.time.Duration;

/**
 * One collection memguard requested after shedding ({@link MemGuard#lastGc()}), with what it
 * returned: heap, direct buffers (freed by their cleaners after the collection) and the
 * process's resident memory.
 *
 * @param startedNanos {@code System.nanoTime()} when it started
 * @param duration how long {@code System.gc()} and the buffer cleaners took
 * @param shedBytes what the Java shedders reported freeing since the previous collection
 * @param heapUsedBefore heap used before
 * @param heapUsedAfter heap used after
 * @param heapCommittedBefore heap committed before
 * @param heapCommittedAfter heap committed after (the GC policy decides whether it shrinks)
 * @param directBefore direct buffer bytes before
 * @param directAfter direct buffer bytes after
 * @param rssBefore resident set size of the process before ({@code -1} if unknown)
 * @param rssAfter resident set size after
 */
public record GcReport(long startedNanos, Duration duration, long shedBytes, long heapUsedBefore, long heapUsedAfter,
        long heapCommittedBefore, long heapCommittedAfter, long directBefore, long directAfter, long rssBefore,
        long rssAfter) {

    /** Resident memory the collection returned to the OS (negative if it grew). */
    public long rssReturned() {
        return rssBefore < 0 || rssAfter < 0 ? 0 : rssBefore - rssAfter;
    }

    /** Direct-buffer memory freed by the buffers' cleaners after the collection. */
    public long directFreed() {
        return directBefore - directAfter;
    }

    /** Heap the collection freed (used before minus used after). */
    public long heapFreed() {
        return heapUsedBefore - heapUsedAfter;
    }
}
