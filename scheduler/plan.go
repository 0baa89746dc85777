package scheduler

import (
	"cmp"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
)

// Plan is what one scheduler pass decided. Nothing in it has happened:
// Commit writes it, guarded by the revisions it was decided from. Values
// in it share maps and slices with the snapshot; treat them as read-only.
type Plan struct {
	// Start are new jobs, each on its chosen host, with the ended or lost
	// job each replaces.
	Start []Start
	// Stop are jobs whose desired state becomes shutdown for reasons other
	// than a replacement: scaled down, formation gone, host not eligible.
	Stop []Stop
	// MarkLost are statuses to write for jobs whose host vanished.
	MarkLost []Lost
	// Delete are records of stopped jobs kept past the retention.
	Delete []Delete
	// Pending are wanted jobs that were not started, and why.
	Pending []api.Pending
	// Formations are the formations the plan's starts and stops depend
	// on, each to be guarded by its revision, with the status to write.
	Formations []FormationUpdate
	// OneOffs are the one-off requests placed, waiting, cancelled or
	// removed after their retention.
	OneOffs []OneOffUpdate
	// Skips are the cron ticks not run because the previous run still
	// goes; each is also noted in its formation's status.
	Skips []Skip
	// NextWake is when the plan would change with nothing else changing
	// (the earliest end of a restart backoff, the next cron tick, the end
	// of a result's retention); zero if never.
	NextWake time.Time
}

// Start is a new job, and the job it replaces: the replaced job's desired
// state becomes shutdown in the same transaction.
type Start struct {
	Job      api.Job
	Replaces *Stop
	// Guards are further conditions of this start alone. A start whose
	// formation the plan does not list must have some: a custom
	// scheduler guards its own state, or the host it read.
	Guards []Guard
	// Volumes are volume records bound to the job's host by this start.
	Volumes []VolumeBind
}

// Stop is a job to write back with desired state shutdown, guarded by the
// revision it was read at.
type Stop struct {
	Job    api.Job // as it is to be written
	Rev    int64
	Reason string
	// Guards are as Start's.
	Guards []Guard
}

// Lost is the status of a job whose host vanished, to be written in place
// of its status at StatusRev (0: it had none).
type Lost struct {
	Status api.JobStatus
	Rev    int64
}

// Delete removes a job's record and status.
type Delete struct {
	JobID, HostID  string
	Rev, StatusRev int64
}

// FormationUpdate is one formation a plan touches. Its key is guarded by
// Rev (0: it must still be absent), and Status, when set, is written over
// StatusRev at every commit that touches it.
type FormationUpdate struct {
	App, Release string
	Rev          int64
	Status       *api.FormationStatus // nil: the formation is gone; delete any status
	StatusRev    int64
	// Changed is set when the status must be written even if no job of
	// the formation starts or stops.
	Changed bool
}

// Empty reports whether committing the plan would write nothing.
func (p *Plan) Empty() bool {
	if len(p.Start)+len(p.Stop)+len(p.MarkLost)+len(p.Delete)+len(p.OneOffs) > 0 {
		return false
	}
	for _, f := range p.Formations {
		if f.Changed {
			return false
		}
	}
	return true
}

type fkey struct{ app, release string }
type tkey struct{ app, ptype string }
type gkey struct{ app, release, ptype string }

// group is one (app, release, process type) being reconciled.
type group struct {
	key     gkey
	desired int
	release *api.Release
	pt      *api.ProcessType
	missing string // why no job of it can start, when pt is nil
	env     map[string]string
	req     *Request
	idBase  string

	live  []*JobView // desired running, on a present host, not ended
	ended []*JobView // desired running, ended or lost
	// formHosts holds a host index per job of the group that is live
	// after this plan: kept jobs and new ones.
	formHosts []int32
	slots     []slot
}

// slot is a job the group wants started: a fresh one, or the replacement
// of an ended job (which carries its restart count and backoff). host is
// the slot's host for an omni group, -1 otherwise.
type slot struct {
	cand *JobView
	host int
}

// planner holds one Reconcile's working state.
type planner struct {
	s      *Snapshot
	cfg    Config
	rng    *rand.Rand
	placer *Placer

	hostIdx    map[string]int
	releases   map[string]*api.Release
	formations map[fkey]*FormationView
	statuses   map[fkey]*StatusView
	groups     map[gkey]*group
	// typeHosts holds a host index per unfinished job of an (app, process
	// type), in any release and desired state, and per job this plan starts.
	typeHosts map[tkey][]int32
	ids       map[string]bool
	touched   map[fkey]bool
	pending   map[fkey][]api.Pending
	eph       ephemeral
	vols      map[string]*volState // by volume id; see vol
	plan      Plan
}

