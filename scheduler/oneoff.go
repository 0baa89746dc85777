package scheduler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// Owner names (api.Job.Scheduler) of the ephemeral jobs: run once, never
// restarted, kept for Config.ResultRetention after they end.
const (
	OneOffScheduler = "oneoff"
	CronScheduler   = "cron"
)

// The one-off keyspace, here until the store's keyspace lists it: the
// requests, written by clients, and their statuses, written by the
// scheduler.
const (
	OneOffPrefix       = "/pier/oneoff/"        // <id>: api.OneOff
	OneOffStatusPrefix = "/pier/oneoff-status/" // <id>: api.OneOffStatus
)

// OneOffView is a one-off request and the status the scheduler wrote for
// it, with the revisions that guard them. OneOff is nil when the request
// is gone (cancelled, or removed with its job) and only a status remains.
type OneOffView struct {
	ID        string
	OneOff    *api.OneOff
	Rev       int64
	Status    *api.OneOffStatus
	StatusRev int64
}

// OneOffUpdate is one change a plan makes for a one-off, committed in one
// transaction guarded by the request's revision Rev (0: it must still be
// absent) and its status's StatusRev.
type OneOffUpdate struct {
	ID        string
	Rev       int64
	StatusRev int64
	// Status, when set, is written: the placement, or why it waits.
	Status *api.OneOffStatus
	// Start is the job placed, created with Status.
	Start *api.Job
	// Stop is the job of a cancelled one-off, to shut down.
	Stop *Stop
	// Remove deletes the request and its status, and Job when set: the
	// job's record and result, kept past the retention.
	Remove bool
	Job    *Delete
}

// SubmitOneOff stores a request to run a job once and returns it as
// stored: with an id ("<app>-run-<random>", or "run-<random>") and a
// creation time when it had none. It fails with store.ErrExists if the id
// is taken. The scheduler places it on its next pass; GetOneOff reads
// where it went and how it ended.
func SubmitOneOff(ctx context.Context, kv clientv3.KV, req api.OneOff) (api.OneOff, error) {
	if req.ID == "" {
		req.ID = randomID(idBase(req.App, "run"))
	}
	if req.CreatedAt.IsZero() {
		req.CreatedAt = time.Now()
	}
	if err := req.Validate(); err != nil {
		return api.OneOff{}, err
	}
	key, err := store.Key(OneOffPrefix, req.ID)
	if err != nil {
		return api.OneOff{}, err
	}
	if _, err := store.Create(ctx, kv, key, req); err != nil {
		return api.OneOff{}, fmt.Errorf("scheduler: submit one-off %s: %w", req.ID, err)
	}
	return req, nil
}

// CancelOneOff deletes a request: a job not yet placed never will be,
// and a running one is stopped. Its result is kept for the retention like
// any other.
func CancelOneOff(ctx context.Context, kv clientv3.KV, id string) error {
	key, err := store.Key(OneOffPrefix, id)
	if err != nil {
		return err
	}
	return store.Delete(ctx, kv, key)
}

// OneOffState is everything known of a one-off at one revision.
type OneOffState struct {
	Request *api.OneOff       // nil once cancelled or removed
	Status  *api.OneOffStatus // nil until the scheduler saw it
	Job     *api.JobStatus    // the result: nil until the host reports
}

// Done reports whether the one-off's job ended.
func (s OneOffState) Done() bool { return s.Job != nil && s.Job.State.Terminal() }

// GetOneOff reads a one-off's request, status and job status in one read.
// It returns store.ErrNotFound when none of them exists.
func GetOneOff(ctx context.Context, kv clientv3.KV, id string) (OneOffState, error) {
	key, err := store.Key(OneOffPrefix, id)
	if err != nil {
		return OneOffState{}, err
	}
	skey, _ := store.Key(OneOffStatusPrefix, id)
	jkey, _ := store.Key(store.JobStatusPrefix, id)
	resp, err := kv.Txn(ctx).Then(clientv3.OpGet(key), clientv3.OpGet(skey), clientv3.OpGet(jkey)).Commit()
	if err != nil {
		return OneOffState{}, fmt.Errorf("scheduler: get one-off %s: %w", id, err)
	}
	var st OneOffState
	r := resp.Responses
	if it := decode[api.OneOff](r[0].GetResponseRange().Kvs); len(it) == 1 {
		st.Request = &it[0].Value
	}
	if it := decode[api.OneOffStatus](r[1].GetResponseRange().Kvs); len(it) == 1 {
		st.Status = &it[0].Value
	}
	if it := decode[api.JobStatus](r[2].GetResponseRange().Kvs); len(it) == 1 {
		st.Job = &it[0].Value
	}
	if st.Request == nil && st.Status == nil && st.Job == nil {
		return st, fmt.Errorf("scheduler: one-off %s: %w", id, store.ErrNotFound)
	}
	return st, nil
}

