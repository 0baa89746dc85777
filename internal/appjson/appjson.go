package appjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/scheduler/cron"
)

// FileName is where the manifest is, at the top of the source tree.
const FileName = "app.json"

// MaxSize bounds app.json: real ones are a few kilobytes, and the text
// travels in a build's result.
const MaxSize = 64 << 10

// Bounds on what a manifest may ask for.
const (
	MaxCron     = 50   // cron entries
	MaxQuantity = 1000 // formation quantity
	MaxAttempts = 100  // health check attempts
	MaxSeconds  = 3600 // health check wait, timeout, initialDelay
)

// ErrInvalid marks every complaint about a manifest's content; the *Error
// wrapping it says where.
var ErrInvalid = errors.New("appjson: invalid app.json")

// Error is a problem at a place in app.json. Path names the value
// ("cron[0].schedule"), empty for a syntax error.
type Error struct {
	Position
	Path   string
	Reason string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("%s line %d, column %d: %s", FileName, e.Line, e.Column, e.Reason)
	}
	return fmt.Sprintf("%s line %d, column %d: %s: %s", FileName, e.Line, e.Column, e.Path, e.Reason)
}

func (e *Error) Unwrap() error { return ErrInvalid }

// Manifest is app.json as pier reads it.
type Manifest struct {
	// Heroku's descriptive keys: accepted, unused.
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Keywords    []string `json:"keywords"`
	Website     string   `json:"website"`
	Repository  string   `json:"repository"`
	Logo        string   `json:"logo"`
	SuccessURL  string   `json:"success_url"`
	// Heroku's keys for what pier does another way: accepted with a
	// warning (see ignored).
	Env          json.RawMessage `json:"env"`
	Addons       json.RawMessage `json:"addons"`
	Buildpacks   json.RawMessage `json:"buildpacks"`
	Environments json.RawMessage `json:"environments"`
	Stack        json.RawMessage `json:"stack"`
	Image        json.RawMessage `json:"image"`

	Formation    map[string]Formation     `json:"formation"`
	Scripts      Scripts                  `json:"scripts"`
	Cron         []Cron                   `json:"cron"`
	Healthchecks map[string][]Healthcheck `json:"healthchecks"`
	Pier         Pier                     `json:"pier"`

	data      []byte
	pos       map[string]int
	warnings  []string
	resources []string // Resources()
}

// Formation is a process type's entry in "formation".
type Formation struct {
	// Quantity is the number of jobs when the process type first
	// appears in the app; nil leaves pier's default.
	Quantity *int `json:"quantity"`
}

// Scripts are the commands run around a deploy. Heroku's postdeploy runs
// once, after the app's first deploy; Dokku's scripts.dokku ones run at
// every deploy.
type Scripts struct {
	Predeploy  string       `json:"predeploy"`
	Postdeploy string       `json:"postdeploy"`
	Dokku      DokkuScripts `json:"dokku"`
	// pr-predestroy and test belong to Heroku's review apps and CI.
	PRPredestroy json.RawMessage `json:"pr-predestroy"`
	Test         json.RawMessage `json:"test"`
}

// DokkuScripts are Dokku's scripts.dokku.
type DokkuScripts struct {
	Predeploy  string `json:"predeploy"`
	Postdeploy string `json:"postdeploy"`
}

// Cron is one entry of "cron" (Dokku's format).
type Cron struct {
	Command  string `json:"command"`
	Schedule string `json:"schedule"`
	// ConcurrencyPolicy may only be "forbid": pier skips a tick while
	// the previous run still goes.
	ConcurrencyPolicy string `json:"concurrency_policy"`
}

// Healthcheck is one entry of "healthchecks.TYPE" (Dokku's format). All
// times are in seconds.
type Healthcheck struct {
	Type         string `json:"type"` // startup (default), liveness or readiness
	Name         string `json:"name"`
	Description  string `json:"description"`
	Path         string `json:"path"`
	Scheme       string `json:"scheme"`
	Attempts     int    `json:"attempts"`
	Wait         int    `json:"wait"`
	Timeout      int    `json:"timeout"`
	InitialDelay int    `json:"initialDelay"`
}

// Pier holds pier's own keys.
type Pier struct {
	Processes map[string]PierProcess `json:"processes"`
}

