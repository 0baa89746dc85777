package deployer_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/controller/deployer"
	"github.com/pierpaas/pier/internal/testcluster"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
)

// env is a test cluster with one scheduler, an app "hello" and the
// programs its jobs stand for: the fake runtime runs nothing, so a job's
// port answers its health check only while the test listens on it.
type env struct {
	t     *testing.T
	c     *testcluster.Cluster
	hosts []*testcluster.Host
	ctx   context.Context
	app   *fakeApp

	mu        sync.Mutex
	deployers map[string]func()
}

func newEnv(t *testing.T) *env {
	ctx, cancel := context.WithCancel(context.Background())
	c := testcluster.New(t)
	e := &env{t: t, c: c, ctx: ctx, deployers: map[string]func(){}}
	for _, h := range []string{"h1", "h2"} {
		e.hosts = append(e.hosts, c.AddHost(h, testcluster.HostOptions{}))
	}
	c.StartScheduler("s1")
	e.app = &fakeApp{cli: c.Client, healthy: map[string]bool{}, listeners: map[int]net.Listener{}, minServing: -1}
	e.app.wg.Add(1)
	go e.app.run(ctx)
	// Cleanups run last-in first-out: the deployers stop before the
	// cluster, and the fake app after them.
	t.Cleanup(func() { cancel(); e.app.wg.Wait(); e.app.closeAll() })
	t.Cleanup(e.stopDeployers)
	return e
}

// startDeployer runs a deployer loop named name until stopDeployer.
func (e *env) startDeployer(name string) {
	ctx, cancel := context.WithCancel(context.Background())
	l := &deployer.Loop{Client: e.c.Client, Name: name, Log: e.c.Log, Interval: 100 * time.Millisecond, LeaseTTL: time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run(ctx)
	}()
	e.mu.Lock()
	e.deployers[name] = func() { cancel(); <-done }
	e.mu.Unlock()
}

func (e *env) stopDeployer(name string) {
	e.mu.Lock()
	stop := e.deployers[name]
	delete(e.deployers, name)
	e.mu.Unlock()
	if stop != nil {
		stop()
	}
}

func (e *env) stopDeployers() {
	e.mu.Lock()
	names := make([]string, 0, len(e.deployers))
	for n := range e.deployers {
		names = append(names, n)
	}
	e.mu.Unlock()
	for _, n := range names {
		e.stopDeployer(n)
	}
}

// webType is a web process type with an HTTP health check probed every
// 100ms and failing after two misses.
func webType() api.ProcessType {
	return api.ProcessType{Args: []string{"serve"}, Resources: api.Resources{MemoryMB: 64},
		Ports: []api.Port{{Proto: "http", Health: &api.HealthCheck{Kind: "http", Path: healthPath,
			Interval: api.Duration(100 * time.Millisecond), Timeout: api.Duration(100 * time.Millisecond), Threshold: 2}}}}
}

func release(version int, procs map[string]api.ProcessType) api.Release {
	return api.Release{ID: api.ReleaseID("hello", version), App: "hello", Version: version, Processes: procs, CreatedAt: time.Now()}
}

// setup stores the app serving v1 with counts, waits for its jobs to
// serve, and returns v1's id.
func (e *env) setup(counts map[string]int) string {
	e.t.Helper()
	v1 := release(1, map[string]api.ProcessType{"web": webType()})
	e.app.setHealthy(v1.ID, true)
	e.put(key(store.AppsPrefix, "hello"), api.App{Name: "hello", Release: v1.ID, LatestVersion: 1, CreatedAt: time.Now()})
	e.c.Deploy(v1, counts)
	e.waitServing(v1.ID, "web", counts["web"])
	return v1.ID
}

