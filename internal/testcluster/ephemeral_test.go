package testcluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
)

// runningOn returns the host whose runtime runs job id, or nil.
func (c *Cluster) runningOn(id string) *Host {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range c.hosts {
		if slices.Contains(h.Runtime.Running(), id) {
			return h
		}
	}
	return nil
}

func (c *Cluster) waitRunning(id string) *Host {
	c.t.Helper()
	var h *Host
	c.WaitFor(id+" running", 30*time.Second, func() bool { h = c.runningOn(id); return h != nil })
	return h
}

func (c *Cluster) oneOff(id string) scheduler.OneOffState {
	c.t.Helper()
	st, err := scheduler.GetOneOff(context.Background(), c.Client, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		c.t.Fatal(err)
	}
	return st
}

// jobsOf returns the jobs of an owner.
func jobsOf(s scheduler.Snapshot, owner string) []scheduler.JobView {
	var out []scheduler.JobView
	for _, j := range s.Jobs {
		if j.Job.Scheduler == owner {
			out = append(out, j)
		}
	}
	slices.SortFunc(out, func(a, b scheduler.JobView) int { return a.Job.CreatedAt.Compare(b.Job.CreatedAt) })
	return out
}

// TestOneOffRunsOnceAndKeepsItsResult runs a one-off that exits 3: its
// exit code is kept, it is never run again, and its records go only once
// the retention has passed.
func TestOneOffRunsOnceAndKeepsItsResult(t *testing.T) {
	c := New(t)
	c.AddHost("h1", HostOptions{})
	c.AddHost("h2", HostOptions{})
	const retention = 3 * time.Second
	c.StartSchedulerConfig("s1", scheduler.Config{ResultRetention: retention})
	req, err := scheduler.SubmitOneOff(context.Background(), c.Client, api.OneOff{App: "hello", Args: []string{"migrate"},
		Resources: api.Resources{MemoryMB: 64}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(req.ID, "hello-run-") {
		t.Fatalf("id %q", req.ID)
	}
	h := c.waitRunning(req.ID)
	st := c.oneOff(req.ID)
	if st.Status == nil || st.Status.JobID != req.ID || st.Status.HostID != h.ID {
		t.Fatalf("one-off status %+v", st.Status)
	}
	if err := h.Runtime.Exit(req.ID, 3); err != nil {
		t.Fatal(err)
	}
	c.WaitFor("the result", 30*time.Second, func() bool { st = c.oneOff(req.ID); return st.Done() })
	if st.Job.State != api.JobFailed || st.Job.ExitCode == nil || *st.Job.ExitCode != 3 {
		t.Fatalf("result %+v", st.Job)
	}
	finished := st.Job.FinishedAt
	// Never run again, on any host, under any id.
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if h := c.runningOn(req.ID); h != nil {
			t.Fatalf("the one-off runs again on %s", h.ID)
		}
		if jobs := jobsOf(c.Snapshot(), scheduler.OneOffScheduler); len(jobs) != 1 {
			t.Fatalf("%d one-off jobs", len(jobs))
		}
	}
	if st := c.oneOff(req.ID); st.Job == nil || *st.Job.ExitCode != 3 {
		t.Fatalf("result lost before the retention: %+v", st)
	}
	c.WaitFor("removal after the retention", 30*time.Second, func() bool {
		st := c.oneOff(req.ID)
		gone := st.Request == nil && st.Status == nil && st.Job == nil
		if !gone && st.Job == nil {
			t.Fatalf("removed in part: %+v", st)
		}
		if gone && time.Now().Before(finished.Add(retention)) {
			t.Fatalf("removed %s after it ended, before the retention of %s", time.Since(finished), retention)
		}
		return gone
	})
	if jobs := jobsOf(c.Snapshot(), scheduler.OneOffScheduler); len(jobs) != 0 {
		t.Fatalf("%d one-off jobs left", len(jobs))
	}
}

// TestOneOffNeverRestarted: a one-off that fails, is killed, or loses its
// host stays ended.
func TestOneOffNeverRestarted(t *testing.T) {
	c := New(t)
	for _, h := range []string{"h1", "h2", "h3"} {
		c.AddHost(h, HostOptions{})
	}
	c.StartScheduler("s1")
	ctx := context.Background()
	for _, id := range []string{"crash", "killed", "orphan"} {
		if _, err := scheduler.SubmitOneOff(ctx, c.Client, api.OneOff{ID: id, Args: []string{id}}); err != nil {
			t.Fatal(err)
		}
	}
	c.waitRunning("crash").Runtime.Exit("crash", 1)
	c.waitRunning("killed").Runtime.Kill("killed", 9)
	lostHost := c.waitRunning("orphan").ID
	want := map[string]api.JobState{"crash": api.JobFailed, "killed": api.JobFailed, "orphan": api.JobLost}
	ended := func(ids ...string) func() bool {
		return func() bool {
			for _, id := range ids {
				if st := c.oneOff(id); st.Job == nil || st.Job.State != want[id] {
					return false
				}
			}
			return true
		}
	}
	// The failures are reported before a host goes, or they would be lost.
	c.WaitFor("the failures reported", 30*time.Second, ended("crash", "killed"))
	c.KillHost(lostHost)
	c.WaitFor("the orphan lost", 30*time.Second, ended("orphan"))
	for deadline := time.Now().Add(1500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for id := range want {
			if h := c.runningOn(id); h != nil {
				t.Fatalf("%s runs again on %s", id, h.ID)
			}
		}
		if jobs := jobsOf(c.Snapshot(), scheduler.OneOffScheduler); len(jobs) != 3 {
			t.Fatalf("%d one-off jobs, want the 3 that ran", len(jobs))
		}
	}
	if st := c.oneOff("orphan"); st.Status.HostID != lostHost {
		t.Fatalf("the lost one-off moved: %+v", st.Status)
	}
}

func TestOneOffPendingExplainsWhy(t *testing.T) {
	c := New(t)
	c.AddHost("h1", HostOptions{MemoryMB: 1024})
	c.StartScheduler("s1")
	req, err := scheduler.SubmitOneOff(context.Background(), c.Client, api.OneOff{ID: "huge", Args: []string{"x"},
		Resources: api.Resources{MemoryMB: 8192}})
	if err != nil {
		t.Fatal(err)
	}
	c.WaitFor("a pending explanation", 30*time.Second, func() bool {
		st := c.oneOff(req.ID)
		return st.Status != nil && st.Status.Pending == "1 host: 1 lacked memory"
	})
	c.AddHost("h2", HostOptions{MemoryMB: 16384})
	if h := c.waitRunning("huge"); h.ID != "h2" {
		t.Fatalf("placed on %s", h.ID)
	}
}

func cronRelease(schedule string) api.Release {
	return api.Release{ID: "v1", App: "hello", Version: 1, Processes: map[string]api.ProcessType{
		"tick": {Args: []string{"tick"}, Schedule: schedule, Resources: api.Resources{MemoryMB: 64}},
	}}
}

func (c *Cluster) cronStatus() api.CronStatus {
	c.t.Helper()
	key, _ := store.Key(scheduler.FormationStatusPrefix, "hello", "v1")
	st, _, err := store.Get[api.FormationStatus](context.Background(), c.Client, key)
	if err != nil || len(st.Cron) != 1 {
		return api.CronStatus{}
	}
	return st.Cron[0]
}

// TestCronRunsOnTicksAndSkipsWhileRunning: an @every 1s cron runs on its
// ticks; while a run goes (the fake runtime keeps it running) ticks are
// skipped and the formation status says so; once it ends, the next tick
// runs a new job and the ended one is never restarted.
func TestCronRunsOnTicksAndSkipsWhileRunning(t *testing.T) {
	c := New(t)
	c.AddHost("h1", HostOptions{})
	c.AddHost("h2", HostOptions{})
	c.StartScheduler("s1")
	enabled := time.Now()
	c.Deploy(cronRelease("@every 1s"), map[string]int{"tick": 1})

	var first scheduler.JobView
	c.WaitFor("the first run", 30*time.Second, func() bool {
		jobs := jobsOf(c.Snapshot(), scheduler.CronScheduler)
		if len(jobs) > 0 {
			first = jobs[0]
		}
		return len(jobs) > 0
	})
	if d := time.Since(enabled); d < time.Second {
		t.Fatalf("first run %s after enabling, before the first tick", d)
	}
	h := c.waitRunning(first.Job.ID)
	// It keeps running: the next ticks are skipped, and nothing else runs.
	c.WaitFor("two skipped ticks", 30*time.Second, func() bool {
		st := c.cronStatus()
		return st.Skipped >= 2 && strings.Contains(st.Note, "previous run "+first.Job.ID+" still running")
	})
	if jobs := jobsOf(c.Snapshot(), scheduler.CronScheduler); len(jobs) != 1 {
		t.Fatalf("%d cron jobs while the first still runs", len(jobs))
	}
	if err := h.Runtime.Exit(first.Job.ID, 0); err != nil {
		t.Fatal(err)
	}
	// The next tick runs a second job; the first is not restarted.
	var second scheduler.JobView
	c.WaitFor("the second run", 30*time.Second, func() bool {
		jobs := jobsOf(c.Snapshot(), scheduler.CronScheduler)
		if len(jobs) == 2 {
			second = jobs[1]
		}
		return len(jobs) == 2
	})
	c.waitRunning(second.Job.ID).Runtime.Exit(second.Job.ID, 0)
	c.WaitFor("a third run", 30*time.Second, func() bool { return len(jobsOf(c.Snapshot(), scheduler.CronScheduler)) == 3 })
	s := c.Snapshot()
	for _, j := range jobsOf(s, scheduler.CronScheduler)[:2] {
		if j.Status == nil || j.Status.State != api.JobComplete || j.Job.Restarts != 0 {
			t.Fatalf("ended run %s: %+v", j.Job.ID, j.Status)
		}
		if c.runningOn(j.Job.ID) != nil {
			t.Fatalf("ended run %s runs again", j.Job.ID)
		}
	}
	st := c.cronStatus()
	third := jobsOf(s, scheduler.CronScheduler)[2]
	if st.LastJob != third.Job.ID || st.LastRun.IsZero() || !st.NextTick.After(st.LastRun) {
		t.Fatalf("cron status %+v, third run %s", st, third.Job.ID)
	}
	// No service job was made of the cron process type.
	if n := len(jobsOf(s, scheduler.ServiceScheduler)); n != 0 {
		t.Fatalf("%d service jobs", n)
	}
}

// TestPausedLeaderCommitsNothing: a leader plans, is paused past its
// lease (its keepalives stop: its session's connection is closed), a
// successor takes over and schedules; when the paused one resumes and
// commits the plan it made, nothing is written.
func TestPausedLeaderCommitsNothing(t *testing.T) {
	c := New(t)
	for _, h := range []string{"h1", "h2", "h3"} {
		c.AddHost(h, HostOptions{})
	}
	ctx := context.Background()
	sessClient := c.Etcd.ClientOf(c.Etcd.Endpoints()...)
	paused, err := scheduler.Elect(ctx, sessClient, scheduler.ElectionPrefix, "paused", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// The successor's loop campaigns behind it.
	c.StartScheduler("successor")
	c.Deploy(webRelease(api.ProcessType{}), map[string]int{"web": 3})
	if _, err := scheduler.SubmitOneOff(ctx, c.Client, api.OneOff{ID: "once", Args: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	snap, err := scheduler.Load(ctx, c.Client, scheduler.Config{})
	if err != nil {
		t.Fatal(err)
	}
	plan := scheduler.Reconcile(snap)
	if len(plan.Start) != 3 || len(plan.OneOffs) != 1 {
		t.Fatalf("the leader's plan: %d starts, %d one-offs", len(plan.Start), len(plan.OneOffs))
	}
	// Paused: no keepalive reaches etcd, and the lease runs out.
	sessClient.Close()
	c.WaitFor("the paused leader's key to expire", 30*time.Second, func() bool {
		resp, err := c.Client.Get(ctx, paused.Guard.Key)
		return err == nil && len(resp.Kvs) == 0
	})
	c.WaitFor("the successor to schedule", 30*time.Second, func() bool {
		return len(c.Running("hello", "web")) == 3 && c.runningOn("once") != nil
	})
	before := c.Snapshot()
	// It resumes and commits what it planned before the pause.
	err = scheduler.Commit(ctx, c.Client, plan, paused.Guard)
	var ce *store.ConflictError
	if !errors.As(err, &ce) || ce.Key != paused.Guard.Key {
		t.Fatalf("the paused leader's commit: %v", err)
	}
	// So does a whole pass of it, with something to do and nobody else
	// doing it.
	c.StopScheduler("successor")
	c.Scale("hello", "v1", map[string]int{"web": 5})
	before = c.Snapshot()
	if p, err := scheduler.Pass(ctx, c.Client, scheduler.Config{}, paused.Guard); !errors.Is(err, store.ErrConflict) || len(p.Start) != 2 {
		t.Fatalf("the paused leader's pass: %d starts, %v", len(p.Start), err)
	}
	after := c.Snapshot()
	revs := func(s scheduler.Snapshot) map[string]int64 {
		m := map[string]int64{}
		for _, j := range s.Jobs {
			m[j.Job.HostID+"/"+j.Job.ID] = j.Rev
		}
		return m
	}
	if b, a := revs(before), revs(after); !maps.Equal(b, a) || live(after, "web") != 3 {
		t.Fatalf("the paused leader's commit changed the jobs: %v before, %v after", b, a)
	}
	if st := c.oneOff("once"); st.Status == nil || c.runningOn("once") == nil || c.runningOn("once").ID != st.Status.HostID {
		t.Fatalf("one-off: %+v", st.Status)
	}
}

// TestRacingSchedulersNeverOverPlace runs several unguarded schedulers
// at once (no election: each plans and commits as fast as it can) while
// formations scale up, one-offs arrive and a cron ticks: no snapshot
// ever shows more live jobs than desired, a one-off with two jobs, or two
// cron runs at once.
func TestRacingSchedulersNeverOverPlace(t *testing.T) {
	c := New(t)
	for _, h := range []string{"h1", "h2", "h3"} {
		c.AddHost(h, HostOptions{})
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rel := webRelease(api.ProcessType{MaxPerHost: 3})
	rel.Processes["tick"] = api.ProcessType{Args: []string{"tick"}, Schedule: "@every 1s"}
	c.Deploy(rel, map[string]int{"web": 0, "tick": 1})

	var wg sync.WaitGroup
	var passes, conflicts sync.Map
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, nc := 0, 0
			for ctx.Err() == nil {
				_, err := scheduler.Pass(ctx, c.Client, scheduler.Config{})
				n++
				if errors.Is(err, store.ErrConflict) {
					nc++
				}
			}
			passes.Store(i, n)
			conflicts.Store(i, nc)
		}()
	}
	// Cron runs end soon after they start, so that ticks keep running.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			c.mu.Lock()
			for _, h := range c.hosts {
				for _, id := range h.Runtime.Running() {
					if strings.HasPrefix(id, "hello-tick-") {
						h.Runtime.Exit(id, 0)
					}
				}
			}
			c.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	violation := make(chan string, 1)
	report := func(format string, args ...any) {
		select {
		case violation <- fmt.Sprintf(format, args...):
		default:
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			s, err := scheduler.Load(ctx, c.Client, scheduler.Config{})
			if err != nil {
				continue
			}
			desired := 0
			for _, f := range s.Formations {
				desired += f.Formation.Processes["web"]
			}
			if n := live(s, "web"); n > desired {
				report("%d live web jobs, %d desired", n, desired)
			}
			ids := map[string]int{}
			going := 0
			for _, j := range s.Jobs {
				ids[j.Job.ID]++
				if j.Job.Scheduler == scheduler.CronScheduler && (j.Status == nil || !j.Status.State.Terminal()) {
					going++
				}
			}
			for id, n := range ids {
				if n > 1 {
					report("job %s exists %d times", id, n)
				}
			}
			if going > 1 {
				report("%d cron runs at once", going)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	start := time.Now()
	for step, n := range []int{2, 5, 9} {
		c.Scale("hello", "v1", map[string]int{"web": n, "tick": 1})
		for k := range 4 {
			if _, err := scheduler.SubmitOneOff(ctx, c.Client, api.OneOff{ID: fmt.Sprintf("race-%d-%d", step, k), Args: []string{"x"}}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Second)
	}
	c.WaitFor("9 running web jobs and 12 one-offs placed", 30*time.Second, func() bool {
		if len(c.Running("hello", "web")) != 9 {
			return false
		}
		return len(jobsOf(c.Snapshot(), scheduler.OneOffScheduler)) == 12
	})
	elapsed := time.Since(start)
	cancel()
	wg.Wait()
	select {
	case v := <-violation:
		t.Fatal(v)
	default:
	}
	s := c.Snapshot()
	if n := live(s, "web"); n != 9 {
		t.Fatalf("%d live web jobs, want 9", n)
	}
	// At most one run per tick since enabling (plus the one in flight).
	if runs, ticks := len(jobsOf(s, scheduler.CronScheduler)), int(elapsed/time.Second)+1; runs > ticks || runs == 0 {
		t.Fatalf("%d cron runs in %s", runs, elapsed)
	}
	total, totalConflicts := 0, 0
	passes.Range(func(_, v any) bool { total += v.(int); return true })
	conflicts.Range(func(_, v any) bool { totalConflicts += v.(int); return true })
	t.Logf("%d passes, %d lost to a conflict", total, totalConflicts)
}
