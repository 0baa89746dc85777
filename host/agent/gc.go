package agent

import (
	"context"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/runtime"
	"github.com/pierpaas/pier/store"
)

// gcInterval is how often the agent collects what no job needs any more.
const gcInterval = time.Minute

// AdHocScheduler owns the jobs created through the host API (`pier host
// run`). No scheduler removes their records, so the agent does, once they
// have been over for AdHocRetention: their result stays readable until then.
const (
	AdHocScheduler = "adhoc"
	AdHocRetention = time.Hour
)

// collectGarbage periodically removes artifacts no local job uses and
// container state the agent does not know (left by a crash between a
// shim's death and its cleanup). Job directories go when the job's record
// is removed (see reconcile), so disk use stays bounded by the jobs the
// schedulers keep.
func (a *Agent) collectGarbage(ctx context.Context, rt runtime.Runtime) {
	t := time.NewTicker(gcInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.cfg.Disk.Changed():
			// Under pressure, collect at once: unused artifacts and the
			// records of ended jobs are the first room to give back.
			if !a.cfg.Disk.Status().Pressure {
				continue
			}
		}
		a.gcOnce(rt)
	}
}

func (a *Agent) gcOnce(rt runtime.Runtime) {
	local, err := a.local.all()
	if err != nil {
		return
	}
	inUse := map[string]bool{}
	known := map[string]bool{}
	for _, lj := range local {
		if lj.Job.Scheduler == AdHocScheduler && lj.Reported.Terminal() && !lj.EndedAt.IsZero() && time.Since(lj.EndedAt) > AdHocRetention {
			a.removeRecords(lj.Job)
		}
		known[lj.Job.ID] = true
		for _, name := range a.artifactEntries(lj) {
			inUse[name] = true
		}
	}
	// Jobs being launched are in the local state before their shim
	// exists, so nothing in use is missed.
	if removed, err := a.artifacts.GC(func(name string) bool { return inUse[name] }); err == nil && len(removed) > 0 {
		a.cfg.Log.Info("removed unused artifacts", "count", len(removed))
	}
	a.gcImages(inUse)
	if rt == nil {
		return
	}
	ids, err := rt.List()
	if err != nil {
		return
	}
	for _, id := range ids {
		a.mu.Lock()
		live := a.workers[id] != nil
		a.mu.Unlock()
		if !live && !known[id] {
			a.cfg.Log.Info("removing leftover container state", "id", id)
			rt.Delete(id)
		}
	}
}

// removeRecords deletes a job's spec and status from the store; the
// reconcile loop then forgets the job and removes its files.
func (a *Agent) removeRecords(job api.Job) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if key, err := store.Key(store.JobsPrefix, job.HostID, job.ID); err == nil {
		store.Delete(ctx, a.Client, key)
	}
	if key, err := store.Key(store.JobStatusPrefix, job.ID); err == nil {
		store.Delete(ctx, a.Client, key)
	}
}
