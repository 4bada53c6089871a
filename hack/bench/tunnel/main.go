// Command tunnel measures the control plane with many runners, for
// docs/benchmarks.md:
//
//	go run ./hack/bench/tunnel -cp bin/cameleer-controlplane -runners 1000 -idle 60s
//
// It starts the control plane as a process on loopback, registers -runners
// runners through the real API and enrollment, connects them all from this
// process, and reports the control plane's memory per idle connected runner
// and its CPU use while they idle (heartbeats every 10 s, keepalives every
// 5 s), as runners per core. Then, with one more runner in its own process,
// it compares the latency of a request proxied through the control plane
// and the tunnel with the same request served directly, and through one
// plain relay process, beside the floor: one byte there and back between
// two processes.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cameleer/cameleer/appliance/tunnelclient"
)

func main() {
	// As a child: serve the local API's answer directly, for comparison,
	// or be the runner whose local API is called through the tunnel.
	if cert := os.Getenv("BENCH_DIRECT_CERT"); cert != "" {
		serveDirect(cert, os.Getenv("BENCH_DIRECT_KEY"), os.Getenv("BENCH_RELAY_TO"))
		return
	}
	if dir := os.Getenv("BENCH_RUNNER_DIR"); dir != "" {
		serveRunner(dir)
		return
	}
	if os.Getenv("BENCH_ECHO") != "" {
		serveEcho()
		return
	}
	cpBin := flag.String("cp", "bin/cameleer-controlplane", "control plane binary")
	runners := flag.Int("runners", 1000, "runners to connect")
	idle := flag.Duration("idle", 60*time.Second, "how long to measure idle CPU")
	requests := flag.Int("requests", 2000, "requests per latency sample")
	flag.Parse()
	if err := run(*cpBin, *runners, *idle, *requests); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type bench struct {
	addr, admin string
	http        *http.Client
}

func (b *bench) call(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, "https://"+b.addr+path, rd)
	req.Header.Set("Authorization", "Bearer "+b.admin)
	resp, err := b.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s %s: %s %s", method, path, resp.Status, msg)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	io.Copy(io.Discard, resp.Body)
	return nil
}

