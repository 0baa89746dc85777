package controller

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// maxScale bounds one process type's count: a typo like web=10000 should
// not flood the cluster with pending jobs.
const maxScale = 1000

// formationOf reads the counts of the app's current release, with the
// formation's key and revision (0 when it does not exist) to guard a
// write that depends on them. An app with no release has no formation.
func (c *Controller) formationOf(ctx context.Context, app api.App) (map[string]int, string, int64, error) {
	if app.Release == "" {
		return map[string]int{}, "", 0, nil
	}
	key, err := store.Key(store.FormationsPrefix, app.Name, app.Release)
	if err != nil {
		return nil, "", 0, err
	}
	f, rev, err := store.Get[api.Formation](ctx, c.Client, key)
	if errors.Is(err, store.ErrNotFound) {
		return map[string]int{}, key, 0, nil
	}
	if err != nil {
		return nil, "", 0, err
	}
	return maps.Clone(f.Processes), key, rev, nil
}

func (c *Controller) getFormation(w http.ResponseWriter, r *http.Request) error {
	app, _, err := c.loadApp(r.Context(), r.PathValue("app"))
	if err != nil {
		return err
	}
	out, err := c.appFormation(r.Context(), app)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// appFormation is the formation with a zero for every process type of
// the release that has no count yet.
func (c *Controller) appFormation(ctx context.Context, app api.App) (api.AppFormation, error) {
	out := api.AppFormation{App: app.Name, Release: app.Release, Processes: map[string]int{}}
	if app.Release == "" {
		return out, nil
	}
	rel, err := c.release(ctx, app.Name, app.Release)
	if err != nil {
		return out, err
	}
	out.Version = rel.Version
	counts, _, _, err := c.formationOf(ctx, app)
	if err != nil {
		return out, err
	}
	for name := range rel.Processes {
		if name != api.ReleaseProcess {
			out.Processes[name] = counts[name]
		}
	}
	return out, nil
}

func (c *Controller) scale(w http.ResponseWriter, r *http.Request) error {
	var req api.ScaleRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if len(req.Processes) == 0 {
		return invalid("nothing to scale: give process types and counts (web=2)")
	}
	ctx := r.Context()
	for {
		app, appRev, err := c.loadApp(ctx, r.PathValue("app"))
		if err != nil {
			return err
		}
		if app.Release == "" {
			return invalid("app %s has no release yet: deploy it first", app.Name)
		}
		if d, err := c.activeDeployment(ctx, app.Name); err != nil {
			return err
		} else if d != nil {
			return conflict("app %s is being deployed (v%d); scale it when the deployment has finished", app.Name, d.Version)
		}
		rel, err := c.release(ctx, app.Name, app.Release)
		if err != nil {
			return err
		}
		for name, n := range req.Processes {
			if _, ok := rel.Processes[name]; !ok || name == api.ReleaseProcess {
				return invalid("app %s has no process type %q in v%d (it has: %s)", app.Name, name, rel.Version, scalable(rel))
			}
			if n < 0 || n > maxScale {
				return invalid("%s=%d: a count is between 0 and %d", name, n, maxScale)
			}
		}
		counts, key, fRev, err := c.formationOf(ctx, app)
		if err != nil {
			return err
		}
		maps.Copy(counts, req.Processes)
		f := api.Formation{App: app.Name, Release: app.Release, Processes: counts, UpdatedAt: time.Now().UTC()}
		// Guarded by the app too: a deployment that starts meanwhile bumps
		// it, and this scale is then re-checked against it.
		tx := store.Txn().Unchanged(appKey(app.Name), appRev)
		if fRev == 0 {
			tx.Create(key, f)
		} else {
			tx.Update(key, f, fRev)
		}
		if _, err := tx.Commit(ctx, c.Client); errors.Is(err, store.ErrConflict) {
			continue
		} else if err != nil {
			return err
		}
		c.Log.Info("scaled", "app", app.Name, "release", app.Release, "processes", counts)
		out, err := c.appFormation(ctx, app)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

// scalable lists a release's process types that formations count.
func scalable(rel api.Release) string {
	var names []string
	for name := range rel.Processes {
		if name != api.ReleaseProcess {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(slices.Compact(names), ", ")
}
