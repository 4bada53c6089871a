package join

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cameleer/cameleer/appliance/config"
	"github.com/cameleer/cameleer/appliance/kube"
	"github.com/cameleer/cameleer/appliance/pki"
	"github.com/cameleer/cameleer/installer"
	"github.com/cameleer/cameleer/internal/certs"
	"github.com/cameleer/cameleer/internal/downloads"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// CertNames are the certificates a worker gets, each for a key it makes:
// the kubelet's serving certificate and its client one, kube-proxy's and
// the network agents'. They are the file stems the engine reads on every
// node.
var CertNames = []string{"kubelet", "kubelet-client", "kube-proxy", "network"}

// nodesGroup is the group every node's kubelet is in: what may pull from
// the registry and leave.
const nodesGroup = "system:nodes"

// Paths of the protocol.
const (
	// CACertsPath and the downloads are where the control plane serves
	// its own: install.sh fetches a controller's the same way.
	CACertsPath = "/ca.crt"
	JoinPath    = "/v1/join"
	// DrainPath has no new pod sent to the calling node and its pods
	// moved; LeavePath removes it from the cluster, once its kubelet
	// stopped (a running kubelet registers its node again).
	DrainPath = "/v1/drain"
	LeavePath = "/v1/leave"
)

// Request is what a joining node sends, with its token as a bearer.
type Request struct {
	Role string `json:"role"`
	Node string `json:"node"`
	IP   string `json:"ip"`
	// CSRs are PEM certificate requests, one for each of CertNames. Only
	// their keys are used: what a certificate says is the controller's
	// choice.
	CSRs map[string]string `json:"csrs"`
}

// Cluster is what a joining node learns of its cluster.
type Cluster struct {
	APIPort     int    `json:"apiPort"`
	ClusterCIDR string `json:"clusterCIDR"`
	ServiceCIDR string `json:"serviceCIDR"`
	ClusterDNS  string `json:"clusterDNS"`
	// HTTPPort and HTTPSPort are where Traefik serves apps on every node.
	HTTPPort   int    `json:"httpPort"`
	HTTPSPort  int    `json:"httpsPort"`
	AppsDomain string `json:"appsDomain"`
}

// Response is the controller's answer to a join.
type Response struct {
	CA      string            `json:"ca"`
	Certs   map[string]string `json:"certs"`
	Cluster Cluster           `json:"cluster"`
	// Again says the node had joined with this token and key before.
	Again bool `json:"again,omitempty"`
}

// Server serves joining and joined nodes on a controller's cluster port.
type Server struct {
	Log    *slog.Logger
	Tokens Tokens
	// API is the cluster as its admin.
	API *kube.Client
	// PKIDir holds the cluster CA (ca.crt, ca.key) and the server's own
	// certificate (cluster-server.crt, .key).
	PKIDir string
	// Certs are the certificates a node of that name and address gets,
	// named as CertNames.
	Certs func(node, ip string) []pki.Cert
	// Registry is the node's registry, which nodes pull from through
	// this server.
	Registry *url.URL
	Cluster  Cluster
	// Binary is the controller's own cameleer, served to joining hosts
	// (`install.sh --join`): a worker runs its controller's version.
	Binary *downloads.Service
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

func (s *Server) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

// Serve answers on addr until ctx is done.
func (s *Server) Serve(ctx context.Context, addr string) error {
	caPEM, err := os.ReadFile(s.PKIDir + "/ca.crt")
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// A node's client certificate is asked for, not required: a
		// joining node has none yet.
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  pool,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(s.PKIDir+"/cluster-server.crt", s.PKIDir+"/cluster-server.key")
			return &c, err
		},
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cluster port: %w", err)
	}
	srv := &http.Server{Handler: s.Handler(caPEM), TLSConfig: cfg, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.Log.Handler(), slog.LevelDebug)}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.ServeTLS(l, "", ""); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Handler is the server's API.
