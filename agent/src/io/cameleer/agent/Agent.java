package io.cameleer.agent;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.instrument.Instrumentation;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryUsage;
import java.lang.management.RuntimeMXBean;
import java.net.InetSocketAddress;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.function.Predicate;

/**
 * The Cameleer agent, attached to every app with -javaagent. It logs one line
 * with its version and serves, on CAMELEER_AGENT_PORT (default 9464), the
 * JVM's facts at /cameleer/jvm and what it saw of Camel at
 * /cameleer/telemetry (api.AgentBatch). Camel is watched for as it loads
 * (CamelWatcher); an app without Camel only has its JVM facts served.
 */
public final class Agent {
    /** The most bytes of events one answer carries unless the runner asks for fewer. */
    static final long MAX_ANSWER = 1 << 20;

    private Agent() {}

    public static void premain(String args, Instrumentation inst) {
        try {
            start(inst);
        } catch (Throwable t) {
            // Whatever goes wrong here, the app starts.
            System.err.println("cameleer-agent: not started: " + t);
        }
    }

    private static void start(Instrumentation inst) {
        String version = Agent.class.getPackage().getImplementationVersion();
        if (version == null) {
            version = "dev";
        }
        Config config = new Config(System.getenv());
        System.out.println("cameleer-agent " + version + " attached (jvm facts on :" + config.port + "/cameleer/jvm)");
        EventBuffer buffer = new EventBuffer(config.bufferBytes);
        EventBuffer originals = new EventBuffer(config.originalsBytes);
        Recorder.start(config, buffer, originals);
        inst.addTransformer(new CamelWatcher(), false);
        if (config.port > 0) {
            serve(config, version, buffer, originals);
        }
    }

