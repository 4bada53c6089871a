package io.cameleer.example;

import org.apache.camel.builder.RouteBuilder;
import org.apache.camel.component.platform.http.vertx.VertxPlatformHttpServer;
import org.apache.camel.component.platform.http.vertx.VertxPlatformHttpServerConfiguration;
import org.apache.camel.main.BaseMainSupport;
import org.apache.camel.main.Main;
import org.apache.camel.main.MainListenerSupport;

/**
 * The quickstart's sample app: GET / answers a greeting through a Camel
 * route (platform-http on Vert.x, on $PORT, default 8080), and a timer
 * route says it is alive every ten seconds.
 */
public final class Hello {
    private Hello() {}

    public static void main(String[] args) throws Exception {
        Main main = new Main();
        main.configure().withName("hello");
        main.addMainListener(new MainListenerSupport() {
            @Override
            public void afterConfigure(BaseMainSupport m) {
                VertxPlatformHttpServerConfiguration http = new VertxPlatformHttpServerConfiguration();
                http.setBindPort(Integer.parseInt(System.getenv().getOrDefault("PORT", "8080")));
                try {
                    m.getCamelContext().addService(new VertxPlatformHttpServer(http));
                } catch (Exception e) {
                    throw new IllegalStateException("the HTTP server", e);
                }
            }
        });
        main.configure().addRoutesBuilder(new RouteBuilder() {
            @Override
            public void configure() {
                from("platform-http:/").routeId("hello")
                    .setBody(simple("Hello from Apache Camel on Cameleer, exchange ${exchangeId}\n")).id("greet")
                    .log("${body}").id("log-greeting");
                from("timer:alive?period=10000").routeId("alive")
                    .log("hello is alive").id("log-alive");
            }
        });
        main.run(args);
    }
}
