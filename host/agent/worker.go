package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/host/jobnet"
	"github.com/pierpaas/pier/host/shim"
	"github.com/pierpaas/pier/runtime"
)

const (
	startTimeout     = 2 * time.Minute // artifact fetch not included
	defaultStopGrace = 10 * time.Second
	defaultDrain     = time.Second
)

// worker supervises one job from launch (or adoption) to its end.
type worker struct {
	a    *Agent
	lj   *localJob
	shim *shim.Client

	// adopted says the job was found in the local state at start, left by
	// a previous run of the agent; orphaned, that no shim supervised it
	// any more then (the machine rebooted, or the shim was killed), so
	// whatever it registered in discovery is dead.
	adopted, orphaned bool

	stopOnce sync.Once
	stopping chan struct{} // closed once the job should stop
	// killReason says why the agent killed the job itself, if it did.
	killReason atomic.Value // string
}

func newWorker(a *Agent, lj *localJob) *worker {
	return &worker{a: a, lj: lj, stopping: make(chan struct{})}
}

func (a *Agent) jobDir(id string) string { return filepath.Join(a.cfg.jobsDir(), id) }

func (a *Agent) socketPath(id string) string {
	return filepath.Join(a.cfg.ShimSocketDir, id+".sock")
}

func removeJobDir(dir string) { shim.Remove(dir) }

// requestStop asks the job to stop gracefully; it is safe to call often.
func (w *worker) requestStop() {
	w.stopOnce.Do(func() { close(w.stopping) })
}

func (w *worker) status(state api.JobState) api.JobStatus {
	return api.JobStatus{ID: w.lj.Job.ID, State: state, HostPorts: w.lj.HostPorts, IP: w.lj.IP}
}

// run takes the job to its end. It returns early, leaving the job
// running, when the agent stops (ctx ends).
func (w *worker) run(ctx context.Context) {
	a, job := w.a, &w.lj.Job
	log := a.cfg.Log.With("job", job.ID)
	if w.adopted && w.lj.IP != "" && a.net != nil {
		// Find the job's namespace again (or make it anew after a reboot,
		// for the relaunch below), and its place in the policy.
		if _, _, err := a.net.attach(ctx, job, netip.MustParseAddr(w.lj.IP)); err != nil {
			log.Warn("cannot restore an adopted job's network", "err", err)
		} else {
			a.net.publish(ctx, job, w.lj.IP)
		}
	}
	if !w.adopted {
		a.writeStatus(ctx, w.status(api.JobStarting))
		err := a.refuseUnderPressure()
		if err == nil {
			err = w.launch(ctx)
		}
		if err != nil {
			log.Warn("job rejected", "err", err)
			w.finish(ctx, api.JobStatus{ID: job.ID, State: api.JobRejected, Error: err.Error()})
			return
		}
	} else if w.orphaned {
		// A new shim finds the job's files and either starts it (it never
		// started) or records that it died, at once, instead of this
		// worker waiting out startTimeout for a shim that will never
		// answer.
		log.Info("adopted job has no supervisor; relaunching it")
		if err := a.cfg.Launcher.Launch(w.lj.Dir); err != nil {
			w.finish(ctx, api.JobStatus{ID: job.ID, State: api.JobFailed, Error: err.Error()})
			return
		}
	}
	w.shim = shim.NewClient(a.socketPath(job.ID))
	defer w.shim.Close()

	started, res, err := w.waitStarted(ctx)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		w.finish(ctx, api.JobStatus{ID: job.ID, State: api.JobFailed, Error: err.Error()})
		return
	}
	if started != nil && w.lj.Reported != api.JobRunning {
		st := w.status(api.JobRunning)
		st.PID, st.StartedAt = started.PID, started.Time
		a.writeStatus(ctx, st)
		w.lj.Reported = api.JobRunning
		a.local.put(w.lj)
	}
	if res == nil {
		running := w.status(api.JobRunning)
		running.PID, running.StartedAt = started.PID, started.Time
		healthCtx, stopHealth := context.WithCancel(ctx)
		w.watchHealth(healthCtx, running)
		stopped := make(chan struct{})
		go w.stopWhenAsked(ctx, stopped, stopHealth)
		res, err = w.waitExit(ctx)
		close(stopped)
		stopHealth()
		if ctx.Err() == nil {
			w.deregister()
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			w.finish(ctx, api.JobStatus{ID: job.ID, State: api.JobFailed, Error: err.Error()})
			return
		}
	}
	w.finish(ctx, w.exitStatus(started, res))
}

