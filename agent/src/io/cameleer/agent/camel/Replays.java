package io.cameleer.agent.camel;

import io.cameleer.agent.Recorder;
import java.util.Map;
import org.apache.camel.CamelContext;
import org.apache.camel.Consumer;
import org.apache.camel.Exchange;
import org.apache.camel.Route;

/**
 * Replays a kept original into one CamelContext: a new exchange, made by the
 * route's own consumer as if the message had just arrived, run through the
 * route's processor (its error handler, route policies and so this agent's
 * trace, marked a replay of the original). It works for any route, whatever
 * its endpoint: a timer's or a file's consumer cannot be sent to, but its
 * processor can.
 */
final class Replays implements Recorder.Replayer {
    private final CamelContext context;

    Replays(CamelContext context) {
        this.context = context;
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
}
