package deployer

import (
	"context"
	"errors"
	"maps"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
)

// apply commits a step in one transaction, guarded by guards (the
// leader's), by the deployment's revision (its only writer is us, so a
// change means another deployer wrote it) and by the revision of every
// formation the step was decided from. A moved guard fails with
// store.ErrConflict: re-read and decide again.
func apply(ctx context.Context, kv clientv3.KV, e *entry, a Action, now time.Time, guards []scheduler.Guard) error {
	if a.Kind == Wait {
		return nil
	}
	tx := store.Txn()
	for _, g := range guards {
		tx.Unchanged(g.Key, g.Rev)
	}
	d := e.Deployment
	d.UpdatedAt = now
	switch a.Kind {
	case Begin:
		d.State, d.StartedAt = api.DeployRunning, now
		if a.OldProcesses != nil {
			d.OldProcesses = a.OldProcesses
		}
		// The old release (load may have moved it to what the app runs
		// now) and its counts were read from these.
		tx.Unchanged(e.appKey, e.appRev)
		if e.oldKey != "" {
			tx.Unchanged(e.oldKey, e.oldRev)
		}
	case RunRelease:
		d.ReleaseJob = ReleaseJobID(d.ID)
		if a.OneOff != nil {
			if err := a.OneOff.Validate(); err != nil {
				return err
			}
			tx.Create(e.oneOffKey, a.OneOff)
		} else {
			tx.Unchanged(e.oneOffKey, e.oneOffRev)
		}
	case Scale:
		e.formations(tx, a.New, a.Old, now)
	case Complete:
		d.State, d.FinishedAt = api.DeployComplete, now
		// The controller writes the app's other fields: the guard on its
		// revision makes this a compare-and-swap, retried on conflict by
		// the next pass.
		app := *e.App
		app.Release, app.UpdatedAt = d.NewRelease, now
		tx.Update(e.appKey, &app, e.appRev)
		e.formations(tx, a.New, nil, now)
		if e.oldRev != 0 {
			tx.Delete(e.oldKey, e.oldRev)
		}
	case Fail:
		d.State, d.Reason, d.FailedJob, d.FinishedAt = api.DeployFailed, a.Note, a.Job, now
		if e.invalid != "" {
			break
		}
		tx.Unchanged(e.appKey, e.appRev)
		var old map[string]int
		if a.Restore && d.OldRelease != "" && (e.Old != nil || len(d.OldProcesses) > 0) {
			old = maps.Clone(processes(e.Old))
			if old == nil {
				old = map[string]int{}
			}
			maps.Copy(old, d.OldProcesses)
			if e.Old != nil && sameCounts(old, e.Old.Processes) {
				old = nil // never lowered: leave it untouched
			}
		}
		e.formations(tx, nil, old, now)
		if e.newRev != 0 {
			tx.Delete(e.newKey, e.newRev)
		}
		if a.CancelRelease && e.oneOffRev != 0 {
			tx.Delete(e.oneOffKey, e.oneOffRev)
		}
	}
	tx.Update(e.depKey, &d, e.depRev)
	_, err := tx.Commit(ctx, kv)
	return err
}

// formations writes the new and the old formation's counts where given
// and guards the ones it does not write, since the step was decided from
// both.
func (e *entry) formations(tx *store.Tx, newC, oldC map[string]int, now time.Time) {
	d := &e.Deployment
	put := func(key string, rev int64, release string, counts map[string]int) {
		f := &api.Formation{App: d.App, Release: release, Processes: counts, UpdatedAt: now}
		if rev == 0 {
			tx.Create(key, f)
		} else {
			tx.Update(key, f, rev)
		}
	}
	if newC != nil {
		put(e.newKey, e.newRev, d.NewRelease, newC)
	} else {
		tx.Unchanged(e.newKey, e.newRev)
	}
	switch {
	case e.oldKey == "":
	case oldC != nil:
		put(e.oldKey, e.oldRev, d.OldRelease, oldC)
	default:
		tx.Unchanged(e.oldKey, e.oldRev)
	}
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
