package io.cameleer.agent.camel;

import io.cameleer.agent.Captured;
import io.cameleer.agent.Recorder;
import io.cameleer.agent.Trace;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import org.apache.camel.Exchange;
import org.apache.camel.Message;
import org.apache.camel.StreamCache;

/**
 * The message as it enters a route, cut a little past the body bound (the
 * core redacts, then cuts at the bound, so nothing redactable straddles the
 * cut). A stream is read only when Camel made it re-readable (a
 * StreamCache, reset after); any other stream is left alone.
 */
final class Capture {
    private Capture() {}

    /**
     * Captures the message into t; false when its body is a stream Camel
     * may yet cache (stream caching turns it into a StreamCache after the
     * route begins, before its first processor), to be tried again then.
     */
    static boolean message(Trace t, Exchange exchange) throws IOException {
        Message m = exchange.getMessage();
        Object body = m.getBody();
        if (body instanceof InputStream) {
            if (!(body instanceof StreamCache sc)) {
                // Not re-readable: never read. Camel may yet cache it
                // before the route's first processor: tried again then.
                t.capture(null, -1, Captured.of(null, m.getHeaders(), 0).headers);
                return !exchange.getContext().isStreamCaching();
            }
            int max = Captured.readMax(Recorder.bodyMax());
            try {
                Captured c = Captured.read(new String(((InputStream) body).readNBytes(max), StandardCharsets.UTF_8), sc.length(), m.getHeaders());
                t.capture(c.text, c.size, c.headers);
            } finally {
                sc.reset();
            }
            return true;
        }
        if (!t.sampled()) {
            // Most traces are not kept: what they may need is only held.
            t.keep(body, m.getHeaders());
            return true;
        }
        Captured c = Captured.of(body, m.getHeaders(), Recorder.bodyMax());
        t.capture(c.text, c.size, c.headers);
        return true;
    }
}
