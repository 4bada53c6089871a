package io.cameleer.agent.camel;

import io.cameleer.agent.RouteModel;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.camel.CamelContext;
import org.apache.camel.NamedNode;
import org.apache.camel.Route;
import org.apache.camel.model.ChoiceDefinition;
import org.apache.camel.model.Model;
import org.apache.camel.model.OnCompletionDefinition;
import org.apache.camel.model.OnExceptionDefinition;
import org.apache.camel.model.OtherwiseDefinition;
import org.apache.camel.model.ProcessorDefinition;
import org.apache.camel.model.RouteDefinition;
import org.apache.camel.model.WhenDefinition;

/**
 * A context's route model, read from Camel's own definitions: the nodes of
 * each route in order, nested as defined, and the edges an exchange can
 * take: on to the next node, into a choice's branches and out of each, into
 * a block's body (split, filter, loop...) and, for a filter, past it.
 */
final class Models {
    private Models() {}

    /** A node's id: the one given with id() or Camel's generated one. */
    static String id(NamedNode node) {
        String id = node.getId();
        return id != null ? id : node.getShortName() + "@" + Integer.toHexString(System.identityHashCode(node));
    }

    /** The id of the route a node is defined in, or null when it is not in one (a context-wide onException). */
    static String routeId(NamedNode node) {
        NamedNode n = node;
        while (n.getParent() != null) {
            n = n.getParent();
        }
        return n instanceof RouteDefinition ? n.getId() : null;
    }

    /** The model of the context's routes, with added and without removed (Camel's lists lag both). */
    static RouteModel of(CamelContext context, Collection<Route> added, Collection<Route> removed) {
        Map<String, Route> routes = new LinkedHashMap<>();
        for (Route r : context.getRoutes()) {
            routes.put(r.getRouteId(), r);
        }
        for (Route r : added) {
            routes.putIfAbsent(r.getRouteId(), r);
        }
        for (Route r : removed) {
            routes.remove(r.getRouteId());
        }
        RouteModel m = new RouteModel(context.getName());
        Model model = context.getCamelContextExtension().getContextPlugin(Model.class);
        for (Route r : routes.values()) {
            m.route(r.getRouteId(), r.getEndpoint().getEndpointUri(), r.getDescription());
            RouteDefinition d = model == null ? null : model.getRouteDefinition(r.getRouteId());
            if (d != null) {
                String from = d.getInput() != null && d.getInput().getId() != null ? d.getInput().getId() : r.getRouteId() + "-from";
                m.node(from, "from", r.getEndpoint().getEndpointUri(), null, 0);
                new Walk(m).walk(d.getOutputs(), null, List.of(from));
            }
        }
        return m;
    }

    private static final class Walk {
        private final RouteModel m;
        private int order = 1;

        Walk(RouteModel m) {
            this.m = m;
        }

        /** Adds outs (children of parent) entered from preds; answers the nodes the flow leaves them from. */
        List<String> walk(List<ProcessorDefinition<?>> outs, String parent, List<String> preds) {
            for (ProcessorDefinition<?> p : outs) {
                String id = node(p, parent);
                if (p instanceof OnExceptionDefinition || p instanceof OnCompletionDefinition) {
                    // Entered on an error or at the end, not in the flow.
                    walk(p.getOutputs(), id, List.of(id));
                    continue;
                }
                for (String from : preds) {
                    m.edge(from, id);
                }
                if (p instanceof ChoiceDefinition c) {
                    List<String> exits = new ArrayList<>();
                    for (WhenDefinition w : c.getWhenClauses()) {
                        exits.addAll(branch(w, w.getOutputs(), id));
                    }
                    OtherwiseDefinition o = c.getOtherwise();
                    if (o != null) {
                        exits.addAll(branch(o, o.getOutputs(), id));
                    } else {
                        exits.add(id);
                    }
                    preds = exits;
                } else if (!p.getOutputs().isEmpty()) {
                    List<String> exits = walk(p.getOutputs(), id, List.of(id));
                    List<String> next = new ArrayList<>(List.of(id));
                    if ("filter".equals(p.getShortName())) {
                        exits.stream().filter(e -> !e.equals(id)).forEach(next::add);
                    }
                    preds = next;
                } else {
                    preds = List.of(id);
                }
            }
            return preds;
        }

        /** A choice's when or otherwise (not processor definitions in every Camel 4). */
        private List<String> branch(NamedNode b, List<ProcessorDefinition<?>> outs, String choice) {
            String id = node(b, choice);
            m.edge(choice, id);
            return walk(outs, id, List.of(id));
        }

        private String node(NamedNode p, String parent) {
            String id = id(p);
            m.node(id, p.getShortName(), p.getLabel(), parent, order++);
            return id;
        }
    }
}
