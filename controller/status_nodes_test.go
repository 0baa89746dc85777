package controller

import (
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
)

func TestNodeProblems(t *testing.T) {
	ok := api.HostHealth{ID: "ok", Reachable: true, LeaseTTL: api.Duration(9 * time.Second), LeaseAge: api.Duration(2 * time.Second), MemTotalMB: 4096, MemAvailableMB: 2000}
	late := ok
	late.ID, late.LeaseAge = "late", api.Duration(7*time.Second)
	gone := ok
	gone.ID, gone.Reachable, gone.Error = "gone", false, "connection refused"
	full := ok
	full.ID, full.Disk = "full", &api.DiskStatus{Pressure: "the disk of /var/lib/pier has 10 MiB free"}
	tight := ok
	tight.ID, tight.MemAvailableMB = "tight", 100
	st := api.ClusterStatus{
		Hosts:   []api.HostHealth{ok, late, gone, full, tight},
		Routers: []api.RouterHealth{{Name: "r-ok", Ready: true}, {Name: "r-down", Error: "connection refused"}},
		Servers: []api.ServerStatus{
			{Name: "s-ok", Reachable: true, PendingBlobs: 2, ReplicationLag: api.Duration(time.Minute)},
			{Name: "s-behind", Reachable: true, PendingBlobs: 3, ReplicationLag: api.Duration(time.Hour)},
			{Name: "s-nowhere", Reachable: true, PendingBlobs: 1, MissingBlobs: 1, ReplicationLag: api.Duration(time.Hour)},
		},
	}
	got := nodeProblems(st)
	want := []string{
		"host late: its agent last renewed its lease 7s ago (the host is lost at 9s)",
		"host gone: its agent does not answer: connection refused",
		"host full takes no new jobs: the disk of /var/lib/pier has 10 MiB free",
		"host tight: 100 MiB of memory available of 4096 MiB",
		"router r-down: connection refused",
		"server s-behind: blob replication is 1h0m0s behind (3 kept artifacts to copy)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
