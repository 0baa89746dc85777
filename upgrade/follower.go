package upgrade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/blobstore/replica"
	"github.com/pierpaas/pier/discovery"
	"github.com/pierpaas/pier/internal/daemon"
	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/store"
)

// nodeTTL is the lease of a node's record: a node that stops leaves the
// list within it.
const nodeTTL = 5 * time.Second

// Follower is one daemon's side of upgrades: it registers the daemon
// under /pier/nodes/ and obeys the orders the upgrade loop signs for it.
// Every daemon runs one (a `pier up` process one for all its roles).
type Follower struct {
	Client *clientv3.Client
	Creds  *pki.Credentials
	Kind   api.NodeKind
	Name   string
	// Version is the binary's version string; ReadyURL its /readyz.
	Version  string
	ReadyURL string
	// Health, when set, is made unready while the node drains.
	Health *daemon.Health
	Log    *slog.Logger
	// Files are the executable's (SelfFiles by default).
	Files Files
	// Restart re-executes the node as the binary at path; the daemon's
	// command ends and main executes it (selfexec.Request).
	Restart func(path string)

	sha     string
	mu      sync.Mutex
	node    api.Node
	changed chan struct{}
	acting  string // the order being carried out
}

// Run registers the node and follows its orders until ctx ends. A node
// that cannot tell its own binary (no /proc) is not upgradable; it logs
// why and stays out of the list, so an upgrade does not wait for it.
func (f *Follower) Run(ctx context.Context) {
	if f.Log == nil {
		f.Log = slog.Default()
	}
	if err := f.init(); err != nil {
		f.Log.Warn("upgrade: this node cannot be upgraded in place", "err", err)
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { f.register(ctx) })
	wg.Go(func() { f.follow(ctx) })
	wg.Wait()
}

func (f *Follower) init() error {
	var err error
	if f.Files.Exe == "" {
		if f.Files, err = SelfFiles(); err != nil {
			return err
		}
	}
	if f.sha, err = SelfSHA256(); err != nil {
		return err
	}
	f.changed = make(chan struct{}, 1)
	f.node = api.Node{Kind: f.Kind, Name: f.Name, Version: f.Version, SHA256: f.sha, PID: os.Getpid(),
		ReadyURL: f.ReadyURL, StartedAt: time.Now().UTC()}
	// On probation? The marker names this process if an order made it.
	if m, err := f.Files.readTrial(); err == nil && m != nil && m.PID == os.Getpid() {
		f.node.Trial = m.Order
	}
	if m, err := f.Files.readFailed(); err == nil && m != nil {
		f.node.Failed, f.node.Error = m.Order, m.Reason
	}
	return nil
}

func (f *Follower) key() string { return store.NodesPrefix + api.NodeKey(f.Kind, f.Name) }

// update changes the node's record and has register write it.
func (f *Follower) update(change func(n *api.Node)) {
	f.mu.Lock()
	change(&f.node)
	f.mu.Unlock()
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

// register keeps the node's record on a lease, writing it again on
// every change and after a lost lease.
func (f *Follower) register(ctx context.Context) {
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(f.Client, concurrency.WithTTL(int(nodeTTL/time.Second)), concurrency.WithContext(ctx))
		if err != nil {
			sleep(ctx, time.Second)
			continue
		}
		f.keepRecord(ctx, sess)
		sess.Orphan()
	}
}

func (f *Follower) keepRecord(ctx context.Context, sess *concurrency.Session) {
	for {
		f.mu.Lock()
		n := f.node
		f.mu.Unlock()
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := store.Put(wctx, f.Client, f.key(), n, store.WithLease(sess.Lease()))
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				f.Log.Debug("upgrade: cannot register the node", "err", err)
			}
			sleep(ctx, time.Second)
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-sess.Done():
			return
		case <-f.changed:
		}
	}
}

