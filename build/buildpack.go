package build

import (
	"bufio"
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// builtinFS holds the built-in buildpacks. embed drops file modes, so
// extractBuiltins restores the exec bits of bin/*.
//
//go:embed buildpacks
var builtinFS embed.FS

// builtin describes one built-in buildpack: its directory under
// buildpacks/ and, for the message of a build nothing detected, what its
// bin/detect looks for.
type builtin struct {
	dir, name, looksFor string
}

// builtins are tried in this order and the first whose bin/detect exits 0
// wins. Procfile-only comes last, and static only claims an index.html no
// other buildpack's files explain, so the order only matters for apps
// that have two languages' files.
var builtins = []builtin{
	{"go", "Go", "go.mod"},
	{"nodejs", "Node.js", "package.json"},
	{"python", "Python", "requirements.txt, runtime.txt, setup.py or pyproject.toml"},
	{"static", "Static", "static.json, or index.html without a Procfile"},
	{"procfile", "Procfile", "a Procfile and none of the files above"},
}

// ErrNoBuildpack means no built-in buildpack detected the app.
var ErrNoBuildpack = errors.New("build: no buildpack detected this app")

func noBuildpackError() error {
	var b strings.Builder
	b.WriteString(" The built-in buildpacks look for:")
	for _, bp := range builtins {
		fmt.Fprintf(&b, "\n  %-9s %s", bp.name+":", bp.looksFor)
	}
	b.WriteString("\nOr name a buildpack in a .buildpacks file or the BUILDPACK_URL config var.")
	return fmt.Errorf("%w.%s", ErrNoBuildpack, b.String())
}

// buildpack is one buildpack ready to run: a directory with bin/compile.
type buildpack struct {
	dir  string
	url  string // as the user named it; "" for a built-in
	name string // what bin/detect printed, or derived from url
}

// extractBuiltins writes the embedded buildpacks under dir, one directory
// each, scripts executable.
func extractBuiltins(dir string) error {
	return fs.WalkDir(builtinFS, "buildpacks", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(name, "buildpacks")))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := builtinFS.ReadFile(name)
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o644)
		if path.Base(path.Dir(name)) == "bin" {
			mode = 0o755
		}
		return os.WriteFile(dst, b, mode)
	})
}

// readBuildpacksFile returns the buildpack URLs in the app's .buildpacks
// file, one per line (blank lines and # comments skipped), or nil when
// there is no such file.
func readBuildpacksFile(appDir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(appDir, ".buildpacks"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	var urls []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			urls = append(urls, line)
		}
	}
	if len(urls) == 0 {
		return nil, errors.New("build: .buildpacks names no buildpack")
	}
	return urls, nil
}

// fetchBuildpack makes the buildpack named by url available and returns
// its directory and a name for it if its bin/detect gives none: a
// built-in by name ("go", "heroku/go"), a copy of a local
// directory, or a git repository cloned into dest, at the
// ref after '#' if there is one.
func fetchBuildpack(ctx context.Context, url, builtinDir, dest string) (dir, name string, err error) {
	short := strings.TrimPrefix(strings.TrimPrefix(url, "heroku/"), "pier/")
	for _, bp := range builtins {
		if short == bp.dir || strings.EqualFold(short, bp.name) {
			return filepath.Join(builtinDir, bp.dir), bp.name, nil
		}
	}
	repo, ref, _ := strings.Cut(url, "#")
	if fi, err := os.Stat(repo); err == nil && fi.IsDir() && ref == "" && filepath.IsAbs(repo) {
		// A copy, as a clone would be: bin/compile may write into its own
		// directory (the export file), and a stale export from an earlier
		// build, or a write into someone's directory, would be wrong.
		if err := os.CopyFS(dest, os.DirFS(repo)); err != nil {
			return "", "", fmt.Errorf("build: copy buildpack %s: %w", url, err)
		}
		return dest, nameFromURL(url), nil
	}
	if repo == "" || strings.HasPrefix(repo, "-") || strings.HasPrefix(ref, "-") {
		return "", "", fmt.Errorf("build: buildpack %q is not a git URL or a directory", url)
	}
	if err := gitClone(ctx, repo, ref, dest); err != nil {
		return "", "", fmt.Errorf("build: fetch buildpack %s: %w", url, err)
	}
	return dest, nameFromURL(url), nil
}

// gitClone clones repo into dest with the system git: shallow, at the
// branch or tag ref if there is one, and in full when that is refused:
// git's dumb HTTP serves no shallow clones (a plain web server holding a
// repository), and a ref that is a commit needs the whole history.
func gitClone(ctx context.Context, repo, ref, dest string) error {
	clone := func(args ...string) error {
		if ref != "" {
			args = append(args, "--branch", ref)
		}
		return runGit(ctx, append(append([]string{"clone", "--quiet"}, args...), "--", repo, dest)...)
	}
	err := clone("--depth", "1")
	if err == nil {
		return nil
	}
	if rmErr := removeAll(dest); rmErr != nil {
		return rmErr
	}
	if err = clone(); err == nil || ref == "" {
		return err
	}
	if rmErr := removeAll(dest); rmErr != nil {
		return rmErr
	}
	if err := runGit(ctx, "clone", "--quiet", "--", repo, dest); err != nil {
		return err
	}
	return runGit(ctx, "-C", dest, "checkout", "--quiet", "--detach", ref, "--")
}

func runGit(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Env = append(os.Environ(),
		"GIT_TERMINAL_PROMPT=0", // fail, never wait for a password nobody will type
		// No ext:: or fd:: transports: those run commands named in the URL.
		"GIT_ALLOW_PROTOCOL=file:git:http:https:ssh",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("git %s: %w: %s", args[0], err, strings.TrimSpace(string(out)))
	}
	return nil
}

// nameFromURL names a buildpack whose bin/detect said nothing.
func nameFromURL(url string) string {
	repo, _, _ := strings.Cut(url, "#")
	base := path.Base(strings.TrimSuffix(strings.TrimSuffix(repo, "/"), ".git"))
	if base == "." || base == "/" {
		return url
	}
	return base
}
