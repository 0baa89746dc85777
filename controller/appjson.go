package controller

import (
	"context"
	"fmt"
	"io"
	"maps"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/internal/appjson"
	"github.com/pierpaas/pier/internal/procfile"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
)

// A build whose source has an app.json reports its text, and the release
// is made from what it declares (internal/appjson): cron entries become
// cron process types, health checks and placement are set on the
// process types, formation quantities apply to process types new to the
// app, and the scripts run around the deploy. The builder has checked the
// manifest already, to show the user the line of a mistake; it is read
// again here because a build job runs the app's code and is not trusted.
//
// Each deploy's app.json is the source of truth for what it governs: a
// cron entry removed from it is no longer a process type, and schedules,
// health checks and placement set through the API are replaced by the
// manifest's (or their defaults). A deploy without app.json changes
// nothing it did not change before: placement set by an earlier
// manifest stays, as if set through the API.

// releaseManifest reads a build's app.json, if it had one, and returns it
// with the commands by process type, the manifest's added.
func releaseManifest(result api.BuildResult) (*appjson.Manifest, map[string]string, error) {
	cmds := maps.Clone(result.ProcessTypes)
	if result.AppJSON == "" {
		return nil, cmds, nil
	}
	m, err := appjson.Parse([]byte(result.AppJSON))
	if err != nil {
		return nil, nil, invalid("%v", err)
	}
	if err := m.Commands(cmds); err != nil {
		return nil, nil, invalid("%v", err)
	}
	return m, cmds, nil
}

// postdeployWait bounds a postdeploy script's run.
const postdeployWait = 10 * time.Minute

// runPostdeploy runs the manifest's postdeploy scripts, in order, each as
// a one-off job of the release just deployed, showing their output. A
// failure does not undo the deploy, which has happened: it is reported,
// so that the push fails and the user looks.
func (c *Controller) runPostdeploy(ctx context.Context, rel api.Release, m *appjson.Manifest, first bool, out io.Writer) error {
	for _, cmd := range m.Postdeploy(first) {
		o := api.OneOff{ID: newID(rel.App, "postdeploy"), App: rel.App, Release: rel.ID,
			Args: []string{api.PierBinary, "slugrun", "--", procfile.Command(cmd)}, CreatedAt: time.Now().UTC()}
		if err := o.Validate(); err != nil {
			return err
		}
		if _, err := store.Create(ctx, c.Client, scheduler.OneOffPrefix+o.ID, o); err != nil {
			return err
		}
		fmt.Fprintf(out, "-----> Running postdeploy of v%d in job %s: %s\n", rel.Version, o.ID, cmd)
		hostID, err := c.waitPlaced(ctx, rel.App, o.ID)
		if err != nil {
			return fmt.Errorf("postdeploy could not start: %w", err)
		}
		c.followJob(ctx, hostID, o.ID, out)
		st, err := c.waitEnded(ctx, o.ID, postdeployWait)
		if err != nil {
			return fmt.Errorf("postdeploy: %w", err)
		}
		if st.State != api.JobComplete {
			return fmt.Errorf("postdeploy failed: %s; v%d is deployed all the same", jobFailure(st), rel.Version)
		}
	}
	return nil
}

// requestManifest applies the app.json a release request carries (pier
// deploy --no-build) to its process types, which the client made from
// the Procfile and the manifest's commands, and returns its quantities.
// Its postdeploy scripts are not run: no build waits on that deploy.
func requestManifest(req api.CreateReleaseRequest) (map[string]int, error) {
	if req.AppJSON == "" {
		return nil, nil
	}
	m, err := appjson.Parse([]byte(req.AppJSON))
	if err != nil {
		return nil, invalid("%v", err)
	}
	if err := m.Configure(req.Processes); err != nil {
		return nil, invalid("%v", err)
	}
	return m.Quantities(), nil
}

// addonsWait bounds how long a first deploy waits for its add-ons.
const addonsWait = 3 * time.Minute

// provisionAddons gives an app, on its first deploy, the resources its
// app.json's addons ask for, and waits until each is attached: the app
// then runs with DATABASE_URL or REDIS_URL, as a Heroku app gets its
// add-ons with its first release. It returns the version of the release
// that carries them all, for the postdeploy scripts (Heroku runs them
// with the add-ons).
func (c *Controller) provisionAddons(ctx context.Context, app string, m *appjson.Manifest, out io.Writer) (version int, err error) {
	for _, typ := range m.Resources() {
		res, err := c.newResource(ctx, api.CreateResourceRequest{Type: typ, App: app})
		if err != nil {
			return 0, fmt.Errorf("add-on %s: %w", typ, err)
		}
		fmt.Fprintf(out, "-----> Provisioning %s (%s) for %s\n", res.Name, typ, app)
		wctx, cancel := context.WithTimeout(ctx, addonsWait)
		got, ok, err := store.Await(wctx, c.Client, resourceKey(res.Name), func(r api.Resource, ok bool) bool {
			if !ok {
				return true
			}
			a, found := r.Attachment(app)
			return found && a.State == api.AttachmentAttached
		})
		cancel()
		switch {
		case err != nil:
			return 0, fmt.Errorf("add-on %s is not attached after %s (see pier resources:info %s): %w", res.Name, addonsWait, res.Name, err)
		case !ok:
			return 0, fmt.Errorf("add-on %s was removed while it was being provisioned", res.Name)
		}
		a, _ := got.Attachment(app)
		fmt.Fprintf(out, "       %s attached as %s in v%d\n", res.Name, a.EnvVar, a.Release)
		version = max(version, a.Release)
	}
	// The release with the add-ons' URLs rolls out like any other.
	d, err := c.waitDeployment(ctx, api.ReleaseID(app, version))
	if err != nil {
		return 0, err
	}
	if d.State != api.DeployComplete {
		return 0, fmt.Errorf("deployment of v%d with the add-ons %s: %s", version, d.State, d.Reason)
	}
	fmt.Fprintf(out, "=====> %s v%d deployed with its add-ons\n", app, version)
	return version, nil
}
