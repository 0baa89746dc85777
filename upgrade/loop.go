package upgrade

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/internal/pki"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
)

// ElectionPrefix is where the upgrade loops of all servers campaign.
const ElectionPrefix = "/pier/leaders/upgrade/"

// passInterval is how often the leader passes over an upgrade that runs:
// its clock drives the trials.
const passInterval = 500 * time.Millisecond

// Loop is a leader-elected upgrade driver: every server runs one, the
// elected one passes over the running upgrade. The leader upgrades its
// own server in turn, and loses the lead then: another server's loop
// continues from the record.
type Loop struct {
	Client *clientv3.Client
	Creds  *pki.Credentials // signs the orders
	Name   string
	Log    *slog.Logger
	// LeaderDead, if set, tells a candidate when the leader is certainly
	// dead (see scheduler.WithLeaderProbe).
	LeaderDead func(ctx context.Context, name string) bool

	probes *http.Client
}

// Run campaigns and drives upgrades until ctx ends.
func (l *Loop) Run(ctx context.Context) {
	if l.Log == nil {
		l.Log = slog.Default()
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = l.Creds.ClientConfig()
	tr.DisableKeepAlives = true // a restarted node is a new server
	l.probes = &http.Client{Transport: tr, Timeout: 2 * time.Second}
	for ctx.Err() == nil {
		if err := l.lead(ctx); err != nil && ctx.Err() == nil {
			l.Log.Warn("upgrade: leadership ended", "err", err)
			sleep(ctx, time.Second)
		}
	}
}

func (l *Loop) lead(ctx context.Context) error {
	var opts []scheduler.ElectOption
	if l.LeaderDead != nil {
		opts = append(opts, scheduler.WithLeaderProbe(l.LeaderDead, l.Log))
	}
	leader, err := scheduler.Elect(ctx, l.Client, ElectionPrefix, l.Name, 5*time.Second, opts...)
	if err != nil {
		return err
	}
	defer leader.Close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-leader.Done():
			return errors.New("lost the election")
		case <-time.After(passInterval):
		}
		if err := l.pass(ctx); err != nil && ctx.Err() == nil {
			l.Log.Warn("upgrade: pass failed", "err", err)
		}
	}
}

// pass drives each running upgrade one decision further.
func (l *Loop) pass(ctx context.Context) error {
	ups, _, err := store.List[api.Upgrade](ctx, l.Client, store.UpgradesPrefix)
	if err != nil {
		return err
	}
	for _, it := range ups {
		if it.Value.State.Done() {
			continue
		}
		obs := l.observe(ctx, it.Value)
		d := Next(it.Value, obs, time.Now().UTC())
		for _, o := range d.Orders {
			signed, err := Sign(o, l.Creds)
			if err != nil {
				return err
			}
			if _, err := store.Put(ctx, l.Client, store.NodeOrdersPrefix+o.Node, signed); err != nil {
				return err
			}
		}
		if !d.Changed {
			continue
		}
		if _, err := store.Update(ctx, l.Client, it.Key, d.Upgrade, it.ModRevision); err != nil {
			return err
		}
		l.logChange(it.Value, d.Upgrade)
		if d.Upgrade.State.Done() {
			// Orders left behind would be obeyed again by a node that
			// restarts: once done, nobody is on probation any more.
			l.Client.Delete(ctx, store.NodeOrdersPrefix, clientv3.WithPrefix())
		}
	}
	return nil
}

func (l *Loop) logChange(before, after api.Upgrade) {
	for i, s := range after.Steps {
		if s.State != before.Steps[i].State {
			l.Log.Info("upgrade: step", "upgrade", after.ID, "node", s.Node, "state", s.State, "error", s.Error)
		}
	}
	if after.State != before.State {
		l.Log.Info("upgrade: state", "upgrade", after.ID, "state", after.State, "reason", after.Reason)
	}
}

// observe looks at the nodes the upgrade's active steps name: their
// records, their /readyz, and how the cluster sees them.
func (l *Loop) observe(ctx context.Context, u api.Upgrade) map[string]Observed {
	nodes, _, _ := store.List[api.Node](ctx, l.Client, store.NodesPrefix)
	out := map[string]Observed{}
	for _, s := range u.Steps {
		switch s.State {
		case api.StepDone, api.StepSkipped, api.StepRolledBack:
			continue
		case api.StepPending:
			if u.State != api.UpgradeRunning {
				continue
			}
		}
		var o Observed
		i := slices.IndexFunc(nodes, func(it store.Item[api.Node]) bool { return api.NodeKey(it.Value.Kind, it.Value.Name) == s.Node })
		if i >= 0 {
			n := nodes[i].Value
			o.Node = &n
			o.Ready = l.ready(ctx, n.ReadyURL)
			o.Healthy = l.healthy(ctx, n, s.Since)
		}
		out[s.Node] = o
	}
	return out
}

