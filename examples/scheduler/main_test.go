package main

import (
	"bytes"
	"context"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
	"github.com/pierpaas/pier/store/storetest"
)

// TestUsesOnlyPublicPackages builds the example and checks that it
// imports nothing of pier's internal packages: what it does, anyone can.
func TestUsesOnlyPublicPackages(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "main.go", nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		if strings.Contains(path, "/internal") {
			t.Errorf("the example imports %s", path)
		}
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(gobin, "build", "-o", filepath.Join(t.TempDir(), "scheduler"), ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type env struct {
	t      *testing.T
	ctx    context.Context
	cli    *clientv3.Client
	leases map[string]clientv3.LeaseID
}

// addHost registers a host as its agent would: bound to a lease.
func (e *env) addHost(id string, tags map[string]string) {
	e.t.Helper()
	l, ok := e.leases[id]
	if !ok {
		g, err := e.cli.Grant(e.ctx, 60)
		if err != nil {
			e.t.Fatal(err)
		}
		l = g.ID
		e.leases[id] = l
	}
	h := api.Host{ID: id, Tags: tags, MemoryMB: 4096, CPUMillis: 4000}
	if _, err := store.Put(e.ctx, e.cli, store.HostsPrefix+id, h, store.WithLease(l)); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) jobs() map[string]api.Job {
	e.t.Helper()
	items, _, err := store.List[api.Job](e.ctx, e.cli, store.JobsPrefix)
	if err != nil {
		e.t.Fatal(err)
	}
	m := map[string]api.Job{}
	for _, it := range items {
		m[it.Value.ID] = it.Value
	}
	return m
}

func (e *env) setStatus(j api.Job, state api.JobState, finished time.Time) {
	e.t.Helper()
	st := api.JobStatus{ID: j.ID, HostID: j.HostID, State: state, FinishedAt: finished, UpdatedAt: finished}
	if _, err := store.Put(e.ctx, e.cli, store.JobStatusPrefix+j.ID, st); err != nil {
		e.t.Fatal(err)
	}
}

// TestPerHost drives the example's passes against a real etcd, connected
// the way the command connects: client.Connect with a credentials dir.
func TestPerHost(t *testing.T) {
	etcd := storetest.NewCluster(t, 1)
	cl, err := client.Connect(client.Config{Endpoints: etcd.Endpoints(), CredentialsDir: etcd.Credentials().Dir})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := &env{t: t, ctx: ctx, cli: cl.Etcd, leases: map[string]clientv3.LeaseID{}}
	out := &syncBuffer{}
	s := &PerHost{Name: "batchd", TagKey: "role", TagValue: "batch", Args: []string{"work"}, Backoff: time.Millisecond, Out: out}
	pass := func() {
		t.Helper()
		if _, err := s.Pass(ctx, cl.Etcd); err != nil {
			t.Fatal(err)
		}
	}
	e.addHost("h1", map[string]string{"role": "batch"})
	e.addHost("h2", map[string]string{"role": "web"})
	e.addHost("h3", map[string]string{"role": "batch"})
	pass()
	jobs := e.jobs()
	if len(jobs) != 2 || jobs["batchd-h1-0"].HostID != "h1" || jobs["batchd-h3-0"].Scheduler != "batchd" {
		t.Fatalf("jobs after the first pass: %v", jobs)
	}
	// A stale plan (made before the first commit) commits nothing.
	stale := s.planNow(t, ctx, cl.Etcd, func(st *scheduler.State) { st.Jobs = nil })
	if err := scheduler.Commit(ctx, cl.Etcd, stale); err == nil {
		t.Fatal("a stale plan committed")
	}
	pass()
	if n := len(e.jobs()); n != 2 {
		t.Fatalf("%d jobs after a second pass", n)
	}
	// h3 loses the tag: its job stops. h2 gains it: it gets one.
	e.addHost("h3", map[string]string{"role": "web"})
	e.addHost("h2", map[string]string{"role": "batch"})
	pass()
	jobs = e.jobs()
	if jobs["batchd-h3-0"].Desired != api.DesiredShutdown || jobs["batchd-h2-0"].Desired != api.DesiredRunning {
		t.Fatalf("after the tags moved: %v", jobs)
	}
	// h1's job fails: it is replaced by the next generation.
	e.setStatus(jobs["batchd-h1-0"], api.JobFailed, time.Now().Add(-time.Second))
	pass()
	jobs = e.jobs()
	if jobs["batchd-h1-1"].Desired != api.DesiredRunning || jobs["batchd-h1-1"].Restarts != 1 || jobs["batchd-h1-0"].Desired != api.DesiredShutdown {
		t.Fatalf("after a failure: %v", jobs)
	}
	pass() // the ended generation's record goes
	if _, ok := e.jobs()["batchd-h1-0"]; ok {
		t.Fatal("the ended generation's record stayed")
	}
	// h2 vanishes: its job is marked lost, then forgotten.
	if _, err := cl.Etcd.Revoke(ctx, e.leases["h2"]); err != nil {
		t.Fatal(err)
	}
	pass()
	st, _, err := store.Get[api.JobStatus](ctx, cl.Etcd, store.JobStatusPrefix+"batchd-h2-0")
	if err != nil || st.State != api.JobLost {
		t.Fatalf("status on a vanished host: %+v, %v", st, err)
	}
	pass()
	if _, ok := e.jobs()["batchd-h2-0"]; ok {
		t.Fatal("the lost job's record stayed")
	}
	for _, want := range []string{"started batchd-h1-0 on h1", "stopped batchd-h3-0 on h3: host not tagged role=batch",
		"started batchd-h1-1 on h1", "lost batchd-h2-0: host h2 vanished"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestPerHostRun runs the whole command loop, leader election and
// watches included, against a real etcd.
func TestPerHostRun(t *testing.T) {
	etcd := storetest.NewCluster(t, 1)
	cl, err := client.Connect(client.Config{Endpoints: etcd.Endpoints(), CredentialsDir: etcd.Credentials().Dir})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := &env{t: t, ctx: ctx, cli: cl.Etcd, leases: map[string]clientv3.LeaseID{}}
	out := &syncBuffer{}
	s := &PerHost{Name: "batchd", TagKey: "role", TagValue: "batch", Args: []string{"work"}, Out: out}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx, cl.Etcd) }()
	e.addHost("h1", map[string]string{"role": "batch"})
	deadline := time.Now().Add(30 * time.Second)
	for e.jobs()["batchd-h1-0"].HostID != "h1" {
		if time.Now().After(deadline) {
			t.Fatalf("no job on h1:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.addHost("h2", map[string]string{"role": "batch"})
	for e.jobs()["batchd-h2-0"].HostID != "h2" {
		if time.Now().After(deadline) {
			t.Fatalf("no job on h2:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if err := <-done; err != context.Canceled {
		t.Fatalf("run: %v", err)
	}
	if !strings.Contains(out.String(), "elected leader of batchd") || !strings.Contains(out.String(), "host h2 joined") {
		t.Errorf("output:\n%s", out)
	}
}

// planNow plans from the store as it is, after mangle.
func (s *PerHost) planNow(t *testing.T, ctx context.Context, cli *clientv3.Client, mangle func(*scheduler.State)) scheduler.Plan {
	t.Helper()
	st, err := scheduler.LoadState(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	mangle(&st)
	p, _ := s.Plan(&st, time.Now())
	return p
}
