package io.cameleer.agent;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Iterator;
import java.util.HexFormat;

/**
 * The events the runner has not acknowledged yet, serialized, bounded by
 * their total size: past it the oldest go, and are counted. They are held
 * in one array used as a ring (grown up to the bound, never shrunk), not an
 * object each: events wait up to a pull interval for the runner, and the
 * garbage collector would copy every one of them at each young collection
 * (pauses of milliseconds under full capture). App threads only copy their
 * event in under the lock; no app thread ever waits on the network.
 */
final class EventBuffer {
    private final String boot;
    private final int capacity;
    private byte[] ring;
    /** Where the oldest event held starts in ring, and the bytes held. */
    private int head;
    private int used;
    /** The events held, oldest first from first: their seqs and lengths, in rings of their own. */
    private long[] seqs = new long[256];
    private int[] lens = new int[256];
    private int first;
    private int count;
    private long seq;
    private long dropped;
    /** The highest seq handed to the runner in an answer, since its last acknowledgement. */
    private long answered;
    /** Events pushed out after they were handed out, not acknowledged yet. */
    private long[] handedOut = new long[16];
    private int handed;
    /**
     * Stats windows and route models, held apart from the ring so that a
     * flood of traces does not push them out: they are every exchange's
     * figures, and few. Bounded on their own at a sixteenth of the buffer.
     */
    private final ArrayDeque<Held> aggregates = new ArrayDeque<>();
    private int aggregateBytes;
    private final int aggregateBound;
    /** Held by a pull from copying its answer to sending it: answer is its alone. */
    private final Object sending = new Object();
    private byte[] answer = new byte[0];

    /** capacity bounds the bytes held: a sixteenth for the aggregates, the rest for the ring. */
    EventBuffer(long capacity) {
        long bound = Math.max(0, Math.min(capacity, Integer.MAX_VALUE - 8));
        this.aggregateBound = (int) (bound / 16);
        this.capacity = (int) (bound - aggregateBound);
        ring = new byte[Math.max(1, Math.min(this.capacity, 64 << 10))];
        byte[] b = new byte[8];
        new SecureRandom().nextBytes(b);
        boot = HexFormat.of().formatHex(b);
    }

    String boot() {
        return boot;
    }

    private record Held(long seq, byte[] json) {}

    /** Adds a stats window or a route model. */
    void addAggregate(String json) {
        byte[] b = json.getBytes(StandardCharsets.UTF_8);
        synchronized (this) {
            seq++;
            if (b.length > aggregateBound) {
                dropped++;
                return;
            }
            while (aggregateBytes + b.length > aggregateBound) {
                Held gone = aggregates.removeFirst();
                aggregateBytes -= gone.json.length;
                evicted(gone.seq);
            }
            aggregates.addLast(new Held(seq, b));
            aggregateBytes += b.length;
        }
    }

    /** Adds an original (or, in tests, any event). */
    void add(String json) {
        add(json.getBytes(StandardCharsets.UTF_8));
    }

    /** Adds a trace, written in UTF-8 already. */
    void add(byte[] b) {
        synchronized (this) {
            seq++;
            if (b.length > capacity) {
                dropped++;
                return;
            }
            while (used + b.length > capacity) {
                evicted(seqs[first]);
                free();
            }
            if (used + b.length > ring.length) {
                grow(used + b.length);
            }
            int tail = (head + used) % ring.length;
            int n = Math.min(b.length, ring.length - tail);
            System.arraycopy(b, 0, ring, tail, n);
            System.arraycopy(b, n, ring, 0, b.length - n);
            used += b.length;
            if (count == seqs.length) {
                seqs = unwrap(seqs);
                lens = unwrap(lens);
                first = 0;
            }
            int at = (first + count) % seqs.length;
            seqs[at] = seq;
            lens[at] = b.length;
            count++;
        }
    }

    /**
     * Counts an event pushed out. One the runner was not handed yet is
     * dropped; one it was handed but has not acknowledged may be kept by it
     * (its cursor says, at its next pull), so it is noted, not counted.
     */
    private void evicted(long s) {
        if (s > answered) {
            dropped++;
            return;
        }
        if (handed == handedOut.length) {
            handedOut = Arrays.copyOf(handedOut, handedOut.length * 2);
        }
        handedOut[handed++] = s;
    }

    /**
     * Settles the events handed out and pushed out since the last pull:
     * those past what the runner now acknowledges (after; -1: a runner
     * that holds nothing of this boot) were lost with it, and are dropped.
     */
    private void settle(long after) {
        for (int i = 0; i < handed; i++) {
            if (handedOut[i] > after) {
                dropped++;
            }
        }
        handed = 0;
        answered = Math.max(after, 0);
    }

