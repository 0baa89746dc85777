package router

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/discovery"
)

// plainServer is one way the plain port serves a proxy: the router's
// own HTTP/1.1 server (h1server.go), which hands what it does not take
// to net/http's, or net/http's alone (what a FlushInterval, and the
// HTTPS port, use).
type plainServer struct {
	name  string
	serve func(testing.TB, *Proxy) *httptest.Server
}

var plainServers = []plainServer{{"h1", serveH1}, {"net-http", serveNetHTTP}}

// forEachPlainServer runs test once through each plain server.
func forEachPlainServer(t *testing.T, test func(*testing.T, plainServer)) {
	for _, ps := range plainServers {
		t.Run(ps.name, func(t *testing.T) { test(t, ps) })
	}
}

func serveNetHTTP(t testing.TB, p *Proxy) *httptest.Server {
	s := httptest.NewServer(p)
	t.Cleanup(s.Close)
	return s
}

// serveH1 serves p as Server does: the h1 server on the listener,
// net/http's behind it on the hand-off listener. The httptest.Server
// (its URL, Client and Close) is the net/http side's.
func serveH1(t testing.TB, p *Proxy) *httptest.Server {
	s, _ := startH1(t, p)
	return s
}

func startH1(t testing.TB, p *Proxy) (*httptest.Server, *h1Server) {
	s := httptest.NewUnstartedServer(p)
	h := newH1Server(p, s.Listener, h1Config{ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}, false, slog.Default())
	s.Listener = h.next
	s.Start()
	go h.serve()
	t.Cleanup(func() {
		h.close()
		s.Close()
	})
	return s, h
}

// newH1Proxy is a proxy of routes over fw's backends, served by startH1.
func newH1Proxy(t *testing.T, fw *fakeWatcher, cfg Config, routes ...api.Route) (*Proxy, *httptest.Server, *h1Server) {
	p := NewProxy(fw, cfg)
	p.SetTable(mustTable(t, routes...))
	t.Cleanup(p.Close)
	s, h := startH1(t, p)
	return p, s, h
}

// dialRaw opens a connection to s for raw requests, closed at the end.
func dialRaw(t *testing.T, s *httptest.Server) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", s.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

