package client

import (
	"context"
	"net/http"
	"net/url"

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

// AccessRules lists the rules that let one app's jobs reach another's;
// with app, only the rules into it.
func (c *Controller) AccessRules(ctx context.Context, app string) ([]api.AccessRule, error) {
	var out []api.AccessRule
	p := "/v1/access"
	if app != "" {
		p += "?app=" + url.QueryEscape(app)
	}
	return out, c.do(ctx, http.MethodGet, p, nil, &out)
}

// AllowAccess lets from's jobs open connections to app's jobs.
func (c *Controller) AllowAccess(ctx context.Context, app, from string) (api.AccessRule, error) {
	var out api.AccessRule
	return out, c.do(ctx, http.MethodPut, appPath(app, "/access/"+url.PathEscape(from)), nil, &out)
}

// DenyAccess removes the rule that lets from reach app.
func (c *Controller) DenyAccess(ctx context.Context, app, from string) error {
	return c.do(ctx, http.MethodDelete, appPath(app, "/access/"+url.PathEscape(from)), nil, nil)
}
