package io.cameleer.agent.camel;

import io.cameleer.agent.Trace;
import java.util.Arrays;
import org.apache.camel.Exchange;
import org.apache.camel.SafeCopyProperty;

/**
 * Where one exchange is in its trace: the trace, the node running, the
 * correlation, and when it entered each route it is in. It rides on the
 * exchange as one safe-copy property, so the hooks touch the exchange's
 * properties once a run rather than setting and removing several (which
 * cost as much as the rest of the agent). Camel hands every exchange it
 * derives (split, multicast, wire tap, seda:) a copy made at the moment of
 * deriving: the copy starts under the node that was running then, and
 * concurrent children never write one cursor. Camel may also copy a
 * child's back onto the exchange it came from (a multicast's or split's
 * result), so a hook that ends a run reads the cursor again rather than
 * keep the one it began with. One exchange runs on one thread at a time,
 * so a cursor needs no lock.
 */
final class Cursor implements SafeCopyProperty {
    private static final String KEY = "Cameleer";

    Trace trace;
    /** The index of the node running in trace, -1 for none. */
    int node = -1;
    String correlation;
    /** Whether the message is to be captured again at the first processor. */
    boolean capture;
    /** The exchange this one replays, until its trace begins (Replays). */
    String replayOf;
    /**
     * The node (its wrapper) whose run failed last, until the next run
     * begins: run again at once, on the exchange redelivered, it is a
     * redelivery. Not copied: a derived exchange is not redelivered.
     */
    Object failedRun;
    /** The id the exchange's node runs carry when it is not the trace's own (a split child): read once a trace. */
    private String other;
    private boolean otherKnown;
    /** The routes entered and not left, innermost last, with when. */
    private String[] routes = new String[2];
    private long[] began = new long[2];
    private int depth;

    /** The exchange's cursor, or null when none of its routes began a trace. */
    static Cursor of(Exchange exchange) {
        return exchange.getExchangeExtension().getSafeCopyProperty(KEY, Cursor.class);
    }

    /** The exchange's cursor, made if it has none. */
    static Cursor on(Exchange exchange) {
        Cursor c = of(exchange);
        if (c == null) {
            c = new Cursor();
            exchange.getExchangeExtension().setSafeCopyProperty(KEY, c);
        }
        return c;
    }

    @Override
    public Cursor safeCopy() {
        Cursor c = new Cursor();
        c.trace = trace;
        c.node = node;
        c.correlation = correlation;
        // The routes too: Camel may copy a cursor back over the one it was
        // copied from (a multicast's result), and the exchange is still in them.
        c.routes = routes.clone();
        c.began = began.clone();
        c.depth = depth;
        return c;
    }

    /** Begins a new trace here: its nodes start at the top. */
    void begin(Trace t) {
        trace = t;
        node = -1;
        other = null;
        otherKnown = false;
    }

    /** The exchange id node runs of this exchange carry: null for the trace's own exchange. */
    String other(Exchange exchange) {
        if (!otherKnown) {
            String id = exchange.getExchangeId();
            other = trace.id().equals(id) ? null : id;
            otherKnown = true;
        }
        return other;
    }

    void entered(String route, long nanos) {
        if (depth == routes.length) {
            routes = Arrays.copyOf(routes, depth * 2);
            began = Arrays.copyOf(began, depth * 2);
        }
        routes[depth] = route;
        began[depth++] = nanos;
    }

    /** Said by left of a route the exchange did not enter. */
    static final long NOT_ENTERED = Long.MIN_VALUE;

    /** When the exchange entered route (the innermost time it did), NOT_ENTERED if it did not: it leaves it now. */
    long left(String route) {
        for (int i = depth - 1; i >= 0; i--) {
            if (routes[i].equals(route)) {
                long t = began[i];
                System.arraycopy(routes, i + 1, routes, i, depth - i - 1);
                System.arraycopy(began, i + 1, began, i, depth - i - 1);
                routes[--depth] = null;
                return t;
            }
        }
        return NOT_ENTERED;
    }
}
