package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/host/agent"
	"github.com/pierpaas/pier/internal/cliconfig"
	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/internal/selfexec"
	"github.com/pierpaas/pier/internal/server"
	"github.com/pierpaas/pier/router"
)

func newUpCmd() *cobra.Command {
	var (
		sf          serverFlags
		hf          hostFlags
		rf          routerFlags
		clusterName string
		stopJobs    bool
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a whole single-node pier in the foreground with the embedded defaults",
		Long: `Run a single-node pier in one process: the server role with its embedded
etcd (the store), the controller API, scheduler, deployer, git receiver and
log aggregator; the router; and a host agent that runs jobs on this machine.
Re-running it on the same data directory resumes every piece of state.

When it stops (Ctrl-C), the apps' jobs keep running, and the next pier up
re-adopts them; with --stop-jobs it stops them first (SIGTERM, then SIGKILL
after each job's grace period), and pier down does the same afterwards.
Either way their formations are kept: the next pier up starts them again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			scfg := sf.config()
			hcfg, err := hf.config()
			if err != nil {
				return err
			}
			if rf.domain != "" {
				scfg.AppURL = appURLFormat(rf.domain, rf.httpPort)
			}
			if scfg.TCPPortRange, err = rf.tcpRange(); err != nil {
				return err
			}
			srv, err := server.Start(ctx, scfg)
			if err != nil {
				return err
			}
			defer srv.Close()
			rcfg, closers, err := rf.config(ctx, routerNode{Client: srv.Client, Creds: srv.Creds, DataDir: scfg.DataDir, Log: scfg.Log, Registry: scfg.Registry})
			for _, c := range closers {
				defer c.Close()
			}
			if err != nil {
				return fmt.Errorf("router: %w", err)
			}
			rt, err := router.Start(ctx, rcfg)
			if err != nil {
				return fmt.Errorf("router: %w", err)
			}
			defer rt.Close()
			hcfg.DataDir = filepath.Join(scfg.DataDir, "host")
			hcfg.Servers = []string{srv.Addr()}
			hcfg.Token = srv.HostToken.String()
			hcfg.Log = scfg.Log
			if hcfg.ID == "" {
				hcfg.ID = srv.Name()
			}
			hcfg.Disk = srv.Disk // the same disk: one guard, one reserve
			a, err := agent.Start(ctx, hcfg)
			if err != nil {
				return fmt.Errorf("host agent: %w", err)
			}
			// Run after the agent has closed (defers run last first), so
			// that nothing starts the stopped jobs again.
			defer func() {
				if ctx.Err() != nil {
					stopUpJobs(hcfg.DataDir, stopJobs)
				}
			}()
			defer a.Close()
			go srv.RunUpgrades(ctx, api.NodeUp, Version, selfexec.Request)
			cfgPath, err := saveUpCluster(clusterName, srv, scfg)
			if err != nil {
				// Every role runs and serves: a CLI config that cannot be
				// written (its disk is full) is no reason to stop them.
				// The one a previous start wrote still works.
				scfg.Log.Warn("cannot write the CLI's config", "err", err)
			}
			fmt.Printf("pier is up\n  API:     https://%s (cluster %q in %s)\n  web:     https://%s/ (pier dashboard signs a browser in)\n  apps:    %s\n  data:    %s\n",
				srv.Addr(), clusterName, cfgPath, srv.Addr(), strings.ReplaceAll(scfg.AppURL, "{app}", "APP"), scfg.DataDir)
			select {
			case <-ctx.Done():
				scfg.Log.Info("shutting down")
			case <-srv.Done():
				return fmt.Errorf("server stopped")
			case <-rt.Done():
				return fmt.Errorf("router stopped: %w", rt.Err())
			}
			return nil
		},
	}
	sf.register(cmd)
	hf.register(cmd, false)
	rf.register(cmd)
	cmd.Flags().StringVar(&clusterName, "cluster-name", "local", "the name this cluster gets in the CLI's config")
	cmd.Flags().BoolVar(&stopJobs, "stop-jobs", false, "on exit, stop the apps' jobs too (they start again with the next pier up)")
	return cmd
}

// stopUpJobs says, as pier up exits, what becomes of the apps' jobs, and
// stops them if asked.
func stopUpJobs(hostDir string, stop bool) {
	if !stop {
		fmt.Fprintln(os.Stderr, "pier up stopped; the apps' jobs keep running (the next pier up re-adopts them; pier down stops them)")
		return
	}
	fmt.Fprintln(os.Stderr, "pier up stopping the apps' jobs…")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := agent.StopJobs(ctx, hostDir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pier up: stopping jobs: %v; pier down stops the rest\n", err)
		return
	}
	fmt.Fprintf(os.Stderr, "pier up stopped, and %s; the next pier up starts them again\n", plural(n, "job", "jobs"))
}

// appURLFormat is the URL of an app's web process through the router,
// with {app} in place of the app's name.
func appURLFormat(domain string, port int) string {
	if port == 80 {
		return "http://{app}." + domain
	}
	return fmt.Sprintf("http://{app}.%s:%d", domain, port)
}

// saveUpCluster writes the cluster into the CLI's config and makes it the
// default, so every pier command works as soon as `pier up` is. The key
// is the one the server made when it created the cluster.
func saveUpCluster(name string, srv *server.Server, scfg server.Config) (string, error) {
	key := srv.AdminKey
	if key == "" {
		return "", fmt.Errorf("no API key for the CLI: %s is missing", scfg.AdminKeyPath())
	}
	caPEM, err := os.ReadFile(filepath.Join(server.PKIDir(scfg.DataDir), pki.CACertFile))
	if err != nil {
		return "", err
	}
	path, err := cliconfig.DefaultPath()
	if err != nil {
		return "", err
	}
	cfg, err := cliconfig.Load(path)
	if err != nil {
		return "", err
	}
	if err := cfg.Add(cliconfig.Cluster{Name: name, URL: "https://" + srv.Addr(), Key: key, CAPEM: string(caPEM)}, true); err != nil {
		return "", err
	}
	return path, cfg.Save(path)
}

func envToken() string { return os.Getenv("PIER_JOIN_TOKEN") }
