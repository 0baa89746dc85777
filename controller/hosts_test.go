package controller_test

import (
	"testing"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/internal/testcluster"
)

// GET /v1/hosts lists the live hosts with what their unfinished jobs
// reserve.
func TestListHosts(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	hosts, err := e.cli.Hosts(c)
	if err != nil || len(hosts) != 1 || hosts[0].ID != "h1" || hosts[0].Jobs != 0 || hosts[0].MemoryMB == 0 {
		t.Fatalf("hosts before any job: %+v %v", hosts, err)
	}
	if _, err := e.cli.CreateApp(c, api.CreateAppRequest{Name: "busy"}); err != nil {
		t.Fatal(err)
	}
	procs := worker()
	w := procs["worker"]
	w.Resources = api.Resources{CPUMillis: 100, MemoryMB: 64}
	procs["worker"] = w
	res, err := e.cli.CreateRelease(c, "busy", api.CreateReleaseRequest{Artifact: &api.Artifact{SHA256: e.slug("x")}, Processes: procs})
	if err != nil {
		t.Fatal(err)
	}
	if d := e.deployed(res); d.State != api.DeployComplete {
		t.Fatalf("deployment: %+v", d)
	}
	if _, err := e.cli.Scale(c, "busy", map[string]int{"worker": 2}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "h1 to count two jobs", func() bool {
		hosts, err = e.cli.Hosts(c)
		return err == nil && len(hosts) == 1 && hosts[0].Jobs == 2
	})
	if h := hosts[0]; h.ReservedCPUMillis != 200 || h.ReservedMemoryMB != 128 {
		t.Fatalf("reserved %d millicores and %d MB, want 200 and 128", h.ReservedCPUMillis, h.ReservedMemoryMB)
	}
	// A job that ended reserves nothing.
	if _, err := e.cli.Scale(c, "busy", map[string]int{"worker": 1}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "h1 to count one job", func() bool {
		hosts, err = e.cli.Hosts(c)
		return err == nil && len(hosts) == 1 && hosts[0].Jobs == 1 && hosts[0].ReservedMemoryMB == 64
	})
	// The server list reads discovery, where no server registered here.
	if servers, err := e.cli.Servers(c); err != nil || len(servers) != 0 {
		t.Fatalf("servers: %v %v", servers, err)
	}
}

// A drained host's job moves to another host; drain and undrain answer
// 404 for hosts they do not know.
func TestDrainHost(t *testing.T) {
	e := newEnv(t)
	e.tc.AddHost("h2", testcluster.HostOptions{})
	c := ctx(t)
	if _, err := e.cli.CreateApp(c, api.CreateAppRequest{Name: "mover"}); err != nil {
		t.Fatal(err)
	}
	res, err := e.cli.CreateRelease(c, "mover", api.CreateReleaseRequest{Artifact: &api.Artifact{SHA256: e.slug("x")}, Processes: worker()})
	if err != nil {
		t.Fatal(err)
	}
	e.deployed(res)
	if _, err := e.cli.Scale(c, "mover", map[string]int{"worker": 1}); err != nil {
		t.Fatal(err)
	}
	var from string
	waitFor(t, "a running worker", func() bool {
		jl, err := e.cli.Jobs(c, "mover")
		if err == nil && len(jl.Jobs) == 1 && jl.Jobs[0].State == api.JobRunning {
			from = jl.Jobs[0].HostID
		}
		return from != ""
	})
	if err := e.cli.DrainHost(c, from); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the worker to move off "+from, func() bool {
		jl, err := e.cli.Jobs(c, "mover")
		return err == nil && len(jl.Jobs) == 1 && jl.Jobs[0].HostID != from && jl.Jobs[0].State == api.JobRunning
	})
	waitFor(t, from+" to be empty and draining", func() bool {
		hosts, err := e.cli.Hosts(c)
		for _, h := range hosts {
			if h.ID == from {
				return err == nil && h.Draining && h.Jobs == 0
			}
		}
		return false
	})
	wantCode(t, e.cli.DrainHost(c, "nosuchhost"), api.ErrCodeNotFound, 404)
	if err := e.cli.UndrainHost(c, from); err != nil {
		t.Fatal(err)
	}
	wantCode(t, e.cli.UndrainHost(c, from), api.ErrCodeNotFound, 404)
}
