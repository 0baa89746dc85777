package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/internal/cliconfig"
	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/internal/server"
	"github.com/pierpaas/pier/store"
)

// appDomain is the cluster domain the routers serve apps under.
const appDomain = "e2e.test"

// cluster is three servers, three hosts and two routers, each a node.
type cluster struct {
	servers, hosts, routers []*node
	serverToken, hostToken  string
	adminKey                string
	caPEM                   string
	// etcd is the test's own client, with the first server's credentials,
	// for what the API does not show: leaders and members.
	etcd *clientv3.Client
	// lb is the load balancer in front of the routers.
	lb *balancer
	// domain is the cluster domain its routers serve apps under
	// (appDomain unless restored under another).
	domain string
}

// clusterOptions make a cluster that is not the shared one's kind.
type clusterOptions struct {
	// restore is a cluster backup the first server is restored from
	// (pier cluster restore), under the cluster domain domain.
	restore, domain string
}

func (c *cluster) nodes() []*node {
	return append(append(append([]*node{}, c.servers...), c.hosts...), c.routers...)
}

func (c *cluster) node(name string) *node {
	for _, n := range c.nodes() {
		if n.name == name {
			return n
		}
	}
	return nil
}

func (c *cluster) serverAPIs() []string {
	var out []string
	for _, s := range c.servers {
		out = append(out, s.ip+":7300")
	}
	return out
}

func (c *cluster) etcdEndpoints() []string {
	var out []string
	for _, s := range c.servers {
		out = append(out, fmt.Sprintf("https://%s:%d", s.ip, server.DefaultClientPort))
	}
	return out
}

func (c *cluster) serverIPs() []string {
	var out []string
	for _, s := range c.servers {
		out = append(out, s.ip)
	}
	return out
}

// The one cluster the scenarios share: made by the first scenario that
// asks, torn down by TestMain. Sharing it keeps the suite to minutes; each
// scenario restores it (every daemon running, no partition) first and
// removes its own apps last.
var (
	sharedMu  sync.Mutex
	shared    *cluster
	sharedErr error
)

func getCluster(t *testing.T) *cluster {
	t.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil && sharedErr == nil {
		begin := time.Now()
		shared, sharedErr = newCluster()
		if sharedErr == nil {
			t.Logf("cluster of %d nodes up in %s", len(shared.nodes()), time.Since(begin).Round(time.Millisecond))
		}
	}
	if sharedErr != nil {
		t.Fatalf("cluster: %v", sharedErr)
	}
	if err := shared.restore(); err != nil {
		t.Fatalf("restoring the cluster: %v", err)
	}
	return shared
}

// newCluster makes the namespaces and starts every daemon: the first
// server creates the cluster, the other two join it one at a time (etcd
// admits one learner at a time), then the hosts and the routers join with
// the host token.
func newCluster() (_ *cluster, err error) {
	return newClusterWith(clusterOptions{})
}

// newClusterWith is newCluster as opts say.
func newClusterWith(opts clusterOptions) (_ *cluster, err error) {
	if err := os.MkdirAll(baseDir, 0o755); err != nil {
		return nil, err
	}
	if err := setupBridge(); err != nil {
		return nil, err
	}
	c := &cluster{domain: appDomain}
	if opts.domain != "" {
		c.domain = opts.domain
	}
	mk := func(role, name, ip string) *node {
		n := &node{name: name, role: role, ns: namePrefix + "-" + name, ip: ip, dir: filepath.Join(baseDir, name)}
		return n
	}
	for i := 1; i <= 3; i++ {
		c.servers = append(c.servers, mk("server", fmt.Sprintf("s%d", i), fmt.Sprintf("%s%d", subnetPrefix, 10+i)))
		c.hosts = append(c.hosts, mk("host", fmt.Sprintf("h%d", i), fmt.Sprintf("%s%d", subnetPrefix, 20+i)))
	}
	for i := 1; i <= 2; i++ {
		c.routers = append(c.routers, mk("router", fmt.Sprintf("r%d", i), fmt.Sprintf("%s%d", subnetPrefix, 30+i)))
	}
	for _, n := range c.nodes() {
		if n.name == diskHost {
			if err := mountSmallDisk(n.dir); err != nil {
				return nil, err
			}
		}
		if err := os.MkdirAll(n.dataDir(), 0o755); err != nil {
			return nil, err
		}
		// Each machine has its binary of its own, which an upgrade
		// replaces.
		if err := copyFile(pierBin, n.bin(), 0o755); err != nil {
			return nil, err
		}
		if err := addNetns(n.ns, n.ip); err != nil {
			return nil, err
		}
	}
	for i, s := range c.servers {
		s := s
		first := i == 0
		s.argv = func() []string {
			a := []string{s.bin(), "server", "--data-dir", s.dataDir(), "--name", s.name, "--advertise-ip", s.ip}
			if !first {
				a = append(a, "--join", strings.Join(c.serverAPIs()[:1], ","), "--token", c.serverToken)
			}
			return a
		}
		if first && opts.restore != "" {
			argv := []string{pierBin, "cluster", "restore", opts.restore, "--data-dir", s.dataDir(), "--domain", c.domain}
			if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
				return c, fmt.Errorf("pier cluster restore: %v\n%s", err, out)
			}
		}
		if err := s.start(); err != nil {
			return c, err
		}
		if err := s.waitReady(60 * time.Second); err != nil {
			return c, err
		}
		if first {
			if err := c.readCredentials(); err != nil {
				return c, err
			}
		}
	}
	c.lb = &balancer{}
	for _, h := range c.hosts {
		h := h
		h.argv = func() []string {
			return []string{h.bin(), "host", "--data-dir", h.dataDir(), "--id", h.name, "--host-ip", h.ip,
				"--join", strings.Join(c.serverAPIs(), ","), "--token", c.hostToken}
		}
		if err := h.start(); err != nil {
			return c, err
		}
	}
	for _, r := range c.routers {
		r := r
		r.argv = func() []string {
			return []string{r.bin(), "router", "--data-dir", r.dataDir(), "--name", r.name, "--advertise-ip", r.ip,
				"--join", strings.Join(c.serverAPIs(), ","), "--token", c.hostToken, "--domain", c.domain,
				"--http-port", strconv.Itoa(routerHTTPPort), "--https-port", "0", "--tcp-ports", ""}
		}
		if err := r.start(); err != nil {
			return c, err
		}
		c.lb.add(routerAddr(r))
	}
	for _, n := range append(c.hosts, c.routers...) {
		if err := n.waitReady(60 * time.Second); err != nil {
			return c, err
		}
	}
	creds, err := pki.LoadCredentials(server.PKIDir(c.servers[0].dataDir()))
	if err != nil {
		return c, err
	}
	if c.etcd, err = store.Dial(c.etcdEndpoints(), creds); err != nil {
		return c, err
	}
	return c, c.waitHosts(30 * time.Second)
}

