package router

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pierpaas/pier/discovery"
)

// Watcher streams a service's discovery events; *discovery.Registry
// satisfies it, and tests feed events through a fake. The stream carries
// leader events too (discovery.EventLeader), which leader-only routes
// follow, so no second method is needed for them.
type Watcher interface {
	Watch(ctx context.Context, service string) (<-chan discovery.Event, error)
}

// Backend is one instance of a service as the proxy sees it, with its
// count of requests in flight.
type Backend struct {
	Instance discovery.Instance
	// inflight is shared by the Backends that stand for one instance at
	// one address across updates of its record.
	inflight *atomic.Int64
	// conns are the idle keep-alive connections of the proxy's HTTP/1.1
	// path to this address (see fastpath.go), shared like inflight.
	conns *connPool
	down  atomic.Bool
}

func newBackend(inst discovery.Instance, old *Backend) *Backend {
	b := &Backend{Instance: inst}
	if old != nil && old.Instance.Addr == inst.Addr {
		b.inflight = old.inflight
		b.conns = old.conns
	} else {
		b.inflight = new(atomic.Int64)
		b.conns = new(connPool)
	}
	return b
}

// markDown takes b out of service for good: no request picks it any
// more, and its idle connections are closed (those in use close when
// their request ends).
func (b *Backend) markDown() {
	b.down.Store(true)
	b.conns.close()
}

// InFlight is the number of requests the proxy has in flight to b.
func (b *Backend) InFlight() int64 { return b.inflight.Load() }

// Backends keeps, per service, the instances a discovery watch lists. A
// service's watch starts on its first lookup and runs until Retain drops
// the service or Close; its set is updated in place and an instance is
// never returned after its down event.
type Backends struct {
	w      Watcher
	ctx    context.Context
	cancel context.CancelFunc
	// count, when set, hears a service's number of backends after each
	// change, and -1 when its watch stops (the metrics' backends gauge).
	count func(service string, n int)

	mu       sync.Mutex
	services map[string]*serviceSet
	// snap is a copy of services, replaced (under mu) whenever services
	// changes, so that a request finds its service without taking mu.
	snap atomic.Pointer[map[string]*serviceSet]
}

type serviceSet struct {
	state  atomic.Pointer[backendSet] // replaced whole, never modified
	ready  chan struct{}              // closed on the first current event, or when the watch fails or ends
	cancel context.CancelFunc
}

// backendSet is one consistent view of a service: its backends, sorted by
// instance ID, and the ID of its discovery leader.
type backendSet struct {
	list     []*Backend
	leaderID string // "" when discovery names none
}

// byID finds a live backend by instance ID.
func (s *backendSet) byID(id string) *Backend {
	if s == nil || id == "" {
		return nil
	}
	i, ok := slices.BinarySearchFunc(s.list, id, func(b *Backend, id string) int {
		return strings.Compare(b.Instance.ID, id)
	})
	if !ok || s.list[i].down.Load() {
		return nil
	}
	return s.list[i]
}

// leader is the backend of the service's discovery leader, or nil while
// there is none (or it has just gone and its successor is not named yet:
// a leader-only route must never reach a follower).
func (s *backendSet) leader() *Backend {
	if s == nil {
		return nil
	}
	return s.byID(s.leaderID)
}

// NewBackends returns an empty set fed by w.
func NewBackends(w Watcher) *Backends {
	ctx, cancel := context.WithCancel(context.Background())
	return &Backends{w: w, ctx: ctx, cancel: cancel, services: make(map[string]*serviceSet)}
}

// Close stops every watch.
func (bs *Backends) Close() {
	bs.cancel()
	bs.mu.Lock()
	bs.services = make(map[string]*serviceSet)
	bs.published()
	bs.mu.Unlock()
}

// published copies services to snap; called with mu held after every
// change of services.
func (bs *Backends) published() {
	m := make(map[string]*serviceSet, len(bs.services))
	for k, v := range bs.services {
		m[k] = v
	}
	bs.snap.Store(&m)
}

// Retain stops the watches of services not in keep (the services the
// current route table references).
func (bs *Backends) Retain(keep map[string]bool) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	for name, s := range bs.services {
		if !keep[name] {
			s.cancel()
			delete(bs.services, name)
		}
	}
	bs.published()
}

