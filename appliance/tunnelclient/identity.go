// Package tunnelclient is the runner's side of the control plane: it
// redeems a one-time token for a client certificate (Redeem), then keeps a
// tunnel to the control plane open (Client.Run), serving the runner's local
// API through it, posting heartbeats and renewing its certificate.
package tunnelclient

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/internal/atomicfile"
	"github.com/cameleer/cameleer/internal/certs"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// Identity is a registered runner's credentials, in DIR (the data dir's
// controlplane/): client.key (0600, made here, never sent), client.crt,
// ca.crt and runner.json; during a redeem, redeem-*.key is the key made for
// that token.
type Identity struct {
	Dir      string `json:"-"`
	RunnerID string `json:"runnerId"`
	Tenant   string `json:"tenant"`
	Name     string `json:"name"`
	URL      string `json:"url"`
	// Token is the SHA-256 of the redeemed token's secret (what the
	// control plane keeps of it too): the same token redeemed again on
	// this host is the registration it made, not a second one.
	Token string `json:"token,omitempty"`
	// Again says that Redeem found this token redeemed here already.
	Again bool `json:"-"`
}

// ErrNotRegistered means no token was redeemed on this host.
var ErrNotRegistered = errors.New("this runner is not registered (run `cameleer token redeem`)")

// IdentityDir is where a data dir keeps the runner's identity.
func IdentityDir(dataDir string) string { return filepath.Join(dataDir, "controlplane") }

// LoadIdentity reads the identity in dir.
func LoadIdentity(dir string) (Identity, error) {
	id := Identity{Dir: dir}
	if err := id.settle(); err != nil {
		return id, err
	}
	b, err := os.ReadFile(filepath.Join(dir, "runner.json"))
	if errors.Is(err, os.ErrNotExist) {
		return id, ErrNotRegistered
	}
	if err != nil {
		return id, err
	}
	if err := json.Unmarshal(b, &id); err != nil {
		return id, fmt.Errorf("read %s: %w", filepath.Join(dir, "runner.json"), err)
	}
	// Damage found now is said now, not as a failed handshake.
	if _, err := id.pair(); err != nil {
		return id, err
	}
	return id, nil
}

func (id Identity) path(name string) string { return filepath.Join(id.Dir, name) }

// pair reads the client key and certificate, naming both files when it
// cannot.
func (id Identity) pair() (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(id.path("client.crt"), id.path("client.key"))
	if err != nil {
		return c, fmt.Errorf("%s and %s: %w", id.path("client.crt"), id.path("client.key"), err)
	}
	return c, nil
}

// tlsConfig is the tunnel's TLS: TLS 1.3, the control plane's CA only, and
// the current client certificate, read at every handshake (renewals).
func (id Identity) tlsConfig(serverName string) (*tls.Config, error) {
	caPEM, err := os.ReadFile(id.path("ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s holds no certificate", id.path("ca.crt"))
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    pool,
		ServerName: serverName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := id.pair()
			if err != nil {
				return nil, err
			}
			return &c, nil
		},
	}, nil
}