// launch prepares the job's directory and starts its shim.
func (w *worker) launch(ctx context.Context) error {
	a, job := w.a, &w.lj.Job
	spec := runtime.Spec{ID: job.ID, Args: job.Args, TTY: job.TTY, Writable: job.Writable, Limits: runtime.Limits{
		MemoryMB: job.Resources.MemoryMB, CPUMillis: job.Resources.CPUMillis,
		PIDs: job.Resources.PIDs, DiskMB: job.Resources.DiskMB,
	}}
	spec.UID, spec.GID = jobUser(job) // uids.go
	if a.cfg.PierBinary != "" {
		// The builder and the slug runner are subcommands of pier, and so
		// is every job's init (runtime/pid1), which gets the stop signals.
		spec.Mounts = append(spec.Mounts, runtime.Mount{Source: a.cfg.PierBinary, Destination: api.PierBinary, ReadOnly: true})
		spec.Init = api.PierBinary
	}
	var imageEnv []string
	imagePort := 0
	if job.Artifact != nil && job.Artifact.Type == api.ArtifactImage {
		var err error
		if imageEnv, imagePort, err = a.prepareImage(ctx, job.Artifact, &spec); err != nil {
			return fmt.Errorf("image: %w", err)
		}
	} else if job.Artifact != nil {
		dir, err := a.fetchArtifact(ctx, job.Artifact, a.artifactOwner(spec.UID, spec.GID))
		if err != nil {
			return fmt.Errorf("artifact: %w", err)
		}
		spec.AppDir = dir
	}
	for _, v := range job.Volumes {
		mnt, err := a.ensureVolume(ctx, v, spec.UID, spec.GID)
		if err != nil {
			return fmt.Errorf("volume %s: %w", v.Name, err)
		}
		spec.Mounts = append(spec.Mounts, runtime.Mount{Source: mnt, Destination: v.Path})
	}
	if err := w.network(ctx, &spec); err != nil {
		return err
	}
	w.useImagePort(imagePort)
	spec.Env = mergeEnv(imageEnv, w.env())
	if err := os.MkdirAll(w.lj.Dir, 0o700); err != nil {
		return err
	}
	cfg := &shim.Config{Runtime: a.cfg.Runtime, RuntimeStateDir: a.cfg.runtimeDir(), Spec: spec, Socket: a.socketPath(job.ID),
		Stdin: job.Stdin}
	if err := shim.WriteConfig(w.lj.Dir, cfg); err != nil {
		return err
	}
	// Remember the job before its shim exists, so a crash right after the
	// launch still leaves a record to adopt.
	w.lj.Reported = api.JobStarting
	if err := a.local.put(w.lj); err != nil {
		return err
	}
	if err := a.cfg.Launcher.Launch(w.lj.Dir); err != nil {
		return err
	}
	if w.lj.IP != "" && a.net != nil {
		a.net.publish(ctx, job, w.lj.IP)
	}
	return nil
}

