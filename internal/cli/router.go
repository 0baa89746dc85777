package cli

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/host/overlay"
	"github.com/pierpaas/pier/internal/daemon"
	"github.com/pierpaas/pier/internal/join"
	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/internal/selfexec"
	"github.com/pierpaas/pier/router"
	"github.com/pierpaas/pier/store"
	"github.com/pierpaas/pier/upgrade"
)

// DefaultRouterOpsPort serves a standalone router's /livez, /readyz and
// /metrics.
const DefaultRouterOpsPort = 7600

func newRouterCmd() *cobra.Command {
	var (
		rf                routerFlags
		dataDir, name, ip string
		joinAddrs, token  string
		opsPort           int
		verbose           bool
	)
	cmd := &cobra.Command{
		Use:   "router",
		Short: "Run the router role: HTTP, HTTPS and TCP ingress for the cluster's apps",
		Long: `Run a router on an ingress node. On its first start it joins the cluster
with a host token (pier token on a server), as a host does; later starts
resume from the data directory. Routes and backends come from the cluster's
store and discovery; several routers can serve one cluster. /livez, /readyz
and /metrics are served on --ops-port.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := daemonLogger(verbose)
			if name == "" {
				h, _ := os.Hostname()
				name = strings.Trim(strings.ToLower(strings.Split(h, ".")[0]), "-")
			}
			if !api.ValidID(name) {
				return fmt.Errorf("--name %q: lower-case letters, digits and dashes", name)
			}
			if token == "" {
				token = envToken()
			}
			pkiDir := filepath.Join(dataDir, "pki")
			eps, err := join.Joined(ctx, join.Node{Name: name, IPs: []string{ip}, PKIDir: pkiDir,
				StateFile: filepath.Join(dataDir, "router.json"), Servers: splitList(joinAddrs), Token: token})
			if err != nil {
				return fmt.Errorf("router: %w", err)
			}
			creds, err := pki.LoadCredentials(pkiDir)
			if err != nil {
				return err
			}
			client, err := store.Dial(eps, creds)
			if err != nil {
				return err
			}
			defer client.Close()
			// Backends are jobs' own addresses, on other nodes.
			if _, err := overlay.Join(ctx, client, name, ip, api.DefaultJobNetwork, log); err != nil {
				return fmt.Errorf("router: overlay: %w", err)
			}
			reg := daemon.NewRegistry()
			health := &daemon.Health{}
			health.AddReadyCheck("etcd", func(ctx context.Context) error {
				_, err := client.Get(ctx, "/pier/ready-probe")
				return err
			})
			rcfg, closers, err := rf.config(ctx, routerNode{Client: client, Creds: creds, DataDir: dataDir, Log: log, Registry: reg})
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
			// The ops port opens once the router serves, so /readyz
			// answering means traffic can be sent here.
			opsLn, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(opsPort)))
			if err != nil {
				return fmt.Errorf("router: ops listener: %w", err)
			}
			ops := &http.Server{Handler: health.Handler(reg), ReadHeaderTimeout: 10 * time.Second}
			go ops.Serve(opsLn)
			defer ops.Close()
			go (&upgrade.Follower{Client: client, Creds: creds, Kind: api.NodeRouter, Name: name, Version: Version,
				ReadyURL: "http://" + opsLn.Addr().String() + "/readyz", Health: health, Log: log, Restart: selfexec.Request}).Run(ctx)
			log.Info("router ready", "name", name, "http", rcfg.HTTPAddr, "https", rcfg.HTTPSAddr, "ops", opsLn.Addr().String())
			select {
			case <-ctx.Done():
				return nil
			case <-rt.Done():
				return fmt.Errorf("router stopped: %w", rt.Err())
			}
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dataDir, "data-dir", filepath.Join(defaultDataDir(), "router"), "directory for the router's credentials and keys")
	fl.StringVar(&name, "name", "", "this router's name (default: the host name)")
	fl.StringVar(&ip, "advertise-ip", "127.0.0.1", "this node's IP address (its certificate names it; the ops port binds to it)")
	fl.StringVar(&joinAddrs, "join", "", "comma-separated API addresses (host:port) of servers, for the first start")
	fl.StringVar(&token, "token", "", "host join token, for the first start (env PIER_JOIN_TOKEN)")
	fl.IntVar(&opsPort, "ops-port", DefaultRouterOpsPort, "port of /livez, /readyz and /metrics")
	fl.BoolVarP(&verbose, "verbose", "v", false, "debug logging")
	rf.register(cmd)
	return cmd
}
