package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/host/agent"
	"github.com/pierpaas/pier/upgrade"
)

// Scenario 12: pier upgraded under load. The cluster runs the suite's
// binary; the same source built with another version is rolled out with
// the cluster's own upgrade (every node replaced in place, one at a
// time) while the routers serve an app: no request fails, every node
// ends on the new version, and the app's containers keep their PIDs
// through the host agents' restarts. Then an upgrade to a binary that
// never becomes healthy (it exits at once) stops after its first node,
// which goes back to its binary by itself (a supervisor, standing for
// systemd, restarts it), and the upgrade is rolled back: every node runs
// the version it ran before.
func TestPierUpgrade(t *testing.T) {
	c := getCluster(t)
	r := report(t, "12-pier-upgrade")
	const app = "upgraded"
	c.deployWeb(t, app, 3)
	pids := containerPIDs(c, app)
	if len(pids) != 3 {
		t.Fatalf("containers of %s before the upgrade: %v", app, pids)
	}

	next := filepath.Join(t.TempDir(), "pier-next")
	build := exec.Command("go", "build", "-ldflags", "-X github.com/pierpaas/pier/internal/cli.Version=e2e-next", "-o", next, "../../cmd/pier")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the next pier: %v\n%s", err, out)
	}

	// A supervisor for every node, as systemd would be: a node that
	// exits is started again.
	stopSup := supervise(t, c)
	defer stopSup()

	// The load balancer in front of the routers follows their
	// readiness, as a real one would: a router about to restart for
	// its upgrade reports itself unready for the drain first.
	stopLB := followReadiness(c)
	defer stopLB()

	l := r.track(startLoad(t, c, app))
	t0 := time.Now()
	u := runUpgrade(t, c, next, "e2e-next", 20*time.Second)
	took := time.Since(t0)
	time.Sleep(time.Second)
	l.stop()
	sum := l.summary()
	r.setLoad(sum)
	r.setRecovery(took, "the whole upgrade, 8 nodes one at a time")
	t.Logf("upgrade %s: %s in %s; load: %s", u.ID, u.State, took.Round(time.Millisecond), sum)
	if u.State != api.UpgradeComplete {
		t.Fatalf("upgrade ended %s: %s\n%s", u.State, u.Reason, describeSteps(u))
	}
	if sum.Failed > 0 || sum.Requests == 0 {
		t.Fatalf("requests failed during the upgrade: %s", sum)
	}
	versions := nodeVersions(t, c)
	for node, v := range versions {
		if v != "e2e-next" {
			t.Fatalf("after the upgrade, %s runs %q:\n%v", node, v, versions)
		}
	}
	if len(versions) != len(c.nodes()) {
		t.Fatalf("nodes after the upgrade: %v", versions)
	}
	if after := containerPIDs(c, app); !equalMaps(pids, after) {
		t.Fatalf("the app's containers changed PIDs through the upgrade: before %v, after %v", pids, after)
	}

	// A binary that exits at once: the first node goes back by itself,
	// and the upgrade stops there and is rolled back.
	bad := filepath.Join(t.TempDir(), "pier-bad")
	if err := os.WriteFile(bad, []byte("#!/bin/sh\n[ \"$1\" = --version ] && echo 'pier version e2e-bad' && exit 0\necho broken >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	u = runUpgrade(t, c, bad, "e2e-bad", 20*time.Second)
	t.Logf("bad upgrade %s: %s (%s)\n%s", u.ID, u.State, u.Reason, describeSteps(u))
	if u.State != api.UpgradeFailed {
		t.Fatalf("the upgrade to a broken binary ended %s", u.State)
	}
	tried := 0
	for _, s := range u.Steps {
		switch s.State {
		case api.StepPending, api.StepSkipped:
		case api.StepFailed, api.StepRolledBack:
			tried++
		default:
			t.Fatalf("step %s ended %s", s.Node, s.State)
		}
	}
	if tried != 1 {
		t.Fatalf("the broken binary was tried on %d nodes, want the first only:\n%s", tried, describeSteps(u))
	}
	waitForErr(t, "every node back on e2e-next", 90*time.Second, func() error {
		versions := nodeVersions(t, c)
		if len(versions) != len(c.nodes()) {
			return fmt.Errorf("nodes: %v", versions)
		}
		for node, v := range versions {
			if v != "e2e-next" {
				return fmt.Errorf("%s runs %q", node, v)
			}
		}
		return nil
	})
	c.waitServed(t, app, 30*time.Second)
}

// runUpgrade uploads bin and upgrades the cluster to it, and returns the
// upgrade once it has ended.
func runUpgrade(t *testing.T, c *cluster, bin, version string, trial time.Duration) api.Upgrade {
	t.Helper()
	body, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	digest := hex.EncodeToString(sum[:])
	ctl, err := c.controller()
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	ctx, cancel := ctxT(2 * time.Minute)
	defer cancel()
	if err := ctl.PutBlob(ctx, digest, int64(len(body)), strings.NewReader(string(body))); err != nil {
		t.Fatalf("upload %s: %v", bin, err)
	}
	u, err := ctl.StartUpgrade(ctx, api.UpgradeRequest{SHA256: digest, Size: int64(len(body)), Version: version,
		Trial: api.Duration(trial), Drain: api.Duration(upgrade.DefaultDrain)})
	if err != nil {
		t.Fatalf("start the upgrade: %v", err)
	}
	deadline := time.Now().Add(15 * time.Minute)
	last := ""
	for {
		// Any server that answers: the one asked first may be the one
		// being replaced.
		cl, err := c.controller()
		if err == nil {
			ctx, cancel := ctxT(5 * time.Second)
			got, err := cl.Upgrade(ctx, u.ID)
			cancel()
			cl.Close()
			if err == nil {
				u = got
				if s := describeSteps(u); s != last {
					t.Logf("upgrade %s %s:\n%s", u.ID, u.State, s)
					last = s
				}
				if u.State.Done() {
					return u
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("upgrade %s not done after 15 minutes:\n%s", u.ID, describeSteps(u))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func describeSteps(u api.Upgrade) string {
	var b strings.Builder
	for _, s := range u.Steps {
		fmt.Fprintf(&b, "  %-12s %-12s %s\n", s.Node, s.State, s.Error)
	}
	return b.String()
}

// nodeVersions is each registered daemon's version, by node key.
func nodeVersions(t *testing.T, c *cluster) map[string]string {
	t.Helper()
	out := map[string]string{}
	ctl, err := c.controller()
	if err != nil {
		return out
	}
	defer ctl.Close()
	ctx, cancel := ctxT(5 * time.Second)
	defer cancel()
	nodes, err := ctl.Nodes(ctx)
	if err != nil {
		return out
	}
	for _, n := range nodes {
		out[string(n.Kind)+"/"+n.Name] = n.Version
	}
	return out
}

// containerPIDs are the PIDs of the app's web containers on every host,
// by container id.
func containerPIDs(c *cluster, app string) map[string]int {
	out := map[string]int{}
	for _, h := range c.hosts {
		b, err := exec.Command("runc", "--root", agent.RunDirs(h.dataDir())[0], "list", "--format", "json").Output()
		if err != nil {
			continue
		}
		var list []struct {
			ID     string `json:"id"`
			PID    int    `json:"pid"`
			Status string `json:"status"`
		}
		json.Unmarshal(b, &list)
		for _, ct := range list {
			if ct.Status == "running" && strings.HasPrefix(ct.ID, app+"-web-") {
				out[ct.ID] = ct.PID
			}
		}
	}
	return out
}

func equalMaps(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// followReadiness takes routers out of the test's load balancer while
// their /readyz fails and puts them back when it passes, polling every
// 100 ms, until the returned stop is called (which puts every router
// back).
func followReadiness(c *cluster) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, rt := range c.routers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				pctx, pcancel := context.WithTimeout(ctx, time.Second)
				err := rt.ready(pctx)
				pcancel()
				if err != nil {
					c.lb.remove(routerAddr(rt))
				} else {
					c.lb.add(routerAddr(rt))
				}
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			for _, rt := range c.routers {
				c.lb.add(routerAddr(rt))
			}
		})
	}
}

// supervise starts again, after a second, any node of c that exits
// until the returned stop is called.
func supervise(t *testing.T, c *cluster) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, n := range c.nodes() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case <-n.exitedCh():
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
				if err := n.start(); err != nil {
					t.Logf("supervisor: start %s: %v", n.name, err)
				} else {
					t.Logf("supervisor: %s had exited; started again", n.name)
				}
			}
		}()
	}
	var once sync.Once
	return func() { once.Do(func() { cancel(); wg.Wait() }) }
}