    private static void serve(Config config, String version, EventBuffer buffer, EventBuffer originals) {
        int port = config.port;
        byte[] wanted = ("Bearer " + config.token).getBytes(StandardCharsets.UTF_8);
        // Other apps of the environment reach this port too: taking (and
        // so acknowledging) events, reading originals and replaying are
        // the runner's alone.
        Predicate<HttpExchange> runner = exchange -> {
            String shown = exchange.getRequestHeaders().getFirst("Authorization");
            return config.token.isEmpty() || shown != null && MessageDigest.isEqual(wanted, shown.getBytes(StandardCharsets.UTF_8));
        };
        try {
            HttpServer server = createServer(port);
            // A replay runs its route to the end: pulls must not wait on it.
            server.setExecutor(Executors.newFixedThreadPool(2, task -> {
                Thread t = new Thread(task, "cameleer-agent-http");
                t.setDaemon(true);
                return t;
            }));
            server.createContext("/cameleer/jvm", exchange -> answer(exchange, facts(version).getBytes(StandardCharsets.UTF_8)));
            server.createContext("/cameleer/telemetry", exchange -> pull(exchange, runner, buffer));
            server.createContext("/cameleer/originals", exchange -> pull(exchange, runner, originals));
            server.createContext("/cameleer/replay", exchange -> replay(exchange, runner, config.originalMax, false));
            server.createContext("/cameleer/resend", exchange -> replay(exchange, runner, config.originalMax, true));
            // The server's dispatcher thread takes its daemon flag from the
            // thread that starts it: started from a daemon thread, it does
            // not keep alive an app whose main has returned or thrown.
            Thread starter = new Thread(server::start, "cameleer-agent-start");
            starter.setDaemon(true);
            starter.start();
            starter.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (IOException e) {
            System.out.println("cameleer-agent: cannot serve jvm facts on :" + port + ": " + e.getMessage());
        }
    }

    /**
     * The JDK's HTTP server, with TCP_NODELAY: it writes an answer's head
     * and body apart, and without it the body waited for the runner's
     * delayed ACK, 40 ms a pull. The JDK reads the setting once, when its
     * first server is made (the app's, made later, share it); the property
     * is put back as found.
     */
    private static HttpServer createServer(int port) throws IOException {
        String key = "sun.net.httpserver.nodelay";
        if (System.getProperty(key) != null) {
            return HttpServer.create(new InetSocketAddress(port), 0);
        }
        System.setProperty(key, "true");
        try {
            return HttpServer.create(new InetSocketAddress(port), 0);
        } finally {
            System.clearProperty(key);
        }
    }

    /** Answers a pull of buffer: boot=B&after=N[&max=BYTES] (api.AgentBatch). */
    private static void pull(HttpExchange exchange, Predicate<HttpExchange> runner, EventBuffer buffer) throws IOException {
        if (!runner.test(exchange)) {
            refuse(exchange, 401);
            return;
        }
        Map<String, String> q = query(exchange.getRequestURI().getRawQuery());
        try {
            long after = Long.parseLong(q.getOrDefault("after", "0"));
            long max = Math.min(MAX_ANSWER, Long.parseLong(q.getOrDefault("max", String.valueOf(MAX_ANSWER))));
            buffer.batch(q.getOrDefault("boot", ""), after, max, (answer, length) -> answer(exchange, 200, answer, length));
        } catch (NumberFormatException e) {
            refuse(exchange, 400);
        }
    }

    /**
     * Runs a replay (a POST of a ReplayRequest) to its end and answers how
     * it ended: {"exchange","status","error"}; 404 when the context or the
     * route is not there, 400 for a request it cannot read.
     */
    private static void replay(HttpExchange exchange, Predicate<HttpExchange> runner, int maxBody, boolean atNode) throws IOException {
        if (!runner.test(exchange)) {
            refuse(exchange, 401);
            return;
        }
        if (!"POST".equals(exchange.getRequestMethod())) {
            refuse(exchange, 405);
            return;
        }
        ReplayRequest req;
        try (InputStream in = exchange.getRequestBody()) {
            req = ReplayRequest.read(in, maxBody, atNode);
        } catch (IOException e) {
            answer(exchange, 400, error(e.getMessage()));
            return;
        }
        Recorder.Replayer r = Recorder.replayerOf(req.context());
        if (r == null) {
            answer(exchange, 404, error("no CamelContext " + (req.context().isEmpty() ? "(several or none, name one)" : req.context())));
            return;
        }
        Recorder.Replayed done;
        try {
            done = atNode ? r.resend(req.route(), req.node(), req.body(), req.headers(), req.replayOf())
                    : r.replay(req.route(), req.body(), req.headers(), req.replayOf());
        } catch (Exception e) {
            answer(exchange, 404, error(String.valueOf(e.getMessage())));
            return;
        }
        StringBuilder b = new StringBuilder("{");
        Json.field(b, "exchange", done.exchange());
        Json.field(b, "status", done.status());
        if (done.error() != null) {
            Json.field(b, "error", done.error());
        }
        answer(exchange, 200, b.append('}').toString().getBytes(StandardCharsets.UTF_8));
    }

    private static byte[] error(String message) {
        return ("{\"error\":" + Json.quote(message) + "}").getBytes(StandardCharsets.UTF_8);
    }

    private static void refuse(HttpExchange exchange, int status) throws IOException {
        exchange.sendResponseHeaders(status, -1);
        exchange.close();
    }

    private static void answer(HttpExchange exchange, byte[] body) throws IOException {
        answer(exchange, 200, body);
    }

    private static void answer(HttpExchange exchange, int status, byte[] body) throws IOException {
        answer(exchange, status, body, body.length);
    }

    private static void answer(HttpExchange exchange, int status, byte[] body, int length) throws IOException {
        exchange.getResponseHeaders().set("Content-Type", "application/json");
        exchange.sendResponseHeaders(status, length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(body, 0, length);
        }
    }

    private static Map<String, String> query(String raw) {
        Map<String, String> q = new HashMap<>();
        if (raw != null) {
            for (String kv : raw.split("&")) {
                int eq = kv.indexOf('=');
                if (eq > 0) {
                    q.put(kv.substring(0, eq), URLDecoder.decode(kv.substring(eq + 1), StandardCharsets.UTF_8));
                }
            }
        }
        return q;
    }

    static String facts(String version) {
        RuntimeMXBean rt = ManagementFactory.getRuntimeMXBean();
        MemoryUsage heap = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage();
        return "{"
                + "\"agentVersion\":" + Json.quote(version)
                + ",\"javaVersion\":" + Json.quote(System.getProperty("java.version"))
                + ",\"vmName\":" + Json.quote(rt.getVmName())
                + ",\"vmVendor\":" + Json.quote(rt.getVmVendor())
                + ",\"pid\":" + ProcessHandle.current().pid()
                + ",\"uptimeMillis\":" + rt.getUptime()
                + ",\"availableProcessors\":" + Runtime.getRuntime().availableProcessors()
                + ",\"heapUsedBytes\":" + heap.getUsed()
                + ",\"heapMaxBytes\":" + heap.getMax()
                + ",\"threads\":" + ManagementFactory.getThreadMXBean().getThreadCount()
                + ",\"mainCommand\":" + Json.quote(System.getProperty("sun.java.command", ""))
                + "}";
    }
}
