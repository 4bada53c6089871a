import org.apache.camel.CamelContext;
import org.apache.camel.ProducerTemplate;
import org.apache.camel.builder.RouteBuilder;
import org.apache.camel.impl.DefaultCamelContext;

/**
 * The agent's cost on a small route (five nodes, a direct: call): N
 * request-replies a round, three rounds, timed. Built and run against the
 * camel-main test app's uber JAR, with and without the agent:
 *
 *   jar=build/testapps/camel-main/4.22.0/app.jar
 *   javac -d build/bench -cp $jar test/apps/bench/Bench.java
 *   java -cp $jar:build/bench Bench 200000
 *   CAMELEER_SAMPLE=0.1 java -javaagent:build/payload/agent/cameleer-agent.jar -cp $jar:build/bench Bench 200000
 */
public class Bench {
    public static void main(String[] args) throws Exception {
        CamelContext ctx = new DefaultCamelContext();
        ctx.addRoutes(new RouteBuilder() {
            @Override
            public void configure() {
                from("direct:in").routeId("in")
                    .setHeader("k", constant("v")).id("h")
                    .choice().when(header("k").isEqualTo("v")).to("direct:sub").id("to-sub").end()
                    .transform(simple("${body} done")).id("t");
                from("direct:sub").routeId("sub").process(e -> {}).id("p");
            }
        });
        ctx.start();
        ProducerTemplate pt = ctx.createProducerTemplate();
        int n = Integer.parseInt(args[0]);
        for (int round = 0; round < 3; round++) {
            long t0 = System.nanoTime();
            for (int i = 0; i < n; i++) {
                pt.requestBody("direct:in", "order " + i);
            }
            long ns = System.nanoTime() - t0;
            System.out.printf("round %d: %.2f µs/exchange%n", round, ns / 1000.0 / n);
        }
        ctx.stop();
    }
}
