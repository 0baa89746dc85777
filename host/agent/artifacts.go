package agent

import (
	"context"
	"errors"
	"net/url"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/host/artifact"
)

// fetchArtifact fetches a job's artifact from where its release says,
// and if that server cannot give it (it is down, or lost its disk), from
// the other servers: each keeps a copy of every kept blob. The tree is
// owner's (see artifactOwner).
func (a *Agent) fetchArtifact(ctx context.Context, art *api.Artifact, owner *artifact.Owner) (string, error) {
	dir, err := a.artifacts.FetchAs(ctx, art.URI, art.SHA256, owner)
	if err == nil || !fetchElsewhere(err) || ctx.Err() != nil {
		return dir, err
	}
	for _, uri := range a.mirrors(ctx, art.URI) {
		dir, err2 := a.artifacts.FetchAs(ctx, uri, art.SHA256, owner)
		if err2 == nil {
			a.cfg.Log.Info("artifact fetched from another server", "sha256", art.SHA256, "uri", uri, "first_err", err)
			return dir, nil
		}
		if !fetchElsewhere(err2) || ctx.Err() != nil {
			return "", err2
		}
	}
	return "", err
}

// fetchElsewhere says whether another server may succeed where a fetch
// failed: not when the bytes themselves were refused.
func fetchElsewhere(err error) bool {
	for _, bad := range []error{artifact.ErrUnsafe, artifact.ErrLimit, artifact.ErrBadDigest, artifact.ErrUnsupportedURI} {
		if errors.Is(err, bad) {
			return false
		}
	}
	return true
}

// mirrors are uri on each other server listed under api.ServersService.
func (a *Agent) mirrors(ctx context.Context, uri string) []string {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "https" {
		return nil
	}
	servers, err := a.reg.Instances(ctx, api.ServersService)
	if err != nil {
		a.cfg.Log.Warn("cannot list the servers to fetch an artifact from", "err", err)
		return nil
	}
	var out []string
	for _, s := range servers {
		if s.Addr == u.Host {
			continue
		}
		m := *u
		m.Host = s.Addr
		out = append(out, m.String())
	}
	return out
}
