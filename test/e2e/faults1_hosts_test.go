package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// Scenarios 1 to 3: an app deployed across the hosts, and hosts lost.

// hostRecoveryTarget is what the issue asks of a host failure: served
// around in under 5 s (Docker Swarm takes about 15 s, Nomad 20-30 s).
// It is reported; the test fails only past hostRecoveryLimit, which
// allows for a slow CI machine.
const (
	hostRecoveryTarget = 5 * time.Second
	hostRecoveryLimit  = 30 * time.Second
)

// Scenario 1: web=3 puts one job on each host, and scaling up under load
// fails no request.
func TestDeploySpreads(t *testing.T) {
	c := getCluster(t)
	r := report(t, "1-deploy-web3-spread")
	const app = "spread"
	c.createApp(t, app)
	l := r.track(startLoad(t, c, app))
	begin := time.Now()
	js := c.scaleAndWait(t, app, 3)
	if got := hostsOf(js); !slices.Equal(got, []string{"h1", "h2", "h3"}) {
		t.Errorf("web=3 runs on hosts %v, want one on each of h1 h2 h3", got)
	}
	waitAnsweredBy(t, l, begin, js, 20*time.Second)
	r.setRecovery(time.Since(begin), "scale web=1 to 3 until every job has answered through a router")
	time.Sleep(2 * time.Second)
	l.stop()
	sum := l.summary()
	r.setLoad(sum)
	t.Logf("load: %s", sum)
	if sum.Failed > 0 {
		t.Errorf("%d requests failed while scaling up", sum.Failed)
	}
}

// waitAnsweredBy waits until each of the jobs has answered a request of
// the load sent after t0: each is registered and routed to.
func waitAnsweredBy(t *testing.T, l *load, t0 time.Time, js []api.AppJob, timeout time.Duration) {
	t.Helper()
	for _, j := range js {
		if _, ok := l.waitOK(t0, timeout, func(who string) bool { return jobOf(who) == j.ID }); !ok {
			t.Fatalf("job %s on %s never answered through the routers", j.ID, j.HostID)
		}
	}
}

// Scenario 2: a host dies with everything on it (kill -9 of the agent,
// the shims and the containers). Its jobs are replaced on the others,
// which serve through the routers; reported: from the kill to the first
// request a replacement answers.
func TestHostKill(t *testing.T) {
	c := getCluster(t)
	r := report(t, "2-host-kill")
	const app = "hostkill"
	js := c.deployWeb(t, app, 3)
	victim := c.node("h3")
	orig := map[string]bool{}
	onVictim := 0
	for _, j := range js {
		orig[j.ID] = true
		if j.HostID == victim.name {
			onVictim++
		}
	}
	if onVictim == 0 {
		t.Fatalf("no job on %s to lose: %v", victim.name, hostsOf(js))
	}
	l := r.track(startLoad(t, c, app))
	time.Sleep(time.Second)
	watch := c.watchStore(t)

	t0 := time.Now()
	if err := victim.powerCut(); err != nil {
		t.Fatal(err)
	}
	victim.kill() // reap the agent's process
	at, ok := l.waitOK(t0, 60*time.Second, func(who string) bool { return !orig[jobOf(who)] })
	if !ok {
		t.Fatalf("no replacement served within 60s of the kill; load: %s", l.summary())
	}
	recovery := at.Sub(t0)
	r.setRecovery(recovery, "kill -9 of a host to the first request answered by a replacement")
	after := c.waitJobs(t, app, "3 running web jobs off "+victim.name, 30*time.Second, func(js []api.AppJob) bool {
		return len(js) == 3 && !slices.Contains(hostsOf(js), victim.name)
	})
	time.Sleep(2 * time.Second)
	l.stop()
	sum := l.summary()
	r.setLoad(sum)
	r.Extra["jobs_after"] = hostsOf(after)
	for k, v := range watch.recoverySteps(t0, app, victim.name, orig) {
		r.Extra[k] = v
	}
	t.Logf("recovery %s (target %s); load: %s", recovery.Round(time.Millisecond), hostRecoveryTarget, sum)
	if sum.Failed > 0 {
		t.Logf("failures from the kill: %s", l.timeline(t0))
	}
	if recovery > hostRecoveryLimit {
		t.Errorf("replacements served %s after the kill, more than %s", recovery, hostRecoveryLimit)
	}
}

