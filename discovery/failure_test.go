package discovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// testOwnerDies kills the registering process's connection without
// deregistering: the instance must go down once its lease expires.
func testOwnerDies(t *testing.T, e *env) {
	ctx := ctxFor(t, time.Minute)
	r := e.registry(t, nil)
	w := watch(t, r, ctx, "worker")
	w.expectCurrent()

	owner := e.c.Client()
	reg, err := New(owner, WithPrefix(prefix(t)), WithLogger(testLogger())).
		Register(ctx, "worker", Instance{ID: "w1", Addr: "10.0.0.1:80"}, WithTTL(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	w.expect(EventUp, "w1")
	w.expect(EventLeader, "w1")

	died := time.Now()
	owner.Close()
	w.expectWithin(15*time.Second, EventDown, "w1")
	took := time.Since(died)
	w.expect(EventLeader, "")
	if took < time.Second {
		t.Errorf("down %s after the owner died: the lease was revoked, not expired", took)
	}
	t.Logf("down %s after the owner died", took)
	select {
	case <-reg.Done():
	case <-time.After(5 * time.Second):
		t.Error("Done not closed after the owner's client closed")
	}
}

// testLeaderElection: the oldest instance leads, its death hands over to
// the next oldest, and Resign sends it to the back of the line.
func testLeaderElection(t *testing.T, e *env) {
	ctx := ctxFor(t, time.Minute)
	r := e.registry(t, nil)
	w := watch(t, r, ctx, "sched")
	w.expectCurrent()

	clients := map[string]*clientv3.Client{}
	regs := map[string]*Registration{}
	for i, id := range []string{"a", "b", "c"} {
		clients[id] = e.c.Client()
		reg, err := New(clients[id], WithPrefix(prefix(t)), WithLogger(testLogger())).
			Register(ctx, "sched", Instance{ID: id, Addr: fmt.Sprintf("10.0.0.%d:80", i+1)}, WithTTL(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reg.Close() })
		regs[id] = reg
		w.expect(EventUp, id)
		if id == "a" {
			w.expect(EventLeader, "a")
		}
	}
	leaderIs := func(want string) {
		t.Helper()
		l, err := r.Leader(ctx, "sched")
		if err != nil || l.ID != want {
			t.Fatalf("Leader = %q, %v; want %q", l.ID, err, want)
		}
	}
	leaderIs("a")

	// The leader's process dies.
	clients["a"].Close()
	w.expectWithin(15*time.Second, EventDown, "a")
	w.expect(EventLeader, "b")
	leaderIs("b")

	if err := regs["b"].Resign(ctx); err != nil {
		t.Fatal(err)
	}
	w.expect(EventDown, "b")
	w.expect(EventLeader, "c")
	w.expect(EventUp, "b")
	leaderIs("c")
	insts, _ := r.Instances(ctx, "sched")
	if got := instanceIDs(insts); !slices.Equal(got, []string{"c", "b"}) {
		t.Errorf("line after resign: %v", got)
	}

	regs["c"].Close()
	w.expect(EventDown, "c")
	w.expect(EventLeader, "b")
	leaderIs("b")
}

// testReregister revokes a registration's lease from elsewhere: by default
// it comes back under a new lease, at the back of the line.
func testReregister(t *testing.T, e *env) {
	ctx := ctxFor(t, time.Minute)
	r := e.registry(t, nil)
	w := watch(t, r, ctx, "svc")
	w.expectCurrent()

	a := register(t, r, "svc", "a", "10.0.0.1:80", WithTTL(2*time.Second))
	w.expect(EventUp, "a")
	w.expect(EventLeader, "a")
	done, lease := a.Done(), a.Lease()
	if _, err := e.cli.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	w.expect(EventDown, "a")
	w.expect(EventLeader, "")
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after the lease was revoked")
	}
	w.expect(EventUp, "a")
	w.expect(EventLeader, "a")
	// Update waits for the re-registration to finish, which may still
	// be recording its new lease when watchers see the instance.
	if err := a.Update(ctx, map[string]string{"after": "reregister"}); err != nil {
		t.Errorf("Update after re-registration: %v", err)
	}
	w.expect(EventUpdate, "a")
	if a.Lease() == lease {
		t.Error("re-registered on the revoked lease")
	}
	select {
	case <-a.Done():
		t.Error("Done of the new lease is closed")
	default:
	}

	b := register(t, r, "svc", "b", "10.0.0.2:80", WithTTL(2*time.Second), WithReregister(false))
	w.expect(EventUp, "b")
	if _, err := e.cli.Revoke(ctx, b.Lease()); err != nil {
		t.Fatal(err)
	}
	w.expect(EventDown, "b")
	select {
	case <-b.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed")
	}
	w.quiet(3 * time.Second)
	if err := b.Update(ctx, nil); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("Update of a lost registration: %v", err)
	}
}

