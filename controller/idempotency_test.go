package controller_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/pierpaas/pier/api"
)

// A request that makes a release, sent again with its idempotency key,
// answers with the release the first made; at the same moment too.
func TestIdempotentReleases(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	if _, err := e.cli.CreateApp(c, api.CreateAppRequest{Name: "idem"}); err != nil {
		t.Fatal(err)
	}
	res, err := e.cli.CreateRelease(c, "idem", api.CreateReleaseRequest{Artifact: &api.Artifact{SHA256: e.slug("x")}, Processes: worker()})
	if err != nil {
		t.Fatal(err)
	}
	e.deployed(res)
	hc := e.srv.Client()
	setEnv := func(key, value string) (int, api.ReleaseResult) {
		req, _ := http.NewRequest(http.MethodPatch, e.srv.URL+"/v1/apps/idem/env", bytes.NewReader([]byte(`{"A":"`+value+`"}`)))
		req.Header.Set("Authorization", "Bearer "+e.key)
		req.Header.Set(api.IdempotencyHeader, key)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out api.ReleaseResult
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}

	// Three attempts at once, then one more: one release, v2.
	var wg sync.WaitGroup
	got := make([]api.ReleaseResult, 3)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if st, r := setEnv("k-1", "1"); st == http.StatusCreated {
				got[i] = r
			}
		}()
	}
	wg.Wait()
	st, again := setEnv("k-1", "1")
	for _, r := range append(got, again) {
		if r.Release.Version != 2 || r.Release.RequestKey != "k-1" || r.Deployment.ID != r.Release.ID {
			t.Fatalf("attempts answered %+v (status of the last %d)", append(got, again), st)
		}
	}
	rels, err := e.cli.Releases(c, "idem")
	if err != nil || len(rels) != 2 {
		t.Fatalf("%d releases, want 2: %v", len(rels), err)
	}

	// Another key is another change; a bad key is refused.
	e.deployed(again)
	if st, r := setEnv("k-2", "2"); st != http.StatusCreated || r.Release.Version != 3 {
		t.Fatalf("another key: %d %+v", st, r)
	}
	if st, _ := setEnv("has space", "3"); st != http.StatusBadRequest {
		t.Fatalf("a key with a space: %d", st)
	}
	if st, _ := setEnv(strings.Repeat("k", 129), "3"); st != http.StatusBadRequest {
		t.Fatalf("a long key: %d", st)
	}
}
