package testcluster

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/host/agent"
	"github.com/pierpaas/pier/internal/testutil"
	"github.com/pierpaas/pier/runtime/fake"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
	"github.com/pierpaas/pier/store/storetest"
)

// Cluster is an in-process cluster.
type Cluster struct {
	t      testing.TB
	Etcd   *storetest.Cluster
	Client *clientv3.Client
	Log    *slog.Logger

	mu         sync.Mutex
	hosts      map[string]*Host
	schedulers map[string]context.CancelFunc
	nextPort   int
}

// Host is one host agent and its fake runtime.
type Host struct {
	ID      string
	Agent   *agent.Agent
	Runtime *fake.Runtime
	cfg     agent.Config
}

// New starts etcd with one member; hosts and schedulers are added by the test.
func New(t testing.TB) *Cluster {
	e := storetest.NewCluster(t, 1)
	c := &Cluster{t: t, Etcd: e, Client: e.Client(), hosts: map[string]*Host{}, schedulers: map[string]context.CancelFunc{},
		nextPort: 42000,
		Log:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	t.Cleanup(c.close)
	return c
}

// HostOptions shape a new host.
type HostOptions struct {
	Tags      map[string]string
	MemoryMB  int64 // default 4096
	CPUMillis int64 // default 4000
}

// AddHost starts a host agent on the fake runtime.
func (c *Cluster) AddHost(id string, o HostOptions) *Host {
	c.t.Helper()
	if o.MemoryMB == 0 {
		o.MemoryMB = 4096
	}
	if o.CPUMillis == 0 {
		o.CPUMillis = 4000
	}
	dir := filepath.Join(c.t.TempDir(), id)
	sockDir, err := os.MkdirTemp("/tmp", "tc")
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { os.RemoveAll(sockDir) })
	c.mu.Lock()
	low := c.nextPort
	c.nextPort += 100
	c.mu.Unlock()
	h := &Host{ID: id, Runtime: fake.New()}
	h.cfg = agent.Config{
		ID: id, DataDir: dir, ShimSocketDir: sockDir, LeaseTTL: time.Second,
		Endpoints: c.Etcd.Endpoints(), CredentialsDir: c.Etcd.Credentials().Dir,
		Tags: o.Tags, MemoryMB: o.MemoryMB, CPUMillis: o.CPUMillis,
		PortLow: low, PortHigh: low + 99, APIPort: testutil.FreePort(c.t),
		RuntimeImpl: h.Runtime, Log: c.Log,
	}
	c.startAgent(h)
	c.mu.Lock()
	c.hosts[id] = h
	c.mu.Unlock()
	return h
}

func (c *Cluster) startAgent(h *Host) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := agent.Start(ctx, h.cfg)
	if err != nil {
		c.t.Fatalf("host %s: %v", h.ID, err)
	}
	h.Agent = a
}

// KillHost stops a host's agent and revokes its lease, as if the machine
// had vanished and its lease expired; its fake jobs stop with it.
func (c *Cluster) KillHost(id string) {
	c.t.Helper()
	c.mu.Lock()
	h := c.hosts[id]
	delete(c.hosts, id)
	c.mu.Unlock()
	h.Agent.Close()
	for _, j := range h.Runtime.Running() {
		h.Runtime.Kill(j, 9)
	}
	resp, err := c.Client.Get(context.Background(), store.HostsPrefix+id)
	if err == nil && len(resp.Kvs) == 1 && resp.Kvs[0].Lease != 0 {
		c.Client.Revoke(context.Background(), clientv3.LeaseID(resp.Kvs[0].Lease))
	}
}

// StartScheduler runs a scheduler loop named name until the test ends or
// StopScheduler is called.
func (c *Cluster) StartScheduler(name string) {
	c.StartSchedulerConfig(name, scheduler.Config{BackoffBase: 100 * time.Millisecond})
}

// StartSchedulerConfig is StartScheduler with a scheduler configuration.
func (c *Cluster) StartSchedulerConfig(name string, cfg scheduler.Config) {
	ctx, cancel := context.WithCancel(context.Background())
	l := &scheduler.Loop{Client: c.Etcd.Client(), Name: name, Log: c.Log, LeaseTTL: time.Second, Config: cfg}
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run(ctx)
	}()
	c.mu.Lock()
	c.schedulers[name] = func() {
		cancel()
		<-done
	}
	c.mu.Unlock()
}

// StopScheduler stops a scheduler loop; its leadership lease is revoked.
func (c *Cluster) StopScheduler(name string) {
	c.mu.Lock()
	stop := c.schedulers[name]
	delete(c.schedulers, name)
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// Deploy writes a release and its formation.
func (c *Cluster) Deploy(rel api.Release, counts map[string]int) {
	c.t.Helper()
	ctx := context.Background()
	if rel.CreatedAt.IsZero() {
		rel.CreatedAt = time.Now()
	}
	if _, err := store.Put(ctx, c.Client, store.ReleasesPrefix+rel.ID, rel); err != nil {
		c.t.Fatal(err)
	}
	c.Scale(rel.App, rel.ID, counts)
}

// Scale sets a formation's counts.
func (c *Cluster) Scale(app, release string, counts map[string]int) {
	c.t.Helper()
	f := api.Formation{App: app, Release: release, Processes: counts, UpdatedAt: time.Now()}
	key, _ := store.Key(store.FormationsPrefix, app, release)
	if _, err := store.Put(context.Background(), c.Client, key, f); err != nil {
		c.t.Fatal(err)
	}
}

// Snapshot reads the whole scheduling state from etcd.
func (c *Cluster) Snapshot() scheduler.Snapshot {
	c.t.Helper()
	s, err := scheduler.Load(context.Background(), c.Client, scheduler.Config{})
	if err != nil {
		c.t.Fatal(err)
	}
	return s
}

// Running returns the jobs of app and process type that their host
// reports running and that are meant to run.
func (c *Cluster) Running(app, ptype string) []scheduler.JobView {
	var out []scheduler.JobView
	for _, j := range c.Snapshot().Jobs {
		if j.Job.App == app && j.Job.ProcessType == ptype && j.Job.Desired == api.DesiredRunning &&
			j.Status != nil && j.Status.State == api.JobRunning {
			out = append(out, j)
		}
	}
	return out
}

// WaitFor polls cond until it holds, failing the test after timeout.
func (c *Cluster) WaitFor(what string, timeout time.Duration, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *Cluster) close() {
	c.mu.Lock()
	var stops []context.CancelFunc
	for _, s := range c.schedulers {
		stops = append(stops, s)
	}
	var hosts []*Host
	for _, h := range c.hosts {
		hosts = append(hosts, h)
	}
	c.mu.Unlock()
	for _, s := range stops {
		s()
	}
	for _, h := range hosts {
		h.Agent.Close()
	}
}
