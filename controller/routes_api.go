package controller

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// An app's routes. A route belongs to the app whose process types it
// sends traffic to (service "<type>.<app>"); the controller is the only
// writer of routes, and the router builds its tables from all of them.
//
// Uniqueness. Two routes may not claim one address: the same domain and
// path (after api.CanonicalPath: "/api/" is "/api"), or the same tcp
// port, whatever their apps. Each route owns an index key under
// store.RouteIndexPrefix (http/<domain><path> or tcp/<port>) that is
// created in the same transaction as the route, guarded to be absent, and
// deleted in the same transaction as the route. So the check is etcd's,
// atomic, and costs one key, not a read of every route: two concurrent
// requests for one domain cannot both succeed. An index key whose route
// is gone (which only a hand edit of the store can leave behind) is
// cleared when it gets in the way. The transaction also guards the app's
// record, so a route is never added to an app that was deleted, or whose
// current release changed, since the request checked its service.
//
// Secrets. A route's TLS private key is stored (the routers need it) but
// never sent back: answers carry the certificate (public; clients show
// its expiry from it) and an empty key_pem.

// DefaultTCPPortRange is the router ports TCP routes get when the
// controller is configured with none. It stays clear of the host agents'
// default job port range (21000-32000) and of Linux's default ephemeral
// ports (32768-60999).
var DefaultTCPPortRange = [2]int{20000, 20999}

const (
	// routeIDPrefix starts the ids of stored routes; autoRoutePrefix is
	// reserved for the router's automatic routes (router.AppRoute), which
	// are never stored, so the two can never be confused.
	routeIDPrefix   = "r-"
	autoRoutePrefix = "auto-"
	// routeRetries bounds how often a route change is re-tried when what
	// it decided from changed under it.
	routeRetries = 20
)

// routeIndex is the value of an index key: the route that owns the
// address, and its service, to say who holds it in a conflict.
type routeIndex struct {
	Route   string `json:"route"`
	Service string `json:"service"`
}

// routeIndexKey is the key that makes rt's address unique.
func routeIndexKey(rt api.Route) string {
	if rt.Type == api.RouteTCP {
		return store.RouteIndexPrefix + "tcp/" + strconv.Itoa(rt.Port)
	}
	// A domain never holds '/', so domain and path cannot run together
	// ambiguously.
	return store.RouteIndexPrefix + "http/" + rt.Domain + api.CanonicalPath(rt.Path)
}

// address is how a route's address reads in messages.
func address(rt api.Route) string {
	if rt.Type == api.RouteTCP {
		return fmt.Sprintf("tcp port %d", rt.Port)
	}
	return fmt.Sprintf("http://%s%s", rt.Domain, api.CanonicalPath(rt.Path))
}

func newRouteID() string {
	var b [6]byte
	rand.Read(b[:])
	return routeIDPrefix + hex.EncodeToString(b[:])
}

// redact is a copy of rt fit to be sent: without its private key.
func redact(rt api.Route) api.Route {
	if rt.TLS != nil {
		rt.TLS = &api.RouteTLS{CertPEM: rt.TLS.CertPEM}
	}
	return rt
}

