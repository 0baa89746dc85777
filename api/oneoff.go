package api

import (
	"fmt"
	"time"
)

// OneOff is a request to run a job once, written by its client (the
// controller for `pier run`, a test, any program) under
// /pier/oneoff/<id> and never changed after. The one-off scheduler places
// it (with the same placement pipeline as services), creates the job
// with the one-off's id as its id, never restarts it, and keeps its
// result, the job's status, for a while after it ended; then it deletes
// the job and the request. Deleting the request before then cancels it:
// a job still running is stopped.
type OneOff struct {
	ID  string `json:"id"`
	App string `json:"app,omitempty"`
	// Release, when set, gives the job its artifact and environment, and
	// ProcessType (of that release), when set too, its command, resources
	// and tags wherever the one-off leaves them empty.
	Release     string `json:"release,omitempty"`
	ProcessType string `json:"process_type,omitempty"`
	// Artifact is what to run when no release gives one.
	Artifact  *Artifact         `json:"artifact,omitempty"`
	Args      []string          `json:"args,omitempty"`
	Env       map[string]string `json:"env,omitempty"` // over the release's
	Resources Resources         `json:"resources"`
	// Tags are constraints: a host must carry every tag=value.
	Tags     map[string]string `json:"tags,omitempty"`
	TTY      bool              `json:"tty,omitempty"`
	Stdin    bool              `json:"stdin,omitempty"`
	Writable bool              `json:"writable,omitempty"`
	// ControlPlane: see Job.ControlPlane.
	ControlPlane bool      `json:"control_plane,omitempty"`
	StopGrace    Duration  `json:"stop_grace,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
}

// Validate checks a one-off before it is stored.
func (o *OneOff) Validate() error {
	switch {
	case !ValidID(o.ID):
		return fmt.Errorf("one-off: invalid id %q", o.ID)
	case o.App != "" && !ValidID(o.App):
		return fmt.Errorf("one-off %s: invalid app %q", o.ID, o.App)
	case o.Release != "" && !ValidID(o.Release):
		return fmt.Errorf("one-off %s: invalid release %q", o.ID, o.Release)
	case o.ProcessType != "" && o.Release == "":
		return fmt.Errorf("one-off %s: a process type needs a release", o.ID)
	case len(o.Args) == 0 && o.ProcessType == "":
		return fmt.Errorf("one-off %s has no command", o.ID)
	case o.Resources.CPUMillis < 0 || o.Resources.MemoryMB < 0:
		return fmt.Errorf("one-off %s: negative resources", o.ID)
	}
	for k := range o.Env {
		if !envKeyRE.MatchString(k) {
			return fmt.Errorf("one-off %s: invalid environment variable name %q", o.ID, k)
		}
	}
	if a := o.Artifact; a != nil && (a.URI == "" || len(a.SHA256) != 64) {
		return fmt.Errorf("one-off %s: artifact needs a URI and a sha256", o.ID)
	}
	return nil
}

// OneOffStatus is what the one-off scheduler says of a request, written
// by it (its only writer) under /pier/oneoff-status/<id>: where its job
// was placed, or why it waits. The job's own status, under
// /pier/job-status/<job>, is the run's result: state, exit code, error.
type OneOffStatus struct {
	ID string `json:"id"`
	// JobID and HostID are set once the job is created; a one-off is
	// placed at most once.
	JobID    string    `json:"job_id,omitempty"`
	HostID   string    `json:"host_id,omitempty"`
	PlacedAt time.Time `json:"placed_at,omitzero"`
	// Pending says why the job is not placed yet ("3 hosts: 2 lacked
	// memory, 1 missing tag disk=ssd").
	Pending   string    `json:"pending,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}
