package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
)

// Waits on one job or deployment, each a watch on the one key that
// answers it. They used to poll the whole cluster's jobs every 100 ms,
// which is slow and, worse, misses what happens between two looks: a
// build that was placed, ran and ended in between was taken for one that
// never started.

// waitPlaced waits until the scheduler has placed app's one-off job id
// and returns its host. The job may have ended already; the caller
// decides what that means.
func (c *Controller) waitPlaced(ctx context.Context, app, id string) (string, error) {
	missing := notFound("app %s has no job %q", app, id)
	if !api.ValidID(id) {
		return "", missing
	}
	o, _, err := store.Get[api.OneOff](ctx, c.Client, scheduler.OneOffPrefix+id)
	if errors.Is(err, store.ErrNotFound) {
		// Not a one-off (or one long gone): a job is placed when it exists.
		j, err := c.findJob(ctx, app, id)
		if err != nil {
			return "", err
		}
		if j.HostID == "" {
			return "", missing
		}
		return j.HostID, nil
	}
	if err != nil {
		return "", err
	}
	if o.App != app {
		return "", missing
	}
	wctx, cancel := context.WithTimeout(ctx, c.AttachWait)
	defer cancel()
	seen := false
	st, ok, err := store.Await(wctx, c.Client, scheduler.OneOffStatusPrefix+id, func(s api.OneOffStatus, ok bool) bool {
		seen = seen || ok
		return s.HostID != "" || (seen && !ok)
	})
	switch {
	case err == nil && st.HostID != "":
		return st.HostID, nil
	case err == nil:
		return "", conflict("job %s was cancelled before it started", id)
	case ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
		why := ""
		if ok && st.Pending != "" {
			why = ": " + st.Pending
		}
		return "", api.Errorf(api.ErrCodeUnavailable, "job %s was not placed on a host within %s%s", id, c.AttachWait, why)
	}
	return "", err
}

// waitEnded waits up to limit for a placed job to end and returns its
// last status.
func (c *Controller) waitEnded(ctx context.Context, id string, limit time.Duration) (api.JobStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	st, _, err := store.Await(ctx, c.Client, store.JobStatusPrefix+id, func(s api.JobStatus, ok bool) bool {
		return ok && s.State.Terminal()
	})
	if err != nil {
		return st, fmt.Errorf("job %s did not report its end: %w", id, err)
	}
	return st, nil
}

// jobFailure says why a job did not complete.
func jobFailure(s api.JobStatus) string {
	switch {
	case s.Error != "":
		return s.Error
	case s.ExitCode != nil:
		return fmt.Sprintf("exit status %d", *s.ExitCode)
	}
	return string(s.State)
}

// waitDeployment waits for a deployment to finish.
func (c *Controller) waitDeployment(ctx context.Context, id string) (api.Deployment, error) {
	d, ok, err := store.Await(ctx, c.Client, store.DeploymentsPrefix+id, func(d api.Deployment, ok bool) bool {
		return !ok || d.State.Done()
	})
	if err == nil && !ok {
		err = fmt.Errorf("%w: deployment %s", store.ErrNotFound, id)
	}
	return d, err
}
