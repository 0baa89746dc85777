package agent

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/runtime/fake"
	"github.com/pierpaas/pier/store"
	"github.com/pierpaas/pier/store/storetest"
)

// TestAdHocJobsAreCollected: the records of a `pier host run` job go once
// it has been over for the retention period, and its files with them;
// a scheduler's ended job is left to its scheduler.
func TestAdHocJobsAreCollected(t *testing.T) {
	c := storetest.NewCluster(t, 1)
	rt := fake.New()
	cfg := testHost(t, c, "h1")
	cfg.RuntimeImpl = rt
	a := startAgent(t, cfg)
	putJob(t, c, api.Job{ID: "run-1", HostID: "h1", Args: []string{"x"}, Scheduler: AdHocScheduler})
	putJob(t, c, api.Job{ID: "svc-1", HostID: "h1", Args: []string{"x"}, Scheduler: "service"})
	for _, id := range []string{"run-1", "svc-1"} {
		waitStatus(t, c, id, inState(api.JobRunning))
		rt.Exit(id, 0)
		waitStatus(t, c, id, inState(api.JobComplete))
	}
	// Not yet: the result stays readable for a while.
	a.gcOnce(nil)
	if _, _, err := store.Get[api.Job](context.Background(), c.Client(), store.JobsPrefix+"h1/run-1"); err != nil {
		t.Fatalf("collected too early: %v", err)
	}
	// Pretend both ended long ago.
	jobs, _ := a.local.all()
	for _, lj := range jobs {
		lj.EndedAt = time.Now().Add(-2 * AdHocRetention)
		a.local.put(lj)
	}
	a.gcOnce(nil)
	if _, _, err := store.Get[api.Job](context.Background(), c.Client(), store.JobsPrefix+"h1/run-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ad-hoc job record kept: %v", err)
	}
	if _, _, err := store.Get[api.Job](context.Background(), c.Client(), store.JobsPrefix+"h1/svc-1"); err != nil {
		t.Fatalf("a scheduler's job was collected: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := os.Stat(a.jobDir("run-1")); os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the ad-hoc job's files were kept")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
