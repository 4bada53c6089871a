package io.cameleer.agent;

import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Function;

/**
 * The message an exchange entered its route with, unredacted, kept so that
 * it can be replayed: it leaves the JVM only to the runner, on a path of its
 * own (/cameleer/originals), and the runner never sends it on. Headers are
 * kept when their values can be written back as text (strings, numbers,
 * booleans, characters); the body when it is text, bytes, or what Camel's
 * type converter turns into bytes.
 */
public final class Original {
    private final Object body;
    /** Turns a body that is neither text nor bytes into bytes (Camel's converter); null when it need not. */
    private final Function<Object, byte[]> toBytes;
    /**
     * A copy of the headers as they entered (the route changes the
     * message's own), names and values in turn: every exchange pays for it,
     * and a flat array costs a fraction of a map.
     */
    private final Object[] headers;

    private Original(Object body, Function<Object, byte[]> toBytes, Object[] headers) {
        this.body = body;
        this.toBytes = toBytes;
        this.headers = headers;
    }

    /**
     * Keeps body and a copy of headers, taken as the exchange enters its
     * route (or fails at a node); toBytes turns a body that is neither
     * text nor bytes into bytes.
     * The work of writing it out is left to the few that are sent.
     */
    public static Original of(Object body, Function<Object, byte[]> toBytes, Map<String, Object> headers) {
        if (headers == null || headers.isEmpty()) {
            return new Original(body, toBytes, NONE);
        }
        Object[] copy = new Object[headers.size() * 2];
        int i = 0;
        for (Map.Entry<String, Object> e : headers.entrySet()) {
            if (i == copy.length) {
                break;
            }
            copy[i++] = e.getKey();
            copy[i++] = e.getValue();
        }
        return new Original(body, toBytes, copy);
    }

    private static final Object[] NONE = {};

    byte[] bytes() {
        if (body == null) {
            return new byte[0];
        }
        if (body instanceof byte[] b) {
            return b;
        }
        if (body instanceof CharSequence s) {
            return s.toString().getBytes(StandardCharsets.UTF_8);
        }
        return toBytes == null ? null : toBytes.apply(body);
    }

    /** The body within max bytes, or null when it cannot be had whole within them. */
    private byte[] bytesWithin(int max) {
        byte[] b;
        try {
            b = bytes();
        } catch (RuntimeException e) {
            return null;
        }
        return b == null || b.length > max ? null : b;
    }

    /**
     * The original of t as an event for the runner, or null when its body
     * cannot be had whole within max bytes (it is then not replayable):
     * the message as it entered the route and, when the exchange failed at
     * a node that sends to an endpoint, the message that node was sending
     * ("at"), if it too is within max.
     */
    String json(Trace t, String status, int max) {
        byte[] b = bytesWithin(max);
        if (b == null) {
            return null;
        }
        StringBuilder sb = new StringBuilder(256 + b.length * 4 / 3);
        sb.append("{\"kind\":\"original\",\"original\":{");
        Json.field(sb, "exchange", t.id);
        Json.field(sb, "context", t.context);
        Json.field(sb, "route", t.route);
        Json.field(sb, "start", t.startMicros);
        Json.field(sb, "status", status);
        message(sb, b);
        Trace.FailedAt at = t.failedAt();
        byte[] ab = at == null ? null : at.message().bytesWithin(max);
        if (ab != null) {
            Json.key(sb, "at").append('{');
            Json.field(sb, "node", at.node());
            Json.field(sb, "route", at.route());
            at.message().message(sb, ab);
            sb.append('}');
        }
        return sb.append("}}").toString();
    }

    /** Appends "body" (b, in base64) and "headers" (those that are text). */
    private void message(StringBuilder sb, byte[] b) {
        Json.field(sb, "body", Base64.getEncoder().encodeToString(b));
        Map<String, String> text = new LinkedHashMap<>();
        for (int i = 0; i + 1 < headers.length; i += 2) {
            Object v = headers[i + 1];
            if (headers[i] != null && (v instanceof CharSequence || v instanceof Number || v instanceof Boolean || v instanceof Character)) {
                text.put((String) headers[i], v.toString());
            }
        }
        Json.object(Json.key(sb, "headers"), text);
    }
}
