package io.cameleer.agent;

import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.regex.PatternSyntaxException;

/**
 * What the Camel bridge calls, in plain Java types: traces begin and end
 * here, stats are counted here, and events are redacted, sampled,
 * serialized and buffered here, on the calling thread, without waiting on
 * anything but the buffer's short lock.
 */
public final class Recorder {
    private static volatile Recorder current;
    private static final AtomicBoolean DISABLED = new AtomicBoolean();

    private final Config config;
    private final EventBuffer buffer;
    private final EventBuffer originals;
    private final Redactor redactor;
    private final Sampler sampler;
    private volatile Aggregates window = new Aggregates();
    private Aggregates ended;

    private Recorder(Config config, EventBuffer buffer, EventBuffer originals) {
        this.config = config;
        this.buffer = buffer;
        this.originals = originals;
        Redactor r;
        try {
            r = new Redactor(config.redactDefaults, config.redactRules);
        } catch (PatternSyntaxException e) {
            // Without every rule the app asked for, nothing is captured at all.
            fail(e);
            r = new Redactor(true, List.of());
        }
        this.redactor = r;
        this.sampler = new Sampler(config.sample, config.sampleLimit);
    }

    static void start(Config config, EventBuffer buffer, EventBuffer originals) {
        Recorder r = new Recorder(config, buffer, originals);
        current = r;
        ScheduledExecutorService s = Executors.newSingleThreadScheduledExecutor(task -> {
            Thread t = new Thread(task, "cameleer-agent-stats");
            t.setDaemon(true);
            return t;
        });
        s.scheduleAtFixedRate(r::emitStats, config.statsSeconds, config.statsSeconds, TimeUnit.SECONDS);
    }

    /**
     * Ends the current window and emits the one before it: a window is
     * serialized a whole period after app threads stopped adding to it,
     * so no count that raced the swap is lost.
     */
    private void emitStats() {
        try {
            base = Base.now();
            Aggregates done = ended;
            ended = window;
            window = new Aggregates();
            if (done == null) {
                return;
            }
            for (String e : done.events(config.statsSeconds)) {
                buffer.addAggregate(e);
            }
        } catch (Throwable t) {
            fail(t);
        }
    }

    /** Whether the Camel hooks should do anything: the agent started and nothing failed. */
    public static boolean on() {
        return current != null && !DISABLED.get();
    }

    /**
     * Turns the agent's Camel part off for good after one of its own
     * failures, with one line on stderr: the app runs on unobserved.
     */
    public static void fail(Throwable t) {
        if (DISABLED.compareAndSet(false, true)) {
            System.err.println("cameleer-agent: Camel tracing disabled: " + t);
        }
    }

    public static boolean testFail() {
        Recorder r = current;
        return r != null && r.config.testFail;
    }

    public static int bodyMax() {
        return current.config.bodyMax;
    }

    /**
     * The wall clock in microseconds at nanos (System.nanoTime), from a
     * reading of both clocks taken at most a stats period ago: one clock
     * read per hook instead of two, and the wall clock's steps still show
     * within a period.
     */
    public static long micros(long nanos) {
        Base b = base;
        return b.micros + (nanos - b.nanos) / 1000;
    }

    /** The wall clock now, in microseconds. */
    static long nowMicros() {
        Instant now = Instant.now();
        return now.getEpochSecond() * 1_000_000L + now.getNano() / 1000;
    }

    private record Base(long micros, long nanos) {
        static Base now() {
            return new Base(nowMicros(), System.nanoTime());
        }
    }

    private static volatile Base base = Base.now();

    /** An endpoint URI without the credentials it may carry. */
    public static String sanitize(String uri) {
        return Uris.sanitize(uri);
    }

    /**
     * Begins a trace at nanos (System.nanoTime) for an exchange that entered
     * from (sanitized). Whether a completed one is kept (sampled) is decided
     * here, so the work of keeping it is spent only on those.
     */
    public static Trace begin(String id, String context, String route, String from, String correlation, String parent, long nanos) {
        Recorder r = current;
        boolean sampled = r != null && r.sampler.sample();
        return new Trace(id, context, route, from, correlation, parent, sampled, nanos);
    }

