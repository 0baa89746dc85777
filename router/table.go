package router

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pierpaas/pier/api"
)

// Errors a RouteError wraps: test with errors.Is.
var (
	// ErrInvalid: the route failed api.Route.Validate.
	ErrInvalid = errors.New("invalid route")
	// ErrConflict: an older route (by CreatedAt, then ID) already holds the
	// same domain and path, the same TCP port, or the same ID.
	ErrConflict = errors.New("conflicting route")
)

// RouteError says why NewTable left a route out of the table.
type RouteError struct {
	ID string // the route left out
	// Winner is the ID of the older route that kept the domain and path,
	// port or ID, for a conflict; empty for an invalid route.
	Winner string
	Err    error // wraps ErrInvalid or ErrConflict
}

func (e *RouteError) Error() string { return "router: route " + e.ID + " skipped: " + e.Err.Error() }
func (e *RouteError) Unwrap() error { return e.Err }

// Table is an immutable route table. Build it with NewTable; share it
// freely between goroutines. The routes its lookups return belong to the
// table: never modify them. A nil *Table is empty.
type Table struct {
	exact  map[string]*hostRoutes // "app.example.com"
	wild   map[string]*hostRoutes // "*.example.com" under "example.com"
	tcp    map[int]*api.Route
	byID   map[string]*api.Route
	routes []*api.Route        // by ID
	held   map[*api.Route]held // see WithHolds
}

// hostRoutes are the http routes of one domain, longest path first.
type hostRoutes struct {
	entries []pathRoute
}

type pathRoute struct {
	prefix string // api.CanonicalPath of the route's path
	route  *api.Route
}

// NewTable builds a table from routes. Invalid routes are left out, and of
// routes that conflict (same domain and path, same TCP port, or same ID)
// the oldest, by CreatedAt then ID, is kept; the returned errors, all
// *RouteError, say which routes were left out and why. The table never
// refers to the caller's routes: it holds copies.
func NewTable(routes []api.Route) (*Table, []error) {
	sorted := make([]*api.Route, 0, len(routes))
	for i := range routes {
		r := routes[i] // copy
		if r.TLS != nil {
			t := *r.TLS
			r.TLS = &t
		}
		sorted = append(sorted, &r)
	}
	slices.SortStableFunc(sorted, func(a, b *api.Route) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})

	t := &Table{
		exact: make(map[string]*hostRoutes),
		wild:  make(map[string]*hostRoutes),
		tcp:   make(map[int]*api.Route),
		byID:  make(map[string]*api.Route, len(sorted)),
	}
	var errs []error
	reject := func(r *api.Route, winner string, err error) {
		errs = append(errs, &RouteError{ID: r.ID, Winner: winner, Err: err})
	}
	for _, r := range sorted {
		if err := r.Validate(); err != nil {
			reject(r, "", fmt.Errorf("%w: %w", ErrInvalid, err))
			continue
		}
		if w, ok := t.byID[r.ID]; ok {
			reject(r, w.ID, fmt.Errorf("%w: duplicate id", ErrConflict))
			continue
		}
		switch r.Type {
		case api.RouteTCP:
			if w, ok := t.tcp[r.Port]; ok {
				reject(r, w.ID, fmt.Errorf("%w: tcp port %d already belongs to route %s", ErrConflict, r.Port, w.ID))
				continue
			}
			t.tcp[r.Port] = r
		case api.RouteHTTP:
			m, domain := t.exact, r.Domain
			if d, ok := strings.CutPrefix(domain, "*."); ok {
				m, domain = t.wild, d
			}
			hr := m[domain]
			if hr == nil {
				hr = &hostRoutes{}
				m[domain] = hr
			}
			prefix := api.CanonicalPath(r.Path)
			if i := slices.IndexFunc(hr.entries, func(e pathRoute) bool { return e.prefix == prefix }); i >= 0 {
				w := hr.entries[i].route
				reject(r, w.ID, fmt.Errorf("%w: %s%s already belongs to route %s", ErrConflict, r.Domain, prefix, w.ID))
				continue
			}
			hr.entries = append(hr.entries, pathRoute{prefix: prefix, route: r})
		}
		t.byID[r.ID] = r
		t.routes = append(t.routes, r)
	}
	for _, m := range []map[string]*hostRoutes{t.exact, t.wild} {
		for _, hr := range m {
			// Longest first; two different prefixes of one length never
			// match the same path, so the order among them is cosmetic.
			slices.SortFunc(hr.entries, func(a, b pathRoute) int {
				if c := cmp.Compare(len(b.prefix), len(a.prefix)); c != 0 {
					return c
				}
				return strings.Compare(a.prefix, b.prefix)
			})
		}
	}
	slices.SortFunc(t.routes, func(a, b *api.Route) int { return strings.Compare(a.ID, b.ID) })
	return t, errs
}

