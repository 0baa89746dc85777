package router

import (
	"maps"
	"strings"
	"testing"

	"github.com/pierpaas/pier/api"
)

func releases(rels ...api.Release) func(string) (api.Release, bool) {
	return func(id string) (api.Release, bool) {
		for _, r := range rels {
			if r.ID == id {
				return r, true
			}
		}
		return api.Release{}, false
	}
}

func rel(id string, types ...string) api.Release {
	r := api.Release{ID: id, Processes: map[string]api.ProcessType{}}
	for _, t := range types {
		r.Processes[t] = api.ProcessType{Args: []string{t}}
	}
	return r
}

func TestWebApps(t *testing.T) {
	apps := []api.App{
		{Name: "web", Release: "web-v1"},
		{Name: "worker", Release: "worker-v1"},
		{Name: "new"}, // no release yet
		{Name: "deploying", Release: "deploying-v2"},
		{Name: "unseen", Release: "unseen-v1"},
	}
	lookup := releases(rel("web-v1", "web", "worker"), rel("worker-v1", "worker"))
	prev := map[string]bool{"deploying": true, "worker": true, "gone": true}
	got := WebApps(apps, lookup, prev)
	// "deploying" points at a release not seen yet: it keeps its route.
	// "worker" lost its web process; "gone" is no app any more.
	want := map[string]bool{"web": true, "deploying": true}
	if !maps.Equal(got, want) {
		t.Fatalf("WebApps = %v, want %v", got, want)
	}
	if got := WebApps(apps, lookup, nil); !maps.Equal(got, map[string]bool{"web": true}) {
		t.Fatalf("without history: %v", got)
	}
}

func TestMergeRoutes(t *testing.T) {
	stored := []api.Route{
		route("r1", "other.example.com", "", "svc"),
		// Explicit route for an app's automatic domain: it wins.
		route("r2", "over.localhost", "/", "web.custom"),
		// A path under an automatic domain leaves the rest to the app.
		route("r3", "api.localhost", "/v1", "api.api"),
		// Invalid (bad service): it holds nothing.
		route("r4", "broken.localhost", "", "Bad Service"),
		// Takes the automatic route's ID.
		route("auto-clash", "x.example.com", "", "svc"),
	}
	web := map[string]bool{"hello": true, "over": true, "api": true, "broken": true, "clash": true, "off": false}
	merged := MergeRoutes(stored, web, "localhost")
	tab, errs := NewTable(merged)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "r4") {
		t.Fatalf("errors %v, want only r4's", errs)
	}
	for _, c := range []struct{ host, path, service string }{
		{"hello.localhost", "/", "web.hello"},
		{"over.localhost", "/", "web.custom"},
		{"api.localhost", "/v1/x", "api.api"},
		{"api.localhost", "/", "web.api"},
		{"broken.localhost", "/", "web.broken"},
		{"clash.localhost", "/", "web.clash"},
		{"other.example.com", "/", "svc"},
		{"off.localhost", "/", ""},
	} {
		r, ok := tab.Lookup(c.host, c.path)
		got := ""
		if ok {
			got = r.Service
		}
		if got != c.service {
			t.Errorf("%s%s: service %q, want %q", c.host, c.path, got, c.service)
		}
	}
	if r, _ := tab.Lookup("clash.localhost", "/"); r.ID != "auto-clash-1" {
		t.Errorf("clashing automatic route got ID %q", r.ID)
	}
	if len(stored) != 5 || stored[0].ID != "r1" {
		t.Error("MergeRoutes changed its input")
	}
	if got := MergeRoutes(stored, web, ""); len(got) != len(stored) {
		t.Errorf("no domain: %d routes, want the %d stored", len(got), len(stored))
	}
}

func TestAutoIDFits(t *testing.T) {
	long := strings.Repeat("a", 57) + "-" + strings.Repeat("b", 5) // 63
	for n := range 12 {
		id := autoID(long, n)
		if !api.ValidID(id) {
			t.Errorf("autoID(%d) = %q: invalid", n, id)
		}
	}
	r := AppRoute(long, "localhost")
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
}
