package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/cameleer/cameleer/controlplane/ca"
)

// serving holds the control plane's TLS certificate, renewing it while the
// control plane runs, and the certificate runners pin and trust for it
// (anchor): the CA's own, or with --tls-cert the root that chain ends in.
type serving struct {
	anchor *x509.Certificate
	log    *slog.Logger
	// renew makes or reads the certificate again; due says whether to.
	renew func() (*tls.Certificate, error)
	due   func(now time.Time) bool

	mu      sync.Mutex
	cert    *tls.Certificate
	checked time.Time
}

// checkEvery bounds how often a handshake looks at whether the certificate
// needs renewing (files read, a certificate signed).
const checkEvery = time.Minute

// servingFromCA serves a certificate the CA signs for names, made again
// when it nears expiry (ca.ServingCert decides when).
func servingFromCA(c *ca.CA, dir string, names []string, log *slog.Logger) (*serving, error) {
	issue := func() (*tls.Certificate, error) {
		cert, err := c.ServingCert(dir, names)
		return &cert, err
	}
	cert, err := issue()
	if err != nil {
		return nil, err
	}
	s := &serving{anchor: c.Cert, log: log, cert: cert, renew: issue, checked: time.Now()}
	s.due = func(now time.Time) bool { return now.Add(ca.ServingRenewBefore).After(s.cert.Leaf.NotAfter) }
	return s, nil
}

// servingFromFiles serves the chain in certFile (leaf first) with the key
// in keyFile, read again when either file changes (a renewal by another
// tool). host, from --url, must be a name of the leaf. A new chain is
// taken only if it ends in the same certificate: runners pin it.
func servingFromFiles(certFile, keyFile, host string, log *slog.Logger) (*serving, error) {
	read := func() (*tls.Certificate, *x509.Certificate, error) {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("--tls-cert: %w", err)
		}
		chain := make([]*x509.Certificate, len(pair.Certificate))
		for i, der := range pair.Certificate {
			if chain[i], err = x509.ParseCertificate(der); err != nil {
				return nil, nil, fmt.Errorf("--tls-cert %s: certificate %d: %w", certFile, i+1, err)
			}
		}
		leaf, anchor := chain[0], chain[len(chain)-1]
		// Runners pin the anchor: a leaf or an intermediate is replaced
		// in time, the root stays.
		if anchor.CheckSignatureFrom(anchor) != nil {
			return nil, nil, fmt.Errorf("--tls-cert %s ends in %q, which is not a root (not self-signed): put the whole chain in the file, leaf first, up to its root; runners pin the root", certFile, anchor.Subject.CommonName)
		}
		if time.Now().After(leaf.NotAfter) {
			return nil, nil, fmt.Errorf("--tls-cert %s expired at %s", certFile, leaf.NotAfter.Format(time.RFC3339))
		}
		roots, inter := x509.NewCertPool(), x509.NewCertPool()
		roots.AddCert(anchor)
		for _, c := range chain[1:max(1, len(chain)-1)] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: host}); err != nil {
			return nil, nil, fmt.Errorf("--tls-cert %s: %w (the file holds the chain, leaf first, up to its root; runners pin the root and reach the host of --url)", certFile, err)
		}
		pair.Leaf = leaf
		return &pair, anchor, nil
	}
	stamp := func() string {
		var s string
		for _, f := range []string{certFile, keyFile} {
			if fi, err := os.Stat(f); err == nil {
				s += fi.ModTime().String() + fmt.Sprint(fi.Size())
			}
		}
		return s
	}
	cert, anchor, err := read()
	if err != nil {
		return nil, err
	}
	seen := stamp()
	srv := &serving{anchor: anchor, log: log, cert: cert, checked: time.Now()}
	srv.due = func(time.Time) bool { return stamp() != seen }
	srv.renew = func() (*tls.Certificate, error) {
		seen = stamp()
		cert, a, err := read()
		if err != nil {
			return nil, err
		}
		if !a.Equal(anchor) {
			return nil, errors.New("--tls-cert: the new chain does not end in the root runners pin; keep that root")
		}
		return cert, nil
	}
	return srv, nil
}

// get is the certificate for a handshake, renewed first if it is due. A
// renewal that fails keeps the current certificate and is logged.
func (s *serving) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := time.Now(); now.Sub(s.checked) >= checkEvery {
		s.checked = now
		if s.due(now) {
			if cert, err := s.renew(); err != nil {
				s.log.Warn("renew the serving certificate", "err", err)
			} else {
				s.cert = cert
				s.log.Info("serving certificate renewed", "notAfter", cert.Leaf.NotAfter)
			}
		}
	}
	return s.cert, nil
}

// urlHost is the host name or address in a control plane URL.
func urlHost(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	h := p.Hostname()
	if ip := net.ParseIP(h); ip != nil {
		return ip.String()
	}
	return h
}