// deploy stores rel and a pending deployment to it, as the controller
// does, and returns the deployment.
func (e *env) deploy(old string, rel api.Release, strategy api.DeployStrategy, oldCounts, counts map[string]int) api.Deployment {
	e.t.Helper()
	e.put(key(store.ReleasesPrefix, rel.ID), rel)
	d := api.Deployment{ID: rel.ID, App: "hello", OldRelease: old, NewRelease: rel.ID, Version: rel.Version,
		Strategy: strategy, OldProcesses: oldCounts, Processes: counts, State: api.DeployPending,
		CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if _, err := store.Create(e.ctx, e.c.Client, key(store.DeploymentsPrefix, d.ID), d); err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) put(k string, v any) int64 {
	e.t.Helper()
	rev, err := store.Put(e.ctx, e.c.Client, k, v)
	if err != nil {
		e.t.Fatal(err)
	}
	return rev
}

func key(prefix string, parts ...string) string {
	k, err := store.Key(prefix, parts...)
	if err != nil {
		panic(err)
	}
	return k
}

// get reads key into a T; ok is false when it is absent.
func get[T any](e *env, k string) (v T, rev int64, ok bool) {
	e.t.Helper()
	v, rev, err := store.Get[T](e.ctx, e.c.Client, k)
	if errors.Is(err, store.ErrNotFound) {
		return v, 0, false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return v, rev, true
}

// waitDone waits for deployment id to end and returns it, and the
// revision it ended at.
func (e *env) waitDone(id string, timeout time.Duration) (api.Deployment, int64) {
	e.t.Helper()
	var (
		d   api.Deployment
		rev int64
	)
	e.c.WaitFor("deployment "+id+" to end", timeout, func() bool {
		d, rev, _ = get[api.Deployment](e, key(store.DeploymentsPrefix, id))
		return d.State.Done()
	})
	return d, rev
}

// serving lists the jobs of release and ptype that run, are meant to, and
// pass their health checks.
func (e *env) serving(release, ptype string) []scheduler.JobView {
	var out []scheduler.JobView
	for _, j := range e.c.Snapshot().Jobs {
		if j.Job.Release == release && j.Job.ProcessType == ptype && j.Job.Desired == api.DesiredRunning &&
			deployer.Ready(&j.Job, j.Status) {
			out = append(out, j)
		}
	}
	return out
}

func (e *env) waitServing(release, ptype string, n int) {
	e.t.Helper()
	e.c.WaitFor(strconv.Itoa(n)+" serving "+release+" "+ptype+" jobs", 30*time.Second, func() bool {
		return len(e.serving(release, ptype)) == n
	})
}

// live counts the jobs of release meant to run that have not ended.
func (e *env) live(release string) int {
	n := 0
	for _, j := range e.c.Snapshot().Jobs {
		if j.Job.Release == release && j.Job.Desired == api.DesiredRunning && (j.Status == nil || !j.Status.State.Terminal()) {
			n++
		}
	}
	return n
}

// runtimeOf finds the host running job id.
func (e *env) runtimeOf(id string) *testcluster.Host {
	for _, h := range e.hosts {
		for _, r := range h.Runtime.Running() {
			if r == id {
				return h
			}
		}
	}
	return nil
}

// formationEvent is a write to one of the app's formations.
type formationEvent struct {
	rev     int64
	release string
	counts  map[string]int // nil: deleted
}

// recordFormations watches the app's formations from now on. The
// function it returns lists the writes seen, once the watch has delivered
// those up to revision rev (the deployment's last write, which commits
// with the formations' last writes).
func (e *env) recordFormations() func(rev int64) []formationEvent {
	e.t.Helper()
	resp, err := e.c.Client.Get(e.ctx, "/pier/none")
	if err != nil {
		e.t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		events []formationEvent
	)
	prefix := key(store.FormationsPrefix, "hello") + "/"
	// Progress notifications move the header revision on when nothing
	// under the prefix changes.
	wch := e.c.Client.Watch(e.ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	go func() {
		for resp := range wch {
			mu.Lock()
			for _, ev := range resp.Events {
				fe := formationEvent{rev: ev.Kv.ModRevision, release: string(ev.Kv.Key[len(prefix):])}
				if ev.Type == clientv3.EventTypePut {
					var f api.Formation
					if err := json.Unmarshal(ev.Kv.Value, &f); err == nil {
						fe.counts = f.Processes
					}
				}
				events = append(events, fe)
			}
			mu.Unlock()
		}
	}()
	return func(rev int64) []formationEvent {
		e.t.Helper()
		e.c.WaitFor("formation writes up to revision "+strconv.FormatInt(rev, 10), 10*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(events) > 0 && events[len(events)-1].rev >= rev
		})
		mu.Lock()
		defer mu.Unlock()
		return append([]formationEvent(nil), events...)
	}
}
