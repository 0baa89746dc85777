package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/appliance"
	"github.com/pierpaas/pier/appliance/postgres"
	"github.com/pierpaas/pier/appliance/redis"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
)

// Resources (datastores bound to apps): the API only checks a request
// and records what is asked in the resource's record, in one guarded
// transaction; the resource loop (resources_loop.go) does the work, so a
// request never leaves half-made state, and a server that dies halfway
// leaves the rest to another.

// providers are the appliances by type.
var providers = map[string]appliance.Provider{
	"postgres": postgres.Provider{},
	"redis":    redis.Provider{},
}

// providerTypes lists the known types, for error messages.
func providerTypes() string {
	var names []string
	for n := range providers {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// SystemAppMeta marks an app as a resource's system app, naming it.
const SystemAppMeta = "pier.resource"

func resourceKey(name string) string { return store.ResourcesPrefix + name }
func secretKey(name string) string   { return store.ResourceSecrets + name }

// loadResource reads a resource; a bad or unknown name is a 404.
func (c *Controller) loadResource(ctx context.Context, name string) (api.Resource, int64, error) {
	if !api.ValidID(name) {
		return api.Resource{}, 0, notFound("no resource %q", name)
	}
	res, rev, err := store.Get[api.Resource](ctx, c.Client, resourceKey(name))
	if errors.Is(err, store.ErrNotFound) {
		return res, 0, notFound("no resource %q", name)
	}
	return res, rev, err
}

func (c *Controller) createResource(w http.ResponseWriter, r *http.Request) error {
	var req api.CreateResourceRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	res, err := c.newResource(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, res)
	return nil
}

// newResource records a resource to provision (and attach to req.App):
// the resource loop does the rest.
func (c *Controller) newResource(ctx context.Context, req api.CreateResourceRequest) (api.Resource, error) {
	p, ok := providers[req.Type]
	if !ok {
		return api.Resource{}, invalid("unknown resource type %q (known: %s)", req.Type, providerTypes())
	}
	if req.Name == "" {
		var b [3]byte
		rand.Read(b[:])
		req.Name = p.Type() + "-" + hex.EncodeToString(b[:])
	}
	if err := api.ValidateResourceName(req.Name); err != nil {
		return api.Resource{}, invalid("%v", err)
	}
	if req.SizeMB == 0 {
		req.SizeMB = api.DefaultResourceMB
	}
	if req.SizeMB < 0 || req.SizeMB > api.MaxVolumeMB {
		return api.Resource{}, invalid("size %d MB: a resource's size is between 1 MB and %d MB", req.SizeMB, api.MaxVolumeMB)
	}
	sysApp := p.SystemApp(req.Name)
	if err := api.ValidateAppName(sysApp); err != nil {
		return api.Resource{}, invalid("%v", err)
	}
	now := time.Now().UTC()
	res := api.Resource{
		Name: req.Name, Type: p.Type(), App: sysApp, State: api.ResourceProvisioning, SizeMB: req.SizeMB,
		CreatedAt: now, UpdatedAt: now,
	}
	tx := store.Txn()
	if req.App != "" {
		if !api.ValidID(req.App) {
			return api.Resource{}, invalid("app %q is not a valid app name", req.App)
		}
		app, appRev, err := c.loadApp(ctx, req.App)
		if err != nil {
			return api.Resource{}, err
		}
		if app.Meta[SystemAppMeta] != "" {
			return api.Resource{}, invalid("app %s runs resource %s; attach resources to your own apps", app.Name, app.Meta[SystemAppMeta])
		}
		res.Attachments = []api.Attachment{newAttachment(p, req.App, now)}
		tx.Unchanged(appKey(req.App), appRev)
	}
	sec, err := p.NewSecret(req.Name)
	if err != nil {
		return api.Resource{}, err
	}
	sys := api.App{Name: sysApp, Meta: map[string]string{SystemAppMeta: req.Name}, CreatedAt: now, UpdatedAt: now}
	// The record, its secret and its system app, or none of them.
	_, err = tx.Create(resourceKey(res.Name), res).
		Create(secretKey(res.Name), sec).
		Create(appKey(sysApp), sys).
		Commit(ctx, c.Client)
	var ce *store.ConflictError
	if errors.As(err, &ce) {
		switch ce.Key {
		case resourceKey(res.Name):
			return api.Resource{}, conflict("resource %s already exists", res.Name)
		case appKey(sysApp):
			return api.Resource{}, conflict("an app named %s already exists; give the resource another name", sysApp)
		case appKey(req.App):
			return api.Resource{}, conflict("app %s changed meanwhile; try again", req.App)
		}
		return api.Resource{}, conflict("resource %s changed meanwhile; try again", res.Name)
	}
	if err != nil {
		return api.Resource{}, err
	}
	c.Log.Info("resource requested", "resource", res.Name, "type", res.Type, "app", req.App, "size_mb", res.SizeMB)
	c.kickResources()
	return res, nil
}

func newAttachment(p appliance.Provider, app string, now time.Time) api.Attachment {
	return api.Attachment{App: app, State: api.AttachmentPending, EnvVar: p.EnvVar(), Database: app, Role: app, CreatedAt: now}
}

func (c *Controller) listResources(w http.ResponseWriter, r *http.Request) error {
	items, _, err := store.List[api.Resource](r.Context(), c.Client, store.ResourcesPrefix)
	if err != nil {
		return err
	}
	out := make([]api.Resource, 0, len(items))
	for _, it := range items {
		out = append(out, it.Value)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (c *Controller) getResource(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	res, _, err := c.loadResource(ctx, r.PathValue("name"))
	if err != nil {
		return err
	}
	info := api.ResourceInfo{Resource: res}
	vols, err := c.volumeInfos(ctx, func(v *api.Volume) bool { return v.App == res.App })
	if err != nil {
		return err
	}
	if len(vols) > 0 {
		info.Volume, info.Host = vols[0].ID, vols[0].Host
	}
	if addr, err := c.memberAddr(ctx, &res); err == nil && addr != "" {
		info.Member = addr
		if sec, _, err := store.Get[api.ResourceSecret](ctx, c.Client, secretKey(res.Name)); err == nil {
			ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if stats, err := providers[res.Type].Info(ictx, addr, &sec); err == nil {
				info.Stats = stats
			} else {
				info.Stats = map[string]string{"error": err.Error()}
			}
			cancel()
		}
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

// changeResource applies change to a resource that is not being removed,
// retrying when the loop moved it meanwhile.
func (c *Controller) changeResource(ctx context.Context, name string, change func(*api.Resource) error) (api.Resource, error) {
	for {
		res, rev, err := c.loadResource(ctx, name)
		if err != nil {
			return res, err
		}
		if !res.DeleteRequestedAt.IsZero() {
			return res, conflict("resource %s is being removed", name)
		}
		if err := change(&res); err != nil {
			return res, err
		}
		res.UpdatedAt = time.Now().UTC()
		if _, err := store.Update(ctx, c.Client, resourceKey(name), res, rev); errors.Is(err, store.ErrConflict) {
			continue
		} else if err != nil {
			return res, err
		}
		c.kickResources()
		return res, nil
	}
}

func (c *Controller) attachResource(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req api.AttachRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.App == "" || !api.ValidID(req.App) {
		return invalid("app %q is not a valid app name", req.App)
	}
	if _, _, err := c.loadResource(ctx, r.PathValue("name")); err != nil {
		return err
	}
	app, _, err := c.loadApp(ctx, req.App)
	if err != nil {
		return err
	}
	if app.Meta[SystemAppMeta] != "" {
		return invalid("app %s runs resource %s; attach resources to your own apps", app.Name, app.Meta[SystemAppMeta])
	}
	res, err := c.changeResource(ctx, r.PathValue("name"), func(res *api.Resource) error {
		if a, ok := res.Attachment(req.App); ok {
			return conflict("resource %s is already attached to %s (%s)", res.Name, req.App, a.State)
		}
		if res.App == req.App {
			return invalid("app %s runs resource %s", req.App, res.Name)
		}
		res.Attachments = append(res.Attachments, newAttachment(providers[res.Type], req.App, time.Now().UTC()))
		return nil
	})
	if err != nil {
		return err
	}
	c.Log.Info("resource attachment requested", "resource", res.Name, "app", req.App)
	writeJSON(w, http.StatusAccepted, res)
	return nil
}

func (c *Controller) detachResource(w http.ResponseWriter, r *http.Request) error {
	app := r.PathValue("app")
	res, err := c.changeResource(r.Context(), r.PathValue("name"), func(res *api.Resource) error {
		a, ok := res.Attachment(app)
		if !ok {
			return notFound("resource %s is not attached to %q", res.Name, app)
		}
		a.State = api.AttachmentDetaching
		return nil
	})
	if err != nil {
		return err
	}
	c.Log.Info("resource detachment requested", "resource", res.Name, "app", app)
	writeJSON(w, http.StatusAccepted, res)
	return nil
}

// deleteResource marks a resource for removal; the loop detaches its
// apps and removes its system app, jobs, volume and data. While apps are
// attached it wants ?confirm=NAME: their DATABASE_URL goes away too.
func (c *Controller) deleteResource(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	name := r.PathValue("name")
	for {
		res, rev, err := c.loadResource(ctx, name)
		if err != nil {
			return err
		}
		if !res.DeleteRequestedAt.IsZero() {
			writeJSON(w, http.StatusAccepted, res)
			return nil
		}
		if len(res.Attachments) > 0 && r.URL.Query().Get("confirm") != name {
			var apps []string
			for _, a := range res.Attachments {
				apps = append(apps, a.App)
			}
			return conflict("resource %s is attached to %s; detach it first, or confirm with its name to remove it anyway",
				name, strings.Join(apps, ", "))
		}
		now := time.Now().UTC()
		res.DeleteRequestedAt, res.State, res.UpdatedAt = now, api.ResourceDeleting, now
		if _, err := store.Update(ctx, c.Client, resourceKey(name), res, rev); errors.Is(err, store.ErrConflict) {
			continue
		} else if err != nil {
			return err
		}
		c.Log.Info("resource removal requested", "resource", name)
		c.kickResources()
		writeJSON(w, http.StatusAccepted, res)
		return nil
	}
}

// psql starts a one-off job of the resource's system app that runs the
// datastore's client against its member, with the credentials in its
// environment: the caller attaches to it (GET .../jobs/{id}/attach) and
// never sees a password.
func (c *Controller) psql(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req api.PsqlRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	res, _, err := c.loadResource(ctx, r.PathValue("name"))
	if err != nil {
		return err
	}
	var att *api.Attachment
	if req.App != "" {
		a, ok := res.Attachment(req.App)
		if !ok || a.State != api.AttachmentAttached {
			return notFound("resource %s is not attached to %q", res.Name, req.App)
		}
		att = a
	}
	addr, err := c.memberAddr(ctx, &res)
	if err != nil {
		return err
	}
	if addr == "" {
		return api.Errorf(api.ErrCodeUnavailable, "resource %s is not serving (%s); try again in a moment", res.Name, res.State)
	}
	sec, _, err := store.Get[api.ResourceSecret](ctx, c.Client, secretKey(res.Name))
	if err != nil {
		return err
	}
	app, _, err := c.loadApp(ctx, res.App)
	if err != nil {
		return err
	}
	args, env := providers[res.Type].Client(addr, &sec, att, req.Command)
	o := api.OneOff{
		ID: oneOffID(app.Name), App: app.Name, Release: app.Release, Args: args, Env: env,
		Resources: api.Resources{MemoryMB: 128}, TTY: req.TTY, Stdin: req.Stdin, CreatedAt: time.Now().UTC(),
	}
	if err := o.Validate(); err != nil {
		return invalid("%v", err)
	}
	if _, err := store.Create(ctx, c.Client, scheduler.OneOffPrefix+o.ID, o); err != nil {
		return err
	}
	c.Log.Info("resource client requested", "resource", res.Name, "job", o.ID, "as", cmpOr(req.App, "superuser"))
	// The job's args, never its environment, go back.
	writeJSON(w, http.StatusCreated, api.AppJob{ID: o.ID, App: app.Name, Release: app.Release, Args: slices.Clone(o.Args),
		State: api.JobPending, Desired: api.DesiredRunning, OneOff: true, CreatedAt: o.CreatedAt})
	return nil
}
