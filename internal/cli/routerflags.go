package cli

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/logs"
	"github.com/pierpaas/pier/router"
	"github.com/pierpaas/pier/store"
)

// routerFlags configure the router role.
type routerFlags struct {
	httpPort, httpsPort int
	domain              string
	tcpPorts            string
	acmeEmail, acmeDir  string
	accessLog           string
}

func (f *routerFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.IntVar(&f.httpPort, "http-port", 8080, "the router's HTTP port, on every interface")
	fl.IntVar(&f.httpsPort, "https-port", 8443, "the router's HTTPS port, on every interface (0: no HTTPS)")
	fl.StringVar(&f.domain, "domain", "localhost", "cluster domain: an app with a web process answers at APP.DOMAIN")
	fl.StringVar(&f.tcpPorts, "tcp-ports", "20000-20999", `ports TCP routes may take, LOW-HIGH ("": no TCP routes)`)
	fl.StringVar(&f.acmeEmail, "acme-email", "", "contact for the ACME account of routes with --acme; using ACME accepts the CA's terms of service")
	fl.StringVar(&f.acmeDir, "acme-directory", router.LetsEncryptURL, "ACME directory URL (Let's Encrypt by default; its staging: "+router.LetsEncryptStagingURL+")")
	fl.StringVar(&f.accessLog, "access-log", "", `write a JSON line per request to this file ("-": stdout)`)
}

// tcpRange parses --tcp-ports; zeros turn TCP routes off.
func (f *routerFlags) tcpRange() ([2]int, error) {
	if f.tcpPorts == "" {
		return [2]int{}, nil
	}
	lo, hi, ok := strings.Cut(f.tcpPorts, "-")
	l, err1 := strconv.Atoi(lo)
	h, err2 := strconv.Atoi(hi)
	if !ok || err1 != nil || err2 != nil || l < 1 || h > 65535 || l > h {
		return [2]int{}, fmt.Errorf("--tcp-ports %q: want LOW-HIGH within 1-65535", f.tcpPorts)
	}
	return [2]int{l, h}, nil
}

// routerNode is what a router needs of the node it runs on: a store
// client, the node's credentials, its data directory and its metrics.
type routerNode struct {
	Client   *clientv3.Client
	Creds    *pki.Credentials
	DataDir  string
	Log      *slog.Logger
	Registry *prometheus.Registry
}

// config builds the router's configuration for a node; closers are to be
// called after the router is closed.
func (f *routerFlags) config(ctx context.Context, node routerNode) (router.ServerConfig, []io.Closer, error) {
	var closers []io.Closer
	cfg := router.ServerConfig{
		Client: node.Client, HTTPAddr: fmt.Sprintf(":%d", f.httpPort), Domain: f.domain,
		Log: node.Log, Registry: node.Registry,
	}
	ports, err := f.tcpRange()
	if err != nil {
		return cfg, nil, err
	}
	cfg.TCP = router.TCPConfig{PortLow: ports[0], PortHigh: ports[1]}
	key, err := stickyKey(ctx, node.Client)
	if err != nil {
		return cfg, nil, err
	}
	cfg.StickyKey = key
	switch f.accessLog {
	case "":
	case "-":
		cfg.AccessLog = os.Stdout
	default:
		w, err := os.OpenFile(f.accessLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return cfg, nil, err
		}
		cfg.AccessLog = w
		closers = append(closers, w)
	}
	// Access lines go to the apps' log streams too (pier logs).
	rl := logs.NewRouterLines(logs.RouterLinesConfig{Client: node.Client, TLS: node.Creds.ClientConfig(), Log: node.Log})
	closers = append(closers, rl)
	if cfg.AccessLog != nil {
		cfg.AccessLog = io.MultiWriter(cfg.AccessLog, rl)
	} else {
		cfg.AccessLog = rl
	}
	if f.httpsPort != 0 {
		cfg.HTTPSAddr = fmt.Sprintf(":%d", f.httpsPort)
		am, err := router.NewACME(router.ACMEConfig{DirectoryURL: f.acmeDir, Email: f.acmeEmail, Client: node.Client, Log: node.Log})
		if err != nil {
			return cfg, nil, err
		}
		cfg.ACME = am
		closers = append(closers, am)
	}
	return cfg, closers, nil
}

// stickyKey is the key that signs sticky-session cookies, made by the
// first router that needs it and kept in the store: every router of the
// cluster checks the others' cookies, and clients keep their backend
// across restarts.
func stickyKey(ctx context.Context, kv clientv3.KV) ([]byte, error) {
	return store.GetOrCreate(ctx, kv, store.RouterStickyKey, func() ([]byte, error) {
		b := make([]byte, 32)
		_, err := rand.Read(b)
		return b, err
	})
}
