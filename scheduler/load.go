package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// State is the raw material of a snapshot, read from the store at one
// revision.
type State struct {
	Hosts      []store.Item[api.Host]
	Jobs       []store.Item[api.Job]
	JobStatus  []store.Item[api.JobStatus]
	Formations []store.Item[api.Formation]
	Releases   []store.Item[api.Release]
	Statuses   []store.Item[api.FormationStatus]
	OneOffs    []store.Item[api.OneOff]
	OneOffStat []store.Item[api.OneOffStatus]
	Drains     []store.Item[api.HostDrain]
	Volumes    []store.Item[api.Volume]
	// Revision is the store revision the state reflects; it seeds the plan.
	Revision int64
}

// Load reads a snapshot straight from etcd in one transaction, so every
// prefix is read at the same revision. A plan must come from such a
// consistent read: separate reads (or separate watch caches) can show a
// formation status that already counts a commit beside a job list that
// does not yet hold its jobs, and the status guard would then let the
// same slots be filled twice.
func Load(ctx context.Context, kv clientv3.KV, cfg Config) (Snapshot, error) {
	st, err := LoadState(ctx, kv)
	if err != nil {
		return Snapshot{}, err
	}
	return st.Snapshot(time.Now(), cfg), nil
}

// LoadState reads the raw state Load makes a snapshot of, every prefix at
// one revision, with each key's revisions: what a scheduler of its own
// plans from and guards its commits with.
func LoadState(ctx context.Context, kv clientv3.KV) (State, error) {
	prefixes := []string{store.HostsPrefix, store.JobsPrefix, store.JobStatusPrefix,
		store.FormationsPrefix, store.ReleasesPrefix, FormationStatusPrefix, OneOffPrefix, OneOffStatusPrefix,
		store.HostDrainsPrefix, store.VolumesPrefix}
	ops := make([]clientv3.Op, len(prefixes))
	for i, p := range prefixes {
		ops[i] = clientv3.OpGet(p, clientv3.WithPrefix())
	}
	resp, err := kv.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return State{}, fmt.Errorf("scheduler: load: %w", err)
	}
	st := State{Revision: resp.Header.Revision}
	r := resp.Responses
	st.Hosts = decode[api.Host](r[0].GetResponseRange().Kvs)
	st.Jobs = decode[api.Job](r[1].GetResponseRange().Kvs)
	st.JobStatus = decode[api.JobStatus](r[2].GetResponseRange().Kvs)
	st.Formations = decode[api.Formation](r[3].GetResponseRange().Kvs)
	st.Releases = decode[api.Release](r[4].GetResponseRange().Kvs)
	st.Statuses = decode[api.FormationStatus](r[5].GetResponseRange().Kvs)
	st.OneOffs = decode[api.OneOff](r[6].GetResponseRange().Kvs)
	st.OneOffStat = decode[api.OneOffStatus](r[7].GetResponseRange().Kvs)
	st.Drains = decode[api.HostDrain](r[8].GetResponseRange().Kvs)
	st.Volumes = decode[api.Volume](r[9].GetResponseRange().Kvs)
	return st, nil
}

func decode[T any](kvs []*mvccpb.KeyValue) []store.Item[T] {
	out := make([]store.Item[T], 0, len(kvs))
	for _, kv := range kvs {
		var v T
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			slog.Warn("scheduler: skipping unreadable value", "key", string(kv.Key), "err", err)
			continue
		}
		out = append(out, store.Item[T]{Key: string(kv.Key), Value: v, ModRevision: kv.ModRevision, CreateRevision: kv.CreateRevision})
	}
	return out
}

// Snapshot assembles the state into a snapshot taken at now.
func (st *State) Snapshot(now time.Time, cfg Config) Snapshot {
	s := Snapshot{Now: now, Config: cfg, Seed: st.Revision}
	for _, it := range st.Hosts {
		s.Hosts = append(s.Hosts, it.Value)
	}
	byID := make(map[string]store.Item[api.JobStatus], len(st.JobStatus))
	for _, it := range st.JobStatus {
		byID[it.Value.ID] = it
	}
	s.Jobs = make([]JobView, 0, len(st.Jobs))
	for _, it := range st.Jobs {
		// Commit addresses a job by its host and id: a record whose key
		// says otherwise could never be stopped, only conflicted on.
		if k, err := store.Key(store.JobsPrefix, it.Value.HostID, it.Value.ID); err != nil || k != it.Key {
			slog.Warn("scheduler: skipping job whose key does not match its host and id", "key", it.Key)
			continue
		}
		jv := JobView{Job: it.Value, Rev: it.ModRevision}
		if stt, ok := byID[it.Value.ID]; ok {
			jv.Status, jv.StatusRev = &stt.Value, stt.ModRevision
		}
		s.Jobs = append(s.Jobs, jv)
	}
	for _, it := range st.Formations {
		s.Formations = append(s.Formations, FormationView{Formation: it.Value, Rev: it.ModRevision})
	}
	for _, it := range st.Releases {
		s.Releases = append(s.Releases, it.Value)
	}
	for _, it := range st.Statuses {
		s.Statuses = append(s.Statuses, StatusView{Status: it.Value, Rev: it.ModRevision})
	}
	s.OneOffs = oneOffViews(st.OneOffs, st.OneOffStat)
	for _, it := range st.Drains {
		if s.Draining == nil {
			s.Draining = map[string]bool{}
		}
		s.Draining[it.Value.Host] = true
	}
	for _, it := range st.Volumes {
		s.Volumes = append(s.Volumes, VolumeView{Volume: it.Value, Rev: it.ModRevision})
	}
	return s
}
