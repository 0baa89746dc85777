package scheduler_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store/storetest"
)

// A candidate's own key from before a restart (its lease alive, as etcd
// restores leases with a fresh TTL) does not hold the election; another
// candidate's does.
func TestElectRevokesOwnStaleKey(t *testing.T) {
	cli := storetest.NewCluster(t, 1).Client()
	ctx := t.Context()
	const prefix = "/test/election"
	stale := func(name string) clientv3.LeaseID {
		t.Helper()
		l, err := cli.Grant(ctx, 60)
		if err != nil {
			t.Fatal(err)
		}
		// The key concurrency.Election writes: prefix/<lease in hex>.
		key := prefix + "/" + time.Now().Format("150405.000000000")
		if _, err := cli.Put(ctx, key, name, clientv3.WithLease(l.ID)); err != nil {
			t.Fatal(err)
		}
		return l.ID
	}

	other := stale("s2")
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if l, err := scheduler.Elect(short, cli, prefix, "s1", 5*time.Second); err == nil {
		l.Close()
		t.Fatal("elected over another candidate's live key")
	}
	if _, err := cli.Revoke(ctx, other); err != nil {
		t.Fatal(err)
	}

	mine := stale("s1")
	// Well within the stale lease's 60 s.
	short2, cancel2 := context.WithTimeout(ctx, 10*time.Second)
	defer cancel2()
	l, err := scheduler.Elect(short2, cli, prefix, "s1", 5*time.Second)
	if err != nil {
		t.Fatalf("not elected past its own stale key: %v", err)
	}
	defer l.Close()
	if ttl, err := cli.TimeToLive(ctx, mine); err != nil || ttl.TTL > 0 {
		t.Errorf("the stale lease lives on: %v %v", ttl, err)
	}
}

// A leader its probe calls dead is deposed well before its lease ends; a
// leader the probe calls alive, or dead only now and then, is not.
func TestElectDeposesDeadLeader(t *testing.T) {
	cli := storetest.NewCluster(t, 1).Client()
	ctx := t.Context()
	const prefix = "/test/depose"
	old, err := scheduler.Elect(ctx, cli, prefix, "s1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()

	var calls atomic.Int32
	flaky := func(_ context.Context, name string) bool {
		if name != "s1" {
			t.Errorf("probed %q, not the leader", name)
		}
		return calls.Add(1)%2 == 0 // never three in a row
	}
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if l, err := scheduler.Elect(short, cli, prefix, "s2", 5*time.Second, scheduler.WithLeaderProbe(flaky, nil)); err == nil {
		l.Close()
		t.Fatal("deposed a leader on answers that were not all dead")
	}
	if calls.Load() < 3 {
		t.Fatalf("probed %d times in 3 s", calls.Load())
	}

	dead := func(context.Context, string) bool { return true }
	t0 := time.Now()
	l, err := scheduler.Elect(ctx, cli, prefix, "s2", 5*time.Second, scheduler.WithLeaderProbe(dead, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if waited := time.Since(t0); waited > 10*time.Second {
		t.Fatalf("elected after %s: the leader's minute-long lease ran out, it was not deposed", waited)
	}
	// The deposed leader's key is gone, so its Guard fails its commits
	// (it learns of the loss itself only at its next keep-alive).
	if resp, err := cli.Get(ctx, old.Guard.Key); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("the deposed leader's key is still there: %v %v", resp, err)
	}
}
