package deployer

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
)

// entry is a View with the keys and revisions that guard the writes of
// its step; a revision of 0 means the key was absent.
type entry struct {
	View
	depKey, appKey, newKey, oldKey, oneOffKey string
	depRev, appRev, newRev, oldRev, oneOffRev int64
	// invalid says why the deployment names no keys at all.
	invalid string
}

// chunk bounds the deployments read in one transaction: each adds two
// reads to the shared prefixes, and etcd caps a transaction's operations
// at store.MaxTxnOps.
const chunk = 50

// load reads every unfinished deployment that may move now, each with
// what its step is decided from. An app's deployments go one at a time,
// oldest first: two at once would fight over the same formations.
func load(ctx context.Context, kv clientv3.KV) ([]*entry, error) {
	all, _, err := store.List[api.Deployment](ctx, kv, store.DeploymentsPrefix)
	if err != nil {
		return nil, err
	}
	var active []store.Item[api.Deployment]
	for _, it := range all {
		if !it.Value.State.Done() {
			active = append(active, it)
		}
	}
	// By version first: the controller numbers an app's releases in a
	// transaction, while CreatedAt comes from whichever server's clock.
	slices.SortFunc(active, func(a, b store.Item[api.Deployment]) int {
		return cmp.Or(cmp.Compare(a.Value.Version, b.Value.Version), a.Value.CreatedAt.Compare(b.Value.CreatedAt), strings.Compare(a.Key, b.Key))
	})
	seen := map[string]bool{}
	var keys []string
	for _, it := range active {
		if !seen[it.Value.App] {
			seen[it.Value.App] = true
			keys = append(keys, it.Key)
		}
	}
	var out []*entry
	for len(keys) > 0 {
		n := min(len(keys), chunk)
		es, err := loadChunk(ctx, kv, keys[:n])
		if err != nil {
			return nil, err
		}
		out = append(out, es...)
		keys = keys[n:]
	}
	return out, nil
}

// loadChunk reads deployments and everything they depend on at one
// revision.
func loadChunk(ctx context.Context, kv clientv3.KV, depKeys []string) ([]*entry, error) {
	prefixes := []string{store.AppsPrefix, store.FormationsPrefix, scheduler.FormationStatusPrefix,
		store.JobsPrefix, store.JobStatusPrefix, scheduler.OneOffPrefix, scheduler.OneOffStatusPrefix}
	ops := make([]clientv3.Op, 0, len(prefixes)+len(depKeys))
	for _, p := range prefixes {
		ops = append(ops, clientv3.OpGet(p, clientv3.WithPrefix()))
	}
	for _, k := range depKeys {
		ops = append(ops, clientv3.OpGet(k))
	}
	resp, err := kv.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, fmt.Errorf("deployer: load: %w", err)
	}
	r := resp.Responses
	apps := byKey(decode[api.App](r[0].GetResponseRange().Kvs))
	formations := byKey(decode[api.Formation](r[1].GetResponseRange().Kvs))
	fstatus := byKey(decode[api.FormationStatus](r[2].GetResponseRange().Kvs))
	jobs := decode[api.Job](r[3].GetResponseRange().Kvs)
	jobStatus := map[string]*api.JobStatus{}
	for _, it := range decode[api.JobStatus](r[4].GetResponseRange().Kvs) {
		jobStatus[it.Value.ID] = &it.Value
	}
	oneOffs := byKey(decode[api.OneOff](r[5].GetResponseRange().Kvs))
	oneOffStat := byKey(decode[api.OneOffStatus](r[6].GetResponseRange().Kvs))
	var deps []store.Item[api.Deployment]
	for i := range depKeys {
		deps = append(deps, decode[api.Deployment](r[len(prefixes)+i].GetResponseRange().Kvs)...)
	}
	// Release ids are unique across apps, so jobs are found by release.
	byRelease := map[string][]Job{}
	for _, it := range jobs {
		j := it.Value
		byRelease[j.Release] = append(byRelease[j.Release], Job{Job: j, Status: jobStatus[j.ID]})
	}
	var out []*entry
	for _, it := range deps {
		if it.Value.State.Done() {
			continue // finished since the first read
		}
		e := &entry{View: View{Deployment: it.Value}, depKey: it.Key, depRev: it.ModRevision}
		d := &e.Deployment
		if e.invalid = invalid(d); e.invalid != "" {
			out = append(out, e)
			continue
		}
		e.appKey, _ = store.Key(store.AppsPrefix, d.App)
		if a, ok := apps[e.appKey]; ok {
			e.App, e.appRev = &a.Value, a.ModRevision
		}
		if d.State == api.DeployPending && e.App != nil && e.App.Release != d.OldRelease && e.App.Release != d.NewRelease {
			// Made while an earlier deployment of the app ran, it waited
			// its turn: it moves from what the app runs now it begins
			// (that one's release, or the release it rolled back to), with
			// that release's counts, read afresh at Begin.
			d.OldRelease, d.OldProcesses = e.App.Release, nil
		}
		e.newKey, _ = store.Key(store.FormationsPrefix, d.App, d.NewRelease)
		if f, ok := formations[e.newKey]; ok {
			e.New, e.newRev = &f.Value, f.ModRevision
		}
		if d.OldRelease != "" {
			e.oldKey, _ = store.Key(store.FormationsPrefix, d.App, d.OldRelease)
			if f, ok := formations[e.oldKey]; ok {
				e.Old, e.oldRev = &f.Value, f.ModRevision
			}
		}
		sk, _ := store.Key(scheduler.FormationStatusPrefix, d.App, d.NewRelease)
		if s, ok := fstatus[sk]; ok {
			e.Pending = s.Value.Pending
		}
		for _, j := range byRelease[d.NewRelease] {
			if j.Job.App == d.App {
				e.Jobs = append(e.Jobs, j)
			}
		}
		id := cmp.Or(d.ReleaseJob, ReleaseJobID(d.ID))
		e.oneOffKey, _ = store.Key(scheduler.OneOffPrefix, id)
		if o, ok := oneOffs[e.oneOffKey]; ok {
			e.ReleaseRun.Requested, e.oneOffRev = true, o.ModRevision
		}
		jobID := id
		osk, _ := store.Key(scheduler.OneOffStatusPrefix, id)
		if s, ok := oneOffStat[osk]; ok {
			e.ReleaseRun.Pending = s.Value.Pending
			jobID = cmp.Or(s.Value.JobID, id)
		}
		e.ReleaseRun.Status = jobStatus[jobID]
		out = append(out, e)
	}
	if err := loadReleases(ctx, kv, out); err != nil {
		return nil, err
	}
	return out, nil
}