// Reconcile decides a plan from a snapshot: it is a pure function of it.
// Per (app, release, process type) it counts the live jobs (desired
// running, not ended, on a present host); marks the jobs of vanished
// hosts lost; stops the excess (unstarted jobs first, then the newest);
// replaces jobs that ended, as the restart policy says and after their
// backoff, and those that were lost; and places new jobs up to the
// formation's count, or one per eligible host for an omni process type.
// Any part of the plan, applied without the rest (transactions lost to
// a conflict), keeps the constraints and leaves no group with more live
// jobs than it wants: a group's plan only starts or only stops, except
// for a replacement and the stop of what it replaces, which commit
// together; and a stopping job keeps its resources and max-per-host place
// until its host says it ended.
func Reconcile(s Snapshot) Plan {
	pl := &planner{
		s:          &s,
		cfg:        s.Config.withDefaults(),
		rng:        rand.New(rand.NewPCG(uint64(s.Seed), 0x9e3779b97f4a7c15)),
		hostIdx:    make(map[string]int, len(s.Hosts)),
		releases:   make(map[string]*api.Release, len(s.Releases)),
		formations: make(map[fkey]*FormationView, len(s.Formations)),
		statuses:   make(map[fkey]*StatusView, len(s.Statuses)),
		groups:     map[gkey]*group{},
		typeHosts:  map[tkey][]int32{},
		ids:        make(map[string]bool, len(s.Jobs)),
		touched:    map[fkey]bool{},
		pending:    map[fkey][]api.Pending{},
		eph:        ephemeral{oneOffJobs: map[string]*JobView{}, going: map[tkey]*JobView{}},
	}
	pl.indexHosts()
	pl.indexJobs()
	pl.indexFormations()
	pl.reserveOneOffIDs()
	keys := slices.SortedFunc(maps.Keys(pl.groups), func(a, b gkey) int {
		return cmp.Or(strings.Compare(a.app, b.app), strings.Compare(a.release, b.release), strings.Compare(a.ptype, b.ptype))
	})
	// Every group's stops are decided before any placement, so that the
	// kept jobs of all releases are known when spreading.
	slots := 0
	for _, k := range keys {
		pl.reconcile(pl.groups[k])
		slots += len(pl.groups[k].slots)
	}
	// Jobs are large: growing the slice by appending would copy 100,000
	// of them several times over.
	if slots > 0 {
		pl.plan.Start = make([]Start, 0, slots)
	}
	for _, k := range keys {
		pl.place(pl.groups[k])
	}
	// Then the ephemeral jobs, on what services left: cron ticks, then
	// one-off requests, oldest first.
	pl.crons()
	pl.cronJobs()
	pl.oneOffs()
	pl.formationUpdates()
	return pl.plan
}

// indexHosts orders the hosts by id, so that the snapshot's order does
// not change the plan, and gives each its seeded tie-break.
func (pl *planner) indexHosts() {
	hosts := make([]HostState, len(pl.s.Hosts))
	for i := range pl.s.Hosts {
		hosts[i].Host = &pl.s.Hosts[i]
		hosts[i].Draining = pl.s.Draining[pl.s.Hosts[i].ID]
	}
	slices.SortFunc(hosts, func(a, b HostState) int { return strings.Compare(a.Host.ID, b.Host.ID) })
	for i := range hosts {
		hosts[i].tie = pl.rng.Uint64()
		pl.hostIdx[hosts[i].Host.ID] = i
	}
	pl.placer = NewPlacer(pl.cfg.Pipeline, hosts)
}

