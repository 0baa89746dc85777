package cliconfig

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestAppFromURL(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"ssh://git@host:2222/hello.git", "hello"},
		{"ssh://git@host/hello", "hello"},
		{"https://host/hello.git", "hello"},
		{"https://host:8443/apps/hello.git/", "hello"},
		{"https://user@host/hello.git", "hello"},
		{"git@host:hello.git", "hello"},
		{"git@host:apps/hello-2.git", "hello-2"},
		{"host:hello", "hello"},
		{"/srv/git/hello.git", "hello"},
		{"../hello.git", "hello"},
		{"./dir:with-colon/hello.git", "hello"},
		{"file:///srv/git/hello.git", "hello"},
		{"git@host:", "."},
		{"pier://hello", "hello"},
		{"pier://hello.git", "hello"},
		{"pier://prod-1/hello", "hello"},
		{"pier://prod-1/hello.git/", "hello"},
	} {
		if got := appFromURL(tc.url); got != tc.want {
			t.Errorf("appFromURL(%q) = %q, want %q", tc.url, got, tc.want)
		}
	}
}

// gitRepo makes a real checkout in a temp directory, with the remote pier
// set to url unless url is empty. Global and system git config are kept
// out so the test sees only what it set up.
func gitRepo(t *testing.T, url string) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	t.Setenv("HOME", t.TempDir())
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	dir := t.TempDir()
	git(t, dir, "init", "-q")
	if url != "" {
		git(t, dir, "remote", "add", "pier", url)
	}
	git(t, dir, "remote", "add", "origin", "https://github.com/someone/other.git")
	return dir
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestAppFromGit(t *testing.T) {
	for _, url := range []string{"ssh://git@pier.example.com:2222/hello.git", "https://pier.example.com/hello.git", "git@pier.example.com:hello.git"} {
		dir := gitRepo(t, url)
		sub := filepath.Join(dir, "src", "deep")
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{dir, sub} {
			if app, err := AppFromGit(d); err != nil || app != "hello" {
				t.Errorf("remote %s, dir %s: AppFromGit = %q, %v; want hello", url, d, app, err)
			}
		}
	}
}

func TestAppFromGitNoRemote(t *testing.T) {
	noRemote := gitRepo(t, "")
	notRepo := t.TempDir()
	for name, dir := range map[string]string{
		"no pier remote": noRemote,
		"not a repo":     notRepo,
		"no such dir":    filepath.Join(notRepo, "missing"),
		"dash dir":       "--help", // one argument to -C, never an option
	} {
		app, err := AppFromGit(dir)
		if !errors.Is(err, ErrNoGitRemote) {
			t.Errorf("%s: AppFromGit = %q, %v; want ErrNoGitRemote", name, app, err)
		}
	}
}

func TestAppFromGitBadName(t *testing.T) {
	dir := gitRepo(t, "https://host/My_App.git")
	_, err := AppFromGit(dir)
	if err == nil || errors.Is(err, ErrNoGitRemote) || !strings.Contains(err.Error(), "My_App") {
		t.Fatalf("AppFromGit = %v; want an invalid app name error", err)
	}
}

func TestResolveApp(t *testing.T) {
	repo := gitRepo(t, "ssh://git@h:2222/from-git.git")
	badRepo := gitRepo(t, "ssh://git@h:2222/Bad_Name.git")
	plain := t.TempDir()
	for _, tc := range []struct {
		name, flag, env, dir string
		want                 string
		wantIs               error
		wantErr              string
	}{
		{name: "flag wins", flag: "from-flag", env: "from-env", dir: repo, want: "from-flag"},
		{name: "env next", env: "from-env", dir: repo, want: "from-env"},
		{name: "git last", dir: repo, want: "from-git"},
		{name: "none", dir: plain, wantIs: ErrNoApp},
		{name: "bad flag", flag: "Bad", dir: repo, wantErr: "invalid"},
		{name: "bad env", env: "bad_env", dir: repo, wantErr: "PIER_APP"},
		{name: "bad remote", dir: badRepo, wantErr: "Bad_Name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string {
				if k == "PIER_APP" {
					return tc.env
				}
				return ""
			}
			got, err := ResolveApp(tc.flag, getenv, tc.dir)
			switch {
			case tc.want != "":
				if err != nil || got != tc.want {
					t.Fatalf("ResolveApp = %q, %v; want %q", got, err, tc.want)
				}
			case err == nil || got != "":
				t.Fatalf("ResolveApp = %q, %v; want an error", got, err)
			case tc.wantIs != nil && !errors.Is(err, tc.wantIs):
				t.Fatalf("ResolveApp error %v; want %v", err, tc.wantIs)
			case !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("ResolveApp error %q; want it to contain %q", err, tc.wantErr)
			}
		})
	}
	if ErrNoApp.Error() != "no app: use -a NAME, set PIER_APP, or add a git remote named pier" {
		t.Fatalf("ErrNoApp = %q", ErrNoApp)
	}
}

func TestParsePierURL(t *testing.T) {
	for _, tc := range []struct{ url, cluster, app string }{
		{"pier://hello", "", "hello"},
		{"pier://prod-1/hello", "prod-1", "hello"},
		{"pier://prod-1/hello.git", "prod-1", "hello"},
	} {
		cl, app, ok := ParsePierURL(tc.url)
		if !ok || cl != tc.cluster || app != tc.app {
			t.Errorf("ParsePierURL(%q) = %q, %q, %v; want %q, %q", tc.url, cl, app, ok, tc.cluster, tc.app)
		}
		if tc.url != PierURL(tc.cluster, tc.app) && !strings.HasSuffix(tc.url, ".git") {
			t.Errorf("PierURL(%q, %q) = %q, want %q", tc.cluster, tc.app, PierURL(tc.cluster, tc.app), tc.url)
		}
	}
	for _, bad := range []string{"https://host/hello.git", "pier://", "pier://a/b/c", "pier://Bad_Cluster/app", "pier:///app"} {
		if cl, app, ok := ParsePierURL(bad); ok {
			t.Errorf("ParsePierURL(%q) = %q, %q, want not ok", bad, cl, app)
		}
	}
}
