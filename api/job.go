package api

import (
	"fmt"
	"regexp"
	"time"
)

// JobState is a job's observed state (SwarmKit's task model). States only
// move forward, in the order of the constants below; the terminal states
// are Complete, Failed, Shutdown, Rejected and Lost.
type JobState string

const (
	JobPending  JobState = "pending"  // waiting for a host
	JobAssigned JobState = "assigned" // placed on a host, not yet seen by it
	JobStarting JobState = "starting" // the host is preparing it
	JobRunning  JobState = "running"
	JobComplete JobState = "complete" // exited 0 on its own
	JobFailed   JobState = "failed"   // exited non-zero, was killed, or could not start
	JobShutdown JobState = "shutdown" // stopped because its desired state became shutdown
	JobRejected JobState = "rejected" // the host refused it (bad spec, artifact, ports)
	JobLost     JobState = "lost"     // its host vanished
)

var stateOrder = map[JobState]int{
	JobPending: 0, JobAssigned: 1, JobStarting: 2, JobRunning: 3,
	JobComplete: 4, JobFailed: 4, JobShutdown: 4, JobRejected: 4, JobLost: 4,
}

// Terminal reports whether no further state can follow.
func (s JobState) Terminal() bool { return stateOrder[s] == 4 }

// CanMoveTo reports whether a status may go from s to next.
func (s JobState) CanMoveTo(next JobState) bool {
	a, ok1 := stateOrder[s]
	b, ok2 := stateOrder[next]
	return ok1 && ok2 && b > a
}

// Desired is what the scheduler wants of a job.
type Desired string

const (
	DesiredRunning  Desired = "running"
	DesiredShutdown Desired = "shutdown"
)

// Job is a job's spec and desired state, written by its scheduler (or the
// controller for one-off jobs) under /pier/jobs/<host>/<job>.
type Job struct {
	ID     string `json:"id"`
	HostID string `json:"host_id"`
	// Labels for layer 1; layer 0 only carries them.
	App         string `json:"app,omitempty"`
	Release     string `json:"release,omitempty"`
	ProcessType string `json:"process_type,omitempty"`

	Args     []string          `json:"args"`
	Env      map[string]string `json:"env,omitempty"`
	Artifact *Artifact         `json:"artifact,omitempty"`
	Ports    []Port            `json:"ports,omitempty"`
	// Resources bound the job; the scheduler places by them too.
	Resources Resources `json:"resources"`
	// StopGrace is how long a stopping job gets between SIGTERM and SIGKILL.
	StopGrace Duration `json:"stop_grace,omitempty"`
	// DrainTimeout is how long a stopping job keeps running after it left
	// discovery and before SIGTERM, so routers can finish the requests they
	// sent it; only for jobs with service ports (default 1s).
	DrainTimeout Duration `json:"drain_timeout,omitempty"`
	// KillUnhealthy kills a job whose health check keeps failing.
	KillUnhealthy bool `json:"kill_unhealthy,omitempty"`
	// TTY gives the job a terminal as its stdin, stdout and stderr, and
	// Stdin an input stream; both are reached by attaching to the job
	// (GET /v1/jobs/{id}/attach on its host). A job with either waits for
	// its first attach, up to AttachWait, before it starts, so that the
	// one who attaches misses none of its output.
	TTY   bool `json:"tty,omitempty"`
	Stdin bool `json:"stdin,omitempty"`
	// Writable lets the job write to its root file system and /app (into
	// layers of its own that vanish with it), as a build must.
	Writable bool `json:"writable,omitempty"`
	// Volumes are mounted read-write at their paths, made on first use
	// and kept after the job (see VolumeSpec); the scheduler puts a job
	// with volumes on the host that holds them.
	Volumes []JobVolume `json:"volumes,omitempty"`
	// HostNetwork runs the job in its host's network namespace instead of
	// one of its own: an operator's opt-in (ProcessType.HostNetwork),
	// which gives up every network isolation.
	HostNetwork bool `json:"host_network,omitempty"`
	// ControlPlane jobs (builds, backups) talk to the controller; their
	// host relays them to it (PIER_API_RELAY), which other jobs cannot reach.
	ControlPlane bool `json:"control_plane,omitempty"`

	Desired   Desired   `json:"desired"`
	CreatedAt time.Time `json:"created_at"`

	// Scheduler names the scheduler that owns the job ("service"); each
	// scheduler reconciles only its own jobs, though all count toward a
	// host's resources.
	Scheduler string `json:"scheduler,omitempty"`
	// Restarts counts the jobs this one's slot had before it: a job that
	// replaces a crashed or lost one carries its count plus one.
	Restarts int `json:"restarts,omitempty"`
	// Backoff is how long the slot waited after the previous job ended
	// before this one was created; a quick crash doubles it.
	Backoff Duration `json:"backoff,omitempty"`
}

