package api

import "time"

// Deployment moves an app from one release to another by a strategy. The
// controller creates it (state pending); from then on the deployer is its
// only writer. The deployer's progress lives in the two formations, so a
// deployer that takes over from a failed one continues where it stopped.
type Deployment struct {
	ID         string `json:"id"`
	App        string `json:"app"`
	OldRelease string `json:"old_release,omitempty"`
	NewRelease string `json:"new_release"`
	// Version is the new release's number, for people.
	Version  int            `json:"version"`
	Strategy DeployStrategy `json:"strategy"`
	// OldProcesses are the old release's counts when the deployment began,
	// what a rollback restores; Processes the new release's target counts.
	OldProcesses map[string]int `json:"old_processes,omitempty"`
	Processes    map[string]int `json:"processes"`
	State        DeployState    `json:"state"`
	// Reason says why a deployment failed and was rolled back.
	Reason string `json:"reason,omitempty"`
	// ReleaseJob is the one-off job of the release phase, when the new
	// release has a "release" process type.
	ReleaseJob string `json:"release_job,omitempty"`
	// FailedJob is the job whose end failed the deployment (a crashed
	// job of the new release, or the release phase), whose last log
	// lines usually say why; empty for other failures.
	FailedJob string    `json:"failed_job,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// StartedAt is when the deployer began it: later than CreatedAt for
	// one made while an earlier deployment of the app ran (it waits its
	// turn), and what its timeout counts from.
	StartedAt  time.Time `json:"started_at,omitzero"`
	UpdatedAt  time.Time `json:"updated_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// DeployState is where a deployment is.
type DeployState string

const (
	DeployPending  DeployState = "pending"
	DeployRunning  DeployState = "running"
	DeployComplete DeployState = "complete"
	// DeployFailed: the new release did not become healthy in time, a new
	// job crashed, or the release phase failed; the old formation was put
	// back and the old release keeps serving.
	DeployFailed DeployState = "failed"
)

// Done reports whether the deployment has ended.
func (s DeployState) Done() bool { return s == DeployComplete || s == DeployFailed }

// ReleaseProcess is the process type that runs once, as a one-off job,
// before a release's other process types start (Heroku's release phase).
const ReleaseProcess = "release"
