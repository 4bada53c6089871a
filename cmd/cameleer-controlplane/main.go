// Command cameleer-controlplane is the Cameleer control plane: tenants,
// runners and their tunnels, behind one TLS port. This package only wires
// commands; the work is done in the controlplane packages.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cameleer/cameleer/controlplane/server"
	"github.com/cameleer/cameleer/version"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "cameleer-controlplane:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "cameleer-controlplane",
		Short:         "The Cameleer control plane: tenants, runners, tunnels",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCommand(), &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "cameleer-controlplane %s (commit %s, %s)\n", version.Version, version.Commit, version.GoVersion())
		},
	})
	return root
}

func newServeCommand() *cobra.Command {
	var opts server.Options
	var listen string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the API and runners' tunnels on one TLS port",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (opts.TLSCert == "") != (opts.TLSKey == "") {
				return fmt.Errorf("--tls-cert and --tls-key go together")
			}
			opts.Log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			if !cmd.Flags().Changed("runner-binary") {
				opts.RunnerBinary = besideSelf("cameleer")
			}
			s, admin, err := server.New(opts)
			if err != nil {
				return err
			}
			defer s.Close()
			if admin != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "Admin API token (shown once, also in %s):\n%s\n", server.AdminTokenFile(opts.DataDir), admin)
			}
			l, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			hash := s.CAHash()
			opts.Log.Info("serving", "addr", l.Addr().String(), "caSHA256", fmt.Sprintf("%x", hash[:]))
			return s.Serve(ctx, l)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.DataDir, "data-dir", "/var/lib/cameleer-controlplane", "where the control plane keeps its state")
	f.StringVar(&listen, "listen", ":8443", "TLS address for the API and tunnels")
	f.StringVar(&opts.URL, "url", "", "https://HOST:PORT runners use to reach this control plane (goes into one-time tokens)")
	f.StringSliceVar(&opts.SANs, "san", nil, "extra DNS name or IP of the serving certificate (repeatable)")
	f.StringVar(&opts.TLSCert, "tls-cert", "", "serving certificate chain (leaf first, up to its root, which runners pin) instead of one made by the control plane's CA")
	f.StringVar(&opts.TLSKey, "tls-key", "", "key of --tls-cert")
	f.DurationVar(&opts.RunnerCertLifetime, "runner-cert-lifetime", 7*24*time.Hour, "lifetime of runner client certificates (renewed at half-life)")
	f.IntVar(&opts.MaxConns, "max-connections", 0, "connections open at once, tunnels included; more wait in the kernel's backlog (0: three quarters of the file limit)")
	f.BoolVar(&opts.RotateAdminToken, "rotate-admin-token", false, "make a new admin token, write it to admin.token and revoke every other admin token")
	f.DurationVar(&opts.IdleTimeout, "idle-timeout", 2*time.Minute, "close an API connection idle for this long")
	f.DurationVar(&opts.ReadTimeout, "read-timeout", 30*time.Second, "time a request's head and JSON body have to arrive (an upload has as long as it keeps coming)")
	f.DurationVar(&opts.TelemetryRetention, "telemetry-retention", 7*24*time.Hour, "how long exchanges, route figures and route models are kept, unless a tenant's retentionDays says otherwise")
	f.StringVar(&opts.RunnerBinary, "runner-binary", "", "the cameleer binary hosts download with install.sh (default: cameleer beside this executable, if there is one)")
	f.StringVar(&opts.TelemetryClickHouse, "telemetry-clickhouse", os.Getenv("CAMELEER_TELEMETRY_CLICKHOUSE"), "keep telemetry in ClickHouse at http(s)://[USER[:PASSWORD]@]HOST:PORT[/DATABASE] instead of the embedded store (default $CAMELEER_TELEMETRY_CLICKHOUSE, which keeps a password off the command line)")
	return cmd
}

// besideSelf is the file name in this executable's directory, or "" when
// there is none.
func besideSelf(name string) string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	p := filepath.Join(filepath.Dir(exe), name)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}
