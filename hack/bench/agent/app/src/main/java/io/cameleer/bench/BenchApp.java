package io.cameleer.bench;

import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Executors;
import org.apache.camel.ProducerTemplate;
import org.apache.camel.main.BaseMainSupport;
import org.apache.camel.main.Main;
import org.apache.camel.main.MainListenerSupport;

/**
 * The agent overhead benchmark's app: every POST on $PORT (default 8080)
 * sends its body through $BENCH_ROUTE (direct:bench by default, or
 * direct:orders; BenchRoutes) and answers the result.
 * The HTTP side is the JDK's server with a few threads, so what is measured
 * is mostly Camel and, with -javaagent, the agent. Run it with
 * -Dsun.net.httpserver.nodelay=true: without TCP_NODELAY the server's
 * separate writes of headers and body meet the client's delayed ACK and
 * every answer waits ~40 ms. It must be on the command line, not set in
 * main: the agent's own HttpServer, started in premain, has read the
 * server's settings by then.
 */
public final class BenchApp {
    private BenchApp() {}

    public static void main(String[] args) throws Exception {
        Main main = new Main();
        main.configure().withName("bench");
        main.configure().addRoutesBuilder(new BenchRoutes());
        main.addMainListener(new MainListenerSupport() {
            @Override
            public void afterStart(BaseMainSupport m) {
                String loop = System.getenv("BENCH_LOOP");
                if (loop != null) {
                    new Thread(() -> loop(m.getCamelContext().createProducerTemplate(), loop), "bench-loop").start();
                    return;
                }
                try {
                    serve(m.getCamelContext().createProducerTemplate());
                } catch (IOException e) {
                    throw new IllegalStateException("cannot serve HTTP", e);
                }
            }
        });
        main.run(args);
    }

    /**
     * Sends ROUNDSxCOUNT (BENCH_LOOP) orders through the route from this
     * one thread, with no HTTP in between, and prints a line a round: the
     * process's CPU time an exchange (GC and the agent's own threads
     * count), the wall time, and the p50 and p99 of one exchange's time.
     * Then exits. The orders are the HTTP benchmark's (post.lua).
     */
    static void loop(ProducerTemplate template, String spec) {
        String[] rc = spec.split("x");
        int rounds = Integer.parseInt(rc[0]);
        int count = Integer.parseInt(rc[1]);
        String route = System.getenv().getOrDefault("BENCH_ROUTE", "direct:bench");
        byte[][] bodies = {order("high"), order("normal")};
        com.sun.management.OperatingSystemMXBean os = (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean();
        long[] took = new long[count];
        for (int r = 0; r < rounds; r++) {
            long cpu0 = os.getProcessCpuTime();
            long t0 = System.nanoTime();
            long prev = t0;
            for (int i = 0; i < count; i++) {
                template.requestBody(route, bodies[i & 1], String.class);
                long now = System.nanoTime();
                took[i] = now - prev;
                prev = now;
            }
            long wall = prev - t0;
            long cpu = os.getProcessCpuTime() - cpu0;
            java.util.Arrays.sort(took);
            System.out.printf("bench-loop round %d: cpu_us %.3f wall_us %.3f p50_us %.3f p99_us %.3f%n", r, cpu / 1000.0 / count, wall / 1000.0 / count,
                took[count / 2] / 1000.0, took[count - count / 100] / 1000.0);
        }
        System.exit(0);
    }

    static byte[] order(String priority) {
        StringBuilder items = new StringBuilder();
        for (int i = 1; i <= 12; i++) {
            items.append(i == 1 ? "" : ",").append(String.format("{\"sku\":\"SKU-%04d\",\"name\":\"widget number %d\",\"qty\":%d,\"price\":%d.50}", i * 37, i, i % 5 + 1, i * 3));
        }
        return String.format("{\"id\":\"ORD-20261204-0001\",\"priority\":\"%s\",\"customer\":\"customer-42\",\"channel\":\"web\",\"items\":[%s],\"note\":\"deliver to the loading dock\"}",
                priority, items).getBytes(StandardCharsets.UTF_8);
    }

    // Served only once Camel has started, so the first answer the script
    // waits for means the route is there.
    static void serve(ProducerTemplate template) throws IOException {
        int port = Integer.parseInt(System.getenv().getOrDefault("PORT", "8080"));
        int threads = Integer.parseInt(System.getenv().getOrDefault("BENCH_THREADS", "4"));
        String route = System.getenv().getOrDefault("BENCH_ROUTE", "direct:bench");
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 128);
        server.setExecutor(Executors.newFixedThreadPool(threads));
        server.createContext("/", exchange -> {
            byte[] in;
            try (InputStream body = exchange.getRequestBody()) {
                in = body.readAllBytes();
            }
            byte[] out;
            int status = 200;
            try {
                out = template.requestBody(route, in, String.class).getBytes(StandardCharsets.UTF_8);
            } catch (RuntimeException e) {
                status = 500;
                out = String.valueOf(e).getBytes(StandardCharsets.UTF_8);
            }
            exchange.getResponseHeaders().set("Content-Type", "application/json");
            exchange.sendResponseHeaders(status, out.length);
            try (OutputStream o = exchange.getResponseBody()) {
                o.write(out);
            }
        });
        server.start();
        System.out.println("bench: HTTP on 127.0.0.1:" + port + " with " + threads + " threads into " + route);
    }
}