// Artifact is what a job runs from: a slug (gzipped tar of /app) or an
// unpacked image, content-addressed.
type Artifact struct {
	Type string `json:"type"` // ArtifactSlug or ArtifactImage
	// URI is where the artifact is: a blob URL for a slug, an image
	// reference pinned by digest (REGISTRY/REPO@sha256:HEX) for an image.
	URI string `json:"uri"`
	// SHA256 is the slug's digest, or the image manifest's.
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size,omitempty"`
}

// The artifact types.
const (
	ArtifactSlug  = "slug"
	ArtifactImage = "image" // an OCI image; its config says how to run it
)

// Port is a port a job listens on. The host allocates the number and
// passes it as PORT (the first) and PORT_1, PORT_2, ... (all).
type Port struct {
	Proto   string       `json:"proto"` // "http" or "tcp"
	Service string       `json:"service,omitempty"`
	Health  *HealthCheck `json:"health,omitempty"`
}

// HealthCheck says how to tell a port is serving.
type HealthCheck struct {
	Kind       string   `json:"kind"` // "tcp" or "http"
	Path       string   `json:"path,omitempty"`
	Interval   Duration `json:"interval,omitempty"`
	Timeout    Duration `json:"timeout,omitempty"`
	Threshold  int      `json:"threshold,omitempty"`
	StartGrace Duration `json:"start_grace,omitempty"`
}

// Resources a job requests and is limited to.
type Resources struct {
	CPUMillis int64 `json:"cpu_millis,omitempty"`
	MemoryMB  int64 `json:"memory_mb,omitempty"`
	PIDs      int64 `json:"pids,omitempty"`
	DiskMB    int64 `json:"disk_mb,omitempty"`
}

// JobStatus is a job's observed state, written only by the host agent
// under /pier/job-status/<job>, with one exception: the job's scheduler
// writes state lost for a job whose host vanished, since the host cannot,
// and the agent never moves a status back from a terminal state.
type JobStatus struct {
	ID     string   `json:"id"`
	HostID string   `json:"host_id"`
	State  JobState `json:"state"`
	PID    int      `json:"pid,omitempty"`
	// HostPorts are the job's port numbers, in the order of Job.Ports: on
	// IP when it has one, else allocated on the host's address.
	HostPorts []int `json:"host_ports,omitempty"`
	// IP is the job's own address, in its own network namespace.
	IP        string `json:"ip,omitempty"`
	ExitCode  *int   `json:"exit_code,omitempty"`
	Signal    string `json:"signal,omitempty"`
	OOMKilled bool   `json:"oom_killed,omitempty"`
	// Error says why a job failed or was rejected ("out of memory",
	// "exit status 3", "artifact: digest mismatch").
	Error      string    `json:"error,omitempty"`
	Healthy    *bool     `json:"healthy,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	UpdatedAt  time.Time `json:"updated_at"`
}

var idRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// ValidID reports whether s can be a host or job id: a DNS label, so it is
// safe in keys, paths, cgroup names and DNS names.
func ValidID(s string) bool { return len(s) <= 63 && idRE.MatchString(s) }

// Validate checks a job spec before a host runs it.
func (j *Job) Validate() error {
	switch {
	case !ValidID(j.ID):
		return fmt.Errorf("invalid job id %q", j.ID)
	case !ValidID(j.HostID):
		return fmt.Errorf("invalid host id %q", j.HostID)
	case len(j.Args) == 0:
		return fmt.Errorf("job %s has no command", j.ID)
	case j.Desired != DesiredRunning && j.Desired != DesiredShutdown:
		return fmt.Errorf("job %s: desired state %q", j.ID, j.Desired)
	}
	for k := range j.Env {
		if k == "" || !envKeyRE.MatchString(k) {
			return fmt.Errorf("job %s: invalid environment variable name %q", j.ID, k)
		}
	}
	for i, p := range j.Ports {
		if p.Proto != "http" && p.Proto != "tcp" {
			return fmt.Errorf("job %s: port %d: proto %q must be http or tcp", j.ID, i, p.Proto)
		}
	}
	if a := j.Artifact; a != nil && (a.URI == "" || len(a.SHA256) != 64) {
		return fmt.Errorf("job %s: artifact needs a URI and a sha256", j.ID)
	}
	specs := make([]VolumeSpec, len(j.Volumes))
	for i, v := range j.Volumes {
		if !ValidID(v.ID) {
			return fmt.Errorf("job %s: invalid volume id %q", j.ID, v.ID)
		}
		specs[i] = v.VolumeSpec
	}
	if err := validateVolumes(specs); err != nil {
		return fmt.Errorf("job %s: %w", j.ID, err)
	}
	return nil
}

var envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
