package controller

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
)

// maxMeta bounds an app's metadata: it is for labels, not for storage.
const (
	maxMetaEntries = 64
	maxMetaValue   = 1024
)

func appKey(name string) string { return store.AppsPrefix + name }

// loadApp reads an app named in the path, with its revision.
func (c *Controller) loadApp(ctx context.Context, name string) (api.App, int64, error) {
	if api.ValidateAppName(name) != nil {
		return api.App{}, 0, notFound("no app %q", name)
	}
	app, rev, err := store.Get[api.App](ctx, c.Client, appKey(name))
	if errors.Is(err, store.ErrNotFound) {
		return app, 0, notFound("no app %q", name)
	}
	return app, rev, err
}

func (c *Controller) listApps(w http.ResponseWriter, r *http.Request) error {
	items, _, err := store.List[api.App](r.Context(), c.Client, store.AppsPrefix)
	if err != nil {
		return err
	}
	apps := make([]api.App, 0, len(items))
	for _, it := range items {
		apps = append(apps, c.withURL(r.Context(), it.Value))
	}
	sort.Slice(apps, func(i, j int) bool { return apps[i].Name < apps[j].Name })
	writeJSON(w, http.StatusOK, apps)
	return nil
}

func (c *Controller) getApp(w http.ResponseWriter, r *http.Request) error {
	app, _, err := c.loadApp(r.Context(), r.PathValue("app"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c.withURL(r.Context(), app))
	return nil
}

// withURL fills in where the app answers: only once its current release
// has a web process type scaled above zero, so that "is live at URL" is
// never said of an app nothing serves. A failed read leaves it out.
func (c *Controller) withURL(ctx context.Context, app api.App) api.App {
	if c.AppURL == "" || app.Release == "" {
		return app
	}
	rel, err := c.release(ctx, app.Name, app.Release)
	if err != nil {
		return app
	}
	if _, ok := rel.Processes[webProcess]; !ok {
		return app
	}
	if counts, _, _, err := c.formationOf(ctx, app); err != nil || counts[webProcess] <= 0 {
		return app
	}
	app.URL = strings.ReplaceAll(c.AppURL, "{app}", app.Name)
	return app
}

// webProcess is the process type the routers give the app's domain.
const webProcess = "web"

func (c *Controller) createApp(w http.ResponseWriter, r *http.Request) error {
	var req api.CreateAppRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := api.ValidateAppName(req.Name); err != nil {
		return invalid("%v", err)
	}
	now := time.Now().UTC()
	app := api.App{Name: req.Name, CreatedAt: now, UpdatedAt: now}
	if err := applyAppChanges(&app, req.Meta, req.Strategy); err != nil {
		return err
	}
	if _, err := store.Create(r.Context(), c.Client, appKey(app.Name), app); err != nil {
		if errors.Is(err, store.ErrExists) {
			return conflict("app %q already exists", app.Name)
		}
		return err
	}
	c.Log.Info("app created", "app", app.Name)
	writeJSON(w, http.StatusCreated, c.withURL(r.Context(), app))
	return nil
}

func (c *Controller) updateApp(w http.ResponseWriter, r *http.Request) error {
	var req api.UpdateAppRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	app, err := c.updateAppWith(r.Context(), r.PathValue("app"), func(app *api.App) error {
		if req.Maintenance != nil {
			app.Maintenance = *req.Maintenance
		}
		return applyAppChanges(app, req.Meta, req.Strategy)
	})
	if err != nil {
		return err
	}
	if req.Maintenance != nil {
		c.Log.Info("maintenance mode", "app", app.Name, "on", app.Maintenance)
	}
	writeJSON(w, http.StatusOK, c.withURL(r.Context(), app))
	return nil
}

// updateAppWith applies change to the stored app, re-reading and trying
// again when someone else (the deployer setting the release) wrote it in
// between.
func (c *Controller) updateAppWith(ctx context.Context, name string, change func(*api.App) error) (api.App, error) {
	for {
		app, rev, err := c.loadApp(ctx, name)
		if err != nil {
			return app, err
		}
		if err := change(&app); err != nil {
			return app, err
		}
		app.UpdatedAt = time.Now().UTC()
		_, err = store.Update(ctx, c.Client, appKey(name), app, rev)
		if !errors.Is(err, store.ErrConflict) {
			return app, err
		}
	}
}

// applyAppChanges merges meta (an empty value removes a key) and replaces
// the strategy, checking both.
func applyAppChanges(app *api.App, meta map[string]string, strategy *api.DeployStrategy) error {
	for k, v := range meta {
		if k == "" || len(k) > 63 || strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return invalid("meta key %q: 1 to 63 printable characters without spaces", k)
		}
		if len(v) > maxMetaValue {
			return invalid("meta %s: value longer than %d bytes", k, maxMetaValue)
		}
		if v == "" {
			delete(app.Meta, k)
			continue
		}
		if app.Meta == nil {
			app.Meta = map[string]string{}
		}
		app.Meta[k] = v
	}
	if len(app.Meta) > maxMetaEntries {
		return invalid("an app has at most %d meta entries", maxMetaEntries)
	}
	if strategy != nil {
		if err := strategy.Validate(); err != nil {
			return invalid("%v", err)
		}
		app.Strategy = *strategy
	}
	return nil
}

