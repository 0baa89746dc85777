package build

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/host/artifact"
)

// fakeController serves one build's endpoints as api/build.go describes
// them, and keeps what it was sent.
type fakeController struct {
	t     *testing.T
	token string

	mu          sync.Mutex
	cache       []byte // nil: 404
	slug        []byte
	result      *api.BuildResult
	failSlugPut int // answer this many slug uploads with 503
	requests    []string
}

func (f *fakeController) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(api.Error{Code: "unauthorized", Message: "bad build token"})
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.t.Errorf("%s %s: %v", r.Method, r.URL.Path, err)
	}
	if r.ContentLength >= 0 && int64(len(body)) != r.ContentLength {
		f.t.Errorf("%s %s: Content-Length %d, body %d", r.Method, r.URL.Path, r.ContentLength, len(body))
	}
	switch r.Method + " " + r.URL.Path {
	case "GET /v1/builds/b1/cache":
		if f.cache == nil {
			http.NotFound(w, r)
			return
		}
		w.Write(f.cache)
	case "PUT /v1/builds/b1/cache":
		f.cache = body
	case "PUT /v1/builds/b1/slug":
		if f.failSlugPut > 0 {
			f.failSlugPut--
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		f.slug = body
	case "POST /v1/builds/b1/result":
		if f.slug == nil {
			f.t.Error("result posted before the slug")
		}
		var res api.BuildResult
		if err := json.Unmarshal(body, &res); err != nil {
			f.t.Errorf("result: %v", err)
		}
		f.result = &res
	default:
		http.NotFound(w, r)
	}
}

// cacheBuildpack counts builds in its cache and shows whether it can see
// the build's credentials or config vars in its environment.
var cacheBuildpack = map[string]string{
	"bin/detect": "#!/bin/sh\necho counter\n",
	"bin/compile": `#!/bin/sh
set -e
n=$(cat "$2/count" 2>/dev/null || echo 0)
n=$((n+1))
echo $n >"$2/count"
echo "-----> build number $n"
echo "${PIER_BUILD_TOKEN:-no token} ${COLOR:-no color}" >"$1/env-seen"
cat "$3/COLOR" >"$1/color"
`,
	"bin/release": "#!/bin/sh\necho '---'\necho 'default_process_types:'\necho '  web: ./serve'\n",
}

func TestRunJob(t *testing.T) {
	bp := t.TempDir()
	writeFiles(t, bp, cacheBuildpack)
	fake := &fakeController{t: t, token: "s3cret", failSlugPut: 1}
	srv := httptest.NewTLSServer(fake)
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	env := map[string]string{
		api.BuildEnvID:      "b1",
		api.BuildEnvToken:   "s3cret",
		api.BuildEnvURL:     srv.URL + "/v1/builds/b1",
		api.BuildEnvCA:      string(ca),
		api.BuildEnvConfig:  `{"COLOR":"blue"}`,
		api.BuildpackURLVar: bp,
	}
	// The job's own environment holds the token too: buildpacks must not see it.
	t.Setenv(api.BuildEnvToken, "s3cret")

	for build := 1; build <= 2; build++ {
		app := t.TempDir()
		writeFiles(t, app, map[string]string{"Procfile": "worker: ./work\n", "serve": "x"})
		var out syncBuffer
		err := runJob(context.Background(), jobConfig{appDir: app, tempDir: t.TempDir(), env: func(k string) string { return env[k] }, out: &out, retryWait: time.Millisecond})
		if err != nil {
			t.Fatalf("build %d: %v\n%s", build, err, out.String())
		}
		t.Logf("build %d output:\n%s", build, out.String())
		if !strings.Contains(out.String(), "-----> build number "+string(rune('0'+build))) {
			t.Errorf("build %d: the cache did not come back (output above)", build)
		}
		fake.mu.Lock()
		slug, res := fake.slug, fake.result
		fake.slug, fake.result = nil, nil
		fake.mu.Unlock()
		sum := sha256.Sum256(slug)
		if !strings.Contains(out.String(), "sha256 "+hex.EncodeToString(sum[:])) {
			t.Errorf("build %d: output does not name the uploaded slug's digest", build)
		}
		dest := filepath.Join(t.TempDir(), "slug")
		if err := artifact.Extract(bytes.NewReader(slug), dest, artifact.Limits{}); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(filepath.Join(dest, "env-seen")); string(b) != "no token no color\n" {
			t.Errorf("buildpack environment: %q", b)
		}
		if b, _ := os.ReadFile(filepath.Join(dest, "color")); string(b) != "blue" {
			t.Errorf("ENV_DIR/COLOR: %q", b)
		}
		if res == nil || res.ProcessTypes["web"] != "./serve" || res.ProcessTypes["worker"] != "./work" || len(res.Buildpacks) != 1 || res.Buildpacks[0] != "counter" {
			t.Errorf("build %d: result %+v", build, res)
		}
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	want := "GET /v1/builds/b1/cache,PUT /v1/builds/b1/slug,PUT /v1/builds/b1/slug,PUT /v1/builds/b1/cache,POST /v1/builds/b1/result"
	if got := strings.Join(fake.requests[:5], ","); got != want {
		t.Errorf("first build's requests:\n%s\nwant\n%s", got, want)
	}
}

func TestRunJobFailures(t *testing.T) {
	fake := &fakeController{t: t, token: "right"}
	srv := httptest.NewUnstartedServer(fake)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the wrong-CA case's handshake errors
	srv.StartTLS()
	defer srv.Close()
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	bp := t.TempDir()
	writeFiles(t, bp, map[string]string{"bin/compile": "#!/bin/sh\necho ' !     no can do' >&2\nexit 1\n"})
	base := map[string]string{
		api.BuildEnvToken: "right", api.BuildEnvURL: srv.URL + "/v1/builds/b1", api.BuildEnvCA: ca, api.BuildpackURLVar: bp,
	}
	run := func(change map[string]string) error {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for k, v := range change {
			env[k] = v
		}
		return runJob(context.Background(), jobConfig{appDir: t.TempDir(), tempDir: t.TempDir(), env: func(k string) string { return env[k] }, out: io.Discard, retryWait: time.Millisecond})
	}
	for name, tc := range map[string]struct {
		change map[string]string
		want   string
	}{
		"compile fails":   {nil, "no can do"},
		"no URL":          {map[string]string{api.BuildEnvURL: ""}, "PIER_BUILD_URL and PIER_BUILD_TOKEN must be set"},
		"bad config JSON": {map[string]string{api.BuildEnvConfig: "{"}, "PIER_BUILD_ENV"},
		"no CA":           {map[string]string{api.BuildEnvCA: ""}, "cannot verify"},
		"wrong CA": {map[string]string{api.BuildEnvCA: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: otherCert(t)}))},
			"fetch the build cache: Get"},
		"bad token": {map[string]string{api.BuildEnvToken: "wrong", api.BuildpackURLVar: "procfile"}, "bad build token (401 Unauthorized)"},
	} {
		err := run(tc.change)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to say %q", name, err, tc.want)
		}
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if fake.result != nil || fake.slug != nil {
		t.Errorf("a failed build reported a slug or a result")
	}
}

// otherCert is a self-signed certificate that did not sign the test
// server's (httptest gives every server the same one).
func otherCert(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
