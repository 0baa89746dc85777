package build

import (
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A buildpack that records its arguments and config vars, so tests can
// see that the API was followed. NAME is replaced per buildpack.
var recordingBuildpack = map[string]string{
	"bin/detect": "#!/bin/sh\necho NAME\n",
	"bin/compile": `#!/bin/bash
set -e
build=$1 cache=$2 env=$3
echo "-----> NAME compiling"
echo "NAME" >>"$build/compiled-by"
echo "$(cat "$env/GREETING" 2>/dev/null)" >"$build/greeting-NAME"
echo "${EXPORTED:-unset}" >"$build/exported-NAME"
echo "seen" >"$cache/NAME"
echo "export EXPORTED=from-NAME" >"$(dirname "$0")/../export"
`,
	"bin/release": "#!/bin/sh\nprintf -- '---\\nconfig_vars:\\n  FROM: NAME\\n  PORT: 5000\\ndefault_process_types:\\n  web: ./NAME-web\\n  worker: NAME-worker\\n'\n",
}

func makeBuildpack(t *testing.T, dir, name string, files map[string]string) {
	t.Helper()
	m := map[string]string{}
	for k, v := range files {
		m[k] = strings.ReplaceAll(v, "NAME", name)
	}
	writeFiles(t, dir, m)
}

// gitRepo makes dir a git repository with one commit on branch main.
func gitRepo(t *testing.T, dir string) {
	t.Helper()
	for _, args := range [][]string{
		{"init", "--quiet", "--initial-branch=main"},
		{"add", "."},
		{"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "--quiet", "-m", "buildpack"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
}

func TestCustomBuildpackFromGit(t *testing.T) {
	bp := t.TempDir()
	makeBuildpack(t, bp, "custom", recordingBuildpack)
	gitRepo(t, bp)
	// The app would be detected as Go: the custom buildpack must win.
	app := t.TempDir()
	writeFiles(t, app, map[string]string{"go.mod": "module x\n", "Procfile": "worker: ./override\n"})
	var out syncBuffer
	res, err := Compile(context.Background(), Options{
		AppDir: app, CacheDir: t.TempDir(), Out: &out, TempDir: t.TempDir(),
		Env: map[string]string{"GREETING": "hi there", "BUILDPACK_URL": "file://" + bp + "#main"},
	})
	if err != nil {
		t.Fatalf("Compile: %v\n%s", err, out.String())
	}
	if !slices.Equal(res.Buildpacks, []string{"custom"}) {
		t.Errorf("buildpacks %v", res.Buildpacks)
	}
	want := map[string]string{"web": "./custom-web", "worker": "./override"}
	if !maps.Equal(res.ProcessTypes, want) {
		t.Errorf("process types %v, want %v (Procfile over defaults)", res.ProcessTypes, want)
	}
	if !maps.Equal(res.ConfigVars, map[string]string{"FROM": "custom", "PORT": "5000"}) {
		t.Errorf("config vars %v", res.ConfigVars)
	}
	if b, _ := os.ReadFile(filepath.Join(app, "greeting-custom")); string(b) != "hi there\n" {
		t.Errorf("ENV_DIR/GREETING seen by bin/compile: %q", b)
	}
	if !strings.Contains(out.String(), "-----> custom compiling") {
		t.Errorf("output:\n%s", out.String())
	}
}

// .buildpacks runs every buildpack in order, each after the previous
// one's export file, and the last one's defaults win.
func TestBuildpacksFile(t *testing.T) {
	one, two := t.TempDir(), t.TempDir()
	makeBuildpack(t, one, "one", recordingBuildpack)
	makeBuildpack(t, two, "two", recordingBuildpack)
	app, cache := t.TempDir(), t.TempDir()
	writeFiles(t, app, map[string]string{".buildpacks": "# mine\n" + one + "\n\n" + two + "\n"})
	var out syncBuffer
	res, err := Compile(context.Background(), Options{AppDir: app, CacheDir: cache, Out: &out, TempDir: t.TempDir(), BuildpackURL: "ignored-when-.buildpacks-exists"})
	if err != nil {
		t.Fatalf("Compile: %v\n%s", err, out.String())
	}
	if !slices.Equal(res.Buildpacks, []string{"one", "two"}) {
		t.Errorf("buildpacks %v", res.Buildpacks)
	}
	if b, _ := os.ReadFile(filepath.Join(app, "compiled-by")); string(b) != "one\ntwo\n" {
		t.Errorf("compiled-by %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(app, "exported-two")); string(b) != "from-one\n" {
		t.Errorf("second buildpack saw EXPORTED=%q, want the first one's export", b)
	}
	if res.ProcessTypes["web"] != "./two-web" || res.ConfigVars["FROM"] != "two" {
		t.Errorf("result %+v", res)
	}
	for _, f := range []string{"one", "two"} {
		if _, err := os.Stat(filepath.Join(cache, f)); err != nil {
			t.Errorf("CACHE_DIR: %v", err)
		}
	}
}

func TestBuiltinByName(t *testing.T) {
	app := t.TempDir()
	writeFiles(t, app, map[string]string{"index.html": "x", "Procfile": "web: true\n"})
	res, err := Compile(context.Background(), Options{AppDir: app, CacheDir: t.TempDir(), TempDir: t.TempDir(), BuildpackURL: "heroku/static"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Buildpacks, []string{"Static"}) || res.ProcessTypes["web"] != "true" {
		t.Errorf("result %+v", res)
	}
}

func TestCompileFailure(t *testing.T) {
	bp := t.TempDir()
	writeFiles(t, bp, map[string]string{
		"bin/compile": "#!/bin/sh\necho '-----> trying'\necho ' !     the frobnicator is missing' >&2\nexit 3\n",
	})
	var out syncBuffer
	_, err := Compile(context.Background(), Options{AppDir: t.TempDir(), CacheDir: t.TempDir(), Out: &out, TempDir: t.TempDir(), BuildpackURL: bp})
	var ce *CompileError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a *CompileError", err)
	}
	if !strings.Contains(err.Error(), "the frobnicator is missing") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("error does not carry the buildpack's message: %v", err)
	}
	if !strings.Contains(out.String(), "the frobnicator is missing") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestGoCompileFailure(t *testing.T) {
	app := t.TempDir()
	writeFiles(t, app, map[string]string{"go.mod": "module broken\n\ngo 1.22\n", "main.go": "package main\n\nfunc main() { undefinedThing() }\n"})
	_, err := Compile(context.Background(), Options{AppDir: app, CacheDir: t.TempDir(), TempDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "undefined: undefinedThing") {
		t.Fatalf("err = %v, want the compiler's message", err)
	}
}

func TestNoBuildpackDetected(t *testing.T) {
	app := t.TempDir()
	writeFiles(t, app, map[string]string{"README": "nothing to run"})
	_, err := Compile(context.Background(), Options{AppDir: app, CacheDir: t.TempDir(), TempDir: t.TempDir()})
	if !errors.Is(err, ErrNoBuildpack) {
		t.Fatalf("err = %v", err)
	}
	t.Logf("the message:\n%v", err)
	for _, s := range []string{"go.mod", "package.json", "requirements.txt", "static.json", "Procfile", "BUILDPACK_URL"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("message does not mention %s:\n%v", s, err)
		}
	}
}

func TestPythonIndexUnreachable(t *testing.T) {
	app := t.TempDir()
	writeFiles(t, app, map[string]string{"requirements.txt": "surely-not-a-package==1.0\n", "app.py": "print(1)\n"})
	env := append(buildpackEnv(os.Environ()), "PIP_INDEX_URL=http://127.0.0.1:9/simple", "PIP_RETRIES=0", "PIP_FIND_LINKS=", "PIP_NO_INDEX=")
	_, err := Compile(context.Background(), Options{AppDir: app, CacheDir: t.TempDir(), TempDir: t.TempDir(), ProcessEnv: env})
	if err == nil || !strings.Contains(err.Error(), "package index (http://127.0.0.1:9/simple) is reachable") {
		t.Fatalf("err = %v", err)
	}
}

func TestSlugignore(t *testing.T) {
	app := t.TempDir()
	writeFiles(t, app, map[string]string{
		".slugignore":        "# big things\n*.psd\n/docs\nspec/\nsub/only.txt\n",
		"Procfile":           "web: true\n",
		"art/logo.psd":       "x",
		"logo.psd":           "x",
		"docs/a.md":          "x",
		"lib/docs/keep.md":   "x", // /docs is anchored
		"spec/a_spec.rb":     "x",
		"lib/spec/b_spec.rb": "x", // spec/ matches at any depth
		"spec.txt":           "x", // a file, not the spec/ directory
		"sub/only.txt":       "x",
		"other/sub/only.txt": "x", // anchored
		"keep.txt":           "x",
	})
	var out syncBuffer
	if _, err := Compile(context.Background(), Options{AppDir: app, CacheDir: t.TempDir(), Out: &out, TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	gone := []string{"art/logo.psd", "logo.psd", "docs", "spec", "lib/spec", "sub/only.txt"}
	kept := []string{"lib/docs/keep.md", "spec.txt", "other/sub/only.txt", "keep.txt", "Procfile"}
	for _, f := range gone {
		if _, err := os.Lstat(filepath.Join(app, f)); !os.IsNotExist(err) {
			t.Errorf("%s was not removed (%v)", f, err)
		}
	}
	for _, f := range kept {
		if _, err := os.Lstat(filepath.Join(app, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if !strings.Contains(out.String(), "Removed 6 files and directories matching .slugignore") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestParseRelease(t *testing.T) {
	rel, err := parseRelease([]byte("---\naddons: []\nconfig_vars:\n  PATH: /app/bin:/usr/bin\n  WORKERS: 4\n  DEBUG: false\ndefault_process_types:\n  web: bin/web --port $PORT\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(rel.processTypes, map[string]string{"web": "bin/web --port $PORT"}) ||
		!maps.Equal(rel.configVars, map[string]string{"PATH": "/app/bin:/usr/bin", "WORKERS": "4", "DEBUG": "false"}) {
		t.Errorf("got %+v", rel)
	}
	for _, bad := range []string{"default_process_types:\n  Web_1: x\n", "default_process_types:\n  web: {a: b}\n", "default_process_types: [x\n"} {
		if _, err := parseRelease([]byte(bad)); err == nil {
			t.Errorf("parseRelease(%q) accepted", bad)
		}
	}
	if rel, err := parseRelease(nil); err != nil || len(rel.processTypes) != 0 {
		t.Errorf("empty release: %+v %v", rel, err)
	}
}

// A broken Procfile fails the build before any buildpack runs.
func TestBadProcfileFailsFirst(t *testing.T) {
	bp, app := t.TempDir(), t.TempDir()
	writeFiles(t, bp, map[string]string{"bin/compile": "#!/bin/sh\ntouch \"$1/compiled\"\n"})
	writeFiles(t, app, map[string]string{"Procfile": "web npm start\n"})
	_, err := Compile(context.Background(), Options{AppDir: app, CacheDir: t.TempDir(), TempDir: t.TempDir(), BuildpackURL: bp})
	if err == nil || !strings.Contains(err.Error(), "Procfile line 1") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(app, "compiled")); err == nil {
		t.Error("the buildpack ran")
	}
}
