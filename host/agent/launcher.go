package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/pierpaas/pier/host/joblog"
	"github.com/pierpaas/pier/host/shim"
	"github.com/pierpaas/pier/runtime"
)

// Launcher starts the shim of a job whose directory holds its config.
type Launcher interface {
	Launch(jobDir string) error
}

// ExecLauncher re-executes the pier binary as `pier shim DIR` in a new
// session, so the job survives the agent (and a Ctrl-C at its terminal).
type ExecLauncher struct {
	// Binary is the pier executable; the running one by default.
	Binary string
}

func (l ExecLauncher) Launch(jobDir string) error {
	bin := l.Binary
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return err
		}
	}
	logFile, err := os.OpenFile(jobDir+"/shim.log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "shim", jobDir)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("agent: start shim: %w", err)
	}
	// Reap the shim if it ends while this agent lives; after a restart the
	// shims of earlier agents are reaped by init.
	go cmd.Wait()
	return nil
}

// aliveLauncher is a Launcher that can tell whether a job's shim still
// runs, for adoption after the agent (or the machine) restarted.
type aliveLauncher interface {
	Alive(jobDir string) bool
}

// Alive reports whether a `pier shim jobDir` process runs on this machine.
func (l ExecLauncher) Alive(jobDir string) bool { return shim.Running(jobDir) }

// InProcessLauncher runs shims as goroutines with a given runtime: for
// tests and for the fake runtime, where there is no process to survive.
type InProcessLauncher struct {
	Runtime runtime.Runtime
	Log     *slog.Logger
}

func (l InProcessLauncher) Launch(jobDir string) error {
	logs, err := joblog.NewWriter(shim.LogDir(jobDir), joblog.Options{})
	if err != nil {
		return err
	}
	go func() {
		if err := shim.Run(context.Background(), jobDir, l.Runtime, logs, l.Log); err != nil {
			l.Log.Error("in-process shim", "dir", jobDir, "err", err)
		}
	}()
	return nil
}

// RunShim is the body of `pier shim DIR`: it builds the runtime the job's
// config names and supervises the job.
func RunShim(ctx context.Context, jobDir string, log *slog.Logger) error {
	cfg, err := shim.ReadConfig(jobDir)
	if err != nil {
		return err
	}
	rt, err := NewRuntime(cfg.Runtime, cfg.RuntimeStateDir, log)
	if err != nil {
		return err
	}
	logs, err := joblog.NewWriter(shim.LogDir(jobDir), joblog.Options{})
	if err != nil {
		return err
	}
	return shim.Run(ctx, jobDir, rt, logs, log)
}

func runcRoot(stateDir string) string { return filepath.Join("/run/pier/runc", shortHash(stateDir)) }

// RunDirs are the directories under /run an agent with this data
// directory uses besides it (runc's state root, the shims' sockets), for
// whoever removes a host for good (tests, an uninstall).
func RunDirs(dataDir string) []string {
	return []string{runcRoot(filepath.Join(dataDir, "runtime")), filepath.Join("/run/pier/shims", shortHash(dataDir)), NetNSDir(dataDir)}
}

// NetNSDir holds the network namespaces of an agent's jobs, one file each,
// named by job id.
func NetNSDir(dataDir string) string { return filepath.Join("/run/pier/netns", shortHash(dataDir)) }

// NewRuntime builds a runtime driver by name.
func NewRuntime(name, stateDir string, log *slog.Logger) (runtime.Runtime, error) {
	switch name {
	case "runc":
		// Each state directory gets its own runc root, so agents sharing a
		// machine (pier up beside tests, several hosts in end-to-end tests)
		// never see, let alone garbage-collect, each other's containers.
		rt, err := runtime.NewRunc(runtime.RuncOptions{StateDir: stateDir, Root: runcRoot(stateDir), Log: log})
		if err != nil {
			return nil, err
		}
		return rt, nil
	case "process":
		return runtime.NewProcess(log), nil
	}
	return nil, fmt.Errorf("agent: unknown runtime %q (runc or process)", name)
}

// shortHash names per-directory state kept elsewhere (runc roots, shim
// sockets) where paths must stay short.
func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}
