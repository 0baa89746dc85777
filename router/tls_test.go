package router

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	nethttp "net/http"
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
)

// sniCert makes a certificate for names and its key, both PEM.
func sniCert(t *testing.T, names ...string) (certPEM, keyPEM string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
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
	cert, _ = x509.ParseCertificate(der)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})), cert
}

func sniRoute(id, domain, service, certPEM, keyPEM string) api.Route {
	r := route(id, domain, "", service)
	r.TLS = &api.RouteTLS{CertPEM: certPEM, KeyPEM: keyPEM}
	return r
}

// serveTLS serves p over TLS as the router's HTTPS listener does.
func serveProxyTLS(t *testing.T, p *Proxy) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protos nethttp.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	srv := &nethttp.Server{Handler: p, TLSConfig: p.TLSConfig(), Protocols: &protos,
		ErrorLog: log.New(io.Discard, "", 0)} // failed handshakes are expected
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func sniHandshake(addr, name string, roots *x509.CertPool, protos ...string) (*tls.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: name, RootCAs: roots, NextProtos: protos})
}

func TestProxyTLSCertificateBySNI(t *testing.T) {
	fw := newFakeWatcher()
	_, a := backend(t, "a", nil)
	_, b := backend(t, "b", nil)
	fw.add("svc-a", a)
	fw.add("svc-b", b)
	certA, keyA, xa := sniCert(t, "a.test")
	certB, keyB, xb := sniCert(t, "*.b.test")
	routes := []api.Route{
		sniRoute("ra", "a.test", "svc-a", certA, keyA),
		route("ra-api", "a.test", "/api", "svc-b"), // no certificate of its own
		sniRoute("rb", "*.b.test", "svc-b", certB, keyB),
		route("rc", "c.test", "", "svc-a"), // plain HTTP only
	}
	p, _ := newTestProxy(t, fw, routes...)
	addr := serveProxyTLS(t, p)

	for _, c := range []struct {
		name string
		want *x509.Certificate
		body string
	}{{"a.test", xa, "a"}, {"A.Test", xa, "a"}, {"x.b.test", xb, "b"}} {
		roots := x509.NewCertPool()
		roots.AddCert(c.want) // verification itself proves the right certificate
		conn, err := sniHandshake(addr, c.name, roots)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := conn.ConnectionState().PeerCertificates[0]; !bytes.Equal(got.Raw, c.want.Raw) {
			t.Errorf("%s: got the certificate of %v", c.name, got.DNSNames)
		}
		conn.Close()

		// HTTP/2 by ALPN, and the request reaches the route's backend.
		client := &nethttp.Client{Transport: &nethttp.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: c.name},
			ForceAttemptHTTP2: true,
		}}
		req, _ := nethttp.NewRequest("GET", "https://"+addr+"/", nil)
		req.Host = c.name
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != c.body || resp.ProtoMajor != 2 {
			t.Errorf("%s over https: %s %d %q, want HTTP/2.0 200 %q", c.name, resp.Proto, resp.StatusCode, body, c.body)
		}
		client.CloseIdleConnections()
	}

	// Names with no certificate fail the handshake with a clear alert,
	// never with another domain's certificate.
	for _, name := range []string{"c.test", "nowhere.test", "y.x.b.test", ""} {
		conn, err := sniHandshake(addr, name, nil)
		if err == nil {
			conn.Close()
			t.Fatalf("%q: handshake succeeded", name)
		}
		if !strings.Contains(err.Error(), "unrecognized name") {
			t.Errorf("%q: %v, want an unrecognized_name alert", name, err)
		}
	}

	// Parsed once per table, not per handshake; a rebuilt table with the
	// same certificates parses nothing again, a changed one just itself.
	if n := p.certParses.Load(); n != 2 {
		t.Errorf("%d certificate parses after the handshakes, want 2", n)
	}
	p.SetTable(mustTable(t, routes...))
	if n := p.certParses.Load(); n != 2 {
		t.Errorf("%d parses after an unchanged rebuild, want 2", n)
	}
	certA2, keyA2, xa2 := sniCert(t, "a.test")
	routes[0] = sniRoute("ra", "a.test", "svc-a", certA2, keyA2)
	p.SetTable(mustTable(t, routes...))
	if n := p.certParses.Load(); n != 3 {
		t.Errorf("%d parses after one certificate changed, want 3", n)
	}
	roots := x509.NewCertPool()
	roots.AddCert(xa2)
	conn, err := sniHandshake(addr, "a.test", roots)
	if err != nil {
		t.Fatalf("after the certificate changed: %v", err)
	}
	conn.Close()
}

