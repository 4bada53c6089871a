package io.cameleer.agent;

import java.util.Arrays;

/** How many ran, failed, their summed durations and histogram (api.Count). */
final class Count {
    private static final double LOG2E = 1.4426950408889634;
    private long count;
    private long failures;
    private long sum;
    private long[] buckets = new long[64];

    synchronized void add(long micros, boolean failed) {
        count++;
        if (failed) {
            failures++;
        }
        sum += micros;
        int b = bucket(micros);
        if (b >= buckets.length) {
            buckets = Arrays.copyOf(buckets, Math.max(b + 1, buckets.length * 2));
        }
        buckets[b]++;
    }

    /** Durations below this take their bucket from a table: most do. */
    private static final int TABLED = 1 << 14;
    private static final byte[] TABLE = new byte[TABLED];

    static {
        for (int i = 0; i < TABLED; i++) {
            TABLE[i] = (byte) compute(i);
        }
    }

    /** api.Bucket: floor(8·log2(micros)), 0 for ≤ 1, computed as Go's math.Log2 does. */
    static int bucket(long micros) {
        if (micros < TABLED) {
            return micros <= 1 ? 0 : TABLE[(int) micros];
        }
        return compute(micros);
    }

    private static int compute(long micros) {
        if (micros <= 1) {
            return 0;
        }
        double x = micros;
        int exp = Math.getExponent(x) + 1;
        double frac = Math.scalb(x, -exp);
        double log2 = frac == 0.5 ? exp - 1 : StrictMath.log(frac) * LOG2E + exp;
        return (int) Math.floor(8 * log2);
    }

    synchronized void json(StringBuilder b) {
        Json.field(b, "count", count);
        Json.field(b, "failures", failures);
        Json.field(b, "sum", sum);
        Json.key(b, "buckets").append('[');
        boolean first = true;
        for (int i = 0; i < buckets.length; i++) {
            if (buckets[i] != 0) {
                b.append(first ? "" : ",").append('[').append(i).append(',').append(buckets[i]).append(']');
                first = false;
            }
        }
        b.append(']');
    }
}
