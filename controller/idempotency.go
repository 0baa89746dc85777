package controller

import (
	"context"
	"errors"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// replayWindow is how many of an app's newest releases a request's
// idempotency key is looked for in: a client sends a request again
// within seconds, not after other releases.
const replayWindow = 5

type idempotencyKeyCtx struct{}

// withIdempotencyKey carries a request's IdempotencyHeader to newRelease.
func withIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idempotencyKeyCtx{}, key)
}

func idempotencyKey(ctx context.Context) string {
	k, _ := ctx.Value(idempotencyKeyCtx{}).(string)
	return k
}

// checkIdempotencyKey refuses a key that is not a short printable token.
func checkIdempotencyKey(k string) error {
	if len(k) > 128 {
		return badRequest("%s: at most 128 characters", api.IdempotencyHeader)
	}
	for _, r := range k {
		if r < '!' || r > '~' {
			return badRequest("%s: printable ASCII without spaces", api.IdempotencyHeader)
		}
	}
	return nil
}

// replayed finds the release a request with key already made among the
// app's newest releases, with its deployment.
func (c *Controller) replayed(ctx context.Context, app api.App, key string) (api.ReleaseResult, bool, error) {
	for v := app.LatestVersion; v > 0 && v > app.LatestVersion-replayWindow; v-- {
		rel, err := c.release(ctx, app.Name, api.ReleaseID(app.Name, v))
		if errors.Is(err, &api.Error{Code: api.ErrCodeNotFound}) {
			continue
		}
		if err != nil {
			return api.ReleaseResult{}, false, err
		}
		if rel.RequestKey != key {
			continue
		}
		d, _, err := store.Get[api.Deployment](ctx, c.Client, store.DeploymentsPrefix+rel.ID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return api.ReleaseResult{}, false, err
		}
		return api.ReleaseResult{Release: rel, Deployment: d}, true, nil
	}
	return api.ReleaseResult{}, false, nil
}
