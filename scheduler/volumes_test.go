package scheduler_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/scheduler/sim"
	"github.com/pierpaas/pier/store"
)

func withVolume(p *api.ProcessType) {
	p.Volumes = []api.VolumeSpec{{Name: "data", Path: "/data", SizeMB: 64}}
}

var dataID = api.VolumeID("shop", "web", "data")

func TestVolumeHostChecker(t *testing.T) {
	h1, h2 := host("h1", 1024, 1000), host("h2", 1024, 1000)
	pinned := request(web())
	pinned.Pin("h2", "data")
	for _, tc := range []struct {
		name   string
		h      *api.Host
		r      *scheduler.Request
		ok     bool
		reason string
	}{
		{"unpinned", &h1, request(web()), true, ""},
		{"its host", &h2, pinned, true, ""},
		{"another host", &h1, pinned, false, "lacked volume data"},
	} {
		ok, why := scheduler.VolumeHost{}.Check(&scheduler.HostState{Host: tc.h}, tc.r, &scheduler.GroupState{})
		if ok != tc.ok || why != tc.reason {
			t.Errorf("%s: Check = %v %q, want %v %q", tc.name, ok, why, tc.ok, tc.reason)
		}
	}
	// The placer applies it whatever the pipeline.
	p := scheduler.NewPlacer(&scheduler.Pipeline{}, []scheduler.HostState{{Host: &h1}, {Host: &h2}})
	chosen, why := p.Place(pinned, scheduler.Counts{}, 2, 1)
	if len(chosen) != 2 || p.Hosts[chosen[0]].Host.ID != "h2" || p.Hosts[chosen[1]].Host.ID != "h2" || why != "" {
		t.Errorf("placed on %v (%q), want h2 twice", names(p, chosen), why)
	}
}

// volumeHost is the host the record binds dataID to, failing when absent.
func volumeHost(t *testing.T, c *sim.Cluster) string {
	t.Helper()
	vv := c.Volumes[dataID]
	if vv == nil || vv.Volume.Host == "" {
		t.Fatalf("volume %s not bound: %+v", dataID, vv)
	}
	return vv.Volume.Host
}

func TestVolumeBoundAtFirstPlacement(t *testing.T) {
	c := cluster(3, web(withVolume), 1)
	p := step(t, c)
	if len(p.Start) != 1 || len(p.Start[0].Volumes) != 1 {
		t.Fatalf("starts %+v", p.Start)
	}
	b, j := p.Start[0].Volumes[0], p.Start[0].Job
	want := api.Volume{ID: dataID, App: "shop", ProcessType: "web", Name: "data", Host: j.HostID, SizeMB: 64, CreatedAt: t0}
	if b.Rev != 0 || b.Volume != want {
		t.Errorf("bind %+v, want %+v at revision 0", b, want)
	}
	if len(j.Volumes) != 1 || j.Volumes[0].ID != dataID || j.Volumes[0].Path != "/data" || j.Volumes[0].SizeMB != 64 {
		t.Errorf("job volumes %+v", j.Volumes)
	}
	if err := j.Validate(); err != nil {
		t.Error(err)
	}
	if h := volumeHost(t, c); h != j.HostID {
		t.Errorf("volume on %s, job on %s", h, j.HostID)
	}
	if p := step(t, c); !p.Empty() {
		t.Errorf("second pass not empty: %+v", p)
	}
}

