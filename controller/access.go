package controller

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// Access rules (api.AccessRule) open one app's jobs to another's; hosts
// enforce them (package host/jobnet). Users manage theirs with
// `pier access`; the resource loop keeps one per attachment.

func accessKey(app, from string) (string, error) { return store.Key(store.NetAccessPrefix, app, from) }

// jobRange is the cluster's job network, to tell a job's own address
// from a host's.
var jobRange = netip.MustParsePrefix(api.DefaultJobNetwork)

// appAddress is where attached apps reach a resource: the member's name
// under pier.internal when jobs have addresses of their own (member, the
// member's registered address, is one), which follows the member wherever
// it runs; otherwise a router's TCP port on the app's host.
func (c *Controller) appAddress(res *api.Resource, member string) string {
	host, port, err := net.SplitHostPort(member)
	if ip, perr := netip.ParseAddr(host); err == nil && perr == nil && jobRange.Contains(ip) {
		return net.JoinHostPort(api.ServiceName(res.App, providers[res.Type].MemberProcess())+"."+api.InternalDomain, port)
	}
	return net.JoinHostPort(cmpOr(c.ResourceHost, DefaultResourceHost), strconv.Itoa(res.Port))
}

// resourceAccess finds the rule that lets app reach res's members.
func (c *Controller) resourceAccess(ctx context.Context, res api.Resource, app string) (string, int64, bool) {
	key, err := accessKey(res.App, app)
	if err != nil {
		return "", 0, false
	}
	r, rev, err := store.Get[api.AccessRule](ctx, c.Client, key)
	return key, rev, err == nil && r.Resource == res.Name
}

// ensureResourceAccess writes the access rule of every attachment that
// lacks one (attachments made before rules existed included).
func (c *Controller) ensureResourceAccess(ctx context.Context, res api.Resource) error {
	for _, a := range res.Attachments {
		if a.State == api.AttachmentDetaching {
			continue
		}
		key, err := accessKey(res.App, a.App)
		if err != nil {
			return err
		}
		rule := api.AccessRule{App: res.App, From: a.App, Resource: res.Name, CreatedAt: time.Now().UTC()}
		if _, err := store.Create(ctx, c.Client, key, rule); err != nil && !errors.Is(err, store.ErrExists) {
			return err
		}
	}
	return nil
}

// listAccess: GET /v1/access[?app=APP]
func (c *Controller) listAccess(w http.ResponseWriter, r *http.Request) error {
	prefix := store.NetAccessPrefix
	if app := r.URL.Query().Get("app"); app != "" {
		p, err := store.Prefix(store.NetAccessPrefix, app)
		if err != nil {
			return invalid("invalid app name %q", app)
		}
		prefix = p
	}
	items, _, err := store.List[api.AccessRule](r.Context(), c.Client, prefix)
	if err != nil {
		return err
	}
	out := make([]api.AccessRule, 0, len(items))
	for _, it := range items {
		out = append(out, it.Value)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// allowAccess: PUT /v1/apps/{app}/access/{from}
func (c *Controller) allowAccess(w http.ResponseWriter, r *http.Request) error {
	rule := api.AccessRule{App: r.PathValue("app"), From: r.PathValue("from"), CreatedAt: time.Now().UTC()}
	if err := rule.Validate(); err != nil {
		return invalid("%v", err)
	}
	for _, name := range []string{rule.App, rule.From} {
		if _, _, err := c.loadApp(r.Context(), name); err != nil {
			return err
		}
	}
	key, err := accessKey(rule.App, rule.From)
	if err != nil {
		return err
	}
	if _, err := store.Create(r.Context(), c.Client, key, rule); err != nil {
		if errors.Is(err, store.ErrExists) {
			return conflict("%s may already reach %s", rule.From, rule.App)
		}
		return err
	}
	writeJSON(w, http.StatusCreated, rule)
	return nil
}

// denyAccess: DELETE /v1/apps/{app}/access/{from}
func (c *Controller) denyAccess(w http.ResponseWriter, r *http.Request) error {
	app, from := r.PathValue("app"), r.PathValue("from")
	key, err := accessKey(app, from)
	if err != nil {
		return invalid("invalid app name")
	}
	rule, rev, err := store.Get[api.AccessRule](r.Context(), c.Client, key)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("no rule lets %s reach %s", from, app)
	}
	if err != nil {
		return err
	}
	if rule.Resource != "" {
		return conflict("%s reaches %s through its attachment to resource %s: detach it instead (pier resources:detach %s -a %s)",
			from, app, rule.Resource, rule.Resource, from)
	}
	if err := store.DeleteIf(r.Context(), c.Client, key, rev); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleteAppAccess removes the rules into and out of a deleted app.
func (c *Controller) deleteAppAccess(ctx context.Context, app string) error {
	items, _, err := store.List[api.AccessRule](ctx, c.Client, store.NetAccessPrefix)
	if err != nil {
		return err
	}
	for _, it := range items {
		if it.Value.App == app || it.Value.From == app {
			if err := store.DeleteIf(ctx, c.Client, it.Key, it.ModRevision); err != nil && !errors.Is(err, store.ErrConflict) {
				return err
			}
		}
	}
	return nil
}
