package scheduler

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
)

// reconcile decides a group's stops, and the slots it wants filled.
func (pl *planner) reconcile(g *group) {
	if g.pt != nil && g.pt.Omni {
		pl.reconcileOmni(g)
		return
	}
	// Jobs on a host being drained do not count toward the desired
	// number: replacements are placed elsewhere, and each leaves once
	// enough others run (see leaveDrained).
	var leaving []*JobView
	live := g.live[:0:0]
	for _, jv := range g.live {
		if pl.draining(jv) {
			leaving = append(leaving, jv)
		} else {
			live = append(live, jv)
		}
	}
	g.live = live
	why := "host being drained"
	if len(leaving) == 0 {
		// A restart moves one listed job at a time the same way.
		if i := pl.restarting(g, g.live); i >= 0 {
			leaving, why = append(leaving, g.live[i]), "restarted"
			g.live = slices.Delete(g.live, i, i+1)
		}
	}
	defer pl.leaveDrained(g, leaving, why)
	var done, cands []*JobView
	for _, jv := range g.ended {
		if pl.restartable(g, jv) {
			cands = append(cands, jv)
		} else {
			done = append(done, jv)
		}
	}
	excess := len(g.live) + len(done) - g.desired
	if excess > 0 {
		// A job that ended and keeps its slot costs nothing to give up;
		// then a job not yet running costs less than one serving.
		slices.SortFunc(done, newestFirst)
		n := min(excess, len(done))
		for _, jv := range done[:n] {
			pl.stop(jv, "scaled down")
		}
		excess -= n
		slices.SortFunc(g.live, stopFirst)
		for _, jv := range g.live[:excess] {
			pl.stop(jv, "scaled down")
		}
		g.live = g.live[excess:]
		for _, jv := range cands {
			pl.stop(jv, "scaled down")
		}
	} else {
		free := -excess
		// Lost jobs first (they wait for nothing), then the slots whose
		// backoff ends soonest; a slot waiting out its backoff is not
		// given to a fresh job, or the backoff would be pointless.
		slices.SortFunc(cands, func(a, b *JobView) int {
			ta, _ := pl.readyAt(a)
			tb, _ := pl.readyAt(b)
			return cmp.Or(ta.Compare(tb), strings.Compare(a.Job.ID, b.Job.ID))
		})
		n := min(free, len(cands))
		for _, jv := range cands[:n] {
			g.slots = append(g.slots, slot{cand: jv, host: -1})
		}
		for _, jv := range cands[n:] {
			pl.stop(jv, "scaled down")
		}
		for range free - n {
			g.slots = append(g.slots, slot{host: -1})
		}
	}
	pl.keep(g, g.live)
}

// draining says whether a job's host is being drained.
func (pl *planner) draining(jv *JobView) bool {
	i, ok := pl.hostIdx[jv.Job.HostID]
	return ok && pl.placer.Hosts[i].Draining
}

// leaveDrained stops the group's jobs on drained hosts as far as the
// group's other running jobs make up for them: never below the desired
// number while replacements start, all of them once they run. The rest
// stay, and count for spreading, until a later pass.
func (pl *planner) leaveDrained(g *group, leaving []*JobView, why string) {
	if len(leaving) == 0 {
		return
	}
	running := 0
	for _, jv := range g.live {
		if serving(jv) {
			running++
		}
	}
	n := min(max(running+len(leaving)-g.desired, 0), len(leaving))
	slices.SortFunc(leaving, stopFirst)
	for _, jv := range leaving[:n] {
		pl.stop(jv, why)
	}
	pl.keep(g, leaving[n:])
}

// reconcileOmni gives an omni group one slot per present host that
// matches its tags, and stops whatever is elsewhere or in excess.
func (pl *planner) reconcileOmni(g *group) {
	type onHost struct{ live, done, cands []*JobView }
	by := map[int]*onHost{}
	at := func(i int) *onHost {
		if by[i] == nil {
			by[i] = &onHost{}
		}
		return by[i]
	}
	for _, jv := range g.live {
		h := at(pl.hostIdx[jv.Job.HostID])
		h.live = append(h.live, jv)
	}
	for _, jv := range g.ended {
		i, present := pl.hostIdx[jv.Job.HostID]
		switch {
		case !present:
			pl.stop(jv, "host lost") // its slot went with its host
		case pl.restartable(g, jv):
			at(i).cands = append(at(i).cands, jv)
		default:
			at(i).done = append(at(i).done, jv)
		}
	}
	var kept []*JobView
	for i := range pl.placer.Hosts {
		h := by[i]
		eligible, _ := TagsMatch{}.Check(&pl.placer.Hosts[i], g.req, nil)
		if g.desired <= 0 || !eligible || pl.placer.Hosts[i].Draining {
			if h != nil {
				why := "scaled down"
				switch {
				case g.desired > 0 && pl.placer.Hosts[i].Draining:
					why = "host being drained"
				case g.desired > 0:
					why = "host not eligible"
				}
				pl.stopAll(why, h.live, h.done, h.cands)
			}
			continue
		}
		switch {
		case h == nil:
			g.slots = append(g.slots, slot{host: i})
		case len(h.live) > 0:
			slices.SortFunc(h.live, newestFirst)
			last := len(h.live) - 1
			kept = append(kept, h.live[last]) // the oldest has served longest
			pl.stopAll("duplicate", h.live[:last], h.done, h.cands)
		case len(h.done) > 0:
			pl.stopAll("duplicate", h.done[1:], h.cands)
		default:
			slices.SortFunc(h.cands, newestFirst)
			g.slots = append(g.slots, slot{cand: h.cands[0], host: i})
			pl.stopAll("duplicate", h.cands[1:])
		}
	}
	g.live = kept
	pl.keep(g, kept)
}

