package router

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	nethttp "net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pierpaas/pier/store"
)

// startWith starts the router with the env's defaults changed by edit.
func (e *routerEnv) startWith(edit func(*ServerConfig)) *Server {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	cfg := ServerConfig{Client: e.cli, Discovery: e.reg, HTTPAddr: "127.0.0.1:0", Domain: "localhost"}
	edit(&cfg)
	srv, err := Start(ctx, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { srv.Close() })
	e.srv = srv
	return srv
}

func TestServerHTTPS(t *testing.T) {
	e := newRouterEnv(t)
	e.serve("web.one", "one backend", nil)
	e.serve("web.two", "two backend", nil)
	certOne, keyOne, xOne := sniCert(t, "one.example.com")
	certTwo, keyTwo, xTwo := sniCert(t, "two.example.com")
	e.put(store.RoutesPrefix, "one", sniRoute("one", "one.example.com", "web.one", certOne, keyOne))
	two := sniRoute("two", "two.example.com", "web.two", certTwo, keyTwo)
	two.RedirectHTTPS = true
	e.put(store.RoutesPrefix, "two", two)
	reg := prometheus.NewRegistry()
	var log accessLogBuffer
	srv := e.startWith(func(c *ServerConfig) {
		c.HTTPSAddr = "127.0.0.1:0"
		c.Registry = reg
		c.AccessLog = &log
	})
	_, httpsPort, _ := net.SplitHostPort(srv.HTTPSAddr())

	for _, c := range []struct {
		host string
		cert *x509.Certificate
		body string
	}{{"one.example.com", xOne, "one backend"}, {"two.example.com", xTwo, "two backend"}} {
		roots := x509.NewCertPool()
		roots.AddCert(c.cert)
		tr := &nethttp.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: c.host}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		req, _ := nethttp.NewRequest("GET", "https://"+srv.HTTPSAddr()+"/", nil)
		req.Host = c.host
		resp, err := (&nethttp.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.host, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 || string(b) != c.body ||
			!bytes.Equal(resp.TLS.PeerCertificates[0].Raw, c.cert.Raw) {
			t.Errorf("%s: %s %d %q", c.host, resp.Proto, resp.StatusCode, b)
		}
	}
	if conn, err := sniHandshake(srv.HTTPSAddr(), "three.example.com", nil); err == nil {
		conn.Close()
		t.Error("handshake for a name without a certificate succeeded")
	}

	// redirect_https names the HTTPS listener's port.
	nofollow := &nethttp.Client{CheckRedirect: func(*nethttp.Request, []*nethttp.Request) error { return nethttp.ErrUseLastResponse }}
	req, _ := nethttp.NewRequest("GET", "http://"+srv.Addr()+"/p?q=1", nil)
	req.Host = "two.example.com"
	resp, err := nofollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "https://two.example.com:" + httpsPort + "/p?q=1"; resp.StatusCode != 308 || resp.Header.Get("Location") != want {
		t.Errorf("redirect: %d %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	// Plain HTTP still serves the route without the option.
	if code, body := e.get("one.example.com"); code != 200 || body != "one backend" {
		t.Errorf("plain http: %d %q", code, body)
	}

	// Metrics and the access log see both listeners.
	if n := testutil.ToFloat64(srv.Proxy().metrics.requests.WithLabelValues("two", "3xx")); n != 1 {
		t.Errorf("two's 3xx count %v", n)
	}
	lines := log.lines(t, 4)
	if l := lines[0]; l["route"] != "one" || l["status"] != 200.0 {
		t.Errorf("first log line %v", l)
	}
}

func TestServerLeaderOnly(t *testing.T) {
	e := newRouterEnv(t)
	// Registered first, so discovery's leader: the oldest instance.
	first := e.serve("db.pg", "first", nil)
	e.serve("db.pg", "second", nil)
	r := route("db", "db.example.com", "", "db.pg")
	r.LeaderOnly = true
	e.put(store.RoutesPrefix, "db", r)
	e.start()
	for range 20 {
		if code, body := e.get("db.example.com"); code != 200 || body != "first" {
			t.Fatalf("leader-only: %d %q", code, body)
		}
	}
	// The leader deregisters; discovery makes the second the leader and
	// the route follows.
	first.Close()
	e.expect("db.example.com", 200, "second")
	for range 20 {
		if code, body := e.get("db.example.com"); code != 200 || body != "second" {
			t.Fatalf("after failover: %d %q", code, body)
		}
	}
	e.serve("db.pg", "third", nil)
	for range 10 {
		if code, body := e.get("db.example.com"); code != 200 || body != "second" {
			t.Fatalf("a newer instance took the lead: %d %q", code, body)
		}
	}
	if l := e.srv.Proxy().Backends().Leader(e.ctx, "db.pg"); l == nil || l.Instance.ID != discoveryLeader(t, e) {
		t.Fatalf("leader %v", l)
	}
}

func discoveryLeader(t *testing.T, e *routerEnv) string {
	t.Helper()
	l, err := e.reg.Leader(e.ctx, "db.pg")
	if err != nil {
		t.Fatal(err)
	}
	return l.ID
}
