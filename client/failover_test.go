package client_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pierpaas/pier/client"
	"github.com/pierpaas/pier/internal/pki"
)

// apiServer answers GET /v1/apps with an empty list and counts requests.
func apiServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		io.WriteString(w, "[]")
	}))
	t.Cleanup(ts.Close)
	return ts, &n
}

// deadURL is an https URL on which nothing listens.
func deadURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "https://" + addr
}

func trusting(ts *httptest.Server) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	return &tls.Config{RootCAs: pool}
}

func TestFallbacksTakeOverWhenTheServerIsDown(t *testing.T) {
	s1, n1 := apiServer(t)
	s2, n2 := apiServer(t)
	ctx := context.Background()

	// The base URL's server answers: the fallback is not used.
	c, err := client.NewController(s1.URL, "k", trusting(s1), client.WithFallbacks(s2.URL))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apps(ctx); err != nil || n1.Load() != 1 || n2.Load() != 0 || c.ServerURL() != s1.URL {
		t.Fatalf("apps: %v; s1 %d, s2 %d requests; server %s", err, n1.Load(), n2.Load(), c.ServerURL())
	}
	c.Close()

	// It is down: the client moves to the first fallback that answers,
	// says so, and stays there.
	dead := deadURL(t)
	c, err = client.NewController(dead, "k", trusting(s1), client.WithFallbacks(deadURL(t), s2.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var moves []string
	c.OnMove(func(from, to string, err error) {
		moves = append(moves, from+" -> "+to)
		if err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("moved without the reason: %v", err)
		}
	})
	for range 3 {
		if _, err := c.Apps(ctx); err != nil {
			t.Fatalf("apps through the fallback: %v", err)
		}
	}
	want := strings.TrimPrefix(dead, "https://") + " -> " + strings.TrimPrefix(s2.URL, "https://")
	if n2.Load() != 3 || len(moves) != 1 || moves[0] != want {
		t.Fatalf("s2 answered %d of 3; moves %v, want [%s]", n2.Load(), moves, want)
	}
	if got := c.ServerURL(); got != s2.URL {
		t.Fatalf("ServerURL %s after the move, want %s", got, s2.URL)
	}

	// Without fallbacks a server that is down is an error.
	lone, err := client.NewController(dead, "k", trusting(s1))
	if err != nil {
		t.Fatal(err)
	}
	defer lone.Close()
	if _, err := lone.Apps(ctx); err == nil {
		t.Fatal("a dead server answered")
	}
	if _, err := client.NewController(s1.URL, "k", nil, client.WithFallbacks("http://10.0.0.1:7300")); err == nil {
		t.Fatal("a plain-HTTP fallback was taken")
	}
}

// A fallback's certificate is checked for the fallback's own address.
func TestFallbackCertificateIsVerified(t *testing.T) {
	s1, _ := apiServer(t)
	other := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "[]")
	}))
	// A certificate of another CA, valid for the address.
	ca, err := pki.NewCA("elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ca.Issue(dir, pki.Request{CommonName: "other", Role: pki.RoleServer, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, pki.CertFile), filepath.Join(dir, pki.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	other.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	other.StartTLS()
	defer other.Close()
	c, err := client.NewController(deadURL(t), "k", trusting(s1), client.WithFallbacks(other.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Apps(context.Background())
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a server whose certificate the cluster CA did not sign: %v", err)
	}
}

// An attachment moves too: `pier run` works when its server is down.
func TestAttachUsesFallbacks(t *testing.T) {
	s2 := httptest.NewTLSServer(echoAttach(t))
	defer s2.Close()
	c, err := client.NewController(deadURL(t), "k", trusting(s2), client.WithFallbacks(s2.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ac, err := c.Attach(context.Background(), "app", "run-1", client.AttachOptions{})
	if err != nil {
		t.Fatalf("attach through the fallback: %v", err)
	}
	defer ac.Close()
	io.WriteString(ac, "hello\n")
	ac.CloseStdin()
	var out strings.Builder
	if ex, err := ac.Copy(&out, io.Discard); err != nil || ex.ExitCode != 7 || out.String() != "size x\nhello\n" {
		t.Fatalf("attachment: %+v %v %q", ex, err, out.String())
	}
}
