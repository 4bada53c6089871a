package io.cameleer.agent;

import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;

/**
 * The events the runner has not acknowledged yet, serialized, bounded by
 * their total size: past it the oldest go, and are counted. App threads only
 * append under the lock; the answer to the runner is copied under it and
 * written out after, so no app thread ever waits on the network.
 */
final class EventBuffer {
    private final String boot;
    private final long capacity;
    private final ArrayDeque<Entry> entries = new ArrayDeque<>();
    private long bytes;
    private long seq;
    private long dropped;

    private record Entry(long seq, byte[] json) {}

    EventBuffer(long capacity) {
        this.capacity = capacity;
        byte[] b = new byte[8];
        new SecureRandom().nextBytes(b);
        boot = HexFormat.of().formatHex(b);
    }

    String boot() {
        return boot;
    }

    void add(String json) {
        add(json.getBytes(StandardCharsets.UTF_8));
    }

    /** Adds an event written in UTF-8 already. */
    void add(byte[] b) {
        synchronized (this) {
            seq++;
            if (b.length > capacity) {
                dropped++;
                return;
            }
            entries.addLast(new Entry(seq, b));
            bytes += b.length;
            while (bytes > capacity) {
                bytes -= entries.removeFirst().json.length;
                dropped++;
            }
        }
    }

    /**
     * The answer to boot=askedBoot&after=after: with this agent's boot, the
     * events up to after are freed and those past it answered; with another,
     * everything still held is. At most max bytes of events, but always at
     * least one when there is one.
     */
    byte[] batch(String askedBoot, long after, long max) {
        List<byte[]> out = new ArrayList<>();
        long last;
        long lost;
        synchronized (this) {
            boolean ours = boot.equals(askedBoot);
            if (ours) {
                while (!entries.isEmpty() && entries.peekFirst().seq <= after) {
                    bytes -= entries.removeFirst().json.length;
                }
            }
            last = ours ? after : entries.isEmpty() ? seq : entries.peekFirst().seq - 1;
            long size = 0;
            for (Entry e : entries) {
                if (!out.isEmpty() && size + e.json.length > max) {
                    break;
                }
                out.add(e.json);
                size += e.json.length;
                last = e.seq;
            }
            lost = dropped;
        }
        StringBuilder head = new StringBuilder("{");
        Json.field(head, "boot", boot);
        Json.field(head, "last", last);
        Json.field(head, "dropped", lost);
        Json.key(head, "events").append('[');
        byte[] h = head.toString().getBytes(StandardCharsets.UTF_8);
        int n = h.length + 2;
        for (byte[] e : out) {
            n += e.length + 1;
        }
        byte[] answer = new byte[n];
        System.arraycopy(h, 0, answer, 0, h.length);
        int at = h.length;
        for (int i = 0; i < out.size(); i++) {
            if (i > 0) {
                answer[at++] = ',';
            }
            byte[] e = out.get(i);
            System.arraycopy(e, 0, answer, at, e.length);
            at += e.length;
        }
        answer[at++] = ']';
        answer[at++] = '}';
        return Arrays.copyOf(answer, at);
    }
}
