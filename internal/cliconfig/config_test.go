package cliconfig

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/internal/pki"
)

func TestDefaultPath(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, tc := range []struct{ xdg, want string }{
		{"", filepath.Join(home, ".config", "pier", "config.json")},
		{"/etc/xdg-test", "/etc/xdg-test/pier/config.json"},
		{"relative/dir", filepath.Join(home, ".config", "pier", "config.json")},
	} {
		t.Setenv("XDG_CONFIG_HOME", tc.xdg)
		got, err := DefaultPath()
		if err != nil || got != tc.want {
			t.Errorf("XDG_CONFIG_HOME=%q: DefaultPath() = %q, %v; want %q", tc.xdg, got, err, tc.want)
		}
	}
}

func TestLoadMissingIsEmpty(t *testing.T) {
	for _, p := range []string{"config.json", "no/such/dir/config.json"} {
		c, err := Load(filepath.Join(t.TempDir(), p))
		if err != nil || c == nil || len(c.Clusters) != 0 || c.Default != "" {
			t.Fatalf("Load(%s) = %+v, %v; want an empty config", p, c, err)
		}
	}
}

func TestLoadBadJSON(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("Load(bad JSON) = %v; want an error naming the file", err)
	}
}

func TestSaveLoadRoundTripAndModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "xdg", "pier")
	p := filepath.Join(dir, "config.json")
	ca := testCA(t)
	var c Config
	mustAdd(t, &c, Cluster{Name: "prod", URL: "https://prod.example.com:8443/", Key: "k1", CAPEM: ca}, false)
	mustAdd(t, &c, Cluster{Name: "dev", URL: "http://127.0.0.1:8080", Key: "k2"}, false)
	at := time.Date(2026, 12, 2, 13, 0, 0, 0, time.UTC)
	servers := []string{"https://10.0.0.2:7300", "https://10.0.0.3:7300"}
	if !c.SetServers("prod", servers, at) || c.SetServers("nope", servers, at) {
		t.Fatal("SetServers found the wrong clusters")
	}
	for i := 0; i < 2; i++ { // the second save replaces the file
		if err := c.Save(p); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file mode %v, %v; want 0600", fi.Mode(), err)
	}
	di, err := os.Stat(dir)
	if err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("config dir mode %v, %v; want 0700", di.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("config dir holds %d entries, want only config.json (temp file left behind?)", len(entries))
	}
	got, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Default != "prod" || len(got.Clusters) != 2 {
		t.Fatalf("loaded %+v", got)
	}
	want := Cluster{Name: "prod", URL: "https://prod.example.com:8443", Key: "k1", CAPEM: ca, Servers: servers, ServersAt: at}
	if cl, ok := got.Get("prod"); !ok || !reflect.DeepEqual(cl, want) {
		t.Fatalf("Get(prod) = %+v, %v; want %+v", cl, ok, want)
	}
	if cl, _ := got.Get("dev"); cl.CAPEM != "" {
		t.Fatalf("dev gained a CA: %+v", cl)
	}
	if names := strings.Join(got.Names(), ","); names != "prod,dev" {
		t.Fatalf("order %s, want prod,dev", names)
	}
}

