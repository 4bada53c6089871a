package io.cameleer.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class JsonTest {
    @Test
    void escapes() {
        assertEquals("\"a\\\"b\\\\c\\n\\t\\u0001\"", Json.quote("a\"b\\c\n\t\u0001"));
        assertEquals("\"\ud83d\udc2a ü\"", Json.quote("\ud83d\udc2a ü"));
        // A lone surrogate would not be UTF-8: escaped.
        assertEquals("\"x\\ud83d\"", Json.quote("x\ud83d"));
        assertEquals("\"\\udc2ax\"", Json.quote("\udc2ax"));
        assertEquals("\"\\udc2a\\ud83d\"", Json.quote("\udc2a\ud83d"));
        assertEquals("\"plain text, no escapes\"", Json.quote("plain text, no escapes"));
        assertEquals("\"\\\"\\\"\"", Json.quote("\"\""));
        assertEquals("\"ab\\rcd\\\\\"", Json.quote("ab\rcd\\"));
        assertEquals("\"\"", Json.quote(""));
        assertEquals("null", Json.quote(null));
        // Quotes and backslashes alone, the plain way; with a control character, char by char.
        assertEquals("\"{\\\"a\\\":\\\"b\\\\\\\\c\\\"}\"", Json.quote("{\"a\":\"b\\\\c\"}"));
        assertEquals("\"{\\\"a\\\":\\\"b\\nc\\\"}\"", Json.quote("{\"a\":\"b\nc\"}"));
    }
}
