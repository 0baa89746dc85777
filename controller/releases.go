package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// Bounds on what a release may carry.
const (
	maxEnvEntries   = 500
	maxEnvValue     = 32 << 10
	maxProcessTypes = 50
)

// appReleases lists an app's releases, newest first.
func (c *Controller) appReleases(ctx context.Context, app string) ([]api.Release, error) {
	items, _, err := store.List[api.Release](ctx, c.Client, store.ReleasesPrefix)
	if err != nil {
		return nil, err
	}
	var out []api.Release
	for _, it := range items {
		if it.Value.App == app {
			out = append(out, it.Value)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version > out[j].Version })
	return out, nil
}

func (c *Controller) listReleases(w http.ResponseWriter, r *http.Request) error {
	if _, _, err := c.loadApp(r.Context(), r.PathValue("app")); err != nil {
		return err
	}
	rels, err := c.appReleases(r.Context(), r.PathValue("app"))
	if err != nil {
		return err
	}
	if rels == nil {
		rels = []api.Release{}
	}
	writeJSON(w, http.StatusOK, rels)
	return nil
}

// parseVersion reads "v3" or "3".
func parseVersion(s string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimPrefix(s, "v"))
	return n, err == nil && n > 0
}

func (c *Controller) getRelease(w http.ResponseWriter, r *http.Request) error {
	app, _, err := c.loadApp(r.Context(), r.PathValue("app"))
	if err != nil {
		return err
	}
	want := r.PathValue("version")
	id := want
	if n, ok := parseVersion(want); ok {
		id = api.ReleaseID(app.Name, n)
	}
	rel, err := c.release(r.Context(), app.Name, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rel)
	return nil
}

// release reads one of app's releases by id.
func (c *Controller) release(ctx context.Context, app, id string) (api.Release, error) {
	if !api.ValidID(id) {
		return api.Release{}, notFound("app %s has no release %q", app, id)
	}
	rel, _, err := store.Get[api.Release](ctx, c.Client, store.ReleasesPrefix+id)
	if errors.Is(err, store.ErrNotFound) || err == nil && rel.App != app {
		return api.Release{}, notFound("app %s has no release %q", app, id)
	}
	return rel, err
}

func (c *Controller) createRelease(w http.ResponseWriter, r *http.Request) error {
	var req api.CreateReleaseRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := c.checkProcesses(req.Processes); err != nil {
		return err
	}
	if err := checkEnv(req.Env); err != nil {
		return err
	}
	var art *api.Artifact
	if req.Artifact != nil {
		a, err := c.resolveArtifact(r.Context(), *req.Artifact)
		if err != nil {
			return err
		}
		art = &a
	}
	initial, err := requestManifest(req)
	if err != nil {
		return err
	}
	res, err := c.newReleaseCounts(r.Context(), r.PathValue("app"), func(base *api.Release, next *api.Release) error {
		next.Artifact = art
		next.Processes = req.Processes
		next.Env = req.Env
		if req.Env == nil && base != nil {
			next.Env = base.Env
		}
		return nil
	}, initial)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, res)
	return nil
}

// resolveArtifact checks that an artifact is in this server's blobstore
// (copied from another server if need be) and points it there.
func (c *Controller) resolveArtifact(ctx context.Context, a api.Artifact) (api.Artifact, error) {
	if a.Type == "" {
		a.Type = api.ArtifactSlug
	}
	if a.Type == api.ArtifactImage {
		return checkImageArtifact(a)
	}
	if a.Type != api.ArtifactSlug {
		return a, invalid("artifact type %q: slug or image", a.Type)
	}
	if c.Blobs == nil {
		return a, api.Errorf(api.ErrCodeUnavailable, "this server has no blobstore")
	}
	blob, err := c.statBlob(ctx, a.SHA256)
	if err != nil {
		return a, invalid("artifact sha256:%s is not in the blobstore; upload it first (PUT /v1/blobs/sha256/DIGEST)", a.SHA256)
	}
	a.Size = blob.Size
	a.URI = c.blobURI(a.SHA256)
	return a, nil
}

