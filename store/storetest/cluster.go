package storetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/store"
)

// Cluster is a running etcd cluster for a test.
type Cluster struct {
	t       testing.TB
	dir     string
	CA      *pki.CA
	configs []store.MemberConfig

	mu      sync.Mutex
	members []*store.Member // nil while stopped
}

// NewCluster starts n members and stops them when the test ends.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	// A free port is only free until someone else takes it (a job, an
	// outgoing connection of another test): a member that finds its
	// port taken makes the whole cluster start again, on new ports.
	for attempt := 1; ; attempt++ {
		c := &Cluster{t: t, dir: filepath.Join(dir, fmt.Sprint(attempt)), CA: ca, members: make([]*store.Member, n)}
		err := c.startAll(n)
		if err == nil {
			t.Cleanup(c.Close)
			return c
		}
		c.Close()
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
		t.Logf("storetest: %v; starting again on other ports", err)
	}
}

// startAll configures n members on free ports and starts them.
func (c *Cluster) startAll(n int) error {
	var initial []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("m%d", i)
		credDir := filepath.Join(c.dir, name, "pki")
		if err := c.CA.Issue(credDir, pki.Request{CommonName: name, Role: "server",
			DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}); err != nil {
			return err
		}
		creds, err := pki.LoadCredentials(credDir)
		if err != nil {
			return err
		}
		mc := store.MemberConfig{
			Name:      name,
			DataDir:   filepath.Join(c.dir, name, "etcd"),
			Creds:     creds,
			ClientURL: "https://" + freeAddr(c.t),
			PeerURL:   "https://" + freeAddr(c.t),
		}
		initial = append(initial, name+"="+mc.PeerURL)
		c.configs = append(c.configs, mc)
	}
	for i := range c.configs {
		c.configs[i].InitialCluster = strings.Join(initial, ",")
	}
	// Members of a new cluster wait for each other, so start them together.
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range c.configs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = c.start(i)
		}(i)
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *Cluster) start(i int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := store.StartMember(ctx, c.configs[i])
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.members[i] = m
	c.mu.Unlock()
	return nil
}

// Endpoints returns every member's client URL.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, mc := range c.configs {
		eps = append(eps, mc.ClientURL)
	}
	return eps
}

// Credentials issues a client certificate and returns its credentials.
func (c *Cluster) Credentials() *pki.Credentials {
	c.t.Helper()
	dir := filepath.Join(c.t.TempDir(), "client")
	// Host agents of in-process clusters serve their API with these too,
	// on loopback.
	if err := c.CA.Issue(dir, pki.Request{CommonName: "client", Role: "client",
		DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}); err != nil {
		c.t.Fatal(err)
	}
	creds, err := pki.LoadCredentials(dir)
	if err != nil {
		c.t.Fatal(err)
	}
	return creds
}

// Client returns a client of all members, closed when the test ends.
func (c *Cluster) Client() *clientv3.Client {
	return c.ClientOf(c.Endpoints()...)
}

// ClientOf returns a client of the given endpoints, closed when the test ends.
func (c *Cluster) ClientOf(endpoints ...string) *clientv3.Client {
	c.t.Helper()
	cli, err := store.Dial(endpoints, c.Credentials())
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

// Size returns the number of members, running or not.
func (c *Cluster) Size() int { return len(c.configs) }

// Member returns member i, or nil while it is stopped.
func (c *Cluster) Member(i int) *store.Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members[i]
}

// Leader returns the index of the current raft leader, waiting for one.
func (c *Cluster) Leader() int {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for i := range c.configs {
			if m := c.Member(i); m != nil && m.IsLeader() {
				return i
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatal("storetest: no etcd leader")
	return -1
}

// Stop stops member i, as a crash would from the others' point of view.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	m := c.members[i]
	c.members[i] = nil
	c.mu.Unlock()
	if m != nil {
		m.Close()
	}
}

// Restart starts a stopped member again from its data directory.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if err := c.start(i); err != nil {
		c.t.Fatal(err)
	}
}

// Close stops every member.
func (c *Cluster) Close() {
	for i := range c.configs {
		c.Stop(i)
	}
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
