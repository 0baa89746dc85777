package cli_test

import (
	"bufio"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestGitPushServerLostMidBuild: the server that builds a push dies
// while the build runs; git push through git-remote-pier fails saying
// the server may have been lost mid-build and to push again, not only
// git's "the remote end hung up".
func TestGitPushServerLostMidBuild(t *testing.T) {
	p := startUp(t, filepath.Join(t.TempDir(), "data"), freeUpPorts(t), hostNetwork...)
	u := newPusher(t, p)
	cli := cliUser{t, p}
	binDir := t.TempDir()
	if err := os.Symlink(pierBin, filepath.Join(binDir, "git-remote-pier")); err != nil {
		t.Fatal(err)
	}
	u.extra = []string{"PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH")}

	// A buildpack that takes its time, served over git's smart HTTP.
	bp := filepath.Join(t.TempDir(), "bp")
	for name, body := range map[string]string{
		"bin/detect":  "#!/bin/sh\necho Slow\n",
		"bin/compile": "#!/bin/sh\necho '-----> compiling slowly'\nsleep 60\n",
		"bin/release": "#!/bin/sh\necho '---'\n",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(bp, name)), 0o755)
		if err := os.WriteFile(filepath.Join(bp, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	u.must(bp, "git", "init", "-q", "-b", "main")
	u.must(bp, "git", "add", "-A")
	u.must(bp, "git", "commit", "-qm", "buildpack")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: &cgi.Handler{Path: "/usr/lib/git-core/git-http-backend",
		Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(bp), "GIT_HTTP_EXPORT_ALL=1"}}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	dir := u.checkout("hello")
	if out := u.must(dir, pierBin, "create", "slow"); !strings.Contains(out, "pier://slow") {
		t.Fatalf("create:\n%s", out)
	}
	cli.must("config:set", "-a", "slow", "BUILDPACK_URL=http://"+ln.Addr().String()+"/bp/.git")

	push := exec.Command("git", "push", "pier", "main")
	push.Dir, push.Env = dir, u.env(u.key)
	stderr, err := push.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := push.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	lines := bufio.NewScanner(stderr)
	building := false
	for lines.Scan() {
		out.WriteString(lines.Text() + "\n")
		if strings.Contains(lines.Text(), "compiling slowly") {
			building = true
			break
		}
	}
	if !building {
		push.Wait()
		t.Fatalf("the build did not start:\n%s", out.String())
	}
	// The server goes, in the middle of the build.
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	done := make(chan error, 1)
	go func() {
		for lines.Scan() {
			out.WriteString(lines.Text() + "\n")
		}
		done <- push.Wait()
	}()
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		push.Process.Kill()
		t.Fatalf("git push still running a minute after its server died:\n%s", out.String())
	}
	if err == nil || !strings.Contains(out.String(), "ended before the push did") || !strings.Contains(out.String(), "push again") {
		t.Fatalf("git push after the server was lost: %v\n%s", err, out.String())
	}
}
