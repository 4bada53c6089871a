package kube

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/cameleer/cameleer/internal/httpjson"
)

// Client is a JSON client of one apiserver.
type Client struct {
	server string
	http   *http.Client
}

// NewClient makes a client that authenticates with creds' certificate.
func NewClient(creds Credentials) (*Client, error) {
	ca, err := os.ReadFile(creds.CAFile)
	if err != nil {
		return nil, fmt.Errorf("kube client: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("kube client: %s holds no certificate", creds.CAFile)
	}
	cert, err := tls.LoadX509KeyPair(creds.CertFile, creds.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("kube client: %w", err)
	}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		// Every poll would otherwise leave a connection behind when the
		// apiserver restarts.
		IdleConnTimeout: 30 * time.Second,
	}
	return &Client{server: strings.TrimSuffix(creds.Server, "/"), http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}, nil
}

// Get fetches path and decodes the JSON answer into v (nil: discard it). An
// answer other than 2xx is a *httpjson.StatusError.
func (c *Client) Get(ctx context.Context, path string, v any) error {
	return c.Do(ctx, http.MethodGet, path, "", nil, v)
}

// Do sends body (JSON of it; nil: none) with method to path, as
// contentType (empty: application/json), and decodes the answer into v.
func (c *Client) Do(ctx context.Context, method, path, contentType string, body, v any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", cmp.Or(contentType, "application/json"))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		var st struct {
			Message string `json:"message"`
		}
		msg := strings.TrimSpace(string(answer))
		if json.Unmarshal(answer, &st) == nil && st.Message != "" {
			msg = st.Message
		}
		return fmt.Errorf("apiserver: %d %w", resp.StatusCode, &httpjson.StatusError{Status: resp.StatusCode, Msg: msg})
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(answer, v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

// Condition is a status condition of a Kubernetes object.
type Condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// Node is the part of a Node the appliance reads.
type Node struct {
	Metadata struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels,omitempty"`
	} `json:"metadata"`
	Spec struct {
		PodCIDR       string `json:"podCIDR"`
		Unschedulable bool   `json:"unschedulable,omitempty"`
	} `json:"spec"`
	Status struct {
		Conditions []Condition `json:"conditions"`
		Addresses  []struct {
			Type    string `json:"type"`
			Address string `json:"address"`
		} `json:"addresses,omitempty"`
		NodeInfo struct {
			KubeletVersion string `json:"kubeletVersion"`
		} `json:"nodeInfo"`
	} `json:"status"`
}

// InternalIP is the node's InternalIP address, empty if it reported none.
func (n Node) InternalIP() string {
	for _, a := range n.Status.Addresses {
		if a.Type == "InternalIP" {
			return a.Address
		}
	}
	return ""
}

// Nodes lists the cluster's nodes.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	var l struct {
		Items []Node `json:"items"`
	}
	err := c.Get(ctx, "/api/v1/nodes", &l)
	return l.Items, err
}

// Ready is the node's Ready condition, zero if it has none yet.
func (n Node) Ready() Condition {
	for _, c := range n.Status.Conditions {
		if c.Type == "Ready" {
			return c
		}
	}
	return Condition{Type: "Ready", Status: "Unknown", Reason: "NotReported"}
}

// Node fetches a node.
func (c *Client) Node(ctx context.Context, name string) (Node, error) {
	var n Node
	err := c.Get(ctx, "/api/v1/nodes/"+name, &n)
	return n, err
}

// Deployment is the part of a Deployment the appliance reads.
type Deployment struct {
	Spec struct {
		Replicas *int `json:"replicas"`
	} `json:"spec"`
	Status struct {
		ObservedGeneration int `json:"observedGeneration"`
		ReadyReplicas      int `json:"readyReplicas"`
		AvailableReplicas  int `json:"availableReplicas"`
		UpdatedReplicas    int `json:"updatedReplicas"`
	} `json:"status"`
}

// Available tells whether every wanted replica is up to date and available.
func (d Deployment) Available() bool {
	want := 1
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	return d.Status.AvailableReplicas >= want && d.Status.UpdatedReplicas >= want
}

// Deployment fetches a deployment.
func (c *Client) Deployment(ctx context.Context, namespace, name string) (Deployment, error) {
	var d Deployment
	err := c.Get(ctx, "/apis/apps/v1/namespaces/"+namespace+"/deployments/"+name, &d)
	return d, err
}
