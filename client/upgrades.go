package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/pierpaas/pier/api"
)

// StartUpgrade records a rolling upgrade of pier to a binary uploaded
// with PutBlob; the cluster carries it out (see Upgrade to follow it).
func (c *Controller) StartUpgrade(ctx context.Context, req api.UpgradeRequest) (api.Upgrade, error) {
	var out api.Upgrade
	return out, c.do(ctx, http.MethodPost, "/v1/upgrades", req, &out)
}

// Upgrade shows an upgrade and each node's step.
func (c *Controller) Upgrade(ctx context.Context, id string) (api.Upgrade, error) {
	var out api.Upgrade
	return out, c.do(ctx, http.MethodGet, "/v1/upgrades/"+url.PathEscape(id), nil, &out)
}

// Upgrades lists upgrades, newest first.
func (c *Controller) Upgrades(ctx context.Context) ([]api.Upgrade, error) {
	var out []api.Upgrade
	return out, c.do(ctx, http.MethodGet, "/v1/upgrades", nil, &out)
}

// Nodes lists the running pier daemons with their binaries.
func (c *Controller) Nodes(ctx context.Context) ([]api.Node, error) {
	var out []api.Node
	return out, c.do(ctx, http.MethodGet, "/v1/nodes", nil, &out)
}