// A crashed job's replacements, and every job of a scale-up, go to the
// volume's host, though spreading would put them elsewhere.
func TestVolumeKeepsJobsOnItsHost(t *testing.T) {
	c := cluster(3, web(withVolume), 1)
	step(t, c)
	h := volumeHost(t, c)
	for i := range 5 {
		j := live(c, "shop-v1", "web")[0]
		c.End(j.ID, api.JobFailed)
		c.Advance(10 * time.Minute)
		p := step(t, c)
		if len(p.Start) != 1 || p.Start[0].Replaces == nil || p.Start[0].Job.HostID != h || len(p.Start[0].Volumes) != 0 {
			t.Fatalf("crash %d: starts %+v, want a replacement on %s binding nothing", i, p.Start, h)
		}
	}
	c.SetFormation("shop", "shop-v1", map[string]int{"web": 3})
	step(t, c)
	if n := perHost(live(c, "shop-v1", "web")); n[h] != 3 {
		t.Errorf("jobs per host %v, want 3 on %s", n, h)
	}
	// A new release's jobs find the same volume.
	c.AddRelease(api.Release{ID: "shop-v2", App: "shop", Processes: map[string]api.ProcessType{"web": web(withVolume)}})
	c.SetFormation("shop", "shop-v2", map[string]int{"web": 1})
	p := step(t, c)
	if len(p.Start) != 1 || p.Start[0].Job.HostID != h || p.Start[0].Job.Volumes[0].ID != dataID {
		t.Errorf("v2 starts %+v", p.Start)
	}
}

// Scaled from 0 to 3 with the volume unbound, all three land together.
func TestVolumeUnboundScaleUp(t *testing.T) {
	c := cluster(3, web(withVolume), 3)
	p := step(t, c)
	if len(p.Start) != 3 || len(p.Pending) != 0 {
		t.Fatalf("starts %d, pending %+v", len(p.Start), p.Pending)
	}
	binds := 0
	for _, s := range p.Start {
		binds += len(s.Volumes)
	}
	if h := volumeHost(t, c); perHost(live(c, "shop-v1", "web"))[h] != 3 || binds != 1 {
		t.Errorf("jobs per host %v, %d binds; want 3 on %s, 1 bind", perHost(live(c, "shop-v1", "web")), binds, h)
	}
}

func TestVolumeHostGone(t *testing.T) {
	c := cluster(3, web(withVolume), 1)
	step(t, c)
	h := volumeHost(t, c)
	c.RemoveHost(h)
	p := step(t, c)
	want := "volume data lives on host " + h + ", which is gone"
	if len(p.Start) != 0 || len(p.MarkLost) != 1 || len(p.Pending) != 1 || p.Pending[0].Reason != want {
		t.Fatalf("plan: starts %+v, lost %+v, pending %+v; want %q", p.Start, p.MarkLost, p.Pending, want)
	}
	if p := step(t, c); len(p.Start) != 0 {
		t.Fatalf("started elsewhere: %+v", p.Start)
	}
	// The host comes back: the replacement goes there.
	c.AddHost(host(h, 4096, 4000))
	p = step(t, c)
	if len(p.Start) != 1 || p.Start[0].Job.HostID != h || len(p.Pending) != 0 {
		t.Fatalf("host back: starts %+v, pending %+v", p.Start, p.Pending)
	}
}

func TestVolumeHostFull(t *testing.T) {
	c := cluster(3, web(withVolume, func(p *api.ProcessType) { p.Resources.MemoryMB = 3000 }), 1)
	step(t, c)
	h := volumeHost(t, c)
	c.SetFormation("shop", "shop-v1", map[string]int{"web": 2})
	p := step(t, c)
	if want := "3 hosts: 2 lacked volume data, 1 lacked memory"; len(p.Start) != 0 || len(p.Pending) != 1 || p.Pending[0].Reason != want {
		t.Fatalf("starts %+v, pending %+v; want %q (volume on %s)", p.Start, p.Pending, want, h)
	}
}

