package gitreceive

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestSSHRefusals: unregistered keys, anything but git push/fetch, bad
// and unknown apps.
func TestSSHRefusals(t *testing.T) {
	e := newEnv(t)
	w := e.workRepo(map[string]string{"a": "1\n"})

	other, _ := writeClientKey(t, filepath.Join(t.TempDir(), "other"))
	out, err := e.pushWatch(other, w, nil, e.sshURL("myapp"), "main")
	if err == nil {
		t.Fatalf("push with an unregistered key succeeded:\n%s", out)
	}
	mustContain(t, "unregistered key", out, "Permission denied (publickey)")

	for _, tc := range []struct{ app, want string }{
		{"Bad_Name", "app name \"Bad_Name\" is invalid"},
		{"nope", "there is no app named nope"},
		{"../myapp", "only git push and git fetch are served here"},
	} {
		out, err := e.pushWatch(e.key, w, nil, e.sshURL(tc.app), "main")
		if err == nil {
			t.Errorf("push to %s succeeded", tc.app)
		}
		mustContain(t, "push to "+tc.app, out, "pier: "+tc.want)
	}
	// A clone of an app that was never pushed has nothing to clone.
	e.auth.mu.Lock()
	e.auth.apps["fresh"] = "id-fresh"
	e.auth.mu.Unlock()
	out2, err := e.git(t.TempDir(), "clone", e.sshURL("fresh"), "x").CombinedOutput()
	if err == nil {
		t.Error("clone of a never-pushed app succeeded")
	}
	mustContain(t, "clone fresh", string(out2), "fresh has no git repository yet")

	// Commands, shells and subsystems through the real ssh client.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ls"}, `only git push and git fetch are served here, not "ls"`},
		{[]string{"git-receive-pack 'myapp.git'; ls"}, "only git push and git fetch"},
		{[]string{"git-receive-pack", "'myapp.git'", "x"}, "only git push and git fetch"},
		{[]string{"git-upload-pack '/etc/passwd'"}, "only git push and git fetch"},
		{[]string{"sh -c id"}, "only git push and git fetch"},
		{[]string{"-T"}, "there is no shell here"},
		{[]string{"-s", "sftp"}, "there are no subsystems"},
	} {
		args := append(strings.Fields(e.sshCommand(e.key))[1:], "git@127.0.0.1")
		if tc.args[0] == "-T" || tc.args[0] == "-s" {
			args = append([]string{tc.args[0]}, args...)
			args = append(args, tc.args[1:]...)
		} else {
			args = append(args, tc.args...)
		}
		cmd := exec.Command("ssh", args...)
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("ssh %q: %v, want exit status 1\n%s", tc.args, err, out)
		}
		mustContain(t, fmt.Sprintf("ssh %q", tc.args), string(out), tc.want)
	}

	// Forwarding, through the Go client, which lets us ask for it directly.
	signer := loadSigner(t, e.key)
	c, err := ssh.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", e.sshPort), &ssh.ClientConfig{
		User: "git", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if conn, err := c.Dial("tcp", "127.0.0.1:22"); err == nil {
		conn.Close()
		t.Error("direct-tcpip forwarding was allowed")
	}
	if ln, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
		t.Error("remote forwarding was allowed")
	}
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Setenv("LD_PRELOAD", "/tmp/x.so"); err == nil {
		t.Error("env LD_PRELOAD was accepted")
	}
	if ok, _ := s.SendRequest("auth-agent-req@openssh.com", true, nil); ok {
		t.Error("agent forwarding was accepted")
	}
	s.Close()
	// An interactive login: no pty (as GitHub does, so OpenSSH goes on),
	// then the shell is refused with a reason.
	s, err = c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err == nil {
		t.Error("pty-req was accepted")
	}
	var shellOut strings.Builder
	s.Stderr = &shellOut
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	var ee *ssh.ExitError
	if err := s.Wait(); !errors.As(err, &ee) || ee.ExitStatus() != 1 {
		t.Errorf("shell: %v, want exit status 1", err)
	}
	mustContain(t, "shell", shellOut.String(), "there is no shell here")

	if n := len(e.b.all()); n != 0 {
		t.Errorf("%d builds, want none", n)
	}
}

