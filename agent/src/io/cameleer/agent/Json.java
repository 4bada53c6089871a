package io.cameleer.agent;

import java.util.Map;

/** The little JSON the agent writes, by hand: it carries no library. */
final class Json {
    private Json() {}

    static StringBuilder quote(StringBuilder b, String s) {
        if (s == null) {
            return b.append("null");
        }
        b.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    // Lone surrogates would make invalid UTF-8: escaped, they stay JSON.
                    if (c < 0x20 || Character.isSurrogate(c) && !validPair(s, i)) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                        if (Character.isHighSurrogate(c)) {
                            b.append(s.charAt(++i));
                        }
                    }
            }
        }
        return b.append('"');
    }

    private static boolean validPair(String s, int i) {
        return Character.isHighSurrogate(s.charAt(i)) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1));
    }

    static String quote(String s) {
        return quote(new StringBuilder(), s).toString();
    }

    /** Appends ,"name":"value" ("name":"value" first in an object). */
    static StringBuilder field(StringBuilder b, String name, String value) {
        return quote(key(b, name), value);
    }

    static StringBuilder field(StringBuilder b, String name, long value) {
        return key(b, name).append(value);
    }

    static StringBuilder key(StringBuilder b, String name) {
        if (b.charAt(b.length() - 1) != '{') {
            b.append(',');
        }
        return quote(b, name).append(':');
    }

    static StringBuilder object(StringBuilder b, Map<String, String> m) {
        b.append('{');
        for (Map.Entry<String, String> e : m.entrySet()) {
            field(b, e.getKey(), e.getValue());
        }
        return b.append('}');
    }
}
