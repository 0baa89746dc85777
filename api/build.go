package api

import "time"

// A build turns an app's source tree into a slug: the builder runs the
// Heroku buildpack API (bin/detect, bin/compile, bin/release) inside a job
// on the cluster, with the source unpacked at /app, and reports back over
// the build's own endpoints, authenticated by a token that is good for
// that one build only:
//
//	GET  /v1/builds/{id}/cache     the app's build cache (tar.gz), 404 if none
//	PUT  /v1/builds/{id}/cache     a new build cache (tar.gz)
//	PUT  /v1/builds/{id}/slug      the slug (tar.gz of /app)
//	POST /v1/builds/{id}/result    BuildResult, after the slug
//
// The build job's environment carries what the builder needs; the rest of
// the job's environment is infrastructure settings (GOPROXY,
// npm_config_registry, PIP_INDEX_URL ...) passed through from the server.
const (
	BuildEnvID     = "PIER_BUILD_ID"
	BuildEnvToken  = "PIER_BUILD_TOKEN" // "Authorization: Bearer TOKEN"
	BuildEnvURL    = "PIER_BUILD_URL"   // https://server:port/v1/builds/{id}
	BuildEnvCA     = "PIER_BUILD_CA"    // PEM of the CA that signed the server's certificate
	BuildEnvConfig = "PIER_BUILD_ENV"   // JSON object: the app's config vars, written to ENV_DIR
	// BuildpackURLVar is the config var naming a custom buildpack: a git
	// URL (with an optional #ref) or a local path on the host.
	BuildpackURLVar = "BUILDPACK_URL"
)

// PierBinary is where the host agent binds its own pier executable,
// read-only, in every container: the builder and the slug runner are
// subcommands of it.
const PierBinary = "/.pier/pier"

// IsBuildCommand reports whether args are a build job's command (the
// controller runs `pier slugbuild` as a one-off): such a job's output
// belongs to its build (the push, pier builds:output), not to the app's
// processes, so pier ps and pier logs leave it out.
func IsBuildCommand(args []string) bool {
	return len(args) == 2 && args[0] == PierBinary && args[1] == "slugbuild"
}

// BuildState is where a build is.
type BuildState string

const (
	BuildPending   BuildState = "pending"   // waiting for its job to start
	BuildRunning   BuildState = "running"   // the builder runs
	BuildSucceeded BuildState = "succeeded" // a slug and a release were made
	BuildFailed    BuildState = "failed"
)

// Build is one build of an app, stored under /pier/builds/<id>.
type Build struct {
	ID    string     `json:"id"`
	App   string     `json:"app"`
	State BuildState `json:"state"`
	// Source says what was built: a git commit, or "upload" for pier deploy.
	Source       string    `json:"source,omitempty"`
	SourceSHA256 string    `json:"source_sha256,omitempty"`
	JobID        string    `json:"job_id,omitempty"`
	Slug         *Artifact `json:"slug,omitempty"`
	// CacheSHA256 is the build cache this build left for the next one.
	CacheSHA256 string   `json:"cache_sha256,omitempty"`
	Buildpacks  []string `json:"buildpacks,omitempty"`
	// Release is the release made from the slug.
	Release string `json:"release,omitempty"`
	// OutputSHA256 names the blob holding the build's whole output.
	OutputSHA256 string    `json:"output_sha256,omitempty"`
	Error        string    `json:"error,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	FinishedAt   time.Time `json:"finished_at,omitzero"`
}

// BuildResult is what the builder reports after it uploaded the slug.
type BuildResult struct {
	// ProcessTypes are the commands by process type: the Procfile's lines
	// over the buildpack's default_process_types.
	ProcessTypes map[string]string `json:"process_types"`
	// ConfigVars are the buildpack's config_vars from bin/release: they
	// become release environment variables where the app sets none.
	ConfigVars map[string]string `json:"config_vars,omitempty"`
	// Buildpacks are the names of the buildpacks that compiled the app.
	Buildpacks []string `json:"buildpacks"`
	// AppJSON is the text of the source's app.json, if it has one: the
	// controller reads it again (internal/appjson) rather than trust what
	// the build job made of it.
	AppJSON string `json:"app_json,omitempty"`
}

// BuildEvent is one line of a build's streamed answer
// (POST /v1/apps/{app}/builds, one JSON object per line): output as it
// comes, then a last event with the finished build or an error.
type BuildEvent struct {
	Output string         `json:"output,omitempty"`
	Build  *Build         `json:"build,omitempty"`
	Result *ReleaseResult `json:"release,omitempty"`
	Error  string         `json:"error,omitempty"`
}

// SSHKey is a public key allowed to push over SSH, under /pier/ssh-keys/<id>.
type SSHKey struct {
	// ID is the key's SHA256 fingerprint without the "SHA256:" prefix,
	// made safe for a key path (base64 RawURL).
	ID          string    `json:"id"`
	Fingerprint string    `json:"fingerprint"` // as ssh-keygen -l prints it
	Comment     string    `json:"comment,omitempty"`
	PublicKey   string    `json:"public_key"` // authorized_keys format
	CreatedAt   time.Time `json:"created_at"`
}

// AddSSHKeyRequest registers a public key.
type AddSSHKeyRequest struct {
	PublicKey string `json:"public_key"` // one line of authorized_keys
}

// GitInfo says how to push to the cluster's git receivers (GET /v1/git).
// Over HTTPS the repository of app is at <controller URL>/git/<app>.git.
type GitInfo struct {
	// SSHAddr is host:port of the SSH receiver ("" when it is off), whose
	// repositories are ssh://git@<SSHAddr>/<app>.git.
	SSHAddr string `json:"ssh_addr,omitempty"`
	// HostKey is the receivers' SSH host key, authorized_keys format.
	HostKey string `json:"host_key,omitempty"`
}