// env is the job's environment: its own variables, its ports and identity.
func (w *worker) env() []string {
	job := &w.lj.Job
	env := map[string]string{}
	for k, v := range job.Env {
		env[k] = v
	}
	for i, p := range w.lj.HostPorts {
		if i == 0 {
			env["PORT"] = strconv.Itoa(p)
		}
		env["PORT_"+strconv.Itoa(i+1)] = strconv.Itoa(p)
	}
	if w.lj.IP != "" && job.ControlPlane && w.a.net != nil {
		env[api.EnvAPIRelay] = net.JoinHostPort(w.a.net.host.Gateway().String(), strconv.Itoa(jobnet.RelayPort))
	}
	env["PIER_JOB_ID"] = job.ID
	env["PIER_HOST_ID"] = w.a.cfg.ID
	for k, v := range map[string]string{"PIER_APP": job.App, "PIER_RELEASE": job.Release, "PIER_PROCESS_TYPE": job.ProcessType} {
		if v != "" {
			env[k] = v
		}
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// waitStarted waits until the shim reports the job's process, or its end.
func (w *worker) waitStarted(ctx context.Context) (*shim.Started, *shim.Result, error) {
	deadline := time.Now().Add(startTimeout)
	for {
		if s, err := w.shim.Status(ctx); err == nil && (s.Started != nil || s.Result != nil) {
			return s.Started, s.Result, nil
		}
		// The shim may be gone already: its files say how the job went.
		if res, _ := shim.ReadResult(w.lj.Dir); res != nil {
			st, _ := shim.ReadStarted(w.lj.Dir)
			return st, res, nil
		}
		if time.Now().After(deadline) {
			return nil, nil, errors.New("the job's supervisor did not start it in time")
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitExit blocks until the job ends. A shim that vanishes without a
// result died with its job's supervision; the job is then reported failed.
func (w *worker) waitExit(ctx context.Context) (*shim.Result, error) {
	for {
		s, err := w.shim.Wait(ctx)
		if err == nil && s.Result != nil {
			return s.Result, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if res, _ := shim.ReadResult(w.lj.Dir); res != nil {
			return res, nil
		}
		// Either the shim is gone, or it is between writing the result and
		// answering: look again shortly before declaring it dead.
		time.Sleep(100 * time.Millisecond)
		if res, _ := shim.ReadResult(w.lj.Dir); res != nil {
			return res, nil
		}
		if _, serr := w.shim.Status(ctx); serr != nil {
			return nil, errors.New("the job's supervisor died")
		}
	}
}

// stopWhenAsked stops the job gracefully once asked: SIGTERM, then SIGKILL
// after the grace period.
func (w *worker) stopWhenAsked(ctx context.Context, exited chan struct{}, stopHealth func()) {
	select {
	case <-w.stopping:
	case <-exited:
		return
	case <-ctx.Done():
		return
	}
	// Leave discovery first, so routers stop sending requests, give them
	// a bounded moment to finish the ones in flight, then stop.
	stopHealth()
	if w.deregister() {
		select {
		case <-exited:
			return
		case <-ctx.Done():
			return
		case <-time.After(w.lj.Job.DrainTimeout.Or(defaultDrain)):
		}
	}
	grace := w.lj.Job.StopGrace.Or(defaultStopGrace)
	w.shim.Signal(ctx, syscall.SIGTERM)
	select {
	case <-exited:
	case <-ctx.Done():
	case <-time.After(grace):
		w.a.cfg.Log.Info("job ignored SIGTERM; killing", "job", w.lj.Job.ID, "grace", grace)
		w.shim.Signal(ctx, syscall.SIGKILL)
	}
}

// exitStatus turns a shim's result into the job's terminal status.
func (w *worker) exitStatus(started *shim.Started, res *shim.Result) api.JobStatus {
	st := w.status(api.JobFailed)
	code := res.Exit.Code
	st.ExitCode, st.Signal, st.OOMKilled = &code, res.Exit.Signal, res.Exit.OOMKilled
	st.StartedAt, st.FinishedAt = res.Exit.Started, res.Exit.Finished
	if started != nil {
		st.PID = started.PID
	}
	select {
	case <-w.stopping:
		st.State = api.JobShutdown
		return st
	default:
	}
	reason, _ := w.killReason.Load().(string)
	switch {
	case reason != "":
		st.Error = reason
	case res.Error != "":
		st.Error = res.Error
	case res.Exit.OOMKilled:
		st.Error = "out of memory"
	case res.Exit.Signal != "":
		st.Error = "killed by " + res.Exit.Signal
	case code != 0:
		st.Error = "exit status " + strconv.Itoa(code)
	default:
		st.State = api.JobComplete
	}
	return st
}

// finish reports the job's end and keeps its record, marked, until the
// scheduler removes the job.
func (w *worker) finish(ctx context.Context, st api.JobStatus) {
	a := w.a
	if st.HostPorts == nil {
		st.HostPorts = w.lj.HostPorts
	}
	if !a.writeStatus(ctx, st) && ctx.Err() != nil {
		return // the agent is stopping; the next one reports it
	}
	w.lj.Reported, w.lj.EndedAt = st.State, time.Now()
	a.local.put(w.lj)
	if w.lj.IP != "" {
		if a.net != nil {
			a.net.detach(ctx, &w.lj.Job, netip.MustParseAddr(w.lj.IP))
		}
	} else {
		a.ports.release(w.lj.HostPorts)
	}
	a.markEnded(w.lj.Job.ID)
	a.cfg.Log.Info("job ended", "job", w.lj.Job.ID, "state", st.State, "error", st.Error)
}