// deleteApp removes an app and everything of it: formations first, so
// the scheduler starts stopping its jobs at once, then its one-off
// requests, routes, deployments and releases, and the app record last, so
// that a delete cut short can simply be repeated.
func (c *Controller) deleteApp(w http.ResponseWriter, r *http.Request) error {
	if err := c.removeApp(r.Context(), r.PathValue("app")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// removeApp is deleteApp's work, also done by the resource loop to a
// resource's system app.
func (c *Controller) removeApp(ctx context.Context, name string) error {
	if _, _, err := c.loadApp(ctx, name); err != nil {
		return err
	}
	formations, err := store.Prefix(store.FormationsPrefix, name)
	if err != nil {
		return err
	}
	if _, err := c.Client.Delete(ctx, formations, clientv3.WithPrefix()); err != nil {
		return err
	}
	if err := deleteWhere(ctx, c, scheduler.OneOffPrefix, func(o api.OneOff) bool { return o.App == name }); err != nil {
		return err
	}
	if err := c.deleteAppRoutes(ctx, name); err != nil { // with their index entries
		return err
	}
	if err := c.deleteAppAccess(ctx, name); err != nil {
		return err
	}
	if err := c.deleteAppDrains(ctx, name); err != nil {
		return err
	}
	if err := deleteWhere(ctx, c, store.DeploymentsPrefix, func(d api.Deployment) bool { return d.App == name }); err != nil {
		return err
	}
	if err := deleteWhere(ctx, c, store.BuildsPrefix, func(b api.Build) bool { return b.App == name }); err != nil {
		return err
	}
	if err := deleteWhere(ctx, c, store.ReleasesPrefix, func(rel api.Release) bool { return rel.App == name }); err != nil {
		return err
	}
	if err := store.Delete(ctx, c.Client, appKey(name)); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	c.Log.Info("app deleted", "app", name)
	return nil
}

// routeOfApp reports whether a route sends traffic to one of app's
// process types (service "<type>.<app>").
func routeOfApp(rt api.Route, app string) bool {
	return strings.HasSuffix(rt.Service, "."+app) && strings.Count(rt.Service, ".") == 1
}

// deleteWhere deletes the keys under prefix whose values match.
func deleteWhere[T any](ctx context.Context, c *Controller, prefix string, match func(T) bool) error {
	items, _, err := store.List[T](ctx, c.Client, prefix)
	if err != nil {
		return err
	}
	for _, it := range items {
		if match(it.Value) {
			if err := store.Delete(ctx, c.Client, it.Key); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
	}
	return nil
}
