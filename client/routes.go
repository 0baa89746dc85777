package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/pierpaas/pier/api"
)

// Routes lists an app's routes (stored ones; not the automatic route of
// its web process). TLS private keys are never returned.
func (c *Controller) Routes(ctx context.Context, app string) ([]api.Route, error) {
	var out []api.Route
	return out, c.do(ctx, http.MethodGet, appPath(app, "/routes"), nil, &out)
}

// AddRoute adds a route to one of the app's process types and returns it
// with its id (and, for a tcp route without a port, the port it got).
// Leave rt.ID empty; an empty Service is the app's web process.
func (c *Controller) AddRoute(ctx context.Context, app string, rt api.Route) (api.Route, error) {
	var out api.Route
	return out, c.do(ctx, http.MethodPost, appPath(app, "/routes"), rt, &out)
}

// RemoveRoute removes one of the app's routes.
func (c *Controller) RemoveRoute(ctx context.Context, app, id string) error {
	return c.do(ctx, http.MethodDelete, appPath(app, "/routes/"+url.PathEscape(id)), nil, nil)
}
