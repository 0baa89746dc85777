package scheduler

import (
	"context"
	"errors"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// ElectionPrefix is where the service schedulers of all servers campaign.
const ElectionPrefix = "/pier/leaders/scheduler/"

// resync bounds how long the loop sleeps without a change, so a missed
// event or a clock-driven change (backoff, retention) is acted on anyway.
const resync = 5 * time.Second

// Loop is a leader-elected scheduler: every server runs one, the elected
// one plans and commits. Watch caches tell it when something changed; each
// plan is made from one consistent read of the store (see Load).
type Loop struct {
	Client *clientv3.Client
	Name   string // this server's name, for the election
	Config Config
	Log    *slog.Logger
	// LeaseTTL is how long a dead leader blocks its successor.
	LeaseTTL time.Duration

	caches caches
}

type caches struct {
	hosts      *store.Cache[api.Host]
	jobs       *store.Cache[api.Job]
	jobStatus  *store.Cache[api.JobStatus]
	formations *store.Cache[api.Formation]
	releases   *store.Cache[api.Release]
	statuses   *store.Cache[api.FormationStatus]
}

// Run campaigns and schedules until ctx ends.
func (l *Loop) Run(ctx context.Context) error {
	if l.Log == nil {
		l.Log = slog.Default()
	}
	if l.LeaseTTL == 0 {
		l.LeaseTTL = 5 * time.Second
	}
	c := &l.caches
	c.hosts = store.NewCache[api.Host](l.Client, store.HostsPrefix)
	c.jobs = store.NewCache[api.Job](l.Client, store.JobsPrefix)
	c.jobStatus = store.NewCache[api.JobStatus](l.Client, store.JobStatusPrefix)
	c.formations = store.NewCache[api.Formation](l.Client, store.FormationsPrefix)
	c.releases = store.NewCache[api.Release](l.Client, store.ReleasesPrefix)
	c.statuses = store.NewCache[api.FormationStatus](l.Client, FormationStatusPrefix)
	changed := make(chan struct{}, 1)
	for _, run := range []func(context.Context) error{c.hosts.Run, c.jobs.Run, c.jobStatus.Run, c.formations.Run, c.releases.Run, c.statuses.Run} {
		go run(ctx)
	}
	for _, sub := range []func() (<-chan struct{}, func()){c.hosts.Subscribe, c.jobs.Subscribe, c.jobStatus.Subscribe, c.formations.Subscribe, c.releases.Subscribe, c.statuses.Subscribe} {
		ch, cancel := sub()
		defer cancel()
		go forward(ctx, ch, changed)
	}
	for ctx.Err() == nil {
		if err := l.lead(ctx, changed); err != nil && ctx.Err() == nil {
			l.Log.Warn("scheduler: leadership ended", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return ctx.Err()
}

func forward(ctx context.Context, in <-chan struct{}, out chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-in:
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}
}

// lead wins the election, then schedules until the lease is lost. Every
// commit is guarded by the leader key, so a leader that lost its lease
// without noticing (paused past its TTL) commits nothing.
func (l *Loop) lead(ctx context.Context, changed chan struct{}) error {
	sess, err := concurrency.NewSession(l.Client, concurrency.WithTTL(int(max(l.LeaseTTL/time.Second, 1))))
	if err != nil {
		return err
	}
	defer sess.Close()
	el := concurrency.NewElection(sess, ElectionPrefix)
	if err := el.Campaign(ctx, l.Name); err != nil {
		return err
	}
	guard := Guard{Key: el.Key(), Rev: el.Rev()}
	l.Log.Info("scheduler: elected leader", "name", l.Name)
	for _, synced := range []<-chan struct{}{l.caches.hosts.Synced(), l.caches.jobs.Synced(), l.caches.jobStatus.Synced(),
		l.caches.formations.Synced(), l.caches.releases.Synced(), l.caches.statuses.Synced()} {
		select {
		case <-synced:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for {
		wake, err := l.pass(ctx, guard)
		if err != nil && !errors.Is(err, store.ErrConflict) {
			l.Log.Warn("scheduler: pass failed", "err", err)
		}
		wait := resync
		if !wake.IsZero() {
			wait = min(wait, max(time.Until(wake), 10*time.Millisecond))
		}
		if errors.Is(err, store.ErrConflict) {
			wait = 0 // someone else moved the state: re-read and re-plan
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sess.Done():
			return errors.New("lease lost")
		case <-changed:
		case <-time.After(wait):
		}
	}
}

// pass plans once from a consistent read and commits the plan.
func (l *Loop) pass(ctx context.Context, guard Guard) (time.Time, error) {
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	snap, err := Load(lctx, l.Client, l.Config)
	cancel()
	if err != nil {
		return time.Time{}, err
	}
	plan := Reconcile(snap)
	if plan.Empty() {
		return plan.NextWake, nil
	}
	cctx, cancelCommit := context.WithTimeout(ctx, 30*time.Second)
	defer cancelCommit()
	err = Commit(cctx, l.Client, plan, guard)
	if err == nil {
		l.Log.Debug("scheduler: committed plan", "start", len(plan.Start), "stop", len(plan.Stop), "lost", len(plan.MarkLost))
	}
	return plan.NextWake, err
}