func randomID(prefix string) string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	var b [10]byte
	for i := range b {
		b[i] = digits[rand.IntN(len(digits))]
	}
	return prefix + "-" + string(b[:])
}

// ephemeral is the planner's state for one-off and cron jobs.
type ephemeral struct {
	jobs []*JobView
	// oneOffJobs are the one-off scheduler's jobs by id.
	oneOffJobs map[string]*JobView
	// going is an unfinished cron job per (app, process type), of any
	// release: a tick is skipped while one goes.
	going  map[tkey]*JobView
	crons  []*cronEntry
	states map[fkey][]api.CronStatus
	// reserved are the ids of one-off requests not yet placed, kept from
	// the ids the plan generates for other jobs.
	reserved map[string]bool
}

func isEphemeral(owner string) bool { return owner == OneOffScheduler || owner == CronScheduler }

// indexEphemeral records an ephemeral job; present and ended as indexJobs
// found them.
func (pl *planner) indexEphemeral(jv *JobView, present, ended bool) {
	e := &pl.eph
	if e.oneOffJobs == nil {
		e.oneOffJobs, e.going = map[string]*JobView{}, map[tkey]*JobView{}
	}
	j := &jv.Job
	if !present && !ended {
		pl.plan.MarkLost = append(pl.plan.MarkLost, Lost{Status: lostStatus(jv, pl.s.Now), Rev: jv.StatusRev})
	}
	e.jobs = append(e.jobs, jv)
	switch j.Scheduler {
	case OneOffScheduler:
		e.oneOffJobs[j.ID] = jv
	case CronScheduler:
		if present && !ended {
			e.going[tkey{j.App, j.ProcessType}] = jv
		}
	}
}

// ended reports whether an ephemeral job is over and when: it ended, or
// its host vanished (this plan marks it lost).
func (pl *planner) ended(jv *JobView) (bool, time.Time) {
	if jv.Status != nil && jv.Status.State.Terminal() {
		return true, finishedAt(jv)
	}
	if _, present := pl.hostIdx[jv.Job.HostID]; !present {
		return true, pl.s.Now
	}
	return false, time.Time{}
}

// expired reports whether an ended ephemeral job's result has been kept
// long enough, and otherwise asks to wake when it has.
func (pl *planner) expired(jv *JobView) bool {
	over, at := pl.ended(jv)
	if !over {
		return false
	}
	if jv.Status == nil || !jv.Status.State.Terminal() {
		return false // it is being marked lost; its retention starts now
	}
	gone := at.Add(pl.cfg.ResultRetention)
	if gone.After(pl.s.Now) {
		pl.wake(gone)
		return false
	}
	return true
}

func (pl *planner) wake(t time.Time) {
	if !t.IsZero() && (pl.plan.NextWake.IsZero() || t.Before(pl.plan.NextWake)) {
		pl.plan.NextWake = t
	}
}

func jobDelete(jv *JobView) *Delete {
	return &Delete{JobID: jv.Job.ID, HostID: jv.Job.HostID, Rev: jv.Rev, StatusRev: jv.StatusRev}
}

// reserveOneOffIDs keeps the ids of waiting one-off requests, which are
// their jobs' ids, from being given to new jobs before they are placed.
func (pl *planner) reserveOneOffIDs() {
	e := &pl.eph
	e.reserved = map[string]bool{}
	for i := range pl.s.OneOffs {
		id := pl.s.OneOffs[i].ID
		if pl.s.OneOffs[i].OneOff != nil && !pl.ids[id] {
			pl.ids[id] = true
			e.reserved[id] = true
		}
	}
}

// oneOffs places the one-off requests not yet placed, oldest first, stops
// the jobs of cancelled ones, and removes what is past its retention.
func (pl *planner) oneOffs() {
	e := &pl.eph
	views := make([]*OneOffView, len(pl.s.OneOffs))
	byID := make(map[string]*OneOffView, len(views))
	for i := range pl.s.OneOffs {
		views[i] = &pl.s.OneOffs[i]
		byID[views[i].ID] = views[i]
	}
	slices.SortFunc(views, func(a, b *OneOffView) int {
		var ta, tb time.Time
		if a.OneOff != nil {
			ta = a.OneOff.CreatedAt
		}
		if b.OneOff != nil {
			tb = b.OneOff.CreatedAt
		}
		return cmp.Or(ta.Compare(tb), strings.Compare(a.ID, b.ID))
	})
	for _, v := range views {
		pl.oneOff(v, e.oneOffJobs[v.ID])
	}
	// Jobs whose request and status are both gone: cancelled and then
	// forgotten, or written by hand.
	for _, jv := range e.jobs {
		if jv.Job.Scheduler == OneOffScheduler && byID[jv.Job.ID] == nil {
			pl.oneOff(&OneOffView{ID: jv.Job.ID}, jv)
		}
	}
}

