package build

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/internal/procfile"
)

// Options say what to build and where.
type Options struct {
	// AppDir is the source tree, compiled in place: BUILD_DIR. It becomes
	// the slug, and is /app in a build job.
	AppDir string
	// CacheDir is CACHE_DIR, kept between builds of the app. It is created
	// if missing.
	CacheDir string
	// Env holds the app's config vars, written one file per variable into
	// a fresh ENV_DIR, as the buildpack API says; they are not put into
	// the buildpacks' environment.
	Env map[string]string
	// BuildpackURL names the buildpack to use instead of detection: a git
	// URL with an optional #ref, a local directory, or a built-in's name.
	// A .buildpacks file in AppDir wins over it; when empty,
	// Env["BUILDPACK_URL"] is used.
	BuildpackURL string
	// Out receives the build's output, to be shown to the user.
	Out io.Writer
	// TempDir is where buildpacks are fetched and ENV_DIR is written;
	// "" means os.TempDir().
	TempDir string
	// ProcessEnv is the environment buildpacks run with (plus HOME set to
	// AppDir); nil means this process's environment without the build's
	// credentials.
	ProcessEnv []string
}

// Compile runs the buildpack API over opts.AppDir: .slugignore, then the
// buildpacks from .buildpacks, BUILDPACK_URL or detection, each one's
// bin/compile in order, then their bin/release, and returns the process
// types (Procfile over the buildpacks' defaults) and config vars.
func Compile(ctx context.Context, opts Options) (api.BuildResult, error) {
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	out := &lockedWriter{w: opts.Out}
	appDir, err := filepath.Abs(opts.AppDir)
	if err != nil {
		return api.BuildResult{}, fmt.Errorf("build: %w", err)
	}
	if fi, err := os.Stat(appDir); err != nil || !fi.IsDir() {
		return api.BuildResult{}, fmt.Errorf("build: app directory %s: not a directory (%v)", appDir, err)
	}
	cacheDir, err := filepath.Abs(opts.CacheDir)
	if err != nil || opts.CacheDir == "" {
		return api.BuildResult{}, fmt.Errorf("build: no cache directory given")
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return api.BuildResult{}, fmt.Errorf("build: cache directory: %w", err)
	}
	work, err := os.MkdirTemp(opts.TempDir, "pier-compile-")
	if err != nil {
		return api.BuildResult{}, fmt.Errorf("build: %w", err)
	}
	defer removeAll(work)

	// app.json is read before .slugignore can remove it, and before a
	// long compile, so that a mistake in it fails the push at once.
	manifest, err := readAppJSON(appDir)
	if err != nil {
		return api.BuildResult{}, err
	}
	if n, err := applySlugignore(appDir); err != nil {
		return api.BuildResult{}, err
	} else if n > 0 {
		fmt.Fprintf(out, "-----> Removed %d files and directories matching .slugignore\n", n)
	}
	// A Procfile that cannot be read fails the build now rather than after
	// a long compile; it is read again afterwards, since a buildpack may
	// write one.
	if _, err := readProcfile(appDir); err != nil {
		return api.BuildResult{}, err
	}
	envDir := filepath.Join(work, "env")
	if err := writeEnvDir(envDir, opts.Env, out); err != nil {
		return api.BuildResult{}, err
	}
	builtinDir := filepath.Join(work, "builtin")
	if err := extractBuiltins(builtinDir); err != nil {
		return api.BuildResult{}, fmt.Errorf("build: extract built-in buildpacks: %w", err)
	}
	env := opts.ProcessEnv
	if env == nil {
		env = buildpackEnv(os.Environ())
	}
	env = setEnv(env, "HOME", appDir)
	env = setEnv(env, "STACK", "pier")

	c := &compiler{ctx: ctx, appDir: appDir, cacheDir: cacheDir, envDir: envDir, env: env, out: out}
	bps, err := c.buildpacks(opts, builtinDir, work)
	if err != nil {
		return api.BuildResult{}, err
	}
	var exports []string // bin/compile's export files, for the buildpacks after it
	for _, bp := range bps {
		if err := c.compile(bp, exports); err != nil {
			return api.BuildResult{}, err
		}
		if e := filepath.Join(bp.dir, "export"); isFile(e) {
			exports = append(exports, e)
		}
	}
	res := api.BuildResult{ProcessTypes: map[string]string{}}
	defaults := map[string]string{}
	for _, bp := range bps {
		rel, err := c.release(bp)
		if err != nil {
			return api.BuildResult{}, err
		}
		// Later buildpacks win, as with Heroku's multi-buildpack builds.
		maps.Copy(defaults, rel.processTypes)
		if len(rel.configVars) > 0 && res.ConfigVars == nil {
			res.ConfigVars = map[string]string{}
		}
		maps.Copy(res.ConfigVars, rel.configVars)
		res.Buildpacks = append(res.Buildpacks, bp.name)
	}
	pf, err := readProcfile(appDir)
	if err != nil {
		return api.BuildResult{}, err
	}
	maps.Copy(res.ProcessTypes, defaults)
	maps.Copy(res.ProcessTypes, pf)
	fmt.Fprintln(out, "-----> Discovering process types")
	if pf != nil {
		fmt.Fprintf(out, "       Procfile declares types     -> %s\n", typeList(pf))
	}
	fmt.Fprintf(out, "       Default types for buildpack -> %s\n", typeList(defaults))
	if manifest != nil {
		if err := checkAppJSON(manifest, res.ProcessTypes, out); err != nil {
			return api.BuildResult{}, err
		}
		res.AppJSON = manifest.Text()
	}
	return res, nil
}

