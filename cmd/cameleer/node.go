package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cameleer/cameleer/appliance/config"
	"github.com/cameleer/cameleer/appliance/install"
	"github.com/cameleer/cameleer/appliance/node"
	"github.com/cameleer/cameleer/appliance/reset"
	"github.com/cameleer/cameleer/appliance/tunnelclient"
)

func dataDirFlag(cmd *cobra.Command) *string {
	return cmd.Flags().String("data-dir", config.DefaultDataDir, "where the node keeps everything")
}

func newRunCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the node in the foreground: supervise the engine until SIGTERM or SIGINT",
		Args:  cobra.NoArgs,
	}
	dataDir := dataDirFlag(cmd)
	noEngine := cmd.Flags().Bool("no-engine", false, "run only the tunnel to the control plane and the local API, no Kubernetes")
	orch := cmd.Flags().String("orchestrator", "kubernetes", "what runs the apps: kubernetes (the embedded engine) or docker (this host's Docker Engine)")
	socket := cmd.Flags().String("docker-socket", "/var/run/docker.sock", "with --orchestrator docker: the Docker Engine's API socket")
	httpPort := cmd.Flags().Int("http-port", config.DefaultHTTPPort, "with --orchestrator docker: the port Traefik serves apps on")
	appsDomain := cmd.Flags().String("apps-domain", config.DefaultAppsDomain, "with --orchestrator docker: DNS suffix apps are routed under: APP.ENV.TENANT.DOMAIN")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
		switch {
		case *noEngine:
			return node.RunNoEngine(ctx, log, *dataDir)
		case *orch == "docker":
			c, err := config.Default(*dataDir)
			if err != nil {
				return err
			}
			c.HTTPPort, c.AppsDomain = *httpPort, *appsDomain
			return node.RunDocker(ctx, log, c, node.DockerOptions{Socket: *socket})
		case *orch != "kubernetes":
			return fmt.Errorf("--orchestrator %q: use kubernetes or docker", *orch)
		}
		c, err := config.Load(*dataDir)
		if err != nil {
			return err
		}
		return node.Run(ctx, log, c)
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
			node := "unknown (apiserver not answering)"
			if st.Node != nil {
				node = st.Node.Status
				if st.Node.Reason != "" {
					node += " (" + st.Node.Reason + ")"
				}
			}
			fmt.Fprintf(w, "node %s: Ready=%s, cameleer run pid %d since %s\n", c.NodeName, node, st.PID, st.Since.Format(time.RFC3339))
			fmt.Fprintf(w, "control plane: %s\n\n", controlPlaneLine(st.ControlPlane))
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
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

// newToolCommand runs a tool of the payload (kubectl, ctr) against this
// node: everything after the command name goes to the tool.
func newToolCommand(tool, short string, args func(config.Config) []string, env func(config.Config) []string) *cobra.Command {
	return &cobra.Command{
		Use:                tool + " [args...]",
		Short:              short,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, rest []string) error {
			dataDir := config.DefaultDataDir
			if v := os.Getenv("CAMELEER_DATA_DIR"); v != "" {
				dataDir = v
			}
			c, err := config.Load(dataDir)
			if err != nil {
				return err
			}
			bin := c.Path("bin", "current", "bin", tool)
			if _, err := os.Stat(bin); err != nil {
				return fmt.Errorf("%s is not extracted under %s: run `cameleer install`", tool, filepath.Dir(bin))
			}
			x := exec.CommandContext(cmd.Context(), bin, append(args(c), rest...)...)
			x.Stdin, x.Stdout, x.Stderr = os.Stdin, os.Stdout, os.Stderr
			x.Env = append(os.Environ(), env(c)...)
			if err := x.Run(); err != nil {
				if ee, ok := err.(*exec.ExitError); ok {
					os.Exit(ee.ExitCode())
				}
				return err
			}
			return nil
		},
	}
}

func newKubectlCommand() *cobra.Command {
	return newToolCommand("kubectl", "Run kubectl against this node as cluster admin (data dir: $CAMELEER_DATA_DIR)",
		func(config.Config) []string { return nil },
		func(c config.Config) []string { return []string{"KUBECONFIG=" + c.AdminKubeconfig()} })
}

func newCtrCommand() *cobra.Command {
	return newToolCommand("ctr", "Run containerd's ctr against this node's containerd, namespace k8s.io (data dir: $CAMELEER_DATA_DIR)",
		func(c config.Config) []string {
			return []string{"--address", c.ContainerdSocket(), "--namespace", "k8s.io"}
		},
		func(config.Config) []string { return nil })
}

func newInstallCommand() *cobra.Command {
	var opts install.Options
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install the node on this host and start it: preflight, engine, PKI, configs, wait until Ready",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return install.Install(cmd.Context(), cmd.OutOrStdout(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.DataDir, "data-dir", config.DefaultDataDir, "where the node keeps everything")
	f.StringVar(&opts.NodeIP, "node-ip", "", "the node's IPv4 address (default: that of the default route)")
	f.IntVar(&opts.HTTPPort, "http-port", 0, fmt.Sprintf("host port of HTTP ingress (default %d)", config.DefaultHTTPPort))
	f.IntVar(&opts.HTTPSPort, "https-port", 0, fmt.Sprintf("host port of HTTPS ingress (default %d)", config.DefaultHTTPSPort))
	f.StringVar(&opts.AppsDomain, "apps-domain", "", "DNS suffix apps are routed under: APP.ENV.TENANT.DOMAIN (default localhost)")
	f.BoolVar(&opts.NoStart, "no-start", false, "install only; start later with `cameleer run`")
	f.DurationVar(&opts.Timeout, "timeout", 5*time.Minute, "how long to wait for the node to be Ready")
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
		fmt.Fprintf(cmd.OutOrStdout(), "Registered as runner %s (%s) of tenant %s with %s.\nStart it with: cameleer run --data-dir %s (or --no-engine for the tunnel only)\n",
			id.Name, id.RunnerID, id.Tenant, id.URL, *dataDir)
		return nil
	}
	cmd.AddCommand(redeem)
	return cmd
}

// controlPlaneLine says in a line how the node stands with its control
// plane.
func controlPlaneLine(cp *node.TunnelStatus) string {
	switch {
	case cp != nil && !cp.Registered && cp.LastError != "":
		return "registration unreadable: " + cp.LastError
	case cp == nil || !cp.Registered:
		return "not registered (cameleer token redeem)"
	case cp.Connected:
		return fmt.Sprintf("%s, connected since %s as runner %s", cp.URL, cp.Since.Format(time.RFC3339), cp.RunnerID)
	case cp.LastError != "":
		return fmt.Sprintf("%s, not connected: %s", cp.URL, cp.LastError)
	default:
		return fmt.Sprintf("%s, connecting", cp.URL)
	}
}
