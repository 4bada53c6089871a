package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/cameleer/cameleer/appliance/nodetool"
)

func newKubectlCommand() *cobra.Command { return newToolCommand(nodetool.Kubectl()) }
func newCtrCommand() *cobra.Command     { return newToolCommand(nodetool.Ctr()) }

// newToolCommand runs t: every argument but --data-dir goes to the tool.
func newToolCommand(t nodetool.Tool) *cobra.Command {
	return &cobra.Command{
		Use:                t.Name + " [--data-dir DIR] [args...]",
		Short:              t.Short + " (data dir: --data-dir, else $" + dataDirEnv + ")",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			call, err := t.ParseArgs(args)
			if err != nil {
				return err
			}
			if call.DataDir == "" {
				call.DataDir = defaultDataDir()
			}
			code, err := t.Run(cmd.Context(), call)
			if err != nil {
				return err
			}
			if code != 0 {
				os.Exit(code)
			}
			return nil
		},
	}
}
