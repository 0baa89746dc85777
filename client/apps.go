package client

import (
	"context"
	"net/http"

	"github.com/pierpaas/pier/api"
)

// RenameApp gives an app a new name; it answers with the renamed app.
func (c *Controller) RenameApp(ctx context.Context, app, newName string) (api.App, error) {
	var out api.App
	return out, c.do(ctx, http.MethodPost, appPath(app, "/rename"), api.RenameAppRequest{Name: newName}, &out)
}

// Restart replaces an app's jobs one at a time (see api.RestartRequest);
// it returns at once with the jobs being replaced.
func (c *Controller) Restart(ctx context.Context, app string, req api.RestartRequest) (api.RestartResult, error) {
	var out api.RestartResult
	return out, c.do(ctx, http.MethodPost, appPath(app, "/restart"), req, &out)
}

// SetMaintenance switches an app's maintenance mode on or off.
func (c *Controller) SetMaintenance(ctx context.Context, app string, on bool) (api.App, error) {
	return c.UpdateApp(ctx, app, api.UpdateAppRequest{Maintenance: &on})
}
