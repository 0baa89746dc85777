package gitreceive

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestPushFetch is the whole life of an app's repository, over each
// transport: a first push builds the right tree with live output, a
// one-line change pushes incrementally, a failing build fails the push
// and leaves the branch, and clone and fetch work.
func TestPushFetch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		remote func(e *env) string
		pusher string
	}{
		{"ssh", func(e *env) string { return e.sshURL("myapp") }, "ssh:SHA256:"},
		{"ssh-url", func(e *env) string { return e.sshURLAbs("myapp") }, "ssh:SHA256:"},
		{"http", func(e *env) string { return e.httpRepoURL("myapp", e.auth.apiKey) }, "http:api-key"},
		{"https-h2", func(e *env) string { return e.httpsRepoURL("myapp", e.auth.apiKey) }, "http:api-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			remote := tc.remote(e)
			files := map[string]string{"README": "hello\n", "web/main.txt": "v1\n"}
			w := e.workRepo(files)
			head1 := e.run(w, "rev-parse", "HEAD")

			stderr, err := e.pushLive(w, remote, "main")
			if err != nil {
				t.Fatalf("first push: %v\n%s", err, stderr)
			}
			mustContain(t, "first push", stderr, "remote: -----> building myapp at "+head1[:7],
				"remote:        file web/main.txt", "remote: the pusher saw it", "remote: -----> released")
			b := e.b.last(t)
			if b.App != "myapp" || b.Commit != head1 || b.Ref != "refs/heads/main" || !strings.HasPrefix(b.Pusher, tc.pusher) {
				t.Errorf("build request %+v", b.BuildRequest)
			}
			if !maps.Equal(b.files, files) {
				t.Errorf("built tree %v, want %v", b.files, files)
			}
			if got := e.serverRef("myapp", "refs/heads/main"); got != head1 {
				t.Errorf("server main = %q, want %s", got, head1)
			}

			// Incremental: only the change travels, and the build sees the
			// whole new tree.
			head2 := e.commit(w, map[string]string{"web/main.txt": "v2\n"})
			if stderr, err := e.pushLive(w, remote, "main"); err != nil {
				t.Fatalf("second push: %v\n%s", err, stderr)
			}
			files["web/main.txt"] = "v2\n"
			if b := e.b.last(t); b.Commit != head2 || !maps.Equal(b.files, files) {
				t.Errorf("second build %s %v", b.Commit, b.files)
			}
			if got := e.serverRef("myapp", "refs/heads/main"); got != head2 {
				t.Errorf("server main = %q, want %s", got, head2)
			}

			// A failing build fails the push, says why, and main stays.
			e.commit(w, map[string]string{"FAIL": "broken on purpose\n"})
			stderr, err = e.pushLive(w, remote, "main")
			if err == nil {
				t.Fatalf("push of a failing build succeeded:\n%s", stderr)
			}
			mustContain(t, "failed push", stderr, "remote: the pusher saw it",
				"Push rejected: the tree holds FAIL: broken on purpose", "pre-receive hook declined")
			if got := e.serverRef("myapp", "refs/heads/main"); got != head2 {
				t.Errorf("after a failed build, server main = %q, want %s", got, head2)
			}
			if n := len(e.b.all()); n != 3 {
				t.Errorf("%d builds, want 3", n)
			}

			// Clone and fetch (upload-pack) see what was accepted.
			clone := filepath.Join(t.TempDir(), "clone")
			e.run(w, "clone", "-q", remote, clone)
			if got, _ := os.ReadFile(filepath.Join(clone, "web/main.txt")); string(got) != "v2\n" {
				t.Errorf("clone has web/main.txt %q", got)
			}
			if _, err := os.Stat(filepath.Join(clone, "FAIL")); err == nil {
				t.Error("the clone has the rejected commit")
			}
			e.run(w, "fetch", "-q", remote, "main")
			if got := e.run(w, "rev-parse", "FETCH_HEAD"); got != head2 {
				t.Errorf("fetched %s, want %s", got, head2)
			}
			if e.b.overlapped() {
				t.Error("builds overlapped")
			}
		})
	}
}

