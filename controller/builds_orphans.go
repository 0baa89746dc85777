package controller

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// A build is run by the server that took the push, start to end. Its
// secret (the hash of the build job's token) lives on a lease that
// server keeps alive while the build runs, and the server deletes it
// when it records the build's end. So a build that is neither succeeded
// nor failed and has no secret lost its server: the secret's lease
// expired with it. Reading such a build (pier builds, builds:info)
// records it as failed, so it does not show as running forever; the
// build job, if it still runs, can no longer upload with its token.

// buildLeaseTTL is how long a build outlives its server as "running".
const buildLeaseTTL = 10 // seconds

// errBuildOrphaned is the error of a build whose server stopped.
const errBuildOrphaned = "the server running the build stopped before it finished; push again"

// buildSession is the lease a build's secret lives on; its Close (at the
// build's end) revokes it.
func (c *Controller) buildSession() (*concurrency.Session, error) {
	return concurrency.NewSession(c.Client, concurrency.WithTTL(buildLeaseTTL))
}

// settleOrphans records the builds among bs whose server stopped as
// failed, in bs too.
func (c *Controller) settleOrphans(ctx context.Context, bs []api.Build) error {
	for i := range bs {
		b := &bs[i]
		if b.State != api.BuildPending && b.State != api.BuildRunning {
			continue
		}
		_, _, err := store.Get[buildSecret](ctx, c.Client, store.BuildSecretsPrefix+b.ID)
		if !errors.Is(err, store.ErrNotFound) {
			if err != nil {
				return err
			}
			continue // its server keeps it: still going
		}
		if err := c.failOrphan(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// failOrphan records b as failed unless it ended meanwhile, and leaves
// in b what is recorded.
func (c *Controller) failOrphan(ctx context.Context, b *api.Build) error {
	for {
		saved, rev, err := store.Get[api.Build](ctx, c.Client, store.BuildsPrefix+b.ID)
		if err != nil {
			return err
		}
		if saved.State == api.BuildPending || saved.State == api.BuildRunning {
			saved.State, saved.Error, saved.FinishedAt = api.BuildFailed, errBuildOrphaned, time.Now().UTC()
			if _, err = store.Update(ctx, c.Client, store.BuildsPrefix+b.ID, saved, rev); errors.Is(err, store.ErrConflict) {
				continue
			} else if err != nil {
				return err
			}
			c.Log.Warn("build orphaned: its server stopped", "app", saved.App, "build", saved.ID)
		}
		*b = saved
		return nil
	}
}
