package build

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Each example is detected by its own built-in buildpack and no other.
func TestDetectExamples(t *testing.T) {
	want := map[string]string{"go": "go", "node": "nodejs", "python": "python", "static": "static", "hello": "procfile"}
	bpDir := t.TempDir()
	if err := extractBuiltins(bpDir); err != nil {
		t.Fatal(err)
	}
	c := &compiler{ctx: context.Background(), env: os.Environ(), out: io.Discard}
	for example, own := range want {
		c.appDir = filepath.Join(examplesDir(t), example)
		var detected []string
		for _, b := range builtins {
			name, ok, err := c.detect(buildpack{dir: filepath.Join(bpDir, b.dir)})
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				detected = append(detected, b.dir)
				if name != b.name {
					t.Errorf("%s: bin/detect of %s printed %q, want %q", example, b.dir, name, b.name)
				}
			}
		}
		if !slices.Equal(detected, []string{own}) {
			t.Errorf("examples/%s detected by %v, want only %s", example, detected, own)
		}
	}
}

func TestExampleStatic(t *testing.T) {
	app := copyApp(t, filepath.Join(examplesDir(t), "static"))
	res, _ := compileApp(t, app, t.TempDir())
	if !slices.Equal(res.Buildpacks, []string{"Static"}) {
		t.Fatalf("buildpacks %v", res.Buildpacks)
	}
	web := res.ProcessTypes["web"]
	if !strings.HasPrefix(web, "/.pier/pier serve-static --root ") {
		t.Fatalf("web = %q", web)
	}
	base := startWeb(t, app, web)
	if code, h, body := get(t, base+"/"); code != 200 || !strings.Contains(body, "Hello from a static site") {
		t.Fatalf("GET /: %d %q", code, body)
	} else if h.Get("Cache-Control") != "no-cache" {
		t.Errorf("index.html Cache-Control %q", h.Get("Cache-Control"))
	}
	if code, _, _ := get(t, base+"/assets/"); code != 404 {
		t.Errorf("GET /assets/ (no index.html) = %d, want 404: no listings", code)
	}
	if code, _, _ := get(t, base+"/.profile.d/"); code != 404 {
		t.Errorf("GET /.profile.d/ = %d, want 404", code)
	}
}

func TestExampleProcfile(t *testing.T) {
	app := copyApp(t, filepath.Join(examplesDir(t), "hello"))
	res, _ := compileApp(t, app, t.TempDir())
	if !slices.Equal(res.Buildpacks, []string{"Procfile"}) {
		t.Fatalf("buildpacks %v", res.Buildpacks)
	}
	base := startWeb(t, app, res.ProcessTypes["web"])
	if code, _, body := get(t, base+"/"); code != 200 || !strings.Contains(body, "hello from pier") {
		t.Fatalf("GET /: %d %q", code, body)
	}
}

func TestExamplePython(t *testing.T) {
	app := copyApp(t, filepath.Join(examplesDir(t), "python"))
	res, _ := compileApp(t, app, t.TempDir())
	if !slices.Equal(res.Buildpacks, []string{"Python"}) {
		t.Fatalf("buildpacks %v", res.Buildpacks)
	}
	if res.ProcessTypes["web"] != "python3 app.py" {
		t.Fatalf("web = %q", res.ProcessTypes["web"])
	}
	if _, err := os.Stat(filepath.Join(app, ".profile.d", "python.sh")); err != nil {
		t.Fatal(err)
	}
	base := startWeb(t, app, res.ProcessTypes["web"])
	if code, _, body := get(t, base+"/"); code != 200 || !strings.Contains(body, "Hello from Python") {
		t.Fatalf("GET /: %d %q", code, body)
	}
}

func TestExampleNode(t *testing.T) {
	app := copyApp(t, filepath.Join(examplesDir(t), "node"))
	cache := t.TempDir()
	res, out := compileApp(t, app, cache)
	if !slices.Equal(res.Buildpacks, []string{"Node.js"}) {
		t.Fatalf("buildpacks %v", res.Buildpacks)
	}
	if !strings.Contains(out, "npm ci") || !strings.Contains(out, "wrote dist/greeting.txt") {
		t.Errorf("output does not show npm ci and the build script")
	}
	if res.ProcessTypes["web"] != "npm start" {
		t.Fatalf("web = %q", res.ProcessTypes["web"])
	}
	if _, err := os.Stat(filepath.Join(cache, "npm")); err != nil {
		t.Errorf("npm cache not in CACHE_DIR: %v", err)
	}
	base := startWeb(t, app, res.ProcessTypes["web"])
	if code, _, body := get(t, base+"/"); code != 200 || !strings.Contains(body, "Hello from Node.js") {
		t.Fatalf("GET /: %d %q", code, body)
	}
}

// The Go example builds, runs, and a second build with the same cache
// compiles nothing: go install -v names every package it compiles.
func TestExampleGo(t *testing.T) {
	cache := t.TempDir()
	app := copyApp(t, filepath.Join(examplesDir(t), "go"))
	res, out := compileApp(t, app, cache)
	if !slices.Equal(res.Buildpacks, []string{"Go"}) {
		t.Fatalf("buildpacks %v", res.Buildpacks)
	}
	if res.ProcessTypes["web"] != "bin/hello-go" {
		t.Fatalf("web = %q", res.ProcessTypes["web"])
	}
	if !strings.Contains(out, "No build cache yet") || !strings.Contains(out, "       example.com/hello-go\n") {
		t.Errorf("first build: output does not show a cold build of example.com/hello-go")
	}
	for _, d := range []string{"go/build", "go/mod"} {
		if entries, err := os.ReadDir(filepath.Join(cache, d)); err != nil || (d == "go/build" && len(entries) == 0) {
			t.Errorf("CACHE_DIR/%s: %d entries, %v", d, len(entries), err)
		}
	}
	// HOME is the build directory during the build; the toolchain's own
	// state (telemetry counters in ~/.config/go) must not end up in the slug.
	if _, err := os.Stat(filepath.Join(app, ".config")); err == nil {
		t.Error("the build left .config in the app")
	}
	base := startWeb(t, app, res.ProcessTypes["web"])
	if code, _, body := get(t, base+"/"); code != 200 || !strings.Contains(body, "Hello from Go") || !strings.Contains(body, "web.test1") {
		t.Fatalf("GET /: %d %q", code, body)
	}

	app2 := copyApp(t, filepath.Join(examplesDir(t), "go"))
	_, out2 := compileApp(t, app2, cache)
	if !strings.Contains(out2, "Reusing the build cache") {
		t.Errorf("second build does not say it reused the cache")
	}
	for _, pkg := range []string{"net/http", "example.com/hello-go"} {
		if strings.Contains(out2, "       "+pkg+"\n") {
			t.Errorf("second build compiled %s again", pkg)
		}
	}
	if fi, err := os.Stat(filepath.Join(app2, "bin", "hello-go")); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("second build's binary: %v", err)
	}
}