// Lookup finds the http route for a request's Host header (or URL host)
// and URL path. The host is normalised: lower-cased, its port and one
// trailing dot removed; punycode passes as it is. The path is matched as
// given (the caller passes the request's cleaned URL path without its
// query; "" counts as "/").
//
// Routes of the exact domain come first, then those of the wildcard
// covering the host's first label; within each, the longest path prefix
// on a segment boundary wins. A host whose exact routes cover none of
// the path falls through to the wildcard's routes. Lookup does not
// allocate unless the host has upper-case letters.
func (t *Table) Lookup(host, path string) (*api.Route, bool) {
	if t == nil {
		return nil, false
	}
	h := NormalizeHost(host)
	if path == "" {
		path = "/"
	}
	if hr := t.exact[h]; hr != nil {
		if r := hr.match(path); r != nil {
			return r, true
		}
	}
	if i := strings.IndexByte(h, '.'); i > 0 {
		if hr := t.wild[h[i+1:]]; hr != nil {
			if r := hr.match(path); r != nil {
				return r, true
			}
		}
	}
	return nil, false
}

func (hr *hostRoutes) match(path string) *api.Route {
	for i := range hr.entries {
		if hasPathPrefix(path, hr.entries[i].prefix) {
			return hr.entries[i].route
		}
	}
	return nil
}

// hasPathPrefix reports whether path is prefix or lies under it: "/api"
// covers "/api" and "/api/x" but not "/apix"; "/" covers every path.
func hasPathPrefix(path, prefix string) bool {
	if prefix == "/" {
		return true
	}
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || path[len(prefix)] == '/'
}

// LookupTLS finds the route whose certificate (its own, or one from ACME)
// answers a TLS handshake for serverName (SNI), normalised as in Lookup:
// of the exact domain's routes with TLS or ACME the one with the shortest
// path, else the same among the wildcard's. The caller falls back to its
// default certificate when there is none.
func (t *Table) LookupTLS(serverName string) (*api.Route, bool) {
	if t == nil {
		return nil, false
	}
	h := NormalizeHost(serverName)
	if r := t.exact[h].tlsRoute(); r != nil {
		return r, true
	}
	if i := strings.IndexByte(h, '.'); i > 0 {
		if r := t.wild[h[i+1:]].tlsRoute(); r != nil {
			return r, true
		}
	}
	return nil, false
}

func (hr *hostRoutes) tlsRoute() *api.Route {
	if hr == nil {
		return nil
	}
	for i := len(hr.entries) - 1; i >= 0; i-- {
		if r := hr.entries[i].route; r.TLS != nil || r.ACME {
			return r
		}
	}
	return nil
}

// LookupTCP finds the tcp route of a router port.
func (t *Table) LookupTCP(port int) (*api.Route, bool) {
	if t == nil {
		return nil, false
	}
	r, ok := t.tcp[port]
	return r, ok
}

// Route finds a route of the table by ID.
func (t *Table) Route(id string) (*api.Route, bool) {
	if t == nil {
		return nil, false
	}
	r, ok := t.byID[id]
	return r, ok
}

// Routes are the table's routes, by ID. The slice is the caller's; the
// routes are not.
func (t *Table) Routes() []*api.Route {
	if t == nil {
		return nil
	}
	return slices.Clone(t.routes)
}

// Len is the number of routes in the table.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.routes)
}

// NormalizeHost turns a Host header or SNI name into the form routes use:
// without a port (IPv6 literals lose their brackets), without one
// trailing dot, lower-case. It allocates only for upper-case input.
func NormalizeHost(host string) string {
	if strings.HasPrefix(host, "[") {
		if i := strings.IndexByte(host, ']'); i > 0 {
			return strings.ToLower(host[1:i])
		}
	} else if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	for i := 0; i < len(host); i++ {
		if c := host[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(host)
		}
	}
	return host
}
