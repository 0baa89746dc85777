package api

import (
	"fmt"
	"time"
)

// App is a user's application, written by the controller under
// /pier/apps/<name>. Its name is its id: a DNS label, so it is safe in
// keys, job ids, service names and domains. Release, the release that
// serves, is written by the deployer when a deployment succeeds, the
// first one included.
type App struct {
	Name     string            `json:"name"`
	Meta     map[string]string `json:"meta,omitempty"`
	Release  string            `json:"release,omitempty"`
	Strategy DeployStrategy    `json:"strategy"`
	// LatestVersion is the highest release number handed out: versions are
	// never reused, even when a release is garbage collected.
	LatestVersion int `json:"latest_version"`
	// Maintenance makes the routers answer every HTTP request to the
	// app's domains with 503 and a short page, without reaching its
	// jobs (pier maintenance:on), as Heroku's maintenance mode does. The
	// jobs keep running.
	Maintenance bool      `json:"maintenance,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	// URL is where the app's web process answers through the router. The
	// controller fills it in on reads; it is never stored.
	URL string `json:"url,omitempty"`
}

// DeployStrategy says how a deployment replaces an app's jobs.
type DeployStrategy struct {
	// Kind is StrategyOneByOne (default), StrategyBatch or StrategyAllAtOnce.
	Kind string `json:"kind,omitempty"`
	// BatchSize is the number of new jobs started at a time by StrategyBatch.
	BatchSize int `json:"batch_size,omitempty"`
	// Timeout bounds the whole deployment; when it passes the deployment
	// is rolled back. 0 means DefaultDeployTimeout.
	Timeout Duration `json:"timeout,omitempty"`
}

// Deployment strategies.
const (
	StrategyOneByOne  = "one-by-one"
	StrategyBatch     = "batch"
	StrategyAllAtOnce = "all-at-once"
)

// DefaultDeployTimeout bounds a deployment whose strategy gives no timeout.
const DefaultDeployTimeout = 5 * time.Minute

// Validate checks a strategy before it is stored.
func (s DeployStrategy) Validate() error {
	switch s.Kind {
	case "", StrategyOneByOne, StrategyAllAtOnce:
	case StrategyBatch:
		if s.BatchSize < 1 {
			return fmt.Errorf("strategy batch needs a batch size of at least 1")
		}
	default:
		return fmt.Errorf("unknown deploy strategy %q (one-by-one, batch, all-at-once)", s.Kind)
	}
	if s.BatchSize < 0 || s.Timeout < 0 {
		return fmt.Errorf("deploy strategy: negative batch size or timeout")
	}
	return nil
}

// Step is how many new jobs of a process type a deployment starts at a
// time before it waits for them to be healthy.
func (s DeployStrategy) Step() int {
	switch s.Kind {
	case StrategyAllAtOnce:
		return 1 << 30
	case StrategyBatch:
		return s.BatchSize
	}
	return 1
}

// DeployTimeout is the strategy's timeout or the default.
func (s DeployStrategy) DeployTimeout() time.Duration {
	if s.Timeout <= 0 {
		return DefaultDeployTimeout
	}
	return time.Duration(s.Timeout)
}

// ValidateAppName explains what is wrong with an app name, or returns nil.
func ValidateAppName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("an app needs a name")
	case len(name) > 63:
		return fmt.Errorf("app name %q is %d characters long; the limit is 63", name, len(name))
	case !idRE.MatchString(name):
		return fmt.Errorf("app name %q is invalid: use lower-case letters, digits and single dashes between them (like my-app-2)", name)
	}
	return nil
}

// ReleaseID is the id of an app's release number version: "<app>-v<N>",
// with the app part shortened for long names so the id stays a DNS label.
// Two releases of one app can never share an id, so creating the key is
// what allocates the number.
func ReleaseID(app string, version int) string {
	suffix := fmt.Sprintf("-v%d", version)
	if len(app)+len(suffix) > 63 {
		app = app[:63-len(suffix)]
		for len(app) > 0 && app[len(app)-1] == '-' {
			app = app[:len(app)-1]
		}
	}
	return app + suffix
}

// ServiceName is the discovery service of an app's process type:
// "web.hello". Dotted, so an app name of 63 characters still fits.
func ServiceName(app, processType string) string { return processType + "." + app }
