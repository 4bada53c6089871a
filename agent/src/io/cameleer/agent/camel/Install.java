package io.cameleer.agent.camel;

import io.cameleer.agent.Recorder;
import org.apache.camel.CamelContext;
import org.apache.camel.spi.CamelContextTracker;

/** The bridge's entry point, called once per Camel class loader by the agent's core. */
public final class Install {
    private Install() {}

    public static void install() {
        new Tracker().open();
    }

    /**
     * Told of every CamelContext as it is built, from inside its
     * constructor: it only adds a lifecycle strategy, which does the rest
     * once the context is whole and initializing, before its routes exist.
     */
    private static final class Tracker extends CamelContextTracker {
        Tracker() {
            super(context -> true);
        }

        @Override
        public void contextCreated(CamelContext context) {
            if (!Recorder.on()) {
                return;
            }
            try {
                context.addLifecycleStrategy(new Lifecycle());
            } catch (Throwable t) {
                Recorder.fail(t);
            }
        }
    }
}