type compiler struct {
	ctx                      context.Context
	appDir, cacheDir, envDir string
	env                      []string
	out                      io.Writer
}

// buildpacks returns the buildpacks to run: those the app names, or the
// first built-in that detects it.
func (c *compiler) buildpacks(opts Options, builtinDir, work string) ([]buildpack, error) {
	urls, err := readBuildpacksFile(c.appDir)
	if err != nil {
		return nil, err
	}
	if urls == nil {
		url := opts.BuildpackURL
		if url == "" {
			url = opts.Env[api.BuildpackURLVar]
		}
		if url = strings.TrimSpace(url); url != "" {
			urls = []string{url}
		}
	}
	if urls == nil {
		for _, b := range builtins {
			bp := buildpack{dir: filepath.Join(builtinDir, b.dir)}
			if name, ok, err := c.detect(bp); err != nil {
				return nil, err
			} else if ok {
				bp.name = cmp.Or(name, b.name)
				return []buildpack{bp}, nil
			}
		}
		return nil, noBuildpackError()
	}
	var bps []buildpack
	for i, url := range urls {
		fmt.Fprintf(c.out, "-----> Fetching buildpack %s\n", url)
		dir, fallback, err := fetchBuildpack(c.ctx, url, builtinDir, filepath.Join(work, fmt.Sprintf("buildpack-%d", i)))
		if err != nil {
			return nil, err
		}
		if !isFile(filepath.Join(dir, "bin", "compile")) {
			return nil, fmt.Errorf("build: buildpack %s has no bin/compile", url)
		}
		bp := buildpack{dir: dir, url: url}
		// A buildpack the app names runs whatever its bin/detect says;
		// detect only gives it its name.
		name, ok, err := c.detect(bp)
		if err != nil {
			return nil, err
		}
		if !ok || name == "" {
			name = fallback
		}
		bp.name = name
		bps = append(bps, bp)
	}
	return bps, nil
}

// detect runs bin/detect BUILD_DIR: exit 0 means the buildpack applies,
// and its first line of output is its name.
func (c *compiler) detect(bp buildpack) (string, bool, error) {
	script := filepath.Join(bp.dir, "bin", "detect")
	if !isFile(script) {
		return "", false, nil
	}
	var stdout bytes.Buffer
	cmd := command(c.ctx, c.appDir, c.env, script, c.appDir)
	cmd.Stdout, cmd.Stderr = &stdout, io.Discard
	err := cmd.Run()
	if err := c.ctx.Err(); err != nil {
		return "", false, fmt.Errorf("build: %w", err)
	}
	if err != nil {
		return "", false, nil
	}
	name, _, _ := strings.Cut(strings.TrimSpace(stdout.String()), "\n")
	return strings.TrimSpace(name), true, nil
}

