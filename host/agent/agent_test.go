package agent

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/internal/testutil"
	"github.com/pierpaas/pier/runtime/fake"
	"github.com/pierpaas/pier/store"
	"github.com/pierpaas/pier/store/storetest"
)

// testHost prepares a host data directory with credentials of cluster c,
// as a join would have left it.
func testHost(t *testing.T, c *storetest.Cluster, id string) Config {
	t.Helper()
	dir := filepath.Join(t.TempDir(), id)
	creds := c.Credentials()
	for _, f := range []string{pki.CACertFile, pki.CertFile, pki.KeyFile} {
		b, err := os.ReadFile(filepath.Join(creds.Dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := pki.WriteFile(filepath.Join(dir, "pki", f), b); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := json.Marshal(map[string][]string{"etcd_endpoints": c.Endpoints()})
	if err := pki.WriteFile(filepath.Join(dir, "host.json"), b); err != nil {
		t.Fatal(err)
	}
	sockDir, err := os.MkdirTemp("/tmp", "shims")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	return Config{
		ID: id, DataDir: dir, ShimSocketDir: sockDir, LeaseTTL: 2 * time.Second,
		PortLow: 41000, PortHigh: 41999, APIPort: testutil.FreePort(t),
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

func startAgent(t *testing.T, cfg Config) *Agent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func putJob(t *testing.T, c *storetest.Cluster, job api.Job) {
	t.Helper()
	key, _ := store.Key(store.JobsPrefix, job.HostID, job.ID)
	if job.Desired == "" {
		job.Desired = api.DesiredRunning
	}
	if _, err := store.Put(context.Background(), c.Client(), key, job); err != nil {
		t.Fatal(err)
	}
}

// waitStatus waits until the job's status satisfies ok.
func waitStatus(t *testing.T, c *storetest.Cluster, id string, ok func(api.JobStatus) bool) api.JobStatus {
	t.Helper()
	key, _ := store.Key(store.JobStatusPrefix, id)
	deadline := time.Now().Add(30 * time.Second)
	var last api.JobStatus
	for time.Now().Before(deadline) {
		st, _, err := store.Get[api.JobStatus](context.Background(), c.Client(), key)
		if err == nil {
			last = st
			if ok(st) {
				return st
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("job %s: status never matched; last %+v", id, last)
	return last
}

func inState(s api.JobState) func(api.JobStatus) bool {
	return func(st api.JobStatus) bool { return st.State == s }
}

func TestAgentWithFakeRuntime(t *testing.T) {
	c := storetest.NewCluster(t, 1)
	rt := fake.New()
	cfg := testHost(t, c, "h1")
	cfg.RuntimeImpl = rt
	a := startAgent(t, cfg)

	// The host is registered on its lease.
	host, _, err := store.Get[api.Host](context.Background(), c.Client(), store.HostsPrefix+"h1")
	if err != nil || host.ID != "h1" || host.MemoryMB == 0 {
		t.Fatalf("host record %+v %v", host, err)
	}

	putJob(t, c, api.Job{ID: "web-1", HostID: "h1", Args: []string{"serve"}, Ports: []api.Port{{Proto: "http"}}, App: "hello"})
	st := waitStatus(t, c, "web-1", inState(api.JobRunning))
	if len(st.HostPorts) != 1 || st.HostPorts[0] < 41000 {
		t.Fatalf("ports %v", st.HostPorts)
	}
	spec, _ := rt.Spec("web-1")
	if !contains(spec.Env, "PORT="+strconv.Itoa(st.HostPorts[0])) || !contains(spec.Env, "PIER_APP=hello") {
		t.Fatalf("env %v", spec.Env)
	}

	// An exit is reported with its code.
	putJob(t, c, api.Job{ID: "task", HostID: "h1", Args: []string{"x"}})
	waitStatus(t, c, "task", inState(api.JobRunning))
	rt.Exit("task", 3)
	st = waitStatus(t, c, "task", inState(api.JobFailed))
	if st.ExitCode == nil || *st.ExitCode != 3 || st.Error != "exit status 3" {
		t.Fatalf("failed status %+v", st)
	}

	// Out of memory is named.
	putJob(t, c, api.Job{ID: "hog", HostID: "h1", Args: []string{"x"}})
	waitStatus(t, c, "hog", inState(api.JobRunning))
	rt.OOM("hog")
	st = waitStatus(t, c, "hog", inState(api.JobFailed))
	if st.Error != "out of memory" || !st.OOMKilled {
		t.Fatalf("oom status %+v", st)
	}

	// Desired shutdown stops the job with SIGTERM.
	putJob(t, c, api.Job{ID: "web-1", HostID: "h1", Args: []string{"serve"}, Ports: []api.Port{{Proto: "http"}}, Desired: api.DesiredShutdown})
	waitStatus(t, c, "web-1", inState(api.JobShutdown))
	if sigs := rt.Signals("web-1"); len(sigs) == 0 || sigs[0] != syscall.SIGTERM {
		t.Fatalf("signals %v", sigs)
	}

	// A job stopped before it ever started is reported shut down.
	putJob(t, c, api.Job{ID: "never", HostID: "h1", Args: []string{"x"}, Desired: api.DesiredShutdown})
	waitStatus(t, c, "never", inState(api.JobShutdown))
	if _, ok := rt.Spec("never"); ok {
		t.Fatal("a job desired shut down was started")
	}

	// A bad spec is rejected, not run.
	putJob(t, c, api.Job{ID: "bad", HostID: "h1"})
	st = waitStatus(t, c, "bad", inState(api.JobRejected))
	if st.Error == "" {
		t.Fatal("rejected without a reason")
	}

	// Removing a job's record forgets it and its files.
	key, _ := store.Key(store.JobsPrefix, "h1", "task")
	store.Delete(context.Background(), c.Client(), key)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := os.Stat(a.jobDir("task")); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("job directory kept after its record was removed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestHostRecordFollowsLease(t *testing.T) {
	c := storetest.NewCluster(t, 1)
	cfg := testHost(t, c, "h2")
	cfg.RuntimeImpl = fake.New()
	a := startAgent(t, cfg)
	// Revoke the lease behind the agent's back: it must register again.
	a.mu.Lock()
	lease := a.session.Lease()
	a.mu.Unlock()
	if _, err := c.Client().Revoke(context.Background(), lease); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := c.Client().Get(context.Background(), store.HostsPrefix+"h2")
		if err == nil && len(resp.Kvs) == 1 && resp.Kvs[0].Lease != int64(lease) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("host did not re-register after losing its lease")
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.Close()
	// Once the agent is gone for good, the record expires with the lease.
	deadline = time.Now().Add(15 * time.Second)
	for {
		resp, err := c.Client().Get(context.Background(), store.HostsPrefix+"h2")
		if err == nil && len(resp.Kvs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("host record outlived its agent's lease")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