func (l *Loop) ready(ctx context.Context, url string) error {
	if url == "" {
		return errors.New("no readiness URL")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := l.probes.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// healthy is the cluster's view of a node: a server's etcd member votes
// and answers with the same leader as the others; a host agent's record
// is back (registered since the step began).
func (l *Loop) healthy(ctx context.Context, n api.Node, since time.Time) error {
	if n.Kind == api.NodeServer || n.Kind == api.NodeUp {
		if err := l.memberHealthy(ctx, n.Name); err != nil {
			return err
		}
	}
	if n.Kind == api.NodeHost || n.Kind == api.NodeUp {
		h, _, err := store.Get[api.Host](ctx, l.Client, store.HostsPrefix+n.Name)
		if err != nil {
			return fmt.Errorf("host record: %w", err)
		}
		if h.StartedAt.Before(since) {
			return errors.New("host agent not registered again yet")
		}
	}
	return nil
}

func (l *Loop) memberHealthy(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	list, err := l.Client.MemberList(ctx)
	if err != nil {
		return fmt.Errorf("etcd members: %w", err)
	}
	for _, m := range list.Members {
		if m.Name != name {
			continue
		}
		if m.IsLearner {
			return errors.New("etcd member is a learner still")
		}
		var leader uint64
		for _, u := range m.ClientURLs {
			st, err := l.Client.Status(ctx, u)
			if err != nil {
				return fmt.Errorf("etcd member does not answer: %w", err)
			}
			leader = st.Leader
		}
		if leader == 0 {
			return errors.New("etcd member has no leader")
		}
		return nil
	}
	return errors.New("no etcd member by that name")
}

// EtcdLeader names the etcd leader, for Plan.
func EtcdLeader(ctx context.Context, c *clientv3.Client) string {
	list, err := c.MemberList(ctx)
	if err != nil {
		return ""
	}
	for _, m := range list.Members {
		for _, u := range m.ClientURLs {
			if st, err := c.Status(ctx, u); err == nil && st.Leader == st.Header.MemberId {
				return m.Name
			}
		}
	}
	return ""
}

// Create records a new upgrade of every running node to the binary
// digest names, unless one runs already (guarded: two at once would
// fight over the nodes).
func Create(ctx context.Context, c *clientv3.Client, id string, req api.UpgradeRequest, now time.Time) (api.Upgrade, error) {
	ups, _, err := store.List[api.Upgrade](ctx, c, store.UpgradesPrefix)
	if err != nil {
		return api.Upgrade{}, err
	}
	for _, it := range ups {
		if !it.Value.State.Done() {
			return api.Upgrade{}, fmt.Errorf("%w: upgrade %s is %s", ErrRunning, it.Value.ID, it.Value.State)
		}
	}
	nodes, _, err := store.List[api.Node](ctx, c, store.NodesPrefix)
	if err != nil {
		return api.Upgrade{}, err
	}
	var list []api.Node
	for _, it := range nodes {
		list = append(list, it.Value)
	}
	u := api.Upgrade{ID: id, SHA256: req.SHA256, Size: req.Size, Version: req.Version,
		Trial: cmp.Or(req.Trial, api.Duration(DefaultTrial)), Drain: cmp.Or(req.Drain, api.Duration(DefaultDrain)),
		State: api.UpgradeRunning, Steps: Plan(list, EtcdLeader(ctx, c), req.SHA256), CreatedAt: now, UpdatedAt: now}
	if len(u.Steps) == 0 {
		return u, errors.New("upgrade: no node is registered")
	}
	// Guarded by the list's revision: no upgrade was created meanwhile.
	tx := store.Txn().Create(store.UpgradesPrefix+id, u)
	for _, it := range ups {
		tx.Unchanged(it.Key, it.ModRevision)
	}
	if _, err := tx.Commit(ctx, c); err != nil {
		return u, err
	}
	return u, nil
}

// Defaults of an upgrade request.
const (
	DefaultTrial = 2 * time.Minute
	DefaultDrain = 5 * time.Second
)

// ErrRunning reports an upgrade asked for while another runs.
var ErrRunning = errors.New("upgrade: another upgrade is running")