// PierProcess is a process type's placement and resources.
type PierProcess struct {
	Tags       map[string]string `json:"tags"`
	MaxPerHost int               `json:"max_per_host"`
	Omni       bool              `json:"omni"`
	CPUMillis  int64             `json:"cpu_millis"`
	MemoryMB   int64             `json:"memory_mb"`
}

// unsupported are other platforms' keys pier knows but does not take,
// by type and key, with what to do instead.
var unsupported = map[string]string{
	"Formation.size":           "pier has no dyno sizes; set pier.processes.TYPE.memory_mb and cpu_millis",
	"Formation.max_parallel":   "a deploy proceeds by the app's deploy strategy (pier apps:info)",
	"Formation.autoscaling":    "scale with pier scale",
	"Formation.service":        "ports come from the process type: web gets the app's HTTP port",
	"Cron.maintenance":         "cron jobs run whatever the maintenance mode",
	"Healthcheck.command":      "pier checks a web process over HTTP (path) only",
	"Healthcheck.content":      "pier counts any 2xx or 3xx answer as healthy",
	"Healthcheck.listening":    "without a path pier checks that the port accepts connections",
	"Healthcheck.port":         "pier checks the port it gave the process ($PORT)",
	"Healthcheck.uptime":       "use initialDelay",
	"Healthcheck.warn":         "a failing check always counts",
	"Healthcheck.onFailure":    "a failing check always counts",
	"PierProcess.restart":      "set the restart policy through the API",
	"PierProcess.max-per-host": "spelt max_per_host",
}

// ignored are Heroku's top-level keys accepted with a warning.
var ignored = map[string]string{
	"env":          "set config vars with pier env set",
	"buildpacks":   "name buildpacks in .buildpacks or BUILDPACK_URL",
	"environments": "pier has no review apps or CI",
	"stack":        "pier has one stack",
	"image":        "pier builds with buildpacks",
}

// Parse reads and checks app.json. A nil or empty-of-content data is an
// error: a file that is there must say something.
func Parse(data []byte) (*Manifest, error) {
	if len(data) > MaxSize {
		return nil, &Error{Position{1, 1}, "", fmt.Sprintf("larger than %d KiB", MaxSize>>10)}
	}
	// A byte order mark left by an editor is blanked rather than cut,
	// so that offsets (and columns, near enough) stay those of the file.
	if bytes.HasPrefix(data, []byte("\ufeff")) {
		data = append([]byte("   "), data[3:]...)
	}
	m := &Manifest{data: data, pos: map[string]int{}}
	w := &walker{data: data, dec: json.NewDecoder(bytes.NewReader(data)), pos: m.pos}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &Error{Position{1, 1}, "", "the file is empty: want a JSON object, {} at least"}
	}
	if data[w.next()] != '{' {
		return nil, m.errAt(w.next(), "", "want a JSON object ({ ... }) at the top")
	}
	if err := w.walk("", reflect.TypeOf(m).Elem()); err != nil {
		return nil, m.wrap(err)
	}
	if _, err := w.dec.Token(); err == nil {
		return nil, m.errAt(int(w.dec.InputOffset())-1, "", "more after the closing }")
	}
	if err := json.Unmarshal(data, m); err != nil {
		// The walk has checked every type: only a bug gets here.
		return nil, &Error{Position{1, 1}, "", err.Error()}
	}
	for key, why := range ignored {
		if _, ok := m.pos[key]; ok {
			m.warnings = append(m.warnings, fmt.Sprintf("%s: %s is not used by pier: %s", m.Where(key), key, why))
		}
	}
	slices.Sort(m.warnings)
	if err := m.validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// Warnings are the keys pier accepted but does not act on, for the build
// to show.
func (m *Manifest) Warnings() []string { return m.warnings }

// Text is the manifest as it was read, for a build to report.
func (m *Manifest) Text() string { return string(m.data) }

// Where names the place of path in app.json ("app.json line 3, column 5").
func (m *Manifest) Where(path string) string {
	p := positionAt(m.data, m.pos[path])
	return fmt.Sprintf("%s line %d, column %d", FileName, p.Line, p.Column)
}

func (m *Manifest) errAt(off int, path, reason string) *Error {
	return &Error{positionAt(m.data, off), path, reason}
}

// errorf is an error at path, which the walk recorded.
func (m *Manifest) errorf(path, format string, args ...any) *Error {
	return m.errAt(m.pos[path], path, fmt.Sprintf(format, args...))
}