func (pl *planner) oneOff(v *OneOffView, job *JobView) {
	u := OneOffUpdate{ID: v.ID, Rev: v.Rev, StatusRev: v.StatusRev}
	switch {
	case job != nil && pl.expired(job):
		u.Remove, u.Job = true, jobDelete(job)
	case job != nil && v.OneOff == nil:
		// Cancelled: stop the job if it still runs; keep its result.
		if over, _ := pl.ended(job); !over && job.Job.Desired == api.DesiredRunning {
			u.Stop = &Stop{Job: shutdown(job), Rev: job.Rev, Reason: "cancelled"}
		} else {
			return
		}
	case job != nil:
		return // placed: its host runs it and reports
	case v.Status != nil && v.Status.JobID != "":
		// Placed, and the job is gone (removed by hand): keep the request
		// for the retention, counted from the placement, then remove it.
		gone := v.Status.UpdatedAt.Add(pl.cfg.ResultRetention)
		if gone.After(pl.s.Now) {
			pl.wake(gone)
			return
		}
		u.Remove = true
	case v.OneOff == nil:
		u.Remove = true // a status left of a request cancelled before placement
	default:
		if !pl.placeOneOff(v, &u) {
			return
		}
	}
	pl.plan.OneOffs = append(pl.plan.OneOffs, u)
}

// placeOneOff places a request's job, or records why it waits; it reports
// whether there is anything to write.
func (pl *planner) placeOneOff(v *OneOffView, u *OneOffUpdate) bool {
	o := v.OneOff
	job, req, why := pl.oneOffJob(o)
	if why == "" {
		var chosen []int32
		chosen, why = pl.placer.Place(req, Counts{}, 1, pl.rng.Uint64())
		if len(chosen) == 1 {
			h := pl.placer.Hosts[chosen[0]].Host
			job.HostID = h.ID
			pl.ids[job.ID] = true
			delete(pl.eph.reserved, job.ID)
			u.Start = &job
			u.Status = &api.OneOffStatus{ID: o.ID, JobID: job.ID, HostID: h.ID, PlacedAt: pl.s.Now, UpdatedAt: pl.s.Now}
			return true
		}
	}
	if v.Status != nil && v.Status.Pending == why {
		return false
	}
	u.Status = &api.OneOffStatus{ID: o.ID, Pending: why, UpdatedAt: pl.s.Now}
	return true
}

// oneOffJob builds a request's job (without its host) and placement
// request, or says why it cannot run.
func (pl *planner) oneOffJob(o *api.OneOff) (api.Job, *Request, string) {
	pt := api.ProcessType{Args: o.Args, Resources: o.Resources, Tags: o.Tags}
	env := o.Env
	art := o.Artifact
	var relApp string
	if o.Release != "" {
		r := pl.releases[o.Release]
		if r == nil || (o.App != "" && r.App != o.App) {
			return api.Job{}, nil, "release " + o.Release + " not found"
		}
		relApp = r.App
		base := r.Env
		if o.ProcessType != "" {
			rpt, ok := r.Processes[o.ProcessType]
			if !ok {
				return api.Job{}, nil, "no process type " + o.ProcessType + " in release " + o.Release
			}
			if len(pt.Args) == 0 {
				pt.Args = rpt.Args
			}
			if pt.Resources == (api.Resources{}) {
				pt.Resources = rpt.Resources
			}
			if pt.Tags == nil {
				pt.Tags = rpt.Tags
			}
			base = mergeEnv(base, rpt.Env)
		}
		env = mergeEnv(base, env)
		if art == nil {
			art = r.Artifact
		}
	}
	if len(pt.Args) == 0 {
		return api.Job{}, nil, "no command"
	}
	if pl.ids[o.ID] && !pl.eph.reserved[o.ID] {
		return api.Job{}, nil, "job id " + o.ID + " is in use"
	}
	j := api.Job{
		ID: o.ID, App: cmp.Or(o.App, relApp), Release: o.Release, ProcessType: o.ProcessType,
		Args: pt.Args, Env: env, Artifact: art, Resources: pt.Resources, StopGrace: o.StopGrace, HostNetwork: pt.HostNetwork,
		TTY: o.TTY, Stdin: o.Stdin, Writable: o.Writable, ControlPlane: o.ControlPlane,
		Desired: api.DesiredRunning, CreatedAt: pl.s.Now, Scheduler: OneOffScheduler,
	}
	return j, NewRequest(o.App, o.Release, cmp.Or(o.ProcessType, "run"), &pt), ""
}

