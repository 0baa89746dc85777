package router

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func httpRoute(id, domain, path string) api.Route {
	return api.Route{ID: id, Type: api.RouteHTTP, Domain: domain, Path: path, Service: "svc-" + id, CreatedAt: t0}
}

func tcp(id string, port int) api.Route {
	return api.Route{ID: id, Type: api.RouteTCP, Port: port, Service: "svc-" + id, CreatedAt: t0}
}

func mustTable(t *testing.T, routes ...api.Route) *Table {
	t.Helper()
	tab, errs := NewTable(routes)
	if len(errs) > 0 {
		t.Fatalf("NewTable: %v", errs)
	}
	return tab
}

func TestLookupPrecedence(t *testing.T) {
	tab := mustTable(t,
		httpRoute("exact", "a.example.com", ""),
		httpRoute("exact-api", "a.example.com", "/api"),
		httpRoute("exact-api-v2", "a.example.com", "/api/v2/"),
		httpRoute("wild", "*.example.com", "/"),
		httpRoute("wild-only-path", "*.example.com", "/only"),
		httpRoute("deep-wild", "*.a.example.com", "/"),
		httpRoute("apex", "example.com", "/"),
		httpRoute("idn", "xn--bcher-kva.example", "/"),
		httpRoute("paths", "p.example.org", "/api"),
	)
	for _, c := range []struct{ host, path, want string }{
		// Exact beats wildcard.
		{"a.example.com", "/", "exact"},
		{"b.example.com", "/", "wild"},
		// A wildcard covers one label only.
		{"x.a.example.com", "/", "deep-wild"},
		{"y.x.a.example.com", "/", ""},
		{"example.com", "/", "apex"},
		{"x.b.example.com", "/", ""},
		// Longest path prefix, on segment boundaries.
		{"a.example.com", "/api", "exact-api"},
		{"a.example.com", "/api/", "exact-api"},
		{"a.example.com", "/api/x", "exact-api"},
		{"a.example.com", "/apix", "exact"},
		{"a.example.com", "/api/v2", "exact-api-v2"},
		{"a.example.com", "/api/v2/users", "exact-api-v2"},
		{"a.example.com", "/api/v20", "exact-api"},
		{"a.example.com", "", "exact"},
		{"p.example.org", "/api/x", "paths"},
		{"p.example.org", "/", ""},
		{"p.example.org", "/apix", ""},
		{"p.example.org", "/API", ""}, // paths are case-sensitive
		// Exact routes that cover none of the path fall through to the
		// wildcard.
		{"b.example.com", "/only/x", "wild-only-path"},
		// Host normalisation: case, port, trailing dot.
		{"A.Example.COM", "/api", "exact-api"},
		{"a.example.com:8080", "/api", "exact-api"},
		{"a.example.com.", "/", "exact"},
		{"A.EXAMPLE.COM.:443", "/", "exact"},
		{"Z.Example.Com:80", "/", "wild"},
		// Punycode passes through; Unicode does not match it.
		{"xn--bcher-kva.example", "/", "idn"},
		{"bücher.example", "/", ""},
		// Nothing.
		{"other.org", "/", ""},
		{"", "/", ""},
		{".example.com", "/", ""},
		{"[::1]:80", "/", ""},
		{"example.com:", "/", "apex"},
	} {
		r, ok := tab.Lookup(c.host, c.path)
		got := ""
		if ok {
			got = r.ID
		}
		if got != c.want || ok != (r != nil) {
			t.Errorf("Lookup(%q, %q) = %q, want %q", c.host, c.path, got, c.want)
		}
	}
}

// A wildcard at each depth: the deepest that covers the host's first
// label is the only one that matches.
func TestLookupDeeperWildcard(t *testing.T) {
	tab := mustTable(t, httpRoute("w1", "*.example.com", ""), httpRoute("w2", "*.a.example.com", ""), httpRoute("w3", "*.b.a.example.com", ""))
	for host, want := range map[string]string{
		"x.example.com": "w1", "x.a.example.com": "w2", "x.b.a.example.com": "w3", "a.example.com": "w1", "b.a.example.com": "w2",
	} {
		if r, ok := tab.Lookup(host, "/"); !ok || r.ID != want {
			t.Errorf("Lookup(%q) = %v, want %s", host, r, want)
		}
	}
}

