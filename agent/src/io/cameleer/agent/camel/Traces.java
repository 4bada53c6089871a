package io.cameleer.agent.camel;

import io.cameleer.agent.Recorder;
import io.cameleer.agent.Trace;
import java.io.IOException;
import org.apache.camel.Exchange;
import org.apache.camel.Route;

/**
 * Where a trace begins and ends. The trace rides on the exchange in its
 * Cursor, so the copies Camel makes (split, multicast, wire tap, seda:)
 * carry it along with the correlation: a direct: call stays in its
 * caller's trace, anything else that enters a route begins its own.
 */
final class Traces {
    private Traces() {}

    /**
     * Begins a trace at nanos for exchange entering route from its endpoint
     * (sanitized), unless it is a direct: call within its trace; c is its cursor.
     */
    static void begin(Route route, String from, boolean direct, Exchange exchange, Cursor c, long nanos) throws IOException {
        if (c.trace != null && !c.trace.isFinished() && direct) {
            return;
        }
        if (c.correlation == null) {
            c.correlation = exchange.getExchangeId();
        }
        // The parent is the trace this exchange was derived in (the copy
        // carries its cursor), however many copies lie between: a wire
        // tap's copy into seda: is the tap's copy of a copy.
        String parent = c.trace != null ? c.trace.id() : exchange.getProperty(Exchange.CORRELATION_ID, String.class);
        Trace t = Recorder.begin(exchange.getExchangeId(), exchange.getContext().getName(), route.getRouteId(),
                from, c.correlation, parent, nanos);
        c.begin(t);
        if (c.replayOf != null) {
            t.replayOf(c.replayOf);
            c.replayOf = null;
        }
        c.capture = !Capture.message(t, exchange);
        t.inherited(exchange.getProperty(Exchange.EXCEPTION_CAUGHT, Throwable.class));
    }

    /** Ends the trace when the exchange that began it leaves the route it began in. */
    static void done(Route route, Exchange exchange, Cursor c, String status) {
        Trace t = c.trace;
        if (t == null || c.other(exchange) != null || !t.route().equals(route.getRouteId())) {
            return;
        }
        Recorder.end(t, status, "completed".equals(status) ? null : error(exchange));
    }

    /**
     * api's completed, failed (an exception nobody handled) or handled (an
     * error handler took one), of the exchange as it leaves a route.
     */
    static String status(Exchange exchange, Trace t) {
        if (exchange.getException() != null) {
            return "failed";
        }
        Throwable caught = exchange.getProperty(Exchange.EXCEPTION_CAUGHT, Throwable.class);
        return caught != null && (t == null || caught != t.inherited()) ? "handled" : "completed";
    }

    private static Throwable error(Exchange exchange) {
        Throwable e = exchange.getException();
        return e != null ? e : exchange.getProperty(Exchange.EXCEPTION_CAUGHT, Throwable.class);
    }
}
