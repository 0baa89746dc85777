package scheduler_test

import (
	"strings"
	"testing"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/scheduler"
)

// A drained host's service jobs move: replacements start elsewhere first,
// and each job on the host stops only once enough others run.
func TestDrainMovesJobsBeforeStopping(t *testing.T) {
	c := cluster(3, web(), 3)
	step(t, c)
	if n := perHost(live(c, "shop-v1", "web"))["h0"]; n != 1 {
		t.Fatalf("h0 runs %d jobs before the drain, want 1", n)
	}
	c.Drain("h0", true)
	p := scheduler.Reconcile(c.Snapshot(c.Rev))
	if len(p.Start) != 1 || p.Start[0].Job.HostID == "h0" || len(p.Stop) != 0 {
		t.Fatalf("first pass: %d starts (%+v), %d stops; want a replacement elsewhere and no stop", len(p.Start), p.Start, len(p.Stop))
	}
	if err := c.Apply(p, nil); err != nil {
		t.Fatal(err)
	}
	// The replacement is placed, not yet running: h0's job stays.
	if p := scheduler.Reconcile(c.Snapshot(c.Rev)); len(p.Stop) != 0 || len(p.Start) != 0 {
		t.Fatalf("with the replacement not running: %d stops, %d starts", len(p.Stop), len(p.Start))
	}
	c.RunAgents()
	p = step(t, c)
	if len(p.Stop) != 1 || p.Stop[0].Job.HostID != "h0" || p.Stop[0].Reason != "host being drained" {
		t.Fatalf("once the replacement runs: stops %+v", p.Stop)
	}
	step(t, c)
	jobs := live(c, "shop-v1", "web")
	if len(jobs) != 3 || perHost(jobs)["h0"] != 0 {
		t.Fatalf("after the drain: %v", perHost(jobs))
	}
	// Undrained, the host takes jobs again.
	c.Drain("h0", false)
	c.SetFormation("shop", "shop-v1", map[string]int{"web": 6})
	step(t, c)
	if n := perHost(live(c, "shop-v1", "web"))["h0"]; n == 0 {
		t.Fatal("an undrained host took no job")
	}
}

// With nowhere to go, a drained host's jobs keep running, and the job
// that cannot be placed says why.
func TestDrainWithNowhereToGo(t *testing.T) {
	c := cluster(1, web(), 1)
	step(t, c)
	c.Drain("h0", true)
	p := step(t, c)
	if len(p.Stop) != 0 || len(live(c, "shop-v1", "web")) != 1 {
		t.Fatalf("stops %+v; live %v", p.Stop, live(c, "shop-v1", "web"))
	}
	var why string
	for _, pe := range p.Pending {
		why += pe.Reason
	}
	if !strings.Contains(why, "being drained") {
		t.Fatalf("pending %+v", p.Pending)
	}
}

// An omni process type leaves a drained host at once.
func TestDrainOmni(t *testing.T) {
	c := cluster(3, web(func(pt *api.ProcessType) { pt.Omni = true }), 1)
	step(t, c)
	c.Drain("h1", true)
	p := step(t, c)
	if len(p.Stop) != 1 || p.Stop[0].Job.HostID != "h1" {
		t.Fatalf("stops %+v", p.Stop)
	}
	if hosts := perHost(live(c, "shop-v1", "web")); len(hosts) != 2 || hosts["h1"] != 0 {
		t.Fatalf("omni jobs on %v", hosts)
	}
}