// TestPushMaster builds master too, and makes HEAD follow it so clones
// check it out.
func TestPushMaster(t *testing.T) {
	e := newEnv(t)
	w := e.workRepo(map[string]string{"a": "1\n"})
	e.run(w, "branch", "-m", "master")
	if out, err := e.git(w, "push", e.sshURL("myapp"), "master").CombinedOutput(); err != nil {
		t.Fatalf("push master: %v\n%s", err, out)
	}
	if b := e.b.last(t); b.Ref != "refs/heads/master" {
		t.Errorf("built %s", b.Ref)
	}
	clone := filepath.Join(t.TempDir(), "clone")
	e.run(w, "clone", "-q", e.sshURL("myapp"), clone)
	if got, _ := os.ReadFile(filepath.Join(clone, "a")); string(got) != "1\n" {
		t.Errorf("the clone checked out a = %q", got)
	}
}

// TestPusherGoesAway: when the pusher disappears mid-build, the build's
// context ends, the branch stays, and the next push goes through.
func TestPusherGoesAway(t *testing.T) {
	e := newEnv(t)
	w := e.workRepo(map[string]string{"a": "1\n"})
	cancelled, giveUp := make(chan struct{}), make(chan struct{})
	e.b.setDuring(func(ctx context.Context, req BuildRequest, out io.Writer) error {
		for {
			fmt.Fprintln(out, "compiling...")
			select {
			case <-ctx.Done():
				close(cancelled)
				return ctx.Err()
			case <-giveUp:
				return errors.New("not cancelled")
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	cmd := e.git(w, "push", e.sshURL("myapp"), "main")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() && !strings.Contains(sc.Text(), "compiling...") {
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // git and its ssh
	cmd.Wait()
	select {
	case <-cancelled:
	case <-time.After(20 * time.Second):
		close(giveUp)
		t.Fatal("the build went on after its pusher went away")
	}
	e.b.setDuring(nil)
	if got := e.serverRef("myapp", "refs/heads/main"); got != "" {
		t.Errorf("main = %s after an abandoned push", got)
	}
	if out, err := e.git(w, "push", e.sshURL("myapp"), "main").CombinedOutput(); err != nil {
		t.Fatalf("push after an abandoned one: %v\n%s", err, out)
	}
}

// TestHTTPGzipBody: git gzips big request bodies; a protocol v2 ls-refs
// sent that way is answered.
func TestHTTPGzipBody(t *testing.T) {
	e := newEnv(t)
	w := e.workRepo(map[string]string{"a": "1\n"})
	head := e.run(w, "rev-parse", "HEAD")
	if out, err := e.git(w, "push", e.sshURL("myapp"), "main").CombinedOutput(); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	var body bytes.Buffer
	gz := gzip.NewWriter(&body)
	io.WriteString(gz, "0014command=ls-refs\n0000")
	gz.Close()
	req, _ := http.NewRequest("POST", e.httpURL+"/git/myapp.git/git-upload-pack", &body)
	req.SetBasicAuth("git", e.auth.apiKey)
	req.Header.Set("Content-Type", "application/x-git-upload-pack-request")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Git-Protocol", "version=2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-git-upload-pack-result" {
		t.Fatalf("%d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), got)
	}
	mustContain(t, "ls-refs", string(got), head+" refs/heads/main")
}

// TestPushRefusedRefs: only main and master build; other branches, tags
// and deletions are refused with a reason, and nothing moves.
func TestPushRefusedRefs(t *testing.T) {
	e := newEnv(t)
	w := e.workRepo(map[string]string{"a": "1\n"})
	head := e.run(w, "rev-parse", "HEAD")
	if out, err := e.git(w, "push", e.sshURL("myapp"), "main").CombinedOutput(); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	e.run(w, "tag", "v1")
	for _, tc := range []struct {
		refspec, want string
	}{
		{"main:feature", "pier builds only the main or master branch, not refs/heads/feature"},
		{"v1", "pier builds only the main or master branch, not refs/tags/v1"},
		{":main", "refs/heads/main cannot be deleted"},
	} {
		for _, remote := range []string{e.sshURL("myapp"), e.httpRepoURL("myapp", e.auth.apiKey)} {
			out, err := e.git(w, "push", remote, tc.refspec).CombinedOutput()
			if err == nil {
				t.Errorf("push %s to %s succeeded:\n%s", tc.refspec, remote, out)
			}
			mustContain(t, "push "+tc.refspec, string(out), tc.want)
		}
	}
	if got := e.serverRef("myapp", "refs/heads/main"); got != head {
		t.Errorf("main = %q, want %s", got, head)
	}
	for _, ref := range []string{"refs/heads/feature", "refs/tags/v1"} {
		if got := e.serverRef("myapp", ref); got != "" {
			t.Errorf("%s was created", ref)
		}
	}
	if n := len(e.b.all()); n != 1 {
		t.Errorf("%d builds, want 1", n)
	}
}

// TestConcurrentPushesSSH: a second push to an app waits, says so, and
// runs after the first; builds never overlap.
func TestConcurrentPushesSSH(t *testing.T) {
	e := newEnv(t)
	a := e.workRepo(map[string]string{"who": "a\n"})
	b := e.workRepo(map[string]string{"who": "b\n"})
	headB := e.run(b, "rev-parse", "HEAD")
	started, release := make(chan struct{}), make(chan struct{})
	e.b.setDuring(func(ctx context.Context, req BuildRequest, out io.Writer) error {
		if req.Commit == headB {
			return nil
		}
		close(started)
		select {
		case <-release:
			return nil
		case <-time.After(30 * time.Second):
			return errors.New("not released")
		}
	})
	errA := make(chan error, 1)
	go func() {
		out, err := e.git(a, "push", e.sshURL("myapp"), "main").CombinedOutput()
		if err != nil {
			err = errors.New(err.Error() + "\n" + string(out))
		}
		errA <- err
	}()
	select {
	case <-started:
	case err := <-errA:
		t.Fatalf("first push ended early: %v", err)
	}
	var once = make(chan struct{})
	stderr, err := e.pushWatch(e.key, b, func(line string) {
		if strings.Contains(line, "waiting for another push to myapp") {
			select {
			case <-once:
			default:
				close(once)
				close(release)
			}
		}
	}, "--force", e.sshURL("myapp"), "main")
	if err != nil {
		t.Fatalf("second push: %v\n%s", err, stderr)
	}
	if err := <-errA; err != nil {
		t.Fatalf("first push: %v", err)
	}
	if got := e.serverRef("myapp", "refs/heads/main"); got != headB {
		t.Errorf("main = %s, want the second push's %s", got, headB)
	}
	if e.b.overlapped() {
		t.Error("builds of one app overlapped")
	}
}

// TestConcurrentPushesStale: over HTTP the refs are advertised before
// the push takes the lock, so a push that waited may be based on a
// branch that has since moved; it is refused before anything builds.
func TestConcurrentPushesStale(t *testing.T) {
	e := newEnv(t)
	a := e.workRepo(map[string]string{"who": "a\n"})
	b := e.workRepo(map[string]string{"who": "b\n"})
	headA := e.run(a, "rev-parse", "HEAD")
	remote := e.httpRepoURL("myapp", e.auth.apiKey)
	started, release := make(chan struct{}), make(chan struct{})
	var startOnce sync.Once
	e.b.setDuring(func(ctx context.Context, req BuildRequest, out io.Writer) error {
		startOnce.Do(func() { close(started) })
		<-release
		return nil
	})
	errA := make(chan error, 1)
	go func() {
		out, err := e.git(a, "push", remote, "main").CombinedOutput()
		if err != nil {
			err = errors.New(err.Error() + "\n" + string(out))
		}
		errA <- err
	}()
	<-started
	checks := e.auth.checks() // a's info/refs and POST
	errB := make(chan error, 1)
	var outB []byte
	go func() {
		var err error
		outB, err = e.git(b, "push", "--force", remote, "main").CombinedOutput()
		errB <- err
	}()
	// b's POST looked the app up: its refs were advertised while a's build
	// held main back.
	for e.auth.checks() < checks+2 {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	close(release)
	if err := <-errA; err != nil {
		t.Fatalf("first push: %v", err)
	}
	if err := <-errB; err == nil {
		t.Fatalf("stale push succeeded:\n%s", outB)
	}
	mustContain(t, "stale push", string(outB), "refs/heads/main changed since your push began")
	if got := e.serverRef("myapp", "refs/heads/main"); got != headA {
		t.Errorf("main = %s, want %s", got, headA)
	}
	if n := len(e.b.all()); n != 1 {
		t.Errorf("%d builds, want 1", n)
	}
}

// TestCloseCancelsBuilds: Close ends the builds in progress, and their
// pushes fail.
func TestCloseCancelsBuilds(t *testing.T) {
	e := newEnv(t)
	w := e.workRepo(map[string]string{"a": "1\n"})
	started, cancelled, giveUp := make(chan struct{}), make(chan struct{}), make(chan struct{})
	e.b.setDuring(func(ctx context.Context, req BuildRequest, out io.Writer) error {
		close(started)
		select {
		case <-ctx.Done():
			close(cancelled)
			return ctx.Err()
		case <-giveUp:
			return errors.New("not cancelled")
		}
	})
	errc := make(chan error, 1)
	go func() {
		errc <- e.git(w, "push", e.httpRepoURL("myapp", e.auth.apiKey), "main").Run()
	}()
	<-started
	go e.r.Close() // it waits for the build, so if that never ends ...
	select {
	case <-cancelled:
	case <-time.After(20 * time.Second):
		close(giveUp)
		t.Fatal("Close left the build running")
	}
	if err := <-errc; err == nil {
		t.Error("the push succeeded")
	}
	if got := e.serverRef("myapp", "refs/heads/main"); got != "" {
		t.Errorf("main = %s", got)
	}
}

// TestRecreatedAppStartsAfresh: an app destroyed and created again under
// its name does not inherit the old one's repository, over SSH or HTTP.
func TestRecreatedAppStartsAfresh(t *testing.T) {
	e := newEnv(t)
	w := e.workRepo(map[string]string{"secret": "the old app's code\n"})
	if out, err := e.git(w, "push", e.sshURL("myapp"), "main").CombinedOutput(); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	old := e.serverRef("myapp", "refs/heads/main")
	if old == "" {
		t.Fatal("nothing pushed")
	}
	e.auth.mu.Lock()
	e.auth.apps["myapp"] = "id-2" // destroyed, and created again
	e.auth.mu.Unlock()
	clone := filepath.Join(t.TempDir(), "clone")
	if out, err := e.git(w, "clone", "-q", e.sshURL("myapp"), clone).CombinedOutput(); err == nil {
		t.Fatalf("cloned the destroyed app's repository:\n%s", out)
	}
	if e.r.repoExists("myapp") {
		t.Fatal("the old repository is still there")
	}
	fresh := e.workRepo(map[string]string{"new": "the new app\n"})
	if out, err := e.git(fresh, "push", e.sshURL("myapp"), "main").CombinedOutput(); err != nil {
		t.Fatalf("push to the new app: %v\n%s", err, out)
	}
	if got := e.serverRef("myapp", "refs/heads/main"); got == "" || got == old {
		t.Fatalf("main is %q after the new app's push (old %s)", got, old)
	}
	// Its own repository is kept from push to push.
	if out, err := e.git(fresh, "fetch", "-q", e.sshURL("myapp"), "main").CombinedOutput(); err != nil {
		t.Fatalf("fetch: %v\n%s", err, out)
	}
}
