package scheduler

import (
	"context"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// Load reads a snapshot straight from the store, for a one-shot pass, a
// test or a scheduler of one's own; a long-running scheduler builds its
// snapshots from store.Caches instead. Each prefix is read as of one
// revision, not all of them as of the same one: the commit's guards
// catch what moved in between. Now is the current time and Seed the
// jobs' revision; cfg is carried into the snapshot. A job record whose key
// is not /pier/jobs/<its host>/<its id> is left out (and logged): a
// snapshot built another way must do the same.
func Load(ctx context.Context, kv clientv3.KV, cfg Config) (Snapshot, error) {
	s := Snapshot{Now: time.Now(), Config: cfg}
	hosts, _, err := store.List[api.Host](ctx, kv, store.HostsPrefix)
	if err != nil {
		return s, err
	}
	for _, it := range hosts {
		s.Hosts = append(s.Hosts, it.Value)
	}
	jobs, rev, err := store.List[api.Job](ctx, kv, store.JobsPrefix)
	if err != nil {
		return s, err
	}
	s.Seed = rev
	statuses, _, err := store.List[api.JobStatus](ctx, kv, store.JobStatusPrefix)
	if err != nil {
		return s, err
	}
	byID := make(map[string]store.Item[api.JobStatus], len(statuses))
	for _, it := range statuses {
		byID[it.Value.ID] = it
	}
	s.Jobs = make([]JobView, 0, len(jobs))
	for _, it := range jobs {
		// Commit addresses a job by its host and id: a record whose key
		// says otherwise could never be stopped, only conflicted on.
		if k, err := store.Key(store.JobsPrefix, it.Value.HostID, it.Value.ID); err != nil || k != it.Key {
			slog.Warn("scheduler: skipping job whose key does not match its host and id", "key", it.Key)
			continue
		}
		jv := JobView{Job: it.Value, Rev: it.ModRevision}
		if st, ok := byID[it.Value.ID]; ok {
			jv.Status, jv.StatusRev = &st.Value, st.ModRevision
		}
		s.Jobs = append(s.Jobs, jv)
	}
	forms, _, err := store.List[api.Formation](ctx, kv, store.FormationsPrefix)
	if err != nil {
		return s, err
	}
	for _, it := range forms {
		s.Formations = append(s.Formations, FormationView{Formation: it.Value, Rev: it.ModRevision})
	}
	rels, _, err := store.List[api.Release](ctx, kv, store.ReleasesPrefix)
	if err != nil {
		return s, err
	}
	for _, it := range rels {
		s.Releases = append(s.Releases, it.Value)
	}
	fstats, _, err := store.List[api.FormationStatus](ctx, kv, FormationStatusPrefix)
	if err != nil {
		return s, err
	}
	for _, it := range fstats {
		s.Statuses = append(s.Statuses, StatusView{Status: it.Value, Rev: it.ModRevision})
	}
	return s, nil
}