// restartable reports whether an ended job's slot wants a replacement.
// A lost job is replaced whatever the policy: it did not end, it was lost.
func (pl *planner) restartable(g *group, jv *JobView) bool {
	st := jv.Status
	if st == nil || !st.State.Terminal() || st.State == api.JobLost {
		return true
	}
	policy := api.RestartAlways
	if g.pt != nil {
		policy = g.pt.RestartPolicy()
	}
	switch policy {
	case api.RestartNever:
		return false
	case api.RestartOnFailure:
		return st.State == api.JobFailed || st.State == api.JobRejected
	}
	return true
}

// WaitingToRestart is the reason of a formation's pending jobs whose
// slots wait out a crash's backoff; the Pending's Until says when the
// first of them restarts (pier ps shows it by the crashed job).
const WaitingToRestart = "waiting to restart after a crash"

// readyAt is when an ended job's replacement may start, and the backoff
// the replacement carries. The backoff doubles at each crash and starts
// over after a job that stayed up BackoffReset; a lost job is replaced at
// once and passes its backoff on unchanged. Expressed as a time rather
// than a sleep, so that Reconcile stays pure and the loop wakes at it.
func (pl *planner) readyAt(jv *JobView) (time.Time, time.Duration) {
	prev := time.Duration(jv.Job.Backoff)
	st := jv.Status
	if st == nil || !st.State.Terminal() || st.State == api.JobLost {
		return time.Time{}, prev
	}
	end := finishedAt(jv)
	next := pl.cfg.BackoffBase
	ranFor := time.Duration(0)
	if !st.StartedAt.IsZero() {
		ranFor = end.Sub(st.StartedAt)
	}
	if prev > 0 && ranFor < pl.cfg.BackoffReset {
		next = min(2*prev, pl.cfg.BackoffMax)
	}
	return end.Add(next), next
}

// keep records a group's jobs that stay live, for spreading and omni.
func (pl *planner) keep(g *group, jobs []*JobView) {
	for _, jv := range jobs {
		g.formHosts = append(g.formHosts, int32(pl.hostIdx[jv.Job.HostID]))
	}
}

func (pl *planner) stop(jv *JobView, why string) {
	pl.plan.Stop = append(pl.plan.Stop, Stop{Job: shutdown(jv), Rev: jv.Rev, Reason: why})
	pl.touched[fkey{jv.Job.App, jv.Job.Release}] = true
}

func (pl *planner) stopAll(why string, lists ...[]*JobView) {
	for _, l := range lists {
		for _, jv := range l {
			pl.stop(jv, why)
		}
	}
}

func shutdown(jv *JobView) api.Job {
	j := jv.Job
	j.Desired = api.DesiredShutdown
	return j
}