// Watched lists the services whose watch runs, sorted.
func (bs *Backends) Watched() []string {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	var names []string
	for n := range bs.services {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// List returns the current backends of service, starting its watch if
// needed and waiting, until ctx ends, for the watch's first listing.
func (bs *Backends) List(ctx context.Context, service string) []*Backend {
	if v := bs.view(ctx, service); v != nil {
		return v.list
	}
	return nil
}

// Leader returns the backend of service's discovery leader, waiting like
// List; nil when there is none.
func (bs *Backends) Leader(ctx context.Context, service string) *Backend {
	return bs.view(ctx, service).leader()
}

// view is the service's current set, after the watch's first listing; nil
// if ctx ends first.
func (bs *Backends) view(ctx context.Context, service string) *backendSet {
	s := bs.set(service)
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil
	}
	return s.state.Load()
}

// viewWait is view with a wait of at most d, and neither a context nor a
// timer once the service's first listing is in (every request but a
// service's first few).
func (bs *Backends) viewWait(ctx context.Context, service string, d time.Duration) *backendSet {
	s := bs.set(service)
	select {
	case <-s.ready:
		return s.state.Load()
	default:
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.ready:
	case <-t.C:
		return nil
	case <-ctx.Done():
		return nil
	}
	return s.state.Load()
}

// Pick chooses a backend of service by the power of two random choices
// on in-flight requests, leaving out exclude (a backend that already
// failed this request). It returns nil when the service has no backend.
func (bs *Backends) Pick(ctx context.Context, service string, exclude *Backend) *Backend {
	return pick(bs.List(ctx, service), exclude)
}

func pick(list []*Backend, exclude *Backend) *Backend {
	n := len(list)
	if n == 0 {
		return nil
	}
	ok := func(b *Backend) bool { return b != exclude && !b.down.Load() }
	if n == 1 {
		if ok(list[0]) {
			return list[0]
		}
		return nil
	}
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
	if j >= i {
		j++
	}
	a, b := list[i], list[j]
	switch {
	case ok(a) && ok(b):
		if b.inflight.Load() < a.inflight.Load() {
			return b
		}
		return a
	case ok(a):
		return a
	case ok(b):
		return b
	}
	// Both unusable: take the least loaded usable one, if any.
	var best *Backend
	for _, c := range list {
		if ok(c) && (best == nil || c.inflight.Load() < best.inflight.Load()) {
			best = c
		}
	}
	return best
}

func (bs *Backends) set(service string) *serviceSet {
	if m := bs.snap.Load(); m != nil {
		if s := (*m)[service]; s != nil {
			return s
		}
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if s := bs.services[service]; s != nil {
		return s
	}
	ctx, cancel := context.WithCancel(bs.ctx)
	s := &serviceSet{ready: make(chan struct{}), cancel: cancel}
	bs.services[service] = s
	bs.published()
	go bs.run(ctx, service, s)
	return s
}

// run follows one service's watch. When the watch fails or ends on its
// own, the set empties and leaves the map, so the next lookup starts a
// new watch rather than trusting a stale list.
func (bs *Backends) run(ctx context.Context, service string, s *serviceSet) {
	var readyOnce sync.Once
	markReady := func() { readyOnce.Do(func() { close(s.ready) }) }
	defer func() {
		s.clear()
		markReady()
		bs.mu.Lock()
		switch bs.services[service] {
		case s:
			delete(bs.services, service)
			bs.published()
			fallthrough
		case nil:
			// Not when a newer watch of the service took over: its
			// count is the current one.
			if bs.count != nil {
				bs.count(service, -1)
			}
		}
		bs.mu.Unlock()
		s.cancel()
	}()
	ch, err := bs.w.Watch(ctx, service)
	if err != nil {
		return
	}
	byID := make(map[string]*Backend)
	leader := ""
	publish := func() {
		s.publish(byID, leader)
		if bs.count != nil {
			// Under mu, and only while this watch is the service's
			// current one, so an old watch winding down cannot report
			// over a new one.
			bs.mu.Lock()
			if bs.services[service] == s {
				bs.count(service, len(byID))
			}
			bs.mu.Unlock()
		}
	}
	for ev := range ch {
		switch ev.Type {
		case discovery.EventCurrent:
			next := make(map[string]*Backend, len(ev.Instances))
			for _, inst := range ev.Instances {
				next[inst.ID] = newBackend(inst, byID[inst.ID])
			}
			for id, b := range byID {
				if n := next[id]; n == nil || n.Instance.Addr != b.Instance.Addr {
					b.markDown()
				}
			}
			byID = next
			// Instances come oldest first, and the oldest is the leader:
			// the leader event that follows confirms it, and meanwhile a
			// leader-only route's first request need not fail.
			leader = ""
			if len(ev.Instances) > 0 {
				leader = ev.Instances[0].ID
			}
			publish()
			markReady()
		case discovery.EventLeader:
			leader = ""
			if ev.Instance != nil {
				leader = ev.Instance.ID
			}
			publish()
		case discovery.EventUp, discovery.EventUpdate:
			if ev.Instance == nil {
				continue
			}
			inst := *ev.Instance
			old := byID[inst.ID]
			if old != nil && old.Instance.Addr != inst.Addr {
				old.markDown()
			}
			byID[inst.ID] = newBackend(inst, old)
			publish()
		case discovery.EventDown:
			if ev.Instance == nil {
				continue
			}
			if b := byID[ev.Instance.ID]; b != nil {
				// Flag first: a request holding the old list skips it.
				b.markDown()
				delete(byID, ev.Instance.ID)
				if leader == ev.Instance.ID {
					// Its successor comes in the next leader event;
					// until then a leader-only route has no backend.
					leader = ""
				}
				publish()
			}
		}
	}
}

func (s *serviceSet) publish(byID map[string]*Backend, leader string) {
	list := make([]*Backend, 0, len(byID))
	for _, b := range byID {
		list = append(list, b)
	}
	slices.SortFunc(list, func(a, b *Backend) int { return strings.Compare(a.Instance.ID, b.Instance.ID) })
	s.state.Store(&backendSet{list: list, leaderID: leader})
}

// clear empties the set for good, flagging every backend down so that
// requests holding the old list skip them too.
func (s *serviceSet) clear() {
	if v := s.state.Load(); v != nil {
		for _, b := range v.list {
			b.markDown()
		}
	}
	s.state.Store(&backendSet{})
}
