package scheduler

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/store"
)

// Guard is a condition on every transaction of a commit: Key must still
// have ModRevision Rev (0: be absent). A leader-elected scheduler passes
// its leadership key, so that once its lease is gone (the key deleted, a
// successor's key in its place) it commits nothing, however long it was
// paused.
type Guard struct {
	Key string
	Rev int64
}

// unit is writes that must commit together, and what they cost against
// store.MaxTxnOps.
type unit struct {
	f      *formationState // the formation it depends on; nil for none
	host   string          // a vanished host that must still be absent
	guards int
	ops    int
	add    func(tx *store.Tx)
}

// formationState follows one formation through a commit's batches.
type formationState struct {
	u         *FormationUpdate
	key       string
	statusKey string
	statusRev int64 // moves as batches commit
	gone      bool  // an orphan's status was deleted by an earlier batch
}

// cost is what guarding the formation adds to a batch: its key, and the
// status written with it, which is what serialises two schedulers that
// planned the same formation from the same revision.
func (f *formationState) cost() (guards, ops int) {
	if f.u.Status == nil && (f.statusRev == 0 || f.gone) {
		return 1, 0
	}
	return 2, 1
}

func (f *formationState) add(tx *store.Tx) {
	tx.Unchanged(f.key, f.u.Rev)
	switch {
	case f.u.Status == nil && f.statusRev != 0 && !f.gone:
		tx.Delete(f.statusKey, f.statusRev)
	case f.u.Status != nil && f.statusRev == 0:
		tx.Create(f.statusKey, f.u.Status)
	case f.u.Status != nil:
		tx.Update(f.statusKey, f.u.Status, f.statusRev)
	}
}

func (f *formationState) committed(rev int64) {
	if f.u.Status == nil {
		f.gone = true
		return
	}
	f.statusRev = rev
}

// Commit writes a plan in transactions of at most store.MaxTxnOps
// operations. Each is guarded by the revisions the plan was decided from
// (each touched formation's key, each stopped job's key, each lost job's
// status, a new job's key being absent, a lost job's host being still
// absent, a one-off request and its status, each change's own Guards)
// and by guards. A job's replacement commits with the stop of the job it
// replaces, a one-off's job with the status that records it, a cron run
// with the formation status that records its tick; a formation's jobs are
// packed together so that a transaction guards few formations. A change
// to a job of no formation the plan lists (a custom scheduler's) must
// carry Guards of its own. Transactions commit in order and the
// first that fails ends the commit: the ones before it stay, which is
// safe because each transaction keeps the invariants on its own (a plan
// never both starts and stops jobs of one formation, except in pairs).
// A moved guard is reported as store.ErrConflict: re-read, re-plan.
func Commit(ctx context.Context, kv clientv3.KV, p Plan, guards ...Guard) error {
	units, err := planUnits(&p)
	if err != nil {
		return err
	}
	var (
		tx       *store.Tx
		nGuards  int
		nOps     int
		inBatch  = map[*formationState]bool{}
		hostsIn  = map[string]bool{}
		batchNum int
	)
	reset := func() {
		tx = store.Txn()
		for _, g := range guards {
			tx.Unchanged(g.Key, g.Rev)
		}
		nGuards, nOps = len(guards), 0
		clear(inBatch)
		clear(hostsIn)
	}
	flush := func() error {
		if nOps == 0 {
			return nil
		}
		batchNum++
		rev, err := tx.Commit(ctx, kv)
		if err != nil {
			return fmt.Errorf("scheduler: commit transaction %d: %w", batchNum, err)
		}
		for f := range inBatch {
			f.committed(rev)
		}
		reset()
		return nil
	}
	cost := func(u *unit) (int, int) {
		g, o := u.guards, u.ops
		if u.f != nil && !inBatch[u.f] {
			fg, fo := u.f.cost()
			g, o = g+fg, o+fo
		}
		if u.host != "" && !hostsIn[u.host] {
			g++
		}
		return g, o
	}
	reset()
	for i := range units {
		u := &units[i]
		g, o := cost(u)
		if nGuards+g > store.MaxTxnOps || nOps+o > store.MaxTxnOps {
			if err := flush(); err != nil {
				return err
			}
			if g, o = cost(u); nGuards+g > store.MaxTxnOps || nOps+o > store.MaxTxnOps {
				return fmt.Errorf("%w: one change needs %d guards, %d operations", store.ErrTxnTooLarge, nGuards+g, nOps+o)
			}
		}
		if u.f != nil && !inBatch[u.f] {
			inBatch[u.f] = true
			u.f.add(tx)
		}
		if u.host != "" && !hostsIn[u.host] {
			hostsIn[u.host] = true
			key, _ := store.Key(store.HostsPrefix, u.host)
			tx.Unchanged(key, 0)
		}
		if u.add != nil {
			u.add(tx)
		}
		nGuards, nOps = nGuards+g, nOps+o
	}
	return flush()
}

