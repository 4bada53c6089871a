// Package kube is the little the appliance needs to talk to its own
// Kubernetes API without client-go: kubeconfig files and a JSON REST client
// authenticated by a client certificate.
package kube

import (
	"encoding/base64"
	"fmt"
	"os"
	"strings"

	"github.com/cameleer/cameleer/internal/atomicfile"
)

// Credentials locate a client certificate and the CA that signs the server.
type Credentials struct {
	Server string
	CAFile string
	// CertFile and KeyFile: the client certificate and its key.
	CertFile string
	KeyFile  string
}

// WriteKubeconfig writes a kubeconfig for user with creds. With embed the
// certificates are copied into the file (a portable file for people);
// otherwise it points at them (components, so renewed certificates apply
// on restart).
func WriteKubeconfig(path, user string, creds Credentials, embed bool, perm os.FileMode) error {
	clusterAuth := fmt.Sprintf("    certificate-authority: %s\n", creds.CAFile)
	userAuth := fmt.Sprintf("    client-certificate: %s\n    client-key: %s\n", creds.CertFile, creds.KeyFile)
	if embed {
		var data [3]string
		for i, f := range []string{creds.CAFile, creds.CertFile, creds.KeyFile} {
			b, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("write kubeconfig: %w", err)
			}
			data[i] = base64.StdEncoding.EncodeToString(b)
		}
		clusterAuth = fmt.Sprintf("    certificate-authority-data: %s\n", data[0])
		userAuth = fmt.Sprintf("    client-certificate-data: %s\n    client-key-data: %s\n", data[1], data[2])
	}
	return write(path, user, creds.Server, clusterAuth, userAuth, perm)
}

func write(path, user, server, clusterAuth, userAuth string, perm os.FileMode) error {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Config\nclusters:\n- name: cameleer\n  cluster:\n")
	fmt.Fprintf(&b, "    server: %s\n%s", server, clusterAuth)
	fmt.Fprintf(&b, "users:\n- name: %s\n  user:\n%s", user, userAuth)
	fmt.Fprintf(&b, "contexts:\n- name: cameleer\n  context:\n    cluster: cameleer\n    user: %s\ncurrent-context: cameleer\n", user)
	if _, err := atomicfile.WriteFile(path, []byte(b.String()), perm); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}
