package controller

import (
	"context"
	"errors"
	"net/http"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/registry"
	"github.com/pierpaas/pier/store"
)

// registryHandler serves the OCI distribution API under /v2/: one
// repository per app, authenticated like the blob endpoints (an API key
// as the basic-auth password of user pier, or a host's cluster
// certificate, for pulls by the host agents).
func (c *Controller) registryHandler() (http.Handler, error) {
	var fetch func(context.Context, string) error
	if c.Replica != nil {
		fetch = c.Replica.Fetch
	}
	return registry.Handler(registry.Config{
		Blobs: c.Blobs, Fetch: fetch, KV: c.Client, Auth: c.authenticateBlob,
		Repository: c.repository, UploadDir: c.RegistryUploadDir, Log: c.Log,
		Refuse: func() error { return c.refuseUnderPressure("pushes") },
	})
}

// repository says whether name is an app's repository.
func (c *Controller) repository(ctx context.Context, name string) error {
	if !api.ValidID(name) {
		return registry.ErrNoRepository
	}
	_, _, err := store.Get[api.App](ctx, c.Client, store.AppsPrefix+name)
	if errors.Is(err, store.ErrNotFound) {
		return registry.ErrNoRepository
	}
	return err
}