func loadSigner(t *testing.T, path string) ssh.Signer {
	t.Helper()
	b, err := readFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestHTTPRefusals: authentication as git expects it, unknown and bad
// apps, the dumb protocol, wrong content types.
func TestHTTPRefusals(t *testing.T) {
	e := newEnv(t)
	get := func(method, path, password, ctype string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, e.httpURL+path, strings.NewReader(""))
		if password != "" {
			req.SetBasicAuth("git", password)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	key := e.auth.apiKey
	for _, tc := range []struct {
		method, path, password, ctype string
		status                        int
	}{
		{"GET", "/git/myapp.git/info/refs?service=git-receive-pack", "", "", 401},
		{"GET", "/git/myapp.git/info/refs?service=git-receive-pack", "wrong", "", 401},
		{"POST", "/git/myapp.git/git-receive-pack", "wrong", "application/x-git-receive-pack-request", 401},
		{"GET", "/git/nope.git/info/refs?service=git-receive-pack", key, "", 404},
		{"GET", "/git/Bad_App.git/info/refs?service=git-receive-pack", key, "", 400},
		{"GET", "/git/myapp.git/info/refs", key, "", 403},
		{"GET", "/git/myapp.git/info/refs?service=git-shell", key, "", 403},
		{"GET", "/git/myapp.git/HEAD", key, "", 404},
		{"GET", "/git/myapp.git/objects/info/packs", key, "", 404},
		{"GET", "/git/a/b.git/info/refs?service=git-upload-pack", key, "", 404},
		{"POST", "/git/myapp.git/git-receive-pack", key, "text/plain", 400},
		{"GET", "/git/myapp.git/git-receive-pack", key, "", 405},
		{"GET", "/git/myapp.git/info/refs?service=git-upload-pack", key, "", 404}, // never pushed
	} {
		resp := get(tc.method, tc.path, tc.password, tc.ctype)
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s (password %q): %d, want %d", tc.method, tc.path, tc.password, resp.StatusCode, tc.status)
		}
		if tc.status == 401 && resp.Header.Get("WWW-Authenticate") != `Basic realm="pier"` {
			t.Errorf("%s %s: 401 without the Basic challenge", tc.method, tc.path)
		}
	}

	resp := get("GET", "/git/myapp.git/info/refs?service=git-receive-pack", key, "")
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "application/x-git-receive-pack-advertisement" {
		t.Errorf("advertisement: %d %q", resp.StatusCode, ct)
	}

	// git itself, with a wrong key and no way to prompt, gives up.
	w := e.workRepo(map[string]string{"a": "1\n"})
	out, err := e.git(w, "push", e.httpRepoURL("myapp", "wrong"), "main").CombinedOutput()
	if err == nil {
		t.Errorf("push with a wrong API key succeeded:\n%s", out)
	}
	mustContain(t, "push with a wrong key", string(out), "Authentication failed")
	if n := len(e.b.all()); n != 0 {
		t.Errorf("%d builds, want none", n)
	}
}

// TestHookToken: the hook socket only serves a live push's token, once.
func TestHookToken(t *testing.T) {
	e := newEnv(t)
	ask := func(token string) hookResult {
		t.Helper()
		c, err := net.Dial("unix", e.r.hookLn.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		hdr, _ := json.Marshal(hookHeader{Token: token, Ref: "refs/heads/main", Old: zeroID, Commit: strings.Repeat("1", 40)})
		writeFrame(c, frameHeader, hdr)
		writeFrame(c, frameEnd, nil)
		br := bufio.NewReader(c)
		var buf []byte
		for {
			typ, p, err := readFrame(br, &buf)
			if err != nil {
				t.Fatal(err)
			}
			if typ == frameResult {
				var r hookResult
				json.Unmarshal(p, &r)
				return r
			}
		}
	}
	if r := ask("made-up"); r.OK || !strings.Contains(r.Error, "unknown") {
		t.Errorf("made-up token: %+v", r)
	}
	envs, end, err := e.r.startPush(t.Context(), "myapp", e.r.repoPath("myapp"), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer end()
	token := strings.TrimPrefix(envs[1], envToken+"=")
	// The archive is empty, so the fake builder fails to read it: the
	// token was accepted and the Builder ran.
	if r := ask(token); r.OK || !strings.Contains(r.Error, "read the source") {
		t.Errorf("live token: %+v", r)
	}
	if r := ask(token); r.OK || !strings.Contains(r.Error, "unknown") {
		t.Errorf("reused token: %+v", r)
	}

	// Run by hand, the hook refuses.
	var stderr strings.Builder
	err = RunHook(t.Context(), strings.NewReader(""), &stderr, func(string) string { return "" })
	if !errors.Is(err, ErrPushRejected) || !strings.Contains(stderr.String(), "not by hand") {
		t.Errorf("RunHook without env: %v %q", err, stderr.String())
	}
}
