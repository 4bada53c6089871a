package io.cameleer.testapp;

import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.camel.builder.RouteBuilder;

/**
 * The routes every test app runs, so the agent's test can assert each node
 * by its id: a timer-driven order flow (choice, a direct: call, split,
 * filter, a seda: hand-off), a route that fails after redeliveries, one whose
 * dead letter channel takes the failure, and one whose onException handles
 * it; a fan-out by multicast into two direct: routes, then a wire tap; a
 * route that fails while the file $FLAKY_DOWN names exists (a downstream
 * that is down), for replay.
 * Every fourth order carries a card number and an e-mail address, which
 * the agent must never let out. Two more hand a stream over, one cached by
 * Camel, one not, and check it arrives whole.
 */
public class DemoRoutes extends RouteBuilder {
    static final String SECRET_ORDER = "order card 4111 1111 1111 1111 mail jane.doe@example.com";

    static final String STREAMED = "a body that comes as a stream";
    /** What JSON must escape, and what it must not break. */
    static final String NOTE = "tab\t \"quoted\" back\\slash \u0001 \u00fc \ud83d\udc2a";

    private final AtomicInteger orders = new AtomicInteger();

    @Override
    public void configure() {
        from("timer:orders?period=200").routeId("orders")
            .process(e -> {
                int n = orders.incrementAndGet();
                // The agent's test counts these to see the app run on.
                System.out.println("made order " + n);
                e.getMessage().setBody(n % 4 == 0 ? SECRET_ORDER : "order " + n + " of two parts");
                e.getMessage().setHeader("kind", n % 2 == 0 ? "big" : "small");
                e.getMessage().setHeader("Authorization", "Bearer abc.def.ghi");
                e.getMessage().setHeader("note", NOTE);
            }).id("make-order")
            .choice().id("kind-choice")
                .when(header("kind").isEqualTo("big")).id("when-big")
                    .to("direct:big").id("to-big")
                .otherwise().id("otherwise-small")
                    .log("small ${body}").id("log-small")
            .end()
            .split(body().tokenize(" ")).id("split-words")
                .filter(body().startsWith("o")).id("filter-o")
                    .log("word ${body}").id("log-word")
                .end()
            .end()
            .to("seda:audit").id("to-audit");

        from("direct:big").routeId("big")
            .log("big ${body}").id("log-big");

        from("seda:audit").routeId("audit")
            .log("audit ${body}").id("log-audit");

        from("timer:failing?period=500").routeId("failing")
            .errorHandler(defaultErrorHandler().maximumRedeliveries(2).redeliveryDelay(0))
            .setBody(constant("bad")).id("set-bad")
            .process(e -> {
                throw new IllegalArgumentException("cannot take " + e.getMessage().getBody());
            }).id("thrower");

        from("timer:dead?period=500").routeId("dead")
            .errorHandler(deadLetterChannel("seda:dead-letters").maximumRedeliveries(1).redeliveryDelay(0))
            .process(e -> {
                throw new IllegalArgumentException("to the dead letters");
            }).id("dead-thrower");

        from("seda:dead-letters").routeId("dead-letters")
            .log("dead letter ${exception}").id("log-dead-letter");

        from("timer:guarded?period=500").routeId("guarded")
            .onException(IllegalStateException.class).handled(true)
                .log("handled ${exception.message}").id("log-handled")
            .end()
            .process(e -> {
                throw new IllegalStateException("guarded");
            }).id("guarded-thrower");

        from("timer:fanout?period=500").routeId("fanout")
            .setBody(constant("fanned")).id("set-fanned")
            .multicast().id("fan")
                .to("direct:left").id("to-left")
                .to("direct:right").id("to-right")
            .end()
            .wireTap("seda:tapped").id("tap")
            .log("fanned out").id("log-fanned");

        from("direct:left").routeId("left")
            .log("left ${body}").id("log-left");

        from("direct:right").routeId("right")
            .log("right ${body}").id("log-right");

        from("seda:tapped").routeId("tapped")
            .log("tapped ${body}").id("log-tapped");

        String down = System.getenv("FLAKY_DOWN");
        from("timer:flaky-source?period=500").routeId("flaky-source")
            .setBody(simple("flaky message ${exchangeId}")).id("make-flaky")
            .setHeader("attempt", constant("first")).id("mark-first")
            .to("seda:flaky").id("to-flaky");

        // It maps, then calls its downstream through a to(): where a
        // replay may re-enter, with the message mapped.
        from("seda:flaky").routeId("flaky")
            .process(e -> e.getMessage().setHeader("mapped", e.getMessage().getBody(String.class).length())).id("map-flaky")
            .to("direct:flaky-downstream").id("call-flaky");

        from("direct:flaky-downstream").routeId("flaky-downstream")
            .process(e -> {
                if (down != null && Files.exists(Path.of(down))) {
                    throw new IllegalStateException("the downstream is down");
                }
                // The replay test looks for the replayed message here.
                System.out.println("flaky took " + e.getMessage().getBody(String.class) + " attempt " + e.getMessage().getHeader("attempt")
                    + " mapped " + e.getMessage().getHeader("mapped"));
            }).id("flaky-println");

        // A stream the agent must not read, and one Camel caches, which it may.
        streams("plain-stream", false);
        streams("cached-stream", true);
    }

    private void streams(String name, boolean cached) {
        from("timer:" + name + "?period=400").routeId(name + "-source").noStreamCaching()
            .process(e -> e.getMessage().setBody(new ByteArrayInputStream(STREAMED.getBytes(StandardCharsets.UTF_8))))
            .to("seda:" + name);
        var route = from("seda:" + name).routeId(name);
        (cached ? route.streamCaching() : route.noStreamCaching())
            .process(e -> {
                String body = e.getMessage().getBody(String.class);
                if (!STREAMED.equals(body)) {
                    throw new IllegalStateException("the stream was read before: " + body);
                }
            }).id("check-" + name);
    }
}
