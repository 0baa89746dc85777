package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/host/agent"
)

// newDownCmd stops the jobs a stopped pier up (or pier host) left
// running on this machine: pier up leaves them serving when it exits, as
// a host agent's restart must, and a laptop user wants them gone.
func newDownCmd() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop the jobs a stopped pier up left running on this machine (they start again with the next pier up)",
		Long: `Stop every job that a pier up (or pier host) that has exited left running
on this machine: SIGTERM, then SIGKILL after each job's grace period. Their
formations are kept, so the next pier up starts them again; to stop an app
for good, scale it to zero (pier scale web=0) or destroy it. Refused while
pier up runs on the data directory: stop it first, or start it with
--stop-jobs to stop the jobs as it exits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			hostDir := filepath.Join(dataDir, "host")
			if _, err := os.Stat(filepath.Join(dataDir, "host.db")); err == nil {
				hostDir = dataDir // a pier host data directory
			}
			n, err := agent.StopJobs(cmd.Context(), hostDir)
			if errors.Is(err, agent.ErrAgentRunning) {
				return fmt.Errorf("pier is running on %s: stop it first (Ctrl-C), or run pier up --stop-jobs to stop the jobs as it exits", dataDir)
			}
			if err != nil {
				return err
			}
			fmt.Printf("Stopped %s; the next pier up starts them again\n", plural(n, "job", "jobs"))
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", defaultDataDir(), "pier up's data directory (env PIER_DATA_DIR)")
	return cmd
}
