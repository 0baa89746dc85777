package controller

import (
	"net/http"
	"sort"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

func (c *Controller) listDeployments(w http.ResponseWriter, r *http.Request) error {
	app, _, err := c.loadApp(r.Context(), r.PathValue("app"))
	if err != nil {
		return err
	}
	items, _, err := store.List[api.Deployment](r.Context(), c.Client, store.DeploymentsPrefix)
	if err != nil {
		return err
	}
	out := []api.Deployment{}
	for _, it := range items {
		if it.Value.App == app.Name {
			out = append(out, it.Value)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version > out[j].Version })
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (c *Controller) getDeployment(w http.ResponseWriter, r *http.Request) error {
	app, _, err := c.loadApp(r.Context(), r.PathValue("app"))
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if n, ok := parseVersion(id); ok {
		id = api.ReleaseID(app.Name, n)
	}
	if !api.ValidID(id) {
		return notFound("app %s has no deployment %q", app.Name, id)
	}
	d, _, err := store.Get[api.Deployment](r.Context(), c.Client, store.DeploymentsPrefix+id)
	if err != nil || d.App != app.Name {
		return notFound("app %s has no deployment %q", app.Name, id)
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}
