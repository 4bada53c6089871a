package io.cameleer.agent;

import java.util.ArrayList;
import java.util.List;

/** A context's routes as the bridge reads them from Camel's model, built up in order (api.RouteModel). */
public final class RouteModel {
    private final String context;
    private final List<Route> routes = new ArrayList<>();

    private record Node(String id, String type, String label, String parent, int order) {}

    private record Route(String id, String from, String description, List<Node> nodes, List<String[]> edges) {}

    public RouteModel(String context) {
        this.context = context;
    }

    /** Starts a route: the nodes and edges that follow are its own. */
    public void route(String id, String from, String description) {
        routes.add(new Route(id, from, description, new ArrayList<>(), new ArrayList<>()));
    }

    public void node(String id, String type, String label, String parent, int order) {
        routes.get(routes.size() - 1).nodes.add(new Node(id, type, label, parent, order));
    }

    public void edge(String from, String to) {
        routes.get(routes.size() - 1).edges.add(new String[] {from, to});
    }

    String json(Redactor r) {
        StringBuilder b = new StringBuilder("{\"kind\":\"routes\",\"routes\":{");
        Json.field(b, "context", context);
        Json.key(b, "routes").append('[');
        for (Route route : routes) {
            b.append(b.charAt(b.length() - 1) == '[' ? "{" : ",{");
            Json.field(b, "id", route.id);
            Json.field(b, "from", r.text(Uris.sanitize(route.from)));
            if (route.description != null && !route.description.isEmpty()) {
                Json.field(b, "description", r.text(route.description));
            }
            Json.key(b, "nodes").append('[');
            for (Node n : route.nodes) {
                b.append(b.charAt(b.length() - 1) == '[' ? "{" : ",{");
                Json.field(b, "id", n.id);
                Json.field(b, "type", n.type);
                if (n.label != null && !n.label.isEmpty()) {
                    Json.field(b, "label", r.text(n.label));
                }
                if (n.parent != null) {
                    Json.field(b, "parent", n.parent);
                }
                Json.field(b, "order", n.order);
                b.append('}');
            }
            b.append(']');
            Json.key(b, "edges").append('[');
            for (String[] e : route.edges) {
                b.append(b.charAt(b.length() - 1) == '[' ? "[" : ",[");
                Json.quote(b, e[0]).append(',');
                Json.quote(b, e[1]).append(']');
            }
            b.append("]}");
        }
        return b.append("]}}").toString();
    }
}
