package logs

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pierpaas/pier/discovery"
	"github.com/pierpaas/pier/store/storetest"
)

// A standby takes over from an active aggregator its probe calls dead,
// long before the dead one's registration would expire; while the probe
// calls it alive, it stands by.
func TestStandbyDeposesDeadAggregator(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	reg := discovery.New(storetest.NewCluster(t, 1).Client())
	// The active aggregator, killed: its registration lives on.
	ghost, err := reg.Register(ctx, Service, discovery.Instance{ID: "s1", Addr: "10.0.0.1:7300", Proto: "https"},
		discovery.WithTTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer ghost.Close()

	var dead atomic.Bool
	a := NewAggregator(Config{LeaderDead: func(_ context.Context, id string) bool {
		if id != "s1" {
			t.Errorf("probed %q", id)
		}
		return dead.Load()
	}})
	go a.Lead(ctx, reg, "s2", "10.0.0.2:7300", nil)
	time.Sleep(2 * time.Second)
	if a.Active() {
		t.Fatal("took over from a leader its probe calls alive")
	}
	dead.Store(true)
	t0 := time.Now()
	for !a.Active() {
		if time.Since(t0) > 10*time.Second {
			t.Fatal("still standing by 10 s after the leader was found dead")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
