package cliconfig

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"path"
	"strings"

	"github.com/pierpaas/pier/api"
)

// GitRemote is the git remote whose URL names the app, as Heroku's does.
const GitRemote = "pier"

var (
	// ErrNoGitRemote means dir is not in a git checkout, the checkout has
	// no remote named pier, or git is not installed: in each case the
	// checkout names no app.
	ErrNoGitRemote = errors.New("cliconfig: no git remote named " + GitRemote)
	// ErrNoApp means no flag, environment variable or git remote names the
	// app a command is about.
	ErrNoApp = errors.New("no app: use -a NAME, set PIER_APP, or add a git remote named pier")
)

// AppFromGit returns the app named by the git remote "pier" of the checkout
// containing dir: the last path element of its URL without ".git", from
// any form git accepts (ssh://git@host:2222/hello.git,
// https://host/hello.git, git@host:hello.git, a local path). git runs
// directly, never through a shell, with dir as one argument.
func AppFromGit(dir string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("git", "-C", dir, "remote", "get-url", GitRemote)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case errors.Is(err, exec.ErrNotFound):
		return "", fmt.Errorf("%w (git is not installed)", ErrNoGitRemote)
	case errors.As(err, &exitErr):
		// git says which: "not a git repository", "No such remote 'pier'".
		if msg := firstLine(stderr.String()); msg != "" {
			return "", fmt.Errorf("%w (%s)", ErrNoGitRemote, msg)
		}
		return "", ErrNoGitRemote
	case err != nil:
		return "", fmt.Errorf("cliconfig: git: %w", err)
	}
	raw := firstLine(stdout.String())
	name := appFromURL(raw)
	if err := api.ValidateAppName(name); err != nil {
		return "", fmt.Errorf("git remote %s (%s) does not end in an app name: %w", GitRemote, raw, err)
	}
	return name, nil
}

// appFromURL takes the last path element of a git URL, without ".git" and
// trailing slashes. scp-like URLs (user@host:path) have no scheme and put
// the path after the first colon; url.Parse would take "git@host" for a
// scheme-less path, so they are recognised first, as git itself does: a
// colon before any slash.
func appFromURL(raw string) string {
	if _, app, ok := ParsePierURL(raw); ok {
		return app
	}
	p := raw
	if strings.Contains(raw, "://") {
		if u, err := url.Parse(raw); err == nil {
			p = u.Path
		}
	} else if colon := strings.IndexByte(raw, ':'); colon >= 0 && !strings.Contains(raw[:colon], "/") {
		p = raw[colon+1:]
	}
	p = strings.TrimRight(p, "/")
	return strings.TrimSuffix(path.Base(p), ".git")
}

// PierScheme is the scheme of the remotes that git pushes through pier's
// own remote helper, git-remote-pier: pier://APP, on the cluster the CLI
// would use, or pier://CLUSTER/APP, on a cluster of the config.
const PierScheme = "pier"

// PierURL is the pier:// URL of app, on the named cluster of the config,
// or on whichever the CLI uses when cluster is empty.
func PierURL(cluster, app string) string {
	if cluster == "" {
		return PierScheme + "://" + app
	}
	return PierScheme + "://" + cluster + "/" + app
}

// ParsePierURL splits a pier:// URL into its cluster (empty if it names
// none) and app; ok is false for any other URL. A trailing ".git" or
// slash is allowed, as git users type them.
func ParsePierURL(raw string) (cluster, app string, ok bool) {
	rest, found := strings.CutPrefix(raw, PierScheme+"://")
	if !found {
		return "", "", false
	}
	rest = strings.TrimSuffix(strings.TrimRight(rest, "/"), ".git")
	cluster, app, two := strings.Cut(rest, "/")
	if !two {
		cluster, app = "", cluster
	}
	if app == "" || strings.Contains(app, "/") || (two && !api.ValidID(cluster)) {
		return "", "", false
	}
	return cluster, app, true
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// ResolveApp decides which app a command is about: the -a flag, else
// PIER_APP, else the git remote of the checkout containing dir. Only the
// absence of a remote falls through to ErrNoApp; a remote whose URL names
// no valid app is an error of its own, since the user did configure it.
func ResolveApp(flag string, getenv func(string) string, dir string) (string, error) {
	if flag != "" {
		if err := api.ValidateAppName(flag); err != nil {
			return "", err
		}
		return flag, nil
	}
	if env := getenv(EnvApp); env != "" {
		if err := api.ValidateAppName(env); err != nil {
			return "", fmt.Errorf("%s: %w", EnvApp, err)
		}
		return env, nil
	}
	app, err := AppFromGit(dir)
	if errors.Is(err, ErrNoGitRemote) {
		return "", ErrNoApp
	}
	return app, err
}
