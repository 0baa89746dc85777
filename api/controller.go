package api

import "time"

// The controller's HTTP API (HTTPS; "Authorization: Bearer KEY" on every
// endpoint but /livez, /readyz and /metrics). The OpenAPI description is
// served at GET /v1/openapi.json; errors are an Error body with a 4xx or
// 5xx status; every answer carries X-Request-Id.
//
//	GET    /v1/apps                              []App
//	POST   /v1/apps                              CreateAppRequest → App (201)
//	GET    /v1/apps/{app}                        App
//	PATCH  /v1/apps/{app}                        UpdateAppRequest → App
//	DELETE /v1/apps/{app}                        (204)
//	POST   /v1/apps/{app}/rename                 RenameAppRequest → App
//	POST   /v1/apps/{app}/restart                RestartRequest → RestartResult (202)
//	GET    /v1/apps/{app}/releases               []Release, newest first
//	POST   /v1/apps/{app}/releases               CreateReleaseRequest → ReleaseResult (201)
//	GET    /v1/apps/{app}/releases/{version}     Release ("v3", "3" or its id)
//	GET    /v1/apps/{app}/env                    map[string]string
//	PATCH  /v1/apps/{app}/env                    map[string]*string (null unsets) → ReleaseResult (201)
//	POST   /v1/apps/{app}/rollback               RollbackRequest → ReleaseResult (201)
//	PATCH  /v1/apps/{app}/resources             map[string]Resources → ReleaseResult (201)
//	GET    /v1/apps/{app}/formation              AppFormation
//	PATCH  /v1/apps/{app}/formation              ScaleRequest → AppFormation
//	GET    /v1/apps/{app}/jobs                   JobList
//	GET    /v1/apps/{app}/jobs/{id}              AppJob
//	DELETE /v1/apps/{app}/jobs/{id}              (202)
//	POST   /v1/apps/{app}/run                    RunRequest → AppJob (201)
//	GET    /v1/apps/{app}/jobs/{id}/attach       101, then attach frames (attach.go)
//	GET    /v1/apps/{app}/deployments            []Deployment, newest first
//	GET    /v1/apps/{app}/deployments/{id}       Deployment
//	GET    /v1/apps/{app}/routes                 []Route (tls.key_pem always empty)
//	POST   /v1/apps/{app}/routes                 Route without id → Route (201); 409 if its domain+path or port is taken
//	DELETE /v1/apps/{app}/routes/{id}            (204)
//	POST   /v1/apps/{app}/builds?source=S       gzipped tar body → BuildEvent lines (200, streamed)
//	GET    /v1/apps/{app}/builds                 []Build, newest first
//	GET    /v1/apps/{app}/builds/{id}            Build ("latest" or its id)
//	GET    /v1/apps/{app}/builds/{id}/output     text
//	GET    /v1/ssh-keys                          []SSHKey
//	POST   /v1/ssh-keys                          AddSSHKeyRequest → SSHKey (201); 409 if registered
//	DELETE /v1/ssh-keys/{id}                     (204) by id, fingerprint or comment
//	GET    /v1/events?app=APP                    text/event-stream of Event; Last-Event-ID resumes
//	PUT    /v1/blobs/sha256/{digest}             (201) GET and HEAD with ranges too
//	GET    /v1/api-keys                          []APIKey
//	POST   /v1/api-keys                          {"name"} → NewAPIKey (201)
//	DELETE /v1/api-keys/{id}                     (204)

// CreateAppRequest creates an app.
type CreateAppRequest struct {
	Name     string            `json:"name"`
	Meta     map[string]string `json:"meta,omitempty"`
	Strategy *DeployStrategy   `json:"strategy,omitempty"`
}

// UpdateAppRequest changes an app: Meta entries are merged (an empty
// value removes one), a Strategy replaces the old one, Maintenance (when
// set) switches maintenance mode on or off.
type UpdateAppRequest struct {
	Meta        map[string]string `json:"meta,omitempty"`
	Strategy    *DeployStrategy   `json:"strategy,omitempty"`
	Maintenance *bool             `json:"maintenance,omitempty"`
}

// RenameAppRequest gives an app a new name (POST /v1/apps/{app}/rename).
type RenameAppRequest struct {
	Name string `json:"name"`
}

// RestartRequest replaces an app's jobs one at a time, each new job
// running (and healthy, if it has a health check) before the one it
// replaces stops (POST /v1/apps/{app}/restart). Empty, every service job
// of the current release; ProcessType, only that type's; Job, only that
// job.
type RestartRequest struct {
	ProcessType string `json:"process_type,omitempty"`
	Job         string `json:"job,omitempty"`
}

