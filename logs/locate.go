package logs

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/pierpaas/pier/discovery"
)

// Locator follows which aggregator is active: the leader of Service.
type Locator struct {
	reg *discovery.Registry
	log *slog.Logger

	mu      sync.Mutex
	addr    string
	changed chan struct{}
}

// NewLocator returns a locator; Run keeps it current.
func NewLocator(reg *discovery.Registry, log *slog.Logger) *Locator {
	if log == nil {
		log = slog.Default()
	}
	return &Locator{reg: reg, log: log, changed: make(chan struct{})}
}

// Leader returns the active aggregator's address ("" while there is
// none) and a channel closed when it changes.
func (l *Locator) Leader() (string, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addr, l.changed
}

func (l *Locator) set(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if addr == l.addr {
		return
	}
	l.addr = addr
	close(l.changed)
	l.changed = make(chan struct{})
}

// Run watches the service until ctx ends. While the store cannot be
// reached the last known leader is kept: it may well still be there.
func (l *Locator) Run(ctx context.Context) {
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		events, err := l.reg.Watch(ctx, Service)
		if err == nil {
			delay = 100 * time.Millisecond
			for ev := range events {
				if ev.Type != discovery.EventLeader {
					continue
				}
				if ev.Instance == nil {
					l.set("")
				} else {
					l.set(ev.Instance.Addr)
				}
			}
		} else {
			l.log.Debug("cannot watch the log aggregators", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}
