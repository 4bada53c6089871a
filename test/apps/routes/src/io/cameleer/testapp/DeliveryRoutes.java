package io.cameleer.testapp;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import org.apache.camel.Exchange;
import org.apache.camel.builder.RouteBuilder;

/**
 * Deliveries to a downstream HTTP service at $DOWNSTREAM_URL, for the
 * replay test: $DELIVER_COUNT of them (default 6), one every
 * $DELIVER_PERIOD ms (default 100), each numbered in its body and its
 * Delivery-Id header ($DELIVER_ID_PREFIX and the number; default "d-"),
 * handed over seda: to the route that maps it and posts it (through a
 * to() of a direct: route, where a replay may re-enter). The mapping
 * refuses every $DELIVER_BAD_EVERY-th (default 3; 0: none): its quantity
 * is not a number; the post fails while the downstream is down.
 * Each body carries a card number, which the agent redacts in what it
 * sends and the original for replay keeps. The post uses the JDK's HTTP
 * client, not camel-http: one less dependency across the Camel matrix;
 * the route is what Camel traces, whatever the call is made with.
 * No route without DOWNSTREAM_URL.
 */
public class DeliveryRoutes extends RouteBuilder {
    static final String CARD = "5500 0000 0000 0004";

    @Override
    public void configure() {
        String url = System.getenv("DOWNSTREAM_URL");
        if (url == null || url.isBlank()) {
            return;
        }
        String count = System.getenv().getOrDefault("DELIVER_COUNT", "6").strip();
        String period = System.getenv().getOrDefault("DELIVER_PERIOD", "100").strip();
        String prefix = System.getenv().getOrDefault("DELIVER_ID_PREFIX", "d-").strip();
        int badEvery = Integer.parseInt(System.getenv().getOrDefault("DELIVER_BAD_EVERY", "3").strip());
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();

        from("timer:deliveries?includeMetadata=true&period=" + period + "&repeatCount=" + count).routeId("deliveries")
            .process(e -> {
                // A header since Camel 4.x's timer; an exchange property before.
                Long counter = e.getMessage().getHeader(Exchange.TIMER_COUNTER, Long.class);
                long n = counter != null ? counter : e.getProperty(Exchange.TIMER_COUNTER, Long.class);
                String qty = badEvery > 0 && n % badEvery == 0 ? "many" : String.valueOf(n);
                e.getMessage().setBody("delivery " + n + " qty=" + qty + " card " + CARD);
                e.getMessage().setHeader("Delivery-Id", prefix + n);
            }).id("make-delivery")
            .to("seda:deliver").id("to-deliver");

        from("seda:deliver").routeId("deliver")
            .process(e -> {
                String body = e.getMessage().getBody(String.class);
                String qty = body.replaceAll("^.*qty=(\\S+).*$", "$1");
                e.getMessage().setHeader("Quantity", Integer.parseInt(qty));
            }).id("map-delivery")
            .to("direct:post-delivery").id("post");

        from("direct:post-delivery").routeId("post-delivery")
            .process(e -> {
                HttpRequest req = HttpRequest.newBuilder(URI.create(url.strip()))
                    .timeout(Duration.ofSeconds(5))
                    .header("Delivery-Id", e.getMessage().getHeader("Delivery-Id", String.class))
                    .header("Quantity", e.getMessage().getHeader("Quantity", String.class))
                    .POST(HttpRequest.BodyPublishers.ofString(e.getMessage().getBody(String.class)))
                    .build();
                HttpResponse<String> resp = http.send(req, HttpResponse.BodyHandlers.ofString());
                if (resp.statusCode() != 200) {
                    throw new IOException("the downstream answered " + resp.statusCode());
                }
            }).id("call-downstream");
    }
}
