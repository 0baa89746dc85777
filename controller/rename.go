package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/logs"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
)

// renameApp gives an app a new name (pier apps:rename). The name is the
// app's id, and it is in the ids and fields of everything of the app:
// release ids ("<app>-vN") and their web service ("web.<app>"),
// formations (keyed by app and release), deployments (keyed by release),
// builds, routes (by service), drains, one-off requests. All of them are
// rewritten in one guarded transaction, so a rename is whole or not at
// all, and two concurrent changes cannot both win.
//
// Jobs are not rewritten: their scheduler is their one writer. Moving the
// formations under the new name makes it stop the old jobs and start the
// same number under the new name, as an all-at-once deploy does; the
// app's old domain stops answering, as Heroku's does after a rename.
func (c *Controller) renameApp(w http.ResponseWriter, r *http.Request) error {
	var req api.RenameAppRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	oldName := r.PathValue("app")
	app, appRev, err := c.loadApp(ctx, oldName)
	if err != nil {
		return err
	}
	if err := api.ValidateAppName(req.Name); err != nil {
		return invalid("%v", err)
	}
	if req.Name == app.Name {
		return invalid("app %s already has that name", app.Name)
	}
	if _, _, err := store.Get[api.App](ctx, c.Client, appKey(req.Name)); err == nil {
		return conflict("app %q already exists", req.Name)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if d, err := c.activeDeployment(ctx, app.Name); err != nil {
		return err
	} else if d != nil {
		return conflict("app %s is being deployed (v%d); rename it when the deployment has finished", app.Name, d.Version)
	}
	tx, err := c.renameTxn(ctx, app, appRev, req.Name)
	if err != nil {
		return err
	}
	if n := tx.Len(); n > store.MaxTxnOps {
		return invalid("app %s has too much history to rename in one step (%d changes; the store takes %d at once)", app.Name, n, store.MaxTxnOps)
	}
	if _, err := tx.Commit(ctx, c.Client); err != nil {
		var ce *store.ConflictError
		if errors.As(err, &ce) && ce.Key == appKey(req.Name) {
			return conflict("app %q already exists", req.Name)
		}
		if errors.Is(err, store.ErrConflict) {
			return conflict("app %s changed while it was being renamed; try again", app.Name)
		}
		return err
	}
	c.Log.Info("app renamed", "app", app.Name, "to", req.Name)
	renamed, _, err := c.loadApp(ctx, req.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c.withURL(ctx, renamed))
	return nil
}

// renameTxn builds the rename's transaction from the app's records as
// they are now, each guarded by the revision it was read at.
func (c *Controller) renameTxn(ctx context.Context, app api.App, appRev int64, to string) (*store.Tx, error) {
	from := app.Name
	tx := store.Txn()
	relID := func(id string) string { return renameReleaseID(id, from, to) }

	// Releases: new ids, and their process types' services.
	rels, _, err := store.List[api.Release](ctx, c.Client, store.ReleasesPrefix)
	if err != nil {
		return nil, err
	}
	for _, it := range rels {
		rel := it.Value
		if rel.App != from {
			continue
		}
		for name, pt := range rel.Processes {
			if len(pt.Volumes) > 0 {
				return nil, invalid("app %s has volumes (process type %s of v%d), which a rename cannot move yet", from, name, rel.Version)
			}
		}
		rel.App, rel.ID = to, relID(rel.ID)
		rel.Processes = renameServices(rel.Processes, from, to)
		tx.Create(store.ReleasesPrefix+rel.ID, rel).Delete(it.Key, it.ModRevision)
	}

	// Formations and their statuses, keyed by app and release. The
	// restart lists name jobs of the old name, which are all replaced.
	for _, prefix := range []string{store.FormationsPrefix, scheduler.FormationStatusPrefix} {
		p, err := store.Prefix(prefix, from)
		if err != nil {
			return nil, err
		}
		if prefix == store.FormationsPrefix {
			items, _, err := store.List[api.Formation](ctx, c.Client, p)
			if err != nil {
				return nil, err
			}
			for _, it := range items {
				f := it.Value
				f.App, f.Release, f.Restart = to, relID(f.Release), nil
				key, err := store.Key(store.FormationsPrefix, to, f.Release)
				if err != nil {
					return nil, err
				}
				tx.Create(key, f).Delete(it.Key, it.ModRevision)
			}
			continue
		}
		items, _, err := store.List[api.FormationStatus](ctx, c.Client, p)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			tx.Delete(it.Key, it.ModRevision) // the scheduler writes the new one
		}
	}

	// Deployments, keyed by their new release.
	deps, _, err := store.List[api.Deployment](ctx, c.Client, store.DeploymentsPrefix)
	if err != nil {
		return nil, err
	}
	for _, it := range deps {
		d := it.Value
		if d.App != from {
			continue
		}
		d.App, d.NewRelease = to, relID(d.NewRelease)
		if d.OldRelease != "" {
			d.OldRelease = relID(d.OldRelease)
		}
		d.ID = relID(d.ID)
		tx.Create(store.DeploymentsPrefix+relID(strings.TrimPrefix(it.Key, store.DeploymentsPrefix)), d).Delete(it.Key, it.ModRevision)
	}

	// Builds keep their ids; they name the app and the release they made.
	builds, _, err := store.List[api.Build](ctx, c.Client, store.BuildsPrefix)
	if err != nil {
		return nil, err
	}
	for _, it := range builds {
		b := it.Value
		if b.App != from {
			continue
		}
		if b.State != api.BuildSucceeded && b.State != api.BuildFailed {
			return nil, conflict("build %s of %s is running; rename the app when it has finished", b.ID, from)
		}
		b.App = to
		if b.Release != "" {
			b.Release = relID(b.Release)
		}
		tx.Update(it.Key, b, it.ModRevision)
	}

	// Routes point at the app's services.
	routes, _, err := store.List[api.Route](ctx, c.Client, store.RoutesPrefix)
	if err != nil {
		return nil, err
	}
	for _, it := range routes {
		rt := it.Value
		if !routeOfApp(rt, from) {
			continue
		}
		ptype, _, _ := strings.Cut(rt.Service, ".")
		rt.Service = api.ServiceName(to, ptype)
		tx.Update(it.Key, rt, it.ModRevision)
	}

	// Drains are keyed by app.
	dp, err := store.Prefix(logs.DrainsPrefix, from)
	if err != nil {
		return nil, err
	}
	drains, _, err := store.List[api.Drain](ctx, c.Client, dp)
	if err != nil {
		return nil, err
	}
	for _, it := range drains {
		d := it.Value
		d.App = to
		key, err := store.Key(logs.DrainsPrefix, to, d.ID)
		if err != nil {
			return nil, err
		}
		tx.Create(key, d).Delete(it.Key, it.ModRevision)
	}

	// One-off requests not placed yet run under the new name.
	oneOffs, _, err := store.List[api.OneOff](ctx, c.Client, scheduler.OneOffPrefix)
	if err != nil {
		return nil, err
	}
	for _, it := range oneOffs {
		o := it.Value
		if o.App != from {
			continue
		}
		o.App = to
		if o.Release != "" {
			o.Release = relID(o.Release)
		}
		tx.Update(it.Key, o, it.ModRevision)
	}

	// The app itself, last: created under the new name only if no app has
	// it, and gone under the old one only if nobody changed it meanwhile.
	renamed := app
	renamed.Name = to
	if renamed.Release != "" {
		renamed.Release = relID(renamed.Release)
	}
	renamed.UpdatedAt = time.Now().UTC()
	if renamed.Meta == nil {
		renamed.Meta = map[string]string{}
	}
	tx.Create(appKey(to), renamed).Delete(appKey(from), appRev)
	return tx, nil
}

// renameReleaseID maps a release id of app from to the same version's id
// under to. An id not made by api.ReleaseID is left as it is.
func renameReleaseID(id, from, to string) string {
	i := strings.LastIndex(id, "-v")
	if i < 0 {
		return id
	}
	var v int
	if _, err := fmt.Sscanf(id[i+2:], "%d", &v); err != nil || api.ReleaseID(from, v) != id {
		return id
	}
	return api.ReleaseID(to, v)
}

// renameServices points a release's ports that name the app's own
// services ("web.<from>") at the same services of the new name.
func renameServices(procs map[string]api.ProcessType, from, to string) map[string]api.ProcessType {
	out := make(map[string]api.ProcessType, len(procs))
	for name, pt := range procs {
		if len(pt.Ports) > 0 {
			ports := make([]api.Port, len(pt.Ports))
			copy(ports, pt.Ports)
			for i := range ports {
				if ptype, app, ok := strings.Cut(ports[i].Service, "."); ok && app == from {
					ports[i].Service = api.ServiceName(to, ptype)
				}
			}
			pt.Ports = ports
		}
		out[name] = pt
	}
	return out
}
