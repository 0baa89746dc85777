package router

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pierpaas/pier/discovery"
)

func TestDirectEligible(t *testing.T) {
	p := NewProxy(newFakeWatcher(), Config{})
	defer p.Close()
	req := func(method string, edit func(*nethttp.Request)) *nethttp.Request {
		r := httptest.NewRequest(method, "http://a.test/", nil)
		if edit != nil {
			edit(r)
		}
		return r
	}
	for _, c := range []struct {
		name string
		r    *nethttp.Request
		want bool
	}{
		{"GET", req("GET", nil), true},
		{"HEAD", req("HEAD", nil), true},
		{"POST", req("POST", nil), false},
		{"DELETE", req("DELETE", nil), false},
		{"GET with a body", req("GET", func(r *nethttp.Request) { r.Body = io.NopCloser(strings.NewReader("x")); r.ContentLength = 1 }), false},
		{"upgrade", req("GET", func(r *nethttp.Request) { r.Header.Set("Upgrade", "websocket") }), false},
		{"expect", req("GET", func(r *nethttp.Request) { r.Header.Set("Expect", "100-continue") }), false},
		{"te", req("GET", func(r *nethttp.Request) { r.Header.Set("Te", "trailers") }), false},
		{"HTTP/2", req("GET", func(r *nethttp.Request) { r.ProtoMajor, r.ProtoMinor = 2, 0 }), false},
	} {
		if got := p.direct(c.r); got != c.want {
			t.Errorf("%s: direct %v, want %v", c.name, got, c.want)
		}
	}
	p2 := NewProxy(newFakeWatcher(), Config{FlushInterval: time.Second})
	defer p2.Close()
	if p2.direct(req("GET", nil)) {
		t.Error("direct with a FlushInterval")
	}
}

// countingBackend answers "ok" and counts the connections it accepts;
// idle > 0 closes idle ones after that long.
func countingBackend(t *testing.T, idle time.Duration) (*atomic.Int64, discovery.Instance) {
	var conns atomic.Int64
	s := httptest.NewUnstartedServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		io.WriteString(w, "ok")
	}))
	s.Config.IdleTimeout = idle
	s.Config.ConnState = func(_ net.Conn, st nethttp.ConnState) {
		if st == nethttp.StateNew {
			conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return &conns, discovery.Instance{ID: "b", Addr: s.Listener.Addr().String()}
}

// headerBackend sends on its channel the headers of each request it
// gets, with Host and X-Uri (the request target) added.
func headerBackend(t *testing.T) (discovery.Instance, <-chan nethttp.Header) {
	got := make(chan nethttp.Header, 1)
	_, b := backend(t, "b", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		h := r.Header.Clone()
		h.Set("Host", r.Host)
		h.Set("X-Uri", r.RequestURI)
		io.Copy(io.Discard, r.Body)
		got <- h
	})
	return b, got
}

// The direct path and ReverseProxy send a backend the same headers.
func TestDirectHeadersMatchReverseProxy(t *testing.T) {
	b, got := headerBackend(t)
	fw := newFakeWatcher()
	fw.add("svc", b)
	_, s := newTestProxy(t, fw, route("r1", "a.test", "", "svc"))
	send := func(method string, body io.Reader) nethttp.Header {
		req, _ := nethttp.NewRequest(method, s.URL+"/p%2Fq/r?x=1&y", body)
		req.Host = "a.test:81"
		req.Header["X-Forwarded-For"] = []string{"1.2.3.4", "5.6.7.8"}
		req.Header.Set("X-Forwarded-Host", "evil.test")
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-Port", "1")
		req.Header.Set("X-Request-Start", "t=1")
		req.Header.Set("Forwarded", "for=1.1.1.1")
		req.Header.Set("X-Request-Id", "rid")
		req.Header.Set("Connection", "X-Hop, keep-alive")
		req.Header.Set("X-Hop", "1")
		req.Header.Set("Keep-Alive", "timeout=5")
		req.Header.Set("Proxy-Authorization", "secret")
		req.Header["X-Multi"] = []string{"a", "b"}
		req.Header.Set("Accept-Encoding", "br")
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		h := <-got
		// What differs by nature: the body, the start time.
		for _, k := range []string{"Content-Length", "Transfer-Encoding", "X-Request-Start"} {
			h.Del(k)
		}
		return h
	}
	direct := send("GET", nil)
	viaRP := send("POST", strings.NewReader("x")) // a body: ReverseProxy's path
	if direct.Get("X-Uri") != "/p%2Fq/r?x=1&y" {
		t.Errorf("request URI %q", direct.Get("X-Uri"))
	}
	for k, want := range map[string]string{
		"Host":                "a.test:81",
		"X-Forwarded-For":     "1.2.3.4, 5.6.7.8, 127.0.0.1",
		"X-Forwarded-Host":    "a.test:81",
		"X-Forwarded-Proto":   "http",
		"X-Request-Id":        "rid",
		"Accept-Encoding":     "br",
		"X-Hop":               "",
		"Keep-Alive":          "",
		"Forwarded":           "",
		"Connection":          "",
		"Proxy-Authorization": "",
	} {
		if got := direct.Get(k); got != want {
			t.Errorf("direct: %s %q, want %q", k, got, want)
		}
	}
	if v := direct["X-Multi"]; len(v) != 2 || v[0] != "a" || v[1] != "b" {
		t.Errorf("X-Multi %q", v)
	}
	// The same as ReverseProxy's, method aside.
	for k := range viaRP {
		if k == "X-Request-Start" {
			continue
		}
		if strings.Join(direct[k], "|") != strings.Join(viaRP[k], "|") {
			t.Errorf("%s: direct %q, ReverseProxy %q", k, direct[k], viaRP[k])
		}
	}
	for k := range direct {
		if _, ok := viaRP[k]; !ok {
			t.Errorf("%s: direct %q, ReverseProxy none", k, direct[k])
		}
	}
}

