package api

import (
	"fmt"
	"time"

	"github.com/pierpaas/pier/scheduler/cron"
)

// Release is an immutable, numbered version of an app (v1, v2, ...): what
// to run and how, written once by the controller under
// /pier/releases/<release>. A new build, env change or scale of resources
// makes a new release; formations point at releases.
type Release struct {
	ID       string            `json:"id"`
	App      string            `json:"app"`
	Version  int               `json:"version"`
	Artifact *Artifact         `json:"artifact,omitempty"`
	Env      map[string]string `json:"env,omitempty"`
	// Processes are the release's process types by name ("web", "worker").
	Processes map[string]ProcessType `json:"processes"`
	CreatedAt time.Time              `json:"created_at"`
	// RequestKey is the IdempotencyHeader of the request that made the
	// release, if it had one.
	RequestKey string `json:"request_key,omitempty"`
}

// IdempotencyHeader lets a client send a request that makes a release
// again (after a 503, not knowing whether the first attempt was
// applied): sent with the same value, it answers with the release the
// first attempt made, and its deployment, instead of making another.
const IdempotencyHeader = "Idempotency-Key"

// RestartPolicy says which ends of a job of a process type the scheduler
// answers with a replacement (after a backoff).
type RestartPolicy string

const (
	// RestartAlways replaces a job however it ended: a service that exits
	// 0 is still down. The default.
	RestartAlways RestartPolicy = "always"
	// RestartOnFailure replaces a job that failed or was rejected, and
	// lets one that completed keep its slot.
	RestartOnFailure RestartPolicy = "on-failure"
	// RestartNever lets a job that ended keep its slot however it ended.
	RestartNever RestartPolicy = "never"
)

// ProcessType is one kind of process of a release: a line of the Procfile
// plus how the scheduler may place and restart it. A job whose host
// vanished is replaced whatever the policy: it did not end, it was lost.
type ProcessType struct {
	Args  []string          `json:"args"`
	Env   map[string]string `json:"env,omitempty"` // over the release's
	Ports []Port            `json:"ports,omitempty"`
	// Resources one job requests; placement only picks hosts with that
	// much CPU and memory not yet requested by jobs placed there.
	Resources Resources `json:"resources"`
	// Tags are constraints: a host must carry every tag=value ("disk=ssd").
	Tags map[string]string `json:"tags,omitempty"`
	// MaxPerHost caps the jobs of this app and process type (of any of
	// its releases) on one host; 0 is no cap.
	MaxPerHost int `json:"max_per_host,omitempty"`
	// Omni runs one job on every host that satisfies Tags; a formation's
	// count for an omni process type only switches it on (> 0) or off.
	Omni      bool          `json:"omni,omitempty"`
	Restart   RestartPolicy `json:"restart,omitempty"`
	StopGrace Duration      `json:"stop_grace,omitempty"`
	// Schedule makes the process type a cron job: a standard five-field
	// cron expression ("*/5 * * * *", in UTC), a shorthand (@hourly,
	// @daily, ...) or "@every <duration>". A formation's count > 0 enables
	// it: each tick runs one job, never restarted, and a tick that comes
	// while the previous run still goes is skipped. Count, Omni, MaxPerHost
	// and Restart do not apply.
	Schedule string `json:"schedule,omitempty"`
	// Volumes are the process type's volumes (see VolumeSpec): every job
	// of it, in any release, mounts the same ones, on their host.
	Volumes []VolumeSpec `json:"volumes,omitempty"`
	// HostNetwork runs the jobs in their host's network namespace, with
	// ports allocated on the host's address, instead of each in its own:
	// for operators only, since it gives up every network isolation.
	HostNetwork bool `json:"host_network,omitempty"`
}

// RestartPolicy returns the policy, RestartAlways when unset.
func (p *ProcessType) RestartPolicy() RestartPolicy {
	if p.Restart == "" {
		return RestartAlways
	}
	return p.Restart
}

// Validate checks a process type before a release holding it is stored.
func (p *ProcessType) Validate(name string) error {
	switch {
	case len(p.Args) == 0:
		return fmt.Errorf("process type %s has no command", name)
	case p.MaxPerHost < 0:
		return fmt.Errorf("process type %s: max_per_host %d", name, p.MaxPerHost)
	case p.Resources.CPUMillis < 0 || p.Resources.MemoryMB < 0:
		return fmt.Errorf("process type %s: negative resources", name)
	}
	switch p.Restart {
	case "", RestartAlways, RestartOnFailure, RestartNever:
	default:
		return fmt.Errorf("process type %s: restart policy %q (always, on-failure, never)", name, p.Restart)
	}
	if p.Schedule != "" {
		if p.Omni {
			return fmt.Errorf("process type %s: a cron process type cannot be omni", name)
		}
		if _, err := cron.Parse(p.Schedule); err != nil {
			return fmt.Errorf("process type %s: %w", name, err)
		}
	}
	if len(p.Volumes) > 0 {
		// An omni type would need one volume per host, a cron run a
		// volume its ticks share: neither is a volume of the type yet.
		switch {
		case p.Omni:
			return fmt.Errorf("process type %s: an omni process type cannot have volumes", name)
		case p.Schedule != "":
			return fmt.Errorf("process type %s: a cron process type cannot have volumes", name)
		}
		if err := validateVolumes(p.Volumes); err != nil {
			return fmt.Errorf("process type %s: %w", name, err)
		}
	}
	return nil
}

// Validate checks a release before it is stored.
func (r *Release) Validate() error {
	if !ValidID(r.ID) || !ValidID(r.App) {
		return fmt.Errorf("release %q of app %q: invalid id", r.ID, r.App)
	}
	for name, p := range r.Processes {
		if name == "" {
			return fmt.Errorf("release %s: process type with no name", r.ID)
		}
		if err := p.Validate(name); err != nil {
			return fmt.Errorf("release %s: %w", r.ID, err)
		}
	}
	return nil
}