// indexJobs charges every unfinished job to its host, marks this
// scheduler's jobs on vanished hosts lost, collects old stopped records,
// and sorts the rest into groups.
func (pl *planner) indexJobs() {
	now := pl.s.Now
	hosts := pl.placer.Hosts
	for i := range pl.s.Jobs {
		jv := &pl.s.Jobs[i]
		j := &jv.Job
		pl.ids[j.ID] = true
		hi, present := pl.hostIdx[j.HostID]
		ended := jv.Status != nil && jv.Status.State.Terminal()
		if present && !ended {
			hosts[hi].CPUUsed += j.Resources.CPUMillis
			hosts[hi].MemUsed += j.Resources.MemoryMB
		}
		if j.Scheduler != pl.cfg.Name {
			if isEphemeral(j.Scheduler) {
				pl.indexEphemeral(jv, present, ended)
			}
			continue
		}
		if present && !ended {
			// A stopping job still runs until its host says it ended, so it
			// keeps its max-per-host place; freeing it early would let a
			// start commit without the stop it counted on.
			tk := tkey{j.App, j.ProcessType}
			pl.typeHosts[tk] = append(pl.typeHosts[tk], int32(hi))
		}
		lost := !present && !ended
		if lost {
			pl.plan.MarkLost = append(pl.plan.MarkLost, Lost{Status: lostStatus(jv, now), Rev: jv.StatusRev})
		}
		if j.Desired != api.DesiredRunning {
			if !lost && (ended || jv.Status == nil) && !finishedAt(jv).Add(pl.cfg.Retention).After(now) {
				pl.plan.Delete = append(pl.plan.Delete, Delete{JobID: j.ID, HostID: j.HostID, Rev: jv.Rev, StatusRev: jv.StatusRev})
			}
			continue
		}
		g := pl.group(gkey{j.App, j.Release, j.ProcessType})
		if present && !ended {
			g.live = append(g.live, jv)
		} else {
			g.ended = append(g.ended, jv)
		}
	}
}

func (pl *planner) group(k gkey) *group {
	g := pl.groups[k]
	if g == nil {
		g = &group{key: k}
		pl.groups[k] = g
	}
	return g
}

// indexFormations gives every group its desired count and process type,
// and makes groups for process types that have no jobs yet.
func (pl *planner) indexFormations() {
	for i := range pl.s.Releases {
		r := &pl.s.Releases[i]
		pl.releases[r.ID] = r
	}
	for i := range pl.s.Statuses {
		sv := &pl.s.Statuses[i]
		pl.statuses[fkey{sv.Status.App, sv.Status.Release}] = sv
	}
	for i := range pl.s.Formations {
		fv := &pl.s.Formations[i]
		f := &fv.Formation
		pl.formations[fkey{f.App, f.Release}] = fv
		for ptype, n := range f.Processes {
			if n <= 0 {
				continue
			}
			k := gkey{f.App, f.Release, ptype}
			if pt := pl.cronType(f.App, f.Release, ptype); pt != nil {
				pl.eph.crons = append(pl.eph.crons, &cronEntry{key: k, release: pl.releases[f.Release], pt: pt})
				continue
			}
			pl.group(k)
		}
	}
	for k, g := range pl.groups {
		if fv := pl.formations[fkey{k.app, k.release}]; fv != nil {
			g.desired = max(fv.Formation.Processes[k.ptype], 0)
		}
		r := pl.releases[k.release]
		switch {
		case r == nil || r.App != k.app:
			g.missing = "release " + k.release + " not found"
		default:
			pt, ok := r.Processes[k.ptype]
			if !ok {
				g.missing = "no process type " + k.ptype + " in release " + k.release
				break
			}
			g.release, g.pt = r, &pt
			if pt.Schedule != "" {
				g.desired = 0 // a cron type runs no service jobs
			}
			g.env = mergeEnv(r.Env, pt.Env)
			g.req = NewRequest(k.app, k.release, k.ptype, g.pt)
		}
	}
}

func mergeEnv(base, over map[string]string) map[string]string {
	if len(over) == 0 {
		return base
	}
	if len(base) == 0 {
		return over
	}
	env := make(map[string]string, len(base)+len(over))
	for k, v := range base {
		env[k] = v
	}
	for k, v := range over {
		env[k] = v
	}
	return env
}

// lostStatus is the status the scheduler writes for a job whose host
// vanished: what was last reported, moved to lost.
func lostStatus(jv *JobView, now time.Time) api.JobStatus {
	var st api.JobStatus
	if jv.Status != nil {
		st = *jv.Status
	}
	st.ID, st.HostID = jv.Job.ID, jv.Job.HostID
	st.State = api.JobLost
	st.Error = "host " + jv.Job.HostID + " vanished"
	st.FinishedAt, st.UpdatedAt = now, now
	return st
}

// finishedAt is when a job ended, as well as its records tell.
func finishedAt(jv *JobView) time.Time {
	if st := jv.Status; st != nil {
		if !st.FinishedAt.IsZero() {
			return st.FinishedAt
		}
		if !st.UpdatedAt.IsZero() {
			return st.UpdatedAt
		}
	}
	return jv.Job.CreatedAt
}
