package scheduler

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/scheduler/cron"
)

// Skip is a cron tick the plan does not run, because the previous run of
// its process type still goes.
type Skip struct {
	App, Release, ProcessType string
	Tick                      time.Time
	Reason                    string
}

// cronEntry is an enabled cron process type of a formation.
type cronEntry struct {
	key     gkey
	release *api.Release
	pt      *api.ProcessType
}

// cronType returns the process type of a release if it is a cron one.
func (pl *planner) cronType(app, release, ptype string) *api.ProcessType {
	r := pl.releases[release]
	if r == nil || r.App != app {
		return nil
	}
	if pt, ok := r.Processes[ptype]; ok && pt.Schedule != "" {
		return &pt
	}
	return nil
}

// crons decides every enabled cron process type's tick, in key order.
// Its state lives in the formation status, which every commit touching
// the formation rewrites under the guard of its revision: so a tick is
// run by one plan only, and a new leader carries on from the last tick
// the old one recorded. A cron job's start commits in the same
// transaction as that status (see planUnits).
func (pl *planner) crons() {
	e := &pl.eph
	e.states = map[fkey][]api.CronStatus{}
	slices.SortFunc(e.crons, func(a, b *cronEntry) int {
		return cmp.Or(strings.Compare(a.key.app, b.key.app), strings.Compare(a.key.release, b.key.release), strings.Compare(a.key.ptype, b.key.ptype))
	})
	for _, c := range e.crons {
		fk := fkey{c.key.app, c.key.release}
		e.states[fk] = append(e.states[fk], pl.cron(c))
	}
}

func (pl *planner) prevCron(k gkey) *api.CronStatus {
	sv := pl.statuses[fkey{k.app, k.release}]
	if sv == nil {
		return nil
	}
	for i := range sv.Status.Cron {
		if sv.Status.Cron[i].ProcessType == k.ptype {
			return &sv.Status.Cron[i]
		}
	}
	return nil
}

func (pl *planner) cron(c *cronEntry) api.CronStatus {
	now := pl.s.Now
	st := api.CronStatus{ProcessType: c.key.ptype, Schedule: c.pt.Schedule}
	prev := pl.prevCron(c.key)
	if prev != nil && prev.Schedule == c.pt.Schedule {
		st = *prev
	}
	sched, err := cron.Parse(c.pt.Schedule)
	if err != nil {
		pl.addPendingKey(c.key, 1, err.Error(), time.Time{})
		st.NextTick = time.Time{}
		return st
	}
	if prev == nil || prev.Schedule != c.pt.Schedule {
		// Just enabled: ticks count from now.
		st.LastTick = now
		st.NextTick = sched.Next(now)
		pl.wake(st.NextTick)
		return st
	}
	tick, n := cron.Latest(sched, st.LastTick, now)
	if tick.IsZero() {
		st.NextTick = sched.Next(st.LastTick)
		pl.wake(st.NextTick)
		return st
	}
	tk := tkey{c.key.app, c.key.ptype}
	if prevJob := pl.eph.going[tk]; prevJob != nil {
		state := "starting"
		if prevJob.Status != nil {
			state = string(prevJob.Status.State)
		}
		why := fmt.Sprintf("previous run %s still %s", prevJob.Job.ID, state)
		st.LastTick, st.Skipped = tick, st.Skipped+n
		st.Note = fmt.Sprintf("tick %s skipped: %s", tick.Format(time.RFC3339), why)
		pl.plan.Skips = append(pl.plan.Skips, Skip{App: c.key.app, Release: c.key.release, ProcessType: c.key.ptype, Tick: tick, Reason: why})
	} else {
		pt := *c.pt
		pt.MaxPerHost, pt.Omni = 0, false
		req := NewRequest(c.key.app, c.key.release, c.key.ptype, &pt)
		chosen, why := pl.placer.Place(req, Counts{}, 1, pl.rng.Uint64())
		if len(chosen) == 0 {
			// The tick stays due: it runs as soon as a host fits, or is
			// counted as missed when the next one comes.
			pl.addPendingKey(c.key, 1, why, time.Time{})
			st.NextTick = tick
			pl.wake(sched.Next(tick))
			return st
		}
		j := pl.cronJob(c, int(chosen[0]))
		// A later formation of the same app's process type (another
		// release) sees this run going.
		pl.eph.going[tk] = &JobView{Job: j}
		pl.plan.Start = append(pl.plan.Start, Start{Job: j})
		pl.touched[fkey{c.key.app, c.key.release}] = true
		if missed := n - 1; missed > 0 {
			st.Skipped += missed
			st.Note = fmt.Sprintf("%d %s before %s missed: no scheduler ran", missed, plural(missed, "tick", "ticks"), tick.Format(time.RFC3339))
		}
		st.LastTick, st.LastJob, st.LastRun = tick, j.ID, tick
	}
	st.NextTick = sched.Next(st.LastTick)
	pl.wake(st.NextTick)
	return st
}

func (pl *planner) cronJob(c *cronEntry, host int) api.Job {
	pt, rel := c.pt, c.release
	return api.Job{
		ID: pl.newIDFrom(idBase(c.key.app, c.key.ptype)), HostID: pl.placer.Hosts[host].Host.ID,
		App: c.key.app, Release: c.key.release, ProcessType: c.key.ptype,
		Args: pt.Args, Env: mergeEnv(rel.Env, pt.Env), Artifact: rel.Artifact, Ports: pt.Ports,
		Resources: pt.Resources, StopGrace: pt.StopGrace, HostNetwork: pt.HostNetwork,
		Desired: api.DesiredRunning, CreatedAt: pl.s.Now, Scheduler: CronScheduler,
	}
}

// cronJobs removes the records of cron jobs past their retention.
func (pl *planner) cronJobs() {
	for _, jv := range pl.eph.jobs {
		if jv.Job.Scheduler == CronScheduler && pl.expired(jv) {
			pl.plan.Delete = append(pl.plan.Delete, *jobDelete(jv))
		}
	}
}

func (pl *planner) addPendingKey(k gkey, n int, why string, until time.Time) {
	fk := fkey{k.app, k.release}
	pl.pending[fk] = append(pl.pending[fk], api.Pending{App: k.app, Release: k.release,
		ProcessType: k.ptype, Count: n, Reason: why, Until: until})
}

func cronEqual(a, b api.CronStatus) bool {
	return a.ProcessType == b.ProcessType && a.Schedule == b.Schedule && a.LastTick.Equal(b.LastTick) &&
		a.LastJob == b.LastJob && a.LastRun.Equal(b.LastRun) && a.NextTick.Equal(b.NextTick) &&
		a.Skipped == b.Skipped && a.Note == b.Note
}
