// Package fake is a runtime.Runtime for tests of the layers above the
// runtime: no process runs, and the test decides when and how each job
// ends. Run blocks until the test calls Exit, Kill or OOM, until the job is
// signalled or deleted, or until its context is cancelled, and honours the
// runtime contract otherwise: validated specs, one Run per id at a time,
// state gone when Run returns, and Exit values shaped like the real ones.
package fake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/pierpaas/pier/runtime"
)

// Runtime is the fake. The zero value is not usable; call New.
type Runtime struct {
	// Now gives Exit's times; tests with an injected clock replace it
	// before the first Run.
	Now func() time.Time

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced on every change
	nextPID   int
	jobs      map[string]*job
	signals   map[string][]syscall.Signal
	failNext  map[string]error
	stubborn  map[string]bool
	leftovers map[string]bool
	onStart   func(runtime.Spec)
}

type job struct {
	spec    runtime.Spec
	pid     int
	stdout  io.Writer
	stderr  io.Writer
	console *os.File // our end of the console, with a TTY and IO.Console
	end     chan runtime.Exit
	ended   bool
}

var _ runtime.Runtime = (*Runtime)(nil)

func New() *Runtime {
	return &Runtime{
		Now:       time.Now,
		changed:   make(chan struct{}),
		nextPID:   100000,
		jobs:      map[string]*job{},
		signals:   map[string][]syscall.Signal{},
		failNext:  map[string]error{},
		stubborn:  map[string]bool{},
		leftovers: map[string]bool{},
	}
}

func (*Runtime) Name() string { return "fake" }

// notify wakes the waiters; the caller holds mu.
func (f *Runtime) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *Runtime) Run(ctx context.Context, spec runtime.Spec, sio runtime.IO, started func(pid int)) (runtime.Exit, error) {
	if err := spec.Validate(); err != nil {
		return runtime.Exit{}, err
	}
	if err := ctx.Err(); err != nil {
		return runtime.Exit{}, err
	}
	f.mu.Lock()
	if err, ok := f.failNext[spec.ID]; ok {
		delete(f.failNext, spec.ID)
		f.mu.Unlock()
		return runtime.Exit{}, err
	}
	if _, ok := f.jobs[spec.ID]; ok || f.leftovers[spec.ID] {
		f.mu.Unlock()
		return runtime.Exit{}, fmt.Errorf("%w: %s", runtime.ErrExists, spec.ID)
	}
	f.nextPID++
	j := &job{spec: spec, pid: f.nextPID, stdout: sio.Stdout, stderr: sio.Stderr, end: make(chan runtime.Exit, 1)}
	var master *os.File
	if spec.TTY && sio.Console != nil {
		var err error
		if j.console, master, err = consolePipe(); err != nil {
			f.mu.Unlock()
			return runtime.Exit{}, err
		}
	}
	f.jobs[spec.ID] = j
	f.notify()
	onStart := f.onStart
	f.mu.Unlock()

	ex := runtime.Exit{Started: f.Now()}
	if master != nil {
		sio.Console(master)
	}
	if started != nil {
		started(j.pid)
	}
	if onStart != nil {
		onStart(spec)
	}
	stop := context.AfterFunc(ctx, func() { f.end(spec.ID, kill(syscall.SIGKILL)) })
	defer stop()
	e := <-j.end
	e.Started, e.Finished = ex.Started, f.Now()

	f.mu.Lock()
	delete(f.jobs, spec.ID)
	if j.console != nil {
		j.console.Close()
	}
	f.notify()
	f.mu.Unlock()
	return e, nil
}

func kill(sig syscall.Signal) runtime.Exit {
	return runtime.Exit{Code: 128 + int(sig), Signal: runtime.SignalName(sig)}
}

// end makes the job exit with e, once; it reports whether the job was
// running.
func (f *Runtime) end(id string, e runtime.Exit) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[id]
	if !ok || j.ended {
		return false
	}
	j.ended = true
	j.end <- e
	return true
}

func (f *Runtime) Signal(id string, sig syscall.Signal) error {
	f.mu.Lock()
	_, running := f.jobs[id]
	if running {
		f.signals[id] = append(f.signals[id], sig)
	}
	stubborn := f.stubborn[id]
	f.notify()
	f.mu.Unlock()
	if !running {
		return fmt.Errorf("%w: %s", runtime.ErrNotFound, id)
	}
	switch sig {
	case syscall.SIGKILL:
		f.end(id, kill(sig))
	case syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP:
		if !stubborn {
			f.end(id, kill(sig))
		}
	}
	return nil
}