func (m *Manifest) wrap(err error) error {
	var at *errAt
	if errors.As(err, &at) {
		return m.errAt(at.off, at.path, at.reason)
	}
	return err
}

// validate checks the values, each on its own; Apply checks them against
// the app's process types.
func (m *Manifest) validate() error {
	if err := m.checkAddons(); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(m.Formation)) {
		path := "formation." + name
		if err := checkName(name); err != "" {
			return m.errorf(path, "%s", err)
		}
		if q := m.Formation[name].Quantity; q != nil && (*q < 0 || *q > MaxQuantity) {
			return m.errorf(path+".quantity", "%d is not between 0 and %d", *q, MaxQuantity)
		}
	}
	s := m.Scripts
	if s.Predeploy != "" && s.Dokku.Predeploy != "" {
		return m.errorf("scripts.dokku.predeploy", "scripts.predeploy is set too: keep one")
	}
	for _, p := range []string{"scripts.predeploy", "scripts.postdeploy", "scripts.dokku.predeploy", "scripts.dokku.postdeploy"} {
		if _, ok := m.pos[p]; ok {
			if err := checkCommand(m.script(p)); err != "" {
				return m.errorf(p, "%s", err)
			}
		}
	}
	if len(m.Cron) > MaxCron {
		return m.errorf(fmt.Sprintf("cron[%d]", MaxCron), "at most %d cron entries", MaxCron)
	}
	for i, c := range m.Cron {
		path := fmt.Sprintf("cron[%d]", i)
		if err := checkCommand(c.Command); err != "" {
			return m.errorf(m.field(path, "command"), "%s", err)
		}
		if strings.TrimSpace(c.Schedule) == "" {
			return m.errorf(m.field(path, "schedule"), "no schedule: want a cron expression such as \"*/5 * * * *\" (UTC)")
		}
		if _, err := cron.Parse(c.Schedule); err != nil {
			return m.errorf(path+".schedule", "%s", strings.TrimPrefix(err.Error(), "cron: "))
		}
		if p := c.ConcurrencyPolicy; p != "" && p != "forbid" {
			return m.errorf(path+".concurrency_policy", "%q is not supported: pier skips a tick while the previous run still goes (forbid)", p)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.Healthchecks)) {
		if err := m.checkHealth(name); err != nil {
			return err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.Pier.Processes)) {
		path := "pier.processes." + name
		p := m.Pier.Processes[name]
		if err := checkName(name); err != "" {
			return m.errorf(path, "%s", err)
		}
		for _, k := range slices.Sorted(maps.Keys(p.Tags)) {
			if k == "" || strings.ContainsAny(k, "=,") {
				return m.errorf(path+".tags."+k, "a tag's name is not empty and has no = or ,")
			}
		}
		switch {
		case p.MaxPerHost < 0:
			return m.errorf(path+".max_per_host", "%d is negative (0 is no cap)", p.MaxPerHost)
		case p.CPUMillis < 0:
			return m.errorf(path+".cpu_millis", "%d is negative", p.CPUMillis)
		case p.MemoryMB < 0:
			return m.errorf(path+".memory_mb", "%d is negative", p.MemoryMB)
		}
	}
	return nil
}

// field is path.key if the walk saw it, else path: a missing key is
// reported at its object.
func (m *Manifest) field(path, key string) string {
	if _, ok := m.pos[path+"."+key]; ok {
		return path + "." + key
	}
	return path
}

func (m *Manifest) script(path string) string {
	switch path {
	case "scripts.predeploy":
		return m.Scripts.Predeploy
	case "scripts.postdeploy":
		return m.Scripts.Postdeploy
	case "scripts.dokku.predeploy":
		return m.Scripts.Dokku.Predeploy
	}
	return m.Scripts.Dokku.Postdeploy
}

func checkName(name string) string {
	if !api.ValidID(name) {
		return fmt.Sprintf("process type name %q is invalid: use at most 63 lower-case letters, digits and single dashes between them", name)
	}
	return ""
}

func checkCommand(cmd string) string {
	switch {
	case strings.TrimSpace(cmd) == "":
		return "no command"
	case strings.ContainsRune(cmd, 0):
		return "NUL byte in the command"
	}
	return ""
}
