package docker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/cameleer/cameleer/internal/httpjson"
)

// The Engine API versions this client speaks. It is written against 1.41
// (Docker 20.10, Debian 12's docker.io) and uses only requests and fields
// that later versions keep; a daemon is spoken to at the newest version both
// sides know, so its answers keep the shape documented for that version.
const (
	oldestAPI = "1.41"
	newestAPI = "1.51"
)

// client is a Docker Engine API client over the daemon's unix socket, pinned
// to one API version.
type client struct {
	socket  string
	version string
	hc      *http.Client
}

func isNotFound(err error) bool { return hasStatus(err, http.StatusNotFound) }

func isConflict(err error) bool { return hasStatus(err, http.StatusConflict) }

// hasStatus says whether err is the daemon's refusal with status.
func hasStatus(err error, status int) bool {
	var se *httpjson.StatusError
	return errors.As(err, &se) && se.Status == status
}

// dial asks the daemon at socket which API versions it speaks and
// picks the one both sides know best.
func dial(ctx context.Context, socket string) (*client, error) {
	cli := &client{socket: socket, hc: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		// The daemon is local; nothing goes through a proxy.
		Proxy: nil,
	}}}
	var v struct{ APIVersion, MinAPIVersion string }
	if err := cli.do(ctx, http.MethodGet, "/version", nil, nil, &v); err != nil {
		return nil, fmt.Errorf("ask the Docker Engine at %s for its version: %w", socket, err)
	}
	version := v.APIVersion
	if apiLess(newestAPI, version) {
		version = newestAPI
	}
	if apiLess(version, oldestAPI) || (v.MinAPIVersion != "" && apiLess(version, v.MinAPIVersion)) {
		return nil, fmt.Errorf("the Docker Engine at %s speaks API %s to %s, cameleer speaks %s to %s",
			socket, v.MinAPIVersion, v.APIVersion, oldestAPI, newestAPI)
	}
	cli.version = version
	return cli, nil
}

// apiLess compares API versions (MAJOR.MINOR) as numbers; an unparsable
// version is older than any other.
func apiLess(a, b string) bool {
	am, an := apiParts(a)
	bm, bn := apiParts(b)
	return am < bm || (am == bm && an < bn)
}

func apiParts(v string) (int, int) {
	major, minor, _ := strings.Cut(v, ".")
	m, err1 := strconv.Atoi(major)
	n, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil {
		return -1, -1
	}
	return m, n
}

