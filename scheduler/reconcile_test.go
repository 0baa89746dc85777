package scheduler_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/scheduler/sim"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func web(mods ...func(*api.ProcessType)) api.ProcessType {
	pt := api.ProcessType{Args: []string{"web"}, Resources: api.Resources{MemoryMB: 256, CPUMillis: 250}}
	for _, m := range mods {
		m(&pt)
	}
	return pt
}

// cluster has n hosts h0..h(n-1) and release shop-v1 with process type
// web, scaled to count.
func cluster(n int, pt api.ProcessType, count int) *sim.Cluster {
	c := sim.New(t0)
	for i := range n {
		c.AddHost(host(fmt.Sprintf("h%d", i), 4096, 4000))
	}
	c.AddRelease(api.Release{ID: "shop-v1", App: "shop", Processes: map[string]api.ProcessType{"web": pt}})
	c.SetFormation("shop", "shop-v1", map[string]int{"web": count})
	return c
}

// step plans, applies the plan and lets the agents act.
func step(t *testing.T, c *sim.Cluster) scheduler.Plan {
	t.Helper()
	p := scheduler.Reconcile(c.Snapshot(c.Rev))
	if err := c.Apply(p, nil); err != nil {
		t.Fatal(err)
	}
	c.RunAgents()
	return p
}