// place fills a group's slots: those waiting out a backoff stay pending
// until it ends, the rest go through the placement pipeline.
func (pl *planner) place(g *group) {
	if len(g.slots) == 0 {
		return
	}
	now := pl.s.Now
	var ready []slot
	var waiting int
	var until time.Time
	for _, sl := range g.slots {
		if sl.cand != nil {
			if at, _ := pl.readyAt(sl.cand); at.After(now) {
				waiting++
				if until.IsZero() || at.Before(until) {
					until = at
				}
				continue
			}
		}
		ready = append(ready, sl)
	}
	if waiting > 0 {
		pl.addPending(g, waiting, WaitingToRestart, until)
		if pl.plan.NextWake.IsZero() || until.Before(pl.plan.NextWake) {
			pl.plan.NextWake = until
		}
	}
	if len(ready) == 0 {
		return
	}
	if g.pt == nil {
		pl.addPending(g, len(ready), g.missing, time.Time{})
		return
	}
	tk := tkey{g.key.app, g.key.ptype}
	if g.pt.Omni {
		reasons := map[string]int{}
		for _, sl := range ready {
			c := Counts{SameType: pl.typeHosts[tk], SameFormation: g.formHosts}
			if ok, why := pl.placer.PlaceOn(g.req, c, sl.host); !ok {
				reasons[why]++
				continue
			}
			pl.start(g, sl, sl.host)
		}
		if n := sum(reasons); n > 0 {
			pl.addPending(g, n, Explain(reasons), time.Time{})
		}
		return
	}
	if len(g.pt.Volumes) > 0 {
		pl.placeWithVolumes(g, ready)
		return
	}
	c := Counts{SameType: pl.typeHosts[tk], SameFormation: g.formHosts}
	chosen, why := pl.placer.Place(g.req, c, len(ready), pl.rng.Uint64())
	for k, i := range chosen {
		pl.start(g, ready[k], int(i))
	}
	if n := len(ready) - len(chosen); n > 0 {
		pl.addPending(g, n, why, time.Time{})
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// start makes a new job of g on host i for a slot.
func (pl *planner) start(g *group, sl slot, i int) {
	pt, rel := g.pt, g.release
	j := api.Job{
		ID: pl.newID(g), HostID: pl.placer.Hosts[i].Host.ID,
		App: g.key.app, Release: g.key.release, ProcessType: g.key.ptype,
		Args: pt.Args, Env: g.env, Artifact: rel.Artifact, Ports: pt.Ports,
		Resources: pt.Resources, StopGrace: pt.StopGrace, Volumes: pl.jobVolumes(g), HostNetwork: pt.HostNetwork,
		Desired: api.DesiredRunning, CreatedAt: pl.s.Now, Scheduler: pl.cfg.Name,
	}
	st := Start{Job: j}
	if c := sl.cand; c != nil {
		_, next := pl.readyAt(c)
		st.Job.Restarts = c.Job.Restarts + 1
		st.Job.Backoff = api.Duration(next)
		st.Replaces = &Stop{Job: shutdown(c), Rev: c.Rev, Reason: "replaced"}
	}
	pl.plan.Start = append(pl.plan.Start, st)
	pl.touched[fkey{g.key.app, g.key.release}] = true
	g.formHosts = append(g.formHosts, int32(i))
	tk := tkey{g.key.app, g.key.ptype}
	pl.typeHosts[tk] = append(pl.typeHosts[tk], int32(i))
}

func (pl *planner) addPending(g *group, n int, why string, until time.Time) {
	fk := fkey{g.key.app, g.key.release}
	pl.pending[fk] = append(pl.pending[fk], api.Pending{App: g.key.app, Release: g.key.release,
		ProcessType: g.key.ptype, Count: n, Reason: why, Until: until})
}

// formationUpdates lists the formations the plan depends on, and the
// statuses that changed, in key order.
func (pl *planner) formationUpdates() {
	keys := map[fkey]bool{}
	for k := range pl.formations {
		keys[k] = true
	}
	for k := range pl.statuses {
		keys[k] = true
	}
	for k := range pl.touched {
		keys[k] = true
	}
	for _, k := range slices.SortedFunc(maps.Keys(keys), func(a, b fkey) int {
		return cmp.Or(strings.Compare(a.app, b.app), strings.Compare(a.release, b.release))
	}) {
		fv, sv, pend := pl.formations[k], pl.statuses[k], pl.pending[k]
		pl.plan.Pending = append(pl.plan.Pending, pend...)
		u := FormationUpdate{App: k.app, Release: k.release}
		var old []api.Pending
		if sv != nil {
			u.StatusRev, old = sv.Rev, sv.Status.Pending
		}
		if fv == nil {
			u.Changed = sv != nil
			if u.Changed || pl.touched[k] {
				pl.plan.Formations = append(pl.plan.Formations, u)
			}
			continue
		}
		u.Rev = fv.Rev
		crons := pl.eph.states[k]
		var oldCron []api.CronStatus
		if sv != nil {
			oldCron = sv.Status.Cron
		}
		u.Changed = !slices.EqualFunc(old, pend, pendingEqual) || !slices.EqualFunc(oldCron, crons, cronEqual)
		u.Status = &api.FormationStatus{App: k.app, Release: k.release, Pending: pend, Cron: crons, UpdatedAt: pl.s.Now}
		if u.Changed || pl.touched[k] {
			pl.plan.Formations = append(pl.plan.Formations, u)
		}
	}
}

func pendingEqual(a, b api.Pending) bool {
	return a.App == b.App && a.Release == b.Release && a.ProcessType == b.ProcessType &&
		a.Count == b.Count && a.Reason == b.Reason && a.Until.Equal(b.Until)
}

// stopFirst orders live jobs for a scale-down: those not yet running
// first, then the newest.
func stopFirst(a, b *JobView) int {
	return cmp.Or(cmp.Compare(progress(a), progress(b)), newestFirst(a, b))
}

func newestFirst(a, b *JobView) int {
	return cmp.Or(b.Job.CreatedAt.Compare(a.Job.CreatedAt), strings.Compare(b.Job.ID, a.Job.ID))
}

func progress(jv *JobView) int {
	if jv.Status == nil {
		return 0
	}
	switch jv.Status.State {
	case api.JobAssigned:
		return 1
	case api.JobStarting:
		return 2
	case api.JobRunning:
		return 3
	}
	return 0
}
