package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// EventType says whether a key was written or removed.
type EventType int

const (
	EventPut EventType = iota + 1
	EventDelete
)

func (t EventType) String() string {
	switch t {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one change seen by a Cache. Old is nil when the key is new and
// New is nil when it was deleted. After a re-list, events are synthetic:
// they describe the difference between the old and new contents, not every
// write in between, and a delete carries the re-list's revision.
type Event[T any] struct {
	Type     EventType
	Key      string
	Old, New *Item[T]
	Revision int64
}

var errCompacted = errors.New("store: watch history compacted")

// Cache mirrors every key under a prefix for control loops that read often
// and act on change. Get, List and event values share the cached T: treat
// them as read-only (copy before changing a map or slice inside one).
type Cache[T any] struct {
	client *clientv3.Client
	prefix string
	log    *slog.Logger

	running    atomic.Bool
	synced     chan struct{}
	syncedOnce sync.Once

	mu          sync.RWMutex
	items       map[string]Item[T]
	rev         int64
	handlers    []func(Event[T])
	subs        map[chan struct{}]struct{}
	cancelWatch context.CancelFunc

	beforeWatch atomic.Pointer[func()] // test hook
}

// NewCache returns a cache of prefix; it fills once Run starts.
func NewCache[T any](client *clientv3.Client, prefix string) *Cache[T] {
	return &Cache[T]{
		client: client,
		prefix: prefix,
		log:    slog.Default().With("component", "store.cache", "prefix", prefix),
		synced: make(chan struct{}),
		items:  map[string]Item[T]{},
		subs:   map[chan struct{}]struct{}{},
	}
}

// Synced is closed once the first list is in the cache.
func (c *Cache[T]) Synced() <-chan struct{} { return c.synced }

// Revision is the store revision the cache reflects: every change up to it,
// and none after it.
func (c *Cache[T]) Revision() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rev
}

// Get returns the cached value of key.
func (c *Cache[T]) Get(key string) (Item[T], bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	it, ok := c.items[key]
	return it, ok
}

// List returns the cached items in key order.
func (c *Cache[T]) List() []Item[T] {
	c.mu.RLock()
	items := slices.Collect(maps.Values(c.items))
	c.mu.RUnlock()
	slices.SortFunc(items, func(a, b Item[T]) int { return strings.Compare(a.Key, b.Key) })
	return items
}

// OnEvent calls fn for every change, in revision order, from the goroutine
// running the cache and after the cache reflects the change. fn must return
// quickly: the cache waits for it. Register handlers before Run to see the
// initial list as puts.
func (c *Cache[T]) OnEvent(fn func(Event[T])) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handlers = append(c.handlers, fn)
}

// Subscribe returns a channel that receives a value after changes, several
// changes coalescing into one signal, for a loop that re-reads the cache
// when woken. cancel stops the signals; the channel is not closed.
func (c *Cache[T]) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	c.subs[ch] = struct{}{}
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		delete(c.subs, ch)
		c.mu.Unlock()
	}
}

