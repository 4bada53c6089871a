package io.cameleer.testapp;

import org.apache.camel.builder.RouteBuilder;

/**
 * A load of exactly $LOAD_COUNT exchanges, one every $LOAD_PERIOD ms
 * (default 50), each with its number in the body: a test counts them at the
 * control plane to see each arrive once. No route without LOAD_COUNT.
 */
public class LoadRoute extends RouteBuilder {
    @Override
    public void configure() {
        String count = System.getenv("LOAD_COUNT");
        if (count == null || count.isBlank()) {
            return;
        }
        String period = System.getenv().getOrDefault("LOAD_PERIOD", "50");
        from("timer:load?includeMetadata=true&period=" + period + "&repeatCount=" + count.strip()).routeId("load")
            .setBody(simple("load ${exchangeProperty.CamelTimerCounter}")).id("number-it")
            .to("direct:load-sink").id("to-sink");
        from("direct:load-sink").routeId("load-sink")
            .log("${body}").id("log-load");
    }
}