// request sends a request and returns the response if the daemon accepted
// it (a refusal is a *httpjson.StatusError); the caller closes the body. path is unversioned ("/containers/json")
// until dial has picked the version.
func (cli *client) request(ctx context.Context, method, path string, query url.Values, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	u := url.URL{Scheme: "http", Host: "docker", Path: path, RawQuery: query.Encode()}
	if cli.version != "" {
		u.Path = "/v" + cli.version + path
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := cli.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotModified {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var m struct{ Message string }
		if json.Unmarshal(b, &m) != nil || m.Message == "" {
			m.Message = strings.TrimSpace(string(b))
		}
		return nil, fmt.Errorf("%w (HTTP %d)", &httpjson.StatusError{Status: resp.StatusCode, Msg: m.Message}, resp.StatusCode)
	}
	return resp, nil
}

// do sends a request and decodes the answer into out, if out is not nil.
func (cli *client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	resp, err := cli.request(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// labelFilter is the filters parameter that selects objects carrying every
// one of labels; no labels select everything.
func labelFilter(labels map[string]string) url.Values {
	if len(labels) == 0 {
		return url.Values{}
	}
	var sel []string
	for k, v := range labels {
		sel = append(sel, k+"="+v)
	}
	f, _ := json.Marshal(map[string][]string{"label": sel})
	return url.Values{"filters": {string(f)}}
}

// The parts of the daemon's objects this package reads.
type (
	containerSummary struct {
		ID              string `json:"Id"`
		Names           []string
		Labels          map[string]string
		State           string
		NetworkSettings struct {
			Networks map[string]struct{ IPAddress string }
		}
	}
	containerInfo struct {
		ID    string `json:"Id"`
		State struct {
			Status    string
			Running   bool
			ExitCode  int
			OOMKilled bool
			Error     string
		}
		Config struct {
			Env    []string
			Labels map[string]string
		}
		HostConfig struct {
			RestartPolicy struct{ Name string }
		}
		NetworkSettings struct {
			Networks map[string]struct{ IPAddress string }
		}
	}
	imageInfo struct {
		Config struct{ User string }
	}
	networkInfo struct {
		ID       string `json:"Id"`
		Name     string
		Internal bool
		Options  map[string]string
		Labels   map[string]string
		IPAM     struct{ Config []ipamConfig }
		// Containers are the running ones, by ID.
		Containers map[string]struct{ IPv4Address string }
	}
	ipamConfig struct {
		Subnet  string `json:",omitempty"`
		Gateway string `json:",omitempty"`
	}
)

// The parts of a container's definition this package sets.
type (
	containerSpec struct {
		Image        string
		Cmd          []string            `json:",omitempty"`
		User         string              `json:",omitempty"`
		Env          []string            `json:",omitempty"`
		Labels       map[string]string   `json:",omitempty"`
		ExposedPorts map[string]struct{} `json:",omitempty"`
		HostConfig   hostConfig
		// NetworkingConfig sets the container's endpoint on the network
		// HostConfig.NetworkMode names.
		NetworkingConfig *networkingConfig `json:",omitempty"`
	}
	networkingConfig struct {
		EndpointsConfig map[string]endpointConfig
	}
	endpointConfig struct {
		Aliases    []string
		IPAMConfig *struct{ IPv4Address string } `json:",omitempty"`
	}
	hostConfig struct {
		NetworkMode    string
		RestartPolicy  struct{ Name string }
		CapDrop        []string
		SecurityOpt    []string
		GroupAdd       []string                 `json:",omitempty"`
		ReadonlyRootfs bool                     `json:",omitempty"`
		Tmpfs          map[string]string        `json:",omitempty"`
		Binds          []string                 `json:",omitempty"`
		PortBindings   map[string][]portBinding `json:",omitempty"`
		Memory         int64                    `json:",omitempty"`
		LogConfig      struct {
			Type   string
			Config map[string]string
		}
	}
	portBinding struct{ HostIP, HostPort string }
)

func (cli *client) inspectContainer(ctx context.Context, idOrName string) (containerInfo, error) {
	var c containerInfo
	err := cli.do(ctx, http.MethodGet, "/containers/"+idOrName+"/json", nil, nil, &c)
	return c, err
}

func (cli *client) listContainers(ctx context.Context, labels map[string]string) ([]containerSummary, error) {
	return cli.containers(ctx, labelFilter(labels))
}

// containersOn lists the containers, running or not, that are on network.
func (cli *client) containersOn(ctx context.Context, network string) ([]containerSummary, error) {
	f, _ := json.Marshal(map[string][]string{"network": {network}}) // cannot fail: strings
	return cli.containers(ctx, url.Values{"filters": {string(f)}})
}

func (cli *client) containers(ctx context.Context, q url.Values) ([]containerSummary, error) {
	q.Set("all", "1")
	var cs []containerSummary
	err := cli.do(ctx, http.MethodGet, "/containers/json", q, nil, &cs)
	return cs, err
}

func (cli *client) createContainer(ctx context.Context, name string, spec containerSpec) (string, error) {
	var out struct {
		ID string `json:"Id"`
	}
	err := cli.do(ctx, http.MethodPost, "/containers/create", url.Values{"name": {name}}, spec, &out)
	return out.ID, err
}

func (cli *client) startContainer(ctx context.Context, id string) error {
	return cli.do(ctx, http.MethodPost, "/containers/"+id+"/start", nil, nil, nil)
}

// stopContainer stops a container, killing it after 10 seconds.
func (cli *client) stopContainer(ctx context.Context, id string) error {
	return cli.do(ctx, http.MethodPost, "/containers/"+id+"/stop", url.Values{"t": {"10"}}, nil, nil)
}

func (cli *client) removeContainer(ctx context.Context, id string) error {
	return cli.do(ctx, http.MethodDelete, "/containers/"+id, url.Values{"force": {"1"}}, nil, nil)
}

func (cli *client) setRestartPolicy(ctx context.Context, id, policy string) error {
	var body struct{ RestartPolicy struct{ Name string } }
	body.RestartPolicy.Name = policy
	return cli.do(ctx, http.MethodPost, "/containers/"+id+"/update", nil, body, nil)
}

func (cli *client) renameContainer(ctx context.Context, id, name string) error {
	return cli.do(ctx, http.MethodPost, "/containers/"+id+"/rename", url.Values{"name": {name}}, nil, nil)
}

// watchExit registers for the container's next exit and reports its code
// on the returned channel (or -1 with the reason the wait broke off). The
// daemon answers the request's header once the wait is registered, so a
// container started after watchExit returns cannot exit unseen.
func (cli *client) watchExit(ctx context.Context, id string) (<-chan exitStatus, error) {
	resp, err := cli.request(ctx, http.MethodPost, "/containers/"+id+"/wait", url.Values{"condition": {"next-exit"}}, nil)
	if err != nil {
		return nil, err
	}
	ch := make(chan exitStatus, 1)
	go func() {
		defer resp.Body.Close()
		var w struct {
			StatusCode int
			Error      *struct{ Message string }
		}
		if err := json.NewDecoder(resp.Body).Decode(&w); err != nil {
			ch <- exitStatus{code: -1, err: err}
			return
		}
		st := exitStatus{code: w.StatusCode}
		if w.Error != nil && w.Error.Message != "" {
			st.err = errors.New(w.Error.Message)
		}
		ch <- st
	}()
	return ch, nil
}

type exitStatus struct {
	code int
	err  error
}

// logs writes a container's output (stdout and stderr, demultiplexed) to
// w: the last tail lines (all if tail < 0), then, with follow, what comes
// until the container stops or ctx is done.
func (cli *client) logs(ctx context.Context, id string, tail int, follow bool, w io.Writer) error {
	q := url.Values{"stdout": {"1"}, "stderr": {"1"}, "tail": {"all"}}
	if tail >= 0 {
		q.Set("tail", strconv.Itoa(tail))
	}
	if follow {
		q.Set("follow", "1")
	}
	resp, err := cli.request(ctx, http.MethodGet, "/containers/"+id+"/logs", q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Without a TTY the daemon frames the output: a byte naming the
	// stream, three zero bytes, the payload's length (big endian), the
	// payload.
	r := bufio.NewReader(resp.Body)
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if _, err := io.CopyN(w, r, int64(binary.BigEndian.Uint32(hdr[4:]))); err != nil {
			return err
		}
	}
}

func (cli *client) inspectImage(ctx context.Context, ref string) (imageInfo, error) {
	var img imageInfo
	err := cli.do(ctx, http.MethodGet, "/images/"+ref+"/json", nil, nil, &img)
	return img, err
}

// pullImage pulls ref. The daemon answers 200 at once and reports progress,
// and a failure, as a stream of JSON messages.
func (cli *client) pullImage(ctx context.Context, ref string) error {
	resp, err := cli.request(ctx, http.MethodPost, "/images/create", url.Values{"fromImage": {ref}}, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var m struct {
			Error       string
			ErrorDetail struct{ Message string }
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if m.ErrorDetail.Message != "" {
			return errors.New(m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}

func (cli *client) inspectNetwork(ctx context.Context, name string) (networkInfo, error) {
	var n networkInfo
	err := cli.do(ctx, http.MethodGet, "/networks/"+name, nil, nil, &n)
	return n, err
}

func (cli *client) listNetworks(ctx context.Context, labels map[string]string) ([]networkInfo, error) {
	var ns []networkInfo
	err := cli.do(ctx, http.MethodGet, "/networks", labelFilter(labels), nil, &ns)
	return ns, err
}

// createNetwork creates a bridge network; internal ones have no gateway
// of their own. options are the bridge driver's; ipam, when not nil, its
// subnets rather than ones the daemon picks.
func (cli *client) createNetwork(ctx context.Context, name string, internal bool, labels, options map[string]string, ipam []ipamConfig) error {
	body := map[string]any{"Name": name, "Driver": "bridge", "CheckDuplicate": true, "Internal": internal, "Labels": labels, "Options": options}
	if ipam != nil {
		body["IPAM"] = map[string]any{"Config": ipam}
	}
	return cli.do(ctx, http.MethodPost, "/networks/create", nil, body, nil)
}

func (cli *client) removeNetwork(ctx context.Context, name string) error {
	return cli.do(ctx, http.MethodDelete, "/networks/"+name, nil, nil, nil)
}

// connectNetwork connects a container, running or not, to a network, where
// aliases name it besides its own name, at the address ip unless it is "".
func (cli *client) connectNetwork(ctx context.Context, network, container string, aliases []string, ip string) error {
	ep := endpointConfig{Aliases: aliases}
	if ip != "" {
		ep.IPAMConfig = &struct{ IPv4Address string }{ip}
	}
	body := map[string]any{"Container": container, "EndpointConfig": ep}
	return cli.do(ctx, http.MethodPost, "/networks/"+network+"/connect", nil, body, nil)
}

func (cli *client) disconnectNetwork(ctx context.Context, network, container string) error {
	body := map[string]any{"Container": container, "Force": true}
	return cli.do(ctx, http.MethodPost, "/networks/"+network+"/disconnect", nil, body, nil)
}
