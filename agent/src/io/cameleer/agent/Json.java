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
        // Runs that need no escaping, nearly all text, are copied whole.
        int from = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c >= 0x20 && c != '"' && c != '\\' && !Character.isSurrogate(c)) {
                continue;
            }
            if (Character.isHighSurrogate(c) && validPair(s, i)) {
                i++;
                continue;
            }
            b.append(s, from, i);
            from = i + 1;
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                // Lone surrogates would make invalid UTF-8: escaped, they stay JSON.
                default: b.append(String.format("\\u%04x", (int) c));
            }
        }
        return (from == 0 ? b.append(s) : b.append(s, from, s.length())).append('"');
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
