package gitreceive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// The test binary doubles as the hook: the receiver's hook command runs
// it with hookEnv set, and it behaves as `pier git-hook`.
const hookEnv = "GITRECEIVE_TEST_HOOK"

func TestMain(m *testing.M) {
	if os.Getenv(hookEnv) == "1" {
		if err := RunHook(context.Background(), os.Stdin, os.Stderr, os.Getenv); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakeAuth knows some keys, one API key and some apps.
type fakeAuth struct {
	mu        sync.Mutex
	keys      map[string]bool // SHA256 fingerprints
	apiKey    string
	apps      map[string]string // app → its id
	appChecks int
}

func (a *fakeAuth) AuthorizeKey(ctx context.Context, key ssh.PublicKey) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.keys[ssh.FingerprintSHA256(key)] {
		return errors.New("unknown key")
	}
	return nil
}

func (a *fakeAuth) AuthorizeAPIKey(ctx context.Context, secret string) error {
	if secret != a.apiKey {
		return errors.New("bad key")
	}
	return nil
}

func (a *fakeAuth) AppID(ctx context.Context, app string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.appChecks++
	return a.apps[app], nil
}

func (a *fakeAuth) checks() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.appChecks
}

// build is what the fake builder saw.
type build struct {
	BuildRequest
	files map[string]string
}

// fakeBuilder prints a line per file of the tree, runs during (a test's
// way to act in the middle of a build), and fails when the tree holds a
// file named FAIL. It notices builds of one app that overlap.
type fakeBuilder struct {
	mu      sync.Mutex
	builds  []build
	running map[string]int
	overlap bool
	during  func(ctx context.Context, req BuildRequest, out io.Writer) error
}

func (b *fakeBuilder) Build(ctx context.Context, req BuildRequest, out io.Writer) error {
	b.mu.Lock()
	b.running[req.App]++
	if b.running[req.App] > 1 {
		b.overlap = true
	}
	during := b.during
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.running[req.App]--
		b.mu.Unlock()
	}()

	fmt.Fprintf(out, "-----> building %s at %.7s\n", req.App, req.Commit)
	files, err := readTarGz(req.Source)
	if err != nil {
		return fmt.Errorf("read the source: %w", err)
	}
	b.mu.Lock()
	b.builds = append(b.builds, build{req, files})
	b.mu.Unlock()
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(out, "       file %s\n", n)
	}
	if during != nil {
		if err := during(ctx, req, out); err != nil {
			return err
		}
	}
	if msg, ok := files["FAIL"]; ok {
		return fmt.Errorf("the tree holds FAIL: %s", strings.TrimSpace(msg))
	}
	fmt.Fprintln(out, "-----> released")
	return nil
}

func (b *fakeBuilder) setDuring(f func(ctx context.Context, req BuildRequest, out io.Writer) error) {
	b.mu.Lock()
	b.during = f
	b.mu.Unlock()
}

func (b *fakeBuilder) overlapped() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.overlap
}

func (b *fakeBuilder) all() []build {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]build(nil), b.builds...)
}

func (b *fakeBuilder) last(t *testing.T) build {
	t.Helper()
	all := b.all()
	if len(all) == 0 {
		t.Fatal("no build")
	}
	return all[len(all)-1]
}

func readTarGz(r io.Reader) (map[string]string, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(gz)
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		files[h.Name] = string(b)
	}
}

// env is a running Receiver with SSH and HTTP, and a git client set up
// to reach it.
type env struct {
	t        *testing.T
	r        *Receiver
	auth     *fakeAuth
	b        *fakeBuilder
	sshPort  int
	httpURL  string // http://127.0.0.1:PORT
	httpsURL string // https://127.0.0.1:PORT, HTTP/2
	caFile   string // its certificate
	key      string // the client's private key file
	home     string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Fatal("the ssh client is needed (openssh-client): ", err)
	}
	root := t.TempDir()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{
		t:    t,
		auth: &fakeAuth{keys: map[string]bool{}, apiKey: "pier_0123456789ab_secret", apps: map[string]string{"myapp": "id-1"}},
		b:    &fakeBuilder{running: map[string]int{}},
		home: filepath.Join(root, "home"),
	}
	os.Mkdir(e.home, 0o700)
	var pub ssh.PublicKey
	e.key, pub = writeClientKey(t, filepath.Join(root, "id_ed25519"))
	e.auth.keys[ssh.FingerprintSHA256(pub)] = true

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var logOut io.Writer = io.Discard
	if os.Getenv("GITRECEIVE_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	e.r, err = New(Config{
		RepoDir: filepath.Join(root, "repos"),
		HostKey: hostKey,
		Builder: e.b,
		Auth:    e.auth,
		Log:     slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Hook:    []string{"/usr/bin/env", hookEnv + "=1", exe},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.sshPort = ln.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- e.r.ServeSSH(ctx, ln) }()
	mux := http.NewServeMux()
	mux.Handle("/git/", e.r.HTTPHandler())
	hs := httptest.NewServer(mux)
	e.httpURL = hs.URL
	// HTTPS with HTTP/2, as the controller serves it.
	hs2 := httptest.NewUnstartedServer(mux)
	hs2.EnableHTTP2 = true
	hs2.StartTLS()
	e.httpsURL = hs2.URL
	e.caFile = filepath.Join(root, "ca.pem")
	os.WriteFile(e.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs2.Certificate().Raw}), 0o644)
	t.Cleanup(func() {
		hs.Close()
		hs2.Close()
		cancel()
		if err := <-served; err != nil {
			t.Errorf("ServeSSH: %v", err)
		}
		e.r.Close()
	})
	return e
}

