package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/appliance"
	"github.com/pierpaas/pier/discovery"
	"github.com/pierpaas/pier/scheduler"
	"github.com/pierpaas/pier/store"
)

// The resource loop: one server at a time (elected) walks every resource
// record and takes the next step each needs, level-triggered: what it
// does depends only on the records and the cluster as they are, each step
// is idempotent and ends in a write guarded by the revision it read, so
// a step repeated after a crash or a lost election does no harm.
//
//	provisioning: release the system app with the member's process type,
//	              scale it to one, give it a TCP route (the stable
//	              address), wait for the member to answer → available
//	attaching:    database and role, then a release of the app with the
//	              URL → attached
//	detaching:    a release of the app without it, the role dropped →
//	              gone from the record
//	deleting:     the apps' URLs removed, the system app removed (its
//	              jobs stop), its volume removed once they have; then the
//	              secret and the record

// ResourceElection is where the servers' resource loops campaign.
const ResourceElection = "/pier/leaders/resources/"

// resourceInterval is the longest the leader waits between passes.
const resourceInterval = time.Second

// DefaultResourceHost is the host part of the address apps get: a router
// on their own host (pier up; any cluster whose hosts all run a router).
const DefaultResourceHost = "127.0.0.1"

func (c *Controller) kickResources() {
	select {
	case c.resourceKick <- struct{}{}:
	default:
	}
}

