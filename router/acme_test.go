package router

// The ACME tests run Pebble, Let's Encrypt's test CA, in process (its ca,
// db, va and wfe packages) with real validation: its VA resolves every
// name to 127.0.0.1 through a small DNS server of the test's, and checks
// TLS-ALPN-01 and HTTP-01 challenges on the ports of the test's routers
// (PEBBLE_VA_ALWAYS_VALID is not used). Only PEBBLE_VA_NOSLEEP (no random
// wait before validating), PEBBLE_WFE_NONCEREJECT=0 and
// PEBBLE_AUTHZREUSE=0 are set, to make runs quick and repeatable.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pebbleca "github.com/letsencrypt/pebble/v2/ca"
	pebbledb "github.com/letsencrypt/pebble/v2/db"
	pebbleva "github.com/letsencrypt/pebble/v2/va"
	pebblewfe "github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/store"
	"github.com/pierpaas/pier/store/storetest"
)

// acmeLog collects logs that goroutines may write after the test ended
// (where t.Log would panic), and shows them if the test failed.
type acmeLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *acmeLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *acmeLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newACMELog(t *testing.T, name string) *acmeLog {
	l := &acmeLog{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log:\n%s", name, l)
		}
	})
	return l
}

// acmePebble is an in-process Pebble.
type acmePebble struct {
	URL    string         // the directory
	Client *http.Client   // trusts the directory's certificate
	Roots  *x509.CertPool // Pebble's issuing root

	srv              *httptest.Server
	orders, finalize atomic.Int64 // new-order and finalize requests
}

