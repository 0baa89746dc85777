package agent

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/discovery"
	"github.com/pierpaas/pier/store/storetest"
)

// TestRebootDropsDeadInstances: after a reboot, etcd brings back the
// previous agent's lease with a fresh TTL, and with it the instances of
// jobs that died with the machine. The new agent deregisters them at once
// (while it adopts the jobs to record their end) instead of leaving them
// to routers until the old lease expires.
func TestRebootDropsDeadInstances(t *testing.T) {
	c := storetest.NewCluster(t, 1)
	cfg := runcHost(t, c, "h1")
	cfg.LeaseTTL = time.Minute // only a deregistration explains a prompt removal
	// Jobs share the host's network here: the test answers the job's
	// health check for it.
	cfg.Network = "host"
	a := startAgent(t, cfg)

	check := &api.HealthCheck{Kind: "tcp", Interval: api.Duration(100 * time.Millisecond), Threshold: 1}
	putJob(t, c, api.Job{ID: "web-1", HostID: "h1", Args: []string{"sleep", "1000"}, Resources: api.Resources{MemoryMB: 64},
		Ports: []api.Port{{Proto: "http", Service: "web", Health: check}}})
	st := waitStatus(t, c, "web-1", inState(api.JobRunning))
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(st.HostPorts[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	reg := discovery.New(c.Client())
	waitInstances(t, reg, "web", 1)

	// The power goes: the agent, its shim and the job die; the lease and
	// the instance stay in etcd.
	a.Close()
	if err := powerOff(cfg); err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if insts, _ := reg.Instances(context.Background(), "web"); len(insts) != 1 {
		t.Fatalf("the instance left with the agent (%v): the test proves nothing", insts)
	}

	startAgent(t, cfg)
	waitInstances(t, reg, "web", 0)
	waitStatus(t, c, "web-1", inState(api.JobFailed))
}

func waitInstances(t *testing.T, reg *discovery.Registry, service string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		insts, err := reg.Instances(context.Background(), service)
		if err == nil && len(insts) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d instances (%v), want %d", service, len(insts), err, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
