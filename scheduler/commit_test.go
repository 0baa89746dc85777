package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
	"github.com/pierpaas/pier/store/storetest"
)

type etcdEnv struct {
	t   *testing.T
	ctx context.Context
	cli *clientv3.Client
}

func newEtcd(t *testing.T) *etcdEnv {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return &etcdEnv{t: t, ctx: ctx, cli: storetest.NewCluster(t, 1).Client()}
}

func (e *etcdEnv) put(key string, v any, opts ...store.Option) int64 {
	e.t.Helper()
	rev, err := store.Put(e.ctx, e.cli, key, v, opts...)
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

// addHost registers a host bound to a new lease, as an agent does, and
// returns the lease.
func (e *etcdEnv) addHost(h api.Host) clientv3.LeaseID {
	e.t.Helper()
	l, err := e.cli.Grant(e.ctx, 60)
	if err != nil {
		e.t.Fatal(err)
	}
	e.put(key(store.HostsPrefix, h.ID), h, store.WithLease(l.ID))
	return l.ID
}

func (e *etcdEnv) app(pt api.ProcessType, count int) {
	e.put(key(store.ReleasesPrefix, "shop-v1"), api.Release{ID: "shop-v1", App: "shop", Processes: map[string]api.ProcessType{"web": pt}})
	e.scale(count)
}

func (e *etcdEnv) scale(count int) {
	e.put(key(store.FormationsPrefix, "shop", "shop-v1"), api.Formation{App: "shop", Release: "shop-v1", Processes: map[string]int{"web": count}})
}

func (e *etcdEnv) plan() scheduler.Plan {
	e.t.Helper()
	s, err := scheduler.Load(e.ctx, e.cli, scheduler.Config{})
	if err != nil {
		e.t.Fatal(err)
	}
	return scheduler.Reconcile(s)
}

func (e *etcdEnv) rev() int64 {
	e.t.Helper()
	resp, err := e.cli.Get(e.ctx, "/pier/nothing")
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.Header.Revision
}

func (e *etcdEnv) count(prefix string) int {
	e.t.Helper()
	resp, err := e.cli.Get(e.ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		e.t.Fatal(err)
	}
	return int(resp.Count)
}

// wanted counts the jobs whose desired state is running.
func (e *etcdEnv) wanted() int {
	e.t.Helper()
	jobs, _, err := store.List[api.Job](e.ctx, e.cli, store.JobsPrefix)
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, j := range jobs {
		if j.Value.Desired == api.DesiredRunning {
			n++
		}
	}
	return n
}

func TestCommit(t *testing.T) {
	e := newEtcd(t)
	t.Run("batches", func(t *testing.T) {
		e.t = t
		for i := range 4 {
			e.addHost(host(fmt.Sprintf("h%d", i), 1<<20, 1<<20))
		}
		e.app(web(func(p *api.ProcessType) { p.Resources = api.Resources{} }), 300)
		p := e.plan()
		if len(p.Start) != 300 {
			t.Fatalf("%d starts", len(p.Start))
		}
		before := e.rev()
		if err := scheduler.Commit(e.ctx, e.cli, p); err != nil {
			t.Fatal(err)
		}
		// Each transaction guards the formation and rewrites its status
		// besides its job creations: 126 a transaction, so 3.
		if n := e.rev() - before; n != 3 {
			t.Errorf("%d transactions, want 3", n)
		}
		if n := e.count(store.JobsPrefix); n != 300 {
			t.Errorf("%d jobs in the store", n)
		}
		if st, _, err := store.Get[api.FormationStatus](e.ctx, e.cli, key(scheduler.FormationStatusPrefix, "shop", "shop-v1")); err != nil || st.App != "shop" {
			t.Errorf("formation status %+v, %v", st, err)
		}
		if p := e.plan(); !p.Empty() {
			t.Errorf("after commit the plan is not empty: %d starts %d stops", len(p.Start), len(p.Stop))
		}
	})
	t.Run("conflict", func(t *testing.T) {
		e.t = t
		e.scale(100)
		p := e.plan()
		if len(p.Stop) != 200 {
			t.Fatalf("%d stops", len(p.Stop))
		}
		// The formation moves after the plan read it.
		e.scale(150)
		err := scheduler.Commit(e.ctx, e.cli, p)
		var ce *store.ConflictError
		if !errors.Is(err, store.ErrConflict) || !errors.As(err, &ce) || ce.Key != key(store.FormationsPrefix, "shop", "shop-v1") {
			t.Fatalf("commit: %v", err)
		}
		// A job moves: only the transaction with its stop fails; the one
		// before it committed, and re-planning finishes the work.
		p = e.plan()
		if len(p.Stop) != 150 {
			t.Fatalf("%d stops", len(p.Stop))
		}
		last := p.Stop[len(p.Stop)-1].Job
		moved := last
		moved.Env = map[string]string{"X": "1"}
		e.put(key(store.JobsPrefix, last.HostID, last.ID), moved)
		if err := scheduler.Commit(e.ctx, e.cli, p); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("commit: %v", err)
		}
		p = e.plan()
		if len(p.Stop) == 0 || len(p.Stop) >= 150 {
			t.Fatalf("re-plan: %d stops", len(p.Stop))
		}
		if err := scheduler.Commit(e.ctx, e.cli, p); err != nil {
			t.Fatal(err)
		}
		if p := e.plan(); !p.Empty() {
			t.Errorf("not converged")
		}
	})
	t.Run("two schedulers", func(t *testing.T) {
		e.t = t
		e.scale(180)
		s, err := scheduler.Load(e.ctx, e.cli, scheduler.Config{})
		if err != nil {
			t.Fatal(err)
		}
		a := scheduler.Reconcile(s)
		s.Seed++
		b := scheduler.Reconcile(s)
		if err := scheduler.Commit(e.ctx, e.cli, a); err != nil {
			t.Fatal(err)
		}
		// b planned from the same revision on other hosts with other ids:
		// only the formation status serialises the two.
		if err := scheduler.Commit(e.ctx, e.cli, b); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second scheduler: %v", err)
		}
		if n := e.wanted(); n != 180 {
			t.Errorf("%d jobs desired running, want 180", n)
		}
	})
	t.Run("stale leader", func(t *testing.T) {
		e.t = t
		lease, err := e.cli.Grant(e.ctx, 60)
		if err != nil {
			t.Fatal(err)
		}
		leaderKey := "/pier/services/scheduler/a"
		leader := scheduler.Guard{Key: leaderKey, Rev: e.put(leaderKey, "a", store.WithLease(lease.ID))}
		e.scale(190)
		if err := scheduler.Commit(e.ctx, e.cli, e.plan(), leader); err != nil {
			t.Fatal(err)
		}
		e.scale(200)
		p := e.plan()
		// The leader is paused past its lease; when it resumes, its plan
		// commits nothing.
		if _, err := e.cli.Revoke(e.ctx, lease.ID); err != nil {
			t.Fatal(err)
		}
		before := e.count(store.JobsPrefix)
		err = scheduler.Commit(e.ctx, e.cli, p, leader)
		var ce *store.ConflictError
		if !errors.As(err, &ce) || ce.Key != leaderKey {
			t.Fatalf("stale leader's commit: %v", err)
		}
		if n := e.count(store.JobsPrefix); n != before {
			t.Errorf("stale leader wrote %d jobs", n-before)
		}
	})
}

