package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/host/agent"
	"github.com/pierpaas/pier/internal/server"
)

func newUpCmd() *cobra.Command {
	var (
		sf serverFlags
		hf hostFlags
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a whole single-node pier in the foreground with the embedded defaults",
		Long: `Run a single-node pier in one process: the server role with its embedded
etcd, and a host agent that runs jobs on this machine. The scheduler,
controller and router join it as they land. Re-running it on the same data
directory resumes every piece of state, and jobs left running by the
previous run are re-adopted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			scfg := sf.config()
			hcfg, err := hf.config()
			if err != nil {
				return err
			}
			srv, err := server.Start(ctx, scfg)
			if err != nil {
				return err
			}
			defer srv.Close()
			hcfg.DataDir = filepath.Join(scfg.DataDir, "host")
			hcfg.Servers = []string{srv.Addr()}
			hcfg.Token = srv.HostToken.String()
			hcfg.Log = scfg.Log
			if hcfg.ID == "" {
				hcfg.ID = srv.Name()
			}
			a, err := agent.Start(ctx, hcfg)
			if err != nil {
				return fmt.Errorf("host agent: %w", err)
			}
			defer a.Close()
			select {
			case <-ctx.Done():
				scfg.Log.Info("shutting down; jobs keep running and are re-adopted on the next start")
			case <-srv.Done():
				return fmt.Errorf("server stopped")
			}
			return nil
		},
	}
	sf.register(cmd)
	hf.register(cmd, false)
	return cmd
}

func envToken() string { return os.Getenv("PIER_JOIN_TOKEN") }