    /**
     * Finishes t with status (api's completed, failed or handled): every
     * failed or handled one is kept, a share of the others.
     */
    public static void end(Trace t, String status, Throwable error) {
        Recorder r = current;
        if (r == null || !t.finish()) {
            return;
        }
        boolean completed = "completed".equals(status);
        boolean keep = completed ? r.config.keepRoutes.contains(t.route) : r.config.keepFailed;
        // A replay is always traced: its outcome is what the user waits for.
        if (completed && !t.sampled && !keep && !t.isReplay()) {
            return;
        }
        Original o = keep ? t.original() : null;
        String orig = o == null ? null : o.json(t, status, r.config.originalMax);
        if (orig != null) {
            r.originals.add(orig);
            t.replayable();
        }
        r.buffer.add(t.json(status, t.elapsedMicros(), error, r.redactor, r.config.bodyMax));
    }

    /** Whether the bridge should keep what traces of route began with, for replay. */
    public static boolean keepsOriginals(String route) {
        Recorder r = current;
        return r != null && (r.config.keepFailed || r.config.keepRoutes.contains(route));
    }

    /** The largest body an original keeps. */
    public static int originalMax() {
        return current.config.originalMax;
    }

    /** Replays messages into one CamelContext (the bridge's, per context). */
    public interface Replayer {
        /** Sends body and headers into route as a new exchange marked a replay of replayOf; answers how it ended. */
        Replayed replay(String route, byte[] body, Map<String, String> headers, String replayOf) throws Exception;

        /** Sends body and headers to the endpoint of node (of route) as a new exchange marked a replay of replayOf. */
        Replayed resend(String route, String node, byte[] body, Map<String, String> headers, String replayOf) throws Exception;
    }

    /** A replay's outcome: the new exchange, its status (api's), the error's line if it failed. */
    public record Replayed(String exchange, String status, String error) {}

    private static final Map<String, Replayer> REPLAYERS = new ConcurrentHashMap<>();

    public static void replayer(String context, Replayer r) {
        REPLAYERS.put(context, r);
    }

    public static void noReplayer(String context, Replayer r) {
        REPLAYERS.remove(context, r);
    }

    /** The replayer of context, or of the only context when context is empty; null when none. */
    static Replayer replayerOf(String context) {
        if (!context.isEmpty()) {
            return REPLAYERS.get(context);
        }
        return REPLAYERS.size() == 1 ? REPLAYERS.values().iterator().next() : null;
    }

    /**
     * A route's counter in the current window, as nodeCounter's for a node.
     */
    public static Counter routeCounter(Counter held, String context, String route) {
        Aggregates w = current.window;
        if (held != null && held.window == w && held.route.equals(route) && held.node == null) {
            return held;
        }
        return new Counter(w, route, null, w.routeCount(context, route));
    }

    /**
     * A node's counter in the current window. A processor keeps the one it
     * was given and asks again with it: while the window lasts, it gets the
     * same one back without a lookup.
     */
    public static Counter nodeCounter(Counter held, String context, String route, String node) {
        Aggregates w = current.window;
        if (held != null && held.window == w && held.route.equals(route) && node.equals(held.node)) {
            return held;
        }
        return new Counter(w, route, node, w.nodeCount(context, route, node));
    }

    /** One route's or node's count in one window. */
    public static final class Counter {
        private final Aggregates window;
        private final String route;
        /** Null for a route's own count. */
        private final String node;
        private final Count count;

        private Counter(Aggregates window, String route, String node, Count count) {
            this.window = window;
            this.route = route;
            this.node = node;
            this.count = count;
        }

        public void add(long micros, boolean failed) {
            count.add(micros, failed);
        }
    }

    /** Buffers a route model event. */
    public static void routes(RouteModel m) {
        current.buffer.addAggregate(m.json(current.redactor));
    }
}
