package upgrade

import (
	"errors"
	"net"
	"path/filepath"
	"testing"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/internal/pki"
)

func TestOrdersObeyedOnlyFromServers(t *testing.T) {
	ca, err := pki.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	creds := func(name, role string) *pki.Credentials {
		dir := filepath.Join(t.TempDir(), name)
		if err := ca.Issue(dir, pki.Request{CommonName: name, Role: role, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}); err != nil {
			t.Fatal(err)
		}
		c, err := pki.LoadCredentials(dir)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	srv, host := creds("s1", pki.RoleServer), creds("h1", pki.RoleHost)
	order := api.NodeOrder{ID: "u1-0-try", Node: "server/s2", SHA256: "abc", Size: 3}
	signed, err := Sign(order, srv)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(signed, host.Pool); err != nil {
		t.Errorf("a server's order: %v", err)
	}
	tampered := signed
	tampered.SHA256 = "evil"
	if err := Verify(tampered, host.Pool); !errors.Is(err, ErrUnsigned) {
		t.Errorf("a changed order: %v, want ErrUnsigned", err)
	}
	byHost, err := Sign(order, host)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(byHost, srv.Pool); !errors.Is(err, ErrUnsigned) {
		t.Errorf("a host's order: %v, want ErrUnsigned", err)
	}
	other, _ := pki.NewCA("other")
	dir := t.TempDir()
	other.Issue(dir, pki.Request{CommonName: "s9", Role: pki.RoleServer})
	foreign, _ := pki.LoadCredentials(dir)
	byForeign, _ := Sign(order, foreign)
	if err := Verify(byForeign, srv.Pool); !errors.Is(err, ErrUnsigned) {
		t.Errorf("another cluster's server's order: %v, want ErrUnsigned", err)
	}
	if err := Verify(order, srv.Pool); !errors.Is(err, ErrUnsigned) {
		t.Errorf("an unsigned order: %v, want ErrUnsigned", err)
	}
}
