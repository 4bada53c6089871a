package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cameleer/cameleer/api"
	"github.com/cameleer/cameleer/appliance/config"
	"github.com/cameleer/cameleer/internal/httpjson"
	"github.com/cameleer/cameleer/version"
)

// runnerUpgrade takes an upgrade from the control plane (cp, through the
// tunnel): it fetches the binary, checks its SHA-256 and version against
// the request, and starts `cameleer upgrade` with it in a session of its
// own (it restarts this process), its output in logs/upgrade.log. The
// answer comes once the upgrade has begun; how it ends is in the status.
func runnerUpgrade(c config.Config, cp *http.Client) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req api.UpgradeRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil || req.Version == "" || len(req.SHA256) != 64 {
			httpjson.Error(w, http.StatusBadRequest, "an upgrade names a version and a SHA-256")
			return
		}
		if req.Version == version.Version {
			httpjson.Error(w, http.StatusConflict, "this runner runs "+req.Version+" already")
			return
		}
		if u := LastUpgrade(c); u != nil && u.Result == "running" && time.Since(u.Started) < 30*time.Minute {
			httpjson.Error(w, http.StatusConflict, "an upgrade to "+u.To+" is under way since "+u.Started.Format(time.RFC3339))
			return
		}
		bin, err := fetchBinary(r, c, cp, req)
		if err != nil {
			httpjson.Error(w, http.StatusBadGateway, err.Error())
			return
		}
		exe, err := os.Executable()
		if err != nil {
			httpjson.Error(w, http.StatusInternalServerError, err.Error())
			return
		}
		logf, err := os.OpenFile(c.Path("logs", "upgrade.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			httpjson.Error(w, http.StatusInternalServerError, err.Error())
			return
		}
		defer logf.Close()
		cmd := exec.Command(exe, "upgrade", "--data-dir", c.DataDir, "--binary", bin)
		cmd.Stdout, cmd.Stderr, cmd.Dir = logf, logf, "/"
		cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			httpjson.Error(w, http.StatusInternalServerError, "start the upgrade: "+err.Error())
			return
		}
		go cmd.Wait()
		httpjson.Write(w, http.StatusAccepted, api.UpgradeAnswer{From: version.Version, To: req.Version})
	}
}

// fetchBinary downloads the control plane's binary into the data dir and
// checks it is the one asked for.
func fetchBinary(r *http.Request, c config.Config, cp *http.Client, want api.UpgradeRequest) (string, error) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://controlplane"+api.RunnerBinaryPath, nil)
	if err != nil {
		return "", err
	}
	resp, err := cp.Do(req)
	if err != nil {
		return "", fmt.Errorf("fetch the binary: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("fetch the binary: the control plane answered %s", resp.Status)
	}
	if err := os.MkdirAll(c.Path("upgrade"), 0o700); err != nil {
		return "", err
	}
	path := c.Path("upgrade", "cameleer.download")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("fetch the binary: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.SHA256 {
		return "", fmt.Errorf("the binary fetched has SHA-256 %s, the upgrade names %s", got, want.SHA256)
	}
	if v, err := BinaryVersion(r.Context(), path); err != nil || v.Version != want.Version {
		return "", fmt.Errorf("the binary fetched is not cameleer %s (%v)", want.Version, err)
	}
	return path, nil
}

// Binary is what a cameleer binary says of itself.
type Binary struct {
	Version string
	// Engine says it carries an engine payload.
	Engine bool
}

// BinaryVersion runs `exe version -o json`.
func BinaryVersion(ctx context.Context, exe string) (Binary, error) {
	out, err := exec.CommandContext(ctx, exe, "version", "-o", "json").Output()
	if err != nil {
		return Binary{}, fmt.Errorf("%s does not run here: %w", exe, err)
	}
	var v struct {
		Version string
		Payload *struct{ SHA256 string }
	}
	if err := json.Unmarshal(out, &v); err != nil || v.Version == "" {
		return Binary{}, fmt.Errorf("%s is not a cameleer binary", exe)
	}
	return Binary{Version: v.Version, Engine: v.Payload != nil}, nil
}