func TestH1RequestParse(t *testing.T) {
	for _, c := range []struct {
		head string
		ok   bool
		path string
	}{
		{"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", true, "/"},
		{"HEAD /x?y=1 HTTP/1.1\r\nhost: A.test:80\r\nAccept: */*\r\n\r\n", true, "/x"},
		{"GET /a%2Fb%20c HTTP/1.1\r\nHost: a.test\r\n\r\n", true, "/a/b c"},
		{"GET /a%zz HTTP/1.1\r\nHost: a.test\r\n\r\n", false, ""},
		{"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: keep-alive, close\r\n\r\n", true, "/"},
		{"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\n\r\n", false, ""},
		{"GET / HTTP/1.0\r\nHost: a.test\r\n\r\n", false, ""},
		{"GET / HTTP/1.1\r\n\r\n", false, ""},                                      // no Host
		{"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", false, ""},                // two
		{"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", false, ""},                         // bad host
		{"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n", false, ""},         // absolute form
		{"GET / HTTP/1.1\r\nHost: a.test\r\nX: 1\r\n 2\r\n\r\n", false, ""},        // obs-fold
		{"GET / HTTP/1.1\r\nHost: a.test\r\nX : 1\r\n\r\n", false, ""},             // space before colon
		{"GET / HTTP/1.1\r\nHost: a.test\r\nX: a\x01b\r\n\r\n", false, ""},         // control character
		{"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: X-Hop\r\n\r\n", false, ""}, // names a header
		{"GET / HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\n\r\n", false, ""},
		{"GET / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n", false, ""},
		{"GET / HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\n\r\n", false, ""},
		{"GET /#f HTTP/1.1\r\nHost: a.test\r\n\r\n", false, ""},
		{"GET / HTTP/1.1\r\nHost: a.test\r\nX: 1\r\r\n\r\n", false, ""}, // bare CR
		{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", false, ""},
	} {
		var r h1Request
		n, ok := headEnd([]byte(c.head))
		if !ok || n == 0 {
			if c.ok {
				t.Errorf("%q: no head end", c.head)
			}
			continue
		}
		got := r.parse([]byte(c.head[:n]))
		if got != c.ok || (got && r.path != c.path) {
			t.Errorf("%q: parse %v path %q, want %v %q", c.head, got, r.path, c.ok, c.path)
		}
	}
	if n, ok := headEnd([]byte("GET / HTTP/1.1\nHost: a\n\n")); !ok || n != 0 {
		t.Errorf("bare LF head: %d %v, want handed off", n, ok)
	}
	if _, ok := headEnd([]byte("GET / HTTP/1.1\r\nHost: a\r\n")); ok {
		t.Error("a head without its end taken as whole")
	}
}

// The h1 server sends a backend the headers the direct path sends for
// the same request, and writes the target as it came.
func TestH1HeadersMatchDirectPath(t *testing.T) {
	b, got := headerBackend(t)
	fw := newFakeWatcher()
	fw.add("svc", b)
	raw := "GET /p%2Fq/r?x=1&y HTTP/1.1\r\nHost: a.test:81\r\nX-Forwarded-For: 1.2.3.4\r\nx-forwarded-for: 5.6.7.8\r\n" +
		"X-Forwarded-Host: evil.test\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 1\r\nX-Request-Start: t=1\r\n" +
		"Forwarded: for=1.1.1.1\r\nX-Request-Id: rid\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n" +
		"Proxy-Authorization: x\r\nAccept: a\r\nAccept: b\r\nCookie: c=1\r\n\r\n"
	send := func(s *httptest.Server) nethttp.Header {
		c, err := net.Dial("tcp", s.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, raw)
		resp, err := nethttp.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%v %v", resp, err)
		}
		h := <-got
		if !strings.HasPrefix(h.Get("X-Request-Start"), "t=") || h.Get("X-Request-Start") == "t=1" {
			t.Errorf("X-Request-Start %q", h.Get("X-Request-Start"))
		}
		if h.Get("X-Forwarded-Port") != s.Listener.Addr().(*net.TCPAddr).AddrPort().String()[len("127.0.0.1:"):] {
			t.Errorf("X-Forwarded-Port %q", h.Get("X-Forwarded-Port"))
		}
		for _, k := range []string{"X-Request-Start", "X-Forwarded-Port"} {
			h.Del(k)
		}
		return h
	}
	p := NewProxy(fw, Config{})
	p.SetTable(mustTable(t, route("r1", "a.test", "", "svc")))
	t.Cleanup(p.Close)
	viaH1, viaNet := send(serveH1(t, p)), send(serveNetHTTP(t, p))
	if len(viaH1) != len(viaNet) {
		t.Errorf("h1 sent %v\ndirect path sent %v", viaH1, viaNet)
	}
	for k, v := range viaNet {
		if strings.Join(viaH1[k], "|") != strings.Join(v, "|") {
			t.Errorf("%s: h1 %q, direct path %q", k, viaH1[k], v)
		}
	}
	if viaH1.Get("X-Uri") != "/p%2Fq/r?x=1&y" || viaH1.Get("X-Forwarded-For") != "1.2.3.4, 5.6.7.8, 127.0.0.1" ||
		viaH1.Get("X-Request-Id") != "rid" || viaH1.Get("Proxy-Authorization") != "" {
		t.Errorf("h1 sent %v", viaH1)
	}
}

// What the h1 server does not take goes to net/http's server with the
// bytes already read, on the same connection, mid-connection too.
func TestH1HandsOff(t *testing.T) {
	_, b := backend(t, "b", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		body, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Method+" "+r.Proto+" "+string(body)+" "+r.Header.Get("X-Hop"))
	})
	fw := newFakeWatcher()
	fw.add("svc", b)
	_, s, h := newH1Proxy(t, fw, Config{}, route("r1", "a.test", "", "svc"))

	c, br := dialRaw(t, s)
	exchange := func(req, want string) {
		t.Helper()
		io.WriteString(c, req)
		resp, err := nethttp.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%q: %v", req, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != want {
			t.Fatalf("%q: %d %q, want %q", req, resp.StatusCode, body, want)
		}
	}
	exchange("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", "GET HTTP/1.1  ")
	if n := h.handoffs.Load(); n != 0 {
		t.Fatalf("%d hand-offs after a plain GET", n)
	}
	exchange("POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\n\r\nbody", "POST HTTP/1.1 body ")
	if n := h.handoffs.Load(); n != 1 {
		t.Fatalf("%d hand-offs after a POST", n)
	}
	exchange("GET / HTTP/1.1\r\nHost: a.test\r\nConnection: X-Hop\r\nX-Hop: 1\r\n\r\n", "GET HTTP/1.1  ")

	for _, req := range []string{
		"GET / HTTP/1.0\r\nHost: a.test\r\n\r\n",
		"GET / HTTP/1.1\nHost: a.test\n\n",
		"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a.test\r\nCookie: " + strings.Repeat("x", 6000) + "\r\n\r\n",
	} {
		c, err := net.Dial("tcp", s.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, req)
		resp, err := nethttp.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("%.40q: %v %v", req, resp, err)
		}
		c.Close()
	}
	if n := h.handoffs.Load(); n != 5 {
		t.Errorf("%d hand-offs, want 5", n)
	}
}