// A record made ahead of time without a host is bound by an update
// guarded by its revision, keeping its own size; one marked for removal
// holds its jobs back.
func TestVolumePrecreatedAndRemoved(t *testing.T) {
	c := cluster(3, web(withVolume), 0)
	c.PutVolume(dataID, &api.Volume{ID: dataID, App: "shop", ProcessType: "web", Name: "data", SizeMB: 10, CreatedAt: t0})
	rev := c.Volumes[dataID].Rev
	c.SetFormation("shop", "shop-v1", map[string]int{"web": 1})
	p := step(t, c)
	if len(p.Start) != 1 || len(p.Start[0].Volumes) != 1 || p.Start[0].Volumes[0].Rev != rev {
		t.Fatalf("starts %+v", p.Start)
	}
	if j := p.Start[0].Job; j.Volumes[0].SizeMB != 10 || volumeHost(t, c) != j.HostID {
		t.Errorf("job %+v", j.Volumes)
	}

	c.SetFormation("shop", "shop-v1", map[string]int{"web": 0})
	step(t, c)
	v := c.Volumes[dataID].Volume
	v.DeleteRequestedAt = c.Now
	c.PutVolume(dataID, &v)
	c.SetFormation("shop", "shop-v1", map[string]int{"web": 1})
	p = step(t, c)
	if len(p.Start) != 0 || len(p.Pending) != 1 || p.Pending[0].Reason != "volume data is being removed" {
		t.Fatalf("starts %+v, pending %+v", p.Start, p.Pending)
	}
	// Once its host removed it, a fresh one is made.
	c.PutVolume(dataID, nil)
	if p = step(t, c); len(p.Start) != 1 || len(p.Start[0].Volumes) != 1 || p.Start[0].Volumes[0].Rev != 0 {
		t.Fatalf("starts %+v", p.Start)
	}
}

// Commit binds the volume in the job's transaction, and a volume bound
// meanwhile by someone else makes the commit conflict, writing nothing.
func TestVolumeCommit(t *testing.T) {
	e := newEtcd(t)
	for i := range 3 {
		e.addHost(host(fmt.Sprintf("h%d", i), 4096, 4000))
	}
	e.app(web(withVolume), 1)
	p := e.plan()
	if err := scheduler.Commit(e.ctx, e.cli, p); err != nil {
		t.Fatal(err)
	}
	v, _, err := store.Get[api.Volume](e.ctx, e.cli, key(store.VolumesPrefix, dataID))
	if err != nil || v.Host != p.Start[0].Job.HostID {
		t.Fatalf("volume %+v (%v), job on %s", v, err, p.Start[0].Job.HostID)
	}

	e.put(key(store.ReleasesPrefix, "shop-v2"), api.Release{ID: "shop-v2", App: "shop", Processes: map[string]api.ProcessType{"web": web(func(p *api.ProcessType) {
		p.Volumes = []api.VolumeSpec{{Name: "data", Path: "/data", SizeMB: 64}, {Name: "logs", Path: "/logs", SizeMB: 8}}
	})}})
	e.put(key(store.FormationsPrefix, "shop", "shop-v2"), api.Formation{App: "shop", Release: "shop-v2", Processes: map[string]int{"web": 1}})
	p = e.plan()
	if len(p.Start) != 1 || len(p.Start[0].Volumes) != 1 || p.Start[0].Volumes[0].Volume.Host != v.Host {
		t.Fatalf("v2 starts %+v", p.Start)
	}
	logsID := api.VolumeID("shop", "web", "logs")
	e.put(key(store.VolumesPrefix, logsID), api.Volume{ID: logsID, App: "shop", ProcessType: "web", Name: "logs", Host: "h9", SizeMB: 8})
	before := e.count(store.JobsPrefix)
	if err := scheduler.Commit(e.ctx, e.cli, p); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("commit over a volume bound meanwhile: %v", err)
	}
	if n := e.count(store.JobsPrefix); n != before {
		t.Errorf("%d jobs after a failed commit, had %d", n, before)
	}
	// Re-planned, the job waits: its two volumes live apart.
	p = e.plan()
	if len(p.Start) != 0 || len(p.Pending) != 1 || p.Pending[0].Reason != "volumes data and logs live on different hosts ("+v.Host+", h9)" {
		t.Errorf("starts %+v, pending %+v", p.Start, p.Pending)
	}
}