// readCredentials takes the join tokens, the admin API key and the CA
// from the first server's data directory, as its operator would.
func (c *cluster) readCredentials() error {
	dir := c.servers[0].dataDir()
	for _, r := range []struct {
		role string
		dst  *string
	}{{pki.RoleServer, &c.serverToken}, {pki.RoleHost, &c.hostToken}} {
		out, err := exec.Command(pierBin, "token", "--role", r.role, "--data-dir", dir).Output()
		if err != nil {
			return fmt.Errorf("pier token --role %s: %w", r.role, err)
		}
		*r.dst = strings.TrimSpace(string(out))
	}
	key, err := os.ReadFile(filepath.Join(dir, "admin.key"))
	if err != nil {
		return err
	}
	c.adminKey = strings.TrimSpace(string(key))
	ca, err := os.ReadFile(filepath.Join(server.PKIDir(dir), pki.CACertFile))
	c.caPEM = string(ca)
	return err
}

// waitHosts waits until every host agent is registered in the store.
func (c *cluster) waitHosts(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := c.etcd.Get(ctx, store.HostsPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		cancel()
		missing := []string{}
		for _, h := range c.hosts {
			found := false
			if err == nil {
				for _, kv := range resp.Kvs {
					found = found || string(kv.Key) == store.HostsPrefix+h.name
				}
			}
			if !found {
				missing = append(missing, h.name)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("hosts %v not registered after %s (err %v)", missing, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// restore brings the cluster back to health between scenarios: no
// partition, every daemon running and ready, every router in rotation.
func (c *cluster) restore() error {
	for _, h := range c.hosts {
		if err := heal(h.ns); err != nil {
			return err
		}
	}
	var started []*node
	for _, n := range c.nodes() {
		if !n.running() {
			if err := n.start(); err != nil {
				return err
			}
			started = append(started, n)
		}
	}
	for _, n := range c.nodes() {
		if err := n.waitReady(60 * time.Second); err != nil {
			return err
		}
	}
	for _, r := range c.routers {
		c.lb.add(routerAddr(r))
	}
	if len(started) > 0 {
		return c.waitHosts(30 * time.Second)
	}
	return nil
}

// teardown kills everything and removes every trace. With keepLogs the
// daemons' logs are copied out first, and the copy's path returned.
func (c *cluster) teardown(keepLogs bool) string {
	var names []string
	for _, n := range c.nodes() {
		names = append(names, n.ns)
	}
	killNetns(names...)
	for _, n := range c.nodes() {
		n.kill()
	}
	if c.etcd != nil {
		c.etcd.Close()
	}
	var logDir string
	if keepLogs {
		logDir, _ = os.MkdirTemp("", "pier-e2e-logs-")
		for _, n := range c.nodes() {
			if b, err := os.ReadFile(n.logPath()); err == nil {
				os.WriteFile(filepath.Join(logDir, n.name+".log"), b, 0o644)
			}
		}
	}
	for _, h := range c.hosts {
		cleanupHostDir(h.dataDir())
	}
	sweep()
	return logDir
}

// controller returns a client of the controller API on a server that is
// up, preferring the given ones when any is named.
func (c *cluster) controller(prefer ...*node) (*client.Controller, error) {
	cands := append(append([]*node{}, prefer...), c.servers...)
	var lastErr error = errors.New("no server running")
	for _, s := range cands {
		if !s.running() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		lastErr = s.ready(ctx)
		cancel()
		if lastErr == nil {
			return c.controllerOn(s)
		}
	}
	return nil, lastErr
}

func (c *cluster) controllerOn(s *node, opts ...client.Option) (*client.Controller, error) {
	cl := cliconfig.Cluster{Name: "e2e", URL: "https://" + s.ip + ":7300", Key: c.adminKey, CAPEM: c.caPEM}
	tlsCfg, err := cl.TLSConfig()
	if err != nil {
		return nil, err
	}
	return client.NewController(cl.URL, cl.Key, tlsCfg, opts...)
}