func TestLookupTCP(t *testing.T) {
	tab := mustTable(t, tcp("t1", 5432), tcp("t2", 6379), httpRoute("h", "a.b", "/"))
	if r, ok := tab.LookupTCP(5432); !ok || r.ID != "t1" {
		t.Errorf("LookupTCP(5432) = %v", r)
	}
	if _, ok := tab.LookupTCP(80); ok {
		t.Error("LookupTCP(80) found a route")
	}
	if r, ok := tab.Route("t2"); !ok || r.Port != 6379 {
		t.Errorf("Route(t2) = %v", r)
	}
	if tab.Len() != 3 || len(tab.Routes()) != 3 || tab.Routes()[0].ID != "h" {
		t.Errorf("Len %d Routes %v", tab.Len(), tab.Routes())
	}
}

func TestLookupTLS(t *testing.T) {
	withTLS := func(r api.Route) api.Route { r.TLS = &api.RouteTLS{CertPEM: "c-" + r.ID, KeyPEM: "k"}; return r }
	withACME := func(r api.Route) api.Route { r.ACME = true; return r }
	// Validation would refuse the fake PEM, so build the table directly
	// from routes that skip it: only the TLS lookup is under test.
	routes := []api.Route{
		withTLS(httpRoute("deep", "a.example.com", "/api")),
		withACME(httpRoute("root", "a.example.com", "/")),
		withTLS(httpRoute("wild", "*.example.com", "/")),
		httpRoute("plain", "c.example.com", "/"),
	}
	tab := &Table{exact: map[string]*hostRoutes{}, wild: map[string]*hostRoutes{}}
	add := func(m map[string]*hostRoutes, d string, rs ...api.Route) {
		hr := &hostRoutes{}
		for i := range rs {
			hr.entries = append(hr.entries, pathRoute{prefix: api.CanonicalPath(rs[i].Path), route: &rs[i]})
		}
		m[d] = hr
	}
	add(tab.exact, "a.example.com", routes[0], routes[1])
	add(tab.wild, "example.com", routes[2])
	add(tab.exact, "c.example.com", routes[3])
	for name, want := range map[string]string{
		"a.example.com": "root", "A.example.com": "root", "b.example.com": "wild", "c.example.com": "wild", "x.y.example.com": "",
	} {
		r, ok := tab.LookupTLS(name)
		got := ""
		if ok {
			got = r.ID
		}
		if got != want {
			t.Errorf("LookupTLS(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestConflicts(t *testing.T) {
	older := httpRoute("zzz", "a.example.com", "/api/")
	older.CreatedAt = t0.Add(-time.Hour)
	sameTime1 := httpRoute("bbb", "b.example.com", "/")
	sameTime2 := httpRoute("aaa", "b.example.com", "")
	tcpOld := tcp("t-old", 9000)
	tcpOld.CreatedAt = t0.Add(-time.Minute)
	dupID := tcp("t-old", 9001)
	bad := httpRoute("bad", "Not_A_Domain", "/")

	tab, errs := NewTable([]api.Route{
		httpRoute("newer", "a.example.com", "/api"), older, sameTime1, sameTime2,
		tcp("t-new", 9000), tcpOld, dupID, bad,
		httpRoute("wild1", "*.example.com", "/"), httpRoute("wild2", "*.example.com", ""),
	})
	want := map[string]string{"newer": "zzz", "bbb": "aaa", "t-new": "t-old", "t-old": "t-old", "bad": "", "wild2": "wild1"}
	if len(errs) != len(want) {
		t.Fatalf("errors: %v", errs)
	}
	for _, err := range errs {
		var re *RouteError
		if !errors.As(err, &re) {
			t.Fatalf("%T %v", err, err)
		}
		w, ok := want[re.ID]
		if !ok || re.Winner != w {
			t.Errorf("%v: winner %q, want %q", err, re.Winner, w)
		}
		if wantInvalid := re.ID == "bad"; errors.Is(err, ErrInvalid) != wantInvalid || errors.Is(err, ErrConflict) == wantInvalid {
			t.Errorf("%v: wrong kind", err)
		}
	}
	for _, c := range []struct {
		host, path string
		port       int
		want       string
	}{
		{"a.example.com", "/api/x", 0, "zzz"},
		{"b.example.com", "/", 0, "aaa"},
		{"x.example.com", "/", 0, "wild1"},
		{"", "", 9000, "t-old"},
		{"", "", 9001, ""},
	} {
		var r *api.Route
		if c.port != 0 {
			r, _ = tab.LookupTCP(c.port)
		} else {
			r, _ = tab.Lookup(c.host, c.path)
		}
		got := ""
		if r != nil {
			got = r.ID
		}
		if got != c.want {
			t.Errorf("%s%s:%d → %q, want %q", c.host, c.path, c.port, got, c.want)
		}
	}
	if tab.Len() != 4 {
		t.Errorf("Len = %d", tab.Len())
	}
}

func TestTableCopiesRoutes(t *testing.T) {
	in := []api.Route{httpRoute("r", "a.b", "/")}
	tab := mustTable(t, in...)
	in[0].Service = "changed"
	if r, _ := tab.Lookup("a.b", "/"); r.Service != "svc-r" {
		t.Errorf("table shares the caller's route: %q", r.Service)
	}
}

func TestNilTable(t *testing.T) {
	var tab *Table
	if _, ok := tab.Lookup("a", "/"); ok {
		t.Error("nil Lookup")
	}
	if _, ok := tab.LookupTCP(1); ok {
		t.Error("nil LookupTCP")
	}
	if _, ok := tab.LookupTLS("a"); ok {
		t.Error("nil LookupTLS")
	}
	if _, ok := tab.Route("a"); ok || tab.Len() != 0 || tab.Routes() != nil {
		t.Error("nil table not empty")
	}
	empty, errs := NewTable(nil)
	if len(errs) != 0 || empty.Len() != 0 {
		t.Error("empty table")
	}
}

func TestNormalizeHost(t *testing.T) {
	for in, want := range map[string]string{
		"a.b": "a.b", "A.B": "a.b", "a.b:80": "a.b", "a.b.": "a.b", "A.b.:1": "a.b", "[::1]:80": "::1", "[::1]": "::1", "": "",
		"xn--bcher-kva.example": "xn--bcher-kva.example",
	} {
		if got := NormalizeHost(in); got != want {
			t.Errorf("NormalizeHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func bigTable(tb testing.TB, n int) *Table {
	routes := make([]api.Route, 0, n)
	for i := 0; len(routes) < n; i++ {
		switch i % 4 {
		case 0, 1:
			routes = append(routes, httpRoute(fmt.Sprintf("r%d", len(routes)), fmt.Sprintf("app%d.example.com", i), ""))
		case 2:
			routes = append(routes, httpRoute(fmt.Sprintf("r%d", len(routes)), fmt.Sprintf("app%d.example.com", i-1), fmt.Sprintf("/api/v%d", i%7)))
		case 3:
			routes = append(routes, httpRoute(fmt.Sprintf("r%d", len(routes)), fmt.Sprintf("*.t%d.example.com", i), ""))
		}
	}
	tab, errs := NewTable(routes)
	if len(errs) > 0 {
		tb.Fatal(errs)
	}
	return tab
}

var lookups = []struct{ host, path string }{
	{"app1.example.com", "/"},
	{"app1.example.com:443", "/api/v2/users/17"},
	{"app4001.example.com", "/index.html"},
	{"x.t7.example.com", "/assets/app.js"},
	{"missing.example.com", "/"},
}

func TestLookupAllocs(t *testing.T) {
	tab := bigTable(t, 10000)
	for _, l := range lookups {
		if n := testing.AllocsPerRun(100, func() { tab.Lookup(l.host, l.path) }); n != 0 {
			t.Errorf("Lookup(%q, %q): %v allocations", l.host, l.path, n)
		}
	}
	if r, ok := tab.Lookup("app1.example.com", "/api/v2/users/17"); !ok || r.Path != "/api/v2" {
		t.Errorf("big table: %v", r)
	}
}

func BenchmarkLookup(b *testing.B) {
	tab := bigTable(b, 10000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		l := lookups[i%len(lookups)]
		tab.Lookup(l.host, l.path)
	}
}
