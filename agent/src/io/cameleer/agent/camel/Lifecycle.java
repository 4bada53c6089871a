package io.cameleer.agent.camel;

import io.cameleer.agent.Recorder;
import java.util.Collection;
import java.util.List;
import org.apache.camel.CamelContext;
import org.apache.camel.Route;
import org.apache.camel.support.LifecycleStrategySupport;

/**
 * Hooks one CamelContext as it initializes, before its routes are made (a
 * route policy per route, an intercept strategy per processor), and sends its route model once its routes have started and
 * again whenever they change.
 */
final class Lifecycle extends LifecycleStrategySupport {
    private volatile CamelContext context;
    private volatile Nodes nodes;
    private volatile Replays replays;

    @Override
    public void onContextInitializing(CamelContext context) {
        if (!Recorder.on()) {
            return;
        }
        try {
            this.context = context;
            context.addRoutePolicyFactory(new Policies());
            nodes = new Nodes();
            context.getCamelContextExtension().addInterceptStrategy(nodes);
        } catch (Throwable t) {
            Recorder.fail(t);
        }
    }

    @Override
    public void onContextStarted(CamelContext context) {
        sendModel(List.of(), List.of());
        if (!Recorder.on()) {
            return;
        }
        try {
            replays = new Replays(context, nodes);
            Recorder.replayer(context.getName(), replays);
        } catch (Throwable t) {
            Recorder.fail(t);
        }
    }

    @Override
    public void onContextStopping(CamelContext context) {
        Replays r = replays;
        if (r != null) {
            Recorder.noReplayer(context.getName(), r);
        }
    }

    // Camel tells of routes added before it lists them, and of routes
    // removed while it still does.
    @Override
    public void onRoutesAdd(Collection<Route> routes) {
        if (context != null && context.getStatus().isStarted()) {
            sendModel(routes, List.of());
        }
    }

    @Override
    public void onRoutesRemove(Collection<Route> routes) {
        Nodes n = nodes;
        if (n != null) {
            n.removed(routes);
        }
        if (context != null && context.getStatus().isStarted()) {
            sendModel(List.of(), routes);
        }
    }

    private void sendModel(Collection<Route> added, Collection<Route> removed) {
        if (!Recorder.on() || context == null) {
            return;
        }
        try {
            Recorder.routes(Models.of(context, added, removed));
        } catch (Throwable t) {
            Recorder.fail(t);
        }
    }
}
