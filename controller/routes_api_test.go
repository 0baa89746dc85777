package controller_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/controller"
	"github.com/pierpaas/pier/store"
)

// selfSigned makes a certificate for names valid until notAfter, and its
// key, both PEM.
func selfSigned(t *testing.T, notAfter time.Time, names ...string) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    notAfter.Add(-48 * time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

func (e *env) apps(names ...string) {
	e.t.Helper()
	for _, n := range names {
		if _, err := e.cli.CreateApp(ctx(e.t), api.CreateAppRequest{Name: n}); err != nil {
			e.t.Fatal(err)
		}
	}
}

// indexKeys lists the route index's keys in the store.
func (e *env) indexKeys() map[string]bool {
	e.t.Helper()
	resp, err := e.tc.Client.Get(ctx(e.t), store.RouteIndexPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		e.t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, kv := range resp.Kvs {
		keys[strings.TrimPrefix(string(kv.Key), store.RouteIndexPrefix)] = true
	}
	return keys
}

func TestRoutesLifecycle(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	e.apps("one", "two")

	www, err := e.cli.AddRoute(c, "one", api.Route{Type: api.RouteHTTP, Domain: "www.example.com"})
	if err != nil || !strings.HasPrefix(www.ID, "r-") || www.Service != "web.one" || www.CreatedAt.IsZero() {
		t.Fatalf("add http: %+v, %v", www, err)
	}
	api1, err := e.cli.AddRoute(c, "one", api.Route{Type: api.RouteHTTP, Domain: "www.example.com", Path: "/api/", Sticky: true})
	if err != nil {
		t.Fatal(err)
	}
	// The same address from any app, however its path is spelled: 409.
	for _, dup := range []struct{ app, path string }{{"two", ""}, {"two", "/"}, {"one", "/api"}, {"two", "/api/"}} {
		_, err := e.cli.AddRoute(c, dup.app, api.Route{Type: api.RouteHTTP, Domain: "www.example.com", Path: dup.path})
		wantCode(t, err, api.ErrCodeConflict, 409)
		if !strings.Contains(err.Error(), "already routed") {
			t.Errorf("conflict message: %v", err)
		}
	}
	// Other paths, and a wildcard of the same domain, are other addresses.
	if _, err := e.cli.AddRoute(c, "two", api.Route{Type: api.RouteHTTP, Domain: "www.example.com", Path: "/two"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cli.AddRoute(c, "two", api.Route{Type: api.RouteHTTP, Domain: "*.example.com"}); err != nil {
		t.Fatal(err)
	}

	// TCP: ports are handed out from the range, lowest free first; a taken
	// one is a conflict.
	lo := controller.DefaultTCPPortRange[0]
	t1, err := e.cli.AddRoute(c, "one", api.Route{Type: api.RouteTCP})
	if err != nil || t1.Port != lo || t1.Service != "web.one" {
		t.Fatalf("tcp: %+v, %v", t1, err)
	}
	t2, err := e.cli.AddRoute(c, "two", api.Route{Type: api.RouteTCP, LeaderOnly: true})
	if err != nil || t2.Port != lo+1 {
		t.Fatalf("second tcp: %+v, %v", t2, err)
	}
	if _, err := e.cli.AddRoute(c, "one", api.Route{Type: api.RouteTCP, Port: lo + 5}); err != nil {
		t.Fatal(err)
	}
	_, err = e.cli.AddRoute(c, "two", api.Route{Type: api.RouteTCP, Port: lo + 5})
	wantCode(t, err, api.ErrCodeConflict, 409)
	_, err = e.cli.AddRoute(c, "one", api.Route{Type: api.RouteTCP, Port: lo + 1})
	wantCode(t, err, api.ErrCodeConflict, 409)
	if t3, err := e.cli.AddRoute(c, "one", api.Route{Type: api.RouteTCP}); err != nil || t3.Port != lo+2 {
		t.Fatalf("third tcp: %+v, %v", t3, err)
	}

	routes, err := e.cli.Routes(c, "one")
	if err != nil || len(routes) != 5 {
		t.Fatalf("routes of one: %+v, %v", routes, err)
	}
	if routes[0].ID != www.ID || routes[1].ID != api1.ID || !routes[1].Sticky || routes[2].Port != lo {
		t.Fatalf("routes of one, in order http by domain and path, then tcp by port: %+v", routes)
	}
	if two, _ := e.cli.Routes(c, "two"); len(two) != 3 {
		t.Fatalf("routes of two: %+v", two)
	}

	// Removing frees the address at once.
	wantCode(t, e.cli.RemoveRoute(c, "two", www.ID), api.ErrCodeNotFound, 404) // not two's
	wantCode(t, e.cli.RemoveRoute(c, "one", "r-nope"), api.ErrCodeNotFound, 404)
	wantCode(t, e.cli.RemoveRoute(c, "one", "auto-one"), api.ErrCodeInvalid, 422)
	wantCode(t, e.cli.RemoveRoute(c, "nope", www.ID), api.ErrCodeNotFound, 404)
	if err := e.cli.RemoveRoute(c, "one", www.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, e.cli.RemoveRoute(c, "one", www.ID), api.ErrCodeNotFound, 404)
	if err := e.cli.RemoveRoute(c, "one", t1.ID); err != nil {
		t.Fatal(err)
	}
	if keys := e.indexKeys(); keys["http/www.example.com/"] || keys["tcp/20000"] || !keys["http/www.example.com/api"] {
		t.Fatalf("index after removals: %v", keys)
	}
	if _, err := e.cli.AddRoute(c, "two", api.Route{Type: api.RouteHTTP, Domain: "www.example.com"}); err != nil {
		t.Fatalf("the removed route's domain: %v", err)
	}
	if r, err := e.cli.AddRoute(c, "two", api.Route{Type: api.RouteTCP}); err != nil || r.Port != lo {
		t.Fatalf("the removed route's port: %+v, %v", r, err)
	}

	// Deleting an app deletes its routes and their index entries, and
	// leaves the other app's alone.
	if err := e.cli.DeleteApp(c, "one"); err != nil {
		t.Fatal(err)
	}
	items, _, err := store.List[api.Route](c, e.tc.Client, store.RoutesPrefix)
	if err != nil || len(items) != 5 {
		t.Fatalf("stored routes after deleting one: %d, %v", len(items), err)
	}
	for _, it := range items {
		if it.Value.Service != "web.two" {
			t.Errorf("route left behind: %+v", it.Value)
		}
	}
	keys := e.indexKeys()
	if len(keys) != 5 || keys["http/www.example.com/api"] || !keys["http/www.example.com/two"] {
		t.Fatalf("index after deleting one: %v", keys)
	}
	e.apps("one")
	if _, err := e.cli.AddRoute(c, "one", api.Route{Type: api.RouteHTTP, Domain: "www.example.com", Path: "/api"}); err != nil {
		t.Fatalf("a deleted app's address: %v", err)
	}
}

func TestRouteValidation(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	e.apps("one", "two")
	cert, key := selfSigned(t, time.Now().Add(24*time.Hour), "secure.example.com")
	otherCert, otherKey := selfSigned(t, time.Now().Add(24*time.Hour), "other.example.com")
	oldCert, oldKey := selfSigned(t, time.Now().Add(-time.Hour), "secure.example.com")
	lo, hi := controller.DefaultTCPPortRange[0], controller.DefaultTCPPortRange[1]
	for _, tc := range []struct {
		name string
		rt   api.Route
		want string
	}{
		{"no type", api.Route{Domain: "a.example.com"}, "needs a type"},
		{"unknown type", api.Route{Type: "udp", Port: lo}, "http or tcp"},
		{"id given", api.Route{ID: "mine", Type: api.RouteHTTP, Domain: "a.example.com"}, "leave id out"},
		{"auto id given", api.Route{ID: "auto-one", Type: api.RouteHTTP, Domain: "a.example.com"}, "leave id out"},
		{"no domain", api.Route{Type: api.RouteHTTP}, "needs a domain"},
		{"upper-case domain", api.Route{Type: api.RouteHTTP, Domain: "WWW.example.com"}, "invalid label"},
		{"empty label", api.Route{Type: api.RouteHTTP, Domain: "a..example.com"}, "invalid label"},
		{"leading hyphen", api.Route{Type: api.RouteHTTP, Domain: "-a.example.com"}, "invalid label"},
		{"inner wildcard", api.Route{Type: api.RouteHTTP, Domain: "a.*.example.com"}, "invalid label"},
		{"spaces", api.Route{Type: api.RouteHTTP, Domain: "a example.com"}, "invalid label"},
		{"relative path", api.Route{Type: api.RouteHTTP, Domain: "a.example.com", Path: "api"}, "must start with '/'"},
		{"dot-dot path", api.Route{Type: api.RouteHTTP, Domain: "a.example.com", Path: "/a/../b"}, `".." segment`},
		{"query in path", api.Route{Type: api.RouteHTTP, Domain: "a.example.com", Path: "/a?b"}, "invalid character"},
		{"http with port", api.Route{Type: api.RouteHTTP, Domain: "a.example.com", Port: lo}, "no port"},
		{"cert and acme", api.Route{Type: api.RouteHTTP, Domain: "secure.example.com", ACME: true,
			TLS: &api.RouteTLS{CertPEM: cert, KeyPEM: key}}, "exclusive"},
		{"acme wildcard", api.Route{Type: api.RouteHTTP, Domain: "*.example.com", ACME: true}, "wildcard"},
		{"cert without key", api.Route{Type: api.RouteHTTP, Domain: "secure.example.com", TLS: &api.RouteTLS{CertPEM: cert}}, "a certificate and a key"},
		{"key of another cert", api.Route{Type: api.RouteHTTP, Domain: "secure.example.com", TLS: &api.RouteTLS{CertPEM: cert, KeyPEM: otherKey}}, "TLS"},
		{"cert of another domain", api.Route{Type: api.RouteHTTP, Domain: "secure.example.com", TLS: &api.RouteTLS{CertPEM: otherCert, KeyPEM: otherKey}}, "not for secure.example.com"},
		{"expired cert", api.Route{Type: api.RouteHTTP, Domain: "secure.example.com", TLS: &api.RouteTLS{CertPEM: oldCert, KeyPEM: oldKey}}, "expired"},
		{"tcp port over 65535", api.Route{Type: api.RouteTCP, Port: 70000}, "out of range"},
		{"tcp port below the range", api.Route{Type: api.RouteTCP, Port: 80}, "outside the routers' tcp range"},
		{"tcp port above the range", api.Route{Type: api.RouteTCP, Port: hi + 1}, "outside the routers' tcp range"},
		{"negative tcp port", api.Route{Type: api.RouteTCP, Port: -1}, "out of range"},
		{"tcp with domain", api.Route{Type: api.RouteTCP, Domain: "a.example.com"}, "no domain"},
		{"tcp sticky", api.Route{Type: api.RouteTCP, Sticky: true}, "for http routes"},
		{"service of another app", api.Route{Type: api.RouteHTTP, Domain: "a.example.com", Service: "web.two"}, "not one of app one's"},
		{"service of no app", api.Route{Type: api.RouteHTTP, Domain: "a.example.com", Service: "web"}, "not one of app one's"},
		{"service of a sub-name", api.Route{Type: api.RouteHTTP, Domain: "a.example.com", Service: "x.web.one"}, "not one of app one's"},
		{"tcp service of another app", api.Route{Type: api.RouteTCP, Service: "db.two"}, "not one of app one's"},
		{"bad service", api.Route{Type: api.RouteHTTP, Domain: "a.example.com", Service: "We b.one"}, "invalid service"},
		{"negative drain", api.Route{Type: api.RouteHTTP, Domain: "a.example.com", DrainTimeout: -1}, "negative drain"},
	} {
		_, err := e.cli.AddRoute(c, "one", tc.rt)
		wantCode(t, err, api.ErrCodeInvalid, 422)
		if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "route new") {
			t.Errorf("%s: %v, want it to say %q", tc.name, err, tc.want)
		}
	}
	_, err := e.cli.AddRoute(c, "nope", api.Route{Type: api.RouteHTTP, Domain: "a.example.com"})
	wantCode(t, err, api.ErrCodeNotFound, 404)
	if routes, err := e.cli.Routes(c, "one"); err != nil || len(routes) != 0 {
		t.Fatalf("refused routes were stored: %+v, %v", routes, err)
	}
	if keys := e.indexKeys(); len(keys) != 0 {
		t.Fatalf("refused routes left index entries: %v", keys)
	}

	// Once the app has a release, the service must be one of its process
	// types (or a service its ports register).
	res, err := e.cli.CreateRelease(c, "one", api.CreateReleaseRequest{Processes: map[string]api.ProcessType{
		"worker": {Args: []string{"run"}},
		"db":     {Args: []string{"run"}, Ports: []api.Port{{Proto: "tcp", Service: "pg.one"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	e.deployed(res)
	_, err = e.cli.AddRoute(c, "one", api.Route{Type: api.RouteHTTP, Domain: "a.example.com"})
	wantCode(t, err, api.ErrCodeInvalid, 422)
	if !strings.Contains(err.Error(), `no process type "web" (it has db, worker)`) {
		t.Errorf("web without a web process: %v", err)
	}
	for _, svc := range []string{"worker.one", "db.one", "pg.one"} {
		if _, err := e.cli.AddRoute(c, "one", api.Route{Type: api.RouteTCP, Service: svc}); err != nil {
			t.Errorf("tcp route to %s: %v", svc, err)
		}
	}
}

func TestRouteKeysNeverReturned(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	e.apps("one")
	cert, key := selfSigned(t, time.Now().Add(24*time.Hour), "secure.example.com", "*.secure.example.com")
	rt, err := e.cli.AddRoute(c, "one", api.Route{Type: api.RouteHTTP, Domain: "secure.example.com", RedirectHTTPS: true,
		TLS: &api.RouteTLS{CertPEM: cert, KeyPEM: key}})
	if err != nil || rt.TLS == nil || rt.TLS.CertPEM != cert || rt.TLS.KeyPEM != "" || !rt.RedirectHTTPS {
		t.Fatalf("add: %+v, %v", rt, err)
	}
	if _, err := e.cli.AddRoute(c, "one", api.Route{Type: api.RouteHTTP, Domain: "*.secure.example.com",
		TLS: &api.RouteTLS{CertPEM: cert, KeyPEM: key}}); err != nil {
		t.Fatalf("wildcard certificate for a wildcard route: %v", err)
	}
	if _, err := e.cli.AddRoute(c, "one", api.Route{Type: api.RouteHTTP, Domain: "acme.example.com", ACME: true}); err != nil {
		t.Fatal(err)
	}
	routes, err := e.cli.Routes(c, "one")
	if err != nil || len(routes) != 3 || routes[2].TLS == nil {
		t.Fatalf("list: %+v, %v", routes, err)
	}
	for _, r := range routes {
		if r.TLS != nil && (r.TLS.KeyPEM != "" || r.TLS.CertPEM != cert) {
			t.Fatalf("listed: %+v", r.TLS)
		}
	}
	// Not in the raw answers either.
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader(`{"type":"http","domain":"www.secure.example.com","tls":{"cert_pem":` +
				jsonString(cert) + `,"key_pem":` + jsonString(key) + `}}`)
		}
		req, _ := http.NewRequest(method, e.srv.URL+"/v1/apps/one/routes", body)
		req.Header.Set("Authorization", "Bearer "+e.key)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 || strings.Contains(string(b), "PRIVATE KEY") || !strings.Contains(string(b), "BEGIN CERTIFICATE") {
			t.Fatalf("%s routes: %d %s", method, resp.StatusCode, b)
		}
	}
	// The store keeps it: the routers need it.
	stored, _, err := store.Get[api.Route](c, e.tc.Client, store.RoutesPrefix+rt.ID)
	if err != nil || stored.TLS == nil || stored.TLS.KeyPEM != key {
		t.Fatalf("stored: %+v, %v", stored, err)
	}
}

func jsonString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// TestConcurrentRoutes: of requests racing for one address, exactly one
// wins; racing port allocations all get distinct ports.
func TestConcurrentRoutes(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	apps := []string{"a1", "a2", "a3", "a4", "a5", "a6"}
	e.apps(apps...)
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, lost := 0, 0
	ports := map[int]bool{}
	for _, app := range apps {
		wg.Go(func() {
			_, err := e.cli.AddRoute(c, app, api.Route{Type: api.RouteHTTP, Domain: "race.example.com", Path: "/x"})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				won++
			} else if ae, ok := err.(*api.Error); ok && ae.Status == 409 {
				lost++
			} else {
				t.Errorf("racing for an address: %v", err)
			}
		})
		for range 2 {
			wg.Go(func() {
				r, err := e.cli.AddRoute(c, app, api.Route{Type: api.RouteTCP})
				if err != nil {
					t.Errorf("tcp: %v", err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if ports[r.Port] {
					t.Errorf("port %d handed out twice", r.Port)
				}
				ports[r.Port] = true
			})
		}
	}
	wg.Wait()
	if won != 1 || lost != len(apps)-1 || len(ports) != 2*len(apps) {
		t.Fatalf("won %d, lost %d, ports %v", won, lost, ports)
	}
}

// TestStaleRouteIndex: an index entry whose route is gone (a hand edit of
// the store) does not block its address for ever.
func TestStaleRouteIndex(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	e.apps("one")
	if _, err := store.Put(c, e.tc.Client, store.RouteIndexPrefix+"http/stale.example.com/", map[string]string{"route": "r-gone", "service": "web.old"}); err != nil {
		t.Fatal(err)
	}
	rt, err := e.cli.AddRoute(c, "one", api.Route{Type: api.RouteHTTP, Domain: "stale.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	holder, _, err := store.Get[map[string]string](c, e.tc.Client, store.RouteIndexPrefix+"http/stale.example.com/")
	if err != nil || holder["route"] != rt.ID {
		t.Fatalf("index entry: %v, %v", holder, err)
	}
}

func TestRoutesInOpenAPI(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/v1/openapi.json", nil)
	req.Header.Set("Authorization", "Bearer "+e.key)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Paths      map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"get /v1/apps/{app}/routes", "post /v1/apps/{app}/routes", "delete /v1/apps/{app}/routes/{id}"} {
		m, p, _ := strings.Cut(want, " ")
		if doc.Paths[p][m] == nil {
			t.Errorf("openapi lacks %s", want)
		}
	}
	props, _ := doc.Components.Schemas["Route"]["properties"].(map[string]any)
	if props["domain"] == nil || props["tls"] == nil || doc.Components.Schemas["RouteTLS"] == nil {
		t.Fatalf("Route schema: %v", doc.Components.Schemas["Route"])
	}
}
