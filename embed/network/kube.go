package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

const (
	pollInterval   = 250 * time.Millisecond
	requestTimeout = 10 * time.Second
	// uninitializedTaint is set by the kubelet with --cloud-provider=external
	// until a cloud controller has filled in the node's addresses.
	uninitializedTaint = "node.cloudprovider.kubernetes.io/uninitialized"
)

// setupLogging sets klog's verbosity; klog writes to stderr.
func setupLogging(verbosity int) {
	var fs flag.FlagSet
	klog.InitFlags(&fs)
	_ = fs.Set("v", strconv.Itoa(verbosity))
}

// newClient loads the kubeconfig. It returns the clientset and the address of
// the apiserver for error messages.
func newClient(kubeconfig, component string) (*kubernetes.Clientset, string, error) {
	if _, err := os.Stat(kubeconfig); errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("kubeconfig %s does not exist", kubeconfig)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.UserAgent = "cameleer-net/" + component
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	return client, cfg.Host, nil
}

// nodeCheck tells what the node still lacks ("" when nothing), or returns an
// error when waiting cannot help.
type nodeCheck func(*corev1.Node) (missing string, err error)

// waitForNode polls the node until check is satisfied. After timeout it gives
// up with the last reason it waited for, on one line.
func waitForNode(ctx context.Context, client kubernetes.Interface, host, name string,
	timeout time.Duration, check nodeCheck) (*corev1.Node, error) {
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		reqCtx, cancel := context.WithTimeout(ctx, requestTimeout)
		node, err := client.CoreV1().Nodes().Get(reqCtx, name, metav1.GetOptions{})
		cancel()
		var why string
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case err == nil:
			missing, err := check(node)
			if err != nil {
				return nil, err
			}
			if missing == "" {
				return node, nil
			}
			why = missing
		case apierrors.IsNotFound(err):
			why = fmt.Sprintf("node %q is not registered", name)
		case apierrors.IsUnauthorized(err):
			return nil, fmt.Errorf("the apiserver at %s rejected the credentials of the kubeconfig: %v", host, err)
		case apierrors.IsForbidden(err):
			why = fmt.Sprintf("not allowed to read node %q: %v", name, err)
		default:
			why = fmt.Sprintf("cannot reach the apiserver at %s: %v", host, unwrapURLError(err))
		}
		if why != last {
			klog.Infof("Waiting: %s", why)
			last = why
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("%s (gave up after %s)", why, timeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(left, pollInterval)):
		}
	}
}

// unwrapURLError drops the method and URL client-go puts in front of a
// transport error ("Get \"https://...\": dial tcp ...: connection refused").
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// nodeIPv4 returns the node's first IPv4 InternalIP, else its first IPv4
// ExternalIP, else nil: the order kube-router picks the primary node IP in.
func nodeIPv4(node *corev1.Node) net.IP {
	for _, typ := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP} {
		for _, a := range node.Status.Addresses {
			if a.Type != typ {
				continue
			}
			if ip := net.ParseIP(a.Address); ip != nil && ip.To4() != nil {
				return ip.To4()
			}
		}
	}
	return nil
}

// hasAddress is the check of netpol: kube-router needs the node's final
// addresses, which a cloud controller may still be filling in.
func hasAddress(node *corev1.Node) (string, error) {
	for _, t := range node.Spec.Taints {
		if t.Key == uninitializedTaint {
			return fmt.Sprintf("node %q still has the %s taint", node.Name, uninitializedTaint), nil
		}
	}
	if nodeIPv4(node) == nil {
		return fmt.Sprintf("node %q has no IPv4 InternalIP or ExternalIP yet", node.Name), nil
	}
	return "", nil
}

// hasPodCIDR is the check of flannel: kube-controller-manager
// --allocate-node-cidrs gives every node a slice of the cluster CIDR.
func hasPodCIDR(clusterCIDR *net.IPNet) nodeCheck {
	return func(node *corev1.Node) (string, error) {
		if node.Spec.PodCIDR == "" {
			return fmt.Sprintf("node %q has no pod CIDR yet "+
				"(assigned by kube-controller-manager --allocate-node-cidrs)", node.Name), nil
		}
		_, podCIDR, err := net.ParseCIDR(node.Spec.PodCIDR)
		if err != nil {
			return "", fmt.Errorf("node %q has an invalid pod CIDR %q", node.Name, node.Spec.PodCIDR)
		}
		if !containsNet(clusterCIDR, podCIDR) {
			return "", fmt.Errorf("pod CIDR %s of node %q is not inside --cluster-cidr %s "+
				"(kube-controller-manager --cluster-cidr must match)", podCIDR, node.Name, clusterCIDR)
		}
		return "", nil
	}
}

func containsNet(outer, inner *net.IPNet) bool {
	o, _ := outer.Mask.Size()
	i, _ := inner.Mask.Size()
	return o <= i && outer.Contains(inner.IP)
}
