package store_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/store"
	"github.com/pierpaas/pier/store/storetest"
)

// recorder keeps a cache's events as strings, in the order delivered.
type recorder struct {
	mu  sync.Mutex
	evs []string
}

func record(c *store.Cache[app]) *recorder {
	r := &recorder{}
	c.OnEvent(func(e store.Event[app]) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.evs = append(r.evs, eventString(e))
	})
	return r
}

func eventString(e store.Event[app]) string {
	old := "-"
	if e.Old != nil {
		old = strconv.Itoa(e.Old.Value.N)
	}
	if e.Type == store.EventDelete {
		return fmt.Sprintf("del %s %s @%d", e.Key, old, e.Revision)
	}
	return fmt.Sprintf("put %s %s->%d @%d", e.Key, old, e.New.Value.N, e.Revision)
}

func (r *recorder) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evs)
}

// expect waits for want, then a little longer so that a late duplicate
// would show too.
func (r *recorder) expect(t *testing.T, want []string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(r.events()) < len(want) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if got := r.events(); !slices.Equal(got, want) {
		t.Fatalf("events:\n got %q\nwant %q", got, want)
	}
}

// script writes through kv and predicts the events a cache must deliver.
type script struct {
	t     *testing.T
	ctx   context.Context
	kv    clientv3.KV
	model map[string]int
	want  []string
}

func newScript(t *testing.T, ctx context.Context, kv clientv3.KV) *script {
	return &script{t: t, ctx: ctx, kv: kv, model: map[string]int{}}
}

func (s *script) put(key string, n int) int64 {
	s.t.Helper()
	rev, err := store.Put(s.ctx, s.kv, key, app{Name: key, N: n})
	if err != nil {
		s.t.Fatal(err)
	}
	old := "-"
	if o, ok := s.model[key]; ok {
		old = strconv.Itoa(o)
	}
	s.want = append(s.want, fmt.Sprintf("put %s %s->%d @%d", key, old, n, rev))
	s.model[key] = n
	return rev
}

func (s *script) del(key string) int64 {
	s.t.Helper()
	resp, err := s.kv.Delete(s.ctx, key)
	if err != nil {
		s.t.Fatal(err)
	}
	if o, ok := s.model[key]; ok {
		s.want = append(s.want, fmt.Sprintf("del %s %d @%d", key, o, resp.Header.Revision))
		delete(s.model, key)
	}
	return resp.Header.Revision
}

func runCache(t *testing.T, ctx context.Context, c *store.Cache[app]) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-c.Synced():
	case err := <-done:
		t.Fatalf("cache stopped before sync: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("cache not synced")
	}
}

func waitStarted(t *testing.T, started <-chan struct{}) {
	t.Helper()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("no watch started")
	}
}

