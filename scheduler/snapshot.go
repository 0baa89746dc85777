package scheduler

import (
	"time"

	"github.com/pierpaas/pier/api"
)

// ServiceScheduler is the owner name (api.Job.Scheduler) of the jobs this
// package's default configuration reconciles.
const ServiceScheduler = "service"

// FormationStatusPrefix holds the scheduler's api.FormationStatus values,
// /pier/formation-status/<app>/<release>. It lives here until the store's
// keyspace lists it.
const FormationStatusPrefix = "/pier/formation-status/"

// Snapshot is everything a plan is decided from. Reconcile reads it and
// never changes it; the revisions it carries become the guards of the
// commit, so a plan made from a stale snapshot commits nothing.
type Snapshot struct {
	// Hosts are the hosts present: a host key is bound to its agent's
	// lease, so presence is liveness.
	Hosts []api.Host
	// Jobs are every scheduler's jobs: all of them use host resources,
	// only the configured scheduler's own, and the one-off and cron jobs,
	// are reconciled.
	Jobs       []JobView
	Formations []FormationView
	Releases   []api.Release
	// Statuses are the formation statuses this scheduler wrote before.
	Statuses []StatusView
	// OneOffs are the one-off requests and the statuses this scheduler
	// wrote for them.
	OneOffs []OneOffView
	// Draining are the hosts being emptied (api.HostDrain): nothing new
	// is placed on them, and their service jobs move elsewhere.
	Draining map[string]bool
	// Volumes are the volume records: a job that declares a volume goes
	// to the host the volume is bound to.
	Volumes []VolumeView
	// Now is the time of the decision: backoffs, garbage collection and
	// new jobs' CreatedAt are reckoned from it.
	Now time.Time
	// Seed drives tie-breaking and new job ids. The same snapshot and
	// seed give the same plan; a loop must use a new seed for each plan
	// (the store revision the snapshot was read at is a good one).
	Seed   int64
	Config Config
}

// JobView is a job spec with the revisions that guard writes to it and
// its status, as last reported by its host agent (or marked lost).
type JobView struct {
	Job       api.Job
	Rev       int64          // ModRevision of /pier/jobs/<host>/<job>
	Status    *api.JobStatus // nil until reported
	StatusRev int64          // ModRevision of /pier/job-status/<job>; 0 if absent
}

// VolumeView is a volume record and its key's ModRevision, which guards
// binding it to a host.
type VolumeView struct {
	Volume api.Volume
	Rev    int64
}

// FormationView is a formation and its key's ModRevision.
type FormationView struct {
	Formation api.Formation
	Rev       int64
}

// StatusView is a formation status and its key's ModRevision.
type StatusView struct {
	Status api.FormationStatus
	Rev    int64
}

// Config tunes a scheduler; the zero value is the service scheduler.
type Config struct {
	// Name is the owner of the jobs to reconcile; ServiceScheduler if empty.
	Name string
	// Pipeline places jobs; DefaultPipeline if nil.
	Pipeline *Pipeline
	// A slot whose job crashed waits BackoffBase, doubling at each quick
	// crash up to BackoffMax; a job that ran for BackoffReset resets it.
	BackoffBase, BackoffMax, BackoffReset time.Duration
	// Retention is how long a stopped job's record (and result) is kept.
	Retention time.Duration
	// ResultRetention is how long a one-off or cron job's record and
	// status (its result), and a one-off's request, are kept after the
	// job ended.
	ResultRetention time.Duration
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = ServiceScheduler
	}
	if c.Pipeline == nil {
		c.Pipeline = DefaultPipeline()
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = time.Second
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 5 * time.Minute
	}
	if c.BackoffReset <= 0 {
		c.BackoffReset = time.Minute
	}
	if c.Retention <= 0 {
		c.Retention = 15 * time.Minute
	}
	if c.ResultRetention <= 0 {
		c.ResultRetention = time.Hour
	}
	return c
}
