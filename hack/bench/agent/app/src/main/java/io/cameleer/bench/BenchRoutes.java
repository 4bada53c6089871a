package io.cameleer.bench;

import org.apache.camel.builder.RouteBuilder;

/**
 * direct:bench: exactly 10 processors of the usual kinds, each with an id so
 * the agent records each as a node; two of them call small routes of their
 * own (audit: 1 processor, enrich: 2). Half the bodies the benchmark sends
 * are "high" priority and take the choice's when, half its otherwise.
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

        from("direct:audit").routeId("audit")
            .setHeader("audited", constant(true)).id("mark-audited");

        from("direct:enrich").routeId("enrich")
            .setHeader("enriched", simple("${header.fields}")).id("set-enriched")
            .setBody(simple("${body}\n")).id("end-line");
    }
}