func writeClientKey(t *testing.T, path string) (string, ssh.PublicKey) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return path, sp
}

func (e *env) sshCommand(key string) string {
	return fmt.Sprintf("ssh -F /dev/null -i %s -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -p %d", key, e.sshPort)
}

func (e *env) sshURL(app string) string { return "git@127.0.0.1:" + app + ".git" }
func (e *env) sshURLAbs(app string) string {
	return fmt.Sprintf("ssh://git@127.0.0.1:%d/%s.git", e.sshPort, app)
}
func (e *env) httpRepoURL(app, password string) string {
	return strings.Replace(e.httpURL, "http://", "http://git:"+password+"@", 1) + "/git/" + app + ".git"
}
func (e *env) httpsRepoURL(app, password string) string {
	return strings.Replace(e.httpsURL, "https://", "https://git:"+password+"@", 1) + "/git/" + app + ".git"
}

// git prepares a git client command in dir, isolated from the machine's
// configuration and using the test's SSH key.
func (e *env) git(dir string, args ...string) *exec.Cmd {
	return e.gitKey(e.key, dir, args...)
}

func (e *env) gitKey(key, dir string, args ...string) *exec.Cmd {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, hookEnv) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "HOME="+e.home, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
		"GIT_SSH_COMMAND="+e.sshCommand(key), "GIT_SSL_CAINFO="+e.caFile)
	return cmd
}

func (e *env) run(dir string, args ...string) string {
	e.t.Helper()
	out, err := e.git(dir, args...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// workRepo makes a client repository with one commit of files.
func (e *env) workRepo(files map[string]string) string {
	e.t.Helper()
	dir := e.t.TempDir()
	e.run(dir, "init", "-q", "-b", "main")
	e.commit(dir, files)
	return dir
}

// commit writes files (an empty content deletes) and commits; it returns
// the new HEAD.
func (e *env) commit(dir string, files map[string]string) string {
	e.t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if content == "" {
			os.Remove(p)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	e.run(dir, "add", "-A")
	e.run(dir, "commit", "-q", "-m", "change")
	return e.run(dir, "rev-parse", "HEAD")
}

// serverRef is ref in app's repository on the server, or "".
func (e *env) serverRef(app, ref string) string {
	out, err := exec.Command("git", "--git-dir", e.r.repoPath(app), "rev-parse", "-q", "--verify", ref).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// pushLive runs git push and proves the build's output streams: the
// build waits, mid-way, until the pusher's terminal shows a line it
// printed, and fails if that never happens.
func (e *env) pushLive(dir string, args ...string) (string, error) {
	e.t.Helper()
	seen := make(chan struct{})
	e.b.setDuring(func(ctx context.Context, req BuildRequest, out io.Writer) error {
		fmt.Fprintln(out, "waiting for the pusher")
		select {
		case <-seen:
			fmt.Fprintln(out, "the pusher saw it")
			return nil
		case <-time.After(30 * time.Second):
			return errors.New("the pusher did not see the output while the build ran")
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	defer e.b.setDuring(nil)
	var once sync.Once
	return e.pushWatch(e.key, dir, func(line string) {
		if strings.Contains(line, "remote: waiting for the pusher") {
			once.Do(func() { close(seen) })
		}
	}, args...)
}

// pushWatch runs git push with args, calling watch with each line of its
// stderr as it appears, and returns the whole stderr.
func (e *env) pushWatch(key, dir string, watch func(string), args ...string) (string, error) {
	cmd := e.gitKey(key, dir, append([]string{"push"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	var all bytes.Buffer
	sc := bufio.NewScanner(stderr)
	sc.Split(splitLines)
	for sc.Scan() {
		all.WriteString(sc.Text() + "\n")
		if watch != nil {
			watch(sc.Text())
		}
	}
	return all.String(), cmd.Wait()
}

// splitLines splits at \n or \r: git redraws progress lines with \r.
func splitLines(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s lacks %q:\n%s", what, sub, s)
		}
	}
}