func TestCommitHostLoss(t *testing.T) {
	e := newEtcd(t)
	var leases []clientv3.LeaseID
	for i := range 3 {
		leases = append(leases, e.addHost(host(fmt.Sprintf("h%d", i), 4096, 4000)))
	}
	e.app(web(), 3)
	if err := scheduler.Commit(e.ctx, e.cli, e.plan()); err != nil {
		t.Fatal(err)
	}
	// h0's lease expires.
	if _, err := e.cli.Revoke(e.ctx, leases[0]); err != nil {
		t.Fatal(err)
	}
	p := e.plan()
	if len(p.MarkLost) != 1 || len(p.Start) != 1 {
		t.Fatalf("plan: %d lost, %d starts", len(p.MarkLost), len(p.Start))
	}
	lostID := p.MarkLost[0].Status.ID
	// h0 comes back before the commit: marking its job lost must fail.
	back := e.addHost(host("h0", 4096, 4000))
	if err := scheduler.Commit(e.ctx, e.cli, p); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("commit with h0 back: %v", err)
	}
	if _, err := e.cli.Revoke(e.ctx, back); err != nil {
		t.Fatal(err)
	}
	p = e.plan()
	if err := scheduler.Commit(e.ctx, e.cli, p); err != nil {
		t.Fatal(err)
	}
	st, _, err := store.Get[api.JobStatus](e.ctx, e.cli, key(store.JobStatusPrefix, lostID))
	if err != nil || st.State != api.JobLost || st.HostID != "h0" {
		t.Errorf("status of the lost job: %+v, %v", st, err)
	}
	old, _, err := store.Get[api.Job](e.ctx, e.cli, key(store.JobsPrefix, "h0", lostID))
	if err != nil || old.Desired != api.DesiredShutdown {
		t.Errorf("lost job: %+v, %v", old, err)
	}
	repl := p.Start[0].Job
	if got, _, err := store.Get[api.Job](e.ctx, e.cli, key(store.JobsPrefix, repl.HostID, repl.ID)); err != nil || got.Restarts != 1 {
		t.Errorf("replacement: %+v, %v", got, err)
	}
	if p := e.plan(); !p.Empty() {
		t.Errorf("not converged: %+v", p)
	}
}
