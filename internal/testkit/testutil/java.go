package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// OrdersSource is the app the runtime tests deploy: an HTTP server on 8080
// that answers with the GREETING from its environment and the length of
// its API_TOKEN (a secret), prints a line when it starts and one per
// request; and, at /call?url=URL, GETs URL (what an integration does) and
// answers with what it got, or 502 and why not.
const OrdersSource = `import com.sun.net.httpserver.HttpServer;
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;

public class Orders {
    public static void main(String[] args) throws Exception {
        // A connection a call: what an allow list no longer allows is not
        // reached on a connection kept from before.
        System.setProperty("http.keepAlive", "false");
        HttpServer s = HttpServer.create(new InetSocketAddress(8080), 0);
        s.createContext("/", x -> {
            String token = System.getenv("API_TOKEN");
            byte[] b = ("orders says " + System.getenv("GREETING") + ", token-length=" + (token == null ? 0 : token.length()) + "\n").getBytes(StandardCharsets.UTF_8);
            x.sendResponseHeaders(200, b.length);
            x.getResponseBody().write(b);
            x.close();
            System.out.println("orders served " + x.getRequestURI().getPath());
        });
        s.createContext("/call", x -> {
            String q = x.getRequestURI().getRawQuery();
            String url = URLDecoder.decode(q == null ? "" : q.replaceFirst("^url=", ""), StandardCharsets.UTF_8);
            int code = 200;
            String out;
            try {
                HttpURLConnection c = (HttpURLConnection) URI.create(url).toURL().openConnection();
                c.setConnectTimeout(1500);
                c.setReadTimeout(1500);
                try (InputStream in = c.getInputStream()) {
                    out = "called " + url + ": " + new String(in.readAllBytes(), StandardCharsets.UTF_8).trim();
                }
            } catch (Exception e) {
                code = 502;
                out = "call of " + url + " failed: " + e;
            }
            byte[] b = (out + "\n").getBytes(StandardCharsets.UTF_8);
            x.sendResponseHeaders(code, b.length);
            x.getResponseBody().write(b);
            x.close();
        });
        s.start();
        System.out.println("orders listening on 8080, GREETING=" + System.getenv("GREETING"));
    }
}
`

// JavaJar compiles one class with the host's javac and packs it as a JAR
// whose Main-Class it is.
func JavaJar(t testing.TB, class, src string) []byte {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, class+".java"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest"), []byte("Main-Class: "+class+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"javac", "--release", "17", class + ".java"},
		{"jar", "--create", "--file", "app.jar", "--manifest", "manifest", class + ".class"},
	} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "app.jar"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
