package io.cameleer.agent.camel;

import io.cameleer.agent.Recorder;
import org.apache.camel.CamelContext;
import org.apache.camel.Exchange;
import org.apache.camel.NamedNode;
import org.apache.camel.Route;
import org.apache.camel.spi.RoutePolicy;
import org.apache.camel.spi.RoutePolicyFactory;
import org.apache.camel.support.RoutePolicySupport;

/** A route policy per route: where exchanges enter and leave routes. */
final class Policies implements RoutePolicyFactory {
    @Override
    public RoutePolicy createRoutePolicy(CamelContext context, String routeId, NamedNode route) {
        return new Policy();
    }

    private static final class Policy extends RoutePolicySupport {
        private volatile Recorder.Counter counter;
        /** The route's consumer endpoint, sanitized, and whether it is a direct: one: read once. */
        private volatile String from;
        private boolean direct;

        @Override
        public void onExchangeBegin(Route route, Exchange exchange) {
            if (!Recorder.on()) {
                return;
            }
            try {
                if (Recorder.testFail()) {
                    throw new IllegalStateException("a test asked the hooks to fail");
                }
                String uri = from;
                if (uri == null) {
                    String raw = route.getEndpoint().getEndpointUri();
                    direct = raw.startsWith("direct:");
                    uri = Recorder.sanitize(raw);
                    from = uri;
                }
                long now = System.nanoTime();
                Cursor c = Cursor.on(exchange);
                c.entered(route.getRouteId(), now);
                Traces.begin(route, uri, direct, exchange, c, now);
            } catch (Throwable t) {
                Recorder.fail(t);
            }
        }

        @Override
        public void onExchangeDone(Route route, Exchange exchange) {
            if (!Recorder.on()) {
                return;
            }
            try {
                Cursor c = Cursor.of(exchange);
                if (c == null) {
                    return;
                }
                long t0 = c.left(route.getRouteId());
                String status = Traces.status(exchange, c.trace);
                if (t0 != Cursor.NOT_ENTERED) {
                    Recorder.Counter rc = Recorder.routeCounter(counter, exchange.getContext().getName(), route.getRouteId());
                    counter = rc;
                    rc.add((System.nanoTime() - t0) / 1000, !"completed".equals(status));
                }
                Traces.done(route, exchange, c, status);
            } catch (Throwable t) {
                Recorder.fail(t);
            }
        }
    }
}