func (c *Controller) listRoutes(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("app")
	if _, _, err := c.loadApp(r.Context(), name); err != nil {
		return err
	}
	items, _, err := store.List[api.Route](r.Context(), c.Client, store.RoutesPrefix)
	if err != nil {
		return err
	}
	routes := []api.Route{}
	for _, it := range items {
		if routeOfApp(it.Value, name) {
			routes = append(routes, redact(it.Value))
		}
	}
	sort.Slice(routes, func(i, j int) bool {
		a, b := routes[i], routes[j]
		if a.Type != b.Type {
			return a.Type < b.Type // http before tcp
		}
		if a.Domain != b.Domain {
			return a.Domain < b.Domain
		}
		if pa, pb := api.CanonicalPath(a.Path), api.CanonicalPath(b.Path); pa != pb {
			return pa < pb
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.ID < b.ID
	})
	writeJSON(w, http.StatusOK, routes)
	return nil
}

func (c *Controller) createRoute(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	name := r.PathValue("app")
	var req api.Route
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if _, _, err := c.loadApp(ctx, name); err != nil {
		return err
	}
	if err := c.checkNewRoute(&req, name); err != nil {
		return err
	}
	for range routeRetries {
		app, appRev, err := c.loadApp(ctx, name)
		if err != nil {
			return err
		}
		if err := c.checkRouteService(ctx, req.Service, app); err != nil {
			return err
		}
		rt := req
		rt.ID = newRouteID()
		rt.CreatedAt = time.Now().UTC()
		autoPort := rt.Type == api.RouteTCP && rt.Port == 0
		if autoPort {
			if rt.Port, err = c.freeTCPPort(ctx); err != nil {
				return err
			}
		}
		key, ikey := store.RoutesPrefix+rt.ID, routeIndexKey(rt)
		_, err = store.Txn().
			Unchanged(appKey(name), appRev).
			Create(key, rt).
			Create(ikey, routeIndex{Route: rt.ID, Service: rt.Service}).
			Commit(ctx, c.Client)
		var ce *store.ConflictError
		switch {
		case err == nil:
			c.Log.Info("route added", "app", name, "route", rt.ID, "address", address(rt), "service", rt.Service)
			writeJSON(w, http.StatusCreated, redact(rt))
			return nil
		case !errors.As(err, &ce):
			return err
		case ce.Key != ikey:
			continue // the app changed (a deploy), or an id collided: decide again
		}
		holder, held, err := c.indexHolder(ctx, ikey)
		switch {
		case err != nil:
			return err
		case !held || autoPort:
			continue // a stale index entry cleared, or another port to try
		case rt.Type == api.RouteTCP:
			return conflict("tcp port %d is taken by route %s (service %s)", rt.Port, holder.Route, holder.Service)
		default:
			return conflict("%s is already routed, by route %s to service %s; remove that route first",
				address(rt), holder.Route, holder.Service)
		}
	}
	return conflict("routes changed concurrently; try again")
}

// checkNewRoute fills in a requested route's defaults and checks what can
// be checked without the store.
func (c *Controller) checkNewRoute(rt *api.Route, app string) error {
	if rt.ID != "" {
		return invalid("the controller chooses route ids; leave id out")
	}
	if rt.Type == "" {
		return invalid("a route needs a type: http or tcp")
	}
	if rt.Service == "" {
		rt.Service = api.ServiceName(app, "web")
	}
	if !routeOfApp(*rt, app) {
		return invalid("service %q is not one of app %s's: a route sends traffic to a process type of its app, TYPE.%s (like web.%s)",
			rt.Service, app, app, app)
	}
	// Validate wants an id, and names it in its messages; this route has
	// none yet.
	const placeholder = "new"
	check := *rt
	check.ID = placeholder
	if check.Type == api.RouteTCP && check.Port == 0 {
		check.Port = 1 // to be allocated
	}
	if err := check.Validate(); err != nil {
		return invalid("%s", strings.TrimPrefix(err.Error(), "route "+placeholder+": "))
	}
	switch rt.Type {
	case api.RouteTCP:
		if lo, hi := c.TCPPortRange[0], c.TCPPortRange[1]; rt.Port != 0 && (rt.Port < lo || rt.Port > hi) {
			return invalid("tcp port %d is outside the routers' tcp range %d-%d; pick one inside it, or none to get a free one", rt.Port, lo, hi)
		}
	case api.RouteHTTP:
		if owner := c.autoDomainOwner(rt.Domain); owner != "" && owner != app {
			return invalid("domain %s is app %s's automatic domain; only that app may route it", rt.Domain, owner)
		}
		if rt.TLS != nil {
			if err := checkCert(rt.TLS.CertPEM, rt.Domain); err != nil {
				return invalid("tls: %v", err)
			}
		}
	}
	return nil
}

// checkCert checks that a route's certificate (already known to match its
// key) is for its domain and still valid.
func checkCert(certPEM, domain string) error {
	block, _ := pem.Decode([]byte(certPEM))
	if block == nil {
		return errors.New("no PEM certificate")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return err
	}
	if err := leaf.VerifyHostname(domain); err != nil {
		return fmt.Errorf("the certificate is not for %s: %v", domain, err)
	}
	if now := time.Now(); now.After(leaf.NotAfter) {
		return fmt.Errorf("the certificate expired on %s", leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	return nil
}

// autoDomainOwner is the app whose automatic route (router.AppRoute,
// "<app>.<cluster domain>") domain is, or "" when it is none's. Such a
// domain belongs to the app of that name, existing or not: a stored
// route for it would take the app's traffic away.
func (c *Controller) autoDomainOwner(domain string) string {
	cd := c.clusterDomain()
	if cd == "" {
		return ""
	}
	label, ok := strings.CutSuffix(domain, "."+cd)
	if !ok || strings.Contains(label, ".") || api.ValidateAppName(label) != nil {
		return ""
	}
	return label
}

// clusterDomain is the domain automatic routes live under, from AppURL
// ("http://{app}.localhost:8080" is "localhost"); "" when unknown.
func (c *Controller) clusterDomain() string {
	const probe = "x"
	u, err := url.Parse(strings.ReplaceAll(c.AppURL, "{app}", probe))
	if err != nil {
		return ""
	}
	d, _ := strings.CutPrefix(u.Hostname(), probe+".")
	if d == u.Hostname() {
		return ""
	}
	return d
}

// checkRouteService checks that a route's service (already known to be
// "<type>.<app>") is served by app's current release. Before the app's
// first release any process type goes: routes may come first.
func (c *Controller) checkRouteService(ctx context.Context, service string, app api.App) error {
	if app.Release == "" {
		return nil
	}
	rel, _, err := store.Get[api.Release](ctx, c.Client, store.ReleasesPrefix+app.Release)
	if errors.Is(err, store.ErrNotFound) {
		return nil // being garbage collected under a new one: the retry sees it
	}
	if err != nil {
		return err
	}
	typ, _, _ := strings.Cut(service, ".")
	if _, ok := rel.Processes[typ]; ok {
		return nil
	}
	var types []string
	for t, p := range rel.Processes {
		types = append(types, t)
		for _, port := range p.Ports {
			if port.Service == service {
				return nil
			}
		}
	}
	sort.Strings(types)
	return invalid("service %s: app %s's current release v%d has no process type %q (it has %s)",
		service, app.Name, rel.Version, typ, strings.Join(types, ", "))
}

// freeTCPPort is the lowest port of the range no route holds. The
// transaction that claims it guards its index key, so two requests that
// pick the same port cannot both get it.
func (c *Controller) freeTCPPort(ctx context.Context) (int, error) {
	prefix := store.RouteIndexPrefix + "tcp/"
	resp, err := c.Client.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return 0, fmt.Errorf("store: list %s: %w", prefix, err)
	}
	used := make(map[int]bool, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if p, err := strconv.Atoi(strings.TrimPrefix(string(kv.Key), prefix)); err == nil {
			used[p] = true
		}
	}
	lo, hi := c.TCPPortRange[0], c.TCPPortRange[1]
	for p := lo; p <= hi; p++ {
		if p >= 1 && p <= 65535 && !used[p] {
			return p, nil
		}
	}
	return 0, conflict("every port of the routers' tcp range %d-%d is taken", lo, hi)
}

// indexHolder reads who holds an index key. held is false when nobody
// does any more: the key is gone, or its route is (then the key is
// deleted, guarded by the revision read, so only that stale entry goes).
func (c *Controller) indexHolder(ctx context.Context, ikey string) (routeIndex, bool, error) {
	holder, rev, err := store.Get[routeIndex](ctx, c.Client, ikey)
	if errors.Is(err, store.ErrNotFound) {
		return holder, false, nil
	}
	if err != nil {
		return holder, false, err
	}
	key, err := store.Key(store.RoutesPrefix, holder.Route)
	if err == nil {
		_, _, err = store.Get[api.Route](ctx, c.Client, key)
	}
	if err == nil {
		return holder, true, nil
	}
	if !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrBadKey) {
		return holder, false, err
	}
	c.Log.Warn("clearing a route index entry whose route is gone", "key", ikey, "route", holder.Route)
	if err := store.DeleteIf(ctx, c.Client, ikey, rev); err != nil && !errors.Is(err, store.ErrConflict) {
		return holder, false, err
	}
	return holder, false, nil
}

func (c *Controller) deleteRoute(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	name, id := r.PathValue("app"), r.PathValue("id")
	if _, _, err := c.loadApp(ctx, name); err != nil {
		return err
	}
	if strings.HasPrefix(id, autoRoutePrefix) {
		return invalid("%s is an automatic route: it follows the app's web process and cannot be removed (a route for the same domain and path overrides it)", id)
	}
	key, err := store.Key(store.RoutesPrefix, id)
	if err != nil || !api.ValidID(id) {
		return notFound("app %s has no route %q", name, id)
	}
	found, err := c.dropRoute(ctx, key, name)
	if err != nil {
		return err
	}
	if !found {
		return notFound("app %s has no route %q", name, id)
	}
	c.Log.Info("route removed", "app", name, "route", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleteAppRoutes removes every route of app, with their index entries.
func (c *Controller) deleteAppRoutes(ctx context.Context, app string) error {
	items, _, err := store.List[api.Route](ctx, c.Client, store.RoutesPrefix)
	if err != nil {
		return err
	}
	for _, it := range items {
		if routeOfApp(it.Value, app) {
			if _, err := c.dropRoute(ctx, it.Key, app); err != nil {
				return err
			}
		}
	}
	return nil
}

// dropRoute deletes the route at key, if it is app's, together with its
// index entry, in one transaction guarded by both revisions read; when
// either moved it reads again. found says whether there was such a route.
func (c *Controller) dropRoute(ctx context.Context, key, app string) (found bool, err error) {
	for range routeRetries {
		rt, rev, err := store.Get[api.Route](ctx, c.Client, key)
		if errors.Is(err, store.ErrNotFound) {
			return found, nil
		}
		if err != nil {
			return found, err
		}
		if !routeOfApp(rt, app) {
			return found, nil
		}
		found = true
		tx := store.Txn().Delete(key, rev)
		ikey := routeIndexKey(rt)
		holder, irev, err := store.Get[routeIndex](ctx, c.Client, ikey)
		switch {
		case err == nil && holder.Route == rt.ID:
			tx.Delete(ikey, irev)
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return found, err
		}
		_, err = tx.Commit(ctx, c.Client)
		if !errors.Is(err, store.ErrConflict) {
			return found, err
		}
	}
	return found, conflict("routes changed concurrently; try again")
}
