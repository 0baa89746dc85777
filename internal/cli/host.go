package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/host/agent"
	"github.com/pierpaas/pier/internal/selfexec"
	"github.com/pierpaas/pier/upgrade"
)

type hostFlags struct {
	cfg       agent.Config
	join      string
	tags      []string
	portRange string
	verbose   bool
}

func (f *hostFlags) register(cmd *cobra.Command, withJoin bool) {
	fl := cmd.Flags()
	fl.StringVar(&f.cfg.ID, "id", "", "this host's id (default: the host name)")
	fl.StringVar(&f.cfg.AdvertiseIP, "host-ip", "127.0.0.1", "IP address jobs and the host API are reached at")
	fl.IntVar(&f.cfg.APIPort, "host-api-port", agent.DefaultAPIPort, "host API port")
	fl.StringArrayVar(&f.tags, "tag", nil, "host tag KEY=VALUE for placement constraints (repeatable)")
	fl.StringVar(&f.cfg.Runtime, "runtime", "runc", "container runtime: runc, or process (no isolation; development only)")
	fl.Int64Var(&f.cfg.CPUMillis, "cpu", 0, "CPU millicores offered to jobs (default: all cores)")
	fl.Int64Var(&f.cfg.MemoryMB, "memory", 0, "memory in MB offered to jobs (default: all memory)")
	fl.StringVar(&f.cfg.Network, "network", "", "job networking: job (a network namespace and address per job; the default with runc as root) or host (jobs share the host's network)")
	fl.StringVar(&f.cfg.JobNetwork, "job-network", api.DefaultJobNetwork, "the cluster's range of job addresses (the same on every node)")
	fl.BoolVar(&f.cfg.AllowHostNetwork, "allow-host-network", false, "run process types that ask for the host's network (host_network), giving up their isolation")
	fl.StringVar(&f.portRange, "port-range", fmt.Sprintf("%d-%d", agent.DefaultPortLow, agent.DefaultPortHigh), "host ports allocated to jobs")
	if withJoin {
		fl.StringVar(&f.cfg.DataDir, "data-dir", filepath.Join(defaultDataDir(), "host"), "directory for the host's state, jobs and credentials")
		fl.StringVar(&f.join, "join", "", "comma-separated API addresses (host:port) of servers, for the first start")
		fl.StringVar(&f.cfg.Token, "token", "", "host join token, for the first start (env PIER_JOIN_TOKEN)")
		fl.BoolVarP(&f.verbose, "verbose", "v", false, "debug logging")
	}
}

func (f *hostFlags) config() (agent.Config, error) {
	c := f.cfg
	c.Servers = splitList(f.join)
	if c.Token == "" {
		c.Token = envToken()
	}
	c.Version = Version
	c.Tags = map[string]string{}
	for _, t := range f.tags {
		k, v, ok := strings.Cut(t, "=")
		if !ok || k == "" {
			return c, fmt.Errorf("--tag %q: want KEY=VALUE", t)
		}
		c.Tags[k] = v
	}
	lo, hi, ok := strings.Cut(f.portRange, "-")
	low, err1 := strconv.Atoi(lo)
	high, err2 := strconv.Atoi(hi)
	if !ok || err1 != nil || err2 != nil {
		return c, fmt.Errorf("--port-range %q: want LOW-HIGH", f.portRange)
	}
	c.PortLow, c.PortHigh = low, high
	return c, nil
}

func newHostCmd() *cobra.Command {
	var f hostFlags
	cmd := &cobra.Command{
		Use:   "host",
		Short: "Run the host agent: run the jobs the schedulers assign to this machine",
		Long: `Run the host agent. On its first start it joins the cluster with a host
token (pier token on a server) and the address of a server; later starts
resume from the data directory and re-adopt the jobs that kept running.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			cfg.Log = daemonLogger(f.verbose)
			a, err := agent.Start(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			go (&upgrade.Follower{Client: a.Client, Creds: a.Creds, Kind: api.NodeHost, Name: cfg.ID, Version: Version,
				ReadyURL: "https://" + a.APIAddr() + "/readyz", Health: a.Health, Log: cfg.Log, Restart: selfexec.Request}).Run(cmd.Context())
			<-cmd.Context().Done()
			cfg.Log.Info("host agent stopping; jobs keep running")
			return a.Close()
		},
	}
	f.register(cmd, true)
	cmd.AddCommand(newHostAdminCmds()...) // ps, run, stop, signal, logs, status
	return cmd
}

func newShimCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "shim JOB-DIR",
		Short:  "Supervise one job (started by the host agent)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// The shim outlives the agent and ignores the signals meant for
			// it; it ends when its job does.
			ignoreTerminalSignals()
			return agent.RunShim(context.Background(), args[0], daemonLogger(false))
		},
	}
}