// startPebble runs Pebble, whose VA validates HTTP-01 on httpPort and
// TLS-ALPN-01 on tlsPort of 127.0.0.1, to which every name resolves.
func startPebble(t *testing.T, httpPort, tlsPort int) *acmePebble {
	t.Helper()
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	t.Setenv("PEBBLE_AUTHZREUSE", "0")
	logger := log.New(newACMELog(t, "pebble"), "pebble ", log.Lmicroseconds)

	db := pebbledb.NewMemoryStore()
	ca := pebbleca.New(logger, db, "", "ecdsa", 0, 1,
		map[string]pebbleca.Profile{"default": {Description: "the default profile"}})
	va := pebbleva.New(logger, httpPort, tlsPort, false, startACMEDNS(t), db)
	wfe := pebblewfe.New(logger, db, va, ca, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	h := wfe.Handler()

	p := &acmePebble{Roots: x509.NewCertPool()}
	p.Roots.AddCert(ca.GetRootCert(0).Cert)
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/order-plz":
			p.orders.Add(1)
		case strings.HasPrefix(r.URL.Path, "/finalize-order/"):
			p.finalize.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	p.srv.Config.ErrorLog = logger
	p.srv.StartTLS()
	t.Cleanup(p.srv.Close)
	p.URL = p.srv.URL + pebblewfe.DirectoryPath
	p.Client = p.srv.Client()
	return p
}

// startACMEDNS serves DNS over TCP (Pebble's VA asks over TCP) with
// 127.0.0.1 for every name and no IPv6 address.
func startACMEDNS(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Net: "tcp", Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, qq := range q.Question {
			if qq.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// acmeRouter is the ACME part of a router: an HTTPS server whose
// certificates come from GetCertificate, and a plain HTTP server behind
// HTTPHandler whose fallback (the proxy) answers 418.
type acmeRouter struct {
	acme       *ACME
	httpsAddr  string
	httpAddr   string
	challenges atomic.Int64 // requests for a challenge path
	toCA       atomic.Int64 // requests to the ACME server
}

const acmeFallbackStatus = http.StatusTeapot

func startACMERouter(t *testing.T, client *clientv3.Client, p *acmePebble, table *Table, httpLn, tlsLn net.Listener) *acmeRouter {
	t.Helper()
	rt := &acmeRouter{}
	base := p.Client.Transport
	hc := &http.Client{Transport: acmeRoundTripper(func(r *http.Request) (*http.Response, error) {
		rt.toCA.Add(1)
		return base.RoundTrip(r)
	})}
	a, err := NewACME(ACMEConfig{
		DirectoryURL: p.URL,
		Email:        "ops@example.test",
		Client:       client,
		HTTPClient:   hc,
		Log:          slog.New(slog.NewTextHandler(newACMELog(t, "acme"), &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	a.SetTable(table)
	rt.acme = a

	if httpLn == nil {
		httpLn = acmeListen(t)
	}
	if tlsLn == nil {
		tlsLn = acmeListen(t)
	}
	rt.httpAddr, rt.httpsAddr = httpLn.Addr().String(), tlsLn.Addr().String()
	quiet := log.New(io.Discard, "", 0) // refused handshakes are expected
	fallback := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(acmeFallbackStatus) })
	h := a.HTTPHandler(fallback)
	plain := &http.Server{ErrorLog: quiet, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			rt.challenges.Add(1)
		}
		h.ServeHTTP(w, r)
	})}
	secure := &http.Server{
		ErrorLog: quiet,
		Handler:  fallback,
		// As Proxy.TLSConfig: ACME's ALPN protocol last.
		TLSConfig: &tls.Config{GetCertificate: a.GetCertificate, NextProtos: []string{"h2", "http/1.1", acme.ALPNProto}},
	}
	go plain.Serve(httpLn)
	go secure.ServeTLS(tlsLn, "", "")
	t.Cleanup(func() { plain.Close(); secure.Close() })
	return rt
}

type acmeRoundTripper func(*http.Request) (*http.Response, error)

func (f acmeRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func acmeListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func acmePort(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }

// acmeClosedPort is a port of 127.0.0.1 that refuses connections.
func acmeClosedPort(t *testing.T) int {
	ln := acmeListen(t)
	port := acmePort(ln)
	ln.Close()
	return port
}

// acmeHandshake connects to addr with SNI name and returns the leaf the
// server presented, which must chain to roots and be valid for name.
func acmeHandshake(addr, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 2 * time.Minute}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: name, RootCAs: roots, NextProtos: []string{"http/1.1"}})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

func acmeRoute(id, domain, path string, acmeOn bool) api.Route {
	return api.Route{ID: id, Type: api.RouteHTTP, Domain: domain, Path: path, Service: "web." + id,
		ACME: acmeOn, CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func acmeTable(t *testing.T, routes ...api.Route) *Table {
	t.Helper()
	table, errs := NewTable(routes)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return table
}

// acmeSelfSigned is a certificate of a route's own for domain, PEM.
func acmeSelfSigned(t *testing.T, domain string) *api.RouteTLS {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: domain}, DNSNames: []string{domain},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &api.RouteTLS{
		CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		KeyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})),
	}
}

