package scheduler_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
)

func TestCommitOneOffs(t *testing.T) {
	e := newEtcd(t)
	e.addHost(host("h0", 4096, 4000))
	e.addHost(host("h1", 4096, 4000))
	o, err := scheduler.SubmitOneOff(e.ctx, e.cli, api.OneOff{ID: "once", Args: []string{"x"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := scheduler.SubmitOneOff(e.ctx, e.cli, o); !errors.Is(err, store.ErrExists) {
		t.Fatalf("resubmitting: %v", err)
	}
	// Two schedulers plan it from the same revision, on other hosts: one
	// commits, the other conflicts on the one-off's status.
	s, err := scheduler.Load(e.ctx, e.cli, scheduler.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var a, b scheduler.Plan
	for seed := int64(0); seed < 64; seed++ {
		s.Seed = seed
		if p := scheduler.Reconcile(s); a.OneOffs == nil {
			a = p
		} else if p.OneOffs[0].Start.HostID != a.OneOffs[0].Start.HostID {
			b = p
			break
		}
	}
	if b.OneOffs == nil {
		t.Fatal("no two plans on different hosts")
	}
	if err := scheduler.Commit(e.ctx, e.cli, a); err != nil {
		t.Fatal(err)
	}
	if err := scheduler.Commit(e.ctx, e.cli, b); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second scheduler: %v", err)
	}
	if n := e.count(store.JobsPrefix); n != 1 {
		t.Fatalf("%d jobs", n)
	}
	st, err := scheduler.GetOneOff(e.ctx, e.cli, "once")
	if err != nil || st.Request == nil || st.Status == nil || st.Status.HostID != a.OneOffs[0].Start.HostID || st.Done() {
		t.Fatalf("state %+v, %v", st, err)
	}
	if p := e.plan(); !p.Empty() {
		t.Fatalf("not converged: %+v", p.OneOffs)
	}
	// Cancelled: its job is stopped.
	if err := scheduler.CancelOneOff(e.ctx, e.cli, "once"); err != nil {
		t.Fatal(err)
	}
	p := e.plan()
	if len(p.OneOffs) != 1 || p.OneOffs[0].Stop == nil {
		t.Fatalf("after cancelling: %+v", p.OneOffs)
	}
	if err := scheduler.Commit(e.ctx, e.cli, p); err != nil {
		t.Fatal(err)
	}
	j, _, err := store.Get[api.Job](e.ctx, e.cli, key(store.JobsPrefix, a.OneOffs[0].Start.HostID, "once"))
	if err != nil || j.Desired != api.DesiredShutdown {
		t.Fatalf("cancelled job %+v, %v", j, err)
	}
}

// A change to a job of no listed formation needs guards of its own.
func TestCommitLooseChangesNeedGuards(t *testing.T) {
	e := newEtcd(t)
	hostRev := e.put(key(store.HostsPrefix, "h0"), host("h0", 4096, 4000))
	job := api.Job{ID: "mine-1", HostID: "h0", Args: []string{"x"}, Desired: api.DesiredRunning, Scheduler: "mine"}
	err := scheduler.Commit(e.ctx, e.cli, scheduler.Plan{Start: []scheduler.Start{{Job: job}}})
	if err == nil || !strings.Contains(err.Error(), "does not guard") {
		t.Fatalf("unguarded start: %v", err)
	}
	hostGuard := scheduler.Guard{Key: key(store.HostsPrefix, "h0"), Rev: hostRev}
	if err := scheduler.Commit(e.ctx, e.cli, scheduler.Plan{Start: []scheduler.Start{{Job: job, Guards: []scheduler.Guard{hostGuard}}}}); err != nil {
		t.Fatal(err)
	}
	// The host moved: a start guarded by what was read commits nothing.
	e.put(key(store.HostsPrefix, "h0"), host("h0", 8192, 4000))
	job.ID = "mine-2"
	err = scheduler.Commit(e.ctx, e.cli, scheduler.Plan{Start: []scheduler.Start{{Job: job, Guards: []scheduler.Guard{hostGuard}}}})
	var ce *store.ConflictError
	if !errors.As(err, &ce) || ce.Key != hostGuard.Key {
		t.Fatalf("start on a moved host: %v", err)
	}
	if n := e.count(store.JobsPrefix); n != 1 {
		t.Fatalf("%d jobs", n)
	}
}
