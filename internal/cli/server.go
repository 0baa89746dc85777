package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/host/overlay"
	"github.com/pierpaas/pier/internal/daemon"
	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/internal/selfexec"
	"github.com/pierpaas/pier/internal/server"
)

type serverFlags struct {
	cfg     server.Config
	join    string
	etcd    string
	verbose bool
}

func (f *serverFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.cfg.DataDir, "data-dir", defaultDataDir(), "directory for etcd data and credentials (env PIER_DATA_DIR)")
	fl.StringVar(&f.cfg.Name, "name", "", "this server's name (default: the host name)")
	fl.StringVar(&f.cfg.AdvertiseIP, "advertise-ip", "127.0.0.1", "IP address other nodes reach this server at; ports bind to it")
	fl.IntVar(&f.cfg.ClientPort, "etcd-client-port", server.DefaultClientPort, "etcd client port")
	fl.IntVar(&f.cfg.PeerPort, "etcd-peer-port", server.DefaultPeerPort, "etcd peer port")
	fl.IntVar(&f.cfg.APIPort, "api-port", server.DefaultAPIPort, "API port (join, health, metrics)")
	fl.IntVar(&f.cfg.DNSPort, "dns-port", server.DefaultDNSPort, "discovery DNS port (UDP and TCP)")
	fl.IntVar(&f.cfg.GitSSHPort, "git-ssh-port", server.DefaultGitSSHPort, "port for git push over SSH (0: off; HTTPS pushes use the API port)")
	fl.StringVar(&f.join, "join", "", "comma-separated API addresses (host:port) of existing servers to join")
	fl.StringVar(&f.cfg.Token, "token", "", "server join token of the cluster to join (env PIER_JOIN_TOKEN)")
	fl.StringVar(&f.etcd, "etcd-endpoints", "", "comma-separated client URLs of an external etcd cluster instead of an embedded member")
	fl.StringVar(&f.cfg.EtcdCA, "etcd-ca", "", "CA file for an external etcd's server certificate")
	fl.StringVar(&f.cfg.EtcdLogLevel, "etcd-log-level", "error", "etcd's own log level")
	fl.Int64Var(&f.cfg.DiskLow, "disk-low", 0, "free bytes on the data disk below which it is under pressure: the store takes no writes, builds and new jobs are refused (default 5% of the disk, 64 MiB to 1 GiB)")
	fl.Int64Var(&f.cfg.DiskReserve, "disk-reserve", 0, "bytes kept in a reserve file on the data disk, given back under pressure (default 64 MiB; negative: none)")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "debug logging")
	fl.StringVar(&f.cfg.Restore, "restore", "", "restore the cluster from a backup FILE into the (empty) data directory first; routes move to --domain (pier up)")
}

func (f *serverFlags) config() server.Config {
	c := f.cfg
	c.Join = splitList(f.join)
	c.EtcdEndpoints = splitList(f.etcd)
	if c.Token == "" {
		c.Token = envToken()
	}
	c.Log = daemonLogger(f.verbose)
	c.Registry = daemon.NewRegistry()
	return c
}

func newServerCmd() *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the server role: etcd member, join endpoint, discovery DNS",
		Long: `Run the server role. The first server creates the cluster; start more with
--join ADDR --token TOKEN, where TOKEN is printed by 'pier token --role server'
on an existing server.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServer(cmd, f.config())
		},
	}
	f.register(cmd)
	return cmd
}

func runServer(cmd *cobra.Command, cfg server.Config) error {
	ctx := cmd.Context()
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	// Servers reach resources' members at their jobs' addresses.
	if _, err := overlay.Join(ctx, srv.Client, srv.Name(), cfg.AdvertiseIP, api.DefaultJobNetwork, cfg.Log); err != nil {
		return fmt.Errorf("server: overlay: %w", err)
	}
	go srv.RunUpgrades(ctx, api.NodeServer, Version, selfexec.Request)
	select {
	case <-ctx.Done():
		cfg.Log.Info("shutting down")
	case <-srv.Done():
		return fmt.Errorf("server stopped")
	}
	return nil
}

func newTokenCmd() *cobra.Command {
	var dataDir, role string
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Print the join token of the cluster this server belongs to",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srvTok, hostTok, err := server.Tokens(dataDir)
			if err != nil {
				return err
			}
			switch role {
			case pki.RoleServer:
				fmt.Fprintln(cmd.OutOrStdout(), srvTok)
			case pki.RoleHost:
				fmt.Fprintln(cmd.OutOrStdout(), hostTok)
			default:
				return fmt.Errorf("--role must be %q or %q", pki.RoleServer, pki.RoleHost)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", defaultDataDir(), "the server's data directory")
	cmd.Flags().StringVar(&role, "role", pki.RoleHost, "token for joining as: host or server")
	return cmd
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
