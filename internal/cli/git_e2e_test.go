package cli_test

import (
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pusher is a developer with a git checkout, an SSH key and the CLI
// config of a `pier up`.
type pusher struct {
	t    *testing.T
	p    *upProc
	home string
	key  string
	// extra is added to the environment last, overriding what it names.
	extra []string
}

func newPusher(t *testing.T, p *upProc) *pusher {
	home := t.TempDir()
	key := filepath.Join(home, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dev@laptop", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	return &pusher{t: t, p: p, home: home, key: key}
}

// env is the environment git and pier run with. ssh reads known_hosts
// from the passwd entry's home, not $HOME, hence the explicit file.
func (u *pusher) env(key string) []string {
	var env []string
	for _, kv := range os.Environ() {
		// This machine points git at the system CAs only; a developer's
		// git has no such override, and uses the checkout's sslCAInfo.
		if !strings.HasPrefix(kv, "GIT_SSL_CAINFO=") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	env = append(env, "HOME="+u.home, "XDG_CONFIG_HOME="+u.p.configHome, "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=dev", "GIT_AUTHOR_EMAIL=dev@example.com", "GIT_COMMITTER_NAME=dev", "GIT_COMMITTER_EMAIL=dev@example.com",
		"GIT_SSH_COMMAND=ssh -i "+key+" -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile="+filepath.Join(u.home, ".ssh", "known_hosts"))
	return append(env, u.extra...)
}

// run runs a command in dir and returns its combined output and error.
func (u *pusher) run(dir, key string, name string, args ...string) (string, error) {
	u.t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, u.env(key)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (u *pusher) must(dir string, name string, args ...string) string {
	u.t.Helper()
	out, err := u.run(dir, u.key, name, args...)
	if err != nil {
		u.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// checkout copies an example into a new git repository with one commit.
func (u *pusher) checkout(example string) string {
	u.t.Helper()
	dir := filepath.Join(u.t.TempDir(), example)
	if out, err := exec.Command("cp", "-r", filepath.Join("..", "..", "examples", example), dir).CombinedOutput(); err != nil {
		u.t.Fatalf("cp: %v: %s", err, out)
	}
	u.must(dir, "git", "init", "-q", "-b", "main")
	u.must(dir, "git", "add", "-A")
	u.must(dir, "git", "commit", "-qm", "first")
	return dir
}

// push pushes main and returns the output and how long it took.
func (u *pusher) push(dir string) (string, time.Duration) {
	u.t.Helper()
	start := time.Now()
	out := u.must(dir, "git", "push", "pier", "main")
	return out, time.Since(start)
}

func (u *pusher) commit(dir, file, content string) {
	u.t.Helper()
	if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
		u.t.Fatal(err)
	}
	u.must(dir, "git", "commit", "-qam", "change "+file)
}

func (u *pusher) serves(app, want string) {
	u.t.Helper()
	waitUntil(u.t, app+" to answer "+want, 30*time.Second, func() bool {
		code, body, _ := get(u.p, app, "/")
		return code == 200 && strings.Contains(body, want)
	})
}

// TestGitPushDeploys is issue 7's walk-through: each example pushed with
// the system git over SSH or HTTPS, built on the cluster by its
// buildpack, and served through the router.
func TestGitPushDeploys(t *testing.T) {
	p := startUp(t, filepath.Join(t.TempDir(), "data"), freeUpPorts(t))
	u := newPusher(t, p)
	cli := cliUser{t, p}
	cli.must("keys", "add", u.key+".pub")
	if out := cli.must("keys"); !strings.HasPrefix(out, "FINGERPRINT") || !strings.Contains(out, "SHA256:") {
		t.Fatalf("keys after keys add:\n%s", out)
	}

	examples := []struct {
		dir, app, buildpack, want string
		ssh                       bool
	}{
		{"go", "gohello", "Go", "Hello from Go", true},
		{"node", "nodehello", "Node.js", "Hello from Node", false},
		{"static", "site", "Static", "Hello from a static site", true},
		{"python", "pyhello", "Python", "Hello from Python", false},
		{"hello", "hello", "Procfile", "hello from pier", false},
	}
	dirs := map[string]string{}
	for _, ex := range examples {
		dir := u.checkout(ex.dir)
		dirs[ex.dir] = dir
		// pier create inside a checkout adds the HTTPS remote.
		if out := u.must(dir, pierBin, "create", ex.app); !strings.Contains(out, "Git remote pier: https://") {
			t.Fatalf("create in a checkout:\n%s", out)
		}
		if ex.ssh {
			u.must(dir, pierBin, "git-remote", "--ssh")
		}
		out, took := u.push(dir)
		t.Logf("%s over %s: first push took %s", ex.dir, map[bool]string{true: "SSH", false: "HTTPS"}[ex.ssh], took.Round(time.Millisecond))
		if !strings.Contains(out, "remote: -----> Compiling with the "+ex.buildpack+" buildpack") || !strings.Contains(out, "deployed") {
			t.Fatalf("push of %s:\n%s", ex.dir, out)
		}
		u.serves(ex.app, ex.want)
	}

	// Each app again over the other transport: a one-line change that the
	// next release serves. The Go app's second build reuses the cache.
	for _, ex := range examples {
		dir := dirs[ex.dir]
		if ex.ssh {
			u.must(dir, pierBin, "git-remote")
		} else {
			u.must(dir, pierBin, "git-remote", "--ssh")
		}
		file := map[string]string{"go": "main.go", "node": "build.js", "static": "index.html", "python": "app.py", "hello": "index.html"}[ex.dir]
		src, _ := os.ReadFile(filepath.Join(dir, file))
		u.commit(dir, file, strings.Replace(string(src), ex.want, ex.want+" again", 1))
		out, took := u.push(dir)
		t.Logf("%s over %s: second push took %s", ex.dir, map[bool]string{false: "SSH", true: "HTTPS"}[ex.ssh], took.Round(time.Millisecond))
		if ex.dir == "go" && !strings.Contains(out, "Restoring the build cache") {
			t.Fatalf("second push did not use the cache:\n%s", out)
		}
		u.serves(ex.app, ex.want+" again")
	}
	goDir := dirs["go"]
	main, _ := os.ReadFile(filepath.Join(goDir, "main.go"))

	// A build that fails fails the push with the compiler's message, and
	// the previous release keeps serving.
	u.commit(goDir, "main.go", string(main)+"\nfunc broken() { undefinedThing() }\n")
	out, err := u.run(goDir, u.key, "git", "push", "pier", "main")
	if err == nil || !strings.Contains(out, "undefined: undefinedThing") {
		t.Fatalf("a broken build: err %v\n%s", err, out)
	}
	u.serves("gohello", "Hello from Go again")
	if out := cli.must("builds", "-a", "gohello"); strings.Count(out, "  failed  ") != 1 || strings.Count(out, "  succeeded  ") != 2 {
		t.Fatalf("builds:\n%s", out)
	}
	if out := cli.must("builds:output", "-a", "gohello"); !strings.Contains(out, "undefined: undefinedThing") {
		t.Fatalf("builds:output of the failed build:\n%s", out)
	}

	// An unregistered key is refused, and so is anything but git.
	stranger := filepath.Join(u.home, "stranger")
	exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", stranger).Run()
	static := dirs["static"]
	u.must(static, pierBin, "git-remote", "--ssh")
	if out, err := u.run(static, stranger, "git", "push", "pier", "main"); err == nil || !strings.Contains(out, "Permission denied") {
		t.Fatalf("push with an unregistered key: %v\n%s", err, out)
	}
	sshArgs := []string{"-i", u.key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile=" + filepath.Join(u.home, ".ssh", "known_hosts"), "-p", strconv.Itoa(p.sshPort), "git@127.0.0.1"}
	if out, err := u.run(static, u.key, "ssh", append(sshArgs, "sh", "-c", "id")...); err == nil || !strings.Contains(out, "only git push and git fetch") {
		t.Fatalf("ssh with a shell command: %v\n%s", err, out)
	}
}

// TestCustomBuildpack: BUILDPACK_URL names a git repository (served over
// plain HTTP from this machine) whose buildpack is used instead of the
// built-in ones.
func TestCustomBuildpack(t *testing.T) {
	p := startUp(t, filepath.Join(t.TempDir(), "data"), freeUpPorts(t), hostNetwork...)
	u := newPusher(t, p)
	cli := cliUser{t, p}

	bp := filepath.Join(t.TempDir(), "bp")
	files := map[string]string{
		"bin/detect":  "#!/bin/sh\necho Custom\n",
		"bin/compile": "#!/bin/sh\nset -e\necho '-----> custom compile ran'\nmkdir -p \"$1/public\"\necho 'built by the custom buildpack' > \"$1/public/index.html\"\n",
		"bin/release": "#!/bin/sh\ncat <<EOF\n---\ndefault_process_types:\n  web: cd public && exec python3 -m http.server \\$PORT\nEOF\n",
	}
	for name, body := range files {
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
	// git's smart HTTP protocol, as any git host serves it.
	backend := &cgi.Handler{Path: "/usr/lib/git-core/git-http-backend",
		Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(bp), "GIT_HTTP_EXPORT_ALL=1"}}
	srv := &http.Server{Handler: backend}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	dir := u.checkout("static") // which the static buildpack would take
	u.must(dir, pierBin, "create", "custom")
	cli.must("config:set", "-a", "custom", "BUILDPACK_URL=http://"+ln.Addr().String()+"/bp/.git")
	out, _ := u.push(dir)
	if !strings.Contains(out, "custom compile ran") {
		t.Fatalf("push with BUILDPACK_URL:\n%s", out)
	}
	u.serves("custom", "built by the custom buildpack")
}
