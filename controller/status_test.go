package controller_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/runtime"
	"github.com/pierpaas/pier/store"
)

// TestClusterStatus: pier status names each part that is not well, in a
// sentence: a process type that keeps crashing, the deployment it
// failed, a certificate about to expire, a loop with no leader; and
// says who leads the others.
func TestClusterStatus(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	e.host.Runtime.OnStart(func(spec runtime.Spec) {
		if strings.HasPrefix(spec.ID, "crashy-") {
			e.host.Runtime.Write(spec.ID, "", "no DATABASE_URL\n")
			e.host.Runtime.Exit(spec.ID, 3)
		}
	})
	e.apps("crashy", "secure")
	res, err := e.cli.CreateRelease(c, "crashy", api.CreateReleaseRequest{Artifact: &api.Artifact{SHA256: e.slug("x")}, Processes: worker()})
	if err != nil {
		t.Fatal(err)
	}
	cert, key := selfSigned(t, time.Now().Add(72*time.Hour), "secure.example.com")
	if _, err := e.cli.AddRoute(c, "secure", api.Route{Type: api.RouteHTTP, Domain: "secure.example.com", TLS: &api.RouteTLS{CertPEM: cert, KeyPEM: key}}); err != nil {
		t.Fatal(err)
	}
	e.deployed(res)
	if _, err := e.cli.Scale(c, "crashy", map[string]int{"worker": 1}); err != nil {
		t.Fatal(err)
	}
	// A deployment that failed a moment ago, as the deployer records one.
	now := time.Now().UTC()
	if _, err := store.Put(c, e.tc.Client, store.DeploymentsPrefix+"secure-v2", api.Deployment{ID: "secure-v2", App: "secure",
		NewRelease: "secure-v2", Version: 2, State: api.DeployFailed, Reason: "web: health check not passed",
		CreatedAt: now, UpdatedAt: now, FinishedAt: now}); err != nil {
		t.Fatal(err)
	}

	// A router that registered but does not answer.
	if _, err := store.Put(c, e.tc.Client, store.NodesPrefix+"router/r1", api.Node{Kind: api.NodeRouter, Name: "r1", Version: "v-test",
		ReadyURL: "https://127.0.0.1:1/readyz"}); err != nil {
		t.Fatal(err)
	}

	var st api.ClusterStatus
	want := []string{
		"router r1: ",
		"app crashy: worker keeps crashing",
		"app secure: the deployment of v2 failed: web: health check not passed",
		"its certificate expires on " + time.Now().Add(72*time.Hour).UTC().Format(time.DateOnly),
		"no log aggregator is active",
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st, err = e.cli.Status(c); err != nil {
			t.Fatal(err)
		}
		all := strings.Join(st.Problems, "\n")
		missing := ""
		for _, w := range want {
			if !strings.Contains(all, w) {
				missing = w
			}
		}
		if st.Leaders["scheduler"] != "s1" || st.Leaders["deployer"] != "d1" {
			// A leader of the harness's 1 s lease can lose it for a
			// moment on a busy machine.
			missing = fmt.Sprintf("leaders %v", st.Leaders)
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the status does not say %q:\n%s", missing, all)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.Healthy {
		t.Fatalf("status: healthy with problems %v", st.Problems)
	}
	if len(st.Crashing) != 1 || st.Crashing[0].Restarts < 3 || st.Crashing[0].ProcessType != "worker" {
		t.Fatalf("crashing: %+v", st.Crashing)
	}
	if len(st.Store.Members) != 1 || !st.Store.Members[0].Reachable || st.Store.Leader == "" {
		t.Fatalf("store: %+v", st.Store)
	}
	// The host, its lease and its agent's answer.
	if len(st.Hosts) != 1 {
		t.Fatalf("hosts: %+v", st.Hosts)
	}
	h := st.Hosts[0]
	if h.ID != "h1" || !h.Reachable || h.LeaseTTL <= 0 || h.LeaseAge < 0 || h.LeaseAge > h.LeaseTTL ||
		h.Disk == nil || h.Disk.TotalBytes == 0 || h.MemTotalMB == 0 || h.MemAvailableMB == 0 || h.Jobs == 0 {
		t.Fatalf("host: %+v", h)
	}
	if len(st.Routers) != 1 || st.Routers[0].Name != "r1" || st.Routers[0].Ready || st.Routers[0].Error == "" || st.Routers[0].Version != "v-test" {
		t.Fatalf("routers: %+v", st.Routers)
	}
	for _, p := range st.Problems {
		if strings.Contains(p, "store") || strings.Contains(p, "server") {
			t.Errorf("a problem that is not there: %s", p)
		}
	}
}
