package io.cameleer.testapp;

import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;

/**
 * Answers HTTP on $PORT (default 8080) with the app's name: what a runner
 * checks an app's readiness by, and what Traefik routes to. A port taken
 * (several apps on one test host) is said and the app runs on without it.
 */
final class Health {
    private Health() {}

    static void serve(String name) {
        int port = Integer.parseInt(System.getenv().getOrDefault("PORT", "8080"));
        HttpServer server;
        try {
            server = HttpServer.create(new InetSocketAddress(port), 0);
        } catch (IOException e) {
            System.out.println(name + ": no HTTP on :" + port + ": " + e.getMessage());
            return;
        }
        byte[] body = (name + " is up\n").getBytes(StandardCharsets.UTF_8);
        server.createContext("/", exchange -> {
            exchange.sendResponseHeaders(200, body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        });
        server.start();
    }
}