func run(cpBin string, n int, idle time.Duration, requests int) error {
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	lim.Cur = lim.Max
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)

	dir, err := os.MkdirTemp("", "cameleer-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	l.Close()
	cp := exec.Command(cpBin, "serve", "--data-dir", filepath.Join(dir, "cp"), "--listen", addr, "--url", "https://"+addr)
	cp.Stdout, cp.Stderr = io.Discard, io.Discard
	if err := cp.Start(); err != nil {
		return err
	}
	defer func() { cp.Process.Signal(os.Interrupt); cp.Wait() }()
	b := &bench{addr: addr, http: &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxIdleConnsPerHost: 8}}}
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if raw, err := os.ReadFile(filepath.Join(dir, "cp", "admin.token")); err == nil && len(raw) > 0 {
			b.admin = strings.TrimSpace(string(raw))
			if b.call("GET", "/api/v1/tenants", nil, nil) == nil {
				break
			}
		}
		if time.Since(start) > 30*time.Second {
			return fmt.Errorf("control plane did not start")
		}
	}
	if err := b.call("POST", "/api/v1/tenants", map[string]string{"name": "bench", "tier": "high"}, nil); err != nil {
		return err
	}

	fmt.Printf("registering %d runners...\n", n)
	ids := make([]tunnelclient.Identity, n)
	t0 := time.Now()
	for i := range n {
		var ott struct{ Token string }
		if err := b.call("POST", "/api/v1/tenants/bench/runner-tokens", nil, &ott); err != nil {
			return err
		}
		if ids[i], err = tunnelclient.Redeem(context.Background(), filepath.Join(dir, "r", strconv.Itoa(i)), ott.Token, "", fmt.Sprintf("r%d", i)); err != nil {
			return err
		}
	}
	fmt.Printf("registered %d runners in %.1fs (%.1f ms each, token and enrollment)\n", n, time.Since(t0).Seconds(), float64(time.Since(t0).Milliseconds())/float64(n))

	rssBefore := rss(cp.Process.Pid)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	local := func(*http.Client) http.Handler { return http.HandlerFunc(answer) }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	t0 = time.Now()
	for i := range n {
		c := tunnelclient.New(tunnelclient.Options{Identity: ids[i], LocalAPI: local, Log: quiet})
		wg.Add(1)
		go func() { defer wg.Done(); c.Run(ctx) }()
	}
	for {
		var rs []struct{ Connected bool }
		if err := b.call("GET", "/api/v1/tenants/bench/runners", nil, &rs); err != nil {
			return err
		}
		up := 0
		for _, r := range rs {
			if r.Connected {
				up++
			}
		}
		if up == n {
			break
		}
		if time.Since(t0) > 5*time.Minute {
			return fmt.Errorf("only %d of %d runners connected", up, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Printf("connected %d runners in %.1fs\n", n, time.Since(t0).Seconds())
	time.Sleep(15 * time.Second) // every runner has sent a heartbeat
	cpu0, t1 := cpuSeconds(cp.Process.Pid), time.Now()
	time.Sleep(idle)
	cpu1, el := cpuSeconds(cp.Process.Pid), time.Since(t1).Seconds()
	rssAfter := rss(cp.Process.Pid)
	cores := (cpu1 - cpu0) / el
	fmt.Printf("control plane RSS: %d MB before, %d MB with %d idle runners: %.1f KB per runner\n",
		rssBefore>>20, rssAfter>>20, n, float64(rssAfter-rssBefore)/1024/float64(n))
	fmt.Printf("control plane CPU while idle for %s: %.3f cores: %.0f runners per core\n", idle, cores, float64(n)/max(cores, 1e-9))
	cancel()
	wg.Wait()

	return latency(b, dir, requests)
}

// latency compares GET /status through the control plane and the tunnel
// with the same handler served directly over TLS on loopback, and through
// one plain relay process, beside the floor (one byte between two
// processes). The runner, the direct server, the relay and the echo server
// are each their own process, as they would be; the paths take turns
// request by request, so each sees the machine as the others do.
func latency(b *bench, dir string, requests int) error {
	var ott struct{ Token string }
	if err := b.call("POST", "/api/v1/tenants/bench/runner-tokens", nil, &ott); err != nil {
		return err
	}
	runnerDir := filepath.Join(dir, "lat")
	id, err := tunnelclient.Redeem(context.Background(), runnerDir, ott.Token, "", "latency")
	if err != nil {
		return err
	}
	_, stopRunner, err := startChild("BENCH_RUNNER_DIR=" + runnerDir)
	if err != nil {
		return err
	}
	defer stopRunner()
	for start := time.Now(); b.call("GET", "/api/v1/tenants/bench/runners/"+id.RunnerID+"/proxy/status", nil, nil) != nil; time.Sleep(50 * time.Millisecond) {
		if time.Since(start) > time.Minute {
			return fmt.Errorf("latency runner did not connect")
		}
	}
	certs := []string{"BENCH_DIRECT_CERT=" + filepath.Join(dir, "cp", "pki", "serving.crt"), "BENCH_DIRECT_KEY=" + filepath.Join(dir, "cp", "pki", "serving.key")}
	addr, stop, err := startChild(append(certs, "BENCH_RELAY_TO=")...)
	if err != nil {
		return err
	}
	defer stop()
	// Relay: a plain TLS reverse proxy between the client and the direct
	// server: what any extra hop costs on this machine, with no tunnel and
	// no control plane logic.
	relayAddr, stopRelay, err := startChild(append(certs, "BENCH_RELAY_TO="+addr)...)
	if err != nil {
		return err
	}
	defer stopRelay()
	// The floor: one byte there and back between two processes over
	// loopback TCP, no TLS, no HTTP. An extra hop costs at least this (the
	// hop's process is woken once each way).
	echoAddr, stopEcho, err := startChild("BENCH_ECHO=1")
	if err != nil {
		return err
	}
	defer stopEcho()
	echo, err := net.Dial("tcp", echoAddr)
	if err != nil {
		return err
	}
	defer echo.Close()
	ping := func() (time.Duration, error) {
		b := []byte{1}
		t := time.Now()
		if _, err := echo.Write(b); err != nil {
			return 0, err
		}
		if _, err := io.ReadFull(echo, b); err != nil {
			return 0, err
		}
		return time.Since(t), nil
	}
	get := func(url string) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Authorization", "Bearer "+b.admin)
			t := time.Now()
			resp, err := b.http.Do(req)
			if err != nil {
				return 0, err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return time.Since(t), nil
		}
	}
	paths := []func() (time.Duration, error){
		get("https://" + addr + "/status"),                                                          // direct
		get("https://" + relayAddr + "/status"),                                                     // relay
		get("https://" + b.addr + "/api/v1/tenants/bench/runners/" + id.RunnerID + "/proxy/status"), // proxied
		// The control plane alone: the same authentication and lookups,
		// no tunnel.
		get("https://" + b.addr + "/api/v1/tenants/bench/runners/" + id.RunnerID),
		ping, // the floor
	}
	samples := make([][]time.Duration, len(paths))
	// Warm every path's connections, then measure.
	for round := range requests + 200 {
		for i, path := range paths {
			d, err := path()
			if err != nil {
				return err
			}
			if round >= 200 {
				samples[i] = append(samples[i], d)
			}
		}
	}
	for _, s := range samples {
		slices.Sort(s)
	}
	metrics, _ := http.NewRequest("GET", "https://"+b.addr+"/metrics", nil)
	metrics.Header.Set("Authorization", "Bearer "+b.admin)
	if resp, err := b.http.Do(metrics); err == nil {
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(line, "cameleer_tunnel_streams_total") {
				fmt.Printf("%s (for %d proxied requests)\n", line, requests+200)
			}
		}
	}
	d, r, p, a, e := samples[0], samples[1], samples[2], samples[3], samples[4]
	q := func(s []time.Duration, f float64) time.Duration { return s[int(f*float64(len(s)-1))] }
	ms := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
	fmt.Printf("one byte there and back between two processes (TCP, no TLS, no HTTP): p50 %.3f ms p99 %.3f ms\n", ms(q(e, .5)), ms(q(e, .99)))
	fmt.Printf("control plane API without the tunnel: p50 %.3f ms p99 %.3f ms\n", ms(q(a, .5)), ms(q(a, .99)))
	fmt.Printf("one plain relay process in between: p50 %.3f ms p99 %.3f ms; added p50 %.3f ms p99 %.3f ms\n",
		ms(q(r, .5)), ms(q(r, .99)), ms(q(r, .5)-q(d, .5)), ms(q(r, .99)-q(d, .99)))
	fmt.Printf("latency over %d requests: direct p50 %.3f ms p99 %.3f ms; proxied p50 %.3f ms p99 %.3f ms; added p50 %.3f ms p99 %.3f ms\n",
		requests, ms(q(d, .5)), ms(q(d, .99)), ms(q(p, .5)), ms(q(p, .99)), ms(q(p, .5)-q(d, .5)), ms(q(p, .99)-q(d, .99)))
	return nil
}

