package controller

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/blobstore"
	"github.com/pierpaas/pier/registry"
	"github.com/pierpaas/pier/store"
)

// registryHandler serves the OCI distribution API under /v2/: one
// repository per app, authenticated by an API key as the basic-auth
// password of user pier, or for pulls by a host's cluster certificate.
func (c *Controller) registryHandler() (http.Handler, error) {
	var fetch func(context.Context, string) error
	if c.Replica != nil {
		fetch = c.Replica.Fetch
	}
	return registry.Handler(registry.Config{
		Blobs: c.Blobs, Fetch: fetch, KV: c.Client, Auth: c.authenticateRegistry,
		Repository: c.repository, UploadDir: c.RegistryUploadDir, Log: c.Log,
		Refuse: func() error { return c.refuseUnderPressure("pushes") },
	})
}

// authenticateRegistry lets hosts pull with their cluster certificate;
// pushes and deletes need a user's API key, whatever certificate comes
// with them: a host has no business changing an image.
func (c *Controller) authenticateRegistry(r *http.Request) error {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return c.authenticateBlob(r)
	}
	return c.authenticate(r)
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

// checkImageArtifact checks an image artifact: its URI must pin the image
// by the digest the artifact names, so that every job of the release
// runs the same bytes whatever the tag says later.
func checkImageArtifact(a api.Artifact) (api.Artifact, error) {
	repo, digest, ok := strings.Cut(a.URI, "@")
	if !ok || repo == "" || strings.ContainsAny(repo, " \t\n") {
		return a, invalid("image artifact: uri %q is not REGISTRY/REPOSITORY@sha256:DIGEST", a.URI)
	}
	if digest != "sha256:"+a.SHA256 || !blobstore.ValidDigest(a.SHA256) {
		return a, invalid("image artifact: uri %q is not pinned to sha256:%s", a.URI, a.SHA256)
	}
	return a, nil
}
