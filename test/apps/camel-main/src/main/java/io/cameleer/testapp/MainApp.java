package io.cameleer.testapp;

import org.apache.camel.builder.RouteBuilder;
import org.apache.camel.impl.DefaultCamelContext;
import org.apache.camel.main.Main;

/**
 * A camel-main app with DemoRoutes, and a second CamelContext beside it,
 * which gains a route a second after it starts and loses it a second later.
 * With LOAD_ONLY=1 it runs LoadRoute alone, for a test that counts every
 * trace the agent makes.
 */
public final class MainApp {
    private MainApp() {}

    public static void main(String[] args) throws Exception {
        Health.serve("camel-main");
        Main main = new Main();
        main.configure().withName("demo");
        main.configure().addRoutesBuilder(new LoadRoute());
        if ("1".equals(System.getenv("LOAD_ONLY"))) {
            main.run(args);
            return;
        }
        DefaultCamelContext second = new DefaultCamelContext();
        second.getCamelContextExtension().setName("second");
        second.addRoutes(new RouteBuilder() {
            @Override
            public void configure() {
                from("timer:second?period=300").routeId("second-route")
                    .log("second ${body}").id("second-log");
            }
        });
        second.start();
        Thread late = new Thread(() -> {
            try {
                Thread.sleep(1000);
                second.addRoutes(new RouteBuilder() {
                    @Override
                    public void configure() {
                        from("timer:late?period=300").routeId("late").log("late").id("late-log");
                    }
                });
                Thread.sleep(1000);
                second.getRouteController().stopRoute("late");
                second.removeRoute("late");
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        }, "late-route");
        late.setDaemon(true);
        late.start();

        main.configure().addRoutesBuilder(new DemoRoutes());
        main.configure().addRoutesBuilder(new DeliveryRoutes());
        main.run(args);
    }
}