// exportPrelude sources the export files of the buildpacks that ran
// before (Heroku's multi-buildpack convention), then runs bin/compile. It
// is constant: the files and the script come as arguments.
const exportPrelude = `n=$1; shift
while [ "$n" -gt 0 ]; do . "$1" || exit 1; shift; n=$((n-1)); done
exec "$@"`

func (c *compiler) compile(bp buildpack, exports []string) error {
	fmt.Fprintf(c.out, "-----> Compiling with the %s buildpack\n", bp.name)
	script := filepath.Join(bp.dir, "bin", "compile")
	args := []string{c.appDir, c.cacheDir, c.envDir}
	name := script
	if len(exports) > 0 {
		name = "/bin/bash"
		args = append(append(append([]string{"-c", exportPrelude, "compile", fmt.Sprint(len(exports))}, exports...), script), args...)
	}
	tail := newTailWriter(12)
	cmd := command(c.ctx, c.appDir, c.env, name, args...)
	cmd.Stdout = io.MultiWriter(c.out, tail)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Run(); err != nil {
		if cerr := c.ctx.Err(); cerr != nil {
			return fmt.Errorf("build: %s buildpack: %w", bp.name, cerr)
		}
		return &CompileError{Buildpack: bp.name, Err: err, Output: tail.String()}
	}
	return nil
}

// CompileError is a bin/compile that failed. Output is the end of what it
// printed, which is where buildpacks explain themselves.
type CompileError struct {
	Buildpack string
	Err       error
	Output    string
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("build: %s buildpack failed to compile the app (%v):\n%s", e.Buildpack, e.Err, e.Output)
}

func (e *CompileError) Unwrap() error { return e.Err }

func (c *compiler) release(bp buildpack) (release, error) {
	script := filepath.Join(bp.dir, "bin", "release")
	if !isFile(script) {
		return release{}, nil
	}
	var stdout bytes.Buffer
	cmd := command(c.ctx, c.appDir, c.env, script, c.appDir)
	cmd.Stdout, cmd.Stderr = &stdout, c.out
	if err := cmd.Run(); err != nil {
		return release{}, fmt.Errorf("build: %s buildpack: bin/release: %w", bp.name, err)
	}
	rel, err := parseRelease(stdout.Bytes())
	if err != nil {
		return release{}, fmt.Errorf("build: %s buildpack: bin/release: %w", bp.name, err)
	}
	return rel, nil
}

// writeEnvDir writes ENV_DIR: one file per config var, named after it.
// Names that cannot be file names are left out with a warning.
func writeEnvDir(dir string, env map[string]string, out io.Writer) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("build: ENV_DIR: %w", err)
	}
	for k, v := range env {
		if k == "" || k == "." || k == ".." || strings.ContainsAny(k, "/\x00") {
			fmt.Fprintf(out, "       Warning: config var %q cannot be passed to buildpacks\n", k)
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o600); err != nil {
			return fmt.Errorf("build: ENV_DIR: %w", err)
		}
	}
	return nil
}

// buildpackEnv is env without what only the build job itself may see: the
// build token and the controller's address. A buildpack may be anyone's
// code.
func buildpackEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case api.BuildEnvToken, api.BuildEnvURL, api.BuildEnvCA, api.BuildEnvConfig:
		default:
			out = append(out, kv)
		}
	}
	return out
}

func readProcfile(appDir string) (procfile.Procfile, error) {
	f, err := os.Open(filepath.Join(appDir, "Procfile"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	defer f.Close()
	pf, err := procfile.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	return pf, nil
}

func typeList(m map[string]string) string {
	if len(m) == 0 {
		return "(none)"
	}
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}

func isFile(name string) bool {
	fi, err := os.Stat(name)
	return err == nil && fi.Mode().IsRegular()
}
