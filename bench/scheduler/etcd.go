package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/scheduler/sim"
	"github.com/pierpaas/pier/store"
)

// throughEtcd seeds an embedded etcd member with a synthetic cluster's
// hosts, releases and formations, then times committing the first plan,
// and re-placing after a tenth of the host keys vanish (load, plan and
// commit, as the scheduler loop would after the leases expired).
func throughEtcd(ctx context.Context, hosts, jobs int) error {
	dir, err := os.MkdirTemp("", "pier-bench-scheduler-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cli, stop, err := startEtcd(ctx, dir)
	if err != nil {
		return err
	}
	defer stop()

	c := sim.Synthetic(hosts, jobs, 1)
	tx := store.Txn()
	put := func(key string, v any) error {
		if tx.Len() == store.MaxTxnOps {
			if _, err := tx.Commit(ctx, cli); err != nil {
				return err
			}
			tx = store.Txn()
		}
		tx.Put(key, v)
		return nil
	}
	for id, h := range c.Hosts {
		if err := put(mustKey(store.HostsPrefix, id), h); err != nil {
			return err
		}
	}
	for id, r := range c.Releases {
		if err := put(mustKey(store.ReleasesPrefix, id), r); err != nil {
			return err
		}
	}
	for _, f := range c.Formations {
		if err := put(mustKey(store.FormationsPrefix, f.Formation.App, f.Formation.Release), f.Formation); err != nil {
			return err
		}
	}
	if _, err := tx.Commit(ctx, cli); err != nil {
		return err
	}

	s, err := scheduler.Load(ctx, cli, scheduler.Config{})
	if err != nil {
		return err
	}
	p := scheduler.Reconcile(s)
	start := time.Now()
	if err := scheduler.Commit(ctx, cli, p); err != nil {
		return err
	}
	row("etcd: commit new placements", hosts, len(p.Start), time.Since(start))

	// A tenth of the hosts vanish: their keys go, as their leases would.
	ids := make([]string, 0, len(c.Hosts))
	for id := range c.Hosts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for i, id := range ids {
		if i%10 == 0 {
			if _, err := cli.Delete(ctx, mustKey(store.HostsPrefix, id)); err != nil {
				return err
			}
		}
	}
	start = time.Now()
	if s, err = scheduler.Load(ctx, cli, scheduler.Config{}); err != nil {
		return err
	}
	loaded := time.Since(start)
	p = scheduler.Reconcile(s)
	planned := time.Since(start)
	if err := scheduler.Commit(ctx, cli, p); err != nil {
		return err
	}
	total := time.Since(start)
	row(fmt.Sprintf("etcd: re-place jobs of 10%% of hosts: load %.2fs, plan %.2fs, commit %.2fs (%s lost)",
		loaded.Seconds(), (planned-loaded).Seconds(), (total-planned).Seconds(), thousands(len(p.MarkLost))),
		hosts, len(p.Start), total)
	return nil
}

func mustKey(prefix string, parts ...string) string {
	k, err := store.Key(prefix, parts...)
	if err != nil {
		panic(err)
	}
	return k
}

// startEtcd starts one embedded member secured by a throwaway CA, as
// store/storetest does for tests, and returns a client of it.
func startEtcd(ctx context.Context, dir string) (*clientv3.Client, func(), error) {
	ca, err := pki.NewCA("bench")
	if err != nil {
		return nil, nil, err
	}
	serverDir, clientDir := filepath.Join(dir, "server"), filepath.Join(dir, "client")
	if err := ca.Issue(serverDir, pki.Request{CommonName: "m0", Role: "server",
		DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}); err != nil {
		return nil, nil, err
	}
	if err := ca.Issue(clientDir, pki.Request{CommonName: "bench", Role: "client"}); err != nil {
		return nil, nil, err
	}
	serverCreds, err := pki.LoadCredentials(serverDir)
	if err != nil {
		return nil, nil, err
	}
	clientCreds, err := pki.LoadCredentials(clientDir)
	if err != nil {
		return nil, nil, err
	}
	clientURL, peerURL := "https://"+freeAddr(), "https://"+freeAddr()
	m, err := store.StartMember(ctx, store.MemberConfig{Name: "m0", DataDir: filepath.Join(dir, "etcd"),
		Creds: serverCreds, ClientURL: clientURL, PeerURL: peerURL})
	if err != nil {
		return nil, nil, err
	}
	cli, err := store.Dial([]string{clientURL}, clientCreds)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return cli, func() { cli.Close(); m.Close() }, nil
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}