// RestartResult lists the jobs a restart replaces.
type RestartResult struct {
	App  string   `json:"app"`
	Jobs []string `json:"jobs"`
}

// CreateReleaseRequest stores a new release of an app and deploys it.
// The artifact must be in the blobstore already (PUT it first); Env nil
// keeps the current release's environment.
type CreateReleaseRequest struct {
	Artifact  *Artifact              `json:"artifact,omitempty"`
	Processes map[string]ProcessType `json:"processes"`
	Env       map[string]string      `json:"env,omitempty"`
	// AppJSON is the text of the app's app.json, if it has one: the
	// controller checks Processes against it and applies its formation
	// (pier deploy --no-build sends it; see BuildResult.AppJSON).
	AppJSON string `json:"app_json,omitempty"`
}

// ReleaseResult is a new release and the deployment that rolls it out.
type ReleaseResult struct {
	Release    Release    `json:"release"`
	Deployment Deployment `json:"deployment"`
}

// RollbackRequest makes a new release from an older one's artifact, process
// types and env. Version 0 means the release before the current one.
type RollbackRequest struct {
	Version int `json:"version,omitempty"`
}

// ScaleRequest sets job counts of process types of the current release;
// process types it does not name keep their counts.
type ScaleRequest struct {
	Processes map[string]int `json:"processes"`
}

// AppFormation is the formation of an app's current release.
type AppFormation struct {
	App       string         `json:"app"`
	Release   string         `json:"release,omitempty"`
	Version   int            `json:"version,omitempty"`
	Processes map[string]int `json:"processes"`
}

// AppJob is a job of an app as `pier ps` shows it.
type AppJob struct {
	ID          string   `json:"id"`
	App         string   `json:"app"`
	Release     string   `json:"release,omitempty"`
	Version     int      `json:"version,omitempty"`
	ProcessType string   `json:"process_type,omitempty"`
	Args        []string `json:"args,omitempty"`
	HostID      string   `json:"host_id,omitempty"`
	State       JobState `json:"state"`
	Desired     Desired  `json:"desired,omitempty"`
	// Addrs are host:port of the job's ports.
	Addrs     []string  `json:"addrs,omitempty"`
	Healthy   *bool     `json:"healthy,omitempty"`
	Restarts  int       `json:"restarts,omitempty"`
	ExitCode  *int      `json:"exit_code,omitempty"`
	Error     string    `json:"error,omitempty"`
	OneOff    bool      `json:"one_off,omitempty"`
	Pending   string    `json:"pending,omitempty"` // why a one-off waits for a host
	CreatedAt time.Time `json:"created_at"`
	StartedAt time.Time `json:"started_at,omitzero"`
	// FinishedAt is when a job ended. A service job is listed after its
	// end only while its slot waits to start its replacement (Heroku's
	// crashed dyno), or when it failed and is not restarted; RestartAt
	// is then when the next of its process type's crashed jobs restarts.
	FinishedAt time.Time `json:"finished_at,omitzero"`
	RestartAt  time.Time `json:"restart_at,omitzero"`
}

// Crashed reports whether a service job ended and is listed for it
// (see FinishedAt).
func (j *AppJob) Crashed() bool { return !j.OneOff && j.State.Terminal() }

// JobList is an app's jobs and the jobs the scheduler could not start yet,
// with why.
type JobList struct {
	Jobs    []AppJob  `json:"jobs"`
	Pending []Pending `json:"pending,omitempty"`
}

// RunRequest runs a one-off command with the app's current release. With
// TTY or Stdin the job waits for an attach (GET .../attach) to start.
type RunRequest struct {
	Args      []string          `json:"args"`
	Env       map[string]string `json:"env,omitempty"`
	TTY       bool              `json:"tty,omitempty"`
	Stdin     bool              `json:"stdin,omitempty"`
	Resources Resources         `json:"resources"`
}

// Event is one change in the cluster, as the events stream sends it. ID
// is the store revision of the change (with an index when one revision
// changed several objects): a client that reconnects with it in
// Last-Event-ID receives every later event, and nothing twice.
type Event struct {
	ID   string    `json:"id"`
	Type string    `json:"type"` // app, release, scale, job, deployment
	Op   string    `json:"op"`   // create, update, delete
	App  string    `json:"app,omitempty"`
	Time time.Time `json:"time"`
	// Object is the changed object (App, Release, Formation, JobStatus,
	// Deployment) as stored; absent for a delete.
	Object any `json:"object,omitempty"`
}
