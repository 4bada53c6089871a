package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cameleer/cameleer/appliance/bundle"
	"github.com/cameleer/cameleer/appliance/config"
	"github.com/cameleer/cameleer/appliance/engine"
	"github.com/cameleer/cameleer/appliance/install"
	"github.com/cameleer/cameleer/appliance/join"
	"github.com/cameleer/cameleer/appliance/node"
	"github.com/cameleer/cameleer/appliance/reset"
	"github.com/cameleer/cameleer/appliance/supportbundle"
	"github.com/cameleer/cameleer/appliance/tunnelclient"
	"github.com/cameleer/cameleer/appliance/upgrade"
	"github.com/cameleer/cameleer/version"
)

// dataDirEnv names the data dir of a command given no --data-dir.
const dataDirEnv = "CAMELEER_DATA_DIR"

// dataDirUsage says what --data-dir is, for every command that has it.
const dataDirUsage = "where the node keeps everything; without it, $" + dataDirEnv + " or " + config.DefaultDataDir

// defaultDataDir is the data dir of a command given no --data-dir.
func defaultDataDir() string {
	if v := os.Getenv(dataDirEnv); v != "" {
		return v
	}
	return config.DefaultDataDir
}

func dataDirFlag(cmd *cobra.Command) *string {
	return cmd.Flags().String("data-dir", defaultDataDir(), dataDirUsage)
}

func newRunCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the node in the foreground: supervise the engine until SIGTERM or SIGINT",
		Args:  cobra.NoArgs,
	}
	dataDir := dataDirFlag(cmd)
	noEngine := cmd.Flags().Bool("no-engine", false, "run only the tunnel to the control plane and the local API, no Kubernetes (--orchestrator none)")
	opts := node.Options{Orchestrator: node.Kubernetes}
	cmd.Flags().TextVar(&opts.Orchestrator, "orchestrator", node.Kubernetes, "what runs the apps: kubernetes (the embedded engine), docker (this host's Docker Engine) or none")
	cmd.Flags().StringVar(&opts.Docker.Socket, "docker-socket", "/var/run/docker.sock", "with --orchestrator docker: the Docker Engine's API socket")
	cmd.Flags().IntVar(&opts.Docker.HTTPPort, "http-port", config.DefaultHTTPPort, "with --orchestrator docker: the port Traefik serves apps on")
	cmd.Flags().StringVar(&opts.Docker.AppsDomain, "apps-domain", config.DefaultAppsDomain, "with --orchestrator docker: DNS suffix apps are routed under: APP.ENV.TENANT.DOMAIN")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		opts.DataDir = *dataDir
		if *noEngine {
			opts.Orchestrator = node.None
		}
		return node.Run(ctx, slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)), opts)
	}
	return cmd
}

func newStatusCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every engine component's state and the node's condition",
		Args:  cobra.NoArgs,
	}
	dataDir := dataDirFlag(cmd)
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := config.Load(*dataDir)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
		defer cancel()
		st, err := node.QueryStatus(ctx, c)
		if err != nil {
			return err
		}
		err = printOutput(cmd.OutOrStdout(), *output, st, func(w io.Writer) error {
			ready := "unknown (apiserver not answering)"
			if st.Node != nil {
				ready = st.Node.Status
				if st.Node.Reason != "" {
					ready += " (" + st.Node.Reason + ")"
				}
			}
			fmt.Fprintf(w, "node %s: Ready=%s, cameleer run pid %d since %s\n", c.NodeName, ready, st.PID, st.Since.Format(time.RFC3339))
			if c.IsWorker() {
				fmt.Fprintf(w, "worker of the controller %s\n", c.Server)
			} else {
				fmt.Fprintf(w, "control plane: %s\n", node.ControlPlaneLine(st.ControlPlane))
			}
			if u := st.LastUpgrade; u != nil {
				fmt.Fprintf(w, "last upgrade: %s\n", upgrade.Line(*u))
			}
			fmt.Fprintln(w)
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			if len(st.Nodes) > 0 {
				fmt.Fprintln(tw, "NODE\tROLE\tIP\tREADY\tVERSION\tSCHEDULING")
				for _, n := range st.Nodes {
					sched := "on"
					if n.Unschedulable {
						sched = "off (drained)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.Role, n.IP, n.Ready, n.Version, sched)
				}
				fmt.Fprintln(tw)
			}
			fmt.Fprintln(tw, "COMPONENT\tSTATE\tREADY\tPID\tRESTARTS\tMESSAGE")
			for _, cs := range st.Components {
				pid := "-"
				if cs.PID != 0 {
					pid = fmt.Sprint(cs.PID)
				}
				msg := cs.Message
				if len(msg) > 80 {
					msg = msg[:77] + "..."
				}
				fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%d\t%s\n", cs.Name, cs.State, cs.Ready, pid, cs.Restarts, msg)
			}
			return tw.Flush()
		})
		if err == nil && !st.Ready {
			return fmt.Errorf("node is not ready")
		}
		return err
	}
	return cmd
}

