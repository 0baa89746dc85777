package controller

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/registry"
	"github.com/pierpaas/pier/store"
)

// DefaultKeepReleases is how many of an app's newest releases keep their
// artifacts; older ones stay listed, but can no longer be rolled back to.
const DefaultKeepReleases = 10

// CollectBlobs removes the blobs of this server's blobstore that no kept
// release references: per app, the newest keep releases, the current
// one, and those of deployments still going. The blobstore spares blobs
// younger than its grace period, so an artifact uploaded a moment ago
// for a release not created yet survives.
func (c *Controller) CollectBlobs(ctx context.Context, keep int) ([]string, error) {
	if c.Blobs == nil {
		return nil, nil
	}
	// The registry's blobs that no manifest references any more (deleted
	// images, abandoned pushes) are unlinked first, so that this pass
	// can have them.
	if n, err := registry.CollectLinks(ctx, c.Client, registry.DefaultLinkGrace, time.Now()); err != nil {
		return nil, err
	} else if n > 0 {
		c.Log.Info("registry blobs unlinked", "count", n)
	}
	digests, builds, err := c.keptBlobs(ctx, keep)
	if err != nil {
		return nil, err
	}
	// A build older than those keeps its record no longer than its output.
	for _, id := range oldBuilds(builds, keep) {
		if err := store.Delete(ctx, c.Client, store.BuildsPrefix+id); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	removed, err := c.Blobs.GC(func(d string) bool { return digests[d] })
	if len(removed) > 0 {
		c.Log.Info("blobs collected", "removed", len(removed))
	}
	return removed, err
}

// KeptBlobs are the blobs garbage collection keeps: those every server
// holds a copy of.
func (c *Controller) KeptBlobs(ctx context.Context) (map[string]bool, error) {
	digests, _, err := c.keptBlobs(ctx, c.KeepReleases)
	return digests, err
}

// keptBlobs lists the blobs kept releases and builds need, and the
// builds it read.
func (c *Controller) keptBlobs(ctx context.Context, keep int) (map[string]bool, []store.Item[api.Build], error) {
	rels, _, err := store.List[api.Release](ctx, c.Client, store.ReleasesPrefix)
	if err != nil {
		return nil, nil, err
	}
	apps, _, err := store.List[api.App](ctx, c.Client, store.AppsPrefix)
	if err != nil {
		return nil, nil, err
	}
	deps, _, err := store.List[api.Deployment](ctx, c.Client, store.DeploymentsPrefix)
	if err != nil {
		return nil, nil, err
	}
	builds, _, err := store.List[api.Build](ctx, c.Client, store.BuildsPrefix)
	if err != nil {
		return nil, nil, err
	}
	digests := keptDigests(rels, apps, deps, builds, keep)
	// A resource's backup keeps its dump while its record lives.
	backups, _, err := store.List[api.Backup](ctx, c.Client, store.ResourceBackups)
	if err != nil {
		return nil, nil, err
	}
	for _, b := range backups {
		if b.Value.SHA256 != "" {
			digests[b.Value.SHA256] = true
		}
	}
	ups, _, err := store.List[api.Upgrade](ctx, c.Client, store.UpgradesPrefix)
	if err != nil {
		return nil, nil, err
	}
	for _, d := range upgradeBlobs(ups) {
		digests[d] = true
	}
	// Images pushed to the registry keep their layers and manifests.
	images, err := registry.KeptBlobs(ctx, c.Client)
	if err != nil {
		return nil, nil, err
	}
	for d := range images {
		digests[d] = true
	}
	return digests, builds, nil
}

// keptDigests decides which blobs are kept, from the releases, apps,
// deployments and builds of one read (the live store, or a backup's
// snapshot).
func keptDigests(rels []store.Item[api.Release], apps []store.Item[api.App], deps []store.Item[api.Deployment], builds []store.Item[api.Build], keep int) map[string]bool {
	pinned := map[string]bool{}
	for _, a := range apps {
		pinned[a.Value.Release] = true
	}
	for _, d := range deps {
		if !d.Value.State.Done() {
			pinned[d.Value.NewRelease], pinned[d.Value.OldRelease] = true, true
		}
	}
	byApp := map[string][]api.Release{}
	for _, r := range rels {
		byApp[r.Value.App] = append(byApp[r.Value.App], r.Value)
	}
	digests := map[string]bool{}
	for _, list := range byApp {
		sort.Slice(list, func(i, j int) bool { return list[i].Version > list[j].Version })
		for i, r := range list {
			if r.Artifact != nil && (i < keep || pinned[r.ID]) {
				digests[r.Artifact.SHA256] = true
			}
		}
	}
	for _, d := range keptBuildBlobs(builds, keep) {
		digests[d] = true
	}
	return digests
}

// collectBlobsEvery runs CollectBlobs until ctx ends.
func (c *Controller) collectBlobsEvery(ctx context.Context, every time.Duration, keep int) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		var diskChanged <-chan struct{} // nil: never
		if c.Disk != nil {
			diskChanged = c.Disk.Changed()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-diskChanged:
			// A disk low on space is collected at once, not at the next
			// tick: what nothing keeps is the first room to give back.
			if !c.Disk.Status().Pressure {
				continue
			}
		}
		if _, err := c.CollectBlobs(ctx, keep); err != nil && ctx.Err() == nil {
			c.Log.Warn("blob garbage collection failed", "err", err)
		}
	}
}

// oldBuilds are the finished builds beyond each app's newest keep.
func oldBuilds(items []store.Item[api.Build], keep int) []string {
	byApp := map[string][]api.Build{}
	for _, it := range items {
		byApp[it.Value.App] = append(byApp[it.Value.App], it.Value)
	}
	var out []string
	for _, list := range byApp {
		sort.Slice(list, func(i, j int) bool { return list[i].CreatedAt.After(list[j].CreatedAt) })
		for _, b := range list[min(keep, len(list)):] {
			if !b.FinishedAt.IsZero() {
				out = append(out, b.ID)
			}
		}
	}
	return out
}

// keptBuildBlobs are the blobs builds need: the source of a build still
// going, and the cache and output of each app's newest keep builds.
func keptBuildBlobs(items []store.Item[api.Build], keep int) []string {
	byApp := map[string][]api.Build{}
	var out []string
	for _, it := range items {
		b := it.Value
		byApp[b.App] = append(byApp[b.App], b)
		if b.FinishedAt.IsZero() {
			out = append(out, b.SourceSHA256)
		}
	}
	for _, list := range byApp {
		sort.Slice(list, func(i, j int) bool { return list[i].CreatedAt.After(list[j].CreatedAt) })
		for _, b := range list[:min(keep, len(list))] {
			out = append(out, b.CacheSHA256, b.OutputSHA256)
		}
	}
	return out
}
