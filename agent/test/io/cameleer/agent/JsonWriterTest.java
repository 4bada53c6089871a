package io.cameleer.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

class JsonWriterTest {
    private static String quoted(String s) {
        return new String(new JsonWriter(8).quote(s).toBytes(), StandardCharsets.UTF_8);
    }

    /** It writes what Json.quote writes, in UTF-8. */
    @Test
    void quotesAsJsonDoes() {
        for (String s : new String[] {"a\"b\\c\n\t\u0001", "\ud83d\udc2a ü", "x\ud83d", "\udc2ax", "\udc2a\ud83d", "plain text, no escapes",
            "\"\"", "ab\rcd\\", "", "{\"a\":\"b\\\\c\"}", "Grüße \"quoted\" \u001f", null}) {
            assertEquals(Json.quote(s), quoted(s), s);
        }
    }

    @Test
    void writesAnObject() {
        Map<String, String> h = new LinkedHashMap<>();
        h.put("k", "v\"");
        JsonWriter w = new JsonWriter(1).raw('{').field("a", "x").field("n", 0).field("m", -12).field("big", Long.MAX_VALUE).field("d", 1234567890123L);
        w.key("h").object(h).raw('}');
        assertEquals("{\"a\":\"x\",\"n\":0,\"m\":-12,\"big\":9223372036854775807,\"d\":1234567890123,\"h\":{\"k\":\"v\\\"\"}}",
            new String(w.toBytes(), StandardCharsets.UTF_8));
    }
}
