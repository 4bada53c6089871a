package io.cameleer.agent;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Map;

/**
 * JSON written straight into UTF-8 bytes, for the traces: every kept
 * exchange is written once, with its body, and a StringBuilder would copy
 * each string a char at a time, then the whole again into a String and
 * again into bytes. Here a string is encoded by String's own (fast) UTF-8
 * encoder and its runs without escapes are copied whole.
 */
final class JsonWriter {
    private byte[] buf;
    private int len;

    JsonWriter(int capacity) {
        buf = new byte[Math.max(64, capacity)];
    }

    private void room(int n) {
        if (len + n > buf.length) {
            buf = Arrays.copyOf(buf, Math.max(len + n, buf.length * 2));
        }
    }

    /** Appends c, which must be ASCII. */
    JsonWriter raw(char c) {
        room(1);
        buf[len++] = (byte) c;
        return this;
    }

    /** Appends s, which must be ASCII (JSON's punctuation, literals, numbers). */
    JsonWriter raw(String s) {
        int n = s.length();
        room(n);
        for (int i = 0; i < n; i++) {
            buf[len++] = (byte) s.charAt(i);
        }
        return this;
    }

    /** Appends JSON written before. */
    JsonWriter bytes(byte[] json) {
        copy(json, 0, json.length);
        return this;
    }

    /** Appends ,"name": ("name": first in an object). */
    JsonWriter key(String name) {
        if (len > 0 && buf[len - 1] != '{') {
            raw(',');
        }
        return quote(name).raw(':');
    }

    JsonWriter field(String name, String value) {
        return key(name).quote(value);
    }

    JsonWriter field(String name, long value) {
        return key(name).number(value);
    }

    JsonWriter number(long v) {
        if (v < 0 || v >= 1_000_000_000_000_000_000L) {
            return raw(Long.toString(v));
        }
        int digits = 1;
        for (long x = v; x >= 10; x /= 10) {
            digits++;
        }
        room(digits);
        for (int i = len + digits - 1; i >= len; i--) {
            buf[i] = (byte) ('0' + v % 10);
            v /= 10;
        }
        len += digits;
        return this;
    }

    JsonWriter object(Map<String, String> m) {
        raw('{');
        for (Map.Entry<String, String> e : m.entrySet()) {
            field(e.getKey(), e.getValue());
        }
        return raw('}');
    }

    /** Appends s as a JSON string, as Json.quote writes it. */
    JsonWriter quote(String s) {
        if (s == null) {
            return raw("null");
        }
        byte[] u = s.getBytes(StandardCharsets.UTF_8);
        int start = len;
        // The encoder makes a lone surrogate, which UTF-8 cannot carry, a
        // '?': where there is one, s is written again as Json.quote does
        // (escaping it). Rare: it takes broken text.
        boolean question = false;
        room(u.length + 2);
        buf[len++] = '"';
        int from = 0;
        for (int i = 0; i < u.length; i++) {
            int c = u[i];
            // Bytes of multi-byte characters are negative: never escaped.
            if (c < 0 || c >= 0x20 && c != '"' && c != '\\') {
                question |= c == '?';
                continue;
            }
            copy(u, from, i);
            from = i + 1;
            switch (c) {
                case '"' -> raw("\\\"");
                case '\\' -> raw("\\\\");
                case '\n' -> raw("\\n");
                case '\r' -> raw("\\r");
                case '\t' -> raw("\\t");
                default -> raw(String.format("\\u%04x", c));
            }
        }
        copy(u, from, u.length);
        raw('"');
        if (question && hasSurrogate(s)) {
            len = start;
            u = Json.quote(s).getBytes(StandardCharsets.UTF_8);
            copy(u, 0, u.length);
        }
        return this;
    }

    private void copy(byte[] u, int from, int to) {
        int n = to - from;
        room(n);
        System.arraycopy(u, from, buf, len, n);
        len += n;
    }

    private static boolean hasSurrogate(String s) {
        for (int i = 0; i < s.length(); i++) {
            if (Character.isSurrogate(s.charAt(i))) {
                return true;
            }
        }
        return false;
    }

    byte[] toBytes() {
        return Arrays.copyOf(buf, len);
    }
}
