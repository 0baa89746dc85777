package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/logs"
	"github.com/pierpaas/pier/store"
)

// maxDrains bounds an app's drains: each is a connection the aggregator
// keeps and a copy of every line.
const maxDrains = 10

func newDrainID() string {
	var b [5]byte
	rand.Read(b[:])
	return "d-" + hex.EncodeToString(b[:])
}

// drainsOf lists an app's drains, oldest first.
func (c *Controller) drainsOf(ctx context.Context, app string) ([]api.Drain, error) {
	prefix, err := store.Prefix(logs.DrainsPrefix, app)
	if err != nil {
		return nil, err
	}
	items, _, err := store.List[api.Drain](ctx, c.Client, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]api.Drain, 0, len(items))
	for _, it := range items {
		out = append(out, it.Value)
	}
	slices.SortFunc(out, func(a, b api.Drain) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// addDrain stores a drain unless the app has the URL already or too
// many drains.
func (c *Controller) addDrain(ctx context.Context, d api.Drain) error {
	existing, err := c.drainsOf(ctx, d.App)
	if err != nil {
		return err
	}
	for _, e := range existing {
		if e.URL == d.URL {
			return conflict("app %s already drains to %s (drain %s)", d.App, d.URL, e.ID)
		}
	}
	if len(existing) >= maxDrains {
		return invalid("app %s has %d drains already, the most it may have", d.App, maxDrains)
	}
	key, err := store.Key(logs.DrainsPrefix, d.App, d.ID)
	if err != nil {
		return err
	}
	_, err = store.Create(ctx, c.Client, key, d)
	return err
}

// removeDrain deletes a drain by id, or by URL.
func (c *Controller) removeDrain(ctx context.Context, app, id string) error {
	drains, err := c.drainsOf(ctx, app)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(drains, func(d api.Drain) bool { return d.ID == id || d.URL == id })
	if i < 0 {
		return notFound("app %s has no drain %q", app, id)
	}
	key, err := store.Key(logs.DrainsPrefix, app, drains[i].ID)
	if err != nil {
		return err
	}
	if err := store.Delete(ctx, c.Client, key); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	c.Log.Info("drain removed", "app", app, "drain", drains[i].ID)
	return nil
}

// deleteAppDrains removes every drain of a deleted app, so that a new app
// of the same name does not inherit them.
func (c *Controller) deleteAppDrains(ctx context.Context, app string) error {
	prefix, err := store.Prefix(logs.DrainsPrefix, app)
	if err != nil {
		return err
	}
	_, err = c.Client.Delete(ctx, prefix, clientv3.WithPrefix())
	return err
}

// decodeLimited reads a small JSON answer.
func decodeLimited(resp *http.Response, v any) error {
	return json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(v)
}
