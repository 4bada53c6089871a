package io.cameleer.agent;

import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.lang.instrument.Instrumentation;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryUsage;
import java.lang.management.RuntimeMXBean;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;

/**
 * The Cameleer agent, attached to every app with -javaagent. It logs one line
 * with its version and serves the JVM's facts to the runner as JSON on
 * CAMELEER_AGENT_PORT (default 9464) at /cameleer/jvm. Camel exchange tracing
 * comes later.
 */
public final class Agent {
    private Agent() {}

    public static void premain(String args, Instrumentation inst) {
        String version = Agent.class.getPackage().getImplementationVersion();
        if (version == null) {
            version = "dev";
        }
        int port = 9464;
        String p = System.getenv("CAMELEER_AGENT_PORT");
        if (p != null && !p.isEmpty()) {
            port = Integer.parseInt(p);
        }
        System.out.println("cameleer-agent " + version + " attached (jvm facts on :" + port + "/cameleer/jvm)");
        if (port > 0) {
            serve(port, version);
        }
    }

    private static void serve(int port, String version) {
        try {
            HttpServer server = HttpServer.create(new InetSocketAddress(port), 0);
            server.createContext("/cameleer/jvm", exchange -> {
                byte[] body = facts(version).getBytes(StandardCharsets.UTF_8);
                exchange.getResponseHeaders().set("Content-Type", "application/json");
                exchange.sendResponseHeaders(200, body.length);
                try (OutputStream out = exchange.getResponseBody()) {
                    out.write(body);
                }
            });
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

    static String facts(String version) {
        RuntimeMXBean rt = ManagementFactory.getRuntimeMXBean();
        MemoryUsage heap = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage();
        return "{"
                + "\"agentVersion\":" + quote(version)
                + ",\"javaVersion\":" + quote(System.getProperty("java.version"))
                + ",\"vmName\":" + quote(rt.getVmName())
                + ",\"vmVendor\":" + quote(rt.getVmVendor())
                + ",\"pid\":" + ProcessHandle.current().pid()
                + ",\"uptimeMillis\":" + rt.getUptime()
                + ",\"availableProcessors\":" + Runtime.getRuntime().availableProcessors()
                + ",\"heapUsedBytes\":" + heap.getUsed()
                + ",\"heapMaxBytes\":" + heap.getMax()
                + ",\"threads\":" + ManagementFactory.getThreadMXBean().getThreadCount()
                + ",\"mainCommand\":" + quote(System.getProperty("sun.java.command", ""))
                + "}";
    }

    private static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                default:
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
            }
        }
        return b.append('"').toString();
    }
}
