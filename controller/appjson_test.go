package controller_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/runtime"
)

// TestAppJSONRelease: a build that reports an app.json makes a release
// with its cron type, health check and placement, and its formation;
// postdeploy runs after the first deploy (scripts.postdeploy) and after
// each (scripts.dokku.postdeploy). Each later deploy's app.json is the
// source of truth for what it governs, except the counts pier scale owns;
// a deploy without one keeps placement; and the controller refuses a
// manifest the builder should have refused, naming the line.
func TestAppJSONRelease(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.tc.Etcd.Credentials().Pool}}}
	call := func(env map[string]string, method, path string, body string) {
		req, _ := http.NewRequest(method, env[api.BuildEnvURL]+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+env[api.BuildEnvToken])
		resp, err := hc.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Errorf("%s %s: %d", method, path, resp.StatusCode)
		}
	}
	slug := string(sourceTar(t, map[string]string{"bin": "built"}))
	var mu sync.Mutex
	manifest := "" // what the next build reports
	e.host.Runtime.OnStart(func(spec runtime.Spec) {
		switch {
		case strings.Contains(spec.ID, "-build-"):
			env := map[string]string{}
			for _, kv := range spec.Env {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
			mu.Lock()
			res, _ := json.Marshal(api.BuildResult{ProcessTypes: map[string]string{"web": "serve", "worker": "work"}, AppJSON: manifest})
			mu.Unlock()
			call(env, "PUT", "/slug", slug)
			call(env, "POST", "/result", string(res))
			e.host.Runtime.Exit(spec.ID, 0)
		case strings.Contains(spec.ID, "-postdeploy-"):
			e.host.Runtime.Write(spec.ID, "ran "+spec.Args[len(spec.Args)-1]+"\n", "")
			e.host.Runtime.Exit(spec.ID, 0)
		}
	})
	if _, err := e.cli.CreateApp(c, api.CreateAppRequest{Name: "aj"}); err != nil {
		t.Fatal(err)
	}
	build := func(text string) (string, api.BuildEvent, error) {
		t.Helper()
		mu.Lock()
		manifest = text
		mu.Unlock()
		src := sourceTar(t, map[string]string{"Procfile": "web: serve"})
		var out strings.Builder
		last, err := e.cli.Build(c, "aj", "upload", int64(len(src)), bytes.NewReader(src), func(ev api.BuildEvent) { out.WriteString(ev.Output) })
		return out.String(), last, err
	}
	counts := func() map[string]int {
		t.Helper()
		f, err := e.cli.Formation(c, "aj")
		if err != nil {
			t.Fatal(err)
		}
		return f.Processes
	}

	// First deploy: web takes no jobs, so that the fake runtime, which
	// serves no port, need not pass the health check.
	out, last, err := build(`{
  "formation": {"web": {"quantity": 0}, "worker": {"quantity": 2}},
  "cron": [{"command": "echo tick", "schedule": "*/5 * * * *"}],
  "healthchecks": {"web": [{"type": "startup", "path": "/health", "attempts": 2, "wait": 1}]},
  "scripts": {"postdeploy": "echo seeded", "dokku": {"postdeploy": "echo each"}},
  "pier": {"processes": {"worker": {"max_per_host": 2}, "cron-1": {"tags": {"disk": "ssd"}}}}
}`)
	if err != nil || last.Result == nil {
		t.Fatalf("first build: %v\n%s", err, out)
	}
	rel := last.Result.Release
	cr := rel.Processes["cron-1"]
	if cr.Schedule != "*/5 * * * *" || !slices.Equal(cr.Args, []string{api.PierBinary, "slugrun", "--", "exec echo tick"}) || cr.Tags["disk"] != "ssd" {
		t.Fatalf("cron-1: %+v", cr)
	}
	web := rel.Processes["web"]
	if h := web.Ports[0].Health; h == nil || h.Kind != "http" || h.Path != "/health" || h.Threshold != 2 {
		t.Fatalf("web health check: %+v", h)
	}
	if w := rel.Processes["worker"]; w.MaxPerHost != 2 || w.Schedule != "" {
		t.Fatalf("worker: %+v", w)
	}
	if got := counts(); !maps.Equal(got, map[string]int{"web": 0, "worker": 2, "cron-1": 1}) {
		t.Fatalf("first formation %v", got)
	}
	if !strings.Contains(out, "ran exec echo seeded") || !strings.Contains(out, "ran exec echo each") {
		t.Fatalf("postdeploy output:\n%s", out)
	}

	// pier scale owns the counts after the first deploy; the manifest
	// owns the rest: the cron entry and the placement it dropped go.
	if _, err := e.cli.Scale(c, "aj", map[string]int{"worker": 1}); err != nil {
		t.Fatal(err)
	}
	out, last, err = build(`{
  "formation": {"worker": {"quantity": 3}},
  "healthchecks": {"web": [{"type": "liveness", "path": "/ready"}]},
  "scripts": {"postdeploy": "echo seeded", "dokku": {"postdeploy": "echo each"}}
}`)
	if err != nil || last.Result == nil {
		t.Fatalf("second build: %v\n%s", err, out)
	}
	rel = last.Result.Release
	if _, ok := rel.Processes["cron-1"]; ok {
		t.Fatalf("cron-1 outlived its entry: %+v", rel.Processes)
	}
	if h := rel.Processes["web"].Ports[0].Health; h.Path != "/ready" {
		t.Fatalf("web health check: %+v", h)
	}
	if w := rel.Processes["worker"]; w.MaxPerHost != 0 {
		t.Fatalf("worker kept the placement the manifest dropped: %+v", w)
	}
	if got := counts(); !maps.Equal(got, map[string]int{"web": 0, "worker": 1}) {
		t.Fatalf("second formation %v: the quantity applies when a type first appears", got)
	}
	if strings.Contains(out, "seeded") || !strings.Contains(out, "ran exec echo each") {
		t.Fatalf("postdeploy after a later deploy:\n%s", out)
	}

	// Placement from an earlier manifest stays when app.json goes, as if
	// set through the API; the health check is TCP again.
	if _, _, err := build(`{"pier": {"processes": {"worker": {"max_per_host": 3}}}}`); err != nil {
		t.Fatal(err)
	}
	_, last, err = build("")
	if err != nil {
		t.Fatal(err)
	}
	rel = last.Result.Release
	if w, h := rel.Processes["worker"], rel.Processes["web"].Ports[0].Health; w.MaxPerHost != 3 || h.Kind != "tcp" {
		t.Fatalf("without app.json: worker %+v, web health %+v", w, h)
	}

	// A build job that lets a bad manifest through is not believed.
	out, _, err = build("{\n  \"formation\": {\"clock\": {\"quantity\": 1}}\n}")
	if err == nil || !strings.Contains(err.Error(), "app.json line 2, column 17: formation.clock: the app has no process type clock (it has web, worker)") {
		t.Fatalf("bad manifest: %v\n%s", err, out)
	}
	if app, _ := e.cli.App(c, "aj"); app.Release != rel.ID {
		t.Fatalf("a refused manifest changed the release to %s", app.Release)
	}
}
