package scheduler_test

import (
	"context"
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
