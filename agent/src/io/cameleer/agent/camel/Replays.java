package io.cameleer.agent.camel;

import io.cameleer.agent.Recorder;
import io.cameleer.agent.Trace;
import java.util.Map;
import org.apache.camel.CamelContext;
import org.apache.camel.Consumer;
import org.apache.camel.Exchange;
import org.apache.camel.Route;
import org.apache.camel.support.DefaultExchange;

/**
 * Replays a kept original into one CamelContext, from its route's start or
 * at the node where it failed. From the start: a new exchange, made by the
 * route's own consumer as if the message had just arrived, run through the
 * route's processor (its error handler, route policies and so this agent's
 * trace, marked a replay of the original). It works for any route, whatever
 * its endpoint: a timer's or a file's consumer cannot be sent to, but its
 * processor can.
 */
final class Replays implements Recorder.Replayer {
    private final CamelContext context;
    private final Nodes nodes;

    Replays(CamelContext context, Nodes nodes) {
        this.context = context;
        this.nodes = nodes;
    }

    @Override
    public Recorder.Replayed replay(String routeId, byte[] body, Map<String, String> headers, String replayOf) throws Exception {
        Route route = context.getRoute(routeId);
        if (route == null || route.getConsumer() == null) {
            throw new IllegalArgumentException("no route " + routeId + " in CamelContext " + context.getName());
        }
        Consumer consumer = route.getConsumer();
        Exchange exchange = consumer.createExchange(false);
        try {
            exchange.getMessage().setBody(body);
            headers.forEach(exchange.getMessage()::setHeader);
            Cursor.on(exchange).replayOf = replayOf;
            consumer.getProcessor().process(exchange);
            Cursor c = Cursor.of(exchange);
            String status = Traces.status(exchange, c == null ? null : c.trace);
            Throwable error = exchange.getException() != null ? exchange.getException() : exchange.getProperty(Exchange.EXCEPTION_CAUGHT, Throwable.class);
            return new Recorder.Replayed(exchange.getExchangeId(), status, error == null ? null : error.getClass().getName() + ": " + error.getMessage());
        } finally {
            consumer.releaseExchange(exchange, false);
        }
    }

    /**
     * Sends body and headers once more to the endpoint of node, a node of
     * route that sends to one (to), as the node does (its producer, its
     * exchange pattern), through the node's wrapper so the run is traced:
     * a trace of its own, in route, from the node's endpoint, marked a
     * replay of the original. What follows the node in its route does not
     * run: that is what re-entering at the node means.
     */
    @Override
    public Recorder.Replayed resend(String routeId, String node, byte[] body, Map<String, String> headers, String replayOf) throws Exception {
        Nodes.Timed sender = nodes.sender(routeId, node);
        if (sender == null) {
            throw new IllegalArgumentException("no node " + node + " sending to an endpoint in route " + routeId + " of CamelContext " + context.getName());
        }
        Exchange exchange = new DefaultExchange(context);
        exchange.getExchangeExtension().setFromRouteId(routeId);
        exchange.getMessage().setBody(body);
        headers.forEach(exchange.getMessage()::setHeader);
        Cursor c = Cursor.on(exchange);
        c.correlation = exchange.getExchangeId();
        Trace t = Recorder.begin(exchange.getExchangeId(), context.getName(), routeId, Recorder.sanitize(sender.endpointUri()), c.correlation, null, System.nanoTime());
        t.resend();
        t.replayOf(replayOf);
        c.begin(t);
        Capture.message(t, exchange);
        sender.process(exchange);
        String status = Traces.status(exchange, t);
        Throwable error = exchange.getException();
        Recorder.end(t, status, error);
        return new Recorder.Replayed(exchange.getExchangeId(), status, error == null ? null : error.getClass().getName() + ": " + error.getMessage());
    }
}
