package engine

import (
	"context"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"

	"github.com/cameleer/cameleer/appliance/config"
	"github.com/cameleer/cameleer/appliance/join"
	"github.com/cameleer/cameleer/appliance/kube"
	"github.com/cameleer/cameleer/internal/downloads"
)

// Tokens are the join tokens of the cluster whose controller c is.
func Tokens(c config.Config) (join.Tokens, error) {
	if c.IsWorker() {
		return join.Tokens{}, fmt.Errorf("this node is a worker: make and manage join tokens on its controller, %s", c.Server)
	}
	p := Paths{Config: c}
	admin, err := kube.NewClient(p.AdminCredentials())
	if err != nil {
		return join.Tokens{}, err
	}
	return p.tokens(admin)
}

func (p Paths) tokens(admin *kube.Client) (join.Tokens, error) {
	b, err := os.ReadFile(p.pki("ca.crt"))
	if err != nil {
		return join.Tokens{}, fmt.Errorf("the cluster CA: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return join.Tokens{}, errors.New("the cluster CA: no PEM certificate in " + p.pki("ca.crt"))
	}
	return join.Tokens{API: admin, CAHash: sha256.Sum256(blk.Bytes), Server: net.JoinHostPort(p.NodeIP, strconv.Itoa(p.ClusterPort))}, nil
}

// joinServer serves workers on the controller's cluster port.
func (p Paths) joinServer(ctx context.Context, log *slog.Logger, admin *kube.Client) (*join.Server, error) {
	tokens, err := p.tokens(admin)
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	bin, err := downloads.New(ctx, exe)
	if err != nil {
		return nil, err
	}
	return &join.Server{
		Log:      log.With("component", "cluster-port"),
		Tokens:   tokens,
		API:      admin,
		PKIDir:   p.PKIDir(),
		Certs:    NodeCerts,
		Registry: &url.URL{Scheme: "http", Host: p.RegistryAddr()},
		Cluster: join.Cluster{APIPort: p.APIPort, ClusterCIDR: p.ClusterCIDR, ServiceCIDR: p.ServiceCIDR, ClusterDNS: p.ClusterDNS,
			HTTPPort: p.HTTPPort, HTTPSPort: p.HTTPSPort, AppsDomain: p.AppsDomain},
		Binary: bin,
	}, nil
}
