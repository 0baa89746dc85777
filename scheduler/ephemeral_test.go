package scheduler_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/scheduler/sim"
)

func oneOffJob(c *sim.Cluster, id string) *scheduler.JobView {
	jv := c.Jobs[id]
	if jv != nil && jv.Job.Scheduler != scheduler.OneOffScheduler {
		return nil
	}
	return jv
}

func TestOneOffRunsOnceAndIsRemovedAfterRetention(t *testing.T) {
	c := sim.New(t0)
	c.Config.ResultRetention = time.Hour
	c.AddHost(host("h0", 4096, 4000))
	c.AddRelease(api.Release{ID: "shop-v1", App: "shop", Env: map[string]string{"A": "release", "B": "release"},
		Processes: map[string]api.ProcessType{"web": web()}})
	c.SubmitOneOff(api.OneOff{ID: "migrate", App: "shop", Release: "shop-v1", Args: []string{"migrate"},
		Env: map[string]string{"B": "oneoff"}, Resources: api.Resources{MemoryMB: 512}})
	p := step(t, c)
	if len(p.OneOffs) != 1 || p.OneOffs[0].Start == nil {
		t.Fatalf("plan: %+v", p.OneOffs)
	}
	jv := oneOffJob(c, "migrate")
	if jv == nil || jv.Job.HostID != "h0" || jv.Job.Env["A"] != "release" || jv.Job.Env["B"] != "oneoff" || jv.Job.Resources.MemoryMB != 512 {
		t.Fatalf("job: %+v", jv)
	}
	if st := c.OneOffs["migrate"].Status; st == nil || st.JobID != "migrate" || st.HostID != "h0" || st.Pending != "" {
		t.Fatalf("status: %+v", st)
	}
	if p := step(t, c); !p.Empty() {
		t.Fatalf("running one-off: plan not empty: %+v", p)
	}
	// It fails: never restarted; its result is kept for the retention.
	c.Advance(time.Minute)
	c.End("migrate", api.JobFailed)
	for range 3 {
		p := step(t, c)
		if !p.Empty() {
			t.Fatalf("failed one-off: plan not empty: %+v", p)
		}
		if want := c.Now.Add(time.Hour); !p.NextWake.Equal(want) {
			t.Fatalf("wake %s, want the end of the retention %s", p.NextWake, want)
		}
	}
	c.Advance(time.Hour - time.Second)
	if p := step(t, c); !p.Empty() {
		t.Fatalf("removed before the retention: %+v", p)
	}
	c.Advance(time.Second)
	p = step(t, c)
	if len(p.OneOffs) != 1 || !p.OneOffs[0].Remove || p.OneOffs[0].Job == nil {
		t.Fatalf("after the retention: %+v", p.OneOffs)
	}
	if c.Jobs["migrate"] != nil || c.OneOffs["migrate"] != nil {
		t.Fatal("one-off not removed")
	}
}

func TestOneOffPendingExplainsAndLostIsNotReplaced(t *testing.T) {
	c := sim.New(t0)
	c.AddHost(host("h0", 1024, 4000))
	c.AddHost(host("h1", 1024, 4000, "disk", "ssd"))
	c.SubmitOneOff(api.OneOff{ID: "big", Args: []string{"x"}, Resources: api.Resources{MemoryMB: 2048}})
	c.SubmitOneOff(api.OneOff{ID: "ssd", Args: []string{"x"}, Tags: map[string]string{"disk": "ssd"}})
	step(t, c)
	st := c.OneOffs["big"].Status
	if st == nil || st.JobID != "" || !strings.Contains(st.Pending, "2 hosts: 2 lacked memory") {
		t.Fatalf("pending status: %+v", st)
	}
	// The same reason is not written again.
	if p := step(t, c); !p.Empty() {
		t.Fatalf("plan not empty: %+v", p.OneOffs)
	}
	jv := oneOffJob(c, "ssd")
	if jv == nil || jv.Job.HostID != "h1" {
		t.Fatalf("ssd one-off: %+v", jv)
	}
	// Its host vanishes: the job is marked lost and never replaced.
	c.RemoveHost("h1")
	p := step(t, c)
	if len(p.MarkLost) != 1 || len(p.Start) != 0 || len(p.OneOffs) != 1 || p.OneOffs[0].ID != "big" {
		t.Fatalf("plan after host loss: lost %d, starts %d, one-offs %+v", len(p.MarkLost), len(p.Start), p.OneOffs)
	}
	if c.Jobs["ssd"].Status.State != api.JobLost {
		t.Fatalf("status %+v", c.Jobs["ssd"].Status)
	}
	for range 3 {
		if p := step(t, c); !p.Empty() {
			t.Fatalf("plan not empty: %+v", p.OneOffs)
		}
	}
	// A host that fits arrives: the big one runs.
	c.AddHost(host("h2", 4096, 4000))
	step(t, c)
	if jv := oneOffJob(c, "big"); jv == nil || jv.Job.HostID != "h2" {
		t.Fatalf("big one-off: %+v", jv)
	}
}

