package router

import (
	"context"
	"io"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/discovery"
	"github.com/pierpaas/pier/store"
	"github.com/pierpaas/pier/store/storetest"
)

// routerEnv is a router over a real etcd and a real discovery registry.
type routerEnv struct {
	t   *testing.T
	ctx context.Context
	cli *clientv3.Client
	reg *discovery.Registry
	srv *Server
}

func newRouterEnv(t *testing.T) *routerEnv {
	t.Helper()
	c := storetest.NewCluster(t, 1)
	cli := c.Client()
	return &routerEnv{t: t, ctx: t.Context(), cli: cli, reg: discovery.New(cli)}
}

func (e *routerEnv) start() *Server {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	srv, err := Start(ctx, ServerConfig{Client: e.cli, Discovery: e.reg, HTTPAddr: "127.0.0.1:0", Domain: "localhost"})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { srv.Close() })
	e.srv = srv
	return srv
}

func (e *routerEnv) put(prefix, id string, v any) {
	e.t.Helper()
	if _, err := store.Put(e.ctx, e.cli, prefix+id, v); err != nil {
		e.t.Fatal(err)
	}
}

func (e *routerEnv) del(prefix, id string) {
	e.t.Helper()
	if err := store.Delete(e.ctx, e.cli, prefix+id); err != nil {
		e.t.Fatal(err)
	}
}

// deployApp stores an app whose current release has the given process types.
func (e *routerEnv) deployApp(app string, version int, types ...string) {
	e.t.Helper()
	r := rel(api.ReleaseID(app, version), types...)
	r.App, r.Version = app, version
	e.put(store.ReleasesPrefix, r.ID, r)
	e.put(store.AppsPrefix, app, api.App{Name: app, Release: r.ID, LatestVersion: version})
}

// serve registers an httptest backend answering body as an instance of
// service, and returns its registration.
func (e *routerEnv) serve(service, body string, h nethttp.HandlerFunc) *discovery.Registration {
	e.t.Helper()
	if h == nil {
		h = func(w nethttp.ResponseWriter, r *nethttp.Request) { io.WriteString(w, body) }
	}
	s := httptest.NewServer(h)
	e.t.Cleanup(s.Close)
	g, err := e.reg.Register(e.ctx, service, discovery.Instance{Addr: s.Listener.Addr().String(), Proto: "http"})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { g.Close() })
	return g
}

func (e *routerEnv) get(host string) (int, string) {
	e.t.Helper()
	return getWith(e.t, nethttp.DefaultClient, "http://"+e.srv.Addr()+"/", host)
}