func testSharedSession(t *testing.T, e *env) {
	ctx := ctxFor(t, time.Minute)
	r := e.registry(t, nil)
	w := watch(t, r, ctx, "jobs")
	w.expectCurrent()

	sess, err := r.NewSession(ctx, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	regs := map[string]*Registration{}
	for i, id := range []string{"x", "y", "z"} {
		regs[id] = register(t, r, "jobs", id, fmt.Sprintf("10.0.0.%d:80", i+1), WithSession(sess))
		if regs[id].Lease() != sess.Lease() {
			t.Errorf("%s on lease %x, session lease %x", id, regs[id].Lease(), sess.Lease())
		}
		w.expect(EventUp, id)
		if id == "x" {
			w.expect(EventLeader, "x")
		}
	}
	// Deregistering one leaves the others and the lease alone.
	regs["y"].Close()
	w.expect(EventDown, "y")
	w.quiet(500 * time.Millisecond)
	select {
	case <-sess.Done():
		t.Fatal("closing a registration ended the shared session")
	default:
	}

	// Ending the session takes every instance on it down at once.
	if err := sess.Close(); err != nil {
		t.Fatal(err)
	}
	downs := map[string]bool{}
	var lastLeader *Instance
	for len(downs) < 2 || lastLeader != nil {
		ev := w.next(10 * time.Second)
		switch ev.Type {
		case EventDown:
			downs[ev.Instance.ID] = true
		case EventLeader:
			lastLeader = ev.Instance
		default:
			t.Fatalf("unexpected %+v", ev)
		}
	}
	if !downs["x"] || !downs["z"] {
		t.Errorf("downs %v", downs)
	}
	for _, id := range []string{"x", "z"} {
		select {
		case <-regs[id].Done():
		case <-time.After(5 * time.Second):
			t.Errorf("%s: Done not closed after the session ended", id)
		}
	}
	// Registrations on a shared lease leave re-registering to its owner.
	w.quiet(2 * time.Second)
}

func testServiceMeta(t *testing.T, e *env) {
	ctx := ctxFor(t, 30*time.Second)
	r := e.registry(t, nil)
	m, err := r.GetServiceMeta(ctx, "db")
	if err != nil || m.Revision != 0 || m.Data != nil {
		t.Fatalf("empty meta = %+v, %v", m, err)
	}
	rev1, err := r.SetServiceMeta(ctx, "db", []byte(`{"primary":"a"}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetServiceMeta(ctx, "db", []byte(`{"primary":"x"}`), 0); !errors.Is(err, ErrConflict) {
		t.Errorf("create over existing: %v", err)
	}
	rev2, err := r.SetServiceMeta(ctx, "db", []byte(`{"primary":"b"}`), rev1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetServiceMeta(ctx, "db", []byte(`{"primary":"c"}`), rev1); !errors.Is(err, ErrConflict) {
		t.Errorf("stale write: %v", err)
	}
	m, err = r.GetServiceMeta(ctx, "db")
	if err != nil || m.Revision != rev2 || string(m.Data) != `{"primary":"b"}` {
		t.Errorf("meta = %s@%d, %v; want b@%d", m.Data, m.Revision, err, rev2)
	}
	if err := r.DeleteServiceMeta(ctx, "db", rev1); !errors.Is(err, ErrConflict) {
		t.Errorf("stale delete: %v", err)
	}
	if err := r.DeleteServiceMeta(ctx, "db", rev2); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SetServiceMeta(ctx, "db", []byte(`{}`), 0); err != nil {
		t.Errorf("create after delete: %v", err)
	}
}

// waitWritable waits until a write goes through, so the writes a test
// makes after stopping a member are not caught in a failover.
func waitWritable(t *testing.T, cli *clientv3.Client) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cli.Put(ctx, "/t/probe", "x")
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd not writable: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testCompaction makes a watcher's only member miss changes and the
// history they need: the watch must re-list and report exactly the
// differences.
func testCompaction(t *testing.T, e *env) {
	ctx := ctxFor(t, 2*time.Minute)
	r := e.registry(t, nil)
	rw := e.registry(t, e.c.ClientOf(e.c.Endpoints()[0]))
	w := watch(t, rw, ctx, "svc")
	w.expectCurrent()
	x := register(t, r, "svc", "x", "10.0.0.1:80", WithTTL(10*time.Second))
	w.expect(EventUp, "x")
	w.expect(EventLeader, "x")
	u := register(t, r, "svc", "u", "10.0.0.2:80", WithTTL(10*time.Second))
	w.expect(EventUp, "u")

	e.c.Stop(0)
	waitWritable(t, e.cli)
	register(t, r, "svc", "y", "10.0.0.3:80", WithTTL(10*time.Second))
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if err := u.Update(ctx, map[string]string{"v": "2"}); err != nil {
		t.Fatal(err)
	}
	register(t, r, "svc", "z", "10.0.0.4:80", WithTTL(10*time.Second))
	resp, err := e.cli.Get(ctx, "/t/probe")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	e.c.Restart(0)

	w.expectWithin(time.Minute, EventDown, "x")
	w.expect(EventUp, "y")
	w.expect(EventUp, "z")
	ev := w.expect(EventUpdate, "u")
	if ev.Instance.Meta["v"] != "2" {
		t.Errorf("update carries %v", ev.Instance.Meta)
	}
	w.expectCurrent("u", "y", "z")
	w.expect(EventLeader, "u")
	w.quiet(time.Second)
}

// testMemberRestarts stops and restarts each member in turn while
// instances come and go; watchers on every endpoint and on one endpoint
// must see each change exactly once.
func testMemberRestarts(t *testing.T, e *env) {
	ctx := ctxFor(t, 3*time.Minute)
	r := e.registry(t, nil)
	register(t, r, "svc", "anchor", "10.0.0.1:80", WithTTL(10*time.Second))
	watchers := []watcher{
		watch(t, e.registry(t, e.c.Client()), ctx, "svc"),
		watch(t, e.registry(t, e.c.ClientOf(e.c.Endpoints()[1])), ctx, "svc"),
	}
	for _, w := range watchers {
		w.expectCurrent("anchor")
		w.expect(EventLeader, "anchor")
	}

	type change struct {
		t  EventType
		id string
	}
	var want []change
	var prev *Registration
	for i := range e.c.Size() {
		e.c.Stop(i)
		waitWritable(t, e.cli)
		id := fmt.Sprintf("r%d", i)
		reg := register(t, r, "svc", id, fmt.Sprintf("10.0.1.%d:80", i), WithTTL(10*time.Second))
		want = append(want, change{EventUp, id})
		if err := reg.Update(ctx, map[string]string{"i": id}); err != nil {
			t.Fatal(err)
		}
		want = append(want, change{EventUpdate, id})
		if prev != nil {
			if err := prev.Close(); err != nil {
				t.Fatal(err)
			}
			want = append(want, change{EventDown, prev.Instance().ID})
		}
		prev = reg
		e.c.Restart(i)
	}
	for n, w := range watchers {
		for _, c := range want {
			ev := w.expectWithin(time.Minute, c.t, c.id)
			t.Logf("watcher %d: %s %s at %d", n, ev.Type, ev.Instance.ID, ev.Revision)
		}
	}
	for _, w := range watchers {
		w.quiet(time.Second)
	}
}
