package router

import (
	"io"
	nethttp "net/http"
	"strings"
	"testing"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
)

// A held route answers 503 with its page on both plain servers, without
// reaching the backend; other routes of the table are not held.
func TestHeldRoutesAnswer503(t *testing.T) {
	forEachPlainServer(t, func(t *testing.T, ps plainServer) {
		fw := newFakeWatcher()
		hits := 0
		_, inst := backend(t, "b", func(w nethttp.ResponseWriter, r *nethttp.Request) {
			hits++
			io.WriteString(w, "backend")
		})
		fw.add("web.hello", inst)
		fw.add("web.other", inst)
		p, s := newTestProxyOn(t, fw, ps.serve,
			route("r1", "hello.localhost", "/", "web.hello"), route("r2", "www.example.com", "/", "web.hello"),
			route("r3", "other.localhost", "/", "web.other"))
		p.SetTable(p.Table().WithHolds(map[string]Hold{"hello": HoldMaintenance}))
		for _, host := range []string{"hello.localhost", "www.example.com"} {
			code, body, h := get(t, s, host, "/")
			if code != 503 || !strings.Contains(body, "maintenance") || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
				t.Fatalf("%s in maintenance: %d %s %q", host, code, h.Get("Content-Type"), body)
			}
		}
		if code, body, _ := get(t, s, "other.localhost", "/"); code != 200 || body != "backend" || hits != 1 {
			t.Fatalf("other app: %d %q, %d hits", code, body, hits)
		}
		p.SetTable(p.Table().WithHolds(map[string]Hold{"hello": HoldNotDeployed}))
		if code, body, _ := get(t, s, "hello.localhost", "/x"); code != 503 || !strings.Contains(body, "Not deployed yet") {
			t.Fatalf("not deployed: %d %q", code, body)
		}
	})
}

// From the store: an app with no release yet answers 503 (not 404) on
// its domain, maintenance mode holds every route of the app, and both
// end without a restart.
func TestServerHoldsFromStore(t *testing.T) {
	e := newRouterEnv(t)
	e.serve("web.hello", "hello backend", nil)
	e.put(store.AppsPrefix, "fresh", api.App{Name: "fresh"})
	e.deployApp("hello", 1, "web")
	e.put(store.RoutesPrefix, "custom", route("custom", "www.example.com", "/", "web.hello"))
	e.start()

	e.expect("fresh.localhost", 503, "Not deployed yet")
	e.expect("nosuch.localhost", 404, "no route")
	e.expect("hello.localhost", 200, "hello backend")
	e.expect("www.example.com", 200, "hello backend")

	e.put(store.AppsPrefix, "hello", api.App{Name: "hello", Release: api.ReleaseID("hello", 1), LatestVersion: 1, Maintenance: true})
	e.expect("hello.localhost", 503, "Offline for maintenance")
	e.expect("www.example.com", 503, "Offline for maintenance")
	e.put(store.AppsPrefix, "hello", api.App{Name: "hello", Release: api.ReleaseID("hello", 1), LatestVersion: 1})
	e.expect("hello.localhost", 200, "hello backend")

	// The first deploy of fresh: its domain serves once it has a release.
	e.serve("web.fresh", "fresh backend", nil)
	e.deployApp("fresh", 1, "web")
	e.expect("fresh.localhost", 200, "fresh backend")
}
