package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/discovery"
	"github.com/pierpaas/pier/host/jobnet"
	"github.com/pierpaas/pier/host/overlay"
	"github.com/pierpaas/pier/runtime"
	"github.com/pierpaas/pier/store"
)

// FirstJobPort is the first port of a job in its own namespace: PORT, then
// PORT_2… count up from it. Above 1024, since jobs may not bind below.
const FirstJobPort = 8080

// jobNetwork is the agent's part of job networking (package jobnet): the
// host's job network, the addresses handed out, the resolver and relay on
// the gateway, and the policy kept in step with the cluster.
type jobNetwork struct {
	a    *Agent
	host *jobnet.Host
	ips  *jobnet.IPAM

	endpoints *store.Cache[api.Endpoint]
	access    *store.Cache[api.AccessRule]
	nodes     *store.Cache[api.NodeNetwork]

	mu     sync.Mutex
	local  map[netip.Addr]jobnet.LocalJob
	kick   chan struct{}
	closed []io.Closer
}

// savedNetwork is what the agent remembers of its subnet, so that a
// restart while the store is out of reach keeps the running jobs'.
type savedNetwork struct {
	Subnet string `json:"subnet"`
}

func (a *Agent) networkPath() string { return filepath.Join(a.cfg.DataDir, "network.json") }

