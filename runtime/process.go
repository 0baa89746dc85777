//go:build unix

package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process runs jobs as plain child processes of the caller, with the
// caller's user, file system, network and no limits: it exists so pier can
// run on a laptop without root, and must never run untrusted code. It knows
// only the jobs its own Run calls are running, so it keeps no state across
// restarts and List never returns a finished job.
type Process struct {
	log  *slog.Logger
	mu   sync.Mutex
	jobs map[string]int // id → pid, which is also the job's process group id
}

var _ Runtime = (*Process)(nil)

// NewProcess returns the process driver and logs, loudly, that it isolates
// nothing. log may be nil for slog.Default().
func NewProcess(log *slog.Logger) *Process {
	if log == nil {
		log = slog.Default()
	}
	log.Warn("runtime: the process driver runs jobs WITHOUT ANY ISOLATION: no container, no limits, " +
		"full access to this user's files and network; use it for development only, never for untrusted code")
	return &Process{log: log, jobs: map[string]int{}}
}

func (*Process) Name() string { return "process" }

// Run runs the job in its own process group, which it kills as a whole when
// ctx is cancelled and when the main process exits, the closest a plain
// process gets to the way a container's PID namespace ends.
func (p *Process) Run(ctx context.Context, spec Spec, sio IO, started func(pid int)) (Exit, error) {
	if err := spec.Validate(); err != nil {
		return Exit{}, err
	}
	if len(spec.RootFS) > 0 || len(spec.Mounts) > 0 {
		return Exit{}, fmt.Errorf("%w: the process driver cannot provide image layers or mounts", ErrUnsupported)
	}
	if err := ctx.Err(); err != nil {
		return Exit{}, err
	}
	// On the host, the caller's PATH finds what the developer installed,
	// and /app, the container's HOME, does not exist.
	spec.Env = setDefault(slices.Clone(spec.Env), "PATH", os.Getenv("PATH"))
	if spec.AppDir != "" {
		spec.Env = setDefault(spec.Env, "HOME", spec.AppDir)
	} else if home, err := os.UserHomeDir(); err == nil {
		spec.Env = setDefault(spec.Env, "HOME", home)
	}
	spec = spec.withDefaults()
	dir, err := hostDir(spec)
	if err != nil {
		return Exit{}, err
	}

	p.mu.Lock()
	if _, ok := p.jobs[spec.ID]; ok {
		p.mu.Unlock()
		return Exit{}, fmt.Errorf("%w: %s", ErrExists, spec.ID)
	}
	p.jobs[spec.ID] = 0
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.jobs, spec.ID)
		p.mu.Unlock()
	}()

	cmd := exec.Command(spec.Args[0], spec.Args[1:]...)
	cmd.Env = spec.Env
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	var (
		st         *stdio
		master     *os.File
		waitOutput func(time.Duration)
	)
	if spec.TTY {
		var slave *os.File
		master, slave, err = openPTY()
		if err != nil {
			return Exit{}, err
		}
		defer slave.Close()
		if err := setConsoleSize(master, spec.ConsoleSize); err != nil {
			master.Close()
			return Exit{}, err
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		// A session of its own makes the pty its controlling terminal, so
		// that ^C and job control work as in a shell.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	} else {
		if st, err = newStdio(sio); err != nil {
			return Exit{}, err
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = st.files[0], st.files[1], st.files[2]
	}

	if err := cmd.Start(); err != nil {
		if st != nil {
			st.close()
		}
		if master != nil {
			master.Close()
		}
		return Exit{}, fmt.Errorf("runtime: start %s: %w", spec.ID, err)
	}
	ex := Exit{Started: time.Now()}
	pid := cmd.Process.Pid
	if spec.TTY {
		cmd.Stdin.(*os.File).Close()
		if sio.Console != nil {
			sio.Console(master)
		} else {
			waitOutput = console(master, sio)
		}
	} else {
		st.handedOver()
	}
	p.mu.Lock()
	p.jobs[spec.ID] = pid
	p.mu.Unlock()
	if started != nil {
		started(pid)
	}

	// Until the leader is reaped its pid names the group, so killing the
	// group can never hit an unrelated process that reused the number.
	stop := context.AfterFunc(ctx, func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	waited := waitUnreaped(pid)
	stop()
	if waited {
		_ = syscall.Kill(-pid, syscall.SIGKILL) // what the job left running in its group
	}
	werr := cmd.Wait()
	if !waited {
		// Without waitid's WNOWAIT the group can only be killed after the
		// leader is reaped, leaving a small window for its number to be
		// reused; acceptable for development on other systems.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	ex.Finished = time.Now()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		e := exitFromStatus(ws)
		ex.Code, ex.Signal = e.Code, e.Signal
	} else if werr != nil {
		return Exit{}, fmt.Errorf("runtime: wait %s: %w", spec.ID, werr)
	}
	if st != nil {
		st.drain(2 * time.Second)
	}
	if waitOutput != nil {
		waitOutput(2 * time.Second)
	}
	return ex, nil
}

// hostDir maps the container working directory onto the host: paths under
// /app land in AppDir; anything else is taken as a host path.
func hostDir(spec Spec) (string, error) {
	dir := spec.Dir
	if spec.AppDir != "" {
		if rel, ok := strings.CutPrefix(dir, "/app"); ok && (rel == "" || rel[0] == '/') {
			dir = filepath.Join(spec.AppDir, rel)
		}
	}
	if fi, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("runtime: working directory: %w", err)
	} else if !fi.IsDir() {
		return "", fmt.Errorf("runtime: working directory %s is not a directory", dir)
	}
	return dir, nil
}

func (p *Process) Signal(id string, sig syscall.Signal) error {
	p.mu.Lock()
	pid, ok := p.jobs[id]
	p.mu.Unlock()
	if !ok || pid == 0 {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("runtime: signal %s: %w", id, err)
	}
	return nil
}

// Delete kills the job's process group; Run, which is still waiting for it,
// then returns and forgets the job.
func (p *Process) Delete(id string) error {
	p.mu.Lock()
	pid, ok := p.jobs[id]
	p.mu.Unlock()
	if ok && pid != 0 {
		if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("runtime: kill %s: %w", id, err)
		}
	}
	return nil
}

func (p *Process) List() ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]string, 0, len(p.jobs))
	for id := range p.jobs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}