// A backend that closes idle keep-alive connections (Node.js does after
// 5s) costs no request: a GET that finds its pooled connection closed is
// sent again on a new one.
func TestDirectStaleConnectionRetried(t *testing.T) {
	forEachPlainServer(t, func(t *testing.T, via plainServer) {
		conns, inst := countingBackend(t, 20*time.Millisecond)
		fw := newFakeWatcher()
		fw.add("svc", inst)
		_, ps := newTestProxyOn(t, fw, via.serve, route("r1", "a.test", "", "svc"))
		for i := range 5 {
			if code, body, _ := get(t, ps, "a.test", "/"); code != 200 || body != "ok" {
				t.Fatalf("request %d: %d %q", i, code, body)
			}
			time.Sleep(60 * time.Millisecond) // the backend closes the idle connection
		}
		if n := conns.Load(); n < 2 {
			t.Errorf("%d backend connections: the backend's closes were not seen", n)
		}
	})
}

// Connections are reused: sequential requests take one backend
// connection.
func TestDirectReusesConnections(t *testing.T) {
	forEachPlainServer(t, func(t *testing.T, via plainServer) {
		conns, inst := countingBackend(t, 0)
		fw := newFakeWatcher()
		fw.add("svc", inst)
		p, ps := newTestProxyOn(t, fw, via.serve, route("r1", "a.test", "", "svc"))
		for i := range 20 {
			method := "GET"
			if i%2 == 1 {
				method = "HEAD"
			}
			req, _ := nethttp.NewRequest(method, ps.URL, nil)
			req.Host = "a.test"
			resp, err := ps.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := map[string]string{"GET": "ok", "HEAD": ""}[method]; resp.StatusCode != 200 || string(b) != want {
				t.Fatalf("%s: %d %q", method, resp.StatusCode, b)
			}
		}
		if n := conns.Load(); n != 1 {
			t.Errorf("%d backend connections for 20 sequential requests, want 1", n)
		}
		if n := p.Backends().List(context.Background(), "svc")[0].InFlight(); n != 0 {
			t.Errorf("in flight %d after the requests", n)
		}
	})
}

// A client that goes away while the backend thinks cuts the backend's
// connection at once, as http.Transport does.
func TestDirectClientGoneCutsBackend(t *testing.T) {
	forEachPlainServer(t, func(t *testing.T, via plainServer) {
		gone := make(chan struct{})
		_, b := backend(t, "b", func(w nethttp.ResponseWriter, r *nethttp.Request) {
			select {
			case <-r.Context().Done():
				close(gone)
			case <-time.After(10 * time.Second):
			}
		})
		fw := newFakeWatcher()
		fw.add("svc", b)
		_, s := newTestProxyOn(t, fw, via.serve, route("r1", "a.test", "", "svc"))
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := nethttp.NewRequestWithContext(ctx, "GET", s.URL, nil)
		req.Host = "a.test"
		go func() {
			time.Sleep(100 * time.Millisecond)
			cancel()
		}()
		if _, err := s.Client().Do(req); err == nil {
			t.Fatal("no error")
		}
		select {
		case <-gone:
		case <-time.After(5 * time.Second):
			t.Fatal("the backend's request went on after the client left")
		}
	})
}

func TestDirectResponseHeaderTimeout(t *testing.T) {
	forEachPlainServer(t, func(t *testing.T, via plainServer) {
		release := make(chan struct{})
		_, b := backend(t, "b", func(w nethttp.ResponseWriter, r *nethttp.Request) { <-release })
		t.Cleanup(func() { close(release) }) // before the backend's Close (cleanups run last first)
		fw := newFakeWatcher()
		fw.add("svc", b)
		p := NewProxy(fw, Config{ResponseHeaderTimeout: 100 * time.Millisecond})
		p.SetTable(mustTable(t, route("r1", "a.test", "", "svc")))
		s := via.serve(t, p)
		t.Cleanup(p.Close)
		start := time.Now()
		if code, _, _ := get(t, s, "a.test", "/"); code != 502 {
			t.Fatalf("status %d, want 502", code)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("took %v", d)
		}
	})
}