func (c *Controller) checkProcesses(ps map[string]api.ProcessType) error {
	if len(ps) > maxProcessTypes {
		return invalid("a release has at most %d process types", maxProcessTypes)
	}
	for name, p := range ps {
		if !api.ValidID(name) {
			return invalid("process type name %q: use lower-case letters, digits and dashes", name)
		}
		if err := p.Validate(name); err != nil {
			return invalid("%v", err)
		}
	}
	return nil
}

// newRelease stores the app's next release, made by fill from the current
// one (nil when the app has none), and the deployment that rolls it out,
// in one transaction guarded by the app record: the version number is
// taken from the app, and a second release created at the same moment
// conflicts and is made again on top of the first. A release made while
// the app is being deployed waits its turn (see the queue below).
func (c *Controller) newRelease(ctx context.Context, name string, fill func(base, next *api.Release) error) (api.ReleaseResult, error) {
	return c.newReleaseCounts(ctx, name, fill, nil)
}

// newReleaseCounts is newRelease where the process types named in
// initial start with those counts when they first appear in the app
// (app.json's formation and cron entries), instead of none (one for web).
func (c *Controller) newReleaseCounts(ctx context.Context, name string, fill func(base, next *api.Release) error, initial map[string]int) (api.ReleaseResult, error) {
	key := idempotencyKey(ctx)
	for {
		app, appRev, err := c.loadApp(ctx, name)
		if err != nil {
			return api.ReleaseResult{}, err
		}
		if key != "" {
			// Sent again: the first attempt's release, if it made one
			// (also when a concurrent attempt just won the race below).
			if res, ok, err := c.replayed(ctx, app, key); err != nil || ok {
				return res, err
			}
		}
		queue, err := c.unfinishedDeployments(ctx, name)
		if err != nil {
			return api.ReleaseResult{}, err
		}
		if len(queue) >= maxQueuedDeployments {
			return api.ReleaseResult{}, conflict("app %s has %d deployments waiting (v%d to v%d); try again when some have finished",
				name, len(queue), queue[0].Version, queue[len(queue)-1].Version)
		}
		// While the app is being deployed, the new release queues behind
		// that deployment (the deployer runs an app's deployments one at a
		// time, oldest first) and is made from the newest release queued,
		// so that changes made at the same moment all land, none lost.
		baseID := app.Release
		var tail *api.Deployment
		if len(queue) > 0 {
			tail = &queue[len(queue)-1]
			baseID = tail.NewRelease
		}
		var base *api.Release
		if baseID != "" {
			b, err := c.release(ctx, name, baseID)
			if err != nil {
				return api.ReleaseResult{}, err
			}
			base = &b
		}
		now := time.Now().UTC()
		version := app.LatestVersion + 1
		next := api.Release{ID: api.ReleaseID(name, version), App: name, Version: version, CreatedAt: now, RequestKey: key}
		if err := fill(base, &next); err != nil {
			return api.ReleaseResult{}, err
		}
		if next.Processes == nil {
			next.Processes = map[string]api.ProcessType{}
		}
		if err := next.Validate(); err != nil {
			return api.ReleaseResult{}, invalid("%v", err)
		}
		oldCounts, fKey, fRev, err := c.formationOf(ctx, app)
		if err != nil {
			return api.ReleaseResult{}, err
		}
		d := api.Deployment{
			ID: next.ID, App: name, OldRelease: app.Release, NewRelease: next.ID, Version: version,
			Strategy: app.Strategy, OldProcesses: oldCounts, Processes: targetCounts(oldCounts, next.Processes, app.Release == "", initial),
			State: api.DeployPending, CreatedAt: now, UpdatedAt: now,
		}
		if tail != nil {
			// Counts as the deployment before it leaves them (scaling
			// waits for deployments); what it moves from is settled when
			// it begins: the deployer reads the old release and its counts
			// then.
			d.OldRelease, d.OldProcesses = tail.NewRelease, nil
			d.Processes = targetCounts(tail.Processes, next.Processes, app.Release == "", initial)
		}
		app.LatestVersion = version
		app.UpdatedAt = now
		tx := store.Txn().Update(appKey(name), app, appRev).
			Create(store.ReleasesPrefix+next.ID, next).
			Create(store.DeploymentsPrefix+d.ID, d)
		if fKey != "" {
			tx.Unchanged(fKey, fRev)
		}
		_, err = tx.Commit(ctx, c.Client)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return api.ReleaseResult{}, err
		}
		c.Log.Info("release created", "app", name, "release", next.ID, "deployment", d.ID)
		return api.ReleaseResult{Release: next, Deployment: d}, nil
	}
}

