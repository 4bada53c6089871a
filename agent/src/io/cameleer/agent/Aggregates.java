package io.cameleer.agent;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/** The stats of every exchange, per context, route and node, over one window. */
final class Aggregates {
    final long startMicros = Recorder.nowMicros();
    private final Map<String, Map<String, RouteCounts>> contexts = new ConcurrentHashMap<>();

    private static final class RouteCounts {
        final Count route = new Count();
        final Map<String, Count> nodes = new ConcurrentHashMap<>();
    }

    private RouteCounts route(String context, String route) {
        return contexts.computeIfAbsent(context, c -> new ConcurrentHashMap<>()).computeIfAbsent(route, r -> new RouteCounts());
    }

    Count routeCount(String context, String route) {
        return route(context, route).route;
    }

    Count nodeCount(String context, String route, String node) {
        return route(context, route).nodes.computeIfAbsent(node, n -> new Count());
    }

    /** One stats event per context seen in the window. */
    List<String> events(int seconds) {
        List<String> out = new ArrayList<>();
        contexts.forEach((context, routes) -> {
            StringBuilder b = new StringBuilder("{\"kind\":\"stats\",\"stats\":{");
            Json.field(b, "context", context);
            Json.field(b, "start", startMicros);
            Json.field(b, "seconds", seconds);
            Json.key(b, "routes").append('[');
            routes.forEach((id, rc) -> {
                b.append(b.charAt(b.length() - 1) == '[' ? "{" : ",{");
                Json.field(b, "route", id);
                rc.route.json(b);
                Json.key(b, "nodes").append('[');
                rc.nodes.forEach((node, c) -> {
                    b.append(b.charAt(b.length() - 1) == '[' ? "{" : ",{");
                    Json.field(b, "id", node);
                    c.json(b);
                    b.append('}');
                });
                b.append("]}");
            });
            out.add(b.append("]}}").toString());
        });
        return out;
    }
}