// subnet is this host's subnet: from the store (allocated on first
// start), or, when the store cannot say, the one this agent had before.
func (a *Agent) subnet(ctx context.Context, cluster netip.Prefix) (netip.Prefix, error) {
	var saved savedNetwork
	if b, err := os.ReadFile(a.networkPath()); err == nil {
		json.Unmarshal(b, &saved)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := jobnet.SubnetFor(sctx, a.Client, cluster, a.cfg.ID, a.cfg.AdvertiseIP, jobnet.LocallyRouted)
	if err != nil {
		if saved.Subnet != "" {
			a.cfg.Log.Warn("cannot read this host's subnet from the store; using the one it had", "subnet", saved.Subnet, "err", err)
			return netip.ParsePrefix(saved.Subnet)
		}
		return netip.Prefix{}, err
	}
	if p.String() != saved.Subnet {
		b, _ := json.Marshal(savedNetwork{Subnet: p.String()})
		if err := os.WriteFile(a.networkPath(), b, 0o600); err != nil {
			return netip.Prefix{}, err
		}
	}
	return p, nil
}

// startNetwork sets the job network up before jobs are adopted.
func (a *Agent) startNetwork(ctx, runCtx context.Context, jobs []*localJob) error {
	if a.cfg.Network != "job" {
		return nil
	}
	cluster := netip.MustParsePrefix(a.cfg.JobNetwork)
	subnet, err := a.subnet(ctx, cluster)
	if err != nil {
		return fmt.Errorf("agent: job network: %w", err)
	}
	if err := overlay.Start(runCtx, a.Client, a.cfg.ID, a.cfg.AdvertiseIP, subnet, a.cfg.Log); err != nil {
		return fmt.Errorf("agent: overlay: %w", err)
	}
	host, err := jobnet.Open(jobnet.Config{
		Subnet: subnet, Cluster: cluster, MTU: jobnet.UnderlayMTU(netip.MustParseAddr(a.cfg.AdvertiseIP)) - jobnet.OverlayOverhead,
		StateDir: NetNSDir(a.cfg.DataDir), Tag: jobnet.TagFor(a.cfg.DataDir), Log: a.cfg.Log,
	})
	if err != nil {
		return fmt.Errorf("agent: job network: %w", err)
	}
	n := &jobNetwork{a: a, host: host, ips: jobnet.NewIPAM(subnet), local: map[netip.Addr]jobnet.LocalJob{}, kick: make(chan struct{}, 1),
		endpoints: store.NewCache[api.Endpoint](a.Client, store.NetEndpointsPrefix),
		access:    store.NewCache[api.AccessRule](a.Client, store.NetAccessPrefix),
		nodes:     store.NewCache[api.NodeNetwork](a.Client, store.NetNodesPrefix),
	}
	a.net = n
	running := map[string]bool{}
	for _, lj := range jobs {
		if ip, err := netip.ParseAddr(lj.IP); err == nil && !lj.Reported.Terminal() {
			n.ips.Reserve(ip)
			running[lj.Job.ID] = true
		}
	}
	// Namespaces of jobs this host no longer runs (one that ended while
	// the agent was down) go.
	if ids, err := host.Attached(); err == nil {
		for _, id := range ids {
			if !running[id] {
				host.Detach(id)
			}
		}
	}
	gw := host.Gateway().String()
	dns, err := discovery.NewDNSServer(a.Client, api.InternalDomain, discovery.WithLogger(a.cfg.Log), discovery.WithUpstreams(discovery.HostResolvers()...))
	if err != nil {
		return err
	}
	if err := dns.Start(runCtx, net.JoinHostPort(gw, "53")); err != nil {
		return fmt.Errorf("agent: resolver for jobs: %w", err)
	}
	n.closed = append(n.closed, dns)
	relay, err := net.Listen("tcp", net.JoinHostPort(gw, strconv.Itoa(jobnet.RelayPort)))
	if err != nil {
		return fmt.Errorf("agent: controller relay: %w", err)
	}
	a.goRun(func() { n.relay(runCtx, relay) })
	for _, c := range []interface{ Run(context.Context) error }{n.endpoints, n.access, n.nodes} {
		a.goRun(func() { c.Run(runCtx) })
	}
	a.goRun(func() { n.policyLoop(runCtx) })
	a.goRun(func() { n.dropStaleEndpoints(runCtx, running) })
	return nil
}

func (n *jobNetwork) close() {
	for _, c := range n.closed {
		c.Close()
	}
}

// attach gives a job its namespace (or finds it again) and publishes its
// address; ip is the job's if it had one.
func (n *jobNetwork) attach(ctx context.Context, job *api.Job, ip netip.Addr) (netip.Addr, string, error) {
	if !ip.IsValid() {
		var err error
		if ip, err = n.ips.Allocate(); err != nil {
			return ip, "", err
		}
	} else {
		n.ips.Reserve(ip)
	}
	path, err := n.host.Attach(job.ID, ip)
	if err != nil {
		n.ips.Release(ip)
		return ip, "", err
	}
	n.mu.Lock()
	n.local[ip] = jobnet.LocalJob{App: job.App, ControlPlane: job.ControlPlane}
	n.mu.Unlock()
	n.changed()
	return ip, path, nil
}

// publish records a job's address for the other hosts' policies. The
// worker calls it once the job's shim is on its way, off the start's
// critical path, and before it can call detach.
func (n *jobNetwork) publish(ctx context.Context, job *api.Job, ip string) {
	if job.App != "" {
		n.putEndpoint(ctx, api.Endpoint{Job: job.ID, App: job.App, IP: ip, Host: n.a.cfg.ID})
	}
}

// detach removes a job's namespace and its address everywhere.
func (n *jobNetwork) detach(ctx context.Context, job *api.Job, ip netip.Addr) {
	if err := n.host.Detach(job.ID); err != nil {
		n.a.cfg.Log.Warn("cannot remove a job's network", "job", job.ID, "err", err)
	}
	n.mu.Lock()
	delete(n.local, ip)
	n.mu.Unlock()
	n.ips.Release(ip)
	n.changed()
	if key, err := store.Key(store.NetEndpointsPrefix, n.a.cfg.ID, job.ID); err == nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := store.Delete(dctx, n.a.Client, key); err != nil && !errors.Is(err, store.ErrNotFound) {
			n.a.cfg.Log.Warn("cannot remove a job's endpoint", "job", job.ID, "err", err)
		}
	}
}