func (s *Server) Handler(caPEM []byte) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+CACertsPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(caPEM)
	})
	mux.HandleFunc("GET /install.sh", func(w http.ResponseWriter, r *http.Request) {
		installer.ServeScript(w, r, s.Binary)
	})
	mux.HandleFunc("GET /downloads/cameleer.json", func(w http.ResponseWriter, r *http.Request) {
		f, bin, err := s.Binary.Open(r.Context())
		if err != nil {
			s.fail(w, "describe the binary", "", err)
			return
		}
		f.Close()
		httpjson.Write(w, http.StatusOK, bin)
	})
	mux.HandleFunc("GET /downloads/cameleer", func(w http.ResponseWriter, r *http.Request) {
		f, bin, err := s.Binary.Open(r.Context())
		if err != nil {
			s.fail(w, "serve the binary", "", err)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("ETag", `"`+bin.SHA256+`"`)
		http.ServeContent(w, r, "cameleer", time.Time{}, f)
	})
	mux.HandleFunc("POST "+JoinPath, func(w http.ResponseWriter, r *http.Request) {
		var req Request
		if err := httpjson.Decode(w, r, &req, false); err != nil {
			return
		}
		resp, err := s.join(r.Context(), r.Header.Get("Authorization"), req, caPEM)
		if err != nil {
			s.fail(w, "join", req.Node, err)
			return
		}
		s.Log.Info("node joined", "node", req.Node, "ip", req.IP, "role", req.Role, "again", resp.Again)
		httpjson.Write(w, http.StatusOK, resp)
	})
	for path, do := range map[string]func(context.Context, string) error{DrainPath: s.drain, LeavePath: s.remove} {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			node, ok := nodeOf(r)
			if !ok {
				httpjson.Error(w, http.StatusUnauthorized, "present a node's certificate of this cluster")
				return
			}
			if err := do(r.Context(), node); err != nil {
				s.fail(w, strings.TrimPrefix(path, "/v1/"), node, err)
				return
			}
			s.Log.Info("node "+strings.TrimPrefix(path, "/v1/"), "node", node)
			w.WriteHeader(http.StatusNoContent)
		})
	}
	registry := httputil.NewSingleHostReverseProxy(s.Registry)
	mux.HandleFunc("/v2/", func(w http.ResponseWriter, r *http.Request) {
		// Nodes pull; only the controller's own runner pushes, on
		// loopback.
		if _, ok := nodeOf(r); !ok {
			httpjson.Error(w, http.StatusUnauthorized, "the registry serves this cluster's nodes: present a node's certificate")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			httpjson.Error(w, http.StatusMethodNotAllowed, "the registry is read-only here")
			return
		}
		registry.ServeHTTP(w, r)
	})
	return mux
}

func (s *Server) fail(w http.ResponseWriter, what, node string, err error) {
	var re *RefusedError
	var se *httpjson.StatusError
	switch {
	case errors.As(err, &re):
		s.Log.Warn(what+" refused", "node", node, "reason", re.Reason)
		httpjson.Error(w, http.StatusForbidden, re.Reason)
	case errors.As(err, &se) && se.Status/100 == 4:
		httpjson.Error(w, se.Status, se.Msg)
	default:
		s.Log.Error(what+" failed", "node", node, "err", err)
		httpjson.Error(w, http.StatusInternalServerError, what+": "+err.Error())
	}
}

// nodeOf is the node whose verified client certificate came with r.
func nodeOf(r *http.Request) (string, bool) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return "", false
	}
	c := r.TLS.VerifiedChains[0][0]
	name, ok := strings.CutPrefix(c.Subject.CommonName, "system:node:")
	return name, ok && name != "" && slices.Contains(c.Subject.Organization, nodesGroup) &&
		slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
}

func (s *Server) join(ctx context.Context, auth string, req Request, caPEM []byte) (Response, error) {
	bearer, ok := strings.CutPrefix(auth, "Bearer ")
	id, secret, ok2 := strings.Cut(bearer, ".")
	if !ok || !ok2 {
		return Response{}, httpjson.Errorf(http.StatusUnauthorized, "join: no token")
	}
	if req.Role != config.Worker {
		return Response{}, httpjson.Errorf(http.StatusBadRequest, "join: role %q: this controller adds workers", req.Role)
	}
	if err := validNode(req.Node, req.IP); err != nil {
		return Response{}, httpjson.Errorf(http.StatusBadRequest, "join: %v", err)
	}
	certSet := s.Certs(req.Node, req.IP)
	keys := map[string]any{}
	for _, c := range certSet {
		pub, err := csrKey(req.CSRs[c.Name])
		if err != nil {
			return Response{}, httpjson.Errorf(http.StatusBadRequest, "join: the request for %s: %v", c.Name, err)
		}
		keys[c.Name] = pub
	}
	keyDER, err := x509.MarshalPKIXPublicKey(keys["kubelet-client"])
	if err != nil {
		return Response{}, httpjson.Errorf(http.StatusBadRequest, "join: the kubelet's key: %v", err)
	}
	sum := sha256.Sum256(keyDER)
	keyHash := hex.EncodeToString(sum[:])
	tok := Token{Role: req.Role, ID: id, Secret: secret}
	now := s.now()
	// The token first: who may not join learns nothing of the cluster's
	// nodes.
	r, err := s.Tokens.get(ctx, id)
	if errors.Is(err, ErrUnknown) {
		return Response{}, &RefusedError{Reason: fmt.Sprintf("token %s is not known to this cluster (revoked, or another cluster's)", id)}
	} else if err != nil {
		return Response{}, err
	}
	again, err := check(r, tok, req.Node, keyHash, now)
	if err != nil {
		return Response{}, err
	}
	if !again {
		if _, err := s.API.Node(ctx, req.Node); err == nil {
			return Response{}, &RefusedError{Reason: fmt.Sprintf("a node named %s is in the cluster already: `cameleer reset` it, or join this host under another name (--node-name)", req.Node)}
		} else if !isStatus(err, http.StatusNotFound) {
			return Response{}, err
		}
		if err := s.Tokens.use(ctx, r, req.Node, keyHash, now); err != nil {
			return Response{}, err
		}
	}
	resp := Response{CA: string(caPEM), Certs: map[string]string{}, Cluster: s.Cluster, Again: again}
	for _, c := range certSet {
		cert, err := pki.Sign(s.PKIDir, c, keys[c.Name], now)
		if err != nil {
			return Response{}, fmt.Errorf("sign %s: %w", c.Name, err)
		}
		resp.Certs[c.Name] = string(certs.CertPEM(cert))
	}
	return resp, nil
}