// Scenario 3: a host is cut off from the servers (iptables in its
// namespace; the routers still reach it). Its lease expires, its jobs are
// replaced elsewhere; it cannot hear that its own jobs should stop, so
// until it is healed the app runs one job too many. Once healed, the host
// must stop its stale jobs promptly: the count must not stay above the
// desired one.
func TestHostPartition(t *testing.T) {
	c := getCluster(t)
	r := report(t, "3-host-partition")
	const app = "partition"
	js := c.deployWeb(t, app, 3)
	victim := c.node("h2")
	orig := map[string]bool{}
	for _, j := range js {
		orig[j.ID] = true
	}
	if !slices.Contains(hostsOf(js), victim.name) {
		t.Fatalf("no job on %s to cut off: %v", victim.name, hostsOf(js))
	}
	l := r.track(startLoad(t, c, app))
	watch := c.watchStore(t)
	time.Sleep(time.Second)

	t0 := time.Now()
	if err := partition(victim.ns, c.serverIPs()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { heal(victim.ns) })
	at, ok := l.waitOK(t0, 60*time.Second, func(who string) bool { return !orig[jobOf(who)] })
	if !ok {
		t.Fatalf("no replacement served within 60s of the partition; load: %s", l.summary())
	}
	recovery := at.Sub(t0)
	r.setRecovery(recovery, "partition of a host to the first request answered by a replacement")
	c.waitJobs(t, app, "3 running web jobs off "+victim.name, 30*time.Second, func(js []api.AppJob) bool {
		return len(js) == 3 && !slices.Contains(hostsOf(js), victim.name)
	})
	for k, v := range watch.recoverySteps(t0, app, victim.name, orig) {
		r.Extra[k] = v
	}
	stale := runningContainers(victim, app)
	t.Logf("replaced in %s; %d stale job(s) still run on the cut-off %s: %v", recovery.Round(time.Millisecond), len(stale), victim.name, stale)

	// Heal, and watch both what runs and what discovery offers the
	// routers until the stale jobs are gone.
	t1 := time.Now()
	if err := heal(victim.ns); err != nil {
		t.Fatal(err)
	}
	var aboveSince time.Time
	var longestAbove time.Duration
	maxInstances := 0
	deadline := t1.Add(30 * time.Second)
	for {
		total := 0
		for _, h := range c.hosts {
			total += len(runningContainers(h, app))
		}
		inst := c.instanceCount(app)
		maxInstances = max(maxInstances, inst)
		now := time.Now()
		if total > 3 || inst > 3 {
			if aboveSince.IsZero() {
				aboveSince = now
			}
			longestAbove = max(longestAbove, now.Sub(aboveSince))
		} else {
			aboveSince = time.Time{}
		}
		if total == 3 && inst == 3 && now.Sub(t1) > 3*time.Second {
			break
		}
		if now.After(deadline) {
			t.Errorf("30s after healing: %d containers run and discovery lists %d instances, want 3", total, inst)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	staleStop, stopped := watch.first(t1, func(e storeEvent) bool {
		return !e.delete && strings.HasPrefix(e.key, store.JobStatusPrefix) && len(stale) > 0 && strings.HasSuffix(e.key, "/"+stale[0])
	})
	l.stop()
	sum := l.summary()
	r.setLoad(sum)
	r.Extra["above_desired_after_heal_ms"] = ms(longestAbove)
	r.Extra["max_instances_after_heal"] = maxInstances
	if stopped {
		r.Extra["stale_status_update_after_heal_ms"] = ms(staleStop)
	}
	t.Logf("recovery %s (target %s); after the heal the count stayed above 3 for %s, discovery listed at most %d; load: %s",
		recovery.Round(time.Millisecond), hostRecoveryTarget, longestAbove.Round(time.Millisecond), maxInstances, sum)
	if sum.Failed > 0 {
		t.Logf("failures from the partition: %s", l.timeline(t0))
	}
	if recovery > hostRecoveryLimit {
		t.Errorf("replacements served %s after the partition, more than %s", recovery, hostRecoveryLimit)
	}
	if longestAbove > 10*time.Second {
		t.Errorf("after the heal the app ran more than 3 jobs for %s", longestAbove)
	}
}