func (n *jobNetwork) putEndpoint(ctx context.Context, ep api.Endpoint) {
	key, err := store.Key(store.NetEndpointsPrefix, ep.Host, ep.Job)
	if err != nil {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := store.Put(pctx, n.a.Client, key, ep); err != nil {
		// The policy of other hosts learns of the job late; its own
		// host's policy has it already (local).
		n.a.cfg.Log.Warn("cannot publish a job's address", "job", ep.Job, "err", err)
	}
}

// dropStaleEndpoints removes this host's endpoints of jobs it no longer
// runs (ended while the agent was down), once the cache has them.
func (n *jobNetwork) dropStaleEndpoints(ctx context.Context, running map[string]bool) {
	select {
	case <-n.endpoints.Synced():
	case <-ctx.Done():
		return
	}
	prefix, err := store.Prefix(store.NetEndpointsPrefix, n.a.cfg.ID)
	if err != nil {
		return
	}
	for _, it := range n.endpoints.List() {
		if len(it.Key) > len(prefix) && it.Key[:len(prefix)] == prefix && !running[it.Value.Job] {
			n.a.mu.Lock()
			_, live := n.a.workers[it.Value.Job]
			n.a.mu.Unlock()
			if !live {
				store.DeleteIf(ctx, n.a.Client, it.Key, it.ModRevision)
			}
		}
	}
}

func (n *jobNetwork) changed() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// policyLoop applies the policy whenever this host's jobs, the cluster's
// endpoints, access rules or nodes change, a burst of changes at a time.
func (n *jobNetwork) policyLoop(ctx context.Context) {
	subs := []func() (<-chan struct{}, func()){n.endpoints.Subscribe, n.access.Subscribe, n.nodes.Subscribe}
	for _, sub := range subs {
		ch, cancel := sub()
		defer cancel()
		go func() {
			for {
				select {
				case <-ch:
					n.changed()
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	for {
		select {
		case <-n.kick:
		case <-ctx.Done():
			return
		}
		if err := n.host.Apply(n.rules()); err != nil {
			n.a.cfg.Log.Error("cannot apply the job network policy", "err", err)
		}
	}
}

// rules gathers what the policy is made from.
func (n *jobNetwork) rules() jobnet.Rules {
	r := jobnet.Rules{Local: map[netip.Addr]jobnet.LocalJob{}, Endpoints: map[netip.Addr]string{}, Allow: map[string][]string{}}
	n.mu.Lock()
	for ip, j := range n.local {
		r.Local[ip] = j
	}
	n.mu.Unlock()
	for _, it := range n.endpoints.List() {
		if ip, err := netip.ParseAddr(it.Value.IP); err == nil {
			r.Endpoints[ip] = it.Value.App
		}
	}
	for _, it := range n.access.List() {
		r.Allow[it.Value.App] = append(r.Allow[it.Value.App], it.Value.From)
	}
	for _, it := range n.nodes.List() {
		if ip, err := netip.ParseAddr(it.Value.Underlay); err == nil && !ip.IsLoopback() {
			r.Nodes = append(r.Nodes, ip)
		}
	}
	return r
}

// relay passes control-plane jobs' connections to a server's API, bytes
// as they are: TLS runs end to end between the job and the server.
func (n *jobNetwork) relay(ctx context.Context, l net.Listener) {
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			var up net.Conn
			for _, s := range n.a.cfg.Servers {
				if up, err = net.DialTimeout("tcp", s, 3*time.Second); err == nil {
					break
				}
			}
			if up == nil {
				n.a.cfg.Log.Warn("controller relay: no server reachable", "servers", n.a.cfg.Servers)
				return
			}
			defer up.Close()
			done := make(chan struct{})
			go func() {
				io.Copy(up, c)
				if tc, ok := up.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
				close(done)
			}()
			io.Copy(c, up)
			if tc, ok := c.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			<-done
		}()
	}
}

// network gives the job its network: a namespace of its own with ports
// counted from FirstJobPort, or, for a process type that asks for it on a
// host that allows it (and on hosts whose jobs all share the host's
// network), ports allocated on the host.
func (w *worker) network(ctx context.Context, spec *runtime.Spec) error {
	a, job := w.a, &w.lj.Job
	if a.net == nil || job.HostNetwork {
		if a.net != nil && !a.cfg.AllowHostNetwork {
			return errors.New("this host does not run jobs in its own network (its agent runs without --allow-host-network)")
		}
		if len(job.Ports) > 0 {
			ps, err := a.ports.allocate(len(job.Ports))
			if err != nil {
				return err
			}
			w.lj.HostPorts = ps
		}
		return nil
	}
	var had netip.Addr
	if w.lj.IP != "" {
		had, _ = netip.ParseAddr(w.lj.IP)
	}
	ip, path, err := a.net.attach(ctx, job, had)
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	w.lj.IP = ip.String()
	w.lj.HostPorts = nil
	for i := range job.Ports {
		w.lj.HostPorts = append(w.lj.HostPorts, FirstJobPort+i)
	}
	spec.NetNS = path
	spec.Nameservers = []string{a.net.host.Gateway().String()}
	return nil
}

// addr is where port i of the job is reached from its host and others.
func (w *worker) addr(i int) string {
	ip := w.lj.IP
	if ip == "" {
		ip = w.a.cfg.AdvertiseIP
	}
	return hostPort(ip, w.lj.HostPorts[i])
}