func TestOneOffCancel(t *testing.T) {
	c := sim.New(t0)
	c.AddHost(host("h0", 4096, 4000))
	c.SubmitOneOff(api.OneOff{ID: "run1", Args: []string{"x"}})
	c.SubmitOneOff(api.OneOff{ID: "run2", Args: []string{"x"}, Resources: api.Resources{MemoryMB: 1 << 20}})
	step(t, c)
	c.CancelOneOff("run1")
	c.CancelOneOff("run2")
	p := step(t, c)
	if len(p.OneOffs) != 2 {
		t.Fatalf("one-offs: %+v", p.OneOffs)
	}
	if c.Jobs["run1"].Job.Desired != api.DesiredShutdown || c.Jobs["run1"].Status.State != api.JobShutdown {
		t.Fatalf("cancelled job: %+v", c.Jobs["run1"])
	}
	if c.OneOffs["run2"] != nil {
		t.Fatal("the pending one-off's status stayed")
	}
	c.Advance(2 * time.Hour)
	step(t, c)
	if len(c.Jobs) != 0 || len(c.OneOffs) != 0 {
		t.Fatalf("left: %d jobs, %d one-offs", len(c.Jobs), len(c.OneOffs))
	}
}

// cronCluster has one host and release app-v1 with a cron process type.
func cronCluster(schedule string) *sim.Cluster {
	c := sim.New(t0)
	c.AddHost(host("h0", 4096, 4000))
	c.AddRelease(api.Release{ID: "app-v1", App: "app", Processes: map[string]api.ProcessType{
		"web":   web(),
		"clean": {Args: []string{"clean"}, Schedule: schedule, Resources: api.Resources{MemoryMB: 64}},
	}})
	c.SetFormation("app", "app-v1", map[string]int{"web": 1, "clean": 1})
	return c
}

func cronStatus(t *testing.T, c *sim.Cluster) api.CronStatus {
	t.Helper()
	sv := c.Statuses["app/app-v1"]
	if sv == nil || len(sv.Status.Cron) != 1 {
		t.Fatalf("formation status: %+v", sv)
	}
	return sv.Status.Cron[0]
}

func cronJobs(c *sim.Cluster) []*scheduler.JobView {
	var out []*scheduler.JobView
	for _, jv := range c.Jobs {
		if jv.Job.Scheduler == scheduler.CronScheduler {
			out = append(out, jv)
		}
	}
	return out
}