// Redeem registers this host with the control plane: it pins the CA named
// in the token, makes a key, sends a CSR with the token, and stores the
// signed certificate. controlPlane overrides the URL in the token; name
// names the runner (empty: the control plane picks).
func Redeem(ctx context.Context, dataDir, token, controlPlane, name string) (Identity, error) {
	id := Identity{Dir: IdentityDir(dataDir)}
	tok, err := api.ParseToken(token)
	if err != nil {
		return id, err
	}
	if name != "" {
		if err := api.ValidName(name); err != nil {
			return id, err
		}
	}
	cp := controlPlane
	if cp == "" {
		cp = tok.URL
	}
	if cp == "" {
		return id, errors.New("the token names no control plane: pass --control-plane https://HOST:PORT")
	}
	u, err := url.Parse(cp)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return id, fmt.Errorf("control plane %q is not https://HOST[:PORT]", cp)
	}
	if old, err := LoadIdentity(id.Dir); err == nil && old.Token == tok.SecretHash() {
		old.Again = true
		return old, nil
	} else if err == nil {
		return id, fmt.Errorf("this host is already registered as runner %s of tenant %s (remove %s to register again)", old.RunnerID, old.Tenant, id.Dir)
	} else if !errors.Is(err, ErrNotRegistered) {
		// Perhaps a registration worth repairing: not overwritten unasked.
		return id, fmt.Errorf("this host's registration cannot be read (%v): remove %s to register again", err, id.Dir)
	}
	if err := os.MkdirAll(id.Dir, 0o700); err != nil {
		return id, err
	}
	// The key is kept before the token is sent: if the answer is lost (a
	// dropped connection, a killed process, a full disk), the same command
	// again sends the same key, and the control plane gives this host the
	// runner it registered; any other key is refused the used token.
	pending := id.path("redeem-" + tok.SecretHash()[:16] + ".key")
	key, err := certs.LoadOrCreateKey(pending)
	if err != nil {
		return id, err
	}
	csrPEM, err := certs.CSR(key, "cameleer-runner")
	if err != nil {
		return id, err
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: versionTransport{&http.Transport{
		Proxy:           http.ProxyFromEnvironment,
		TLSClientConfig: pinnedTLS(tok.CAHash),
	}}}
	var er api.EnrollResponse
	err = httpjson.Call(ctx, client, http.MethodPost, strings.TrimSuffix(cp, "/")+api.EnrollPath,
		api.EnrollRequest{Token: strings.TrimSpace(token), Name: name, CSR: string(csrPEM)}, &er)
	var se *httpjson.StatusError
	switch {
	case errors.As(err, &se):
		// The control plane refused the token for good (used by another
		// key, expired, unknown, the name taken): no answer to retry for.
		// Anything else may have come after a lost answer: the key stays.
		if se.Status == http.StatusUnauthorized || se.Status == http.StatusConflict {
			os.Remove(pending)
		}
		return id, fmt.Errorf("the control plane refused the token: %s", cmp.Or(se.Msg, fmt.Sprintf("%d %s", se.Status, http.StatusText(se.Status))))
	case err != nil:
		return id, fmt.Errorf("redeem: %w", httpjson.Unwrap(err))
	}
	if certs.PEMSum([]byte(er.CA)) != tok.CAHash {
		return id, errors.New("the control plane sent a CA that does not match the token")
	}
	id.RunnerID, id.Tenant, id.Name, id.URL, id.Token = er.RunnerID, er.Tenant, er.Name, cp, tok.SecretHash()
	if err := id.store(key, er); err != nil {
		return id, err
	}
	old, _ := filepath.Glob(id.path("redeem-*.key"))
	for _, f := range old {
		os.Remove(f)
	}
	return id, nil
}

// store writes the identity. The new key and certificate are written beside
// the current ones (.new) and then moved into place, key first, and
// runner.json last: a crash before the moves leaves the old pair (or an
// unregistered host), and one between them is finished by settle.
func (id Identity) store(key *ecdsa.PrivateKey, er api.EnrollResponse) error {
	// A client.crt.new left from an earlier store that could not settle
	// must not be paired with the key written next. (One that cannot be
	// removed cannot be written either: the write below fails.)
	os.Remove(id.path("client.crt.new"))
	b, err := certs.KeyPEM(key)
	if err != nil {
		return err
	}
	if _, err := atomicfile.WriteFile(id.path("client.key.new"), b, 0o600); err != nil {
		return err
	}
	if _, err := atomicfile.WriteFile(id.path("ca.crt"), []byte(er.CA), 0o644); err != nil {
		return err
	}
	if _, err := atomicfile.WriteFile(id.path("client.crt.new"), []byte(er.Certificate), 0o644); err != nil {
		return err
	}
	if err := id.settle(); err != nil {
		return err
	}
	b, _ = json.MarshalIndent(id, "", "  ")
	_, err = atomicfile.WriteFile(id.path("runner.json"), append(b, '\n'), 0o600)
	return err
}

// settle moves a new certificate and its key into place. client.crt.new is
// written after client.key.new, so when it is there both are whole; a move
// another process made first is no error.
func (id Identity) settle() error {
	if fi, err := os.Stat(id.path("client.crt.new")); err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	if err := os.Rename(id.path("client.key.new"), id.path("client.key")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("settle the new key: %w", err)
	}
	if err := os.Rename(id.path("client.crt.new"), id.path("client.crt")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("settle the new certificate: %w", err)
	}
	return atomicfile.SyncDir(id.Dir)
}

// pinnedTLS trusts exactly the CA with the given SHA-256: the server's chain
// must verify against a CA certificate it presents with that hash, or the
// certificate it presents must itself have that hash. Nothing is sent
// before this holds.
func pinnedTLS(pin [sha256.Size]byte) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the pin check below
		VerifyConnection: func(cs tls.ConnectionState) error {
			certs := cs.PeerCertificates
			if len(certs) == 0 {
				return errors.New("the control plane sent no certificate")
			}
			for _, c := range certs {
				if sha256.Sum256(c.Raw) != pin {
					continue
				}
				pool := x509.NewCertPool()
				pool.AddCert(c)
				if c == certs[0] {
					return nil
				}
				inter := x509.NewCertPool()
				for _, ic := range certs[1:] {
					inter.AddCert(ic)
				}
				_, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, DNSName: cs.ServerName})
				return err
			}
			return errors.New("the control plane's CA does not match the one pinned in the token")
		},
	}
}
