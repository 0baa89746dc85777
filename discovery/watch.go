package discovery

import (
	"context"
	"maps"
	"slices"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// EventType says what an Event reports.
type EventType string

const (
	// EventCurrent carries the whole set of instances, oldest first: first
	// when a watch starts, and again after a re-list, once its differences
	// have been sent as up, update and down events.
	EventCurrent EventType = "current"
	// EventUp reports a new instance.
	EventUp EventType = "up"
	// EventUpdate reports an instance whose value changed.
	EventUpdate EventType = "update"
	// EventDown reports an instance that left: deregistered or its lease
	// lost. It carries the instance as last seen.
	EventDown EventType = "down"
	// EventLeader reports a new leader, right after the event that made
	// it so; Instance is nil when the service has no instance left.
	EventLeader EventType = "leader"
)

// Event is one change of a watched service.
type Event struct {
	Type    EventType
	Service string
	// Instance is set for up, update, down and leader events.
	Instance *Instance
	// Instances is set for current events.
	Instances []Instance
	// Revision is the etcd revision at which the event became true.
	Revision int64
}

// Watch streams a service's events until ctx ends or the client is
// closed, then closes the channel. It lists the service before returning, so an unreachable etcd
// is reported here; afterwards it rides out member failures and leader
// changes by itself, resuming where it stopped, and sends every change
// exactly once. A consumer that is slow holds the stream back; nothing is
// dropped.
func (r *Registry) Watch(ctx context.Context, service string) (<-chan Event, error) {
	if err := ValidService(service); err != nil {
		return nil, err
	}
	resp, err := r.client.Get(ctx, r.cfg.servicePrefix(service), clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	w := &serviceWatch{reg: r, service: service, out: make(chan Event, 16)}
	go func() {
		defer close(w.out)
		if w.listed(ctx, resp.Header.Revision, resp.Kvs) != nil {
			return
		}
		follow(ctx, r.client, r.cfg.log, r.cfg.servicePrefix(service), resp.Header.Revision, w)
	}()
	return w.out, nil
}

// serviceWatch turns list and watch results into events. It is used by
// one goroutine only.
type serviceWatch struct {
	reg     *Registry
	service string
	out     chan Event

	insts  map[string]Instance // by ID; nil until the first list
	leader *Instance
}

func (w *serviceWatch) send(ctx context.Context, ev Event) error {
	ev.Service = w.service
	select {
	case w.out <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *serviceWatch) sendInstance(ctx context.Context, t EventType, inst Instance, rev int64) error {
	inst = inst.clone()
	return w.send(ctx, Event{Type: t, Instance: &inst, Revision: rev})
}

func (w *serviceWatch) listed(ctx context.Context, rev int64, kvs []*mvccpb.KeyValue) error {
	next := make(map[string]Instance, len(kvs))
	for _, inst := range w.reg.decodeAll(w.service, kvs) {
		next[inst.ID] = inst
	}
	if w.insts != nil {
		if err := w.sendDiff(ctx, next, rev); err != nil {
			return err
		}
	}
	w.insts = next
	all := slices.Collect(maps.Values(next))
	sortByAge(all)
	for i := range all {
		all[i] = all[i].clone()
	}
	if err := w.send(ctx, Event{Type: EventCurrent, Instances: all, Revision: rev}); err != nil {
		return err
	}
	return w.checkLeader(ctx, rev)
}

// sendDiff reports what changed while the watch could not follow. Down
// events come first, oldest first, then ups and updates: the order in
// which they could have happened.
func (w *serviceWatch) sendDiff(ctx context.Context, next map[string]Instance, rev int64) error {
	var gone, came, changed []Instance
	for id, old := range w.insts {
		now, ok := next[id]
		switch {
		case !ok:
			gone = append(gone, old)
		case now.CreateRevision != old.CreateRevision:
			// Deleted and created again: its place in line changed too.
			gone = append(gone, old)
			came = append(came, now)
		case now.ModRevision != old.ModRevision:
			changed = append(changed, now)
		}
	}
	for id, now := range next {
		if _, ok := w.insts[id]; !ok {
			came = append(came, now)
		}
	}
	sortByAge(gone)
	sortByAge(came)
	sortByAge(changed)
	for _, batch := range []struct {
		t     EventType
		insts []Instance
	}{{EventDown, gone}, {EventUp, came}, {EventUpdate, changed}} {
		for _, inst := range batch.insts {
			if err := w.sendInstance(ctx, batch.t, inst, rev); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *serviceWatch) changed(ctx context.Context, evs []*clientv3.Event) error {
	for _, ev := range evs {
		service, id, ok := w.reg.cfg.splitKey(string(ev.Kv.Key))
		if !ok || service != w.service {
			continue
		}
		rev := ev.Kv.ModRevision
		old, had := w.insts[id]
		switch ev.Type {
		case clientv3.EventTypePut:
			inst, err := decode(service, id, ev.Kv)
			if err != nil {
				w.reg.cfg.log.Warn("skipping bad instance", "err", err)
				continue
			}
			w.insts[id] = inst
			t := EventUp
			if had {
				t = EventUpdate
			}
			if err := w.sendInstance(ctx, t, inst, rev); err != nil {
				return err
			}
		case clientv3.EventTypeDelete:
			if !had {
				continue
			}
			delete(w.insts, id)
			if err := w.sendInstance(ctx, EventDown, old, rev); err != nil {
				return err
			}
		}
		if err := w.checkLeader(ctx, rev); err != nil {
			return err
		}
	}
	return nil
}

// checkLeader sends a leader event if the oldest instance changed.
func (w *serviceWatch) checkLeader(ctx context.Context, rev int64) error {
	leader := oldest(w.insts)
	if sameInstance(leader, w.leader) {
		return nil
	}
	w.leader = leader
	ev := Event{Type: EventLeader, Revision: rev}
	if leader != nil {
		l := leader.clone()
		ev.Instance = &l
	}
	return w.send(ctx, ev)
}

func oldest(insts map[string]Instance) *Instance {
	var best *Instance
	for _, inst := range insts {
		if best == nil || inst.CreateRevision < best.CreateRevision {
			inst := inst
			best = &inst
		}
	}
	return best
}

func sameInstance(a, b *Instance) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.ID == b.ID && a.CreateRevision == b.CreateRevision
}
