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
                try {
                    serve(m.getCamelContext().createProducerTemplate());
                } catch (IOException e) {
                    throw new IllegalStateException("cannot serve HTTP", e);
                }
            }
        });
        main.run(args);
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