func TestProxyTLSHook(t *testing.T) {
	fw := newFakeWatcher()
	certH, keyH, xh := sniCert(t, "acme.test", "own.test")
	hookCert, err := tls.X509KeyPair([]byte(certH), []byte(keyH))
	if err != nil {
		t.Fatal(err)
	}
	certR, keyR, xr := sniCert(t, "own.test")
	var asked []string
	hook := func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		asked = append(asked, hello.ServerName)
		switch hello.ServerName {
		case "acme.test", "own.test": // own.test only for the ALPN challenge
			return &hookCert, nil
		case "broken.test":
			return nil, errors.New("issuer down")
		}
		return nil, nil
	}
	p := NewProxy(fw, Config{GetCertificate: hook})
	t.Cleanup(p.Close)
	acme := route("acme", "acme.test", "", "svc")
	acme.ACME = true
	p.SetTable(mustTable(t, acme, sniRoute("own", "own.test", "svc", certR, keyR)))
	addr := serveProxyTLS(t, p)

	check := func(name string, want *x509.Certificate, protos ...string) {
		t.Helper()
		roots := x509.NewCertPool()
		roots.AddCert(want)
		conn, err := sniHandshake(addr, name, roots, protos...)
		if err != nil {
			t.Fatalf("%s %v: %v", name, protos, err)
		}
		conn.Close()
	}
	check("acme.test", xh)          // ACME route: the hook's
	check("own.test", xr)           // the route's own, without asking the hook
	check("own.test", xh, ALPNACME) // a TLS-ALPN-01 challenge: the hook first
	if strings.Join(asked, ",") != "acme.test,own.test" {
		t.Errorf("hook asked for %v", asked)
	}
	for name, want := range map[string]string{"nowhere.test": "unrecognized name", "broken.test": "internal error"} {
		if conn, err := sniHandshake(addr, name, nil); err == nil {
			conn.Close()
			t.Errorf("%s: handshake succeeded", name)
		} else if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
	}
}

func TestProxyRedirectHTTPS(t *testing.T) {
	fw := newFakeWatcher()
	_, b := backend(t, "b", nil)
	fw.add("svc", b)
	r := route("r1", "secure.test", "", "svc")
	r.RedirectHTTPS = true
	for _, c := range []struct {
		port int
		want string
	}{
		{8443, "https://secure.test:8443/a%20b/c?x=1&y=%2F"},
		{443, "https://secure.test/a%20b/c?x=1&y=%2F"},
		{0, "https://secure.test/a%20b/c?x=1&y=%2F"},
	} {
		p := NewProxy(fw, Config{HTTPSPort: c.port})
		p.SetTable(mustTable(t, r, route("r2", "plain.test", "", "svc")))
		srv := serveHandler(t, p)
		client := &nethttp.Client{CheckRedirect: func(*nethttp.Request, []*nethttp.Request) error { return nethttp.ErrUseLastResponse }}
		req, _ := nethttp.NewRequest("POST", srv+"/a%20b/c?x=1&y=%2F", strings.NewReader("body"))
		req.Host = "Secure.Test:8080"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 308 || resp.Header.Get("Location") != c.want {
			t.Errorf("port %d: %d %q, want 308 %q", c.port, resp.StatusCode, resp.Header.Get("Location"), c.want)
		}
		// A route without the option is proxied as before.
		if code, body := getWith(t, client, srv+"/", "plain.test"); code != 200 || body != "b" {
			t.Errorf("plain route: %d %q", code, body)
		}
		p.Close()
	}

	// Over TLS the route is proxied, not redirected.
	certPEM, keyPEM, x := sniCert(t, "secure.test")
	r.TLS = &api.RouteTLS{CertPEM: certPEM, KeyPEM: keyPEM}
	p, _ := newTestProxy(t, fw, r)
	addr := serveProxyTLS(t, p)
	roots := x509.NewCertPool()
	roots.AddCert(x)
	client := &nethttp.Client{Transport: &nethttp.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "secure.test"}}}
	if code, body := getWith(t, client, "https://"+addr+"/", "secure.test"); code != 200 || body != "b" {
		t.Errorf("over TLS: %d %q", code, body)
	}
}

// newServer serves h on a local port until the test ends.
func serveHandler(t *testing.T, h nethttp.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &nethttp.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}
