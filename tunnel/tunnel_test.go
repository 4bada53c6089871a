package tunnel

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// tlsPair makes a server and a client TLS config that trust each other, as
// the control plane and a runner do.
func tlsPair(t testing.TB) (*tls.Config, *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	pair := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	srv := &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: tls.VersionTLS13, NextProtos: []string{ALPN}}
	cli := &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: "localhost",
		MinVersion: tls.VersionTLS13, NextProtos: []string{ALPN}}
	return srv, cli
}

// pair connects a server and a client session over real TLS on loopback.
func pair(t testing.TB) (*Session, *Session) {
	t.Helper()
	srvCfg, cliCfg := tlsPair(t)
	l, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	accepted := make(chan *Session, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- Server(c, quiet)
	}()
	c, err := tls.Dial("tcp", l.Addr().String(), cliCfg)
	if err != nil {
		t.Fatal(err)
	}
	if c.ConnectionState().NegotiatedProtocol != ALPN {
		t.Fatalf("ALPN %q", c.ConnectionState().NegotiatedProtocol)
	}
	cli := Client(c, quiet)
	srv := <-accepted
	if srv == nil {
		t.Fatal("server side failed")
	}
	t.Cleanup(func() { cli.Close(); srv.Close() })
	return srv, cli
}

// httpClient sends requests over streams of s.
func httpClient(s *Session) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return s.Open(ctx, KindHTTP) },
	}}
}

func serve(t testing.TB, s *Session, text string) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, text+" "+r.URL.Path)
	})}
	go srv.Serve(s.Listener())
	t.Cleanup(func() { srv.Close() })
}

func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHTTPBothWays(t *testing.T) {
	srv, cli := pair(t)
	serve(t, srv, "control-plane")
	serve(t, cli, "runner")
	if got := get(t, httpClient(srv), "http://runner/status"); got != "runner /status" {
		t.Errorf("control plane -> runner: %q", got)
	}
	if got := get(t, httpClient(cli), "http://cp/heartbeat"); got != "control-plane /heartbeat" {
		t.Errorf("runner -> control plane: %q", got)
	}
}

func TestBadHeaderIsRefused(t *testing.T) {
	srv, cli := pair(t)
	serve(t, srv, "cp")
	c, err := cli.mux.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("a stream without header got %d bytes of answer", n)
	}
	// The session survives a bad stream.
	if got := get(t, httpClient(cli), "http://cp/ok"); got != "cp /ok" {
		t.Errorf("after a bad stream: %q", got)
	}
}

func TestDoneWhenPeerCloses(t *testing.T) {
	srv, cli := pair(t)
	cli.Close()
	select {
	case <-srv.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("server session did not notice the client closing")
	}
	if _, err := srv.Open(context.Background(), KindHTTP); err == nil {
		t.Error("opened a stream on a closed session")
	}
	if _, err := srv.Listener().Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on a closed session: %v", err)
	}
}

func TestParseHeader(t *testing.T) {
	if k, err := ParseHeader(AppendHeader(nil, KindHTTP)); err != nil || k != KindHTTP {
		t.Fatalf("round trip: %v %v", k, err)
	}
	for name, b := range map[string][]byte{
		"short":   {'C', 'T', 1},
		"long":    {'C', 'T', 1, 1, 0},
		"magic":   {'G', 'E', 1, 1},
		"version": {'C', 'T', 2, 1},
		"kind":    {'C', 'T', 1, 9},
	} {
		if _, err := ParseHeader(b); !errors.Is(err, ErrBadHeader) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add(AppendHeader(nil, KindHTTP))
	f.Add([]byte("GET "))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseHeader(b)
		if err == nil && (len(b) != HeaderSize || k != KindHTTP) {
			t.Fatalf("accepted %q as kind %d", b, k)
		}
		if err == nil && string(AppendHeader(nil, k)) != string(b) {
			t.Fatalf("accepted %q, which is not what AppendHeader writes", b)
		}
	})
}
