package router

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// WebProcess is the process type that gets an automatic route.
const WebProcess = "web"

// AppDomain is the domain an app's automatic route answers on:
// "<app>.<domain>" ("hello.localhost").
func AppDomain(app, domain string) string { return app + "." + domain }

// AppRoute is the route every app whose current release has a web process
// gets without storing one: AppDomain on every path, to the app's web
// service. Its ID starts with "auto-"; if a stored route already has that
// ID, MergeRoutes gives it another.
func AppRoute(app, domain string) api.Route {
	return api.Route{
		ID:      autoID(app, 0),
		Type:    api.RouteHTTP,
		Domain:  AppDomain(app, domain),
		Service: api.ServiceName(app, WebProcess),
	}
}

// autoID is "auto-<app>", or "auto-<app>-<n>" for n > 0, with the app
// shortened so that the ID stays within api.ValidID's 63 characters.
func autoID(app string, n int) string {
	const prefix = "auto-"
	suffix := ""
	if n > 0 {
		suffix = "-" + strconv.Itoa(n)
	}
	if over := len(prefix) + len(app) + len(suffix) - 63; over > 0 {
		app = strings.TrimRight(app[:len(app)-over], "-")
	}
	return prefix + app + suffix
}

// WebApps decides which apps have a web process in their current release.
// release looks a release up by ID. An app whose current release is not
// known yet keeps its verdict from prev (the previous result): the apps
// and releases are watched separately, so during a deploy the app can
// point at a release this router has not seen yet, and its route must not
// blink out meanwhile.
func WebApps(apps []api.App, release func(id string) (api.Release, bool), prev map[string]bool) map[string]bool {
	web := make(map[string]bool, len(apps))
	for _, a := range apps {
		if a.Release == "" {
			continue
		}
		rel, ok := release(a.Release)
		if !ok {
			if prev[a.Name] {
				web[a.Name] = true
			}
			continue
		}
		if _, ok := rel.Processes[WebProcess]; ok {
			web[a.Name] = true
		}
	}
	return web
}

// MergeRoutes adds the automatic route of every app in web to the stored
// routes, unless a valid stored http route holds the same domain and
// path: the operator's explicit route wins. The result goes to NewTable;
// an automatic route never conflicts there, so a stored route is never
// left out because of one. An empty domain turns automatic routes off.
func MergeRoutes(stored []api.Route, web map[string]bool, domain string) []api.Route {
	out := slices.Clone(stored)
	if domain == "" || len(web) == 0 {
		return out
	}
	held := make(map[string]bool, len(stored))
	ids := make(map[string]bool, len(stored))
	for i := range stored {
		r := &stored[i]
		ids[r.ID] = true
		// An invalid route will not make it into the table; it holds
		// nothing. Of valid routes that conflict, one wins the domain
		// and path, so holding it for each of them is right.
		if r.Type == api.RouteHTTP && r.Validate() == nil {
			held[r.Domain+" "+api.CanonicalPath(r.Path)] = true
		}
	}
	for _, app := range slices.Sorted(maps.Keys(web)) {
		if !web[app] {
			continue
		}
		r := AppRoute(app, domain)
		if held[r.Domain+" /"] {
			continue
		}
		for n := 1; ids[r.ID]; n++ {
			r.ID = autoID(app, n)
		}
		ids[r.ID] = true
		out = append(out, r)
	}
	return out
}

// syncer rebuilds the route table from the store: stored routes, and the
// apps and releases that decide the automatic routes. It is level
// triggered: a change only wakes it, and it rebuilds the whole table from
// the caches, so a coalesced or re-listed change is never lost.
type syncer struct {
	routes   *store.Cache[api.Route]
	apps     *store.Cache[api.App]
	releases *store.Cache[api.Release]
	domain   string
	log      *slog.Logger
	set      func(*Table)

	// Owned by the run goroutine.
	web     map[string]bool
	skipped map[string]bool // RouteError texts of the last build, logged once
}

func newSyncer(client *clientv3.Client, domain string, log *slog.Logger, set func(*Table)) *syncer {
	return &syncer{
		routes:   store.NewCache[api.Route](client, store.RoutesPrefix),
		apps:     store.NewCache[api.App](client, store.AppsPrefix),
		releases: store.NewCache[api.Release](client, store.ReleasesPrefix),
		domain:   domain,
		log:      log,
		set:      set,
	}
}

// run keeps the table current until ctx ends. ready is closed once the
// first table, built from complete listings, is installed. run returns
// after the caches stop.
func (s *syncer) run(ctx context.Context, ready chan<- struct{}) {
	// Subscribe before the caches run, so no change slips between the
	// first build and the first signal.
	rc, cancelR := s.routes.Subscribe()
	defer cancelR()
	ac, cancelA := s.apps.Subscribe()
	defer cancelA()
	lc, cancelL := s.releases.Subscribe()
	defer cancelL()

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	// A cache stops on its own only when the client is closed under it:
	// nothing more will come, so the sync stops too.
	stopped := make(chan struct{})
	var stopOnce sync.Once
	for _, run := range []func(context.Context) error{s.routes.Run, s.apps.Run, s.releases.Run} {
		wg.Go(func() {
			err := run(ctx)
			if ctx.Err() == nil {
				s.log.Error("router: route sync stopped", "err", err)
				stopOnce.Do(func() { close(stopped) })
			}
		})
	}

	for _, c := range []<-chan struct{}{s.routes.Synced(), s.apps.Synced(), s.releases.Synced()} {
		select {
		case <-c:
		case <-stopped:
			return
		case <-ctx.Done():
			return
		}
	}
	s.rebuild()
	close(ready)
	for {
		select {
		case <-ctx.Done():
			return
		case <-stopped:
			return
		case <-rc:
		case <-ac:
		case <-lc:
		}
		s.rebuild()
	}
}

func (s *syncer) rebuild() {
	var stored []api.Route
	for _, it := range s.routes.List() {
		stored = append(stored, it.Value)
	}
	var apps []api.App
	for _, it := range s.apps.List() {
		apps = append(apps, it.Value)
	}
	s.web = WebApps(apps, func(id string) (api.Release, bool) {
		it, ok := s.releases.Get(store.ReleasesPrefix + id)
		return it.Value, ok
	}, s.web)
	// An app not deployed yet gets its automatic route too, held: its
	// domain answers 503 "not deployed yet" rather than 404 "no route".
	holds := AppHolds(apps)
	routed, cloned := s.web, false
	for app, h := range holds {
		if h == HoldNotDeployed && !routed[app] {
			if !cloned { // s.web is the next rebuild's prev: keep it as it is
				routed, cloned = make(map[string]bool, len(s.web)+1), true
				maps.Copy(routed, s.web)
			}
			routed[app] = true
		}
	}
	t, errs := NewTable(MergeRoutes(stored, routed, s.domain))
	t = t.WithHolds(holds)
	s.set(t)

	// Say why a route is left out once, not on every rebuild.
	skipped := make(map[string]bool, len(errs))
	for _, err := range errs {
		msg := err.Error()
		skipped[msg] = true
		if !s.skipped[msg] {
			s.log.Warn("router: route left out", "err", err)
		}
	}
	s.skipped = skipped
	s.log.Debug("router: table rebuilt", "routes", t.Len(), "web_apps", len(s.web),
		"revision", s.routes.Revision())
}
