package discovery

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/store/storetest"
)

// One cluster serves every subtest (starting one takes seconds); each
// subtest writes under its own prefix. The ones that stop members run last.
func TestDiscovery(t *testing.T) {
	c := storetest.NewCluster(t, 3)
	e := &env{c: c, cli: c.Client()}
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, *env)
	}{
		{"BadInput", testBadInput},
		{"RegisterWatch", testRegisterWatch},
		{"OwnerDies", testOwnerDies},
		{"LeaderElection", testLeaderElection},
		{"Reregister", testReregister},
		{"SharedSession", testSharedSession},
		{"ServiceMeta", testServiceMeta},
		{"DNS", testDNS},
		{"Compaction", testCompaction},
		{"MemberRestarts", testMemberRestarts},
	} {
		if !t.Run(tc.name, func(t *testing.T) { tc.fn(t, e) }) {
			return
		}
	}
}

type env struct {
	c   *storetest.Cluster
	cli *clientv3.Client
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// prefix isolates a subtest's keys.
func prefix(t *testing.T) string {
	return "/t/" + strings.ReplaceAll(t.Name(), "/", "-")
}

func (e *env) registry(t *testing.T, cli *clientv3.Client) *Registry {
	if cli == nil {
		cli = e.cli
	}
	return New(cli, WithPrefix(prefix(t)), WithLogger(testLogger()))
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

type watcher struct {
	t  *testing.T
	ch <-chan Event
}

func watch(t *testing.T, r *Registry, ctx context.Context, service string) watcher {
	t.Helper()
	ch, err := r.Watch(ctx, service)
	if err != nil {
		t.Fatal(err)
	}
	return watcher{t, ch}
}

func (w watcher) next(timeout time.Duration) Event {
	w.t.Helper()
	select {
	case ev, ok := <-w.ch:
		if !ok {
			w.t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(timeout):
		w.t.Fatalf("no event within %s", timeout)
	}
	return Event{}
}

// expect reads the next event and checks its type and instance ID ("" for
// a leader event without leader).
func (w watcher) expect(typ EventType, id string) Event {
	w.t.Helper()
	return w.expectWithin(10*time.Second, typ, id)
}

func (w watcher) expectWithin(timeout time.Duration, typ EventType, id string) Event {
	w.t.Helper()
	ev := w.next(timeout)
	got := ""
	if ev.Instance != nil {
		got = ev.Instance.ID
	}
	if ev.Type != typ || got != id {
		w.t.Fatalf("got event %s %q (%+v), want %s %q", ev.Type, got, ev, typ, id)
	}
	return ev
}

func (w watcher) expectCurrent(ids ...string) Event {
	w.t.Helper()
	ev := w.next(10 * time.Second)
	if ev.Type != EventCurrent || !slices.Equal(instanceIDs(ev.Instances), ids) {
		w.t.Fatalf("got %s %v, want current %v", ev.Type, instanceIDs(ev.Instances), ids)
	}
	return ev
}

func (w watcher) quiet(d time.Duration) {
	w.t.Helper()
	select {
	case ev := <-w.ch:
		w.t.Fatalf("unexpected event %+v", ev)
	case <-time.After(d):
	}
}

func (w watcher) closed(timeout time.Duration) {
	w.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case _, ok := <-w.ch:
			if !ok {
				return
			}
		case <-deadline:
			w.t.Fatal("watch channel not closed")
		}
	}
}

func instanceIDs(insts []Instance) []string {
	ids := []string{}
	for _, i := range insts {
		ids = append(ids, i.ID)
	}
	return ids
}

func register(t *testing.T, r *Registry, service, id, addr string, opts ...RegisterOption) *Registration {
	t.Helper()
	reg, err := r.Register(ctxFor(t, 10*time.Second), service, Instance{ID: id, Addr: addr, Proto: "http"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return reg
}

func testBadInput(t *testing.T, e *env) {
	r := e.registry(t, nil)
	ctx := ctxFor(t, 30*time.Second)
	leases := func() int {
		resp, err := e.cli.Leases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Leases)
	}
	before := leases()
	ok := Instance{ID: "a", Addr: "10.0.0.1:80"}
	big := map[string]string{"k": strings.Repeat("x", MaxMetaSize)}
	for _, tc := range []struct {
		service string
		inst    Instance
		want    error
	}{
		{"", ok, ErrInvalidName},
		{"Web", ok, ErrInvalidName},
		{"-web", ok, ErrInvalidName},
		{"web-", ok, ErrInvalidName},
		{"a..b", ok, ErrInvalidName},
		{"a_b", ok, ErrInvalidName},
		{"web/x", ok, ErrInvalidName},
		{strings.Repeat("a", 64), ok, ErrInvalidName},
		{"x." + strings.Repeat("a", 64), ok, ErrInvalidName},
		{"web", Instance{ID: "A", Addr: "10.0.0.1:80"}, ErrInvalidName},
		{"web", Instance{ID: "a/b", Addr: "10.0.0.1:80"}, ErrInvalidName},
		{"web", Instance{ID: "a.b", Addr: "10.0.0.1:80"}, ErrInvalidName},
		{"web", Instance{ID: "leader", Addr: "10.0.0.1:80"}, ErrInvalidName},
		{"web", Instance{ID: "a", Addr: "10.0.0.1:80", Proto: "HTTP"}, ErrInvalidName},
		{"web", Instance{ID: "a", Addr: ""}, ErrInvalidAddr},
		{"web", Instance{ID: "a", Addr: "10.0.0.1"}, ErrInvalidAddr},
		{"web", Instance{ID: "a", Addr: ":80"}, ErrInvalidAddr},
		{"web", Instance{ID: "a", Addr: "h:0"}, ErrInvalidAddr},
		{"web", Instance{ID: "a", Addr: "h:http"}, ErrInvalidAddr},
		{"web", Instance{ID: "a", Addr: "h:70000"}, ErrInvalidAddr},
		{"web", Instance{ID: "a", Addr: "h:80", Meta: big}, ErrMetaTooLarge},
	} {
		if _, err := r.Register(ctx, tc.service, tc.inst); !errors.Is(err, tc.want) {
			t.Errorf("Register(%q, %+v) = %v, want %v", tc.service, tc.inst.ID, err, tc.want)
		}
	}
	if _, err := r.Watch(ctx, "Bad"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("Watch: %v", err)
	}
	if _, err := r.Instances(ctx, "a..b"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("Instances: %v", err)
	}
	if _, err := r.SetServiceMeta(ctx, "web", make([]byte, MaxServiceMetaSize+1), 0); !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("SetServiceMeta too large: %v", err)
	}
	if _, err := r.SetServiceMeta(ctx, "web", []byte("{"), 0); !errors.Is(err, ErrInvalidMeta) {
		t.Errorf("SetServiceMeta bad JSON: %v", err)
	}
	if _, err := r.SetServiceMeta(ctx, "We b", []byte("{}"), 0); !errors.Is(err, ErrInvalidName) {
		t.Errorf("SetServiceMeta bad name: %v", err)
	}

	// An accepted registration can still not grow its metadata too large.
	reg := register(t, r, "web", "ok", "10.0.0.1:80")
	if err := reg.Update(ctx, big); !errors.Is(err, ErrMetaTooLarge) {
		t.Errorf("Update: %v", err)
	}
	reg.Close()

	resp, err := e.cli.Get(ctx, prefix(t), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 0 {
		t.Errorf("bad input wrote %d keys: %s", len(resp.Kvs), resp.Kvs[0].Key)
	}
	if after := leases(); after > before {
		t.Errorf("bad input granted leases: %d before, %d after", before, after)
	}
}

func testRegisterWatch(t *testing.T, e *env) {
	r := e.registry(t, nil)
	ctx := ctxFor(t, time.Minute)
	wctx, stop := context.WithCancel(ctx)
	w := watch(t, r, wctx, "web")
	w.expectCurrent()

	a := register(t, r, "web", "a", "10.0.0.1:80")
	w.expect(EventUp, "a")
	ev := w.expect(EventLeader, "a")
	if ev.Instance.Addr != "10.0.0.1:80" || ev.Instance.Service != "web" || ev.Instance.CreateRevision == 0 {
		t.Errorf("leader event carries %+v", ev.Instance)
	}
	if err := a.Update(ctx, map[string]string{"v": "2"}); err != nil {
		t.Fatal(err)
	}
	ev = w.expect(EventUpdate, "a")
	if ev.Instance.Meta["v"] != "2" {
		t.Errorf("update carries meta %v", ev.Instance.Meta)
	}
	// A generated ID.
	b, err := r.Register(ctx, "web", Instance{Addr: "10.0.0.2:80"})
	if err != nil {
		t.Fatal(err)
	}
	bid := b.Instance().ID
	if validID(bid) != nil {
		t.Errorf("generated ID %q is not a valid ID", bid)
	}
	if b.Instance().Proto != "tcp" {
		t.Errorf("default proto %q", b.Instance().Proto)
	}
	w.expect(EventUp, bid)

	insts, err := r.Instances(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if got := instanceIDs(insts); !slices.Equal(got, []string{"a", bid}) {
		t.Errorf("Instances = %v", got)
	}
	if l, err := r.Leader(ctx, "web"); err != nil || l.ID != "a" {
		t.Errorf("Leader = %v, %v", l.ID, err)
	}

	// A second watcher starts with the current set and its leader.
	w2 := watch(t, r, wctx, "web")
	w2.expectCurrent("a", bid)
	w2.expect(EventLeader, "a")

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Done():
	default:
		t.Error("Done not closed after Close")
	}
	if err := a.Update(ctx, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Update after Close: %v", err)
	}
	w.expect(EventDown, "a")
	w.expect(EventLeader, bid)
	b.Close()
	w.expect(EventDown, bid)
	w.expect(EventLeader, "")
	if _, err := r.Leader(ctx, "web"); !errors.Is(err, ErrNoLeader) {
		t.Errorf("Leader of empty service: %v", err)
	}

	// Ending the context closes the channel.
	stop()
	w.closed(5 * time.Second)
}
