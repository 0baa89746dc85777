package controller_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pierpaas/pier/api"
)

// TestRegistryRoles: a host's cluster certificate pulls from the
// registry but cannot push; a user's API key can; a repository is an
// app's; image releases must be pinned by digest.
func TestRegistryRoles(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	if _, err := e.cli.CreateApp(c, api.CreateAppRequest{Name: "img"}); err != nil {
		t.Fatal(err)
	}
	host := &http.Client{Transport: &http.Transport{TLSClientConfig: e.tc.Etcd.Credentials().ClientConfig()}}
	do := func(cl *http.Client, method, path, key string) int {
		t.Helper()
		req, _ := http.NewRequest(method, e.srv.URL+path, nil)
		if key != "" {
			req.SetBasicAuth("pier", key)
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := do(host, "GET", "/v2/img/tags/list", ""); got != 200 {
		t.Errorf("a host pulling: %d", got)
	}
	if got := do(host, "POST", "/v2/img/blobs/uploads/", ""); got != 401 {
		t.Errorf("a host pushing: %d, want 401", got)
	}
	if got := do(host, "POST", "/v2/img/blobs/uploads/", e.key); got != 202 {
		t.Errorf("a user pushing: %d, want 202", got)
	}
	if got := do(host, "GET", "/v2/nope/tags/list", e.key); got != 404 {
		t.Errorf("a repository without an app: %d, want 404", got)
	}

	digest := strings.Repeat("ab", 32)
	web := map[string]api.ProcessType{"web": {Args: []string{"/app/server"}}}
	for _, uri := range []string{"reg/img:latest", "reg/img@sha256:" + strings.Repeat("cd", 32), "@sha256:" + digest} {
		_, err := e.cli.CreateRelease(c, "img", api.CreateReleaseRequest{
			Artifact: &api.Artifact{Type: api.ArtifactImage, URI: uri, SHA256: digest}, Processes: web})
		if err == nil || !strings.Contains(err.Error(), "image artifact") {
			t.Errorf("image uri %q: %v, want a refusal", uri, err)
		}
	}
	if _, err := e.cli.CreateRelease(c, "img", api.CreateReleaseRequest{
		Artifact: &api.Artifact{Type: api.ArtifactImage, URI: "reg/img@sha256:" + digest, SHA256: digest}, Processes: web}); err != nil {
		t.Errorf("a pinned image release: %v", err)
	}
}
