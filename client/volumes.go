package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/pierpaas/pier/api"
)

// Volumes lists the cluster's volumes, or one app's when app is set.
func (c *Controller) Volumes(ctx context.Context, app string) ([]api.VolumeInfo, error) {
	path := "/v1/volumes"
	if app != "" {
		path += "?app=" + url.QueryEscape(app)
	}
	var out []api.VolumeInfo
	return out, c.do(ctx, http.MethodGet, path, nil, &out)
}

// RemoveVolume removes a volume and its data: at once when no live host
// holds it, else its host's agent does it shortly (the answer's State is
// then "removing"). It fails with a conflict while a job uses the volume.
func (c *Controller) RemoveVolume(ctx context.Context, id string) (api.VolumeInfo, error) {
	var out api.VolumeInfo
	return out, c.do(ctx, http.MethodDelete, "/v1/volumes/"+url.PathEscape(id), nil, &out)
}
