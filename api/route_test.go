package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

func testKeyPair(t *testing.T) *RouteTLS {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "a.example.com"},
		DNSNames:     []string{"a.example.com"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &RouteTLS{
		CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		KeyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})),
	}
}

func TestValidDomain(t *testing.T) {
	for _, d := range []string{
		"localhost", "hello.localhost", "a.example.com", "*.example.com", "*.a.example.com",
		"xn--bcher-kva.example", "a-b.c-d.e", "1.2.3", strings.Repeat("a", 63) + ".com",
	} {
		if err := ValidDomain(d); err != nil {
			t.Errorf("ValidDomain(%q) = %v", d, err)
		}
	}
	for _, d := range []string{
		"", "*", "*.", "Example.com", "a..b", ".a.b", "a.b.", "a.*.b", "a*.b.c", "*a.b.c", "**.b.c",
		"-a.b", "a-.b", "a_b.c", "a b.c", "a.b:80", "bücher.example", strings.Repeat("a", 64) + ".com",
		strings.Repeat("a.", 127) + "com",
	} {
		if err := ValidDomain(d); err == nil {
			t.Errorf("ValidDomain(%q) passed", d)
		}
	}
}

func TestValidRoutePath(t *testing.T) {
	for _, p := range []string{"", "/", "/api", "/api/", "/api/v1", "/a.b/..c/c..", "/%2e%2e"} {
		if err := ValidRoutePath(p); err != nil {
			t.Errorf("ValidRoutePath(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"api", "//", "/a//b", "/..", "/a/../b", "/a/..", "/./a", "/a?b", "/a#b", "/a b", "/a\x00", "/a\n"} {
		if err := ValidRoutePath(p); err == nil {
			t.Errorf("ValidRoutePath(%q) passed", p)
		}
	}
	for p, want := range map[string]string{"": "/", "/": "/", "/api": "/api", "/api/": "/api"} {
		if got := CanonicalPath(p); got != want {
			t.Errorf("CanonicalPath(%q) = %q, want %q", p, got, want)
		}
	}
}

func TestRouteValidate(t *testing.T) {
	kp := testKeyPair(t)
	ok := []Route{
		{ID: "r1", Type: RouteHTTP, Domain: "hello.localhost", Service: "hello-web"},
		{ID: "r2", Type: RouteHTTP, Domain: "*.example.com", Path: "/api", Service: "api.web", Sticky: true, RedirectHTTPS: true},
		{ID: "r3", Type: RouteHTTP, Domain: "a.example.com", Service: "a-web", TLS: kp},
		{ID: "r4", Type: RouteHTTP, Domain: "a.example.com", Service: "a-web", ACME: true, DrainTimeout: Duration(time.Second)},
		{ID: "r5", Type: RouteTCP, Port: 1, Service: "pg", LeaderOnly: true},
		{ID: "r6", Type: RouteTCP, Port: 65535, Service: "echo"},
	}
	for _, r := range ok {
		if err := r.Validate(); err != nil {
			t.Errorf("%s: %v", r.ID, err)
		}
	}
	bad := map[string]Route{
		"id":            {ID: "R1", Type: RouteHTTP, Domain: "a.b", Service: "s"},
		"no id":         {Type: RouteHTTP, Domain: "a.b", Service: "s"},
		"type":          {ID: "r", Type: "udp", Port: 5, Service: "s"},
		"no domain":     {ID: "r", Type: RouteHTTP, Service: "s"},
		"domain":        {ID: "r", Type: RouteHTTP, Domain: "A.b", Service: "s"},
		"path":          {ID: "r", Type: RouteHTTP, Domain: "a.b", Path: "/a/../b", Service: "s"},
		"path slash":    {ID: "r", Type: RouteHTTP, Domain: "a.b", Path: "api", Service: "s"},
		"service":       {ID: "r", Type: RouteHTTP, Domain: "a.b", Service: "Web_1"},
		"no service":    {ID: "r", Type: RouteHTTP, Domain: "a.b"},
		"http port":     {ID: "r", Type: RouteHTTP, Domain: "a.b", Service: "s", Port: 80},
		"tls and acme":  {ID: "r", Type: RouteHTTP, Domain: "a.b", Service: "s", TLS: kp, ACME: true},
		"acme wildcard": {ID: "r", Type: RouteHTTP, Domain: "*.a.b", Service: "s", ACME: true},
		"tls empty":     {ID: "r", Type: RouteHTTP, Domain: "a.b", Service: "s", TLS: &RouteTLS{}},
		"tls garbage":   {ID: "r", Type: RouteHTTP, Domain: "a.b", Service: "s", TLS: &RouteTLS{CertPEM: "x", KeyPEM: "y"}},
		"tls mismatch":  {ID: "r", Type: RouteHTTP, Domain: "a.b", Service: "s", TLS: &RouteTLS{CertPEM: kp.CertPEM, KeyPEM: testKeyPair(t).KeyPEM}},
		"tcp port 0":    {ID: "r", Type: RouteTCP, Service: "s"},
		"tcp port big":  {ID: "r", Type: RouteTCP, Port: 65536, Service: "s"},
		"tcp negative":  {ID: "r", Type: RouteTCP, Port: -1, Service: "s"},
		"tcp domain":    {ID: "r", Type: RouteTCP, Port: 5, Domain: "a.b", Service: "s"},
		"tcp sticky":    {ID: "r", Type: RouteTCP, Port: 5, Service: "s", Sticky: true},
		"tcp tls":       {ID: "r", Type: RouteTCP, Port: 5, Service: "s", TLS: kp},
		"drain":         {ID: "r", Type: RouteTCP, Port: 5, Service: "s", DrainTimeout: -1},
	}
	for name, r := range bad {
		if err := r.Validate(); err == nil {
			t.Errorf("%s: passed", name)
		}
	}
}

func TestRouteJSON(t *testing.T) {
	r := Route{ID: "r1", Type: RouteHTTP, Domain: "a.b", Path: "/x", Service: "s", DrainTimeout: Duration(5 * time.Second)}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"drain_timeout":"5s"`) {
		t.Errorf("json %s", b)
	}
	var back Route
	if err := json.Unmarshal(b, &back); err != nil || back.DrainTimeout != r.DrainTimeout || back.Domain != "a.b" {
		t.Errorf("round trip %+v %v", back, err)
	}
}
