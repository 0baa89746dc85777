package cliconfig

import (
	"crypto/tls"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	ca := testCA(t)
	otherCA := testCA(t)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	badCAFile := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(caFile, []byte(otherCA), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(badCAFile, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}

	prod := Cluster{Name: "prod", URL: "https://prod:8443", Key: "pk", CAPEM: ca}
	dev := Cluster{Name: "dev", URL: "http://dev:8080", Key: "dk"}
	two := &Config{Default: "prod", Clusters: []Cluster{prod, dev}}
	noDefault := &Config{Clusters: []Cluster{prod, dev}}
	dangling := &Config{Default: "gone", Clusters: []Cluster{dev}}
	broken := &Config{Default: "bad", Clusters: []Cluster{{Name: "bad", URL: "prod:8443", Key: "k"}}}

	for _, tc := range []struct {
		name    string
		cfg     *Config
		flag    string
		env     map[string]string
		want    Cluster
		wantIs  error
		wantErr string
	}{
		{name: "default", cfg: two, want: prod},
		{name: "flag", cfg: two, flag: "dev", want: dev},
		{name: "unknown flag", cfg: two, flag: "qa", wantIs: ErrUnknownCluster, wantErr: "prod, dev"},
		{name: "flag without config", cfg: nil, flag: "qa", wantIs: ErrUnknownCluster, wantErr: "pier cluster add"},
		{name: "nothing", cfg: nil, wantIs: ErrNoCluster},
		{name: "empty config", cfg: &Config{}, wantIs: ErrNoCluster},
		{name: "clusters but no default", cfg: noDefault, wantErr: "no default cluster"},
		{name: "dangling default", cfg: dangling, wantIs: ErrUnknownCluster, wantErr: `"gone"`},
		{name: "broken entry", cfg: broken, wantErr: "cluster bad in the config"},

		{name: "env only", cfg: nil, env: map[string]string{"PIER_URL": "https://ci:8443/", "PIER_KEY": "ck"},
			want: Cluster{URL: "https://ci:8443", Key: "ck"}},
		{name: "env only with CA", cfg: &Config{}, env: map[string]string{"PIER_URL": "https://ci:8443", "PIER_KEY": "ck", "PIER_CA": caFile},
			want: Cluster{URL: "https://ci:8443", Key: "ck", CAPEM: otherCA}},
		{name: "env beats a dangling default", cfg: dangling, env: map[string]string{"PIER_URL": "https://ci", "PIER_KEY": "ck"},
			want: Cluster{URL: "https://ci", Key: "ck"}},
		{name: "env url without key", cfg: nil, env: map[string]string{"PIER_URL": "https://ci"}, wantErr: "PIER_KEY is not"},
		{name: "env key without url", cfg: nil, env: map[string]string{"PIER_KEY": "ck"}, wantErr: "PIER_URL is not"},
		{name: "env bad url", cfg: nil, env: map[string]string{"PIER_URL": "ci:8443", "PIER_KEY": "ck"}, wantErr: "environment"},

		{name: "key override", cfg: two, env: map[string]string{"PIER_KEY": "ck"},
			want: Cluster{Name: "prod", URL: "https://prod:8443", Key: "ck", CAPEM: ca}},
		{name: "url override keeps CA and key", cfg: two, env: map[string]string{"PIER_URL": "https://localhost:9443"},
			want: Cluster{Name: "prod", URL: "https://localhost:9443", Key: "pk", CAPEM: ca}},
		{name: "override on flag", cfg: two, flag: "dev", env: map[string]string{"PIER_CA": caFile},
			want: Cluster{Name: "dev", URL: "http://dev:8080", Key: "dk", CAPEM: otherCA}},
		{name: "missing CA file", cfg: two, env: map[string]string{"PIER_CA": filepath.Join(dir, "nope")}, wantErr: "PIER_CA"},
		{name: "bad CA file", cfg: two, env: map[string]string{"PIER_CA": badCAFile}, wantErr: "environment"},
		{name: "env fixes broken entry", cfg: broken, env: map[string]string{"PIER_URL": "https://ok"},
			want: Cluster{Name: "bad", URL: "https://ok", Key: "k"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string { return tc.env[k] }
			got, err := Resolve(tc.cfg, tc.flag, getenv)
			if tc.wantIs == nil && tc.wantErr == "" {
				if err != nil || !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("Resolve() = %+v, %v; want %+v", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Resolve() = %+v; want an error", got)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Fatalf("Resolve() error %v; want errors.Is %v", err, tc.wantIs)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Resolve() error %q; want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestErrNoClusterText(t *testing.T) {
	want := "no cluster configured: run `pier up` or `pier cluster add NAME URL KEY`"
	if ErrNoCluster.Error() != want {
		t.Fatalf("ErrNoCluster = %q, want %q", ErrNoCluster, want)
	}
}

func TestTLSConfigTrustsOnlyTheClusterCA(t *testing.T) {
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the point
	ts.StartTLS()
	defer ts.Close()
	serverCA := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}))

	get := func(cl Cluster) error {
		cfg, err := cl.TLSConfig()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.MinVersion < tls.VersionTLS12 {
			t.Fatalf("MinVersion %x", cfg.MinVersion)
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		resp, err := c.Get(ts.URL)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(Cluster{Name: "t", CAPEM: serverCA}); err != nil {
		t.Fatalf("with the server's CA: %v", err)
	}
	if err := get(Cluster{Name: "t", CAPEM: testCA(t)}); err == nil {
		t.Fatal("connected while trusting only a foreign CA")
	}
	// System roots: httptest's certificate is in none of them.
	if err := get(Cluster{Name: "t"}); err == nil {
		t.Fatal("connected with system roots to a self-signed server")
	}
	if cfg, err := (Cluster{Name: "t"}).TLSConfig(); err != nil || cfg.RootCAs != nil {
		t.Fatalf("without CA: RootCAs %v, %v; want nil (system roots)", cfg.RootCAs, err)
	}
	if _, err := (Cluster{Name: "t", CAPEM: "junk"}).TLSConfig(); err == nil {
		t.Fatal("TLSConfig accepted a CA that is not PEM")
	}
}
