package scheduler_test

import (
	"strings"
	"testing"

	"github.com/pierpaas/pier/scheduler"
)

// A host whose data disk is low on space takes no new job, and a job
// with nowhere else to go says why; once space returns it takes jobs
// again.
func TestHostLowOnDiskTakesNothingNew(t *testing.T) {
	c := cluster(2, web(), 1)
	step(t, c)
	full := c.Hosts["h0"]
	full.DiskPressure = "the disk of /var/lib/pier has 12 MiB free"
	c.AddHost(full)
	c.SetFormation("shop", "shop-v1", map[string]int{"web": 3})
	step(t, c)
	if hosts := perHost(live(c, "shop-v1", "web")); hosts["h0"] > 1 {
		t.Fatalf("a host low on disk took new jobs: %v", hosts)
	}
	for _, h := range []string{"h1"} {
		c.RemoveHost(h)
	}
	c.SetFormation("shop", "shop-v1", map[string]int{"web": 4})
	p := scheduler.Reconcile(c.Snapshot(c.Rev))
	var why string
	for _, pe := range p.Pending {
		why += pe.Reason
	}
	if !strings.Contains(why, "low on disk space") {
		t.Fatalf("pending %+v", p.Pending)
	}
	full.DiskPressure = ""
	c.AddHost(full)
	before := perHost(live(c, "shop-v1", "web"))["h0"]
	step(t, c)
	if after := perHost(live(c, "shop-v1", "web"))["h0"]; after <= before {
		t.Fatalf("with space again, h0 runs %d jobs (was %d)", after, before)
	}
}
