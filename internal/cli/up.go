package cli

import (
	"os"

	"github.com/spf13/cobra"
)

func newUpCmd() *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a whole single-node pier in the foreground with the embedded defaults",
		Long: `Run a single-node pier in one process: today the server role with its
embedded etcd; the host agent, scheduler, controller and router join it as
they land. Re-running it on the same data directory resumes every piece of
state.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServer(cmd, f.config())
		},
	}
	f.register(cmd)
	return cmd
}

func envToken() string { return os.Getenv("PIER_JOIN_TOKEN") }
