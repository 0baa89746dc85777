package scheduler

import (
	"slices"

	"github.com/pierpaas/pier/api"
)

// restarting picks the job of a group that a restart (its formation's
// Restart list, written by `pier restart`) replaces now: the oldest
// listed job still live, or -1. One at a time, and treated as a job on
// a drained host: it leaves the count, so a replacement is placed, and
// it stops only once the group's other jobs make up for it, running and
// healthy (leaveDrained). A rolling restart thus never has fewer jobs
// serving than the formation asks for.
func (pl *planner) restarting(g *group, live []*JobView) int {
	fv := pl.formations[fkey{g.key.app, g.key.release}]
	if fv == nil || len(fv.Formation.Restart) == 0 {
		return -1
	}
	pick := -1
	for i, jv := range live {
		if !slices.Contains(fv.Formation.Restart, jv.Job.ID) {
			continue
		}
		if pick < 0 || olderJob(jv, live[pick]) {
			pick = i
		}
	}
	return pick
}

// olderJob orders jobs by creation, then id.
func olderJob(a, b *JobView) bool {
	if !a.Job.CreatedAt.Equal(b.Job.CreatedAt) {
		return a.Job.CreatedAt.Before(b.Job.CreatedAt)
	}
	return a.Job.ID < b.Job.ID
}

// serving reports whether a job counts as serving: running, and healthy
// if anything checks it. A job with a checked port (a service or a
// health check) has no verdict (Healthy nil) until its first probe
// passes, so for it nil means "not yet": a job on a drained host or being
// restarted must not stop for a replacement the routers do not list yet.
// (The deployer's Ready says the same.)
func serving(jv *JobView) bool {
	st := jv.Status
	if st == nil || st.State != api.JobRunning {
		return false
	}
	if st.Healthy != nil {
		return *st.Healthy
	}
	for _, p := range jv.Job.Ports {
		if p.Service != "" || p.Health != nil {
			return false
		}
	}
	return true
}