// targetCounts carries the current counts over to a new release's
// process types; a first release starts one web job, like Heroku, and a
// process type new to the app starts with its count in initial, if any.
func targetCounts(old map[string]int, procs map[string]api.ProcessType, first bool, initial map[string]int) map[string]int {
	out := map[string]int{}
	for name := range procs {
		if name == api.ReleaseProcess {
			continue
		}
		n, ok := old[name]
		if q, set := initial[name]; !ok && set {
			n = q
		} else if !ok && name == "web" && (first || len(old) == 0) {
			n = 1
		}
		out[name] = n
	}
	return out
}

// maxQueuedDeployments bounds an app's unfinished deployments: each new
// release waits behind the ones before it, and a client looping on
// pier env set should not queue an hour of restarts.
const maxQueuedDeployments = 20

// activeDeployment is the app's deployment that has not finished, if
// any: the one running, or the oldest waiting.
func (c *Controller) activeDeployment(ctx context.Context, app string) (*api.Deployment, error) {
	q, err := c.unfinishedDeployments(ctx, app)
	if err != nil || len(q) == 0 {
		return nil, err
	}
	return &q[0], nil
}

// unfinishedDeployments are the app's deployments that have not finished,
// in the order the deployer takes them (by version: each is made by a
// transaction on the app record, which numbers them).
func (c *Controller) unfinishedDeployments(ctx context.Context, app string) ([]api.Deployment, error) {
	items, _, err := store.List[api.Deployment](ctx, c.Client, store.DeploymentsPrefix)
	if err != nil {
		return nil, err
	}
	var out []api.Deployment
	for _, it := range items {
		if it.Value.App == app && !it.Value.State.Done() {
			out = append(out, it.Value)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

func (c *Controller) rollback(w http.ResponseWriter, r *http.Request) error {
	var req api.RollbackRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.Version < 0 {
		return invalid("version %d", req.Version)
	}
	res, err := c.newRelease(r.Context(), r.PathValue("app"), func(base, next *api.Release) error {
		if base == nil {
			return invalid("app %s has no release to roll back from", next.App)
		}
		want := req.Version
		if want == 0 {
			want = base.Version - 1
		}
		if want == base.Version {
			return invalid("v%d is the current release", want)
		}
		if want < 1 {
			return invalid("app %s has no release before v%d", next.App, base.Version)
		}
		old, err := c.release(r.Context(), next.App, api.ReleaseID(next.App, want))
		if err != nil {
			return fmt.Errorf("roll back to v%d: %w", want, err)
		}
		if old.Artifact != nil && old.Artifact.Type != api.ArtifactImage && c.Blobs != nil {
			if _, err := c.statBlob(r.Context(), old.Artifact.SHA256); err != nil {
				return invalid("v%d's artifact is no longer stored (only the newest %d releases keep theirs)", want, c.KeepReleases)
			}
		}
		next.Artifact, next.Processes, next.Env = old.Artifact, old.Processes, old.Env
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, res)
	return nil
}
