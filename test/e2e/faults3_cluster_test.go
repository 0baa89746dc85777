package e2e

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// Scenarios 6 and 7: the whole cluster at once, and every process in
// turn.

// Scenario 6: a power cut. Every process on every node dies at once,
// daemons, shims and containers; each host's volatile state goes as a
// reboot would take it (containers, cgroups, mounts, /run). Then the
// daemons are started again from their data directories, all together,
// as an init system would at boot, and every app must come back and
// serve with no other step. Reported: from the restart to every app
// served.
func TestPowerCut(t *testing.T) {
	c := getCluster(t)
	r := report(t, "6-power-cut")
	apps := map[string]int{"cut-a": 3, "cut-b": 2}
	loads := map[string]*load{}
	for app, n := range apps {
		c.deployWeb(t, app, n)
		loads[app] = r.track(startLoad(t, c, app))
	}
	time.Sleep(time.Second)

	t0 := time.Now()
	var nss []string
	for _, n := range c.nodes() {
		nss = append(nss, n.ns)
	}
	if err := killNetns(nss...); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes() {
		n.kill() // reap
	}
	for _, h := range c.hosts {
		if err := reboot(h.dataDir()); err != nil {
			t.Fatalf("reboot %s: %v", h.name, err)
		}
	}
	cut := time.Since(t0)

	t1 := time.Now()
	// The store's history from the restart on, from as soon as a server
	// answers: etcd keeps no times, so what happened before is not known.
	watch := c.watchStore(t)
	for _, n := range c.nodes() {
		if err := n.start(); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(c.nodes()))
	for _, n := range c.nodes() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.waitReady(120 * time.Second); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	ready := time.Since(t1)
	r.Extra["daemons_ready_ms"] = ms(ready)

	// Every app serves again: a request sent after the restart answered
	// by a job, for each app.
	var last time.Time
	for app, l := range loads {
		at, ok := l.waitOK(t1, 60*time.Second, func(string) bool { return true })
		if !ok {
			t.Fatalf("%s does not serve 60s after the restart; load: %s", app, l.summary())
		}
		last = later(last, at)
		r.Extra["served_"+app+"_ms"] = ms(at.Sub(t1))
	}
	recovery := last.Sub(t1)
	r.setRecovery(recovery, "restart of every daemon after a power cut to every app served")
	for app, n := range apps {
		c.waitRunning(t, app, n, 60*time.Second)
		c.waitInstances(t, app, n, 30*time.Second)
	}
	r.Extra["all_jobs_routed_ms"] = ms(time.Since(t1))
	for app := range apps {
		for k, v := range watch.restartSteps(t1, app) {
			r.Extra[k] = v
		}
	}
	time.Sleep(2 * time.Second)

	total := summary{}
	for app, l := range loads {
		l.stop()
		s := l.summary()
		t.Logf("%s: %s", app, s)
		total.Requests += s.Requests
		total.Failed += s.Failed
		r.Extra["outage_"+app+"_ms"] = ms(s.FailedSpan)
		// Failures after every app is back are the ones that count.
		late := 0
		for _, x := range l.snapshot() {
			if !x.ok && x.at.After(last.Add(time.Second)) {
				late++
			}
		}
		if late > 0 {
			t.Errorf("%s: %d requests failed more than a second after every app was back: %s", app, late, l.timeline(t1))
		}
	}
	r.Requests, r.Failed = total.Requests, total.Failed
	r.Extra["kill_ms"] = ms(cut)
	t.Logf("daemons ready %s after the restart, every app served after %s, every job routed after %vms; %d of %d requests failed, during the outage",
		ready.Round(time.Millisecond), recovery.Round(time.Millisecond), r.Extra["all_jobs_routed_ms"], total.Failed, total.Requests)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Scenario 7: an upgrade, every pier process restarted one at a time
// (servers, then host agents, then routers), under load: no request may
// fail. Each daemon is stopped with SIGTERM as an init system would; a
// router is taken out of the balancer's rotation before it stops and put
// back once it answers, as behind any load balancer.
func TestRollingRestart(t *testing.T) {
	c := getCluster(t)
	r := report(t, "7-rolling-restart")
	const app = "rolling"
	before := c.deployWeb(t, app, 3)
	l := r.track(startLoad(t, c, app))
	time.Sleep(time.Second)
	t0 := time.Now()
	var steps []string
	step := func(n *node, f func() error) {
		t.Helper()
		s0 := time.Now()
		if err := f(); err != nil {
			t.Fatalf("restarting %s: %v", n.name, err)
		}
		steps = append(steps, fmt.Sprintf("%s %s", n.name, time.Since(s0).Round(time.Millisecond)))
	}
	restart := func(n *node) error {
		if err := n.stop(20 * time.Second); err != nil {
			return err
		}
		if err := n.start(); err != nil {
			return err
		}
		return n.waitReady(60 * time.Second)
	}
	for _, s := range c.servers {
		step(s, func() error {
			if err := restart(s); err != nil {
				return err
			}
			// The next server may stop only once this one votes again,
			// or the two left would be one member short of a quorum.
			return waitUntil(30*time.Second, func() error {
				ctx, cancel := ctxT(2 * time.Second)
				defer cancel()
				return c.memberHealthy(ctx, s)
			})
		})
	}
	for _, h := range c.hosts {
		step(h, func() error {
			if err := restart(h); err != nil {
				return err
			}
			// Its jobs kept running; they are in discovery again under
			// the new agent's lease before the next agent stops.
			if err := c.waitHosts(30 * time.Second); err != nil {
				return err
			}
			return waitUntil(30*time.Second, func() error {
				if n := c.instanceCount(app); n != 3 {
					return fmt.Errorf("%d instances", n)
				}
				return nil
			})
		})
	}
	for _, rt := range c.routers {
		step(rt, func() error {
			c.lb.remove(routerAddr(rt))
			// Let requests already sent to it finish.
			time.Sleep(500 * time.Millisecond)
			if err := restart(rt); err != nil {
				return err
			}
			c.lb.add(routerAddr(rt))
			return nil
		})
	}
	took := time.Since(t0)
	time.Sleep(2 * time.Second)
	l.stop()
	sum := l.summary()
	r.setLoad(sum)
	r.Extra["restart_all_ms"] = ms(took)
	r.Extra["steps"] = steps
	t.Logf("restarted %d processes in %s (%v); load: %s", len(steps), took.Round(time.Millisecond), steps, sum)
	if sum.Failed > 0 {
		t.Errorf("%d requests failed during the rolling restart: %s", sum.Failed, l.timeline(t0))
	}
	// The agents re-adopted their jobs: the same three run.
	jl, err := c.jobs(app)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := jobIDs(webJobs(jl)), jobIDs(before); !slices.Equal(got, want) {
		t.Errorf("web jobs %v after the restart, want the same %v as before", got, want)
	}
}

// waitUntil polls cond until it returns nil, or returns its last error
// after timeout.
func waitUntil(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
