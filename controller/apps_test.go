package controller_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pierpaas/pier/api"
)

// wantCode fails unless err is an API error with code and status.
func wantCode(t *testing.T, err error, code string, status int) {
	t.Helper()
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != code || ae.Status != status {
		t.Fatalf("err = %v (%#v), want %s/%d", err, ae, code, status)
	}
}

func TestAppsLifecycleAndValidation(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	app, err := e.cli.CreateApp(c, api.CreateAppRequest{Name: "hello", Meta: map[string]string{"team": "a"}})
	if err != nil || app.Name != "hello" || app.Meta["team"] != "a" {
		t.Fatalf("create: %+v, %v", app, err)
	}
	_, err = e.cli.CreateApp(c, api.CreateAppRequest{Name: "hello"})
	wantCode(t, err, api.ErrCodeConflict, 409)
	for _, bad := range []string{"Hello", "a;rm -rf /", "$(id)", "a b", "-a", "a--b", "", strings.Repeat("a", 64), "a_b", "héllo"} {
		_, err := e.cli.CreateApp(c, api.CreateAppRequest{Name: bad})
		wantCode(t, err, api.ErrCodeInvalid, 422)
	}
	if _, err := e.cli.CreateApp(c, api.CreateAppRequest{Name: strings.Repeat("a", 63)}); err != nil {
		t.Fatalf("63 characters: %v", err)
	}
	apps, err := e.cli.Apps(c)
	if err != nil || len(apps) != 2 {
		t.Fatalf("apps = %+v, %v; the rejected names must have created nothing", apps, err)
	}
	_, err = e.cli.CreateApp(c, api.CreateAppRequest{Name: "x", Strategy: &api.DeployStrategy{Kind: "sideways"}})
	wantCode(t, err, api.ErrCodeInvalid, 422)

	app, err = e.cli.UpdateApp(c, "hello", api.UpdateAppRequest{Meta: map[string]string{"team": "", "owner": "b"},
		Strategy: &api.DeployStrategy{Kind: api.StrategyBatch, BatchSize: 2}})
	if err != nil || app.Meta["team"] != "" || app.Meta["owner"] != "b" || app.Strategy.BatchSize != 2 {
		t.Fatalf("update: %+v, %v", app, err)
	}
	if err := e.cli.DeleteApp(c, "hello"); err != nil {
		t.Fatal(err)
	}
	_, err = e.cli.App(c, "hello")
	wantCode(t, err, api.ErrCodeNotFound, 404)
	wantCode(t, e.cli.DeleteApp(c, "hello"), api.ErrCodeNotFound, 404)
}

func TestEveryEndpointNeedsAKey(t *testing.T) {
	e := newEnv(t)
	hc := e.srv.Client()
	paths := []string{"/v1/apps", "/v1/apps/x", "/v1/apps/x/releases", "/v1/apps/x/env", "/v1/apps/x/formation",
		"/v1/apps/x/jobs", "/v1/events", "/v1/api-keys", "/v1/openapi.json", "/v1/blobs/sha256/" + strings.Repeat("a", 64), "/v1/nope"}
	for _, p := range paths {
		for _, key := range []string{"", "pier_0000_nope", "garbage", e.key + "x"} {
			req, _ := http.NewRequest(http.MethodGet, e.srv.URL+p, nil)
			if key != "" {
				req.Header.Set("Authorization", "Bearer "+key)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 401 || !bytes.Contains(body, []byte(`"unauthenticated"`)) {
				t.Errorf("GET %s with key %q: %d %s", p, key, resp.StatusCode, body)
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Errorf("GET %s: no request id", p)
			}
		}
	}
	// The key also works as a basic-auth password (git, curl -u).
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/v1/apps", nil)
	req.SetBasicAuth("", e.key)
	req.Header.Set("X-Request-Id", "my-id-1")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Request-Id") != "my-id-1" {
		t.Fatalf("basic auth: %d, request id %q", resp.StatusCode, resp.Header.Get("X-Request-Id"))
	}
}

func TestKeyRotation(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	nk, err := e.cli.CreateAPIKey(c, "ci")
	if err != nil || !strings.HasPrefix(nk.Key, "pier_") {
		t.Fatalf("create key: %+v, %v", nk, err)
	}
	second := e.client(nk.Key)
	// Both work while clients move over...
	if _, err := second.Apps(c); err != nil {
		t.Fatalf("new key: %v", err)
	}
	if _, err := e.cli.Apps(c); err != nil {
		t.Fatalf("old key: %v", err)
	}
	keys, err := second.APIKeys(c)
	if err != nil || len(keys) != 2 || keys[0].Hash != "" || keys[1].Hash != "" {
		t.Fatalf("keys = %+v, %v", keys, err)
	}
	// ...then the old one is revoked and stops working at once.
	old := keys[0].ID
	if err := second.DeleteAPIKey(c, old); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "revoked key refused", func() bool {
		_, err := e.cli.Apps(c)
		var ae *api.Error
		return errors.As(err, &ae) && ae.Status == 401
	})
	wantCode(t, second.DeleteAPIKey(c, nk.ID), api.ErrCodeConflict, 409) // the last key stays
}

func TestBadBodies(t *testing.T) {
	e := newEnv(t)
	hc := e.srv.Client()
	post := func(path string, body []byte) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.key)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ae api.Error
		json.NewDecoder(resp.Body).Decode(&ae)
		return resp.StatusCode, ae.Code
	}
	big := append([]byte(`{"name":"`), bytes.Repeat([]byte("a"), 2<<20)...)
	if st, code := post("/v1/apps", big); st != 413 || code != api.ErrCodeTooLarge {
		t.Errorf("oversized body: %d %s", st, code)
	}
	if st, code := post("/v1/apps", []byte(`{"name": "x", "nmae": "y"}`)); st != 400 || code != api.ErrCodeBadRequest {
		t.Errorf("unknown field: %d %s", st, code)
	}
	if st, _ := post("/v1/apps", []byte(`{"name": "x"} {}`)); st != 400 {
		t.Errorf("two values: %d", st)
	}
	if st, _ := post("/v1/apps", []byte(`not json`)); st != 400 {
		t.Errorf("not json: %d", st)
	}
	apps, _ := e.cli.Apps(ctx(t))
	if len(apps) != 0 {
		t.Fatalf("bad bodies created %+v", apps)
	}
}

func TestOpenAPIDescribesTheAPI(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/v1/openapi.json", nil)
	req.Header.Set("Authorization", "Bearer "+e.key)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		OpenAPI    string                               `json:"openapi"`
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"post /v1/apps", "patch /v1/apps/{app}/env", "post /v1/apps/{app}/rollback", "get /v1/events", "patch /v1/apps/{app}/formation"} {
		m, p, _ := strings.Cut(want, " ")
		if doc.Paths[p][m] == nil {
			t.Errorf("openapi lacks %s", want)
		}
	}
	props, _ := doc.Components.Schemas["Release"]["properties"].(map[string]any)
	if doc.OpenAPI != "3.1.0" || props["version"] == nil || props["processes"] == nil {
		t.Fatalf("openapi %s, Release schema %v", doc.OpenAPI, doc.Components.Schemas["Release"])
	}
}
