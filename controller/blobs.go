package controller

import (
	"context"
	"net/http"
	"os"
	"strings"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/blobstore"
	"github.com/pierpaas/pier/blobstore/replica"
)

// statBlob describes a blob of this server's store, copying it from
// another server first if this one lacks it: a blob uploaded through one
// server is usable through any.
func (c *Controller) statBlob(ctx context.Context, digest string) (blobstore.Blob, error) {
	b, err := c.Blobs.Stat(digest)
	if err == nil || c.Replica == nil {
		return b, err
	}
	if err := c.Replica.Fetch(ctx, digest); err != nil {
		c.Log.Debug("blob not found on any server", "sha256", digest, "err", err)
		return b, blobstore.ErrNotFound
	}
	return c.Blobs.Stat(digest)
}

// openBlob opens a blob as statBlob finds it.
func (c *Controller) openBlob(ctx context.Context, digest string) (*os.File, error) {
	if _, err := c.statBlob(ctx, digest); err != nil {
		return nil, err
	}
	f, _, err := c.Blobs.Open(digest)
	return f, err
}

// blobURI is where hosts fetch a blob from this server.
func (c *Controller) blobURI(digest string) string {
	return strings.TrimSuffix(c.BlobURL, "/") + replica.Path + digest
}

// blobsHandler serves the blobstore under /v1/blobs/: hosts fetch
// artifacts, the CLI uploads slugs. A read of a blob this server lacks
// is served from a copy made from another server, unless a peer asks.
func (c *Controller) blobsHandler() http.Handler {
	blobs := http.StripPrefix("/v1", blobstore.Handler(c.Blobs, c.authenticateBlob))
	return c.withRequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodDelete:
			// Blobs go away by garbage collection only, when no kept
			// release needs them; a client cannot pull one from under a
			// release.
			c.writeError(w, r, api.Errorf(api.ErrCodeBadRequest, "blobs are removed by garbage collection, not by clients"))
			return
		case http.MethodPut, http.MethodPost:
			if err := c.refuseUnderPressure("uploads"); err != nil {
				c.writeError(w, r, err)
				return
			}
		case http.MethodGet, http.MethodHead:
			digest, ok := strings.CutPrefix(r.URL.Path, replica.Path)
			if ok && r.Header.Get(replica.LocalOnlyHeader) == "" && blobstore.ValidDigest(digest) &&
				c.authenticateBlob(r) == nil {
				c.statBlob(r.Context(), digest)
			}
		}
		blobs.ServeHTTP(w, r)
	}))
}
