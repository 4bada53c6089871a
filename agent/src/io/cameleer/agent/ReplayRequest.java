package io.cameleer.agent;

import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What the runner sends to /cameleer/replay, in a plain binary form so the
 * agent needs no JSON reader: the context, the route, the exchange replayed
 * (each a string), the headers (a count, then name and value strings), the
 * body (bytes); to /cameleer/resend, the node to resend at after them (a
 * string). A string is its UTF-8 length as 4 big-endian bytes, then the
 * bytes; so are the body and the count. Bounded: a request past the bounds
 * is refused whole.
 */
record ReplayRequest(String context, String route, String replayOf, Map<String, String> headers, byte[] body, String node) {
    private static final int MAX_STRING = 64 << 10;
    private static final int MAX_HEADERS = 1024;

    /** Reads a request; withNode: one to /cameleer/resend, which names its node. */
    static ReplayRequest read(InputStream in, int maxBody, boolean withNode) throws IOException {
        try {
            return decode(new DataInputStream(in), maxBody, withNode);
        } catch (EOFException e) {
            throw new IOException("replay request: cut short", e);
        }
    }

    private static ReplayRequest decode(DataInputStream d, int maxBody, boolean withNode) throws IOException {
        String context = string(d);
        String route = string(d);
        String replayOf = string(d);
        int n = length(d, MAX_HEADERS, "headers");
        Map<String, String> headers = new LinkedHashMap<>();
        for (int i = 0; i < n; i++) {
            headers.put(string(d), string(d));
        }
        byte[] body = bytes(d, maxBody, "body");
        String node = withNode ? string(d) : null;
        if (d.read() != -1) {
            throw new IOException("replay request: data after its end");
        }
        if (route.isEmpty() || replayOf.isEmpty() || withNode && node.isEmpty()) {
            throw new IOException("replay request: no route, no exchange replayed or no node");
        }
        return new ReplayRequest(context, route, replayOf, headers, body, node);
    }

    private static String string(DataInputStream d) throws IOException {
        return new String(bytes(d, MAX_STRING, "string"), StandardCharsets.UTF_8);
    }

    private static byte[] bytes(DataInputStream d, int max, String what) throws IOException {
        byte[] b = new byte[length(d, max, what)];
        d.readFully(b);
        return b;
    }

    private static int length(DataInputStream d, int max, String what) throws IOException {
        int n = d.readInt();
        if (n < 0 || n > max) {
            throw new IOException("replay request: " + what + " of " + Integer.toUnsignedString(n) + " past its bound " + max);
        }
        return n;
    }
}
