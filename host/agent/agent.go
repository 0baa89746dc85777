package agent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/discovery"
	"github.com/pierpaas/pier/host/artifact"
	"github.com/pierpaas/pier/host/volume"
	"github.com/pierpaas/pier/internal/daemon"
	"github.com/pierpaas/pier/internal/diskguard"
	"github.com/pierpaas/pier/internal/join"
	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/runtime"
	"github.com/pierpaas/pier/store"
)

// Agent is a running host agent.
type Agent struct {
	cfg       Config
	Client    *clientv3.Client
	Creds     *pki.Credentials
	reg       *discovery.Registry
	local     *localState
	ports     *ports
	artifacts *artifact.Cache
	images    images // image layers (images.go)
	jobs      *store.Cache[api.Job]
	services  *services
	// volumes are this host's volumes; volumeRecs the cluster's volume
	// records, for the removal marks of this host's (volumes.go).
	volumes    *volume.Manager
	volumeRecs *store.Cache[api.Volume]
	// net is the job network; nil when jobs share the host's (network.go).
	net       *jobNetwork
	startedAt time.Time

	// Health and Metrics back the API's /readyz and /metrics (httpapi.go).
	Health  *daemon.Health
	Metrics *prometheus.Registry
	api     *apiServer

	mu      sync.Mutex
	workers map[string]*worker // jobs with a live shim (or being started)
	ended   map[string]bool    // jobs that ran here and ended
	session *discovery.Session

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// joinState remembers where the cluster is, written at the first join.

// Start joins the cluster on first start, registers the host, re-adopts
// the jobs a previous agent left running, and begins converging.
func Start(ctx context.Context, cfg Config) (_ *Agent, err error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	for _, d := range []string{cfg.DataDir, cfg.jobsDir(), cfg.artifactDir(), cfg.ShimSocketDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	a := &Agent{cfg: cfg, workers: map[string]*worker{}, ended: map[string]bool{}, startedAt: time.Now()}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	ownDisk := cfg.Disk == nil
	if ownDisk {
		if a.cfg.Disk, err = diskguard.New(diskguard.Config{Dir: cfg.DataDir, Log: cfg.Log}); err != nil {
			return nil, err
		}
	}
	endpoints, err := a.credentials(ctx)
	if err != nil {
		return nil, err
	}
	if a.Creds, err = pki.LoadCredentials(cfg.pkiDir()); err != nil {
		return nil, err
	}
	if a.Client, err = store.Dial(endpoints, a.Creds); err != nil {
		return nil, err
	}
	if a.local, err = openLocalState(cfg.statePath()); err != nil {
		return nil, err
	}
	a.reg = discovery.New(a.Client, discovery.WithLogger(cfg.Log))
	a.services = newServices(a.reg, cfg.Log)
	a.ports = newPorts("", cfg.PortLow, cfg.PortHigh)
	// Artifacts come from the servers' blobstores, which let a host in by
	// its cluster certificate.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = a.Creds.ClientConfig()
	// A server that is down must not hold a job's start up for long:
	// another server has the artifact too.
	tr.DialContext = (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	a.artifacts = &artifact.Cache{Dir: cfg.artifactDir(), Client: &http.Client{Transport: tr}}
	if os.Geteuid() == 0 {
		// Jobs run as their app's user (uids.go); a writable job (a
		// build) changes the files of its artifact in its own overlay,
		// which needs them to be that user's, as /app is on Heroku. This
		// is the owner of jobs of no app; FetchAs gives apps their own.
		a.artifacts.Limits.Owner = &artifact.Owner{UID: runtime.AppUID, GID: runtime.AppGID}
	}
	prefix, err := store.Prefix(store.JobsPrefix, cfg.ID)
	if err != nil {
		return nil, err
	}
	a.jobs = store.NewCache[api.Job](a.Client, prefix)

	a.volumes = &volume.Manager{Dir: cfg.volumesDir(), Log: cfg.Log}
	a.volumeRecs = store.NewCache[api.Volume](a.Client, store.VolumesPrefix)

	runCtx, cancel := context.WithCancel(context.Background())
	a.stop = cancel
	// Before adoption: a job relaunched after a reboot must find its
	// volumes mounted.
	a.mountVolumes()
	localJobs, err := a.local.all()
	if err != nil {
		return nil, err
	}
	if err := a.startNetwork(ctx, runCtx, localJobs); err != nil {
		return nil, err
	}
	if err := a.adopt(runCtx); err != nil {
		return nil, err
	}
	a.goRun(func() { a.jobs.Run(runCtx) })
	if ownDisk {
		a.goRun(func() { a.cfg.Disk.Run(runCtx) })
	}
	select {
	case <-a.jobs.Synced():
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	sessionUp := make(chan struct{})
	a.goRun(func() { a.keepPresence(runCtx, sessionUp) })
	select {
	case <-sessionUp:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	a.goRun(func() { a.reconcileLoop(runCtx) })
	a.goRun(func() { a.volumeRecs.Run(runCtx) })
	a.goRun(func() { a.volumeLoop(runCtx) })
	if err := a.startAPI(); err != nil {
		return nil, err
	}
	a.goRun(func() { a.shipLogs(runCtx) })
	gcRuntime := cfg.RuntimeImpl
	if gcRuntime == nil {
		if gcRuntime, err = NewRuntime(cfg.Runtime, cfg.runtimeDir(), cfg.Log); err != nil {
			return nil, err
		}
	}
	a.goRun(func() { a.collectGarbage(runCtx, gcRuntime) })
	a.mu.Lock()
	adopted := len(a.workers)
	a.mu.Unlock()
	cfg.Log.Info("host agent ready", "host", cfg.ID, "runtime", cfg.Runtime, "adopted", adopted)
	return a, nil
}

func (a *Agent) goRun(f func()) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		f()
	}()
}

// credentials joins the cluster if this data directory has no
// credentials yet, and returns the etcd endpoints.
func (a *Agent) credentials(ctx context.Context) ([]string, error) {
	cfg := &a.cfg
	if len(cfg.Endpoints) > 0 {
		return cfg.Endpoints, nil
	}
	first := !pki.HasCredentials(cfg.pkiDir())
	eps, err := join.Joined(ctx, join.Node{Name: cfg.ID, IPs: []string{cfg.AdvertiseIP}, PKIDir: cfg.pkiDir(),
		StateFile: cfg.joinPath(), Servers: cfg.Servers, Token: cfg.Token})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if first {
		cfg.Log.Info("joined cluster", "host", cfg.ID, "via", cfg.Servers)
	}
	return eps, nil
}

// keepPresence keeps the Host record alive on a lease, and makes a new
// lease and record whenever the old lease is lost (a partition longer
// than the TTL, an etcd outage).
func (a *Agent) keepPresence(ctx context.Context, up chan struct{}) {
	backoff := 100 * time.Millisecond
	previous := a.previousLease(ctx)
	for ctx.Err() == nil {
		sess, err := a.newSession(ctx, previous)
		if err != nil {
			a.cfg.Log.Warn("cannot register host; retrying", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		a.mu.Lock()
		a.session = sess
		a.mu.Unlock()
		a.services.newSession(sess)
		if previous != 0 && previous != sess.Lease() {
			a.dropDeadInstances(ctx, previous)
			previous = 0
		}
		if up != nil {
			close(up)
			up = nil
		}
		a.cfg.Log.Debug("host registered", "lease", sess.Lease())
		if !a.followDisk(ctx, sess) {
			return
		}
		a.cfg.Log.Warn("host lease lost; registering again")
	}
}

// previousLease is the lease of the host record a previous run of this
// agent left, if it is still there; 0 if not, or if it cannot be read.
func (a *Agent) previousLease(ctx context.Context) clientv3.LeaseID {
	key, err := store.Key(store.HostsPrefix, a.cfg.ID)
	if err != nil {
		return 0
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := a.Client.Get(rctx, key)
	if err != nil || len(resp.Kvs) == 0 {
		return 0
	}
	return clientv3.LeaseID(resp.Kvs[0].Lease)
}

// dropDeadInstances deregisters the instances a previous run of this
// agent registered on its lease for jobs that did not survive it (all of
// them after a reboot, even those the agent adopts to record their end).
// Jobs whose shim still runs keep theirs until they register on the new
// lease. Without this, after a power cut, routers would send
// traffic to the dead jobs' addresses until the old lease expired, which
// etcd restarts with a fresh TTL.
func (a *Agent) dropDeadInstances(ctx context.Context, lease clientv3.LeaseID) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := a.reg.DropLease(dctx, lease, func(inst discovery.Instance) bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		w := a.workers[inst.Meta["job"]]
		return w != nil && !w.orphaned
	})
	if err != nil {
		a.cfg.Log.Warn("cannot deregister the previous run's dead jobs; they leave discovery when its lease expires", "err", err)
	}
	if n > 0 {
		a.cfg.Log.Info("deregistered jobs that did not survive the agent's restart", "instances", n)
	}
}

func (a *Agent) putHost(ctx context.Context, sess *discovery.Session) error {
	key, err := store.Key(store.HostsPrefix, a.cfg.ID)
	if err != nil {
		return err
	}
	h := api.Host{
		ID: a.cfg.ID, Addr: a.cfg.AdvertiseIP, APIAddr: a.cfg.apiAddr(), Tags: a.cfg.Tags,
		CPUMillis: a.cfg.CPUMillis, MemoryMB: a.cfg.MemoryMB, Version: a.cfg.Version,
		Runtime: a.cfg.Runtime, StartedAt: a.startedAt, DiskPressure: a.cfg.Disk.Status().Reason(),
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = store.Put(wctx, a.Client, key, h, store.WithLease(sess.Lease()))
	return err
}

// ID returns the host's id.
func (a *Agent) ID() string { return a.cfg.ID }

// Close stops the agent but not its jobs: their shims keep running and a
// new agent on the same data directory re-adopts them.
func (a *Agent) Close() error {
	a.stopAPI()
	if a.stop != nil {
		a.stop()
	}
	a.wg.Wait()
	if a.net != nil {
		a.net.close()
	}
	if a.Client != nil {
		a.Client.Close()
	}
	if a.local != nil {
		a.local.close()
	}
	return nil
}