// live returns the live jobs of a release's process type.
func live(c *sim.Cluster, release, ptype string) []api.Job {
	var out []api.Job
	for _, jv := range c.Jobs {
		_, present := c.Hosts[jv.Job.HostID]
		if present && jv.Job.Release == release && jv.Job.ProcessType == ptype &&
			jv.Job.Desired == api.DesiredRunning && (jv.Status == nil || !jv.Status.State.Terminal()) {
			out = append(out, jv.Job)
		}
	}
	slices.SortFunc(out, func(a, b api.Job) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func perHost(jobs []api.Job) map[string]int {
	m := map[string]int{}
	for _, j := range jobs {
		m[j.HostID]++
	}
	return m
}

func TestScaleUpSpreads(t *testing.T) {
	c := cluster(3, web(), 6)
	p := step(t, c)
	if len(p.Start) != 6 || len(p.Pending) != 0 {
		t.Fatalf("plan: %d starts, pending %+v", len(p.Start), p.Pending)
	}
	for h, n := range perHost(live(c, "shop-v1", "web")) {
		if n != 2 {
			t.Errorf("host %s has %d jobs, want 2", h, n)
		}
	}
	j := p.Start[0].Job
	if err := j.Validate(); err != nil || j.Scheduler != scheduler.ServiceScheduler || !strings.HasPrefix(j.ID, "shop-web-") {
		t.Errorf("job %+v: %v", j, err)
	}
	if p := step(t, c); !p.Empty() {
		t.Errorf("second pass not empty: %+v", p)
	}
}

func TestScaleDownStopsUnstartedThenNewest(t *testing.T) {
	c := cluster(4, web(), 1)
	step(t, c)
	oldest := live(c, "shop-v1", "web")[0].ID
	c.Now = c.Now.Add(time.Minute)
	c.SetFormation("shop", "shop-v1", map[string]int{"web": 2})
	step(t, c)
	c.Now = c.Now.Add(time.Minute)
	c.SetFormation("shop", "shop-v1", map[string]int{"web": 4})
	if p := scheduler.Reconcile(c.Snapshot(1)); c.Apply(p, nil) != nil || len(p.Start) != 2 {
		t.Fatalf("scale to 4: %+v", p)
	} // not run by the agents: two pending jobs
	c.SetFormation("shop", "shop-v1", map[string]int{"web": 1})
	p := step(t, c)
	if len(p.Stop) != 3 || len(p.Start) != 0 {
		t.Fatalf("scale to 1: %d stops, %d starts", len(p.Stop), len(p.Start))
	}
	for _, s := range p.Stop[:2] {
		if c.Jobs[s.Job.ID].Status.State != api.JobShutdown || !s.Job.CreatedAt.Equal(t0.Add(2*time.Minute)) {
			t.Errorf("first stops should be the unstarted jobs: %+v", s.Job)
		}
	}
	if l := live(c, "shop-v1", "web"); len(l) != 1 || l[0].ID != oldest {
		t.Errorf("left %v, want the oldest %s", l, oldest)
	}
	if f := p.Formations; len(f) != 1 || f[0].Rev != c.Formations["shop/shop-v1"].Rev {
		t.Errorf("stops not guarded by the formation: %+v", f)
	}
}

func TestHostLossReplaces(t *testing.T) {
	c := cluster(3, web(), 3)
	step(t, c)
	gone := live(c, "shop-v1", "web")[0]
	c.RemoveHost(gone.HostID)
	p := step(t, c)
	if len(p.MarkLost) != 1 || p.MarkLost[0].Status.ID != gone.ID || p.MarkLost[0].Status.State != api.JobLost {
		t.Fatalf("MarkLost = %+v", p.MarkLost)
	}
	if len(p.Start) != 1 || p.Start[0].Replaces == nil || p.Start[0].Replaces.Job.ID != gone.ID {
		t.Fatalf("Start = %+v", p.Start)
	}
	n := p.Start[0].Job
	if n.HostID == gone.HostID || n.Restarts != 1 || n.Backoff != 0 {
		t.Errorf("replacement %+v", n)
	}
	if p.Start[0].Replaces.Job.Desired != api.DesiredShutdown {
		t.Errorf("replaced job not stopped")
	}
	// The host comes back: its job stays lost, and is not started again.
	c.AddHost(host(gone.HostID, 4096, 4000))
	if p := step(t, c); !p.Empty() {
		t.Errorf("after the host's return: %+v", p)
	}
	if l := live(c, "shop-v1", "web"); len(l) != 3 {
		t.Errorf("%d live, want 3", len(l))
	}
}

func TestCrashBackoff(t *testing.T) {
	c := cluster(2, web(), 1)
	step(t, c)
	crash := func(after time.Duration) scheduler.Plan {
		t.Helper()
		c.Now = c.Now.Add(after)
		c.End(live(c, "shop-v1", "web")[0].ID, api.JobFailed)
		return step(t, c)
	}
	// Each quick crash doubles the wait; the slot is not refilled early.
	var restarts int
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		p := crash(10 * time.Second)
		if len(p.Start) != 0 || len(p.Pending) != 1 || !p.Pending[0].Until.Equal(c.Now.Add(want)) || !p.NextWake.Equal(c.Now.Add(want)) {
			t.Fatalf("crash: plan %+v, want a wait of %s", p, want)
		}
		if p.Pending[0].Reason != "waiting to restart after a crash" || len(p.Formations) != 1 || !p.Formations[0].Changed {
			t.Errorf("pending not reported: %+v %+v", p.Pending, p.Formations)
		}
		c.Now = p.NextWake.Add(-time.Millisecond)
		if p := step(t, c); len(p.Start) != 0 {
			t.Fatalf("started before the backoff ended")
		}
		c.Now = p.NextWake
		p = step(t, c)
		restarts++
		if len(p.Start) != 1 || p.Start[0].Job.Restarts != restarts || time.Duration(p.Start[0].Job.Backoff) != want {
			t.Fatalf("restart: %+v", p.Start)
		}
	}
	// A job that stayed up a minute resets the backoff.
	p := crash(2 * time.Minute)
	if !p.NextWake.Equal(c.Now.Add(time.Second)) {
		t.Errorf("after a long run: wake %s, want 1s", p.NextWake.Sub(c.Now))
	}
}

func TestBackoffCap(t *testing.T) {
	c := cluster(1, web(), 1)
	p := scheduler.Reconcile(c.Snapshot(1))
	j := p.Start[0].Job
	j.Backoff = api.Duration(4 * time.Minute)
	s := c.Snapshot(1)
	s.Jobs = []scheduler.JobView{{Job: j, Rev: 1, Status: &api.JobStatus{State: api.JobFailed, StartedAt: t0, FinishedAt: t0}}}
	if p := scheduler.Reconcile(s); !p.NextWake.Equal(t0.Add(5 * time.Minute)) {
		t.Errorf("wake at +%s, want the 5m cap", p.NextWake.Sub(t0))
	}
}

func TestRestartPolicies(t *testing.T) {
	for _, tc := range []struct {
		policy   api.RestartPolicy
		end      api.JobState
		replaced bool
	}{
		{"", api.JobComplete, true},
		{api.RestartAlways, api.JobFailed, true},
		{api.RestartOnFailure, api.JobFailed, true},
		{api.RestartOnFailure, api.JobRejected, true},
		{api.RestartOnFailure, api.JobComplete, false},
		{api.RestartNever, api.JobFailed, false},
		{api.RestartNever, api.JobComplete, false},
	} {
		t.Run(fmt.Sprintf("%s/%s", tc.policy, tc.end), func(t *testing.T) {
			c := cluster(1, web(func(p *api.ProcessType) { p.Restart = tc.policy }), 1)
			step(t, c)
			c.End(live(c, "shop-v1", "web")[0].ID, tc.end)
			c.Now = c.Now.Add(time.Hour)
			p := step(t, c)
			if got := len(p.Start) == 1; got != tc.replaced {
				t.Errorf("replaced = %v, want %v (plan %+v)", got, tc.replaced, p)
			}
			if !tc.replaced && !p.Empty() {
				t.Errorf("a finished job keeps its slot: plan %+v", p)
			}
		})
	}
}

func TestOmni(t *testing.T) {
	c := cluster(0, web(func(p *api.ProcessType) { p.Omni = true; p.Tags = map[string]string{"role": "edge"} }), 1)
	c.AddHost(host("a", 4096, 4000, "role", "edge"))
	c.AddHost(host("b", 4096, 4000, "role", "edge"))
	c.AddHost(host("c", 4096, 4000))
	c.AddHost(host("d", 100, 4000, "role", "edge"))
	p := step(t, c)
	if got := perHost(live(c, "shop-v1", "web")); !reflect.DeepEqual(got, map[string]int{"a": 1, "b": 1}) {
		t.Errorf("omni jobs on %v", got)
	}
	if len(p.Pending) != 1 || p.Pending[0].Reason != "1 host: 1 lacked memory" {
		t.Errorf("pending %+v", p.Pending)
	}
	c.AddHost(host("e", 4096, 4000, "role", "edge"))
	if p := step(t, c); len(p.Start) != 1 || p.Start[0].Job.HostID != "e" {
		t.Errorf("new host: %+v", p.Start)
	}
	c.RemoveHost("a")
	if p := step(t, c); len(p.Start) != 0 || len(p.MarkLost) != 1 || len(p.Stop) != 1 || p.Stop[0].Reason != "host lost" {
		t.Errorf("host gone: %+v", p)
	}
	// The count only switches an omni process type on and off.
	c.SetFormation("shop", "shop-v1", map[string]int{"web": 0})
	if p := step(t, c); len(p.Stop) != 2 || len(live(c, "shop-v1", "web")) != 0 {
		t.Errorf("switched off: %+v", p)
	}
}

func TestFormationRemovedAndGarbage(t *testing.T) {
	c := cluster(2, web(), 2)
	step(t, c)
	c.SetFormation("shop", "shop-v1", nil)
	p := step(t, c)
	if len(p.Stop) != 2 || len(p.Formations) != 1 || p.Formations[0].Rev != 0 || p.Formations[0].Status != nil {
		t.Fatalf("plan %+v", p)
	}
	c.Now = c.Now.Add(14 * time.Minute)
	if p := step(t, c); !p.Empty() {
		t.Errorf("deleted before the retention: %+v", p)
	}
	c.Now = c.Now.Add(2 * time.Minute)
	if p := step(t, c); len(p.Delete) != 2 || len(c.Jobs) != 0 {
		t.Errorf("garbage: %+v, %d jobs left", p.Delete, len(c.Jobs))
	}
}

func TestPendingStatus(t *testing.T) {
	c := cluster(2, web(func(p *api.ProcessType) { p.Resources.MemoryMB = 3000 }), 3)
	p := step(t, c)
	want := []api.Pending{{App: "shop", Release: "shop-v1", ProcessType: "web", Count: 1, Reason: "2 hosts: 2 lacked memory"}}
	if len(p.Start) != 2 || !reflect.DeepEqual(p.Pending, want) {
		t.Fatalf("plan: %d starts, pending %+v", len(p.Start), p.Pending)
	}
	if f := p.Formations; len(f) != 1 || !f[0].Changed || !reflect.DeepEqual(f[0].Status.Pending, want) {
		t.Errorf("status %+v", f)
	}
	if p := step(t, c); !p.Empty() || len(p.Pending) != 1 {
		t.Errorf("unchanged pending rewritten: %+v", p)
	}
	c.AddHost(host("big", 8192, 4000))
	if p := step(t, c); len(p.Start) != 1 || len(p.Pending) != 0 || !p.Formations[0].Changed {
		t.Errorf("after adding a host: %+v", p)
	}
	if c.Statuses["shop/shop-v1"].Status.Pending != nil {
		t.Errorf("pending not cleared")
	}
}

func TestMissingRelease(t *testing.T) {
	c := cluster(1, web(), 0)
	c.SetFormation("shop", "shop-v2", map[string]int{"web": 2})
	p := step(t, c)
	if len(p.Pending) != 1 || p.Pending[0].Reason != "release shop-v2 not found" || p.Pending[0].Count != 2 {
		t.Errorf("pending %+v", p.Pending)
	}
}

// TestDeployMaxPerHost: a one-by-one deploy moves a slot from the old
// release to the new in one formation write. The stopped job keeps its
// host's max-per-host place until its host reports it ended (it still
// runs until then); the next pass places the new job there.
func TestDeployMaxPerHost(t *testing.T) {
	pt := web(func(p *api.ProcessType) { p.MaxPerHost = 1 })
	c := cluster(3, pt, 3)
	step(t, c)
	c.AddRelease(api.Release{ID: "shop-v2", App: "shop", Processes: map[string]api.ProcessType{"web": pt}})
	c.SetFormation("shop", "shop-v1", map[string]int{"web": 2})
	c.SetFormation("shop", "shop-v2", map[string]int{"web": 1})
	p := step(t, c)
	if len(p.Stop) != 1 || len(p.Start) != 0 || len(p.Pending) != 1 || p.Pending[0].Reason != "3 hosts: 3 at max 1 per host" {
		t.Fatalf("first pass %+v", p)
	}
	freed := p.Stop[0].Job.HostID
	if p := step(t, c); len(p.Start) != 1 || p.Start[0].Job.HostID != freed {
		t.Errorf("second pass %+v, want a start on %s", p, freed)
	}
}

func TestDeterministic(t *testing.T) {
	c := cluster(5, web(func(p *api.ProcessType) { p.MaxPerHost = 3 }), 7)
	step(t, c)
	c.RemoveHost("h2")
	c.SetFormation("shop", "shop-v1", map[string]int{"web": 9})
	a, b := scheduler.Reconcile(c.Snapshot(42)), scheduler.Reconcile(c.Snapshot(42))
	if !reflect.DeepEqual(a, b) {
		t.Errorf("same snapshot and seed, different plans")
	}
	// Nor does the order the snapshot lists things in matter.
	s := c.Snapshot(42)
	slices.Reverse(s.Hosts)
	slices.Reverse(s.Jobs)
	if d := scheduler.Reconcile(s); !reflect.DeepEqual(a, d) {
		t.Errorf("reordered snapshot, different plan")
	}
}

func TestOtherSchedulersJobsUseResources(t *testing.T) {
	c := cluster(1, web(func(p *api.ProcessType) { p.Resources.MemoryMB = 1000 }), 4)
	s := c.Snapshot(1)
	s.Jobs = append(s.Jobs, scheduler.JobView{Job: api.Job{ID: "run-1", HostID: "h0", Scheduler: "oneoff",
		App: "shop", Release: "shop-v1", ProcessType: "web", Desired: api.DesiredRunning,
		Resources: api.Resources{MemoryMB: 2000}}, Rev: 1})
	p := scheduler.Reconcile(s)
	if len(p.Start) != 2 || len(p.Stop) != 0 {
		t.Errorf("plan %d starts %d stops; want 2 starts and the one-off job left alone", len(p.Start), len(p.Stop))
	}
}