func TestClusterValidate(t *testing.T) {
	ok := Cluster{Name: "prod", URL: "https://h.example.com:8443", Key: "k"}
	for _, tc := range []struct {
		name    string
		edit    func(*Cluster)
		wantErr string // "" means valid
	}{
		{"valid", func(*Cluster) {}, ""},
		{"http", func(c *Cluster) { c.URL = "http://127.0.0.1:8080" }, ""},
		{"ipv6", func(c *Cluster) { c.URL = "https://[::1]:8443" }, ""},
		{"path", func(c *Cluster) { c.URL = "https://h.example.com/pier" }, ""},
		{"digits name", func(c *Cluster) { c.Name = "a1-b2" }, ""},
		{"empty name", func(c *Cluster) { c.Name = "" }, "cluster name"},
		{"upper name", func(c *Cluster) { c.Name = "Prod" }, "cluster name"},
		{"underscore", func(c *Cluster) { c.Name = "my_cluster" }, "cluster name"},
		{"slash name", func(c *Cluster) { c.Name = "a/b" }, "cluster name"},
		{"long name", func(c *Cluster) { c.Name = strings.Repeat("a", 64) }, "cluster name"},
		{"no url", func(c *Cluster) { c.URL = "" }, "no URL"},
		{"no scheme", func(c *Cluster) { c.URL = "h.example.com:8443" }, "scheme"},
		{"ftp", func(c *Cluster) { c.URL = "ftp://h.example.com" }, "scheme"},
		{"no host", func(c *Cluster) { c.URL = "https:///path" }, "no host"},
		{"port only", func(c *Cluster) { c.URL = "https://:8443" }, "no host"},
		{"bad port", func(c *Cluster) { c.URL = "https://h:port" }, "invalid URL"},
		{"userinfo", func(c *Cluster) { c.URL = "https://u:secret@h" }, "API key"},
		{"query", func(c *Cluster) { c.URL = "https://h/?x=1" }, "query"},
		{"no key", func(c *Cluster) { c.Key = "" }, "no API key"},
		{"blank key", func(c *Cluster) { c.Key = "  " }, "no API key"},
		{"bad ca", func(c *Cluster) { c.CAPEM = "not a certificate" }, "no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := ok
			tc.edit(&cl)
			err := cl.Validate()
			var c Config
			addErr := c.Add(cl, true)
			switch {
			case tc.wantErr == "" && (err != nil || addErr != nil):
				t.Fatalf("Validate() = %v, Add() = %v; want valid", err, addErr)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Validate() = %v; want an error containing %q", err, tc.wantErr)
			case tc.wantErr != "" && (addErr == nil || len(c.Clusters) != 0 || c.Default != ""):
				t.Fatalf("Add() = %v and stored %+v; want it refused", addErr, c)
			}
			if strings.Contains(errString(err), "secret") {
				t.Fatalf("error leaks the password in the URL: %v", err)
			}
		})
	}
}

func TestAddReplaceRemoveDefault(t *testing.T) {
	var c Config
	mustAdd(t, &c, Cluster{Name: "a", URL: "https://a", Key: "1"}, false)
	if c.Default != "a" {
		t.Fatalf("first cluster did not become the default: %q", c.Default)
	}
	mustAdd(t, &c, Cluster{Name: "b", URL: "https://b", Key: "2"}, false)
	if c.Default != "a" {
		t.Fatalf("second cluster without makeDefault took the default: %q", c.Default)
	}
	mustAdd(t, &c, Cluster{Name: "c", URL: "https://c", Key: "3"}, true)
	if c.Default != "c" {
		t.Fatalf("makeDefault ignored: %q", c.Default)
	}
	// Replacing keeps the position and the default.
	mustAdd(t, &c, Cluster{Name: "a", URL: "https://a2", Key: "1b"}, false)
	if got := strings.Join(c.Names(), ","); got != "a,b,c" || c.Default != "c" {
		t.Fatalf("after replace: %s default %q", got, c.Default)
	}
	if cl, _ := c.Get("a"); cl.URL != "https://a2" || cl.Key != "1b" {
		t.Fatalf("a not replaced: %+v", cl)
	}

	if err := c.SetDefault("b"); err != nil || c.Default != "b" {
		t.Fatalf("SetDefault(b) = %v, default %q", err, c.Default)
	}
	if err := c.SetDefault("zzz"); !errors.Is(err, ErrUnknownCluster) || c.Default != "b" {
		t.Fatalf("SetDefault(zzz) = %v, default %q; want ErrUnknownCluster and no change", err, c.Default)
	}

	if c.Remove("zzz") {
		t.Fatal("Remove(zzz) reported a removal")
	}
	if !c.Remove("a") || c.Default != "b" {
		t.Fatalf("removing a non-default cluster: default %q", c.Default)
	}
	if !c.Remove("b") || c.Default != "" {
		t.Fatalf("removing the default left default %q", c.Default)
	}
	if _, ok := c.Get("b"); ok {
		t.Fatal("b still there")
	}
	if got := strings.Join(c.Names(), ","); got != "c" {
		t.Fatalf("left %s, want c", got)
	}
}

func mustAdd(t *testing.T, c *Config, cl Cluster, makeDefault bool) {
	t.Helper()
	if err := c.Add(cl, makeDefault); err != nil {
		t.Fatal(err)
	}
}

func testCA(t *testing.T) string {
	t.Helper()
	ca, err := pki.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	return string(ca.CertPEM)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
