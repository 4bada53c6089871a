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
        return new Policy(routeId);
    }

    private static final class Policy extends RoutePolicySupport {
        /** The exchange property holding when the exchange entered this route. */
        private final String began;

        Policy(String routeId) {
            began = "CameleerBegan." + routeId;
        }

        @Override
        public void onExchangeBegin(Route route, Exchange exchange) {
            if (!Recorder.on()) {
                return;
            }
            try {
                if (Recorder.testFail()) {
                    throw new IllegalStateException("a test asked the hooks to fail");
                }
                exchange.setProperty(began, System.nanoTime());
                Traces.begin(route, exchange);
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
                Long t0 = exchange.getProperty(began, Long.class);
                String status = Traces.status(exchange);
                if (t0 != null) {
                    Recorder.routeDone(exchange.getContext().getName(), route.getRouteId(),
                            (System.nanoTime() - t0) / 1000, !"completed".equals(status));
                }
                Traces.done(route, exchange, status);
            } catch (Throwable t) {
                Recorder.fail(t);
            }
        }
    }
}