// follow watches the node's order and carries out each new one.
func (f *Follower) follow(ctx context.Context) {
	key := store.NodeOrdersPrefix + api.NodeKey(f.Kind, f.Name)
	for ctx.Err() == nil {
		order, rev, err := store.Get[api.NodeOrder](ctx, f.Client, key)
		if err == nil {
			f.obey(ctx, order)
		} else if !errors.Is(err, store.ErrNotFound) {
			sleep(ctx, time.Second)
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		for resp := range f.Client.Watch(wctx, key, clientv3.WithRev(rev+1)) {
			if resp.Err() != nil {
				break
			}
			for _, ev := range resp.Events {
				var o api.NodeOrder
				if ev.Type == clientv3.EventTypePut && json.Unmarshal(ev.Kv.Value, &o) == nil {
					f.obey(ctx, o)
				}
			}
		}
		cancel()
	}
}

// obey carries out an order once: an order for the binary the node runs
// confirms it (ends its probation); another fetches that binary, puts it
// in place and re-executes the node.
func (f *Follower) obey(ctx context.Context, o api.NodeOrder) {
	if err := Verify(o, f.Creds.Pool); err != nil {
		f.Log.Warn("upgrade: ignoring an order", "order", o.ID, "err", err)
		return
	}
	f.mu.Lock()
	n, acting := f.node, f.acting
	f.mu.Unlock()
	switch {
	case o.SHA256 == f.sha:
		if o.Commit && n.Committed != o.ID {
			// The guard ends when the marker goes.
			if err := f.Files.removeTrial(); err != nil {
				f.Log.Error("upgrade: cannot end the trial", "err", err)
				return
			}
			f.Log.Info("upgrade: keeping this binary", "order", o.ID, "version", f.Version)
			f.update(func(n *api.Node) { n.Trial, n.Committed = "", o.ID })
		}
		return
	case n.Failed == o.ID || acting == o.ID:
		return // given up on, or being carried out
	}
	f.mu.Lock()
	f.acting = o.ID
	f.mu.Unlock()
	if err := f.replace(ctx, o); err != nil {
		f.Log.Error("upgrade: cannot carry out an order", "order", o.ID, "err", err)
		f.update(func(n *api.Node) { n.Failed, n.Error = o.ID, err.Error() })
		f.Files.writeFailed(failedMarker{Order: o.ID, Reason: err.Error()})
	}
}

// replace puts the order's binary in place and re-executes the node.
func (f *Follower) replace(ctx context.Context, o api.NodeOrder) error {
	f.Log.Info("upgrade: replacing this node's binary", "order", o.ID, "sha256", short(o.SHA256), "trial", time.Duration(o.Trial))
	ok, err := f.Files.ReceivePrev(o.SHA256)
	if err != nil {
		return err
	}
	if !ok {
		if err := f.download(ctx, o); err != nil {
			return err
		}
	}
	// Another daemon of this machine (a server beside a host agent) may
	// have put the same binary in place already: then pier.prev is the
	// old one still, and only the re-execution is left.
	if cur, err := FileSHA256(f.Files.Exe); err != nil || cur != o.SHA256 {
		if err := f.Files.Swap(); err != nil {
			return err
		}
	}
	if o.Trial > 0 {
		m := trialMarker{Order: o.ID, PID: os.Getpid(), Deadline: time.Now().Add(time.Duration(o.Trial))}
		if err := f.Files.writeTrial(m); err != nil {
			f.Files.Revert()
			return err
		}
		if err := startGuard(f.Files, m.PID); err != nil {
			f.Files.Revert()
			f.Files.removeTrial()
			return err
		}
	}
	if o.Drain > 0 && f.Health != nil {
		// Load balancers see the node unready and stop sending it
		// traffic before it restarts.
		f.Health.AddReadyCheck("upgrade", func(context.Context) error { return errors.New("restarting for an upgrade") })
		f.Log.Info("upgrade: draining before the restart", "for", time.Duration(o.Drain))
		sleep(ctx, time.Duration(o.Drain))
	}
	f.Log.Info("upgrade: re-executing", "binary", f.Files.Exe)
	f.Restart(f.Files.Exe)
	return nil
}

// download fetches the order's binary from a server's blobstore.
func (f *Follower) download(ctx context.Context, o api.NodeOrder) error {
	insts, err := discovery.New(f.Client).Instances(ctx, api.ServersService)
	if err != nil {
		return err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = f.Creds.ClientConfig()
	tr.DialContext = (&net.Dialer{Timeout: 3 * time.Second}).DialContext
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Minute}
	defer tr.CloseIdleConnections()
	var errs []error
	for _, inst := range insts {
		err := func() error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+inst.Addr+replica.Path+o.SHA256, nil)
			if err != nil {
				return err
			}
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s", resp.Status)
			}
			return f.Files.Receive(resp.Body, o.SHA256, o.Size)
		}()
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", inst.ID, err))
	}
	return fmt.Errorf("upgrade: no server gave the binary %s: %w", short(o.SHA256), errors.Join(errs...))
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
