package io.cameleer.agent;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One exchange's record, from the route it entered to its end, with the
 * node runs of everything it led to inline (direct: calls, split children).
 * The Camel bridge fills it on whichever threads the exchange runs; it is
 * finished once, when the exchange that began it is done.
 */
public final class Trace {
    static final int MAX_NODES = 1000;

    final String id;
    final String context;
    final String route;
    final String from;
    final String correlation;
    final String parent;
    final long startMicros;
    private final long startNanos;
    private final List<NodeRun> nodes = new ArrayList<>();
    private int nodesDropped;
    private int redeliveries;
    private boolean finished;
    private Throwable inherited;
    /** Whether it is kept whatever its outcome; else only if it fails. */
    final boolean sampled;
    String body;
    long bodySize = -1;
    Map<String, String> headers;
    /**
     * The message of a trace not sampled, kept by reference (a String body
     * is as it entered, the headers as they end): read only if it fails.
     */
    private Object keptBody;
    private Map<String, Object> keptHeaders;
    /** The message as it entered, unredacted, for replay; null when not kept. */
    private Original original;
    /** The exchange this one replays, if it is a replay. */
    private String replayOf;
    /** Whether its original went to the runner: it can be replayed. */
    private boolean replayable;
    /** Where it last failed at a node that sends to an endpoint, with what that node sent; null when it did not. */
    private FailedAt failedAt;
    /** A resend's trace (to one node's endpoint): it keeps no original of its own, it is a replay of one. */
    private boolean resend;

    /** A node that sends to an endpoint failed with error, sending message. */
    record FailedAt(String node, String route, Throwable error, Original message) {}

    /**
     * A node as its runs are written: id, type, label and route, the same
     * in every run, so written (the label redacted) once, not once a run.
     */
    public static final class Node {
        final String id;
        final String type;
        final String label;
        final String route;
        private volatile byte[] json;

        public Node(String id, String type, String label, String route) {
            this.id = id;
            this.type = type;
            this.label = label;
            this.route = route;
        }

        /** "id":…,"type":…[,"label":…],"route":…, its label redacted by r. */
        byte[] json(Redactor r) {
            byte[] j = json;
            if (j == null) {
                JsonWriter w = new JsonWriter(64).field("id", id).field("type", type);
                if (label != null && !label.isEmpty()) {
                    w.field("label", r.fixed(label));
                }
                j = w.field("route", route).toBytes();
                json = j;
            }
            return j;
        }
    }

    static final class NodeRun {
        final Node node;
        final int parent;
        final String exchange;
        final long start;
        long duration = -1;
        boolean failed;

        NodeRun(Node node, int parent, String exchange, long start) {
            this.node = node;
            this.parent = parent;
            this.exchange = exchange;
            this.start = start;
        }
    }

    /** from is sanitized already; nanos is when it began, by System.nanoTime. */
    Trace(String id, String context, String route, String from, String correlation, String parent, boolean sampled, long nanos) {
        this.id = id;
        this.context = context;
        this.route = route;
        this.from = from;
        this.sampled = sampled;
        this.correlation = correlation;
        this.parent = parent;
        this.startNanos = nanos;
        this.startMicros = Recorder.micros(nanos);
    }

    public String id() {
        return id;
    }

    /** Whether the trace is kept whatever its outcome. */
    public boolean sampled() {
        return sampled;
    }

    /** Keeps the message of a trace not sampled by reference, for if it fails. */
    public synchronized void keep(Object body, Map<String, Object> headers) {
        keptBody = body;
        keptHeaders = headers;
    }

    /** Keeps the message as it entered, unredacted, in case it is to be replayed. */
    public synchronized void original(Original o) {
        if (!resend) {
            original = o;
        }
    }

    /**
     * Whether a node that failed with error is where the exchange failed
     * anew: not when it only passes on the failure of a node within it
     * (the same exception), nor in a resend.
     */
    public synchronized boolean failsAnew(Throwable error) {
        return !resend && (failedAt == null || failedAt.error != error);
    }

    /** The node (in route) that sends to an endpoint failed with error, sending message. */
    public synchronized void failedAt(String node, String route, Throwable error, Original message) {
        if (!resend) {
            failedAt = new FailedAt(node, route, error, message);
        }
    }

    synchronized FailedAt failedAt() {
        return failedAt;
    }

    /** Marks the trace a resend: it keeps no original. */
    public synchronized void resend() {
        resend = true;
        original = null;
        failedAt = null;
    }

    synchronized Original original() {
        return original;
    }

    /** Marks the trace a replay of the exchange original. */
    public synchronized void replayOf(String original) {
        replayOf = original;
    }

    synchronized boolean isReplay() {
        return replayOf != null;
    }

