package join

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cameleer/cameleer/appliance/config"
	"github.com/cameleer/cameleer/internal/atomicfile"
	"github.com/cameleer/cameleer/internal/certs"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// Join adds the host of c (its data dir, name and address) to the cluster
// of token, as a node of the token's role: it fetches the controller's CA
// and checks it against the token before it trusts it, makes a key for
// each certificate a node has (kept before the token is sent, so the same
// join after a lost answer is answered again), and stores what the
// controller signed in c's PKI dir. It returns c as a node of that
// cluster.
func Join(ctx context.Context, c config.Config, token string) (config.Config, Response, error) {
	tok, err := ParseToken(token)
	if err != nil {
		return c, Response{}, err
	}
	host, port, _ := net.SplitHostPort(tok.Server)
	caPEM, err := fetchCA(ctx, tok)
	if err != nil {
		return c, Response{}, err
	}
	client, err := clusterClient(caPEM, nil)
	if err != nil {
		return c, Response{}, err
	}
	if err := os.MkdirAll(c.PKIDir(), 0o700); err != nil {
		return c, Response{}, err
	}
	req := Request{Role: tok.Role, Node: c.NodeName, IP: c.NodeIP, CSRs: map[string]string{}}
	for _, name := range CertNames {
		key, err := certs.LoadOrCreateKey(filepath.Join(c.PKIDir(), name+".key"))
		if err != nil {
			return c, Response{}, err
		}
		csr, err := certs.CSR(key, c.NodeName)
		if err != nil {
			return c, Response{}, err
		}
		req.CSRs[name] = string(csr)
	}
	var resp Response
	err = call(ctx, client, http.MethodPost, "https://"+tok.Server+JoinPath, tok.ID+"."+tok.Secret, req, &resp)
	if err != nil {
		return c, Response{}, err
	}
	if certs.PEMSum([]byte(resp.CA)) != tok.CAHash {
		return c, Response{}, errors.New("the controller sent a CA that does not match the token")
	}
	files := map[string][]byte{"ca.crt": []byte(resp.CA)}
	for _, name := range CertNames {
		if resp.Certs[name] == "" {
			return c, Response{}, fmt.Errorf("the controller sent no %s certificate", name)
		}
		files[name+".crt"] = []byte(resp.Certs[name])
	}
	for f, b := range files {
		if _, err := atomicfile.WriteFile(filepath.Join(c.PKIDir(), f), b, 0o644); err != nil {
			return c, Response{}, err
		}
	}
	cl := resp.Cluster
	c.Role, c.Server, c.JoinToken = tok.Role, host, tok.ID
	c.ClusterPort, _ = strconv.Atoi(port)
	c.APIPort, c.ClusterCIDR, c.ServiceCIDR, c.ClusterDNS = cl.APIPort, cl.ClusterCIDR, cl.ServiceCIDR, cl.ClusterDNS
	c.HTTPPort, c.HTTPSPort, c.AppsDomain = cl.HTTPPort, cl.HTTPSPort, cmp.Or(cl.AppsDomain, c.AppsDomain)
	return c, resp, c.Validate()
}

// fetchCA gets the controller's CA over TLS it does not trust yet, and
// trusts it only if it is the one the token names.
func fetchCA(ctx context.Context, tok Token) ([]byte, error) {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		Proxy: nil,
		// Nothing is sent but the request for what the token then
		// checks.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // checked against the token's hash below
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+tok.Server+CACertsPath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reach the controller at %s: %w", tok.Server, httpjson.Unwrap(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the controller at %s sent no CA (%s)", tok.Server, resp.Status)
	}
	if certs.PEMSum(b) != tok.CAHash {
		return nil, fmt.Errorf("the server at %s is not the cluster this token is for (its CA does not match the token)", tok.Server)
	}
	return b, nil
}

// clusterClient trusts caPEM alone, presenting cert if not nil. Proxies
// are not used: nodes of a cluster reach each other directly.
func clusterClient(caPEM []byte, cert *tls.Certificate) (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("the cluster CA holds no certificate")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{Proxy: nil, TLSClientConfig: cfg}}, nil
}

func call(ctx context.Context, hc *http.Client, method, url, bearer string, in, out any) error {
	if bearer != "" {
		hc = &http.Client{Timeout: hc.Timeout, Transport: bearerTransport{hc.Transport, bearer}}
	}
	err := httpjson.Call(ctx, hc, method, url, in, out)
	var se *httpjson.StatusError
	if errors.As(err, &se) && se.Status/100 == 4 {
		return &RefusedError{Reason: se.Msg}
	}
	if errors.As(err, &se) {
		return errors.New(se.Msg)
	}
	return httpjson.Unwrap(err)
}

type bearerTransport struct {
	rt     http.RoundTripper
	bearer string
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.bearer)
	return b.rt.RoundTrip(r)
}

// Drain asks the controller of worker c to move c's pods away and send it
// none; Leave, once c's kubelet stopped, to remove it from the cluster.
func Drain(ctx context.Context, c config.Config) error { return nodeCall(ctx, c, DrainPath) }

// Leave: see Drain.
func Leave(ctx context.Context, c config.Config) error { return nodeCall(ctx, c, LeavePath) }

func nodeCall(ctx context.Context, c config.Config, path string) error {
	caPEM, err := os.ReadFile(filepath.Join(c.PKIDir(), "ca.crt"))
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(c.PKIDir(), "kubelet-client.crt"), filepath.Join(c.PKIDir(), "kubelet-client.key"))
	if err != nil {
		return err
	}
	hc, err := clusterClient(caPEM, &cert)
	if err != nil {
		return err
	}
	return call(ctx, hc, http.MethodPost, c.ClusterURL()+path, "", nil, nil)
}

// ControllerVersion is the version of the cameleer the controller of
// worker c runs (and serves).
func ControllerVersion(ctx context.Context, c config.Config) (string, error) {
	caPEM, err := os.ReadFile(filepath.Join(c.PKIDir(), "ca.crt"))
	if err != nil {
		return "", err
	}
	hc, err := clusterClient(caPEM, nil)
	if err != nil {
		return "", err
	}
	var bin struct {
		Version string `json:"version"`
	}
	if err := call(ctx, hc, http.MethodGet, c.ClusterURL()+"/downloads/cameleer.json", "", nil, &bin); err != nil {
		return "", fmt.Errorf("ask the controller %s its version: %w", c.Server, err)
	}
	return bin.Version, nil
}
