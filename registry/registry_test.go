package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/blobstore"
	"github.com/pierpaas/pier/store/storetest"
)

func newTestRegistry(t *testing.T) (*httptest.Server, *storetest.Cluster) {
	t.Helper()
	cl := storetest.NewCluster(t, 1)
	blobs, err := blobstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h, err := Handler(Config{
		Blobs: blobs, KV: cl.Client(), UploadDir: t.TempDir(),
		Auth: func(r *http.Request) error {
			if _, pw, ok := r.BasicAuth(); ok && pw == "secret" {
				return nil
			}
			return errors.New("no")
		},
		Repository: func(_ context.Context, name string) error {
			if name == "a" || name == "b" {
				return nil
			}
			return ErrNoRepository
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, cl
}

func do(t *testing.T, srv *httptest.Server, method, path, pass string, body []byte) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
	if pass != "" {
		req.SetBasicAuth("pier", pass)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestRepositoriesAreApart: a blob pushed to one app's repository is not
// readable through another's until it is mounted there; unknown
// repositories, missing credentials and sha512 are refused with the
// spec's codes; what repositories link is what GC keeps.
func TestRepositoriesAreApart(t *testing.T) {
	srv, cl := newTestRegistry(t)
	blob := []byte("layer bytes")
	d := digestOf(blob)

	resp, body := do(t, srv, "GET", "/v2/", "", nil)
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" || !strings.Contains(body, "UNAUTHORIZED") {
		t.Errorf("no credentials: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, srv, "GET", "/v2/", "wrong", nil); resp.StatusCode != 401 {
		t.Errorf("a wrong key: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, srv, "POST", "/v2/zzz/blobs/uploads/?digest=sha256:"+d, "secret", blob); resp.StatusCode != 404 || !strings.Contains(body, "NAME_UNKNOWN") {
		t.Errorf("push to no app: %d %s", resp.StatusCode, body)
	}
	sha512 := "sha512:" + strings.Repeat("ab", 64)
	if resp, body := do(t, srv, "POST", "/v2/a/blobs/uploads/?digest="+sha512, "secret", blob); resp.StatusCode != 400 || !strings.Contains(body, "DIGEST_INVALID") {
		t.Errorf("sha512: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, srv, "POST", "/v2/a/blobs/uploads/?digest=sha256:"+d, "secret", blob); resp.StatusCode != 201 {
		t.Fatalf("push: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, srv, "GET", "/v2/a/blobs/sha256:"+d, "secret", nil); resp.StatusCode != 200 || body != string(blob) {
		t.Errorf("pull from a: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, srv, "GET", "/v2/b/blobs/sha256:"+d, "secret", nil); resp.StatusCode != 404 || !strings.Contains(body, "BLOB_UNKNOWN") {
		t.Errorf("pull from b before a mount: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, srv, "POST", "/v2/b/blobs/uploads/?mount=sha256:"+d+"&from=a", "secret", nil); resp.StatusCode != 201 {
		t.Errorf("mount: %d %s", resp.StatusCode, body)
	}
	if resp, _ := do(t, srv, "GET", "/v2/b/blobs/sha256:"+d, "secret", nil); resp.StatusCode != 200 {
		t.Errorf("pull from b after the mount: %d", resp.StatusCode)
	}

	config := []byte("{}")
	do(t, srv, "POST", "/v2/a/blobs/uploads/?digest=sha256:"+digestOf(config), "secret", config)
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` +
		digestOf(config) + `","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:` + d + `","size":11}]}`)
	req, _ := http.NewRequest("PUT", srv.URL+"/v2/a/manifests/v1", bytes.NewReader(manifest))
	req.SetBasicAuth("pier", "secret")
	req.Header.Set("Content-Type", mtOCIManifest)
	if resp, err := srv.Client().Do(req); err != nil || resp.StatusCode != 201 {
		t.Fatalf("manifest put: %v %v", resp, err)
	}
	kept, err := KeptBlobs(context.Background(), cl.Client())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{d, digestOf(config), digestOf(manifest)} {
		if !kept[want] {
			t.Errorf("GC would not keep %s: %v", want, kept)
		}
	}
	// Deleting the links and the manifest lets GC have them.
	for _, p := range []string{"/v2/a/blobs/sha256:" + d, "/v2/b/blobs/sha256:" + d, "/v2/a/blobs/sha256:" + digestOf(config), "/v2/a/manifests/sha256:" + digestOf(manifest)} {
		if resp, body := do(t, srv, "DELETE", p, "secret", nil); resp.StatusCode != 202 {
			t.Errorf("DELETE %s: %d %s", p, resp.StatusCode, body)
		}
	}
	if resp, _ := do(t, srv, "GET", "/v2/a/manifests/v1", "secret", nil); resp.StatusCode != 404 {
		t.Errorf("the tag outlived its manifest: %d", resp.StatusCode)
	}
	if kept, _ := KeptBlobs(context.Background(), cl.Client()); len(kept) != 0 {
		t.Errorf("after the deletes GC keeps %v", kept)
	}
}

func TestParsePath(t *testing.T) {
	for path, want := range map[string]request{
		"/v2/app/blobs/sha256:ab":           {name: "app", kind: "blobs", ref: "sha256:ab"},
		"/v2/a/b/manifests/latest":          {name: "a/b", kind: "manifests", ref: "latest"},
		"/v2/app/blobs/uploads/":            {name: "app", kind: "uploads"},
		"/v2/app/blobs/uploads/0123":        {name: "app", kind: "uploads", ref: "0123"},
		"/v2/app/tags/list":                 {name: "app", kind: "tags"},
		"/v2/app/referrers/sha256:ab":       {name: "app", kind: "referrers", ref: "sha256:ab"},
		"/v2/blobs/blobs/sha256:ab":         {name: "blobs", kind: "blobs", ref: "sha256:ab"},
		"/v2/app/manifests/latest/../other": {},
	} {
		got, ok := parsePath(path)
		if ok != (want.name != "") || got != want {
			t.Errorf("%s: %+v %v, want %+v", path, got, ok, want)
		}
	}
}

// TestCollectLinks: a blob no manifest of its repository references is
// unlinked once its grace has passed; one a manifest references stays.
func TestCollectLinks(t *testing.T) {
	srv, cl := newTestRegistry(t)
	kept, loose := []byte("layer"), []byte("abandoned")
	config := []byte("{}")
	for _, b := range [][]byte{kept, loose, config} {
		if resp, body := do(t, srv, "POST", "/v2/a/blobs/uploads/?digest=sha256:"+digestOf(b), "secret", b); resp.StatusCode != 201 {
			t.Fatalf("push: %d %s", resp.StatusCode, body)
		}
	}
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` +
		digestOf(config) + `","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:` + digestOf(kept) + `","size":5}]}`)
	req, _ := http.NewRequest("PUT", srv.URL+"/v2/a/manifests/v1", bytes.NewReader(manifest))
	req.SetBasicAuth("pier", "secret")
	req.Header.Set("Content-Type", mtOCIManifest)
	if resp, err := srv.Client().Do(req); err != nil || resp.StatusCode != 201 {
		t.Fatalf("manifest put: %v %v", resp, err)
	}
	ctx := context.Background()
	if n, err := CollectLinks(ctx, cl.Client(), time.Hour, time.Now()); err != nil || n != 0 {
		t.Fatalf("within the grace: %d %v", n, err)
	}
	if n, err := CollectLinks(ctx, cl.Client(), time.Hour, time.Now().Add(2*time.Hour)); err != nil || n != 1 {
		t.Fatalf("after the grace: %d %v, want 1", n, err)
	}
	if resp, _ := do(t, srv, "GET", "/v2/a/blobs/sha256:"+digestOf(loose), "secret", nil); resp.StatusCode != 404 {
		t.Errorf("the abandoned blob is still linked: %d", resp.StatusCode)
	}
	for _, b := range [][]byte{kept, config} {
		if resp, _ := do(t, srv, "GET", "/v2/a/blobs/sha256:"+digestOf(b), "secret", nil); resp.StatusCode != 200 {
			t.Errorf("a referenced blob was unlinked: %d", resp.StatusCode)
		}
	}
}
