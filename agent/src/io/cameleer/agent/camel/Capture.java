package io.cameleer.agent.camel;

import io.cameleer.agent.Captured;
import io.cameleer.agent.Original;
import io.cameleer.agent.Recorder;
import io.cameleer.agent.Trace;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.function.Function;
import org.apache.camel.CamelContext;
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
        boolean keep = Recorder.keepsOriginals(t.route());
        if (body instanceof InputStream) {
            if (!(body instanceof StreamCache sc)) {
                // Not re-readable: never read, and so never replayable.
                // Camel may yet cache it before the route's first
                // processor: tried again then.
                t.capture(null, -1, Captured.of(null, m.getHeaders(), 0).headers);
                return !exchange.getContext().isStreamCaching();
            }
            int shown = Captured.readMax(Recorder.bodyMax());
            byte[] read;
            try {
                read = ((InputStream) body).readNBytes(keep ? Math.max(shown, Recorder.originalMax() + 1) : shown);
            } finally {
                sc.reset();
            }
            Captured c = Captured.read(new String(read, 0, Math.min(read.length, shown), StandardCharsets.UTF_8), sc.length(), m.getHeaders());
            t.capture(c.text, c.size, c.headers);
            if (keep && read.length <= Recorder.originalMax()) {
                t.original(Original.of(read, null, m.getHeaders()));
            }
            return true;
        }
        if (keep) {
            t.original(Original.of(body, toBytes(exchange.getContext(), body), m.getHeaders()));
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

    /**
     * The message as it is now, unredacted, for a replay at the node that
     * was sending it: a StreamCache is read (and reset) now, as it will
     * not be where it is by the time the original is written out; any
     * other stream is left alone, and the node's message is then not kept.
     */
    static Original now(Exchange exchange) throws IOException {
        Message m = exchange.getMessage();
        Object body = m.getBody();
        if (body instanceof InputStream) {
            if (!(body instanceof StreamCache sc)) {
                return Original.of(body, b -> null, m.getHeaders());
            }
            byte[] read;
            try {
                read = ((InputStream) body).readNBytes(Recorder.originalMax() + 1);
            } finally {
                sc.reset();
            }
            return Original.of(read, null, m.getHeaders());
        }
        return Original.of(body, toBytes(exchange.getContext(), body), m.getHeaders());
    }

    /** How a body that is neither text nor bytes becomes bytes: Camel's type converter, if it can. */
    private static Function<Object, byte[]> toBytes(CamelContext context, Object body) {
        if (body == null || body instanceof CharSequence || body instanceof byte[]) {
            return null;
        }
        return b -> context.getTypeConverter().tryConvertTo(byte[].class, b);
    }
}