func getWith(t *testing.T, c *nethttp.Client, url, host string) (int, string) {
	t.Helper()
	req, _ := nethttp.NewRequest("GET", url, nil)
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// expect waits until host answers code with a body containing body.
func (e *routerEnv) expect(host string, code int, body string) {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, b := e.get(host)
		if c == code && strings.Contains(b, body) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: got %d %q, want %d with %q", host, c, b, code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServerRoutesFromStore(t *testing.T) {
	e := newRouterEnv(t)
	hello := e.serve("web.hello", "hello backend", nil)
	e.deployApp("hello", 1, "web", "worker")
	e.deployApp("batch", 1, "worker") // no web process: no route
	e.start()

	// Start returns with the first table installed: no polling needed.
	if code, body := e.get("hello.localhost"); code != 200 || body != "hello backend" {
		t.Fatalf("hello.localhost: %d %q", code, body)
	}
	if code, _ := e.get("batch.localhost"); code != 404 {
		t.Fatalf("batch.localhost without a web process: %d, want 404", code)
	}

	// A stored route takes effect without a restart.
	e.serve("api.other", "other backend", nil)
	e.put(store.RoutesPrefix, "r1", route("r1", "other.example.com", "", "api.other"))
	e.expect("other.example.com", 200, "other backend")

	// An explicit route for the automatic domain overrides it, and its
	// removal brings the automatic one back.
	e.serve("web.custom", "custom backend", nil)
	e.put(store.RoutesPrefix, "r2", route("r2", "hello.localhost", "/", "web.custom"))
	e.expect("hello.localhost", 200, "custom backend")
	e.del(store.RoutesPrefix, "r2")
	e.expect("hello.localhost", 200, "hello backend")

	// A release with a web process gives the app its route.
	e.deployApp("batch", 2, "web")
	e.expect("batch.localhost", 503, "no healthy backend")

	// A removed route stops answering.
	e.del(store.RoutesPrefix, "r1")
	e.expect("other.example.com", 404, "no route")

	// The backend leaves discovery: a clear 503, never a dead address.
	hello.Close()
	e.expect("hello.localhost", 503, `no healthy backend for service "web.hello"`)

	// The app is deleted: its route goes.
	e.del(store.AppsPrefix, "hello")
	e.expect("hello.localhost", 404, "no route")
}

func TestServerSwapKeepsConnections(t *testing.T) {
	e := newRouterEnv(t)
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	e.serve("web.slow", "", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if r.URL.Query().Has("slow") {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, "slow backend")
	})
	e.deployApp("slow", 1, "web")
	srv := e.start()

	// One keep-alive connection, reused across table swaps.
	var conns atomic.Int64
	tr := &nethttp.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conns.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	c := &nethttp.Client{Transport: tr}
	url := "http://" + srv.Addr() + "/"

	done := make(chan int, 1)
	go func() {
		req, _ := nethttp.NewRequest("GET", url+"?slow", nil)
		req.Host = "slow.localhost"
		resp, err := nethttp.DefaultClient.Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	<-entered
	for i := range 5 {
		id := "r" + string(rune('a'+i))
		e.put(store.RoutesPrefix, id, route(id, id+".example.com", "", "web.slow"))
		e.expect(id+".example.com", 200, "slow backend")
		if code, body := getWith(t, c, url, "slow.localhost"); code != 200 || body != "slow backend" {
			t.Fatalf("after swap %d: %d %q", i, code, body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("client dialled %d times, want one connection across swaps", n)
	}
	close(release)
	if code := <-done; code != 200 {
		t.Fatalf("request in flight across swaps: %d", code)
	}
}

func TestServerH2CAndGracefulClose(t *testing.T) {
	e := newRouterEnv(t)
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	e.serve("web.h2", "", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if r.URL.Query().Has("slow") {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, "h2 backend")
	})
	e.deployApp("h2", 1, "web")
	srv := e.start()

	var protos nethttp.Protocols
	protos.SetUnencryptedHTTP2(true)
	h2c := &nethttp.Client{Transport: &nethttp.Transport{Protocols: &protos}}
	req, _ := nethttp.NewRequest("GET", "http://"+srv.Addr()+"/", nil)
	req.Host = "h2.localhost"
	resp, err := h2c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || string(b) != "h2 backend" {
		t.Fatalf("h2c: %s %d %q", resp.Proto, resp.StatusCode, b)
	}

	// Close waits for the request in flight and refuses new connections.
	done := make(chan int, 1)
	go func() {
		req, _ := nethttp.NewRequest("GET", "http://"+srv.Addr()+"/?slow", nil)
		req.Host = "h2.localhost"
		resp, err := nethttp.DefaultClient.Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- srv.Close() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("still accepting connections while closing")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with a request in flight", err)
	default:
	}
	close(release)
	if code := <-done; code != 200 {
		t.Fatalf("request in flight during Close: %d", code)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
}

func TestServerStartFailsWithoutStore(t *testing.T) {
	e := newRouterEnv(t)
	e.cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A closed client ends the sync: Start says so rather than wait for ctx.
	_, err := Start(ctx, ServerConfig{Client: e.cli, HTTPAddr: "127.0.0.1:0", Domain: "localhost"})
	if err == nil || ctx.Err() != nil {
		t.Fatalf("Start with a closed store client: %v (ctx %v)", err, ctx.Err())
	}
	if _, err := Start(ctx, ServerConfig{Client: e.cli, HTTPAddr: "127.0.0.1:0", Domain: "Not A Domain"}); err == nil {
		t.Fatal("Start accepted an invalid domain")
	}
}
