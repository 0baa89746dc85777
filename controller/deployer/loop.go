package deployer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
)

// ElectionPrefix is where the deployers of all servers campaign.
const ElectionPrefix = "/pier/leaders/deployer/"

// DefaultInterval is how often a leader passes without being woken: the
// clock drives timeouts, and a missed watch event is caught up.
const DefaultInterval = 500 * time.Millisecond

// Loop is a leader-elected deployer: every server runs one, the elected
// one drives the deployments.
type Loop struct {
	Client *clientv3.Client
	Name   string // this server's name, for the election
	Log    *slog.Logger
	// Interval is the longest a leader waits between passes;
	// DefaultInterval if zero.
	Interval time.Duration
	// LeaseTTL is how long a dead leader blocks its successor (5s if
	// zero).
	LeaseTTL time.Duration
	// Election is the prefix the loops campaign under; ElectionPrefix if
	// empty.
	Election string
	// LeaderDead, if set, tells a candidate when the leader is certainly
	// dead (see scheduler.WithLeaderProbe).
	LeaderDead func(ctx context.Context, name string) bool
}

// Run campaigns and deploys until ctx ends.
func (l *Loop) Run(ctx context.Context) error {
	if l.Log == nil {
		l.Log = slog.Default()
	}
	for ctx.Err() == nil {
		if err := l.lead(ctx); err != nil && ctx.Err() == nil {
			l.Log.Warn("deployer: leadership ended", "name", l.Name, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return ctx.Err()
}

// lead wins the election, then passes until the leadership is lost. Only
// the leader watches: the others have nothing to do until they lead.
func (l *Loop) lead(ctx context.Context) error {
	var opts []scheduler.ElectOption
	if l.LeaderDead != nil {
		opts = append(opts, scheduler.WithLeaderProbe(l.LeaderDead, l.Log))
	}
	leader, err := scheduler.Elect(ctx, l.Client, cmp.Or(l.Election, ElectionPrefix), l.Name, cmp.Or(l.LeaseTTL, 5*time.Second), opts...)
	if err != nil {
		return err
	}
	defer leader.Close()
	l.Log.Info("deployer: elected leader", "name", l.Name)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changed := make(chan struct{}, 1)
	// Job statuses say when new jobs run, turn healthy or crash; job
	// specs when the scheduler placed or replaced them; deployments when
	// the controller asks for one.
	for _, p := range []string{store.DeploymentsPrefix, store.JobStatusPrefix, store.JobsPrefix} {
		go watch(wctx, l.Client, p, changed)
	}
	interval := cmp.Or(l.Interval, DefaultInterval)
	for {
		wrote, err := Pass(ctx, l.Client, l.Log, leader.Guard)
		if ce := (*store.ConflictError)(nil); errors.As(err, &ce) && ce.Key == leader.Guard.Key {
			return errors.New("leadership lost: " + err.Error())
		}
		wait := interval
		switch {
		case wrote:
			// A step may make the next one possible at once (pending,
			// running, release phase requested): pass again.
			wait = 0
		case errors.Is(err, store.ErrConflict):
			// The state moved under a step: re-read soon, not in a
			// tight loop against a busy writer.
			wait = 20 * time.Millisecond
		case err != nil && ctx.Err() == nil:
			l.Log.Warn("deployer: pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-leader.Done():
			return errors.New("lease lost")
		case <-changed:
		case <-time.After(wait):
		}
	}
}

// watch signals out, coalesced, whenever a key under prefix changes, and
// once more whenever the watch is re-established, since it may have missed
// changes in between.
func watch(ctx context.Context, cli *clientv3.Client, prefix string, out chan struct{}) {
	signal := func() {
		select {
		case out <- struct{}{}:
		default:
		}
	}
	for ctx.Err() == nil {
		for resp := range cli.Watch(clientv3.WithRequireLeader(ctx), prefix, clientv3.WithPrefix()) {
			if resp.Err() != nil {
				break
			}
			signal()
		}
		signal()
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Pass drives every unfinished deployment one step, as a leader's loop
// does: it reads the state, decides each step and commits it guarded by
// guards. It reports whether it wrote anything. A step that fails does
// not stop the others; their errors are joined, and a store.ErrConflict
// among them means the state moved under a step: pass again. A conflict
// on a guard (lost leadership) ends the pass at once.
func Pass(ctx context.Context, kv clientv3.KV, log *slog.Logger, guards ...scheduler.Guard) (bool, error) {
	if log == nil {
		log = slog.Default()
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	entries, err := load(lctx, kv)
	cancel()
	if err != nil {
		return false, err
	}
	var (
		wrote bool
		errs  []error
	)
	for _, e := range entries {
		now := time.Now()
		a := Action{Kind: Fail, Note: e.invalid}
		if e.invalid == "" {
			a = Decide(&e.View, now)
		}
		if a.Kind == Wait {
			continue
		}
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := apply(actx, kv, e, a, now, guards)
		cancel()
		if err != nil {
			for _, g := range guards {
				if ce := (*store.ConflictError)(nil); errors.As(err, &ce) && ce.Key == g.Key {
					return wrote, err
				}
			}
			errs = append(errs, fmt.Errorf("deployer: %s: %s: %w", e.Deployment.ID, a.Kind, err))
			continue
		}
		wrote = true
		logStep(log, e, a)
	}
	return wrote, errors.Join(errs...)
}

// logStep says what a committed step did.
func logStep(log *slog.Logger, e *entry, a Action) {
	d := &e.Deployment
	l := log.With("deployment", d.ID, "app", d.App, "release", d.NewRelease)
	switch a.Kind {
	case Begin:
		l.Info("deployer: deployment running", "old_release", d.OldRelease, "strategy", d.Strategy.Kind)
	case RunRelease:
		l.Info("deployer: release phase started", "job", ReleaseJobID(d.ID))
	case Scale:
		l.Info("deployer: scaled", "new", a.New, "old", a.Old, "waiting", a.Note)
	case Complete:
		l.Info("deployer: deployment complete", "old_release", d.OldRelease)
	case Fail:
		l.Warn("deployer: deployment failed, rolled back", "reason", a.Note, "old_release", d.OldRelease)
	}
}