// A raw backend's framings reach the client whole: a length, chunks with
// extensions and trailers passed on as they came, a body ended by the
// backend's close (sent on as chunks), no body for HEAD, 204 and 304;
// hop-by-hop headers are dropped. Requests pipelined in one write are
// answered in order.
func TestH1ResponseFraming(t *testing.T) {
	answers := map[string]string{
		"/length":  "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello",
		"/chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n",
		"/eof":     "HTTP/1.0 200 OK\r\nX-A: 1\r\n\r\nuntil the end",
		"/head":    "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
		"/204":     "HTTP/1.1 204 No Content\r\n\r\n",
		"/304":     "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
		"/hop":     "HTTP/1.1 200 OK\r\nConnection: X-Private, keep-alive\r\nX-Private: 1\r\nKeep-Alive: timeout=1\r\nContent-Length: 3\r\n\r\nhop",
		// A header line of 4 KiB and more, ending where the read buffer does.
		"/long": "HTTP/1.1 200 OK\r\nX-Long: " + strings.Repeat("l", 4096-len("X-Long: ")) + "\r\nContent-Length: 4\r\n\r\nlong",
	}
	var backendConns atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			backendConns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := nethttp.ReadRequest(br)
					if err != nil {
						return
					}
					io.WriteString(c, answers[req.URL.Path])
					if req.URL.Path == "/eof" {
						return
					}
				}
			}()
		}
	}()
	fw := newFakeWatcher()
	fw.add("svc", discovery.Instance{ID: "raw", Addr: ln.Addr().String()})
	_, s, h := newH1Proxy(t, fw, Config{}, route("r1", "a.test", "", "svc"))

	c, br := dialRaw(t, s)
	req := func(method, path string) string {
		return method + " " + path + " HTTP/1.1\r\nHost: a.test\r\n\r\n"
	}
	// All in one write: pipelined.
	io.WriteString(c, req("GET", "/length")+req("GET", "/chunked")+req("GET", "/eof")+req("HEAD", "/head")+
		req("GET", "/204")+req("GET", "/304")+req("GET", "/hop")+req("GET", "/long"))
	read := func(method string) (*nethttp.Response, string) {
		t.Helper()
		resp, err := nethttp.ReadResponse(br, &nethttp.Request{Method: method})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}
	if resp, body := read("GET"); body != "hello" || resp.ContentLength != 5 || resp.Header.Get("X-A") != "1" {
		t.Errorf("length: %q %v", body, resp.Header)
	}
	if resp, body := read("GET"); body != "abcde" || resp.Trailer.Get("X-Sum") != "5" || resp.TransferEncoding == nil {
		t.Errorf("chunked: %q trailer %v", body, resp.Trailer)
	}
	if resp, body := read("GET"); body != "until the end" || resp.TransferEncoding == nil || resp.Close {
		t.Errorf("to EOF: %q %v close=%v", body, resp.TransferEncoding, resp.Close)
	}
	if resp, body := read("HEAD"); body != "" || resp.ContentLength != 100 {
		t.Errorf("HEAD: %q %d", body, resp.ContentLength)
	}
	if resp, body := read("GET"); resp.StatusCode != 204 || body != "" {
		t.Errorf("204: %d %q", resp.StatusCode, body)
	}
	if resp, body := read("GET"); resp.StatusCode != 304 || body != "" {
		t.Errorf("304: %d %q", resp.StatusCode, body)
	}
	if resp, body := read("GET"); body != "hop" || resp.Header.Get("X-Private") != "" || resp.Header.Get("Keep-Alive") != "" ||
		resp.Header.Get("Connection") != "" {
		t.Errorf("hop: %q %v", body, resp.Header)
	}
	if resp, body := read("GET"); body != "long" || len(resp.Header.Get("X-Long")) != 4096-len("X-Long: ") {
		t.Errorf("long header: %q %d", body, len(resp.Header.Get("X-Long")))
	}
	if n := h.handoffs.Load(); n != 0 {
		t.Errorf("%d hand-offs", n)
	}
	// One connection for all but the one the backend closed.
	if n := backendConns.Load(); n != 2 {
		t.Errorf("%d backend connections, want 2", n)
	}

	// Connection: close is answered, and the connection closed.
	io.WriteString(c, "GET /length HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
	if resp, body := read("GET"); !resp.Close || body != "hello" {
		t.Errorf("Connection: close: close=%v %q", resp.Close, body)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after Connection: close the connection stayed open (%v)", err)
	}
}

