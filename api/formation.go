package api

import (
	"fmt"
	"time"
)

// Formation is the desired number of jobs per process type of one release
// of an app, written by the controller (and the deployer) under
// /pier/formations/<app>/<release>.
//
// It is keyed by app and release, as Flynn's formations are, rather than
// by app alone: during a deployment the old and the new release both run,
// each with its own counts, and the deployer moves them independently
// (a guarded transaction covers both keys when it must move them at once).
// When a release no longer runs its formation is deleted (or its counts
// set to zero) and the scheduler stops its jobs.
type Formation struct {
	App     string `json:"app"`
	Release string `json:"release"`
	// Processes maps a process type of the release to its job count. For
	// an omni process type any count > 0 means one job on every eligible
	// host.
	Processes map[string]int `json:"processes"`
	// Restart lists jobs of the formation to replace one at a time (pier
	// restart): the scheduler starts a new job for the oldest listed one
	// still running, and stops that one once the new one runs and is
	// healthy, as it does for a job on a drained host. Ids of jobs that
	// ended are ignored, and dropped by the controller's next restart.
	Restart   []string  `json:"restart,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Validate checks a formation before it is stored.
func (f *Formation) Validate() error {
	if !ValidID(f.App) || !ValidID(f.Release) {
		return fmt.Errorf("formation %q/%q: invalid id", f.App, f.Release)
	}
	for name, n := range f.Processes {
		if n < 0 {
			return fmt.Errorf("formation %s/%s: %s count %d", f.App, f.Release, name, n)
		}
	}
	return nil
}

// FormationStatus is what the scheduler has to say about a formation,
// written by the scheduler (its only writer) under
// /pier/formation-status/<app>/<release>: the jobs it could not start and
// why, for `pier ps`. Every scheduler commit that starts jobs of the
// formation rewrites it, so that two schedulers planning from the same
// revision cannot both place the formation's jobs.
type FormationStatus struct {
	App     string    `json:"app"`
	Release string    `json:"release"`
	Pending []Pending `json:"pending,omitempty"`
	// Cron is the state of the formation's enabled cron process types,
	// sorted by process type: the scheduler's memory of which ticks it
	// ran, so that a new leader neither runs a tick twice nor skips one
	// silently.
	Cron      []CronStatus `json:"cron,omitempty"`
	UpdatedAt time.Time    `json:"updated_at"`
}

// CronStatus is what the scheduler knows of one cron process type of a
// formation.
type CronStatus struct {
	ProcessType string `json:"process_type"`
	Schedule    string `json:"schedule"`
	// LastTick is the latest tick dealt with: run, skipped, or (when the
	// process type was enabled) the moment ticks start being counted from.
	LastTick time.Time `json:"last_tick"`
	// LastJob is the job the latest run started, and LastRun its tick.
	LastJob string    `json:"last_job,omitempty"`
	LastRun time.Time `json:"last_run,omitzero"`
	// NextTick is when the next run is due.
	NextTick time.Time `json:"next_tick,omitzero"`
	// Skipped counts the ticks not run: the previous run still going, or
	// no scheduler running at the time.
	Skipped int `json:"skipped,omitempty"`
	// Note says why the latest tick not run was skipped ("tick 10:05:00
	// skipped: previous run web-cron-x still running").
	Note string `json:"note,omitempty"`
}

// Pending is a number of jobs of a process type the scheduler wants but
// has not started, and why: no host fits ("3 hosts: 2 lacked memory, 1
// missing tag disk=ssd"), or a crashed job's slot waits out its restart
// backoff until Until.
type Pending struct {
	App         string    `json:"app"`
	Release     string    `json:"release"`
	ProcessType string    `json:"process_type"`
	Count       int       `json:"count"`
	Reason      string    `json:"reason"`
	Until       time.Time `json:"until,omitzero"`
}
