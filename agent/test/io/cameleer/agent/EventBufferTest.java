package io.cameleer.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class EventBufferTest {
    // The answer buffer is reused: a short answer after a long one shows
    // whether its length, not the buffer's, is what is sent.
    private static String answer(EventBuffer b, String boot, long after, long max) {
        String[] sent = new String[1];
        try {
            b.batch(boot, after, max, (answer, length) -> sent[0] = new String(answer, 0, length, StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return sent[0];
    }

    @Test
    void acknowledgedEventsAreFreed() {
        EventBuffer b = new EventBuffer(1 << 20);
        b.add("{\"n\":1}");
        b.add("{\"n\":2}");
        String boot = b.boot();
        assertEquals("{\"boot\":\"" + boot + "\",\"last\":2,\"dropped\":0,\"events\":[{\"n\":1},{\"n\":2}]}", answer(b, "", 0, 1 << 20));
        assertEquals("{\"boot\":\"" + boot + "\",\"last\":2,\"dropped\":0,\"events\":[{\"n\":2}]}", answer(b, boot, 1, 1 << 20));
        // Freed up to 1: another boot gets the oldest held, 2.
        assertEquals("{\"boot\":\"" + boot + "\",\"last\":2,\"dropped\":0,\"events\":[{\"n\":2}]}", answer(b, "other", 0, 1 << 20));
        assertEquals("{\"boot\":\"" + boot + "\",\"last\":2,\"dropped\":0,\"events\":[]}", answer(b, boot, 2, 1 << 20));
        assertEquals("{\"boot\":\"" + boot + "\",\"last\":2,\"dropped\":0,\"events\":[]}", answer(b, "other", 0, 1 << 20));
    }

    @Test
    void answersAreBoundedButNeverEmptyWhenThereIsAnEvent() {
        EventBuffer b = new EventBuffer(1 << 20);
        b.add("{\"n\":1}");
        b.add("{\"n\":2}");
        assertEquals("{\"boot\":\"" + b.boot() + "\",\"last\":1,\"dropped\":0,\"events\":[{\"n\":1}]}", answer(b, b.boot(), 0, 1));
    }

    @Test
    void theOldestGoWhenFullAndAreCounted() {
        EventBuffer b = new EventBuffer(16);
        b.add("{\"n\":1}");
        b.add("{\"n\":2}");
        b.add("{\"n\":3}");
        b.add("{\"too\":\"big for the buffer\"}");
        assertEquals("{\"boot\":\"" + b.boot() + "\",\"last\":3,\"dropped\":2,\"events\":[{\"n\":2},{\"n\":3}]}", answer(b, "", 0, 1 << 20));
    }

    /**
     * Stats and route models are held apart: traces that fill the buffer
     * push out older traces, not them; answers have them in seq order
     * with the traces; past their own bound (a sixteenth) the oldest go.
     */
    @Test
    void aggregatesAreNotPushedOutByTraces() {
        EventBuffer b = new EventBuffer(320);
        b.add("{\"t\":1}");
        b.addAggregate("{\"s\":2}");
        b.add("{\"t\":3}");
        for (int i = 4; i < 60; i++) {
            b.add("{\"t\":" + i + "}");
        }
        b.addAggregate("{\"s\":60}");
        String all = answer(b, "", 0, 1 << 20);
        assertTrue(all.startsWith("{\"boot\":\"" + b.boot() + "\",\"last\":60,\"dropped\":"), all);
        assertTrue(all.contains("\"events\":[{\"s\":2},{\"t\":"), all);
        assertTrue(all.endsWith("{\"t\":59},{\"s\":60}]}"), all);
        // Two per answer, in order; acknowledged, they go.
        String two = answer(b, b.boot(), 0, 16);
        assertTrue(two.contains("\"events\":[{\"s\":2},{\"t\":") && two.split("\\},\\{").length == 2, two);
        assertEquals("{\"boot\":\"" + b.boot() + "\",\"last\":60,\"dropped\":" + dropped(all) + ",\"events\":[{\"s\":60}]}", answer(b, b.boot(), 59, 1 << 20));
        // Their bound, 20 bytes here: the older goes, counted.
        EventBuffer c = new EventBuffer(320);
        c.addAggregate("{\"s\":1,\"pad\":1}");
        c.addAggregate("{\"s\":2}");
        c.addAggregate("{\"s\":3,\"too\":\"bigger\"}");
        assertEquals("{\"boot\":\"" + c.boot() + "\",\"last\":2,\"dropped\":2,\"events\":[{\"s\":2}]}", answer(c, "", 0, 1 << 20));
    }

    private static long dropped(String answer) {
        int at = answer.indexOf("\"dropped\":") + 10;
        return Long.parseLong(answer.substring(at, answer.indexOf(',', at)));
    }

    /**
     * An event pushed out after the runner was handed it is dropped only if
     * the runner's next pull says it did not keep it: a runner killed
     * between a pull and its acknowledgement is not told of drops that
     * never were.
     */
    @Test
    void handedOutEventsAreDroppedOnlyIfTheRunnerLostThem() {
        for (long ack : new long[] {2, 0}) {
            EventBuffer b = new EventBuffer(16 + 1); // the ring holds 16 bytes: two events
            b.add("{\"n\":1}");
            b.add("{\"n\":2}");
            answer(b, "", 0, 1 << 20); // handed 1 and 2
            b.add("{\"n\":3}"); // pushes 1 out
            b.add("{\"n\":4}"); // pushes 2 out
            b.add("{\"n\":5}"); // pushes 3 out, never handed: dropped
            String next = answer(b, b.boot(), ack, 1 << 20);
            long want = ack == 2 ? 1 : 3; // 3; and 1 and 2 when the runner kept nothing
            assertEquals(want, dropped(next), "acknowledged up to " + ack + ": " + next);
            assertTrue(next.endsWith("\"events\":[{\"n\":4},{\"n\":5}]}"), next);
        }
    }

    @Test
    void eachStartHasItsOwnBoot() {
        assertNotEquals(new EventBuffer(1).boot(), new EventBuffer(1).boot());
    }

    /**
     * Events of every size, wrapping round the ring as it grows to its
     * bound, acknowledged a few at a time: the answers hold what a list
     * of them would, in order, and the drops are the oldest, counted.
     */
    @Test
    void wrapsRoundAndGrowsAsAListWould() {
        int capacity = 200_000;
        EventBuffer b = new EventBuffer(capacity + capacity / 15); // a sixteenth of it is the aggregates'
        java.util.ArrayDeque<String> held = new java.util.ArrayDeque<>();
        java.util.ArrayDeque<Long> seqs = new java.util.ArrayDeque<>();
        java.util.Random r = new java.util.Random(7);
        long seq = 0;
        long dropped = 0;
        int bytes = 0;
        for (int i = 0; i < 5000; i++) {
            String e = "{\"n\":" + i + ",\"pad\":\"" + "x".repeat(r.nextInt(i % 50 == 0 ? 3000 : 300)) + "\"}";
            b.add(e);
            seq++;
            held.addLast(e);
            seqs.addLast(seq);
            bytes += e.length();
            while (bytes > capacity) {
                bytes -= held.removeFirst().length();
                seqs.removeFirst();
                dropped++;
            }
            if (i % 97 == 96) {
                // The runner acknowledges up to the middle of what is held.
                long upTo = seqs.isEmpty() ? seq : seqs.peekFirst() + held.size() / 2;
                while (!seqs.isEmpty() && seqs.peekFirst() <= upTo) {
                    bytes -= held.removeFirst().length();
                    seqs.removeFirst();
                }
                String got = answer(b, b.boot(), upTo, Long.MAX_VALUE);
                String want = "{\"boot\":\"" + b.boot() + "\",\"last\":" + (seqs.isEmpty() ? upTo : seqs.peekLast()) + ",\"dropped\":" + dropped
                    + ",\"events\":[" + String.join(",", held) + "]}";
                assertEquals(want, got, "after event " + i);
            }
        }
    }
}