// planUnits turns a plan into units: each formation's starts and stops
// (or just its status, when only that changed), then lost marks, then
// deletions.
func planUnits(p *Plan) ([]unit, error) {
	fs := map[fkey]*formationState{}
	var order []*formationState
	for i := range p.Formations {
		u := &p.Formations[i]
		key, err := store.Key(store.FormationsPrefix, u.App, u.Release)
		if err != nil {
			return nil, err
		}
		skey, _ := store.Key(FormationStatusPrefix, u.App, u.Release)
		f := &formationState{u: u, key: key, statusKey: skey, statusRev: u.StatusRev}
		fs[fkey{u.App, u.Release}] = f
		order = append(order, f)
	}
	byF := map[*formationState][]unit{}
	var loose []unit // changes guarded by their own Guards, not a formation
	formationOf := func(app, release string, guards []Guard) (*formationState, error) {
		if f := fs[fkey{app, release}]; f != nil {
			return f, nil
		}
		if len(guards) > 0 {
			return nil, nil
		}
		return nil, fmt.Errorf("scheduler: plan changes jobs of %s/%s but does not guard its formation", app, release)
	}
	add := func(f *formationState, u unit, first bool) {
		switch {
		case f == nil:
			loose = append(loose, u)
		case first:
			byF[f] = append([]unit{u}, byF[f]...)
		default:
			byF[f] = append(byF[f], u)
		}
	}
	for i := range p.Start {
		s := &p.Start[i]
		f, err := formationOf(s.Job.App, s.Job.Release, s.Guards)
		if err != nil {
			return nil, err
		}
		key, err := store.Key(store.JobsPrefix, s.Job.HostID, s.Job.ID)
		if err != nil {
			return nil, err
		}
		u := unit{f: f, guards: 1 + len(s.Guards) + len(s.Volumes), ops: 1 + len(s.Volumes)}
		volKeys := make([]string, len(s.Volumes))
		for k, b := range s.Volumes {
			if volKeys[k], err = store.Key(store.VolumesPrefix, b.Volume.ID); err != nil {
				return nil, err
			}
		}
		var oldKey string
		if r := s.Replaces; r != nil {
			if oldKey, err = store.Key(store.JobsPrefix, r.Job.HostID, r.Job.ID); err != nil {
				return nil, err
			}
			u.guards, u.ops = u.guards+1, u.ops+1
		}
		u.add = func(tx *store.Tx) {
			addGuards(tx, s.Guards)
			tx.Create(key, &s.Job)
			// The binding commits with the job, or neither does: a
			// volume is never bound to a host no job went to.
			for k, b := range s.Volumes {
				if b.Rev == 0 {
					tx.Create(volKeys[k], &b.Volume)
				} else {
					tx.Update(volKeys[k], &b.Volume, b.Rev)
				}
			}
			if r := s.Replaces; r != nil {
				tx.Update(oldKey, &r.Job, r.Rev)
			}
		}
		// A cron run commits in the formation's first transaction, the
		// one whose status records it: were it in a later one that
		// failed, the status would claim a run that never started.
		add(f, u, s.Job.Scheduler == CronScheduler)
	}
	for i := range p.Stop {
		s := &p.Stop[i]
		f, err := formationOf(s.Job.App, s.Job.Release, s.Guards)
		if err != nil {
			return nil, err
		}
		key, err := store.Key(store.JobsPrefix, s.Job.HostID, s.Job.ID)
		if err != nil {
			return nil, err
		}
		add(f, unit{f: f, guards: 1 + len(s.Guards), ops: 1, add: func(tx *store.Tx) {
			addGuards(tx, s.Guards)
			tx.Update(key, &s.Job, s.Rev)
		}}, false)
	}
	var units []unit
	for _, f := range order {
		us := byF[f]
		if len(us) == 0 && f.u.Changed {
			us = []unit{{f: f}}
		}
		units = append(units, us...)
	}
	units = append(units, loose...)
	ou, err := oneOffUnits(p)
	if err != nil {
		return nil, err
	}
	units = append(units, ou...)
	for i := range p.MarkLost {
		l := &p.MarkLost[i]
		key, err := store.Key(store.JobStatusPrefix, l.Status.ID)
		if err != nil {
			return nil, err
		}
		units = append(units, unit{host: l.Status.HostID, guards: 1, ops: 1, add: func(tx *store.Tx) {
			if l.Rev == 0 {
				tx.Create(key, &l.Status)
			} else {
				tx.Update(key, &l.Status, l.Rev)
			}
		}})
	}
	for i := range p.Delete {
		d := &p.Delete[i]
		key, err := store.Key(store.JobsPrefix, d.HostID, d.JobID)
		if err != nil {
			return nil, err
		}
		skey, _ := store.Key(store.JobStatusPrefix, d.JobID)
		units = append(units, unit{guards: 2, ops: 2, add: func(tx *store.Tx) {
			tx.Delete(key, d.Rev)
			tx.Delete(skey, d.StatusRev)
		}})
	}
	return units, nil
}

func addGuards(tx *store.Tx, guards []Guard) {
	for _, g := range guards {
		tx.Unchanged(g.Key, g.Rev)
	}
}
