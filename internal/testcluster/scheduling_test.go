package testcluster

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
)

func webRelease(pt api.ProcessType) api.Release {
	if pt.Args == nil {
		pt.Args = []string{"serve"}
	}
	if pt.Resources.MemoryMB == 0 {
		pt.Resources.MemoryMB = 128
	}
	return api.Release{ID: "v1", App: "hello", Version: 1, Processes: map[string]api.ProcessType{"web": pt}}
}

func perHost(jobs []scheduler.JobView) map[string]int {
	m := map[string]int{}
	for _, j := range jobs {
		m[j.Job.HostID]++
	}
	return m
}

// live counts the jobs meant to run that have not ended.
func live(s scheduler.Snapshot, ptype string) int {
	n := 0
	for _, j := range s.Jobs {
		if j.Job.ProcessType == ptype && j.Job.Desired == api.DesiredRunning && (j.Status == nil || !j.Status.State.Terminal()) {
			n++
		}
	}
	return n
}

func TestScaleUpAndDownWithMaxPerHost(t *testing.T) {
	c := New(t)
	for _, h := range []string{"h1", "h2", "h3"} {
		c.AddHost(h, HostOptions{})
	}
	c.StartScheduler("s1")
	c.Deploy(webRelease(api.ProcessType{MaxPerHost: 2}), map[string]int{"web": 6})
	c.WaitFor("6 running web jobs", 30*time.Second, func() bool { return len(c.Running("hello", "web")) == 6 })
	for h, n := range perHost(c.Running("hello", "web")) {
		if n != 2 {
			t.Fatalf("host %s runs %d web jobs, want 2 (max per host)", h, n)
		}
	}
	c.Scale("hello", "v1", map[string]int{"web": 2})
	c.WaitFor("2 live web jobs", 30*time.Second, func() bool {
		return live(c.Snapshot(), "web") == 2 && len(c.Running("hello", "web")) == 2
	})
	// Spread: the two that remain are on different hosts... not required
	// after a scale down (newest stop first), but never more than desired.
	if n := live(c.Snapshot(), "web"); n != 2 {
		t.Fatalf("%d live jobs after scaling to 2", n)
	}
}

func TestTagsConstrainPlacement(t *testing.T) {
	c := New(t)
	c.AddHost("ssd", HostOptions{Tags: map[string]string{"disk": "ssd"}})
	c.AddHost("hdd", HostOptions{Tags: map[string]string{"disk": "hdd"}})
	c.StartScheduler("s1")
	c.Deploy(webRelease(api.ProcessType{Tags: map[string]string{"disk": "ssd"}}), map[string]int{"web": 3})
	c.WaitFor("3 running", 30*time.Second, func() bool { return len(c.Running("hello", "web")) == 3 })
	dump(t, c)
	if got := perHost(c.Running("hello", "web")); got["ssd"] != 3 {
		t.Fatalf("placement %v, want all on the ssd host", got)
	}
}

func TestHostLossIsReplaced(t *testing.T) {
	c := New(t)
	for _, h := range []string{"h1", "h2", "h3", "h4"} {
		c.AddHost(h, HostOptions{})
	}
	c.StartScheduler("s1")
	c.Deploy(webRelease(api.ProcessType{MaxPerHost: 1}), map[string]int{"web": 3})
	c.WaitFor("3 running", 30*time.Second, func() bool { return len(c.Running("hello", "web")) == 3 })
	victim := c.Running("hello", "web")[0].Job.HostID
	start := time.Now()
	c.KillHost(victim)
	c.WaitFor("a replacement", 30*time.Second, func() bool {
		jobs := c.Running("hello", "web")
		return len(jobs) == 3 && perHost(jobs)[victim] == 0
	})
	t.Logf("replaced the jobs of a lost host in %s", time.Since(start).Round(time.Millisecond))
	// The lost job is marked so, and never more than desired run.
	s := c.Snapshot()
	lost := 0
	for _, j := range s.Jobs {
		if j.Job.HostID == victim && j.Status != nil && j.Status.State == api.JobLost {
			lost++
		}
	}
	if lost != 1 {
		dump(t, c)
		t.Fatalf("%d jobs marked lost on %s, want 1", lost, victim)
	}
	if n := live(s, "web"); n != 3 {
		t.Fatalf("%d live jobs, want 3", n)
	}
}

func TestUnplaceableJobsExplainWhy(t *testing.T) {
	c := New(t)
	c.AddHost("h1", HostOptions{MemoryMB: 1024})
	c.AddHost("h2", HostOptions{MemoryMB: 1024, Tags: map[string]string{"disk": "ssd"}})
	c.StartScheduler("s1")
	c.Deploy(webRelease(api.ProcessType{Resources: api.Resources{MemoryMB: 100000}}), map[string]int{"web": 2})
	key, _ := store.Key(scheduler.FormationStatusPrefix, "hello", "v1")
	var reason string
	c.WaitFor("a pending explanation", 30*time.Second, func() bool {
		st, _, err := store.Get[api.FormationStatus](context.Background(), c.Client, key)
		if err != nil || len(st.Pending) == 0 {
			return false
		}
		reason = st.Pending[0].Reason
		return st.Pending[0].Count == 2
	})
	if !strings.Contains(reason, "2 hosts") || !strings.Contains(reason, "memory") {
		t.Fatalf("reason %q", reason)
	}
	if n := len(c.Running("hello", "web")); n != 0 {
		t.Fatalf("%d jobs running that fit nowhere", n)
	}
}

// TestSchedulerFailover stops the leading scheduler in the middle of a
// scale: the other takes over and finishes it, and at no point do more
// jobs live than desired.
func TestSchedulerFailover(t *testing.T) {
	c := New(t)
	for _, h := range []string{"h1", "h2", "h3"} {
		c.AddHost(h, HostOptions{})
	}
	c.StartScheduler("s1")
	c.StartScheduler("s2")
	c.Deploy(webRelease(api.ProcessType{}), map[string]int{"web": 3})
	c.WaitFor("3 running", 30*time.Second, func() bool { return len(c.Running("hello", "web")) == 3 })

	stopWatch := make(chan struct{})
	overs := make(chan int, 1)
	go func() {
		max := 0
		for {
			select {
			case <-stopWatch:
				overs <- max
				return
			default:
			}
			if n := live(c.Snapshot(), "web"); n > max {
				max = n
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	c.Scale("hello", "v1", map[string]int{"web": 12})
	c.StopScheduler("s1")
	c.StopScheduler("s2") // whichever led, the other...
	c.StartScheduler("s3")
	c.WaitFor("12 running after failover", 30*time.Second, func() bool { return len(c.Running("hello", "web")) == 12 })
	close(stopWatch)
	if max := <-overs; max > 12 {
		t.Fatalf("%d live jobs at one point, desired 12", max)
	}
}

func dump(t *testing.T, c *Cluster) {
	for _, j := range c.Snapshot().Jobs {
		st := "-"
		if j.Status != nil {
			st = string(j.Status.State)
		}
		t.Logf("job %s host %s release %s desired %s status %s rev %d created %s", j.Job.ID, j.Job.HostID, j.Job.Release, j.Job.Desired, st, j.Rev, j.Job.CreatedAt.Format("15:04:05.000"))
	}
}
