package io.cameleer.agent;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** What the agent reads from its environment, read once at start. */
final class Config {
    final int port;
    final int bodyMax;
    final double sample;
    /** Most sampled traces a second (0: no limit). */
    final long sampleLimit;
    final long bufferBytes;
    final int statsSeconds;
    final boolean redactDefaults;
    final List<String> redactRules;
    /** Whether failed exchanges' originals are kept for replay (CAMELEER_KEEP: failed, off). */
    final boolean keepFailed;
    /** Routes every exchange of which is kept for replay, failed or not. */
    final Set<String> keepRoutes;
    /** The originals' buffer, by serialized size. */
    final long originalsBytes;
    /** The largest body an original keeps: a larger one is not replayable. */
    final int originalMax;
    /** What the runner must show to take telemetry ("": anyone may). */
    final String token;
    /** A test's switch: the agent's Camel hooks throw, to show they disable themselves. */
    final boolean testFail;

    Config(Map<String, String> env) {
        port = (int) number(env, "CAMELEER_AGENT_PORT", 9464);
        bodyMax = (int) number(env, "CAMELEER_BODY_MAX", 4096);
        bufferBytes = number(env, "CAMELEER_BUFFER_BYTES", 8L << 20);
        statsSeconds = (int) Math.max(1, number(env, "CAMELEER_STATS_SECONDS", 10));
        sample = fraction(env, "CAMELEER_SAMPLE", 0.1);
        long limit = number(env, "CAMELEER_SAMPLE_LIMIT", 100);
        sampleLimit = limit >= 0 && limit <= Sampler.MAX_LIMIT ? limit : ignored("CAMELEER_SAMPLE_LIMIT", String.valueOf(limit), 100L);
        redactDefaults = !"off".equalsIgnoreCase(env.getOrDefault("CAMELEER_REDACT_DEFAULTS", "").trim());
        redactRules = new ArrayList<>();
        for (String line : env.getOrDefault("CAMELEER_REDACT", "").split("\n")) {
            if (!line.isBlank()) {
                redactRules.add(line.strip());
            }
        }
        keepFailed = !"off".equalsIgnoreCase(env.getOrDefault("CAMELEER_KEEP", "").trim());
        keepRoutes = new HashSet<>();
        for (String r : env.getOrDefault("CAMELEER_KEEP_ROUTES", "").split(",")) {
            if (!r.isBlank()) {
                keepRoutes.add(r.strip());
            }
        }
        originalsBytes = number(env, "CAMELEER_ORIGINALS_BYTES", 16L << 20);
        originalMax = (int) Math.min(Integer.MAX_VALUE - 64, number(env, "CAMELEER_ORIGINAL_MAX", 1L << 20));
        testFail = "hooks".equals(env.get("CAMELEER_TEST_FAIL"));
        token = env.getOrDefault("CAMELEER_AGENT_TOKEN", "").strip();
    }

    // A value the agent cannot read falls back to its default: a typo must not stop the app.
    private static long number(Map<String, String> env, String name, long dflt) {
        String v = env.get(name);
        try {
            return v == null || v.isBlank() ? dflt : Long.parseLong(v.trim());
        } catch (NumberFormatException e) {
            return ignored(name, v, dflt);
        }
    }

    private static double fraction(Map<String, String> env, String name, double dflt) {
        String v = env.get(name);
        try {
            double d = v == null || v.isBlank() ? dflt : Double.parseDouble(v.trim());
            return d >= 0 && d <= 1 ? d : ignored(name, v, dflt);
        } catch (NumberFormatException e) {
            return ignored(name, v, dflt);
        }
    }

    private static <T> T ignored(String name, String value, T dflt) {
        System.err.println("cameleer-agent: ignoring " + name + "=" + value + ", using " + dflt);
        return dflt;
    }
}
