package deployer

import (
	"fmt"
	"maps"
	"strings"

	"github.com/pierpaas/pier/api"
)

// typeStats counts the new release's live jobs of one process type: those
// meant to run that have not ended.
type typeStats struct {
	live      int
	ready     int
	unhealthy int    // running, health check failing
	unproven  int    // running, health check not passed yet
	starting  int    // not running yet, or ended and waiting to restart
	healthErr string // the latest health check error seen, for people
}

// Ready reports whether a new job counts as serving: running, and healthy
// if anything checks it. A job with a checked port (a service or a health
// check) has no verdict (Healthy nil) until its first probe passes or
// enough fail, so for it nil means "not yet", not "nothing to check".
func Ready(j *api.Job, st *api.JobStatus) bool {
	if st == nil || st.State != api.JobRunning {
		return false
	}
	if st.Healthy != nil {
		return *st.Healthy
	}
	for _, p := range j.Ports {
		if p.Service != "" || p.Health != nil {
			return false
		}
	}
	return true
}

func newJobStats(v *View) map[string]*typeStats {
	stats := map[string]*typeStats{}
	for _, j := range v.Jobs {
		if !counted(&j.Job) || j.Job.Desired != api.DesiredRunning {
			continue
		}
		s := stats[j.Job.ProcessType]
		if s == nil {
			s = &typeStats{}
			stats[j.Job.ProcessType] = s
		}
		s.live++
		st := j.Status
		switch {
		case Ready(&j.Job, st):
			s.ready++
		case st != nil && st.State == api.JobRunning && st.Healthy == nil:
			s.unproven++
		case st != nil && st.State == api.JobRunning:
			s.unhealthy++
			if st.Error != "" {
				s.healthErr = st.Error
			}
		default:
			s.starting++
		}
	}
	return stats
}

// rollout moves each process type of the new formation toward its target
// by the strategy's step, starting the next step only once every new job
// of the type is ready, and lowers the old formation by one for each ready
// new job. Process types move independently of each other.
func rollout(v *View, targets map[string]int, timedOut bool) Action {
	d := &v.Deployment
	step := max(d.Strategy.Step(), 1)
	stats := newJobStats(v)
	cur := processes(v.New)
	newC := map[string]int{}
	var oldC map[string]int
	if v.Old != nil {
		oldC = maps.Clone(v.Old.Processes)
		if oldC == nil {
			oldC = map[string]int{}
		}
	}
	lowerOld := func(t string, to int) {
		if oldC != nil && oldC[t] > to {
			oldC[t] = to
		}
	}
	var waiting []string
	after := ""
	if timedOut {
		after = " after " + d.Strategy.DeployTimeout().String()
	}
	for _, t := range sortedKeys(targets) {
		target, n := targets[t], cur[t]
		s := stats[t]
		if s == nil {
			s = &typeStats{}
		}
		pt := v.Release.Processes[t]
		switch {
		case pt.Schedule != "":
			// A cron type has no jobs to wait for: it is only switched
			// on, and a tick is skipped while another release's run goes.
			newC[t] = target
			lowerOld(t, 0)
			continue
		case pt.Omni:
			// An omni type's count is a switch: one job on every eligible
			// host, however many there are. The old ones go once every new
			// one serves.
			newC[t] = target
			if target == 0 || n > 0 && s.live > 0 && s.ready == s.live {
				lowerOld(t, 0)
				continue
			}
			waiting = append(waiting, explain(t, s.ready, max(s.live, 1), after, s, 0, v.Pending))
			continue
		}
		ready := min(s.ready, n)
		// Each ready new job replaces one old one.
		lowerOld(t, max(0, d.OldProcesses[t]-ready))
		switch {
		case n > target:
			newC[t] = target
		case ready >= n && n < target:
			newC[t] = n + min(step, target-n)
		default:
			newC[t] = n
		}
		if newC[t] != target || ready < target {
			waiting = append(waiting, explain(t, ready, target, after, s, n-s.live, v.Pending))
		}
	}
	switch {
	case len(waiting) == 0:
		a := Action{Kind: Complete}
		if v.New == nil || !sameCounts(cur, targets) {
			a.New = targets
		}
		return a
	case timedOut:
		return fail(v, strings.Join(waiting, "; "))
	}
	a := Action{Kind: Scale, Note: strings.Join(waiting, "; ")}
	if !sameCounts(cur, newC) || v.New == nil && total(newC) > 0 {
		a.New = newC
	}
	if oldC != nil && !sameCounts(v.Old.Processes, oldC) {
		a.Old = oldC
	}
	if a.New == nil && a.Old == nil {
		a.Kind = Wait
	}
	return a
}

// explain says why a process type is not done: "web: 0 of 1 new jobs
// healthy after 30s (1 running but failing its health check: ...)".
func explain(t string, ready, target int, after string, s *typeStats, unplaced int, pending []api.Pending) string {
	var why []string
	if s.unhealthy > 0 {
		w := fmt.Sprintf("%d running but failing its health check", s.unhealthy)
		if s.healthErr != "" {
			w += ": " + strings.TrimPrefix(s.healthErr, "health check failed: ")
		}
		why = append(why, w)
	}
	if s.unproven > 0 {
		why = append(why, fmt.Sprintf("%d running, health check not passed yet", s.unproven))
	}
	if s.starting > 0 {
		why = append(why, fmt.Sprintf("%d not running yet", s.starting))
	}
	if unplaced > 0 {
		w := fmt.Sprintf("%d not placed", unplaced)
		for _, p := range pending {
			if p.ProcessType == t && p.Reason != "" {
				w += ": " + p.Reason
				break
			}
		}
		why = append(why, w)
	}
	msg := fmt.Sprintf("%s: %d of %d new jobs healthy%s", t, ready, target, after)
	if len(why) > 0 {
		msg += " (" + strings.Join(why, ", ") + ")"
	}
	return msg
}
