package deployer_test

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/controller/deployer"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
	"github.com/pierpaas/pier/store/storetest"
)

// store-only tests: no hosts, no scheduler; passes are run by hand.

type kvEnv struct {
	t   *testing.T
	ctx context.Context
	cli *clientv3.Client
}

func newKV(t *testing.T) *kvEnv {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return &kvEnv{t: t, ctx: ctx, cli: storetest.NewCluster(t, 1).Client()}
}

func (e *kvEnv) put(k string, v any) {
	e.t.Helper()
	if _, err := store.Put(e.ctx, e.cli, k, v); err != nil {
		e.t.Fatal(err)
	}
}

func (e *kvEnv) deployment(id string) api.Deployment {
	e.t.Helper()
	d, _, err := store.Get[api.Deployment](e.ctx, e.cli, key(store.DeploymentsPrefix, id))
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// helloV2 stores app hello serving v1 (web=1) and a pending deployment to
// v2 created at created.
func (e *kvEnv) helloV2(version int, created time.Time) api.Deployment {
	v1, rel := api.ReleaseID("hello", 1), release(version, map[string]api.ProcessType{"web": {Args: []string{"serve"}}})
	e.put(key(store.AppsPrefix, "hello"), api.App{Name: "hello", Release: v1})
	e.put(key(store.ReleasesPrefix, rel.ID), rel)
	e.put(key(store.FormationsPrefix, "hello", v1), api.Formation{App: "hello", Release: v1, Processes: web(1)})
	d := api.Deployment{ID: rel.ID, App: "hello", OldRelease: v1, NewRelease: rel.ID, OldProcesses: web(1),
		Processes: web(1), State: api.DeployPending, CreatedAt: created}
	e.put(key(store.DeploymentsPrefix, d.ID), d)
	return d
}

// TestStaleLeaderWritesNothing: a pass guarded by a leadership that is gone
// (a paused ex-leader's) commits nothing.
func TestStaleLeaderWritesNothing(t *testing.T) {
	e := newKV(t)
	d := e.helloV2(2, time.Now())
	leader, err := scheduler.Elect(e.ctx, e.cli, deployer.ElectionPrefix, "d1", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if wrote, err := deployer.Pass(e.ctx, e.cli, nil, leader.Guard); err != nil || !wrote {
		t.Fatalf("leader's pass: wrote %v, %v", wrote, err)
	}
	if st := e.deployment(d.ID).State; st != api.DeployRunning {
		t.Fatalf("state %s after the leader's pass", st)
	}
	stale := leader.Guard
	leader.Close()
	wrote, err := deployer.Pass(e.ctx, e.cli, nil, stale)
	var ce *store.ConflictError
	if !errors.As(err, &ce) || ce.Key != stale.Key || wrote {
		t.Fatalf("stale pass: wrote %v, %v; want a conflict on %s", wrote, err, stale.Key)
	}
	if _, _, err := store.Get[api.Formation](e.ctx, e.cli, key(store.FormationsPrefix, "hello", d.NewRelease)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a stale leader wrote the new formation (%v)", err)
	}
}

// TestAppDeletedFails ends a deployment whose app is gone without
// recreating any formation, and a second pass leaves it be.
func TestAppDeletedFails(t *testing.T) {
	e := newKV(t)
	d := e.helloV2(2, time.Now())
	if _, err := e.cli.Delete(e.ctx, store.FormationsPrefix, clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cli.Delete(e.ctx, key(store.AppsPrefix, "hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := deployer.Pass(e.ctx, e.cli, nil); err != nil {
		t.Fatal(err)
	}
	got := e.deployment(d.ID)
	if got.State != api.DeployFailed || got.Reason != "app deleted" {
		t.Fatalf("deployment %s %q", got.State, got.Reason)
	}
	resp, err := e.cli.Get(e.ctx, store.FormationsPrefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Fatalf("%d formations after the app was deleted (%v)", resp.Count, err)
	}
	if wrote, err := deployer.Pass(e.ctx, e.cli, nil); wrote || err != nil {
		t.Fatalf("second pass: wrote %v, %v", wrote, err)
	}
}

// TestOneDeploymentPerApp drives an app's oldest deployment and leaves a
// later one pending until it ends.
func TestOneDeploymentPerApp(t *testing.T) {
	e := newKV(t)
	now := time.Now()
	d3 := e.helloV2(3, now)
	d2 := e.helloV2(2, now.Add(-time.Second))
	if _, err := deployer.Pass(e.ctx, e.cli, nil); err != nil {
		t.Fatal(err)
	}
	if s2, s3 := e.deployment(d2.ID).State, e.deployment(d3.ID).State; s2 != api.DeployRunning || s3 != api.DeployPending {
		t.Fatalf("states %s, %s; want the older running, the newer pending", s2, s3)
	}
}

// TestCompleteKeepsAppFields completes a first deployment with nothing to
// run, and checks that setting the app's release kept the fields the
// controller wrote meanwhile.
func TestCompleteKeepsAppFields(t *testing.T) {
	e := newKV(t)
	rel := release(1, map[string]api.ProcessType{"web": {Args: []string{"serve"}}})
	e.put(key(store.ReleasesPrefix, rel.ID), rel)
	e.put(key(store.AppsPrefix, "hello"), api.App{Name: "hello"})
	d := api.Deployment{ID: rel.ID, App: "hello", NewRelease: rel.ID, Processes: map[string]int{},
		State: api.DeployPending, CreatedAt: time.Now()}
	e.put(key(store.DeploymentsPrefix, d.ID), d)
	if _, err := deployer.Pass(e.ctx, e.cli, nil); err != nil { // pending -> running
		t.Fatal(err)
	}
	e.put(key(store.AppsPrefix, "hello"), api.App{Name: "hello", Meta: map[string]string{"owner": "ops"}})
	if _, err := deployer.Pass(e.ctx, e.cli, nil); err != nil {
		t.Fatal(err)
	}
	if got := e.deployment(d.ID); got.State != api.DeployComplete || got.FinishedAt.IsZero() {
		t.Fatalf("deployment %s %q", got.State, got.Reason)
	}
	app, _, err := store.Get[api.App](e.ctx, e.cli, key(store.AppsPrefix, "hello"))
	if err != nil || app.Release != rel.ID || app.Meta["owner"] != "ops" {
		t.Fatalf("app %+v (%v)", app, err)
	}
	if _, _, err := store.Get[api.Formation](e.ctx, e.cli, key(store.FormationsPrefix, "hello", rel.ID)); err != nil {
		t.Fatalf("no formation for the app's release: %v", err)
	}
}

// TestQueuedBeginsFromWhatRuns: a deployment made while another ran names
// that one's release as its old one; when that one rolled back instead,
// it begins from the release the app runs, with its counts, and its
// timeout counts from then.
func TestQueuedBeginsFromWhatRuns(t *testing.T) {
	e := newKV(t)
	created := time.Now().Add(-time.Hour)
	d := e.helloV2(3, created)
	d.OldRelease, d.OldProcesses, d.Version = api.ReleaseID("hello", 2), nil, 3 // v2 failed meanwhile
	e.put(key(store.DeploymentsPrefix, d.ID), d)
	if _, err := deployer.Pass(e.ctx, e.cli, nil); err != nil {
		t.Fatal(err)
	}
	got := e.deployment(d.ID)
	if got.State != api.DeployRunning || got.OldRelease != api.ReleaseID("hello", 1) || got.OldProcesses["web"] != 1 || got.StartedAt.Before(created.Add(time.Minute)) {
		t.Fatalf("deployment %+v", got)
	}
	if _, err := deployer.Pass(e.ctx, e.cli, nil); err != nil {
		t.Fatal(err)
	}
	if got := e.deployment(d.ID); got.State != api.DeployRunning {
		t.Fatalf("an hour in the queue timed it out: %s %q", got.State, got.Reason)
	}
}