// Run fills the cache and keeps it current until ctx ends or the client is
// closed. Failures are retried with backoff, never returned.
func (c *Cache[T]) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("store: cache already running")
	}
	var delay time.Duration
	relist := true
	for {
		var err error
		if relist {
			if err = c.relist(ctx); err == nil {
				relist = false
				delay = 0
				continue
			}
		} else {
			before := c.Revision()
			err = c.watch(ctx)
			if errors.Is(err, errCompacted) {
				c.log.Info("store: watch history compacted, re-listing", "revision", before)
				relist = true
				continue
			}
			if c.Revision() != before {
				delay = 0
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if c.client.Ctx().Err() != nil {
			return fmt.Errorf("store: cache of %s: client closed", c.prefix)
		}
		delay = min(max(2*delay, 50*time.Millisecond), 5*time.Second)
		c.log.Warn("store: cache interrupted, retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay/2 + rand.N(delay/2)):
		}
	}
}

// watch follows changes from the revision after the cache's. It returns
// when the watch ends; the caller resumes from the cache's revision, so an
// event is neither missed nor applied twice.
func (c *Cache[T]) watch(ctx context.Context) error {
	// Without a leader a member could still serve a watch that never
	// delivers again; requiring one makes it end the watch instead.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	c.mu.Lock()
	c.cancelWatch = cancel
	c.mu.Unlock()
	if hook := c.beforeWatch.Load(); hook != nil {
		(*hook)()
	}
	from := c.Revision() + 1
	// No WithPrevKV: the cache already holds every previous value.
	wch := c.client.Watch(wctx, c.prefix, clientv3.WithPrefix(), clientv3.WithRev(from),
		clientv3.WithProgressNotify())
	for resp := range wch {
		if resp.CompactRevision != 0 {
			return fmt.Errorf("%w: need %d, compacted at %d", errCompacted, from, resp.CompactRevision)
		}
		if err := resp.Err(); err != nil {
			return err
		}
		if resp.IsProgressNotify() {
			// Every event up to the header's revision has been delivered.
			c.mu.Lock()
			c.rev = max(c.rev, resp.Header.Revision)
			c.mu.Unlock()
			continue
		}
		c.apply(resp.Events)
	}
	return errors.New("store: watch closed")
}

func (c *Cache[T]) apply(evs []*clientv3.Event) {
	if len(evs) == 0 {
		return
	}
	var out []Event[T]
	c.mu.Lock()
	last := c.rev
	for _, ev := range evs {
		rev := ev.Kv.ModRevision
		if rev <= c.rev {
			continue // already reflected; a resumed watch must not repeat it
		}
		last = max(last, rev)
		key := string(ev.Kv.Key)
		old, had := c.items[key]
		e := Event[T]{Type: EventDelete, Key: key, Revision: rev}
		if had {
			e.Old = &old
		}
		if ev.Type == clientv3.EventTypePut {
			it := Item[T]{Key: key, ModRevision: rev, CreateRevision: ev.Kv.CreateRevision}
			err := json.Unmarshal(ev.Kv.Value, &it.Value)
			if err == nil {
				c.items[key] = it
				e.Type, e.New = EventPut, &it
				out = append(out, e)
				continue
			}
			// The store no longer holds a value we can read: mirror List,
			// which skips it, rather than keep a stale one.
			c.log.Warn("store: skipping undecodable value", "key", key, "err", err)
		}
		if had {
			delete(c.items, key)
			out = append(out, e)
		}
	}
	c.rev = last
	c.mu.Unlock()
	if len(out) > 0 {
		c.emit(out)
		c.notify()
	}
}

// relist replaces the contents with a fresh list and emits the differences,
// so subscribers converge however much history was lost.
func (c *Cache[T]) relist(ctx context.Context) error {
	items, rev, err := List[T](ctx, c.client, c.prefix)
	if err != nil {
		return err
	}
	fresh := make(map[string]Item[T], len(items))
	for _, it := range items {
		fresh[it.Key] = it
	}
	var out []Event[T]
	c.mu.Lock()
	for _, key := range slices.Sorted(maps.Keys(c.items)) {
		if _, ok := fresh[key]; !ok {
			old := c.items[key]
			out = append(out, Event[T]{Type: EventDelete, Key: key, Old: &old, Revision: rev})
		}
	}
	for _, it := range items {
		old, had := c.items[it.Key]
		if had && old.ModRevision == it.ModRevision {
			continue
		}
		e := Event[T]{Type: EventPut, Key: it.Key, New: &it, Revision: it.ModRevision}
		if had {
			e.Old = &old
		}
		out = append(out, e)
	}
	c.items, c.rev = fresh, rev
	c.mu.Unlock()
	c.emit(out)
	c.syncedOnce.Do(func() { close(c.synced) })
	c.notify()
	return nil
}

func (c *Cache[T]) emit(evs []Event[T]) {
	c.mu.RLock()
	handlers := slices.Clone(c.handlers)
	c.mu.RUnlock()
	for _, e := range evs {
		for _, h := range handlers {
			h(e)
		}
	}
}

func (c *Cache[T]) notify() {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for ch := range c.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
