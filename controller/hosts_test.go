package controller_test

import (
	"testing"

	"github.com/pierpaas/pier/api"
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
