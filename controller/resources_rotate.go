package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/appliance"
	"github.com/pierpaas/pier/store"
)

// Credential rotation (pg:credentials:rotate): the API marks attachments
// rotating; the resource loop then, one step a pass,
//
//  1. keeps a new password in the secret (before any use, so a repeated
//     step sets the same one);
//  2. makes the attachment's next login with it, beside the current one;
//  3. releases the app with the new URL and waits for that deployment:
//     meanwhile old jobs log in with the old credentials, new ones with
//     the new, and both work;
//  4. retires the old login once the deployment is complete (no job of the
//     old release is left), and records the new one.
//
// A deployment that fails leaves the old credentials in place (the app
// still runs the old release) and retires the new login instead.

func (c *Controller) rotateCredentials(w http.ResponseWriter, r *http.Request) error {
	var req api.RotateRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	res, err := c.changeResource(r.Context(), r.PathValue("name"), func(res *api.Resource) error {
		if _, ok := providers[res.Type].(appliance.Rotator); !ok {
			return invalid("resources of type %s have no credentials to rotate", res.Type)
		}
		n := 0
		for i := range res.Attachments {
			a := &res.Attachments[i]
			if req.App != "" && a.App != req.App {
				continue
			}
			switch a.State {
			case api.AttachmentAttached:
				a.State = api.AttachmentRotating
				n++
			case api.AttachmentRotating:
				n++ // asked twice: one rotation
			}
		}
		if n == 0 && req.App != "" {
			return notFound("resource %s is not attached to %q", res.Name, req.App)
		}
		if n == 0 {
			return invalid("resource %s has no attached app whose credentials to rotate", res.Name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.Log.Info("credential rotation requested", "resource", res.Name, "app", req.App)
	writeJSON(w, http.StatusAccepted, res)
	return nil
}

// rotateStep takes attachment i's rotation one step further.
func (c *Controller) rotateStep(ctx context.Context, p appliance.Provider, res api.Resource, rev int64,
	sec api.ResourceSecret, secRev int64, addr string, i int) error {
	a := &res.Attachments[i]
	rot, ok := p.(appliance.Rotator)
	if !ok {
		a.State = api.AttachmentAttached
		_, err := store.Update(ctx, c.Client, resourceKey(res.Name), res, rev)
		return err
	}
	pw := sec.NextPasswords[a.App]
	if pw == "" {
		if sec.NextPasswords == nil {
			sec.NextPasswords = map[string]string{}
		}
		sec.NextPasswords[a.App] = appliance.Password()
		if _, err := store.Update(ctx, c.Client, secretKey(res.Name), sec, secRev); err != nil {
			return err
		}
		c.kickResources()
		return nil
	}
	next := *a
	next.Login = rot.NextLogin(a)
	if err := rot.AddLogin(ctx, addr, &sec, a, next.Login, pw); err != nil {
		return err
	}
	d, err := c.releaseEnv(ctx, a.App, a.EnvVar, p.URL(res.Address, &next, pw))
	if isNotFound(err) {
		// The app is gone: the attached case of the loop detaches it.
		a.State = api.AttachmentAttached
		_, err := store.Update(ctx, c.Client, resourceKey(res.Name), res, rev)
		return err
	}
	if err != nil {
		return err
	}
	if !d.State.Done() {
		return nil // the deployments watch wakes the loop
	}
	if d.State == api.DeployComplete && d.OldRelease != "" {
		// Old jobs stopping may still open a connection: retire their
		// login once they have ended (the loop passes every second).
		if left, err := c.releaseJobsLeft(ctx, a.App, d.OldRelease); err != nil || left {
			return err
		}
	}
	retire, outcome := a.LoginRole(), "rotated"
	if d.State == api.DeployComplete {
		a.Login, a.Release = next.Login, d.Version
		sec.Passwords[a.App] = pw
		res.Error = ""
	} else {
		// The app runs the old release, with the old credentials: keep
		// those, and take back the new ones.
		retire, outcome = next.Login, "rotation abandoned"
		res.Error = fmt.Sprintf("rotating %s's credentials: deployment of v%d %s (%s); the old credentials stay", a.App, d.Version, d.State, d.Reason)
	}
	if err := rot.RetireLogin(ctx, addr, &sec, a, retire); err != nil {
		return err
	}
	a.State = api.AttachmentAttached
	delete(sec.NextPasswords, a.App)
	res.UpdatedAt = time.Now().UTC()
	if _, err := store.Txn().Update(resourceKey(res.Name), res, rev).Update(secretKey(res.Name), sec, secRev).Commit(ctx, c.Client); err != nil {
		return err
	}
	c.Log.Info("resource credentials "+outcome, "resource", res.Name, "app", a.App, "login", a.LoginRole(), "release", d.Version)
	c.kickResources()
	return nil
}

// releaseEnv is the deployment of app's release with key set to value:
// the newest release made or queued if it has it so (a repeated step
// makes no second release), else a new one.
func (c *Controller) releaseEnv(ctx context.Context, app, key, value string) (api.Deployment, error) {
	a, _, err := c.loadApp(ctx, app)
	if err != nil {
		return api.Deployment{}, err
	}
	newest := a.Release
	queue, err := c.unfinishedDeployments(ctx, app)
	if err != nil {
		return api.Deployment{}, err
	}
	if len(queue) > 0 {
		newest = queue[len(queue)-1].NewRelease
	}
	if newest != "" {
		rel, err := c.release(ctx, app, newest)
		if err != nil {
			return api.Deployment{}, err
		}
		if rel.Env[key] == value {
			d, _, err := store.Get[api.Deployment](ctx, c.Client, store.DeploymentsPrefix+rel.ID)
			if errors.Is(err, store.ErrNotFound) && rel.ID == a.Release {
				// Deployed long ago, its record gone.
				return api.Deployment{ID: rel.ID, App: app, NewRelease: rel.ID, Version: rel.Version, State: api.DeployComplete}, nil
			}
			return d, err
		}
	}
	rr, err := c.newRelease(ctx, app, func(base, next *api.Release) error {
		next.Env = map[string]string{}
		if base != nil {
			next.Artifact, next.Processes = base.Artifact, base.Processes
			maps.Copy(next.Env, base.Env)
		}
		next.Env[key] = value
		return nil
	})
	return rr.Deployment, err
}

// releaseJobsLeft reports whether app has jobs of release that have not
// ended.
func (c *Controller) releaseJobsLeft(ctx context.Context, app, release string) (bool, error) {
	jobs, err := c.appJobs(ctx, app)
	if err != nil {
		return false, err
	}
	for _, j := range jobs.Jobs {
		if j.Release == release && !j.OneOff && !j.State.Terminal() {
			return true, nil
		}
	}
	return false, nil
}