func acmeGet(t *testing.T, addr, host, path string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// acmeKeys lists the names under ACMECertsPrefix.
func acmeKeys(t *testing.T, client *clientv3.Client) []string {
	t.Helper()
	resp, err := client.Get(context.Background(), ACMECertsPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, kv := range resp.Kvs {
		names = append(names, strings.TrimPrefix(string(kv.Key), ACMECertsPrefix))
	}
	return names
}

// Two routers see a new ACME domain at once: Pebble issues one
// certificate (validated by TLS-ALPN-01 on the first router, whichever
// of them asked), both serve it, a third router serves it from the store
// without a word to the CA, and names without an ACME route get nothing.
func TestACMEIssuesOnceAndSharesThroughStore(t *testing.T) {
	const name = "app.example.test"
	cluster := storetest.NewCluster(t, 1)
	httpA, tlsA := acmeListen(t), acmeListen(t)
	p := startPebble(t, acmePort(httpA), acmePort(tlsA))
	table := acmeTable(t,
		acmeRoute("app", name, "", true),
		acmeRoute("plain", "plain.example.test", "", false),
	)
	a := startACMERouter(t, cluster.Client(), p, table, httpA, tlsA)
	b := startACMERouter(t, cluster.Client(), p, table, nil, nil)

	var (
		wg     sync.WaitGroup
		leaves [2]*x509.Certificate
		errs   [2]error
	)
	for i, rt := range []*acmeRouter{a, b} {
		wg.Go(func() { leaves[i], errs[i] = acmeHandshake(rt.httpsAddr, name, p.Roots) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("router %d: handshake for %s: %v", i, name, err)
		}
	}
	if !bytes.Equal(leaves[0].Raw, leaves[1].Raw) {
		t.Errorf("routers serve different certificates: serials %s and %s", leaves[0].SerialNumber, leaves[1].SerialNumber)
	}
	if !slices.Equal(leaves[0].DNSNames, []string{name}) {
		t.Errorf("certificate for %v, want [%s]", leaves[0].DNSNames, name)
	}
	if n := p.finalize.Load(); n != 1 {
		t.Errorf("Pebble finalized %d orders, want 1: the domain lock should make one router wait for the other", n)
	}

	// Stored: the certificate and the account key, and, soon, no
	// challenge leftovers.
	deadline := time.Now().Add(10 * time.Second)
	for {
		keys := acmeKeys(t, cluster.Client())
		if !slices.Contains(keys, name) || !slices.Contains(keys, acmeAccountKey) {
			t.Fatalf("store has %v, want %s and %s", keys, name, acmeAccountKey)
		}
		if !slices.ContainsFunc(keys, isACMEChallengeEntry) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("challenge entries left in the store: %v", keys)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Names without an ACME route: no certificate, no order.
	orders := p.orders.Load()
	for _, other := range []string{"plain.example.test", "other.example.test", "example.test"} {
		if _, err := acmeHandshake(a.httpsAddr, other, p.Roots); err == nil {
			t.Errorf("handshake for %s (no ACME route) succeeded", other)
		}
		hello := &tls.ClientHelloInfo{ServerName: other}
		if c, err := a.acme.GetCertificate(hello); c != nil || err != nil {
			t.Errorf("GetCertificate(%s) = %v, %v; want nil, nil", other, c, err)
		}
	}
	if n := p.orders.Load(); n != orders {
		t.Errorf("Pebble got %d orders for names without an ACME route", n-orders)
	}

	// The HTTP handler answers challenges of ACME names only.
	for _, c := range []struct {
		host, path string
		want       int
	}{
		{name, "/", acmeFallbackStatus},
		{name + ":80", "/.well-known/acme-challenge/nope", http.StatusNotFound},
		{"plain.example.test", "/.well-known/acme-challenge/nope", acmeFallbackStatus},
		{"other.example.test", "/.well-known/acme-challenge/nope", acmeFallbackStatus},
	} {
		if got := acmeGet(t, a.httpAddr, c.host, c.path); got != c.want {
			t.Errorf("GET http://%s%s: %d, want %d", c.host, c.path, got, c.want)
		}
	}

	// Orders leave the router only for ACME names, whoever makes them.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	guarded := &acme.Client{Key: key, DirectoryURL: p.URL, HTTPClient: a.acme.http}
	if _, err := guarded.Register(ctx, &acme.Account{}, acme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	orders = p.orders.Load()
	if _, err := guarded.AuthorizeOrder(ctx, acme.DomainIDs("other.example.test")); !errors.Is(err, ErrNoACMERoute) {
		t.Errorf("order for other.example.test: %v, want ErrNoACMERoute", err)
	}
	if _, err := guarded.AuthorizeOrder(ctx, acme.DomainIDs(name, "plain.example.test")); !errors.Is(err, ErrNoACMERoute) {
		t.Errorf("order for %s and plain.example.test: %v, want ErrNoACMERoute", name, err)
	}
	if n := p.orders.Load(); n != orders {
		t.Errorf("%d refused orders reached Pebble", n-orders)
	}
	if _, err := guarded.AuthorizeOrder(ctx, acme.DomainIDs(name)); err != nil {
		t.Errorf("order for %s: %v", name, err)
	}

	// A third router, with the CA gone: the certificate from the store.
	p.srv.Close()
	c := startACMERouter(t, cluster.Client(), p, table, nil, nil)
	leaf, err := acmeHandshake(c.httpsAddr, name, p.Roots)
	if err != nil {
		t.Fatalf("third router: %v", err)
	}
	if !bytes.Equal(leaf.Raw, leaves[0].Raw) {
		t.Errorf("third router serves serial %s, want %s", leaf.SerialNumber, leaves[0].SerialNumber)
	}
	if n := c.toCA.Load(); n != 0 {
		t.Errorf("third router made %d requests to the CA", n)
	}

	// A route removed: its name is refused even though the certificate
	// is at hand.
	a.acme.SetTable(acmeTable(t, acmeRoute("plain", "plain.example.test", "", false)))
	if _, err := acmeHandshake(a.httpsAddr, name, p.Roots); err == nil {
		t.Errorf("handshake for %s succeeded after its route was removed", name)
	}
}

// HTTP-01 when the CA cannot reach the HTTPS port: the first router
// orders, the CA asks the second one for the token, which finds it in
// the store.
func TestACMEHTTP01AnsweredByAnotherRouter(t *testing.T) {
	const name = "web.example.test"
	cluster := storetest.NewCluster(t, 1)
	httpB := acmeListen(t)
	p := startPebble(t, acmePort(httpB), acmeClosedPort(t))
	table := acmeTable(t, acmeRoute("web", name, "", true))
	a := startACMERouter(t, cluster.Client(), p, table, nil, nil)
	b := startACMERouter(t, cluster.Client(), p, table, httpB, nil)

	leaf, err := acmeHandshake(a.httpsAddr, name, p.Roots)
	if err != nil {
		t.Fatalf("handshake for %s: %v", name, err)
	}
	if !slices.Equal(leaf.DNSNames, []string{name}) {
		t.Errorf("certificate for %v, want [%s]", leaf.DNSNames, name)
	}
	if b.challenges.Load() == 0 {
		t.Error("the second router answered no HTTP-01 challenge")
	}
	if a.challenges.Load() != 0 {
		t.Error("the CA reached the first router's HTTP port, which it was not given")
	}
	// The second router serves the same certificate.
	leafB, err := acmeHandshake(b.httpsAddr, name, p.Roots)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(leafB.Raw, leaf.Raw) {
		t.Errorf("second router serves serial %s, want %s", leafB.SerialNumber, leaf.SerialNumber)
	}
}

func TestACMEAllowed(t *testing.T) {
	client := &clientv3.Client{} // never used: nothing here reaches the store
	a, err := NewACME(ACMEConfig{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	if a.Allowed("app.example.test") {
		t.Error("a name is allowed before any table")
	}
	own := acmeRoute("own", "split.example.test", "", false)
	own.TLS = acmeSelfSigned(t, "split.example.test")
	wild := acmeRoute("wild", "*.example.test", "", false)
	wild.TLS = acmeSelfSigned(t, "*.example.test")
	a.SetTable(acmeTable(t,
		acmeRoute("app", "app.example.test", "", true),
		acmeRoute("api", "api.example.test", "/v1", true),
		acmeRoute("plain", "plain.example.test", "", false),
		own,
		acmeRoute("split-api", "split.example.test", "/api", true), // the domain's own certificate wins
		wild,
	))
	for host, want := range map[string]bool{
		"app.example.test":       true,
		"APP.Example.Test.":      true,
		"app.example.test:80":    true,
		"api.example.test":       true,
		"plain.example.test":     false,
		"split.example.test":     false,
		"other.example.test":     false, // the wildcard's own certificate
		"x.app.example.test":     false,
		"":                       false,
		"app.example.test.evil":  false,
		"app.example.test/x":     false,
		"app.example.test+token": false,
	} {
		if got := a.Allowed(host); got != want {
			t.Errorf("Allowed(%q) = %v, want %v", host, got, want)
		}
		if err := a.hostPolicy(context.Background(), host); (err == nil) != want || (err != nil && !errors.Is(err, ErrNoACMERoute)) {
			t.Errorf("hostPolicy(%q) = %v", host, err)
		}
	}
	if _, err := NewACME(ACMEConfig{}); err == nil {
		t.Error("NewACME without a store client succeeded")
	}
}

func TestACMEOrderNames(t *testing.T) {
	jws := func(payload string) []byte {
		return []byte(`{"protected":"e30","payload":"` + base64.RawURLEncoding.EncodeToString([]byte(payload)) + `","signature":"x"}`)
	}
	for _, c := range []struct {
		body []byte
		want []string
	}{
		{jws(`{"identifiers":[{"type":"dns","value":"a.example"},{"type":"dns","value":"b.example"}]}`), []string{"a.example", "b.example"}},
		{jws(`{"termsOfServiceAgreed":true}`), nil},
		{jws(``), nil}, // POST-as-GET
		{[]byte(`{"payload":"!!"}`), nil},
		{[]byte(`not json`), nil},
	} {
		if got := orderNames(c.body); !slices.Equal(got, c.want) {
			t.Errorf("orderNames(%s) = %v, want %v", c.body, got, c.want)
		}
	}
}

func TestACMECache(t *testing.T) {
	cluster := storetest.NewCluster(t, 1)
	client := cluster.Client()
	c := NewACMECache(client, nil)
	ctx := context.Background()

	if _, err := c.Get(ctx, "app.example.test"); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Fatalf("Get of a missing name: %v, want ErrCacheMiss", err)
	}
	data := []byte("-----BEGIN EC PRIVATE KEY-----\n...\n")
	if err := c.Put(ctx, "app.example.test", data); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, "app.example.test")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get = %q, %v; want %q", got, err, data)
	}
	// Stored as JSON under the prefix, like every pier object.
	e, _, err := store.Get[acmeEntry](ctx, client, ACMECertsPrefix+"app.example.test")
	if err != nil || !bytes.Equal(e.Data, data) || e.WrittenAt.IsZero() {
		t.Fatalf("stored entry %+v, %v", e, err)
	}
	if err := c.Delete(ctx, "app.example.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "app.example.test"); err != nil {
		t.Fatalf("Delete of a missing name: %v", err)
	}
	if _, err := c.Get(ctx, "app.example.test"); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Fatalf("Get after Delete: %v", err)
	}

	// Names that would leave the prefix's level.
	if _, err := c.Get(ctx, "a/b"); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Errorf("Get(a/b): %v", err)
	}
	if err := c.Put(ctx, "a/b", data); err == nil {
		t.Error("Put(a/b) succeeded")
	}

	// The account key is created once; another router's is refused.
	if err := c.Put(ctx, acmeAccountKey, []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, acmeAccountKey, []byte("first")); err != nil {
		t.Errorf("Put of the same account key: %v", err)
	}
	if err := c.Put(ctx, acmeAccountKey, []byte("second")); !errors.Is(err, ErrACMEAccountKey) {
		t.Errorf("Put of another account key: %v, want ErrACMEAccountKey", err)
	}
	if err := c.createAccountKey(ctx, []byte("third")); err != nil {
		t.Errorf("createAccountKey with one stored: %v", err)
	}
	if got, _ := c.Get(ctx, acmeAccountKey); string(got) != "first" {
		t.Errorf("account key %q, want the first", got)
	}

	// Challenge entries expire with a lease; certificates do not.
	for name, leased := range map[string]bool{"tok+http-01": true, "app.example.test+token": true, "app.example.test+rsa": false} {
		if err := c.Put(ctx, name, data); err != nil {
			t.Fatal(err)
		}
		resp, err := client.Get(ctx, ACMECertsPrefix+name)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("get %s: %v", name, err)
		}
		if (resp.Kvs[0].Lease != 0) != leased {
			t.Errorf("%s: lease %x, want leased=%v", name, resp.Kvs[0].Lease, leased)
		}
	}
}

func TestACMEKeyedLock(t *testing.T) {
	var k keyedLock
	unlock, err := k.lock(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	other, err := k.lock(context.Background(), "b") // another key: free
	if err != nil {
		t.Fatal(err)
	}
	other()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := k.lock(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock of a held key: %v, want a timeout", err)
	}
	got := make(chan struct{})
	go func() {
		u, err := k.lock(context.Background(), "a")
		if err == nil {
			u()
		}
		close(got)
	}()
	unlock()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the lock was not handed on")
	}
}