    synchronized void replayable() {
        replayable = true;
    }

    /** The route the trace began in. */
    public String route() {
        return route;
    }

    /** An error the exchange carried in, handled before this trace began (a dead letter handed on). */
    public synchronized void inherited(Throwable error) {
        inherited = error;
    }

    public synchronized Throwable inherited() {
        return inherited;
    }

    /** The message as it entered: body cut near the bound (size -1: unknown), headers as text. */
    public synchronized void capture(String body, long size, Map<String, String> headers) {
        this.body = body;
        this.bodySize = size;
        this.headers = headers;
        keptBody = null;
        keptHeaders = null;
    }

    /**
     * Starts a node run at nanos (System.nanoTime) and answers its index, or
     * -1 past the bound or the end.
     */
    public synchronized int nodeStart(Node node, int parent, String exchange, long nanos) {
        if (finished || nodes.size() >= MAX_NODES) {
            nodesDropped++;
            return -1;
        }
        nodes.add(new NodeRun(node, parent, exchange, startMicros + (nanos - startNanos) / 1000));
        return nodes.size() - 1;
    }

    /** Ends the run index at nanos (System.nanoTime). */
    public synchronized void nodeEnd(int index, boolean failed, long nanos) {
        if (index < 0 || index >= nodes.size()) {
            return;
        }
        NodeRun n = nodes.get(index);
        n.duration = startMicros + (nanos - startNanos) / 1000 - n.start;
        n.failed = failed;
    }

    public synchronized void redelivered() {
        redeliveries++;
    }

    public synchronized boolean isFinished() {
        return finished;
    }

    /** Ends the record: true only the first time. */
    synchronized boolean finish() {
        if (finished) {
            return false;
        }
        finished = true;
        return true;
    }

    long elapsedMicros() {
        return (System.nanoTime() - startNanos) / 1000;
    }

    /** The exchange event, redacted by r, bodies cut at bodyMax, in UTF-8. */
    synchronized byte[] json(String status, long duration, Throwable error, Redactor r, int bodyMax) {
        if (keptHeaders != null || keptBody != null) {
            Captured c = Captured.of(keptBody, keptHeaders, bodyMax);
            capture(c.text, c.size, c.headers);
        }
        JsonWriter b = new JsonWriter(512 + nodes.size() * 160 + (body == null ? 0 : Math.min(body.length(), bodyMax) * 9 / 8));
        b.raw("{\"kind\":\"exchange\",\"exchange\":{");
        b.field("id", id);
        b.field("context", context);
        b.field("route", route);
        b.field("from", r.fixed(from));
        b.field("correlation", correlation);
        if (parent != null) {
            b.field("parent", parent);
        }
        if (replayOf != null) {
            b.field("replayOf", replayOf);
        }
        if (replayable) {
            b.key("replayable").raw("true");
        }
        b.field("start", startMicros);
        b.field("duration", duration);
        b.field("status", status);
        if (redeliveries > 0) {
            b.field("redeliveries", redeliveries);
        }
        if (error != null) {
            b.key("error").raw('{');
            b.field("type", error.getClass().getName());
            b.field("message", r.text(String.valueOf(error.getMessage())));
            b.field("stack", r.text(Stacks.bounded(error)));
            b.raw('}');
        }
        if (body != null && !body.isEmpty()) {
            String red = r.text(body);
            boolean cut = bodySize > bodyMax || red.length() > bodyMax;
            b.field("body", red.length() > bodyMax ? red.substring(0, bodyMax) : red);
            if (cut) {
                b.key("bodyTruncated").raw("true");
            }
        }
        b.field("bodySize", bodySize);
        if (headers != null && !headers.isEmpty()) {
            Map<String, String> red = new LinkedHashMap<>();
            headers.forEach((k, v) -> red.put(k, r.header(k, v)));
            b.key("headers").object(red);
        }
        b.key("nodes").raw('[');
        for (int i = 0; i < nodes.size(); i++) {
            NodeRun n = nodes.get(i);
            b.raw(i == 0 ? "{" : ",{");
            b.bytes(n.node.json(r));
            b.field("parent", n.parent);
            if (n.exchange != null) {
                b.field("exchange", n.exchange);
            }
            b.field("start", n.start);
            // A run still going when its exchange ended (an async child) lasts until then.
            b.field("duration", n.duration >= 0 ? n.duration : Math.max(0, startMicros + duration - n.start));
            if (n.failed) {
                b.key("failed").raw("true");
            }
            b.raw('}');
        }
        b.raw(']');
        if (nodesDropped > 0) {
            b.field("nodesDropped", nodesDropped);
        }
        return b.raw("}}").toBytes();
    }
}