    /** Lets the oldest event go. */
    private void free() {
        int len = lens[first];
        head = (head + len) % ring.length;
        used -= len;
        first = (first + 1) % seqs.length;
        count--;
    }

    /** Moves the bytes held to the start of a ring of at least need bytes. */
    private void grow(int need) {
        byte[] to = new byte[(int) Math.min(capacity, Math.max(need, 2L * ring.length))];
        copyOut(head, used, to, 0);
        ring = to;
        head = 0;
    }

    /** Copies n bytes of the ring from at (wrapping round) into to at offset. */
    private void copyOut(int at, int n, byte[] to, int offset) {
        int a = Math.min(n, ring.length - at);
        System.arraycopy(ring, at, to, offset, a);
        System.arraycopy(ring, 0, to, offset + a, n - a);
    }

    /** The index ring twice as long, its entries from first at 0. */
    private long[] unwrap(long[] r) {
        long[] to = new long[r.length * 2];
        for (int i = 0; i < count; i++) {
            to[i] = r[(first + i) % r.length];
        }
        return to;
    }

    private int[] unwrap(int[] r) {
        int[] to = new int[r.length * 2];
        for (int i = 0; i < count; i++) {
            to[i] = r[(first + i) % r.length];
        }
        return to;
    }

    /** Where a pull's answer goes: the bytes of answer[0, length). */
    interface Answer {
        void send(byte[] answer, int length) throws IOException;
    }

    /**
     * Answers boot=askedBoot&after=after: with this agent's boot, the
     * events up to after are freed and those past it answered; with another,
     * everything still held is. At most max bytes of events, but always at
     * least one when there is one. The answer is copied under the lock into
     * a buffer kept for the next pull (a megabyte allocated a pull made the
     * app's young collections more frequent under full capture), and sent
     * outside it: no app thread waits on the network. Pulls take turns.
     */
    void batch(String askedBoot, long after, long max, Answer to) throws IOException {
        synchronized (sending) {
            int length;
            synchronized (this) {
                length = copyBatch(askedBoot, after, max);
            }
            to.send(answer, length);
        }
    }

    private int copyBatch(String askedBoot, long after, long max) {
        boolean ours = boot.equals(askedBoot);
        settle(ours ? after : -1);
        if (ours) {
            while (count > 0 && seqs[first] <= after) {
                free();
            }
            while (!aggregates.isEmpty() && aggregates.peekFirst().seq <= after) {
                aggregateBytes -= aggregates.removeFirst().json.length;
            }
        }
        long oldest = Math.min(count == 0 ? seq + 1 : seqs[first], aggregates.isEmpty() ? seq + 1 : aggregates.peekFirst().seq);
        long last = ours ? after : oldest - 1;
        // The events answered, the ring's and the aggregates' merged by seq.
        int n = 0;
        int a = 0;
        long size = 0;
        Iterator<Held> it = aggregates.iterator();
        Held agg = it.hasNext() ? it.next() : null;
        while (n < count || agg != null) {
            boolean fromRing = agg == null || n < count && seqs[(first + n) % seqs.length] < agg.seq;
            int len = fromRing ? lens[(first + n) % seqs.length] : agg.json.length;
            if (n + a > 0 && size + len > max) {
                break;
            }
            size += len;
            if (fromRing) {
                last = seqs[(first + n) % seqs.length];
                n++;
            } else {
                last = agg.seq;
                a++;
                agg = it.hasNext() ? it.next() : null;
            }
        }
        answered = Math.max(answered, last);
        StringBuilder h = new StringBuilder("{");
        Json.field(h, "boot", boot);
        Json.field(h, "last", last);
        Json.field(h, "dropped", dropped);
        Json.key(h, "events").append('[');
        byte[] head = h.toString().getBytes(StandardCharsets.UTF_8);
        int length = (int) (head.length + size + Math.max(n + a - 1, 0) + 2);
        if (answer.length < length) {
            answer = new byte[length];
        }
        System.arraycopy(head, 0, answer, 0, head.length);
        int out = head.length;
        int from = this.head;
        int i = 0;
        int j = 0;
        it = aggregates.iterator();
        agg = a > 0 ? it.next() : null;
        for (int w = 0; w < n + a; w++) {
            if (w > 0) {
                answer[out++] = ',';
            }
            if (j == a || i < n && seqs[(first + i) % seqs.length] < agg.seq) {
                int len = lens[(first + i) % seqs.length];
                copyOut(from, len, answer, out);
                from = (from + len) % ring.length;
                out += len;
                i++;
            } else {
                System.arraycopy(agg.json, 0, answer, out, agg.json.length);
                out += agg.json.length;
                agg = ++j < a ? it.next() : null;
            }
        }
        answer[out++] = ']';
        answer[out++] = '}';
        return out;
    }
}
