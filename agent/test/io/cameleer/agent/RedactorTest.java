package io.cameleer.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeout;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

class RedactorTest {
    private final Redactor defaults = new Redactor(true, List.of());

    @Test
    void cardNumbersThatPassLuhn() {
        assertEquals("pay *** now", defaults.text("pay 4111 1111 1111 1111 now"));
        assertEquals("pay *** now", defaults.text("pay 4111-1111-1111-1111 now"));
        assertEquals("amex ***", defaults.text("amex 378282246310005"));
        // Not a card: fails the check, or too short, or part of a longer number.
        assertEquals("id 4111111111111112", defaults.text("id 4111111111111112"));
        assertEquals("id 411111111111", defaults.text("id 411111111111"));
        assertEquals("x 41111111111111111111111", defaults.text("x 41111111111111111111111"));
    }

    @Test
    void cheapLooksFindEveryCandidate() {
        // What the pattern would match, the look finds; what it cannot, it lets be.
        assertTrue(Redactor.cardRun("4111 1111 1111 1111"));
        assertTrue(Redactor.cardRun("x4111-1111-1111-1"));
        assertTrue(Redactor.cardRun("3782822463100"));
        assertFalse(Redactor.cardRun("{\"a\":123456,\"b\":7890123,\"c\":45}"));
        assertFalse(Redactor.cardRun("4111  1111 1111 1111"));
        assertTrue(Redactor.containsBearer("Authorization: BEARER abc"));
        assertTrue(Redactor.containsBearer("bearer"));
        assertFalse(Redactor.containsBearer("bear with me, bearing"));
        assertTrue(Redactor.containsBearer("bear, Bear, then Bearer x"));
        assertFalse(Redactor.containsBearer("the end: beare"));
        assertEquals("BEARER ***", defaults.text("BEARER abc.def"));
    }

    @Test
    void emailsAndBearerTokens() {
        assertEquals("from *** and ***", defaults.text("from jane.doe@example.com and j+x@mail.example.co.uk"));
        assertEquals("Authorization: Bearer ***", defaults.text("Authorization: Bearer eyJhbGc.eyJzdWIi.sig-_x"));
    }

    @Test
    void linearInTheText() {
        String text = "a".repeat(200_000) + " " + "1".repeat(100_000) + " x@y.io";
        assertTimeout(Duration.ofSeconds(2), () -> assertEquals(text.substring(0, 300_002) + "***", defaults.text(text)));
    }

    @Test
    void fixedTextIsRedactedToo() {
        assertEquals("setBody[constant{***}]", defaults.fixed("setBody[constant{a@b.io}]"));
        assertEquals("setBody[constant{***}]", defaults.fixed("setBody[constant{a@b.io}]"));
    }

    @Test
    void headersNamedLikeSecrets() {
        for (String name : List.of("Authorization", "X-Api-Key", "api_key", "db.password", "ClientSecret", "X-Auth-Token")) {
            assertEquals("***", defaults.header(name, "plain"), name);
        }
        assertEquals("plain", defaults.header("Content-Type", "plain"));
        assertEquals("to ***", defaults.header("Reply-To", "to a@b.io"));
    }

    @Test
    void theAppsRulesBesideOrInsteadOfTheDefaults() {
        Redactor extra = new Redactor(true, List.of("ACME-\\d+"));
        assertEquals("order *** by ***", extra.text("order ACME-42 by a@b.io"));
        Redactor only = new Redactor(false, List.of("ACME-\\d+"));
        assertEquals("order *** by a@b.io", only.text("order ACME-42 by a@b.io"));
        assertEquals("plain", only.header("Authorization", "plain"));
    }
}