func validNode(name, ip string) error {
	if name == "" || len(name) > 63 || strings.ToLower(name) != name || strings.ContainsAny(name, " /:") {
		return fmt.Errorf("node name %q: lower case, at most 63 characters, no spaces, slashes or colons", name)
	}
	if p := net.ParseIP(ip); p == nil || p.To4() == nil {
		return fmt.Errorf("node IP %q is not an IPv4 address", ip)
	}
	return nil
}

func csrKey(p string) (any, error) {
	b, _ := pem.Decode([]byte(p))
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("not a PEM certificate request")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("its signature: %w", err)
	}
	return csr.PublicKey, nil
}

// drain has no new pod sent to node and deletes the pods there (their
// controllers make them again on other nodes), waiting until its kubelet
// stopped them, at most drainWait. Its DaemonSets' pods stay until the
// node goes.
func (s *Server) drain(ctx context.Context, node string) error {
	patch := map[string]any{"spec": map[string]any{"unschedulable": true}}
	err := s.API.Do(ctx, http.MethodPatch, "/api/v1/nodes/"+node, "application/merge-patch+json", patch, nil)
	if isStatus(err, http.StatusNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cordon %s: %w", node, err)
	}
	deadline := s.now().Add(drainWait)
	for {
		pods, err := s.pods(ctx, node)
		if err != nil {
			return err
		}
		if len(pods) == 0 {
			return nil
		}
		if s.now().After(deadline) {
			return fmt.Errorf("drain %s: %d pod(s) still there after %s", node, len(pods), drainWait)
		}
		for _, p := range pods {
			err := s.API.Do(ctx, http.MethodDelete, "/api/v1/namespaces/"+p, "", nil, nil)
			if err != nil && !isStatus(err, http.StatusNotFound) {
				return fmt.Errorf("drain %s: pod %s: %w", node, p, err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// drainWait bounds a drain: the apps' grace period is 30 s.
const drainWait = 90 * time.Second

// pods are node's pods that a drain moves, as NAMESPACE/pods/NAME: all
// but DaemonSets'.
func (s *Server) pods(ctx context.Context, node string) ([]string, error) {
	var l struct {
		Items []struct {
			Metadata struct {
				Name            string `json:"name"`
				Namespace       string `json:"namespace"`
				OwnerReferences []struct {
					Kind string `json:"kind"`
				} `json:"ownerReferences"`
			} `json:"metadata"`
		} `json:"items"`
	}
	if err := s.API.Get(ctx, "/api/v1/pods?fieldSelector=spec.nodeName%3D"+url.QueryEscape(node), &l); err != nil {
		return nil, fmt.Errorf("list the pods of %s: %w", node, err)
	}
	var out []string
	for _, p := range l.Items {
		if len(p.Metadata.OwnerReferences) > 0 && p.Metadata.OwnerReferences[0].Kind == "DaemonSet" {
			continue
		}
		out = append(out, p.Metadata.Namespace+"/pods/"+p.Metadata.Name)
	}
	return out, nil
}

// remove deletes node from the cluster.
func (s *Server) remove(ctx context.Context, node string) error {
	if err := s.API.Do(ctx, http.MethodDelete, "/api/v1/nodes/"+node, "", nil, nil); err != nil && !isStatus(err, http.StatusNotFound) {
		return fmt.Errorf("remove node %s: %w", node, err)
	}
	return nil
}
