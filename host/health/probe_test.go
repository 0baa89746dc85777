package health

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// newServer starts an httptest server whose handler is h, closing hang
// (which handlers may wait on) before the server so Close does not wait
// for them.
func newServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, chan struct{}) {
	srv := httptest.NewServer(h)
	hang := make(chan struct{})
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(hang) })
	return srv, hang
}

func addrOf(srv *httptest.Server) string { return srv.Listener.Addr().String() }

func TestHTTPProbe(t *testing.T) {
	var offHostHits atomic.Int32
	offHost, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) { offHostHits.Add(1) })
	// The handler reads hang only once requests come, after it is set.
	var hang chan struct{}
	srv, hang := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/fail":
			w.WriteHeader(http.StatusInternalServerError)
		case "/redirect-ok":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/redirect-fail":
			http.Redirect(w, r, "/fail", http.StatusFound)
		case "/redirect-away":
			http.Redirect(w, r, offHost.URL+"/fail", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/hang":
			<-hang
		case "/slow-body":
			w.Write([]byte("start"))
			w.(http.Flusher).Flush()
			<-hang
		case "/big-body":
			chunk := make([]byte, 64<<10)
			for range 160 { // 10 MiB
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		default:
			http.NotFound(w, r)
		}
	})
	closed := httptest.NewServer(http.NotFoundHandler())
	closedAddr := addrOf(closed)
	closed.Close()

	const timeout = 300 * time.Millisecond
	tests := []struct {
		path    string
		expect  int
		addr    string
		wantErr string // "" means healthy
	}{
		{path: "/ok"},
		{path: "/nocontent"},
		{path: "/ok", expect: 200},
		{path: "/nocontent", expect: 204},
		{path: "/ok", expect: 204, wantErr: "status 200, want 204"},
		{path: "/fail", wantErr: "status 500, want 2xx or 3xx"},
		{path: "/missing", wantErr: "status 404"},
		{path: "/redirect-ok"},
		{path: "/redirect-fail", wantErr: "status 500"},
		// Not followed: the redirect itself is a 3xx, and the other host
		// is never asked.
		{path: "/redirect-away"},
		{path: "/redirect-away", expect: 200, wantErr: "status 302"},
		{path: "/loop", wantErr: "redirects"},
		{path: "/hang", wantErr: "timed out"},
		// The status counts; the body is not waited for beyond Timeout.
		{path: "/slow-body"},
		{path: "/big-body"},
		{path: "/ok", addr: closedAddr, wantErr: "refused"},
	}
	for _, tt := range tests {
		t.Run(strings.TrimPrefix(tt.path, "/"), func(t *testing.T) {
			addr := tt.addr
			if addr == "" {
				addr = addrOf(srv)
			}
			c := Check{Kind: KindHTTP, Addr: addr, Path: tt.path, Interval: time.Second, Timeout: timeout, Threshold: 1, ExpectStatus: tt.expect}
			if err := Validate(c); err != nil {
				t.Fatal(err)
			}
			p := newProber(c)
			defer p.close()
			start := time.Now()
			err := p.probe(context.Background())
			if elapsed := time.Since(start); elapsed > timeout+time.Second {
				t.Errorf("probe took %v with a %v timeout", elapsed, timeout)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("probe = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(errText(err, timeout), tt.wantErr) {
				t.Fatalf("probe = %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
	if n := offHostHits.Load(); n != 0 {
		t.Errorf("followed a redirect to another host %d times", n)
	}
}

func TestHTTPProbeFreshConnections(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	p := newProber(Check{Kind: KindHTTP, Addr: addrOf(srv), Path: "/", Interval: time.Second, Timeout: time.Second, Threshold: 1})
	defer p.close()
	for range 3 {
		if err := p.probe(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("3 probes used %d connections", n)
	}
}

func TestRunHTTPTransitions(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
	})
	c := Check{Kind: KindHTTP, Addr: addrOf(srv), Path: "/health", Interval: 10 * time.Millisecond, Timeout: time.Second, Threshold: 3}
	r := startRun(t, c, nil)
	if st := r.next(t, 5*time.Second); st.State != Healthy {
		t.Fatalf("status %+v", st)
	}
	status.Store(http.StatusServiceUnavailable)
	st := r.next(t, 5*time.Second)
	if st.State != Unhealthy || st.Failures != 3 || !strings.Contains(st.Err, "503") || st.Time.IsZero() {
		t.Fatalf("status %+v", st)
	}
	status.Store(http.StatusOK)
	if st := r.next(t, 5*time.Second); st.State != Healthy || st.Err != "" {
		t.Fatalf("status %+v", st)
	}
	r.none(t, 100*time.Millisecond)
}

func TestRunTCPListenerClosedAndReopened(t *testing.T) {
	listen := func(addr string) net.Listener {
		t.Helper()
		var ln net.Listener
		var err error
		// The port was just freed; give the kernel a moment if needed.
		for range 50 {
			if ln, err = net.Listen("tcp", addr); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				conn.Close()
			}
		}()
		return ln
	}
	ln := listen("127.0.0.1:0")
	addr := ln.Addr().String()
	c := Check{Kind: KindTCP, Addr: addr, Interval: 10 * time.Millisecond, Timeout: time.Second, Threshold: 2}
	r := startRun(t, c, nil)
	if st := r.next(t, 5*time.Second); st.State != Healthy {
		t.Fatalf("status %+v", st)
	}
	ln.Close()
	st := r.next(t, 5*time.Second)
	if st.State != Unhealthy || st.Failures != 2 || !strings.Contains(st.Err, "refused") {
		t.Fatalf("status %+v", st)
	}
	ln = listen(addr)
	defer ln.Close()
	if st := r.next(t, 5*time.Second); st.State != Healthy {
		t.Fatalf("status %+v", st)
	}
}

func TestRunHTTPTimeout(t *testing.T) {
	var hang chan struct{}
	srv, hang := newServer(t, func(w http.ResponseWriter, r *http.Request) { <-hang })
	c := Check{Kind: KindHTTP, Addr: addrOf(srv), Path: "/", Interval: 10 * time.Millisecond, Timeout: 50 * time.Millisecond, Threshold: 2}
	start := time.Now()
	r := startRun(t, c, nil)
	st := r.next(t, 5*time.Second)
	if st.State != Unhealthy || !strings.Contains(st.Err, "timed out") {
		t.Fatalf("status %+v", st)
	}
	// Two probes of 50ms each, plus the backoff between them.
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Fatalf("unhealthy only after %v", elapsed)
	}
}

func TestStatusErrorIsTyped(t *testing.T) {
	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(418) })
	p := newProber(Check{Kind: KindHTTP, Addr: addrOf(srv), Path: "/", Interval: time.Second, Timeout: time.Second, Threshold: 1})
	defer p.close()
	var se *StatusError
	if err := p.probe(context.Background()); !errors.As(err, &se) || se.Code != 418 {
		t.Fatalf("probe = %v", err)
	}
}
