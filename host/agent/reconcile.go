package agent

import (
	"context"
	"errors"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// resyncInterval bounds how long a missed change can go unnoticed.
const resyncInterval = 10 * time.Second

// reconcileLoop compares the jobs assigned here with what runs here
// whenever the job cache changes, and periodically in any case.
func (a *Agent) reconcileLoop(ctx context.Context) {
	changed, cancel := a.jobs.Subscribe()
	defer cancel()
	t := time.NewTicker(resyncInterval)
	defer t.Stop()
	for {
		a.reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
		}
	}
}

func (a *Agent) reconcile(ctx context.Context) {
	assigned := map[string]bool{}
	for _, item := range a.jobs.List() {
		job := item.Value
		assigned[job.ID] = true
		a.mu.Lock()
		w, ended := a.workers[job.ID], a.ended[job.ID]
		a.mu.Unlock()
		switch {
		case w != nil:
			if job.Desired == api.DesiredShutdown {
				w.requestStop()
			}
		case ended:
		case job.Desired != api.DesiredRunning:
			// Stopped before it ever started here: say so, so that the
			// scheduler does not wait for it to end. A terminal status
			// (lost, say) is left as it is.
			a.markEnded(job.ID)
			a.writeStatus(ctx, api.JobStatus{ID: job.ID, State: api.JobShutdown})
		default:
			a.startJob(ctx, job)
		}
	}
	// Jobs whose records were removed: stop what still runs and forget
	// the ones that ended, with their files.
	a.mu.Lock()
	var stop []*worker
	var forget []string
	for id, w := range a.workers {
		if !assigned[id] {
			stop = append(stop, w)
		}
	}
	for id := range a.ended {
		if !assigned[id] {
			forget = append(forget, id)
		}
	}
	a.mu.Unlock()
	for _, w := range stop {
		w.requestStop()
	}
	for _, id := range forget {
		a.forget(id)
	}
}

// startJob launches a job it has not seen before, unless its status says
// it already ran (this host's local state was lost, say).
func (a *Agent) startJob(ctx context.Context, job api.Job) {
	if err := job.Validate(); err != nil || job.HostID != a.cfg.ID {
		if err == nil {
			err = errors.New("job assigned to host " + job.HostID)
		}
		a.markEnded(job.ID)
		a.writeStatus(ctx, api.JobStatus{ID: job.ID, HostID: a.cfg.ID, State: api.JobRejected, Error: err.Error()})
		return
	}
	key, _ := store.Key(store.JobStatusPrefix, job.ID)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	st, _, err := store.Get[api.JobStatus](rctx, a.Client, key)
	cancel()
	if err == nil && st.State.Terminal() {
		a.markEnded(job.ID)
		return
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return // etcd unreachable: the next pass retries
	}
	w := newWorker(a, &localJob{Job: job, Dir: a.jobDir(job.ID)})
	a.mu.Lock()
	a.workers[job.ID] = w
	a.mu.Unlock()
	a.goRun(func() { w.run(ctx) })
}

// adopt resumes supervision of the jobs a previous agent launched.
func (a *Agent) adopt(ctx context.Context) error {
	jobs, err := a.local.all()
	if err != nil {
		return err
	}
	for _, lj := range jobs {
		if lj.Reported.Terminal() {
			a.ended[lj.Job.ID] = true
			continue
		}
		if lj.IP == "" {
			a.ports.reserve(lj.HostPorts)
		}
		w := newWorker(a, lj)
		w.adopted = true
		if al, ok := a.cfg.Launcher.(aliveLauncher); ok {
			w.orphaned = !al.Alive(lj.Dir)
		}
		a.workers[lj.Job.ID] = w
		a.goRun(func() { w.run(ctx) })
	}
	return nil
}

func (a *Agent) markEnded(id string) {
	a.mu.Lock()
	delete(a.workers, id)
	a.ended[id] = true
	a.mu.Unlock()
}

// forget removes every local trace of a job whose record is gone.
func (a *Agent) forget(id string) {
	a.mu.Lock()
	delete(a.ended, id)
	a.mu.Unlock()
	removeJobDir(a.jobDir(id))
	a.local.delete(id)
}

// writeStatus records a job's observed state. States only move forward,
// and a terminal status is final: a status that would move one back or
// overwrite an end (a job the scheduler already declared lost, say) is
// dropped. It retries until etcd takes it or ctx ends.
func (a *Agent) writeStatus(ctx context.Context, st api.JobStatus) bool {
	key, err := store.Key(store.JobStatusPrefix, st.ID)
	if err != nil {
		return false
	}
	st.HostID = a.cfg.ID
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		st.UpdatedAt = time.Now()
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		cur, rev, err := store.Get[api.JobStatus](wctx, a.Client, key)
		switch {
		case errors.Is(err, store.ErrNotFound):
			_, err = store.Create(wctx, a.Client, key, st)
		case err == nil && (cur.State.Terminal() || cur.State != st.State && !cur.State.CanMoveTo(st.State)):
			cancel()
			a.cfg.Log.Info("not moving job status backwards", "job", st.ID, "from", cur.State, "to", st.State)
			return false
		case err == nil:
			_, err = store.Update(wctx, a.Client, key, st, rev)
		}
		cancel()
		if err == nil {
			return true
		}
		if !errors.Is(err, store.ErrConflict) && ctx.Err() == nil {
			a.cfg.Log.Warn("cannot write job status; retrying", "job", st.ID, "state", st.State, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
	return false
}
