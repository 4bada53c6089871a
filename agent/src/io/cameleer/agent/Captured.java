package io.cameleer.agent;

import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A message as text: the body cut a little past the body bound (the
 * recorder redacts, then cuts at the bound, so nothing redactable
 * straddles the cut) and its size, the headers as text, bounded.
 */
public final class Captured {
    private static final int MAX_HEADERS = 64;
    private static final int MAX_HEADER_VALUE = 512;
    private static final int SLACK = 64;

    public final String text;
    public final long size;
    public final Map<String, String> headers;

    private Captured(String text, long size, Map<String, String> headers) {
        this.text = text;
        this.size = size;
        this.headers = headers;
    }

    /** The most of a body worth reading: the bound and a little. */
    public static int readMax(int bodyMax) {
        return bodyMax + SLACK;
    }

    /**
     * A body that is text already (String, byte[], a number, ...); any
     * other is unknown (size -1, no text).
     */
    public static Captured of(Object body, Map<String, Object> headers, int bodyMax) {
        int max = readMax(bodyMax);
        String text = null;
        long size = -1;
        if (body == null) {
            size = 0;
        } else if (body instanceof byte[] b) {
            size = b.length;
            text = new String(b, 0, Math.min(b.length, max), StandardCharsets.UTF_8);
        } else if (body instanceof CharSequence || body instanceof Number || body instanceof Boolean || body instanceof Character) {
            String s = body.toString();
            size = utf8Length(s);
            text = s.length() > max ? s.substring(0, max) : s;
        }
        return new Captured(text, size, headers(headers));
    }

    /** A body read from a stream Camel made re-readable. */
    public static Captured read(String text, long size, Map<String, Object> headers) {
        return new Captured(text, size, headers(headers));
    }

    private static Map<String, String> headers(Map<String, Object> in) {
        Map<String, String> out = new LinkedHashMap<>();
        if (in == null) {
            return out;
        }
        for (Map.Entry<String, Object> h : in.entrySet()) {
            if (out.size() >= MAX_HEADERS) {
                break;
            }
            String v = String.valueOf(h.getValue());
            out.put(h.getKey(), v.length() > MAX_HEADER_VALUE ? v.substring(0, MAX_HEADER_VALUE) : v);
        }
        return out;
    }

    private static long utf8Length(String s) {
        long n = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x80) {
                n++;
            } else if (c < 0x800) {
                n += 2;
            } else if (Character.isHighSurrogate(c)) {
                n += 4;
                i++;
            } else {
                n += 3;
            }
        }
        return n;
    }
}
