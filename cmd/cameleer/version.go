package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/cameleer/cameleer/appliance/payload"
	"github.com/cameleer/cameleer/version"
)

type versionInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Go      string `json:"go"`
	// SigningKey is the public key air-gapped bundles are checked against.
	SigningKey string `json:"signingKey"`
	// Payload is the engine carried by this binary; absent for a binary built
	// without make.
	Payload *payloadInfo `json:"payload"`
}

type payloadInfo struct {
	SHA256 string         `json:"sha256"`
	Size   int64          `json:"size"`
	Parts  []payload.Part `json:"parts"`
}

func newVersionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of cameleer and of every part of the engine it carries",
		Args:  cobra.NoArgs,
	}
	output := outputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		info := versionInfo{Version: version.Version, Commit: version.Commit, Go: version.GoVersion(), SigningKey: version.SigningKey}
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find own executable: %w", err)
		}
		p, err := payload.Open(exe)
		switch {
		case errors.Is(err, payload.ErrNoPayload):
		case err != nil:
			return err
		default:
			defer p.Close()
			info.Payload = &payloadInfo{SHA256: p.Manifest.SHA256, Size: p.Size(), Parts: p.Manifest.Parts}
		}
		return printOutput(cmd.OutOrStdout(), *output, info, func(w io.Writer) error {
			fmt.Fprintf(w, "cameleer %s (commit %s, %s)\n", info.Version, info.Commit, info.Go)
			if info.SigningKey == "" {
				fmt.Fprintln(w, "bundle signing key: none (this binary was built without make: it trusts no bundle)")
			} else {
				fmt.Fprintf(w, "bundle signing key: %s\n", info.SigningKey)
			}
			if info.Payload == nil {
				fmt.Fprintln(w, "engine: none (this binary was built without make)")
				return nil
			}
			fmt.Fprintf(w, "engine payload sha256:%s (%d MB)\n\n", info.Payload.SHA256, info.Payload.Size>>20)
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PART\tVERSION\tKIND\tDIGEST")
			for _, part := range info.Payload.Parts {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", part.Name, part.Version, part.Kind, part.Digest)
			}
			return tw.Flush()
		})
	}
	return cmd
}
