package io.cameleer.agent;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Map;
import org.junit.jupiter.api.Test;

class ReplayRequestTest {
    private static byte[] encode(String context, String route, String of, Map<String, String> headers, byte[] body) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        DataOutputStream d = new DataOutputStream(b);
        for (String s : new String[] {context, route, of}) {
            byte[] u = s.getBytes(StandardCharsets.UTF_8);
            d.writeInt(u.length);
            d.write(u);
        }
        d.writeInt(headers.size());
        for (Map.Entry<String, String> h : headers.entrySet()) {
            for (String s : new String[] {h.getKey(), h.getValue()}) {
                byte[] u = s.getBytes(StandardCharsets.UTF_8);
                d.writeInt(u.length);
                d.write(u);
            }
        }
        d.writeInt(body.length);
        d.write(body);
        return b.toByteArray();
    }

    @Test
    void reads() throws IOException {
        byte[] in = encode("ctx", "flaky", "EX-1", Map.of("attempt", "first", "ü", "€"), new byte[] {1, 2, 3});
        ReplayRequest r = ReplayRequest.read(new ByteArrayInputStream(in), 10, false);
        assertEquals("ctx", r.context());
        assertEquals("flaky", r.route());
        assertEquals("EX-1", r.replayOf());
        assertEquals(Map.of("attempt", "first", "ü", "€"), r.headers());
        assertArrayEquals(new byte[] {1, 2, 3}, r.body());
    }

    @Test
    void refusesWhatItCannotTakeWhole() throws IOException {
        byte[] in = encode("", "flaky", "EX-1", Map.of(), new byte[20]);
        IOException big = assertThrows(IOException.class, () -> ReplayRequest.read(new ByteArrayInputStream(in), 10, false));
        assertTrue(big.getMessage().contains("body of 20 past its bound 10"), big.getMessage());
        IOException cut = assertThrows(IOException.class, () -> ReplayRequest.read(new ByteArrayInputStream(Arrays.copyOf(in, in.length - 1)), 100, false));
        assertTrue(cut.getMessage().contains("replay request"), cut.getMessage());
        byte[] more = Arrays.copyOf(in, in.length + 1);
        assertThrows(IOException.class, () -> ReplayRequest.read(new ByteArrayInputStream(more), 100, false));
        byte[] noRoute = encode("", "", "EX-1", Map.of(), new byte[0]);
        assertThrows(IOException.class, () -> ReplayRequest.read(new ByteArrayInputStream(noRoute), 100, false));
    }

    /** A resend names its node after the body; a replay from the start has none there. */
    @Test
    void readsTheNodeOfAResend() throws IOException {
        byte[] in = encode("", "flaky", "EX-1", Map.of(), new byte[] {7});
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        b.write(in);
        new DataOutputStream(b).writeInt(4);
        b.write("post".getBytes(StandardCharsets.UTF_8));
        ReplayRequest r = ReplayRequest.read(new ByteArrayInputStream(b.toByteArray()), 10, true);
        assertEquals("post", r.node());
        assertArrayEquals(new byte[] {7}, r.body());
        assertThrows(IOException.class, () -> ReplayRequest.read(new ByteArrayInputStream(in), 10, true));
        assertThrows(IOException.class, () -> ReplayRequest.read(new ByteArrayInputStream(b.toByteArray()), 10, false));
    }
}
