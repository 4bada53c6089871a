// Command cameleer is the Cameleer runner appliance: one binary that turns a
// Linux host into a managed Apache Camel runtime. This package only wires
// commands; the work is done in the appliance packages.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "cameleer:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "cameleer",
		Short:         "Turn this Linux host into a managed Apache Camel runtime",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newVersionCommand(), newRunCommand(), newStatusCommand(), newKubectlCommand(), newCtrCommand(), newInstallCommand(), newResetCommand(), newTokenCommand(), newSupportBundleCommand(), newUpgradeCommand(), newJoinCommand())
	return root
}