// serveRunner is the latency runner: the identity in dir, a tunnel to the
// control plane, and the same answer as the direct server.
func serveRunner(dir string) {
	id, err := tunnelclient.LoadIdentity(tunnelclient.IdentityDir(dir))
	if err != nil {
		panic(err)
	}
	fmt.Println("runner", id.RunnerID)
	c := tunnelclient.New(tunnelclient.Options{Identity: id, Log: slog.New(slog.DiscardHandler),
		LocalAPI: func(*http.Client) http.Handler { return http.HandlerFunc(answer) }})
	c.Run(context.Background())
}

// answer is what the local API's /status stands for here.
func answer(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, `{"ok":true}`) }

// startChild runs this program again with env added (a direct server, a
// relay or the runner) and returns the first line it prints (a direct
// server's address).
func startChild(env ...string) (string, func(), error) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		return "", nil, fmt.Errorf("child %v: %w", env, err)
	}
	return strings.TrimSpace(line), func() { cmd.Process.Kill(); cmd.Wait() }, nil
}

// serveEcho sends back every byte it gets on one TCP connection.
func serveEcho() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Println(l.Addr().String())
	c, err := l.Accept()
	if err != nil {
		panic(err)
	}
	io.Copy(c, c)
}

func serveDirect(certFile, keyFile, relayTo string) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		panic(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		panic(err)
	}
	fmt.Println(l.Addr().String())
	if relayTo != "" {
		target := &url.URL{Scheme: "https", Host: relayTo}
		rp := &httputil.ReverseProxy{
			Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
			Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxIdleConnsPerHost: 16},
		}
		http.Serve(l, rp)
		return
	}
	http.Serve(l, http.HandlerFunc(answer))
}

func rss(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuSeconds is the user+system CPU time of pid.
func cpuSeconds(pid int) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}
