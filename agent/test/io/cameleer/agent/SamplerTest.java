package io.cameleer.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class SamplerTest {
    @Test
    void limitsEachSecond() {
        Sampler s = new Sampler(1, 3);
        assertEquals(3, taken(s, 7, 10));
        assertEquals(3, taken(s, 8, 10), "a new second starts a new count");
        assertFalse(s.take(8));
    }

    @Test
    void shareAlone() {
        assertEquals(0, sampled(new Sampler(0, 0), 1000));
        assertEquals(1000, sampled(new Sampler(1, 0), 1000), "no limit");
        int half = sampled(new Sampler(0.5, 0), 10000);
        assertTrue(half > 4000 && half < 6000, "about half of 10000: " + half);
    }

    private static int taken(Sampler s, long second, int tries) {
        int n = 0;
        for (int i = 0; i < tries; i++) {
            n += s.take(second) ? 1 : 0;
        }
        return n;
    }

    private static int sampled(Sampler s, int tries) {
        int n = 0;
        for (int i = 0; i < tries; i++) {
            n += s.sample() ? 1 : 0;
        }
        return n;
    }
}
