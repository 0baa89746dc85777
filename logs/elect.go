package logs

import (
	"context"
	"time"

	"github.com/pierpaas/pier/discovery"
)

// A standby probes the active aggregator every probeEvery, and deposes it
// after deadStrikes answers in a row that it is dead.
const (
	probeEvery  = 300 * time.Millisecond
	deadStrikes = 3
)

// Lead registers the aggregator as an instance of Service at addr (the
// server's API address) under id, and keeps it active exactly while it is
// the service's leader (its oldest instance), until ctx ends. Every server
// runs one; the others stand by, answering 503 so that clients look
// again. While active, onActive's context lives: the platform lines and
// the drains run under it.
func (a *Aggregator) Lead(ctx context.Context, reg *discovery.Registry, id, addr string, onActive func(context.Context)) {
	defer a.Deactivate()
	g := reg.RegisterRetrying(ctx, Service, discovery.Instance{ID: id, Addr: addr, Proto: "https"})
	if g == nil {
		return
	}
	defer g.Close()

	var stopActive context.CancelFunc
	activate := func(on bool) {
		switch {
		case on && stopActive == nil:
			a.Activate()
			actx, cancel := context.WithCancel(ctx)
			stopActive = cancel
			if onActive != nil {
				go onActive(actx)
			}
		case !on && stopActive != nil:
			stopActive()
			stopActive = nil
			a.Deactivate()
		}
	}
	defer activate(false)
	for ctx.Err() == nil {
		events, err := reg.Watch(ctx, Service)
		if err != nil {
			activate(false)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		lost, gone := g.Done(), (<-chan struct{})(nil)
		recheck := time.NewTicker(time.Second)
		probe := time.NewTicker(probeEvery)
		leader, strikes := "", 0
	watch:
		for {
			select {
			case <-ctx.Done():
				recheck.Stop()
				probe.Stop()
				return
			case <-probe.C:
				// A standby deposes a dead active aggregator: hosts hold
				// their lines meanwhile, and the platform's are lost.
				if a.cfg.LeaderDead == nil || leader == "" || leader == id || !a.cfg.LeaderDead(ctx, leader) {
					strikes = 0
					continue
				}
				if strikes++; strikes >= deadStrikes {
					if ok, err := reg.Evict(ctx, Service, leader); ok && err == nil {
						a.cfg.Log.Warn("deposed the dead active log aggregator", "aggregator", leader, "by", id)
					}
					strikes = 0
				}
			case <-lost:
				// The lease is gone, so the leadership is too; the
				// registration comes back at the end of the line, with a
				// new lease to watch.
				activate(false)
				gone, lost = lost, nil
			case <-recheck.C:
				if ch := g.Done(); lost == nil && ch != gone {
					lost = ch
				}
			case ev, ok := <-events:
				if !ok {
					recheck.Stop()
					probe.Stop()
					break watch
				}
				if ev.Type == discovery.EventLeader {
					leader, strikes = "", 0
					if ev.Instance != nil {
						leader = ev.Instance.ID
					}
					activate(leader == id)
				}
			}
		}
		activate(false)
	}
}