func TestCronTicksAndSkips(t *testing.T) {
	c := cronCluster("@every 10s")
	p := step(t, c)
	// Enabled: ticks count from now; the service runs, no cron job yet.
	if n := len(cronJobs(c)); n != 0 || len(live(c, "app-v1", "web")) != 1 {
		t.Fatalf("%d cron jobs at enabling", n)
	}
	st := cronStatus(t, c)
	if !st.LastTick.Equal(t0) || !st.NextTick.Equal(t0.Add(10*time.Second)) || !p.NextWake.Equal(st.NextTick) {
		t.Fatalf("cron status %+v, wake %s", st, p.NextWake)
	}
	c.Advance(5 * time.Second)
	if p := step(t, c); !p.Empty() || !p.NextWake.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("between ticks: %+v", p)
	}
	c.Advance(5 * time.Second)
	p = step(t, c)
	jobs := cronJobs(c)
	if len(jobs) != 1 || len(p.Start) != 1 {
		t.Fatalf("first tick: %d cron jobs", len(jobs))
	}
	first := jobs[0].Job
	if first.ProcessType != "clean" || first.Args[0] != "clean" || first.Desired != api.DesiredRunning {
		t.Fatalf("cron job %+v", first)
	}
	st = cronStatus(t, c)
	if st.LastJob != first.ID || !st.LastRun.Equal(t0.Add(10*time.Second)) || !st.NextTick.Equal(t0.Add(20*time.Second)) {
		t.Fatalf("after the first tick: %+v", st)
	}
	// The run is still going at the next tick: skipped, and said so.
	c.Advance(10 * time.Second)
	p = step(t, c)
	if len(p.Start) != 0 || len(p.Skips) != 1 || !strings.Contains(p.Skips[0].Reason, first.ID+" still running") {
		t.Fatalf("tick during a run: starts %d, skips %+v", len(p.Start), p.Skips)
	}
	st = cronStatus(t, c)
	if st.Skipped != 1 || !strings.Contains(st.Note, "skipped: previous run "+first.ID) || !st.LastTick.Equal(t0.Add(20*time.Second)) {
		t.Fatalf("after a skip: %+v", st)
	}
	// It fails: not restarted; the next tick runs a new job.
	c.Advance(3 * time.Second)
	c.End(first.ID, api.JobFailed)
	if p := step(t, c); len(p.Start) != 0 {
		t.Fatalf("a failed cron run was restarted")
	}
	c.Advance(7 * time.Second)
	step(t, c)
	if jobs := cronJobs(c); len(jobs) != 2 {
		t.Fatalf("%d cron jobs after the third tick", len(jobs))
	}
	if st := cronStatus(t, c); st.LastJob == first.ID || !st.LastRun.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("third tick: %+v", st)
	}
}

// A new leader plans from the status the old one committed: the tick it
// ran is not run again, and ticks nobody ran are counted.
func TestCronAcrossLeaders(t *testing.T) {
	c := cronCluster("@every 10s")
	step(t, c)
	c.Advance(10 * time.Second)
	step(t, c)
	job := cronJobs(c)[0]
	c.End(job.Job.ID, api.JobComplete)
	// Replanning the same instant (a new leader, same clock) runs nothing.
	if p := step(t, c); len(p.Start) != 0 {
		t.Fatal("the same tick ran twice")
	}
	// No scheduler for 45s: one run for the latest tick, 3 counted missed.
	c.Advance(45 * time.Second)
	p := step(t, c)
	if len(p.Start) != 1 {
		t.Fatalf("%d starts after a gap", len(p.Start))
	}
	st := cronStatus(t, c)
	if st.Skipped != 3 || !strings.Contains(st.Note, "3 ticks") || !st.LastRun.Equal(t0.Add(50*time.Second)) {
		t.Fatalf("after a gap: %+v", st)
	}
}

func TestCronPendingAndDisable(t *testing.T) {
	c := cronCluster("*/5 * * * *")
	rel := c.Releases["app-v1"]
	pt := rel.Processes["clean"]
	pt.Resources.MemoryMB = 1 << 20
	rel.Processes["clean"] = pt
	c.AddRelease(rel)
	step(t, c)
	c.Advance(5 * time.Minute)
	step(t, c)
	sv := c.Statuses["app/app-v1"]
	if len(cronJobs(c)) != 0 || len(sv.Status.Pending) != 1 || !strings.Contains(sv.Status.Pending[0].Reason, "lacked memory") {
		t.Fatalf("status of a cron job that fits nowhere: %+v", sv.Status)
	}
	// Disabled: its state goes; a later enabling counts ticks afresh.
	c.SetFormation("app", "app-v1", map[string]int{"web": 1, "clean": 0})
	step(t, c)
	if sv := c.Statuses["app/app-v1"]; len(sv.Status.Cron) != 0 || len(sv.Status.Pending) != 0 {
		t.Fatalf("status of a disabled cron: %+v", sv.Status)
	}
}

// Two formations (releases) of one app's cron process type never run at
// once: the second sees the first's run going.
func TestCronNoOverlapAcrossReleases(t *testing.T) {
	c := cronCluster("@every 10s")
	rel := c.Releases["app-v1"]
	rel.ID = "app-v2"
	c.AddRelease(rel)
	c.SetFormation("app", "app-v2", map[string]int{"clean": 1})
	step(t, c)
	c.Advance(10 * time.Second)
	p := step(t, c)
	if len(p.Start) != 1 || len(p.Skips) != 1 {
		t.Fatalf("starts %d, skips %d", len(p.Start), len(p.Skips))
	}
}
