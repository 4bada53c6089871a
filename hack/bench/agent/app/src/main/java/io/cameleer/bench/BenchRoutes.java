package io.cameleer.bench;

import java.util.List;
import java.util.Map;
import org.apache.camel.Exchange;
import org.apache.camel.builder.RouteBuilder;

/**
 * Two routes of exactly 10 processors, each with an id so the agent records
 * each as a node. direct:bench does almost nothing in each (the agent's
 * worst case): two of them call small routes of their own (audit: 1
 * processor, enrich: 2). direct:orders does what integrations do: parses
 * the JSON order, prices it, routes it by priority, and posts it to a
 * downstream system over HTTP (hack/bench/agent/downstream, on
 * $DOWNSTREAM_PORT). Half the bodies the benchmark sends are "high"
 * priority and take each choice's when, half its otherwise.
 */
public class BenchRoutes extends RouteBuilder {
    @Override
    public void configure() {
        from("direct:bench").routeId("bench")
            .convertBodyTo(String.class).id("to-text")                                       // 1
            .setHeader("priority", simple("${body} contains '\"priority\":\"high\"'")).id("set-priority") // 2
            .process(e -> {                                                                   // 3
                String body = e.getMessage().getBody(String.class);
                int fields = 0;
                for (int i = 0; i < body.length(); i++) {
                    if (body.charAt(i) == ':') {
                        fields++;
                    }
                }
                e.getMessage().setHeader("fields", fields);
            }).id("count-fields")
            .choice().id("by-priority")                                                      // 4
                .when(header("priority").isEqualTo(true))
                    .to("direct:audit").id("to-audit")                                       // 5
                .otherwise()
                    .setHeader("lane", constant("normal")).id("set-lane")                    // 6
            .end()
            .filter(header("fields").isGreaterThan(0)).id("has-fields")                     // 7
                .transform(simple("{\"fields\":${header.fields},\"order\":${body}}")).id("wrap") // 8
            .end()
            .to("direct:enrich").id("to-enrich")                                             // 9
            .removeHeader("priority").id("drop-priority");                                   // 10

        from("direct:orders").routeId("orders")
            .unmarshal().json(Map.class).id("parse")                                         // 1
            .setHeader("orderId", simple("${body[id]}")).id("order-id")                      // 2
            .process(e -> {                                                                   // 3
                Map<String, Object> order = e.getMessage().getBody(Map.class);
                double total = 0;
                for (Object o : (List<?>) order.get("items")) {
                    Map<?, ?> item = (Map<?, ?>) o;
                    total += ((Number) item.get("qty")).doubleValue() * ((Number) item.get("price")).doubleValue();
                }
                order.put("total", total);
            }).id("price")
            .choice().id("by-lane")                                                          // 4
                .when(simple("${body[priority]} == 'high'"))
                    .setHeader("lane", constant("express")).id("express")                    // 5
                .otherwise()
                    .setHeader("lane", constant("standard")).id("standard")                  // 6
            .end()
            .marshal().json().id("to-json")                                                  // 7
            .setHeader(Exchange.HTTP_METHOD, constant("POST")).id("post")                    // 8
            .to("http://127.0.0.1:{{env:DOWNSTREAM_PORT:18090}}/stock").id("reserve")        // 9
            .convertBodyTo(String.class).id("reply");                                        // 10

        from("direct:audit").routeId("audit")
            .setHeader("audited", constant(true)).id("mark-audited");

        from("direct:enrich").routeId("enrich")
            .setHeader("enriched", simple("${header.fields}")).id("set-enriched")
            .setBody(simple("${body}\n")).id("end-line");
    }
}
