package io.cameleer.agent.camel;

import io.cameleer.agent.Recorder;
import io.cameleer.agent.Trace;
import java.io.IOException;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.apache.camel.AsyncCallback;
import org.apache.camel.CamelContext;
import org.apache.camel.EndpointAware;
import org.apache.camel.Exchange;
import org.apache.camel.NamedNode;
import org.apache.camel.Processor;
import org.apache.camel.Route;
import org.apache.camel.spi.InterceptStrategy;
import org.apache.camel.support.processor.DelegateAsyncProcessor;

/**
 * Wraps every processor of every route to time its runs, asynchronously:
 * the run ends in the callback. The wrapper keeps the index of the running
 * node in the exchange's Cursor, so what runs within it (a direct: route, a
 * split's children, which get a copy of the cursor) nests under it.
 */
final class Nodes implements InterceptStrategy {
    /** The wrapped nodes that send to an endpoint, newest last: where a replay may re-enter. */
    private final List<Timed> senders = new CopyOnWriteArrayList<>();

    @Override
    public Processor wrapProcessorInInterceptors(CamelContext context, NamedNode definition, Processor target, Processor nextTarget) {
        Timed t = new Timed(definition, target);
        if (t.sends != null) {
            senders.add(t);
        }
        return t;
    }

    /**
     * The node of route with id node that sends to an endpoint, wrapped
     * (so a run of it is traced), or null. Ids are read now: Camel may
     * have given one after the node was wrapped.
     */
    Timed sender(String route, String node) {
        for (int i = senders.size() - 1; i >= 0; i--) {
            Timed t = senders.get(i);
            if (route.equals(t.route) && node.equals(Models.id(t.node))) {
                return t;
            }
        }
        return null;
    }

    /** Forgets the nodes of routes removed. */
    void removed(Collection<Route> routes) {
        for (Route r : routes) {
            senders.removeIf(t -> r.getRouteId().equals(t.route));
        }
    }

    static final class Timed extends DelegateAsyncProcessor {
        private final NamedNode node;
        private final String route;
        // Camel builds a label anew each time it is asked.
        private final String type;
        private final String label;
        private volatile Recorder.Counter counter;
        /** The node's id once Camel has given it one. */
        private volatile String id;
        /** The node as its runs are written, once its id and route are known. */
        private volatile Trace.Node written;
        /** What it sends to an endpoint with (to), where a replay may re-enter; null for other nodes. */
        private final EndpointAware sends;

        Timed(NamedNode node, Processor target) {
            super(target);
            this.node = node;
            this.route = Models.routeId(node);
            this.type = node.getShortName();
            this.label = node.getLabel();
            this.sends = target instanceof EndpointAware ea && route != null ? ea : null;
        }

        /** The endpoint the node sends to, as Camel names it (with what credentials it has). */
        String endpointUri() {
            return sends.getEndpoint().getEndpointUri();
        }

        @Override
        public boolean process(Exchange exchange, AsyncCallback callback) {
            if (!Recorder.on()) {
                return processor.process(exchange, callback);
            }
            long t0 = System.nanoTime();
            // Camel may give a node its id after wrapping it.
            String id = this.id;
            if (id == null) {
                id = Models.id(node);
                if (node.getId() != null) {
                    this.id = id;
                }
            }
            String route = this.route != null ? this.route : exchange.getFromRouteId();
            Cursor c;
            Trace t;
            int parent;
            int index;
            try {
                c = Cursor.of(exchange);
                t = c == null ? null : c.trace;
                parent = c == null ? -1 : c.node;
                index = t == null ? -1 : start(exchange, c, t, id, route, t0);
            } catch (Throwable e) {
                Recorder.fail(e);
                return processor.process(exchange, callback);
            }
            String ran = id;
            return processor.process(exchange, doneSync -> {
                try {
                    end(exchange, ran, route, t, parent, index, t0);
                } catch (Throwable e) {
                    Recorder.fail(e);
                } finally {
                    callback.done(doneSync);
                }
            });
        }

        private int start(Exchange exchange, Cursor c, Trace t, String id, String route, long t0) throws IOException {
            // A split child's runs say whose they are.
            String other = c.other(exchange);
            if (c.failedRun != null) {
                redelivery(exchange, c, t, other);
            }
            if (other == null && c.capture) {
                c.capture = false;
                Capture.message(t, exchange);
            }
            Trace.Node n = written;
            if (n == null) {
                n = new Trace.Node(id, type, label, route);
                // Kept once neither changes: its id given, its route its own.
                if (this.id != null && this.route != null) {
                    written = n;
                }
            }
            int index = t.nodeStart(n, c.node, other, t0);
            if (index >= 0) {
                c.node = index;
            }
            return index;
        }

        /**
         * Counts a redelivery: the error handler of a node's channel runs
         * the node again when it failed, with the exchange marked
         * redelivered. Read here, after a failure only, rather than from
         * Camel's events: an event notifier costs every exchange.
         */
        private void redelivery(Exchange exchange, Cursor c, Trace t, String other) {
            if (c.failedRun == this && other == null && Boolean.TRUE.equals(exchange.getMessage().getHeader(Exchange.REDELIVERED))) {
                t.redelivered();
            }
            c.failedRun = null;
        }

        private void end(Exchange exchange, String id, String route, Trace t, int parent, int index, long t0) throws IOException {
            long t1 = System.nanoTime();
            Throwable error = exchange.getException();
            boolean failed = error != null;
            Recorder.Counter rc = Recorder.nodeCounter(counter, exchange.getContext().getName(), route, id);
            counter = rc;
            rc.add((t1 - t0) / 1000, failed);
            if (index >= 0) {
                // What it was sending, as it was, for a replay that re-enters here.
                if (failed && sends != null && t.failsAnew(error) && Recorder.keepsOriginals(t.route())) {
                    t.failedAt(id, route, error, Capture.now(exchange));
                }
                t.nodeEnd(index, failed, t1);
                // The cursor on the exchange now: the run may have put a child's copy in its place.
                Cursor now = Cursor.of(exchange);
                if (now != null) {
                    now.node = parent;
                    if (failed) {
                        now.failedRun = this;
                    }
                }
            }
        }
    }
}
