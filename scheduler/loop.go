package scheduler

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

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
// plan is made from one consistent read of the store (see Load). One loop
// schedules services, cron ticks and one-off requests: they share the
// hosts, and one plan charges them all to one placement table.
type Loop struct {
	Client *clientv3.Client
	Name   string // this server's name, for the election
	Config Config
	Log    *slog.Logger
	// LeaseTTL is how long a dead leader blocks its successor.
	LeaseTTL time.Duration
	// Election is the prefix the loops campaign under; ElectionPrefix if
	// empty.
	Election string
	// LeaderDead, if set, tells a candidate when the leader is certainly
	// dead, so it need not wait out the leader's lease (see
	// WithLeaderProbe).
	LeaderDead func(ctx context.Context, name string) bool

	caches caches
}

type caches struct {
	hosts      *store.Cache[api.Host]
	jobs       *store.Cache[api.Job]
	jobStatus  *store.Cache[api.JobStatus]
	formations *store.Cache[api.Formation]
	releases   *store.Cache[api.Release]
	statuses   *store.Cache[api.FormationStatus]
	oneOffs    *store.Cache[api.OneOff]
	oneOffStat *store.Cache[api.OneOffStatus]
	drains     *store.Cache[api.HostDrain]
}

func (c *caches) synced() []<-chan struct{} {
	return []<-chan struct{}{c.hosts.Synced(), c.jobs.Synced(), c.jobStatus.Synced(), c.formations.Synced(),
		c.releases.Synced(), c.statuses.Synced(), c.oneOffs.Synced(), c.oneOffStat.Synced(), c.drains.Synced()}
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
	c.oneOffs = store.NewCache[api.OneOff](l.Client, OneOffPrefix)
	c.oneOffStat = store.NewCache[api.OneOffStatus](l.Client, OneOffStatusPrefix)
	c.drains = store.NewCache[api.HostDrain](l.Client, store.HostDrainsPrefix)
	changed := make(chan struct{}, 1)
	for _, run := range []func(context.Context) error{c.hosts.Run, c.jobs.Run, c.jobStatus.Run, c.formations.Run,
		c.releases.Run, c.statuses.Run, c.oneOffs.Run, c.oneOffStat.Run, c.drains.Run} {
		go run(ctx)
	}
	for _, sub := range []func() (<-chan struct{}, func()){c.hosts.Subscribe, c.jobs.Subscribe, c.jobStatus.Subscribe,
		c.formations.Subscribe, c.releases.Subscribe, c.statuses.Subscribe, c.oneOffs.Subscribe, c.oneOffStat.Subscribe,
		c.drains.Subscribe} {
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
	leader, err := Elect(ctx, l.Client, cmp.Or(l.Election, ElectionPrefix), l.Name, l.LeaseTTL, l.electOptions()...)
	if err != nil {
		return err
	}
	defer leader.Close()
	guard := leader.Guard
	l.Log.Info("scheduler: elected leader", "name", l.Name)
	for _, synced := range l.caches.synced() {
		select {
		case <-synced:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for {
		wake, err := l.pass(ctx, guard)
		if ce := (*store.ConflictError)(nil); errors.As(err, &ce) && ce.Key == guard.Key {
			// The leader key is gone: the lease expired before the
			// session noticed. Campaign again rather than re-plan.
			return errors.New("leadership lost: " + err.Error())
		}
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
		case <-leader.Done():
			return errors.New("lease lost")
		case <-changed:
		case <-time.After(wait):
		}
	}
}

// pass plans once from a consistent read and commits the plan.
func (l *Loop) pass(ctx context.Context, guard Guard) (time.Time, error) {
	plan, err := Pass(ctx, l.Client, l.Config, guard)
	if err == nil && !plan.Empty() {
		l.Log.Debug("scheduler: committed plan", "start", len(plan.Start), "stop", len(plan.Stop), "lost", len(plan.MarkLost), "oneoffs", len(plan.OneOffs))
		logEphemeral(l.Log, &plan)
	}
	return plan.NextWake, err
}

// Pass is one scheduler pass, as a leader's loop makes it: Load a
// snapshot, Reconcile it, and Commit the plan guarded by guards (the
// leader's). It returns the plan, committed unless err says otherwise;
// store.ErrConflict means the state moved (or the leadership is gone):
// re-read and re-plan.
func Pass(ctx context.Context, cli *clientv3.Client, cfg Config, guards ...Guard) (Plan, error) {
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	snap, err := Load(lctx, cli, cfg)
	cancel()
	if err != nil {
		return Plan{}, err
	}
	plan := Reconcile(snap)
	if plan.Empty() {
		return plan, nil
	}
	cctx, cancelCommit := context.WithTimeout(ctx, 30*time.Second)
	defer cancelCommit()
	return plan, Commit(cctx, cli, plan, guards...)
}

// logEphemeral says what a committed plan did with one-offs and cron.
func logEphemeral(log *slog.Logger, p *Plan) {
	for _, s := range p.Skips {
		log.Info("scheduler: cron tick skipped", "app", s.App, "release", s.Release, "process_type", s.ProcessType,
			"tick", s.Tick, "reason", s.Reason)
	}
	for _, s := range p.Start {
		if s.Job.Scheduler == CronScheduler {
			log.Info("scheduler: cron run started", "job", s.Job.ID, "host", s.Job.HostID, "app", s.Job.App, "process_type", s.Job.ProcessType)
		}
	}
	for _, o := range p.OneOffs {
		switch {
		case o.Start != nil:
			log.Info("scheduler: one-off placed", "id", o.ID, "host", o.Start.HostID)
		case o.Stop != nil:
			log.Info("scheduler: one-off cancelled", "id", o.ID)
		case o.Remove:
			log.Debug("scheduler: one-off removed after retention", "id", o.ID)
		case o.Status != nil:
			log.Info("scheduler: one-off pending", "id", o.ID, "reason", o.Status.Pending)
		}
	}
}

// electOptions are the options of the loop's campaigns.
func (l *Loop) electOptions() []ElectOption {
	if l.LeaderDead == nil {
		return nil
	}
	return []ElectOption{WithLeaderProbe(l.LeaderDead, l.Log)}
}
