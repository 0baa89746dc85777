package e2e

import (
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
)

// Scenario 9: maintenance. A host is drained under load: its job is
// replaced on another host before it stops, and it leaves discovery
// before it is told to stop, so no request fails; undrained, the host
// takes jobs again.
func TestHostDrain(t *testing.T) {
	c := getCluster(t)
	r := report(t, "9-host-drain")
	const app = "drain"
	jobs := c.deployWeb(t, app, 3)
	l := r.track(startLoad(t, c, app))
	time.Sleep(time.Second)
	host := jobs[0].HostID
	ctl, err := c.controller()
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	t0 := time.Now()
	ctx, cancel := ctxT(20 * time.Second)
	err = ctl.DrainHost(ctx, host)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	undrain := func() {
		ctx, cancel := ctxT(20 * time.Second)
		defer cancel()
		if err := ctl.UndrainHost(ctx, host); err != nil {
			t.Errorf("undrain %s: %v", host, err)
		}
	}
	drained := false
	defer func() {
		if !drained {
			undrain() // the cluster is shared with the next scenarios
		}
	}()
	c.waitJobs(t, app, "3 running jobs, none on "+host, 60*time.Second, func(js []api.AppJob) bool {
		if len(js) != 3 {
			return false
		}
		for _, j := range js {
			if j.HostID == host || j.State != api.JobRunning {
				return false
			}
		}
		return true
	})
	c.waitInstances(t, app, 3, 30*time.Second)
	moved := time.Since(t0)
	time.Sleep(time.Second)
	l.stop()
	sum := l.summary()
	r.setLoad(sum)
	r.setRecovery(moved, "drain of a host to its job replaced on another host and routed")
	r.Extra["drained"] = host
	undrain()
	drained = true
	c.scaleAndWait(t, app, 4)
	back := false
	for _, j := range c.waitRunning(t, app, 4, 60*time.Second) {
		back = back || j.HostID == host
	}
	if !back {
		t.Errorf("%s took no job after its drain ended", host)
	}
	t.Logf("%s drained in %s; load: %s", host, moved.Round(time.Millisecond), sum)
	if sum.Failed > 0 {
		t.Errorf("%d requests failed during the drain: %s", sum.Failed, l.timeline(t0))
	}
}