// Streams, trailers, informational responses and a backend that dies
// mid-body, through the direct path.
func TestDirectResponses(t *testing.T) {
	forEachPlainServer(t, func(t *testing.T, via plainServer) {
		_, b := backend(t, "b", func(w nethttp.ResponseWriter, r *nethttp.Request) {
			switch r.URL.Path {
			case "/stream":
				w.Header().Set("Content-Type", "text/event-stream")
				for i := range 3 {
					io.WriteString(w, "data: x\n\n")
					w.(nethttp.Flusher).Flush()
					if i == 0 {
						time.Sleep(50 * time.Millisecond)
					}
				}
			case "/trailer":
				w.Header().Set("Trailer", "X-Sum")
				io.WriteString(w, "body")
				w.Header().Set("X-Sum", "42")
			case "/hints":
				w.Header().Set("Link", "</a.css>; rel=preload")
				w.WriteHeader(nethttp.StatusEarlyHints)
				io.WriteString(w, "final")
			case "/die":
				w.Header().Set("Content-Length", "100")
				io.WriteString(w, "short")
				w.(nethttp.Flusher).Flush()
				conn, _, _ := w.(nethttp.Hijacker).Hijack()
				conn.Close()
			case "/hop":
				w.Header().Set("Connection", "X-Private")
				w.Header().Set("X-Private", "1")
				w.Header().Set("Keep-Alive", "timeout=1")
				io.WriteString(w, "hop")
			}
		})
		fw := newFakeWatcher()
		fw.add("svc", b)
		_, s := newTestProxyOn(t, fw, via.serve, route("r1", "a.test", "", "svc"))

		// The first event arrives before the backend's pause ends.
		conn, err := net.Dial("tcp", s.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(conn, "GET /stream HTTP/1.1\r\nHost: a.test\r\n\r\n")
		br := bufio.NewReader(conn)
		resp, err := nethttp.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		first := make([]byte, len("data: x\n\n"))
		start := time.Now()
		if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "data: x\n\n" {
			t.Fatalf("first event %q, %v", first, err)
		}
		if d := time.Since(start); d > 40*time.Millisecond {
			t.Logf("first event after %v (buffered?)", d)
		}
		rest, _ := io.ReadAll(resp.Body)
		if string(rest) != "data: x\n\ndata: x\n\n" {
			t.Errorf("rest of stream %q", rest)
		}

		req, _ := nethttp.NewRequest("GET", s.URL+"/trailer", nil)
		req.Host = "a.test"
		resp, err = s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "body" || resp.Trailer.Get("X-Sum") != "42" {
			t.Errorf("trailer: body %q, trailer %v", body, resp.Trailer)
		}

		io.WriteString(conn, "GET /hints HTTP/1.1\r\nHost: a.test\r\n\r\n")
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		resp, err = nethttp.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 103 || resp.Header.Get("Link") == "" {
			t.Fatalf("early hints: %v %v", resp, err)
		}
		resp, err = nethttp.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("after early hints: %v %v", resp, err)
		}
		if b, _ := io.ReadAll(resp.Body); string(b) != "final" {
			t.Errorf("after early hints: %q", b)
		}

		code, body2, h := get(t, s, "a.test", "/hop")
		if code != 200 || body2 != "hop" || h.Get("X-Private") != "" || h.Get("Keep-Alive") != "" {
			t.Errorf("hop-by-hop: %d %q %v", code, body2, h)
		}

		req, _ = nethttp.NewRequest("GET", s.URL+"/die", nil)
		req.Host = "a.test"
		resp, err = s.Client().Do(req)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err == nil || !(errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "reset")) {
			t.Errorf("backend died mid-body: client got %v, want a cut response", err)
		}
	})
}

// A backend's idle connections close when discovery drops it.
func TestDirectDownBackendClosesIdle(t *testing.T) {
	forEachPlainServer(t, func(t *testing.T, via plainServer) {
		closed := make(chan struct{}, 4)
		s := httptest.NewUnstartedServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {}))
		s.Config.ConnState = func(_ net.Conn, st nethttp.ConnState) {
			if st == nethttp.StateClosed {
				closed <- struct{}{}
			}
		}
		s.Start()
		t.Cleanup(s.Close)
		inst := discovery.Instance{ID: "b", Addr: s.Listener.Addr().String()}
		fw := newFakeWatcher()
		fw.add("svc", inst)
		p, ps := newTestProxyOn(t, fw, via.serve, route("r1", "a.test", "", "svc"))
		if code, _, _ := get(t, ps, "a.test", "/"); code != 200 {
			t.Fatal(code)
		}
		fw.send(t, discovery.Event{Type: discovery.EventDown, Service: "svc", Instance: &inst})
		waitFor(t, func() bool { return len(p.Backends().List(context.Background(), "svc")) == 0 })
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			t.Fatal("the idle connection to the removed backend stayed open")
		}
	})
}
