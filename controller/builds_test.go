package controller_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/internal/tarball"
	"github.com/pierpaas/pier/runtime"
)

// fakeBuilder plays a build job on the fake runtime: it waits for the
// job, checks how it was started, and talks to the build endpoints as
// `pier slugbuild` would.
type fakeBuilder struct {
	e    *env
	hc   *http.Client
	spec runtime.Spec
	env  map[string]string
}

func (e *env) nextBuildJob(skip map[string]bool) *fakeBuilder {
	e.t.Helper()
	var id string
	waitFor(e.t, "a build job", func() bool {
		for _, r := range e.host.Runtime.Running() {
			if strings.Contains(r, "-build-") && !skip[r] {
				id = r
				return true
			}
		}
		return false
	})
	skip[id] = true
	spec, ok := e.host.Runtime.Spec(id)
	if !ok {
		e.t.Fatalf("no spec for %s", id)
	}
	fb := &fakeBuilder{e: e, spec: spec, env: map[string]string{},
		hc: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.tc.Etcd.Credentials().Pool}}}}
	for _, kv := range spec.Env {
		k, v, _ := strings.Cut(kv, "=")
		fb.env[k] = v
	}
	return fb
}

// call makes a request to the build's endpoints with token.
func (fb *fakeBuilder) call(method, path, token string, body []byte) (int, []byte) {
	fb.e.t.Helper()
	req, _ := http.NewRequest(method, fb.env[api.BuildEnvURL]+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := fb.hc.Do(req)
	if err != nil {
		fb.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (fb *fakeBuilder) token() string { return fb.env[api.BuildEnvToken] }

func sourceTar(t *testing.T, files map[string]string) []byte {
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := tarball.Pack(context.Background(), dir, &buf, tarball.Options{}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestBuildPipeline(t *testing.T) {
	e := newEnv(t)
	c := ctx(t)
	if _, err := e.cli.CreateApp(c, api.CreateAppRequest{Name: "b"}); err != nil {
		t.Fatal(err)
	}
	res, err := e.cli.SetEnv(c, "b", map[string]*string{"GREETING": ptr("hi")})
	if err != nil {
		t.Fatal(err)
	}
	e.deployed(res)
	seen := map[string]bool{}
	slug := sourceTar(t, map[string]string{"bin": "built"})

	// First build: no cache yet; the builder uploads a slug and a cache.
	done := make(chan error, 1)
	var events []api.BuildEvent
	var last api.BuildEvent
	go func() {
		src := sourceTar(t, map[string]string{"main.go": "package main"})
		var err error
		last, err = e.cli.Build(c, "b", "0123abcd", int64(len(src)), bytes.NewReader(src), func(ev api.BuildEvent) { events = append(events, ev) })
		done <- err
	}()
	fb := e.nextBuildJob(seen)
	if !fb.spec.Writable || fb.spec.Limits.MemoryMB != 2048 || fb.spec.Limits.CPUMillis != 1000 {
		t.Fatalf("build job spec: writable %v, limits %+v", fb.spec.Writable, fb.spec.Limits)
	}
	if !slices.Equal(fb.spec.Args, []string{api.PierBinary, "slugbuild"}) {
		t.Fatalf("build job args %q", fb.spec.Args)
	}
	if got, err := os.ReadFile(filepath.Join(fb.spec.AppDir, "main.go")); err != nil || string(got) != "package main" {
		t.Fatalf("source at /app: %q, %v", got, err)
	}
	if !strings.Contains(fb.env[api.BuildEnvConfig], `"GREETING":"hi"`) {
		t.Fatalf("config vars for ENV_DIR: %q", fb.env[api.BuildEnvConfig])
	}
	if code, _ := fb.call("PUT", "/slug", "wrong-token", slug); code != http.StatusUnauthorized {
		t.Fatalf("a wrong token: %d", code)
	}
	if len(done) > 0 {
		t.Fatalf("build ended early: %v %+v", <-done, events)
	}
	if code, b := fb.call("GET", "/cache", fb.token(), nil); code != http.StatusNotFound {
		t.Fatalf("first cache: %d, want 404: %q", code, b)
	}
	if code, b := fb.call("PUT", "/slug", fb.token(), slug); code != http.StatusCreated {
		t.Fatalf("slug: %d %s", code, b)
	}
	if code, b := fb.call("PUT", "/cache", fb.token(), []byte("cache-one")); code != http.StatusCreated {
		t.Fatalf("cache: %d %s", code, b)
	}
	if code, b := fb.call("POST", "/result", fb.token(), []byte(`{"process_types":{"worker":"run-worker --fast"},"config_vars":{"LANG":"en_US.UTF-8","GREETING":"no"},"buildpacks":["fake"]}`)); code != http.StatusNoContent {
		t.Fatalf("result: %d %s", code, b)
	}
	if err := e.host.Runtime.Write(fb.spec.ID, "-----> fake buildpack compiled\n", ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the line reaches the job's log before the exit
	e.host.Runtime.Exit(fb.spec.ID, 0)
	if err := <-done; err != nil {
		t.Fatalf("build: %v", err)
	}
	var out strings.Builder
	for _, ev := range events {
		out.WriteString(ev.Output)
	}
	if !strings.Contains(out.String(), "fake buildpack compiled") || !strings.Contains(out.String(), "deployed") {
		t.Fatalf("streamed output:\n%s", out.String())
	}
	if last.Build == nil || last.Build.State != api.BuildSucceeded || last.Result == nil || last.Result.Release.Version != 2 {
		t.Fatalf("last event: %+v", last)
	}
	rel := last.Result.Release
	if w := rel.Processes["worker"]; !slices.Equal(w.Args, []string{api.PierBinary, "slugrun", "--", "exec run-worker --fast"}) {
		t.Fatalf("worker args %q", w.Args)
	}
	if rel.Env["GREETING"] != "hi" || rel.Env["LANG"] != "en_US.UTF-8" {
		t.Fatalf("release env %v: config vars must not override the app's", rel.Env)
	}
	if code, _ := fb.call("GET", "/cache", fb.token(), nil); code != http.StatusUnauthorized {
		t.Fatalf("the token outlived its build: %d", code)
	}

	// Second build: it gets the first one's cache, and fails.
	go func() {
		src := sourceTar(t, map[string]string{"main.go": "package main // v2"})
		_, err := e.cli.Build(c, "b", "4567", int64(len(src)), bytes.NewReader(src), nil)
		done <- err
	}()
	fb = e.nextBuildJob(seen)
	if code, b := fb.call("GET", "/cache", fb.token(), nil); code != http.StatusOK || string(b) != "cache-one" {
		t.Fatalf("second cache: %d %q", code, b)
	}
	e.host.Runtime.Write(fb.spec.ID, "", " !     compile failed: no main package\n")
	time.Sleep(200 * time.Millisecond)
	e.host.Runtime.Exit(fb.spec.ID, 1)
	err = <-done
	if err == nil || !strings.Contains(err.Error(), "build failed") {
		t.Fatalf("failed build: %v", err)
	}
	app, _ := e.cli.App(c, "b")
	if app.Release != rel.ID {
		t.Fatalf("a failed build changed the release to %s", app.Release)
	}
	builds, err := e.cli.Builds(c, "b")
	if err != nil || len(builds) != 2 || builds[0].State != api.BuildFailed || builds[1].State != api.BuildSucceeded || builds[1].Release != rel.ID {
		t.Fatalf("builds: %+v, %v", builds, err)
	}
	var output bytes.Buffer
	if err := e.cli.BuildOutput(c, "b", builds[0].ID, &output); err != nil || !strings.Contains(output.String(), "compile failed") {
		t.Fatalf("stored output %q, %v", output.String(), err)
	}
}

func ptr(s string) *string { return &s }

// TestFastBuilds: builds that end before anyone could look, as a
// Procfile-only app's does, are read for their result: each succeeds
// with its output shown, and one that fails fast shows its own error,
// not that its job "has ended".
func TestFastBuilds(t *testing.T) {
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
	e.host.Runtime.OnStart(func(spec runtime.Spec) {
		if !strings.Contains(spec.ID, "-build-") {
			return
		}
		env := map[string]string{}
		for _, kv := range spec.Env {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		if strings.HasPrefix(spec.ID, "broken-") {
			e.host.Runtime.Write(spec.ID, "", " !     compile failed: fast and clear\n")
			e.host.Runtime.Exit(spec.ID, 3)
			return
		}
		call(env, "PUT", "/slug", slug)
		call(env, "POST", "/result", `{"process_types":{"worker":"run-worker"}}`)
		e.host.Runtime.Write(spec.ID, "-----> compiled in no time\n", "")
		e.host.Runtime.Exit(spec.ID, 0)
	})
	build := func(app string) (string, api.BuildEvent, error) {
		src := sourceTar(t, map[string]string{"Procfile": "worker: run-worker"})
		var out strings.Builder
		last, err := e.cli.Build(c, app, "upload", int64(len(src)), bytes.NewReader(src), func(ev api.BuildEvent) { out.WriteString(ev.Output) })
		return out.String(), last, err
	}
	for i := range 6 {
		app := fmt.Sprintf("fast%d", i)
		if _, err := e.cli.CreateApp(c, api.CreateAppRequest{Name: app}); err != nil {
			t.Fatal(err)
		}
		out, last, err := build(app)
		if err != nil || last.Build == nil || last.Build.State != api.BuildSucceeded {
			t.Fatalf("build %d of a fresh app: %v, %+v\n%s", i, err, last.Build, out)
		}
		if !strings.Contains(out, "compiled in no time") || !strings.Contains(out, "deployed") {
			t.Fatalf("build %d output:\n%s", i, out)
		}
	}
	if _, err := e.cli.CreateApp(c, api.CreateAppRequest{Name: "broken"}); err != nil {
		t.Fatal(err)
	}
	out, _, err := build("broken")
	if err == nil || !strings.Contains(err.Error(), "build failed: exit status 3") || !strings.Contains(out, "compile failed: fast and clear") {
		t.Fatalf("a fast failing build: %v\n%s", err, out)
	}
	builds, err := e.cli.Builds(c, "broken")
	if err != nil || len(builds) != 1 || builds[0].State != api.BuildFailed || !strings.Contains(builds[0].Error, "exit status 3") {
		t.Fatalf("builds: %+v, %v", builds, err)
	}
}