func waitRevision(t *testing.T, c *store.Cache[app], rev int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for c.Revision() < rev {
		if time.Now().After(deadline) {
			t.Fatalf("cache at %d, want %d", c.Revision(), rev)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkConverged compares the cache with a fresh list of the store.
func checkConverged(t *testing.T, ctx context.Context, kv clientv3.KV, c *store.Cache[app], prefix string) {
	t.Helper()
	want, rev, err := store.List[app](ctx, kv, prefix)
	if err != nil {
		t.Fatal(err)
	}
	waitRevision(t, c, rev)
	if got := c.List(); !slices.Equal(got, want) {
		t.Fatalf("cache at %d holds %+v\nstore at %d holds %+v", c.Revision(), got, rev, want)
	}
}

func TestCache(t *testing.T) {
	cluster := storetest.NewCluster(t, 1)
	cli := cluster.Client()

	t.Run("SyncAndEvents", func(t *testing.T) {
		ctx := testCtx(t)
		const p = "/test/cache/events/"
		s := newScript(t, ctx, cli)
		s.put(p+"a", 1)
		last := s.put(p+"b", 1)
		s.put("/test/cache/eventsx", 1) // a sibling, not under the prefix
		s.want = s.want[:2]

		c := store.NewCache[app](cli, p)
		rec := record(c)
		sub, unsub := c.Subscribe()
		defer unsub()
		runCache(t, ctx, c)
		if c.Revision() < last {
			t.Fatalf("synced at %d, before the last write %d", c.Revision(), last)
		}
		if it, ok := c.Get(p + "a"); !ok || it.Value.N != 1 {
			t.Fatalf("Get(a) = %+v, %v", it, ok)
		}
		select {
		case <-sub:
		case <-time.After(10 * time.Second):
			t.Fatal("no signal after sync")
		}

		s.put(p+"a", 2)
		s.del(p + "b")
		s.put(p+"c", 1)
		if _, err := cli.Put(ctx, p+"bad", "{not json"); err != nil {
			t.Fatal(err)
		}
		s.put(p+"c", 2)
		if _, err := cli.Put(ctx, p+"c", "garbage"); err != nil { // readable value becomes unreadable
			t.Fatal(err)
		}
		rev := s.del(p + "c") // already gone from the cache: no event
		s.want = append(s.want[:len(s.want)-1], fmt.Sprintf("del %sc 2 @%d", p, rev-1))
		s.put(p+"d", 1)
		rec.expect(t, s.want)
		checkConverged(t, ctx, cli, c, p)
		select {
		case <-sub:
		default:
			t.Fatal("no signal after changes")
		}
		if _, ok := c.Get(p + "bad"); ok {
			t.Fatal("cache holds an undecodable value")
		}
	})

	t.Run("ResumeAfterInterruptedWatch", func(t *testing.T) {
		ctx := testCtx(t)
		const p = "/test/cache/resume/"
		c := store.NewCache[app](cli, p)
		started := make(chan struct{}, 100)
		store.SetBeforeWatch(c, func() { started <- struct{}{} })
		rec := record(c)
		runCache(t, ctx, c)
		waitStarted(t, started)
		s := newScript(t, ctx, cli)
		for i := range 60 {
			key := p + strconv.Itoa(i%7)
			if i%5 == 4 {
				s.del(key)
			} else {
				s.put(key, i)
			}
			if i%6 == 0 {
				// Writes continue while the watch is down.
				store.InterruptWatch(c)
				rev := s.put(p+"x", i)
				waitStarted(t, started)
				waitRevision(t, c, rev) // so that backoff does not grow
			}
		}
		rec.expect(t, s.want)
		checkConverged(t, ctx, cli, c, p)
	})

	t.Run("CompactionWhileWatchDown", func(t *testing.T) {
		ctx := testCtx(t)
		const p = "/test/cache/compact/"
		s := newScript(t, ctx, cli)
		ra := s.put(p+"a", 1)
		s.put(p+"b", 1)
		s.put(p+"c", 1)

		c := store.NewCache[app](cli, p)
		started := make(chan struct{}, 100)
		release := make(chan struct{})
		var hold atomic.Bool
		store.SetBeforeWatch(c, func() {
			held := hold.Load() // before the signal, which the test acts on
			started <- struct{}{}
			if held {
				<-release
			}
		})
		rec := record(c)
		runCache(t, ctx, c)
		var once sync.Once
		unblock := func() { once.Do(func() { close(release) }) }
		t.Cleanup(unblock) // before the cache is stopped, should the test fail
		waitStarted(t, started)
		hold.Store(true)
		store.InterruptWatch(c)
		waitStarted(t, started) // the next watch waits for release

		s.put(p+"a", 2)
		s.del(p + "b")
		s.put(p+"d", 1)
		s.put(p+"e", 1)
		rev := s.del(p + "e")
		if _, err := cli.Compact(ctx, rev); err != nil {
			t.Fatal(err)
		}
		items, _, _ := store.List[app](ctx, cli, p)
		unblock()

		// The cache cannot replay the lost history: it re-lists and emits
		// the difference, deletes first.
		want := s.want[:3]
		want = append(want,
			fmt.Sprintf("del %sb 1 @%d", p, rev),
			fmt.Sprintf("put %sa 1->2 @%d", p, items[0].ModRevision),
			fmt.Sprintf("put %sd -->1 @%d", p, items[2].ModRevision))
		rec.expect(t, want)
		if c.Revision() != rev {
			t.Fatalf("cache at %d after re-list, want %d", c.Revision(), rev)
		}
		if it, _ := c.Get(p + "a"); it.ModRevision <= ra {
			t.Fatalf("a is stale: %+v", it)
		}
		// And it watches again from the re-listed revision.
		s.want = want
		s.put(p+"f", 1)
		rec.expect(t, s.want)
		checkConverged(t, ctx, cli, c, p)
	})
}

func TestCacheMemberRestart(t *testing.T) {
	cluster := storetest.NewCluster(t, 3)
	eps := cluster.Endpoints()
	// The cache talks to one follower only, so that stopping it cuts the
	// cache off; writes go through the others.
	f := (cluster.Leader() + 1) % 3
	var others []string
	for i, ep := range eps {
		if i != f {
			others = append(others, ep)
		}
	}
	writer := cluster.ClientOf(others...)

	t.Run("NoEventMissedOrRepeated", func(t *testing.T) {
		ctx := testCtx(t)
		const p = "/test/restart/seq/"
		c := store.NewCache[app](cluster.ClientOf(eps[f]), p)
		rec := record(c)
		runCache(t, ctx, c)
		s := newScript(t, ctx, writer)
		step := func(from, to int) {
			for i := from; i < to; i++ {
				key := p + strconv.Itoa(i%4)
				if i%3 == 2 {
					s.del(key)
				} else {
					s.put(key, i)
				}
			}
		}
		step(0, 10)
		rec.expect(t, s.want) // the watch is live before the member goes
		// Stop takes ~7 s: etcd waits its request timeout for the cache's
		// open watch stream before it closes the connection.
		cluster.Stop(f)
		step(10, 20)
		cluster.Restart(f)
		step(20, 30)
		rec.expect(t, s.want)
		checkConverged(t, ctx, writer, c, p)
	})

	// The same as TestCache/CompactionWhileWatchDown, through etcd's own
	// watch resumption rather than the cache's.
	t.Run("CompactedWhileMemberDown", func(t *testing.T) {
		ctx := testCtx(t)
		const p = "/test/restart/compact/"
		c := store.NewCache[app](cluster.ClientOf(eps[f]), p)
		rec := record(c)
		s := newScript(t, ctx, writer)
		s.put(p+"a", 1)
		s.put(p+"b", 1)
		runCache(t, ctx, c)
		rec.expect(t, s.want)
		cluster.Stop(f)
		s.put(p+"a", 2)
		s.del(p + "b")
		s.put(p+"c", 1)
		rev := s.put(p+"c", 2)
		if _, err := writer.Compact(ctx, rev); err != nil {
			t.Fatal(err)
		}
		want := append(s.want[:2],
			fmt.Sprintf("del %sb 1 @%d", p, rev),
			fmt.Sprintf("put %sa 1->2 @%d", p, rev-3),
			fmt.Sprintf("put %sc -->2 @%d", p, rev))
		cluster.Restart(f)
		rec.expect(t, want)
		checkConverged(t, ctx, writer, c, p)
	})
}
