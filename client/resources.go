package client

import (
	"context"
	"io"
	"net/http"
	"net/url"

	"github.com/pierpaas/pier/api"
)

// CreateResource asks for a resource; the cluster provisions it (and
// attaches req.App) in the background: watch Resource for its state.
func (c *Controller) CreateResource(ctx context.Context, req api.CreateResourceRequest) (api.Resource, error) {
	var out api.Resource
	return out, c.do(ctx, http.MethodPost, "/v1/resources", req, &out)
}

// Resources lists the resources.
func (c *Controller) Resources(ctx context.Context) ([]api.Resource, error) {
	var out []api.Resource
	return out, c.do(ctx, http.MethodGet, "/v1/resources", nil, &out)
}

// Resource shows one resource, with what its member says of itself.
func (c *Controller) Resource(ctx context.Context, name string) (api.ResourceInfo, error) {
	var out api.ResourceInfo
	return out, c.do(ctx, http.MethodGet, "/v1/resources/"+url.PathEscape(name), nil, &out)
}

// AttachResource asks for resource name to be attached to app.
func (c *Controller) AttachResource(ctx context.Context, name, app string) (api.Resource, error) {
	var out api.Resource
	return out, c.do(ctx, http.MethodPost, "/v1/resources/"+url.PathEscape(name)+"/attachments", api.AttachRequest{App: app}, &out)
}

// DetachResource asks for resource name to be detached from app.
func (c *Controller) DetachResource(ctx context.Context, name, app string) (api.Resource, error) {
	var out api.Resource
	return out, c.do(ctx, http.MethodDelete, "/v1/resources/"+url.PathEscape(name)+"/attachments/"+url.PathEscape(app), nil, &out)
}

// RemoveResource asks for a resource's removal, data included; confirm
// (its name) is needed while apps are attached.
func (c *Controller) RemoveResource(ctx context.Context, name, confirm string) (api.Resource, error) {
	path := "/v1/resources/" + url.PathEscape(name)
	if confirm != "" {
		path += "?confirm=" + url.QueryEscape(confirm)
	}
	var out api.Resource
	return out, c.do(ctx, http.MethodDelete, path, nil, &out)
}

// Psql starts a one-off job running psql against a resource; attach to
// it with Attach(ctx, job.App, job.ID, ...).
func (c *Controller) Psql(ctx context.Context, name string, req api.PsqlRequest) (api.AppJob, error) {
	var out api.AppJob
	return out, c.do(ctx, http.MethodPost, "/v1/resources/"+url.PathEscape(name)+"/psql", req, &out)
}

// CaptureBackup starts a backup of a resource's database (app's, or the
// only attached app's when app is "").
func (c *Controller) CaptureBackup(ctx context.Context, name, app string) (api.Backup, error) {
	var out api.Backup
	return out, c.do(ctx, http.MethodPost, "/v1/resources/"+url.PathEscape(name)+"/backups", api.CaptureRequest{App: app}, &out)
}

// Backups lists backups, newest first: of one resource, or all when
// resource is "".
func (c *Controller) Backups(ctx context.Context, resource string) ([]api.Backup, error) {
	path := "/v1/backups"
	if resource != "" {
		path += "?resource=" + url.QueryEscape(resource)
	}
	var out []api.Backup
	return out, c.do(ctx, http.MethodGet, path, nil, &out)
}

// Backup shows one backup.
func (c *Controller) Backup(ctx context.Context, id string) (api.Backup, error) {
	var out api.Backup
	return out, c.do(ctx, http.MethodGet, "/v1/backups/"+url.PathEscape(id), nil, &out)
}

// DeleteBackup deletes a backup that has ended.
func (c *Controller) DeleteBackup(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/backups/"+url.PathEscape(id), nil, nil)
}

// DownloadBackup opens a backup's dump; the caller closes it.
func (c *Controller) DownloadBackup(ctx context.Context, id string) (io.ReadCloser, error) {
	resp, err := c.send(ctx, http.MethodGet, "/v1/backups/"+url.PathEscape(id)+"/download", nil, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// RestoreBackup starts a one-off job that loads a backup into a
// resource's database; attach to it with Attach(ctx, job.App, job.ID, ...).
func (c *Controller) RestoreBackup(ctx context.Context, name string, req api.RestoreRequest) (api.AppJob, error) {
	var out api.AppJob
	return out, c.do(ctx, http.MethodPost, "/v1/resources/"+url.PathEscape(name)+"/restores", req, &out)
}

// ScheduleBackups sets a resource's daily backup, or clears it when req
// is nil.
func (c *Controller) ScheduleBackups(ctx context.Context, name string, req *api.ScheduleRequest) (api.Resource, error) {
	var out api.Resource
	path := "/v1/resources/" + url.PathEscape(name) + "/backup-schedule"
	if req == nil {
		return out, c.do(ctx, http.MethodDelete, path, nil, &out)
	}
	return out, c.do(ctx, http.MethodPut, path, *req, &out)
}

// RotateCredentials asks for new credentials for app's attachment, or
// every attached app's when app is "".
func (c *Controller) RotateCredentials(ctx context.Context, name, app string) (api.Resource, error) {
	var out api.Resource
	return out, c.do(ctx, http.MethodPost, "/v1/resources/"+url.PathEscape(name)+"/credentials/rotate", api.RotateRequest{App: app}, &out)
}