// 404, 503 and 502 pages, and the connection stays usable after them.
func TestH1ErrorPages(t *testing.T) {
	fw := newFakeWatcher()
	fw.add("dead", discovery.Instance{ID: "d", Addr: deadAddr(t)})
	p := NewProxy(fw, Config{BackendWait: time.Second})
	p.SetTable(mustTable(t, route("r1", "none.test", "", "none"), route("r2", "dead.test", "", "dead")))
	t.Cleanup(p.Close)
	s := serveH1(t, p)
	c, br := dialRaw(t, s)
	for _, x := range []struct {
		host string
		code int
		body string
	}{
		{"nowhere.test", 404, "404 Not Found: no route for nowhere.test/x"},
		{"none.test", 503, `no healthy backend for service "none"`},
		{"dead.test", 502, `the backend of service "dead" failed to answer`},
	} {
		io.WriteString(c, "GET /x HTTP/1.1\r\nHost: "+x.host+"\r\n\r\n")
		resp, err := nethttp.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != x.code || !strings.Contains(string(b), x.body) ||
			resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: %d %q %v", x.host, resp.StatusCode, b, resp.Header)
		}
	}
}

// A request's access log line and metrics are the same through the h1
// server.
func TestH1AccessLog(t *testing.T) {
	_, b := backend(t, "b", nil)
	fw := newFakeWatcher()
	fw.add("svc", b)
	var logBuf accessLogBuffer
	p := NewProxy(fw, Config{AccessLog: &logBuf})
	p.SetTable(mustTable(t, route("r1", "a.test", "", "svc")))
	t.Cleanup(p.Close)
	s := serveH1(t, p)
	req, _ := nethttp.NewRequest("GET", s.URL+"/p?secret=1", nil)
	req.Host = "a.test"
	req.Header.Set("X-Request-Id", "abc")
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	l := logBuf.lines(t, 1)[0]
	for k, want := range map[string]any{"method": "GET", "host": "a.test", "path": "/p", "status": 200.0, "bytes": 1.0,
		"route": "r1", "backend": b.Addr, "client_ip": "127.0.0.1", "request_id": "abc"} {
		if l[k] != want {
			t.Errorf("%s: %v, want %v (%v)", k, l[k], want, l)
		}
	}
}

// Closing stops accepting, closes idle connections, and lets a request
// in flight finish.
func TestH1Shutdown(t *testing.T) {
	release := make(chan struct{})
	_, b := backend(t, "b", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "done")
	})
	fw := newFakeWatcher()
	fw.add("svc", b)
	p, s, h := newH1Proxy(t, fw, Config{}, route("r1", "a.test", "", "svc"))
	idle, idleR := dialRaw(t, s)
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
	if resp, err := nethttp.ReadResponse(idleR, nil); err != nil {
		t.Fatal(err)
	} else {
		io.ReadAll(resp.Body)
	}
	busy, busyR := dialRaw(t, s)
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: a.test\r\n\r\n")
	waitFor(t, func() bool { return p.Backends().List(context.Background(), "svc")[0].InFlight() == 1 })

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- h.shutdown(ctx)
	}()
	if _, err := idleR.ReadByte(); err != io.EOF {
		t.Errorf("idle connection: %v, want closed", err)
	}
	if c, err := net.Dial("tcp", s.Listener.Addr().String()); err == nil {
		c.Close()
		t.Error("accepting while shutting down")
	}
	close(release)
	resp, err := nethttp.ReadResponse(busyR, nil)
	if err != nil || resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("request in flight: %v %v", resp, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
