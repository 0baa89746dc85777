package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/internal/server"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
)

// What the tests observe of the cluster beyond the API: leaders, etcd
// members, discovery, and the store's history during a fault.

// etcdLeader is the server whose etcd member leads the raft group.
func (c *cluster) etcdLeader(ctx context.Context) (*node, error) {
	members, err := c.etcd.MemberList(ctx)
	if err != nil {
		return nil, err
	}
	var errs []string
	for _, ep := range c.etcdEndpoints() {
		// A timeout of its own per member: a dead one must not use up
		// the time of the live ones.
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := c.etcd.Status(sctx, ep)
		cancel()
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		for _, m := range members.Members {
			if m.ID == st.Leader {
				if n := c.node(m.Name); n != nil {
					return n, nil
				}
			}
		}
		errs = append(errs, fmt.Sprintf("%s: leader %x is no member of %v", ep, st.Leader, members.Members))
	}
	return nil, fmt.Errorf("no etcd leader found: %s", strings.Join(errs, "; "))
}

// schedulerLeader is the server whose scheduler won the election: the
// candidate with the oldest key under the election prefix.
func (c *cluster) schedulerLeader(ctx context.Context) (*node, error) {
	resp, err := c.etcd.Get(ctx, scheduler.ElectionPrefix, clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(1))
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, errors.New("no scheduler leader")
	}
	name := string(resp.Kvs[0].Value)
	if n := c.node(name); n != nil {
		return n, nil
	}
	return nil, fmt.Errorf("scheduler leader %q is no server of ours", name)
}

// memberHealthy reports whether server s's etcd member answers and has
// caught up with the leader's raft index closely enough to vote.
func (c *cluster) memberHealthy(ctx context.Context, s *node) error {
	st, err := c.etcd.Status(ctx, fmt.Sprintf("https://%s:%d", s.ip, server.DefaultClientPort))
	if err != nil {
		return err
	}
	if st.IsLearner {
		return fmt.Errorf("%s is still a learner", s.name)
	}
	if st.Leader == 0 {
		return fmt.Errorf("%s sees no leader", s.name)
	}
	return nil
}

// instances lists the discovery entries of an app's web service, as
// the routers see them: for a scenario's log.
func (c *cluster) instances(app string) string {
	ctx, cancel := ctxT(5 * time.Second)
	defer cancel()
	resp, err := c.etcd.Get(ctx, store.ServicesPrefix+api.ServiceName(app, "web")+"/", clientv3.WithPrefix())
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, kv := range resp.Kvs {
		out = append(out, fmt.Sprintf("%s=%s(lease %x)", strings.TrimPrefix(string(kv.Key), store.ServicesPrefix), kv.Value, kv.Lease))
	}
	return strings.Join(out, "\n")
}

// milestones records when the store first saw each step of a recovery,
// from a watch on the whole keyspace started before the fault: the
// breakdown of a recovery time into detection, scheduling, start and
// registration.
type milestones struct {
	mu     sync.Mutex
	events []storeEvent
	cancel context.CancelFunc
}

type storeEvent struct {
	at     time.Time
	delete bool
	key    string
	value  []byte
}

func (c *cluster) watchStore(t *testing.T) *milestones {
	ctx, cancel := context.WithCancel(context.Background())
	m := &milestones{cancel: cancel}
	go func() {
		// In the goroutine: Watch blocks until it reaches a member, and
		// during a power cut none answers for a while.
		wc := c.etcd.Watch(ctx, "/pier/", clientv3.WithPrefix())
		for resp := range wc {
			now := time.Now()
			m.mu.Lock()
			for _, ev := range resp.Events {
				m.events = append(m.events, storeEvent{at: now, delete: ev.Type == clientv3.EventTypeDelete, key: string(ev.Kv.Key), value: ev.Kv.Value})
			}
			m.mu.Unlock()
		}
	}()
	t.Cleanup(cancel)
	return m
}

// first is the time of the first event after t0 that matches.
func (m *milestones) first(t0 time.Time, match func(storeEvent) bool) (time.Duration, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.events {
		if !e.at.Before(t0) && match(e) {
			return e.at.Sub(t0), true
		}
	}
	return 0, false
}

// recoverySteps are the milestones of a host's loss: its record gone
// (lease expired), a replacement job written (scheduled), a replacement
// registered in discovery (started and healthy).
func (m *milestones) recoverySteps(t0 time.Time, app, host string, orig map[string]bool) map[string]any {
	out := map[string]any{}
	isNew := func(key string) bool {
		for id := range orig {
			if strings.Contains(key, id) {
				return false
			}
		}
		return true
	}
	steps := []struct {
		name  string
		match func(storeEvent) bool
	}{
		{"host_record_gone_ms", func(e storeEvent) bool { return e.delete && e.key == store.HostsPrefix+host }},
		{"replacement_scheduled_ms", func(e storeEvent) bool {
			return !e.delete && strings.HasPrefix(e.key, store.JobsPrefix) && strings.Contains(e.key, "/"+app+"-") && isNew(e.key)
		}},
		{"replacement_running_ms", func(e storeEvent) bool {
			var st api.JobStatus
			return !e.delete && strings.HasPrefix(e.key, store.JobStatusPrefix+app+"-") && isNew(e.key) &&
				json.Unmarshal(e.value, &st) == nil && st.State == api.JobRunning
		}},
		{"replacement_registered_ms", func(e storeEvent) bool {
			return !e.delete && strings.HasPrefix(e.key, store.ServicesPrefix+api.ServiceName(app, "web")+"/") && isNew(e.key)
		}},
	}
	for _, s := range steps {
		if d, ok := m.first(t0, s.match); ok {
			out[s.name] = ms(d)
		}
	}
	return out
}

// instanceCount is how many instances discovery lists for app's web
// service (-1 when the store does not answer).
func (c *cluster) instanceCount(app string) int {
	ctx, cancel := ctxT(2 * time.Second)
	defer cancel()
	resp, err := c.etcd.Get(ctx, store.ServicesPrefix+api.ServiceName(app, "web")+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return -1
	}
	return int(resp.Count)
}

// restartSteps are the milestones of a cluster's restart for app: the
// first of its jobs reported failed (a job whose supervisor died with the
// machine), running, and registered in discovery.
func (m *milestones) restartSteps(t0 time.Time, app string) map[string]any {
	out := map[string]any{}
	status := func(state api.JobState) func(storeEvent) bool {
		return func(e storeEvent) bool {
			var st api.JobStatus
			return !e.delete && strings.HasPrefix(e.key, store.JobStatusPrefix+app+"-") &&
				json.Unmarshal(e.value, &st) == nil && st.State == state
		}
	}
	for name, match := range map[string]func(storeEvent) bool{
		"first_failed":  status(api.JobFailed),
		"first_running": status(api.JobRunning),
		"first_registered": func(e storeEvent) bool {
			return !e.delete && strings.HasPrefix(e.key, store.ServicesPrefix+api.ServiceName(app, "web")+"/")
		},
	} {
		if d, ok := m.first(t0, match); ok {
			out[name+"_"+app+"_ms"] = ms(d)
		}
	}
	return out
}