func newInstallCommand() *cobra.Command {
	var opts install.Options
	var bundleFile, binDir string
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install the node on this host and start it: preflight, engine, PKI, configs, wait until Ready",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Proxy = config.ProxyFromEnv(os.Getenv)
			if bundleFile == "" {
				return install.Install(cmd.Context(), cmd.OutOrStdout(), opts)
			}
			exe, err := bundle.Install(bundleFile, version.SigningKey, binDir)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "==> The bundle's signature and checksums hold; installed %s\n", exe)
			// The bundle's cameleer installs itself: it may be another version.
			return syscall.Exec(exe, append([]string{exe, "install"}, opts.Args()...), os.Environ())
		},
	}
	f := cmd.Flags()
	f.StringVar(&bundleFile, "bundle", "", "install from this air-gapped bundle, checked against the signing key baked into this binary (docs/install.md)")
	f.StringVar(&binDir, "bin-dir", "/usr/local/bin", "where --bundle puts cameleer")
	f.StringVar(&opts.DataDir, "data-dir", defaultDataDir(), dataDirUsage)
	f.StringVar(&opts.NodeIP, "node-ip", "", "the node's IPv4 address (default: that of the default route)")
	f.StringVar(&opts.NodeName, "node-name", "", "the node's name in the cluster (default: the host's name)")
	f.IntVar(&opts.HTTPPort, "http-port", 0, fmt.Sprintf("host port of HTTP ingress (default %d)", config.DefaultHTTPPort))
	f.IntVar(&opts.HTTPSPort, "https-port", 0, fmt.Sprintf("host port of HTTPS ingress (default %d)", config.DefaultHTTPSPort))
	f.StringVar(&opts.AppsDomain, "apps-domain", "", "DNS suffix apps are routed under: APP.ENV.TENANT.DOMAIN (default localhost)")
	f.BoolVar(&opts.NoStart, "no-start", false, "install only; start later with `cameleer run`")
	f.DurationVar(&opts.Timeout, "timeout", 5*time.Minute, "how long to wait for the node to be Ready")
	f.StringVar(&opts.CABundle, "ca-bundle", "", "PEM file of CAs to trust beside the system's (an intercepting proxy's); HTTPS_PROXY, HTTP_PROXY and NO_PROXY are taken from the environment")
	return cmd
}

func newResetCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Remove the node from this host: processes, mounts, iptables chains, links, cgroups and the data dir",
		Args:  cobra.NoArgs,
	}
	dataDir := dataDirFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
		if err := reset.Reset(cmd.Context(), log, *dataDir); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Removed the node of %s.\n", *dataDir)
		return nil
	}
	return cmd
}

func newTokenCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Register this runner with a control plane"}
	redeem := &cobra.Command{
		Use:   "redeem TOKEN",
		Short: "Redeem a one-time token: pin the control plane's CA, make a key here, get a client certificate",
		Args:  cobra.ExactArgs(1),
	}
	dataDir := dataDirFlag(redeem)
	cp := redeem.Flags().String("control-plane", "", "https://HOST:PORT of the control plane (default: the URL in the token)")
	name := redeem.Flags().String("name", "", "name of this runner (default: chosen by the control plane)")
	redeem.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
		defer cancel()
		id, err := tunnelclient.Redeem(ctx, *dataDir, args[0], *cp, *name)
		if err != nil {
			return err
		}
		if id.Again {
			fmt.Fprintf(cmd.OutOrStdout(), "This token was redeemed here already: runner %s (%s) of tenant %s with %s.\n", id.Name, id.RunnerID, id.Tenant, id.URL)
			return nil
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Registered as runner %s (%s) of tenant %s with %s.\nStart it with: cameleer run --data-dir %s (or --no-engine for the tunnel only)\n",
			id.Name, id.RunnerID, id.Tenant, id.URL, *dataDir)
		return nil
	}
	cmd.AddCommand(redeem, newTokenCreateCommand(), newTokenListCommand(), newTokenRevokeCommand())
	return cmd
}

// clusterTokens are the join tokens of the controller of the data dir
// the command's flag names.
func clusterTokens(dataDir string) (join.Tokens, error) {
	c, err := config.Load(dataDir)
	if err != nil {
		return join.Tokens{}, err
	}
	return engine.Tokens(c)
}

func newTokenCreateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create --role worker",
		Short: "Make a join token on this controller: `cameleer join TOKEN` adds one node to its cluster",
		Args:  cobra.NoArgs,
	}
	dataDir := dataDirFlag(cmd)
	role := cmd.Flags().String("role", config.Worker, "the role of the node it adds: worker")
	ttl := cmd.Flags().Duration("ttl", 24*time.Hour, "how long it can be used")
	desc := cmd.Flags().String("description", "", "what it is for, shown by `cameleer token list`")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if *role != config.Worker {
			return fmt.Errorf("--role %s: this version adds workers (--role worker)", *role)
		}
		ts, err := clusterTokens(*dataDir)
		if err != nil {
			return err
		}
		tok, err := ts.Create(cmd.Context(), *role, *ttl, *desc, time.Now())
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		fmt.Fprintf(w, "%s\n\nToken %s adds one %s to this cluster until %s. On the new host, as root:\n  cameleer join %s\n",
			tok, tok.ID, *role, time.Now().Add(*ttl).UTC().Format(time.RFC3339), tok)
		// Where the host has no cameleer yet: the control plane serves
		// install.sh, which downloads this controller's.
		if id, err := tunnelclient.LoadIdentity(tunnelclient.IdentityDir(*dataDir)); err == nil {
			fmt.Fprintf(w, "or, with no cameleer there yet:\n  curl -sfL %s/install.sh | sh -s - --join %s\n", strings.TrimSuffix(id.URL, "/"), tok)
		}
		return nil
	}
	return cmd
}

func newTokenListCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List this cluster's join tokens: valid, used (by which node) or expired",
		Args:  cobra.NoArgs,
	}
	dataDir := dataDirFlag(cmd)
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ts, err := clusterTokens(*dataDir)
		if err != nil {
			return err
		}
		rs, err := ts.List(cmd.Context())
		if err != nil {
			return err
		}
		now := time.Now()
		return printOutput(cmd.OutOrStdout(), *output, rs, func(w io.Writer) error {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tROLE\tSTATE\tEXPIRES\tDESCRIPTION")
			for _, r := range rs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Role, r.State(now), join.DescribeExpiry(r, now), r.Description)
			}
			return tw.Flush()
		})
	}
	return cmd
}

func newTokenRevokeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a join token: it adds no node any more (nodes it added stay)",
		Args:  cobra.ExactArgs(1),
	}
	dataDir := dataDirFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ts, err := clusterTokens(*dataDir)
		if err != nil {
			return err
		}
		if err := ts.Revoke(cmd.Context(), args[0]); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Revoked token %s.\n", args[0])
		return nil
	}
	return cmd
}

func newJoinCommand() *cobra.Command {
	var opts install.Options
	cmd := &cobra.Command{
		Use:   "join TOKEN",
		Short: "Add this host to a cluster as a worker: preflight, the controller's CA checked against the token, certificates, engine, wait until Ready",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Join = args[0]
			opts.Proxy = config.ProxyFromEnv(os.Getenv)
			return install.Install(cmd.Context(), cmd.OutOrStdout(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.DataDir, "data-dir", defaultDataDir(), dataDirUsage)
	f.StringVar(&opts.NodeIP, "node-ip", "", "the node's IPv4 address, which the other nodes reach it on (default: that of the default route)")
	f.StringVar(&opts.NodeName, "node-name", "", "the node's name in the cluster (default: the host's name)")
	f.BoolVar(&opts.NoStart, "no-start", false, "join only; start later with `cameleer run`")
	f.DurationVar(&opts.Timeout, "timeout", 5*time.Minute, "how long to wait for the node to be Ready")
	return cmd
}

func newUpgradeCommand() *cobra.Command {
	opts := upgrade.Options{}
	cmd := &cobra.Command{
		Use:   "upgrade --binary FILE",
		Short: "Move the running node to another cameleer binary, and back by itself if it is not healthy on it in time",
		Args:  cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringVar(&opts.DataDir, "data-dir", defaultDataDir(), dataDirUsage)
	f.StringVar(&opts.Binary, "binary", "", "the cameleer binary to move to")
	f.DurationVar(&opts.Timeout, "timeout", 5*time.Minute, "how long the node has to be healthy on it before it is rolled back")
	cmd.MarkFlagRequired("binary")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		_, err := upgrade.Upgrade(cmd.Context(), cmd.OutOrStdout(), opts)
		return err
	}
	return cmd
}

func newSupportBundleCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "support-bundle",
		Short: "Collect versions, status, logs, config, the cluster's state and the host's facts into a tar.gz, secrets taken out",
		Args:  cobra.NoArgs,
	}
	dataDir := dataDirFlag(cmd)
	out := cmd.Flags().StringP("output", "o", "", "where to write it (default cameleer-support-HOST-TIME.tar.gz here; - for stdout)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		status := func(ctx context.Context) (any, error) {
			c, err := config.Load(*dataDir)
			if err != nil {
				return nil, err
			}
			return node.QueryStatus(ctx, c)
		}
		if *out == "-" {
			return supportbundle.Write(cmd.Context(), cmd.OutOrStdout(), *dataDir, status)
		}
		name := *out
		if name == "" {
			name = supportbundle.FileName(time.Now())
		}
		f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if err := supportbundle.Write(cmd.Context(), f, *dataDir, status); err != nil {
			f.Close()
			os.Remove(name)
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Wrote %s: secrets are taken out, but read it before you send it.\n", name)
		return nil
	}
	return cmd
}
