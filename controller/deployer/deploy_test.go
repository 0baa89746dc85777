package deployer_test

import (
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

func strategy(kind string, timeout time.Duration) api.DeployStrategy {
	return api.DeployStrategy{Kind: kind, BatchSize: 2, Timeout: api.Duration(timeout)}
}

// checkSteps replays the formation writes of a deployment from oldRel
// (oldN web jobs) to newRel (target): the new formation's web count must
// rise by 1..step at a time and never fall, the old one only fall and
// then be deleted last, and while both exist the two must add up to at
// least the target and at most the target plus a step. Writes of one
// transaction are applied together. It returns the new counts written.
func checkSteps(t *testing.T, events []formationEvent, oldRel, newRel string, oldN, target, step int) []int {
	t.Helper()
	byRev := map[int64][]formationEvent{}
	for _, ev := range events {
		byRev[ev.rev] = append(byRev[ev.rev], ev)
	}
	revs := make([]int64, 0, len(byRev))
	for r := range byRev {
		revs = append(revs, r)
	}
	slices.Sort(revs)
	newN, oldExists := 0, oldRel != ""
	var seq []int
	for _, r := range revs {
		if oldRel != "" && !oldExists {
			t.Fatalf("formation writes after the old formation was deleted: %v", byRev[r])
		}
		for _, ev := range byRev[r] {
			switch {
			case ev.release == newRel && ev.counts == nil:
				t.Fatalf("new formation deleted during a successful deployment")
			case ev.release == newRel:
				n := ev.counts["web"]
				if n <= newN || n-newN > step {
					t.Fatalf("new formation web %d -> %d; step is %d (writes %v)", newN, n, step, events)
				}
				newN = n
				seq = append(seq, n)
			case ev.release == oldRel && ev.counts == nil:
				oldExists = false
				if newN != target {
					t.Fatalf("old formation deleted with the new one at %d of %d", newN, target)
				}
			case ev.release == oldRel:
				if n := ev.counts["web"]; n >= oldN {
					t.Fatalf("old formation web %d -> %d: it may only fall", oldN, n)
				} else {
					oldN = n
				}
			}
		}
		if oldExists && (newN+oldN < target || newN+oldN > target+step) {
			t.Fatalf("new %d + old %d outside [%d, %d]", newN, oldN, target, target+step)
		}
	}
	if oldExists {
		t.Fatalf("old formation never deleted (writes %v)", events)
	}
	return seq
}

// TestOneByOneDeploy moves web=3 from v1 to v2 one job at a time, each new
// job's real health check passing before the next starts.
func TestOneByOneDeploy(t *testing.T) {
	e := newEnv(t)
	v1 := e.setup(web(3))
	e.startDeployer("d1")
	v2 := release(2, map[string]api.ProcessType{"web": webType()})
	e.app.setHealthy(v2.ID, true)
	events := e.recordFormations()
	e.app.sample()
	d := e.deploy(v1, v2, strategy(api.StrategyOneByOne, time.Minute), web(3), web(3))
	got, doneRev := e.waitDone(d.ID, time.Minute)
	if got.State != api.DeployComplete {
		t.Fatalf("deployment %s: %s", got.State, got.Reason)
	}
	if got.FinishedAt.IsZero() {
		t.Fatal("complete deployment without FinishedAt")
	}
	if app, _, _ := get[api.App](e, key(store.AppsPrefix, "hello")); app.Release != v2.ID {
		t.Fatalf("app release %q, want %q", app.Release, v2.ID)
	}
	if _, _, ok := get[api.Formation](e, key(store.FormationsPrefix, "hello", v1)); ok {
		t.Fatal("old formation still there")
	}
	if f, _, _ := get[api.Formation](e, key(store.FormationsPrefix, "hello", v2.ID)); f.Processes["web"] != 3 {
		t.Fatalf("new formation %v", f.Processes)
	}
	if seq := checkSteps(t, events(doneRev), v1, v2.ID, 3, 3, 1); !slices.Equal(seq, []int{1, 2, 3}) {
		t.Fatalf("new formation went %v, want [1 2 3]", seq)
	}
	// Each old job went only after a new one served.
	if n := e.app.fewestServing(); n < 3 {
		t.Fatalf("only %d web jobs served at one point during the deployment", n)
	}
	e.waitServing(v2.ID, "web", 3)
	e.c.WaitFor("v1 jobs to stop", 30*time.Second, func() bool { return e.live(v1) == 0 })
}

// TestUnhealthyDeployRollsBack deploys a release whose jobs never pass
// their health check: at the timeout the old formation is restored and
// the new one deleted.
func TestUnhealthyDeployRollsBack(t *testing.T) {
	e := newEnv(t)
	v1 := e.setup(web(2))
	e.startDeployer("d1")
	v2 := release(2, map[string]api.ProcessType{"web": webType()}) // nothing listens: never healthy
	d := e.deploy(v1, v2, strategy(api.StrategyOneByOne, 3*time.Second), web(2), web(2))
	got, _ := e.waitDone(d.ID, 30*time.Second)
	if got.State != api.DeployFailed {
		t.Fatalf("deployment %s, want failed", got.State)
	}
	const want = "web: 0 of 2 new jobs healthy after 3s (1 running but failing its health check: "
	if !strings.HasPrefix(got.Reason, want) {
		t.Fatalf("reason %q, want it to start %q", got.Reason, want)
	}
	if took := got.FinishedAt.Sub(got.CreatedAt); took < 3*time.Second || took > 8*time.Second {
		t.Fatalf("failed after %v, timeout 3s", took)
	}
	if f, _, _ := get[api.Formation](e, key(store.FormationsPrefix, "hello", v1)); f.Processes["web"] != 2 {
		t.Fatalf("old formation %v, want web=2", f.Processes)
	}
	if _, _, ok := get[api.Formation](e, key(store.FormationsPrefix, "hello", v2.ID)); ok {
		t.Fatal("new formation not deleted")
	}
	if app, _, _ := get[api.App](e, key(store.AppsPrefix, "hello")); app.Release != v1 {
		t.Fatalf("app release %q, want %q", app.Release, v1)
	}
	e.c.WaitFor("v2 jobs to stop", 30*time.Second, func() bool { return e.live(v2.ID) == 0 })
	e.waitServing(v1, "web", 2)
}

// TestCrashFailsFast fails a deployment as soon as a new job crashes,
// long before its timeout.
func TestCrashFailsFast(t *testing.T) {
	e := newEnv(t)
	v1 := e.setup(web(2))
	e.startDeployer("d1")
	v2 := release(2, map[string]api.ProcessType{"web": webType()})
	d := e.deploy(v1, v2, strategy(api.StrategyOneByOne, time.Minute), web(2), web(2))
	var id string
	e.c.WaitFor("a v2 job to run", 30*time.Second, func() bool {
		for _, j := range e.c.Snapshot().Jobs {
			if j.Job.Release == v2.ID && j.Status != nil && j.Status.State == api.JobRunning && e.runtimeOf(j.Job.ID) != nil {
				id = j.Job.ID
				return true
			}
		}
		return false
	})
	if err := e.runtimeOf(id).Runtime.Exit(id, 1); err != nil {
		t.Fatal(err)
	}
	got, _ := e.waitDone(d.ID, 20*time.Second)
	if want := "web job " + id + " failed: exit status 1"; got.State != api.DeployFailed || got.Reason != want || got.FailedJob != id {
		t.Fatalf("deployment %s %q (failed job %q), want failed %q", got.State, got.Reason, got.FailedJob, want)
	}
	if f, _, _ := get[api.Formation](e, key(store.FormationsPrefix, "hello", v1)); f.Processes["web"] != 2 {
		t.Fatalf("old formation %v, want web=2", f.Processes)
	}
	if _, _, ok := get[api.Formation](e, key(store.FormationsPrefix, "hello", v2.ID)); ok {
		t.Fatal("new formation not deleted")
	}
}

// releaseJob waits for the release phase's job to run and checks that no
// formation of the new release was written before it.
func (e *env) releaseJob(newRel string) string {
	e.t.Helper()
	id := newRel + "-release"
	e.c.WaitFor("the release phase job to run", 30*time.Second, func() bool { return e.runtimeOf(id) != nil })
	if f, _, ok := get[api.Formation](e, key(store.FormationsPrefix, "hello", newRel)); ok {
		e.t.Fatalf("new formation %v written during the release phase", f.Processes)
	}
	return id
}

// TestReleasePhaseFailure stops a deployment whose release phase exits 3,
// leaving the old formation untouched.
func TestReleasePhaseFailure(t *testing.T) {
	e := newEnv(t)
	v1 := e.setup(web(2))
	_, oldRev, _ := get[api.Formation](e, key(store.FormationsPrefix, "hello", v1))
	e.startDeployer("d1")
	v2 := release(2, map[string]api.ProcessType{"web": webType(), api.ReleaseProcess: {Args: []string{"migrate"}}})
	e.app.setHealthy(v2.ID, true)
	d := e.deploy(v1, v2, strategy(api.StrategyOneByOne, time.Minute), web(2), web(2))
	id := e.releaseJob(v2.ID)
	if err := e.runtimeOf(id).Runtime.Exit(id, 3); err != nil {
		t.Fatal(err)
	}
	got, _ := e.waitDone(d.ID, 20*time.Second)
	if got.State != api.DeployFailed || got.Reason != "release phase failed: exit status 3" || got.ReleaseJob != id || got.FailedJob != id {
		t.Fatalf("deployment %s %q (release job %q)", got.State, got.Reason, got.ReleaseJob)
	}
	if _, rev, _ := get[api.Formation](e, key(store.FormationsPrefix, "hello", v1)); rev != oldRev {
		t.Fatalf("old formation written (revision %d, was %d)", rev, oldRev)
	}
	if _, _, ok := get[api.Formation](e, key(store.FormationsPrefix, "hello", v2.ID)); ok {
		t.Fatal("new formation written")
	}
	if app, _, _ := get[api.App](e, key(store.AppsPrefix, "hello")); app.Release != v1 {
		t.Fatalf("app release %q", app.Release)
	}
	if n := e.live(v2.ID); n != 0 {
		t.Fatalf("%d v2 jobs live", n)
	}
}

// TestReleasePhaseThenAllAtOnce runs the release phase, then starts every
// new job at once.
func TestReleasePhaseThenAllAtOnce(t *testing.T) {
	e := newEnv(t)
	v1 := e.setup(web(2))
	e.startDeployer("d1")
	v2 := release(2, map[string]api.ProcessType{"web": webType(), api.ReleaseProcess: {Args: []string{"migrate"}}})
	e.app.setHealthy(v2.ID, true)
	events := e.recordFormations()
	d := e.deploy(v1, v2, strategy(api.StrategyAllAtOnce, time.Minute), web(2), map[string]int{"web": 2, api.ReleaseProcess: 1})
	id := e.releaseJob(v2.ID)
	if err := e.runtimeOf(id).Runtime.Exit(id, 0); err != nil {
		t.Fatal(err)
	}
	got, doneRev := e.waitDone(d.ID, 30*time.Second)
	if got.State != api.DeployComplete {
		t.Fatalf("deployment %s: %s", got.State, got.Reason)
	}
	if seq := checkSteps(t, events(doneRev), v1, v2.ID, 2, 2, 1<<30); !slices.Equal(seq, []int{2}) {
		t.Fatalf("new formation went %v, want [2]", seq)
	}
	if f, _, _ := get[api.Formation](e, key(store.FormationsPrefix, "hello", v2.ID)); f.Processes[api.ReleaseProcess] != 0 {
		t.Fatalf("release process type scaled by the formation: %v", f.Processes)
	}
	e.waitServing(v2.ID, "web", 2)
}

// TestLeaderHandover stops the deployer leading a deployment half way; a
// standby takes over and finishes it from where it stopped.
func TestLeaderHandover(t *testing.T) {
	e := newEnv(t)
	v1 := e.setup(web(3))
	e.startDeployer("d1")
	v2 := release(2, map[string]api.ProcessType{"web": webType()})
	events := e.recordFormations()
	d := e.deploy(v1, v2, strategy(api.StrategyOneByOne, time.Minute), web(3), web(3))
	// v2 does not serve yet, so d1 stops after its first step.
	e.c.WaitFor("a v2 job to run", 30*time.Second, func() bool {
		f, _, ok := get[api.Formation](e, key(store.FormationsPrefix, "hello", v2.ID))
		return ok && f.Processes["web"] == 1 && e.live(v2.ID) == 1
	})
	e.startDeployer("d2") // a standby: d1 leads
	time.Sleep(300 * time.Millisecond)
	e.stopDeployer("d1")
	e.app.setHealthy(v2.ID, true)
	got, doneRev := e.waitDone(d.ID, time.Minute)
	if got.State != api.DeployComplete {
		t.Fatalf("deployment %s: %s", got.State, got.Reason)
	}
	if seq := checkSteps(t, events(doneRev), v1, v2.ID, 3, 3, 1); !slices.Equal(seq, []int{1, 2, 3}) {
		t.Fatalf("new formation went %v, want [1 2 3]", seq)
	}
	resp, err := e.c.Client.Get(e.ctx, "/pier/leaders/deployer/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var leaders []string
	for _, kv := range resp.Kvs {
		leaders = append(leaders, string(kv.Value))
	}
	sort.Strings(leaders)
	if !slices.Equal(leaders, []string{"d2"}) {
		t.Fatalf("candidates %v, want only d2", leaders)
	}
}