// Delete kills the job if it runs and forgets a leftover.
func (f *Runtime) Delete(id string) error {
	f.end(id, kill(syscall.SIGKILL))
	f.mu.Lock()
	delete(f.leftovers, id)
	f.notify()
	f.mu.Unlock()
	return nil
}

// List returns the running jobs and the leftovers.
func (f *Runtime) List() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]string, 0, len(f.jobs)+len(f.leftovers))
	for id := range f.jobs {
		ids = append(ids, id)
	}
	for id := range f.leftovers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// Exit makes the job exit with code.
func (f *Runtime) Exit(id string, code int) error {
	return f.finish(id, runtime.Exit{Code: code})
}

// Kill makes the job die of sig, as if something other than the runtime
// had sent it.
func (f *Runtime) Kill(id string, sig syscall.Signal) error {
	return f.finish(id, kill(sig))
}

// OOM makes the job die as the OOM killer kills it.
func (f *Runtime) OOM(id string) error {
	e := kill(syscall.SIGKILL)
	e.OOMKilled = true
	return f.finish(id, e)
}

func (f *Runtime) finish(id string, e runtime.Exit) error {
	if !f.end(id, e) {
		return fmt.Errorf("%w: %s", runtime.ErrNotFound, id)
	}
	return nil
}

// OnStart has fn called in every job's Run just after the job has
// started, before Run waits for its end: fn may write its output and make
// it exit at once, as a job that ends faster than anyone can look does.
func (f *Runtime) OnStart(fn func(runtime.Spec)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onStart = fn
}

// FailNext makes the next Run of id return err without starting.
func (f *Runtime) FailNext(id string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext[id] = err
}

// Stubborn makes the job ignore SIGTERM, SIGINT and SIGHUP, so that only
// SIGKILL, Delete or cancellation end it.
func (f *Runtime) Stubborn(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stubborn[id] = true
}

// Leftover makes List report id, as state left behind by a crash would be,
// until Delete(id).
func (f *Runtime) Leftover(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leftovers[id] = true
	f.notify()
}

// Write writes to the job's stdout and stderr (to its console if it has
// one).
func (f *Runtime) Write(id, stdout, stderr string) error {
	f.mu.Lock()
	j, ok := f.jobs[id]
	f.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", runtime.ErrNotFound, id)
	}
	var errs []error
	write := func(w io.Writer, s string) {
		if w != nil && s != "" {
			_, err := io.WriteString(w, s)
			errs = append(errs, err)
		}
	}
	if j.console != nil {
		write(j.console, stdout+stderr)
	} else {
		write(j.stdout, stdout)
		write(j.stderr, stderr)
	}
	return errors.Join(errs...)
}

// Running returns the ids of the jobs whose Run has not returned.
func (f *Runtime) Running() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]string, 0, len(f.jobs))
	for id := range f.jobs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Spec returns the spec of a running job.
func (f *Runtime) Spec(id string) (runtime.Spec, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[id]
	if !ok {
		return runtime.Spec{}, false
	}
	return j.spec, true
}

// Signals returns the signals id has been sent while running, oldest
// first, across all its runs.
func (f *Runtime) Signals(id string) []syscall.Signal {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.signals[id])
}

// WaitStarted blocks until id runs and returns its pid.
func (f *Runtime) WaitStarted(ctx context.Context, id string) (int, error) {
	for {
		f.mu.Lock()
		j, ok := f.jobs[id]
		changed := f.changed
		f.mu.Unlock()
		if ok {
			return j.pid, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// WaitStopped blocks until no Run of id is in progress.
func (f *Runtime) WaitStopped(ctx context.Context, id string) error {
	for {
		f.mu.Lock()
		_, ok := f.jobs[id]
		changed := f.changed
		f.mu.Unlock()
		if !ok {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// consolePipe stands in for a pty: the caller's "master" reads what the
// job writes. Writing to it fails, which no test has needed yet.
func consolePipe() (ours, master *os.File, err error) {
	r, w, err := os.Pipe()
	return w, r, err
}
