package pki

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func TestTokenRoundTripAndRoles(t *testing.T) {
	dir := t.TempDir()
	ca, err := NewCA("t")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := LoadOrCreateToken(dir, ca, RoleServer)
	if err != nil {
		t.Fatal(err)
	}
	host, err := LoadOrCreateToken(dir, ca, RoleHost)
	if err != nil {
		t.Fatal(err)
	}
	if srv.Secret == host.Secret {
		t.Fatal("server and host tokens share a secret")
	}
	again, _ := LoadOrCreateToken(dir, ca, RoleServer)
	if again != srv {
		t.Fatal("token changed between loads")
	}
	parsed, err := ParseToken(srv.String())
	if err != nil || parsed != srv {
		t.Fatalf("parse %q: %v %v", srv, parsed, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "join-secret-server"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode %v %v", fi.Mode(), err)
	}
	if _, err := LoadOrCreateToken(dir, ca, "admin"); err == nil {
		t.Fatal("unknown role accepted")
	}
}

func TestParseTokenRejectsMalformed(t *testing.T) {
	for _, s := range []string{"", "PIER1", "PIER1-abc-def", "SWMTKN-1-" + string(make([]byte, 64)),
		"PIER1-" + hex64('z') + "-" + hex32('a'), "PIER1-" + hex64('a') + "-" + hex32('a') + "-x"} {
		if _, err := ParseToken(s); !errors.Is(err, ErrBadToken) {
			t.Errorf("ParseToken(%q) = %v, want ErrBadToken", s, err)
		}
	}
}

func TestCredentialsAndPinning(t *testing.T) {
	ca, _ := NewCA("a")
	other, _ := NewCA("b")
	dir := t.TempDir()
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	if err := ca.Issue(dir, Request{CommonName: "srv", Role: RoleServer, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{CAKeyFile, KeyFile, CertFile, CACertFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v err %v", f, fi.Mode(), err)
		}
	}
	loaded, err := LoadCA(dir)
	if err != nil || loaded.Fingerprint() != ca.Fingerprint() {
		t.Fatalf("LoadCA: %v", err)
	}
	if _, err := LoadCA(t.TempDir()); !errors.Is(err, ErrNoCA) {
		t.Fatalf("LoadCA(empty) = %v, want ErrNoCA", err)
	}
	creds, err := LoadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	ts.TLS = creds.ServerConfig()
	ts.StartTLS()
	defer ts.Close()

	get := func(cfg *tls.Config) error {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		resp, err := c.Get(ts.URL)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(PinnedConfig(ca.Fingerprint())); err != nil {
		t.Fatalf("pinned to the right CA: %v", err)
	}
	if err := get(PinnedConfig(other.Fingerprint())); err == nil {
		t.Fatal("pinned to a foreign CA but connected")
	}
}

func hex64(c byte) string { return rep(c, 64) }
func hex32(c byte) string { return rep(c, 32) }
func rep(c byte, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return string(b)
}