// oneOffUnits turns one-off updates into commit units.
func oneOffUnits(p *Plan) ([]unit, error) {
	var units []unit
	for i := range p.OneOffs {
		o := &p.OneOffs[i]
		key, err := store.Key(OneOffPrefix, o.ID)
		if err != nil {
			return nil, err
		}
		skey, _ := store.Key(OneOffStatusPrefix, o.ID)
		u := unit{}
		var jobKey, jobStatusKey string
		switch {
		case o.Start != nil:
			if jobKey, err = store.Key(store.JobsPrefix, o.Start.HostID, o.Start.ID); err != nil {
				return nil, err
			}
			u.guards, u.ops = 3, 2
		case o.Stop != nil:
			if jobKey, err = store.Key(store.JobsPrefix, o.Stop.Job.HostID, o.Stop.Job.ID); err != nil {
				return nil, err
			}
			u.guards, u.ops = 3, 1
		case o.Remove:
			u.guards, u.ops = 2, 2
			if d := o.Job; d != nil {
				if jobKey, err = store.Key(store.JobsPrefix, d.HostID, d.JobID); err != nil {
					return nil, err
				}
				jobStatusKey, _ = store.Key(store.JobStatusPrefix, d.JobID)
				u.guards, u.ops = 4, 4
			}
		case o.Status != nil:
			u.guards, u.ops = 2, 1
		default:
			return nil, errors.New("scheduler: empty one-off update " + o.ID)
		}
		u.add = func(tx *store.Tx) {
			switch {
			case o.Remove:
				deleteIf(tx, key, o.Rev)
				deleteIf(tx, skey, o.StatusRev)
				if d := o.Job; d != nil {
					tx.Delete(jobKey, d.Rev)
					deleteIf(tx, jobStatusKey, d.StatusRev)
				}
				return
			case o.Stop != nil:
				tx.Unchanged(key, o.Rev)
				tx.Unchanged(skey, o.StatusRev)
				tx.Update(jobKey, &o.Stop.Job, o.Stop.Rev)
				return
			}
			tx.Unchanged(key, o.Rev)
			if o.StatusRev == 0 {
				tx.Create(skey, o.Status)
			} else {
				tx.Update(skey, o.Status, o.StatusRev)
			}
			if o.Start != nil {
				tx.Create(jobKey, o.Start)
			}
		}
		units = append(units, u)
	}
	return units, nil
}

// deleteIf deletes key at rev, or, with rev 0, only checks it is absent.
func deleteIf(tx *store.Tx, key string, rev int64) {
	if rev == 0 {
		tx.Unchanged(key, 0)
	} else {
		tx.Delete(key, rev)
	}
}

// oneOffViews pairs requests with statuses by the id in their keys: a
// request's id is also its job's, so a value that disagrees with its key
// is skipped rather than trusted.
func oneOffViews(reqs []store.Item[api.OneOff], stats []store.Item[api.OneOffStatus]) []OneOffView {
	byID := map[string]*OneOffView{}
	var order []string
	view := func(id string) *OneOffView {
		v := byID[id]
		if v == nil {
			v = &OneOffView{ID: id}
			byID[id] = v
			order = append(order, id)
		}
		return v
	}
	for i := range reqs {
		it := &reqs[i]
		if k, err := store.Key(OneOffPrefix, it.Value.ID); err != nil || k != it.Key || !api.ValidID(it.Value.ID) {
			slog.Warn("scheduler: skipping one-off whose key does not match its id", "key", it.Key)
			continue
		}
		v := view(it.Value.ID)
		v.OneOff, v.Rev = &it.Value, it.ModRevision
	}
	for i := range stats {
		it := &stats[i]
		if k, err := store.Key(OneOffStatusPrefix, it.Value.ID); err == nil && k == it.Key && api.ValidID(it.Value.ID) {
			v := view(it.Value.ID)
			v.Status, v.StatusRev = &it.Value, it.ModRevision
		}
	}
	out := make([]OneOffView, 0, len(order))
	for _, id := range order {
		out = append(out, *byID[id])
	}
	return out
}
