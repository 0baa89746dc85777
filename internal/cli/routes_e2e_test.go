package cli_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
)

// getHost fetches path from the router with the Host header host.
func getHost(p *upProc, host, path string) (int, string, error) {
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", p.httpPort, path), nil)
	req.Host = host
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// writeCert writes a self-signed certificate for domain and its key, and
// returns their paths.
func writeCert(t *testing.T, domain string, notAfter time.Time) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: domain}, DNSNames: []string{domain},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

var routeIDRE = regexp.MustCompile(`route (r-[0-9a-f]+):`)

// TestRoutesAndDomains: a custom domain added to a deployed app answers
// through the router at once; routes are listed with the automatic one,
// removed, and refused when they would take another app's address.
func TestRoutesAndDomains(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	p := startUp(t, dataDir, freeUpPorts(t))
	u := cliUser{t, p}

	u.must("create", "hello")
	u.must("create", "other")
	dir := writeApp(t, "web: python3 -m http.server $PORT\n", map[string]string{"index.html": "hello from pier\n"})
	u.must("deploy", "-a", "hello", dir)
	answers := func(host string) func() bool {
		return func() bool {
			code, body, _ := getHost(p, host, "/index.html")
			return code == 200 && body == "hello from pier\n"
		}
	}
	gone := func(host string) func() bool {
		return func() bool {
			code, _, err := getHost(p, host, "/index.html")
			return err == nil && code == 404
		}
	}
	waitUntil(t, "the app at its automatic domain", 20*time.Second, answers("hello.localhost"))
	if code, _, err := getHost(p, "www.example.test", "/index.html"); err != nil || code != 404 {
		t.Fatalf("an unrouted domain: %d %v", code, err)
	}

	out := u.must("routes", "add", "http", "www.example.test", "-a", "hello")
	m := routeIDRE.FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "http://www.example.test/ to web.hello") {
		t.Fatalf("routes add said %q", out)
	}
	www := m[1]
	waitUntil(t, "the app at www.example.test", 10*time.Second, answers("www.example.test"))

	out = u.must("domains:add", "api.example.test", "-a", "hello")
	if !strings.Contains(out, "http://api.example.test/ to web.hello") {
		t.Fatalf("domains:add said %q", out)
	}
	waitUntil(t, "the app at api.example.test", 10*time.Second, answers("api.example.test"))

	certFile, keyFile := writeCert(t, "secure.example.test", time.Date(2040, 1, 2, 0, 0, 0, 0, time.UTC))
	if out := u.must("routes", "add", "http", "secure.example.test", "--cert", certFile, "--key", keyFile, "--sticky", "-a", "hello"); !strings.Contains(out, "https://secure.example.test/") {
		t.Fatalf("tls route: %q", out)
	}
	// The router answers that domain over HTTPS with the route's own
	// certificate, by SNI.
	waitUntil(t, "HTTPS with the route's certificate", 10*time.Second, func() bool {
		conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.httpsPort), &tls.Config{ServerName: "secure.example.test", InsecureSkipVerify: true})
		if err != nil {
			return false
		}
		defer conn.Close()
		cert := conn.ConnectionState().PeerCertificates[0]
		return cert.Subject.CommonName == "secure.example.test" || slices.Contains(cert.DNSNames, "secure.example.test")
	})

	out = u.must("routes", "add", "tcp", "-a", "hello")
	tcp := strconv.Itoa(p.tcpBase)
	if !strings.Contains(out, "tcp port "+tcp+" to web.hello") {
		t.Fatalf("routes add tcp said %q", out)
	}
	// A TCP route carries bytes: here an HTTP/1.0 exchange, unparsed.
	waitUntil(t, "the tcp route to reach the app", 30*time.Second, func() bool {
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+tcp, time.Second)
		if err != nil {
			return false
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprint(conn, "GET /index.html HTTP/1.0\r\n\r\n")
		b, _ := io.ReadAll(conn)
		return strings.Contains(string(b), "hello from pier")
	})

	// Refusals: another app's address, an automatic domain, contradictions.
	u.fails("already routed", "domains:add", "www.example.test", "-a", "other")
	u.fails("tcp port "+tcp+" is taken", "routes", "add", "tcp", "--port", tcp, "-a", "other")
	u.fails("app other's automatic domain", "routes", "add", "http", "other.localhost", "-a", "hello")
	u.fails("not one of app hello's", "routes", "add", "http", "x.example.test", "--service", "web.other", "-a", "hello")
	u.fails("exclusive", "routes", "add", "http", "x.example.test", "--cert", certFile, "--key", keyFile, "--acme", "-a", "hello")
	u.fails("invalid label", "routes", "add", "http", "Bad_Domain.test", "-a", "hello")

	out = u.must("routes", "-a", "hello")
	t.Logf("pier routes:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[1], "auto-hello") ||
		!strings.Contains(lines[1], "hello.localhost") || !strings.Contains(lines[1], "auto") {
		t.Fatalf("routes:\n%s", out)
	}
	for _, want := range []string{"www.example.test", "api.example.test", "tls until 2040-01-02, sticky", tcp} {
		if !strings.Contains(out, want) {
			t.Errorf("routes lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(u.must("routes", "-a", "hello", "--json"), "PRIVATE KEY") {
		t.Fatal("a private key was printed")
	}
	var routes []api.Route
	if err := json.Unmarshal([]byte(u.must("routes", "-a", "hello", "--json")), &routes); err != nil || len(routes) != 5 {
		t.Fatalf("routes --json: %+v, %v", routes, err)
	}
	out = u.must("domains", "-a", "hello")
	if strings.Count(out, "\n") != 5 || strings.Contains(out, "tcp") {
		t.Fatalf("domains (the four http routes):\n%s", out)
	}

	// Removing: by domain and by id; the automatic route stays.
	u.fails("automatic domain", "domains:remove", "hello.localhost", "-a", "hello")
	u.fails("no route for", "domains:remove", "nope.example.test", "-a", "hello")
	u.must("domains:remove", "api.example.test", "-a", "hello")
	waitUntil(t, "api.example.test to go", 10*time.Second, gone("api.example.test"))
	u.fails("no route", "routes", "remove", www, "-a", "other")
	u.must("routes", "remove", www, "-a", "hello")
	waitUntil(t, "www.example.test to go", 10*time.Second, gone("www.example.test"))
	if !answers("hello.localhost")() {
		t.Fatal("the automatic route went too")
	}

	// The freed domain can go to another app.
	u.must("domains", "add", "www.example.test", "-a", "other")
	if out := u.must("domains", "-a", "other"); !strings.Contains(out, "www.example.test") {
		t.Fatalf("domains of other:\n%s", out)
	}
}
