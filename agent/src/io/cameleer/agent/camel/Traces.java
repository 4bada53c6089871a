package io.cameleer.agent.camel;

import io.cameleer.agent.Recorder;
import io.cameleer.agent.Trace;
import java.io.IOException;
import org.apache.camel.Exchange;
import org.apache.camel.Route;

/**
 * Where a trace begins and ends. The trace rides on the exchange as a
 * property, so the copies Camel makes (split, multicast, wire tap, seda:)
 * carry it along with the correlation: a direct: call stays in its
 * caller's trace, anything else that enters a route begins its own.
 */
final class Traces {
    static final String TRACE = "CameleerTrace";
    static final String NODE = "CameleerNode";
    static final String CORRELATION = "CameleerCorrelation";
    /** Set while the message is to be captured again at the first processor. */
    static final String CAPTURE = "CameleerCapture";

    private Traces() {}

    static void begin(Route route, Exchange exchange) throws IOException {
        Trace t = exchange.getProperty(TRACE, Trace.class);
        if (t != null && !t.isFinished() && route.getEndpoint().getEndpointUri().startsWith("direct:")) {
            return;
        }
        String correlation = exchange.getProperty(CORRELATION, String.class);
        if (correlation == null) {
            correlation = exchange.getExchangeId();
            exchange.setProperty(CORRELATION, correlation);
        }
        t = Recorder.begin(exchange.getExchangeId(), exchange.getContext().getName(), route.getRouteId(),
                route.getEndpoint().getEndpointUri(), correlation, exchange.getProperty(Exchange.CORRELATION_ID, String.class));
        if (!Capture.message(t, exchange)) {
            exchange.setProperty(CAPTURE, Boolean.TRUE);
        }
        t.inherited(exchange.getProperty(Exchange.EXCEPTION_CAUGHT, Throwable.class));
        exchange.setProperty(TRACE, t);
        exchange.removeProperty(NODE);
    }

    /** Ends the trace when the exchange that began it leaves the route it began in. */
    static void done(Route route, Exchange exchange, String status) {
        Trace t = exchange.getProperty(TRACE, Trace.class);
        if (t == null || !t.id().equals(exchange.getExchangeId()) || !t.route().equals(route.getRouteId())) {
            return;
        }
        Recorder.end(t, status, "completed".equals(status) ? null : error(exchange));
    }

    /**
     * api's completed, failed (an exception nobody handled) or handled (an
     * error handler took one), of the exchange as it leaves a route.
     */
    static String status(Exchange exchange) {
        if (exchange.getException() != null) {
            return "failed";
        }
        Trace t = exchange.getProperty(TRACE, Trace.class);
        Throwable caught = exchange.getProperty(Exchange.EXCEPTION_CAUGHT, Throwable.class);
        return caught != null && (t == null || caught != t.inherited()) ? "handled" : "completed";
    }

    private static Throwable error(Exchange exchange) {
        Throwable e = exchange.getException();
        return e != null ? e : exchange.getProperty(Exchange.EXCEPTION_CAUGHT, Throwable.class);
    }
}
