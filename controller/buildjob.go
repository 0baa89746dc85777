package controller

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/internal/procfile"
	"github.com/pierpaas/pier/store"
)

// The endpoints a build job calls back (api/build.go). They take the
// build's own token instead of an API key: a build runs the app's code
// and buildpacks, which must not hold a key to the whole cluster, and
// the token is good for one build's cache, slug and result while it runs.

// buildSecret is the controller's private record of a running build.
type buildSecret struct {
	TokenSHA256 string           `json:"token_sha256"`
	Result      *api.BuildResult `json:"result,omitempty"`
}

func (c *Controller) buildJobRoutes() map[string]handlerFunc {
	return map[string]handlerFunc{
		"GET /v1/builds/{id}/cache":   c.getBuildCache,
		"PUT /v1/builds/{id}/cache":   c.putBuildCache,
		"PUT /v1/builds/{id}/slug":    c.putBuildSlug,
		"POST /v1/builds/{id}/result": c.postBuildResult,
	}
}

// wrapBuildJob authenticates a build job by its token.
func (c *Controller) wrapBuildJob(h handlerFunc) http.Handler {
	return c.withRequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := c.authenticateBuildJob(r); err != nil {
			c.writeError(w, r, err)
			return
		}
		if err := h(w, r); err != nil {
			c.writeError(w, r, err)
		}
	}))
}

func (c *Controller) authenticateBuildJob(r *http.Request) error {
	denied := api.Errorf(api.ErrCodeUnauthenticated, "a build token for a running build is required")
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	id := r.PathValue("id")
	if !ok || !api.ValidID(id) {
		return denied
	}
	s, _, err := store.Get[buildSecret](r.Context(), c.Client, store.BuildSecretsPrefix+id)
	if errors.Is(err, store.ErrNotFound) {
		return denied
	}
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(hashHex(token)), []byte(s.TokenSHA256)) != 1 {
		return denied
	}
	return nil
}

// getBuildCache serves the newest build cache the app's earlier builds
// left.
func (c *Controller) getBuildCache(w http.ResponseWriter, r *http.Request) error {
	b, _, err := store.Get[api.Build](r.Context(), c.Client, store.BuildsPrefix+r.PathValue("id"))
	if err != nil {
		return err
	}
	builds, err := c.appBuilds(r.Context(), b.App)
	if err != nil {
		return err
	}
	for _, prev := range builds {
		if prev.ID == b.ID || prev.CacheSHA256 == "" {
			continue
		}
		f, err := c.openBlob(r.Context(), prev.CacheSHA256)
		if err != nil {
			continue // collected; an older one may still be there
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/gzip")
		w.Header().Set("X-Build-Cache-From", prev.ID)
		http.ServeContent(w, r, "cache.tar.gz", prev.CreatedAt, f)
		return nil
	}
	return notFound("no build cache yet")
}

func (c *Controller) putBuildCache(w http.ResponseWriter, r *http.Request) error {
	blob, err := c.Blobs.Put(r.Context(), r.Body, "")
	if err != nil {
		return err
	}
	err = c.editBuild(r, func(b *api.Build) { b.CacheSHA256 = blob.SHA256 })
	if err == nil {
		writeJSON(w, http.StatusCreated, blob)
	}
	return err
}

func (c *Controller) putBuildSlug(w http.ResponseWriter, r *http.Request) error {
	blob, err := c.Blobs.Put(r.Context(), r.Body, "")
	if err != nil {
		return err
	}
	err = c.editBuild(r, func(b *api.Build) {
		b.Slug = &api.Artifact{Type: "slug", URI: c.blobURI(blob.SHA256), SHA256: blob.SHA256, Size: blob.Size}
	})
	if err == nil {
		writeJSON(w, http.StatusCreated, blob)
	}
	return err
}

func (c *Controller) postBuildResult(w http.ResponseWriter, r *http.Request) error {
	var res api.BuildResult
	if err := decode(w, r, &res); err != nil {
		return err
	}
	for name, cmd := range res.ProcessTypes {
		if !api.ValidID(name) || strings.TrimSpace(cmd) == "" {
			return invalid("process type %q: a name of lower-case letters, digits and dashes, and a command", name)
		}
	}
	id := r.PathValue("id")
	for {
		s, rev, err := store.Get[buildSecret](r.Context(), c.Client, store.BuildSecretsPrefix+id)
		if err != nil {
			return err
		}
		s.Result = &res
		if _, err = store.Update(r.Context(), c.Client, store.BuildSecretsPrefix+id, s, rev); !errors.Is(err, store.ErrConflict) {
			if err != nil {
				return err
			}
			break
		}
	}
	if err := c.editBuild(r, func(b *api.Build) { b.Buildpacks = res.Buildpacks }); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// editBuild changes the build a build job reports on.
func (c *Controller) editBuild(r *http.Request, fn func(*api.Build)) error {
	key := store.BuildsPrefix + r.PathValue("id")
	for {
		b, rev, err := store.Get[api.Build](r.Context(), c.Client, key)
		if err != nil {
			return err
		}
		fn(&b)
		if _, err = store.Update(r.Context(), c.Client, key, b, rev); !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
}

// buildResult is what a build job reported, once it has.
func (c *Controller) buildResult(ctx context.Context, id string) (api.BuildResult, error) {
	s, _, err := store.Get[buildSecret](ctx, c.Client, store.BuildSecretsPrefix+id)
	if err != nil {
		return api.BuildResult{}, err
	}
	if s.Result == nil {
		return api.BuildResult{}, errors.New("the builder reported no result")
	}
	return *s.Result, nil
}

// slugProcessTypes are the process types of a release built from a slug:
// the Procfile's, each run by the slug runner, which sets up the
// environment the buildpacks prepared (.profile.d) before the command.
func slugProcessTypes(app string, cmds map[string]string) map[string]api.ProcessType {
	procs := procfile.ProcessTypes(app, procfile.Procfile(cmds))
	for name, p := range procs {
		p.Args = []string{api.PierBinary, "slugrun", "--", procfile.Command(cmds[name])}
		procs[name] = p
	}
	return procs
}