// loadReleases reads the new releases. Releases are immutable, so reading
// them after the rest loses no consistency.
func loadReleases(ctx context.Context, kv clientv3.KV, es []*entry) error {
	for _, e := range es {
		if e.invalid != "" {
			continue
		}
		key, _ := store.Key(store.ReleasesPrefix, e.Deployment.NewRelease)
		rel, _, err := store.Get[api.Release](ctx, kv, key)
		switch {
		case err == nil:
			e.Release = &rel
		case !isNotFound(err):
			return err
		}
	}
	return nil
}

// invalid says what makes a deployment unusable as keys, or "".
func invalid(d *api.Deployment) string {
	switch {
	case !api.ValidID(d.App):
		return fmt.Sprintf("invalid deployment: app %q", d.App)
	case !api.ValidID(d.NewRelease):
		return fmt.Sprintf("invalid deployment: release %q", d.NewRelease)
	case d.OldRelease != "" && !api.ValidID(d.OldRelease):
		return fmt.Sprintf("invalid deployment: old release %q", d.OldRelease)
	case d.OldRelease == d.NewRelease:
		// Both formations would be one key.
		return fmt.Sprintf("invalid deployment: from release %s to itself", d.NewRelease)
	case !api.ValidID(d.ID):
		return fmt.Sprintf("invalid deployment: id %q", d.ID)
	}
	return ""
}

func byKey[T any](items []store.Item[T]) map[string]store.Item[T] {
	m := make(map[string]store.Item[T], len(items))
	for _, it := range items {
		m[it.Key] = it
	}
	return m
}

func decode[T any](kvs []*mvccpb.KeyValue) []store.Item[T] {
	out := make([]store.Item[T], 0, len(kvs))
	for _, kv := range kvs {
		var v T
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			slog.Warn("deployer: skipping unreadable value", "key", string(kv.Key), "err", err)
			continue
		}
		out = append(out, store.Item[T]{Key: string(kv.Key), Value: v, ModRevision: kv.ModRevision, CreateRevision: kv.CreateRevision})
	}
	return out
}
