package scheduler_test

import (
	"testing"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/scheduler/sim"
)

// restart lists jobs in a formation's Restart, as the controller does.
func restart(c *sim.Cluster, app, release string, ids ...string) {
	fv := c.Formations[app+"/"+release]
	fv.Formation.Restart = ids
	c.Rev++
	fv.Rev = c.Rev
}

// A restart replaces the listed jobs one at a time: never fewer than the
// formation's count running, the next one only once the previous one's
// replacement runs, and a replacement that has not passed its health
// check does not count.
func TestRestartOneByOne(t *testing.T) {
	c := cluster(2, web(func(pt *api.ProcessType) { pt.Ports = []api.Port{{Proto: "http", Service: "web.shop"}} }), 3)
	step(t, c)
	healthy := func() {
		for _, jv := range c.Jobs {
			if st := jv.Status; st != nil && st.State == api.JobRunning && st.Healthy == nil {
				ok := true
				st.Healthy = &ok
			}
		}
		c.Rev++
	}
	healthy()
	var old []string
	for _, j := range live(c, "shop-v1", "web") {
		old = append(old, j.ID)
	}
	restart(c, "shop", "shop-v1", old...)
	stopped := map[string]bool{}
	for pass := 0; len(stopped) < 3; pass++ {
		if pass > 20 {
			t.Fatalf("restart not done after %d passes: stopped %v", pass, stopped)
		}
		p := scheduler.Reconcile(c.Snapshot(c.Rev))
		if len(p.Start) > 1 {
			t.Fatalf("pass %d starts %d jobs at once", pass, len(p.Start))
		}
		for _, s := range p.Stop {
			if s.Reason != "restarted" {
				t.Fatalf("stop %s: %q", s.Job.ID, s.Reason)
			}
			stopped[s.Job.ID] = true
		}
		if err := c.Apply(p, nil); err != nil {
			t.Fatal(err)
		}
		c.RunAgents()
		serving := 0
		for _, j := range live(c, "shop-v1", "web") {
			if st := c.Jobs[j.ID].Status; st != nil && st.Healthy != nil && *st.Healthy {
				serving++
			}
		}
		if serving < 3 {
			t.Fatalf("pass %d: %d jobs serving, want at least 3", pass, serving)
		}
		// Health checks pass a pass later than the job runs.
		if pass%2 == 1 {
			healthy()
		}
	}
	jobs := live(c, "shop-v1", "web")
	if len(jobs) != 3 {
		t.Fatalf("after the restart: %d jobs", len(jobs))
	}
	for _, j := range jobs {
		for _, o := range old {
			if j.ID == o {
				t.Fatalf("job %s was not replaced", o)
			}
		}
	}
	if p := scheduler.Reconcile(c.Snapshot(c.Rev)); len(p.Start)+len(p.Stop) != 0 {
		t.Fatalf("after the restart the plan still does %+v", p)
	}
}
