package build

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A BUILDPACK_URL served over git's dumb HTTP (a web server holding a
// bare repository) refuses the shallow clone tried first; the full clone
// that follows gets the buildpack, at a branch too.
func TestFetchBuildpackOverDumbHTTP(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "src")
	git := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL="+os.DevNull)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	os.MkdirAll(filepath.Join(src, "bin"), 0o755)
	os.WriteFile(filepath.Join(src, "bin", "detect"), []byte("#!/bin/sh\necho Dumb\n"), 0o755)
	git(src, "init", "-q", "-b", "main")
	git(src, "add", "-A")
	git(src, "commit", "-qm", "one")
	git(src, "checkout", "-qb", "other")
	os.WriteFile(filepath.Join(src, "bin", "compile"), []byte("#!/bin/sh\n"), 0o755)
	git(src, "add", "-A")
	git(src, "commit", "-qm", "two")
	git(root, "clone", "-q", "--bare", src, filepath.Join(root, "bp.git"))
	git(filepath.Join(root, "bp.git"), "update-server-info")
	srv := httptest.NewServer(http.FileServer(http.Dir(root)))
	defer srv.Close()

	// The shallow clone alone fails, or this test shows nothing.
	if err := runGit(context.Background(), "clone", "--quiet", "--depth", "1", "--", srv.URL+"/bp.git", filepath.Join(root, "shallow")); err == nil {
		t.Fatal("a shallow clone over dumb HTTP worked")
	}
	for _, tc := range []struct{ url, want string }{
		{srv.URL + "/bp.git", "bin/detect"},
		{srv.URL + "/bp.git#other", "bin/compile"},
	} {
		dest := filepath.Join(t.TempDir(), "bp")
		dir, name, err := fetchBuildpack(context.Background(), tc.url, "", dest)
		if err != nil {
			t.Fatalf("fetchBuildpack(%s): %v", tc.url, err)
		}
		if _, err := os.Stat(filepath.Join(dir, tc.want)); err != nil || name != "bp" {
			t.Errorf("fetchBuildpack(%s) = %s, %q: %v", tc.url, dir, name, err)
		}
	}
}