// runResources campaigns and, while leading, passes over the resources.
func (c *Controller) runResources(ctx context.Context) {
	for ctx.Err() == nil {
		if err := c.leadResources(ctx); err != nil && ctx.Err() == nil {
			c.Log.Warn("resources: leadership ended", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (c *Controller) leadResources(ctx context.Context) error {
	leader, err := scheduler.Elect(ctx, c.Client, ResourceElection, cmpOr(c.ServerName, "controller"), 5*time.Second)
	if err != nil {
		return err
	}
	defer leader.Close()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Members turning healthy, deployments ending and volumes going are
	// what steps wait for.
	for _, p := range []string{store.ResourcesPrefix, store.ServicesPrefix, store.DeploymentsPrefix, store.VolumesPrefix, store.ResourceBackups} {
		go func() {
			for range c.Client.Watch(clientv3.WithRequireLeader(wctx), p, clientv3.WithPrefix(), clientv3.WithKeysOnly()) {
				c.kickResources()
			}
		}()
	}
	t := time.NewTicker(resourceInterval)
	defer t.Stop()
	for {
		c.resourcePass(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-leader.Done():
			return errors.New("lease lost")
		case <-c.resourceKick:
		case <-t.C:
		}
	}
}

// resourcePass takes one step for every resource that needs one.
func (c *Controller) resourcePass(ctx context.Context) {
	items, _, err := store.List[api.Resource](ctx, c.Client, store.ResourcesPrefix)
	if err != nil {
		c.Log.Warn("resources: cannot list", "err", err)
		return
	}
	for _, it := range items {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := c.stepResource(sctx, it.Value, it.ModRevision)
		cancel()
		if err != nil && ctx.Err() == nil && !errors.Is(err, store.ErrConflict) {
			c.Log.Warn("resources: step failed; retrying", "resource", it.Value.Name, "state", it.Value.State, "err", err)
			c.noteResourceError(ctx, it.Value.Name, err)
		}
	}
	c.backupPass(ctx)
}

// noteResourceError keeps why a step fails in the record, for
// resources:info; written only when it changes.
func (c *Controller) noteResourceError(ctx context.Context, name string, stepErr error) {
	res, rev, err := c.loadResource(ctx, name)
	if err != nil || res.Error == stepErr.Error() {
		return
	}
	res.Error = stepErr.Error()
	store.Update(ctx, c.Client, resourceKey(name), res, rev)
}

// errWait is a step that waits on something else (a deployment, a job).
var errWait = errors.New("waiting")

func (c *Controller) stepResource(ctx context.Context, res api.Resource, rev int64) error {
	p, ok := providers[res.Type]
	if !ok {
		return fmt.Errorf("unknown resource type %q", res.Type)
	}
	sec, secRev, err := store.Get[api.ResourceSecret](ctx, c.Client, secretKey(res.Name))
	if err != nil {
		return fmt.Errorf("secret: %w", err)
	}
	if !res.DeleteRequestedAt.IsZero() {
		return c.teardown(ctx, p, res, rev)
	}
	if err := c.ensureMember(ctx, p, &res, &sec); err != nil {
		if errors.Is(err, errWait) {
			return nil
		}
		return err
	}
	if res.Port == 0 {
		return c.ensureResourceRoute(ctx, res, rev)
	}
	addr, err := c.memberAddr(ctx, &res)
	if err != nil || addr == "" {
		return err // not serving yet: the services watch wakes the loop
	}
	if want := c.appAddress(&res, addr); want != res.Address {
		res.Address, res.UpdatedAt = want, time.Now().UTC()
		_, err := store.Update(ctx, c.Client, resourceKey(res.Name), res, rev)
		return err
	}
	if err := c.ensureResourceAccess(ctx, res); err != nil {
		return err
	}
	if res.State == api.ResourceProvisioning {
		if err := p.Ready(ctx, addr, &sec); err != nil {
			return fmt.Errorf("member %s not ready: %w", addr, err)
		}
		res.State, res.Error, res.UpdatedAt = api.ResourceAvailable, "", time.Now().UTC()
		if _, err := store.Update(ctx, c.Client, resourceKey(res.Name), res, rev); err != nil {
			return err
		}
		c.Log.Info("resource available", "resource", res.Name, "member", addr, "address", res.Address)
		c.kickResources()
		return nil
	}
	for i := range res.Attachments {
		a := res.Attachments[i]
		switch a.State {
		case api.AttachmentPending:
			return c.attachStep(ctx, p, res, rev, sec, secRev, addr, i)
		case api.AttachmentDetaching:
			return c.detachStep(ctx, p, res, rev, sec, secRev, addr, i)
		case api.AttachmentRotating:
			return c.rotateStep(ctx, p, res, rev, sec, secRev, addr, i)
		case api.AttachmentAttached:
			// An app deleted while attached: its role goes too.
			if _, _, err := c.loadApp(ctx, a.App); isNotFound(err) {
				res.Attachments[i].State = api.AttachmentDetaching
				_, err := store.Update(ctx, c.Client, resourceKey(res.Name), res, rev)
				return err
			}
		}
	}
	if res.Error != "" {
		res.Error = ""
		_, err := store.Update(ctx, c.Client, resourceKey(res.Name), res, rev)
		return err
	}
	return nil
}

func isNotFound(err error) bool {
	var ae *api.Error
	return errors.As(err, &ae) && ae.Code == api.ErrCodeNotFound || errors.Is(err, store.ErrNotFound)
}

// ensureMember releases the system app with the member's process type
// and scales it to one job.
func (c *Controller) ensureMember(ctx context.Context, p appliance.Provider, res *api.Resource, sec *api.ResourceSecret) error {
	app, appRev, err := c.loadApp(ctx, res.App)
	if err != nil {
		return fmt.Errorf("system app: %w", err)
	}
	if d, err := c.activeDeployment(ctx, app.Name); err != nil {
		return err
	} else if d != nil {
		return errWait
	}
	if app.Release == "" {
		name, pt, err := p.Process(res, sec)
		if err != nil {
			return err
		}
		_, err = c.newRelease(ctx, app.Name, func(_, next *api.Release) error {
			next.Processes = map[string]api.ProcessType{name: pt}
			return nil
		})
		if err != nil {
			return err
		}
		c.Log.Info("resource member released", "resource", res.Name, "app", app.Name)
		return errWait
	}
	counts, key, fRev, err := c.formationOf(ctx, app)
	if err != nil {
		return err
	}
	rel, err := c.release(ctx, app.Name, app.Release)
	if err != nil {
		return err
	}
	want := map[string]int{}
	for name := range rel.Processes {
		if name != api.ReleaseProcess {
			want[name] = 1
		}
	}
	if maps.Equal(counts, want) {
		return nil
	}
	f := api.Formation{App: app.Name, Release: app.Release, Processes: want, UpdatedAt: time.Now().UTC()}
	tx := store.Txn().Unchanged(appKey(app.Name), appRev)
	if fRev == 0 {
		tx.Create(key, f)
	} else {
		tx.Update(key, f, fRev)
	}
	if _, err := tx.Commit(ctx, c.Client); err != nil {
		return err
	}
	c.Log.Info("resource member scaled", "resource", res.Name, "app", app.Name, "processes", want)
	return nil
}

// ensureResourceRoute gives the member's service a TCP route on the
// routers, whose port is the address apps get, and records it.
func (c *Controller) ensureResourceRoute(ctx context.Context, res api.Resource, rev int64) error {
	rel, err := c.currentRelease(ctx, res.App)
	if err != nil {
		return err
	}
	var service string
	for _, pt := range rel.Processes {
		for _, port := range pt.Ports {
			if port.Service != "" {
				service = port.Service
			}
		}
	}
	if service == "" {
		return fmt.Errorf("system app %s has no service", res.App)
	}
	routes, _, err := store.List[api.Route](ctx, c.Client, store.RoutesPrefix)
	if err != nil {
		return err
	}
	var rt *api.Route
	for _, it := range routes {
		if it.Value.Type == api.RouteTCP && it.Value.Service == service {
			rt = &it.Value
		}
	}
	if rt == nil {
		app, appRev, err := c.loadApp(ctx, res.App)
		if err != nil {
			return err
		}
		port, err := c.freeTCPPort(ctx)
		if err != nil {
			return err
		}
		nr := api.Route{ID: newRouteID(), Type: api.RouteTCP, Service: service, Port: port, CreatedAt: time.Now().UTC()}
		if _, err := store.Txn().Unchanged(appKey(app.Name), appRev).
			Create(store.RoutesPrefix+nr.ID, nr).
			Create(routeIndexKey(nr), routeIndex{Route: nr.ID, Service: nr.Service}).
			Commit(ctx, c.Client); err != nil {
			return err
		}
		c.Log.Info("resource route added", "resource", res.Name, "port", port)
		rt = &nr
	}
	res.Port = rt.Port
	res.Address = net.JoinHostPort(cmpOr(c.ResourceHost, DefaultResourceHost), strconv.Itoa(rt.Port))
	res.UpdatedAt = time.Now().UTC()
	_, err = store.Update(ctx, c.Client, resourceKey(res.Name), res, rev)
	return err
}

func (c *Controller) currentRelease(ctx context.Context, name string) (api.Release, error) {
	app, _, err := c.loadApp(ctx, name)
	if err != nil {
		return api.Release{}, err
	}
	if app.Release == "" {
		return api.Release{}, fmt.Errorf("app %s has no release", name)
	}
	return c.release(ctx, name, app.Release)
}

// memberAddr is the address of a serving (healthy, registered) member,
// or "" when none is.
func (c *Controller) memberAddr(ctx context.Context, res *api.Resource) (string, error) {
	prefix, err := store.Prefix(store.ServicesPrefix, api.ServiceName(res.App, providers[res.Type].MemberProcess()))
	if err != nil {
		return "", err
	}
	insts, _, err := store.List[discovery.Instance](ctx, c.Client, prefix)
	if err != nil || len(insts) == 0 {
		return "", err
	}
	return insts[0].Value.Addr, nil
}

// attachStep makes attachment i's database and role, then the app's
// release with the URL, then marks it attached.
func (c *Controller) attachStep(ctx context.Context, p appliance.Provider, res api.Resource, rev int64,
	sec api.ResourceSecret, secRev int64, addr string, i int) error {
	a := &res.Attachments[i]
	if _, _, err := c.loadApp(ctx, a.App); isNotFound(err) {
		// Deleted before it was attached: nothing was made for it.
		res.Attachments = append(res.Attachments[:i], res.Attachments[i+1:]...)
		_, err := store.Update(ctx, c.Client, resourceKey(res.Name), res, rev)
		return err
	} else if err != nil {
		return err
	}
	pw := sec.Passwords[a.App]
	if pw == "" {
		// The password is kept before it is used, so a step repeated
		// after a crash sets the same one.
		pw = appliance.Password()
		if sec.Passwords == nil {
			sec.Passwords = map[string]string{}
		}
		sec.Passwords[a.App] = pw
		if _, err := store.Update(ctx, c.Client, secretKey(res.Name), sec, secRev); err != nil {
			return err
		}
	}
	if err := p.Bind(ctx, addr, &sec, a, pw); err != nil {
		return err
	}
	version, err := c.setAppEnv(ctx, a.App, a.EnvVar, p.URL(res.Address, a, pw))
	if err != nil {
		return err
	}
	a.State, a.Release = api.AttachmentAttached, version
	res.UpdatedAt = time.Now().UTC()
	if _, err := store.Update(ctx, c.Client, resourceKey(res.Name), res, rev); err != nil {
		return err
	}
	c.Log.Info("resource attached", "resource", res.Name, "app", a.App, "release", version)
	c.kickResources()
	return nil
}

// detachStep releases the app without the URL, drops the role, and
// forgets the attachment and its password.
func (c *Controller) detachStep(ctx context.Context, p appliance.Provider, res api.Resource, rev int64,
	sec api.ResourceSecret, secRev int64, addr string, i int) error {
	a := res.Attachments[i]
	if _, err := c.setAppEnv(ctx, a.App, a.EnvVar, ""); err != nil && !isNotFound(err) {
		return err
	}
	if err := p.Unbind(ctx, addr, &sec, &a); err != nil {
		return err
	}
	res.Attachments = append(res.Attachments[:i], res.Attachments[i+1:]...)
	res.UpdatedAt = time.Now().UTC()
	delete(sec.Passwords, a.App)
	delete(sec.NextPasswords, a.App)
	tx := store.Txn().Update(resourceKey(res.Name), res, rev).Update(secretKey(res.Name), sec, secRev)
	if key, rrev, ok := c.resourceAccess(ctx, res, a.App); ok {
		tx.Delete(key, rrev)
	}
	if _, err := tx.Commit(ctx, c.Client); err != nil {
		return err
	}
	c.Log.Info("resource detached", "resource", res.Name, "app", a.App)
	c.kickResources()
	return nil
}

// setAppEnv makes a release of app with key set to value (unset when
// empty), unless its current release already has it so: a step repeated
// makes no second release. It returns the version that has it. An app
// being deployed is waited for.
func (c *Controller) setAppEnv(ctx context.Context, app, key, value string) (int, error) {
	a, _, err := c.loadApp(ctx, app)
	if err != nil {
		return 0, err
	}
	if a.Release != "" {
		rel, err := c.release(ctx, app, a.Release)
		if err != nil {
			return 0, err
		}
		if have, ok := rel.Env[key]; value == "" && !ok || value != "" && have == value {
			return rel.Version, nil
		}
	}
	res, err := c.newRelease(ctx, app, func(base, next *api.Release) error {
		next.Env = map[string]string{}
		if base != nil {
			next.Artifact, next.Processes = base.Artifact, base.Processes
			maps.Copy(next.Env, base.Env)
		}
		if value == "" {
			delete(next.Env, key)
		} else {
			next.Env[key] = value
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return res.Release.Version, nil
}

// teardown removes a resource marked for removal, one step a pass.
func (c *Controller) teardown(ctx context.Context, p appliance.Provider, res api.Resource, rev int64) error {
	for _, a := range res.Attachments {
		if _, err := c.setAppEnv(ctx, a.App, a.EnvVar, ""); err != nil && !isNotFound(err) {
			return err
		}
	}
	if err := c.removeApp(ctx, res.App); err != nil && !isNotFound(err) {
		return err
	}
	vols, err := c.volumeInfos(ctx, func(v *api.Volume) bool { return v.App == res.App })
	if err != nil {
		return err
	}
	for _, vi := range vols {
		key := store.VolumesPrefix + vi.ID
		switch {
		case len(vi.Jobs) > 0:
			return nil // its jobs are stopping; the volumes watch wakes the loop
		case vi.State == "unbound" || vi.State == "host gone":
			if err := store.DeleteIf(ctx, c.Client, key, vi.rev); err != nil {
				return err
			}
		case vi.DeleteRequestedAt.IsZero():
			v := vi.Volume
			v.DeleteRequestedAt = time.Now().UTC()
			if _, err := store.Update(ctx, c.Client, key, v, vi.rev); err != nil {
				return err
			}
			c.Log.Info("resource volume marked for removal", "resource", res.Name, "volume", vi.ID)
		}
	}
	if len(vols) > 0 {
		// The record stays until its host has removed the data: a new
		// resource of the same name would get a volume of the same id.
		return nil
	}
	if _, err := store.Txn().Delete(resourceKey(res.Name), rev).Commit(ctx, c.Client); err != nil {
		return err
	}
	if err := store.Delete(ctx, c.Client, secretKey(res.Name)); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	c.Log.Info("resource removed", "resource", res.Name)
	return nil
}
