package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Scenarios 4 and 5: servers lost. Two of three etcd members keep a
// quorum, and the leader-only loops (scheduler, deployer) move.

// Scenario 4: kill -9 the server whose etcd member leads. Deploying a
// release and scaling still work through the other servers, the app keeps
// serving, and the killed server rejoins when started again.
func TestEtcdLeaderKill(t *testing.T) {
	c := getCluster(t)
	r := report(t, "4-etcd-leader-kill")
	const app = "etcdleader"
	c.deployWeb(t, app, 3)
	l := r.track(startLoad(t, c, app))
	time.Sleep(time.Second)

	ctx, cancel := ctxT(10 * time.Second)
	leader, err := c.etcdLeader(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	leader.kill()
	t.Logf("killed %s, the etcd leader", leader.name)
	r.Extra["killed"] = leader.name

	// A new leader among the two left.
	var newLeader *node
	waitForErr(t, "a new etcd leader", 30*time.Second, func() error {
		ctx, cancel := ctxT(5 * time.Second)
		defer cancel()
		n, err := c.etcdLeader(ctx)
		if err != nil {
			return err
		}
		if n == leader {
			return fmt.Errorf("%s still leads", n.name)
		}
		newLeader = n
		return nil
	})
	elected := time.Since(t0)
	r.Extra["new_leader"] = newLeader.name
	r.Extra["leader_elected_ms"] = ms(elected)

	// Deploy a new release through a server that is up.
	ctl, err := c.controller()
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	d0 := time.Now()
	res := c.release(t, ctl, app, map[string]string{"RELEASE": "2"})
	waitDeployment(t, ctl, res.Deployment, 90*time.Second)
	r.Extra["deploy_ms"] = ms(time.Since(d0))
	c.waitJobs(t, app, "3 running jobs of v2", 30*time.Second, func(js []api.AppJob) bool {
		return len(js) == 3 && js[0].Version == res.Release.Version && js[1].Version == res.Release.Version && js[2].Version == res.Release.Version
	})
	// And scale.
	s0 := time.Now()
	c.scaleAndWait(t, app, 4)
	r.Extra["scale_ms"] = ms(time.Since(s0))

	// The killed server comes back as a voting member.
	b0 := time.Now()
	if err := leader.start(); err != nil {
		t.Fatal(err)
	}
	if err := leader.waitReady(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, leader.name+"'s etcd member healthy", 30*time.Second, func() bool {
		ctx, cancel := ctxT(2 * time.Second)
		defer cancel()
		return c.memberHealthy(ctx, leader) == nil
	})
	r.Extra["rejoin_ms"] = ms(time.Since(b0))
	// It serves the API with current data: it sees the scale made
	// while it was gone.
	lctl, err := c.controllerOn(leader)
	if err != nil {
		t.Fatal(err)
	}
	defer lctl.Close()
	waitFor(t, leader.name+" to answer with the new formation", 20*time.Second, func() bool {
		ctx, cancel := ctxT(2 * time.Second)
		defer cancel()
		f, err := lctl.Formation(ctx, app)
		return err == nil && f.Processes["web"] == 4 && f.Version == res.Release.Version
	})

	l.stop()
	sum := l.summary()
	r.setLoad(sum)
	r.setRecovery(elected, "kill -9 of the etcd leader's server to a new leader")
	t.Logf("new leader %s after %s; deploy %vms, scale %vms, rejoin %vms; load: %s",
		newLeader.name, elected.Round(time.Millisecond), r.Extra["deploy_ms"], r.Extra["scale_ms"], r.Extra["rejoin_ms"], sum)
	if sum.Failed > 0 {
		t.Logf("failures from the kill: %s", l.timeline(t0))
	}
}

// Scenario 5: kill -9 the server whose scheduler leads, just after a
// scale was asked for. Another server's scheduler takes over and the
// scale completes, with never more jobs than asked for.
func TestSchedulerLeaderKill(t *testing.T) {
	c := getCluster(t)
	r := report(t, "5-scheduler-leader-kill")
	const app = "schedleader"
	c.deployWeb(t, app, 3)
	l := r.track(startLoad(t, c, app))
	time.Sleep(time.Second)

	ctx, cancel := ctxT(10 * time.Second)
	leader, err := c.schedulerLeader(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	r.Extra["killed"] = leader.name
	// Ask another server, so that the kill does not cut the request.
	var other *node
	for _, s := range c.servers {
		if s != leader {
			other = s
			break
		}
	}
	ctl, err := c.controllerOn(other)
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	const target = 9
	// Kill the leader the moment the new formation is in the store, before
	// its scheduler can have placed the new jobs: a watch, not the API's
	// answer, which may come after the placement.
	wctx, wcancel := ctxT(30 * time.Second)
	defer wcancel()
	wc := c.etcd.Watch(wctx, store.FormationsPrefix+app+"/", clientv3.WithPrefix())
	scaled := make(chan error, 1)
	t0 := time.Now()
	go func() {
		ctx, cancel := ctxT(30 * time.Second)
		defer cancel()
		_, err := ctl.Scale(ctx, app, map[string]int{"web": target})
		scaled <- err
	}()
	if resp := <-wc; len(resp.Events) == 0 {
		t.Fatalf("no formation change seen: %v", resp.Err())
	}
	leader.kill()
	wcancel()
	placed := c.jobKeys(app)
	t.Logf("killed %s, the scheduler leader, %s after the scale was asked for; %d jobs of %s were in the store",
		leader.name, time.Since(t0).Round(time.Millisecond), placed, app)
	r.Extra["jobs_in_store_at_kill"] = placed
	if err := <-scaled; err != nil {
		t.Fatalf("scale web=%d: %v", target, err)
	}

	// Wait for the scale to complete, checking it never overshoots, and
	// note when another server's scheduler takes over.
	most := 0
	var elected time.Duration
	waitFor(t, "the scale to complete", 90*time.Second, func() bool {
		if elected == 0 {
			ctx, cancel := ctxT(2 * time.Second)
			if n, err := c.schedulerLeader(ctx); err == nil && n != leader {
				elected = time.Since(t0)
				r.Extra["leader_elected_ms"] = ms(elected)
			}
			cancel()
		}
		jl, err := c.jobs(app)
		if err != nil {
			return false
		}
		js := webJobs(jl)
		most = max(most, len(js))
		return len(js) == target && c.instanceCount(app) == target
	})
	done := time.Since(t0)
	ctx, cancel = ctxT(10 * time.Second)
	newLeader, err := c.schedulerLeader(ctx)
	cancel()
	if err == nil {
		r.Extra["new_leader"] = newLeader.name
	}
	if err := leader.start(); err != nil {
		t.Fatal(err)
	}
	if err := leader.waitReady(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	l.stop()
	sum := l.summary()
	r.setLoad(sum)
	r.setRecovery(done, "scale to 9 and kill -9 of the scheduler leader's server to 9 jobs running and routed")
	t.Logf("scale complete %s after the kill (new leader %v after %s); load: %s", done.Round(time.Millisecond), r.Extra["new_leader"], elected.Round(time.Millisecond), sum)
	if most > target {
		t.Errorf("%d web jobs ran at once, more than the %d asked for", most, target)
	}
}

// jobKeys counts the job specs of app in the store: what the scheduler
// has placed so far.
func (c *cluster) jobKeys(app string) int {
	ctx, cancel := ctxT(5 * time.Second)
	defer cancel()
	resp, err := c.etcd.Get(ctx, store.JobsPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return -1
	}
	n := 0
	for _, kv := range resp.Kvs {
		if strings.Contains(string(kv.Key), "/"+app+"-web-") {
			n++
		}
	}
	return n
}

// waitForErr polls cond until it returns nil, failing the test with its
// last error after timeout.
func waitForErr(t *testing.T, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
