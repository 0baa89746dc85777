package agent

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/discovery"
	"github.com/pierpaas/pier/runtime/fake"
	"github.com/pierpaas/pier/store/storetest"
)

// TestDiscoveryFollowsHealth: a job's port is in discovery only while its
// check passes, and leaves discovery before the job is told to stop.
func TestDiscoveryFollowsHealth(t *testing.T) {
	c := storetest.NewCluster(t, 1)
	rt := fake.New()
	cfg := testHost(t, c, "h1")
	cfg.RuntimeImpl = rt
	startAgent(t, cfg)
	reg := discovery.New(c.Client())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	events, err := reg.Watch(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	check := &api.HealthCheck{Kind: "tcp", Interval: api.Duration(100 * time.Millisecond), Threshold: 2}
	putJob(t, c, api.Job{ID: "web-1", HostID: "h1", Args: []string{"serve"},
		Ports: []api.Port{{Proto: "http", Service: "web", Health: check}}})
	st := waitStatus(t, c, "web-1", inState(api.JobRunning))

	// Nothing listens yet: not in discovery.
	time.Sleep(500 * time.Millisecond)
	if insts, _ := reg.Instances(ctx, "web"); len(insts) != 0 {
		t.Fatalf("registered before its port answered: %v", insts)
	}
	// The "job" starts serving: it appears.
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(st.HostPorts[0]))
	if err != nil {
		t.Fatal(err)
	}
	up := waitEvent(t, events, discovery.EventUp)
	if up.Instance.ID != "web-1" || up.Instance.Meta["job"] != "web-1" {
		t.Fatalf("up event %+v", up.Instance)
	}
	healthy := waitStatus(t, c, "web-1", func(s api.JobStatus) bool { return s.Healthy != nil && *s.Healthy })
	if healthy.State != api.JobRunning {
		t.Fatalf("status %+v", healthy)
	}
	// It stops answering: it leaves discovery.
	ln.Close()
	waitEvent(t, events, discovery.EventDown)
	waitStatus(t, c, "web-1", func(s api.JobStatus) bool { return s.Healthy != nil && !*s.Healthy })

	// Healthy again, then stopped: it leaves discovery before SIGTERM.
	ln, err = net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(st.HostPorts[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	waitEvent(t, events, discovery.EventUp)
	rt.Stubborn("web-1") // ignores SIGTERM: SIGKILL after the grace period
	putJob(t, c, api.Job{ID: "web-1", HostID: "h1", Args: []string{"serve"}, Desired: api.DesiredShutdown,
		StopGrace: api.Duration(time.Second), Ports: []api.Port{{Proto: "http", Service: "web", Health: check}}})
	waitEvent(t, events, discovery.EventDown)
	downAt := time.Now()
	if sigs := rt.Signals("web-1"); len(sigs) > 0 {
		t.Fatalf("signalled %v before leaving discovery", sigs)
	}
	// The job keeps running through the drain period, then gets SIGTERM.
	for len(rt.Signals("web-1")) == 0 {
		if time.Since(downAt) > 10*time.Second {
			t.Fatal("never signalled")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := time.Since(downAt); d < 800*time.Millisecond {
		t.Fatalf("SIGTERM %s after leaving discovery; want the 1s drain first", d)
	}
	waitStatus(t, c, "web-1", inState(api.JobShutdown))
}

func waitEvent(t *testing.T, events <-chan discovery.Event, typ discovery.EventType) discovery.Event {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("watch closed")
			}
			if ev.Type == typ {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event", typ)
		}
	}
}
