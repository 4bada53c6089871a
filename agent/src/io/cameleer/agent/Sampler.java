package io.cameleer.agent;

import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Which completed exchanges are traced whole: a share of them, and at most
 * a number a second (as Datadog's tracers cap theirs at 100 a second), so
 * the cost of the traces an app keeps, to it and to every store after it,
 * stays flat as its load grows. Failed exchanges are kept whatever this says.
 */
final class Sampler {
    /** Bits of state for the count within the second; the rest hold the second. */
    private static final int COUNT_BITS = 24;
    static final long MAX_LIMIT = (1L << COUNT_BITS) - 1;
    private static final long COUNT_MASK = MAX_LIMIT;

    private final double share;
    private final long limit;
    /** The current second and how many were taken in it, in one word. */
    private final AtomicLong state = new AtomicLong();

    /** share of exchanges, at most limit a second (0: no limit). */
    Sampler(double share, long limit) {
        this.share = share;
        this.limit = limit;
    }

    boolean sample() {
        if (share <= 0 || share < 1 && ThreadLocalRandom.current().nextDouble() >= share) {
            return false;
        }
        return limit <= 0 || take(System.nanoTime() / 1_000_000_000L);
    }

    /** Takes one of the second's limit, if any is left. */
    boolean take(long second) {
        long stamp = second << COUNT_BITS;
        for (;;) {
            long s = state.get();
            if ((s & ~COUNT_MASK) != stamp) {
                if (state.compareAndSet(s, stamp | 1)) {
                    return true;
                }
                continue;
            }
            if ((s & COUNT_MASK) >= limit) {
                return false;
            }
            if (state.compareAndSet(s, s + 1)) {
                return true;
            }
        }
    }
}
