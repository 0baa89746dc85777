package shim

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/runtime"
)

// Config is what the agent asks a shim to run.
type Config struct {
	// Runtime names the driver: "runc" or "process". In-process shims
	// (tests) are handed a Runtime directly instead.
	Runtime         string       `json:"runtime"`
	RuntimeStateDir string       `json:"runtime_state_dir,omitempty"`
	Spec            runtime.Spec `json:"spec"`
	// Socket is the path of the unix socket the shim serves.
	Socket string `json:"socket"`
	// Stdin gives the job an input stream fed by attached clients (with
	// Spec.TTY the terminal is one anyway). A job with either waits for
	// its first attach, up to AttachWait (default api.AttachWait), before
	// it starts.
	Stdin      bool          `json:"stdin,omitempty"`
	AttachWait time.Duration `json:"attach_wait,omitempty"`
}

// Started records the job's process once it runs.
type Started struct {
	PID  int       `json:"pid"`
	Time time.Time `json:"time"`
}

// Result is how a job ended: its exit, or the error that kept the runtime
// from starting or observing it.
type Result struct {
	Exit  runtime.Exit `json:"exit"`
	Error string       `json:"error,omitempty"`
}

const (
	configFile  = "config.json"
	startedFile = "started.json"
	exitFile    = "exit.json"
	logDir      = "log"
)

// LogDir is where a job's output is kept inside its directory.
func LogDir(jobDir string) string { return filepath.Join(jobDir, logDir) }

// WriteConfig stores the config for a shim about to start in jobDir.
func WriteConfig(jobDir string, c *Config) error {
	return writeJSON(filepath.Join(jobDir, configFile), c)
}

// ReadConfig loads a job directory's config.
func ReadConfig(jobDir string) (*Config, error) {
	var c Config
	return &c, readJSON(filepath.Join(jobDir, configFile), &c)
}

// ReadStarted returns the job's start record, or nil if it never started.
func ReadStarted(jobDir string) (*Started, error) {
	var s Started
	err := readJSON(filepath.Join(jobDir, startedFile), &s)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return &s, err
}

// ReadResult returns how the job ended, or nil while it has not.
func ReadResult(jobDir string) (*Result, error) {
	var r Result
	err := readJSON(filepath.Join(jobDir, exitFile), &r)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return &r, err
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return pki.WriteFile(path, b) // atomic, fsynced, 0600
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
