package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/host/artifact"
	"github.com/pierpaas/pier/internal/tarball"
)

// RunJob is `pier slugbuild`, the build job: it fetches the app's build
// cache from the controller, compiles /app, uploads the slug and the new
// cache, and reports the result, all over the build's own endpoints
// (api/build.go), with the settings env returns (os.Getenv in a job).
// Output for the user goes to out. A non-nil error fails the build.
func RunJob(ctx context.Context, env func(string) string, out io.Writer) error {
	return runJob(ctx, jobConfig{appDir: SlugDir, env: env, out: out})
}

type jobConfig struct {
	appDir  string
	tempDir string // "" = os.TempDir()
	env     func(string) string
	out     io.Writer
	// retryWait is the pause before the first retry of a request.
	retryWait time.Duration
}

func runJob(ctx context.Context, cfg jobConfig) error {
	out := &lockedWriter{w: cfg.out}
	ctl, err := newController(cfg.env)
	if err != nil {
		return err
	}
	if cfg.retryWait > 0 {
		ctl.retryWait = cfg.retryWait
	}
	var config map[string]string
	if s := cfg.env(api.BuildEnvConfig); s != "" {
		if err := json.Unmarshal([]byte(s), &config); err != nil {
			return fmt.Errorf("slugbuild: %s: %w", api.BuildEnvConfig, err)
		}
	}
	work, err := os.MkdirTemp(cfg.tempDir, "pier-slugbuild-")
	if err != nil {
		return fmt.Errorf("slugbuild: %w", err)
	}
	defer removeAll(work)

	cacheDir := filepath.Join(work, "cache")
	if err := restoreCache(ctx, ctl, cacheDir, out); err != nil {
		return fmt.Errorf("slugbuild: %w", err)
	}

	res, err := Compile(ctx, Options{
		AppDir:       cfg.appDir,
		CacheDir:     cacheDir,
		Env:          config,
		BuildpackURL: cfg.env(api.BuildpackURLVar),
		Out:          out,
		TempDir:      work,
		ProcessEnv:   buildpackEnv(os.Environ()),
	})
	if err != nil {
		return err
	}

	fmt.Fprintln(out, "-----> Compressing the slug")
	slug := filepath.Join(work, "slug.tar.gz")
	sum, size, err := packFile(ctx, cfg.appDir, slug, func(msg string) { fmt.Fprintf(out, "       Warning: %s\n", msg) })
	if err != nil {
		return fmt.Errorf("slugbuild: %w", err)
	}
	fmt.Fprintf(out, "       Slug is %s, sha256 %s\n", tarball.HumanSize(size), sum)
	if err := ctl.putFile(ctx, "/slug", slug); err != nil {
		return fmt.Errorf("slugbuild: upload the slug: %w", err)
	}
	saveCache(ctx, ctl, cacheDir, filepath.Join(work, "cache.tar.gz"), out)

	body, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("slugbuild: %w", err)
	}
	if err := ctl.postJSON(ctx, "/result", body); err != nil {
		return fmt.Errorf("slugbuild: report the result: %w", err)
	}
	return nil
}

// restoreCache unpacks the app's last build cache into dir, or leaves dir
// empty. A cache is an optimisation: when it cannot be had, the build
// goes on without it rather than failing, unless the controller refused
// us, which the uploads would run into as well.
func restoreCache(ctx context.Context, ctl *controller, dir string, out io.Writer) error {
	err := ctl.get(ctx, "/cache", func(r io.Reader) error {
		fmt.Fprintln(out, "-----> Restoring the build cache")
		return artifact.Extract(r, dir, artifact.Limits{})
	})
	switch {
	case err == nil:
		return nil
	case refused(err):
		return fmt.Errorf("fetch the build cache: %w", err)
	case errors.Is(err, errNotFound):
		fmt.Fprintln(out, "-----> No build cache yet")
	default:
		fmt.Fprintf(out, "       Warning: the build cache could not be restored, building without it: %v\n", err)
	}
	removeAll(dir)
	return os.Mkdir(dir, 0o755)
}

// saveCache uploads dir as the next build's cache; like restoreCache, it
// only warns when it cannot.
func saveCache(ctx context.Context, ctl *controller, dir, file string, out io.Writer) {
	fmt.Fprintln(out, "-----> Saving the build cache")
	_, size, err := packFile(ctx, dir, file, func(string) {})
	if err == nil {
		err = ctl.putFile(ctx, "/cache", file)
	}
	if err != nil {
		fmt.Fprintf(out, "       Warning: the build cache was not saved, the next build starts without it: %v\n", err)
		return
	}
	fmt.Fprintf(out, "       Cache is %s\n", tarball.HumanSize(size))
}

// packFile packs dir into a new file, so that an upload knows its length
// and can be retried.
func packFile(ctx context.Context, dir, file string, warn func(string)) (string, int64, error) {
	f, err := os.Create(file)
	if err != nil {
		return "", 0, err
	}
	sum, size, err := packSlug(ctx, dir, f, warn)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return sum, size, err
}
