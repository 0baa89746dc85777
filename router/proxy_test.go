package router

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	nethttp "net/http" // "http" is a helper of table_test.go
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/discovery"
)

// fakeWatcher serves each service's watch from a channel the test feeds.
type fakeWatcher struct {
	mu      sync.Mutex
	initial map[string][]discovery.Instance
	chans   map[string]chan discovery.Event
	ctxs    map[string]context.Context
}

func newFakeWatcher() *fakeWatcher {
	return &fakeWatcher{initial: map[string][]discovery.Instance{}, chans: map[string]chan discovery.Event{}, ctxs: map[string]context.Context{}}
}

func (f *fakeWatcher) Watch(ctx context.Context, service string) (<-chan discovery.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := make(chan discovery.Event, 16)
	in <- discovery.Event{Type: discovery.EventCurrent, Service: service, Instances: f.initial[service]}
	f.chans[service] = in
	f.ctxs[service] = ctx
	// Like discovery's, the stream closes when ctx ends.
	out := make(chan discovery.Event)
	go func() {
		defer close(out)
		for {
			select {
			case ev := <-in:
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func (f *fakeWatcher) add(service string, insts ...discovery.Instance) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.initial[service] = append(f.initial[service], insts...)
}

func (f *fakeWatcher) send(t *testing.T, ev discovery.Event) {
	t.Helper()
	f.mu.Lock()
	ch := f.chans[ev.Service]
	f.mu.Unlock()
	if ch == nil {
		t.Fatalf("no watch of %s", ev.Service)
	}
	ch <- ev
}

func backend(t *testing.T, name string, h nethttp.HandlerFunc) (*httptest.Server, discovery.Instance) {
	t.Helper()
	if h == nil {
		h = func(w nethttp.ResponseWriter, r *nethttp.Request) { io.WriteString(w, name) }
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s, discovery.Instance{ID: name, Addr: s.Listener.Addr().String(), Proto: "http"}
}

func route(id, domain, path, service string) api.Route {
	return api.Route{ID: id, Type: api.RouteHTTP, Domain: domain, Path: path, Service: service, CreatedAt: t0}
}

func newTestProxy(t *testing.T, w Watcher, routes ...api.Route) (*Proxy, *httptest.Server) {
	t.Helper()
	return newTestProxyOn(t, w, serveNetHTTP, routes...)
}

func get(t *testing.T, s *httptest.Server, host, path string) (int, string, nethttp.Header) {
	t.Helper()
	req, _ := nethttp.NewRequest("GET", s.URL+path, nil)
	req.Host = host
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestProxyRoutesByHostAndPath(t *testing.T) {
	fw := newFakeWatcher()
	_, a := backend(t, "a", nil)
	_, b := backend(t, "b", nil)
	fw.add("svc-a", a)
	fw.add("svc-b", b)
	_, s := newTestProxy(t, fw,
		route("r1", "a.test", "", "svc-a"),
		route("r2", "a.test", "/api", "svc-b"),
		route("r3", "*.wild.test", "", "svc-b"))
	for _, c := range []struct{ host, path, want string }{
		{"a.test", "/", "a"},
		{"A.TEST:8080", "/x", "a"},
		{"a.test", "/api/v1", "b"},
		{"a.test", "/apix", "a"},
		{"x.wild.test", "/", "b"},
	} {
		code, body, _ := get(t, s, c.host, c.path)
		if code != 200 || body != c.want {
			t.Errorf("%s%s: %d %q, want 200 %q", c.host, c.path, code, body, c.want)
		}
	}
	code, body, _ := get(t, s, "nowhere.test", "/")
	if code != 404 || !strings.Contains(body, "no route") {
		t.Errorf("unrouted host: %d %q", code, body)
	}
}

func TestProxyNoBackend503(t *testing.T) {
	fw := newFakeWatcher()
	_, s := newTestProxy(t, fw, route("r1", "a.test", "", "svc-a"))
	code, body, h := get(t, s, "a.test", "/")
	if code != 503 || !strings.Contains(body, "no healthy backend") || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Fatalf("got %d %q %v", code, body, h)
	}
}

func TestPickP2CPrefersLessLoaded(t *testing.T) {
	list := []*Backend{newBackend(discovery.Instance{ID: "busy"}, nil), newBackend(discovery.Instance{ID: "idle"}, nil)}
	list[0].inflight.Store(5)
	for range 100 {
		if b := pick(list, nil); b != list[1] {
			t.Fatal("picked the busier backend")
		}
	}
	if b := pick(list, list[1]); b != list[0] {
		t.Fatal("exclude ignored")
	}
	list[0].down.Store(true)
	if b := pick(list, list[1]); b != nil {
		t.Fatal("picked a down backend")
	}
}

func TestProxyP2CSpreadsLoad(t *testing.T) {
	fw := newFakeWatcher()
	release := make(chan struct{})
	var counts [4]atomic.Int64
	for i := range counts {
		_, inst := backend(t, fmt.Sprint("b", i), func(w nethttp.ResponseWriter, r *nethttp.Request) {
			counts[i].Add(1)
			<-release
		})
		fw.add("svc", inst)
	}
	_, s := newTestProxy(t, fw, route("r1", "a.test", "", "svc"))
	const n = 40
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { get(t, s, "a.test", "/") })
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		total := int64(0)
		for i := range counts {
			total += counts[i].Load()
		}
		if total == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d requests arrived", total, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	for i := range counts {
		// Even load is 10 each; p2c on in-flight keeps it close.
		if c := counts[i].Load(); c < 6 || c > 14 {
			t.Errorf("backend %d got %d of %d concurrent requests", i, c, n)
		}
	}
}

func TestProxyNeverUsesDownBackend(t *testing.T) {
	fw := newFakeWatcher()
	var hitsA, hitsB atomic.Int64
	_, a := backend(t, "a", func(w nethttp.ResponseWriter, r *nethttp.Request) { hitsA.Add(1) })
	_, b := backend(t, "b", func(w nethttp.ResponseWriter, r *nethttp.Request) { hitsB.Add(1) })
	fw.add("svc", a, b)
	p, s := newTestProxy(t, fw, route("r1", "a.test", "", "svc"))
	for range 20 {
		get(t, s, "a.test", "/")
	}
	if hitsA.Load() == 0 || hitsB.Load() == 0 {
		t.Fatalf("both should serve first: a=%d b=%d", hitsA.Load(), hitsB.Load())
	}
	fw.send(t, discovery.Event{Type: discovery.EventDown, Service: "svc", Instance: &a})
	waitFor(t, func() bool { return len(p.Backends().List(context.Background(), "svc")) == 1 })
	before := hitsA.Load()
	for range 50 {
		if code, _, _ := get(t, s, "a.test", "/"); code != 200 {
			t.Fatalf("status %d", code)
		}
	}
	if hitsA.Load() != before {
		t.Fatalf("down backend got %d more requests", hitsA.Load()-before)
	}
	// Up again under a new address: it serves again.
	_, a2 := backend(t, "a", func(w nethttp.ResponseWriter, r *nethttp.Request) { hitsA.Add(1) })
	fw.send(t, discovery.Event{Type: discovery.EventUp, Service: "svc", Instance: &a2})
	waitFor(t, func() bool { return len(p.Backends().List(context.Background(), "svc")) == 2 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestProxyRetriesDeadBackend(t *testing.T) {
	fw := newFakeWatcher()
	_, live := backend(t, "live", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "live "+string(b))
	})
	fw.add("svc", discovery.Instance{ID: "dead", Addr: deadAddr(t)}, live)
	_, s := newTestProxy(t, fw, route("r1", "a.test", "", "svc"))
	for i := range 30 {
		if code, body, _ := get(t, s, "a.test", "/"); code != 200 || body != "live " {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
	// A POST is retried too: a failed dial sent none of its body, though
	// the server gives no GetBody to read it again. Chunked as well.
	for i := range 20 {
		var body io.Reader = strings.NewReader("payload")
		if i%2 == 1 {
			body = io.MultiReader(strings.NewReader("pay"), strings.NewReader("load")) // unknown length
		}
		req, _ := nethttp.NewRequest("POST", s.URL, body)
		req.Host = "a.test"
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(got) != "live payload" {
			t.Fatalf("POST %d: %d %q", i, resp.StatusCode, got)
		}
	}
}

func TestProxyDoesNotRetrySentBody(t *testing.T) {
	fw := newFakeWatcher()
	var hitsGood atomic.Int64
	_, bad := backend(t, "bad", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		io.ReadAll(r.Body) // the body was sent; then the backend dies
		conn, _, err := w.(nethttp.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	_, good := backend(t, "good", func(w nethttp.ResponseWriter, r *nethttp.Request) { hitsGood.Add(1) })
	fw.add("svc", bad)
	p, s := newTestProxy(t, fw, route("r1", "a.test", "", "svc"))
	// Add the good backend once the watch runs, so it is a retry target.
	p.Backends().List(context.Background(), "svc")
	fw.send(t, discovery.Event{Type: discovery.EventUp, Service: "svc", Instance: &good})
	waitFor(t, func() bool { return len(p.Backends().List(context.Background(), "svc")) == 2 })
	fails := 0
	for range 20 {
		req, _ := nethttp.NewRequest("POST", s.URL, strings.NewReader("payload"))
		req.Host = "a.test"
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 502 {
			fails++
		}
	}
	if fails == 0 {
		t.Fatal("no request reached the failing backend")
	}
	if got := hitsGood.Load(); got != int64(20-fails) {
		t.Fatalf("good backend got %d requests, want %d: a sent body was retried", got, 20-fails)
	}
}

func TestProxyHeaders(t *testing.T) {
	fw := newFakeWatcher()
	got := make(chan nethttp.Header, 2)
	var host string
	_, b := backend(t, "b", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		host = r.Host
		got <- r.Header.Clone()
	})
	fw.add("svc", b)
	_, s := newTestProxy(t, fw, route("r1", "a.test", "", "svc"))
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())

	req, _ := nethttp.NewRequest("GET", s.URL, nil)
	req.Host = "a.test"
	req.Header.Set("X-Forwarded-For", "1.2.3.4")
	before := time.Now().UnixMilli()
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := <-got
	if host != "a.test" {
		t.Errorf("Host %q", host)
	}
	if v := h.Get("X-Forwarded-For"); v != "1.2.3.4, 127.0.0.1" {
		t.Errorf("X-Forwarded-For %q", v)
	}
	if v := h.Get("X-Forwarded-Proto"); v != "http" {
		t.Errorf("X-Forwarded-Proto %q", v)
	}
	if v := h.Get("X-Forwarded-Port"); v != port {
		t.Errorf("X-Forwarded-Port %q, want %q", v, port)
	}
	if v := h.Get("X-Request-Id"); !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(v) {
		t.Errorf("X-Request-Id %q", v)
	}
	var ms int64
	if _, err := fmt.Sscanf(h.Get("X-Request-Start"), "t=%d", &ms); err != nil || ms < before || ms > time.Now().UnixMilli() {
		t.Errorf("X-Request-Start %q", h.Get("X-Request-Start"))
	}

	req, _ = nethttp.NewRequest("GET", s.URL, nil)
	req.Host = "a.test"
	req.Header.Set("X-Request-Id", "abc-123")
	resp, err = s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if v := (<-got).Get("X-Request-Id"); v != "abc-123" {
		t.Errorf("kept X-Request-Id %q", v)
	}
}

func TestProxyWebsocketUpgrade(t *testing.T) {
	fw := newFakeWatcher()
	_, b := backend(t, "ws", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "echo") {
			nethttp.Error(w, "upgrade required", 426)
			return
		}
		conn, rw, err := w.(nethttp.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		for {
			line, err := rw.ReadString('\n')
			if err != nil {
				return
			}
			rw.WriteString("echo: " + line)
			rw.Flush()
		}
	})
	fw.add("svc", b)
	_, s := newTestProxy(t, fw, route("r1", "a.test", "", "svc"))
	conn, err := net.Dial("tcp", s.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := nethttp.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, msg := range []string{"hello\n", "world\n"} {
		io.WriteString(conn, msg)
		line, err := br.ReadString('\n')
		if err != nil || line != "echo: "+msg {
			t.Fatalf("got %q, %v", line, err)
		}
	}
}

func TestProxyTableSwapKeepsInFlight(t *testing.T) {
	fw := newFakeWatcher()
	entered := make(chan struct{})
	release := make(chan struct{})
	_, a := backend(t, "a", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		close(entered)
		<-release
		io.WriteString(w, "a")
	})
	_, b := backend(t, "b", nil)
	fw.add("svc-a", a)
	fw.add("svc-b", b)
	p, s := newTestProxy(t, fw, route("r1", "a.test", "", "svc-a"))

	type result struct {
		code int
		body string
	}
	done := make(chan result, 1)
	go func() {
		code, body, _ := get(t, s, "a.test", "/")
		done <- result{code, body}
	}()
	<-entered
	tb, _ := NewTable([]api.Route{route("r2", "a.test", "", "svc-b")})
	p.SetTable(tb)
	if code, body, _ := get(t, s, "a.test", "/"); code != 200 || body != "b" {
		t.Fatalf("after swap: %d %q", code, body)
	}
	if w := p.Backends().Watched(); len(w) != 1 || w[0] != "svc-b" {
		t.Errorf("watched %v, want [svc-b]", w)
	}
	close(release)
	if r := <-done; r.code != 200 || r.body != "a" {
		t.Fatalf("in-flight request: %d %q", r.code, r.body)
	}
}

// newTestProxyOn is newTestProxy served by serve.
func newTestProxyOn(t *testing.T, w Watcher, serve func(testing.TB, *Proxy) *httptest.Server, routes ...api.Route) (*Proxy, *httptest.Server) {
	t.Helper()
	p := NewProxy(w, Config{BackendWait: 2 * time.Second})
	p.SetTable(mustTable(t, routes...))
	t.Cleanup(p.Close)
	return p, serve(t, p)
}
