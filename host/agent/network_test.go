package agent

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
	"github.com/pierpaas/pier/store/storetest"
)

// TestJobNetworks: with runc as root every job gets a namespace and an
// address of its own, PORT 8080 on it, its address published as an
// endpoint and in discovery, and a resolver that names its app's jobs.
// Its own app's jobs reach it; another app's do not; a job asking for
// the host's network is refused on a host that does not allow it. A
// stopped job leaves no interface and no endpoint behind.
func TestJobNetworks(t *testing.T) {
	c := storetest.NewCluster(t, 1)
	cfg := runcHost(t, c, "h1")
	a := startAgent(t, cfg)
	if a.net == nil {
		t.Fatal("the agent runs runc as root but gives jobs no network of their own")
	}

	check := &api.HealthCheck{Kind: "tcp", Interval: api.Duration(100 * time.Millisecond), Threshold: 1}
	putJob(t, c, api.Job{ID: "web-1", HostID: "h1", App: "alpha", ProcessType: "web",
		Args:      []string{"sh", "-c", `exec python3 -m http.server "$PORT"`},
		Resources: api.Resources{MemoryMB: 64},
		Ports:     []api.Port{{Proto: "http", Service: api.ServiceName("alpha", "web"), Health: check}}})
	st := waitStatus(t, c, "web-1", func(s api.JobStatus) bool { return s.Healthy != nil && *s.Healthy })
	ip := net.ParseIP(st.IP)
	if ip == nil || len(st.HostPorts) != 1 || st.HostPorts[0] != FirstJobPort {
		t.Fatalf("status %+v: want an address of the job's own and port %d", st, FirstJobPort)
	}
	if !a.net.host.Subnet().Contains(mustAddr(t, st.IP)) {
		t.Fatalf("job address %s is not in the host's subnet %s", st.IP, a.net.host.Subnet())
	}
	epKey, _ := store.Key(store.NetEndpointsPrefix, "h1", "web-1")
	if ep, _, err := store.Get[api.Endpoint](context.Background(), c.Client(), epKey); err != nil || ep.IP != st.IP || ep.App != "alpha" {
		t.Fatalf("endpoint %+v, %v", ep, err)
	}

	dial := `import socket, sys
s = socket.create_connection((sys.argv[1], 8080), timeout=3)
print("connected")`
	// Its own app: by name, through the job's resolver, and connected.
	sameApp, out := runJob(t, c, a, api.Job{ID: "probe-1", HostID: "h1", App: "alpha",
		Args: []string{"sh", "-c", `getent hosts web.alpha.pier.internal && python3 -c '` + dial + `' web.alpha.pier.internal`}})
	if sameApp.State != api.JobComplete || !strings.Contains(out, st.IP) || !strings.Contains(out, "connected") {
		t.Errorf("alpha's own job: %s %s\n%s", sameApp.State, sameApp.Error, out)
	}
	// Another app: refused.
	other, out := runJob(t, c, a, api.Job{ID: "probe-2", HostID: "h1", App: "beta",
		Args: []string{"python3", "-c", dial, st.IP}})
	if other.State == api.JobComplete || strings.Contains(out, "connected") {
		t.Errorf("beta's job reached alpha's: %s\n%s", other.State, out)
	}
	// The host's network is the operator's to give.
	hostNet, _ := runJob(t, c, a, api.Job{ID: "hostnet-1", HostID: "h1", App: "beta", HostNetwork: true, Args: []string{"true"}})
	if hostNet.State != api.JobRejected || !strings.Contains(hostNet.Error, "allow-host-network") {
		t.Errorf("a host-network job on a host that does not allow it: %s %q", hostNet.State, hostNet.Error)
	}

	putJob(t, c, api.Job{ID: "web-1", HostID: "h1", App: "alpha", Args: []string{"true"}, Desired: api.DesiredShutdown})
	waitStatus(t, c, "web-1", func(s api.JobStatus) bool { return s.State.Terminal() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, linkErr := netlink.LinkByName(a.net.host.HostIf("web-1"))
		_, _, epErr := store.Get[api.Endpoint](context.Background(), c.Client(), epKey)
		if linkErr != nil && epErr != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a stopped job's network is still there: veth err %v, endpoint err %v", linkErr, epErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runJob runs a job on h1 to its end and returns its status and output.
func runJob(t *testing.T, c *storetest.Cluster, a *Agent, job api.Job) (api.JobStatus, string) {
	t.Helper()
	job.Resources = api.Resources{MemoryMB: 64}
	putJob(t, c, job)
	st := waitStatus(t, c, job.ID, func(s api.JobStatus) bool { return s.State.Terminal() })
	return st, jobLog(a, job.ID)
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
